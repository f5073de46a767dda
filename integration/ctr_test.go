package integration

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"
)

// ctrTimeout bounds one ctr call. Containers in these tests live for seconds; a
// call taking this long is hung, and the failure should say so rather than let
// `go test -timeout` kill the binary before cleanups run.
const ctrTimeout = 60 * time.Second

// containerPATH is set in every container: with --rootfs there is no image config
// to supply an environment, and without PATH `sh` is not found.
const containerPATH = "PATH=/bin:/sbin:/usr/bin:/usr/sbin"

// ctrResult is the outcome of one ctr call that ran to completion.
type ctrResult struct {
	Stdout, Stderr string
	ExitCode       int
}

func (r ctrResult) String() string {
	return fmt.Sprintf("exit %d\nstdout: %q\nstderr: %q", r.ExitCode, r.Stdout, r.Stderr)
}

// ContainerStderr is Stderr without ctr's own log lines (ctr prints, for example,
// a cgroup v1 deprecation warning on every run here), leaving what the container
// wrote.
func (r ctrResult) ContainerStderr() string {
	var keep []string
	for _, line := range strings.SplitAfter(r.Stderr, "\n") {
		if !strings.HasPrefix(line, `time="`) {
			keep = append(keep, line)
		}
	}
	return strings.Join(keep, "")
}

// ctr runs `ctr --address <sock> -n <namespace> args...` and returns its result
// whatever the exit code. It fails t only if ctr could not run or timed out. Each
// call goes to the transcript printed when the test fails.
func (e *containerdEnv) ctr(t testing.TB, args ...string) ctrResult {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), ctrTimeout)
	defer cancel()
	return e.ctrContext(ctx, t, args...)
}

// ctrContext is ctr with the caller's deadline instead of ctrTimeout.
func (e *containerdEnv) ctrContext(ctx context.Context, t testing.TB, args ...string) ctrResult {
	t.Helper()
	bin, err := lookupTool("ctr")
	if err != nil {
		t.Fatal(err)
	}
	full := append([]string{"--address", e.Address, "-n", e.Namespace}, args...)
	cmd := exec.CommandContext(ctx, bin, full...)
	cmd.WaitDelay = time.Second // do not hang on the pipes if ctr is killed
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	start := time.Now()
	err = cmd.Run()
	res := ctrResult{Stdout: stdout.String(), Stderr: stderr.String()}
	var exit *exec.ExitError
	switch {
	case err == nil:
	case errors.As(err, &exit) && ctx.Err() == nil:
		res.ExitCode = exit.ExitCode()
	default:
		res.ExitCode = -1
	}
	e.record(args, time.Since(start), res)
	if ctx.Err() != nil {
		t.Fatalf("ctr %s: %v after %v", strings.Join(args, " "), ctx.Err(), time.Since(start).Round(time.Millisecond))
	}
	if res.ExitCode == -1 {
		t.Fatalf("ctr %s: %v", strings.Join(args, " "), err)
	}
	return res
}

// record appends a call to the transcript, without the cgroup v1 deprecation
// warning ctr prints on every call on this host.
func (e *containerdEnv) record(args []string, took time.Duration, res ctrResult) {
	var stderr []string
	for _, line := range strings.SplitAfter(res.Stderr, "\n") {
		if !strings.Contains(line, "support for cgroup v1 is deprecated") {
			stderr = append(stderr, line)
		}
	}
	res.Stderr = strings.Join(stderr, "")
	e.mu.Lock()
	defer e.mu.Unlock()
	fmt.Fprintf(&e.log, "$ ctr %s  (%v)\n%s\n", strings.Join(args, " "), took.Round(time.Millisecond), res)
}

// ctrOK is ctr that fails t unless ctr exits 0, and returns stdout.
func (e *containerdEnv) ctrOK(t testing.TB, args ...string) string {
	t.Helper()
	res := e.ctr(t, args...)
	if res.ExitCode != 0 {
		t.Fatalf("ctr %s: %v", strings.Join(args, " "), res)
	}
	return res.Stdout
}

// runArgs builds `ctr run` arguments up to and including the command.
func (e *containerdEnv) runArgs(t testing.TB, rt runtimeUnderTest, extra []string, rootfs, id string, cmd []string) []string {
	t.Helper()
	e.useID(id)
	args := append([]string{"run", "--env", containerPATH}, rt.ctrFlags(t, e)...)
	args = append(args, extra...)
	args = append(args, "--rootfs", rootfs, id)
	return append(args, cmd...)
}

// runRm runs `ctr run --rm` in the foreground: ctr exits with the container's exit
// code, and the container's stdout and stderr are ctr's.
func (e *containerdEnv) runRm(t testing.TB, rt runtimeUnderTest, rootfs, id string, cmd ...string) ctrResult {
	t.Helper()
	return e.ctr(t, e.runArgs(t, rt, []string{"--rm", "--fifo-dir", e.FIFODir}, rootfs, id, cmd)...)
}

// task is a detached container started by runDetached.
type task struct {
	env *containerdEnv
	ID  string
	// LogPath receives the init process's stdout and stderr (ctr --log-uri): a
	// detached ctr exits, so nobody would read FIFOs.
	LogPath string
}

// runDetached starts `ctr run -d` and registers a cleanup that force-removes the
// task and container if the test has not deleted them (it runs before the leak
// check, so a test that fails midway does not also report leaks).
func (e *containerdEnv) runDetached(t testing.TB, rt runtimeUnderTest, rootfs, id string, cmd ...string) *task {
	t.Helper()
	tk := &task{env: e, ID: id, LogPath: filepath.Join(e.Dir, id+".log")}
	e.ctrOK(t, e.runArgs(t, rt, []string{"-d", "--log-uri", "file://" + tk.LogPath}, rootfs, id, cmd)...)
	t.Cleanup(func() { tk.forceRemove(t) })
	return tk
}

// exec runs cmd in the task with `ctr task exec` and waits for it.
func (tk *task) exec(t testing.TB, execID string, cmd ...string) ctrResult {
	t.Helper()
	args := append([]string{"task", "exec", "--fifo-dir", tk.env.FIFODir, "--exec-id", execID, tk.ID}, cmd...)
	return tk.env.ctr(t, args...)
}

// kill sends signal (such as "SIGKILL") to the init process, or with all to every
// process of the task.
func (tk *task) kill(t testing.TB, signal string, all bool) {
	t.Helper()
	args := []string{"task", "kill", "-s", signal}
	if all {
		args = append(args, "--all")
	}
	tk.env.ctrOK(t, append(args, tk.ID)...)
}

func (tk *task) pause(t testing.TB)     { t.Helper(); tk.env.ctrOK(t, "task", "pause", tk.ID) }
func (tk *task) resume(t testing.TB)    { t.Helper(); tk.env.ctrOK(t, "task", "resume", tk.ID) }
func (tk *task) ps(t testing.TB) string { t.Helper(); return tk.env.ctrOK(t, "task", "ps", tk.ID) }
func (tk *task) metrics(t testing.TB) string {
	t.Helper()
	return tk.env.ctrOK(t, "task", "metrics", tk.ID)
}

// status returns the task's status from `ctr task ls` (RUNNING, PAUSED, STOPPED,
// ...), or "" if there is no such task.
func (tk *task) status(t testing.TB) string {
	t.Helper()
	for _, line := range strings.Split(tk.env.ctrOK(t, "task", "ls"), "\n") {
		f := strings.Fields(line)
		if len(f) == 3 && f[0] == tk.ID {
			return f[2]
		}
	}
	return ""
}

// waitStatus polls until the task has status want; ctr has no `task wait`.
func (tk *task) waitStatus(t testing.TB, want string, timeout time.Duration) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		got := tk.status(t)
		if got == want {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("task %s: status %q after %v, want %q", tk.ID, got, timeout, want)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// delete removes the stopped task and its container.
func (tk *task) delete(t testing.TB) {
	t.Helper()
	tk.env.ctrOK(t, "task", "delete", tk.ID)
	tk.env.ctrOK(t, "container", "delete", tk.ID)
}

// forceRemove kills and deletes whatever is left of the task, ignoring errors. It
// waits for the kill to land before deleting: `task delete --force` right after a
// kill races the sandbox's exit under runsc ("sandbox is not running").
func (tk *task) forceRemove(t testing.TB) {
	if st := tk.status(t); st != "" {
		if st == "PAUSED" {
			// A frozen runsc sandbox does not act on SIGKILL until thawed.
			tk.env.ctr(t, "task", "resume", tk.ID)
		}
		if st != "STOPPED" {
			tk.env.ctr(t, "task", "kill", "-s", "SIGKILL", "--all", tk.ID)
			for deadline := time.Now().Add(5 * time.Second); time.Now().Before(deadline) && tk.status(t) != "STOPPED"; {
				time.Sleep(50 * time.Millisecond)
			}
		}
		if tk.env.ctr(t, "task", "delete", tk.ID).ExitCode != 0 {
			tk.env.ctr(t, "task", "delete", "--force", tk.ID)
		}
	}
	if slices.Contains(strings.Fields(tk.env.ctr(t, "container", "ls", "-q").Stdout), tk.ID) {
		tk.env.ctr(t, "container", "delete", tk.ID)
	}
}
