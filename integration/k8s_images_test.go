package integration

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/palisade-runtime/palisade/integration/internal/criimages"
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
[handlers.gvisor-pinned]
backend = "runsc"
[handlers.gvisor-pinned.runsc]
binary = "runsc"
root = "/run/palisade/runsc"
[handlers.gvisor-pinned.policy.images]
allow = ["registry.k8s.io/**"]
require_digest = true
sandbox_allow = ["registry.k8s.io/pause:*"]
`

// TestKubernetesImagePolicy: through a real kubelet, a pod whose image the
// handler runs starts, and one whose image it denies stays waiting with
// RunContainerError carrying the refusal (image, rule, handler), which is
// what kubectl describe pod shows. gvisor-pinned is the "done": only
// digest-pinned images from one registry.
func TestKubernetesImagePolicy(t *testing.T) {
	c := startCluster(t, imagesHandler)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
	defer cancel()
	kubectl := kubectlFunc(t, ctx, c)
	digest, err := criimages.Digest(critestImages(t), criBusyboxImage)
	if err != nil {
		t.Fatal(err)
	}
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
---
apiVersion: v1
kind: Pod
metadata: {name: img-pinned}
spec:
  runtimeClassName: gvisor-pinned
  terminationGracePeriodSeconds: 1
  containers:
  - name: main
    image: registry.k8s.io/e2e-test-images/busybox@` + digest.String() + `
    command: ["sleep", "3600"]
---
apiVersion: v1
kind: Pod
metadata: {name: img-unpinned}
spec:
  runtimeClassName: gvisor-pinned
  terminationGracePeriodSeconds: 1
  containers:
  - name: main
    image: ` + criBusyboxImage + `
    command: ["sleep", "3600"]
`
	if _, err := c.KubectlStdin(ctx, []byte(pods), "apply", "-f", "-"); err != nil {
		t.Fatal(err)
	}
	defer kubectl("delete", "pod", "img-allowed", "img-denied", "img-pinned", "img-unpinned", "--ignore-not-found", "--wait", "--timeout=3m")
	for _, pod := range []string{"img-allowed", "img-pinned"} {
		if _, err := c.Kubectl(ctx, "wait", "--for=condition=Ready", "pod/"+pod, "--timeout=5m"); err != nil {
			desc, _ := c.Kubectl(ctx, "describe", "pod", pod)
			t.Fatalf("%s not Ready: %v\n%s", pod, err, desc)
		}
	}
	for pod, want := range map[string][]string{
		"img-denied": {`handler "gvisor-images"`, `image "registry.k8s.io/e2e-test-images/nginx:1.14-2"`,
			`refused by policy.images.deny[0] "registry.k8s.io/e2e-test-images/nginx:*"`},
		"img-unpinned": {`handler "gvisor-pinned"`, `image "` + criBusyboxImage + `"`,
			"refused by policy.images.require_digest: not pinned by digest"},
	} {
		for deadline := time.Now().Add(4 * time.Minute); ; time.Sleep(2 * time.Second) {
			desc, _ := c.Kubectl(ctx, "describe", "pod", pod)
			state := kubectl("get", "pod", pod, "-o", "jsonpath={.status.containerStatuses[0].state.waiting.reason}: {.status.containerStatuses[0].state.waiting.message}")
			if containsAll(string(desc), want) && strings.HasPrefix(state, "RunContainerError") && containsAll(state, want) {
				t.Logf("%s: %s", pod, state)
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("%s: want RunContainerError naming %q; state %q; describe:\n%s", pod, want, state, desc)
			}
		}
	}
}
