package trampoline

import (
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

const helperEnv = "PALISADE_TRAMPOLINE_HELPER"

// TestMain lets the test binary act as the trampoline's binary does.
func TestMain(m *testing.M) {
	if os.Getenv(helperEnv) == "1" {
		Main()
		os.Exit(3) // Main returned although the environment asked for it
	}
	os.Exit(m.Run())
}

// helper runs this test binary as the trampoline with args and env.
func helper(args []string, env ...string) *exec.Cmd {
	cmd := exec.Command(os.Args[0], args...)
	cmd.Env = append(os.Environ(), append([]string{helperEnv + "=1"}, env...)...)
	return cmd
}

func TestWithInternalPidFile(t *testing.T) {
	for _, c := range []struct{ in, want []string }{
		{
			in:   []string{"--root", "/r", "--log", "/l", "exec", "--detach", "--pid-file", "/b/e1.pid", "--process", "/tmp/p.json", "c1"},
			want: []string{"--root", "/r", "--log", "/l", "exec", "--internal-pid-file", "/b/e1.pid.internal", "--detach", "--pid-file", "/b/e1.pid", "--process", "/tmp/p.json", "c1"},
		},
		{
			in:   []string{"exec", "--pid-file=/b/e2.pid", "c1"},
			want: []string{"exec", "--internal-pid-file", "/b/e2.pid.internal", "--pid-file=/b/e2.pid", "c1"},
		},
		// Not an exec, or no pid file: unchanged.
		{in: []string{"--root", "/r", "kill", "c1", "9"}, want: []string{"--root", "/r", "kill", "c1", "9"}},
		{in: []string{"exec", "--process", "/p", "c1"}, want: []string{"exec", "--process", "/p", "c1"}},
		{in: []string{"exec", "--pid-file"}, want: []string{"exec", "--pid-file"}},
	} {
		in := slices.Clone(c.in)
		if got := withInternalPidFile(in); !slices.Equal(got, c.want) {
			t.Errorf("withInternalPidFile(%q)\n got %q\nwant %q", c.in, got, c.want)
		}
		if !slices.Equal(in, c.in) {
			t.Errorf("withInternalPidFile changed its input: %q", in)
		}
	}
}

// TestMainRunscExec runs the real trampoline (this test binary re-executed)
// with a stand-in runsc that prints its arguments and environment.
func TestMainRunscExec(t *testing.T) {
	script := filepath.Join(t.TempDir(), "runsc")
	if err := os.WriteFile(script, []byte("#!/bin/sh\necho \"$@\"\nenv\n"), 0o755); err != nil {
		t.Fatal(err)
	}
	out, err := helper([]string{"--root", "/r", "exec", "--pid-file", "/b/e.pid", "c"}, EnvRunscExec+"="+script).CombinedOutput()
	if err != nil {
		t.Fatalf("trampoline: %v\n%s", err, out)
	}
	lines := strings.Split(string(out), "\n")
	if want := "--root /r exec --internal-pid-file /b/e.pid.internal --pid-file /b/e.pid c"; lines[0] != want {
		t.Errorf("runsc ran with %q, want %q", lines[0], want)
	}
	if strings.Contains(string(out), EnvRunscExec+"=") {
		t.Errorf("%s reached runsc:\n%s", EnvRunscExec, out)
	}
}

func TestMainWithoutEnvironmentReturns(t *testing.T) {
	cmd := helper(nil)
	cmd.Env = slices.DeleteFunc(cmd.Env, func(kv string) bool {
		return strings.HasPrefix(kv, EnvRunscExec+"=") || strings.HasPrefix(kv, EnvProfile+"=")
	})
	err := cmd.Run()
	if ee, ok := err.(*exec.ExitError); !ok || ee.ExitCode() != 3 {
		t.Errorf("Main without its environment: %v, want exit status 3 (returned)", err)
	}
}

func TestPathNextTo(t *testing.T) {
	dir := t.TempDir()
	shim := filepath.Join(dir, "containerd-shim-palisade-v2")
	tramp := filepath.Join(dir, Name)
	if got := pathNextTo(shim); got != shim {
		t.Errorf("no trampoline binary: %s, want the shim %s", got, shim)
	}
	os.WriteFile(tramp, nil, 0o644)
	if got := pathNextTo(shim); got != shim {
		t.Errorf("trampoline not executable: %s, want the shim %s", got, shim)
	}
	os.Chmod(tramp, 0o755)
	if got := pathNextTo(shim); got != tramp {
		t.Errorf("executable trampoline: %s, want %s", got, tramp)
	}
	os.Remove(tramp)
	os.Mkdir(tramp, 0o755)
	if got := pathNextTo(shim); got != shim {
		t.Errorf("a directory named %s: %s, want the shim %s", Name, got, shim)
	}
}

func TestSetExecAttrWritesTransition(t *testing.T) {
	dir := t.TempDir()
	attr := filepath.Join(dir, "exec")
	os.WriteFile(attr, nil, 0o644)
	if err := setExecAttr("palisade-runsc", []string{filepath.Join(dir, "absent"), attr}); err != nil {
		t.Fatal(err)
	}
	if b, _ := os.ReadFile(attr); string(b) != "exec palisade-runsc" {
		t.Errorf("attr = %q", b)
	}
	if err := setExecAttr("p", []string{filepath.Join(dir, "absent")}); err == nil {
		t.Error("no writable attribute must be an error")
	}
}

// TestExecAttrPathsAreThreadLocal: the kernel lets a task write only its own
// attribute and keeps the transition per thread, so every path must name the
// calling thread (/proc/self is the thread group leader).
func TestExecAttrPathsAreThreadLocal(t *testing.T) {
	for _, p := range execAttrPaths() {
		if !strings.HasPrefix(p, "/proc/thread-self/") {
			t.Errorf("%s is not the calling thread's attribute", p)
		}
	}
}

func TestExecConfinedRefusesBadInput(t *testing.T) {
	for _, tc := range [][2]string{{"", "/bin/true"}, {"p", ""}, {"a\nb", "/bin/true"}} {
		if err := execConfined(tc[0], tc[1], nil, nil, []string{"/nonexistent"}); err == nil {
			t.Errorf("execConfined(%q, %q) did not refuse", tc[0], tc[1])
		}
	}
}

// appArmorEnabled is sandbox/apparmor's DefaultHost().Enabled(), read here:
// that package imports this one.
func appArmorEnabled() bool {
	b, err := os.ReadFile("/sys/module/apparmor/parameters/enabled")
	return err == nil && strings.TrimSpace(string(b)) == "Y"
}

// TestTrampolineFailsClosedWithoutAppArmor runs the real trampoline (this test
// binary re-executed) on the running kernel. Without AppArmor the kernel
// refuses the exec attribute, and the target must not run: neither a
// confined runtime call nor a confined `runsc exec`.
func TestTrampolineFailsClosedWithoutAppArmor(t *testing.T) {
	if appArmorEnabled() {
		t.Skip("this kernel has AppArmor: the fail-closed path needs a kernel without it (the VM test covers enforcement)")
	}
	for name, env := range map[string][]string{
		"confined":   {EnvProfile + "=palisade-runsc", EnvTarget + "=/usr/bin/touch"},
		"runsc exec": {EnvProfile + "=palisade-runsc", EnvTarget + "=/usr/bin/touch", EnvRunscExec + "=/usr/bin/touch"},
	} {
		marker := filepath.Join(t.TempDir(), "ran")
		out, err := helper([]string{marker}, env...).CombinedOutput()
		if err == nil {
			t.Fatalf("%s: trampoline succeeded on a kernel without AppArmor:\n%s", name, out)
		}
		// integration/apparmorvm's check looks for these words in containerd's log.
		if !strings.Contains(string(out), "palisade: confine") || !strings.Contains(string(out), "set AppArmor exec attribute") {
			t.Errorf("%s: error does not say what failed:\n%s", name, out)
		}
		if _, err := os.Stat(marker); err == nil {
			t.Errorf("%s: the target ran unconfined", name)
		}
	}
}
