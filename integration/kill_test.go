package integration

import (
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/containerd/containerd/v2/pkg/cio"
	"github.com/containerd/errdefs"
)

// TestKillAfterExitIsNotFound: signalling a container whose process has
// ended answers NotFound ("process already finished"), as containerd's own
// shims do. CRI relies on it: StopContainer and the pod sandbox's exit
// handler treat NotFound as stopped, and retry anything else until their
// deadline (critest found StopPodSandbox hanging for its full minute on
// runsc's "sandbox is not running"). Checked for a pod's first container
// and for a later one, which runsc reports differently.
func TestKillAfterExitIsNotFound(t *testing.T) {
	for _, rt := range palisadeBackends() {
		t.Run(rt.Name, func(t *testing.T) {
			skipPodLimit(t, rt)
			env := startContainerdFor(t, rt, containerdOpts{})
			pause := env.runInPod(t, rt, "pod1", "sandbox", "pod1", "/bin/sleep", "600")
			pause.waitStatus(t, "RUNNING", 20*time.Second)
			app := env.runInPod(t, rt, "pod1", "container", "app1", "/bin/true")
			app.waitStatus(t, "STOPPED", 20*time.Second)
			pause.kill(t, "SIGKILL", false)
			pause.waitStatus(t, "STOPPED", 20*time.Second)
			for _, id := range []string{"app1", "pod1"} {
				tk, ctx := env.task(t, id)
				err := tk.Kill(ctx, syscall.SIGKILL)
				if !errdefs.IsNotFound(err) {
					t.Errorf("kill of %s after its exit: %v, want NotFound (process already finished)", id, err)
				}
			}
			app.delete(t)
			pause.delete(t)
		})
	}
}

// TestExecSIGKILLEndsTheProcess: SIGKILL to an exec'd process ends the
// process itself, not only the host-side process that waits for it. On
// runsc that waiter cannot forward SIGKILL, and the process went on running
// in the sandbox; CRI's ExecSync timeout sends exactly this signal (critest:
// "runtime should support execSync with timeout").
func TestExecSIGKILLEndsTheProcess(t *testing.T) {
	for _, rt := range palisadeBackends() {
		t.Run(rt.Name, func(t *testing.T) {
			if rt.Name == rowDelegateRunsc {
				t.Skip("containerd-shim-runc-v2 driving runsc signals the host-side runsc exec, which cannot forward SIGKILL: the process keeps running in the sandbox (upstream behaviour; Palisade's runsc backend signals the sandbox pid)")
			}
			env := startContainerdFor(t, rt, containerdOpts{})
			main := env.runDetached(t, rt, busyboxRootfs(t), "execkill", "/bin/sleep", "600")
			main.waitStatus(t, "RUNNING", 20*time.Second)

			c, ctx := env.client(t)
			ctrd, err := c.LoadContainer(ctx, "execkill")
			if err != nil {
				t.Fatal(err)
			}
			spec, err := ctrd.Spec(ctx)
			if err != nil {
				t.Fatal(err)
			}
			tk, err := ctrd.Task(ctx, nil)
			if err != nil {
				t.Fatal(err)
			}
			ps := *spec.Process
			ps.Args = []string{"/bin/sleep", "4242"}
			p, err := tk.Exec(ctx, "sleeper", &ps, cio.NullIO)
			if err != nil {
				t.Fatal(err)
			}
			exited, err := p.Wait(ctx)
			if err != nil {
				t.Fatal(err)
			}
			if err := p.Start(ctx); err != nil {
				t.Fatal(err)
			}
			if err := p.Kill(ctx, syscall.SIGKILL); err != nil {
				t.Fatalf("SIGKILL to the exec: %v", err)
			}
			select {
			case st := <-exited:
				if st.ExitCode() != 137 {
					t.Errorf("exec exit status %d, want 137 (SIGKILL)", st.ExitCode())
				}
			case <-time.After(20 * time.Second):
				t.Fatal("no exit 20 s after SIGKILL to the exec")
			}
			if _, err := p.Delete(ctx); err != nil {
				t.Errorf("delete exec: %v", err)
			}
			res := main.exec(t, "ps", "/bin/ps", "-o", "args")
			if res.ExitCode != 0 {
				t.Fatalf("ps: %v", res)
			}
			if strings.Contains(res.Stdout, "4242") {
				t.Errorf("the killed exec still runs in the container:\n%s", res.Stdout)
			}
			main.kill(t, "SIGKILL", false)
			main.waitStatus(t, "STOPPED", 20*time.Second)
			main.delete(t)
		})
	}
}
