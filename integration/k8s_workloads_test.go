package integration

import (
	"context"
	"strings"
	"testing"
	"time"
)

// testBannerAndDecision: on a handler without a floor, syslog is allowed
// and shows the sentry's boot banner, the proof that the pod's kernel is
// gVisor's; under the gvisor floor the same call is denied. Both decision
// records name their handler and pod.
func testBannerAndDecision(t *testing.T, k *kube) {
	k.apply(busyboxPod("banner", "gvisor-open", "sleep 3600"))
	k.apply(busyboxPod("floored", "gvisor", "sleep 3600"))
	k.waitReady("banner")
	k.waitReady("floored")
	if out := k.run("exec", "banner", "--", "dmesg"); !strings.Contains(out, "Starting gVisor") {
		t.Errorf("dmesg on handler gvisor-open: %q, want gVisor's banner", out)
	}
	if out, err := k.try("exec", "floored", "--", "dmesg"); err == nil {
		t.Errorf("dmesg under the gvisor floor succeeded: %q, want it denied", out)
	}
	k.checkDecision(k.pod("banner"), "gvisor-open")
	k.checkDecision(k.pod("floored"), "gvisor")
	k.run("delete", "pod", "banner", "floored", "--wait", "--timeout=2m")
}

// testLogsAttachExec: kubelet's log files and its streaming server work
// for a pod on gVisor as for any other.
func testLogsAttachExec(t *testing.T, k *kube) {
	k.apply(busyboxPod("talker", "gvisor", "i=0; while true; do echo line $i; i=$((i+1)); sleep 0.2; done"))
	k.waitReady("talker")
	k.poll("kubectl logs to show line 3", func() bool { return strings.Contains(k.run("logs", "talker"), "line 3\n") })
	// attach streams the running container's output until kubectl is stopped.
	actx, cancel := context.WithTimeout(k.ctx, 4*time.Second)
	defer cancel()
	if out, _ := k.c.Kubectl(actx, "attach", "talker"); !strings.Contains(string(out), "line ") {
		t.Errorf("kubectl attach printed %q, want the container's lines", out)
	}
	if out := k.run("exec", "talker", "--", "sh", "-c", "echo $((6*7))"); strings.TrimSpace(out) != "42" {
		t.Errorf("kubectl exec: %q", out)
	}
	if out, err := k.c.KubectlStdin(k.ctx, []byte("from stdin\n"), "exec", "-i", "talker", "--", "cat"); err != nil || string(out) != "from stdin\n" {
		t.Errorf("kubectl exec -i: %q %v", out, err)
	}
	k.run("delete", "pod", "talker", "--wait", "--timeout=2m")
}

// testPortForward: kubectl port-forward to an HTTP server in a pod, on the
// reference runtime and on gVisor.
func testPortForward(t *testing.T, k *kube) {
	// containerd's CRI dials the port from the host side of the pod's
	// network namespace, where gVisor's netstack listens on nothing;
	// Palisade's port forwarder (sandbox/runsc/portfwd) carries that dial
	// into the sandbox.
	for _, rc := range []string{"runc", "gvisor"} {
		name := "pf-" + rc
		k.apply(busyboxPod(name, rc, "echo forwarded > /tmp/index.html; httpd -f -p 8080 -h /tmp"))
		k.waitReady(name)
		if body, err := k.portForwardGet(name, 8080, "/index.html"); err != nil || strings.TrimSpace(body) != "forwarded" {
			t.Errorf("port-forward to %s: %q %v", name, body, err)
		}
		k.run("delete", "pod", name, "--wait", "--timeout=2m")
	}
}

// testLiveness: an exec liveness probe (an exec into the sandbox every
// second) fails once its file is gone, and kubelet restarts the container.
func testLiveness(t *testing.T, k *kube) {
	k.apply(`apiVersion: v1
kind: Pod
metadata: {name: liveness}
spec:
  runtimeClassName: gvisor
  terminationGracePeriodSeconds: 1
  containers:
  - name: main
    image: registry.k8s.io/e2e-test-images/busybox:1.29-2
    command: ["sh", "-c", "touch /tmp/healthy; sleep 6; rm /tmp/healthy; sleep 3600"]
    livenessProbe:
      exec: {command: ["test", "-e", "/tmp/healthy"]}
      periodSeconds: 1
      failureThreshold: 2
`)
	k.waitReady("liveness")
	k.waitEventWith("liveness", "Unhealthy", "Liveness probe failed")
	k.waitRestarts("liveness", 1)
	k.run("delete", "pod", "liveness", "--wait", "--timeout=2m")
}

// testRestart: a container that exits is restarted by kubelet, which saw
// its exit code.
func testRestart(t *testing.T, k *kube) {
	k.apply(busyboxPod("exiter", "gvisor", "sleep 1; exit 3"))
	p := k.waitRestarts("exiter", 2)
	cs := p.Status.ContainerStatuses[0]
	if cs.LastState.Terminated == nil || cs.LastState.Terminated.ExitCode != 3 {
		t.Errorf("exiter lastState %+v, want terminated with exit code 3", cs.LastState)
	}
	k.run("delete", "pod", "exiter", "--wait", "--timeout=2m")
}
