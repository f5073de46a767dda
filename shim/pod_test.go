package shim

import (
	"testing"

	"github.com/palisade-runtime/palisade/policy"
)

// The decision record names a CRI container's pod from containerd's
// annotations, and nothing outside CRI.
func TestPodOf(t *testing.T) {
	if p := podOf(map[string]string{"io.kubernetes.cri.container-name": "app"}); p != nil {
		t.Errorf("a container without a sandbox name has pod %+v", p)
	}
	got := podOf(map[string]string{
		annoSandboxNamespace: "shop", annoSandboxName: "web-0", annoSandboxUID: "6f1c",
		annoContainerName: "nginx", "io.kubernetes.cri.container-type": "container",
	})
	want := policy.PodRef{Namespace: "shop", Name: "web-0", UID: "6f1c", Container: "nginx"}
	if got == nil || *got != want {
		t.Errorf("podOf = %+v, want %+v", got, want)
	}
}
