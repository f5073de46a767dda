package integration

import (
	"os"
	"os/exec"
	"path/filepath"
	"sync"
	"testing"
)

// buildProbe builds ./integration/probe statically, once per test process.
var buildProbe = sync.OnceValues(func() (string, error) {
	root, err := repoRoot()
	if err != nil {
		return "", err
	}
	out := filepath.Join(shimBuildDir(), "probe")
	cmd := exec.Command("go", "build", "-o", out, "./integration/probe")
	cmd.Dir = root
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
	if b, err := cmd.CombinedOutput(); err != nil {
		return "", &buildError{err: err, out: string(b)}
	}
	return out, nil
})

type buildError struct {
	err error
	out string
}

func (e *buildError) Error() string {
	return "go build ./integration/probe: " + e.err.Error() + "\n" + e.out
}

// probeRootfs is busyboxRootfs with /bin/probe in it.
func probeRootfs(t testing.TB) string {
	t.Helper()
	bin, err := buildProbe()
	if err != nil {
		t.Fatal(err)
	}
	dir := busyboxRootfs(t)
	if err := copyFile(bin, filepath.Join(dir, "bin", "probe"), 0o755); err != nil {
		t.Fatal(err)
	}
	return dir
}
