package policy

import (
	"slices"

	"github.com/moby/profiles/seccomp"
)

// compiledFloor is the floor's profile read once for one architecture:
// the rules that no capability or kernel condition gates, and the gated
// ones, selected per container. Enforce then reads only the request.
type compiledFloor struct {
	native string
	base   *model // names: sorted, every name a base or gated rule may give
	gated  []gatedRule
	// gatedCaps are the capabilities the gated rules name: the only part
	// of a container's bounding set that changes its floor.
	gatedCaps capSet
	ngated    int // distinct names of the gated rules
}

type gatedRule struct {
	names    []string
	at       []int  // the positions of names in base.names
	rules    []rule // clipped: appending to it copies
	inc, exc *seccomp.Filter
	strict   bool // stricter than the default: kept when the kernel is unknown
}

// compileFloor reads template t for architecture native. complain turns
// every denying action into SCMP_ACT_LOG after reading (the strict reading
// depends on the profile's own default action).
func compileFloor(t *template, native string, complain bool) (*compiledFloor, error) {
	head := t.resolveHead(native)
	def := newAction(head.DefaultAction, head.DefaultErrnoRet)
	m := &model{
		def:      def,
		arches:   head.Architectures,
		flags:    head.Flags,
		listener: head.ListenerPath,
		metadata: head.ListenerMetadata,
		calls:    make(map[string][]rule, 512),
	}
	c := &compiledFloor{native: native, base: m}
	seen := map[string]bool{}
	for i := range t.rules {
		r := &t.rules[i]
		if r.exc != nil && slices.Contains(r.exc.Arches, native) ||
			r.inc != nil && len(r.inc.Arches) > 0 && !slices.Contains(r.inc.Arches, native) {
			continue // decided by the architecture alone
		}
		rs, err := readRules(&r.sc, def, &ruleArena{})
		if err != nil {
			return nil, err // parseTemplate has read every rule: cannot happen
		}
		if complain {
			for j := range rs {
				rs[j].act = toLog(rs[j].act)
			}
		}
		for _, n := range r.sc.Names {
			if !seen[n] {
				seen[n] = true
				m.names = append(m.names, n)
			}
		}
		if gatedFilter(r.inc) || gatedFilter(r.exc) {
			c.gatedCaps |= filterCaps(r.inc) | filterCaps(r.exc)
			c.gated = append(c.gated, gatedRule{names: r.sc.Names, rules: slices.Clip(rs), inc: r.inc, exc: r.exc,
				strict: actionRank(r.sc.Action) > def.rank()})
			continue
		}
		for _, n := range r.sc.Names {
			m.calls[n] = append(m.calls[n], rs...)
		}
		if !allUnconditional(rs) {
			m.ncond += len(rs) * len(r.sc.Names)
		}
	}
	if complain {
		m.def = toLog(def)
	}
	slices.Sort(m.names)
	m.byName = make([]int32, len(m.names))
	m.lists, m.owner = make([][]rule, 1, len(m.names)+1), make([]int32, 1, len(m.names)+1)
	m.index = make(map[string]int, len(m.names))
	for i, n := range m.names {
		if rs := m.calls[n]; len(rs) > 0 {
			m.byName[i] = m.addList(rs)
		}
		m.index[n] = i
	}
	m.calls = nil
	gatedNames := map[int]bool{}
	for i := range c.gated {
		g := &c.gated[i]
		for _, n := range g.names {
			g.at = append(g.at, m.index[n])
			gatedNames[m.index[n]] = true
		}
	}
	c.ngated = len(gatedNames)
	return c, nil
}

// filterCaps is the set of capabilities f names; unknown names (which a
// parsed profile cannot hold) decide nothing and are left out.
func filterCaps(f *seccomp.Filter) capSet {
	var s capSet
	if f != nil {
		for _, n := range f.Caps {
			if c, ok := capNumber(n); ok {
				s |= 1 << uint(c)
			}
		}
	}
	return s
}

func gatedFilter(f *seccomp.Filter) bool {
	return f != nil && (len(f.Caps) > 0 || f.MinKernel != nil)
}

// view returns the floor for one container: the base model and the gated
// rules that apply to kernel kv and bounding set bounding, in name order.
func (c *compiledFloor) view(kv kernelVersion, bounding capSet) (*model, []namedRules) {
	extra := make([]namedRules, 0, c.ngated)
	for _, g := range c.gated {
		if g.exc != nil && excluded(g.exc, c.native, kv, bounding, g.strict) ||
			g.inc != nil && !included(g.inc, c.native, kv, bounding, g.strict) {
			continue
		}
		for _, at := range g.at {
			i, found := slices.BinarySearchFunc(extra, at, func(x namedRules, at int) int { return x.at - at })
			if found {
				extra[i].rules = append(extra[i].rules, g.rules...) // copies: g.rules is clipped
			} else {
				extra = slices.Insert(extra, i, namedRules{at: at, rules: g.rules})
			}
		}
	}
	return c.base, extra
}
