package runsc

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"golang.org/x/sys/unix"
	"gvisor.dev/gvisor/pkg/unet"
	"gvisor.dev/gvisor/pkg/urpc"
)

// containerManager stands in for the sentry's controller of the same name:
// urpc names a method by its receiver's type, so the name is the protocol.
// The real sandbox answers the same call in the integration tests of pod
// containers (TestPodExits and the CRI suites).
type containerManager struct{ status map[string]unix.WaitStatus }

func (m *containerManager) Wait(cid *string, ws *unix.WaitStatus) error {
	st, ok := m.status[*cid]
	if !ok {
		return fmt.Errorf("container %q not found", *cid)
	}
	*ws = st
	return nil
}

// fakeSandbox serves containerManager.Wait on a socket at sock and writes
// a runsc state file naming it for each container in root.
func fakeSandbox(t *testing.T, root, sock string, status map[string]unix.WaitStatus) {
	t.Helper()
	ss, err := unet.BindAndListen(sock, false)
	if err != nil {
		t.Fatal(err)
	}
	srv := urpc.NewServer()
	srv.Register(&containerManager{status: status})
	go func() {
		for {
			c, err := ss.Accept()
			if err != nil {
				return
			}
			srv.StartHandling(c)
		}
	}()
	t.Cleanup(func() { ss.Close(); srv.Stop(0) })
	for id := range status {
		state := fmt.Sprintf(`{"id":%q,"sandbox":{"id":"pod","controlSocketPath":%q}}`, id, sock)
		if err := os.WriteFile(filepath.Join(root, id+"_sandbox:pod.state"), []byte(state), 0o640); err != nil {
			t.Fatal(err)
		}
	}
}

func TestSandboxWait(t *testing.T) {
	root := t.TempDir()
	exited := func(code int) unix.WaitStatus { return unix.WaitStatus(code << 8) }
	fakeSandbox(t, root, filepath.Join(root, "runsc-pod.sock"), map[string]unix.WaitStatus{
		"app":    exited(3),
		"app2":   exited(0),
		"killed": unix.WaitStatus(unix.SIGKILL),
		"termed": unix.WaitStatus(unix.SIGTERM),
	})
	for id, want := range map[string]int{"app": 3, "app2": 0, "killed": 137, "termed": 143} {
		got, err := sandboxWait(root, id)
		if err != nil || got != want {
			t.Errorf("sandboxWait(%s) = %d, %v; want %d", id, got, err, want)
		}
	}
	// No state file of exactly this ID: never a neighbour's by prefix.
	if _, err := sandboxWait(root, "ap"); err == nil || !strings.Contains(err.Error(), "no runsc state of ap") {
		t.Errorf("sandboxWait(ap) = %v; want no state", err)
	}
}

// A socket path too long for a socket address is reached through
// /proc/self/fd, as runsc's own clients do.
func TestSandboxWaitLongSocketPath(t *testing.T) {
	root := t.TempDir()
	dir := filepath.Join(root, strings.Repeat("d", 100))
	if err := os.Mkdir(dir, 0o700); err != nil {
		t.Fatal(err)
	}
	// Bind relative to the directory: the absolute path does not fit.
	t.Chdir(dir)
	fakeSandbox(t, root, "runsc-pod.sock", map[string]unix.WaitStatus{"app": unix.WaitStatus(7 << 8)})
	long := filepath.Join(dir, "runsc-pod.sock")
	state := fmt.Sprintf(`{"id":"app","sandbox":{"controlSocketPath":%q}}`, long)
	if err := os.WriteFile(filepath.Join(root, "app_sandbox:pod.state"), []byte(state), 0o640); err != nil {
		t.Fatal(err)
	}
	if got, err := sandboxWait(root, "app"); err != nil || got != 7 {
		t.Errorf("sandboxWait over %d-byte path = %d, %v; want 7", len(long), got, err)
	}
}

func TestControlSocketBadState(t *testing.T) {
	root := t.TempDir()
	if err := os.WriteFile(filepath.Join(root, "app_sandbox:pod.state"), []byte(`{"sandbox":{}}`), 0o640); err != nil {
		t.Fatal(err)
	}
	if _, err := controlSocket(root, "app"); err == nil || !strings.Contains(err.Error(), "no controlSocketPath") {
		t.Errorf("controlSocket = %v; want no controlSocketPath", err)
	}
}
