package policy

import (
	"fmt"
	"slices"
	"strings"

	"github.com/opencontainers/runtime-spec/specs-go"
)

// A specControl is one whole-spec part of the floor. It reads its part of
// the handler's Config (validated by Config.Validate, errors naming the
// key), looks at its part of the spec and returns its decision entry; the
// spec parts it changes it replaces in w.spec, never writing through to
// the request's own slices or structs, so that a later refusal leaves the
// request as it was.
type specControl interface {
	enforce(w *work) (Control, error)
}

// specControls is the order the whole-spec controls run in, written down
// once. Order matters only where one control's output is another's input:
// privileged restores the default confinement (masked paths, read-only
// sysfs) before mounts classifies what is left, and namespaces runs before
// sysctls, which asks whether the network namespace is the container's.
// The capability, no_new_privileges, seccomp and AppArmor controls run
// after these (capabilities before seccomp, which depends on the bounding
// set); in the decision record they keep their first four places.
func specControls() []specControl {
	return []specControl{
		privilegedControl{},
		namespacesControl{},
		devicesControl{},
		sysctlsControl{},
		resourcesControl{},
		mountsControl{},
		tokenControl{},
		imageControl{},
	}
}

// work is the spec as the controls have made it so far: a shallow copy of
// the request with its own Linux and Process structs, plus what every
// control needs to decide.
type work struct {
	spec  *specs.Spec
	cfg   *Config
	s     *Support
	apply bool // false in complain mode: record what would change, change nothing
	// images is the handler's image policy; nil when it has none.
	images *imagePolicy
	// hostNS lists the namespace types the container shares with the host,
	// filled by the namespaces control for those after it.
	hostNS []string
}

func newWork(spec *specs.Spec, cfg *Config, s *Support) *work {
	cp := *spec
	linux := specs.Linux{}
	if spec.Linux != nil {
		linux = *spec.Linux
	}
	cp.Linux = &linux
	proc := *spec.Process
	cp.Process = &proc
	w := &work{spec: &cp, cfg: cfg, s: s, apply: cfg.mode() == ModeEnforce}
	if id := spec.Annotations[CRISandboxAnnotation]; id != "" {
		sc := *s
		sc.Host.CRISandbox = id
		w.s = &sc
	}
	return w
}

// outcome collects what one control found: changes it can make (clamp)
// and requests nothing can clamp without changing their meaning (always
// refused).
type outcome struct {
	found   []string // "field: what is over the floor" for each finding a clamp fixes
	changed []string // "field: what is over the floor: fix", for the record
	hard    []string // "field: why" for each request that is always refused
}

// over records a finding the control clamps by fix (over_ceiling =
// "clamp") or refuses naming it (over_ceiling = "refuse").
func (o *outcome) over(fix, format string, a ...any) {
	what := fmt.Sprintf(format, a...)
	o.found = append(o.found, what)
	o.changed = append(o.changed, what+": "+fix)
}

func (o *outcome) refuse(format string, a ...any) {
	o.hard = append(o.hard, fmt.Sprintf(format, a...))
}

// finish turns an outcome into the control's record, or a refusal listing
// every finding. mode is the control's over-floor rule (clamp or refuse).
// It reports whether the control's changes are to be written.
func (o *outcome) finish(w *work, c *Control, mode string) (bool, error) {
	refuse := o.hard
	if mode == OverCeilingRefuse {
		refuse = append(slices.Clip(refuse), o.found...)
	}
	if len(refuse) > 0 && w.apply {
		return false, fmt.Errorf("%w: %s", ErrRefused, strings.Join(refuse, "; "))
	}
	if !w.apply {
		for _, ch := range refuse {
			c.Changed = append(c.Changed, "complain mode: would refuse: "+ch)
		}
		if mode != OverCeilingRefuse {
			for _, ch := range o.changed {
				c.Changed = append(c.Changed, "complain mode: would clamp "+ch)
			}
		}
		return false, nil
	}
	c.Changed = append(c.Changed, o.changed...)
	return len(o.changed) > 0, nil
}

// runSpecControls runs the whole-spec controls on a copy of spec. On
// success the caller writes w.spec back; on error spec is unchanged. A
// refusal does not stop the others: the error lists every field refused.
func runSpecControls(w *work) ([]Control, error) {
	var out []Control
	var refused []string
	for _, c := range specControls() {
		ctl, err := c.enforce(w)
		if err != nil {
			refused = append(refused, refusedFields(err))
			continue
		}
		if ctl.Name == "" { // a control with nothing configured to record
			continue
		}
		out = append(out, ctl)
	}
	if len(refused) > 0 {
		return nil, fmt.Errorf("%w: %s", ErrRefused, strings.Join(refused, "; "))
	}
	return out, nil
}

// refusedFields is the list of fields in a refusal, without the sentinel.
func refusedFields(err error) string {
	return strings.TrimPrefix(err.Error(), ErrRefused.Error()+": ")
}
