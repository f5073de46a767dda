package criimages

import (
	"archive/tar"
	"bytes"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
)

func readTar(t *testing.T, b []byte) []*tar.Header {
	t.Helper()
	var hs []*tar.Header
	tr := tar.NewReader(bytes.NewReader(b))
	for {
		h, err := tr.Next()
		if err == io.EOF {
			return hs
		}
		if err != nil {
			t.Fatal(err)
		}
		hs = append(hs, h)
	}
}

// An extractor links a hard link to a file it has already written, and writes
// a file into a directory it has already made: the order is the contract.
func TestTreeTarballOrder(t *testing.T) {
	tr := tree{}
	tr.file("/bin/busybox", []byte("ELF"), 0o755)
	tr.hardlink("/bin/ash", "/bin/busybox") // sorts before its target
	tr.hardlink("/usr/bin/id", "/bin/busybox")
	tr.symlink("/lib64/ld.so", "/lib/ld.so")
	tr.add("/usr/local/bin/nnp", &entry{typ: tar.TypeReg, mode: 0o4755})
	tr.dir("/tmp", 0o1777)
	b, err := tr.tarball()
	if err != nil {
		t.Fatal(err)
	}
	seen := map[string]bool{}
	for _, h := range readTar(t, b) {
		name := strings.TrimSuffix(h.Name, "/")
		if strings.HasPrefix(name, "/") {
			t.Errorf("%s: absolute name", h.Name)
		}
		if d := filepath.Dir(name); d != "." && !seen[d] {
			t.Errorf("%s comes before its directory %s", name, d)
		}
		if h.Typeflag == tar.TypeLink && !seen[h.Linkname] {
			t.Errorf("hard link %s comes before its target %s", name, h.Linkname)
		}
		if !h.ModTime.Equal(epoch) {
			t.Errorf("%s: mtime %v, want the fixed epoch", name, h.ModTime)
		}
		seen[name] = true
		switch name {
		case "bin/ash", "usr/bin/id":
			if h.Typeflag != tar.TypeLink || h.Linkname != "bin/busybox" {
				t.Errorf("%s: %+v", name, h)
			}
		case "usr/local/bin/nnp":
			if h.Mode != 0o4755 {
				t.Errorf("nnp mode %o, want 4755", h.Mode)
			}
		case "tmp":
			if h.Mode != 0o1777 || h.Typeflag != tar.TypeDir {
				t.Errorf("tmp: %+v", h)
			}
		}
	}
	for _, want := range []string{"bin", "lib64/ld.so", "usr/local/bin/nnp", "bin/ash"} {
		if !seen[want] {
			t.Errorf("%s missing", want)
		}
	}
}

func TestTreeHardlinkNeedsTarget(t *testing.T) {
	tr := tree{}
	tr.hardlink("/bin/ls", "/bin/busybox")
	if _, err := tr.tarball(); err == nil {
		t.Error("a hard link to a file outside the layer was accepted")
	}
}

// The pgrep script runs here under the host's sh and grep, against the host's
// /proc: it must find a process by name, and print nothing and fail once it is gone.
func TestPgrepScript(t *testing.T) {
	sleep, err := exec.LookPath("sleep")
	if err != nil {
		t.Skip("no sleep binary")
	}
	dir := t.TempDir()
	script := filepath.Join(dir, "pgrep")
	if err := os.WriteFile(script, []byte(pgrep), 0o755); err != nil {
		t.Fatal(err)
	}
	// A unique process name, so that nothing else on the host matches.
	name := "pgrepprobe" + strconv.Itoa(os.Getpid()%100000)
	bin := filepath.Join(dir, name)
	if b, err := os.ReadFile(sleep); err != nil || os.WriteFile(bin, b, 0o755) != nil {
		t.Skip("cannot copy sleep")
	}
	cmd := exec.Command(bin, "60")
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	out, err := exec.Command(script, "^"+name+"$").Output()
	if err != nil || strings.TrimSpace(string(out)) != strconv.Itoa(cmd.Process.Pid) {
		t.Errorf("pgrep %s: %q, %v; want pid %d", name, out, err, cmd.Process.Pid)
	}
	_ = cmd.Process.Kill()
	_ = cmd.Wait()
	out, err = exec.Command(script, "^"+name+"$").Output()
	if err == nil || len(out) != 0 {
		t.Errorf("pgrep after kill: %q, %v; want no output and exit 1", out, err)
	}
}
