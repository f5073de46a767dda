package integration

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/palisade-runtime/palisade/sandbox/monitor"
	"github.com/palisade-runtime/palisade/sandbox/monitor/rules"
)

// TestMonitorReceiverDiesMidStream: when Palisade's receiver goes away while
// a sandbox is sending points, the sandbox neither hangs nor dies: gVisor's
// sink drops what it cannot send and the workload runs to its end. The
// receiver runs in the test, so that it can be closed mid-stream; runsc
// gets its pod-init config through a wrapper that containerd-shim-runc-v2
// drives, with on_setup_error = "continue" as the handler would write it.
func TestMonitorReceiverDiesMidStream(t *testing.T) {
	requireIntegration(t, "containerd-shim-runc-v2", "runsc")
	runsc, err := lookupTool("runsc")
	if err != nil {
		t.Fatal(err)
	}
	_, sockets := monitorDirs(t)
	var points atomic.Int64
	recv, err := monitor.Listen(context.Background(), filepath.Join(sockets, "r.sock"), func(*rules.Event) { points.Add(1) })
	if err != nil {
		t.Fatal(err)
	}
	defer recv.Close()
	cfg := monitor.Config{Enabled: true, OnSetupError: monitor.OnSetupErrorContinue}.WithDefaults("test")
	conf, err := cfg.PodInitConfig(recv.Path())
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	confPath := filepath.Join(dir, "pod-init.json")
	wrapper := filepath.Join(dir, "runsc-monitored")
	if err := os.WriteFile(confPath, conf, 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(wrapper, []byte("#!/bin/sh\nexec "+runsc+" --pod-init-config="+confPath+" \"$@\"\n"), 0o755); err != nil {
		t.Fatal(err)
	}
	rt := runscViaRuncShim()
	rt.Name, rt.RuncBinary = "runcshim-runsc-monitored", wrapper

	env := startContainerdFor(t, rt, containerdOpts{})
	tk := env.runDetached(t, rt, monitoredRootfs(t), "stream", "/bin/sh", "-c",
		"i=0; while [ $i -lt 3000 ]; do : </etc/hostname; i=$((i+1)); done; echo finished")
	deadline := time.Now().Add(30 * time.Second)
	for points.Load() < 500 {
		if time.Now().After(deadline) {
			t.Fatalf("only %d points arrived", points.Load())
		}
		time.Sleep(20 * time.Millisecond)
	}
	if err := recv.Close(); err != nil {
		t.Fatal(err)
	}
	got := points.Load()
	tk.waitStatus(t, "STOPPED", 60*time.Second)
	if log, _ := os.ReadFile(tk.LogPath); !strings.Contains(string(log), "finished") {
		t.Errorf("the workload did not run to its end after the receiver closed: %q", log)
	}
	if got >= 6000 {
		t.Errorf("the receiver closed after %d points: too late to test a mid-stream close", got)
	}
	t.Logf("receiver closed after %d of about 6000 points; the container ran to its end", got)
	tk.delete(t)
}
