package integration

import (
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/palisade-runtime/palisade/integration/internal/hostcheck"
)

// These tests prove the harness against stock components, so that a failure in a
// Palisade test can be trusted to be Palisade's. Each backend in the table runs
// through containerd-shim-runc-v2; the runsc row proves runsc works on this host.
func harnessBackends() []runtimeUnderTest {
	return []runtimeUnderTest{runcRuntime(), runscViaRuncShim()}
}

func TestHarnessRuncShimRunRm(t *testing.T) {
	for _, rt := range harnessBackends() {
		t.Run(rt.Name, func(t *testing.T) {
			env := startContainerdFor(t, rt, containerdOpts{})
			res := env.runRm(t, rt, busyboxRootfs(t), "exit7",
				"sh", "-c", "echo to-stdout; echo to-stderr >&2; exit 7")
			if res.ExitCode != 7 || res.Stdout != "to-stdout\n" || res.ContainerStderr() != "to-stderr\n" {
				t.Fatalf("want exit 7, stdout %q, stderr %q; got %v", "to-stdout\n", "to-stderr\n", res)
			}
			if res := env.runRm(t, rt, busyboxRootfs(t), "true", "true"); res.ExitCode != 0 {
				t.Fatalf("true: %v", res)
			}
		})
	}
}

func TestHarnessRuncShimDetached(t *testing.T) {
	for _, rt := range harnessBackends() {
		t.Run(rt.Name, func(t *testing.T) {
			env := startContainerdFor(t, rt, containerdOpts{})
			tk := env.runDetached(t, rt, busyboxRootfs(t), "d1", "sh", "-c", "echo started; exec sleep 600")
			tk.waitStatus(t, "RUNNING", 10*time.Second)

			res := tk.exec(t, "e1", "sh", "-c", "echo exec-out; echo exec-err >&2; exit 3")
			if res.ExitCode != 3 || res.Stdout != "exec-out\n" || res.ContainerStderr() != "exec-err\n" {
				t.Fatalf("exec: want exit 3 and both streams; got %v", res)
			}
			if ps := tk.ps(t); len(strings.Split(strings.TrimSpace(ps), "\n")) < 2 {
				t.Errorf("task ps: want a header and the init process, got %q", ps)
			}
			if m := tk.metrics(t); strings.TrimSpace(m) == "" {
				t.Errorf("task metrics: empty")
			}
			tk.pause(t)
			tk.waitStatus(t, "PAUSED", 10*time.Second)
			tk.resume(t)
			tk.waitStatus(t, "RUNNING", 10*time.Second)

			tk.kill(t, "SIGKILL", false)
			tk.waitStatus(t, "STOPPED", 10*time.Second)
			tk.delete(t)
			if b, err := os.ReadFile(tk.LogPath); err != nil || !strings.Contains(string(b), "started") {
				t.Errorf("init output in %s: %q, %v", tk.LogPath, b, err)
			}
		})
	}
}

// TestHarnessRuncCRIConfig proves the generated config is accepted with the CRI
// plugin on and a caller's runtime entry in it.
func TestHarnessRuncCRIConfig(t *testing.T) {
	rt := runcRuntime()
	runc, err := lookupTool("runc")
	if err != nil {
		skipOrFatal(t, "%v", err)
	}
	env := startContainerdFor(t, rt, containerdOpts{
		CRI:         true,
		CRIRuntimes: []criRuntime{{Name: "runc-pinned", Type: runcShimType, Options: map[string]any{"BinaryName": runc}}},
	})
	plugins := env.ctrOK(t, "plugins", "ls")
	if st := pluginStatus(plugins, "cri"); st != "ok" {
		t.Errorf("plugin cri: status %q, want ok\n%s", st, plugins)
	}
	if st := pluginStatus(plugins, "nri"); st == "ok" {
		t.Errorf("plugin nri is loaded; it must be disabled\n%s", plugins)
	}
	cfg, err := os.ReadFile(filepath.Join(env.Dir, "config.toml"))
	if err != nil || !strings.Contains(string(cfg), "restrict_oom_score_adj = true") {
		t.Errorf("config lacks restrict_oom_score_adj = true:\n%s", cfg)
	}
}

// pluginStatus finds the STATUS column of the first `ctr plugins ls` row with ID id.
func pluginStatus(table, id string) string {
	for _, line := range strings.Split(table, "\n") {
		if f := strings.Fields(line); len(f) >= 4 && f[1] == id {
			return f[len(f)-1]
		}
	}
	return ""
}

// TestHarnessRuncLeakCheckSeesShim makes sure the leak check is not vacuous: with a
// container still running, it must see the shim and its socket.
func TestHarnessRuncLeakCheckSeesShim(t *testing.T) {
	rt := runcRuntime()
	env := startContainerdFor(t, rt, containerdOpts{})
	env.useID("leaky") // before the baseline, so that it watches this ID's sockets
	before := takeLeakBaseline(t, func() hostcheck.Rules { return env.leakRules(nil) })
	tk := env.runDetached(t, rt, busyboxRootfs(t), "leaky", "sleep", "600")
	tk.waitStatus(t, "RUNNING", 10*time.Second)

	leaks := leaksSince(t, before)
	shim := slices.ContainsFunc(leaks.Procs, func(p hostcheck.Proc) bool {
		return strings.Contains(p.Cmdline, "containerd-shim-runc-v2")
	})
	socket := slices.ContainsFunc(leaks.Paths, func(p string) bool { return strings.HasPrefix(p, env.SocketDir+"/") })
	if !shim || !socket || len(leaks.CgroupProcs) == 0 {
		t.Errorf("leak check missed a running container (shim %v, socket %v, cgroup procs %d):\n%s",
			shim, socket, len(leaks.CgroupProcs), leaks)
	}
	tk.kill(t, "SIGKILL", false)
	tk.waitStatus(t, "STOPPED", 10*time.Second)
	tk.delete(t)
}
