package main

import (
	"bufio"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"strings"
	"syscall"

	"golang.org/x/sys/unix"
)

// The escape suite: what an attacker inside a pod would try in order to leave
// it or to gain privilege. Each attempt prints one line,
//
//	escape<TAB>NAME<TAB>RESULT<TAB>DETAIL
//
// where RESULT is "ok" when the attempt got through (the kernel the
// container sees, gVisor's sentry or the host's, let it happen) or the name
// of the errno that stopped it (EPERM, ENOSYS, ...). The last line is
// "escape-done<TAB>N" with N the number of attempts, so that a reader can
// tell a finished run from one cut short. Attempts whose names start with
// "control-" are things any process may do (connect to a socket of its
// own); they show that the probe's mechanics work, so that a denial
// elsewhere is the kernel's and not the probe's.
//
// Attempts that could change the host if they got through (a runc container
// shares the host's kernel) are made harmless: a file under /proc/sys or
// /sys is written with the value it already holds, /proc/sysrq-trigger is
// only opened, a module image is garbage, anything mounted is unmounted.

const (
	// envEscapeSockets lists, comma-separated, ROLE=ADDRESS pairs of unix
	// sockets the probe tries to connect to; ADDRESS is a path, or @name for
	// an abstract socket. The test passes the shim's socket and the names
	// older containerd shims used.
	envEscapeSockets = "PALISADE_ESCAPE_SOCKETS"
	// setuidProbe is a root-owned mode 04755 copy of the probe that the test
	// puts in the rootfs.
	setuidProbe = "/bin/probe-suid"
	// nobody is the unprivileged identity for the attempts that need one.
	nobody = 65534
)

// attempt is one try; run returns nil when the attempt got through.
type attempt struct {
	name string
	run  func() (detail string, err error)
}

func escape() int {
	attempts := escapeAttempts()
	fmt.Printf("info\t%s\n", identity())
	for _, a := range attempts {
		detail, err := a.run()
		fmt.Printf("escape\t%s\t%s\t%s\n", a.name, resultOf(err), oneLine(detail))
	}
	fmt.Printf("escape-done\t%d\n", len(attempts))
	return 0
}

// notGained is the result of an exec that ran but gained nothing: the kernel
// ignores a setuid bit under no_new_privs without failing the exec.
var notGained = errors.New("not-gained")

// resultOf is "ok", or the errno's name; an error that carries no errno
// (the probe's own failure) is printed whole, which the test rejects.
func resultOf(err error) string {
	if err == nil {
		return "ok"
	}
	if errors.Is(err, notGained) {
		return notGained.Error()
	}
	var errno syscall.Errno
	if errors.As(err, &errno) {
		if name := unix.ErrnoName(errno); name != "" {
			return name
		}
		return fmt.Sprintf("errno%d", int(errno))
	}
	return "probe-error:" + oneLine(err.Error())
}

func oneLine(s string) string {
	return strings.Join(strings.Fields(s), " ")
}

// identity is what the probe runs as: ids, effective capabilities,
// no_new_privs and the seccomp mode (gVisor shows Seccomp in status).
func identity() string {
	nnp, _ := unix.PrctlRetInt(unix.PR_GET_NO_NEW_PRIVS, 0, 0, 0, 0)
	seccomp := "?"
	if b, err := os.ReadFile("/proc/self/status"); err == nil {
		for _, line := range strings.Split(string(b), "\n") {
			if v, ok := strings.CutPrefix(line, "Seccomp:"); ok {
				seccomp = strings.TrimSpace(v)
			}
		}
	}
	return fmt.Sprintf("pid=%d uid=%d euid=%d CapEff=%016x NoNewPrivs=%d Seccomp=%s",
		os.Getpid(), os.Getuid(), os.Geteuid(), capEff(), nnp, seccomp)
}

func capEff() uint64 {
	hdr := unix.CapUserHeader{Version: unix.LINUX_CAPABILITY_VERSION_3}
	var data [2]unix.CapUserData
	if err := unix.Capget(&hdr, &data[0]); err != nil {
		return 0
	}
	return uint64(data[0].Effective) | uint64(data[1].Effective)<<32
}

// whoami is what the setuid copy of the probe prints: whether exec gave it
// root's effective uid or any capability.
func whoami() int {
	fmt.Printf("euid=%d CapEff=%016x\n", os.Geteuid(), capEff())
	return 0
}

// hold prints "ready" and waits to be killed: a process to trace.
func hold() int {
	fmt.Println("ready")
	for {
		// Not select{}: with no other goroutine the runtime calls that a
		// deadlock and exits.
		_ = unix.Pause()
	}
}

// connectCmd is `probe connect ADDR...`: one line per address,
// connect<TAB>ADDR<TAB>RESULT.
func connectCmd(addrs []string) int {
	for _, a := range addrs {
		fmt.Printf("connect\t%s\t%s\n", a, resultOf(connectUnix(a)))
	}
	return 0
}

// connectUnix connects a stream socket to a path or, for @name, to an
// abstract name (x/sys turns a leading @ into the leading NUL byte).
func connectUnix(addr string) error {
	fd, err := unix.Socket(unix.AF_UNIX, unix.SOCK_STREAM|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		return err
	}
	defer unix.Close(fd)
	return unix.Connect(fd, &unix.SockaddrUnix{Name: addr})
}

// self is the probe's own path, for re-executing it as a helper child.
func self() string {
	if p, err := os.Executable(); err == nil {
		return p
	}
	return "/bin/probe"
}

// childWith runs /bin/true with attr: namespaces are created by the kernel
// in the child (unshare after fork, or the clone itself), because a Go
// process has threads and unshare(CLONE_NEWUSER) needs a single-threaded
// caller. The child runs busybox, not the probe: after unshare(CLONE_NEWPID)
// a process cannot create threads, which the Go runtime needs. A failure in
// the child comes back with its errno.
func childWith(attr *syscall.SysProcAttr) error {
	cmd := exec.Command("/bin/true")
	cmd.SysProcAttr = attr
	if out, err := cmd.CombinedOutput(); err != nil {
		var errno syscall.Errno
		if errors.As(err, &errno) {
			return err
		}
		return fmt.Errorf("%w: %s", err, out)
	}
	return nil
}

// startHold starts `probe hold`, as uid/gid nobody if asUser, and returns it
// once it runs.
func startHold(asNobody bool) (*exec.Cmd, error) {
	cmd := exec.Command(self(), "hold")
	if asNobody {
		cmd.SysProcAttr = &syscall.SysProcAttr{Credential: &syscall.Credential{Uid: nobody, Gid: nobody, Groups: []uint32{}}}
	}
	out, err := cmd.StdoutPipe()
	if err != nil {
		return nil, err
	}
	if err := cmd.Start(); err != nil {
		return nil, err
	}
	if line, _ := bufio.NewReader(out).ReadString('\n'); line != "ready\n" {
		stopHold(cmd)
		return nil, fmt.Errorf("hold child did not start: %q", line)
	}
	return cmd, nil
}

func stopHold(cmd *exec.Cmd) {
	_ = cmd.Process.Kill()
	_ = cmd.Wait()
}

// main dispatch for the escape helpers; see main.go.
func escapeCommand(args []string) (int, bool) {
	switch args[0] {
	case "escape":
		return escape(), true
	case "connect":
		return connectCmd(args[1:]), true
	case "whoami":
		return whoami(), true
	case "hold":
		return hold(), true
	case "ptrace-attach":
		// Used by the pid 1 attempt: the tracer must be another process.
		var pid int
		if len(args) != 2 {
			return 2, true
		}
		if _, err := fmt.Sscan(args[1], &pid); err != nil {
			return 2, true
		}
		fmt.Println(resultOf(ptraceAttach(pid)))
		return 0, true
	}
	return 0, false
}
