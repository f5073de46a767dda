package monitor

import (
	"encoding/binary"
	"net/netip"
	"path"
	"strconv"
	"strings"

	"google.golang.org/protobuf/proto"
	pb "gvisor.dev/gvisor/pkg/sentry/seccheck/points/points_go_proto"

	"github.com/palisade-runtime/palisade/sandbox/monitor/rules"
)

// Bounds on what one event carries into rules and alerts: the sandbox
// chooses argv and paths, and an alert line should stay a line.
const (
	maxArgs   = 64
	maxString = 4096
)

// Open flags (Linux, every architecture gVisor runs on).
const (
	oAccMode = 0x3
	oRdOnly  = 0x0
	oWrOnly  = 0x1
	oRdWr    = 0x2
	oCreat   = 0x40
	oTrunc   = 0x200
	atFdCwd  = -100
)

// toEvent flattens a decoded point into the fields rules see. Fields the
// point does not carry stay zero. The container's pod metadata is filled in
// later, by the container id.
func toEvent(msg proto.Message) rules.Event {
	var e rules.Event
	e.Evt.Dir = "<"
	e.Evt.Arg.UID, e.Evt.Arg.GID = -1, -1
	var exit *pb.Exit
	switch m := msg.(type) {
	case *pb.Start:
		setContext(&e, m.GetContextData())
		e.Evt.Type = "container_start"
		setArgv(&e, m.GetArgs())
		e.Proc.Cwd = bound(m.GetCwd())
		e.Proc.Tty = m.GetTerminal()
		if id := m.GetId(); id != "" {
			e.Container.ID = bound(id)
		}
	case *pb.CloneInfo:
		setContext(&e, m.GetContextData())
		e.Evt.Type = "sentry_clone"
	case *pb.ExecveInfo:
		setContext(&e, m.GetContextData())
		e.Evt.Type = "sentry_execve"
		e.Proc.Exepath = bound(m.GetBinaryPath())
		// The context's process name is the one before the exec. The new
		// one is argv[0]'s base name, as Falco's proc.name (comm) would be
		// for a program run by its name: the sentry reports the binary's
		// path resolved (a busybox applet's is /bin/busybox; busybox's
		// shell runs applets through /proc/self/exe, reported as /bin/sh).
		e.Proc.Name = ""
		if len(m.GetArgv()) == 0 && e.Proc.Exepath != "" {
			e.Proc.Name = path.Base(e.Proc.Exepath)
		}
		setArgv(&e, m.GetArgv())
	case *pb.ExitNotifyParentInfo:
		setContext(&e, m.GetContextData())
		e.Evt.Type = "sentry_exit_notify_parent"
		e.Evt.Res = int64(m.GetExitStatus())
	case *pb.TaskExit:
		setContext(&e, m.GetContextData())
		e.Evt.Type = "sentry_task_exit"
		e.Evt.Res = int64(m.GetExitStatus())
	case *pb.Open:
		setContext(&e, m.GetContextData())
		setSyscall(&e, m.GetSysno(), "open")
		exit = m.GetExit()
		setPath(&e, resolve(m.GetPathname(), m.GetFd(), m.GetFdPath(), e.Proc.Cwd))
		flags := m.GetFlags()
		e.Evt.Arg.Flags = int64(flags)
		acc := flags & oAccMode
		e.Evt.IsOpenRead = acc == oRdOnly || acc == oRdWr
		e.Evt.IsOpenWrite = acc == oWrOnly || acc == oRdWr || flags&(oCreat|oTrunc) != 0 || e.Evt.Type == "creat"
		// creat is open(O_CREAT|O_WRONLY|O_TRUNC).
		e.Evt.IsOpenTrunc = flags&oTrunc != 0 || e.Evt.Type == "creat"
	case *pb.Execve:
		setContext(&e, m.GetContextData())
		setSyscall(&e, m.GetSysno(), "execve")
		exit = m.GetExit()
		setPath(&e, resolve(m.GetPathname(), m.GetFd(), m.GetFdPath(), e.Proc.Cwd))
		e.Evt.Arg.Flags = int64(m.GetFlags())
		e.Proc.Exepath = e.Fd.Name
		setArgv(&e, m.GetArgv())
	case *pb.Connect:
		setContext(&e, m.GetContextData())
		setSyscall(&e, m.GetSysno(), "connect")
		exit = m.GetExit()
		setAddress(&e, m.GetAddress())
	case *pb.Bind:
		setContext(&e, m.GetContextData())
		setSyscall(&e, m.GetSysno(), "bind")
		exit = m.GetExit()
		setAddress(&e, m.GetAddress())
	case *pb.Accept:
		setContext(&e, m.GetContextData())
		setSyscall(&e, m.GetSysno(), "accept")
		exit = m.GetExit()
		setAddress(&e, m.GetAddress())
		e.Evt.Arg.Flags = int64(m.GetFlags())
	case *pb.Socket:
		setContext(&e, m.GetContextData())
		setSyscall(&e, m.GetSysno(), "socket")
		exit = m.GetExit()
		e.Evt.Arg.Domain, e.Evt.Arg.Type, e.Evt.Arg.Protocol = int64(m.GetDomain()), int64(m.GetType()), int64(m.GetProtocol())
		e.Fd.SockFamily = family(uint16(m.GetDomain()))
	case *pb.Setid:
		setContext(&e, m.GetContextData())
		setSyscall(&e, m.GetSysno(), "setuid")
		exit = m.GetExit()
		if strings.Contains(e.Evt.Type, "gid") {
			e.Evt.Arg.GID = int64(m.GetId())
		} else {
			e.Evt.Arg.UID = int64(m.GetId())
		}
	case *pb.Setresid:
		setContext(&e, m.GetContextData())
		setSyscall(&e, m.GetSysno(), "setresuid")
		exit = m.GetExit()
		// The effective id is what a process becomes; -1 (unchanged) is
		// 0xffffffff on the wire.
		id := int64(int32(m.GetEid()))
		if strings.Contains(e.Evt.Type, "gid") {
			e.Evt.Arg.GID = id
		} else {
			e.Evt.Arg.UID = id
		}
	case *pb.Chroot:
		setContext(&e, m.GetContextData())
		setSyscall(&e, m.GetSysno(), "chroot")
		exit = m.GetExit()
		setPath(&e, resolve(m.GetPathname(), atFdCwd, "", e.Proc.Cwd))
	case *pb.Chdir:
		setContext(&e, m.GetContextData())
		setSyscall(&e, m.GetSysno(), "chdir")
		exit = m.GetExit()
		setPath(&e, resolve(m.GetPathname(), m.GetFd(), m.GetFdPath(), e.Proc.Cwd))
	case *pb.Clone:
		setContext(&e, m.GetContextData())
		setSyscall(&e, m.GetSysno(), "clone")
		exit = m.GetExit()
		e.Evt.Arg.Flags = int64(m.GetFlags())
	case *pb.Fork:
		setContext(&e, m.GetContextData())
		setSyscall(&e, m.GetSysno(), "fork")
		exit = m.GetExit()
	case *pb.Syscall:
		setContext(&e, m.GetContextData())
		setSyscall(&e, m.GetSysno(), "")
		exit = m.GetExit()
		e.Evt.Arg.Raw1, e.Evt.Arg.Raw2 = int64(m.GetArg1()), int64(m.GetArg2())
	case *pb.Close:
		setContext(&e, m.GetContextData())
		setSyscall(&e, m.GetSysno(), "close")
		exit = m.GetExit()
		setPath(&e, bound(m.GetFdPath()))
	case *pb.Read:
		setContext(&e, m.GetContextData())
		setSyscall(&e, m.GetSysno(), "read")
		exit = m.GetExit()
		setPath(&e, bound(m.GetFdPath()))
	case *pb.Write:
		setContext(&e, m.GetContextData())
		setSyscall(&e, m.GetSysno(), "write")
		exit = m.GetExit()
		setPath(&e, bound(m.GetFdPath()))
	}
	if exit != nil {
		// An exit point: gVisor sets Exit only there.
		e.Evt.Dir = "<"
		e.Evt.Res = exit.GetResult()
		if errno := exit.GetErrorno(); errno != 0 {
			e.Evt.Res = -errno
			e.Evt.Failed = true
		}
	}
	return e
}

// setContext copies the common context fields. The point's container_id
// names the container within the sandbox, which is how the containers of
// one pod are told apart.
func setContext(e *rules.Event, c *pb.ContextData) {
	if c == nil {
		return
	}
	e.Evt.Time = c.GetTimeNs()
	e.Container.ID = bound(c.GetContainerId())
	e.Proc.Name = bound(c.GetProcessName())
	// Without an exec's argv the command line is the name alone.
	e.Proc.Cmdline = e.Proc.Name
	e.Proc.Cwd = bound(c.GetCwd())
	e.Proc.Pid = int64(c.GetThreadGroupId())
	e.Proc.Tid = int64(c.GetThreadId())
	e.Proc.Ppid = int64(c.GetParentThreadGroupId())
	if cr := c.GetCredentials(); cr != nil {
		e.User.UID = int64(cr.GetEffectiveUid())
		e.User.RUID = int64(cr.GetRealUid())
		e.Group.GID = int64(cr.GetEffectiveGid())
	}
}

// setSyscall names a syscall point by its number; fallback names it when
// the number is not one Palisade knows. Syscall points are enter points
// unless they carry an exit (see toEvent).
func setSyscall(e *rules.Event, sysno uint64, fallback string) {
	e.Evt.Dir = ">"
	e.Evt.Sysno = int64(sysno & 0xffff)
	name := syscallName(sysno)
	if name == "" {
		name = fallback
	}
	if name == "" {
		name = "syscall_" + strconv.FormatUint(sysno&0xffff, 10)
	}
	e.Evt.Type = name
}

// setArgv sets argv[0]-less args and the command line.
func setArgv(e *rules.Event, argv []string) {
	if len(argv) == 0 {
		e.Proc.Cmdline = e.Proc.Name
		return
	}
	if len(argv) > maxArgs+1 {
		argv = argv[:maxArgs+1]
	}
	args := make([]string, 0, len(argv)-1)
	for _, a := range argv[1:] {
		args = append(args, bound(a))
	}
	e.Proc.Args = args
	if e.Proc.Name == "" {
		e.Proc.Name = path.Base(bound(argv[0]))
	}
	e.Proc.Cmdline = cmdline(e.Proc.Name, args)
}

func cmdline(name string, args []string) string {
	return bound(strings.Join(append([]string{name}, args...), " "))
}

// resolve makes a syscall's path absolute as the sandbox resolved it: a
// relative path is relative to the directory fd (fdPath), or to the cwd
// for AT_FDCWD. A path that cannot be made absolute is kept as given.
func resolve(p string, fd int64, fdPath, cwd string) string {
	p = bound(p)
	if p == "" || path.IsAbs(p) {
		if p != "" {
			return path.Clean(p)
		}
		return p
	}
	base := cwd
	if fd != atFdCwd {
		base = fdPath
	}
	if !path.IsAbs(base) {
		return p
	}
	return bound(path.Join(base, p))
}

// setPath sets fd.name and its directory and file name.
func setPath(e *rules.Event, p string) {
	e.Fd.Name = p
	if path.IsAbs(p) {
		e.Fd.Directory, e.Fd.Filename = path.Dir(p), path.Base(p)
	}
}

// setAddress decodes a raw sockaddr (family in host order, port and
// address in network order), as connect, bind and accept points carry it.
func setAddress(e *rules.Event, a []byte) {
	if len(a) < 2 {
		return
	}
	fam := binary.LittleEndian.Uint16(a[:2])
	e.Fd.SockFamily = family(fam)
	switch {
	case fam == 2 && len(a) >= 8: // AF_INET
		ip := netip.AddrFrom4([4]byte(a[4:8]))
		port := binary.BigEndian.Uint16(a[2:4])
		e.Fd.SIP, e.Fd.SPort = ip.String(), int64(port)
		e.Fd.Name = netip.AddrPortFrom(ip, port).String()
	case fam == 10 && len(a) >= 24: // AF_INET6
		ip := netip.AddrFrom16([16]byte(a[8:24])).Unmap()
		port := binary.BigEndian.Uint16(a[2:4])
		e.Fd.SIP, e.Fd.SPort = ip.String(), int64(port)
		e.Fd.Name = netip.AddrPortFrom(ip, port).String()
	case fam == 1: // AF_UNIX: a path, or an abstract name after a NUL
		p := a[2:]
		if len(p) > 0 && p[0] == 0 {
			e.Fd.Name = "@" + bound(strings.TrimRight(string(p[1:]), "\x00"))
			break
		}
		if i := strings.IndexByte(string(p), 0); i >= 0 {
			p = p[:i]
		}
		e.Fd.Name = bound(string(p))
	}
}

// family names an address family as Falco's fd.sockfamily does.
func family(f uint16) string {
	switch f {
	case 2, 10:
		return "ip"
	case 1:
		return "unix"
	}
	return ""
}

// bound cuts a string from the sandbox to maxString bytes.
func bound(s string) string {
	if len(s) > maxString {
		return s[:maxString]
	}
	return s
}
