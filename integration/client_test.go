package integration

import (
	"bytes"
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/containerd/containerd/api/types/runtimeoptions/v1"
	containerd "github.com/containerd/containerd/v2/client"
	"github.com/containerd/containerd/v2/pkg/cio"
	"github.com/containerd/containerd/v2/pkg/namespaces"
	"github.com/containerd/containerd/v2/pkg/oci"
	specs "github.com/opencontainers/runtime-spec/specs-go"
)

// client opens containerd's Go client on the env, for the task calls ctr lacks
// (Update) or prints only as text (Metrics).
func (e *containerdEnv) client(t testing.TB) (*containerd.Client, context.Context) {
	t.Helper()
	c, err := containerd.New(e.Address, containerd.WithTimeout(10*time.Second))
	if err != nil {
		t.Fatalf("containerd client: %v", err)
	}
	t.Cleanup(func() { c.Close() })
	ctx, cancel := context.WithTimeout(namespaces.WithNamespace(context.Background(), e.Namespace), ctrTimeout)
	t.Cleanup(cancel)
	return c, ctx
}

func (e *containerdEnv) task(t testing.TB, id string) (containerd.Task, context.Context) {
	t.Helper()
	c, ctx := e.client(t)
	ctrd, err := c.LoadContainer(ctx, id)
	if err != nil {
		t.Fatalf("load container %s: %v", id, err)
	}
	tk, err := ctrd.Task(ctx, nil)
	if err != nil {
		t.Fatalf("task %s: %v", id, err)
	}
	return tk, ctx
}

// updateMemoryLimit sends a task Update with a memory limit.
func (e *containerdEnv) updateMemoryLimit(t testing.TB, id string, limit int64) {
	t.Helper()
	tk, ctx := e.task(t, id)
	if err := tk.Update(ctx, containerd.WithResources(&specs.LinuxResources{
		Memory: &specs.LinuxMemory{Limit: &limit},
	})); err != nil {
		t.Fatalf("update %s: %v", id, err)
	}
}

// hostMemoryLimit reads the memory limit of the container's host cgroup: runsc
// update applies limits there (its events do not report them).
func (e *containerdEnv) hostMemoryLimit(t testing.TB, id string) int64 {
	t.Helper()
	data, err := os.ReadFile(filepath.Join(e.StateDir, "io.containerd.runtime.v2.task", e.Namespace, id, "config.json"))
	if err != nil {
		t.Fatal(err)
	}
	var spec specs.Spec
	if err := json.Unmarshal(data, &spec); err != nil {
		t.Fatal(err)
	}
	if spec.Linux == nil || spec.Linux.CgroupsPath == "" {
		t.Fatalf("container %s has no cgroupsPath", id)
	}
	for _, f := range []string{
		filepath.Join("/sys/fs/cgroup/memory", spec.Linux.CgroupsPath, "memory.limit_in_bytes"), // v1
		filepath.Join("/sys/fs/cgroup", spec.Linux.CgroupsPath, "memory.max"),                   // v2
	} {
		b, err := os.ReadFile(f)
		if err != nil {
			continue
		}
		v, err := strconv.ParseInt(strings.TrimSpace(string(b)), 10, 64)
		if err != nil {
			t.Fatalf("%s: %v", f, err)
		}
		return v
	}
	t.Fatalf("no memory cgroup file for %s", spec.Linux.CgroupsPath)
	return 0
}

// runWithSpec runs a container through containerd's Go client with spec
// options ctr has no flag for (such as oci.WithNewPrivileges), waits for it
// and returns its stdout and exit status. rt must be a Palisade runtime.
func (e *containerdEnv) runWithSpec(t testing.TB, rt runtimeUnderTest, id, rootfs string, opts ...oci.SpecOpts) (string, uint32) {
	t.Helper()
	e.useID(id)
	c, ctx := e.client(t)
	flags := rt.ctrFlags(t, e) // --runtime TYPE --runtime-config-path PATH
	if len(flags) != 4 {
		t.Fatalf("runWithSpec needs a runtime with a config path, got flags %q", flags)
	}
	spec := append([]oci.SpecOpts{oci.WithRootFSPath(rootfs), oci.WithEnv([]string{containerPATH})}, opts...)
	ctrd, err := c.NewContainer(ctx, id,
		containerd.WithRuntime(flags[1], &runtimeoptions.Options{ConfigPath: flags[3]}),
		containerd.WithNewSpec(spec...))
	if err != nil {
		t.Fatalf("new container %s: %v", id, err)
	}
	defer ctrd.Delete(ctx)
	var stdout, stderr bytes.Buffer
	tk, err := ctrd.NewTask(ctx, cio.NewCreator(cio.WithStreams(nil, &stdout, &stderr), cio.WithFIFODir(e.FIFODir)))
	if err != nil {
		t.Fatalf("new task %s: %v", id, err)
	}
	defer tk.Delete(ctx, containerd.WithProcessKill)
	exitCh, err := tk.Wait(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if err := tk.Start(ctx); err != nil {
		t.Fatalf("start %s: %v", id, err)
	}
	st := <-exitCh
	code, _, err := st.Result()
	if err != nil {
		t.Fatal(err)
	}
	if _, err := tk.Delete(ctx); err != nil {
		t.Fatalf("delete task %s: %v", id, err)
	}
	return stdout.String() + stderr.String(), code
}
