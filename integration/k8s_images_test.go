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
	k := &kube{t: t, c: c, ctx: ctx}
	digest, err := criimages.Digest(critestImages(t), criBusyboxImage)
	if err != nil {
		t.Fatal(err)
	}
	pod := func(name, handler, image string) string {
		return `apiVersion: v1
kind: Pod
metadata: {name: ` + name + `}
spec:
  runtimeClassName: ` + handler + `
  terminationGracePeriodSeconds: 1
  containers:
  - name: main
    image: ` + image + `
    command: ["sleep", "3600"]
`
	}
	k.apply(strings.Join([]string{
		pod("img-allowed", "gvisor-images", criBusyboxImage),
		pod("img-denied", "gvisor-images", criNginxImage),
		pod("img-pinned", "gvisor-pinned", "registry.k8s.io/e2e-test-images/busybox@"+digest.String()),
		pod("img-unpinned", "gvisor-pinned", criBusyboxImage),
	}, "---\n"))
	defer k.run("delete", "pod", "img-allowed", "img-denied", "img-pinned", "img-unpinned", "--ignore-not-found", "--wait", "--timeout=3m")
	k.waitReady("img-allowed")
	k.waitReady("img-pinned")
	for name, want := range map[string][]string{
		"img-denied": {`handler "gvisor-images"`, `image "` + criNginxImage + `"`,
			`refused by policy.images.deny[0] "registry.k8s.io/e2e-test-images/nginx:*"`},
		"img-unpinned": {`handler "gvisor-pinned"`, `image "` + criBusyboxImage + `"`,
			"refused by policy.images.require_digest: not pinned by digest"},
	} {
		w := k.waitWaiting(name, "RunContainerError")
		if !containsAll(w.Message, want) {
			t.Errorf("%s: RunContainerError %q lacks %q", name, w.Message, want)
		}
		// What kubectl describe pod shows, as a user reads it.
		if desc := k.run("describe", "pod", name); !containsAll(desc, want) {
			t.Errorf("%s: describe lacks %q:\n%s", name, want, desc)
		}
		t.Logf("%s: %s", name, w.Message)
	}
}
