package policy

import (
	"slices"
	"strings"

	"github.com/moby/profiles/seccomp"
)

// compiledFloor is the floor's profile read once for one architecture:
// the rules that no capability or kernel condition gates, and the gated
// ones, selected per container. Enforce then reads only the request.
type compiledFloor struct {
	native string
	base   *model // names: sorted, every name a base or gated rule may give
	gated  []gatedRule
}

type gatedRule struct {
	names    []string
	rules    []rule
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
		rs, err := readRules(&r.sc, def)
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
			c.gated = append(c.gated, gatedRule{names: r.sc.Names, rules: rs, inc: r.inc, exc: r.exc,
				strict: actionRank(r.sc.Action) > def.rank()})
			continue
		}
		for _, n := range r.sc.Names {
			m.calls[n] = append(m.calls[n], rs...)
		}
	}
	if complain {
		m.def = toLog(def)
	}
	slices.Sort(m.names)
	m.byName = make([][]rule, len(m.names))
	m.index = make(map[string]int, len(m.names))
	for i, n := range m.names {
		m.byName[i] = m.calls[n]
		m.index[n] = i
	}
	m.calls = nil
	return c, nil
}

func gatedFilter(f *seccomp.Filter) bool {
	return f != nil && (len(f.Caps) > 0 || f.MinKernel != nil)
}

// view returns the floor for one container: the base model and the gated
// rules that apply to kernel kv and bounding set bounding, sorted by name.
func (c *compiledFloor) view(kv kernelVersion, bounding capSet) (*model, []namedRules) {
	var extra []namedRules
	for _, g := range c.gated {
		if g.exc != nil && excluded(g.exc, c.native, kv, bounding, g.strict) ||
			g.inc != nil && !included(g.inc, c.native, kv, bounding, g.strict) {
			continue
		}
		for _, n := range g.names {
			i, found := slices.BinarySearchFunc(extra, n, func(x namedRules, n string) int { return strings.Compare(x.name, n) })
			if !found {
				extra = slices.Insert(extra, i, namedRules{name: n})
			}
			extra[i].rules = append(extra[i].rules, g.rules...)
		}
	}
	return c.base, extra
}
