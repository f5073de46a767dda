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
//
// Enforce runs for every container, so a Floor keeps the seccomp results of
// its last few requests (containerd sends the same RuntimeDefault profile
// for every CRI pod). The cache is keyed by the request's exact contents
// and what else the result depends on, so it changes no result, only how
// fast it comes; it lives in the Floor, and the package has no mutable
// state of its own.
package policy
