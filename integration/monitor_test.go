package integration

import (
	"bufio"
	"encoding/json"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"
)

// Runtime monitoring (sandbox/monitor) against real runsc: gVisor's trace
// points reach Palisade's receiver, the shipped rules fire on their actions
// and not on benign controls, and alerts name the right container and pod.

// monitoredRunsc is the runsc row with [handlers.<name>.monitoring] added;
// body is the table's content. Alerts go to alertFile.
func monitoredRunsc(name, body string) runtimeUnderTest {
	return monitoredRunscPolicy(name, floorFor(name), body)
}

// monitoredRunscPolicy is monitoredRunsc with the policy table's body.
func monitoredRunscPolicy(name, policy, body string) runtimeUnderTest {
	rt := palisadeRunsc(name, "")
	rt.ConfigFor = func(t testing.TB, e *containerdEnv) string {
		t.Helper()
		path := writePalisadeConfig(t, e, name, policy)
		f, err := os.OpenFile(path, os.O_APPEND|os.O_WRONLY, 0)
		if err != nil {
			t.Fatal(err)
		}
		defer f.Close()
		if _, err := f.WriteString("[handlers." + name + ".monitoring]\n" + body); err != nil {
			t.Fatal(err)
		}
		return path
	}
	return rt
}

// monitorDirs are a test's alert file and socket directory; the socket
// directory is short, as unix socket addresses must be.
func monitorDirs(t *testing.T) (alerts, sockets string) {
	t.Helper()
	sockets, err := os.MkdirTemp("/tmp", "pmon-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(sockets) })
	return filepath.Join(t.TempDir(), "alerts.jsonl"), sockets
}

// alert is the part of an alert line the tests read.
type alert struct {
	Rule         string         `json:"rule"`
	Priority     string         `json:"priority"`
	Output       string         `json:"output"`
	OutputFields map[string]any `json:"output_fields"`
}

func readAlerts(t testing.TB, path string) []alert {
	t.Helper()
	f, err := os.Open(path)
	if os.IsNotExist(err) {
		return nil
	}
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var out []alert
	sc := bufio.NewScanner(f)
	sc.Buffer(nil, 1<<20)
	for sc.Scan() {
		var a alert
		if err := json.Unmarshal(sc.Bytes(), &a); err != nil {
			t.Fatalf("alert line %q: %v", sc.Text(), err)
		}
		out = append(out, a)
	}
	return out
}

// waitAlert waits for an alert of rule that match accepts.
func waitAlert(t testing.TB, path, rule string, match func(alert) bool) alert {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for {
		for _, a := range readAlerts(t, path) {
			if a.Rule == rule && match(a) {
				return a
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("no %q alert; alerts: %+v", rule, readAlerts(t, path))
		}
		time.Sleep(200 * time.Millisecond)
	}
}

// runPodContainer starts a detached container of pod (kind "sandbox" or
// "container") with the CRI annotations that name the pod, its namespace,
// the container and its image.
func (e *containerdEnv) runPodContainer(t testing.TB, rt runtimeUnderTest, rootfs, pod, podName, kind, id string, cmd ...string) *task {
	t.Helper()
	tk := &task{env: e, ID: id, LogPath: filepath.Join(e.Dir, id+".log")}
	extra := []string{"-d", "--log-uri", "file://" + tk.LogPath,
		"--annotation", "io.kubernetes.cri.container-type=" + kind,
		"--annotation", "io.kubernetes.cri.sandbox-id=" + pod,
		"--annotation", "io.kubernetes.cri.sandbox-name=" + podName,
		"--annotation", "io.kubernetes.cri.sandbox-namespace=team-a",
		"--annotation", "io.kubernetes.cri.container-name=" + id,
		"--annotation", "io.kubernetes.cri.image-name=docker.io/library/busybox:test"}
	e.ctrOK(t, e.runArgs(t, rt, extra, rootfs, id, cmd)...)
	t.Cleanup(func() { tk.forceRemove(t) })
	return tk
}

// TestMonitorAlertsNameContainerAndPod: in two pods on a monitored handler,
// `cat /etc/shadow`, `touch /etc/x`, a package manager and a shell exec
// raise their alerts with the right container id and pod; `cat
// /etc/hostname` raises none. Deleting the pods leaves no socket behind.
func TestMonitorAlertsNameContainerAndPod(t *testing.T) {
	alertFile, sockets := monitorDirs(t)
	rt := monitoredRunsc(rowRunsc, "enabled = true\nalert_file = \""+alertFile+"\"\nsocket_dir = \""+sockets+"\"\n")
	env := startContainerdFor(t, rt, containerdOpts{})
	rootfs := func() string { return monitoredRootfs(t) }
	webSandbox := env.runPodContainer(t, rt, rootfs(), "pod-web", "web", "sandbox", "pod-web", "/bin/sleep", "600")
	webSandbox.waitStatus(t, "RUNNING", 20*time.Second)
	dbSandbox := env.runPodContainer(t, rt, rootfs(), "pod-db", "db", "sandbox", "pod-db", "/bin/sleep", "600")
	dbSandbox.waitStatus(t, "RUNNING", 20*time.Second)
	if n := countSockets(t, sockets); n != 2 {
		t.Errorf("%d monitor sockets for two pods, want 2", n)
	}

	app := env.runPodContainer(t, rt, rootfs(), "pod-web", "web", "container", "web-app", "/bin/sh", "-c",
		"cat /etc/hostname; cat /etc/shadow >/dev/null; touch /etc/x; apk --help >/dev/null 2>&1; sleep 600")
	app.waitStatus(t, "RUNNING", 20*time.Second)
	benign := env.runPodContainer(t, rt, rootfs(), "pod-db", "db", "container", "db-app", "/bin/sh", "-c",
		"cat /etc/hostname; sleep 600")
	benign.waitStatus(t, "RUNNING", 20*time.Second)

	inWeb := func(a alert) bool {
		return a.OutputFields["container.id"] == "web-app" && a.OutputFields["k8s.pod.name"] == "web" &&
			a.OutputFields["k8s.ns.name"] == "team-a" && a.OutputFields["container.image"] == "docker.io/library/busybox:test"
	}
	waitAlert(t, alertFile, "Read sensitive file untrusted", func(a alert) bool { return inWeb(a) && a.OutputFields["fd.name"] == "/etc/shadow" })
	waitAlert(t, alertFile, "Write below etc", func(a alert) bool { return inWeb(a) && a.OutputFields["fd.name"] == "/etc/x" })
	waitAlert(t, alertFile, "Launch Package Management Process in Container", inWeb)

	// A shell in the other pod names that pod. (An exec of sh without a
	// terminal, like an exec probe's, does not alert; the shell it execs
	// does.)
	if res := benign.exec(t, "sh1", "/bin/sh", "-c", "sh -c true"); res.ExitCode != 0 {
		t.Fatalf("exec: %v", res)
	}
	waitAlert(t, alertFile, "Terminal shell in container", func(a alert) bool {
		return a.OutputFields["container.id"] == "db-app" && a.OutputFields["k8s.pod.name"] == "db"
	})
	for _, a := range readAlerts(t, alertFile) {
		if a.OutputFields["fd.name"] == "/etc/hostname" {
			t.Errorf("benign read of /etc/hostname raised %q", a.Rule)
		}
		if a.OutputFields["container.id"] == "db-app" && a.Rule != "Terminal shell in container" {
			t.Errorf("the benign pod raised %q: %s", a.Rule, a.Output)
		}
	}

	// What an operator reads: palisadectl events, for one pod, from the
	// alert file the handler's config names.
	out := palisadectl(t, "events", "--config", filepath.Join(env.Dir, rowRunsc+".toml"), "--pod", "web")
	if !strings.Contains(out, "Read sensitive file untrusted pod=team-a/web container=web-app") || strings.Contains(out, "db-app") {
		t.Errorf("palisadectl events --pod web:\n%s", out)
	}

	for _, tk := range []*task{app, benign, webSandbox, dbSandbox} {
		tk.kill(t, "SIGKILL", false)
		tk.waitStatus(t, "STOPPED", 20*time.Second)
		tk.delete(t)
	}
	if n := countSockets(t, sockets); n != 0 {
		t.Errorf("%d monitor sockets left after the pods were deleted", n)
	}
}

// monitoredRootfs is a busybox rootfs (one per container: runsc refuses a
// rootfs mounted twice in a sandbox) with an /etc/shadow and /etc/hostname
// to read, and a stand-in package manager: the rule sees the binary's name.
func monitoredRootfs(t testing.TB) string {
	t.Helper()
	rootfs := busyboxRootfs(t)
	if err := os.WriteFile(filepath.Join(rootfs, "etc", "shadow"), []byte("root:*:1::::::\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(rootfs, "etc", "hostname"), []byte("box\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink("busybox", filepath.Join(rootfs, "bin", "apk")); err != nil && !os.IsExist(err) {
		t.Fatal(err)
	}
	return rootfs
}

func countSockets(t testing.TB, dir string) int {
	t.Helper()
	entries, err := os.ReadDir(dir)
	if err != nil && !os.IsNotExist(err) {
		t.Fatal(err)
	}
	n := 0
	for _, e := range entries {
		if strings.HasSuffix(e.Name(), ".sock") {
			n++
		}
	}
	return n
}

// bundleOf is a container's bundle in the env's containerd state.
func (e *containerdEnv) bundleOf(id string) string {
	return filepath.Join(e.StateDir, "io.containerd.runtime.v2.task", e.Namespace, id)
}

// sandboxCmdline is the command line of the task's sandbox process
// (runsc boot), where the pod-init config arrives as a donated fd.
func sandboxCmdline(t testing.TB, tk *task) string {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("/proc", strconv.Itoa(tk.pid(t)), "cmdline"))
	if err != nil {
		t.Fatal(err)
	}
	return strings.ReplaceAll(string(b), "\x00", " ")
}

// TestMonitorOffCostsNothing: a handler without monitoring gets no socket,
// no pod-init config and no runsc flag; the same handler with monitoring
// gets all three.
func TestMonitorOffCostsNothing(t *testing.T) {
	_, sockets := monitorDirs(t)
	for _, on := range []bool{false, true} {
		name := "off"
		rt := palisadeRunsc(rowRunsc, floorFor(rowRunsc))
		if on {
			name = "on"
			rt = monitoredRunsc(rowRunsc, "enabled = true\nalert_file = \"-\"\nsocket_dir = \""+sockets+"\"\n")
		}
		t.Run(name, func(t *testing.T) {
			env := startContainerdFor(t, rt, containerdOpts{})
			tk := env.runDetached(t, rt, busyboxRootfs(t), "mon-"+name, "/bin/sleep", "600")
			tk.waitStatus(t, "RUNNING", 20*time.Second)
			_, err := os.Stat(filepath.Join(env.bundleOf(tk.ID), "palisade-pod-init.json"))
			hasConfig := err == nil
			hasFlag := strings.Contains(sandboxCmdline(t, tk), "pod-init-config")
			sockets := countSockets(t, sockets)
			if on != hasConfig || on != hasFlag || (sockets == 1) != on {
				t.Errorf("monitoring %v: pod-init config %v, runsc flag %v, %d sockets", on, hasConfig, hasFlag, sockets)
			}
			tk.kill(t, "SIGKILL", false)
			tk.waitStatus(t, "STOPPED", 20*time.Second)
			tk.delete(t)
		})
	}
}

// TestMonitorSetupError: a receiver that cannot be set up (its socket
// directory cannot be made) fails Create with on_setup_error = "fail" and
// leaves nothing running; with "continue" the container runs unmonitored.
func TestMonitorSetupError(t *testing.T) {
	blocker := filepath.Join(t.TempDir(), "file")
	if err := os.WriteFile(blocker, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	for _, mode := range []string{"fail", "continue"} {
		t.Run(mode, func(t *testing.T) {
			rt := monitoredRunsc(rowRunsc, "enabled = true\nalert_file = \"-\"\non_setup_error = \""+mode+"\"\nsocket_dir = \""+blocker+"/sockets\"\n")
			env := startContainerdFor(t, rt, containerdOpts{})
			res := env.runRm(t, rt, busyboxRootfs(t), "setup-"+mode, "/bin/echo", "ran")
			switch mode {
			case "fail":
				if res.ExitCode == 0 || !strings.Contains(res.Stderr, "runtime monitoring") || strings.Contains(res.Stdout, "ran") {
					t.Errorf("on_setup_error = fail: want Create refused naming runtime monitoring, got %v", res)
				}
				env.ctr(t, "container", "rm", "setup-"+mode)
			case "continue":
				if res.ExitCode != 0 || !strings.Contains(res.Stdout, "ran") {
					t.Errorf("on_setup_error = continue: want the container to run, got %v", res)
				}
			}
		})
	}
}

// TestMonitorRulesOnRealRunsc: more of the shipped rules fire on their
// action inside a real sandbox (the rest are proven on crafted events in
// sandbox/monitor/rules), and a container doing ordinary things raises
// nothing. The handler has no floor: under runtime-default the sentry's
// seccomp filter refuses mount before the syscall's trace point, so the
// mount rule sees only what the floor lets through.
func TestMonitorRulesOnRealRunsc(t *testing.T) {
	alertFile, sockets := monitorDirs(t)
	rt := monitoredRunscPolicy(rowRunsc, "", "enabled = true\nalert_file = \""+alertFile+"\"\nsocket_dir = \""+sockets+"\"\n")
	env := startContainerdFor(t, rt, containerdOpts{})
	// busybox runs find forked but not exec'd unless it is named by its
	// path, and a process that never execs raises no exec point (a real
	// image's find is a binary of its own).
	actions := env.runDetached(t, rt, monitoredRootfs(t), "actions", "/bin/sh", "-c",
		"mount -t tmpfs none /tmp 2>/dev/null; chroot / /bin/true; grep -r 'BEGIN PRIVATE' /etc >/dev/null; "+
			"/bin/find /etc -name aws_access_key_id; wget -q -T 1 http://127.0.0.1:1/ 2>/dev/null; "+
			"echo x >/tmp/f; shred -u /tmp/f; mkdir -p /var/log; : >/var/log/app.log; sleep 600")
	control := env.runDetached(t, rt, monitoredRootfs(t), "control", "/bin/sh", "-c",
		"ls / >/dev/null; echo hi >/tmp/note; cat /etc/hostname /tmp/note >/dev/null; sleep 600")
	actions.waitStatus(t, "RUNNING", 20*time.Second)
	control.waitStatus(t, "RUNNING", 20*time.Second)
	ofActions := func(a alert) bool { return a.OutputFields["container.id"] == "actions" }
	for _, rule := range []string{
		"Mount attempt in container", "Chroot in container", "Search Private Keys or Passwords",
		"Find AWS Credentials", "Launch Remote File Copy Tools in Container", "Remove Bulk Data from Disk",
		"Clear Log Activities",
	} {
		waitAlert(t, alertFile, rule, ofActions)
	}
	// The control started with the actions and its commands are quicker:
	// by the time the actions' alerts are in, its points are too.
	time.Sleep(time.Second)
	for _, a := range readAlerts(t, alertFile) {
		if a.OutputFields["container.id"] == "control" {
			t.Errorf("the control container raised %q: %s", a.Rule, a.Output)
		}
	}
	for _, tk := range []*task{actions, control} {
		tk.kill(t, "SIGKILL", false)
		tk.waitStatus(t, "STOPPED", 20*time.Second)
		tk.delete(t)
	}
}
