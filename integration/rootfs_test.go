package integration

import (
	"debug/elf"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

// busyboxRootfs returns a fresh root filesystem holding a static /bin/busybox with
// a hard link for every applet, the mount points OCI runtimes expect, and minimal
// /etc/passwd and /etc/group. Each container needs its own: runc and runsc create
// directories in it. It is removed at cleanup (mounts left in it are reported).
func busyboxRootfs(t testing.TB) string {
	t.Helper()
	busybox, err := exec.LookPath("busybox")
	if err != nil {
		skipOrFatal(t, "busybox not found (apt-get install busybox-static)")
	}
	out, err := exec.Command(busybox, "--list").Output()
	if err != nil {
		t.Fatalf("busybox --list: %v", err)
	}
	// A dynamic busybox would need the host's loader and libraries in the rootfs.
	if dynamic, err := hasInterpreter(busybox); err != nil || dynamic {
		skipOrFatal(t, "%s is not a static executable (install busybox-static): %v", busybox, err)
	}

	dir, err := os.MkdirTemp("/tmp", strings.TrimPrefix(harnessTmpPrefix, "/tmp/")+"rootfs-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { removeTree(t, dir) })
	// Directories are 0755 and the root is 0755 too: MkdirTemp makes it 0700, which
	// a container process running as another user could not traverse.
	for _, d := range []string{".", "bin", "proc", "sys", "dev", "tmp", "etc", "root", "run"} {
		if err := os.MkdirAll(filepath.Join(dir, d), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.Chmod(filepath.Join(dir, d), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.Chmod(filepath.Join(dir, "tmp"), 0o1777); err != nil {
		t.Fatal(err)
	}
	bin := filepath.Join(dir, "bin", "busybox")
	if err := copyFile(busybox, bin, 0o755); err != nil {
		t.Fatal(err)
	}
	for _, applet := range strings.Fields(string(out)) {
		if applet == "busybox" {
			continue
		}
		if err := os.Link(bin, filepath.Join(dir, "bin", applet)); err != nil {
			t.Fatal(err)
		}
	}
	files := map[string]string{
		"etc/passwd": "root:x:0:0:root:/root:/bin/sh\nnobody:x:65534:65534:nobody:/nonexistent:/bin/false\n",
		"etc/group":  "root:x:0:\nnogroup:x:65534:\n",
	}
	for name, content := range files {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	return dir
}

// hasInterpreter reports whether an ELF executable names a dynamic loader.
func hasInterpreter(path string) (bool, error) {
	f, err := elf.Open(path)
	if err != nil {
		return false, err
	}
	defer f.Close()
	return slices.ContainsFunc(f.Progs, func(p *elf.Prog) bool { return p.Type == elf.PT_INTERP }), nil
}

func copyFile(src, dst string, mode os.FileMode) error {
	b, err := os.ReadFile(src)
	if err != nil {
		return err
	}
	return os.WriteFile(dst, b, mode)
}
