package ctl

import (
	"regexp"
	"strings"
	"testing"
)

const doctorConfig = `
[handlers.plain]
backend = "runsc"
[handlers.strict]
backend = "runsc"
policy.seccomp = "runtime-default"
policy.apparmor.profile = "palisade-runsc"
policy.apparmor.required = true
[handlers.optional]
backend = "runsc"
policy.apparmor.profile = "palisade-runsc"
[handlers.kvm]
backend = "runsc"
runsc.platform = "kvm"
`

// rowOf finds the status and detail of the table row that starts with name.
func rowOf(out, name string) (string, string) {
	for _, line := range strings.Split(out, "\n") {
		if strings.HasPrefix(line, name+" ") {
			f := regexp.MustCompile(`\s{2,}`).Split(strings.TrimSpace(line), 3)
			if len(f) == 3 {
				return f[1], f[2]
			}
		}
	}
	return "", ""
}

func TestDoctorHostWithoutAppArmor(t *testing.T) {
	cfg := writeConfig(t, doctorConfig)
	code, out, stderr := runCtl(t, testEnv(t), "doctor", "--config", cfg)
	if code != 1 {
		t.Errorf("status %d, want 1 (strict and kvm cannot run)\n%s%s", code, out, stderr)
	}
	for _, want := range []struct{ row, status, detail string }{
		{"seccomp", "ok", "filter actions: kill_process errno allow"},
		{"apparmor", "missing", "not in this kernel"},
		{"apparmor_parser", "ok", "/sbin/apparmor_parser"},
		{"runsc (runsc)", "ok", "static; runsc version test, spec: 1.2.1"},
		{"kata shim", "missing", "containerd-shim-kata-v2 not found"},
		{"/dev/kvm", "missing", "/dev/kvm missing"},
		{"cgroup", "ok", "v2 (unified)"},
		{"CAP_SYS_RESOURCE", "warn", "restrict_oom_score_adj = true"},
		{"plain (runsc)", "ok", "can run here"},
		{"strict (runsc)", "FAIL", `will fail closed: apparmor profile "palisade-runsc" is required but the host cannot enforce it: AppArmor is not enabled in this kernel (test)`},
		{"optional (runsc)", "warn", `apparmor: optional host profile "palisade-runsc" not attached`},
		{"kvm (runsc)", "FAIL", `runsc.platform = "kvm" needs /dev/kvm`},
	} {
		status, detail := rowOf(out, want.row)
		if status != want.status || !strings.Contains(detail, want.detail) {
			t.Errorf("row %q: %q %q, want %q and %q\n%s", want.row, status, detail, want.status, want.detail, out)
		}
	}
}

func TestDoctorFullHost(t *testing.T) {
	e := testEnv(t)
	e.host = fakeProbeHost(t, hostSpec{seccomp: true, apparmor: true, parser: true, kvm: true, runsc: staticRunsc(t)})
	e.support = fakeSupport(true)
	code, out, _ := runCtl(t, e, "doctor", "--config", writeConfig(t, doctorConfig))
	if code != 0 {
		t.Errorf("status %d on a host with everything\n%s", code, out)
	}
	for _, h := range []string{"plain", "strict", "optional", "kvm"} {
		if status, _ := rowOf(out, h+" (runsc)"); status != "ok" {
			t.Errorf("%s: %q\n%s", h, status, out)
		}
	}
}

func TestDoctorNoRunscNoSeccomp(t *testing.T) {
	e := testEnv(t)
	e.host = fakeProbeHost(t, hostSpec{})
	code, out, _ := runCtl(t, e, "doctor", "--config", writeConfig(t, "[handlers.plain]\nbackend = \"runsc\"\n"))
	if code != 1 {
		t.Errorf("status %d", code)
	}
	if s, d := rowOf(out, "runsc (runsc)"); s != "FAIL" || !strings.Contains(d, "not found") {
		t.Errorf("runsc row %q %q\n%s", s, d, out)
	}
	if !strings.Contains(out, "runsc.binary: runsc: not found") || !strings.Contains(out, "runsc needs seccomp filters in the host kernel") {
		t.Errorf("handler rows:\n%s", out)
	}
}

func TestDoctorBadConfig(t *testing.T) {
	code, out, _ := runCtl(t, testEnv(t), "doctor", "--config", writeConfig(t, "[handlers.x]\nbackend = \"runsc\"\npolicy.secomp = \"x\"\n"))
	if code != 1 || !strings.Contains(out, "HOST CHECK") || !strings.Contains(out, "handlers.x.policy.secomp") {
		t.Errorf("status %d\n%s", code, out)
	}
	// A dynamic runsc named by a handler is found and refused.
	code, out, _ = runCtl(t, testEnv(t), "doctor", "--config", writeConfig(t, "[handlers.x]\nbackend = \"runsc\"\nrunsc.binary = \"/bin/sh\"\n"))
	if code != 1 || !strings.Contains(out, "runsc (/bin/sh)") {
		t.Errorf("status %d\n%s", code, out)
	}
}

func TestDoctorKata(t *testing.T) {
	cfg := writeConfig(t, "[handlers.kata]\nbackend = \"kata\"\n")
	code, out, _ := runCtl(t, testEnv(t), "doctor", "--config", cfg)
	if code != 1 {
		t.Errorf("status %d", code)
	}
	for _, want := range []string{"shim: downstream shim containerd-shim-kata-v2 not found", "Kata needs /dev/kvm: /dev/kvm missing",
		"Kata needs vhost-vsock: /dev/vhost-vsock missing", "fail-closed checks skipped"} {
		if !strings.Contains(out, want) {
			t.Errorf("missing %q:\n%s", want, out)
		}
	}
}
