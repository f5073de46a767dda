package integration

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	eventstypes "github.com/containerd/containerd/api/events"
	"github.com/containerd/typeurl/v2"
)

// The shim v2 delegate (backend = "shim", and "kata" which is the same code)
// through real containerd and ctr, in front of containerd-shim-runc-v2. The
// task API tests in task_api_test.go and pod_test.go run on the delegate rows
// too (see palisadeBackends); these cover what only the delegate has.

// downstreamShims are the pids of the containerd-shim-runc-v2 daemons that
// serve this env.
func downstreamShims(t testing.TB, e *containerdEnv) []string {
	t.Helper()
	out, _ := exec.Command("pgrep", "-f", delegateShimName+" .*-address "+e.Address+"( |$)").Output()
	return strings.Fields(string(out))
}

// TestDelegateFloorHostKernel: behind containerd-shim-runc-v2 and runc the
// floor is applied by the host kernel: Seccomp: 2, NoNewPrivs: 1 and the
// ceiling less the drop list, where the same container without a floor has
// no filter. A stricter request of the pod's own (deny mkdir) is kept.
func TestDelegateFloorHostKernel(t *testing.T) {
	floored := palisadeDelegate("dl-floor", "runc", floorFor("dl-floor"))
	env := startContainerdFor(t, floored, containerdOpts{})
	res := env.runRm(t, floored, probeRootfs(t), "status", "/bin/sh", "-c", statusCmd)
	if res.ExitCode != 0 {
		t.Fatalf("status: %v", res)
	}
	if got := statusField(res.Stdout, "Seccomp"); got != "2" {
		t.Errorf("Seccomp: %s, want 2 (filter mode)\n%s", got, res.Stdout)
	}
	if got := statusField(res.Stdout, "NoNewPrivs"); got != "1" {
		t.Errorf("NoNewPrivs: %s, want 1\n%s", got, res.Stdout)
	}
	want := capMask(t, "CAP_CHOWN", "CAP_DAC_OVERRIDE", "CAP_FSETID", "CAP_FOWNER", "CAP_MKNOD",
		"CAP_SETGID", "CAP_SETUID", "CAP_SETFCAP", "CAP_SETPCAP", "CAP_NET_BIND_SERVICE",
		"CAP_SYS_CHROOT", "CAP_KILL", "CAP_AUDIT_WRITE") // the ceiling less CAP_NET_RAW (drop list)
	for _, k := range []string{"CapBnd", "CapEff", "CapPrm"} {
		if got := hexField(t, res.Stdout, k); got != want {
			t.Errorf("%s = %016x, want %016x", k, got, want)
		}
	}
	// The host kernel, not gVisor: the container sees the host's release.
	host, err := os.ReadFile("/proc/sys/kernel/osrelease")
	if err != nil {
		t.Fatal(err)
	}
	if v := env.runRm(t, floored, busyboxRootfs(t), "uname", "/bin/uname", "-r"); strings.TrimSpace(v.Stdout) != strings.TrimSpace(string(host)) {
		t.Errorf("uname -r inside: %v, want the host's %s", v, host)
	}
	if d := decisionRecordOf(t, env, "status"); !strings.Contains(d, "host kernel (runc under containerd-shim-runc-v2)") {
		t.Errorf("the decision record should name the host kernel as enforcer:\n%s", d)
	}

	open := palisadeDelegate("dl-open", "runc", "")
	res = env.runRm(t, open, probeRootfs(t), "status-open", "/bin/sh", "-c", statusCmd)
	if got := statusField(res.Stdout, "Seccomp"); res.ExitCode != 0 || got != "0" {
		t.Errorf("without a floor (and no request) Seccomp should be 0, got %q: %v", got, res)
	}

	profile := `{"defaultAction": "SCMP_ACT_ALLOW", "syscalls": [
	  {"names": ["mkdir", "mkdirat"], "action": "SCMP_ACT_ERRNO", "errnoRet": 1}]}`
	path := filepath.Join(env.Dir, "no-mkdir.json")
	if err := os.WriteFile(path, []byte(profile), 0o644); err != nil {
		t.Fatal(err)
	}
	args := env.runArgs(t, floored, []string{"--rm", "--fifo-dir", env.FIFODir, "--seccomp", "--seccomp-profile", path},
		busyboxRootfs(t), "no-mkdir", []string{"/bin/sh", "-c", "mkdir /tmp/x && echo mkdir-ok; echo done"})
	if res := env.ctr(t, args...); res.ExitCode != 0 || !strings.Contains(res.Stdout, "done") || strings.Contains(res.Stdout, "mkdir-ok") {
		t.Errorf("the request's mkdir rule must hold behind the delegate: %v", res)
	}
}

// decisionRecordOf is the decision record of a container that `ctr run
// --rm` has removed with its bundle, from the line the shim logged.
func decisionRecordOf(t testing.TB, e *containerdEnv, id string) string {
	t.Helper()
	b, err := os.ReadFile(e.LogPath)
	if err != nil {
		t.Fatal(err)
	}
	for _, line := range strings.Split(string(b), "\n") {
		if strings.Contains(line, `msg="security floor enforced"`) && strings.Contains(line, " id="+id+" ") {
			return line
		}
	}
	t.Fatalf("no decision logged for %s", id)
	return ""
}

// eventLog collects containerd's task events for one container.
type eventLog struct {
	mu     sync.Mutex
	topics []string
	exits  []*eventstypes.TaskExit
}

func (l *eventLog) snapshot() ([]string, []*eventstypes.TaskExit) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return append([]string(nil), l.topics...), append([]*eventstypes.TaskExit(nil), l.exits...)
}

func (l *eventLog) count(topic string) int {
	topics, _ := l.snapshot()
	n := 0
	for _, tp := range topics {
		if tp == topic {
			n++
		}
	}
	return n
}

// watchEvents subscribes to containerd's /tasks/ events about container id.
func watchEvents(t testing.TB, e *containerdEnv, id string) *eventLog {
	t.Helper()
	c, ctx := e.client(t)
	ctx, cancel := context.WithCancel(ctx)
	t.Cleanup(cancel)
	// containerd's Subscribe returns before its stream is open: an event
	// published in between is never delivered. A marker event on a topic of
	// the test's own, seen back, proves the subscription is live.
	const syncTopic = "/palisade-test/subscribed"
	evs, errs := c.Subscribe(ctx, `topic~="^/tasks/"`, `topic==`+strconv.Quote(syncTopic))
	l := &eventLog{}
	live := make(chan struct{})
	go func() {
		for {
			select {
			case ev := <-evs:
				if ev.Topic == syncTopic {
					select {
					case <-live:
					default:
						close(live)
					}
					continue
				}
				v, err := typeurl.UnmarshalAny(ev.Event)
				if err != nil {
					continue
				}
				cid := ""
				switch x := v.(type) {
				case interface{ GetContainerID() string }:
					cid = x.GetContainerID()
				}
				if cid != id {
					continue
				}
				l.mu.Lock()
				l.topics = append(l.topics, ev.Topic)
				if x, ok := v.(*eventstypes.TaskExit); ok {
					l.exits = append(l.exits, x)
				}
				l.mu.Unlock()
			case err := <-errs:
				if ctx.Err() == nil {
					t.Errorf("event subscription for %s ended: %v", id, err)
				}
				return
			case <-ctx.Done():
				return
			}
		}
	}()
	for deadline := time.Now().Add(10 * time.Second); ; {
		if err := c.EventService().Publish(ctx, syncTopic, &eventstypes.TaskOOM{ContainerID: "subscription-" + id}); err != nil {
			t.Fatalf("publish the subscription marker: %v", err)
		}
		select {
		case <-live:
			return l
		case <-time.After(200 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			t.Fatalf("the event subscription for %s never saw its marker", id)
		}
	}
}

// waitEvents polls until the log has n events of topic.
func waitEvents(t testing.TB, l *eventLog, topic string, n int, timeout time.Duration) {
	t.Helper()
	for deadline := time.Now().Add(timeout); l.count(topic) < n && time.Now().Before(deadline); {
		time.Sleep(20 * time.Millisecond)
	}
}

// checkEventCounts compares the topics seen with want, after waiting a
// moment for duplicates to show.
func checkEventCounts(t testing.TB, l *eventLog, want map[string]int) {
	t.Helper()
	time.Sleep(500 * time.Millisecond)
	topics, _ := l.snapshot()
	got := map[string]int{}
	for _, tp := range topics {
		got[tp]++
	}
	for topic, n := range want {
		if got[topic] != n {
			t.Errorf("%s: %d events, want %d (all: %v)", topic, got[topic], n, topics)
		}
	}
	for topic := range got {
		if _, ok := want[topic]; !ok {
			t.Errorf("unexpected %s event (all: %v)", topic, topics)
		}
	}
}

// TestDelegateEventsOnce: the downstream shim publishes the task's events to
// containerd itself and Palisade publishes none, so each arrives once.
func TestDelegateEventsOnce(t *testing.T) {
	rt := palisadeDelegate(rowDelegateRunc, "runc", floorFor(rowDelegateRunc))
	env := startContainerdFor(t, rt, containerdOpts{})
	l := watchEvents(t, env, "ev")
	tk := env.runDetached(t, rt, busyboxRootfs(t), "ev", "/bin/sleep", "600")
	tk.waitStatus(t, "RUNNING", 20*time.Second)
	if res := tk.exec(t, "x1", "/bin/sh", "-c", "exit 4"); res.ExitCode != 4 {
		t.Errorf("exec: %v", res)
	}
	tk.kill(t, "SIGKILL", false)
	tk.waitStatus(t, "STOPPED", 20*time.Second)
	tk.delete(t)
	waitEvents(t, l, "/tasks/delete", 1, 5*time.Second)
	checkEventCounts(t, l, map[string]int{
		"/tasks/create": 1, "/tasks/start": 1, "/tasks/exec-added": 1, "/tasks/exec-started": 1,
		"/tasks/exit": 2, "/tasks/delete": 1,
	})
}

// TestDelegateDownstreamKilled: kill -9 of the downstream shim while its
// container and an exec run, on both delegate rows. Palisade sees the
// connection close, reclaims the container through the downstream's
// `delete` (the runtime's delete --force),
// publishes the exits the downstream could not, and reports the task
// stopped; after the delete the Palisade shim exits. The leak check then
// finds no shim, runc state, socket, mount or cgroup process left.
func TestDelegateDownstreamKilled(t *testing.T) {
	for _, rt := range palisadeBackends() {
		if rt.Name == rowRunsc {
			continue
		}
		t.Run(rt.Name, func(t *testing.T) {
			env := startContainerdFor(t, rt, containerdOpts{})
			l := watchEvents(t, env, "victim")
			tk := env.runDetached(t, rt, busyboxRootfs(t), "victim", "/bin/sleep", "600")
			tk.waitStatus(t, "RUNNING", 20*time.Second)
			env.ctrOK(t, "task", "exec", "-d", "--exec-id", "bg", tk.ID, "/bin/sleep", "600")
			waitEvents(t, l, "/tasks/exec-started", 1, 5*time.Second)

			shims := downstreamShims(t, env)
			if len(shims) != 1 {
				t.Fatalf("want one downstream shim, found %v", shims)
			}
			if err := exec.Command("kill", "-9", shims[0]).Run(); err != nil {
				t.Fatal(err)
			}
			tk.waitStatus(t, "STOPPED", 20*time.Second)
			waitEvents(t, l, "/tasks/exit", 2, 5*time.Second)
			_, exits := l.snapshot()
			ids := map[string]uint32{}
			for _, x := range exits {
				ids[x.ID] = x.ExitStatus
			}
			if len(exits) != 2 || ids["victim"] != 137 || ids["bg"] != 137 {
				t.Errorf("want one TaskExit (137) for the init and one for the exec, got %v", exits)
			}
			if shims := palisadeShims(t, env); len(shims) != 1 {
				t.Errorf("the Palisade shim should still answer for the stopped task: %v", shims)
			}
			tk.delete(t)
			checkEventCounts(t, l, map[string]int{
				"/tasks/create": 1, "/tasks/start": 1, "/tasks/exec-added": 1, "/tasks/exec-started": 1,
				"/tasks/exit": 2, "/tasks/delete": 1,
			})
			for deadline := time.Now().Add(5 * time.Second); len(palisadeShims(t, env)) > 0 && time.Now().Before(deadline); {
				time.Sleep(50 * time.Millisecond)
			}
			if shims := palisadeShims(t, env); len(shims) != 0 {
				t.Errorf("the Palisade shim did not exit after its last task was deleted: %v", shims)
			}
		})
	}
}

// TestDelegatePodGrouping: the containers of a pod share one Palisade shim
// and, behind it, one downstream shim; another pod gets its own of each.
func TestDelegatePodGrouping(t *testing.T) {
	rt := palisadeDelegate(rowDelegateRunc, "runc", floorFor(rowDelegateRunc))
	env := startContainerdFor(t, rt, containerdOpts{})
	pause := env.runInPod(t, rt, "pod1", "sandbox", "pod1", "/bin/sleep", "600")
	pause.waitStatus(t, "RUNNING", 20*time.Second)
	app := env.runInPod(t, rt, "pod1", "container", "app1", "/bin/sleep", "600")
	app.waitStatus(t, "RUNNING", 20*time.Second)
	if p, d := palisadeShims(t, env), downstreamShims(t, env); len(p) != 1 || len(d) != 1 {
		t.Fatalf("one pod: want one Palisade and one downstream shim, found %v and %v", p, d)
	}
	other := env.runInPod(t, rt, "pod2", "sandbox", "pod2", "/bin/sleep", "600")
	other.waitStatus(t, "RUNNING", 20*time.Second)
	if p, d := palisadeShims(t, env), downstreamShims(t, env); len(p) != 2 || len(d) != 2 {
		t.Errorf("two pods: want two Palisade and two downstream shims, found %v and %v", p, d)
	}
	for _, tk := range []*task{app, pause, other} {
		tk.kill(t, "SIGKILL", false)
		tk.waitStatus(t, "STOPPED", 20*time.Second)
		tk.delete(t)
	}
}

// kataConfig is a Kata configuration.toml in Kata's documented layout
// (configuration-qemu.toml), trimmed.
const kataConfig = `# Kata Containers configuration (qemu)
[hypervisor.qemu]
path = "/opt/kata/bin/qemu-system-x86_64"
kernel = "/opt/kata/share/kata-containers/vmlinux.container"
image = "/opt/kata/share/kata-containers/kata-containers.img"
machine_type = "q35"
default_vcpus = 1
default_memory = 2048
enable_annotations = ["enable_iommu"]

[agent.kata]
kernel_modules = []

[runtime]
internetworking_model = "tcfilter"
disable_guest_seccomp = %t
sandbox_cgroup_only = false
`

// TestDelegateKataFailsClosed: a Kata handler with a seccomp floor refuses
// to run when Kata's configuration has disable_guest_seccomp = true, and
// when a pod's annotation would switch guest seccomp off or point Kata at
// another file. Kata cannot run here (no virtualisation, no Kata builds), so
// this covers the Kata backend up to where containerd-shim-kata-v2 would be
// started: the shim named in the handler is never run.
func TestDelegateKataFailsClosed(t *testing.T) {
	shim, err := lookupTool("containerd-shim-runc-v2")
	if err != nil {
		t.Fatal(err)
	}
	kata := func(name string, disable bool) runtimeUnderTest {
		return runtimeUnderTest{
			Name: name, RuntimeType: "io.containerd.palisade.v2", NeedsPalisade: true,
			ConfigFor: func(t testing.TB, e *containerdEnv) string {
				kc := filepath.Join(e.Dir, name+"-kata.toml")
				if err := os.WriteFile(kc, []byte(fmt.Sprintf(kataConfig, disable)), 0o644); err != nil {
					t.Fatal(err)
				}
				cfg := fmt.Sprintf("default_handler = %q\n[handlers.%s]\nbackend = \"kata\"\n[handlers.%s.shim]\n"+
					"binary = %q\nconfig_path = %q\n[handlers.%s.policy]\n%s\n",
					name, name, name, shim, kc, name, floorFor(name))
				path := filepath.Join(e.Dir, name+".toml")
				if err := os.WriteFile(path, []byte(cfg), 0o644); err != nil {
					t.Fatal(err)
				}
				return path
			},
		}
	}
	off := kata("kata-noseccomp", true)
	env := startContainerdFor(t, off, containerdOpts{})
	res := env.runRm(t, off, busyboxRootfs(t), "k1", "/bin/true")
	if res.ExitCode == 0 || !strings.Contains(res.Stderr, "disable_guest_seccomp = true") {
		t.Errorf("want Create refused, naming disable_guest_seccomp: %v", res)
	}
	env.ctr(t, "container", "rm", "k1")

	on := kata("kata-seccomp", false)
	for _, ann := range []string{
		"io.katacontainers.config.runtime.disable_guest_seccomp=true",
		"io.katacontainers.config_path=/etc/kata-containers/other.toml",
	} {
		key, _, _ := strings.Cut(ann, "=")
		args := env.runArgs(t, on, []string{"--rm", "--fifo-dir", env.FIFODir, "--annotation", ann},
			busyboxRootfs(t), "k2", []string{"/bin/true"})
		res := env.ctr(t, args...)
		if res.ExitCode == 0 || !strings.Contains(res.Stderr, key) {
			t.Errorf("annotation %s: want Create refused, naming it: %v", ann, res)
		}
		env.ctr(t, "container", "rm", "k2")
	}
	if d := downstreamShims(t, env); len(d) != 0 {
		t.Errorf("no downstream shim may have been started: %v", d)
	}
}

// TestDelegateRefusedCreate: a container the floor refuses never reaches the
// downstream, and the downstream shim that was started ahead of its Create
// (while the floor was being applied) is shut down with Palisade's: the
// leak check finds neither.
func TestDelegateRefusedCreate(t *testing.T) {
	name := "dl-refuse"
	rt := palisadeDelegate(name, "runc", strings.Replace(floorFor(name), `over_ceiling = "clamp"`, `over_ceiling = "refuse"`, 1))
	env := startContainerdFor(t, rt, containerdOpts{})
	args := env.runArgs(t, rt, []string{"--rm", "--fifo-dir", env.FIFODir, "--cap-add", "CAP_SYS_ADMIN"},
		busyboxRootfs(t), "refused", []string{"/bin/true"})
	if res := env.ctr(t, args...); res.ExitCode == 0 || !strings.Contains(res.Stderr, "CAP_SYS_ADMIN") {
		t.Errorf("want Create refused, naming CAP_SYS_ADMIN: %v", res)
	}
	env.ctr(t, "container", "rm", "refused")
}
