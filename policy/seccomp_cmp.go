package policy

import (
	"math"

	"github.com/opencontainers/runtime-spec/specs-go"
)

// cmp is one canonical argument comparison. For SCMP_CMP_MASKED_EQ, v is the
// mask and v2 the datum, already masked (libseccomp compares the masked
// argument with the masked datum).
type cmp struct {
	idx uint
	op  cmpOp
	v   uint64
	v2  uint64
}

// cmpOp is a comparison operator. The argument algebra switches on it for
// every pair of comparisons it meets, so it is a number, not the OCI
// string; the numbers follow the order of the OCI names, which is the
// order compareCond sorts them in.
type cmpOp uint8

const (
	opEQ       cmpOp = iota + 1 // SCMP_CMP_EQ
	opGE                        // SCMP_CMP_GE
	opGT                        // SCMP_CMP_GT
	opLE                        // SCMP_CMP_LE
	opLT                        // SCMP_CMP_LT
	opMaskedEQ                  // SCMP_CMP_MASKED_EQ
	opNE                        // SCMP_CMP_NE
)

var opNames = [...]specs.LinuxSeccompOperator{opEQ: specs.OpEqualTo, opGE: specs.OpGreaterEqual,
	opGT: specs.OpGreaterThan, opLE: specs.OpLessEqual, opLT: specs.OpLessThan,
	opMaskedEQ: specs.OpMaskedEqual, opNE: specs.OpNotEqual}

// opOf is the operator named o; 0 for an unknown name, which validation
// has already refused.
func opOf(o specs.LinuxSeccompOperator) cmpOp {
	switch o {
	case specs.OpEqualTo:
		return opEQ
	case specs.OpGreaterEqual:
		return opGE
	case specs.OpGreaterThan:
		return opGT
	case specs.OpLessEqual:
		return opLE
	case specs.OpLessThan:
		return opLT
	case specs.OpMaskedEqual:
		return opMaskedEQ
	case specs.OpNotEqual:
		return opNE
	}
	return 0
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
	c := cmp{idx: a.Index, op: opOf(a.Op), v: a.Value}
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
			return cmp{idx: a.Index, op: opEQ, v: c.v2}, cmpSome
		}
	}
	return c, cmpSome
}

// ociArg renders a canonical comparison back to the OCI form.
func (c cmp) ociArg() specs.LinuxSeccompArg {
	if c.op == opMaskedEQ {
		return specs.LinuxSeccompArg{Index: c.idx, Op: opNames[c.op], Value: c.v, ValueTwo: c.v2}
	}
	return specs.LinuxSeccompArg{Index: c.idx, Op: opNames[c.op], Value: c.v}
}

// matches reports whether argument value x satisfies c (libseccomp
// semantics, 64-bit comparisons as runc requests them).
func (c cmp) matches(x uint64) bool {
	switch c.op {
	case opNE:
		return x != c.v
	case opLT:
		return x < c.v
	case opLE:
		return x <= c.v
	case opEQ:
		return x == c.v
	case opGE:
		return x >= c.v
	case opGT:
		return x > c.v
	case opMaskedEQ:
		return x&c.v == c.v2
	}
	return false
}
