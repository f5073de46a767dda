package integration

import (
	"strings"
	"testing"
	"time"

	cgroupsv1 "github.com/containerd/cgroups/v3/cgroup1/stats"
	cgroupsv2 "github.com/containerd/cgroups/v3/cgroup2/stats"
	eventstypes "github.com/containerd/containerd/api/events"
	"github.com/containerd/typeurl/v2"
)

// TestTaskOOMEvent: a container that outgrows its memory limit is killed and
// containerd receives a TaskOOM event for it from the shim.
func TestTaskOOMEvent(t *testing.T) {
	for _, rt := range palisadeBackends() {
		t.Run(rt.Name, func(t *testing.T) {
			env := startContainerdFor(t, rt, containerdOpts{})
			c, ctx := env.client(t)
			evs, errs := c.Subscribe(ctx, `topic=="/tasks/oom"`)
			// tail keeps the last lines of its input in memory; /dev/zero has
			// no newline, so the one line it keeps grows without end.
			args := env.runArgs(t, rt, []string{"--rm", "--fifo-dir", env.FIFODir, "--memory-limit", "67108864"},
				busyboxRootfs(t), "hog", []string{"/bin/tail", "/dev/zero"})
			res := env.ctr(t, args...)
			if res.ExitCode != 137 {
				t.Errorf("a container over its memory limit should die of SIGKILL (137), got %v", res)
			}
			select {
			case e := <-evs:
				v, err := typeurl.UnmarshalAny(e.Event)
				if err != nil {
					t.Fatal(err)
				}
				oom, ok := v.(*eventstypes.TaskOOM)
				if !ok || oom.ContainerID != "hog" {
					t.Errorf("event %T %+v, want TaskOOM for hog", v, v)
				}
			case err := <-errs:
				t.Fatalf("event subscription: %v", err)
			case <-time.After(10 * time.Second):
				t.Errorf("no TaskOOM event within 10s of the kill (%s)", strings.TrimSpace(res.ContainerStderr()))
			}
		})
	}
}

// TestTaskMetricsCarryOOMCount: task metrics carry the memory cgroup's OOM
// state, which containerd's CRI turns into container_oom_events_total
// (critest: "runtime should support listing pod sandbox metrics"). On runsc
// it is the sandbox's cgroup: OOM kills happen on the host, not in the
// sentry.
func TestTaskMetricsCarryOOMCount(t *testing.T) {
	for _, rt := range palisadeBackends() {
		t.Run(rt.Name, func(t *testing.T) {
			env := startContainerdFor(t, rt, containerdOpts{})
			tk := env.runDetached(t, rt, busyboxRootfs(t), "counted", "/bin/sleep", "600")
			tk.waitStatus(t, "RUNNING", 20*time.Second)
			task, ctx := env.task(t, "counted")
			m, err := task.Metrics(ctx)
			if err != nil {
				t.Fatalf("metrics: %v", err)
			}
			v, err := typeurl.UnmarshalAny(m.Data)
			if err != nil {
				t.Fatal(err)
			}
			switch s := v.(type) {
			case *cgroupsv1.Metrics:
				if s.MemoryOomControl == nil {
					t.Errorf("metrics lack memory OOM control: %+v", s)
				} else if s.MemoryOomControl.OomKill != 0 {
					t.Errorf("oom_kill %d in a container that never ran out of memory", s.MemoryOomControl.OomKill)
				}
			case *cgroupsv2.Metrics:
				if s.MemoryEvents == nil {
					t.Errorf("metrics lack memory events: %+v", s)
				}
			default:
				t.Fatalf("metrics of type %T", v)
			}
			tk.kill(t, "SIGKILL", false)
			tk.waitStatus(t, "STOPPED", 20*time.Second)
			tk.delete(t)
		})
	}
}
