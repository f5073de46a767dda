package policy

import (
	"math"
	"math/bits"

	"github.com/opencontainers/runtime-spec/specs-go"
)

// The argument algebra: exact intersection, complement and inclusion of
// comparisons, so that the merge can AND the floor's and the request's
// conditions without ever writing two comparisons of one argument into one
// rule (which runc would OR).
//
// Every comparison denotes a set of 64-bit values. Internally a set is a
// union of atoms: closed intervals, or ternary patterns (mask, value) that
// match x when x&mask == value. Intervals and patterns are both closed under
// intersection once an interval is cut into aligned power-of-two blocks,
// and every block is itself a pattern, so every result can be written back
// with EQ/LE/GE/MASKED_EQ comparisons.

// maxPieces bounds how many comparisons or conditions one merge operation
// may produce. Beyond it the merge falls back to a safe approximation; real
// profiles stay far below it.
const maxPieces = 64

// maxReadPieces bounds the exact AND of one input rule that compares an
// argument more than once. Reading must be exact (an approximated input
// rule can loosen the strict reading), so beyond it the profile is refused.
const maxReadPieces = 4096

type atom struct {
	pat    bool
	lo, hi uint64 // interval [lo, hi]; for a pattern lo is the mask, hi the value
}

func ival(lo, hi uint64) atom  { return atom{lo: lo, hi: hi} }
func pattern(m, v uint64) atom { return atom{pat: true, lo: m, hi: v & m} }
func (a atom) patMin() uint64  { return a.hi }
func (a atom) patMax() uint64  { return a.hi | ^a.lo }
func (a atom) point() bool     { return !a.pat && a.lo == a.hi }
func (a atom) contains(x uint64) bool {
	if a.pat {
		return x&a.lo == a.hi
	}
	return a.lo <= x && x <= a.hi
}

// atomsOf returns the atoms of a canonical comparison: two for NE, one
// otherwise (a fixed array, to keep the hot path free of allocations).
func atomsOf(c cmp) ([2]atom, int) {
	switch c.op {
	case specs.OpEqualTo:
		return [2]atom{ival(c.v, c.v)}, 1
	case specs.OpNotEqual:
		var out [2]atom
		n := 0
		if c.v > 0 {
			out[n], n = ival(0, c.v-1), n+1
		}
		if c.v < math.MaxUint64 {
			out[n], n = ival(c.v+1, math.MaxUint64), n+1
		}
		return out, n
	case specs.OpLessThan:
		return [2]atom{ival(0, c.v-1)}, 1
	case specs.OpLessEqual:
		return [2]atom{ival(0, c.v)}, 1
	case specs.OpGreaterThan:
		return [2]atom{ival(c.v+1, math.MaxUint64)}, 1
	case specs.OpGreaterEqual:
		return [2]atom{ival(c.v, math.MaxUint64)}, 1
	case specs.OpMaskedEqual:
		return [2]atom{pattern(c.v, c.v2)}, 1
	}
	return [2]atom{}, 0
}

// blocks cuts [lo, hi] into aligned power-of-two blocks, as patterns (at
// most 128 of them).
func blocks(lo, hi uint64, out []atom) []atom {
	if lo == 0 && hi == math.MaxUint64 {
		return append(out, pattern(0, 0))
	}
	for {
		k := 63
		if lo != 0 {
			k = min(63, bits.TrailingZeros64(lo))
		}
		for k > 0 && uint64(1)<<uint(k)-1 > hi-lo {
			k--
		}
		size1 := uint64(1)<<uint(k) - 1
		out = append(out, pattern(^size1, lo))
		if lo+size1 == hi {
			return out
		}
		lo += size1 + 1
	}
}

// interAtom appends the intersection of a and b to out.
func interAtom(a, b atom, out []atom) []atom {
	switch {
	case !a.pat && !b.pat:
		lo, hi := max(a.lo, b.lo), min(a.hi, b.hi)
		if lo <= hi {
			out = append(out, ival(lo, hi))
		}
		return out
	case a.pat && b.pat:
		if (a.hi^b.hi)&a.lo&b.lo != 0 {
			return out
		}
		return append(out, pattern(a.lo|b.lo, a.hi|b.hi))
	case a.pat:
		a, b = b, a
	}
	// a is an interval, b a pattern.
	if a.point() {
		if b.contains(a.lo) {
			out = append(out, a)
		}
		return out
	}
	if a.lo <= b.patMin() && b.patMax() <= a.hi {
		return append(out, b)
	}
	for _, blk := range blocks(a.lo, a.hi, nil) {
		out = interAtom(blk, b, out)
	}
	return out
}

// atomWithin reports whether x ⊆ y.
func atomWithin(x, y atom) bool {
	switch {
	case !x.pat && !y.pat:
		return y.lo <= x.lo && x.hi <= y.hi
	case x.pat && !y.pat:
		return y.lo <= x.patMin() && x.patMax() <= y.hi
	case x.pat && y.pat:
		return y.lo&^x.lo == 0 && x.hi&y.lo == y.hi
	}
	if x.point() {
		return y.contains(x.lo)
	}
	for _, blk := range blocks(x.lo, x.hi, nil) {
		if !atomWithin(blk, y) {
			return false
		}
	}
	return true
}

// impliesCmp reports whether every value satisfying a satisfies b.
func impliesCmp(a, b cmp) bool {
	if a == b {
		return true
	}
	if a.op == specs.OpEqualTo { // the common case: a single value
		return b.matches(a.v)
	}
	if b.op == specs.OpNotEqual {
		return !a.matches(b.v)
	}
	ys, _ := atomsOf(b) // every operator but NE is a single atom
	xs, n := atomsOf(a)
	for _, x := range xs[:n] {
		if !atomWithin(x, ys[0]) {
			return false
		}
	}
	return true
}

// interCmp returns a ∧ b (same index) as a union of comparisons; empty when
// they exclude each other. ok is false when the union would exceed
// maxPieces.
func interCmp(a, b cmp, limit int) ([]cmp, bool) {
	switch { // the common case: a single value, kept or excluded
	case a.op == specs.OpEqualTo && !b.matches(a.v), b.op == specs.OpEqualTo && !a.matches(b.v):
		return nil, true
	}
	if impliesCmp(a, b) {
		return []cmp{a}, true
	}
	if impliesCmp(b, a) {
		return []cmp{b}, true
	}
	var as []atom
	xs, nx := atomsOf(a)
	ys, ny := atomsOf(b)
	for _, x := range xs[:nx] {
		for _, y := range ys[:ny] {
			as = interAtom(x, y, as)
		}
	}
	return render(a.idx, as, limit)
}

// render writes atoms back as comparisons on argument idx.
func render(idx uint, as []atom, limit int) ([]cmp, bool) {
	var out []cmp
	for _, x := range as {
		switch {
		case x.pat && x.lo == math.MaxUint64:
			out = append(out, cmp{idx: idx, op: specs.OpEqualTo, v: x.hi})
		case x.pat:
			out = append(out, cmp{idx: idx, op: specs.OpMaskedEqual, v: x.lo, v2: x.hi})
		case x.lo == x.hi:
			out = append(out, cmp{idx: idx, op: specs.OpEqualTo, v: x.lo})
		case x.lo == 0:
			out = append(out, cmp{idx: idx, op: specs.OpLessEqual, v: x.hi})
		case x.hi == math.MaxUint64:
			out = append(out, cmp{idx: idx, op: specs.OpGreaterEqual, v: x.lo})
		default:
			bs := blocks(x.lo, x.hi, nil)
			if len(out)+len(bs) > limit {
				return nil, false
			}
			r, _ := render(idx, bs, limit)
			out = append(out, r...)
		}
		if len(out) > limit {
			return nil, false
		}
	}
	return out, true
}

// negCmp returns ¬c as a union of comparisons. The complement of a masked
// compare is "some masked bit differs", one single-bit compare per bit.
func negCmp(c cmp) []cmp {
	n := cmp{idx: c.idx, v: c.v}
	switch c.op {
	case specs.OpEqualTo:
		n.op = specs.OpNotEqual
	case specs.OpNotEqual:
		n.op = specs.OpEqualTo
	case specs.OpLessThan:
		n.op = specs.OpGreaterEqual
	case specs.OpLessEqual:
		n.op = specs.OpGreaterThan
	case specs.OpGreaterThan:
		n.op = specs.OpLessEqual
	case specs.OpGreaterEqual:
		n.op = specs.OpLessThan
	case specs.OpMaskedEqual:
		out := make([]cmp, 0, bits.OnesCount64(c.v))
		for m := c.v; m != 0; m &= m - 1 {
			b := m & -m
			out = append(out, cmp{idx: c.idx, op: specs.OpMaskedEqual, v: b, v2: ^c.v2 & b})
		}
		return out
	}
	return []cmp{n}
}

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
func overlaps(a, b cond) bool {
	r, ok := interCond(a, b)
	return !ok || len(r) > 0
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
