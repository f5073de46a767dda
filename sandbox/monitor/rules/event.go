// Package rules is Palisade's runtime threat detection engine: Falco-shaped
// rules (lists, rules with a condition, an output template, a priority and
// tags) evaluated over events decoded from gVisor's trace points, and the
// alerts they raise in Falco's JSON output format.
//
// The package is pure: it reads no files and starts no goroutines, so rules
// and events are tested as data. Conditions are expressions of
// github.com/expr-lang/expr over Falco's field names (evt.type, proc.name,
// fd.name, container.id, k8s.pod.name, ...): a maintained, type-checked,
// side-effect-free expression language whose compiler bounds the size of a
// condition, rather than a parser of our own for Falco's filter syntax.
package rules

// Event is one trace point, flattened to the fields rules can name. The
// struct tags are the field names of the condition language, chosen to be
// Falco's so that its rules read the same here.
type Event struct {
	Evt       Evt       `expr:"evt"`
	Proc      Proc      `expr:"proc"`
	User      User      `expr:"user"`
	Group     Group     `expr:"group"`
	Fd        Fd        `expr:"fd"`
	Container Container `expr:"container"`
	K8s       K8s       `expr:"k8s"`
}

// Evt describes the point itself.
type Evt struct {
	// Time is the event's time, in nanoseconds since the epoch.
	Time int64 `expr:"time"`
	// Type is the syscall name for syscall points (open, openat, connect,
	// execve, setuid, ...; sysno/N points get their name where Palisade
	// knows it, such as mount), and for gVisor's sentry points one of
	// container_start, sentry_clone, sentry_execve, sentry_task_exit and
	// sentry_exit_notify_parent. container_exec is a process the runtime
	// started in a running container (kubectl exec), reported by the shim:
	// gVisor has no trace point for it.
	Type string `expr:"type"`
	// Dir is ">" for a syscall's enter point and "<" for its exit (Falco's
	// convention); sentry points are "<": they report what happened.
	Dir string `expr:"dir"`
	// Res is a syscall exit's result, or minus its errno when it failed.
	Res int64 `expr:"res"`
	// Failed is true for a syscall exit that returned an error.
	Failed bool `expr:"failed"`
	// IsOpenRead and IsOpenWrite say how an open-family syscall asked to
	// open its file (O_RDONLY/O_RDWR, O_WRONLY/O_RDWR/O_CREAT/O_TRUNC).
	IsOpenRead  bool `expr:"is_open_read"`
	IsOpenWrite bool `expr:"is_open_write"`
	// IsOpenTrunc is true for an open with O_TRUNC (the condition language
	// has no bitwise operators to test flags with).
	IsOpenTrunc bool `expr:"is_open_trunc"`
	// Arg holds the syscall arguments rules look at.
	Arg Arg `expr:"arg"`
	// Sysno is the syscall number (amd64), 0 for sentry points.
	Sysno int64 `expr:"sysno"`
}

// Arg is the subset of syscall arguments that rules use.
type Arg struct {
	// Flags of open, openat, creat, execveat, accept4.
	Flags int64 `expr:"flags"`
	// UID is the uid asked for by setuid (its id) or setresuid (its
	// effective uid); GID the same for the gid family. -1 when unset.
	UID int64 `expr:"uid"`
	GID int64 `expr:"gid"`
	// Domain, Type and Protocol of socket.
	Domain   int64 `expr:"domain"`
	Type     int64 `expr:"type"`
	Protocol int64 `expr:"protocol"`
	// Raw1 and Raw2 are the first two arguments of a syscall reported by
	// number (a syscall/sysno/N point), as raw integers: ptrace's request
	// and pid, for one.
	Raw1 int64 `expr:"raw1"`
	Raw2 int64 `expr:"raw2"`
}

// Proc is the process (thread group) that caused the event.
type Proc struct {
	// Name is the process name (gVisor's comm, at most 15 characters), or
	// for sentry_execve the basename of the new binary.
	Name string `expr:"name"`
	// Exepath is the binary an exec ran (sentry_execve, execve).
	Exepath string `expr:"exepath"`
	// Args are argv[1:] of an exec; Cmdline is name and args joined.
	Args    []string `expr:"args"`
	Cmdline string   `expr:"cmdline"`
	// Pid is the thread group id, Tid the thread id, Ppid the parent's
	// thread group id; all as the sandbox numbers them.
	Pid  int64 `expr:"pid"`
	Tid  int64 `expr:"tid"`
	Ppid int64 `expr:"ppid"`
	// Cwd is the working directory.
	Cwd string `expr:"cwd"`
	// Tty is true for a container started, or a process exec'd, with a
	// terminal (container_start and container_exec only: gVisor's points
	// carry no tty otherwise).
	Tty bool `expr:"tty"`
}

// User is the process's user.
type User struct {
	// UID is the effective uid, as Falco's user.uid; RUID the real one.
	UID  int64 `expr:"uid"`
	RUID int64 `expr:"ruid"`
}

// Group is the process's group.
type Group struct {
	GID int64 `expr:"gid"`
}

// Fd is the file or socket the event is about.
type Fd struct {
	// Name is the path of an open, exec or chroot, or a connect, bind or
	// accept address as "ip:port" or a unix socket path.
	Name string `expr:"name"`
	// Directory and Filename split Name when it is a path.
	Directory string `expr:"directory"`
	Filename  string `expr:"filename"`
	// SockFamily is "ip" (IPv4 or IPv6) or "unix" for socket events.
	SockFamily string `expr:"sockfamily"`
	// SIP and SPort are the server side of a connect (the remote) or of a
	// bind (the local address).
	SIP   string `expr:"sip"`
	SPort int64  `expr:"sport"`
}

// Container names the container, from gVisor's container_id and the
// metadata Palisade keeps for the containers of its sandbox.
type Container struct {
	ID    string `expr:"id"`
	Name  string `expr:"name"`
	Image string `expr:"image"`
}

// K8s is the pod, from the CRI annotations of the container's spec.
type K8s struct {
	Pod struct {
		Name string `expr:"name"`
	} `expr:"pod"`
	Ns struct {
		Name string `expr:"name"`
	} `expr:"ns"`
}
