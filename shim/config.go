package shim

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"reflect"
	"slices"
	"strings"

	"github.com/pelletier/go-toml/v2"

	"github.com/palisade-runtime/palisade/policy"
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
	// Handlers by name; the name is what containerd's runtime entry selects.
	Handlers map[string]Handler `toml:"handlers"`
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
}

// Backends Palisade knows.
const (
	BackendRunsc = "runsc"
	BackendShim  = shimv2.KindShim
	BackendKata  = shimv2.KindKata
)

var logLevels = []string{"", "trace", "debug", "info", "warn", "error"}

// ParseConfig decodes config.toml strictly: an unknown key is an error that
// names it, because a misspelt security setting must never be ignored.
func ParseConfig(data []byte) (*Config, error) {
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
	data, err := os.ReadFile(path)
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
		return fmt.Errorf("line %d column %d: %s", row, col, derr.Error())
	}
	return err
}

// Validate checks every handler, naming the field that is wrong.
func (c *Config) Validate() error {
	if len(c.Handlers) == 0 {
		return errors.New("handlers: no handler defined")
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
