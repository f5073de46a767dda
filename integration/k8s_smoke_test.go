package integration

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/palisade-runtime/palisade/integration/internal/hostcheck"
	"github.com/palisade-runtime/palisade/integration/k8s"
)

// kubeTools are what package k8s runs besides containerd and Palisade.
var kubeTools = []string{"kube-apiserver", "kube-controller-manager", "kube-scheduler", "kubelet", "kubectl", "etcd",
	"crictl", "runc", "runsc", "containerd-shim-runc-v2"}

// startCluster starts the one-node cluster of package k8s for t, serving the
// repository's config.toml plus extra (TOML, may be empty), and stops it at
// cleanup unless the test did.
func startCluster(t testing.TB, extra string) *k8s.Cluster {
	t.Helper()
	requireIntegration(t, kubeTools...)
	bin := palisadeBinDir(t)
	if _, err := os.Stat(filepath.Join(bin, "palisadectl")); err != nil {
		skipOrFatal(t, "palisadectl not in %s: %v (make build)", bin, err)
	}
	root, err := repoRoot()
	if err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	c, err := k8s.Start(context.Background(), k8s.Options{
		ToolsBin: toolsBin(), PalisadeBin: bin, RepoRoot: root, ExtraConfig: extra, Log: testLog{t},
	})
	if err != nil {
		t.Fatalf("start the cluster: %v", err)
	}
	t.Logf("cluster up in %v", time.Since(start).Round(time.Millisecond))
	t.Cleanup(func() {
		if _, err := os.Stat(c.Dirs().Root); err == nil {
			if err := c.Stop(context.Background()); err != nil {
				t.Errorf("stop the cluster: %v", err)
			}
		}
	})
	return c
}

// testLog sends the cluster's progress lines to t.Log.
type testLog struct{ t testing.TB }

func (l testLog) Write(b []byte) (int, error) {
	l.t.Log(strings.TrimRight(string(b), "\n"))
	return len(b), nil
}

// TestKubernetesSmoke runs one pod through the whole stack: the apiserver admits
// it, the scheduler places it, the kubelet asks containerd's CRI for handler
// gvisor, Palisade runs it on runsc with its floor. Then the cluster stops and
// nothing of it may be left on the host.
func TestKubernetesSmoke(t *testing.T) {
	c := startCluster(t, "")
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
	defer cancel()
	kubectl := kubectlFunc(t, ctx, c)
	if out := kubectl("get", "runtimeclass", "-o", "name"); !strings.Contains(out, "runtimeclass.node.k8s.io/gvisor\n") ||
		!strings.Contains(out, "runtimeclass.node.k8s.io/runc\n") {
		t.Fatalf("RuntimeClasses gvisor and runc missing:\n%s", out)
	}
	pod := `apiVersion: v1
kind: Pod
metadata:
  name: smoke
spec:
  runtimeClassName: gvisor
  terminationGracePeriodSeconds: 1
  containers:
  - name: c
    image: registry.k8s.io/e2e-test-images/busybox:1.29-2
    command: ["sleep", "3600"]
`
	if _, err := c.KubectlStdin(ctx, []byte(pod), "apply", "-f", "-"); err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	if _, err := c.Kubectl(ctx, "wait", "--for=condition=Ready", "pod/smoke", "--timeout=4m"); err != nil {
		desc, _ := c.Kubectl(ctx, "describe", "pod", "smoke")
		t.Fatalf("%v\n%s", err, desc)
	}
	t.Logf("pod Ready in %v", time.Since(start).Round(time.Millisecond))
	if node := kubectl("get", "pod", "smoke", "-o", "jsonpath={.spec.nodeName}"); node != k8s.NodeName {
		t.Errorf("pod scheduled to %q, want %q", node, k8s.NodeName)
	}
	// Seccomp 2 is filter mode: the floor's runtime-default profile is on,
	// though the pod asked for none.
	if out := kubectl("exec", "smoke", "--", "grep", "Seccomp:", "/proc/self/status"); !strings.Contains(out, "Seccomp:\t2") {
		t.Errorf("kubectl exec: %q, want Seccomp:\\t2", out)
	}
	// The sentry's kernel release, not the host's: the pod runs in gVisor.
	var host unix.Utsname
	if err := unix.Uname(&host); err != nil {
		t.Fatal(err)
	}
	if out := strings.TrimSpace(kubectl("exec", "smoke", "--", "uname", "-r")); out == unix.ByteSliceToString(host.Release[:]) {
		t.Errorf("uname -r in the pod is the host's (%s): not running on gVisor", out)
	}
	if _, err := c.Kubectl(ctx, "delete", "pod", "smoke", "--wait", "--timeout=2m"); err != nil {
		t.Fatal(err)
	}

	dirs := c.Dirs()
	start = time.Now()
	if err := c.Stop(ctx); err != nil {
		t.Fatalf("stop: %v", err)
	}
	t.Logf("cluster stopped in %v", time.Since(start).Round(time.Millisecond))
	for _, p := range []string{dirs.Root, dirs.NetNS} {
		if _, err := os.Stat(p); !os.IsNotExist(err) {
			t.Errorf("%s left after Stop (%v)", p, err)
		}
	}
	if cg, err := hostcheck.CgroupDirs(dirs.CgroupRoot); err != nil || len(cg) > 0 {
		t.Errorf("cgroups left after Stop: %v %v", cg, err)
	}
	snap, err := hostcheck.Take(hostcheck.Rules{ProcNames: []string{"*"}, ProcOwners: []string{dirs.Root + "/"},
		MountPrefixes: []string{dirs.Root + "/"}})
	if err != nil {
		t.Fatal(err)
	}
	if len(snap.Procs)+len(snap.Mounts) > 0 {
		t.Errorf("left after Stop: processes %v, mounts %v", snap.Procs, snap.Mounts)
	}
}

// kubectlFunc returns kubectl on cluster c that fails t on an error.
func kubectlFunc(t testing.TB, ctx context.Context, c *k8s.Cluster) func(args ...string) string {
	return func(args ...string) string {
		t.Helper()
		out, err := c.Kubectl(ctx, args...)
		if err != nil {
			t.Fatal(err)
		}
		return string(out)
	}
}
