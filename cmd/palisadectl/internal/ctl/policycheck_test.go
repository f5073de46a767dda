package ctl

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestPolicyCheck(t *testing.T) {
	dir := t.TempDir()
	profile := filepath.Join(dir, "profile.json")
	if err := os.WriteFile(profile, []byte(`{"defaultAction":"SCMP_ACT_ERRNO","syscalls":[{"names":["read"],"action":"SCMP_ACT_ALLOW"}]}`), 0o644); err != nil {
		t.Fatal(err)
	}
	good := "[handlers.a]\nbackend = \"runsc\"\npolicy.seccomp = \"" + profile + "\"\n" +
		"[handlers.b]\nbackend = \"runsc\"\npolicy.seccomp = \"runtime-default\"\n"
	code, out, stderr := runCtl(t, env{}, "policy", "check", writeConfig(t, good))
	if code != 0 || out != "a  OK\nb  OK\n" {
		t.Errorf("good config: %d\n%s%s", code, out, stderr)
	}

	bad := `default_handler = "nope"
colour = "blue"
kubelet_root_dir = "var/lib/kubelet"
[handlers.ok]
backend = "runsc"
[handlers.typo]
backend = "runsc"
policy.secomp = "runtime-default"
[handlers.cap]
backend = "runsc"
policy.capabilities.ceiling = ["CAP_CHOWN", "CAP_FOO"]
[handlers.profile]
backend = "runsc"
policy.seccomp = "` + filepath.Join(dir, "missing.json") + `"
[handlers.rc]
backend = "runsc"
runtimeclass.overhead_memory = "40MB"
[handlers.spec]
backend = "runsc"
policy.privileged = "allow"
policy.host_namespaces = ["network", "mount"]
policy.host_paths = ["/data", "/var/lib"]
policy.service_account_token = "hide"
policy.devices = ["/tmp/x"]
policy.sysctls = ["kernel.panic"]
policy.host_path_read_only = true
[handlers.spec2]
backend = "runsc"
policy.privileged = "allow"
[handlers.img]
backend = "runsc"
policy.images.allow = ["registry.example.com/**", "nginx:1.25"]
[handlers.img2]
backend = "runsc"
policy.images.deny_lastest = true
`
	code, out, _ = runCtl(t, env{}, "policy", "check", writeConfig(t, bad))
	if code != 1 {
		t.Errorf("bad config: status %d", code)
	}
	for _, want := range []string{
		"(top level)      error: unknown key(s) colour\n",
		"default_handler  error: default_handler: no handler named \"nope\"\n",
		"cap              error: handlers.cap.policy.capabilities.ceiling[1]: unknown capability \"CAP_FOO\"",
		"ok               OK\n",
		"profile          error: handlers.profile.policy.seccomp: open " + filepath.Join(dir, "missing.json") + ": no such file or directory\n",
		"rc               error: handlers.rc.runtimeclass.overhead_memory: \"40MB\" is not a Kubernetes quantity",
		"typo             error: unknown key(s) handlers.typo.policy.secomp\n",
		"(top level)      error: kubelet_root_dir: \"var/lib/kubelet\" is not a clean absolute directory other than /\n",
		"spec             error: unknown key(s) handlers.spec.policy.host_path_read_only\n",
		"spec2            error: handlers.spec2.policy.privileged: \"allow\" is not \"clamp\" or \"refuse\"\n",
		"img              error: handlers.img.policy.images.allow[1]: \"nginx:1.25\": want registry/path[:tag]",
		"img2             error: unknown key(s) handlers.img2.policy.images.deny_lastest\n",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("missing %q in:\n%s", want, out)
		}
	}

	for _, tc := range []struct{ body, want string }{
		{"[handlers.x\n", "line 1"},
		{"default_handler = \"x\"\n", "handlers: no handler defined"},
		{"[handlers.x]\nbackend = 3\n", "line 2 column 11"},
	} {
		path := writeConfig(t, tc.body)
		code, out, _ := runCtl(t, env{}, "policy", "check", path)
		if code != 1 || !strings.HasPrefix(out, path+": ") || !strings.Contains(out, tc.want) {
			t.Errorf("%q: %d %q, want %q", tc.body, code, out, tc.want)
		}
	}
	if code, out, _ := runCtl(t, env{}, "policy", "check", filepath.Join(dir, "none.toml")); code != 1 || !strings.Contains(out, "no such file") {
		t.Errorf("missing file: %d %q", code, out)
	}
}

// TestPolicyCheckWholeSpecKeys: every key of the whole-spec floor is
// checked, and each error names its key.
func TestPolicyCheckWholeSpecKeys(t *testing.T) {
	cfg := `[handlers.spec]
backend = "runsc"
policy.privileged = "allow"
policy.host_namespaces = ["network", "mount"]
policy.host_paths = ["/data", "/var/lib", "data"]
policy.service_account_token = "hide"
policy.devices = ["/tmp/x"]
policy.sysctls = ["kernel.panic", "net.ipv4.*"]
`
	code, out, _ := runCtl(t, env{}, "policy", "check", writeConfig(t, cfg))
	if code != 1 {
		t.Errorf("status %d", code)
	}
	for _, want := range []string{
		`handlers.spec.policy.privileged: "allow" is not "clamp" or "refuse"`,
		`policy.host_namespaces[1]: "mount" is not one of`,
		`policy.host_paths[1]: "/var/lib": host path "/var/lib" holds /var/lib/docker, on the fixed deny list`,
		`policy.host_paths[2]: "data": not an absolute path`,
		`policy.service_account_token: "hide" is not "allow", "strip" or "refuse"`,
		`policy.devices[0]: "/tmp/x" is not a clean absolute path under /dev/`,
		`policy.sysctls[0]: "kernel.panic" is not a namespaced sysctl`,
	} {
		if !strings.Contains(out, want) {
			t.Errorf("missing %q in:\n%s", want, out)
		}
	}
	if strings.Contains(out, "net.ipv4.*") {
		t.Errorf("a valid sysctl prefix was reported:\n%s", out)
	}
}
