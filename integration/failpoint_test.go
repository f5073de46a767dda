package integration

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"
)

// Failpoint tests (issue 7): the OCI runtime behind each Palisade row fails
// or hangs at one subcommand, through the wrapper in ./failpoint (the part
// containerd's integration/failpoint runc-fp plays in its own tests). Each
// case ends with containerd consistent and the leak check clean.

// failpointName is the wrapper's installed name: the leak check watches
// runsc*, so a wrapper left hanging is reported whichever runtime it wraps.
const failpointName = "runsc-failpoint"

// buildFailpoint builds ./failpoint once per test process, next to the shim
// build (removed by TestMain).
var buildFailpoint = sync.OnceValues(func() (string, error) {
	root, err := repoRoot()
	if err != nil {
		return "", err
	}
	out := filepath.Join(shimBuildDir(), failpointName)
	cmd := exec.Command("go", "build", "-o", out, "./integration/failpoint")
	cmd.Dir = root
	if b, err := cmd.CombinedOutput(); err != nil {
		return "", fmt.Errorf("go build ./integration/failpoint: %w\n%s", err, b)
	}
	return out, nil
})

// failpoint is one test's wrapper around a real runtime: a script that
// runs the wrapper with the runtime and the test's control file.
type failpoint struct {
	Script  string // what the handler's config names as the runtime
	Real    string // the runtime it wraps
	control string
}

// fpRule is a rule of the wrapper's control file (see ./failpoint).
type fpRule struct {
	Command string `json:"command"`
	Action  string `json:"action"`
	Times   int    `json:"times,omitempty"`
}

// fpRecord is a line of the wrapper's invocation log.
type fpRecord struct {
	Command string   `json:"command"`
	Action  string   `json:"action"`
	Args    []string `json:"args"`
}

// newFailpoint installs a wrapper around the runtime tool (runsc or runc),
// with no rule armed, in a directory of its own that outlives the test's
// containerd (removed after the leak check).
func newFailpoint(t testing.TB, tool string) *failpoint {
	t.Helper()
	bin, err := buildFailpoint()
	if err != nil {
		t.Fatal(err)
	}
	real, err := lookupTool(tool)
	if err != nil {
		skipOrFatal(t, "%v", err)
	}
	dir := t.TempDir()
	fp := &failpoint{Script: filepath.Join(dir, tool), Real: real, control: filepath.Join(dir, "control.json")}
	fp.arm(t)
	script := fmt.Sprintf("#!/bin/sh\nexport FAILPOINT_RUNTIME=%q FAILPOINT_CONTROL=%q\nexec %q \"$@\"\n",
		real, fp.control, bin)
	if err := os.WriteFile(fp.Script, []byte(script), 0o755); err != nil {
		t.Fatal(err)
	}
	return fp
}

// arm replaces the wrapper's rules; no rules let every call through.
func (fp *failpoint) arm(t testing.TB, rules ...fpRule) {
	t.Helper()
	b, err := json.Marshal(map[string][]fpRule{"rules": rules})
	if err != nil {
		t.Fatal(err)
	}
	// Write and rename: the wrapper may be reading the file right now.
	tmp := fp.control + ".tmp"
	if err := os.WriteFile(tmp, b, 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(tmp, fp.control); err != nil {
		t.Fatal(err)
	}
}

// calls returns the wrapper's invocations of subcommand cmd so far.
func (fp *failpoint) calls(t testing.TB, cmd string) []fpRecord {
	t.Helper()
	f, err := os.Open(fp.control + ".log")
	if os.IsNotExist(err) {
		return nil
	}
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var out []fpRecord
	sc := bufio.NewScanner(f)
	sc.Buffer(nil, 1<<20)
	for sc.Scan() {
		var r fpRecord
		if err := json.Unmarshal(sc.Bytes(), &r); err != nil {
			t.Fatalf("failpoint log: %v: %q", err, sc.Text())
		}
		if r.Command == cmd {
			out = append(out, r)
		}
	}
	return out
}

// fired counts the invocations of cmd that a rule changed.
func (fp *failpoint) fired(t testing.TB, cmd string) int {
	t.Helper()
	n := 0
	for _, r := range fp.calls(t, cmd) {
		if r.Action != "run" {
			n++
		}
	}
	return n
}

// fpCommandTimeout is the runsc backend's command_timeout in these tests:
// long enough for a real runsc create on a busy two-core host, short
// enough that a hung one fails the request well before ctr gives up.
const fpCommandTimeout = 5 * time.Second

// failpointRows are the Palisade rows with their runtime replaced by a
// failpoint wrapper. fps gets the row's wrapper, made when the row's
// containerd writes its config.
func failpointRows() []fpRow {
	var rows []fpRow
	for _, rt := range palisadeBackends() {
		tool := "runsc"
		if !onGVisor(rt) {
			tool = "runc"
		}
		rows = append(rows, fpRow{rt: rt, tool: tool})
	}
	return rows
}

type fpRow struct {
	rt   runtimeUnderTest
	tool string
}

// with returns the row's runtime with its config pointing at fp instead of
// the real runtime, and for runsc the test's command_timeout.
func (r fpRow) with(fp *failpoint) runtimeUnderTest {
	rt := r.rt
	base := rt.ConfigFor
	rt.ConfigFor = func(t testing.TB, e *containerdEnv) string {
		t.Helper()
		path := base(t, e)
		b, err := os.ReadFile(path)
		if err != nil {
			t.Fatal(err)
		}
		cfg, n := string(b), 0
		for _, key := range []string{"binary", "binary_name"} {
			old := fmt.Sprintf("%s = %q\n", key, fp.Real)
			n += strings.Count(cfg, old)
			cfg = strings.ReplaceAll(cfg, old, fmt.Sprintf("%s = %q\n", key, fp.Script))
		}
		if n != 1 {
			t.Fatalf("config %s: want the runtime %s named once, found %d times:\n%s", path, fp.Real, n, cfg)
		}
		if r.tool == "runsc" && rt.Name == rowRunsc {
			table := fmt.Sprintf("[handlers.%s.runsc]\n", rt.Name)
			cfg = strings.Replace(cfg, table, table+fmt.Sprintf("command_timeout = %q\n", fpCommandTimeout), 1)
		}
		if err := os.WriteFile(path, []byte(cfg), 0o644); err != nil {
			t.Fatal(err)
		}
		return path
	}
	return rt
}

// ctrWithin runs ctr with a deadline of its own, for calls that a hung
// runtime may hold, and returns the result and how long it took.
func (e *containerdEnv) ctrWithin(t testing.TB, d time.Duration, args ...string) (ctrResult, time.Duration) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), d)
	defer cancel()
	start := time.Now()
	res := e.ctrContext(ctx, t, args...)
	return res, time.Since(start)
}

// fpEnv is one failpoint case's world.
type fpEnv struct {
	env *containerdEnv
	rt  runtimeUnderTest
	fp  *failpoint
	row fpRow
	// deadline, if set, is the failing call's ctr --timeout on every row.
	deadline time.Duration
}

// failing returns ctr's arguments for the call the armed rule makes fail.
// On the delegate rows it carries a deadline (ctr --timeout), as CRI's
// requests do: Palisade hands it to the downstream shim, whose go-runc
// kills the hung runtime at it. (Without one, Palisade gives the request
// its default of two minutes, see shim/deadline.go: too long to wait for
// here.) The runsc row runs without, bounded by runsc.command_timeout.
func (f *fpEnv) failing(args ...string) []string {
	d := f.deadline
	if d == 0 && f.rt.Name != rowRunsc {
		d = fpCommandTimeout
	}
	if d == 0 {
		return args
	}
	return append([]string{"--timeout", d.String()}, args...)
}

// bound is how long a request may take when the runtime hangs: Palisade's
// command timeout plus what the rest of the request costs on a busy host.
func (f *fpEnv) bound() time.Duration { return fpCommandTimeout + 10*time.Second }

// expectFailure checks a request that the armed rule made fail: it failed,
// in time, and said why (the runtime's message, or that it timed out).
func (f *fpEnv) expectFailure(t testing.TB, what, cmd, action string, res ctrResult, took time.Duration) {
	t.Helper()
	if res.ExitCode == 0 {
		t.Fatalf("%s succeeded though runtime %s was made to %s: %v", what, cmd, action, res)
	}
	want := "failpoint: " + cmd + " failed"
	if strings.HasPrefix(action, "hang") {
		want = "deadline exceeded"
	}
	said := res.Stderr
	if cmd == "events" {
		// containerd's Metrics logs a task's Stats error and leaves the
		// task out: ctr says "no metrics received", the log says why.
		b, err := os.ReadFile(f.env.LogPath)
		if err != nil {
			t.Fatal(err)
		}
		said = string(b)
		if !strings.Contains(res.Stderr, "no metrics received") {
			t.Errorf("%s: %v", what, res)
		}
	}
	if !strings.Contains(said, want) {
		t.Errorf("%s: the error does not say %q: %v", what, want, res)
	}
	if took > f.bound() {
		t.Errorf("%s took %v, more than %v", what, took.Round(time.Millisecond), f.bound())
	}
	if n := f.fp.fired(t, cmd); n != 1 {
		t.Errorf("the %s rule for runtime %s fired %d times, want 1", action, cmd, n)
	}
	t.Logf("%s with runtime %s made to %s: failed after %v: %s", what, cmd, action,
		took.Round(time.Millisecond), lastLine(res.Stderr))
}

func lastLine(s string) string {
	lines := strings.Split(strings.TrimSpace(s), "\n")
	return lines[len(lines)-1]
}

// runArgsDetached are `ctr run -d` arguments for a sleeper with id.
func (f *fpEnv) runArgsDetached(t testing.TB, id string) []string {
	return f.env.runArgs(t, f.rt, []string{"-d", "--log-uri", "file://" + filepath.Join(f.env.Dir, id+".log")},
		busyboxRootfs(t), id, []string{"/bin/sleep", "600"})
}

// runOK starts a sleeper that must come up.
func (f *fpEnv) runOK(t testing.TB, id string) *task {
	t.Helper()
	tk := f.env.runDetached(t, f.rt, busyboxRootfs(t), id, "/bin/sleep", "600")
	tk.waitStatus(t, "RUNNING", 20*time.Second)
	return tk
}

// stopAndDelete ends a task the ordinary way: all its processes must go and
// its delete must work.
func (f *fpEnv) stopAndDelete(t testing.TB, tk *task) {
	t.Helper()
	tk.kill(t, "SIGKILL", false)
	tk.waitStatus(t, "STOPPED", 20*time.Second)
	tk.delete(t)
}

// fpCase is one failpoint case; skip, if set, says why a row cannot have it.
type fpCase struct {
	name string
	run  func(t *testing.T, f *fpEnv)
	skip func(r fpRow) string
}

func fpCases() []fpCase {
	var cases []fpCase
	for _, action := range []string{"fail", "hang", "fail-after"} {
		kill := fpOp("kill", action, []string{"task", "kill", "-s", "SIGKILL", "{id}"}, "RUNNING")
		if action == "fail-after" {
			kill = fpKillDone
		}
		cases = append(cases,
			fpCase{name: "create-" + action, run: fpCreate(action)},
			fpCase{name: "start-" + action, run: fpStart(action), skip: func(r fpRow) string {
				if r.rt.Name == rowDelegateRunsc {
					// runsc will not signal a created container, and
					// containerd-shim-runc-v2 has no other way to end one
					// (Palisade's runsc backend kills its sandbox).
					return "containerd-shim-runc-v2 + runsc cannot kill or delete a container whose start failed (without Palisade too)"
				}
				return ""
			}},
			fpCase{name: "kill-" + action, run: kill},
			fpCase{name: "delete-" + action, run: fpDelete(action)},
		)
	}
	for _, action := range []string{"fail", "hang"} {
		cases = append(cases,
			fpCase{name: "exec-" + action, run: fpOp("exec", action, []string{"task", "exec", "--exec-id", "x", "{id}", "/bin/true"}, "RUNNING")},
			fpCase{name: "ps-" + action, run: fpOp("ps", action, []string{"task", "ps", "{id}"}, "RUNNING")},
			fpCase{name: "pause-" + action, run: fpOp("pause", action, []string{"task", "pause", "{id}"}, "RUNNING")},
			fpCase{name: "resume-" + action, run: fpOp("resume", action, []string{"task", "resume", "{id}"}, "PAUSED")},
			fpCase{name: "events-" + action, run: fpOp("events", action, []string{"task", "metrics", "{id}"}, "RUNNING"),
				skip: func(r fpRow) string {
					if r.rt.Name != rowRunsc {
						return "containerd-shim-runc-v2 reads metrics from the container's cgroup, not from the runtime"
					}
					return ""
				}},
		)
	}
	noPods := func(r fpRow) string {
		if r.rt.Name == rowDelegateRunsc {
			return "containerd-shim-runc-v2 + runsc cannot run a pod's second container (see skipPodLimit)"
		}
		return ""
	}
	return append(cases,
		// The request's deadline, sooner than runsc.command_timeout, ends a
		// hung runsc create: containerd cleans up at that deadline, while
		// the shim may still be failing the create.
		fpCase{name: "create-hang-deadline", run: func(t *testing.T, f *fpEnv) {
			f.deadline = 3 * time.Second
			fpCreate("hang")(t, f)
		}, skip: func(r fpRow) string {
			if r.rt.Name != rowRunsc {
				return "the delegate rows' hang cases all run with a deadline"
			}
			return ""
		}},
		fpCase{name: "state", run: fpState},
		fpCase{name: "pod-create-fail-after", run: fpPodCreate, skip: noPods},
		fpCase{name: "pod-delete-outlives-caller", run: fpPodDeleteOutlivesCaller, skip: func(r fpRow) string {
			if r.rt.Name != rowRunsc {
				return "a delegate's delete is the downstream shim's, which stops when its caller does"
			}
			return ""
		}},
		fpCase{name: "pod-wait-lost", run: fpPodWait, skip: func(r fpRow) string {
			if r.rt.Name != rowRunsc {
				return "only Palisade's runsc backend waits in the sandbox (for a pod's second container)"
			}
			return ""
		}},
	)
}

func TestFailpoint(t *testing.T) {
	for _, row := range failpointRows() {
		for _, c := range fpCases() {
			t.Run(row.rt.Name+"/"+c.name, func(t *testing.T) {
				if c.skip != nil {
					if why := c.skip(row); why != "" {
						t.Skip(why)
					}
				}
				fp := newFailpoint(t, row.tool)
				rt := row.with(fp)
				env := startContainerdFor(t, rt, containerdOpts{})
				c.run(t, &fpEnv{env: env, rt: rt, fp: fp, row: row})
			})
		}
	}
}
