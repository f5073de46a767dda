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
