package integration

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/containerd/containerd/api/types/runtimeoptions/v1"
	containerd "github.com/containerd/containerd/v2/client"
	"github.com/containerd/containerd/v2/pkg/cio"
	"github.com/containerd/containerd/v2/pkg/namespaces"
	"github.com/containerd/containerd/v2/pkg/oci"

	"github.com/palisade-runtime/palisade/integration/internal/hostcheck"
)

// Load (issue 7, part 6): create/start/exec/delete cycles through
// containerd's Go client against one long-lived Palisade shim, sequentially
// and concurrently, with the leak check after each batch and the shim's
// goroutines and RSS sampled along the way. The cycles' containers join one
// pod (the CRI sandbox annotations), so that one shim, and one gVisor
// sandbox, serves them all: that is the shim whose growth matters, a
// Kubernetes pod's.

const (
	// envLoadCycles overrides the number of sequential cycles (default
	// loadCycles); envLoadConcurrent the size of the concurrent batch.
	envLoadCycles     = "PALISADE_LOAD_CYCLES"
	envLoadConcurrent = "PALISADE_LOAD_CONCURRENT"
	loadCycles        = 200
	loadConcurrent    = 20
	// loadWarmup cycles run before the baseline is sampled: the first
	// containers grow the shim's heap and caches to their working size.
	loadWarmup = 10
	// loadRSSGrowth is the most the shim's RSS may grow from the baseline.
	loadRSSGrowth = 0.20
)

func envInt(t *testing.T, name string, def int) int {
	t.Helper()
	v := os.Getenv(name)
	if v == "" {
		return def
	}
	n, err := strconv.Atoi(v)
	if err != nil || n <= 0 {
		t.Fatalf("%s=%q: want a positive integer", name, v)
	}
	return n
}

// TestShimLoad: warm-up, then the sequential cycles in two halves, then
// the concurrent batch; after each, the leak check, and a sample of the
// shim. Goroutines must come back to the baseline and RSS stay within
// loadRSSGrowth of it.
func TestShimLoad(t *testing.T) {
	sequential := envInt(t, envLoadCycles, loadCycles)
	concurrent := envInt(t, envLoadConcurrent, loadConcurrent)
	rt := palisadeRunsc(rowRunsc, floorFor(rowRunsc))
	env := startContainerdFor(t, rt, containerdOpts{})
	pod := env.runInPod(t, rt, "load-pod", "sandbox", "load-pod", "/bin/sleep", "3600")
	pod.waitStatus(t, "RUNNING", 20*time.Second)
	shims := palisadeShims(t, env)
	if len(shims) != 1 {
		t.Fatalf("want the pod's one shim, found %v", shims)
	}
	shim, _ := strconv.Atoi(shims[0])
	l := &loader{env: env, cfg: rt.ctrFlags(t, env)[3], pod: "load-pod"}
	l.open(t)
	before := takeLeakBaseline(t, func() hostcheck.Rules { return env.leakRules(nil) })
	tree := descendants(shim)
	i := slices.IndexFunc(tree, func(pid int) bool { return argv0(pid) == "runsc-sandbox" })
	if i < 0 {
		t.Fatalf("no runsc-sandbox below the shim (pid %d)", shim)
	}
	sandbox := tree[i]
	checkLeaks := func(batch string) { checkBatchLeaks(t, batch, before, sandbox) }

	l.batch(t, "warm-up", loadWarmup, 1)
	checkLeaks("warm-up")
	base := sampleShim(t, env, shim, sandbox, -1)
	if base.goroutines < 2 || base.rssKB == 0 {
		t.Fatalf("shim sample %+v: the goroutine dump or /proc/%d/status was not read", base, shim)
	}
	samples := []shimSample{base}
	half := sequential / 2
	for _, b := range []struct {
		name string
		n    int
	}{{"sequential 1st half", half}, {"sequential 2nd half", sequential - half}} {
		l.batch(t, b.name, b.n, 1)
		checkLeaks(b.name)
		samples = append(samples, sampleShim(t, env, shim, sandbox, base.goroutines))
	}
	l.batch(t, "concurrent", concurrent, concurrent)
	checkLeaks("concurrent")
	samples = append(samples, sampleShim(t, env, shim, sandbox, base.goroutines))

	var b strings.Builder
	fmt.Fprintf(&b, "%-28s %10s %8s %8s %15s\n", "shim (pid "+shims[0]+")", "goroutines", "threads", "RSS kB", "sandbox procs")
	for i, s := range samples {
		name := []string{"after warm-up (baseline)", "after " + strconv.Itoa(half) + " sequential",
			"after " + strconv.Itoa(sequential) + " sequential", "after " + strconv.Itoa(concurrent) + " concurrent"}[i]
		fmt.Fprintf(&b, "%-28s %10d %8d %8d %15d\n", name, s.goroutines, s.threads, s.rssKB, s.sandboxProcs)
	}
	t.Logf("shim samples:\n%s", b.String())
	for _, s := range samples[1:] {
		if s.goroutines > base.goroutines {
			t.Errorf("shim goroutines %d after a batch, baseline %d: a cycle leaves goroutines behind", s.goroutines, base.goroutines)
		}
		if limit := float64(base.rssKB) * (1 + loadRSSGrowth); float64(s.rssKB) > limit {
			t.Errorf("shim RSS %d kB, more than %.0f%% over the baseline %d kB", s.rssKB, loadRSSGrowth*100, base.rssKB)
		}
	}

	pod.kill(t, "SIGKILL", false)
	pod.waitStatus(t, "STOPPED", 20*time.Second)
	pod.delete(t)
}

// checkBatchLeaks is the harness's leak check while the pod still runs: the
// host must be back to before within leakSettle, except for the processes
// of the pod's gVisor sandbox, whose systrap stubs come and go with the
// address spaces of the containers it ran. Unlike checkNoLeaks it kills
// nothing: killing a stub would break the pod. The harness's own check at
// the end, with the pod gone, counts everything.
func checkBatchLeaks(t *testing.T, batch string, before leakBaseline, sandbox int) {
	t.Helper()
	var leaks hostcheck.Leaks
	stubs := 0
	for deadline := time.Now().Add(leakSettle); ; time.Sleep(100 * time.Millisecond) {
		leaks = leaksSince(t, before)
		own := descendants(sandbox)
		inSandbox := func(p hostcheck.Proc) bool { return slices.Contains(own, p.PID) }
		n := len(leaks.Procs) + len(leaks.CgroupProcs)
		leaks.Procs = slices.DeleteFunc(leaks.Procs, inSandbox)
		leaks.CgroupProcs = slices.DeleteFunc(leaks.CgroupProcs, inSandbox)
		stubs = n - len(leaks.Procs) - len(leaks.CgroupProcs)
		if leaks.Empty() || time.Now().After(deadline) {
			break
		}
	}
	if !leaks.Empty() {
		t.Errorf("after %s, leaked (waited %v):\n%s", batch, leakSettle, leaks)
	}
	t.Logf("after %s: leak check clean=%v (%d new processes of the pod's sandbox not counted)", batch, leaks.Empty(), stubs)
}

// TestPodContainerNullIO: a pod container on runsc started with no stdio at
// all (containerd's cio.NullIO, `ctr run --null-io`) starts. `runsc start`
// used to get a pipe as stderr, which the container's gofer inherited, so
// Start waited for the gofer's exit: until the caller's deadline.
func TestPodContainerNullIO(t *testing.T) {
	rt := palisadeRunsc(rowRunsc, floorFor(rowRunsc))
	env := startContainerdFor(t, rt, containerdOpts{})
	pod := env.runInPod(t, rt, "p", "sandbox", "p", "/bin/sleep", "600")
	pod.waitStatus(t, "RUNNING", 20*time.Second)
	args := env.runArgs(t, rt, []string{"-d", "--null-io", "--annotation", "io.kubernetes.cri.container-type=container",
		"--annotation", "io.kubernetes.cri.sandbox-id=p"}, busyboxRootfs(t), "c", []string{"/bin/sleep", "600"})
	tk := &task{env: env, ID: "c"}
	t.Cleanup(func() { tk.forceRemove(t) })
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	if res := env.ctrContext(ctx, t, args...); res.ExitCode != 0 {
		t.Fatalf("ctr run -d --null-io in a pod: %v", res)
	}
	tk.waitStatus(t, "RUNNING", 10*time.Second)
	for _, tk := range []*task{tk, pod} {
		tk.kill(t, "SIGKILL", false)
		tk.waitStatus(t, "STOPPED", 20*time.Second)
		tk.delete(t)
	}
}

// loader runs cycles through one containerd client.
type loader struct {
	env    *containerdEnv
	cfg    string // Palisade config path
	pod    string
	client *containerd.Client
	ctx    context.Context
	seq    int // guarded by mu
	mu     sync.Mutex
}

func (l *loader) open(t *testing.T) {
	t.Helper()
	c, err := containerd.New(l.env.Address, containerd.WithTimeout(10*time.Second))
	if err != nil {
		t.Fatalf("containerd client: %v", err)
	}
	t.Cleanup(func() { c.Close() })
	l.client = c
	l.ctx = namespaces.WithNamespace(context.Background(), l.env.Namespace)
}

// batch runs n cycles, width at a time, and logs their timings.
func (l *loader) batch(t *testing.T, name string, n, width int) {
	t.Helper()
	ids := make([]string, n)
	rootfs := make([]string, n)
	l.mu.Lock()
	for i := range ids {
		l.seq++
		ids[i] = fmt.Sprintf("load-%d", l.seq)
		l.env.useID(ids[i])
	}
	l.mu.Unlock()
	// Root filesystems are made before the clock starts: the cycle is the
	// runtime's work, not the test's copying.
	for i := range rootfs {
		rootfs[i] = busyboxRootfs(t)
	}
	durations := make([]time.Duration, n)
	errs := make([]error, n)
	start := time.Now()
	var wg sync.WaitGroup
	sem := make(chan struct{}, width)
	for i := range ids {
		sem <- struct{}{}
		wg.Add(1)
		go func() {
			defer wg.Done()
			defer func() { <-sem }()
			t0 := time.Now()
			errs[i] = l.cycle(ids[i], rootfs[i])
			durations[i] = time.Since(t0)
		}()
	}
	wg.Wait()
	wall := time.Since(start)
	for i, dir := range rootfs {
		removeTree(t, dir)
		if errs[i] != nil {
			t.Errorf("%s: cycle %s: %v", name, ids[i], errs[i])
		}
	}
	slices.Sort(durations)
	var sum time.Duration
	for _, d := range durations {
		sum += d
	}
	ms := func(d time.Duration) string { return strconv.FormatInt(d.Milliseconds(), 10) }
	t.Logf("%s: %d cycles, %d at a time, %v wall; per cycle ms: mean %s, median %s, p95 %s, max %s",
		name, n, width, wall.Round(time.Millisecond), ms(sum/time.Duration(n)), ms(durations[n/2]),
		ms(durations[min(n-1, n*95/100)]), ms(durations[n-1]))
	if t.Failed() {
		t.FailNow()
	}
}

// cycle creates a container in the pod, starts it, execs into it, checks
// the exec's output and exit status, kills it and deletes it.
func (l *loader) cycle(id, rootfs string) (retErr error) {
	ctx, cancel := context.WithTimeout(l.ctx, ctrTimeout)
	defer cancel()
	opts := &runtimeoptions.Options{ConfigPath: l.cfg}
	ctrd, err := l.client.NewContainer(ctx, id, containerd.WithRuntime(palisadeRuntimeType, opts),
		containerd.WithNewSpec(oci.WithRootFSPath(rootfs), oci.WithEnv([]string{containerPATH}),
			oci.WithProcessArgs("/bin/sleep", "600"),
			oci.WithAnnotations(map[string]string{
				"io.kubernetes.cri.container-type": "container",
				"io.kubernetes.cri.sandbox-id":     l.pod,
			})))
	if err != nil {
		return fmt.Errorf("new container: %w", err)
	}
	defer func() {
		if err := ctrd.Delete(ctx); err != nil {
			retErr = errors.Join(retErr, fmt.Errorf("delete container: %w", err))
		}
	}()
	tk, err := ctrd.NewTask(ctx, cio.NullIO)
	if err != nil {
		return fmt.Errorf("new task: %w", err)
	}
	deleted := false
	defer func() {
		if !deleted {
			_, _ = tk.Delete(ctx, containerd.WithProcessKill)
		}
	}()
	exitCh, err := tk.Wait(ctx)
	if err != nil {
		return err
	}
	if err := tk.Start(ctx); err != nil {
		return fmt.Errorf("start: %w", err)
	}

	spec, err := ctrd.Spec(ctx)
	if err != nil {
		return err
	}
	pspec := *spec.Process
	pspec.Args = []string{"/bin/sh", "-c", "echo exec-" + id}
	// One buffer per stream: cio copies each with bytes.Buffer.ReadFrom, and
	// two copies into one buffer race.
	var stdout, stderr bytes.Buffer
	proc, err := tk.Exec(ctx, "e", &pspec, cio.NewCreator(cio.WithStreams(nil, &stdout, &stderr), cio.WithFIFODir(l.env.FIFODir)))
	if err != nil {
		return fmt.Errorf("exec: %w", err)
	}
	execDeleted := false
	defer func() {
		// On a failed cycle: the delete also removes the exec's FIFOs.
		if !execDeleted {
			_, _ = proc.Delete(ctx, containerd.WithProcessKill)
		}
	}()
	execExit, err := proc.Wait(ctx)
	if err != nil {
		return err
	}
	if err := proc.Start(ctx); err != nil {
		return fmt.Errorf("start exec: %w", err)
	}
	var st containerd.ExitStatus
	select {
	case st = <-execExit:
	case <-ctx.Done():
		return fmt.Errorf("exec did not exit: %w", ctx.Err())
	}
	proc.IO().Wait()
	if code, _, err := st.Result(); err != nil || code != 0 || stdout.String() != "exec-"+id+"\n" || stderr.Len() != 0 {
		return fmt.Errorf("exec: exit %d, %v, stdout %q, stderr %q", code, err, stdout.String(), stderr.String())
	}
	execDeleted = true
	if _, err := proc.Delete(ctx); err != nil {
		return fmt.Errorf("delete exec: %w", err)
	}

	if err := tk.Kill(ctx, syscall.SIGKILL); err != nil {
		return fmt.Errorf("kill: %w", err)
	}
	select {
	case <-exitCh:
	case <-ctx.Done():
		return fmt.Errorf("no exit after SIGKILL: %w", ctx.Err())
	}
	deleted = true
	if _, err := tk.Delete(ctx); err != nil {
		return fmt.Errorf("delete task: %w", err)
	}
	return nil
}

// shimSample is the shim's state at one moment, and how many processes the
// pod's gVisor sandbox has (itself and its systrap stubs), for the record.
type shimSample struct {
	goroutines, threads, rssKB, sandboxProcs int
}

var goroutineHeader = regexp.MustCompile(`goroutine \d+ \[`)

// sampleShim counts the shim's goroutines from the stack dump containerd's
// pkg/shim writes to the shim's log on SIGUSR1 (the log reaches
// containerd's), and reads Threads and VmRSS from /proc. Goroutines of the
// last cycle's RPCs and exit handling end just after it, so the count is
// taken again for up to leakSettle: until it is at most target, or, for the
// baseline (target < 0), until two counts agree.
func sampleShim(t *testing.T, env *containerdEnv, pid, sandbox, target int) shimSample {
	t.Helper()
	s := shimSample{sandboxProcs: len(descendants(sandbox))}
	last := -1
	for deadline := time.Now().Add(leakSettle); ; time.Sleep(500 * time.Millisecond) {
		s.goroutines = goroutineCount(t, env, pid)
		if target >= 0 && s.goroutines <= target || target < 0 && s.goroutines == last || time.Now().After(deadline) {
			break
		}
		last = s.goroutines
	}
	status, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		t.Fatalf("shim status: %v", err)
	}
	s.threads, _ = strconv.Atoi(statusField(string(status), "Threads"))
	s.rssKB, _ = strconv.Atoi(strings.TrimSuffix(statusField(string(status), "VmRSS"), " kB"))
	return s
}

func goroutineCount(t *testing.T, env *containerdEnv, pid int) int {
	t.Helper()
	const begin, end = "=== BEGIN goroutine stack dump ===", "=== END goroutine stack dump ==="
	st, err := os.Stat(env.LogPath)
	if err != nil {
		t.Fatal(err)
	}
	offset := st.Size()
	if err := syscall.Kill(pid, syscall.SIGUSR1); err != nil {
		t.Fatalf("SIGUSR1 to the shim: %v", err)
	}
	for deadline := time.Now().Add(5 * time.Second); time.Now().Before(deadline); time.Sleep(50 * time.Millisecond) {
		b, err := os.ReadFile(env.LogPath)
		if err != nil {
			t.Fatal(err)
		}
		tail := string(b[min(offset, int64(len(b))):])
		i := strings.Index(tail, begin)
		if i < 0 {
			continue
		}
		j := strings.Index(tail[i:], end)
		if j < 0 {
			continue
		}
		return len(goroutineHeader.FindAllStringIndex(tail[i:i+j], -1))
	}
	t.Fatalf("no goroutine dump from the shim (pid %d) in %s", pid, env.LogPath)
	return 0
}
