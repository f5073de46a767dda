package integration

import (
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/containerd/containerd/v2/pkg/oci"
)

// In-container proofs of the handler floor (runsc backend): what the process
// inside sees in /proc/self/status, and what the kernel (gVisor's sentry)
// lets it do.

// capBits are the capability numbers the floors below use.
var capBits = map[string]uint{
	"CAP_CHOWN": 0, "CAP_DAC_OVERRIDE": 1, "CAP_FOWNER": 3, "CAP_FSETID": 4, "CAP_KILL": 5,
	"CAP_SETGID": 6, "CAP_SETUID": 7, "CAP_SETPCAP": 8, "CAP_NET_BIND_SERVICE": 10,
	"CAP_NET_RAW": 13, "CAP_SYS_CHROOT": 18, "CAP_SYS_ADMIN": 21, "CAP_MKNOD": 27,
	"CAP_AUDIT_WRITE": 29, "CAP_SETFCAP": 31,
}

func capMask(t testing.TB, names ...string) uint64 {
	var m uint64
	for _, n := range names {
		b, ok := capBits[n]
		if !ok {
			t.Fatalf("test table lacks %s", n)
		}
		m |= 1 << b
	}
	return m
}

func hexField(t testing.TB, status, key string) uint64 {
	t.Helper()
	v, err := strconv.ParseUint(statusField(status, key), 16, 64)
	if err != nil {
		t.Fatalf("%s in /proc/self/status: %v\n%s", key, err, status)
	}
	return v
}

// statusCmd prints the status lines the floor sets; NoNewPrivs comes from the
// probe because gVisor's /proc/self/status has no such line.
const statusCmd = "grep -E '^(Seccomp|Cap[A-Za-z]+):' /proc/self/status; /bin/probe nnp"

// TestPolicyFloorInsideContainer: the default floor shows as Seccomp: 2,
// NoNewPrivs: 1 and the ceiling minus the drop list, and a syscall the floor
// denies (syslog, behind dmesg) fails with EPERM, while the same call works
// under a handler without a floor.
func TestPolicyFloorInsideContainer(t *testing.T) {
	floored := palisadeRunsc("floored", floorFor("floored"))
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

	res = env.runRm(t, floored, busyboxRootfs(t), "dmesg-floored", "/bin/dmesg")
	if res.ExitCode == 0 || !strings.Contains(res.ContainerStderr(), "Operation not permitted") {
		t.Errorf("syslog under the floor: want EPERM, got %v", res)
	}
	open := palisadeRunsc("open", "")
	res = env.runRm(t, open, busyboxRootfs(t), "dmesg-open", "/bin/dmesg")
	if res.ExitCode != 0 || !strings.Contains(res.Stdout, "Starting gVisor") {
		t.Errorf("syslog without a floor: want gVisor's banner, got %v", res)
	}
	res = env.runRm(t, open, probeRootfs(t), "status-open", "/bin/sh", "-c", statusCmd)
	if got := statusField(res.Stdout, "Seccomp"); got != "0" {
		t.Errorf("without a floor Seccomp should be 0 (nothing requested), got %s", got)
	}
	// containerd's default spec already sets noNewPrivileges; a request
	// without it shows the floor forcing it on.
	for _, c := range []struct {
		rt   runtimeUnderTest
		want string
	}{{open, "0"}, {floored, "1"}} {
		out, code := env.runWithSpec(t, c.rt, "nnp-"+c.rt.Name, probeRootfs(t),
			oci.WithNewPrivileges, oci.WithProcessArgs("/bin/probe", "nnp"))
		if got := statusField(out, "NoNewPrivs"); code != 0 || got != c.want {
			t.Errorf("request without no_new_privs on handler %s: NoNewPrivs %q (exit %d), want %s\n%s",
				c.rt.Name, got, code, c.want, out)
		}
	}
}

// TestPolicyCapAddClampAndRefuse: --cap-add CAP_SYS_ADMIN is removed under
// clamp (and the exec into that container is clamped too), and refused with
// an error naming it under refuse.
func TestPolicyCapAddClampAndRefuse(t *testing.T) {
	clamp := palisadeRunsc("clamp", floorFor("clamp"))
	env := startContainerdFor(t, clamp, containerdOpts{})
	rootfs := probeRootfs(t)
	args := env.runArgs(t, clamp, []string{"--rm", "--fifo-dir", env.FIFODir, "--cap-add", "CAP_SYS_ADMIN"},
		rootfs, "clamped", []string{"/bin/sh", "-c", statusCmd})
	res := env.ctr(t, args...)
	if res.ExitCode != 0 {
		t.Fatalf("clamp handler must run the container: %v", res)
	}
	if got := hexField(t, res.Stdout, "CapBnd"); got&capMask(t, "CAP_SYS_ADMIN") != 0 {
		t.Errorf("CAP_SYS_ADMIN survived the clamp: CapBnd %016x", got)
	}

	// The exec's process spec comes from the container's original spec, with
	// CAP_SYS_ADMIN in it: Exec must clamp it again.
	args = env.runArgs(t, clamp, []string{"-d", "--cap-add", "CAP_SYS_ADMIN"}, probeRootfs(t), "clamped-exec",
		[]string{"/bin/sleep", "600"})
	env.ctrOK(t, args...)
	tk := &task{env: env, ID: "clamped-exec"}
	t.Cleanup(func() { tk.forceRemove(t) })
	tk.waitStatus(t, "RUNNING", 20*time.Second)
	res = tk.exec(t, "st", "/bin/sh", "-c", statusCmd)
	if got := hexField(t, res.Stdout, "CapBnd"); got&capMask(t, "CAP_SYS_ADMIN") != 0 {
		t.Errorf("CAP_SYS_ADMIN in the exec: CapBnd %016x", got)
	}
	if got := statusField(res.Stdout, "NoNewPrivs"); got != "1" {
		t.Errorf("exec NoNewPrivs: %s, want 1", got)
	}

	refuse := palisadeRunsc("refuse", strings.Replace(floorFor("refuse"), `over_ceiling = "clamp"`, `over_ceiling = "refuse"`, 1))
	args = env.runArgs(t, refuse, []string{"--rm", "--fifo-dir", env.FIFODir, "--cap-add", "CAP_SYS_ADMIN"},
		busyboxRootfs(t), "refused", []string{"/bin/true"})
	res = env.ctr(t, args...)
	if res.ExitCode == 0 {
		t.Fatalf("refuse handler ran a container above its ceiling: %v", res)
	}
	if !strings.Contains(res.Stderr, "CAP_SYS_ADMIN") || !strings.Contains(res.Stderr, "refused") {
		t.Errorf("the error ctr shows must name CAP_SYS_ADMIN and the refusal: %v", res)
	}
	// Create failed, so nothing ran; containerd keeps the container record
	// only if ctr got that far.
	env.ctr(t, "container", "rm", "refused")
}

// TestPolicyStricterRequestKept: a pod's own profile that denies mkdir (which
// the floor allows) keeps that rule; the floor's rules still apply as well.
func TestPolicyStricterRequestKept(t *testing.T) {
	rt := palisadeRunsc("stricter", floorFor("stricter"))
	env := startContainerdFor(t, rt, containerdOpts{})
	profile := `{"defaultAction": "SCMP_ACT_ALLOW", "syscalls": [
	  {"names": ["mkdir", "mkdirat"], "action": "SCMP_ACT_ERRNO", "errnoRet": 1}]}`
	path := filepath.Join(env.Dir, "no-mkdir.json")
	if err := os.WriteFile(path, []byte(profile), 0o644); err != nil {
		t.Fatal(err)
	}
	args := env.runArgs(t, rt, []string{"--rm", "--fifo-dir", env.FIFODir, "--seccomp", "--seccomp-profile", path},
		busyboxRootfs(t), "no-mkdir", []string{"/bin/sh", "-c", "mkdir /tmp/x && echo mkdir-ok; dmesg >/dev/null 2>&1 && echo syslog-ok; echo done"})
	res := env.ctr(t, args...)
	if res.ExitCode != 0 || !strings.Contains(res.Stdout, "done") {
		t.Fatalf("run: %v", res)
	}
	if strings.Contains(res.Stdout, "mkdir-ok") {
		t.Errorf("the request's stricter mkdir rule was lost: %q", res.Stdout)
	}
	if strings.Contains(res.Stdout, "syslog-ok") {
		t.Errorf("the request's allow-all default let syslog past the floor: %q", res.Stdout)
	}
}

// TestPolicyAppArmorFailsClosedWithoutKernelSupport: this kernel has no
// AppArmor (machine notes). A handler that requires a profile must refuse to
// start the container, naming the host check; one whose profile is optional
// runs it and records why it was not enforced. Enforcement itself needs a
// kernel with AppArmor (the Debian-kernel VM test).
func TestPolicyAppArmorFailsClosedWithoutKernelSupport(t *testing.T) {
	if b, err := os.ReadFile("/sys/module/apparmor/parameters/enabled"); err == nil && strings.TrimSpace(string(b)) == "Y" {
		t.Skip("this kernel has AppArmor; the fail-closed path is for kernels without it")
	}
	required := palisadeRunsc("aa-required", floorFor("aa-required")+`
[handlers.aa-required.policy.apparmor]
profile = "palisade-runsc"
required = true`)
	env := startContainerdFor(t, required, containerdOpts{})
	res := env.runRm(t, required, busyboxRootfs(t), "aa-req", "/bin/true")
	if res.ExitCode == 0 {
		t.Fatalf("a required AppArmor profile on a kernel without AppArmor must fail closed: %v", res)
	}
	for _, want := range []string{"apparmor", "/sys/module/apparmor/parameters/enabled"} {
		if !strings.Contains(strings.ToLower(res.Stderr), strings.ToLower(want)) {
			t.Errorf("the error ctr shows should name %q: %v", want, res)
		}
	}
	env.ctr(t, "container", "rm", "aa-req")

	optional := palisadeRunsc("aa-optional", floorFor("aa-optional")+`
[handlers.aa-optional.policy.apparmor]
profile = "palisade-runsc"
required = false`)
	tk := env.runDetached(t, optional, busyboxRootfs(t), "aa-opt", "/bin/sleep", "600")
	tk.waitStatus(t, "RUNNING", 20*time.Second)
	record := decisionRecord(t, env, "aa-opt")
	if !strings.Contains(record, `"not_enforced"`) || !strings.Contains(record, "/sys/module/apparmor/parameters/enabled") {
		t.Errorf("the decision record must say AppArmor was not enforced and why:\n%s", record)
	}
	tk.kill(t, "SIGKILL", false)
	tk.waitStatus(t, "STOPPED", 20*time.Second)
	tk.delete(t)
}

// TestPolicyComplainModeOnRunsc: gVisor's seccomp has no log action, so a
// complain-mode handler cannot log floor denials there. The container must
// still start (a filter with SCMP_ACT_LOG would make runsc refuse it), run
// its request unchanged (syslog, which the floor denies, works), and its
// decision record must list what the floor would have changed and say why
// nothing is logged.
func TestPolicyComplainModeOnRunsc(t *testing.T) {
	rt := palisadeRunsc("complain", "mode = \"complain\"\n"+floorFor("complain"))
	env := startContainerdFor(t, rt, containerdOpts{})
	res := env.runRm(t, rt, probeRootfs(t), "complain-status", "/bin/sh", "-c", statusCmd+"; /bin/dmesg | head -1")
	if res.ExitCode != 0 {
		t.Fatalf("a complain-mode handler must run the container: %v", res)
	}
	if got := statusField(res.Stdout, "Seccomp"); got != "0" {
		t.Errorf("complain mode keeps the request (none): Seccomp %s, want 0\n%s", got, res.Stdout)
	}
	if !strings.Contains(res.Stdout, "Starting gVisor") {
		t.Errorf("syslog, which the floor denies, must work in complain mode: %v", res)
	}

	tk := env.runDetached(t, rt, busyboxRootfs(t), "complain-rec", "/bin/sleep", "600")
	tk.waitStatus(t, "RUNNING", 20*time.Second)
	record := decisionRecord(t, env, "complain-rec")
	for _, want := range []string{
		`"mode": "complain"`,
		"complain mode: the floor would change linux.seccomp: handler floor runtime-default",
		"complain mode needs SCMP_ACT_LOG",
	} {
		if !strings.Contains(record, want) {
			t.Errorf("decision record lacks %q:\n%s", want, record)
		}
	}
	tk.kill(t, "SIGKILL", false)
	tk.waitStatus(t, "STOPPED", 20*time.Second)
	tk.delete(t)
}
