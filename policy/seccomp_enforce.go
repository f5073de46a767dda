package policy

import (
	"bytes"
	"errors"
	"fmt"
	"slices"
	"strconv"

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
	if complain && s.SeccompLogMissing != "" {
		return f.complainWithoutLog(req, bounding, native, kv, s, c)
	}
	if complain {
		floorName += " (complain: denials logged)"
	}
	cf := f.compiled
	cached := cf != nil && cf.native == native && f.cache != nil
	if !cached { // another architecture: tests only
		var err error
		if cf, err = compileFloor(f.seccomp, native, complain); err != nil {
			return nil, c, err
		}
	}
	var miss cacheMiss
	if cached {
		out, ctl, l, ok := f.cache.get(resultKey{kv: kv, bounding: bounding & cf.gatedCaps, families: s.SocketFamilies}, req)
		if ok {
			ctl.EnforcedBy = s.SeccompEnforcer
			return out, ctl, nil
		}
		miss = l
	}
	out, rm, absent, err := mergeRequest(cf, req, absent, kv, bounding, &c)
	if err != nil {
		return nil, c, err
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
	res := out.oci()
	// What the backend's kernel makes redundant goes before the cache,
	// whose key holds the backend's families.
	if note := foldSocketFamilies(res, s.SocketFamilies); note != "" {
		c.Changed = append(c.Changed, note)
		c.Effective += "; socket allowed for every address family the backend implements"
	}
	if cached {
		miss.put(res, c)
	}
	return res, c, nil
}

// mergeRequest merges request req into floor cf, as resolved for the
// kernel and bounding set. It records what was requested in c. absent
// comes back true when the request was absent or unconfined.
func mergeRequest(cf *compiledFloor, req *specs.LinuxSeccomp, absent bool, kv kernelVersion, bounding capSet, c *Control) (*merged, *model, bool, error) {
	fm, fx := cf.view(kv, bounding)
	rm := unconfined()
	if !absent {
		if err := validateRequest(req); err != nil {
			return nil, nil, false, fmt.Errorf("%w: %w", ErrInvalid, err)
		}
		var err error
		if rm, err = buildModel(req, "linux.seccomp.", fm); err != nil {
			return nil, nil, false, fmt.Errorf("%w: %w", ErrInvalid, err)
		}
		c.Requested = "profile: " + rm.summary()
		if rm.isUnconfined() {
			c.Requested = "unconfined: " + rm.summary()
			rm, absent = unconfined(), true
		}
	}
	out, err := mergeModels(fm, fx, rm, !absent)
	if err != nil {
		return nil, nil, false, fmt.Errorf("%w: %w", ErrInvalid, err)
	}
	return out, rm, absent, nil
}

// complainWithoutLog is complain mode on a backend whose seccomp cannot log
// (gVisor's sentry refuses SCMP_ACT_LOG, so a logging floor would stop every
// container from starting). The request runs as it is; the record lists
// what the floor would have changed, computed from the enforcing floor, and
// says that the denials are not logged at run time.
func (f *Floor) complainWithoutLog(req *specs.LinuxSeccomp, bounding capSet, native string, kv kernelVersion, s Support, c Control) (*specs.LinuxSeccomp, Control, error) {
	cf := f.strict
	if cf == nil || cf.native != native { // another architecture: tests only
		var err error
		if cf, err = compileFloor(f.seccomp, native, false); err != nil {
			return nil, c, err
		}
	}
	absent := req == nil || req.DefaultAction == "" && len(req.Syscalls) == 0
	out, rm, absent, err := mergeRequest(cf, req, absent, kv, bounding, &c)
	if err != nil {
		return nil, c, err
	}
	c.Effective = "as requested (complain mode): " + c.Requested
	const would = "complain mode: the floor would change "
	if absent {
		c.Changed = []string{would + "linux.seccomp: handler floor " + f.cfg.Seccomp + " (request had none): " + out.summary()}
	} else {
		for _, ch := range append(diffHead(rm, out), out.changed...) {
			c.Changed = append(c.Changed, would+ch)
		}
	}
	c.NotEnforced = "seccomp floor " + f.cfg.Seccomp + ": complain mode needs SCMP_ACT_LOG: " + s.SeccompLogMissing
	return req, c, nil
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
	return summarize(m.head.def, m.ncalls, m.rules, m.head.arches)
}

func summarize(def action, syscalls, rules int, arches []specs.Arch) string {
	// fmt would do, but this runs for every container that misses the cache.
	b := make([]byte, 0, 64+24*len(arches))
	b = append(b, "defaultAction "...)
	b = def.appendTo(b)
	b = append(b, ", "...)
	b = strconv.AppendInt(b, int64(syscalls), 10)
	b = append(b, " syscalls in "...)
	b = strconv.AppendInt(b, int64(rules), 10)
	b = append(b, " rules"...)
	if len(arches) > 0 {
		b = append(b, ", architectures ["...)
		for i, a := range arches {
			if i > 0 {
				b = append(b, ' ')
			}
			b = append(b, a...)
		}
		b = append(b, ']')
	}
	return string(b)
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

// describer builds the per-syscall lines of the decision record in
// buffers it keeps from one syscall to the next.
type describer struct {
	buf   []byte
	parts []byte
	ends  []int // end of each part in parts
	order []int // parts in string order
}

// diffCall describes how syscall n changed from the request's rules rr
// (default rd) to the output's (default od), if it did.
func (d *describer) diffCall(n string, rr []rule, rd action, out []rule, od action) (string, bool) {
	if allUnconditional(rr) && allUnconditional(out) && maxAct(rr, rd) == maxAct(out, od) ||
		rd == od && sameRules(rr, out) {
		return "", false // the common cases, decided without building strings
	}
	if d.buf == nil { // sized for socket's long list of allowed domains
		d.buf, d.parts, d.ends, d.order = make([]byte, 0, 2048), make([]byte, 0, 1024), make([]int, 0, 64), make([]int, 0, 64)
	}
	b := append(d.buf[:0], "linux.seccomp: "...)
	b = append(b, n...)
	b = append(b, ": "...)
	from := len(b)
	b = d.appendCall(b, rr, rd)
	to := len(b)
	b = append(b, " -> "...)
	b = d.appendCall(b, out, od)
	d.buf = b
	if string(b[from:to]) == string(b[to+len(" -> "):]) { // no allocation
		return "", false
	}
	return string(b), true
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

// appendCall describes what one syscall gets, e.g.
// "SCMP_ACT_ALLOW if a0==0x1, otherwise SCMP_ACT_ERRNO(1)": the distinct
// conditional rules in string order, then what every other call gets.
func (d *describer) appendCall(b []byte, rs []rule, def action) []byte {
	d.parts, d.ends = d.parts[:0], d.ends[:0]
	for _, r := range rs {
		if len(r.c) == 0 {
			def = r.act // unconditional: nothing falls through to the default
			continue
		}
		d.parts = r.act.appendTo(d.parts)
		d.parts = append(d.parts, " if "...)
		d.parts = r.c.appendTo(d.parts)
		d.ends = append(d.ends, len(d.parts))
	}
	if len(d.ends) == 0 {
		return def.appendTo(b)
	}
	part := func(i int) []byte {
		start := 0
		if i > 0 {
			start = d.ends[i-1]
		}
		return d.parts[start:d.ends[i]]
	}
	order := d.order[:0]
	for i := range d.ends {
		order = append(order, i)
	}
	d.order = order
	slices.SortFunc(order, func(x, y int) int { return bytes.Compare(part(x), part(y)) })
	for i, k := range order {
		if i > 0 && bytes.Equal(part(k), part(order[i-1])) {
			continue
		}
		if i > 0 {
			b = append(b, " | "...)
		}
		b = append(b, part(k)...)
	}
	b = append(b, ", otherwise "...)
	return def.appendTo(b)
}

// String renders a cond for people, e.g. "a0==1 && a1&0xff==0x2".
func (c cond) String() string { return string(c.appendTo(nil)) }

func (c cond) appendTo(b []byte) []byte {
	for i, x := range c {
		if i > 0 {
			b = append(b, " && "...)
		}
		b = append(b, 'a')
		b = strconv.AppendUint(b, uint64(x.idx), 10)
		switch x.op {
		case opMaskedEQ:
			b = append(b, "&0x"...)
			b = strconv.AppendUint(b, x.v, 16)
			b = append(b, "==0x"...)
			b = strconv.AppendUint(b, x.v2, 16)
			continue
		case opEQ:
			b = append(b, "=="...)
		case opNE:
			b = append(b, "!="...)
		case opLT:
			b = append(b, '<')
		case opLE:
			b = append(b, "<="...)
		case opGT:
			b = append(b, '>')
		case opGE:
			b = append(b, ">="...)
		}
		b = append(b, "0x"...)
		b = strconv.AppendUint(b, x.v, 16)
	}
	return b
}
