package integration

import (
	"os/exec"
	"strings"
	"testing"
	"time"
)

// runInPod starts a detached container carrying the CRI annotations that
// group it into pod (kind "sandbox" for the pod's first container, else
// "container").
func (e *containerdEnv) runInPod(t testing.TB, rt runtimeUnderTest, pod, kind, id string, cmd ...string) *task {
	t.Helper()
	tk := &task{env: e, ID: id, LogPath: e.Dir + "/" + id + ".log"}
	extra := []string{"-d", "--log-uri", "file://" + tk.LogPath,
		"--annotation", "io.kubernetes.cri.container-type=" + kind,
		"--annotation", "io.kubernetes.cri.sandbox-id=" + pod}
	e.ctrOK(t, e.runArgs(t, rt, extra, busyboxRootfs(t), id, cmd)...)
	t.Cleanup(func() { tk.forceRemove(t) })
	return tk
}

func palisadeShims(t testing.TB, e *containerdEnv) []string {
	t.Helper()
	out, _ := exec.Command("pgrep", "-f", "containerd-shim-palisade-v2 .*-address "+e.Address+"( |$)").Output()
	return strings.Fields(string(out))
}

// TestPodGrouping: the containers of one pod share one shim and one gVisor
// sandbox; a pod container's exit (reported through runsc wait) leaves the
// pod running; the pod's first container ends the sandbox.
func TestPodGrouping(t *testing.T) {
	for _, rt := range palisadeBackends() {
		t.Run(rt.Name, func(t *testing.T) {
			skipPodLimit(t, rt)
			env := startContainerdFor(t, rt, containerdOpts{})
			pause := env.runInPod(t, rt, "pod1", "sandbox", "pod1", "/bin/sleep", "600")
			pause.waitStatus(t, "RUNNING", 20*time.Second)
			app := env.runInPod(t, rt, "pod1", "container", "app1", "/bin/sh", "-c", "echo app-up; sleep 600")
			app.waitStatus(t, "RUNNING", 20*time.Second)
			if shims := palisadeShims(t, env); len(shims) != 1 {
				t.Fatalf("a pod must have one shim, found %d (%v)", len(shims), shims)
			}
			// One sandbox: the app sees the pause container's process. (Behind
			// runc, the containers of a pod made by ctr share no PID namespace;
			// the delegate's grouping is checked in TestDelegatePodGrouping.)
			if onGVisor(rt) {
				res := app.exec(t, "ps", "/bin/ps")
				if res.ExitCode != 0 || !strings.Contains(res.Stdout, "sleep 600") {
					t.Errorf("exec ps in the pod container: %v", res)
				}
			}
			// A second pod gets its own shim.
			other := env.runInPod(t, rt, "pod2", "sandbox", "pod2", "/bin/sleep", "600")
			other.waitStatus(t, "RUNNING", 20*time.Second)
			if shims := palisadeShims(t, env); len(shims) != 2 {
				t.Errorf("two pods: want two shims, found %d", len(shims))
			}

			app.kill(t, "SIGKILL", false)
			app.waitStatus(t, "STOPPED", 20*time.Second)
			app.delete(t)
			if st := pause.status(t); st != "RUNNING" {
				t.Errorf("after the app exited, the pod's sandbox container is %s, want RUNNING", st)
			}
			for _, tk := range []*task{pause, other} {
				tk.kill(t, "SIGKILL", false)
				tk.waitStatus(t, "STOPPED", 20*time.Second)
				tk.delete(t)
			}
		})
	}
}

// TestPodContainerExitCode: the exit status of a pod container comes from
// runsc wait and reaches ctr.
func TestPodContainerExitCode(t *testing.T) {
	for _, rt := range palisadeBackends() {
		t.Run(rt.Name, func(t *testing.T) {
			skipPodLimit(t, rt)
			env := startContainerdFor(t, rt, containerdOpts{})
			pause := env.runInPod(t, rt, "p", "sandbox", "p", "/bin/sleep", "600")
			pause.waitStatus(t, "RUNNING", 20*time.Second)
			extra := []string{"--rm", "--fifo-dir", env.FIFODir,
				"--annotation", "io.kubernetes.cri.container-type=container",
				"--annotation", "io.kubernetes.cri.sandbox-id=p"}
			res := env.ctr(t, env.runArgs(t, rt, extra, busyboxRootfs(t), "c",
				[]string{"/bin/sh", "-c", "echo in-pod; exit 5"})...)
			if res.ExitCode != 5 || res.Stdout != "in-pod\n" {
				t.Errorf("pod container: want exit 5 and its output, got %v", res)
			}
			pause.kill(t, "SIGKILL", false)
			pause.waitStatus(t, "STOPPED", 20*time.Second)
			pause.delete(t)
		})
	}
}
