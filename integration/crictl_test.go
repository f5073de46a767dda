package integration

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"strings"
	"testing"
	"time"
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

// criEnv is a private containerd whose CRI serves the runtimes a test
// names, with pods networked by the CNI plugins in a network namespace of
// the test's own and images from a local registry in it (critest's offline
// set), as a node would have them.
type criEnv struct {
	*containerdEnv
	cri crictl
	net *critestNet
	dir string // the test's directory: pod configs, logs, the registry
}

// criEnvOpts says what startCRIEnv starts.
type criEnvOpts struct {
	name     string   // the runtime row's name, and the directory's prefix
	tools    []string // tools the runtimes need besides containerd and crictl
	layout   string   // the images' OCI layout; "" is critestImages
	runtimes func(e *containerdEnv) []criRuntime
	pull     []string // images pulled besides the pause image
}

// startCRIEnv starts the containerd of o, its network and registry, and
// pulls o.pull; all of it goes at t's cleanup.
func startCRIEnv(t *testing.T, o criEnvOpts) *criEnv {
	t.Helper()
	requireIntegration(t, append([]string{"crictl"}, o.tools...)...)
	dir, err := os.MkdirTemp("/tmp", "pal-"+o.name+"-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { removeCritestDir(t, dir) })
	if o.layout == "" {
		o.layout = critestImages(t)
	}
	n := newCritestNet(t, dir)
	hosts := startMirror(t, n, o.layout, dir)
	env := startContainerdFor(t, runtimeUnderTest{Name: o.name, NeedsPalisade: true, Tools: o.tools},
		containerdOpts{
			CRI:                true,
			CRIRuntimesFor:     o.runtimes,
			RegistryConfigPath: hosts,
			SandboxImage:       critestSandboxImage,
			CNIBinDirs:         []string{n.BinDir},
			CNIConfDir:         n.ConfDir,
			NetNSUnderStateDir: true,
			NetNS:              n.Path,
		})
	e := &criEnv{containerdEnv: env, cri: newCrictl(t, env), net: n, dir: dir}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
	defer cancel()
	for _, img := range append([]string{critestSandboxImage}, o.pull...) {
		if _, err := e.cri.run(ctx, "pull", img); err != nil {
			t.Fatal(err)
		}
	}
	return e
}

// runPodContainer runs a pod sandbox from podCfg on runtime, creates the
// container of ctrCfg in it and starts it; pod and container are stopped
// and removed at t's cleanup. It returns their IDs and StartContainer's
// error: containerd's CRI creates the task, where the floor runs, there.
func (c crictl) runPodContainer(ctx context.Context, t *testing.T, runtime, podCfg, ctrCfg string) (podID, ctrID string, startErr error) {
	t.Helper()
	podID, err := c.run(ctx, "runp", "--runtime", runtime, podCfg)
	if err != nil {
		t.Fatalf("runp: %v", err)
	}
	t.Cleanup(func() {
		c.run(ctx, "stopp", podID)
		if _, err := c.run(ctx, "rmp", podID); err != nil {
			t.Errorf("rmp: %v", err)
		}
	})
	if ctrID, err = c.run(ctx, "create", podID, ctrCfg, podCfg); err != nil {
		t.Fatalf("create: %v", err)
	}
	t.Cleanup(func() {
		c.run(ctx, "stop", ctrID)
		if _, err := c.run(ctx, "rm", ctrID); err != nil {
			t.Errorf("rm: %v", err)
		}
	})
	_, err = c.run(ctx, "start", ctrID)
	return podID, ctrID, err
}
