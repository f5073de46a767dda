package policy

import (
	"errors"
	"fmt"
	"slices"

	"github.com/opencontainers/runtime-spec/specs-go"
)

// errNoCommonArch is returned when floor and request list architectures
// with nothing in common. An empty list would mean "native only" to runc,
// which is more than either side allowed, so it is an error instead.
var errNoCommonArch = errors.New("no architecture in common with the handler floor")

// merged is the result of a merge: the output rules of every syscall name
// of the floor or the request, kept flat for rendering (see oci).
type merged struct {
	head   model // the profile-wide fields; head.calls is unused
	ncalls int   // syscalls that have output rules
	rules  int   // number of output rules
	// The output rules without conditions, as an index into groups (their
	// distinct actions): those of floor names in uncond, in name order, the
	// name an index into fnames (the floor's names); and those of names only
	// the request has in xuncond, also in name order, into xnames.
	uncond, xuncond []uncondRule
	fnames, xnames  []string
	groups          []action
	cond            []condRule // the output rules with conditions
	approx          []string   // names made stricter than wanted (see maxPieces)
	diff            bool       // record per-syscall changes in changed
	changed         []string
	describer
}

// uncondRule is small because there is one per syscall of the output.
type uncondRule struct {
	name, group int32
}

type condRule struct {
	name string
	act  action
	c    cond
}

// namedRules is a syscall's gated floor rules that apply to a container;
// the syscall is at position at of the floor's names.
type namedRules struct {
	at    int
	rules []rule
}

// mergeModels returns the profile that allows a call only when both the
// floor and the request r allow it. The floor is f (names sorted, rules in
// byName) plus the gated rules fx (in the order of f.names)
// that apply to this container; r must be read against f.index.
//
// With diff set, the per-syscall changes from the request are recorded.
func mergeModels(f *model, fx []namedRules, r *model, diff bool) (*merged, error) {
	m := &merged{diff: diff, head: model{
		def:      stricter(f.def, r.def),
		listener: r.listener,
		metadata: r.metadata,
	}}
	if m.head.listener == "" {
		m.head.listener, m.head.metadata = f.listener, f.metadata
	}
	arches, err := intersectArches(f.arches, r.arches)
	if err != nil {
		return nil, err
	}
	m.head.arches = arches
	m.head.flags = mergeFlags(f.flags, r.flags)
	m.fnames, m.uncond = f.names, make([]uncondRule, 0, len(f.names))
	m.cond = make([]condRule, 0, f.ncond+r.ncond)
	for i, n := range f.names {
		fr := f.rulesOf(i)
		if len(fx) > 0 && fx[0].at == i {
			fr = append(slices.Clip(fr), fx[0].rules...)
			fx = fx[1:]
		}
		var rr []rule
		if r.byName != nil { // read against f.index: the same positions
			rr = r.rulesOf(i)
		}
		m.add(i, n, fr, f.def, rr, r.def)
	}
	// Names the floor does not know are rare, and merged in name order.
	if len(r.calls) > 0 {
		extra := make([]string, 0, len(r.calls))
		for n := range r.calls {
			extra = append(extra, n)
		}
		slices.Sort(extra)
		floorRules := m.uncond
		m.uncond, m.xnames = nil, extra
		for i, n := range extra {
			m.add(i, n, nil, f.def, r.calls[n], r.def)
		}
		m.uncond, m.xuncond = floorRules, m.uncond
		slices.Sort(m.approx)
		slices.Sort(m.changed) // "linux.seccomp: <name>: ..." sorts by name
	}
	return m, nil
}

// add merges the floor's rules fr for syscall n (floor default fd) with
// the request's rules rr (request default rd). n is at position pos of
// m.fnames or m.xnames.
func (m *merged) add(pos int, n string, fr []rule, fd action, rr []rule, rd action) {
	if allUnconditional(fr) && allUnconditional(rr) {
		// Nearly every syscall: no conditions on either side, and the
		// request's action is the only thing the record compares.
		ra := maxAct(rr, rd)
		o := stricter(maxAct(fr, fd), ra)
		if o != m.head.def {
			m.ncalls++
			m.rules++
			m.uncond = append(m.uncond, uncondRule{name: int32(pos), group: m.group(o)})
		}
		if m.diff && ra != o {
			m.diffCall(n, rr, rd, mergeUnconditional(fr, o, rr, m.head.def), m.head.def)
		}
		return
	}
	out, approx := mergeCall(fr, fd, rr, rd, m.head.def)
	if len(out) > 0 {
		m.ncalls++
		m.rules += len(out)
		for _, r := range out {
			if len(r.c) > 0 {
				m.cond = append(m.cond, condRule{name: n, act: r.act, c: r.c})
			} else {
				m.uncond = append(m.uncond, uncondRule{name: int32(pos), group: m.group(r.act)})
			}
		}
	}
	if m.diff {
		m.diffCall(n, rr, rd, out, m.head.def)
	}
	if approx {
		m.approx = append(m.approx, n)
	}
}

// group returns the index of action a in m.groups, adding it if new. A
// profile has a handful of distinct actions: a scan beats a map.
func (m *merged) group(a action) int32 {
	for i, g := range m.groups {
		if g.r == a.r && g == a {
			return int32(i)
		}
	}
	m.groups = append(m.groups, a)
	return int32(len(m.groups) - 1)
}

// diffCall records how syscall n changed, if it did.
func (m *merged) diffCall(n string, rr []rule, rd action, out []rule, od action) {
	if ch, ok := m.describer.diffCall(n, rr, rd, out, od); ok {
		m.changed = append(m.changed, ch)
	}
}

// intersectArches intersects two architecture lists, an empty list meaning
// unspecified (take the other side). The order of a is kept.
func intersectArches(a, b []specs.Arch) ([]specs.Arch, error) {
	switch {
	case len(a) == 0:
		return slices.Clone(b), nil
	case len(b) == 0:
		return slices.Clone(a), nil
	}
	var out []specs.Arch
	for _, x := range a {
		if slices.Contains(b, x) && !slices.Contains(out, x) {
			out = append(out, x)
		}
	}
	if len(out) == 0 {
		return nil, fmt.Errorf("linux.seccomp.architectures: %v: %w %v", b, errNoCommonArch, a)
	}
	return out, nil
}

// mergeFlags keeps the union of the filter flags, except that
// SECCOMP_FILTER_FLAG_SPEC_ALLOW (which turns off the speculative store
// bypass mitigation) stays only when the floor itself sets it.
func mergeFlags(f, r []specs.LinuxSeccompFlag) []specs.LinuxSeccompFlag {
	var out []specs.LinuxSeccompFlag
	for _, x := range append(slices.Clone(f), r...) {
		if x == specs.LinuxSeccompFlagSpecAllow && !slices.Contains(f, x) {
			continue
		}
		if !slices.Contains(out, x) {
			out = append(out, x)
		}
	}
	slices.Sort(out)
	return out
}

// toLog is the complain-mode action: what stops a call becomes
// SCMP_ACT_LOG, so that merged with a request the request is kept and what
// only the floor denies is logged.
func toLog(a action) action {
	if a.denies() {
		return actionOf(specs.ActLog)
	}
	return a
}

// isUnconfined reports whether a model allows every call, in which case
// the request is treated as absent and gets the floor.
func (m *model) isUnconfined() bool {
	if m.def.kind != specs.ActAllow {
		return false
	}
	for _, rs := range m.calls {
		if !allAllow(rs) {
			return false
		}
	}
	for _, rs := range m.lists { // and lists since replaced, which change nothing
		if !allAllow(rs) {
			return false
		}
	}
	return true
}

func allAllow(rs []rule) bool {
	for _, r := range rs {
		if r.act.kind != specs.ActAllow {
			return false
		}
	}
	return true
}

func retPtr(a action) *uint {
	if a.kind != specs.ActErrno && a.kind != specs.ActTrace {
		return nil
	}
	r := a.ret
	return &r
}

// compareCond orders conds of equal length numerically, index by index.
func compareCond(a, b cond) int {
	for i := range a {
		x, y := a[i], b[i]
		switch {
		case x.idx != y.idx:
			return cmpU(uint64(x.idx), uint64(y.idx))
		case x.op != y.op:
			return int(x.op) - int(y.op) // as their names compare: see cmpOp
		case x.v != y.v:
			return cmpU(x.v, y.v)
		case x.v2 != y.v2:
			return cmpU(x.v2, y.v2)
		}
	}
	return 0
}

func cmpU(a, b uint64) int {
	if a < b {
		return -1
	}
	return 1
}
