package integration

import (
	"bytes"
	"crypto/sha256"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"testing"
	"text/tabwriter"
	"time"

	"github.com/containerd/containerd/api/types/runtimeoptions/v1"
	containerd "github.com/containerd/containerd/v2/client"
	"github.com/containerd/containerd/v2/pkg/cio"
	"github.com/containerd/containerd/v2/pkg/oci"
	specs "github.com/opencontainers/runtime-spec/specs-go"
	"github.com/pelletier/go-toml/v2"
)

// The escape suite (issue 7, part 4): the probe's `escape` entrypoint tries
// what an attacker in a pod would (probe/escape_attempts.go), through real
// containerd, Palisade and runsc, under the strictest handler that can run
// on this machine. Every attempt must fail; an attempt that gets through
// fails the test. The same probe under a handler without a floor, on a
// privileged container, is the control: it shows which denials are the
// floor's and which are gVisor's own (not implemented, or refused whatever
// the privileges), and that the probe can see an attempt succeed.

const palisadeRuntimeType = "io.containerd.palisade.v2"

// strictHandler is the shipped config.toml's gvisor-strict handler: its
// runsc table (binary and root pointed at the test's) and its policy without
// the apparmor table. gvisor-strict requires AppArmor, which this kernel
// lacks, so as shipped it fails closed here (TestPolicyAppArmorFailsClosed...).
// runsc gets --allow-suid and --net-raw, which make the strict handler
// weaker than shipped on purpose: by default gVisor ignores setuid bits and
// refuses raw sockets whatever the capabilities; with both allowed it is the
// floor (no_new_privs, the CAP_NET_RAW drop) that must stop those attempts.
func strictHandler(t testing.TB, e *containerdEnv) (handler map[string]any, ceiling []string) {
	t.Helper()
	return shippedHandler(t, e, "gvisor-strict")
}

// shippedHandler is config.toml's handler name as strictHandler describes
// it: its runsc or shim table pointed at the test's tools and state.
func shippedHandler(t testing.TB, e *containerdEnv, name string) (handler map[string]any, ceiling []string) {
	t.Helper()
	root, err := repoRoot()
	if err != nil {
		t.Fatal(err)
	}
	src, err := os.ReadFile(filepath.Join(root, "config.toml"))
	if err != nil {
		t.Fatal(err)
	}
	var cfg struct {
		Handlers map[string]map[string]any `toml:"handlers"`
	}
	if err := toml.Unmarshal(src, &cfg); err != nil {
		t.Fatalf("config.toml: %v", err)
	}
	h, ok := cfg.Handlers[name]
	if !ok {
		t.Fatalf("config.toml has no [handlers.%s]", name)
	}
	pol, _ := h["policy"].(map[string]any)
	caps, _ := pol["capabilities"].(map[string]any)
	if pol == nil || caps == nil {
		t.Fatalf("config.toml: [handlers.%s.policy.capabilities] missing", name)
	}
	delete(pol, "apparmor")
	delete(h, "runtimeclass")
	for _, c := range caps["ceiling"].([]any) {
		ceiling = append(ceiling, c.(string))
	}
	h["log_level"] = "debug"
	if _, ok := h["shim"]; ok {
		h["shim"] = runcShimTable(t, e)
		return h, ceiling
	}
	runsc, err := lookupTool("runsc")
	if err != nil {
		t.Fatal(err)
	}
	rs, _ := h["runsc"].(map[string]any)
	if rs == nil {
		t.Fatalf("config.toml: [handlers.%s.runsc] missing", name)
	}
	rs["binary"] = runsc
	rs["root"] = e.RuntimeRoot
	rs["flags"] = map[string]any{"allow-suid": "true", "net-raw": "true"}
	return h, ceiling
}

// writeHandlers writes a Palisade config holding handlers, the first named
// being the default.
func writeHandlers(t testing.TB, e *containerdEnv, file, def string, handlers map[string]any) string {
	t.Helper()
	b, err := toml.Marshal(map[string]any{"default_handler": def, "handlers": handlers})
	if err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(e.Dir, file)
	if err := os.WriteFile(path, b, 0o644); err != nil {
		t.Fatal(err)
	}
	return path
}

// escapeRow is one column of the table: a handler of the test's config,
// the spec the attacker's pod asks for, and how the probe is started.
type escapeRow struct {
	name, handler string
	spec          []oci.SpecOpts
	// exec runs the probe as an exec process in a container whose pid 1 is
	// sleep, as `kubectl exec` would; else the probe is the entrypoint.
	exec bool
	// strict rows must deny every attempt except those in allowed, each with
	// the reason it is not an escape.
	strict  bool
	allowed map[string]string
	// ceiling is the row's capability ceiling when it is not the strict
	// handler's.
	ceiling []string
}

// gVisorAllowed are the attempts gVisor lets through under the floor, and why
// none reaches the host.
var gVisorAllowed = map[string]string{
	// gVisor's ptrace_scope is the sentry's own YAMA setting, a file owned by
	// uid 0 that the sentry lets uid 0 write without CAP_SYS_PTRACE (Linux
	// asks for it). It reaches nothing outside the sandbox, and under the
	// floor ptrace itself is denied (the ptrace-* rows).
	"write-/proc/sys/kernel/yama/ptrace_scope": "gVisor's own YAMA setting, sandbox-local; ptrace is denied anyway",
}

func escapeRows(ceiling []string) []escapeRow {
	// The attacker asks for all it may have: the ceiling (more is refused,
	// over_ceiling = "refuse"), no no_new_privs, and no seccomp profile.
	attacker := []oci.SpecOpts{oci.WithCapabilities(ceiling), oci.WithNewPrivileges}
	return []escapeRow{
		{name: "strict-runsc", handler: "strict-runsc", spec: attacker, strict: true, allowed: gVisorAllowed},
		{name: "strict-runsc-exec", handler: "strict-runsc", spec: attacker, exec: true, strict: true, allowed: gVisorAllowed},
		{name: "control-runsc", handler: "control-runsc", spec: []oci.SpecOpts{oci.WithPrivileged, oci.WithNewPrivileges}},
		{name: "strict-delegate-runc", handler: "strict-delegate-runc", spec: attacker, strict: true,
			allowed: map[string]string{
				// On the host kernel the floor is containerd's default profile,
				// which allows ptrace on kernels >= 4.8 (gVisor reports 4.4, so
				// there the floor omits it). The kernel then lets a process trace
				// one of the same uid and capabilities: its own child, and, with
				// no YAMA in this kernel, its parent pid 1. The tracer gains
				// nothing it does not hold already.
				"ptrace-own-child-same-uid": "host kernel: same uid and capabilities (strace); the floor allows ptrace on >= 4.8",
				"ptrace-pid1":               "host kernel without YAMA: same uid and capabilities as pid 1",
			}},
	}
}

// TestEscapeSuite runs the escape probe on each row (as a container's
// entrypoint, or exec'd into one) and prints the table of attempts and
// results, one column per row.
func TestEscapeSuite(t *testing.T) {
	requireIntegration(t, "runsc", "containerd-shim-runc-v2", "runc")
	rt := runtimeUnderTest{Name: "palisade", RuntimeType: palisadeRuntimeType, Tools: []string{"runsc"}, NeedsPalisade: true}
	env := startContainerdFor(t, rt, containerdOpts{})
	strict, ceiling := strictHandler(t, env)
	delegate, _ := strictHandler(t, env)
	delegate["backend"] = "shim"
	delete(delegate, "runsc")
	delegate["shim"] = runcShimTable(t, env)
	control, _ := strictHandler(t, env)
	control["policy"] = map[string]any{}
	// The shipped default handlers, asked for everything a privileged pod
	// (and on gVisor, hostPID) asks for: their floor clamps it.
	runcFloor, defCeiling := shippedHandler(t, env, "runc-floor")
	gvisor, _ := shippedHandler(t, env, "gvisor")
	cfg := writeHandlers(t, env, "escape.toml", "strict-runsc", map[string]any{
		"strict-runsc": strict, "strict-delegate-runc": delegate, "control-runsc": control,
		"runc-floor": runcFloor, "gvisor": gvisor})
	t.Logf("strictest handler that runs here: config.toml's gvisor-strict floor without its AppArmor table "+
		"(this kernel has no AppArmor, so gvisor-strict itself fails closed), runsc with --allow-suid and --net-raw; ceiling %v", ceiling)

	rows := append(escapeRows(ceiling), privilegedRows(defCeiling)...)
	results := make([]map[string]string, len(rows))
	var order []string
	for i, row := range rows {
		out := env.runEscapeProbe(t, cfg, row.handler, "esc-"+row.name, row.exec, row.spec)
		res, names, info := parseEscape(t, row.name, out)
		results[i] = res
		if order == nil {
			order = names
		} else if !slices.Equal(order, names) {
			t.Errorf("%s ran other attempts than %s:\n%v\n%v", row.name, rows[0].name, names, order)
		}
		t.Logf("%s: %s", row.name, info)
		if row.strict {
			c := ceiling
			if row.ceiling != nil {
				c = row.ceiling
			}
			checkStrictIdentity(t, row.name, info, c)
		}
	}
	t.Logf("escape attempts (ok = got through; otherwise the errno that stopped it):\n%s", escapeTable(rows, order, results))

	denied, strictRows := 0, 0
	for _, row := range rows {
		if row.strict {
			strictRows++
		}
	}
	for _, name := range order {
		control := strings.HasPrefix(name, "control-")
		for i, row := range rows {
			got := results[i][name]
			switch {
			case strings.HasPrefix(got, "probe-error"):
				t.Errorf("%s: %s: the probe failed, not the attempt: %s", row.name, name, got)
			case control && got != "ok":
				t.Errorf("%s: control %s must succeed (else the probe's denials prove nothing), got %s", row.name, name, got)
			case !row.strict || control:
			case row.allowed[name] != "":
				if got != "ok" {
					t.Errorf("%s: %s was expected to get through (%s), got %s: update the table", row.name, name, row.allowed[name], got)
				}
			case got == "ok":
				t.Errorf("ESCAPE: %s: %s got through under the strict floor", row.name, name)
			default:
				denied++
			}
		}
	}
	// The control must see the attempts the floor is there to stop succeed,
	// or the strict rows' denials could be the probe's own doing.
	ctl := results[slices.IndexFunc(rows, func(r escapeRow) bool { return r.name == "control-runsc" })]
	for _, name := range controlMustSucceed {
		if got := ctl[name]; got != "ok" {
			t.Errorf("control-runsc: %s should get through without a floor on a privileged container, got %s", name, got)
		}
	}
	t.Logf("%d attempts denied on the strict rows (%d attempts x %d strict rows, less controls and documented exceptions)",
		denied, len(order), strictRows)
}

// controlMustSucceed are attempts gVisor lets a privileged container without
// a floor make: on the strict rows their denial is the floor's doing.
var controlMustSucceed = []string{
	"unshare-user", "unshare-mnt", "unshare-net", "unshare-pid", "unshare-ipc", "unshare-uts", "unshare-cgroup",
	"clone-newuser", "clone-newns", "mount-tmpfs", "mount-proc", "mount-bind-root", "mount-cgroup-v1",
	"remount-root-rw", "chroot", "sethostname", "ptrace-own-child-same-uid", "ptrace-pid1", "ptrace-child-other-uid",
	"keyctl-join-session-keyring", "mknod-block-device", "socket-raw-icmp", "socket-packet",
	"capset-raise-sys_admin", "setuid-root-binary",
}

// checkStrictIdentity: the probe on a strict row ran with no_new_privs, a
// seccomp filter and at most the ceiling.
func checkStrictIdentity(t *testing.T, row, info string, ceiling []string) {
	t.Helper()
	fields := map[string]string{}
	for _, f := range strings.Fields(info) {
		if k, v, ok := strings.Cut(f, "="); ok {
			fields[k] = v
		}
	}
	if fields["NoNewPrivs"] != "1" || fields["Seccomp"] != "2" {
		t.Errorf("%s: probe ran with NoNewPrivs=%s Seccomp=%s, want 1 and 2", row, fields["NoNewPrivs"], fields["Seccomp"])
	}
	var eff uint64
	if _, err := fmt.Sscanf(fields["CapEff"], "%x", &eff); err != nil {
		t.Errorf("%s: CapEff %q: %v", row, fields["CapEff"], err)
	}
	if allowed := capMask(t, ceiling...); eff&^allowed != 0 {
		t.Errorf("%s: CapEff %016x exceeds the ceiling %016x", row, eff, allowed)
	}
}

// parseEscape reads the probe's lines: attempt name to result, the names in
// order, and the info line.
func parseEscape(t *testing.T, row, out string) (map[string]string, []string, string) {
	t.Helper()
	res := map[string]string{}
	var names []string
	var info string
	done := -1
	for _, line := range strings.Split(out, "\n") {
		f := strings.Split(line, "\t")
		switch {
		case f[0] == "info" && len(f) == 2:
			info = f[1]
		case f[0] == "escape" && len(f) == 4:
			res[f[1]] = f[2]
			names = append(names, f[1])
		case f[0] == "escape-done" && len(f) == 2:
			fmt.Sscan(f[1], &done)
		}
	}
	if done != len(names) || done == 0 {
		t.Fatalf("%s: the probe did not finish (escape-done %d, %d attempts):\n%s", row, done, len(names), out)
	}
	return res, names, info
}

func escapeTable(rows []escapeRow, order []string, results []map[string]string) string {
	var b bytes.Buffer
	w := tabwriter.NewWriter(&b, 0, 0, 2, ' ', 0)
	header := "ATTEMPT"
	for _, r := range rows {
		header += "\t" + r.name
	}
	fmt.Fprintln(w, header)
	for _, name := range order {
		line := name
		for i := range rows {
			line += "\t" + results[i][name]
		}
		fmt.Fprintln(w, line)
	}
	w.Flush()
	return b.String()
}

// shimSocketNames are the unix addresses a container might reach the shim
// of container id by: the socket file containerd's pkg/shim creates (and
// its name as an abstract socket), the abstract names containerd's shims
// used before the CVE-2020-15257 fix, and containerd's own sockets. They
// are ROLE=ADDRESS pairs, the probe's PALISADE_ESCAPE_SOCKETS.
func (e *containerdEnv) shimSocketNames(id string) (path string, all []string) {
	hash := func(s string) string { return fmt.Sprintf("%x", sha256.Sum256([]byte(s))) }
	path = filepath.Join(e.SocketDir, hash(filepath.Join(e.Address, e.Namespace, id)))
	return path, []string{
		"shim-socket=" + path,
		"shim-socket-as-abstract=@" + path,
		// The v1 shim up to containerd 1.2.
		"abstract-v1-ns-id=@/containerd-shim/" + e.Namespace + "/" + id + "/shim.sock",
		// The v1 shim of 1.3 and v2 shims up to 1.3.
		"abstract-sha-ns-id=@/containerd-shim/" + hash(filepath.Join(e.Namespace, id)) + ".sock",
		// v2 shims of 1.4.0-1.4.2: containerd's address hashed in too.
		"abstract-sha-address-ns-id=@/containerd-shim/" + hash(filepath.Join(e.Address, e.Namespace, id)) + ".sock",
		"containerd-grpc=" + e.Address,
		"containerd-ttrpc=" + e.Address + ".ttrpc",
		"host-containerd=/run/containerd/containerd.sock",
	}
}

// escapeRootfs is the probe rootfs with a setuid-root copy of the probe and
// an empty /mnt to mount on.
func escapeRootfs(t testing.TB) string {
	t.Helper()
	dir := probeRootfs(t)
	suid := filepath.Join(dir, "bin", "probe-suid")
	if err := copyFile(filepath.Join(dir, "bin", "probe"), suid, 0o755); err != nil {
		t.Fatal(err)
	}
	// os.FileMode's setuid bit is ModeSetuid, not 0o4000.
	if err := os.Chown(suid, 0, 0); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(suid, os.ModeSetuid|0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.Mkdir(filepath.Join(dir, "mnt"), 0o755); err != nil {
		t.Fatal(err)
	}
	return dir
}

// runEscapeProbe runs `probe escape` through containerd's Go client, with a
// read-only rootfs and a tmpfs /tmp, as the container's entrypoint or, with
// exec, as an exec process next to a pid 1 that sleeps. It returns the
// probe's output. After the probe exits, and before the task is deleted, the
// shim's socket must accept a connection from the host: the path the probe
// was given is the live shim's.
func (e *containerdEnv) runEscapeProbe(t *testing.T, cfg, handler, id string, exec bool, extra []oci.SpecOpts) string {
	t.Helper()
	e.useID(id)
	c, ctx := e.client(t)
	path, socks := e.shimSocketNames(id)
	probe := []string{"/bin/probe", "escape"}
	entry := probe
	if exec {
		entry = []string{"/bin/sleep", "600"}
	}
	spec := append([]oci.SpecOpts{
		oci.WithRootFSPath(escapeRootfs(t)),
		oci.WithRootFSReadonly(),
		oci.WithMounts([]specs.Mount{{Destination: "/tmp", Type: "tmpfs", Source: "tmpfs",
			Options: []string{"nosuid", "nodev", "mode=1777"}}}),
		oci.WithEnv([]string{containerPATH, "PALISADE_ESCAPE_SOCKETS=" + strings.Join(socks, ",")}),
		oci.WithProcessArgs(entry...),
	}, extra...)
	// The handler is named the way a CRI runtime entry names it, in the
	// options table (ConfigBody): a ConfigPath alone selects the default.
	opts := &runtimeoptions.Options{ConfigBody: fmt.Appendf(nil, "config_path = %q\nhandler = %q\n", cfg, handler)}
	ctrd, err := c.NewContainer(ctx, id, containerd.WithRuntime(palisadeRuntimeType, opts), containerd.WithNewSpec(spec...))
	if err != nil {
		t.Fatalf("new container %s: %v", id, err)
	}
	defer ctrd.Delete(ctx)
	// One pair of buffers per process: cio copies with bytes.Buffer.ReadFrom,
	// and two copies into one buffer race.
	var stdout, stderr, initOut bytes.Buffer
	streams := cio.NewCreator(cio.WithStreams(nil, &stdout, &stderr), cio.WithFIFODir(e.FIFODir))
	initStreams := streams
	if exec {
		initStreams = cio.NewCreator(cio.WithStreams(nil, &initOut, &initOut), cio.WithFIFODir(e.FIFODir))
	}
	tk, err := ctrd.NewTask(ctx, initStreams)
	if err != nil {
		t.Fatalf("new task %s: %v", id, err)
	}
	defer tk.Delete(ctx, containerd.WithProcessKill)
	var proc containerd.Process = tk
	exitCh, err := tk.Wait(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if err := tk.Start(ctx); err != nil {
		t.Fatalf("start %s: %v", id, err)
	}
	if exec {
		// The exec's process is the container's, args aside: the same
		// capabilities and no_new_privs request go through the floor again.
		ps, err := ctrd.Spec(ctx)
		if err != nil {
			t.Fatal(err)
		}
		pspec := *ps.Process
		pspec.Args = probe
		if proc, err = tk.Exec(ctx, "escape", &pspec, streams); err != nil {
			t.Fatalf("exec in %s: %v", id, err)
		}
		if exitCh, err = proc.Wait(ctx); err != nil {
			t.Fatal(err)
		}
		if err := proc.Start(ctx); err != nil {
			t.Fatalf("start exec in %s: %v", id, err)
		}
	}
	var st containerd.ExitStatus
	select {
	case st = <-exitCh:
	case <-time.After(ctrTimeout):
		t.Fatalf("%s: the probe did not exit in %v; output so far:\n%s", id, ctrTimeout, stdout.String())
	}
	// The output is copied from FIFOs; it is all there once they close.
	proc.IO().Wait()
	if conn, err := net.Dial("unix", path); err != nil {
		t.Errorf("%s: the shim's socket %s does not answer from the host: %v (the probe was given a dead address)", id, path, err)
	} else {
		conn.Close()
	}
	if exec {
		if _, err := proc.Delete(ctx); err != nil {
			t.Fatalf("delete exec in %s: %v", id, err)
		}
		initExit, err := tk.Wait(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if err := tk.Kill(ctx, syscall.SIGKILL); err != nil {
			t.Fatalf("kill %s: %v", id, err)
		}
		<-initExit
	}
	if _, err := tk.Delete(ctx); err != nil {
		t.Fatalf("delete task %s: %v", id, err)
	}
	if st.ExitCode() != 0 || stderr.Len() > 0 {
		t.Fatalf("%s: probe exit %d\nstdout:\n%s\nstderr:\n%s", id, st.ExitCode(), stdout.String(), stderr.String())
	}
	return stdout.String()
}
