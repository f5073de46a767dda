package policy

import (
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"

	"github.com/opencontainers/runtime-spec/specs-go"
)

// errNoCommonArch is returned when floor and request list architectures
// with nothing in common. An empty list would mean "native only" to runc,
// which is more than either side allowed, so it is an error instead.
var errNoCommonArch = errors.New("no architecture in common with the handler floor")

// merged is the result of a merge: one entry per syscall name of the
// floor or the request, sorted by name.
type merged struct {
	head    model        // the profile-wide fields; head.calls is unused
	calls   []mergedCall // the syscalls that have output rules
	approx  []string     // names made stricter than wanted (see maxPieces)
	rules   int          // number of output rules
	crules  int          // number of output rules with conditions
	diff    bool         // record per-syscall changes in changed
	changed []string
}

type mergedCall struct {
	name string
	out  []rule
}

// namedRules is a syscall's gated floor rules that apply to a container.
type namedRules struct {
	name  string
	rules []rule
}

// mergeModels returns the profile that allows a call only when both the
// floor and the request r allow it. The floor is f (names sorted, rules in
// byName) plus the gated rules fx (sorted by name, names among f.names)
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
	m.calls = make([]mergedCall, 0, len(f.names))
	for i, n := range f.names {
		fr := f.byName[i]
		if len(fx) > 0 && fx[0].name == n {
			fr = append(slices.Clip(fr), fx[0].rules...)
			fx = fx[1:]
		}
		var rr []rule
		if r.byName != nil { // read against f.index: the same positions
			rr = r.byName[i]
		}
		m.add(n, fr, f.def, rr, r.def)
	}
	// Names the floor does not know are rare, and merged in name order.
	if len(r.calls) > 0 {
		extra := make([]string, 0, len(r.calls))
		for n := range r.calls {
			extra = append(extra, n)
		}
		slices.Sort(extra)
		for _, n := range extra {
			m.add(n, nil, f.def, r.calls[n], r.def)
		}
		slices.SortFunc(m.calls, func(a, b mergedCall) int { return strings.Compare(a.name, b.name) })
		slices.Sort(m.approx)
		slices.Sort(m.changed) // "linux.seccomp: <name>: ..." sorts by name
	}
	return m, nil
}

// add merges the floor's rules fr for syscall n (floor default fd) with
// the request's rules rr (request default rd).
func (m *merged) add(n string, fr []rule, fd action, rr []rule, rd action) {
	out, approx := mergeCall(fr, fd, rr, rd, m.head.def)
	if len(out) > 0 {
		m.calls = append(m.calls, mergedCall{name: n, out: out})
		m.rules += len(out)
		for _, r := range out {
			if len(r.c) > 0 {
				m.crules++
			}
		}
	}
	if m.diff {
		if ch, ok := diffCall(n, rr, rd, out, m.head.def); ok {
			m.changed = append(m.changed, ch)
		}
	}
	if approx {
		m.approx = append(m.approx, n)
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
		return action{kind: specs.ActLog}
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
	for _, rs := range m.byName {
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

// oci renders the merged profile deterministically: calls with the same
// action and condition share one rule, names sorted, rules ordered
// unconditional first (so libseccomp sees general rules before specific
// ones), then by action and condition.
func (m *merged) oci() *specs.LinuxSeccomp {
	type key struct {
		act  action
		cond string
	}
	type group struct {
		act action
		c   cond
		n   int // names in the group, to size sc.Names once
		sc  specs.LinuxSyscall
	}
	var uncond []*group // at most one per action: a linear scan beats a map
	conds := make(map[key]*group, m.crules)
	// Groups live in one array: there are at most one per conditional rule
	// and one per action (9), so it never grows and the pointers stay valid.
	pool := make([]group, 0, m.crules+9)
	var all []*group
	owner := make([]*group, 0, m.rules) // the group of each output rule, in order
	for _, call := range m.calls {
		for _, r := range call.out {
			var g *group
			var k key
			if len(r.c) == 0 {
				for _, u := range uncond {
					if u.act == r.act {
						g = u
						break
					}
				}
			} else {
				k = key{act: r.act, cond: r.c.key()}
				g = conds[k]
			}
			if g == nil {
				pool = append(pool, group{act: r.act, c: r.c, sc: specs.LinuxSyscall{Action: r.act.kind, ErrnoRet: retPtr(r.act)}})
				g = &pool[len(pool)-1]
				if len(r.c) > 0 {
					g.sc.Args = make([]specs.LinuxSeccompArg, len(r.c))
					for i, c := range r.c {
						g.sc.Args[i] = c.ociArg()
					}
				}
				if len(r.c) == 0 {
					uncond = append(uncond, g)
				} else {
					conds[k] = g
				}
				all = append(all, g)
			}
			g.n++
			owner = append(owner, g)
		}
	}
	for _, g := range all {
		g.sc.Names = make([]string, 0, g.n)
	}
	i := 0
	for _, call := range m.calls {
		for range call.out {
			owner[i].sc.Names = append(owner[i].sc.Names, call.name) // m.calls is sorted by name
			i++
		}
	}
	slices.SortFunc(all, func(a, b *group) int {
		if d := len(a.c) - len(b.c); d != 0 {
			return d
		}
		if d := a.act.rank() - b.act.rank(); d != 0 {
			return d
		}
		if d := strings.Compare(string(a.act.kind), string(b.act.kind)); d != 0 {
			return d
		}
		if a.act.ret != b.act.ret {
			return cmpU(uint64(a.act.ret), uint64(b.act.ret))
		}
		return compareCond(a.c, b.c)
	})
	h := &m.head
	out := &specs.LinuxSeccomp{
		DefaultAction:    h.def.kind,
		DefaultErrnoRet:  retPtr(h.def),
		Architectures:    h.arches,
		Flags:            h.flags,
		ListenerPath:     h.listener,
		ListenerMetadata: h.metadata,
		Syscalls:         make([]specs.LinuxSyscall, 0, len(all)),
	}
	for _, g := range all {
		out.Syscalls = append(out.Syscalls, g.sc)
	}
	return out
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
			return strings.Compare(string(x.op), string(y.op))
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

// key encodes a cond for grouping; each comparison ends in ';'.
func (c cond) key() string {
	if len(c) == 0 {
		return ""
	}
	b := make([]byte, 0, 48*len(c))
	for _, x := range c {
		b = strconv.AppendUint(b, uint64(x.idx), 10)
		b = append(b, ' ')
		b = append(b, x.op...)
		b = append(b, ' ')
		b = strconv.AppendUint(b, x.v, 10)
		b = append(b, ' ')
		b = strconv.AppendUint(b, x.v2, 10)
		b = append(b, ';')
	}
	return string(b)
}
