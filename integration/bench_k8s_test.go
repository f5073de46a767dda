//go:build bench

package integration

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"
)

// TestBenchKubePodStart is P7 of make bench (integration/bench.sh): pod
// start latency through a real kubelet. One cluster (package k8s) serves
// gvisor (Palisade, the repository's config.toml) and runc (containerd's
// shim and runc, the reference). Each round creates PODS pods at once with
// one `kubectl create` and times them until `kubectl wait` sees every one
// Ready, then deletes them and waits until they are gone; rounds go through
// the classes in turn, ROUNDS times, so that a load burst on the machine
// hits them alike.
//
// The peer of the other benchmarks, containerd-shim-runc-v2 driving runsc,
// cannot run a pod's app container: `runsc start` of a container that joins
// a sandbox hands its own stdio to the sandbox as the container's, and
// go-runc runs `start` with its output captured in a pipe that it waits on
// until every writer has closed it, which the sandbox never does while the
// container runs; StartContainer hangs until kubelet's deadline (the runc
// shim's stack: go-runc Start in cmdOutput, awaitGoroutines). Its pod
// sandboxes alone run (P4 measures them); gVisor's own shim handles stdio
// at start for this reason. PALISADE_BENCH_SERIES=runcshim-runsc shows it.
func TestBenchKubePodStart(t *testing.T) {
	pods, rounds := benchEnvInt(t, envBenchPods, 20), benchEnvInt(t, envBenchRounds, 5)
	runsc, err := lookupTool("runsc")
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	c := startClusterWith(t, "", map[string]string{
		// containerd's shim reports runsc's "is not running" as an unknown
		// error; the wrapper gives it runc's words (see writeKillCompat).
		"runcshim-runsc": writeKillCompat(t, filepath.Join(dir, "runcshim-runsc"), runsc, ""),
	})
	ctx, cancel := context.WithTimeout(context.Background(), 50*time.Minute)
	defer cancel()
	k := &kube{t: t, c: c, ctx: ctx}
	classes := []string{"gvisor", "runc"}
	if v := os.Getenv(envBenchSeries); v != "" {
		classes = strings.Split(v, ",")
	}
	// One pod of each first: the images are pulled and cached, kubelet and
	// the shims' binaries are warm.
	for _, rc := range classes {
		k.createPods(rc, "warm-"+rc, 1)
		k.waitAllReady("warm-"+rc, 5*time.Minute)
		k.run("delete", "pod", "-l", "bench=warm-"+rc, "--wait", "--timeout=5m")
	}
	walls := map[string][]float64{}
	for r := range rounds {
		for _, rc := range classes {
			label := fmt.Sprintf("%s-%d", rc, r)
			start := time.Now()
			k.createPods(rc, label, pods)
			k.waitAllReady(label, 10*time.Minute)
			wall := time.Since(start)
			k.run("delete", "pod", "-l", "bench="+label, "--wait", "--timeout=10m")
			t.Logf("%-15s round %d: %d pods Ready in %6.2f s", rc, r+1, pods, wall.Seconds())
			walls[rc] = append(walls[rc], wall.Seconds())
		}
	}
	var b strings.Builder
	for _, rc := range classes {
		for _, w := range walls[rc] {
			fmt.Fprintf(&b, "p7-k8s-ready\t%s\t%.3f\n", rc, w)
		}
		fmt.Fprintf(&b, "p7-k8s-pods\t%s\t%d\n", rc, pods)
		t.Logf("%-15s median of %d rounds: %d pods Ready in %.2f s", rc, rounds, pods, median(walls[rc]))
	}
	if len(walls["gvisor"]) > 0 && len(walls["runc"]) > 0 {
		t.Logf("gvisor / runc: %.2f", median(walls["gvisor"])/median(walls["runc"]))
	}
	if dir := os.Getenv(envBenchData); dir != "" {
		f, err := os.OpenFile(filepath.Join(dir, "samples.tsv"), os.O_APPEND|os.O_CREATE|os.O_WRONLY, 0o644)
		if err == nil {
			_, err = f.WriteString(b.String())
			err = errors.Join(err, f.Close())
		}
		if err != nil {
			t.Errorf("write samples: %v", err)
		}
	}
}

// createPods creates n busybox pods of RuntimeClass rc labelled
// bench=label with one kubectl create.
func (k *kube) createPods(rc, label string, n int) {
	k.t.Helper()
	var b strings.Builder
	b.WriteString("apiVersion: v1\nkind: List\nitems:\n")
	for i := range n {
		fmt.Fprintf(&b, `- apiVersion: v1
  kind: Pod
  metadata: {name: %s-%d, labels: {bench: %s}}
  spec:
    runtimeClassName: %s
    terminationGracePeriodSeconds: 1
    containers:
    - name: main
      image: registry.k8s.io/e2e-test-images/busybox:1.29-2
      command: ["sleep", "3600"]
`, label, i, label, rc)
	}
	if out, err := k.c.KubectlStdin(k.ctx, []byte(b.String()), "create", "-f", "-"); err != nil {
		k.t.Fatalf("create %d pods of %s: %v\n%s", n, rc, err, out)
	}
}

// waitAllReady waits until every pod labelled bench=label is Ready.
func (k *kube) waitAllReady(label string, timeout time.Duration) {
	k.t.Helper()
	if out, err := k.try("wait", "--for=condition=Ready", "pod", "-l", "bench="+label, "--timeout="+timeout.String()); err != nil {
		desc, _ := k.try("describe", "pod", "-l", "bench="+label)
		k.t.Fatalf("%s: pods not Ready: %v %s\n%s", label, err, out, desc)
	}
}

func median(v []float64) float64 {
	s := slices.Clone(v)
	slices.Sort(s)
	return s[len(s)/2]
}
