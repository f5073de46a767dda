package integration

import (
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	eventstypes "github.com/containerd/containerd/api/events"
	"github.com/containerd/typeurl/v2"
)

// TestTaskEventsOnceInOrder: every task event of a container's life reaches
// containerd exactly once, in order, whichever process publishes it.
func TestTaskEventsOnceInOrder(t *testing.T) {
	for _, rt := range palisadeBackends() {
		t.Run(rt.Name, func(t *testing.T) {
			env := startContainerdFor(t, rt, containerdOpts{})
			c, ctx := env.client(t)
			evs, errs := c.Subscribe(ctx, `topic~="/tasks/"`)

			tk := env.runDetached(t, rt, busyboxRootfs(t), "ev", "/bin/sleep", "600")
			tk.waitStatus(t, "RUNNING", 20*time.Second)
			if res := tk.exec(t, "x1", "/bin/true"); res.ExitCode != 0 {
				t.Fatalf("exec: %v", res)
			}
			tk.pause(t)
			tk.waitStatus(t, "PAUSED", 10*time.Second)
			tk.resume(t)
			tk.waitStatus(t, "RUNNING", 10*time.Second)
			tk.kill(t, "SIGKILL", false)
			tk.waitStatus(t, "STOPPED", 20*time.Second)
			tk.delete(t)

			want := []string{"create ev", "start ev", "exec-added x1", "exec-started x1", "exit x1",
				"paused ev", "resumed ev", "exit ev", "delete ev"}
			var got []string
			deadline := time.After(10 * time.Second)
			for len(got) < len(want) {
				select {
				case e := <-evs:
					got = append(got, describeEvent(t, e.Event))
				case err := <-errs:
					t.Fatalf("subscription: %v", err)
				case <-deadline:
					t.Fatalf("events so far %q, want %q", got, want)
				}
			}
			// Anything doubled arrives right behind; give it a moment.
			select {
			case e := <-evs:
				got = append(got, describeEvent(t, e.Event))
			case <-time.After(500 * time.Millisecond):
			}
			if !slices.Equal(got, want) {
				t.Errorf("events:\n got %q\nwant %q", got, want)
			}
		})
	}
}

func describeEvent(t testing.TB, a typeurl.Any) string {
	t.Helper()
	v, err := typeurl.UnmarshalAny(a)
	if err != nil {
		t.Fatal(err)
	}
	switch e := v.(type) {
	case *eventstypes.TaskCreate:
		return "create " + e.ContainerID
	case *eventstypes.TaskStart:
		return "start " + e.ContainerID
	case *eventstypes.TaskExecAdded:
		return "exec-added " + e.ExecID
	case *eventstypes.TaskExecStarted:
		return "exec-started " + e.ExecID
	case *eventstypes.TaskExit:
		if e.ID != e.ContainerID {
			return "exit " + e.ID
		}
		return "exit " + e.ContainerID
	case *eventstypes.TaskPaused:
		return "paused " + e.ContainerID
	case *eventstypes.TaskResumed:
		return "resumed " + e.ContainerID
	case *eventstypes.TaskDelete:
		return "delete " + e.ContainerID
	}
	return strings.TrimPrefix(fmt.Sprintf("%T", v), "*events.")
}
