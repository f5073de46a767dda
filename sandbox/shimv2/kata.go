package shimv2

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strconv"

	"github.com/containerd/errdefs"
	specs "github.com/opencontainers/runtime-spec/specs-go"
	"github.com/pelletier/go-toml/v2"
)

// KataConfig is what Palisade reads from Kata's configuration.toml: only
// what decides who enforces the floor. The file has Kata's documented
// layout (one [hypervisor.<name>] table, [agent.<name>], [runtime], ...);
// every other key is Kata's business and is ignored.
type KataConfig struct {
	// Path is the file read.
	Path string
	// Hypervisors are the names of the [hypervisor.<name>] tables, sorted.
	Hypervisors []string
	// Agents are the names of the [agent.<name>] tables, sorted.
	Agents []string
	// DisableGuestSeccomp is [runtime] disable_guest_seccomp. When true,
	// Kata removes linux.seccomp from the spec before the guest agent sees
	// it. Absent means false, Kata's own default for a missing key (Kata's
	// shipped files set it to true).
	DisableGuestSeccomp bool
}

// Annotations through which a pod can change Kata's configuration. Kata
// honours them without an enable_annotations check: config_path is read
// before the runtime options, and the runtime.* keys override the file.
const (
	kataConfigPathAnnotation = "io.katacontainers.config_path"
	kataNoSeccompAnnotation  = "io.katacontainers.config.runtime.disable_guest_seccomp"
)

// ParseKataConfig reads a Kata configuration.toml tolerantly: unknown keys
// and tables are fine, but a key Palisade needs with the wrong type is an
// error, because guessing would be failing open.
func ParseKataConfig(data []byte) (*KataConfig, error) {
	var raw struct {
		Hypervisor map[string]map[string]any `toml:"hypervisor"`
		Agent      map[string]map[string]any `toml:"agent"`
		Runtime    struct {
			DisableGuestSeccomp *bool `toml:"disable_guest_seccomp"`
		} `toml:"runtime"`
	}
	if err := toml.NewDecoder(bytes.NewReader(data)).Decode(&raw); err != nil {
		var derr *toml.DecodeError
		if errors.As(err, &derr) {
			row, col := derr.Position()
			return nil, fmt.Errorf("line %d column %d: %s", row, col, derr.Error())
		}
		return nil, err
	}
	c := &KataConfig{}
	for name := range raw.Hypervisor {
		c.Hypervisors = append(c.Hypervisors, name)
	}
	for name := range raw.Agent {
		c.Agents = append(c.Agents, name)
	}
	slices.Sort(c.Hypervisors)
	slices.Sort(c.Agents)
	if len(c.Hypervisors) == 0 {
		// Kata cannot start a sandbox without one; this is not its file.
		return nil, errors.New("no [hypervisor.<name>] table: not a Kata configuration")
	}
	if v := raw.Runtime.DisableGuestSeccomp; v != nil {
		c.DisableGuestSeccomp = *v
	}
	return c, nil
}

// LoadKataConfig reads the Kata configuration at path, or when path is
// empty the first that exists of Kata's default locations.
func LoadKataConfig(path string) (*KataConfig, error) {
	candidates := []string{path}
	if path == "" {
		candidates = kataConfigPaths()
	}
	for _, p := range candidates {
		data, err := os.ReadFile(p)
		if errors.Is(err, os.ErrNotExist) && path == "" {
			continue
		}
		if err != nil {
			return nil, fmt.Errorf("kata configuration: %w", err)
		}
		c, err := ParseKataConfig(data)
		if err != nil {
			return nil, fmt.Errorf("kata configuration %s: %w", p, err)
		}
		c.Path = p
		return c, nil
	}
	return nil, fmt.Errorf("kata configuration: none of %v exists; set shim.config_path: %w",
		candidates, os.ErrNotExist)
}

// seccompMissing says why Kata cannot enforce a seccomp filter, or "".
func (k *KataConfig) seccompMissing() string {
	if !k.DisableGuestSeccomp {
		return ""
	}
	return fmt.Sprintf("disable_guest_seccomp = true in [runtime] of %s: Kata drops linux.seccomp "+
		"before the guest agent sees it (set it to false)", k.Path)
}

// checkKataBundle refuses a bundle whose annotations would make Kata read
// another configuration or drop the seccomp filter that the enforced spec
// carries: the floor would be gone after Palisade had checked it.
func checkKataBundle(bundle string, k *KataConfig) error {
	data, err := os.ReadFile(filepath.Join(bundle, "config.json"))
	if err != nil {
		return fmt.Errorf("read OCI spec: %w", err)
	}
	var spec specs.Spec
	if err := json.Unmarshal(data, &spec); err != nil {
		return fmt.Errorf("decode OCI spec: %w: %w", err, errdefs.ErrInvalidArgument)
	}
	return checkKataAnnotations(&spec, k)
}

func checkKataAnnotations(spec *specs.Spec, k *KataConfig) error {
	if p, ok := spec.Annotations[kataConfigPathAnnotation]; ok && filepath.Clean(p) != filepath.Clean(k.Path) {
		return fmt.Errorf("annotation %s=%q would make Kata read another configuration than the handler's %s: %w",
			kataConfigPathAnnotation, p, k.Path, errdefs.ErrPermissionDenied)
	}
	v, ok := spec.Annotations[kataNoSeccompAnnotation]
	if !ok || spec.Linux == nil || spec.Linux.Seccomp == nil {
		return nil
	}
	if off, err := strconv.ParseBool(v); err != nil || off {
		return fmt.Errorf("annotation %s=%q would make Kata drop the container's seccomp filter "+
			"(disable_guest_seccomp): %w", kataNoSeccompAnnotation, v, errdefs.ErrPermissionDenied)
	}
	return nil
}
