package integration

import (
	"syscall"
	"testing"
	"time"

	"github.com/containerd/errdefs"
)

// TestKillAfterExitIsNotFound: signalling a container whose process has
// ended answers NotFound ("process already finished"), as containerd's own
// shims do. CRI relies on it: StopContainer and the pod sandbox's exit
// handler treat NotFound as stopped, and retry anything else until their
// deadline (critest found StopPodSandbox hanging for its full minute on
// runsc's "sandbox is not running"). Checked for a pod's first container
// and for a later one, which runsc reports differently.
func TestKillAfterExitIsNotFound(t *testing.T) {
	for _, rt := range palisadeBackends() {
		t.Run(rt.Name, func(t *testing.T) {
			skipPodLimit(t, rt)
			env := startContainerdFor(t, rt, containerdOpts{})
			pause := env.runInPod(t, rt, "pod1", "sandbox", "pod1", "/bin/sleep", "600")
			pause.waitStatus(t, "RUNNING", 20*time.Second)
			app := env.runInPod(t, rt, "pod1", "container", "app1", "/bin/true")
			app.waitStatus(t, "STOPPED", 20*time.Second)
			pause.kill(t, "SIGKILL", false)
			pause.waitStatus(t, "STOPPED", 20*time.Second)
			for _, id := range []string{"app1", "pod1"} {
				tk, ctx := env.task(t, id)
				err := tk.Kill(ctx, syscall.SIGKILL)
				if !errdefs.IsNotFound(err) {
					t.Errorf("kill of %s after its exit: %v, want NotFound (process already finished)", id, err)
				}
			}
			app.delete(t)
			pause.delete(t)
		})
	}
}
