package integration

import (
	"context"
	"strings"
	"testing"
	"time"
)

// imagesHandler is an extra handler for the end-to-end image policy test:
// runsc with only an image policy, which the examples' busybox passes and
// nginx does not; the pause image passes by its own rule.
const imagesHandler = `
[handlers.gvisor-images]
backend = "runsc"
[handlers.gvisor-images.runsc]
binary = "runsc"
root = "/run/palisade/runsc"
[handlers.gvisor-images.policy.images]
allow = ["registry.k8s.io/e2e-test-images/**"]
deny = ["registry.k8s.io/e2e-test-images/nginx:*"]
deny_latest = true
sandbox_allow = ["registry.k8s.io/pause:*"]
`

// TestKubernetesImagePolicy: through a real kubelet, a pod whose image the
// handler runs starts, and one whose image it denies stays waiting with
// RunContainerError carrying the refusal (image, rule, handler), which is
// what kubectl describe pod shows.
func TestKubernetesImagePolicy(t *testing.T) {
	c := startCluster(t, imagesHandler)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
	defer cancel()
	kubectl := kubectlFunc(t, ctx, c)
	pods := `apiVersion: v1
kind: Pod
metadata: {name: img-allowed}
spec:
  runtimeClassName: gvisor-images
  terminationGracePeriodSeconds: 1
  containers:
  - name: main
    image: registry.k8s.io/e2e-test-images/busybox:1.29-2
    command: ["sleep", "3600"]
---
apiVersion: v1
kind: Pod
metadata: {name: img-denied}
spec:
  runtimeClassName: gvisor-images
  terminationGracePeriodSeconds: 1
  containers:
  - name: main
    image: registry.k8s.io/e2e-test-images/nginx:1.14-2
`
	if _, err := c.KubectlStdin(ctx, []byte(pods), "apply", "-f", "-"); err != nil {
		t.Fatal(err)
	}
	defer kubectl("delete", "pod", "img-allowed", "img-denied", "--ignore-not-found", "--wait", "--timeout=3m")
	if _, err := c.Kubectl(ctx, "wait", "--for=condition=Ready", "pod/img-allowed", "--timeout=5m"); err != nil {
		desc, _ := c.Kubectl(ctx, "describe", "pod", "img-allowed")
		t.Fatalf("img-allowed not Ready: %v\n%s", err, desc)
	}
	want := []string{`handler "gvisor-images"`, `image "registry.k8s.io/e2e-test-images/nginx:1.14-2"`,
		`refused by policy.images.deny[0] "registry.k8s.io/e2e-test-images/nginx:*"`}
	for deadline := time.Now().Add(4 * time.Minute); ; time.Sleep(2 * time.Second) {
		desc, _ := c.Kubectl(ctx, "describe", "pod", "img-denied")
		state := kubectl("get", "pod", "img-denied", "-o", "jsonpath={.status.containerStatuses[0].state.waiting.reason}: {.status.containerStatuses[0].state.waiting.message}")
		if containsAll(string(desc), want) && strings.HasPrefix(state, "RunContainerError") && containsAll(state, want) {
			t.Logf("img-denied: %s", state)
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("img-denied: want RunContainerError naming %q; state %q; describe:\n%s", want, state, desc)
		}
	}
}
