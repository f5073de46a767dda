package policy

import "slices"

// The merge. For a call (name, args), write f and r for the floor's and
// the request's action under the strict reading (the strictest matching
// rule, else the default). The wanted result is o = stricter(f, r), and the
// output default is oD = stricter(fD, rD).
//
// Runtimes resolve overlapping rules of one syscall differently (libseccomp
// lets an unconditional rule swallow conditional ones whatever their
// action, and orders the rest by argument index, not by strictness). So the
// output is built to be correct under any resolution:
//
//  1. sound: every emitted rule's action is at least as strict as o on
//     every call its condition matches;
//  2. covering: every call with o other than oD matches some rule.
//
// Then whichever matching rule a runtime picks, the result is at least as
// strict as o. First each side's rules are made exact (see exact): a rule's
// action is then that side's action everywhere on its condition. Then, for
// floor rules F_i (action a_i) and request rules R_j (action b_j):
//
//	P1: F_i ∧ R_j            → stricter(a_i, b_j)
//	P2: F_i minus every R_k  → stricter(a_i, rD)
//	P3: R_j minus every F_k  → stricter(fD, b_j)
//
// These are sound and cover exactly: a call matching rules on both sides
// gets P1, one side only P2 or P3, neither the default. When a piece is too
// large to write (see maxPieces), an allowing piece is left out (the call
// falls to the stricter default) and a denying one is replaced by a sound
// superset: P2/P3 subtract only the other side's stricter rules, and failing
// that, and for P1, the rule's whole condition takes the strictest action
// that can apply anywhere on it.

// mergeCall merges the rules of one syscall name. approx is true when a
// piece was too large to write and the result is stricter than wanted.
func mergeCall(fr []rule, fd action, rr []rule, rd, od action) (out []rule, approx bool) {
	if allUnconditional(fr) && allUnconditional(rr) {
		return mergeUnconditional(fr, stricter(maxAct(fr, fd), maxAct(rr, rd)), rr, od), false
	}
	fr, fa := exact(fr)
	rr, ra := exact(rr)
	approx = fa || ra
	out = make([]rule, 0, len(fr)+len(rr)) // usually enough: most pairs are disjoint
	for _, f := range fr {
		for _, r := range rr {
			a := stricter(f.act, r.act)
			if a == od {
				continue
			}
			var ok bool
			if out, ok = appendInter(out, f.c, r.c, a); ok {
				continue
			}
			approx = true
			if a.rank() >= od.rank() {
				out = append(out, whole(f, rd, rr, true))
			}
		}
	}
	var ap bool
	for _, f := range fr {
		out, ap = side(out, f, rd, rr, od, true)
		approx = approx || ap
	}
	for _, r := range rr {
		out, ap = side(out, r, fd, fr, od, false)
		approx = approx || ap
	}
	return prune(out), approx
}

// mergeUnconditional is the merge of rules without conditions, whose
// result o is known: one rule, or none when o is the default od.
func mergeUnconditional(fr []rule, o action, rr []rule, od action) []rule {
	switch {
	case o == od:
		return nil
	case len(fr) == 1 && fr[0].act == o: // share: rules are never modified
		return fr
	case len(rr) == 1 && rr[0].act == o:
		return rr
	}
	return []rule{{act: o}}
}

// side emits the P2 (floor side) or P3 (request side) piece for rule r
// against the other side's default od2 and rules other.
func side(out []rule, r rule, od2 action, other []rule, od action, isFloor bool) ([]rule, bool) {
	a := combine(r.act, od2, isFloor)
	if a == od {
		return out, false
	}
	all := make([]cond, 0, len(other))
	var stricterOnly []cond
	for _, o := range other {
		all = append(all, o.c)
		if o.act.rank() > a.rank() {
			stricterOnly = append(stricterOnly, o.c)
		}
	}
	if cs, ok := subtract(r.c, all); ok {
		return appendRules(out, cs, a), false
	}
	if a.rank() < od.rank() {
		return out, true // an allowing piece left out: stricter, still correct
	}
	// Outside the stricter rules the other side is no stricter than a.
	if cs, ok := subtract(r.c, stricterOnly); ok {
		return appendRules(out, cs, a), true
	}
	return append(out, whole(r, od2, other, isFloor)), true
}

// whole is the last resort: r's whole condition with the strictest action
// that the other side (default od2, rules other) can add anywhere on it.
func whole(r rule, od2 action, other []rule, isFloor bool) rule {
	a := combine(r.act, od2, isFloor)
	for _, o := range other {
		if overlaps(r.c, o.c) {
			a = combine(a, o.act, isFloor)
		}
	}
	return rule{c: r.c, act: a}
}

// combine is stricter() with the floor's action first.
func combine(own, other action, ownIsFloor bool) action {
	if ownIsFloor {
		return stricter(own, other)
	}
	return stricter(other, own)
}

func appendRules(out []rule, cs []cond, a action) []rule {
	for _, c := range cs {
		out = append(out, rule{c: c, act: a})
	}
	return out
}

func allUnconditional(rs []rule) bool {
	for _, r := range rs {
		if len(r.c) != 0 {
			return false
		}
	}
	return true
}

// maxAct is the strictest action among rs, or def when rs is empty.
func maxAct(rs []rule, def action) action {
	if len(rs) == 0 {
		return def
	}
	a := rs[0].act
	for _, r := range rs[1:] {
		if r.act.rank() > a.rank() {
			a = r.act
		}
	}
	return a
}

// exact rewrites the rules of one syscall so that each rule's action is
// the strict reading's action on all of its condition: a rule overlapped by
// a stricter rule of the same profile loses the overlap (the stricter rule
// covers it). When that subtraction is too large to write, the rule keeps
// its whole condition and takes the stricter action instead (safe).
func exact(rs []rule) (out []rule, approx bool) {
	uniform := true
	for _, r := range rs {
		if r.act.rank() != rs[0].act.rank() {
			uniform = false
			break
		}
	}
	if uniform {
		return rs, false
	}
	for _, r := range rs {
		var subs []cond
		raised := r.act
		for _, o := range rs {
			if o.act.rank() > r.act.rank() && overlaps(r.c, o.c) {
				subs = append(subs, o.c)
				raised = stricter(raised, o.act)
			}
		}
		cs, ok := subtract(r.c, subs)
		if !ok {
			out = append(out, rule{c: r.c, act: raised})
			approx = true
			continue
		}
		out = appendRules(out, cs, r.act)
	}
	return out, approx
}

// prune removes rules made redundant by another sound rule: one with the
// same condition and a more permissive or equal action, or one whose
// condition contains it with an action no stricter. Both remain sound, and
// removing the contained rule also keeps libseccomp from rejecting a
// general rule added after a specific one with another action (EEXIST).
func prune(rs []rule) []rule {
	if len(rs) < 2 {
		return rs
	}
	// Equal conditions become neighbours, the most permissive first.
	slices.SortFunc(rs, func(a, b rule) int {
		if d := len(a.c) - len(b.c); d != 0 {
			return d
		}
		if d := compareCond(a.c, b.c); d != 0 {
			return d
		}
		return a.act.rank() - b.act.rank()
	})
	uniq := rs[:1]
	for _, r := range rs[1:] {
		if !slices.Equal(r.c, uniq[len(uniq)-1].c) {
			uniq = append(uniq, r)
		}
	}
	masks := make([]uint8, len(uniq))
	wide := make([]bool, len(uniq)) // false: only equalities, a single point
	for i, r := range uniq {
		for _, c := range r.c {
			masks[i] |= 1 << c.idx
			wide[i] = wide[i] || c.op != opEQ
		}
	}
	out := make([]rule, 0, len(uniq))
	for i, r := range uniq {
		drop := false
		for k, o := range uniq {
			// o can contain r only when o constrains no index r leaves free.
			// A point (o all equalities) contains only an equal condition,
			// already removed; skipping it keeps prune near linear on
			// profiles like socket's long list of allowed domains.
			if k == i || !wide[k] || masks[k]&^masks[i] != 0 || o.act.rank() > r.act.rank() {
				continue
			}
			if !condWithin(r.c, o.c) {
				continue
			}
			// Equal sets written differently (a0<2, a0<=1): keep the first.
			if k > i && o.act.rank() == r.act.rank() && condWithin(o.c, r.c) {
				continue
			}
			drop = true
			break
		}
		if !drop {
			out = append(out, r)
		}
	}
	return out
}
