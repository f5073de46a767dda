package policy

import (
	"fmt"
	"math"
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

func (a action) rank() int { return actionRank(a.kind) }

// denies says whether the call is stopped without a tracer or agent.
func (a action) denies() bool { return a.rank() > actionRank(specs.ActLog) }

func newAction(k specs.LinuxSeccompAction, ret *uint) action {
	a := action{kind: k}
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
		return string(a.kind) + "(" + strconv.FormatUint(uint64(a.ret), 10) + ")"
	}
	return string(a.kind)
}

// cmp is one canonical argument comparison. For SCMP_CMP_MASKED_EQ, v is the
// mask and v2 the datum, already masked (libseccomp compares the masked
// argument with the masked datum).
type cmp struct {
	idx uint
	op  specs.LinuxSeccompOperator
	v   uint64
	v2  uint64
}

// cond is a conjunction of comparisons on distinct argument indexes, sorted
// by index. nil matches every call. Distinct indexes matter: runc turns a
// rule that compares one argument twice into separate OR-ed rules (see
// runc's libcontainer/seccomp matchCall), so an AND on one index cannot be
// written as two comparisons.
type cond []cmp

// rule is a cond and the action taken when it matches.
type rule struct {
	c   cond
	act action
}

// truth of a comparison after canonicalisation.
const (
	cmpSome = iota
	cmpAlways
	cmpNever
)

// canonCmp normalises one OCI comparison so that equal sets compare equal
// and the argument algebra never meets a trivially true or false term.
func canonCmp(a specs.LinuxSeccompArg) (cmp, int) {
	c := cmp{idx: a.Index, op: a.Op, v: a.Value}
	switch a.Op {
	case specs.OpLessThan:
		if a.Value == 0 {
			return c, cmpNever
		}
	case specs.OpLessEqual:
		if a.Value == math.MaxUint64 {
			return c, cmpAlways
		}
	case specs.OpGreaterThan:
		if a.Value == math.MaxUint64 {
			return c, cmpNever
		}
	case specs.OpGreaterEqual:
		if a.Value == 0 {
			return c, cmpAlways
		}
	case specs.OpMaskedEqual:
		c.v2 = a.ValueTwo & a.Value
		switch a.Value {
		case 0:
			return c, cmpAlways
		case math.MaxUint64:
			return cmp{idx: a.Index, op: specs.OpEqualTo, v: c.v2}, cmpSome
		}
	}
	return c, cmpSome
}

// ociArg renders a canonical comparison back to the OCI form.
func (c cmp) ociArg() specs.LinuxSeccompArg {
	if c.op == specs.OpMaskedEqual {
		return specs.LinuxSeccompArg{Index: c.idx, Op: c.op, Value: c.v, ValueTwo: c.v2}
	}
	return specs.LinuxSeccompArg{Index: c.idx, Op: c.op, Value: c.v}
}

// matches reports whether argument value x satisfies c (libseccomp
// semantics, 64-bit comparisons as runc requests them).
func (c cmp) matches(x uint64) bool {
	switch c.op {
	case specs.OpNotEqual:
		return x != c.v
	case specs.OpLessThan:
		return x < c.v
	case specs.OpLessEqual:
		return x <= c.v
	case specs.OpEqualTo:
		return x == c.v
	case specs.OpGreaterEqual:
		return x >= c.v
	case specs.OpGreaterThan:
		return x > c.v
	case specs.OpMaskedEqual:
		return x&c.v == c.v2
	}
	return false
}

// model is a profile in the form the merge works on: per syscall name, the
// rules that name it, under the strict reading (see readRules).
type model struct {
	def      action
	arches   []specs.Arch
	flags    []specs.LinuxSeccompFlag
	listener string
	metadata string
	// A compiled floor keeps its rules by sorted name: byName[i] holds the
	// rules of names[i]. A request read against a floor's index keeps the
	// rules of the floor's names[i] in byName[i], and the rules of names the
	// floor does not know in calls; read without an index, all in calls.
	calls  map[string][]rule
	names  []string
	byName [][]rule
	index  map[string]int // name → position in byName; nil: everything in calls
	named  int            // distinct syscall names with rules
	nrules int            // (syscall, rule) pairs, for the decision record
}

// unconfined is the model of an absent request: everything allowed.
func unconfined() *model { return &model{def: action{kind: specs.ActAllow}} }

// buildModel turns a validated OCI profile into a model, its rules indexed
// by index (a compiled floor's, so that the merge looks nothing up; may be
// nil). It fails only on a rule whose repeated comparisons of one argument
// are too many to AND exactly (see maxReadPieces); path prefixes the
// rule's JSON path.
func buildModel(p *specs.LinuxSeccomp, path string, index map[string]int) (*model, error) {
	m := &model{
		def:      newAction(p.DefaultAction, p.DefaultErrnoRet),
		arches:   p.Architectures,
		flags:    p.Flags,
		listener: p.ListenerPath,
		metadata: p.ListenerMetadata,
	}
	if index != nil {
		m.index, m.byName = index, make([][]rule, len(index))
	} else {
		n := 0
		for i := range p.Syscalls {
			n += len(p.Syscalls[i].Names)
		}
		m.calls = make(map[string][]rule, n)
	}
	for i := range p.Syscalls {
		sc := &p.Syscalls[i]
		rs, err := readRules(sc, m.def)
		if err != nil {
			return nil, fmt.Errorf("%ssyscalls[%d].args: %w", path, i, err)
		}
		m.add(sc.Names, rs)
	}
	return m, nil
}

// add appends rs to the rules of every name. A name's first rules share
// rs (clipped, so a later append copies). A name listed twice gets the
// rules twice, which changes nothing: the merge keeps one of equal rules.
func (m *model) add(names []string, rs []rule) {
	if len(rs) == 0 {
		return
	}
	rs = slices.Clip(rs)
	m.nrules += len(rs) * len(names) // per syscall, as merged.rules counts
	for _, n := range names {
		if i, ok := m.index[n]; ok {
			if m.byName[i] == nil {
				m.named++
				m.byName[i] = rs // shared; clipped, so a later append copies
			} else {
				m.byName[i] = append(m.byName[i], rs...)
			}
			continue
		}
		if m.calls == nil {
			m.calls = map[string][]rule{}
		}
		if cur, ok := m.calls[n]; ok {
			m.calls[n] = append(cur, rs...)
		} else {
			m.named++
			m.calls[n] = rs
		}
	}
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
func readRules(sc *specs.LinuxSyscall, def action) ([]rule, error) {
	act := newAction(sc.Action, sc.ErrnoRet)
	if !repeatsIndex(sc.Args) {
		var c cond
		for _, a := range sc.Args {
			k, t := canonCmp(a)
			switch t {
			case cmpNever:
				return nil, nil
			case cmpSome:
				c = append(c, k)
			}
		}
		sortCond(c)
		return []rule{{c: c, act: act}}, nil
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
