package integration

import (
	"os"
	"os/exec"
	"strings"
	"testing"
	"time"
)

// The task API through real containerd and ctr, on every Palisade backend.
// Each test ends with the harness's leak check (no shim, runsc, mount, socket
// or cgroup left).

func TestTaskExitCodeAndStdio(t *testing.T) {
	for _, rt := range palisadeBackends() {
		t.Run(rt.Name, func(t *testing.T) {
			env := startContainerdFor(t, rt, containerdOpts{})
			res := env.runRm(t, rt, busyboxRootfs(t), "exit7",
				"/bin/sh", "-c", "echo to-stdout; echo to-stderr >&2; exit 7")
			if res.ExitCode != 7 || res.Stdout != "to-stdout\n" || res.ContainerStderr() != "to-stderr\n" {
				t.Fatalf("want exit 7, stdout %q, stderr %q; got %v", "to-stdout\n", "to-stderr\n", res)
			}
			if res := env.runRm(t, rt, busyboxRootfs(t), "true", "/bin/true"); res.ExitCode != 0 {
				t.Fatalf("true: %v", res)
			}
			// The container really ran on its row's kernel: gVisor's, not the
			// host's, on the runsc rows; the host's behind the delegate to runc.
			// (dmesg would show gVisor's banner, but the floor denies syslog;
			// see TestPolicyFloorInsideContainer.)
			host, err := os.ReadFile("/proc/sys/kernel/osrelease")
			if err != nil {
				t.Fatal(err)
			}
			res = env.runRm(t, rt, busyboxRootfs(t), "version", "/bin/cat", "/proc/version")
			onHost := strings.Contains(res.Stdout, strings.TrimSpace(string(host)))
			if res.ExitCode != 0 || onHost == onGVisor(rt) || !strings.HasPrefix(res.Stdout, "Linux version") {
				t.Fatalf("/proc/version inside the container (gVisor's: %v; host's is %s): %v", onGVisor(rt), host, res)
			}
		})
	}
}

// TestTaskTerminal runs `ctr run -t` under a pseudo-terminal (script(1)), so
// the console socket path of the shim is used.
func TestTaskTerminal(t *testing.T) {
	script, err := exec.LookPath("script")
	if err != nil {
		skipOrFatal(t, "script(1) from bsdutils is needed for a terminal: %v", err)
	}
	for _, rt := range palisadeBackends() {
		t.Run(rt.Name, func(t *testing.T) {
			env := startContainerdFor(t, rt, containerdOpts{})
			ctrBin, err := lookupTool("ctr")
			if err != nil {
				t.Fatal(err)
			}
			args := env.runArgs(t, rt, []string{"--rm", "-t", "--fifo-dir", env.FIFODir}, busyboxRootfs(t), "tty",
				[]string{"/bin/sh", "-c", "[ -t 0 ] && [ -t 1 ] && echo is-a-tty; stty size"})
			cmdline := ctrBin + " --address " + env.Address + " -n " + env.Namespace + " " + strings.Join(quoteAll(args), " ")
			cmd := exec.Command(script, "-qec", cmdline, "/dev/null")
			cmd.Env = append(os.Environ(), "COLUMNS=100", "LINES=30")
			out, err := cmd.CombinedOutput()
			if err != nil {
				t.Fatalf("ctr run -t: %v\n%s", err, out)
			}
			if !strings.Contains(string(out), "is-a-tty") {
				t.Fatalf("stdin/stdout are not a terminal inside the container:\n%s", out)
			}
		})
	}
}

func quoteAll(args []string) []string {
	out := make([]string, len(args))
	for i, a := range args {
		out[i] = "'" + strings.ReplaceAll(a, "'", `'\''`) + "'"
	}
	return out
}

func TestTaskExecKillPausePidsStatsUpdate(t *testing.T) {
	for _, rt := range palisadeBackends() {
		t.Run(rt.Name, func(t *testing.T) {
			env := startContainerdFor(t, rt, containerdOpts{})
			// The init traps TERM: a pid-1 process without a handler ignores
			// SIGTERM under runc (the kernel's rule for namespace inits).
			tk := env.runDetached(t, rt, busyboxRootfs(t), "d1", "/bin/sh", "-c",
				"trap 'exit 143' TERM; echo started; sleep 600 & wait")
			tk.waitStatus(t, "RUNNING", 20*time.Second)

			res := tk.exec(t, "e1", "/bin/sh", "-c", "echo exec-out; echo exec-err >&2; exit 3")
			if res.ExitCode != 3 || res.Stdout != "exec-out\n" || res.ContainerStderr() != "exec-err\n" {
				t.Fatalf("exec: want exit 3 and both streams; got %v", res)
			}
			// Pids are gVisor's on the runsc rows (the init is pid 1 in the
			// sandbox); behind runc they are the host's.
			ps := tk.ps(t)
			if lines := strings.Split(strings.TrimSpace(ps), "\n"); len(lines) < 2 || (strings.Fields(lines[1])[0] == "1") != onGVisor(rt) {
				t.Errorf("task ps: want a header and pid 1 only on gVisor (%v), got %q", onGVisor(rt), ps)
			}
			m := tk.metrics(t)
			if !strings.Contains(m, "memory") {
				t.Errorf("task metrics: no memory figures:\n%s", m)
			}
			// ctr has no task update; the Go client sends the same request.
			const limit = 256 << 20
			env.updateMemoryLimit(t, tk.ID, limit)
			if got := env.hostMemoryLimit(t, tk.ID); got != limit {
				t.Errorf("memory limit after update: %d, want %d", got, limit)
			}

			tk.pause(t)
			tk.waitStatus(t, "PAUSED", 10*time.Second)
			if res := tk.exec(t, "e-paused", "/bin/true"); res.ExitCode == 0 {
				t.Errorf("exec into a paused container succeeded")
			}
			tk.resume(t)
			tk.waitStatus(t, "RUNNING", 10*time.Second)

			// gVisor delivers SIGTERM to the init (sleep); the host kernel
			// does not deliver a signal that the init of a PID namespace has
			// no handler for, so the runc row stops it with SIGKILL.
			stop := "SIGTERM"
			if !onGVisor(rt) {
				stop = "SIGKILL"
			}
			tk.kill(t, stop, false)
			tk.waitStatus(t, "STOPPED", 20*time.Second)
			tk.delete(t)
			if b, err := os.ReadFile(tk.LogPath); err != nil || !strings.Contains(string(b), "started") {
				t.Errorf("init output in %s: %q, %v", tk.LogPath, b, err)
			}
		})
	}
}

// TestTaskKillAll: --all reaches processes other than the init.
func TestTaskKillAll(t *testing.T) {
	for _, rt := range palisadeBackends() {
		t.Run(rt.Name, func(t *testing.T) {
			env := startContainerdFor(t, rt, containerdOpts{})
			// The init ignores SIGTERM, so only --all's SIGKILL to every process
			// (sent as SIGKILL here) can stop it together with its children.
			tk := env.runDetached(t, rt, busyboxRootfs(t), "ka", "/bin/sh", "-c",
				"trap '' TERM; sleep 600 & sleep 600 & wait")
			tk.waitStatus(t, "RUNNING", 20*time.Second)
			tk.kill(t, "SIGTERM", false)
			time.Sleep(500 * time.Millisecond)
			if st := tk.status(t); st != "RUNNING" {
				t.Fatalf("SIGTERM to an init that ignores it: status %s, want RUNNING", st)
			}
			tk.kill(t, "SIGKILL", true)
			tk.waitStatus(t, "STOPPED", 20*time.Second)
			tk.delete(t)
		})
	}
}

// TestTwoContainersAtOnce: two plain containers, two shims, both usable.
func TestTwoContainersAtOnce(t *testing.T) {
	for _, rt := range palisadeBackends() {
		t.Run(rt.Name, func(t *testing.T) {
			env := startContainerdFor(t, rt, containerdOpts{})
			a := env.runDetached(t, rt, busyboxRootfs(t), "ca", "/bin/sleep", "600")
			b := env.runDetached(t, rt, busyboxRootfs(t), "cb", "/bin/sleep", "600")
			a.waitStatus(t, "RUNNING", 20*time.Second)
			b.waitStatus(t, "RUNNING", 20*time.Second)
			for _, tk := range []*task{a, b} {
				res := tk.exec(t, "who", "/bin/hostname")
				if res.ExitCode != 0 || strings.TrimSpace(res.Stdout) == "" {
					t.Errorf("exec in %s: %v", tk.ID, res)
				}
			}
			for _, tk := range []*task{a, b} {
				tk.kill(t, "SIGKILL", false)
				tk.waitStatus(t, "STOPPED", 20*time.Second)
				tk.delete(t)
			}
		})
	}
}

// TestShimCrashCleanup kills the Palisade shim while its container runs.
// containerd must notice, run `containerd-shim-palisade-v2 delete` (the
// cleanup path) and leave no runsc sandbox, gofer, mount or socket.
func TestShimCrashCleanup(t *testing.T) {
	for _, rt := range palisadeBackends() {
		t.Run(rt.Name, func(t *testing.T) {
			env := startContainerdFor(t, rt, containerdOpts{})
			l := watchEvents(t, env, "crash")
			tk := env.runDetached(t, rt, busyboxRootfs(t), "crash", "/bin/sleep", "600")
			tk.waitStatus(t, "RUNNING", 20*time.Second)
			out, err := exec.Command("pgrep", "-f", "containerd-shim-palisade-v2 .*-address "+env.Address+"( |$)").Output()
			pids := strings.Fields(string(out))
			if err != nil || len(pids) != 1 {
				t.Fatalf("want exactly one Palisade shim for this containerd, got %q (%v)", out, err)
			}
			if err := exec.Command("kill", "-9", pids[0]).Run(); err != nil {
				t.Fatal(err)
			}
			// containerd reaps the task of a dead shim itself: it runs the
			// shim's delete, publishes the exit and removes the task.
			tk.waitStatus(t, "", 20*time.Second)
			env.ctrOK(t, "container", "rm", tk.ID)
			// Each once: containerd's exit and delete for the dead shim, and
			// none from the killed backend (issue 7).
			waitEvents(t, l, "/tasks/delete", 1, 5*time.Second)
			checkEventCounts(t, l, map[string]int{"/tasks/create": 1, "/tasks/start": 1, "/tasks/exit": 1, "/tasks/delete": 1})
			_, exits := l.snapshot()
			if len(exits) == 1 && exits[0].ExitStatus != 137 {
				t.Errorf("exit of a container whose shim was killed: %d, want 137", exits[0].ExitStatus)
			}
		})
	}
}
