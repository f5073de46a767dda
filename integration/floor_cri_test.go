package integration

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/pelletier/go-toml/v2"
)

// The service-account token and kubelet's ordinary pod volumes through CRI
// (crictl runp / create / start), as kubelet sends them: the token is a
// bind from <kubelet_root_dir>/pods/<uid>/volumes/kubernetes.io~projected/
// kube-api-access-… on /var/run/secrets/kubernetes.io/serviceaccount, next
// to /etc/hosts and /dev/termination-log from the same pod directory.
// kubelet_root_dir points at a directory of the test's.

// TestFloorCRIServiceAccountToken: on each backend, "strip" removes the
// token (absent inside, the record names it), "refuse" fails CreateContainer
// naming the mount, "allow" mounts it; the kubelet-like mounts pass on
// every handler, and a pod with them runs under the shipped default handler.
func TestFloorCRIServiceAccountToken(t *testing.T) {
	type handler struct{ name, backend, token string }
	var handlers []handler
	for _, b := range floorBackends {
		for _, tok := range []string{"strip", "refuse", "allow"} {
			handlers = append(handlers, handler{"sa-" + tok + "-" + b, b, tok})
		}
	}
	// Created before the containerd, removed after it (cleanups run last in
	// first out).
	kubelet := filepath.Join(t.TempDir(), "kubelet")
	e := startCRIEnv(t, criEnvOpts{name: "floor-cri", tools: []string{"runsc", "containerd-shim-runc-v2", "runc"}, pull: []string{criBusyboxImage},
		runtimes: func(e *containerdEnv) []criRuntime {
			var rs []criRuntime
			for _, h := range handlers {
				rt := floorRuntime(t, e, h.backend, h.name, kubelet, map[string]any{"service_account_token": h.token})
				rs = append(rs, criRuntime{Name: h.name, Type: palisadeRuntimeType,
					Options: map[string]any{"handler": h.name, "config_path": rt.ConfigPath}})
			}
			// config.toml's default handler as shipped, with this
			// host's kubelet root: with the default /var/lib/kubelet the
			// test's pod volumes are host paths, refused.
			h, _ := shippedHandler(t, e, "gvisor")
			delete(h["runsc"].(map[string]any), "flags")
			b, err := toml.Marshal(map[string]any{"default_handler": "gvisor", "kubelet_root_dir": kubelet,
				"handlers": map[string]any{"gvisor": h}})
			if err != nil {
				t.Fatal(err)
			}
			path := filepath.Join(e.Dir, "shipped-default.toml")
			if err := os.WriteFile(path, b, 0o644); err != nil {
				t.Fatal(err)
			}
			return append(rs, criRuntime{Name: "shipped-default", Type: palisadeRuntimeType,
				Options: map[string]any{"config_path": path}})
		}})
	env, cri, dir := e.containerdEnv, e.cri, e.dir
	ctx, cancel := context.WithTimeout(context.Background(), 15*time.Minute)
	defer cancel()
	const tokenDir = "/var/run/secrets/kubernetes.io/serviceaccount"
	for i, h := range append(handlers, handler{"shipped-default", "runsc", "allow"}) {
		t.Run(h.name, func(t *testing.T) {
			uid := fmt.Sprintf("0b5e8a2c-7d41-4c6f-9e1a-%012d", i)
			pod := filepath.Join(kubelet, "pods", uid)
			vol := filepath.Join(pod, "volumes", "kubernetes.io~projected", "kube-api-access-q8x2z")
			term := filepath.Join(pod, "containers", "app", "1f2e3d4c")
			for p, data := range map[string]string{
				filepath.Join(vol, "token"):     "test-token\n",
				filepath.Join(pod, "etc-hosts"): "127.0.0.1 localhost\n10.0.0.1 pod-" + h.name + "\n",
				term:                            "",
			} {
				if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
					t.Fatal(err)
				}
				if err := os.WriteFile(p, []byte(data), 0o644); err != nil {
					t.Fatal(err)
				}
			}
			podCfg := writeJSONFile(t, filepath.Join(dir, h.name+"-pod.json"), map[string]any{
				"metadata":      map[string]any{"name": "floor-" + h.name, "namespace": "floor", "uid": uid},
				"log_directory": filepath.Join(dir, "logs", uid),
			})
			ctrCfg := writeJSONFile(t, filepath.Join(dir, h.name+"-ctr.json"), map[string]any{
				"metadata": map[string]any{"name": "app"},
				"image":    map[string]any{"image": criBusyboxImage},
				"command":  []string{"sleep", "3600"},
				"log_path": "app.log",
				"mounts": []map[string]any{
					{"container_path": "/etc/hosts", "host_path": filepath.Join(pod, "etc-hosts")},
					{"container_path": "/dev/termination-log", "host_path": term},
					{"container_path": tokenDir, "host_path": vol, "readonly": true},
				},
			})
			_, ctrID, err := cri.runPodContainer(ctx, t, h.name, podCfg, ctrCfg)
			if h.token == "refuse" {
				if err == nil || !strings.Contains(err.Error(), "service-account token") || !strings.Contains(err.Error(), tokenDir) {
					t.Errorf("refuse: want StartContainer refused naming the token mount, got %v", err)
				}
				return
			}
			if err != nil {
				t.Fatalf("start: %v", err)
			}
			out, err := cri.run(ctx, "exec", "--sync", ctrID, "sh", "-c",
				"cat "+tokenDir+"/token 2>/dev/null || echo token=absent; grep -c pod-"+h.name+" /etc/hosts; true")
			if err != nil {
				t.Fatalf("exec: %v", err)
			}
			switch h.token {
			case "strip":
				if strings.Contains(out, "test-token") || !strings.Contains(out, "token=absent") {
					t.Errorf("strip: the token is readable inside: %q", out)
				}
				rec := decisionRecordIn(t, env.StateDir, "k8s.io", ctrID)
				if !strings.Contains(rec, `"service_account_token"`) || !strings.Contains(rec, tokenDir) {
					t.Errorf("strip: the decision record does not name the stripped mount:\n%s", rec)
				}
			case "allow":
				if !strings.Contains(out, "test-token") {
					t.Errorf("allow: the token is not readable inside: %q", out)
				}
			}
			if !strings.HasSuffix(out, "1") {
				t.Errorf("kubelet's etc-hosts is not the container's /etc/hosts: %q", out)
			}
		})
	}
}

// writeJSONFile writes v as JSON to path.
func writeJSONFile(t testing.TB, path string, v any) string {
	t.Helper()
	data, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, data, 0o644); err != nil {
		t.Fatal(err)
	}
	return path
}
