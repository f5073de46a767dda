package integration

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/palisade-runtime/palisade/integration/internal/hostcheck"
)

const (
	// envCritest selects what TestCritest runs: "subset" (the default; CI runs
	// it through make integration), "full" (make critest) or "off".
	envCritest = "PALISADE_CRITEST"
	// envCritestHandlers overrides the handlers, comma-separated (see
	// critestHandlers); the defaults are palisade (subset) and runc,
	// runcshim-runsc, palisade (full).
	envCritestHandlers = "PALISADE_CRITEST_HANDLERS"
	// envCritestFocus replaces the focus with a ginkgo regex, to rerun a few
	// specs while debugging.
	envCritestFocus = "PALISADE_CRITEST_FOCUS"
	// envCritestCallTimeout, a Go duration, bounds every CRI call critest makes
	// (--runtime-service-timeout, default 60s here; critest's own is 5m).
	envCritestCallTimeout = "PALISADE_CRITEST_CALL_TIMEOUT"
	// envCritestReports overrides where reports go (default <repo>/_critest-reports).
	envCritestReports = "PALISADE_CRITEST_REPORTS"
)

// TestCritest runs cri-tools' critest, the CRI validation suite, against a
// private containerd per handler. Everything it needs is local: images built by
// criimages and served from a registry on 127.0.0.1, CNI in a private network
// namespace (see critestNet). Each handler gets a JSON, JUnit and text report;
// the side-by-side counts and the failed specs are printed at the end.
//
// In subset mode every failure fails the test. In full mode the suite is a
// measurement: the test fails only when the harness is at fault, i.e. when runc,
// the reference, fails a spec, or critest reports nothing.
func TestCritest(t *testing.T) {
	mode := os.Getenv(envCritest)
	if mode == "" {
		mode = "subset"
	}
	var defaults []string
	switch mode {
	case "off":
		skipOrFatal(t, "%s=off", envCritest)
	case "subset":
		defaults = []string{"palisade"}
	case "full":
		defaults = []string{"runc", "runcshim-runsc", "palisade", "palisade-nofloor"}
	default:
		t.Fatalf("%s=%q: want subset, full or off", envCritest, mode)
	}
	requireIntegration(t, "critest", "crictl")
	critest, _ := lookupTool("critest")
	names := critestHandlerNames(t, defaults)
	handlers := critestHandlers()

	dir, err := os.MkdirTemp("/tmp", "pal-critest-")
	if err != nil {
		t.Fatal(err)
	}
	// critest's host paths (volumes, propagation mounts) live below dir; see
	// the chmod of env.Dir below.
	if err := os.Chmod(dir, 0o711); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { removeCritestDir(t, dir) })
	net := newCritestNet(t, dir)
	hosts := startMirror(t, net, critestImages(t), dir)
	reports := critestReportDir(t, mode)

	var results []critestResult
	for _, name := range names {
		h := handlers[name]
		t.Run(name, func(t *testing.T) {
			env := startContainerdFor(t, h.rt, containerdOpts{
				CRI:                true,
				CRIRuntimesFor:     func(e *containerdEnv) []criRuntime { return []criRuntime{h.entry(t, e)} },
				RegistryConfigPath: hosts,
				SandboxImage:       critestSandboxImage,
				CNIBinDirs:         []string{net.BinDir},
				CNIConfDir:         net.ConfDir,
				NetNSUnderStateDir: true,
				NRI:                true,
				NetNS:              net.Path,
			})
			// The harness makes its directories 0700; with user namespaces, a
			// container's root maps to an unprivileged host uid that must still
			// reach its rootfs below Dir (runc: "remount-private ... permission
			// denied"). containerd's own /run/containerd is 0711 for that reason.
			if err := os.Chmod(env.Dir, 0o711); err != nil {
				t.Fatal(err)
			}
			// Copied at cleanup, after critest: the log holds the shims' lines too.
			t.Cleanup(func() { keepFile(t, env.LogPath, filepath.Join(reports, name+".containerd.log")) })
			res := runCritest(t, critestRun{
				bin: critest, net: net, env: env, handler: name, mode: mode,
				tmp: filepath.Join(dir, "tmp-"+name), reports: reports,
			})
			removeLeftoverPods(t, env)
			results = append(results, res)
			t.Logf("%s: %d passed, %d failed, %d skipped in %v", name, res.Passed, res.Failed, res.Skipped, res.Time.Round(time.Second))
			switch {
			case res.Passed+res.Failed == 0:
				t.Errorf("critest ran no spec; see %s", res.Log)
			case mode == "subset" && res.Failed > 0:
				t.Errorf("%d specs failed (report %s):\n  %s", res.Failed, res.Log, strings.Join(res.Failures, "\n  "))
			case mode == "full" && name == "runc" && res.Failed > 0:
				t.Errorf("runc, the reference, failed %d specs: the harness or the host is at fault:\n  %s",
					res.Failed, strings.Join(res.Failures, "\n  "))
			}
		})
	}
	summary := critestSummary(mode, results)
	t.Logf("\n%s", summary)
	if err := os.WriteFile(filepath.Join(reports, "summary.txt"), []byte(summary), 0o644); err != nil {
		t.Error(err)
	}
}

// critestRun is one critest invocation.
type critestRun struct {
	bin     string
	net     *critestNet
	env     *containerdEnv
	handler string
	mode    string
	tmp     string // critest's TMPDIR: its log and seccomp dirs, removed with the test dir
	reports string
}

// runCritest runs critest in the network namespace (its HTTP checks dial host
// ports and pod IPs there) and reads its JSON report. critest exits non-zero
// when a spec fails; only a missing report is an error here.
func runCritest(t *testing.T, r critestRun) critestResult {
	t.Helper()
	if err := os.MkdirAll(r.tmp, 0o755); err != nil {
		t.Fatal(err)
	}
	base := filepath.Join(r.reports, r.handler)
	skips := critestSkips
	if r.mode == "subset" {
		skips = append(slices.Clone(skips), critestSubsetSkips...)
	}
	args := []string{
		"--runtime-endpoint=unix://" + r.env.Address,
		"--image-endpoint=unix://" + r.env.Address,
		"--runtime-handler=" + r.handler,
		"--nri-socket=" + r.env.NRISocket,
		"--ginkgo.no-color",
		"--ginkgo.skip=" + regexAlt(skips),
		"--ginkgo.json-report=" + base + ".json",
		"--ginkgo.junit-report=" + base + ".junit.xml",
	}
	// A CRI call that hangs costs critest's default 5 minutes; no call takes
	// near a minute here when it works, and a spec makes several calls that can
	// hang, so a minute keeps a hanging runtime's suite within hours.
	callTimeout := "60s"
	if d := os.Getenv(envCritestCallTimeout); d != "" {
		callTimeout = d
	}
	// The suite timeout bounds the run (the subset: well inside CI's 90
	// minutes), and ends it 5 minutes before go test's own -timeout, which
	// would kill the test binary before its cleanups run.
	suite := 3 * time.Hour
	if r.mode == "subset" {
		suite = 25 * time.Minute
	}
	if d, ok := t.Deadline(); ok {
		suite = min(suite, time.Until(d)-5*time.Minute)
	}
	if suite < time.Minute {
		t.Fatalf("%v left before go test's -timeout: not enough to run critest", suite+5*time.Minute)
	}
	args = append(args, "--runtime-service-timeout="+callTimeout, "--ginkgo.timeout="+suite.String())
	focus := os.Getenv(envCritestFocus)
	if focus == "" && r.mode == "subset" {
		focus = regexAlt(critestSubsetFocus)
	}
	if focus != "" {
		args = append(args, "--ginkgo.focus="+focus)
	}
	logPath := base + ".log"
	logf, err := os.Create(logPath)
	if err != nil {
		t.Fatal(err)
	}
	defer logf.Close()
	// A backstop for a critest that outlives its own suite timeout: interrupt
	// rather than kill, so that ginkgo cleans up the running spec and still
	// writes its reports, marking the rest interrupted.
	ctx, cancel := context.WithTimeout(context.Background(), suite+2*time.Minute)
	defer cancel()
	cmd := r.net.command(ctx, r.bin, args...)
	cmd.Cancel = func() error { return cmd.Process.Signal(os.Interrupt) }
	cmd.WaitDelay = time.Minute
	cmd.Dir = r.tmp
	cmd.Env = append(os.Environ(), "TMPDIR="+r.tmp)
	cmd.Stdout, cmd.Stderr = logf, logf
	start := time.Now()
	runErr := cmd.Run()
	elapsed := time.Since(start)
	res, err := readCritestReport(base + ".json")
	if err != nil {
		t.Fatalf("critest (%v) left no usable report: %v; last lines of %s:\n%s", runErr, err, logPath, hostcheck.Tail(logPath, 40))
	}
	res.Handler, res.Time, res.Log = r.handler, elapsed, logPath
	if err := os.WriteFile(base+".txt", []byte(res.text()), 0o644); err != nil {
		t.Error(err)
	}
	return res
}

// critestReportDir is <repo>/_critest-reports/<mode> (git-ignored), emptied
// for this run, or $PALISADE_CRITEST_REPORTS/<mode>.
func critestReportDir(t testing.TB, mode string) string {
	t.Helper()
	root := os.Getenv(envCritestReports)
	if root == "" {
		repo, err := repoRoot()
		if err != nil {
			t.Fatal(err)
		}
		root = filepath.Join(repo, "_critest-reports")
	}
	dir := filepath.Join(root, mode)
	if err := os.RemoveAll(dir); err != nil {
		t.Fatal(err)
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	return dir
}

// keepFile copies src to dst, for a report that outlives the test directory.
func keepFile(t testing.TB, src, dst string) {
	b, err := os.ReadFile(src)
	if err == nil {
		err = os.WriteFile(dst, b, 0o644)
	}
	if err != nil {
		t.Errorf("keep %s: %v", src, err)
	}
}

// removeLeftoverPods removes, through CRI, the pod sandboxes critest left:
// a spec that fails before it knows its pod's ID (HostNetwork is true, when the
// check inside its helper fails) cannot remove it. The runtime must then tear
// them down like any pod; the leak check at containerd's stop verifies it.
func removeLeftoverPods(t *testing.T, env *containerdEnv) {
	t.Helper()
	crictl, _ := lookupTool("crictl")
	crictlCmd := func(args ...string) *exec.Cmd {
		return exec.Command(crictl, append([]string{"--runtime-endpoint", "unix://" + env.Address,
			"--image-endpoint", "unix://" + env.Address, "--timeout", "60s"}, args...)...)
	}
	out, err := crictlCmd("pods", "-q").Output()
	if err != nil {
		t.Errorf("crictl pods: %v", err)
		return
	}
	ids := strings.Fields(string(out))
	if len(ids) == 0 {
		return
	}
	t.Logf("critest left %d pod sandboxes behind; removing them through CRI: %v", len(ids), ids)
	if out, err := crictlCmd(append([]string{"rmp", "--force"}, ids...)...).CombinedOutput(); err != nil {
		t.Errorf("the runtime could not remove them: %v\n%s", err, out)
	}
}

// removeCritestDir removes the run's directory. critest's mount propagation
// specs mount below its TMPDIR on the host and leave the mount when they fail
// part-way: that is critest's residue, detached and logged here, not a leak of
// the runtime under test (the leak check covers those, in the env's Dir).
func removeCritestDir(t *testing.T, dir string) {
	t.Helper()
	unmounted, err := hostcheck.UnmountAll(dir)
	if len(unmounted) > 0 {
		t.Logf("critest left mounts below %s (now detached): %v", dir, unmounted)
	}
	if err != nil {
		t.Error(err)
	}
	if err := os.RemoveAll(dir); err != nil {
		t.Errorf("remove %s: %v", dir, err)
	}
}
