//go:build tools

// Package tools pins the Kubernetes components the one-node cluster harness
// (integration/k8s) runs. integration/tools/install.sh builds them from this module
// with `go build`, so their versions come from go.mod and go.sum here, never from the
// network at build time beyond the module proxy.
package tools

import (
	_ "k8s.io/kubernetes/cmd/kube-apiserver"
	_ "k8s.io/kubernetes/cmd/kube-controller-manager"
	_ "k8s.io/kubernetes/cmd/kube-scheduler"
	_ "k8s.io/kubernetes/cmd/kubectl"
	_ "k8s.io/kubernetes/cmd/kubelet"
)
