// Package shimv2 is the delegate backend: Palisade enforces the handler's
// floor on the bundle and on exec process specs, then hands the task API to
// another containerd shim v2 over ttrpc. Kata 2 and 3 have no OCI command
// line (containerd-shim-kata-v2 is itself a shim v2), so the Kata backend is
// this delegate with Kata's defaults; the same code drives
// containerd-shim-runc-v2, which is how it is proven where Kata cannot run.
package shimv2

import (
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"

	"github.com/containerd/containerd/api/types/runc/options"
	"github.com/containerd/containerd/api/types/runtimeoptions/v1"
	cshim "github.com/containerd/containerd/v2/pkg/shim"
	"github.com/containerd/typeurl/v2"
	"google.golang.org/protobuf/types/known/anypb"
)

// Config is the [handlers.<name>.shim] table of Palisade's config.toml, for
// backend = "shim" and backend = "kata".
type Config struct {
	// Binary is the downstream shim (containerd-shim-<name>-<version>): an
	// absolute path, or a bare name looked up in PATH (containerd's PATH,
	// which the shim inherits).
	Binary string `toml:"binary"`
	// RuntimeType names the downstream shim the way containerd's runtime_type
	// does: io.containerd.runc.v2 is containerd-shim-runc-v2 in PATH. Set
	// Binary or RuntimeType, not both.
	RuntimeType string `toml:"runtime_type"`
	// OptionsType is the runtime options message the downstream shim gets
	// with Create and in its bootstrap parameters: "runc"
	// (containerd-shim-runc-v2's options: BinaryName, Root), "runtimeoptions"
	// (ConfigPath, which Kata reads) or "none". The default follows the shim:
	// runc for containerd-shim-runc-v2, runtimeoptions for Kata, else none.
	OptionsType string `toml:"options_type"`
	// BinaryName is the OCI runtime containerd-shim-runc-v2 drives (runc
	// options); empty is the shim's default, runc.
	BinaryName string `toml:"binary_name"`
	// Root is that runtime's state directory (runc options); the namespace
	// is appended by the shim.
	Root string `toml:"root"`
	// ConfigPath is the runtimeoptions ConfigPath: for Kata, its
	// configuration.toml. Palisade reads the same file (see KataConfig).
	ConfigPath string `toml:"config_path"`
}

// Kinds of delegate.
const (
	KindShim = "shim" // any shim v2, nothing assumed
	KindKata = "kata" // containerd-shim-kata-v2 and its configuration.toml
)

// Options types.
const (
	OptionsNone           = "none"
	OptionsRunc           = "runc"
	OptionsRuntimeOptions = "runtimeoptions"
)

// Defaults.
const (
	KataBinary = "containerd-shim-kata-v2"
	runcShim   = "containerd-shim-runc-v2"
)

// kataConfigPaths are where Kata looks for its configuration when it is given
// none, in its order: the admin's file, the distribution's, kata-deploy's.
// Palisade resolves the file itself and passes it explicitly, so that the
// file it checks is the file Kata reads.
func kataConfigPaths() []string {
	return []string{
		"/etc/kata-containers/configuration.toml",
		"/usr/share/defaults/kata-containers/configuration.toml",
		"/opt/kata/share/defaults/kata-containers/configuration.toml",
	}
}

// WithDefaults returns c with the defaults of kind filled in. It does not
// touch the file system (the Kata config path is resolved by New).
func (c Config) WithDefaults(kind string) Config {
	if kind == KindKata && c.Binary == "" && c.RuntimeType == "" {
		c.Binary = KataBinary
	}
	if c.OptionsType == "" {
		switch {
		case kind == KindKata:
			c.OptionsType = OptionsRuntimeOptions
		case c.shimName() == runcShim:
			c.OptionsType = OptionsRunc
		default:
			c.OptionsType = OptionsNone
		}
	}
	return c
}

// shimName is the downstream shim's file name, from Binary or RuntimeType.
func (c Config) shimName() string {
	if c.Binary != "" {
		return filepath.Base(c.Binary)
	}
	if c.RuntimeType != "" {
		return cshim.BinaryName(c.RuntimeType)
	}
	return ""
}

// Validate names the first field that is wrong, as it appears in
// config.toml ("shim.binary: ...").
func (c Config) Validate(kind string) error {
	c = c.WithDefaults(kind)
	switch {
	case c.Binary != "" && c.RuntimeType != "":
		return errors.New("shim.runtime_type: set shim.binary or shim.runtime_type, not both")
	case c.Binary == "" && c.RuntimeType == "":
		return errors.New("shim.binary: missing (the downstream shim, or set shim.runtime_type)")
	case c.Binary != "" && !filepath.IsAbs(c.Binary) && strings.Contains(c.Binary, "/"):
		return fmt.Errorf("shim.binary: %q is neither an absolute path nor a name to look up in PATH", c.Binary)
	case c.RuntimeType != "" && (strings.Contains(c.RuntimeType, "/") || cshim.BinaryName(c.RuntimeType) == ""):
		return fmt.Errorf("shim.runtime_type: %q is not a runtime type such as io.containerd.kata.v2", c.RuntimeType)
	}
	switch c.OptionsType {
	case OptionsNone, OptionsRunc, OptionsRuntimeOptions:
	default:
		return fmt.Errorf("shim.options_type: unknown type %q (want runc, runtimeoptions or none)", c.OptionsType)
	}
	if kind == KindKata && c.OptionsType != OptionsRuntimeOptions {
		return fmt.Errorf("shim.options_type: Kata reads runtimeoptions (its ConfigPath), not %q", c.OptionsType)
	}
	if c.OptionsType != OptionsRunc {
		if c.BinaryName != "" {
			return errors.New("shim.binary_name: a runc option, only with options_type = \"runc\"")
		}
		if c.Root != "" {
			return errors.New("shim.root: a runc option, only with options_type = \"runc\"")
		}
	}
	if c.Root != "" && !filepath.IsAbs(c.Root) {
		return fmt.Errorf("shim.root: %q is not an absolute path", c.Root)
	}
	if c.BinaryName != "" && !filepath.IsAbs(c.BinaryName) && strings.Contains(c.BinaryName, "/") {
		return fmt.Errorf("shim.binary_name: %q is neither an absolute path nor a name to look up in PATH", c.BinaryName)
	}
	if c.ConfigPath != "" {
		if c.OptionsType != OptionsRuntimeOptions {
			return errors.New("shim.config_path: a runtimeoptions option, only with options_type = \"runtimeoptions\"")
		}
		if !filepath.IsAbs(c.ConfigPath) {
			return fmt.Errorf("shim.config_path: %q is not an absolute path", c.ConfigPath)
		}
	}
	return nil
}

// resolveBinary finds the downstream shim as containerd would: an absolute
// path as is, else the name (from Binary or RuntimeType) in PATH.
func (c Config) resolveBinary() (string, error) {
	if filepath.IsAbs(c.Binary) {
		if _, err := os.Stat(c.Binary); err != nil {
			return "", fmt.Errorf("shim.binary: %w", err)
		}
		return c.Binary, nil
	}
	name := c.shimName()
	path, err := exec.LookPath(name)
	if err != nil {
		return "", fmt.Errorf("downstream shim %s: %w", name, err)
	}
	return filepath.Abs(path)
}

// options is the runtime options message for the downstream shim; nil for
// "none". It replaces the options containerd gave Palisade, which name
// Palisade's own config file and mean nothing downstream.
func (c Config) options() (*anypb.Any, error) {
	var msg any
	switch c.OptionsType {
	case OptionsRunc:
		msg = &options.Options{BinaryName: c.BinaryName, Root: c.Root}
	case OptionsRuntimeOptions:
		msg = &runtimeoptions.Options{ConfigPath: c.ConfigPath}
	default:
		return nil, nil
	}
	a, err := typeurl.MarshalAnyToProto(msg)
	if err != nil {
		return nil, fmt.Errorf("encode downstream runtime options: %w", err)
	}
	return a, nil
}

// String is for logs.
func (c Config) String() string {
	s := c.shimName() + " options=" + c.OptionsType
	switch c.OptionsType {
	case OptionsRunc:
		s += " binary_name=" + c.BinaryName + " root=" + c.Root
	case OptionsRuntimeOptions:
		s += " config_path=" + c.ConfigPath
	}
	return s
}
