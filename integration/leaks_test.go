package integration

import (
	"crypto/sha256"
	"fmt"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/palisade-runtime/palisade/integration/internal/hostcheck"
)

// leakSettle is how long checkNoLeaks waits for leaks to go away: shims exit and
// remove their sockets asynchronously after `ctr task delete` returns.
const leakSettle = 5 * time.Second

// globalShimSocketDir is where containerd-derived shims put their sockets when
// they ignore the socket_dir containerd hands them.
const globalShimSocketDir = "/run/containerd/s"

// envLeakCheck=strict widens the leak check from what an env owns to the whole
// host; only for a machine that runs nothing else (CI), and tests not in parallel.
const envLeakCheck = "PALISADE_LEAKCHECK"

// leakBaseline is what was on the host before a test, and how to look again.
type leakBaseline struct {
	rules func() hostcheck.Rules // evaluated at each look: it names the IDs used so far
	snap  hostcheck.Snapshot
}

// leakRules watches what containerd, its shims and the runtimes behind them can
// leave, limited to what this env can own so that other containerds on the host
// (a developer's, a concurrent test run) are not blamed:
//   - shim, runc and runsc processes whose command line, or an ancestor's, names
//     e.Dir (shims get -address e.Dir/c.sock; runsc gets --root and --bundle there);
//   - mounts below e.Dir, or anywhere with the namespace in their path;
//   - entries in the private shim socket dir, ctr's FIFO dir and the per-namespace
//     task dirs; sockets anywhere in the state dir; files (runc's and runsc's
//     state, locks, sockets) anywhere in RuntimeRoot;
//   - sockets in the global /run/containerd/s with the names a shim derives from
//     this containerd's address, namespace and a container ID the test used;
//   - any process in the namespace's cgroups.
func (e *containerdEnv) leakRules(extraProcs []string) hostcheck.Rules {
	var globalSockets []string
	for _, id := range e.usedIDs() {
		// pkg/shim.CreateSocketAddress: sha256 of address/namespace/id[/debug].
		for _, suffix := range []string{"", "/debug"} {
			sum := sha256.Sum256([]byte(filepath.Join(e.Address, e.Namespace, id) + suffix))
			globalSockets = append(globalSockets, filepath.Join(globalShimSocketDir, fmt.Sprintf("%x", sum)))
		}
	}
	r := hostcheck.Rules{
		// runsc names its sandbox and gofer processes runsc-sandbox and runsc-gofer;
		// `runsc boot` and `runsc gofer` keep argv[0] runsc. runc covers a hung
		// `runc init`.
		ProcNames: append([]string{"containerd-shim-palisade-v2", "containerd-shim-runc-v2", "runsc*", "runc"},
			extraProcs...),
		ProcOwners:    []string{e.Dir + "/"},
		MountPrefixes: []string{e.Dir + "/"},
		MountContains: []string{e.Namespace},
		WatchDirs: []string{
			e.SocketDir,
			e.FIFODir,
			filepath.Join(e.StateDir, "io.containerd.runtime.v2.task", e.Namespace),
			filepath.Join(e.RootDir, "io.containerd.runtime.v2.task", e.Namespace),
		},
		WatchFiles:  globalSockets,
		SocketRoots: []string{e.StateDir},
		FileRoots:   []string{e.RuntimeRoot},
		CgroupPaths: []string{"/" + e.Namespace},
	}
	if os.Getenv(envLeakCheck) == "strict" {
		// The host is this test's alone (CI): count what escaped the ownership
		// rules too, such as a runsc detached from its shim or a global mount.
		r.ProcOwners = nil
		r.MountPrefixes = append(r.MountPrefixes, "/run/containerd", "/run/runsc", "/run/palisade",
			"/var/lib/containerd", "/var/lib/palisade")
		r.WatchDirs = append(r.WatchDirs, globalShimSocketDir)
	}
	return r
}

// takeLeakBaseline records the host before a test does anything with containers.
func takeLeakBaseline(t testing.TB, rules func() hostcheck.Rules) leakBaseline {
	t.Helper()
	snap, err := hostcheck.Take(rules())
	if err != nil {
		t.Fatalf("leak baseline: %v", err)
	}
	return leakBaseline{rules: rules, snap: snap}
}

// leaksSince returns what is on the host now and was not at before.
func leaksSince(t testing.TB, before leakBaseline) hostcheck.Leaks {
	t.Helper()
	now, err := hostcheck.Take(before.rules())
	if err != nil {
		t.Fatalf("leak check: %v", err)
	}
	return hostcheck.Diff(before.snap, now)
}

// checkNoLeaks fails t if, within leakSettle, the host does not return to before.
// Leaked processes are then killed (by PID and start time, so only processes this
// test started) and waited for, so that cleanup can remove their cgroups and the
// next test starts clean.
func checkNoLeaks(t testing.TB, before leakBaseline) {
	t.Helper()
	leaks := leaksSince(t, before)
	for deadline := time.Now().Add(leakSettle); !leaks.Empty() && time.Now().Before(deadline); {
		time.Sleep(100 * time.Millisecond)
		leaks = leaksSince(t, before)
	}
	if leaks.Empty() {
		return
	}
	t.Errorf("leaked after the test (waited %v):\n%s", leakSettle, leaks)
	procs := append(leaks.Procs, leaks.CgroupProcs...)
	if err := hostcheck.Kill(procs); err != nil {
		t.Error(err)
	}
	for deadline := time.Now().Add(leakSettle); time.Now().Before(deadline); time.Sleep(50 * time.Millisecond) {
		alive := false
		for _, p := range procs {
			alive = alive || hostcheck.Alive(p)
		}
		if !alive {
			return
		}
	}
	t.Errorf("leaked processes survived SIGKILL for %v", leakSettle)
}
