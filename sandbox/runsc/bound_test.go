package runsc

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"golang.org/x/sys/unix"
)

func TestLastRuntimeError(t *testing.T) {
	path := filepath.Join(t.TempDir(), "log.json")
	if got := lastRuntimeError(path); got != "" {
		t.Errorf("no log file: %q", got)
	}
	log := `{"level":"error","msg":"old"}
not json
{"level":"info","msg":"starting"}
{"level":"error","msg":"creating container: cannot mount"}
{"level":"debug","msg":"done"}
`
	if err := os.WriteFile(path, []byte(log), 0o644); err != nil {
		t.Fatal(err)
	}
	if got, want := lastRuntimeError(path), ": creating container: cannot mount"; got != want {
		t.Errorf("lastRuntimeError = %q, want %q", got, want)
	}
}

func TestWithDiskFull(t *testing.T) {
	err := errors.New("runsc create: exit status 128")
	if got := withDiskFull(t.TempDir(), err); got != err {
		t.Errorf("a file system with room: %v, want the error as it was", got)
	}
	full := fmt.Errorf("write x: %w", unix.ENOSPC)
	if got := withDiskFull(t.TempDir(), full); got != full {
		t.Errorf("an error that says so already: %v", got)
	}
	if os.Geteuid() != 0 {
		t.Skip("mounting a full tmpfs needs root")
	}
	dir := t.TempDir()
	if err := unix.Mount("tmpfs", dir, "tmpfs", 0, "size=4k"); err != nil {
		t.Skipf("mount tmpfs: %v", err)
	}
	defer unix.Unmount(dir, unix.MNT_DETACH)
	if err := os.WriteFile(filepath.Join(dir, "fill"), make([]byte, 8<<10), 0o600); !errors.Is(err, unix.ENOSPC) {
		t.Fatalf("filling a 4k tmpfs: %v", err)
	}
	got := withDiskFull(dir, err)
	if !errors.Is(got, err) || !strings.Contains(got.Error(), "file system is full") {
		t.Errorf("a full file system: %v", got)
	}
}
