package ctl

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/palisade-runtime/palisade/shim"
)

const decisionRecord = `{
  "handler": "gvisor",
  "backend": "runsc",
  "mode": "enforce",
  "controls": [
    {"name": "seccomp", "requested": "absent",
     "effective": "floor runtime-default: defaultAction SCMP_ACT_ERRNO(1), 374 syscalls in 407 rules",
     "enforced_by": "gVisor sentry (runsc --oci-seccomp)",
     "changed": ["linux.seccomp: handler floor runtime-default applied (request had none)"]},
    {"name": "capabilities", "requested": "bounding=CAP_CHOWN,CAP_SYS_ADMIN effective=CAP_CHOWN",
     "effective": "bounding=CAP_CHOWN effective=CAP_CHOWN", "enforced_by": "gVisor sentry",
     "changed": ["process.capabilities.bounding: removed CAP_SYS_ADMIN (above ceiling)"]},
    {"name": "apparmor", "requested": "", "effective": "no host profile",
     "not_enforced": "optional host profile \"p\" not attached: AppArmor is not enabled\tin this kernel"}
  ]
}`

func stateWithRecord(t *testing.T, ns, id, record string) string {
	t.Helper()
	state := t.TempDir()
	bundle := filepath.Join(state, taskStateDir, ns, id)
	if err := os.MkdirAll(bundle, 0o755); err != nil {
		t.Fatal(err)
	}
	if record != "" {
		if err := os.WriteFile(filepath.Join(bundle, shim.DecisionFile), []byte(record), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	return state
}

func TestInspectTable(t *testing.T) {
	state := stateWithRecord(t, "k8s.io", "c1", decisionRecord)
	code, out, stderr := runCtl(t, env{}, "inspect", "--state", state, "c1")
	if code != 0 {
		t.Fatalf("status %d: %s", code, stderr)
	}
	for _, want := range []string{
		"handler                gvisor",
		"backend                runsc",
		"apparmor host profile  (none)",
		"seccomp       requested     absent",
		"              enforced by   gVisor sentry (runsc --oci-seccomp)",
		"              changes       linux.seccomp: handler floor runtime-default applied (request had none)",
		"capabilities  requested     bounding=CAP_CHOWN,CAP_SYS_ADMIN",
		"                            effective=CAP_CHOWN",
		"apparmor      requested     -",
		"              NOT ENFORCED  optional host profile \"p\" not attached: AppArmor is not enabled in this kernel",
	} {
		if !strings.Contains(out, want+"\n") {
			t.Errorf("missing line %q in:\n%s", want, out)
		}
	}
}

func TestInspectJSONAndErrors(t *testing.T) {
	state := stateWithRecord(t, "default", "c1", decisionRecord)
	code, out, _ := runCtl(t, env{}, "inspect", "-n", "default", "--state", state, "--json", "c1")
	if code != 0 || out != decisionRecord {
		t.Errorf("--json: %d\n%s", code, out)
	}
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"inspect", "--state", state, "c1"}, "no running task in namespace k8s.io"},
		{[]string{"inspect", "-n", "default", "--state", stateWithRecord(t, "default", "c2", ""), "c2"}, "does not run under Palisade"},
		{[]string{"inspect", "-n", "default", "--state", state, "../c1"}, `container id "../c1": not a containerd name`},
		{[]string{"inspect", "-n", "..", "--state", state, "c1"}, `namespace "..": not a containerd name`},
		{[]string{"inspect", "-n", "default", "--state", stateWithRecord(t, "default", "c3", "{not json"), "c3"}, "decode palisade-decision.json"},
	} {
		code, _, stderr := runCtl(t, env{}, tc.args...)
		if code != 1 || !strings.Contains(stderr, tc.want) {
			t.Errorf("%v: %d %q, want %q", tc.args, code, stderr, tc.want)
		}
	}
}

// FuzzWriteDecision: any bytes in the bundle either fail to decode or make
// a table whose rows all have their three columns on one line each.
func FuzzWriteDecision(f *testing.F) {
	f.Add([]byte(decisionRecord))
	f.Add([]byte(`{"controls":[{"name":"a\nb","requested":"x=1 y"}]}`))
	f.Add([]byte(`{}`))
	f.Fuzz(func(t *testing.T, data []byte) {
		var out bytes.Buffer
		if err := writeDecision(&out, data); err != nil {
			return
		}
		lines := strings.Split(strings.TrimSuffix(out.String(), "\n"), "\n")
		if len(lines) < 6 || lines[5] != "CONTROL  FIELD  VALUE" && !strings.HasPrefix(lines[5], "CONTROL ") {
			t.Errorf("table shape:\n%s", out.String())
		}
	})
}

// TestInspectWholeSpecControls: the record of a clamped ctr --privileged
// container (policy's golden output) shows every whole-spec control.
func TestInspectWholeSpecControls(t *testing.T) {
	record, err := os.ReadFile("../../../../policy/testdata/golden/ctr-privileged-clamp/want-decision.json")
	if err != nil {
		t.Fatal(err)
	}
	state := stateWithRecord(t, "default", "p1", string(record))
	code, out, stderr := runCtl(t, env{}, "inspect", "--namespace", "default", "--state", state, "p1")
	if code != 0 {
		t.Fatalf("status %d: %s", code, stderr)
	}
	for _, want := range []string{
		"privileged             requested    maskedPaths 0, readonlyPaths 0, sysfs rw, cgroupfs absent",
		"mounts[5] (sysfs /sys): read-write: -> ro",
		"namespaces             requested    pid=new\n",
		"devices                requested    16 devices, 1 device cgroup rules",
		"linux.devices[13] (b /dev/vda 254:0): not an OCI default device and not in policy.devices: removed",
		"sysctls                requested",
		"resources              requested",
		"mounts                 requested",
		"service_account_token  requested",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("missing %q in:\n%s", want, out)
		}
	}
}

// A CRI container's record names its pod and container; the pod's sandbox
// container has no container name.
func TestInspectPod(t *testing.T) {
	for _, tc := range []struct{ pod, want string }{
		{`{"namespace": "shop", "name": "web-7d4b9", "uid": "u1", "container": "nginx"}`, "pod                    shop/web-7d4b9\ncontainer              nginx\n"},
		{`{"namespace": "shop", "name": "web-7d4b9", "uid": "u1"}`, "pod                    shop/web-7d4b9\ncontainer              (sandbox)\n"},
	} {
		record := strings.Replace(decisionRecord, `"mode": "enforce",`, `"mode": "enforce", "pod": `+tc.pod+`,`, 1)
		state := stateWithRecord(t, "k8s.io", "c1", record)
		code, out, stderr := runCtl(t, env{}, "inspect", "--state", state, "c1")
		if code != 0 {
			t.Fatalf("status %d: %s", code, stderr)
		}
		if !strings.HasPrefix(out, tc.want) {
			t.Errorf("inspect of a pod's container starts with\n%s\nwant\n%s", out, tc.want)
		}
	}
}

// TestInspectImageControl: the image control of a handler with an image
// policy (policy's golden output) shows the reference, where it came from,
// containerd's digest and the rules that let it through.
func TestInspectImageControl(t *testing.T) {
	record, err := os.ReadFile("../../../../policy/testdata/golden/image-pinned-allowed/want-decision.json")
	if err != nil {
		t.Fatal(err)
	}
	state := stateWithRecord(t, "k8s.io", "c1", string(record))
	code, out, stderr := runCtl(t, env{}, "inspect", "--namespace", "k8s.io", "--state", state, "c1")
	if code != 0 {
		t.Fatalf("status %d: %s", code, stderr)
	}
	for _, want := range []string{
		"image                  requested    registry.example.com/team/app:1.2@sha256:5555",
		"(CRI annotation io.kubernetes.cri.image-name, checked against the container's snapshot)",
		"effective    registry.example.com/team/app:1.2@sha256:5555",
		`allowed by allow[0] "registry.example.com/**", deny_latest (tag 1.2), require_digest (pinned by digest)`,
	} {
		if !strings.Contains(out, want) {
			t.Errorf("missing %q in:\n%s", want, out)
		}
	}
}
