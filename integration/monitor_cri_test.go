package integration

import (
	"context"
	"os"
	"path/filepath"
	"testing"
	"time"
)

// TestMonitorCRIPodMetadata: through containerd's CRI, as kubelet creates
// pods, an alert names the pod, its namespace, the container and its image
// from the annotations CRI puts on the specs.
func TestMonitorCRIPodMetadata(t *testing.T) {
	alertFile, sockets := monitorDirs(t)
	e := startCRIEnv(t, criEnvOpts{name: "mon-cri", tools: []string{"runsc"}, pull: []string{criBusyboxImage},
		runtimes: func(e *containerdEnv) []criRuntime {
			rt := floorRuntime(t, e, "runsc", "mon", "", nil)
			f, err := os.OpenFile(rt.ConfigPath, os.O_APPEND|os.O_WRONLY, 0)
			if err != nil {
				t.Fatal(err)
			}
			defer f.Close()
			if _, err := f.WriteString("\n[handlers.mon.monitoring]\nenabled = true\nalert_file = \"" + alertFile + "\"\nsocket_dir = \"" + sockets + "\"\n"); err != nil {
				t.Fatal(err)
			}
			return []criRuntime{{Name: "mon", Type: palisadeRuntimeType, Options: map[string]any{"handler": "mon", "config_path": rt.ConfigPath}}}
		}})
	cri, dir := e.cri, e.dir
	// Canceled after the pod's cleanup, which uses it.
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
	t.Cleanup(cancel)
	podCfg := writeJSONFile(t, filepath.Join(dir, "pod.json"), map[string]any{
		"metadata":      map[string]any{"name": "web", "namespace": "team-a", "uid": "5d1c7e0a-1b2c-4d3e-8f9a-000000000001"},
		"log_directory": filepath.Join(dir, "logs"),
	})
	ctrCfg := writeJSONFile(t, filepath.Join(dir, "ctr.json"), map[string]any{
		"metadata": map[string]any{"name": "app"},
		"image":    map[string]any{"image": criBusyboxImage},
		"command":  []string{"sh", "-c", "touch /etc/x; sleep 3600"},
		"log_path": "app.log",
	})
	_, ctrID, err := cri.runPodContainer(ctx, t, "mon", podCfg, ctrCfg)
	if err != nil {
		t.Fatalf("start: %v", err)
	}
	a := waitAlert(t, alertFile, "Write below etc", func(a alert) bool { return a.OutputFields["container.id"] == ctrID })
	for k, want := range map[string]string{"k8s.pod.name": "web", "k8s.ns.name": "team-a", "container.name": "app", "container.image": criBusyboxImage} {
		if got, _ := a.OutputFields[k].(string); got != want {
			t.Errorf("%s = %q, want %q (alert %+v)", k, got, want, a)
		}
	}
}
