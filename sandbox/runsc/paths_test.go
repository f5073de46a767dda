package runsc

import (
	"os"
	"path/filepath"
	"slices"
	"testing"

	specs "github.com/opencontainers/runtime-spec/specs-go"
)

func TestRestrictPaths(t *testing.T) {
	bundle := t.TempDir()
	rootfs := filepath.Join(bundle, "rootfs")
	for _, d := range []string{"bin", "tmp", "etc"} {
		if err := os.MkdirAll(filepath.Join(rootfs, d), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.WriteFile(filepath.Join(rootfs, "bin/ls"), []byte("x"), 0o755); err != nil {
		t.Fatal(err)
	}
	// A symlink that points out of the root filesystem resolves inside it.
	if err := os.Symlink("/../../../etc", filepath.Join(rootfs, "escape")); err != nil {
		t.Fatal(err)
	}
	spec := &specs.Spec{
		Mounts: []specs.Mount{{Destination: "/etc/hosts", Type: "bind", Source: "/x/hosts"}},
		Linux: &specs.Linux{
			MaskedPaths:   []string{"/proc/kcore", "/bin/ls", "/tmp", "/absent", "/etc/hosts"},
			ReadonlyPaths: []string{"/proc/sys", "/escape"},
		},
	}
	notes, err := restrictPaths(spec, bundle, rootfs)
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(spec.Linux.MaskedPaths, []string{"/proc/kcore"}) || !slices.Equal(spec.Linux.ReadonlyPaths, []string{"/proc/sys"}) {
		t.Errorf("gVisor's own /proc and /sys entries must stay, the rest go: masked %v, readonly %v",
			spec.Linux.MaskedPaths, spec.Linux.ReadonlyPaths)
	}
	byDest := map[string]specs.Mount{}
	for _, m := range spec.Mounts {
		byDest[m.Destination] = m
	}
	if m := byDest["/bin/ls"]; m.Type != "bind" || m.Source != filepath.Join(bundle, maskedFile) || !slices.Contains(m.Options, "ro") {
		t.Errorf("masked file: %+v", m)
	}
	if fi, err := os.Stat(filepath.Join(bundle, maskedFile)); err != nil || fi.Mode().Perm() != 0 || fi.Size() != 0 {
		t.Errorf("masking file: %v %v", fi, err)
	}
	if m := byDest["/tmp"]; m.Type != "tmpfs" || !slices.Contains(m.Options, "ro") {
		t.Errorf("masked directory: %+v", m)
	}
	if _, ok := byDest["/absent"]; ok {
		t.Error("an absent path needs no mount")
	}
	if m := byDest["/escape"]; m.Source != filepath.Join(rootfs, "etc") || !slices.Contains(m.Options, "ro") {
		t.Errorf("read-only path through a symlink must stay in the root filesystem: %+v", m)
	}
	if len(notes) != 1 || notes[0] != "maskedPaths /etc/hosts: inside the mount at /etc/hosts: not applied" {
		t.Errorf("notes: %q", notes)
	}
}

func TestApplyPathRestrictionsLeavesCommonSpecsAlone(t *testing.T) {
	bundle := t.TempDir()
	cfg := `{"ociVersion":"1.2.0","root":{"path":"rootfs"},"linux":{"maskedPaths":["/proc/kcore","/sys/firmware"],"readonlyPaths":["/proc/sys"]}}`
	if err := os.WriteFile(filepath.Join(bundle, "config.json"), []byte(cfg), 0o600); err != nil {
		t.Fatal(err)
	}
	bs, data, err := readBundleSpec(bundle)
	if err != nil {
		t.Fatal(err)
	}
	if notes, err := applyPathRestrictions(bundle, "", bs, data); err != nil || notes != nil {
		t.Fatalf("notes %v, err %v", notes, err)
	}
	got, _ := os.ReadFile(filepath.Join(bundle, "config.json"))
	if string(got) != cfg {
		t.Errorf("config.json rewritten for /proc and /sys entries only:\n%s", got)
	}
}
