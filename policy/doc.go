// Package policy is Palisade's handler floor: a pure function from (OCI spec,
// handler policy, what the backend and host can enforce) to an enforced spec
// and a decision record, or an error naming the field.
//
// The package reads no files, processes or kernel state. The edge (the shim,
// or palisadectl) reads seccomp profile files, probes AppArmor and the kernel,
// and passes the answers in through Config, NewFloor's profile bytes and
// Support. That keeps every decision reproducible from the golden files in
// testdata/.
//
// The floor only ever narrows a request: for every control the result is the
// intersection of what the handler allows and what the container asked for.
// A control the handler configures but nobody can enforce fails closed
// (ErrNotEnforceable) unless the handler marks it optional.
package policy
