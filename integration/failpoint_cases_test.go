package integration

import (
	"strings"
	"testing"
	"time"

	"github.com/palisade-runtime/palisade/integration/internal/hostcheck"
)

// The failpoint cases: what each armed rule does to a request, and what
// must hold after it (see failpoint_test.go for the wrapper and the rows).

// fpCreate: `runtime create` fails or hangs. ctr run must fail with the
// reason and leave no task; the same id must then run (nothing stale).
func fpCreate(action string) func(t *testing.T, f *fpEnv) {
	return func(t *testing.T, f *fpEnv) {
		const id = "fp"
		l := watchEvents(t, f.env, id)
		f.fp.arm(t, fpRule{Command: "create", Action: action})
		tk := &task{env: f.env, ID: id}
		t.Cleanup(func() { tk.forceRemove(t) })
		res, took := f.env.ctrWithin(t, f.bound()+30*time.Second, f.failing(f.runArgsDetached(t, id)...)...)
		f.expectFailure(t, "ctr run", "create", action, res, took)
		if st := tk.status(t); st != "" {
			t.Errorf("after a failed create the task is %q, want none", st)
		}
		f.env.ctrOK(t, "container", "delete", id)
		checkEventCounts(t, l, map[string]int{})

		f.fp.arm(t)
		f.stopAndDelete(t, f.runOK(t, id))
	}
}

// fpStart: `runtime start` fails or hangs. ctr run -d must fail with the
// reason and leave the task created; killing it must stop it (for runsc
// Palisade kills the sandbox: runsc will not signal a created container),
// with its exit published once, and delete must work.
func fpStart(action string) func(t *testing.T, f *fpEnv) {
	return func(t *testing.T, f *fpEnv) {
		const id = "fp"
		l := watchEvents(t, f.env, id)
		f.fp.arm(t, fpRule{Command: "start", Action: action})
		tk := &task{env: f.env, ID: id}
		t.Cleanup(func() { tk.forceRemove(t) })
		res, took := f.env.ctrWithin(t, f.bound()+30*time.Second, f.failing(f.runArgsDetached(t, id)...)...)
		f.expectFailure(t, "ctr run", "start", action, res, took)
		f.fp.arm(t)
		if st := tk.status(t); st != "CREATED" {
			t.Errorf("after a failed start the task is %q, want CREATED", st)
		}
		f.stopAndDelete(t, tk)
		checkEventCounts(t, l, map[string]int{"/tasks/create": 1, "/tasks/exit": 1, "/tasks/delete": 1})
	}
}

// fpOp: the runtime fails or hangs at cmd, which op (ctr's arguments, with
// {id} for the task) makes it run. The call must fail with the reason, the task
// must stay as it was (check) and usable: an exec, a stop and a delete work
// once the rule is off.
func fpOp(cmd, action string, op []string, check string) func(t *testing.T, f *fpEnv) {
	return func(t *testing.T, f *fpEnv) {
		tk := f.runOK(t, "fp")
		if check == "PAUSED" {
			tk.pause(t)
		}
		f.fp.arm(t, fpRule{Command: cmd, Action: action})
		args := make([]string, len(op))
		for i, a := range op {
			args[i] = strings.ReplaceAll(a, "{id}", tk.ID)
		}
		res, took := f.env.ctrWithin(t, f.bound()+30*time.Second, f.failing(args...)...)
		f.expectFailure(t, "ctr "+strings.Join(op[:2], " "), cmd, action, res, took)
		f.fp.arm(t)
		if st := tk.status(t); st != check {
			t.Errorf("after the failed call the task is %q, want %s", st, check)
		}
		if check == "PAUSED" {
			tk.resume(t)
		}
		if res := tk.exec(t, "after", "/bin/true"); res.ExitCode != 0 {
			t.Errorf("exec after the failure: %v", res)
		}
		f.stopAndDelete(t, tk)
	}
}

// fpKillDone: `runtime kill` kills the container but reports a failure.
// ctr task kill fails with the reason, and the task must then be what it
// is: stopped, its exit (137) published once; delete must work.
func fpKillDone(t *testing.T, f *fpEnv) {
	tk := f.runOK(t, "fp")
	l := watchEvents(t, f.env, tk.ID)
	f.fp.arm(t, fpRule{Command: "kill", Action: "fail-after"})
	res, took := f.env.ctrWithin(t, f.bound()+30*time.Second, f.failing("task", "kill", "-s", "SIGKILL", tk.ID)...)
	f.expectFailure(t, "ctr task kill", "kill", "fail-after", res, took)
	f.fp.arm(t)
	tk.waitStatus(t, "STOPPED", 20*time.Second)
	if code := waitExit(t, f.env, tk.ID); code != 137 {
		t.Errorf("Wait: exit %d, want 137", code)
	}
	tk.delete(t)
	checkEventCounts(t, l, map[string]int{"/tasks/exit": 1, "/tasks/delete": 1})
}

// fpDelete: `runtime delete` fails or hangs for a stopped task. ctr task
// delete must fail with the reason and leave the task stopped; once the rule
// is off the delete must work.
func fpDelete(action string) func(t *testing.T, f *fpEnv) {
	return func(t *testing.T, f *fpEnv) {
		tk := f.runOK(t, "fp")
		tk.kill(t, "SIGKILL", false)
		tk.waitStatus(t, "STOPPED", 20*time.Second)
		f.fp.arm(t, fpRule{Command: "delete", Action: action})
		res, took := f.env.ctrWithin(t, f.bound()+30*time.Second, f.failing("task", "delete", tk.ID)...)
		f.expectFailure(t, "ctr task delete", "delete", action, res, took)
		f.fp.arm(t)
		if st := tk.status(t); st != "STOPPED" {
			t.Errorf("after the failed delete the task is %q, want STOPPED", st)
		}
		tk.delete(t)
	}
}

// fpPodDeleteOutlivesCaller: the delete of a pod's stopped container is
// slower than its caller, who gives up (CRI gives it 10 s; runsc can need
// that on a loaded node). The runtime's delete must still run to its end:
// killed half way it removed the container's state but not its cgroups,
// and nothing removed them afterwards.
func fpPodDeleteOutlivesCaller(t *testing.T, f *fpEnv) {
	pause := f.env.runInPod(t, f.rt, "pod", "sandbox", "pod", "/bin/sleep", "600")
	pause.waitStatus(t, "RUNNING", 20*time.Second)
	app := f.env.runInPod(t, f.rt, "pod", "container", "app", "/bin/sleep", "600")
	app.waitStatus(t, "RUNNING", 20*time.Second)
	cgroup := "/" + f.env.Namespace + "/app"
	if dirs, err := hostcheck.CgroupDirs(cgroup); err != nil || len(dirs) == 0 {
		t.Fatalf("the running container has no cgroup %s to watch (%v, %v)", cgroup, dirs, err)
	}
	app.kill(t, "SIGKILL", false)
	app.waitStatus(t, "STOPPED", 20*time.Second)
	f.fp.arm(t, fpRule{Command: "delete", Action: "slow", Times: 1})
	res, _ := f.env.ctrWithin(t, 30*time.Second, "--timeout", "1s", "task", "delete", app.ID)
	if res.ExitCode == 0 {
		t.Fatalf("ctr task delete with a 1 s deadline succeeded although runsc delete took 3 s: %v", res)
	}
	// The runtime's delete goes on: its cgroups must go within its delay
	// and run time.
	deadline := time.Now().Add(fpCommandTimeout + 10*time.Second)
	for {
		dirs, err := hostcheck.CgroupDirs(cgroup)
		if err == nil && len(dirs) == 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the container's cgroups are still there after the caller gave up on its delete: %v %v", dirs, err)
		}
		time.Sleep(200 * time.Millisecond)
	}
	if n := f.fp.fired(t, "delete"); n != 1 {
		t.Errorf("the slow delete rule fired %d times, want 1", n)
	}
	f.fp.arm(t)
	// The delete that went on is the one that counts: the task is gone,
	// and only the container record is left to remove.
	if st := app.status(t); st != "" {
		t.Errorf("after its delete went on the task is %q, want none", st)
		app.delete(t)
	} else {
		f.env.ctrOK(t, "container", "delete", app.ID)
	}
	if st := pause.status(t); st != "RUNNING" {
		t.Errorf("the pod's sandbox container is %q", st)
	}
	f.stopAndDelete(t, pause)
}

// fpState: the runtime fails and hangs at `state`. Palisade's State and
// containerd-shim-runc-v2's answer from the shim's own record, so `ctr task
// ls` must go on answering at once, and the rule never fire.
func fpState(t *testing.T, f *fpEnv) {
	tk := f.runOK(t, "fp")
	f.fp.arm(t, fpRule{Command: "state", Action: "hang"})
	res, took := f.env.ctrWithin(t, 10*time.Second, "task", "ls")
	if res.ExitCode != 0 || !strings.Contains(res.Stdout, "RUNNING") || took > 2*time.Second {
		t.Errorf("task ls with runtime state hung: %v after %v", res, took)
	}
	f.stopAndDelete(t, tk)
	if n := len(f.fp.calls(t, "state")); n != 0 {
		t.Errorf("the shim ran the runtime's state %d times", n)
	}
}

// fpPodCreate: in a pod, `runtime create` of the pod's second container
// does its work but reports a failure. ctr run must fail; the shim serves
// the pod on, so nothing but the shim itself can remove what the runtime
// made: the same id must then run in the pod.
func fpPodCreate(t *testing.T, f *fpEnv) {
	pause := f.env.runInPod(t, f.rt, "pod", "sandbox", "pod", "/bin/sleep", "600")
	pause.waitStatus(t, "RUNNING", 20*time.Second)
	f.fp.arm(t, fpRule{Command: "create", Action: "fail-after"})
	app := &task{env: f.env, ID: "app"}
	t.Cleanup(func() { app.forceRemove(t) })
	res, took := f.env.ctrWithin(t, f.bound()+30*time.Second, f.failing(f.env.runArgs(t, f.rt,
		[]string{"-d", "--annotation", "io.kubernetes.cri.container-type=container",
			"--annotation", "io.kubernetes.cri.sandbox-id=pod"},
		busyboxRootfs(t), "app", []string{"/bin/sleep", "600"})...)...)
	f.expectFailure(t, "ctr run (pod container)", "create", "fail-after", res, took)
	f.env.ctrOK(t, "container", "delete", "app")
	f.fp.arm(t)
	if st := pause.status(t); st != "RUNNING" {
		t.Errorf("the pod's sandbox container is %q after its neighbour's failed create", st)
	}
	app = f.env.runInPod(t, f.rt, "pod", "container", "app", "/bin/sleep", "600")
	app.waitStatus(t, "RUNNING", 20*time.Second)
	f.stopAndDelete(t, app)
	f.stopAndDelete(t, pause)
}

// fpPodWait: the wait through which Palisade learns that a pod's second
// container ended (its pid is the sandbox's) cannot reach the sandbox: the
// control socket recorded in the container's runsc state is gone once it
// started. The container is then reported ended (137); it must then really
// have ended, the rest of the pod untouched, and deleting both must work.
func fpPodWait(t *testing.T, f *fpEnv) {
	pause := f.env.runInPod(t, f.rt, "pod", "sandbox", "pod", "/bin/sleep", "600")
	pause.waitStatus(t, "RUNNING", 20*time.Second)
	l := watchEvents(t, f.env, "app")
	f.fp.arm(t, fpRule{Command: "start", Action: "unlink-socket-after", Times: 1})
	app := f.env.runInPod(t, f.rt, "pod", "container", "app", "/bin/sleep", "600")
	app.waitStatus(t, "STOPPED", 20*time.Second)
	if n := f.fp.fired(t, "start"); n != 1 {
		t.Errorf("the start rule fired %d times, want 1", n)
	}
	f.fp.arm(t)
	if code := waitExit(t, f.env, "app"); code != 137 {
		t.Errorf("app: Wait says %d, want 137", code)
	}
	// Reported ended, so it must be: the pod's processes are one sandbox's.
	res := pause.exec(t, "ps", "/bin/ps")
	if res.ExitCode != 0 || strings.Count(res.Stdout, "sleep 600") != 1 {
		t.Errorf("processes in the pod after app was reported ended (want only the sandbox's sleep):\n%s", res.Stdout)
	}
	app.delete(t)
	if st := pause.status(t); st != "RUNNING" {
		t.Errorf("the pod's sandbox container is %q", st)
	}
	f.stopAndDelete(t, pause)
	checkEventCounts(t, l, map[string]int{"/tasks/create": 1, "/tasks/start": 1, "/tasks/exit": 1, "/tasks/delete": 1})
}
