package policy

import (
	"fmt"
	"slices"
	"strconv"

	"github.com/opencontainers/runtime-spec/specs-go"
)

// eperm is the errno runc and runsc use for SCMP_ACT_ERRNO and SCMP_ACT_TRACE
// without an explicit errnoRet. Normalising to it makes ERRNO and ERRNO(1)
// compare equal.
const eperm = 1

// action is a seccomp action with its return value. It is comparable, so it
// serves as a map key when the result is grouped into OCI rules.
type action struct {
	kind specs.LinuxSeccompAction
	ret  uint // errno for ERRNO, message for TRACE; 0 for every other action
	// r is actionRank(kind), kept because the merge compares ranks for
	// every syscall of every request. It follows from kind, so it changes
	// nothing in comparisons. Build actions with newAction or actionOf.
	r int8
}

// actionRank orders actions by strictness: the stricter action wins a merge.
// KILL_PROCESS > KILL_THREAD/KILL > TRAP > ERRNO > TRACE/NOTIFY > LOG > ALLOW.
// TRACE and NOTIFY rank below ERRNO because a tracer or agent may let the
// call through; LOG ranks above ALLOW because it at least leaves a trace.
func actionRank(k specs.LinuxSeccompAction) int {
	switch k {
	case specs.ActKillProcess:
		return 7
	case specs.ActKillThread, specs.ActKill:
		return 6
	case specs.ActTrap:
		return 5
	case specs.ActErrno:
		return 4
	case specs.ActTrace, specs.ActNotify:
		return 3
	case specs.ActLog:
		return 2
	case specs.ActAllow:
		return 1
	}
	return 0 // unknown: rejected by validation before it gets here
}

func (a action) rank() int { return int(a.r) }

// actionOf is the action of kind k without a return value.
func actionOf(k specs.LinuxSeccompAction) action { return action{kind: k, r: int8(actionRank(k))} }

// denies says whether the call is stopped without a tracer or agent.
func (a action) denies() bool { return a.rank() > actionRank(specs.ActLog) }

func newAction(k specs.LinuxSeccompAction, ret *uint) action {
	a := actionOf(k)
	if k == specs.ActErrno || k == specs.ActTrace {
		a.ret = eperm
		if ret != nil {
			a.ret = *ret
		}
	}
	return a
}

// stricter returns the stricter of the floor's and the request's action; on
// a tie the floor's wins, which is how the floor's errno is kept.
func stricter(floor, req action) action {
	if req.rank() > floor.rank() {
		return req
	}
	return floor
}

func (a action) String() string {
	if a.kind == specs.ActErrno || a.kind == specs.ActTrace {
		return string(a.appendTo(nil))
	}
	return string(a.kind)
}

func (a action) appendTo(b []byte) []byte {
	b = append(b, a.kind...)
	if a.kind == specs.ActErrno || a.kind == specs.ActTrace {
		b = append(b, '(')
		b = strconv.AppendUint(b, uint64(a.ret), 10)
		b = append(b, ')')
	}
	return b
}

// model is a profile in the form the merge works on: per syscall name, the
// rules that name it, under the strict reading (see readRules).
type model struct {
	def      action
	arches   []specs.Arch
	flags    []specs.LinuxSeccompFlag
	listener string
	metadata string
	// A compiled floor keeps its rules by sorted name: rulesOf(i) are the
	// rules of names[i]. A request read against a floor's index keeps the
	// rules of the floor's names[i] there too, and the rules of names the
	// floor does not know in calls; read without an index, all in calls.
	// byName[i] indexes lists (lists[0] is no rules): an allowlist's names
	// share one list, and a number per name is cheaper to allocate than a
	// slice (and holds no pointer for the collector to follow).
	calls  map[string][]rule
	names  []string
	byName []int32
	lists  [][]rule
	owner  []int32        // per list, 1 + the one name it belongs to; 0 when shared
	index  map[string]int // name → position in byName; nil: everything in calls
	next   int            // where lookup tries first
	extra  int            // the size calls is made with
	named  int            // distinct syscall names with rules
	nrules int            // (syscall, rule) pairs, for the decision record
	ncond  int            // (syscall, rule) pairs with conditions, to size the merge's
}

// unconfined is the model of an absent request: everything allowed.
func unconfined() *model { return &model{def: actionOf(specs.ActAllow)} }

// buildModel turns a validated OCI profile into a model, its rules indexed
// by the names of floor (a compiled floor's model, so that the merge looks
// nothing up; may be nil). It fails only on a rule whose repeated
// comparisons of one argument are too many to AND exactly (see
// maxReadPieces); path prefixes the rule's JSON path.
func buildModel(p *specs.LinuxSeccomp, path string, floor *model) (*model, error) {
	m := &model{
		def:      newAction(p.DefaultAction, p.DefaultErrnoRet),
		arches:   p.Architectures,
		flags:    p.Flags,
		listener: p.ListenerPath,
		metadata: p.ListenerMetadata,
	}
	if floor != nil {
		m.names, m.index, m.byName = floor.names, floor.index, make([]int32, len(floor.index))
		m.lists, m.owner = make([][]rule, 1, 16), make([]int32, 1, 16)
		n := 0
		for i := range p.Syscalls {
			n += len(p.Syscalls[i].Names)
		}
		m.extra = max(8, n-len(floor.index)) // a guess at the names the floor does not know
	} else {
		n := 0
		for i := range p.Syscalls {
			n += len(p.Syscalls[i].Names)
		}
		m.calls = make(map[string][]rule, n)
	}
	nargs, nconds := 0, 0
	for i := range p.Syscalls {
		if n := len(p.Syscalls[i].Args); n > 0 {
			nargs, nconds = nargs+n, nconds+1
		}
	}
	// Rules without conditions share a list per action: a few suffice.
	a := &ruleArena{rules: make([]rule, 0, nconds+4), cmps: make([]cmp, 0, nargs)}
	for i := range p.Syscalls {
		sc := &p.Syscalls[i]
		rs, err := readRules(sc, m.def, a)
		if err != nil {
			return nil, fmt.Errorf("%ssyscalls[%d].args: %w", path, i, err)
		}
		if err := m.add(sc.Names, rs); err != nil {
			return nil, fmt.Errorf("%ssyscalls[%d].%w", path, i, err)
		}
	}
	return m, nil
}

// add appends rs to the rules of every name. A name's first rules share
// rs (clipped, so a later append copies). A name listed twice gets the
// rules twice, which changes nothing: the merge keeps one of equal rules.
// It fails when a name gets more than maxRulesPerSyscall rules.
func (m *model) add(names []string, rs []rule) error {
	if len(rs) == 0 {
		return nil
	}
	rs = slices.Clip(rs)
	m.nrules += len(rs) * len(names) // per syscall, as merged.rules counts
	if len(rs[0].c) > 0 || len(rs) > 1 {
		m.ncond += len(rs) * len(names)
	}
	shared := int32(0) // rs's place in m.lists, once a name needs it
	for j, n := range names {
		var total int
		if i, ok := m.lookup(n); ok {
			if m.byName[i] == 0 {
				m.named++
				if shared == 0 {
					shared = m.addList(rs)
				}
				m.byName[i] = shared
			} else {
				m.appendRules(i, rs)
			}
			total = len(m.rulesOf(i))
		} else {
			if m.calls == nil {
				m.calls = make(map[string][]rule, m.extra)
			}
			cur, ok := m.calls[n]
			if !ok {
				m.named++
			}
			m.calls[n] = append(cur, rs...)
			total = len(m.calls[n])
		}
		if total > maxRulesPerSyscall {
			return fmt.Errorf("names[%d]: syscall %q has more than %d rules", j, n, maxRulesPerSyscall)
		}
	}
	return nil
}

// maxRulesPerSyscall bounds the rules one syscall may have after reading,
// in a request or a floor. The merge compares a syscall's rules pairwise,
// so a profile repeating one name in tens of thousands of rules would take
// seconds per container; real profiles stay below a few dozen.
const maxRulesPerSyscall = maxReadPieces

// rulesOf returns the rules of names[i].
func (m *model) rulesOf(i int) []rule { return m.lists[m.byName[i]] }

// addList adds rs to m.lists, to be shared, and returns its index. The
// unconditional rule lists of an allowlist are mostly one shared list (see
// ruleArena), so the last list is reused when rs is it.
func (m *model) addList(rs []rule) int32 {
	if last := len(m.lists) - 1; last > 0 && len(m.lists[last]) == len(rs) && &m.lists[last][0] == &rs[0] {
		return int32(last)
	}
	m.lists, m.owner = append(m.lists, slices.Clip(rs)), append(m.owner, 0)
	return int32(len(m.lists) - 1)
}

// appendRules appends rs to the rules of names[i]. A shared list is copied
// (it is clipped) into a list that name i owns; an owned list grows in
// place, so that a profile naming one syscall in many rules is read in
// linear time.
func (m *model) appendRules(i int, rs []rule) {
	k := m.byName[i]
	if m.owner[k] == int32(i)+1 {
		m.lists[k] = append(m.lists[k], rs...)
		return
	}
	m.lists, m.owner = append(m.lists, append(m.lists[k], rs...)), append(m.owner, int32(i)+1)
	m.byName[i] = int32(len(m.lists) - 1)
}

// lookup finds name n among the floor's names. Profiles list their names
// mostly in sorted order, as the floor keeps them, so the position after
// the last one found is tried before the map.
func (m *model) lookup(n string) (int, bool) {
	if m.index == nil {
		return 0, false
	}
	if m.next < len(m.names) && m.names[m.next] == n {
		m.next++
		return m.next - 1, true
	}
	i, ok := m.index[n]
	if ok {
		m.next = i + 1
	}
	return i, ok
}

// ruleArena holds the rules and comparisons of one profile in two arrays,
// so that reading hundreds of rules takes a few allocations. What it hands
// out is clipped: appending to one rule list never writes into the next.
// Rules are never modified, so the many unconditional rules of an
// allowlist share one list per action.
type ruleArena struct {
	rules  []rule
	cmps   []cmp
	uncond [][]rule // one list per action, each holding one rule without conditions
}

// readRules reads one OCI rule under the strict reading, the one that
// allows least among the ways runtimes may read it:
//   - a rule comparing the same argument twice is OR-ed comparison by
//     comparison when its action is at least as strict as the default (as
//     runc does), and AND-ed when it is more permissive (as its author most
//     likely meant);
//   - rules are never dropped for having the default action (runc skips
//     them, which can only make runc's reading more permissive).
//
// The result is exact: leaving out or widening an input rule could loosen
// the strict reading where the rule is stricter than its neighbours.
//
// The common rule, without repeated comparisons, is taken from arena.
func readRules(sc *specs.LinuxSyscall, def action, arena *ruleArena) ([]rule, error) {
	act := newAction(sc.Action, sc.ErrnoRet)
	if !repeatsIndex(sc.Args) {
		start := len(arena.cmps)
		for _, a := range sc.Args {
			k, t := canonCmp(a)
			switch t {
			case cmpNever:
				arena.cmps = arena.cmps[:start]
				return nil, nil
			case cmpSome:
				arena.cmps = append(arena.cmps, k)
			}
		}
		var c cond // nil without comparisons, as everywhere
		if end := len(arena.cmps); end > start {
			c = cond(arena.cmps[start:end:end])
		} else {
			for _, u := range arena.uncond {
				if u[0].act == act {
					return u, nil
				}
			}
		}
		sortCond(c)
		arena.rules = append(arena.rules, rule{c: c, act: act})
		end := len(arena.rules)
		if len(c) == 0 {
			arena.uncond = append(arena.uncond, arena.rules[end-1:end:end])
		}
		return arena.rules[end-1 : end : end], nil
	}
	var out []rule
	if act.rank() >= def.rank() {
		for _, a := range sc.Args {
			k, t := canonCmp(a)
			switch t {
			case cmpAlways:
				return []rule{{act: act}}, nil
			case cmpSome:
				out = append(out, rule{c: cond{k}, act: act})
			}
		}
		return out, nil
	}
	conds := []cond{nil}
	for _, a := range sc.Args {
		k, t := canonCmp(a)
		switch t {
		case cmpNever:
			return nil, nil
		case cmpSome:
			var next []cond
			for _, c := range conds {
				r, ok := interCondN(c, cond{k}, maxReadPieces)
				if !ok || len(next)+len(r) > maxReadPieces {
					return nil, fmt.Errorf("repeated comparisons of one argument need more than %d rules to write exactly", maxReadPieces)
				}
				next = append(next, r...)
			}
			conds = next
		}
	}
	for _, c := range conds {
		out = append(out, rule{c: c, act: act})
	}
	return out, nil
}

func repeatsIndex(args []specs.LinuxSeccompArg) bool {
	var seen [syscallMaxArgs]bool
	for _, a := range args {
		if seen[a.Index] {
			return true
		}
		seen[a.Index] = true
	}
	return false
}

// syscallMaxArgs is the number of syscall arguments seccomp can inspect.
const syscallMaxArgs = 6

func sortCond(c cond) {
	for i := 1; i < len(c); i++ {
		for j := i; j > 0 && c[j].idx < c[j-1].idx; j-- {
			c[j], c[j-1] = c[j-1], c[j]
		}
	}
}
