package apparmor

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

const helperEnv = "PALISADE_TRAMPOLINE_HELPER"

// TestMain lets the test binary act as Palisade's binary does at start-up.
func TestMain(m *testing.M) {
	if os.Getenv(helperEnv) == "1" {
		Trampoline()
		os.Exit(3) // Trampoline returned although the environment asked for it
	}
	os.Exit(m.Run())
}

func TestHostEnabled(t *testing.T) {
	dir := t.TempDir()
	h := Host{EnabledPath: filepath.Join(dir, "enabled")}
	if ok, why := h.Enabled(); ok || !strings.Contains(why, h.EnabledPath) {
		t.Errorf("missing file: enabled=%v, reason %q must name the path", ok, why)
	}
	os.WriteFile(h.EnabledPath, []byte("N\n"), 0o644)
	if ok, why := h.Enabled(); ok || !strings.Contains(why, "disabled") {
		t.Errorf("N: enabled=%v %q", ok, why)
	}
	os.WriteFile(h.EnabledPath, []byte("Y\n"), 0o644)
	if ok, _ := h.Enabled(); !ok {
		t.Error("Y: not enabled")
	}
}

func TestLoaded(t *testing.T) {
	dir := t.TempDir()
	h := Host{ProfilesPath: filepath.Join(dir, "profiles")}
	os.WriteFile(h.ProfilesPath, []byte("docker-default (enforce)\npalisade-runsc (complain)\n"), 0o644)
	for name, want := range map[string]bool{"palisade-runsc": true, "docker-default": true, "palisade": false, "": false} {
		if got, err := h.Loaded(name); err != nil || got != want {
			t.Errorf("Loaded(%q) = %v, %v; want %v", name, got, err, want)
		}
	}
	if err := h.Ensure(context.Background(), "absent", ""); err == nil || !strings.Contains(err.Error(), "names no file") {
		t.Errorf("Ensure of an unloaded profile without a file: %v", err)
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

// TestTrampolineFailsClosedWithoutAppArmor runs the real trampoline (this test
// binary re-executed) on the running kernel. Without AppArmor the kernel
// refuses the exec attribute, and the target must not run.
func TestTrampolineFailsClosedWithoutAppArmor(t *testing.T) {
	if ok, _ := DefaultHost().Enabled(); ok {
		t.Skip("this kernel has AppArmor: the fail-closed path needs a kernel without it (the VM test covers enforcement)")
	}
	marker := filepath.Join(t.TempDir(), "ran")
	// TestMain turns this test binary into the trampoline.
	cmd := exec.Command(os.Args[0], marker)
	cmd.Env = append(os.Environ(), helperEnv+"=1",
		EnvProfile+"=palisade-runsc", EnvTarget+"=/usr/bin/touch")
	out, err := cmd.CombinedOutput()
	if err == nil {
		t.Fatalf("trampoline succeeded on a kernel without AppArmor:\n%s", out)
	}
	if !strings.Contains(string(out), "set AppArmor exec attribute") {
		t.Errorf("error does not say what failed:\n%s", out)
	}
	if _, err := os.Stat(marker); err == nil {
		t.Error("the target ran unconfined")
	}
}

// TestShippedProfileCompiles compiles the profile Palisade ships without
// loading it into the kernel.
func TestShippedProfileCompiles(t *testing.T) {
	parser := lookParser(t)
	out, err := exec.Command(parser, "-Q", "-K", "-o", os.DevNull, "profiles/palisade-runsc").CombinedOutput()
	if err != nil {
		t.Fatalf("apparmor_parser rejects the shipped profile: %v\n%s", err, out)
	}
}

// TestCheckShippedProfile: apparmor_parser -N, as Check runs it, names the
// shipped profile in the shipped file, on a host whose kernel has none.
func TestCheckShippedProfile(t *testing.T) {
	parser := lookParser(t)
	dir := t.TempDir()
	h := Host{ProfilesPath: filepath.Join(dir, "profiles"), Parser: parser}
	os.WriteFile(h.ProfilesPath, nil, 0o644)
	if err := h.Check(context.Background(), "palisade-runsc", "profiles/palisade-runsc"); err != nil {
		t.Errorf("the shipped file and profile: %v", err)
	}
	if err := h.Check(context.Background(), "other", "profiles/palisade-runsc"); err == nil || !strings.Contains(err.Error(), `defines ["palisade-runsc"]`) {
		t.Errorf("a profile the file lacks: %v", err)
	}
}

// lookParser is apparmor_parser's path; without it the test skips, or fails
// where the integration tests are required (CI installs Debian's apparmor).
func lookParser(t *testing.T) string {
	t.Helper()
	parser, err := exec.LookPath("apparmor_parser")
	if err != nil {
		if os.Getenv("PALISADE_INTEGRATION") == "required" {
			t.Fatalf("apparmor_parser is required: %v", err)
		}
		t.Skip("apparmor_parser not installed (Debian package apparmor)")
	}
	return parser
}
