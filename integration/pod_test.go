package integration

import (
	"fmt"
	"os"
	"os/exec"
	"strconv"
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
// sandbox; a pod container's exit (reported by a wait in the sandbox) leaves the
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
// the wait in its sandbox and reaches ctr.
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

// TestPodContainerExitWhileRootHeld: in a pod whose containers share the
// pod's PID namespace (shareProcessNamespace, or kubectl debug --target), a
// container's exit is reported although another container's shell sits in
// its root (/proc/PID/root). That keeps the exited container's gofer alive,
// so a design that waited for the gofer's exit to learn of the container's
// (tried, and measured in docs/benchmarks.md) would report it running for
// as long as the shell stays; the wait in the sandbox reports it when it ends.
func TestPodContainerExitWhileRootHeld(t *testing.T) {
	rt := palisadeRunsc(rowRunsc, floorFor(rowRunsc))
	env := startContainerdFor(t, rt, containerdOpts{})
	pause := env.runInPod(t, rt, "p", "sandbox", "p", "/bin/sleep", "600")
	pause.waitStatus(t, "RUNNING", 20*time.Second)
	shareNS := []string{"--with-ns", fmt.Sprintf("pid:/proc/%d/ns/pid", pause.pid(t))}
	short := env.runInPodWith(t, rt, "p", "short", shareNS, "/bin/sleep", "4")
	short.waitStatus(t, "RUNNING", 20*time.Second)
	// In the shared namespace the pause process is 1 and short's sleep is 2.
	holder := env.runInPodWith(t, rt, "p", "holder", shareNS, "/bin/sh", "-c",
		"cd /proc/2/root/bin && echo holding $(pwd) && sleep 600")
	holder.waitStatus(t, "RUNNING", 20*time.Second)
	deadline := time.Now().Add(10 * time.Second)
	for log, _ := os.ReadFile(holder.LogPath); !strings.Contains(string(log), "holding"); log, _ = os.ReadFile(holder.LogPath) {
		if time.Now().After(deadline) {
			t.Fatalf("the holder never entered short's root: %q", log)
		}
		time.Sleep(100 * time.Millisecond)
	}
	short.waitStatus(t, "STOPPED", 20*time.Second)
	holder.kill(t, "SIGKILL", false)
	holder.waitStatus(t, "STOPPED", 20*time.Second)
	short.delete(t)
	holder.delete(t)
	pause.kill(t, "SIGKILL", false)
	pause.waitStatus(t, "STOPPED", 20*time.Second)
	pause.delete(t)
}

// runInPodWith is runInPod for a pod's container, with more ctr flags.
func (e *containerdEnv) runInPodWith(t testing.TB, rt runtimeUnderTest, pod, id string, flags []string, cmd ...string) *task {
	t.Helper()
	tk := &task{env: e, ID: id, LogPath: e.Dir + "/" + id + ".log"}
	extra := append([]string{"-d", "--log-uri", "file://" + tk.LogPath,
		"--annotation", "io.kubernetes.cri.container-type=container",
		"--annotation", "io.kubernetes.cri.sandbox-id=" + pod}, flags...)
	e.ctrOK(t, e.runArgs(t, rt, extra, busyboxRootfs(t), id, cmd)...)
	t.Cleanup(func() { tk.forceRemove(t) })
	return tk
}

// pid is the task's host pid from `ctr task ls`.
func (tk *task) pid(t testing.TB) int {
	t.Helper()
	for _, line := range strings.Split(tk.env.ctrOK(t, "task", "ls"), "\n") {
		if f := strings.Fields(line); len(f) >= 2 && f[0] == tk.ID {
			pid, err := strconv.Atoi(f[1])
			if err != nil {
				t.Fatalf("task ls: %q", line)
			}
			return pid
		}
	}
	t.Fatalf("task %s not in task ls", tk.ID)
	return 0
}
