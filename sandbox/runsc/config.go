// Package runsc is the gVisor backend: it drives runsc through its OCI command
// line, reusing containerd's process state machine (the same one the runc shim
// uses) with a go-runc client pointed at runsc.
package runsc

import (
	"fmt"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"time"

	gorunc "github.com/containerd/go-runc"
	"golang.org/x/sys/unix"
)

// Config is the [handlers.<name>.runsc] table of Palisade's config.toml.
type Config struct {
	// Binary is the runsc executable; a bare name is looked up in PATH.
	Binary string `toml:"binary"`
	// Root is runsc's state directory; the namespace is appended to it.
	Root string `toml:"root"`
	// Platform is runsc's --platform (systrap, ptrace, kvm).
	Platform string `toml:"platform"`
	// Network is runsc's --network (sandbox, host, none).
	Network string `toml:"network"`
	// Flags are further runsc global flags, name (without dashes) to value.
	// Flags that Palisade sets itself may not be overridden here.
	Flags map[string]string `toml:"flags"`
	// CommandTimeout bounds each runsc command that serves a request
	// (create, start, exec, kill, delete, ps, events, pause, resume,
	// update); a request's own deadline, if sooner, wins. A Go duration,
	// DefaultCommandTimeout if empty. Without a bound a hung runsc holds its
	// container's lock, and with it every later request for the container.
	CommandTimeout string `toml:"command_timeout"`
	// PortForward makes TCP connections to 127.0.0.1 in a pod's network
	// namespace reach the pod's sandbox (package portfwd), which is how
	// containerd's CRI port forwarding (kubectl and crictl port-forward)
	// finds the pod's listeners. Unset: on for network "sandbox", where
	// the pod's sockets live in gVisor's netstack; the other modes need
	// none of it (host: the sockets are the namespace's own; none: no
	// network), so true there is an error.
	PortForward *bool `toml:"port_forward"`
}

// Defaults for an empty Config.
const (
	DefaultBinary   = "runsc"
	DefaultRoot     = "/run/palisade/runsc"
	DefaultPlatform = "systrap"
	DefaultNetwork  = "sandbox"

	DefaultCommandTimeout = time.Minute
)

// managedFlags are set by Palisade, or must stay off: overriding them through
// Flags would let a config silently drop the seccomp floor (oci-seccomp) or
// move state, and allow-flag-override would let any pod turn the floor off
// with a dev.gvisor.flag.oci-seccomp=false annotation.
func managedFlags() []string {
	return []string{"root", "log", "log-format", "oci-seccomp", "platform", "network", "allow-flag-override"}
}

var flagName = regexp.MustCompile(`^[a-z0-9][a-z0-9-]*$`)

// WithDefaults returns c with empty fields set to their defaults.
func (c Config) WithDefaults() Config {
	if c.Binary == "" {
		c.Binary = DefaultBinary
	}
	if c.Root == "" {
		c.Root = DefaultRoot
	}
	if c.Platform == "" {
		c.Platform = DefaultPlatform
	}
	if c.Network == "" {
		c.Network = DefaultNetwork
	}
	return c
}

// Validate reports the first field that runsc would reject or that Palisade
// must own, naming it as it appears in config.toml.
func (c Config) Validate() error {
	switch c.Platform {
	case "", "systrap", "ptrace", "kvm":
	default:
		return fmt.Errorf("runsc.platform: unknown platform %q (want systrap, ptrace or kvm)", c.Platform)
	}
	switch c.Network {
	case "", "sandbox", "host", "none":
	default:
		return fmt.Errorf("runsc.network: unknown network %q (want sandbox, host or none)", c.Network)
	}
	if c.PortForward != nil && *c.PortForward && c.Network != "" && c.Network != "sandbox" {
		return fmt.Errorf("runsc.port_forward: only network = \"sandbox\" needs it (with %q containerd reaches the pod's sockets itself)", c.Network)
	}
	if c.CommandTimeout != "" {
		if d, err := time.ParseDuration(c.CommandTimeout); err != nil || d <= 0 {
			return fmt.Errorf("runsc.command_timeout: %q is not a positive duration (such as \"30s\")", c.CommandTimeout)
		}
	}
	if c.Root != "" && !filepath.IsAbs(c.Root) {
		return fmt.Errorf("runsc.root: %q is not an absolute path", c.Root)
	}
	for name := range c.Flags {
		if !flagName.MatchString(name) {
			return fmt.Errorf("runsc.flags.%s: not a flag name (lower case, digits and dashes, no leading dash)", name)
		}
		if slices.Contains(managedFlags(), name) {
			return fmt.Errorf("runsc.flags.%s: set by Palisade, cannot be overridden", name)
		}
	}
	return nil
}

// commandTimeout is CommandTimeout parsed (Validate has checked it).
func (c Config) commandTimeout() time.Duration {
	d, err := time.ParseDuration(c.CommandTimeout)
	if err != nil || d <= 0 {
		return DefaultCommandTimeout
	}
	return d
}

// portForward reports whether the pods of this handler get the port
// forwarder: port_forward as set, else on for network "sandbox".
func (c Config) portForward() bool {
	if c.PortForward != nil {
		return *c.PortForward
	}
	return c.WithDefaults().Network == "sandbox"
}

// globalArgs are the flags given to every runsc invocation. --oci-seccomp is
// always on: runsc ignores linux.seccomp without it, and the sandbox's flags
// are fixed when its first container is created, so a later container of the
// same pod could not turn it on.
func (c Config) globalArgs() []string {
	args := []string{"--oci-seccomp", "--platform=" + c.Platform, "--network=" + c.Network}
	names := make([]string, 0, len(c.Flags))
	for n := range c.Flags {
		names = append(names, n)
	}
	slices.Sort(names)
	for _, n := range names {
		args = append(args, "--"+n+"="+c.Flags[n])
	}
	return args
}

// client returns the go-runc client for one container's bundle, in its
// sandbox's root (roots.go). runsc reads the same global flags as runc
// (--root, --log, --log-format), so go-runc's argument building applies
// unchanged.
func (c Config) client(namespace, sandbox, bundle string) *gorunc.Runc {
	return c.clientIn(c.sandboxRoot(namespace, sandbox), bundle)
}

// clientIn is client for a given runsc root.
func (c Config) clientIn(root, bundle string) *gorunc.Runc {
	return &gorunc.Runc{
		Command:      c.Binary,
		Root:         root,
		Log:          filepath.Join(bundle, "log.json"),
		LogFormat:    gorunc.JSON,
		PdeathSignal: unix.SIGKILL,
		ExtraArgs:    c.globalArgs(),
	}
}

// String is for logs.
func (c Config) String() string {
	return c.Binary + " " + strings.Join(c.globalArgs(), " ")
}
