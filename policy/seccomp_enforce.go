package policy

import (
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"

	"github.com/opencontainers/runtime-spec/specs-go"
)

// seccompControl computes the enforced profile for request req (nil when
// absent) against the floor resolved for the container's bounding set
// (after the capability clamp), and the control record. It does not change
// req.
func (f *Floor) seccompControl(req *specs.LinuxSeccomp, bounding capSet, native string, kv kernelVersion, s Support) (*specs.LinuxSeccomp, Control, error) {
	c := Control{Name: ControlSeccomp, EnforcedBy: s.SeccompEnforcer, Requested: "absent"}
	absent := req == nil || req.DefaultAction == "" && len(req.Syscalls) == 0
	if f.seccomp == nil {
		if !absent {
			c.Requested = "profile: " + summaryOCI(req)
		}
		c.Effective = "as requested (handler has no seccomp floor)"
		if !absent && s.SeccompEnforcer == "" {
			c.NotEnforced = "the request's own profile: " + orUnknown(s.SeccompMissing)
		}
		return req, c, nil
	}
	floorName := f.cfg.Seccomp
	complain := f.cfg.mode() == ModeComplain
	if complain {
		floorName += " (complain: denials logged)"
	}
	cf := f.compiled
	if cf == nil || cf.native != native {
		var err error
		if cf, err = compileFloor(f.seccomp, native, complain); err != nil {
			return nil, c, err
		}
	}
	fm, fx := cf.view(kv, bounding)
	rm := unconfined()
	var err error
	if !absent {
		if err := validateRequest(req); err != nil {
			return nil, c, fmt.Errorf("%w: %w", ErrInvalid, err)
		}
		if rm, err = buildModel(req, "linux.seccomp.", fm.index); err != nil {
			return nil, c, fmt.Errorf("%w: %w", ErrInvalid, err)
		}
		c.Requested = "profile: " + rm.summary()
		if rm.isUnconfined() {
			c.Requested = "unconfined: " + rm.summary()
			rm, absent = unconfined(), true
		}
	}
	out, err := mergeModels(fm, fx, rm, !absent)
	if err != nil {
		return nil, c, fmt.Errorf("%w: %w", ErrInvalid, err)
	}
	c.Effective = "floor " + floorName + " ∩ request: " + out.summary()
	if absent {
		c.Effective = "floor " + floorName + ": " + out.summary()
		c.Changed = []string{"linux.seccomp: handler floor " + floorName + " applied (request had none)"}
	} else {
		c.Changed = append(diffHead(rm, out), out.changed...)
	}
	for _, n := range out.approx {
		c.Changed = append(c.Changed, "linux.seccomp: "+n+": "+approxNote)
	}
	return out.oci(), c, nil
}

// approxNote marks a syscall whose argument conditions were too large to
// write exactly; the property tests look for it.
const approxNote = "argument conditions too large to write exactly; made stricter than floor ∩ request"

func validateRequest(req *specs.LinuxSeccomp) error {
	errs := validateHead(req, "linux.seccomp.")
	if req.DefaultAction == "" {
		errs = append(errs, errors.New("linux.seccomp.defaultAction: required"))
	}
	for i := range req.Syscalls {
		errs = append(errs, validateSyscall(&req.Syscalls[i], func() string { return fmt.Sprintf("linux.seccomp.syscalls[%d]", i) })...)
	}
	return errors.Join(errs...)
}

// summary is a one-line description of a request for the decision record.
func (m *model) summary() string {
	return summarize(m.def, m.named, m.nrules, m.arches)
}

// summary is a one-line description of the enforced profile.
func (m *merged) summary() string {
	return summarize(m.head.def, len(m.calls), m.rules, m.head.arches)
}

func summarize(def action, syscalls, rules int, arches []specs.Arch) string {
	s := fmt.Sprintf("defaultAction %s, %d syscalls in %d rules", def, syscalls, rules)
	if len(arches) > 0 {
		s += fmt.Sprintf(", architectures %v", arches)
	}
	return s
}

// summaryOCI describes a profile the floor does not touch (and so does not
// validate).
func summaryOCI(p *specs.LinuxSeccomp) string {
	return fmt.Sprintf("defaultAction %s, %d rules", p.DefaultAction, len(p.Syscalls))
}

// diffHead lists what the merge changed in the profile-wide fields.
func diffHead(req *model, out *merged) []string {
	var ch []string
	h := &out.head
	if req.def != h.def {
		ch = append(ch, fmt.Sprintf("linux.seccomp.defaultAction: %s -> %s", req.def, h.def))
	}
	if !slices.Equal(req.arches, h.arches) {
		ch = append(ch, fmt.Sprintf("linux.seccomp.architectures: %v -> %v", req.arches, h.arches))
	}
	if !slices.Equal(req.flags, h.flags) {
		ch = append(ch, fmt.Sprintf("linux.seccomp.flags: %v -> %v", req.flags, h.flags))
	}
	return ch
}

// diffCall describes how syscall n changed from the request's rules rr
// (default rd) to the output's (default od), if it did.
func diffCall(n string, rr []rule, rd action, out []rule, od action) (string, bool) {
	if allUnconditional(rr) && allUnconditional(out) && maxAct(rr, rd) == maxAct(out, od) ||
		rd == od && sameRules(rr, out) {
		return "", false // the common cases, decided without building strings
	}
	a, b := describeCall(rr, rd), describeCall(out, od)
	if a == b {
		return "", false
	}
	return "linux.seccomp: " + n + ": " + a + " -> " + b, true
}

// sameRules reports whether a and b hold the same rules, in any order.
func sameRules(a, b []rule) bool {
	if len(a) != len(b) {
		return false
	}
	for _, x := range a {
		if !slices.ContainsFunc(b, func(y rule) bool { return x.act == y.act && slices.Equal(x.c, y.c) }) {
			return false
		}
	}
	return true
}

// describeCall describes what one syscall gets, e.g.
// "SCMP_ACT_ALLOW if a0==0x1, otherwise SCMP_ACT_ERRNO(1)".
func describeCall(rs []rule, def action) string {
	var parts []string
	for _, r := range rs {
		if len(r.c) == 0 {
			def = r.act // unconditional: nothing falls through to the default
			continue
		}
		p := r.act.String() + " if " + r.c.String()
		if !slices.Contains(parts, p) {
			parts = append(parts, p)
		}
	}
	if len(parts) == 0 {
		return def.String()
	}
	slices.Sort(parts)
	return strings.Join(parts, " | ") + ", otherwise " + def.String()
}

// String renders a cond for people, e.g. "a0==1 && a1&0xff==0x2".
func (c cond) String() string {
	var b []byte
	for i, x := range c {
		if i > 0 {
			b = append(b, " && "...)
		}
		b = append(b, 'a')
		b = strconv.AppendUint(b, uint64(x.idx), 10)
		switch x.op {
		case specs.OpMaskedEqual:
			b = append(b, "&0x"...)
			b = strconv.AppendUint(b, x.v, 16)
			b = append(b, "==0x"...)
			b = strconv.AppendUint(b, x.v2, 16)
			continue
		case specs.OpEqualTo:
			b = append(b, "=="...)
		case specs.OpNotEqual:
			b = append(b, "!="...)
		case specs.OpLessThan:
			b = append(b, '<')
		case specs.OpLessEqual:
			b = append(b, "<="...)
		case specs.OpGreaterThan:
			b = append(b, '>')
		case specs.OpGreaterEqual:
			b = append(b, ">="...)
		}
		b = append(b, "0x"...)
		b = strconv.AppendUint(b, x.v, 16)
	}
	return string(b)
}
