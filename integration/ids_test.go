package integration

import (
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// Container IDs that prefix each other (issue 13). runsc resolves an ID it
// cannot match exactly as a prefix of the IDs in its --root; Palisade gives
// each sandbox a root of its own and refuses prefix-sharing IDs within one
// sandbox, so neither a failure nor a neighbour can come of it.

// TestPrefixIDsLifecycle: with "web2" running, "web" runs, execs, pauses,
// is killed and deleted; then the reverse, "web" running and "web2" going
// through its whole life. The running one is untouched: still RUNNING, same
// pid, answering execs.
func TestPrefixIDsLifecycle(t *testing.T) {
	rt := palisadeRunsc(rowRunsc, floorFor(rowRunsc))
	env := startContainerdFor(t, rt, containerdOpts{})
	rootfs := busyboxRootfs(t)

	// The reproduction.
	web2 := env.runDetached(t, rt, rootfs, "web2", "/bin/sleep", "600")
	web2.waitStatus(t, "RUNNING", 20*time.Second)
	if res := env.runRm(t, rt, rootfs, "web", "/bin/sh", "-c", "echo hi"); res.ExitCode != 0 || strings.TrimSpace(res.Stdout) != "hi" {
		t.Fatalf("ctr run --rm web beside web2: %v", res)
	}
	if out := env.ctrOK(t, "container", "ls", "-q"); strings.Contains(" "+strings.Join(strings.Fields(out), " ")+" ", " web ") {
		t.Fatalf("container web left behind: %q", out)
	}

	for _, pair := range [][2]string{{"web2", "web"}, {"app", "app2"}} {
		running, other := pair[0], pair[1]
		var keep *task
		if running == "web2" {
			keep = web2
		} else {
			keep = env.runDetached(t, rt, rootfs, running, "/bin/sleep", "600")
			keep.waitStatus(t, "RUNNING", 20*time.Second)
		}
		pid := initHostPid(t, env, running)
		tk := env.runDetached(t, rt, rootfs, other, "/bin/sleep", "600")
		tk.waitStatus(t, "RUNNING", 20*time.Second)
		if res := tk.exec(t, "e1", "/bin/sh", "-c", "echo $HOSTNAME-ok"); res.ExitCode != 0 {
			t.Fatalf("exec in %s: %v", other, res)
		}
		tk.pause(t)
		tk.waitStatus(t, "PAUSED", 10*time.Second)
		if st := keep.status(t); st != "RUNNING" {
			t.Fatalf("%s is %s after pausing %s", running, st, other)
		}
		tk.resume(t)
		tk.killAndDelete(t)
		if st := keep.status(t); st != "RUNNING" || initHostPid(t, env, running) != pid {
			t.Fatalf("%s is %s (pid %d, was %d) after %s's life", running, st, initHostPid(t, env, running), pid, other)
		}
		if res := keep.exec(t, "e2", "/bin/true"); res.ExitCode != 0 {
			t.Fatalf("exec in %s after %s's life: %v", running, other, res)
		}
		keep.killAndDelete(t)
	}
	assertSandboxRootsGone(t, env)
}

// TestPrefixIDsShimDelete: kill -9 of the shim of "db", whose ID prefixes
// the running "db2"'s; containerd's `shim delete` cleans "db" up and leaves
// "db2" running. Then the reverse, with "dc" kept and "dc2" killed (new
// IDs: containerd drops a dead shim's task asynchronously).
func TestPrefixIDsShimDelete(t *testing.T) {
	rt := palisadeRunsc(rowRunsc, floorFor(rowRunsc))
	env := startContainerdFor(t, rt, containerdOpts{})
	rootfs := busyboxRootfs(t)
	for _, pair := range [][2]string{{"db2", "db"}, {"dc", "dc2"}} {
		keepID, victimID := pair[0], pair[1]
		keep := env.runDetached(t, rt, rootfs, keepID, "/bin/sleep", "600")
		victim := env.runDetached(t, rt, rootfs, victimID, "/bin/sleep", "600")
		keep.waitStatus(t, "RUNNING", 20*time.Second)
		victim.waitStatus(t, "RUNNING", 20*time.Second)
		pid := initHostPid(t, env, keepID)
		if err := syscall.Kill(shimPid(t, env, victimID), syscall.SIGKILL); err != nil {
			t.Fatal(err)
		}
		// containerd sees the shim gone, runs `shim delete` and drops the task.
		for deadline := time.Now().Add(30 * time.Second); ; time.Sleep(100 * time.Millisecond) {
			if st := victim.status(t); st == "" || st == "STOPPED" {
				break
			} else if time.Now().After(deadline) {
				t.Fatalf("task %s is %s 30s after its shim was killed", victimID, st)
			}
		}
		victim.forceRemove(t)
		if st := keep.status(t); st != "RUNNING" || initHostPid(t, env, keepID) != pid {
			t.Fatalf("%s is %s after the shim of %s was killed and cleaned up", keepID, st, victimID)
		}
		if res := keep.exec(t, "e1", "/bin/true"); res.ExitCode != 0 {
			t.Fatalf("exec in %s: %v", keepID, res)
		}
		keep.killAndDelete(t)
	}
	assertSandboxRootsGone(t, env)
}

// TestPrefixIDsInOnePod: within one pod sandbox, runsc cannot address two
// containers one of whose IDs prefixes the other's. The second is refused
// at create, with an error that says why, and the first runs on.
func TestPrefixIDsInOnePod(t *testing.T) {
	rt := palisadeRunsc(rowRunsc, floorFor(rowRunsc))
	env := startContainerdFor(t, rt, containerdOpts{})
	pause := env.runInPod(t, rt, "pod1", "sandbox", "pod1", "/bin/sleep", "600")
	pause.waitStatus(t, "RUNNING", 20*time.Second)
	app := env.runInPod(t, rt, "pod1", "container", "app", "/bin/sleep", "600")
	app.waitStatus(t, "RUNNING", 20*time.Second)
	extra := []string{"-d", "--annotation", "io.kubernetes.cri.container-type=container",
		"--annotation", "io.kubernetes.cri.sandbox-id=pod1"}
	res := env.ctr(t, env.runArgs(t, rt, extra, busyboxRootfs(t), "app2", []string{"/bin/true"})...)
	if res.ExitCode == 0 || !strings.Contains(res.Stderr, "prefix") || !strings.Contains(res.Stderr, `"app"`) {
		t.Fatalf("app2 beside app in one pod: %v, want a refusal naming the prefix", res)
	}
	env.ctr(t, "container", "delete", "app2")
	if st := app.status(t); st != "RUNNING" {
		t.Fatalf("app is %s after app2 was refused", st)
	}
	for _, tk := range []*task{app, pause} {
		tk.killAndDelete(t)
	}
	assertSandboxRootsGone(t, env)
}

// TestPrefixIDsConcurrent is property-style: random sets of IDs over a
// two-letter alphabet (so many share prefixes) run concurrently, some to
// completion with --rm and some kept running; every short one prints its
// own ID, and every long one is still running, with the same pid, when all
// the others are gone.
func TestPrefixIDsConcurrent(t *testing.T) {
	rt := palisadeRunsc(rowRunsc, floorFor(rowRunsc))
	env := startContainerdFor(t, rt, containerdOpts{})
	rootfs := busyboxRootfs(t)
	seed := uint64(time.Now().UnixNano())
	t.Logf("seed %d", seed)
	r := rand.New(rand.NewPCG(seed, 0))
	ids := map[string]bool{}
	for len(ids) < 10 {
		n := 1 + r.IntN(4)
		var b strings.Builder
		for range n {
			b.WriteByte("ab"[r.IntN(2)])
		}
		ids["p"+b.String()] = true
	}
	var long, short []string
	for id := range ids {
		if r.IntN(3) == 0 {
			long = append(long, id)
		} else {
			short = append(short, id)
		}
	}
	t.Logf("long %q short %q", long, short)
	pids := map[string]int{}
	for _, id := range long {
		tk := env.runDetached(t, rt, rootfs, id, "/bin/sleep", "600")
		tk.waitStatus(t, "RUNNING", 30*time.Second)
		pids[id] = initHostPid(t, env, id)
	}
	var wg sync.WaitGroup
	errs := make(chan error, len(short))
	for _, id := range short {
		wg.Go(func() {
			res := env.runRm(t, rt, rootfs, id, "/bin/sh", "-c", "echo "+id)
			if res.ExitCode != 0 || strings.TrimSpace(res.Stdout) != id {
				errs <- fmt.Errorf("%s: %v", id, res)
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	for _, id := range long {
		tk := &task{env: env, ID: id}
		if st := tk.status(t); st != "RUNNING" || initHostPid(t, env, id) != pids[id] {
			t.Errorf("%s is %s after the others ran", id, st)
		}
		tk.killAndDelete(t)
	}
	assertSandboxRootsGone(t, env)
}

// assertSandboxRootsGone: once a namespace's containers are deleted, no
// sandbox root is left below the handler's runsc root. containerd cleans up
// after a dead shim asynchronously (`shim delete`), so it waits a little.
func assertSandboxRootsGone(t *testing.T, env *containerdEnv) {
	t.Helper()
	assertNoSandboxRoots(t, filepath.Join(env.RuntimeRoot, env.Namespace))
}

// assertNoSandboxRoots: the namespace root ns has no sandbox root left.
func assertNoSandboxRoots(t *testing.T, ns string) {
	t.Helper()
	var left []string
	for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(100 * time.Millisecond) {
		ents, err := os.ReadDir(ns)
		if err != nil && !os.IsNotExist(err) {
			t.Fatal(err)
		}
		left = left[:0]
		for _, e := range ents {
			files, _ := os.ReadDir(filepath.Join(ns, e.Name()))
			names := make([]string, 0, len(files))
			for _, f := range files {
				names = append(names, f.Name())
			}
			left = append(left, fmt.Sprintf("%s %q", e.Name(), names))
		}
		if len(left) == 0 || time.Now().After(deadline) {
			break
		}
	}
	if len(left) > 0 {
		t.Errorf("left in %s: %q", ns, left)
	}
}

// killAndDelete ends the task with SIGKILL and deletes it and its container.
func (tk *task) killAndDelete(t testing.TB) {
	t.Helper()
	tk.kill(t, "SIGKILL", false)
	tk.waitStatus(t, "STOPPED", 20*time.Second)
	tk.delete(t)
}
