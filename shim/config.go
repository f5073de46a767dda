package shim

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strings"

	"github.com/pelletier/go-toml/v2"

	"github.com/palisade-runtime/palisade/policy"
	"github.com/palisade-runtime/palisade/sandbox/monitor"
	"github.com/palisade-runtime/palisade/sandbox/runsc"
	"github.com/palisade-runtime/palisade/sandbox/shimv2"
)

// DefaultConfigPath is read when containerd's runtime options name no file.
const DefaultConfigPath = "/etc/palisade/config.toml"

// Config is Palisade's config.toml: one file, many RuntimeClass handlers.
type Config struct {
	// DefaultHandler serves runtime entries that name no handler (plain
	// `ctr run --runtime io.containerd.palisade.v2`).
	DefaultHandler string `toml:"default_handler"`
	// KubeletRootDir is kubelet's --root-dir: the floor's mount
	// classification knows pod volumes and the service-account token by it.
	KubeletRootDir string `toml:"kubelet_root_dir"`
	// ContainerdRootDir is containerd's root: its CRI sandbox files
	// (hostname, resolv.conf, hosts) and image volumes live there.
	// containerd's state directory is derived from each bundle's path.
	ContainerdRootDir string `toml:"containerd_root_dir"`
	// Handlers by name; the name is what containerd's runtime entry selects.
	Handlers map[string]Handler `toml:"handlers"`
}

// HostDirs are the host directories the floor classifies mounts by, with
// the defaults filled in; the containerd state directory comes from the
// bundle (see stateDirOf).
func (c *Config) HostDirs() policy.HostDirs {
	h := policy.HostDirs{KubeletRoot: c.KubeletRootDir, ContainerdRoot: c.ContainerdRootDir}
	if h.KubeletRoot == "" {
		h.KubeletRoot = policy.DefaultKubeletRoot
	}
	if h.ContainerdRoot == "" {
		h.ContainerdRoot = policy.DefaultContainerdRoot
	}
	return h
}

// Handler is one [handlers.<name>] table.
type Handler struct {
	// Backend is the sandbox runtime: "runsc", "shim" (delegate to another
	// shim v2) or "kata" (the delegate with Kata's defaults).
	Backend string `toml:"backend"`
	// LogLevel of the shim: debug, info, warn, error. Empty keeps containerd's.
	LogLevel string `toml:"log_level"`
	// Runsc configures the runsc backend.
	Runsc runsc.Config `toml:"runsc"`
	// Shim configures the delegate backends, shim and kata.
	Shim shimv2.Config `toml:"shim"`
	// Policy is the security floor every container of this handler gets.
	Policy policy.Config `toml:"policy"`
	// RuntimeClass feeds `palisadectl config runtimeclass`; the shim ignores it.
	RuntimeClass RuntimeClass `toml:"runtimeclass"`
	// Monitoring is runtime threat detection inside gVisor (runsc only).
	Monitoring monitor.Config `toml:"monitoring"`
}

// Backends Palisade knows.
const (
	BackendRunsc = "runsc"
	BackendShim  = shimv2.KindShim
	BackendKata  = shimv2.KindKata
)

var logLevels = []string{"", "trace", "debug", "info", "warn", "error"}

// MaxConfigSize bounds config.toml and the runtime options table. Real
// configs are a few KiB; the TOML decoder's duplicate-key check grows with
// the square of the number of tables, so a hostile multi-megabyte file
// would otherwise hold Create for minutes.
const MaxConfigSize = 1 << 20

// ParseConfig decodes config.toml strictly: an unknown key is an error that
// names it, because a misspelt security setting must never be ignored.
func ParseConfig(data []byte) (*Config, error) {
	if len(data) > MaxConfigSize {
		return nil, fmt.Errorf("%d bytes: larger than the %d-byte limit", len(data), MaxConfigSize)
	}
	var c Config
	dec := toml.NewDecoder(bytes.NewReader(data)).DisallowUnknownFields()
	if err := dec.Decode(&c); err != nil {
		return nil, describeTOMLError(err)
	}
	if err := c.Validate(); err != nil {
		return nil, err
	}
	return &c, nil
}

// LoadConfig reads and parses a config.toml.
func LoadConfig(path string) (*Config, error) {
	data, err := readLimited(path, MaxConfigSize)
	if err != nil {
		return nil, fmt.Errorf("read palisade config: %w", err)
	}
	c, err := ParseConfig(data)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	return c, nil
}

func describeTOMLError(err error) error {
	var strict *toml.StrictMissingError
	if errors.As(err, &strict) {
		keys := make([]string, 0, len(strict.Errors))
		for _, e := range strict.Errors {
			keys = append(keys, strings.Join(e.Key(), "."))
		}
		return fmt.Errorf("unknown key(s) %s", strings.Join(keys, ", "))
	}
	var derr *toml.DecodeError
	if errors.As(err, &derr) {
		row, col := derr.Position()
		msg := strings.TrimPrefix(derr.Error(), "toml: ")
		if len(derr.Key()) == 0 || !strings.HasPrefix(msg, "cannot decode") {
			return fmt.Errorf("line %d column %d: %s", row, col, msg)
		}
		// Name the TOML key, not the Go field it decodes into: "cannot
		// decode TOML array into struct field shim.Handler.LogLevel of
		// type string" becomes "cannot decode TOML array into string".
		if i, j := strings.Index(msg, " into struct field "), strings.LastIndex(msg, " of type "); i >= 0 && j > i {
			msg = msg[:i] + ", want " + tomlKind(msg[j+len(" of type "):])
		}
		return fmt.Errorf("%s (line %d column %d): %s", strings.Join(derr.Key(), "."), row, col, msg)
	}
	return err
}

// tomlKind names a Go type by the TOML value that decodes into it.
func tomlKind(goType string) string {
	switch {
	case goType == "string":
		return "a string"
	case goType == "bool":
		return "a boolean"
	case strings.HasPrefix(goType, "[]"):
		return "an array"
	case strings.HasPrefix(goType, "map["), strings.Contains(goType, "."):
		return "a table"
	case strings.HasPrefix(goType, "int"), strings.HasPrefix(goType, "uint"):
		return "an integer"
	}
	return goType
}

// readLimited reads the file at path, refusing one larger than limit
// without reading more than limit+1 bytes of it.
func readLimited(path string, limit int64) ([]byte, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	data, err := io.ReadAll(io.LimitReader(f, limit+1))
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	if int64(len(data)) > limit {
		return nil, fmt.Errorf("%s: larger than the %d-byte limit", path, limit)
	}
	return data, nil
}

// validHandlerName: a handler's name is the RuntimeClass handler kubelet
// sends and a path component of generated files, so it must be a DNS-1123
// label, as Kubernetes requires of RuntimeClass.handler.
func validHandlerName(n string) error {
	if n == "" || len(n) > 63 {
		return fmt.Errorf("name %q: want 1 to 63 characters", n)
	}
	for i, r := range n {
		alnum := r >= 'a' && r <= 'z' || r >= '0' && r <= '9'
		if !alnum && (r != '-' || i == 0 || i == len(n)-1) {
			return fmt.Errorf("name %q: want a DNS-1123 label (lower-case letters, digits and '-', starting and ending with a letter or digit)", n)
		}
	}
	return nil
}

// ValidateHostDirs checks the top-level host directories.
func (c *Config) ValidateHostDirs() error {
	var errs []error
	for _, kv := range [][2]string{{"kubelet_root_dir", c.KubeletRootDir}, {"containerd_root_dir", c.ContainerdRootDir}} {
		if dir := kv[1]; dir != "" && (!filepath.IsAbs(dir) || filepath.Clean(dir) != dir || dir == "/") {
			errs = append(errs, fmt.Errorf("%s: %q is not a clean absolute directory other than /", kv[0], dir))
		}
	}
	return errors.Join(errs...)
}

// Validate checks every handler, naming the field that is wrong.
func (c *Config) Validate() error {
	if len(c.Handlers) == 0 {
		return errors.New("handlers: no handler defined")
	}
	if err := c.ValidateHostDirs(); err != nil {
		return err
	}
	if c.DefaultHandler != "" {
		if _, ok := c.Handlers[c.DefaultHandler]; !ok {
			return fmt.Errorf("default_handler: no handler named %q", c.DefaultHandler)
		}
	}
	names := make([]string, 0, len(c.Handlers))
	for n := range c.Handlers {
		names = append(names, n)
	}
	slices.Sort(names)
	for _, n := range names {
		if err := validHandlerName(n); err != nil {
			return fmt.Errorf("handlers: %w", err)
		}
		if err := c.Handlers[n].validate(); err != nil {
			return fmt.Errorf("handlers.%s.%w", n, err)
		}
	}
	return nil
}

func (h Handler) validate() error {
	switch h.Backend {
	case BackendRunsc:
		if err := h.Runsc.Validate(); err != nil {
			return err
		}
		if h.Shim != (shimv2.Config{}) {
			return errors.New("shim: only for backend = \"shim\" or \"kata\"")
		}
	case BackendShim, BackendKata:
		if err := h.Shim.Validate(h.Backend); err != nil {
			return err
		}
		if !reflect.ValueOf(h.Runsc).IsZero() {
			return errors.New("runsc: only for backend = \"runsc\"")
		}
	case "":
		return errors.New("backend: missing (want \"runsc\", \"shim\" or \"kata\")")
	default:
		return fmt.Errorf("backend: unknown backend %q (want \"runsc\", \"shim\" or \"kata\")", h.Backend)
	}
	if !slices.Contains(logLevels, h.LogLevel) {
		return fmt.Errorf("log_level: unknown level %q", h.LogLevel)
	}
	if err := h.Policy.Validate(); err != nil {
		return err
	}
	if err := h.Monitoring.Validate(); err != nil {
		return err
	}
	if h.Monitoring.Enabled && h.Backend != BackendRunsc {
		return errors.New("monitoring: only for backend = \"runsc\" (gVisor's trace points)")
	}
	return h.RuntimeClass.validate()
}

// Handler returns the named handler, or the default one for "".
func (c *Config) Handler(name string) (string, Handler, error) {
	if name == "" {
		name = c.DefaultHandler
	}
	if name == "" {
		if len(c.Handlers) != 1 {
			return "", Handler{}, errors.New("no handler named and no default_handler set")
		}
		for n := range c.Handlers {
			name = n
		}
	}
	h, ok := c.Handlers[name]
	if !ok {
		return "", Handler{}, fmt.Errorf("no handler named %q", name)
	}
	return name, h, nil
}
