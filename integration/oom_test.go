package integration

import (
	"strings"
	"testing"
	"time"

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
