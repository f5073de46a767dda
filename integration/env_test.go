// Package integration runs Palisade and its peers against real containerd, ctr,
// runc and runsc processes. The tests need root; see requireIntegration.
package integration

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/palisade-runtime/palisade/integration/k8s"
)

const (
	// envRequired makes every missing prerequisite a failure instead of a skip, so
	// that CI cannot go green by skipping everything.
	envRequired = "PALISADE_INTEGRATION"
	// envToolsBin overrides where the pinned tools are looked up first.
	envToolsBin = "PALISADE_TOOLS_BIN"
	// envPalisadeBin names a directory holding a prebuilt containerd-shim-palisade-v2
	// and palisade-trampoline (or the shim itself); when unset the harness builds
	// ./cmd/... once per run.
	envPalisadeBin = "PALISADE_BIN"

	palisadeShimName = "containerd-shim-palisade-v2"
	// trampolineName runs next to the shim; without it the shim would run
	// itself as the trampoline, and these tests would not cover the binary
	// that is installed.
	trampolineName = "palisade-trampoline"
)

func TestMain(m *testing.M) {
	if os.Getenv(envSweepHelper) != "" { // a stand-in shim for TestSweepInterruptedRuns
		time.Sleep(10 * time.Minute)
		os.Exit(0)
	}
	if os.Geteuid() == 0 {
		// What an earlier, killed run of these tests left (sweep_test.go).
		swept, err := sweepInterruptedRuns()
		for _, s := range swept {
			fmt.Fprintln(os.Stderr, "integration: from an interrupted run:", s)
		}
		if err != nil {
			fmt.Fprintln(os.Stderr, "integration: sweeping interrupted runs:", err)
			os.Exit(1)
		}
		clusters, err := k8s.SweepStale(context.Background())
		for _, s := range clusters {
			fmt.Fprintln(os.Stderr, "integration: from an interrupted run:", s)
		}
		if err != nil {
			fmt.Fprintln(os.Stderr, "integration: sweeping interrupted clusters:", err)
			os.Exit(1)
		}
	}
	code := m.Run()
	// The shim built by palisadeBinDir lives in a per-process directory; remove it
	// whether or not a test asked for it.
	_ = os.RemoveAll(shimBuildDir())
	os.Exit(code)
}

// skipOrFatal skips the test with reason, or fails it when the integration tests
// are required (CI sets PALISADE_INTEGRATION=required).
func skipOrFatal(t testing.TB, format string, args ...any) {
	t.Helper()
	if os.Getenv(envRequired) == "required" {
		t.Fatalf("%s=required, but: "+format, append([]any{envRequired}, args...)...)
	}
	t.Skipf(format, args...)
}

// requireIntegration skips (or fails, see skipOrFatal) unless the test runs as root
// and containerd, ctr and every tool in tools can be found by lookupTool.
func requireIntegration(t testing.TB, tools ...string) {
	t.Helper()
	if os.Geteuid() != 0 {
		skipOrFatal(t, "integration tests need root (euid is %d)", os.Geteuid())
	}
	for _, name := range append([]string{"containerd", "ctr"}, tools...) {
		if _, err := lookupTool(name); err != nil {
			skipOrFatal(t, "%v (run integration/tools/install.sh)", err)
		}
	}
}

// repoRoot is the directory holding the module's go.mod. Tests run in the package
// directory, so it is found by walking up from there.
func repoRoot() (string, error) {
	dir, err := os.Getwd()
	if err != nil {
		return "", err
	}
	for {
		if _, err := os.Stat(filepath.Join(dir, "go.mod")); err == nil {
			return dir, nil
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			return "", errors.New("go.mod not found above the test directory")
		}
		dir = parent
	}
}

// toolsBin is $PALISADE_TOOLS_BIN, or <repo>/_tools/bin where install.sh puts the
// pinned builds.
func toolsBin() string {
	if d := os.Getenv(envToolsBin); d != "" {
		return d
	}
	root, err := repoRoot()
	if err != nil {
		return ""
	}
	return filepath.Join(root, "_tools", "bin")
}

// lookupTool resolves a tool by name: an absolute path is taken as is, otherwise
// the tools bin is tried before PATH so the pinned versions win over distro ones.
func lookupTool(name string) (string, error) {
	if filepath.IsAbs(name) {
		if _, err := os.Stat(name); err != nil {
			return "", fmt.Errorf("tool %s: %w", name, err)
		}
		return name, nil
	}
	if d := toolsBin(); d != "" {
		p := filepath.Join(d, name)
		if st, err := os.Stat(p); err == nil && st.Mode()&0o111 != 0 {
			return p, nil
		}
	}
	p, err := exec.LookPath(name)
	if err != nil {
		return "", fmt.Errorf("tool %q not found in %s nor PATH", name, toolsBin())
	}
	return p, nil
}

// shimBuildDir is where this test process builds ./cmd/...; keyed by PID so two
// test binaries running at once do not share it.
func shimBuildDir() string {
	return filepath.Join(os.TempDir(), fmt.Sprintf("palisade-it-bin-%d", os.Getpid()))
}

// buildPalisade builds every command under ./cmd once per test process. It returns
// errNoPalisadeSource when the shim's package does not exist yet.
var buildPalisade = sync.OnceValues(func() (string, error) {
	root, err := repoRoot()
	if err != nil {
		return "", err
	}
	if _, err := os.Stat(filepath.Join(root, "cmd", palisadeShimName)); err != nil {
		return "", fmt.Errorf("%w: %v", errNoPalisadeSource, err)
	}
	out := shimBuildDir()
	if err := os.MkdirAll(out, 0o755); err != nil {
		return "", err
	}
	cmd := exec.Command("go", "build", "-o", out+"/", "./cmd/...")
	cmd.Dir = root
	if b, err := cmd.CombinedOutput(); err != nil {
		return "", fmt.Errorf("go build ./cmd/...: %w\n%s", err, b)
	}
	return out, nil
})

var errNoPalisadeSource = errors.New("no Palisade shim source")

// palisadeBinDir returns a directory holding containerd-shim-palisade-v2 and
// palisade-trampoline, to be put on containerd's PATH: $PALISADE_BIN if set,
// else a fresh build. A missing source tree skips (or fails under
// PALISADE_INTEGRATION=required); a build error always fails.
func palisadeBinDir(t testing.TB) string {
	t.Helper()
	if p := os.Getenv(envPalisadeBin); p != "" {
		if st, err := os.Stat(p); err == nil && !st.IsDir() {
			p = filepath.Dir(p)
		}
		for _, b := range []string{palisadeShimName, trampolineName} {
			if _, err := os.Stat(filepath.Join(p, b)); err != nil {
				t.Fatalf("%s=%s: %v (make build)", envPalisadeBin, p, err)
			}
		}
		return p
	}
	dir, err := buildPalisade()
	if errors.Is(err, errNoPalisadeSource) {
		skipOrFatal(t, "%v", err)
	}
	if err != nil {
		t.Fatal(err)
	}
	return dir
}
