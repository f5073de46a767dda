package policy

import (
	"errors"
	"fmt"
	"reflect"
	"runtime"
	"strconv"
	"strings"

	"github.com/opencontainers/runtime-spec/specs-go"
)

// Floor is a validated Config plus its loaded seccomp profile. It is safe
// for concurrent use. Everything but the result cache is immutable after
// NewFloor; the cache guards itself.
type Floor struct {
	cfg        Config
	hasCeiling bool // false: no ceiling (the request passes)
	ceiling    capSet
	drop       capSet
	seccomp    *template // nil when the handler has no seccomp floor
	compiled   *compiledFloor
	// strict is the floor without complain mode's log actions, in complain
	// mode only: what the record reports on a backend that cannot log.
	strict *compiledFloor
	cache  *resultCache // recent seccomp results; nil without a seccomp floor
	images *imagePolicy // nil without an image policy
}

// NewFloor validates cfg. seccompProfile is the raw JSON of the profile file
// when cfg.Seccomp is a path (the edge reads the file), else nil.
func NewFloor(cfg Config, seccompProfile []byte) (*Floor, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	f := &Floor{cfg: cfg, hasCeiling: cfg.Capabilities.Ceiling != nil}
	// Validate has checked the names; the errors cannot happen.
	f.ceiling, _ = parseCapList("policy.capabilities.ceiling", cfg.Capabilities.Ceiling)
	f.drop, _ = parseCapList("policy.capabilities.drop", cfg.Capabilities.Drop)
	f.images, _ = newImagePolicy(cfg.Images)
	switch sc := cfg.seccompMode(); sc {
	case SeccompNone, SeccompRuntimeDefault:
		if seccompProfile != nil {
			return nil, fmt.Errorf("policy.seccomp: profile contents given but seccomp is %q", sc)
		}
		if sc == SeccompRuntimeDefault {
			f.seccomp = runtimeDefaultTemplate()
		}
	default:
		if seccompProfile == nil {
			return nil, fmt.Errorf("policy.seccomp: profile %s: contents not given", sc)
		}
		t, err := parseTemplate(seccompProfile)
		if err != nil {
			return nil, fmt.Errorf("policy.seccomp: profile %s: %w", sc, err)
		}
		f.seccomp = t
	}
	if f.seccomp != nil {
		// Read the profile once for this machine's architecture; Enforce
		// then only selects the capability- and kernel-gated rules.
		c, err := compileFloor(f.seccomp, nativeArch(runtime.GOARCH), cfg.mode() == ModeComplain)
		if err != nil {
			return nil, fmt.Errorf("policy.seccomp: %w", err)
		}
		f.compiled = c
		if cfg.mode() == ModeComplain {
			if f.strict, err = compileFloor(f.seccomp, nativeArch(runtime.GOARCH), false); err != nil {
				return nil, fmt.Errorf("policy.seccomp: %w", err)
			}
		}
		f.cache = newResultCache()
	}
	return f, nil
}

// HasImagePolicy reports whether the handler judges images, so that the
// edge asks containerd about a container's image only then.
func (f *Floor) HasImagePolicy() bool { return f.images != nil }

// Config returns the floor's configuration.
func (f *Floor) Config() Config { return f.cfg }

// Support says what the backend and host can enforce. An empty enforcer
// string means the control cannot be enforced.
type Support struct {
	Backend            string // e.g. "runsc", "shim:containerd-shim-runc-v2"
	SeccompEnforcer    string // e.g. "gVisor sentry (runsc --oci-seccomp)", "host kernel"
	CapabilityEnforcer string
	NoNewPrivsEnforcer string
	AppArmorEnforcer   string // e.g. "host AppArmor (runsc sandbox and gofer)"; "" when the host has none
	AppArmorMissing    string // why not, naming the host check
	SeccompMissing     string // why not (e.g. "kata disable_guest_seccomp = true")
	// SeccompLogMissing says why the enforcer has no SCMP_ACT_LOG ("" when
	// it has). Complain mode then keeps the request as it is and records
	// what the floor would have changed instead of logging it.
	SeccompLogMissing string
	// KernelVersion ("major.minor") of the kernel that evaluates the seccomp
	// filter, for profile rules gated on minKernel (runtime-default allows
	// ptrace and process_vm_* from 4.8 on). "" = unknown: such a rule is kept
	// only when it is stricter than the profile's default.
	KernelVersion string
	// SocketFamilies has bit f set for each address family f that the
	// kernel behind the backend implements, when that is a known few (0:
	// the host's kernel, or unknown). The floor's socket rules are then
	// folded (see foldSocketFamilies).
	SocketFamilies uint64

	// Host is where kubelet and containerd keep their files on this host,
	// for the mount classification.
	Host HostDirs `json:",omitempty"`
	// NamespacePaths are the host facts about the spec's namespace paths:
	// the edge stats each path and compares it with its own namespaces
	// (the shim runs in containerd's). A path the edge has not resolved is
	// refused: joining a namespace nobody has looked at fails closed.
	NamespacePaths map[string]NamespacePath `json:",omitempty"`
	// IsolatedNamespaces are the namespace types the backend keeps its own
	// whatever the spec says (gVisor's sentry implements pid, ipc, uts and
	// mount namespaces itself), so sharing the host's is not a host
	// namespace for the container.
	IsolatedNamespaces []string `json:",omitempty"`
	// ResolvedSources maps a bind-mount source to the path it resolves to
	// on the host when that differs (a symlink on the way): the edge
	// resolves it, and a host path is checked by both names.
	ResolvedSources map[string]string `json:",omitempty"`
	// Image is what the edge learnt from containerd about the container's
	// image; nil when it did not ask (the handler has no image policy).
	Image *ImageFacts `json:",omitempty"`
	// Network describes the container's network stack when the backend has
	// its own (e.g. "gVisor netstack (runsc --network=sandbox)").
	Network string `json:",omitempty"`
}

// HostDirs are the directories of kubelet and containerd on this host.
type HostDirs struct {
	KubeletRoot     string // kubelet --root-dir, e.g. /var/lib/kubelet
	ContainerdRoot  string // containerd's root, e.g. /var/lib/containerd
	ContainerdState string // containerd's state, e.g. /run/containerd; "" when unknown
	// CRISandbox is the pod's sandbox id, from the spec's CRI annotation
	// (policy fills it): that sandbox's hostname, resolv.conf and hosts
	// are containerd's files wherever containerd's root is, since no pod
	// spec can name a sandbox id before CRI makes it.
	CRISandbox string `json:",omitempty"`
}

// NamespacePath is what the edge found about one namespace path.
type NamespacePath struct {
	Host bool   `json:"host"`          // the path is the host's namespace of its type
	Err  string `json:"err,omitempty"` // the path could not be resolved
}

// Enforce applies the floor to spec in place (spec.Process and
// spec.Linux.Seccomp) and returns the decision record. On error the spec is
// unchanged. Errors wrap ErrInvalid, ErrRefused or ErrNotEnforceable.
func Enforce(spec *specs.Spec, f *Floor, s Support) (*Decision, error) {
	return enforce(spec, f, s, nativeArch(runtime.GOARCH))
}

// enforce is Enforce for a given libseccomp architecture name, so golden
// files do not depend on the machine that runs the tests.
func enforce(spec *specs.Spec, f *Floor, s Support, native string) (*Decision, error) {
	if spec == nil || spec.Process == nil {
		return nil, fmt.Errorf("%w: process: missing", ErrInvalid)
	}
	if f == nil {
		return nil, errors.New("policy: nil floor")
	}
	kv, err := parseKernelVersion(s.KernelVersion)
	if err != nil {
		return nil, err
	}
	if err := f.enforceable(s, true); err != nil {
		return nil, err
	}
	// The whole-spec controls work on a copy (see floor.go for their
	// order); the process controls then see what they left.
	// A refusal waits until the process controls have looked at the
	// request: a malformed request (ErrInvalid) is reported as that.
	w := newWork(spec, &f.cfg, &s)
	w.images = f.images
	specCtls, refused := runSpecControls(w)
	// The seccomp control comes first in the record; slot 0 waits for it.
	d := &Decision{Backend: s.Backend, Mode: f.cfg.mode(), Controls: make([]Control, 1, 4+len(specCtls))}
	caps, nnp, err := f.processControls(w.spec.Process, s, &d.Controls, !criSandbox(spec))
	if err != nil {
		if refused != nil && errors.Is(err, ErrRefused) {
			return nil, fmt.Errorf("%w; %s", refused, refusedFields(err))
		}
		return nil, err
	}
	sc, ctl, err := f.seccompControl(w.spec.Linux.Seccomp, caps.bounding, native, kv, s)
	if err != nil {
		return nil, err
	}
	if refused != nil {
		return nil, refused
	}
	d.Controls[0] = ctl
	d.Controls = append(d.Controls, f.appArmorControl(w.spec.Process, s, &d.AppArmorHostProfile))
	d.Controls = append(d.Controls, specCtls...)

	// Nothing failed: write the results back.
	out := w.spec
	if out.Process.Capabilities != nil { // caps.write writes the sets in place
		c := *out.Process.Capabilities
		out.Process.Capabilities = &c
	}
	caps.write(out.Process)
	out.Process.NoNewPrivileges = nnp
	if f.seccomp != nil {
		out.Linux.Seccomp = sc
	}
	if spec.Linux == nil && reflect.ValueOf(*out.Linux).IsZero() {
		out.Linux = nil
	}
	*spec = *out
	return d, nil
}

// EnforceProcess applies the floor to an exec process spec: capabilities
// and no_new_privileges. Seccomp and AppArmor are container-wide and are
// recorded as inherited.
func EnforceProcess(p *specs.Process, f *Floor, s Support) (*Decision, error) {
	if p == nil {
		return nil, fmt.Errorf("%w: process: missing", ErrInvalid)
	}
	if f == nil {
		return nil, errors.New("policy: nil floor")
	}
	if err := f.enforceable(s, false); err != nil {
		return nil, err
	}
	d := &Decision{Backend: s.Backend, Mode: f.cfg.mode()}
	caps, nnp, err := f.processControls(p, s, &d.Controls, true)
	if err != nil {
		return nil, err
	}
	// An exec's own rlimits and oomScoreAdj: the resources control on the
	// process alone (the container's cgroup is not the exec's to choose).
	w := newWork(&specs.Spec{Process: p}, &f.cfg, &s)
	res, err := resourcesControl{}.enforce(w)
	if err != nil {
		return nil, err
	}
	seccompFloor := "none"
	if f.seccomp != nil {
		seccompFloor = f.cfg.Seccomp
	}
	d.Controls = append([]Control{{
		Name:       ControlSeccomp,
		Requested:  "inherited from the container",
		Effective:  "inherited from the container (floor " + seccompFloor + ")",
		EnforcedBy: s.SeccompEnforcer,
	}}, d.Controls...)
	aa := f.appArmorControl(p, s, &d.AppArmorHostProfile)
	aa.Effective = "inherited from the container; " + aa.Effective
	d.Controls = append(d.Controls, aa, res)
	caps.write(p)
	p.NoNewPrivileges = nnp
	p.OOMScoreAdj = w.spec.Process.OOMScoreAdj
	return d, nil
}

// enforceable fails closed on every configured control that nobody can
// enforce. Seccomp is checked for containers only: an exec inherits it.
func (f *Floor) enforceable(s Support, container bool) error {
	var errs []string
	if container && f.seccomp != nil && s.SeccompEnforcer == "" {
		errs = append(errs, fmt.Sprintf("seccomp floor %q: backend %q cannot enforce seccomp: %s",
			f.cfg.Seccomp, s.Backend, orUnknown(s.SeccompMissing)))
	}
	if (f.hasCeiling || f.drop != 0) && s.CapabilityEnforcer == "" {
		errs = append(errs, fmt.Sprintf("capabilities: backend %q cannot enforce capability sets", s.Backend))
	}
	if f.cfg.NoNewPrivileges && s.NoNewPrivsEnforcer == "" {
		errs = append(errs, fmt.Sprintf("no_new_privileges: backend %q cannot enforce no_new_privileges", s.Backend))
	}
	if a := f.cfg.AppArmor; a.Profile != "" && a.Required && s.AppArmorEnforcer == "" {
		errs = append(errs, fmt.Sprintf("apparmor profile %q is required but the host cannot enforce it: %s",
			a.Profile, orUnknown(s.AppArmorMissing)))
	}
	if len(errs) > 0 {
		return fmt.Errorf("%w: %s", ErrNotEnforceable, strings.Join(errs, "; "))
	}
	return nil
}

func orUnknown(why string) string {
	if why == "" {
		return "no reason reported"
	}
	return why
}

// processControls computes the capabilities and no_new_privileges controls
// of p without changing it, appending their records to ctls. mayRefuse is
// false for a CRI pod's sandbox (pause) container, whose capabilities are
// containerd's default set, not anything the pod asked for: refusing them
// would refuse every pod on a handler whose ceiling is below that set, so
// they are clamped (the pause process needs none).
func (f *Floor) processControls(p *specs.Process, s Support, ctls *[]Control, mayRefuse bool) (*capsOutcome, bool, error) {
	apply := f.cfg.mode() == ModeEnforce
	caps, err := clampCaps(p.Capabilities, f, apply)
	if err != nil {
		return nil, false, err
	}
	refuse := f.cfg.overCeiling() == OverCeilingRefuse && mayRefuse
	if len(caps.exceeded) > 0 && refuse && apply {
		return nil, false, fmt.Errorf("%w: %s", ErrRefused, strings.Join(caps.exceeded, "; "))
	}
	c := Control{Name: ControlCapabilities, Requested: caps.requested, Effective: caps.effective,
		EnforcedBy: s.CapabilityEnforcer, Changed: caps.changed}
	if len(caps.exceeded) > 0 && !mayRefuse && f.cfg.overCeiling() == OverCeilingRefuse {
		c.Changed = append(c.Changed, "CRI sandbox (pause) container: containerd's default capabilities clamped, not refused")
	}
	if len(caps.exceeded) > 0 && refuse { // complain mode
		c.Changed = append(c.Changed, "complain mode: would refuse: "+strings.Join(caps.exceeded, "; "))
	}
	if !f.hasCeiling && f.drop == 0 {
		c.Effective = "as requested (handler sets no ceiling or drop list): " + c.Effective
	}
	nnp := p.NoNewPrivileges
	n := Control{Name: ControlNoNewPrivileges, Requested: strconv.FormatBool(p.NoNewPrivileges), EnforcedBy: s.NoNewPrivsEnforcer}
	if f.cfg.NoNewPrivileges && !nnp {
		if apply {
			nnp = true
			n.Changed = []string{"process.noNewPrivileges: false -> true"}
		} else {
			n.Changed = []string{"process.noNewPrivileges: would set true"}
		}
	}
	n.Effective = strconv.FormatBool(nnp)
	*ctls = append(*ctls, c, n)
	return caps, nnp, nil
}

// appArmorControl records the handler's host profile. A required profile
// the host cannot enforce has already failed in enforceable.
func (f *Floor) appArmorControl(p *specs.Process, s Support, host *string) Control {
	a := f.cfg.AppArmor
	c := Control{Name: ControlAppArmor, Requested: p.ApparmorProfile}
	switch {
	case a.Profile == "":
		c.Effective = "no host profile (handler names none)"
	case s.AppArmorEnforcer == "":
		c.Effective = "no host profile"
		c.NotEnforced = fmt.Sprintf("optional host profile %q not attached: %s", a.Profile, orUnknown(s.AppArmorMissing))
	default:
		c.Effective = fmt.Sprintf("host profile %q on the backend's host processes", a.Profile)
		c.EnforcedBy = s.AppArmorEnforcer
		*host = a.Profile
	}
	return c
}

// criSandbox reports whether spec is a CRI pod's sandbox (pause) container,
// by the annotation containerd's CRI sets on it.
func criSandbox(spec *specs.Spec) bool {
	return spec.Annotations["io.kubernetes.cri.container-type"] == "sandbox"
}
