package policy

import (
	"errors"
	"fmt"
	"path/filepath"
	"slices"
	"strings"
	"unicode"
)

// Config is the [handlers.<name>.policy] table of Palisade's config.toml.
// The shim decodes it with go-toml v2 and DisallowUnknownFields, so a
// misspelt key is an error rather than a silently missing control.
type Config struct {
	Mode            string         `toml:"mode"`         // "enforce" (default when empty) | "complain"
	Seccomp         string         `toml:"seccomp"`      // "runtime-default" | "none" (default when empty) | absolute path to an OCI or Docker/moby seccomp JSON profile
	OverCeiling     string         `toml:"over_ceiling"` // "clamp" (default) | "refuse"
	NoNewPrivileges bool           `toml:"no_new_privileges"`
	Capabilities    CapsConfig     `toml:"capabilities"`
	AppArmor        AppArmorConfig `toml:"apparmor"`

	// The whole-spec controls (see floor.go for their order).

	// Privileged is what happens to a request that undoes the default
	// confinement (containerd's WithPrivileged, CRI privileged): "clamp"
	// (default) restores it, "refuse" fails Create listing each field.
	Privileged string `toml:"privileged"`
	// HostNamespaces may be shared with the host: a subset of "network",
	// "pid", "ipc", "uts". Default none. The mount namespace never is.
	HostNamespaces []string `toml:"host_namespaces"`
	// HostPaths are the bind-mount source prefixes allowed beyond kubelet's
	// and containerd's own (path-boundary aware). Default none.
	HostPaths []string `toml:"host_paths"`
	// HostPathsReadOnly (default true) forces allowed host paths read-only.
	HostPathsReadOnly *bool `toml:"host_paths_read_only"`
	// HostPropagation allows rshared/shared/rslave/slave propagation on host
	// paths (Kubernetes' Bidirectional and HostToContainer). Default false.
	HostPropagation bool `toml:"host_propagation"`
	// ServiceAccountToken: "allow" (default), "strip" or "refuse".
	ServiceAccountToken string `toml:"service_account_token"`
	// Devices are host device paths allowed beyond the OCI defaults.
	Devices []string `toml:"devices"`
	// Sysctls allowed; nil (key absent) means Kubernetes' safe set.
	Sysctls []string `toml:"sysctls"`
	// OOMScoreAdjMin is the lowest process.oomScoreAdj a container may
	// have. nil means DefaultOOMScoreAdjMin.
	OOMScoreAdjMin *int `toml:"oom_score_adj_min"`
	// Images is which images the handler runs (see images.go); empty: any.
	Images ImagesConfig `toml:"images"`
}

// DefaultOOMScoreAdjMin is kubelet's value for a pod's pause container
// (Guaranteed pods' containers get -997): a container may be as protected
// from the OOM killer as kubelet makes pods, never as protected as kubelet
// and containerd themselves (-999) or unkillable (-1000).
const DefaultOOMScoreAdjMin = -998

// CapsConfig bounds the five capability sets of every process.
type CapsConfig struct {
	// Ceiling nil (key absent) means no ceiling: the request passes. An empty
	// list is an empty ceiling: every capability is removed. Names may carry
	// the CAP_ prefix or not, in any case.
	Ceiling []string `toml:"ceiling"`
	// Drop is always removed, whatever the ceiling says.
	Drop []string `toml:"drop"`
}

// AppArmorConfig names the host profile for the backend's host processes.
type AppArmorConfig struct {
	Profile  string `toml:"profile"`  // profile name to attach to host-side backend processes; "" = none
	File     string `toml:"file"`     // optional profile source the edge loads with apparmor_parser -r
	Required bool   `toml:"required"` // true: fail closed when the host cannot enforce it
}

// Values of Config.Mode, Config.Seccomp and Config.OverCeiling.
const (
	ModeEnforce  = "enforce"
	ModeComplain = "complain"

	SeccompNone           = "none"
	SeccompRuntimeDefault = "runtime-default"

	OverCeilingClamp  = "clamp"
	OverCeilingRefuse = "refuse"

	PrivilegedClamp  = OverCeilingClamp
	PrivilegedRefuse = OverCeilingRefuse

	TokenAllow  = "allow"
	TokenStrip  = "strip"
	TokenRefuse = "refuse"
)

// maxProfileNameLen bounds AppArmor profile names. The kernel accepts longer
// ones, but a name this long in a handler table is a mistake, and the name
// is written to /proc/<pid>/attr/exec by the edge.
const maxProfileNameLen = 255

// Validate checks every field. Each error names the field, e.g.
// `policy.capabilities.ceiling[2]: unknown capability "CAP_FOO"`; all
// problems are reported, joined, not only the first.
func (c Config) Validate() error {
	var errs []error
	switch c.Mode {
	case "", ModeEnforce, ModeComplain:
	default:
		errs = append(errs, fmt.Errorf("policy.mode: %q is not %q or %q", c.Mode, ModeEnforce, ModeComplain))
	}
	switch c.Seccomp {
	case "", SeccompNone, SeccompRuntimeDefault:
	default:
		if err := checkPath(c.Seccomp); err != nil {
			errs = append(errs, fmt.Errorf("policy.seccomp: %q is not %q, %q or an absolute profile path: %w",
				c.Seccomp, SeccompNone, SeccompRuntimeDefault, err))
		}
	}
	switch c.OverCeiling {
	case "", OverCeilingClamp, OverCeilingRefuse:
	default:
		errs = append(errs, fmt.Errorf("policy.over_ceiling: %q is not %q or %q", c.OverCeiling, OverCeilingClamp, OverCeilingRefuse))
	}
	if _, err := parseCapList("policy.capabilities.ceiling", c.Capabilities.Ceiling); err != nil {
		errs = append(errs, err)
	}
	if _, err := parseCapList("policy.capabilities.drop", c.Capabilities.Drop); err != nil {
		errs = append(errs, err)
	}
	errs = append(errs, c.AppArmor.validate()...)
	errs = append(errs, c.validateSpecControls()...)
	if _, err := newImagePolicy(c.Images); err != nil {
		errs = append(errs, err)
	}
	return errors.Join(errs...)
}

func (a AppArmorConfig) validate() []error {
	var errs []error
	if a.Profile != "" {
		if err := checkProfileName(a.Profile); err != nil {
			errs = append(errs, fmt.Errorf("policy.apparmor.profile: %w", err))
		}
	}
	if a.File != "" {
		if err := checkPath(a.File); err != nil {
			errs = append(errs, fmt.Errorf("policy.apparmor.file: %w", err))
		}
		if a.Profile == "" {
			errs = append(errs, errors.New("policy.apparmor.file: set without policy.apparmor.profile (the name the file defines)"))
		}
	}
	if a.Required && a.Profile == "" {
		errs = append(errs, errors.New("policy.apparmor.required: true without policy.apparmor.profile"))
	}
	return errs
}

// checkProfileName rejects names that could escape the attr/exec write or
// the apparmor_parser command line, or that do not confine at all.
func checkProfileName(n string) error {
	switch {
	case len(n) > maxProfileNameLen:
		return fmt.Errorf("profile name is %d bytes, more than %d", len(n), maxProfileNameLen)
	case n == "unconfined":
		return errors.New(`"unconfined" is not a confining profile`)
	case strings.Contains(n, ".."):
		return fmt.Errorf("profile name %q contains \"..\"", n)
	case strings.ContainsRune(n, '/'):
		return fmt.Errorf("profile name %q contains '/'", n)
	case strings.HasPrefix(n, "-"):
		return fmt.Errorf("profile name %q starts with '-'", n)
	}
	for _, r := range n {
		if unicode.IsControl(r) || unicode.IsSpace(r) || r == unicode.ReplacementChar {
			return fmt.Errorf("profile name %q contains a space, control or invalid character", n)
		}
	}
	return nil
}

// checkPath accepts clean absolute paths only: a relative path would be
// resolved against whatever directory the shim happens to run in.
func checkPath(p string) error {
	if !filepath.IsAbs(p) {
		return errors.New("not an absolute path")
	}
	if filepath.Clean(p) != p {
		return fmt.Errorf("path is not clean (want %q)", filepath.Clean(p))
	}
	for _, r := range p {
		if unicode.IsControl(r) {
			return errors.New("path contains a control character")
		}
	}
	return nil
}

// mode, seccompMode and overCeiling apply the documented defaults.
func (c Config) mode() string {
	if c.Mode == "" {
		return ModeEnforce
	}
	return c.Mode
}

func (c Config) seccompMode() string {
	if c.Seccomp == "" {
		return SeccompNone
	}
	return c.Seccomp
}

func (c Config) overCeiling() string {
	if c.OverCeiling == "" {
		return OverCeilingClamp
	}
	return c.OverCeiling
}

func (c Config) privileged() string {
	if c.Privileged == "" {
		return PrivilegedClamp
	}
	return c.Privileged
}

func (c Config) serviceAccountToken() string {
	if c.ServiceAccountToken == "" {
		return TokenAllow
	}
	return c.ServiceAccountToken
}

func (c Config) oomScoreAdjMin() int {
	if c.OOMScoreAdjMin == nil {
		return DefaultOOMScoreAdjMin
	}
	return *c.OOMScoreAdjMin
}

func (c Config) hostPathsReadOnly() bool {
	return c.HostPathsReadOnly == nil || *c.HostPathsReadOnly
}

// validateSpecControls checks the keys of the whole-spec controls.
func (c Config) validateSpecControls() []error {
	var errs []error
	switch c.Privileged {
	case "", PrivilegedClamp, PrivilegedRefuse:
	default:
		errs = append(errs, fmt.Errorf("policy.privileged: %q is not %q or %q", c.Privileged, PrivilegedClamp, PrivilegedRefuse))
	}
	switch c.ServiceAccountToken {
	case "", TokenAllow, TokenStrip, TokenRefuse:
	default:
		errs = append(errs, fmt.Errorf("policy.service_account_token: %q is not %q, %q or %q",
			c.ServiceAccountToken, TokenAllow, TokenStrip, TokenRefuse))
	}
	for i, n := range c.HostNamespaces {
		if !slices.Contains(shareableNamespaces, n) {
			errs = append(errs, fmt.Errorf("policy.host_namespaces[%d]: %q is not one of %q", i, n, shareableNamespaces))
		}
	}
	for i, p := range c.HostPaths {
		if err := checkPath(p); err != nil {
			errs = append(errs, fmt.Errorf("policy.host_paths[%d]: %q: %w", i, p, err))
		} else if why := deniedHostPath(p, HostDirs{}); why != "" {
			errs = append(errs, fmt.Errorf("policy.host_paths[%d]: %q: %s", i, p, why))
		}
	}
	for i, p := range c.Devices {
		if err := checkPath(p); err != nil || !strings.HasPrefix(p, "/dev/") {
			errs = append(errs, fmt.Errorf("policy.devices[%d]: %q is not a clean absolute path under /dev/", i, p))
		}
	}
	if m := c.OOMScoreAdjMin; m != nil && (*m < -1000 || *m > 1000) {
		errs = append(errs, fmt.Errorf("policy.oom_score_adj_min: %d is not in -1000..1000", *m))
	}
	for i, n := range c.Sysctls {
		if err := checkSysctlName(n); err != nil {
			errs = append(errs, fmt.Errorf("policy.sysctls[%d]: %w", i, err))
		}
	}
	return errs
}
