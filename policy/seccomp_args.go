package policy

import (
	"math"
	"math/bits"
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
	case opEQ:
		return [2]atom{ival(c.v, c.v)}, 1
	case opNE:
		var out [2]atom
		n := 0
		if c.v > 0 {
			out[n], n = ival(0, c.v-1), n+1
		}
		if c.v < math.MaxUint64 {
			out[n], n = ival(c.v+1, math.MaxUint64), n+1
		}
		return out, n
	case opLT:
		return [2]atom{ival(0, c.v-1)}, 1
	case opLE:
		return [2]atom{ival(0, c.v)}, 1
	case opGT:
		return [2]atom{ival(c.v+1, math.MaxUint64)}, 1
	case opGE:
		return [2]atom{ival(c.v, math.MaxUint64)}, 1
	case opMaskedEQ:
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
	if a.op == opEQ { // the common case: a single value
		return b.matches(a.v)
	}
	if b.op == opNE {
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
	switch interShape(a, b) {
	case interEmpty:
		return nil, true
	case interA:
		return []cmp{a}, true
	case interB:
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

// Shapes of a ∧ b that need no atoms: the merge meets them for nearly
// every pair of comparisons, so they are decided without allocating.
const (
	interOther = iota // work it out with atoms
	interEmpty        // they exclude each other
	interA            // a implies b: the result is a
	interB            // b implies a: the result is b
)

func interShape(a, b cmp) int {
	switch { // the common case: a single value, kept or excluded
	case a.op == opEQ && !b.matches(a.v), b.op == opEQ && !a.matches(b.v):
		return interEmpty
	case impliesCmp(a, b):
		return interA
	case impliesCmp(b, a):
		return interB
	}
	return interOther
}

// render writes atoms back as comparisons on argument idx.
func render(idx uint, as []atom, limit int) ([]cmp, bool) {
	var out []cmp
	for _, x := range as {
		switch {
		case x.pat && x.lo == math.MaxUint64:
			out = append(out, cmp{idx: idx, op: opEQ, v: x.hi})
		case x.pat:
			out = append(out, cmp{idx: idx, op: opMaskedEQ, v: x.lo, v2: x.hi})
		case x.lo == x.hi:
			out = append(out, cmp{idx: idx, op: opEQ, v: x.lo})
		case x.lo == 0:
			out = append(out, cmp{idx: idx, op: opLE, v: x.hi})
		case x.hi == math.MaxUint64:
			out = append(out, cmp{idx: idx, op: opGE, v: x.lo})
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
	case opEQ:
		n.op = opNE
	case opNE:
		n.op = opEQ
	case opLT:
		n.op = opGE
	case opLE:
		n.op = opGT
	case opGT:
		n.op = opLE
	case opGE:
		n.op = opLT
	case opMaskedEQ:
		out := make([]cmp, 0, bits.OnesCount64(c.v))
		for m := c.v; m != 0; m &= m - 1 {
			b := m & -m
			out = append(out, cmp{idx: c.idx, op: opMaskedEQ, v: b, v2: ^c.v2 & b})
		}
		return out
	}
	return []cmp{n}
}
