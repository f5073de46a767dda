package policy

// The algebra of conditions: a cond is a conjunction of comparisons on
// distinct arguments (see seccomp_args.go for one argument), and a set of
// calls is a union of conds.

// interCond returns a ∧ b as a union of conds (empty when disjoint); ok is
// false when that would exceed maxPieces.
func interCond(a, b cond) ([]cond, bool) { return interCondN(a, b, maxPieces) }

func interCondN(a, b cond, limit int) ([]cond, bool) {
	if len(a) == 0 {
		return []cond{b}, true
	}
	if len(b) == 0 {
		return []cond{a}, true
	}
	var base cond
	var alts [][]cmp // per shared index, the union of the intersection
	i, j := 0, 0
	for i < len(a) || j < len(b) {
		switch {
		case j == len(b) || (i < len(a) && a[i].idx < b[j].idx):
			base = append(base, a[i])
			i++
		case i == len(a) || b[j].idx < a[i].idx:
			base = append(base, b[j])
			j++
		default:
			r, ok := interCmp(a[i], b[j], limit)
			if !ok {
				return nil, false
			}
			if len(r) == 0 {
				return nil, true
			}
			if len(r) == 1 {
				base = append(base, r[0])
			} else {
				alts = append(alts, r)
			}
			i, j = i+1, j+1
		}
	}
	out := []cond{base}
	for _, alt := range alts {
		if len(out)*len(alt) > limit {
			return nil, false
		}
		next := make([]cond, 0, len(out)*len(alt))
		for _, c := range out {
			for _, k := range alt {
				n := append(append(cond(nil), c...), k)
				sortCond(n)
				next = append(next, n)
			}
		}
		out = next
	}
	return out, true
}

// overlaps reports whether some call matches both a and b. It answers true
// when the exact answer is too large to compute: callers use it to make
// actions stricter, never more permissive.
//
// Comparisons of distinct arguments are independent, so the conditions
// overlap unless the comparisons of some shared argument exclude each
// other; the arguments are checked in order, as interCond does.
func overlaps(a, b cond) bool {
	for i, j := 0, 0; i < len(a) && j < len(b); {
		switch {
		case a[i].idx < b[j].idx:
			i++
		case b[j].idx < a[i].idx:
			j++
		default:
			switch interShape(a[i], b[j]) {
			case interEmpty:
				return false
			case interOther:
				r, ok := interCmp(a[i], b[j], maxPieces)
				if !ok {
					return true
				}
				if len(r) == 0 {
					return false
				}
			}
			i, j = i+1, j+1
		}
	}
	return true
}

// appendInter appends the rules of a ∧ b with action act to out; ok is
// false when the intersection is too large to write. The common shapes
// (one side unconditional, or one comparison each of the same argument)
// reuse a or b, which are never modified, instead of building new conds.
func appendInter(out []rule, a, b cond, act action) ([]rule, bool) {
	switch {
	case len(a) == 0:
		return append(out, rule{c: b, act: act}), true
	case len(b) == 0:
		return append(out, rule{c: a, act: act}), true
	case len(a) == 1 && len(b) == 1 && a[0].idx == b[0].idx:
		switch interShape(a[0], b[0]) {
		case interEmpty:
			return out, true
		case interA:
			return append(out, rule{c: a, act: act}), true
		case interB:
			return append(out, rule{c: b, act: act}), true
		}
	}
	cs, ok := interCond(a, b)
	if !ok {
		return out, false
	}
	return appendRules(out, cs, act), true
}

// condWithin reports whether every call matching x matches y.
func condWithin(x, y cond) bool {
	if len(y) > len(x) {
		return false // every index y constrains must be constrained in x
	}
	i := 0
	for _, c := range y {
		for i < len(x) && x[i].idx < c.idx {
			i++
		}
		if i == len(x) || x[i].idx != c.idx || !impliesCmp(x[i], c) {
			return false
		}
	}
	return true
}

// subtract returns r minus every cond in subs, as a union of conds. ok is
// false when the result would exceed maxPieces.
func subtract(r cond, subs []cond) ([]cond, bool) {
	out := []cond{r}
	for _, s := range subs {
		var next []cond
		for _, x := range out {
			switch {
			case condWithin(x, s):
				continue // all of x is removed
			case !overlaps(x, s):
				next = append(next, x)
				continue
			}
			for _, c := range s {
				for _, n := range negCmp(c) {
					p, ok := interCond(x, cond{n})
					if !ok {
						return nil, false
					}
					next = append(next, p...)
				}
			}
			if len(next) > maxPieces {
				return nil, false
			}
		}
		out = next
	}
	return out, true
}
