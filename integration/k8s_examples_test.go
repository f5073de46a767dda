package integration

import (
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// refuseHandler is an extra handler for the end-to-end tests: the shipped
// gvisor floor with over_ceiling = "refuse" and no AppArmor table, so that
// on this kernel (no AppArmor) it runs and refuses what exceeds its ceiling.
const refuseHandler = `
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
`

// TestKubernetesExamples applies examples/ as a user would, after `make
// cluster`, and checks from inside each pod what the RuntimeClass and the
// pod's securityContext promise; then what a user sees when a handler
// refuses a pod or cannot run at all.
func TestKubernetesExamples(t *testing.T) {
	c := startCluster(t, refuseHandler)
	ctx, cancel := context.WithTimeout(context.Background(), 12*time.Minute)
	defer cancel()
	kubectl := kubectlFunc(t, ctx, c)
	root, err := repoRoot()
	if err != nil {
		t.Fatal(err)
	}
	examples := filepath.Join(root, "examples")
	// The Localhost profile goes where kubelet reads it, as the example says.
	prof, err := os.ReadFile(filepath.Join(examples, "seccomp", "palisade-no-mkdir.json"))
	if err != nil {
		t.Fatal(err)
	}
	if err := os.MkdirAll(filepath.Join(c.Dirs().Kubelet, "seccomp"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(c.Dirs().Kubelet, "seccomp", "palisade-no-mkdir.json"), prof, 0o644); err != nil {
		t.Fatal(err)
	}
	kubectl("apply", "-f", examples)
	start := time.Now()
	if _, err := c.Kubectl(ctx, "wait", "--for=condition=Ready", "pod", "-l", "app=palisade-example", "--timeout=6m"); err != nil {
		desc, _ := c.Kubectl(ctx, "describe", "pod", "-l", "app=palisade-example")
		t.Fatalf("examples not Ready: %v\n%s", err, desc)
	}
	t.Logf("examples Ready in %v", time.Since(start).Round(time.Millisecond))
	if _, err := c.Kubectl(ctx, "rollout", "status", "deployment", "--timeout=6m"); err != nil {
		t.Fatal(err)
	}

	var pods struct {
		Items []struct {
			Metadata struct{ Name string } `json:"metadata"`
			Spec     struct {
				RuntimeClassName string            `json:"runtimeClassName"`
				Overhead         map[string]string `json:"overhead"`
			} `json:"spec"`
		} `json:"items"`
	}
	if err := json.Unmarshal([]byte(kubectl("get", "pods", "-o", "json")), &pods); err != nil {
		t.Fatal(err)
	}
	if len(pods.Items) < 16 {
		t.Fatalf("%d pods, want the examples' pods and 10 replicas", len(pods.Items))
	}
	exec := func(pod string, cmd ...string) (string, error) {
		out, err := c.Kubectl(ctx, append([]string{"exec", pod, "--"}, cmd...)...)
		return string(out), err
	}
	for _, p := range pods.Items {
		name := p.Metadata.Name
		// Every example is on a Palisade RuntimeClass; the floor's filter is on
		// whatever the pod asked, and the RuntimeClass's overhead was admitted.
		if p.Spec.RuntimeClassName != "gvisor" || p.Spec.Overhead["memory"] != "104Mi" {
			t.Errorf("%s: runtimeClassName %q overhead %v, want gvisor with 104Mi", name, p.Spec.RuntimeClassName, p.Spec.Overhead)
		}
		// (gVisor's /proc/self/status has no NoNewPrivs line.)
		out, err := exec(name, "grep", "-E", "^(Seccomp|CapBnd):", "/proc/self/status")
		if err != nil || !strings.Contains(out, "Seccomp:\t2") {
			t.Errorf("%s: %q %v, want Seccomp 2", name, out, err)
		}
		if name == "capabilities" && !strings.Contains(out, "CapBnd:\t0000000000000400") {
			t.Errorf("capabilities: %q, want CapBnd 0000000000000400 (NET_BIND_SERVICE only)", out)
		}
	}
	// The Localhost profile is intersected with the floor: mkdir is denied.
	if out, err := exec("seccomp-localhost", "mkdir", "/tmp/x"); err == nil || !strings.Contains(out+err.Error(), "not permitted") {
		t.Errorf("mkdir under the Localhost profile: %q %v, want Operation not permitted", out, err)
	}
	if _, err := exec("seccomp-runtime-default", "mkdir", "/tmp/x"); err != nil {
		t.Errorf("mkdir under RuntimeDefault: %v", err)
	}
	// The service-account token: mounted by default, absent when the pod opts out.
	const token = "/var/run/secrets/kubernetes.io/serviceaccount/token"
	if _, err := exec("sa-token-default", "test", "-s", token); err != nil {
		t.Errorf("token in sa-token-default: %v", err)
	}
	if _, err := exec("sa-token-none", "test", "-e", token); err == nil {
		t.Errorf("sa-token-none has %s", token)
	}

	// What a user sees when Palisade says no, as the pod's status.
	refused := `apiVersion: v1
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
---
apiVersion: v1
kind: Pod
metadata: {name: strict}
spec:
  runtimeClassName: gvisor-strict
  terminationGracePeriodSeconds: 1
  containers:
  - name: main
    image: registry.k8s.io/e2e-test-images/busybox:1.29-2
    command: ["sleep", "3600"]
    securityContext: {capabilities: {drop: ["ALL"]}}
`
	if _, err := c.KubectlStdin(ctx, []byte(refused), "apply", "-f", "-"); err != nil {
		t.Fatal(err)
	}
	waitEvent := func(pod string, want ...string) {
		t.Helper()
		for deadline := time.Now().Add(3 * time.Minute); ; time.Sleep(time.Second) {
			out := kubectl("get", "events", "--field-selector", "involvedObject.name="+pod, "-o", "jsonpath={range .items[*]}{.reason}: {.message}{\"\\n\"}{end}")
			if containsAll(out, want) {
				t.Logf("%s: %s", pod, strings.TrimSpace(out))
				return
			}
			if time.Now().After(deadline) {
				t.Fatalf("%s: no event with %q in:\n%s", pod, want, out)
			}
		}
	}
	waitEvent("refused", "refused by handler floor", "process.capabilities.bounding", "CAP_SYS_ADMIN")
	waitEvent("strict", `apparmor profile "palisade-runsc" is required but the host cannot enforce it`)
	kubectl("delete", "-f", examples, "--wait", "--timeout=3m")
	kubectl("delete", "pod", "refused", "strict", "--wait", "--timeout=3m")
}

func containsAll(s string, subs []string) bool {
	for _, sub := range subs {
		if !strings.Contains(s, sub) {
			return false
		}
	}
	return true
}
