package integration

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/palisade-runtime/palisade/integration/internal/hostcheck"
	"github.com/palisade-runtime/palisade/integration/k8s"
)

// kubeTools are what package k8s runs besides containerd and Palisade.
var kubeTools = []string{"kube-apiserver", "kube-controller-manager", "kube-scheduler", "kubelet", "kubectl", "etcd",
	"crictl", "runc", "runsc", "containerd-shim-runc-v2"}

// e2eHandlers are the handlers the end-to-end cluster serves besides the
// repository's config.toml. gvisor-refuse is the shipped gvisor floor with
// over_ceiling = "refuse" and no AppArmor table, so that on this kernel (no
// AppArmor) it runs and refuses what exceeds its ceiling. gvisor-open has
// no floor: the sentry's boot banner is readable there (the floor's seccomp
// denies syslog).
const e2eHandlers = `
[handlers.gvisor-refuse]
backend = "runsc"
[handlers.gvisor-refuse.runsc]
binary = "runsc"
root = "/run/palisade/runsc"
[handlers.gvisor-refuse.policy]
seccomp = "runtime-default"
over_ceiling = "refuse"
no_new_privileges = true
[handlers.gvisor-refuse.policy.capabilities]
ceiling = ["CAP_CHOWN", "CAP_SETGID", "CAP_SETUID", "CAP_NET_BIND_SERVICE"]

[handlers.gvisor-open]
backend = "runsc"
[handlers.gvisor-open.runsc]
binary = "runsc"
root = "/run/palisade/runsc"
[handlers.gvisor-open.policy]
mode = "enforce"
seccomp = "none"
no_new_privileges = false
`

// TestKubernetesE2E runs the one-node cluster of package k8s (what `make
// cluster` starts: a real kube-apiserver, scheduler, controller-manager and
// kubelet over a private containerd serving Palisade's handlers) once, and
// every end-to-end check against it in turn: the examples as a user applies
// them, refusals as a user sees them, kubelet's streaming, probes and
// restarts, and at the end that nothing of a deleted pod, or of the stopped
// cluster, is left on the host.
func TestKubernetesE2E(t *testing.T) {
	c := startCluster(t, e2eHandlers)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Minute)
	defer cancel()
	k := &kube{t: t, c: c, ctx: ctx}
	for _, step := range []struct {
		name string
		run  func(*testing.T, *kube)
	}{
		{"Examples", testExamples},
		{"Refusals", testRefusals},
		{"UnconfiguredHandler", testUnconfiguredHandler},
		{"BannerAndDecision", testBannerAndDecision},
		{"LogsAttachExec", testLogsAttachExec},
		{"PortForward", testPortForward},
		{"LivenessProbe", testLiveness},
		{"RestartOnExit", testRestart},
		{"NothingLeftAfterDelete", testNothingLeft},
	} {
		t.Run(step.name, func(t *testing.T) { step.run(t, k.with(t)) })
	}
	testStop(t, k)
}

// startCluster starts the one-node cluster of package k8s for t, serving the
// repository's config.toml plus extra (TOML, may be empty), and stops it at
// cleanup unless the test did.
func startCluster(t testing.TB, extra string) *k8s.Cluster {
	t.Helper()
	return startClusterWith(t, extra, nil)
}

// startClusterWith is startCluster with more handlers of containerd's own
// shim (k8s.Options.RuncRuntimes).
func startClusterWith(t testing.TB, extra string, runcRuntimes map[string]string) *k8s.Cluster {
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
		ToolsBin: toolsBin(), PalisadeBin: bin, RepoRoot: root, ExtraConfig: extra,
		RuncRuntimes: runcRuntimes, Log: testLog{t},
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

// testStop stops the cluster as `make cluster-down` does: nothing of it may
// be left on the host.
func testStop(t *testing.T, k *kube) {
	dirs := k.c.Dirs()
	start := time.Now()
	if err := k.c.Stop(k.ctx); err != nil {
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
