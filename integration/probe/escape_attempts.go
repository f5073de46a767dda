package main

import (
	"errors"
	"fmt"
	"os"
	"os/exec"
	"runtime"
	"strconv"
	"strings"
	"syscall"
	"unsafe"

	"golang.org/x/sys/unix"
)

// mountTarget exists in the test rootfs; it is only ever a mount point.
const mountTarget = "/mnt"

// escapeAttempts is the suite, in the order it runs.
func escapeAttempts() []attempt {
	var as []attempt
	// Namespaces: unshare(2) of each type, in a fresh child (see childWith).
	for _, ns := range []struct {
		name string
		flag uintptr
	}{
		{"user", unix.CLONE_NEWUSER}, {"mnt", unix.CLONE_NEWNS}, {"net", unix.CLONE_NEWNET},
		{"pid", unix.CLONE_NEWPID}, {"ipc", unix.CLONE_NEWIPC}, {"uts", unix.CLONE_NEWUTS},
		{"cgroup", unix.CLONE_NEWCGROUP}, {"time", unix.CLONE_NEWTIME},
	} {
		as = append(as, attempt{"unshare-" + ns.name, func() (string, error) {
			return "", childWith(&syscall.SysProcAttr{Unshareflags: ns.flag})
		}})
	}
	// The same through clone(2) (seccomp filters its flags argument), and
	// clone3(2), which Go uses for CLONE_NEWTIME.
	as = append(as,
		attempt{"clone-newuser", func() (string, error) {
			return "", childWith(&syscall.SysProcAttr{Cloneflags: unix.CLONE_NEWUSER})
		}},
		attempt{"clone-newns", func() (string, error) {
			return "", childWith(&syscall.SysProcAttr{Cloneflags: unix.CLONE_NEWNS})
		}},
		attempt{"clone3-newtime", func() (string, error) {
			return "", childWith(&syscall.SysProcAttr{Cloneflags: unix.CLONE_NEWTIME})
		}},
	)

	// Mounts.
	as = append(as,
		attempt{"mount-tmpfs", func() (string, error) { return mountAt("tmpfs", mountTarget, "tmpfs", 0, "size=1m") }},
		attempt{"mount-proc", func() (string, error) { return mountAt("proc", mountTarget, "proc", 0, "") }},
		attempt{"mount-bind-root", func() (string, error) { return mountAt("/", mountTarget, "", unix.MS_BIND|unix.MS_REC, "") }},
		attempt{"mount-cgroup-v1", func() (string, error) {
			// The release_agent escape starts by mounting a v1 hierarchy.
			return mountAt("cgroup", mountTarget, "cgroup", 0, "memory")
		}},
		attempt{"remount-root-rw", func() (string, error) {
			// The rootfs is read-only; a bind remount without MS_RDONLY
			// would make it writable.
			return "", unix.Mount("", "/", "", unix.MS_REMOUNT|unix.MS_BIND, "")
		}},
		attempt{"umount-masked-proc-kcore", func() (string, error) {
			return "", unix.Unmount("/proc/kcore", unix.MNT_DETACH)
		}},
		attempt{"fsopen-tmpfs", func() (string, error) { return closeFD(unix.Fsopen("tmpfs", unix.FSOPEN_CLOEXEC)) }},
		attempt{"open_tree-clone-root", func() (string, error) {
			return closeFD(unix.OpenTree(unix.AT_FDCWD, "/", unix.OPEN_TREE_CLONE|unix.OPEN_TREE_CLOEXEC))
		}},
		attempt{"chroot", func() (string, error) {
			return "", childWith(&syscall.SysProcAttr{Chroot: "/"})
		}},
		attempt{"sethostname", func() (string, error) {
			h, err := os.Hostname()
			if err != nil {
				return "", err
			}
			return "", unix.Sethostname([]byte(h))
		}},
	)

	// ptrace: of one's own child, of pid 1, and of a child of another uid
	// (which needs CAP_SYS_PTRACE). pid 1 goes before any child is started
	// with other credentials: Go starts children with CLONE_VM, and a
	// child's setuid before exec makes the shared mm, and so the probe,
	// non-dumpable, which alone would stop a trace of the probe.
	as = append(as,
		attempt{"ptrace-own-child-same-uid", func() (string, error) { return traceHold(false) }},
		attempt{"ptrace-pid1", tracePid1},
		attempt{"ptrace-child-other-uid", func() (string, error) { return traceHold(true) }},
	)

	// Kernel interfaces a container has no business with.
	as = append(as,
		attempt{"add_key", func() (string, error) {
			id, err := unix.AddKey("user", "palisade-probe", []byte("x"), unix.KEY_SPEC_PROCESS_KEYRING)
			return fmt.Sprintf("key %d", id), err
		}},
		attempt{"keyctl-join-session-keyring", func() (string, error) {
			id, err := unix.KeyctlJoinSessionKeyring("palisade-probe")
			return fmt.Sprintf("keyring %d", id), err
		}},
		attempt{"bpf-prog-load", bpfProgLoad},
		attempt{"perf_event_open", func() (string, error) {
			attr := unix.PerfEventAttr{
				Type:   unix.PERF_TYPE_SOFTWARE,
				Config: unix.PERF_COUNT_SW_CPU_CLOCK,
				Size:   uint32(unsafe.Sizeof(unix.PerfEventAttr{})),
				Bits:   unix.PerfBitDisabled | unix.PerfBitExcludeKernel | unix.PerfBitExcludeHv,
			}
			return closeFD(unix.PerfEventOpen(&attr, 0, -1, -1, unix.PERF_FLAG_FD_CLOEXEC))
		}},
		attempt{"init_module", func() (string, error) {
			return moduleResult(unix.InitModule([]byte("palisade probe: not a module"), ""))
		}},
		attempt{"finit_module", func() (string, error) {
			f, err := os.Open(self())
			if err != nil {
				return "", err
			}
			defer f.Close()
			return moduleResult(unix.FinitModule(int(f.Fd()), "", 0))
		}},
		attempt{"open_by_handle_at", openByHandle},
		attempt{"mknod-block-device", func() (string, error) {
			const path = "/tmp/probe-sda"
			err := unix.Mknod(path, unix.S_IFBLK|0o600, int(unix.Mkdev(8, 0)))
			if err == nil {
				_ = os.Remove(path)
			}
			return "8:0", err
		}},
	)

	// Raw and packet sockets (CAP_NET_RAW).
	as = append(as,
		attempt{"socket-raw-icmp", func() (string, error) {
			return closeFD(unix.Socket(unix.AF_INET, unix.SOCK_RAW|unix.SOCK_CLOEXEC, unix.IPPROTO_ICMP))
		}},
		attempt{"socket-packet", func() (string, error) {
			return closeFD(unix.Socket(unix.AF_PACKET, unix.SOCK_RAW|unix.SOCK_CLOEXEC, int(htons(unix.ETH_P_ALL))))
		}},
	)

	// Own capabilities.
	as = append(as,
		attempt{"capset-raise-sys_admin", func() (string, error) {
			hdr := unix.CapUserHeader{Version: unix.LINUX_CAPABILITY_VERSION_3}
			var data [2]unix.CapUserData
			if err := unix.Capget(&hdr, &data[0]); err != nil {
				return "capget", err
			}
			data[0].Effective |= 1 << unix.CAP_SYS_ADMIN
			data[0].Permitted |= 1 << unix.CAP_SYS_ADMIN
			return "", unix.Capset(&hdr, &data[0])
		}},
		attempt{"ambient-raise-sys_admin", func() (string, error) {
			return "", unix.Prctl(unix.PR_CAP_AMBIENT, unix.PR_CAP_AMBIENT_RAISE, unix.CAP_SYS_ADMIN, 0, 0)
		}},
		attempt{"setuid-root-binary", setuidExec},
	)

	// Host tunables, each written with the value it holds.
	for _, p := range []string{"/proc/sys/kernel/core_pattern", "/proc/sys/kernel/modprobe",
		"/proc/sys/vm/panic_on_oom", "/proc/sys/kernel/yama/ptrace_scope", "/sys/kernel/uevent_helper",
		"/sys/kernel/mm/transparent_hugepage/khugepaged/defrag"} {
		as = append(as, attempt{"write-" + p, func() (string, error) { return "", writeBack(p) }})
	}
	as = append(as, attempt{"write-/proc/sysrq-trigger", func() (string, error) {
		// 'h' only prints the sysrq help to the kernel log.
		f, err := os.OpenFile("/proc/sysrq-trigger", os.O_WRONLY, 0)
		if err != nil {
			return "open", err
		}
		defer f.Close()
		_, err = f.Write([]byte("h"))
		return "write h", err
	}})

	as = append(as, hostAttempts()...)

	// The shim's socket and its relatives, by path and by abstract name,
	// given as ROLE=ADDRESS so that attempts keep their names across runs.
	as = append(as, attempt{"control-connect-own-socket", ownSocket})
	for _, kv := range strings.Split(os.Getenv(envEscapeSockets), ",") {
		if role, addr, ok := strings.Cut(strings.TrimSpace(kv), "="); ok {
			as = append(as, attempt{"connect-" + role, func() (string, error) { return addr, connectUnix(addr) }})
		}
	}
	return as
}

// mountAt mounts and, if that worked, unmounts again at once.
func mountAt(src, target, fstype string, flags uintptr, data string) (string, error) {
	if err := unix.Mount(src, target, fstype, flags, data); err != nil {
		return "", err
	}
	_ = unix.Unmount(target, unix.MNT_DETACH)
	return "mounted, then unmounted", nil
}

func closeFD(fd int, err error) (string, error) {
	if err == nil {
		unix.Close(fd)
		return "got fd", nil
	}
	return "", err
}

// moduleResult: a garbage image gets past the permission checks before it is
// parsed, so anything but EPERM (or ENOSYS, not implemented) means the
// caller could have loaded a real module.
func moduleResult(err error) (string, error) {
	if err == nil || errors.Is(err, unix.EPERM) || errors.Is(err, unix.ENOSYS) {
		return "", err
	}
	return "permission check passed, image rejected: " + err.Error(), nil
}

// ptraceAttach attaches to pid and detaches again. ptrace requests must come
// from the thread that attached.
func ptraceAttach(pid int) error {
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	if err := unix.PtraceAttach(pid); err != nil {
		return err
	}
	var ws unix.WaitStatus
	_, _ = unix.Wait4(pid, &ws, unix.WALL, nil)
	_ = unix.PtraceDetach(pid)
	return nil
}

// traceHold attaches to a child, running as nobody when otherUID.
func traceHold(otherUID bool) (string, error) {
	cmd, err := startHold(otherUID)
	if err != nil {
		return "", err
	}
	defer stopHold(cmd)
	return fmt.Sprintf("child pid %d", cmd.Process.Pid), ptraceAttach(cmd.Process.Pid)
}

// tracePid1 attaches to the container's pid 1 from another process: the
// probe is usually pid 1 itself, so a child of it, with the same
// credentials, is the tracer.
func tracePid1() (string, error) {
	if os.Getpid() != 1 {
		return "from the probe", ptraceAttach(1)
	}
	out, err := exec.Command(self(), "ptrace-attach", "1").Output()
	if err != nil {
		return "", err
	}
	res := strings.TrimSpace(string(out))
	if res == "ok" {
		return "from a child of pid 1", nil
	}
	for e := syscall.Errno(1); e < 256; e++ {
		if unix.ErrnoName(e) == res {
			return "from a child of pid 1", e
		}
	}
	return "", fmt.Errorf("ptrace-attach child said %q", res)
}

// bpfProgLoad loads the smallest socket filter: r0 = 0; exit.
func bpfProgLoad() (string, error) {
	insns := []uint64{0xb7, 0x95} // BPF_ALU64|BPF_MOV|BPF_K r0=0; BPF_JMP|BPF_EXIT
	license := []byte("GPL\x00")
	var attr struct {
		progType, insnCnt uint32
		insns, license    uint64
		logLevel, logSize uint32
		logBuf            uint64
		kernVersion       uint32
		progFlags         uint32
		_                 [80]byte
	}
	attr.progType = 1 // BPF_PROG_TYPE_SOCKET_FILTER
	attr.insnCnt = uint32(len(insns))
	attr.insns = uint64(uintptr(unsafe.Pointer(&insns[0])))
	attr.license = uint64(uintptr(unsafe.Pointer(&license[0])))
	fd, _, errno := unix.Syscall(unix.SYS_BPF, unix.BPF_PROG_LOAD, uintptr(unsafe.Pointer(&attr)), unsafe.Sizeof(attr))
	runtime.KeepAlive(insns)
	runtime.KeepAlive(license)
	if errno != 0 {
		return "", errno
	}
	unix.Close(int(fd))
	return "socket filter loaded", nil
}

// openByHandle is the "shocker" escape: with CAP_DAC_READ_SEARCH a file
// handle opens any inode of the filesystem, even outside the container's
// root. The handle is made up (inode 2), so anything but a permission error
// means the check was passed.
func openByHandle() (string, error) {
	root, err := unix.Open("/", unix.O_RDONLY|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
	if err != nil {
		return "", err
	}
	defer unix.Close(root)
	h := unix.NewFileHandle(1, []byte{2, 0, 0, 0, 0, 0, 0, 0}) // FILEID_INO32_GEN, inode 2
	fd, err := unix.OpenByHandleAt(root, h, unix.O_RDONLY|unix.O_CLOEXEC)
	switch {
	case err == nil:
		unix.Close(fd)
		return "opened inode 2", nil
	case errors.Is(err, unix.EPERM), errors.Is(err, unix.EACCES), errors.Is(err, unix.ENOSYS), errors.Is(err, unix.EOPNOTSUPP):
		return "", err
	}
	return "permission check passed, handle rejected: " + err.Error(), nil
}

// setuidExec runs the setuid-root copy of the probe as nobody; the attempt
// got through if the new image runs with euid 0 or any capability.
func setuidExec() (string, error) {
	st, err := os.Stat(setuidProbe)
	if err != nil {
		return "", err
	}
	if st.Mode()&os.ModeSetuid == 0 {
		return "", fmt.Errorf("%s is not setuid (mode %v)", setuidProbe, st.Mode())
	}
	cmd := exec.Command(setuidProbe, "whoami")
	cmd.SysProcAttr = &syscall.SysProcAttr{Credential: &syscall.Credential{Uid: nobody, Gid: nobody, Groups: []uint32{}}}
	out, err := cmd.Output()
	if err != nil {
		return "", err
	}
	line := strings.TrimSpace(string(out))
	var euid int
	var caps uint64
	if _, err := fmt.Sscanf(line, "euid=%d CapEff=%x", &euid, &caps); err != nil {
		return "", fmt.Errorf("whoami said %q: %w", line, err)
	}
	if euid == 0 || caps != 0 {
		return "as uid " + strconv.Itoa(nobody) + ": " + line, nil
	}
	return "as uid " + strconv.Itoa(nobody) + ": " + line, notGained
}

// writeBack opens a tunable for writing and writes what it holds.
func writeBack(path string) error {
	old, err := os.ReadFile(path)
	if err != nil && !errors.Is(err, os.ErrPermission) {
		return err
	}
	f, err := os.OpenFile(path, os.O_WRONLY, 0)
	if err != nil {
		return err
	}
	defer f.Close()
	if len(old) == 0 {
		old = []byte("\n")
	}
	_, err = f.Write(old)
	return err
}

// ownSocket listens on a socket of its own and connects to it.
func ownSocket() (string, error) {
	addr := fmt.Sprintf("@palisade-probe-%d", os.Getpid())
	fd, err := unix.Socket(unix.AF_UNIX, unix.SOCK_STREAM|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		return "", err
	}
	defer unix.Close(fd)
	if err := unix.Bind(fd, &unix.SockaddrUnix{Name: addr}); err != nil {
		return "bind", err
	}
	if err := unix.Listen(fd, 1); err != nil {
		return "listen", err
	}
	return addr, connectUnix(addr)
}

func htons(v uint16) uint16 { return v<<8 | v>>8 }
