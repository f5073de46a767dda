//go:build bench

// TestBenchDensity is P4 of make bench (integration/bench.sh). It builds with
// -tags 'bench critest' because it runs on critest's private network, local
// registry and images (cni_test.go, registry_test.go); it is not part of
// make integration or make critest.

package integration

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/pelletier/go-toml/v2"

	"github.com/palisade-runtime/palisade/integration/internal/hostcheck"
)

const (
	// envBenchPods is the number of pods started at once (default 50).
	envBenchPods = "PALISADE_BENCH_PODS"
	// envBenchRounds is the number of batches per series (default 1); the
	// series' order is reversed every other round.
	envBenchRounds = "PALISADE_BENCH_ROUNDS"
	// envBenchData names a directory; the measurements are appended to its
	// samples.tsv (metric, series, value), which integration/bench reads.
	envBenchData = "PALISADE_BENCH_DATA"
	// envBenchSeries overrides the series, comma-separated (see benchSeries).
	envBenchSeries = "PALISADE_BENCH_SERIES"

	benchImage = criBusyboxImage
)

// benchSeries are the series P4 measures by default. Each names a CRI
// handler of critestHandlers, with a suffix for what each pod runs:
//
//	(none)    a busybox container, no terminal: a pod as CRI usually runs it
//	-tty      the same with a terminal
//	-sandbox  no container: the pod sandbox (pause) alone
//
// containerd-shim-runc-v2 cannot run a container in a pod on runsc: without
// a terminal its StartContainer never returns (`runsc start` hands its own
// stdio to the container, and go-runc waits for EOF on it), and with one,
// StopPodSandbox never returns (its kill waits for the exit of the pid it
// recorded, which is the sandbox's). So the comparison with the peer is of
// sandboxes alone, and Palisade's full pods are measured on their own.
// Even a sandbox alone cannot be stopped through CRI by the stock runc shim
// on runsc; see writeKillCompat for the wrapper the peer runs with.
var benchSeries = []string{"palisade-sandbox", "runcshim-runsc-sandbox", "runcshim-runsc-rd-sandbox",
	"palisade-nofloor-sandbox", "palisade", "palisade-images"}

// benchHandlers are the CRI handlers a series can name: critest's palisade
// (the floor of the repo's config.toml) and palisade-nofloor; palisade-images,
// the palisade handler with an image policy its images pass; the peer,
// runcshim-runsc; and runcshim-runsc-rd, the peer with runsc --oci-seccomp
// and pods that ask for the RuntimeDefault seccomp profile, which is what the
// floor gives every Palisade pod.
var benchHandlers = []string{"palisade", "palisade-nofloor", "palisade-images", "runcshim-runsc", "runcshim-runsc-rd"}

// benchImagePolicy is palisade-images' [policy.images]: every rule but
// require_digest (the bench's images are pulled by tag), so that the
// difference from the palisade series is the lookup in containerd.
var benchImagePolicy = map[string]any{
	"allow":         []string{"registry.k8s.io/e2e-test-images/**"},
	"deny":          []string{"registry.k8s.io/e2e-test-images/nginx*"},
	"deny_latest":   true,
	"sandbox_allow": []string{"registry.k8s.io/pause:*"},
}

// benchRuntime is the CRI runtime entry of a handler of benchHandlers.
func benchRuntime(t testing.TB, e *containerdEnv, name string) criRuntime {
	if name == "runcshim-runsc" || name == "runcshim-runsc-rd" {
		runsc, err := lookupTool("runsc")
		if err != nil {
			t.Fatal(err)
		}
		flags := ""
		if name == "runcshim-runsc-rd" {
			flags = "--oci-seccomp"
		}
		return criRuntime{Name: name, Type: runcShimType, Options: map[string]any{
			"BinaryName": writeKillCompat(t, filepath.Join(e.Dir, name), runsc, flags),
			"Root":       filepath.Join(e.RuntimeRoot, name),
		}}
	}
	if name == "palisade-images" {
		return benchImagesRuntime(t, e)
	}
	return critestHandlers()[name].entry(t, e)
}

// benchImagesRuntime is the palisade handler of critest's config with
// benchImagePolicy added, in a config of its own.
func benchImagesRuntime(t testing.TB, e *containerdEnv) criRuntime {
	var cfg map[string]any
	data, err := os.ReadFile(writeCritestPalisadeConfig(t, e))
	if err == nil {
		err = toml.Unmarshal(data, &cfg)
	}
	if err != nil {
		t.Fatal(err)
	}
	h := cfg["handlers"].(map[string]any)["palisade"].(map[string]any)
	h["policy"].(map[string]any)["images"] = benchImagePolicy
	if data, err = toml.Marshal(map[string]any{"handlers": map[string]any{"palisade-images": h}}); err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(e.Dir, "palisade-images.toml")
	if err := os.WriteFile(path, data, 0o644); err != nil {
		t.Fatal(err)
	}
	return criRuntime{Name: "palisade-images", Type: palisadeRuntimeType,
		Options: map[string]any{"handler": "palisade-images", "config_path": path}}
}

// TestBenchDensity starts N pods at once through CRI (crictl runp, then
// create and start for a busybox container, see benchSeries), for each
// series in turn; measures the time until all run and the memory they hold;
// removes them and checks that nothing is left: no process, mount, socket or
// state file of the runtime, no CNI result or IP lease, no cgroup of a pod
// and no process in one.
func TestBenchDensity(t *testing.T) {
	requireIntegration(t, "crictl", "containerd-shim-runc-v2", "runsc")
	pods, rounds := benchEnvInt(t, envBenchPods, 50), benchEnvInt(t, envBenchRounds, 1)
	series := benchSeries
	if v := os.Getenv(envBenchSeries); v != "" {
		series = strings.Split(v, ",")
	}
	var names []string
	for _, s := range series {
		h, _ := benchSeriesKind(s)
		if !slices.Contains(benchHandlers, h) {
			t.Fatalf("%s: unknown series %q (handlers: %v)", envBenchSeries, s, benchHandlers)
		}
		if !slices.Contains(names, h) {
			names = append(names, h)
		}
	}

	dir, err := os.MkdirTemp("/tmp", "pal-bench-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { removeCritestDir(t, dir) })
	net := newCritestNet(t, dir)
	hosts := startMirror(t, net, critestImages(t), dir)
	env := startContainerdFor(t, runtimeUnderTest{Name: "bench", Tools: []string{"runsc", "containerd-shim-runc-v2"}, NeedsPalisade: true},
		containerdOpts{
			CRI: true,
			CRIRuntimesFor: func(e *containerdEnv) []criRuntime {
				var rs []criRuntime
				for _, n := range names {
					rs = append(rs, benchRuntime(t, e, n))
				}
				return rs
			},
			RegistryConfigPath: hosts,
			SandboxImage:       critestSandboxImage,
			CNIBinDirs:         []string{net.BinDir},
			CNIConfDir:         net.ConfDir,
			NetNSUnderStateDir: true,
			NetNS:              net.Path,
		})
	b := &bench{t: t, env: env, net: net, dir: dir, pods: pods, crictl: newCrictl(t, env)}
	for _, img := range []string{critestSandboxImage, benchImage} {
		if _, err := b.crictl.run(context.Background(), "pull", img); err != nil {
			t.Fatal(err)
		}
	}
	// One pod per series first, so that no batch pays for the first unpack of
	// the image or the first start of a binary.
	for _, s := range series {
		b.batch(s, "warm", 1)
	}
	for r := range rounds {
		order := slices.Clone(series)
		if r%2 == 1 {
			slices.Reverse(order)
		}
		for _, s := range order {
			res := b.batch(s, strconv.Itoa(r), pods)
			res.report(t)
		}
	}
}

// bench is one P4 run: a containerd with every series' handler.
type bench struct {
	t      *testing.T
	env    *containerdEnv
	net    *critestNet
	dir    string
	pods   int
	crictl crictl
}

// batchResult is what one batch measured.
type batchResult struct {
	series             string
	pods               int
	wall, teardown     time.Duration
	podStart           []time.Duration
	memAvailable       int64 // bytes of MemAvailable the running pods took
	shim, sandbox      usage // the shims, and every process below them
	procs              int   // processes below the shims
	leaked             leakCount
	leakReport         string
	perPod             func(int64) float64
	startErrs, rmpErrs []error
}

type leakCount struct{ procs, mounts, paths, cni, ipLeases, cgroups int }

// batch starts n pods of series s at once, measures, removes them and
// checks for leaks. Its name tags the pods ("warm" batches are not reported).
func (b *bench) batch(s, name string, n int) batchResult {
	t := b.t
	handler, kind := benchSeriesKind(s)
	res := batchResult{series: s, pods: n, podStart: make([]time.Duration, n)}
	res.perPod = func(v int64) float64 { return float64(v) / float64(n) / (1 << 20) }

	linux := map[string]any{}
	if handler == "runcshim-runsc-rd" {
		// CRI's SecurityProfile.ProfileType: RuntimeDefault is 0.
		linux["security_context"] = map[string]any{"seccomp": map[string]any{"profile_type": 0}}
	}
	ctrCfg := b.writeJSON(fmt.Sprintf("%s-%s-ctr.json", s, name), map[string]any{
		"metadata": map[string]any{"name": "app"},
		"image":    map[string]any{"image": benchImage},
		"command":  []string{"sleep", "3600"},
		"tty":      kind == "-tty",
		"log_path": "app.log",
		"linux":    linux,
	})
	var mu sync.Mutex
	var ids []string // pod and container IDs, for the cgroup check; guarded by mu
	addID := func(id string) {
		mu.Lock()
		defer mu.Unlock()
		ids = append(ids, id)
	}
	cgroups := func() []string {
		mu.Lock()
		defer mu.Unlock()
		var paths []string
		for _, id := range ids {
			paths = append(paths, "/k8s.io/"+id)
		}
		return paths
	}
	rules := func() hostcheck.Rules {
		r := b.env.leakRules(nil)
		for _, root := range []string{b.env.StateDir, b.env.RootDir} {
			r.WatchDirs = append(r.WatchDirs, filepath.Join(root, "io.containerd.runtime.v2.task", "k8s.io"))
		}
		r.CgroupPaths = append(r.CgroupPaths, cgroups()...)
		return r
	}
	before := takeLeakBaseline(t, rules)
	cniBefore, leasesBefore := b.cniResults(), b.ipLeases()
	memBefore := memAvailable(t)

	podIDs := make([]string, n)
	errs := make([]error, n)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
	defer cancel()
	start := time.Now()
	var wg sync.WaitGroup
	for i := range n {
		wg.Go(func() {
			t0 := time.Now()
			uid := fmt.Sprintf("%s-%s-%d", s, name, i)
			podCfg := b.writeJSON(uid+"-pod.json", map[string]any{
				"metadata":      map[string]any{"name": "bench-" + strconv.Itoa(i), "namespace": "bench-" + s + "-" + name, "uid": uid},
				"log_directory": filepath.Join(b.dir, "logs", uid),
				"linux":         linux,
			})
			pod, err := b.crictl.run(ctx, "runp", "--runtime", handler, podCfg)
			if err != nil {
				errs[i] = err
				return
			}
			podIDs[i] = pod
			addID(pod)
			if kind == "-sandbox" {
				res.podStart[i] = time.Since(t0)
				return
			}
			ctr, err := b.crictl.run(ctx, "create", pod, ctrCfg, podCfg)
			if err == nil {
				addID(ctr)
				_, err = b.crictl.run(ctx, "start", ctr)
			}
			errs[i] = err
			res.podStart[i] = time.Since(t0)
		})
	}
	wg.Wait()
	for _, err := range errs {
		if err != nil {
			res.startErrs = append(res.startErrs, err)
		}
	}
	if len(res.startErrs) == 0 {
		nctrs := n
		if kind == "-sandbox" {
			nctrs = 0
		}
		b.waitRunning(ctx, n, nctrs)
	}
	res.wall = time.Since(start)
	if len(res.startErrs) == 0 {
		time.Sleep(2 * time.Second) // let the sandboxes finish booting before memory is read
		res.memAvailable = memBefore - memAvailable(t)
		res.shim, res.sandbox, res.procs = b.usage()
	}

	t1 := time.Now()
	rmErrs := make([]error, n)
	for i, pod := range podIDs {
		if pod == "" {
			continue
		}
		wg.Go(func() {
			_, rmErrs[i] = b.crictl.run(ctx, "rmp", "--force", pod)
		})
	}
	wg.Wait()
	res.teardown = time.Since(t1)
	for _, err := range rmErrs {
		if err != nil {
			res.rmpErrs = append(res.rmpErrs, err)
		}
	}
	b.checkLeaks(&res, before, cniBefore, leasesBefore, cgroups)
	if len(res.startErrs)+len(res.rmpErrs) > 0 {
		if d := os.Getenv(envBenchData); d != "" {
			keepFile(t, b.env.LogPath, filepath.Join(d, "containerd-"+s+".log"))
		}
		t.Fatalf("%s batch %s: %d pods failed to start, %d to be removed; first: %v",
			s, name, len(res.startErrs), len(res.rmpErrs), append(res.startErrs, res.rmpErrs...)[0])
	}
	return res
}

// waitRunning waits until n pods are ready and ctrs containers running: the
// pods of this batch, since every earlier batch is gone.
func (b *bench) waitRunning(ctx context.Context, n, nctrs int) {
	for {
		pods, err1 := b.crictl.run(ctx, "pods", "--state", "ready", "-q")
		ctrs, err2 := b.crictl.run(ctx, "ps", "--state", "running", "-q")
		if err1 == nil && err2 == nil && len(strings.Fields(pods)) == n && len(strings.Fields(ctrs)) == nctrs {
			return
		}
		select {
		case <-ctx.Done():
			b.t.Fatalf("not all %d pods running: %v; pods %q, containers %q (%v, %v)", n, ctx.Err(), pods, ctrs, err1, err2)
		case <-time.After(50 * time.Millisecond):
		}
	}
}

// checkLeaks waits until the host is back to before (see checkNoLeaks) and
// records what is still left; anything left fails the test.
func (b *bench) checkLeaks(res *batchResult, before leakBaseline, cniBefore, leasesBefore []string, cgroups func() []string) {
	t := b.t
	leaks := leaksSince(t, before)
	for deadline := time.Now().Add(2 * leakSettle); !leaks.Empty() && time.Now().Before(deadline); {
		time.Sleep(100 * time.Millisecond)
		leaks = leaksSince(t, before)
	}
	res.leaked = leakCount{
		procs:    len(leaks.Procs) + len(leaks.CgroupProcs),
		mounts:   len(leaks.Mounts),
		paths:    len(leaks.Paths),
		cni:      len(newEntries(cniBefore, b.cniResults())),
		ipLeases: len(newEntries(leasesBefore, b.ipLeases())),
	}
	var cgroupDirs []string
	for _, p := range cgroups() {
		dirs, err := hostcheck.CgroupDirs(p)
		if err != nil {
			t.Error(err)
		}
		cgroupDirs = append(cgroupDirs, dirs...)
	}
	res.leaked.cgroups = len(cgroupDirs)
	if !leaks.Empty() || res.leaked != (leakCount{}) {
		res.leakReport = leaks.String()
		t.Errorf("%s: left after removing the pods: %+v\n%s\ncgroups: %q", res.series, res.leaked, leaks, cgroupDirs)
	}
}

// usage sums the memory of the env's shims and of every process below them
// (runsc's sandboxes and gofers, and any runsc the shim keeps running).
func (b *bench) usage() (shim, below usage, procs int) {
	table := procTree(b.t)
	var shims []int
	for pid, p := range table {
		argv0, _, _ := strings.Cut(p.cmdline, " ")
		if strings.HasPrefix(filepath.Base(argv0), "containerd-shim-") && strings.Contains(p.cmdline, "-address "+b.env.Address) {
			shims = append(shims, pid)
		}
	}
	for _, pid := range shims {
		shim.add(readUsage(pid))
		for _, kid := range table.descendants(pid) {
			below.add(readUsage(kid))
			procs++
		}
	}
	return shim, below, procs
}

// cniResults lists libcni's cached results of this run's network: one per
// attached pod.
func (b *bench) cniResults() []string {
	ents, _ := os.ReadDir(filepath.Join(cniCacheDir, "results"))
	var out []string
	for _, e := range ents {
		if strings.HasPrefix(e.Name(), b.net.Name+"-") {
			out = append(out, e.Name())
		}
	}
	return out
}

// ipLeases lists host-local's allocated addresses (its lock and last
// reserved address files are not leases).
func (b *bench) ipLeases() []string {
	ents, _ := os.ReadDir(filepath.Join(b.dir, "cni-ipam", b.net.Name))
	var out []string
	for _, e := range ents {
		if e.Name() != "lock" && !strings.HasPrefix(e.Name(), "last_reserved_ip") {
			out = append(out, e.Name())
		}
	}
	return out
}

func (b *bench) writeJSON(name string, v any) string {
	data, err := json.Marshal(v)
	if err != nil {
		b.t.Fatal(err)
	}
	p := filepath.Join(b.dir, "cfg", name)
	if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
		b.t.Fatal(err)
	}
	if err := os.WriteFile(p, data, 0o644); err != nil {
		b.t.Fatal(err)
	}
	return p
}

// writeKillCompat writes a wrapper of runsc that containerd-shim-runc-v2
// needs to stop a pod through CRI. CRI kills a pod's sandbox once more after
// it has exited; runsc answers "sandbox is not running", which the runc
// shim, expecting runc's "container not running", reports as an unknown
// error, and StopPodSandbox retries until its deadline. The wrapper adds
// runc's words to that one answer. Every other call is a plain exec.
// flags are added to every runsc call (--oci-seccomp: without it, runsc
// ignores the container's seccomp profile).
func writeKillCompat(t testing.TB, dir, runsc, flags string) string {
	p := filepath.Join(dir, "runsc")
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	runsc += " " + flags
	script := `#!/bin/sh
for a; do [ "$a" = kill ] && k=1; done
[ -n "$k" ] || exec ` + runsc + ` "$@"
out=$(` + runsc + ` "$@" 2>&1)
rc=$?
case $out in *"is not running"*) out="container not running ($out)" ;; esac
[ -z "$out" ] || printf '%s\n' "$out" >&2
exit $rc
`
	if err := os.WriteFile(p, []byte(script), 0o755); err != nil {
		t.Fatal(err)
	}
	return p
}

// benchSeriesKind splits a series into its CRI handler and its suffix.
func benchSeriesKind(s string) (handler, kind string) {
	for _, k := range []string{"-sandbox", "-tty"} {
		if h, ok := strings.CutSuffix(s, k); ok {
			return h, k
		}
	}
	return s, ""
}
