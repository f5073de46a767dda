package integration

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"
)

// TestPrefixIDsCRI: issue 13 through containerd's CRI, where sandbox and
// container IDs are 64 hex digits chosen by containerd, and pods of one
// handler used to share a runsc root. Several pods start at once, each with
// two containers; each pod's runsc root holds exactly its own sandbox and
// containers; removing one container and then one pod leaves every other
// container running with the same pid, answering execs; when all are gone,
// no sandbox root is left.
func TestPrefixIDsCRI(t *testing.T) {
	const handler = "ids"
	e := startCRIEnv(t, criEnvOpts{name: "ids-cri", tools: []string{"runsc"}, pull: []string{criBusyboxImage},
		runtimes: func(e *containerdEnv) []criRuntime {
			rt := floorRuntime(t, e, "runsc", handler, "", nil)
			return []criRuntime{{Name: handler, Type: palisadeRuntimeType,
				Options: map[string]any{"handler": handler, "config_path": rt.ConfigPath}}}
		}})
	env, cri, dir := e.containerdEnv, e.cri, e.dir
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
	defer cancel()

	const npods = 4
	pods := make([]criPod, npods)
	var wg sync.WaitGroup
	for i := range pods {
		wg.Go(func() { pods[i] = startCRIPod(ctx, t, cri, dir, i, handler) })
	}
	wg.Wait()
	if t.Failed() {
		t.FailNow()
	}
	ns := filepath.Join(env.RuntimeRoot, "k8s.io")
	for _, p := range pods {
		ids, err := stateIDsIn(filepath.Join(ns, p.id))
		if err != nil {
			t.Fatal(err)
		}
		want := append([]string{p.id}, p.ctrs...)
		slices.Sort(ids)
		slices.Sort(want)
		if !slices.Equal(ids, want) {
			t.Errorf("runsc root of pod %s holds %q, want its sandbox and containers %q", p.id[:12], ids, want)
		}
		for i, c := range p.ctrs {
			d := readDecision(t, env.StateDir, "k8s.io", c)
			if d.Pod == nil || d.Pod.Name != p.name || d.Pod.Namespace != "ids" || d.Pod.Container != "ab"[i:i+1] {
				t.Errorf("decision record of %s names pod %+v, want ids/%s container %s", c[:12], d.Pod, p.name, "ab"[i:i+1])
			}
		}
	}

	pids := map[string]string{}
	for _, p := range pods {
		for _, c := range p.ctrs {
			pids[c] = criState(ctx, t, cri, c)
			if out := criExecOK(ctx, t, cri, c, "echo ok"); out != "ok" {
				t.Errorf("exec in %s: %q", c[:12], out)
			}
		}
	}
	// One container of pod 0 goes, then pod 1 as a whole.
	gone := pods[0].ctrs[0]
	for _, args := range [][]string{{"stop", gone}, {"rm", gone}, {"stopp", pods[1].id}, {"rmp", pods[1].id}} {
		if _, err := cri.run(ctx, args...); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := os.Stat(filepath.Join(ns, pods[1].id)); !os.IsNotExist(err) {
		t.Errorf("pod %s removed, its runsc root is still there (%v)", pods[1].id[:12], err)
	}
	for _, p := range append([]criPod{pods[0]}, pods[2:]...) {
		for _, c := range p.ctrs {
			if c == gone {
				continue
			}
			if got := criState(ctx, t, cri, c); got != pids[c] {
				t.Errorf("container %s changed while its neighbours went: %s, was %s", c[:12], got, pids[c])
			}
			if out := criExecOK(ctx, t, cri, c, "echo ok"); out != "ok" {
				t.Errorf("exec in %s: %q", c[:12], out)
			}
		}
	}
	for _, p := range append([]criPod{pods[0]}, pods[2:]...) {
		cri.run(ctx, "stopp", p.id)
		if _, err := cri.run(ctx, "rmp", p.id); err != nil {
			t.Errorf("rmp %s: %v", p.id[:12], err)
		}
	}
	assertNoSandboxRoots(t, ns)
}

// criState is a container's state and its task's pid, as CRI reports them.
func criState(ctx context.Context, t *testing.T, cri crictl, ctr string) string {
	t.Helper()
	out, err := cri.run(ctx, "inspect", "-o", "go-template", "--template", "{{.status.state}} pid={{.info.pid}}", ctr)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(out, "CONTAINER_RUNNING pid=") || strings.HasSuffix(out, "pid=0") {
		t.Errorf("container %s: %q, want running with a pid", ctr[:12], out)
	}
	return out
}

// criPod is a running pod sandbox and its containers' IDs.
type criPod struct {
	id, name string
	ctrs     []string
}

// startCRIPod runs pod i with two sleeping busybox containers; errors are
// reported on t (it runs in goroutines, so it never calls FailNow).
func startCRIPod(ctx context.Context, t *testing.T, cri crictl, dir string, i int, handler string) criPod {
	p := criPod{name: fmt.Sprintf("ids-%d", i)}
	podCfg := writeJSONFile(t, filepath.Join(dir, fmt.Sprintf("pod-%d.json", i)), map[string]any{
		"metadata":      map[string]any{"name": p.name, "namespace": "ids", "uid": fmt.Sprintf("ids-uid-%d", i)},
		"log_directory": filepath.Join(dir, "logs", fmt.Sprint(i)),
	})
	id, err := cri.run(ctx, "runp", "--runtime", handler, podCfg)
	if err != nil {
		t.Errorf("runp %d: %v", i, err)
		return p
	}
	p.id = id
	for _, name := range []string{"a", "b"} {
		ctrCfg := writeJSONFile(t, filepath.Join(dir, fmt.Sprintf("ctr-%d-%s.json", i, name)), map[string]any{
			"metadata": map[string]any{"name": name},
			"image":    map[string]any{"image": criBusyboxImage},
			"command":  []string{"sleep", "3600"},
			"log_path": name + ".log",
		})
		c, err := cri.run(ctx, "create", id, ctrCfg, podCfg)
		if err == nil {
			_, err = cri.run(ctx, "start", c)
		}
		if err != nil {
			t.Errorf("pod %d container %s: %v", i, name, err)
			return p
		}
		if len(c) != 64 {
			t.Errorf("CRI container ID %q is not 64 hex digits", c)
		}
		p.ctrs = append(p.ctrs, c)
	}
	return p
}

// criExecOK runs a shell command in a container through CRI and returns its
// trimmed output.
func criExecOK(ctx context.Context, t *testing.T, cri crictl, ctr, script string) string {
	t.Helper()
	out, err := cri.run(ctx, "exec", "--sync", ctr, "sh", "-c", script)
	if err != nil {
		t.Fatalf("exec in %s: %v", ctr[:12], err)
	}
	return strings.TrimSpace(out)
}

// stateIDsIn lists the container IDs runsc keeps state for in root (its
// state files are named <id>_sandbox:<sandbox id>.state).
func stateIDsIn(root string) ([]string, error) {
	ents, err := os.ReadDir(root)
	if err != nil {
		return nil, err
	}
	var ids []string
	for _, e := range ents {
		if name, ok := strings.CutSuffix(e.Name(), ".state"); ok {
			id, _, _ := strings.Cut(name, "_sandbox:")
			ids = append(ids, id)
		}
	}
	return ids, nil
}
