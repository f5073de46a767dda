package integration

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/palisade-runtime/palisade/integration/internal/hostcheck"
	"github.com/palisade-runtime/palisade/integration/k8s"
)

// kube runs kubectl against the end-to-end cluster for one (sub)test.
type kube struct {
	t   testing.TB
	c   *k8s.Cluster
	ctx context.Context
}

func (k *kube) with(t testing.TB) *kube { return &kube{t: t, c: k.c, ctx: k.ctx} }

// run runs kubectl and fails the test on error.
func (k *kube) run(args ...string) string {
	k.t.Helper()
	out, err := k.c.Kubectl(k.ctx, args...)
	if err != nil {
		k.t.Fatalf("kubectl %s: %v\n%s", strings.Join(args, " "), err, out)
	}
	return string(out)
}

// try runs kubectl and returns its error.
func (k *kube) try(args ...string) (string, error) {
	out, err := k.c.Kubectl(k.ctx, args...)
	return string(out), err
}

func (k *kube) apply(manifest string) {
	k.t.Helper()
	if out, err := k.c.KubectlStdin(k.ctx, []byte(manifest), "apply", "-f", "-"); err != nil {
		k.t.Fatalf("apply: %v\n%s", err, out)
	}
}

func (k *kube) getJSON(v any, args ...string) {
	k.t.Helper()
	out := k.run(append(args, "-o", "json")...)
	if err := json.Unmarshal([]byte(out), v); err != nil {
		k.t.Fatalf("kubectl %v: %v", args, err)
	}
}

func (k *kube) pod(name string) pod {
	k.t.Helper()
	var p pod
	k.getJSON(&p, "get", "pod", name)
	return p
}

// poll calls check every half second until it returns true or 4 minutes
// pass; then it fails the test with what the optional detail says.
func (k *kube) poll(what string, check func() bool, detail ...func() string) {
	k.t.Helper()
	for deadline := time.Now().Add(4 * time.Minute); !check(); time.Sleep(500 * time.Millisecond) {
		if time.Now().After(deadline) {
			var more string
			for _, d := range detail {
				more += "\n" + d()
			}
			k.t.Fatalf("timed out waiting for %s%s", what, more)
		}
	}
}

func (k *kube) waitReady(name string) {
	k.t.Helper()
	if out, err := k.try("wait", "--for=condition=Ready", "pod/"+name, "--timeout=4m"); err != nil {
		desc, _ := k.try("describe", "pod", name)
		k.t.Fatalf("pod %s not Ready: %v %s\n%s", name, err, out, desc)
	}
}

// waitEventWith waits for an event on the pod whose "reason: message"
// holds every one of want, and returns that line.
func (k *kube) waitEventWith(name string, want ...string) string {
	k.t.Helper()
	var line, seen string
	k.poll(fmt.Sprintf("an event on pod %s with %q", name, want), func() bool {
		var evs struct {
			Items []struct{ Reason, Message string }
		}
		k.getJSON(&evs, "get", "events", "--field-selector", "involvedObject.name="+name)
		seen = ""
		for _, e := range evs.Items {
			l := e.Reason + ": " + e.Message
			seen += l + "\n"
			if containsAll(l, want) {
				line = l
				return true
			}
		}
		return false
	}, func() string { return seen })
	k.t.Logf("%s: %s", name, line)
	return line
}

func (k *kube) waitWaiting(name, reason string) waiting {
	k.t.Helper()
	var w waiting
	k.poll(name+" waiting in "+reason, func() bool {
		for _, cs := range k.pod(name).Status.ContainerStatuses {
			if cs.State.Waiting != nil && cs.State.Waiting.Reason == reason {
				w = *cs.State.Waiting
				return true
			}
		}
		return false
	})
	return w
}

func (k *kube) waitRestarts(name string, n int) pod {
	k.t.Helper()
	var p pod
	k.poll(fmt.Sprintf("%s restarted %d times", name, n), func() bool {
		p = k.pod(name)
		return len(p.Status.ContainerStatuses) > 0 && p.Status.ContainerStatuses[0].RestartCount >= n
	})
	return p
}

// checkDecision reads the decision record Palisade wrote into each of the
// pod's container bundles: the handler and the pod it names.
func (k *kube) checkDecision(p pod, handler string) {
	k.t.Helper()
	for _, cs := range p.Status.ContainerStatuses {
		id := strings.TrimPrefix(cs.ContainerID, "containerd://")
		switch d := readDecision(k.t, k.c.Dirs().ContainerdState, "k8s.io", id); {
		case d.Handler != handler:
			k.t.Errorf("%s/%s: decision record handler %q, want %q", p.Metadata.Name, cs.Name, d.Handler, handler)
		case d.Pod == nil || d.Pod.Name != p.Metadata.Name || d.Pod.Namespace != p.Metadata.Namespace || d.Pod.Container != cs.Name:
			k.t.Errorf("%s/%s: decision record names pod %+v", p.Metadata.Name, cs.Name, d.Pod)
		}
	}
}

var forwarding = regexp.MustCompile(`Forwarding from 127\.0\.0\.1:(\d+)`)

// portForwardGet runs kubectl port-forward to the pod's port and fetches path
// through it; the error carries kubectl's own report.
func (k *kube) portForwardGet(name string, port int, path string) (string, error) {
	ctx, cancel := context.WithTimeout(k.ctx, 30*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, filepath.Join(toolsBin(), "kubectl"), "--kubeconfig", k.c.Kubeconfig(),
		"port-forward", "pod/"+name, fmt.Sprintf("0:%d", port))
	var stderr strings.Builder
	cmd.Stderr = &stderr
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		return "", err
	}
	if err := cmd.Start(); err != nil {
		return "", err
	}
	defer func() { _ = cmd.Process.Kill(); _ = cmd.Wait() }()
	line, err := bufio.NewReader(stdout).ReadString('\n')
	m := forwarding.FindStringSubmatch(line)
	if m == nil {
		return "", fmt.Errorf("port-forward printed %q (%v): %s", line, err, stderr.String())
	}
	resp, err := (&http.Client{Timeout: 10 * time.Second}).Get("http://127.0.0.1:" + m[1] + path)
	if err != nil {
		time.Sleep(500 * time.Millisecond)
		return "", fmt.Errorf("%w; kubectl: %s", err, stderr.String())
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	return string(b), err
}

// testNothingLeft deletes every pod and checks that no shim, runsc sandbox or
// gofer, mount, socket or pod cgroup process of the cluster stays.
func testNothingLeft(t *testing.T, k *kube) {
	k.run("delete", "deployment", "--all", "--wait", "--timeout=3m")
	k.run("delete", "pod", "--all", "--wait", "--timeout=3m")
	d := k.c.Dirs()
	rules := hostcheck.Rules{
		ProcNames:     []string{"containerd-shim-palisade-v2", "containerd-shim-runc-v2", "runsc*", "exe"},
		ProcOwners:    []string{d.Root + "/"},
		MountPrefixes: []string{d.ContainerdState + "/", d.RunscRoot + "/", d.RuntimeRoot + "/"},
		SocketRoots:   []string{d.ShimSockets},
		CgroupPaths:   []string{d.CgroupRoot},
	}
	// kubelet stops a deleted pod's sandbox at once and removes it at its next
	// garbage collection; wait for that.
	var snap hostcheck.Snapshot
	deadline := time.Now().Add(3 * time.Minute)
	for {
		var err error
		if snap, err = hostcheck.Take(rules); err != nil {
			t.Fatal(err)
		}
		if len(snap.Procs)+len(snap.Mounts)+len(snap.Paths)+len(snap.CgroupProcs) == 0 || time.Now().After(deadline) {
			break
		}
		time.Sleep(2 * time.Second)
	}
	if l := hostcheck.Diff(hostcheck.Snapshot{}, snap); !l.Empty() {
		t.Errorf("left after deleting every pod:\n%s", l)
	}
}

func busyboxPod(name, runtimeClass, script string) string {
	return fmt.Sprintf(`apiVersion: v1
kind: Pod
metadata:
  name: %s
spec:
  runtimeClassName: %s
  terminationGracePeriodSeconds: 1
  containers:
  - name: main
    image: registry.k8s.io/e2e-test-images/busybox:1.29-2
    command: ["sh", "-c", %q]
`, name, runtimeClass, script)
}

type podList struct{ Items []pod }

type waiting struct{ Reason, Message string }

type pod struct {
	Metadata struct{ Name, Namespace string }
	Spec     struct {
		RuntimeClassName string            `json:"runtimeClassName"`
		NodeName         string            `json:"nodeName"`
		Overhead         map[string]string `json:"overhead"`
	}
	Status struct {
		Phase             string
		Conditions        []struct{ Type, Status string }
		ContainerStatuses []struct {
			Name         string
			ContainerID  string `json:"containerID"`
			RestartCount int    `json:"restartCount"`
			State        struct{ Waiting *waiting }
			LastState    struct {
				Terminated *struct {
					ExitCode int `json:"exitCode"`
				}
			} `json:"lastState"`
		} `json:"containerStatuses"`
	}
}

func (p pod) ready() bool {
	for _, c := range p.Status.Conditions {
		if c.Type == "Ready" {
			return c.Status == "True"
		}
	}
	return false
}
