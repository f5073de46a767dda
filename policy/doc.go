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
//
// A control is a small type with one job (floor.go): it reads its keys of
// Config, looks at its part of the spec, and returns its decision entry
// and the changed part, or a refusal naming the field. floor.go writes down
// the order they run in; privileged.go, namespaces.go, devices.go,
// sysctls.go, resources.go and mounts.go (mounts and the service-account
// token, both through ClassifyMount in mountclass.go) are the whole-spec
// controls, caps*.go and seccomp_*.go the process ones. Host facts (whether
// a namespace path is the host's, what a mount source resolves to, where
// kubelet and containerd keep their files) arrive in Support.
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
