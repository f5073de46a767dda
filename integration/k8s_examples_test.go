package integration

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/palisade-runtime/palisade/integration/k8s"
)

// testExamples applies examples/ as a user would after `make cluster`, and
// checks from inside each pod what the RuntimeClass and the pod's
// securityContext promise.
func testExamples(t *testing.T, k *kube) {
	root, err := repoRoot()
	if err != nil {
		t.Fatal(err)
	}
	examples := filepath.Join(root, "examples")
	// The cluster installs the Localhost profile where kubelet reads it, as
	// a node operator would.
	if _, err := os.Stat(filepath.Join(k.c.Dirs().Kubelet, "seccomp", "palisade-no-mkdir.json")); err != nil {
		t.Fatalf("the example's Localhost profile is not in kubelet's seccomp directory: %v", err)
	}
	if out := k.run("get", "runtimeclass", "-o", "name"); !strings.Contains(out, "runtimeclass.node.k8s.io/gvisor\n") ||
		!strings.Contains(out, "runtimeclass.node.k8s.io/runc\n") {
		t.Fatalf("RuntimeClasses gvisor and runc missing:\n%s", out)
	}
	k.run("apply", "-f", examples)
	start := time.Now()
	if _, err := k.try("wait", "--for=condition=Ready", "pod", "-l", "app=palisade-example", "--timeout=6m"); err != nil {
		desc, _ := k.try("describe", "pod", "-l", "app=palisade-example")
		t.Fatalf("examples not Ready: %v\n%s", err, desc)
	}
	k.run("rollout", "status", "deployment", "--timeout=6m")
	t.Logf("examples Ready in %v", time.Since(start).Round(time.Millisecond))

	var pods podList
	k.getJSON(&pods, "get", "pods")
	if len(pods.Items) < 16 {
		t.Fatalf("%d pods, want the examples' pods and 10 replicas", len(pods.Items))
	}
	var host unix.Utsname
	if err := unix.Uname(&host); err != nil {
		t.Fatal(err)
	}
	exec := func(pod string, cmd ...string) (string, error) {
		return k.try(append([]string{"exec", pod, "--"}, cmd...)...)
	}
	for _, p := range pods.Items {
		name := p.Metadata.Name
		// Every example is on a Palisade RuntimeClass, on the one node; the
		// RuntimeClass's overhead was admitted into the pod.
		if p.Spec.RuntimeClassName != "gvisor" || p.Spec.Overhead["memory"] != "104Mi" || p.Spec.Overhead["cpu"] != "25m" {
			t.Errorf("%s: runtimeClassName %q overhead %v, want gvisor with 104Mi and 25m", name, p.Spec.RuntimeClassName, p.Spec.Overhead)
		}
		if p.Spec.NodeName != k8s.NodeName {
			t.Errorf("%s: on node %q, want %q", name, p.Spec.NodeName, k8s.NodeName)
		}
		// The floor's filter is on whatever the pod asked (gVisor's
		// /proc/self/status has no NoNewPrivs line: the record shows it).
		out, err := exec(name, "grep", "-E", "^(Seccomp|CapBnd):", "/proc/self/status")
		if err != nil || !strings.Contains(out, "Seccomp:\t2") {
			t.Errorf("%s: %q %v, want Seccomp 2", name, out, err)
		}
		if bnd := hexField(t, out, "CapBnd"); bnd&^capMask(t, gvisorCeiling(t)...) != 0 {
			t.Errorf("%s: CapBnd %016x above the gvisor handler's ceiling", name, bnd)
		}
		if name == "capabilities" && !strings.Contains(out, "CapBnd:\t0000000000000400") {
			t.Errorf("capabilities: %q, want CapBnd 0000000000000400 (NET_BIND_SERVICE only)", out)
		}
		// The sentry's kernel release, not the host's.
		if rel, _ := exec(name, "uname", "-r"); strings.TrimSpace(rel) == unix.ByteSliceToString(host.Release[:]) {
			t.Errorf("%s: uname -r is the host's (%s): not on gVisor", name, strings.TrimSpace(rel))
		}
		k.checkDecision(p, "gvisor")
	}
	// The Localhost profile is intersected with the floor: mkdir is denied.
	if out, err := exec("seccomp-localhost", "mkdir", "/tmp/x"); err == nil || !strings.Contains(out+err.Error(), "not permitted") {
		t.Errorf("mkdir under the Localhost profile: %q %v, want Operation not permitted", out, err)
	}
	if _, err := exec("seccomp-runtime-default", "mkdir", "/tmp/x"); err != nil {
		t.Errorf("mkdir under RuntimeDefault: %v", err)
	}
	// The service-account token: mounted by default, absent when the pod opts out.
	const sa = "/var/run/secrets/kubernetes.io/serviceaccount"
	if out, err := exec("sa-token-default", "ls", sa); err != nil || !strings.Contains(out, "token") || !strings.Contains(out, "ca.crt") {
		t.Errorf("sa-token-default: %s holds %q (%v), want token and ca.crt", sa, out, err)
	}
	if out, err := exec("sa-token-none", "cat", "/proc/mounts"); err != nil || strings.Contains(out, "serviceaccount") {
		t.Errorf("sa-token-none mounts a service-account volume (%v):\n%s", err, out)
	}
	if _, err := exec("sa-token-none", "test", "-e", sa+"/token"); err == nil {
		t.Errorf("sa-token-none has %s/token", sa)
	}
	k.run("delete", "-f", examples, "--wait", "--timeout=3m")
}

// gvisorCeiling is the capability ceiling of config.toml's gvisor handler.
func gvisorCeiling(t testing.TB) []string {
	_, ceiling := shippedHandler(t, &containerdEnv{}, "gvisor")
	return ceiling
}

// testRefusals: what a user sees when Palisade says no, as the pod's status
// and events: a request above a refuse handler's ceiling ends in
// RunContainerError carrying the refusal; gvisor-strict, which requires
// AppArmor, fails closed on a kernel without it and says why.
func testRefusals(t *testing.T, k *kube) {
	k.apply(`apiVersion: v1
kind: Pod
metadata: {name: refused}
spec:
  runtimeClassName: gvisor-refuse
  terminationGracePeriodSeconds: 1
  containers:
  - name: main
    image: registry.k8s.io/e2e-test-images/busybox:1.29-2
    command: ["sleep", "3600"]
    securityContext: {capabilities: {add: ["SYS_ADMIN"]}}
`)
	// containerd's CRI creates the task, where the floor runs, in
	// StartContainer: kubelet reports RunContainerError (its last state is
	// StartError), not CreateContainerError, and retries with back-off.
	w := k.waitWaiting("refused", "RunContainerError")
	if !containsAll(w.Message, []string{`handler "gvisor-refuse": refused by handler floor`, "CAP_SYS_ADMIN", "above ceiling"}) {
		t.Errorf("RunContainerError message %q lacks Palisade's refusal", w.Message)
	}
	k.waitEventWith("refused", "refused by handler floor", "process.capabilities.bounding", "CAP_SYS_ADMIN")
	if _, err := os.Stat("/sys/kernel/security/apparmor"); err == nil {
		t.Log("this kernel has AppArmor: gvisor-strict runs here, its fail-closed path is not reachable")
	} else {
		k.apply(busyboxPod("strict", "gvisor-strict", "sleep 3600"))
		k.waitEventWith("strict", `apparmor profile "palisade-runsc" is required but the host cannot enforce it`)
	}
	k.run("delete", "pod", "refused", "strict", "--ignore-not-found", "--wait", "--timeout=3m")
}

// testUnconfiguredHandler: a RuntimeClass whose handler containerd does not
// serve leaves its pod Pending with the CRI's reason in an event.
func testUnconfiguredHandler(t *testing.T, k *kube) {
	k.apply(`apiVersion: node.k8s.io/v1
kind: RuntimeClass
metadata: {name: nosuch}
handler: nosuch
`)
	k.apply(busyboxPod("nosuch", "nosuch", "sleep 3600"))
	k.waitEventWith("nosuch", "FailedCreatePodSandBox", `no runtime for "nosuch" is configured`)
	if p := k.pod("nosuch"); p.Status.Phase != "Pending" {
		t.Errorf("phase %s, want Pending", p.Status.Phase)
	}
	k.run("delete", "pod", "nosuch", "--wait", "--timeout=2m")
	k.run("delete", "runtimeclass", "nosuch")
}

func containsAll(s string, subs []string) bool {
	for _, sub := range subs {
		if !strings.Contains(s, sub) {
			return false
		}
	}
	return true
}
