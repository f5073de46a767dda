package apparmor

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

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
