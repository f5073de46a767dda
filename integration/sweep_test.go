package integration

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/palisade-runtime/palisade/integration/internal/hostcheck"
)

// A run of these tests that is itself killed (SIGTERM from a CI timeout, ^C)
// runs none of its t.Cleanup: its shims, what runs under them, its mounts and
// its directories stay. Each containerd env records the test process that owns
// it (ownerFile), and the next run sweeps every env whose owner is gone before
// it starts. Envs of a run in progress, here or next to it, are left alone.

// ownerFile, in an env's directory, holds the pid and start time of the test
// process that made it.
const ownerFile = "owner"

// writeOwner records this test process as the owner of env directory dir.
func writeOwner(dir string) error {
	self, ok := hostcheck.Lookup(os.Getpid())
	if !ok {
		return fmt.Errorf("no /proc entry for this process (%d)", os.Getpid())
	}
	return os.WriteFile(filepath.Join(dir, ownerFile), fmt.Appendf(nil, "%d %d\n", self.PID, self.Start), 0o644)
}

// ownerAlive reports whether env directory dir belongs to a live test process.
// A directory without an owner file (made before owner files existed) counts
// as alive while a containerd runs with its config.
func ownerAlive(dir string, procs []hostcheck.Proc) bool {
	data, err := os.ReadFile(filepath.Join(dir, ownerFile))
	if err != nil {
		return slices.ContainsFunc(procs, func(p hostcheck.Proc) bool { return strings.Contains(p.Cmdline, "--config "+dir+"/") })
	}
	var o hostcheck.Proc
	if _, err := fmt.Sscanf(string(data), "%d %d", &o.PID, &o.Start); err != nil {
		return false
	}
	return hostcheck.Alive(o)
}

// envDirOf returns the env directory a harness process belongs to: the one in
// the -address of itself or of its nearest shim ancestor, or containerd's
// --config ("" if none).
func envDirOf(p hostcheck.Proc, byPID map[int]hostcheck.Proc) string {
	for depth := 0; depth < 64; depth++ {
		for _, flag := range []string{" -address ", " --config "} { // a shim, containerd
			if _, rest, ok := strings.Cut(p.Cmdline, flag+harnessTmpPrefix); ok {
				name, _, _ := strings.Cut(rest, "/")
				return harnessTmpPrefix + name
			}
		}
		parent, ok := byPID[p.PPID]
		if !ok {
			return ""
		}
		p = parent
	}
	return ""
}

// sweepInterruptedRuns kills the processes of env directories whose owner is
// gone, unmounts and removes those directories, and removes the shim build
// directories of test processes that are gone. It returns what it did.
func sweepInterruptedRuns() ([]string, error) {
	snap, err := hostcheck.Take(hostcheck.Rules{ProcNames: []string{"*"}, ProcOwners: []string{harnessTmpPrefix}})
	if err != nil {
		return nil, err
	}
	byPID := map[int]hostcheck.Proc{}
	for _, p := range snap.Procs {
		byPID[p.PID] = p
	}
	var done []string
	dead := map[string]bool{}
	var kill []hostcheck.Proc
	for _, p := range snap.Procs {
		dir := envDirOf(p, byPID)
		if dir == "" {
			continue
		}
		if _, seen := dead[dir]; !seen {
			dead[dir] = !ownerAlive(dir, snap.Procs)
		}
		if dead[dir] {
			kill = append(kill, p)
			done = append(done, "killed "+p.String())
		}
	}
	if err := hostcheck.Kill(kill); err != nil {
		return done, err
	}
	dirs, _ := filepath.Glob(harnessTmpPrefix + "*")
	for _, dir := range dirs {
		if _, err := os.Stat(filepath.Join(dir, "config.toml")); err != nil || ownerAlive(dir, snap.Procs) {
			continue // not a containerd env (rootfs directories are shared), or still owned
		}
		if _, err := hostcheck.UnmountAll(dir); err != nil {
			return done, err
		}
		if err := os.RemoveAll(dir); err != nil {
			return done, err
		}
		done = append(done, "removed "+dir)
	}
	builds, _ := filepath.Glob(filepath.Join(os.TempDir(), "palisade-it-bin-*"))
	for _, b := range builds {
		pid, err := strconv.Atoi(strings.TrimPrefix(filepath.Base(b), "palisade-it-bin-"))
		if _, alive := hostcheck.Lookup(pid); err != nil || alive {
			continue
		}
		if err := os.RemoveAll(b); err != nil {
			return done, err
		}
		done = append(done, "removed "+b)
	}
	return done, nil
}

// envSweepHelper makes the test binary a stand-in shim that only sleeps.
const envSweepHelper = "PALISADE_SWEEP_HELPER"

// TestSweepInterruptedRuns: a stand-in shim of an env whose owner is gone is
// killed and its directory removed; one of an env this process owns is left.
func TestSweepInterruptedRuns(t *testing.T) {
	requireIntegration(t)
	start := func(dir string) *exec.Cmd {
		t.Helper()
		cmd := exec.Command(os.Args[0])
		cmd.Args = []string{"containerd-shim-sweep-v2", "-namespace", "x", "-address", dir + "/c.sock"}
		cmd.Env = append(os.Environ(), envSweepHelper+"=1")
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { cmd.Process.Kill(); cmd.Wait() })
		return cmd
	}
	env := func(owner string) string {
		dir, err := os.MkdirTemp("/tmp", strings.TrimPrefix(harnessTmpPrefix, "/tmp/"))
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { os.RemoveAll(dir) })
		for name, data := range map[string]string{"config.toml": "", ownerFile: owner} {
			if err := os.WriteFile(filepath.Join(dir, name), []byte(data), 0o644); err != nil {
				t.Fatal(err)
			}
		}
		return dir
	}
	// A finished process is a gone owner.
	gone := exec.Command("true")
	if err := gone.Run(); err != nil {
		t.Fatal(err)
	}
	deadDir := env(fmt.Sprintf("%d 1\n", gone.Process.Pid))
	liveDir := env("")
	if err := writeOwner(liveDir); err != nil {
		t.Fatal(err)
	}
	dead, live := start(deadDir), start(liveDir)
	exited := make(chan error, 1)
	go func() { exited <- dead.Wait() }()
	// Let both exec and show their command lines.
	time.Sleep(200 * time.Millisecond)

	swept, err := sweepInterruptedRuns()
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("swept: %q", swept)
	select {
	case err := <-exited:
		if ws, ok := dead.ProcessState.Sys().(syscall.WaitStatus); !ok || ws.Signal() != syscall.SIGKILL {
			t.Errorf("the stand-in shim of the dead env ended with %v, want killed", err)
		}
	case <-time.After(5 * time.Second):
		t.Error("the stand-in shim of the dead env still runs")
	}
	if _, err := os.Stat(deadDir); !os.IsNotExist(err) {
		t.Errorf("the dead env's directory is still there: %v", err)
	}
	if _, err := os.Stat(liveDir); err != nil {
		t.Errorf("the live env's directory was removed: %v", err)
	}
	if err := live.Process.Signal(syscall.Signal(0)); err != nil {
		t.Errorf("the stand-in shim of this process's env was killed: %v", err)
	}
}
