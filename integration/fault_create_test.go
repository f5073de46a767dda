package integration

import (
	"bytes"
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	bootapi "github.com/containerd/containerd/api/runtime/bootstrap/v1"
	taskAPI "github.com/containerd/containerd/api/runtime/task/v3"
	"github.com/containerd/ttrpc"
	"golang.org/x/sys/unix"
	"google.golang.org/protobuf/proto"
)

// Fault tests at Create and at a shim's start (issue 7): a full disk, a
// read-only runtime root, and a shim that containerd started and lost.

// mountTmpfs mounts a tmpfs of size bytes at dir (made if missing) and
// unmounts it at cleanup, before the leak check looks for mounts.
func mountTmpfs(t testing.TB, dir string, size int) {
	t.Helper()
	if err := os.MkdirAll(dir, 0o711); err != nil {
		t.Fatal(err)
	}
	if err := unix.Mount("tmpfs", dir, "tmpfs", 0, fmt.Sprintf("size=%d,mode=0711", size)); err != nil {
		t.Fatalf("mount tmpfs at %s: %v", dir, err)
	}
	t.Cleanup(func() {
		if err := unix.Unmount(dir, unix.MNT_DETACH); err != nil {
			t.Errorf("unmount %s: %v", dir, err)
		}
	})
}

// fillTo writes filler so that the file system of dir has about free bytes
// left, and returns the filler's path.
func fillTo(t testing.TB, dir string, free int64) string {
	t.Helper()
	path := filepath.Join(dir, "filler")
	var st unix.Statfs_t
	if err := unix.Statfs(dir, &st); err != nil {
		t.Fatal(err)
	}
	n := int64(st.Bavail)*st.Bsize - free
	if n <= 0 {
		return path
	}
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_APPEND, 0o600)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if _, err := f.Write(make([]byte, n)); err != nil && !errors.Is(err, unix.ENOSPC) {
		t.Fatal(err)
	}
	return path
}

// TestFaultCreateDiskFull: the file system of the task bundles is full, to
// a varying degree, when a container is created: containerd's own writes
// fail, or the shim's start, or Palisade's enforced spec and decision
// record, or the runtime's state and log. Every `ctr run` that fails must say
// "no space left on device" and leave no task, and containerd must stay
// consistent: the container record deletes, and once there is room a
// container runs. Nothing may leak (leak check).
//
// Each level uses an id of its own. containerd v2.4 leaves running the shim
// it started when it then cannot write shim-binary-path or bootstrap.json
// into the bundle (core/runtime/v2/binary.go, Start), and for bootstrap.json
// also its connection to that shim, whose close later runs containerd's
// dead-shim cleanup for the id, bundle removal included: under the same id
// that would remove the next level's bundle. Those shims are containerd's
// leak, not Palisade's: the test stops them (see stopLeakedShim).
func TestFaultCreateDiskFull(t *testing.T) {
	for _, rt := range palisadeBackends() {
		t.Run(rt.Name, func(t *testing.T) {
			env := startContainerdFor(t, rt, containerdOpts{})
			// containerd makes the namespace's bundle directory on demand; a
			// tmpfs there holds every bundle of this test.
			tasks := filepath.Join(env.StateDir, "io.containerd.runtime.v2.task", env.Namespace)
			mountTmpfs(t, tasks, 1<<20)
			failed, inShim := 0, 0
			for _, free := range []int64{0, 4 << 10, 8 << 10, 16 << 10, 24 << 10, 32 << 10, 48 << 10, 64 << 10, 96 << 10} {
				id := fmt.Sprintf("full-%d", free>>10)
				filler := fillTo(t, tasks, free)
				args := env.runArgs(t, rt, []string{"-d", "--log-uri", "file://" + filepath.Join(env.Dir, id+".log")},
					busyboxRootfs(t), id, []string{"/bin/sleep", "600"})
				res := env.ctr(t, args...)
				if err := os.Remove(filler); err != nil {
					t.Fatal(err)
				}
				tk := &task{env: env, ID: id}
				if res.ExitCode == 0 {
					t.Logf("%3d KiB free: created", free>>10)
					tk.waitStatus(t, "RUNNING", 20*time.Second)
					tk.kill(t, "SIGKILL", false)
					tk.waitStatus(t, "STOPPED", 20*time.Second)
					tk.delete(t)
					continue
				}
				failed++
				if strings.Contains(res.Stderr, "failed to create shim task") {
					inShim++
				}
				t.Logf("%3d KiB free: %s", free>>10, lastLine(res.Stderr))
				if !strings.Contains(res.Stderr, "no space left on device") {
					t.Errorf("%d KiB free: the error does not say the disk is full: %v", free>>10, res)
				}
				if st := tk.status(t); st != "" {
					t.Errorf("%d KiB free: a failed create left a task (%s)", free>>10, st)
					tk.forceRemove(t)
				}
				env.ctrOK(t, "container", "delete", id)
				if strings.Contains(res.Stderr, "shim-binary-path") || strings.Contains(res.Stderr, "bootstrap.json") {
					stopLeakedShim(t, env, id)
				}
			}
			if failed == 0 || inShim == 0 {
				t.Fatalf("%d creates failed, %d of them in the shim's Create: the sweep missed the shim", failed, inShim)
			}
			// Room again: a container runs.
			tk := env.runDetached(t, rt, busyboxRootfs(t), "room", "/bin/sleep", "600")
			tk.waitStatus(t, "RUNNING", 20*time.Second)
			tk.kill(t, "SIGKILL", false)
			tk.waitStatus(t, "STOPPED", 20*time.Second)
			tk.delete(t)
		})
	}
}

// stopLeakedShim removes what containerd left of the shim it started for
// id and then lost (see TestFaultCreateDiskFull), saying so: the shim, if it
// runs, and its socket file, which a shim that died at its own start (its
// bundle gone, so no log FIFO to open) leaves behind.
func stopLeakedShim(t testing.TB, e *containerdEnv, id string) {
	t.Helper()
	out, _ := exec.Command("pgrep", "-f", palisadeShimName+" -namespace "+e.Namespace+" -id "+id+" -address "+e.Address+"( |$)").Output()
	for _, pid := range strings.Fields(string(out)) {
		t.Logf("containerd left the shim it started for %s running (pid %s): stopping it", id, pid)
		n, err := strconv.Atoi(pid)
		if err != nil {
			t.Fatal(err)
		}
		if err := unix.Kill(n, unix.SIGKILL); err != nil && !errors.Is(err, unix.ESRCH) {
			t.Error(err)
		}
	}
	// pkg/shim's CreateSocketAddress: sha256 of address/namespace/id.
	sock := filepath.Join(e.SocketDir, fmt.Sprintf("%x", sha256.Sum256([]byte(filepath.Join(e.Address, e.Namespace, id)))))
	for deadline := time.Now().Add(5 * time.Second); ; time.Sleep(50 * time.Millisecond) {
		c, err := net.Dial("unix", sock)
		if err != nil {
			break
		}
		c.Close()
		if time.Now().After(deadline) {
			t.Fatalf("something still answers on %s", sock)
		}
	}
	if err := os.Remove(sock); err == nil {
		t.Logf("containerd left the socket of the shim it started for %s: removed it", id)
	} else if !errors.Is(err, os.ErrNotExist) {
		t.Error(err)
	}
}

// TestFaultCreateReadOnlyRuntimeRoot: the runtime's state directory (runsc's
// or runc's root) is read-only when a container is created. ctr run must
// fail saying so and leave no task; once it is writable the same id runs.
func TestFaultCreateReadOnlyRuntimeRoot(t *testing.T) {
	for _, rt := range palisadeBackends() {
		t.Run(rt.Name, func(t *testing.T) {
			env := startContainerdFor(t, rt, containerdOpts{})
			root := env.RuntimeRoot
			if err := os.MkdirAll(root, 0o711); err != nil {
				t.Fatal(err)
			}
			if err := unix.Mount(root, root, "", unix.MS_BIND, ""); err != nil {
				t.Fatal(err)
			}
			mounted := true
			unmount := func() {
				if mounted {
					mounted = false
					if err := unix.Unmount(root, unix.MNT_DETACH); err != nil {
						t.Errorf("unmount %s: %v", root, err)
					}
				}
			}
			t.Cleanup(unmount)
			if err := unix.Mount("", root, "", unix.MS_BIND|unix.MS_REMOUNT|unix.MS_RDONLY, ""); err != nil {
				t.Fatal(err)
			}
			const id = "ro"
			args := env.runArgs(t, rt, []string{"-d", "--log-uri", "file://" + filepath.Join(env.Dir, id+".log")},
				busyboxRootfs(t), id, []string{"/bin/sleep", "600"})
			res := env.ctr(t, args...)
			tk := &task{env: env, ID: id}
			t.Cleanup(func() { tk.forceRemove(t) })
			if res.ExitCode == 0 {
				t.Fatalf("ctr run succeeded with a read-only runtime root")
			}
			t.Logf("read-only %s: %s", root, lastLine(res.Stderr))
			if !strings.Contains(res.Stderr, "read-only file system") {
				t.Errorf("the error does not say the runtime's state directory is read-only: %v", res)
			}
			if st := tk.status(t); st != "" {
				t.Errorf("a failed create left a task (%s)", st)
			}
			env.ctrOK(t, "container", "delete", id)

			unmount()
			tk = env.runDetached(t, rt, busyboxRootfs(t), id, "/bin/sleep", "600")
			tk.waitStatus(t, "RUNNING", 20*time.Second)
			tk.kill(t, "SIGKILL", false)
			tk.waitStatus(t, "STOPPED", 20*time.Second)
			tk.delete(t)
		})
	}
}

// startLostShim starts a Palisade shim for container id the way containerd
// does (`start` with bootstrap parameters, in a bundle), then removes that
// bundle: what containerd v2.4 leaves when it cannot write shim-binary-path
// or bootstrap.json after a shim's start (a full disk), a shim serving
// nothing whose working directory is gone. With hung, nothing reads the
// bundle's log FIFO, as when containerd closed its end on that error: the
// daemon then blocks opening it, and never serves on the socket it holds.
// It returns the shim's address.
func startLostShim(t testing.TB, e *containerdEnv, id string, hung bool) string {
	t.Helper()
	bundle := filepath.Join(e.Dir, "lost", id)
	if err := os.MkdirAll(bundle, 0o711); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(bundle, "config.json"), []byte(`{"ociVersion":"1.2.0"}`), 0o644); err != nil {
		t.Fatal(err)
	}
	logPath := filepath.Join(bundle, "log")
	if err := unix.Mkfifo(logPath, 0o600); err != nil {
		t.Fatal(err)
	}
	if !hung {
		logf, err := os.OpenFile(logPath, os.O_RDWR, 0)
		if err != nil {
			t.Fatal(err)
		}
		go func() { _, _ = io.Copy(io.Discard, logf) }()
		t.Cleanup(func() { logf.Close() })
	}

	params, err := proto.Marshal(&bootapi.BootstrapParams{
		InstanceID: id, Namespace: e.Namespace,
		ContainerdGrpcAddress: e.Address, ContainerdTtrpcAddress: e.Address + ".ttrpc",
		SocketDir: &e.SocketDir,
	})
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(filepath.Join(palisadeBinDir(t), palisadeShimName),
		"-namespace", e.Namespace, "-address", e.Address, "-id", id, "start")
	cmd.Dir = bundle
	cmd.Env = append(os.Environ(), "TTRPC_ADDRESS="+e.Address+".ttrpc", "GRPC_ADDRESS="+e.Address, "NAMESPACE="+e.Namespace)
	cmd.Stdin = bytes.NewReader(params)
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("shim start: %v", err)
	}
	var res bootapi.BootstrapResult
	if err := proto.Unmarshal(out, &res); err != nil || res.Address == "" {
		t.Fatalf("shim start answered %q: %v", out, err)
	}
	if hung {
		// Give the daemon time to reach the FIFO and block there.
		time.Sleep(200 * time.Millisecond)
	} else {
		// It answers once it has set up (its log FIFO included): only then
		// may its bundle go.
		conn, err := net.DialTimeout("unix", strings.TrimPrefix(res.Address, "unix://"), 5*time.Second)
		if err != nil {
			t.Fatal(err)
		}
		client := ttrpc.NewClient(conn)
		defer client.Close()
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		if _, err := taskAPI.NewTTRPCTaskClient(client).Connect(ctx, &taskAPI.ConnectRequest{ID: id}); ctx.Err() != nil {
			t.Fatalf("the shim does not answer: %v", err)
		}
	}
	if err := os.RemoveAll(bundle); err != nil {
		t.Fatal(err)
	}
	return res.Address
}

// TestFaultLostShimAtAddress: a shim that containerd started and lost holds
// a container's socket address when containerd creates that container. The
// new container must get a shim of its own (reused, the lost one answered
// "getwd: no such file or directory" to the delegate's Create, or, hung,
// never answered), and the lost shim must go: asked to exit, or killed.
func TestFaultLostShimAtAddress(t *testing.T) {
	for _, rt := range palisadeBackends() {
		for _, hung := range []bool{false, true} {
			name := rt.Name + "/answers"
			if hung {
				name = rt.Name + "/hung"
			}
			t.Run(name, func(t *testing.T) { testLostShim(t, rt, hung) })
		}
	}
}

func testLostShim(t *testing.T, rt runtimeUnderTest, hung bool) {
	env := startContainerdFor(t, rt, containerdOpts{})
	const id = "lost"
	env.useID(id)
	address := startLostShim(t, env, id, hung)
	lost := palisadeShims(t, env)
	if len(lost) != 1 {
		t.Fatalf("want the lost shim running, found %v", lost)
	}
	tk := env.runDetached(t, rt, busyboxRootfs(t), id, "/bin/sleep", "600")
	tk.waitStatus(t, "RUNNING", 20*time.Second)
	now := palisadeShims(t, env)
	if len(now) != 1 || now[0] == lost[0] {
		t.Errorf("shims: %v (the lost one was %v): want one, a new one", now, lost)
	}
	t.Logf("lost shim %v at %s; shims now %v", lost, address, now)
	tk.kill(t, "SIGKILL", false)
	tk.waitStatus(t, "STOPPED", 20*time.Second)
	tk.delete(t)
}
