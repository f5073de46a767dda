package integration

import (
	"context"
	"fmt"
	"os/exec"
	"strings"
	"testing"
)

// criBusyboxImage is the busybox image of critest's set (served by the
// test's registry mirror, see startMirror).
const criBusyboxImage = "registry.k8s.io/e2e-test-images/busybox:1.29-2"

// crictl runs crictl against one containerd.
type crictl struct{ bin, address string }

func newCrictl(t testing.TB, e *containerdEnv) crictl {
	bin, err := lookupTool("crictl")
	if err != nil {
		t.Fatal(err)
	}
	return crictl{bin: bin, address: "unix://" + e.Address}
}

// run returns crictl's trimmed stdout, or an error with its stderr.
func (c crictl) run(ctx context.Context, args ...string) (string, error) {
	cmd := exec.CommandContext(ctx, c.bin, append([]string{"--runtime-endpoint", c.address,
		"--image-endpoint", c.address, "--timeout", "2m"}, args...)...)
	var stderr strings.Builder
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		return "", fmt.Errorf("crictl %s: %w: %s", strings.Join(args, " "), err, strings.TrimSpace(stderr.String()))
	}
	return strings.TrimSpace(string(out)), nil
}
