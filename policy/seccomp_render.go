package policy

import (
	"slices"
	"strings"

	"github.com/opencontainers/runtime-spec/specs-go"
)

// oci renders the merged profile deterministically: calls with the same
// action and condition share one rule, names sorted, rules ordered
// unconditional first (so libseccomp sees general rules before specific
// ones), then by action and condition.
//
// It runs once per container that misses the Floor's cache, over a few
// hundred rules, so it groups without maps or string keys and carves every
// rule's names, arguments and errno out of one array each.
func (m *merged) oci() *specs.LinuxSeccomp {
	// The groups of unconditional rules come first, by action: order[k] is
	// the k-th group, at[g] where group g goes.
	order := make([]int, len(m.groups))
	for i := range order {
		order[i] = i
	}
	slices.SortFunc(order, func(a, b int) int { return compareAct(m.groups[a], m.groups[b]) })
	at := make([]int, len(m.groups))
	for k, g := range order {
		at[g] = k
	}
	// Then the conditional rules in output order; equal (action, condition)
	// pairs then sit together, their names sorted.
	slices.SortFunc(m.cond, func(a, b condRule) int {
		if d := compareRule(a.act, a.c, b.act, b.c); d != 0 {
			return d
		}
		return strings.Compare(a.name, b.name)
	})
	sameGroup := func(i int) bool {
		return i > 0 && m.cond[i].act == m.cond[i-1].act && slices.Equal(m.cond[i].c, m.cond[i-1].c)
	}
	nrules, nargs, nrets := len(m.groups), 0, 0
	for _, g := range m.groups {
		if hasRet(g) {
			nrets++
		}
	}
	for i, e := range m.cond {
		if !sameGroup(i) {
			nrules++
			nargs += len(e.c)
			if hasRet(e.act) {
				nrets++
			}
		}
	}

	h := &m.head
	out := &specs.LinuxSeccomp{
		DefaultAction:    h.def.kind,
		DefaultErrnoRet:  retPtr(h.def),
		Architectures:    h.arches,
		Flags:            h.flags,
		ListenerPath:     h.listener,
		ListenerMetadata: h.metadata,
		Syscalls:         make([]specs.LinuxSyscall, len(m.groups), nrules),
	}
	// Every rule's names, arguments and errno are carved out of one array
	// each; the pieces are clipped, so appending to one never writes into
	// the next.
	names := make([]string, m.rules)
	args := make([]specs.LinuxSeccompArg, 0, nargs)
	rets := make([]uint, 0, nrets) // never grows: the pointers into it stay valid
	retp := func(a action) *uint {
		if !hasRet(a) {
			return nil
		}
		rets = append(rets, a.ret)
		return &rets[len(rets)-1]
	}
	next := make([]int, len(m.groups)) // per group, where its next name goes
	for _, u := range m.uncond {
		next[at[u.group]]++
	}
	for _, u := range m.xuncond {
		next[at[u.group]]++
	}
	off := 0
	for k, g := range order {
		n := next[k]
		next[k] = off
		out.Syscalls[k] = specs.LinuxSyscall{Names: names[off : off+n : off+n], Action: m.groups[g].kind, ErrnoRet: retp(m.groups[g])}
		off += n
	}
	// Names of the floor and names only the request has, both sorted,
	// merged into name order.
	x := m.xuncond
	put := func(u uncondRule, name string) {
		k := at[u.group]
		names[next[k]] = name
		next[k]++
	}
	for _, u := range m.uncond {
		for len(x) > 0 && m.xnames[x[0].name] < m.fnames[u.name] {
			put(x[0], m.xnames[x[0].name])
			x = x[1:]
		}
		put(u, m.fnames[u.name])
	}
	for _, u := range x {
		put(u, m.xnames[u.name])
	}
	start := off
	for i, e := range m.cond {
		if !sameGroup(i) {
			start = off
			a0 := len(args)
			for _, c := range e.c {
				args = append(args, c.ociArg())
			}
			out.Syscalls = append(out.Syscalls, specs.LinuxSyscall{
				Action: e.act.kind, ErrnoRet: retp(e.act), Args: args[a0:len(args):len(args)]})
		}
		names[off] = e.name
		off++
		out.Syscalls[len(out.Syscalls)-1].Names = names[start:off:off]
	}
	return out
}

// compareAct orders actions by strictness, then by name and return value.
func compareAct(a, b action) int {
	if a == b {
		return 0
	}
	if d := a.rank() - b.rank(); d != 0 {
		return d
	}
	if d := strings.Compare(string(a.kind), string(b.kind)); d != 0 {
		return d
	}
	if a.ret != b.ret {
		return cmpU(uint64(a.ret), uint64(b.ret))
	}
	return 0
}

// compareRule is the output order of rules: fewer comparisons first, then
// by action, then by condition.
func compareRule(a action, ac cond, b action, bc cond) int {
	if d := len(ac) - len(bc); d != 0 {
		return d
	}
	if d := compareAct(a, b); d != 0 {
		return d
	}
	return compareCond(ac, bc)
}

func hasRet(a action) bool { return a.kind == specs.ActErrno || a.kind == specs.ActTrace }
