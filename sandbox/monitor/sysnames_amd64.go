package monitor

// syscallName names the amd64 syscalls of the default points, and those
// rules look for through sysno points (mount, umount2). Message types do
// not tell them apart: one Open message serves open, openat and creat, one
// Setid message setuid and setgid.
func syscallName(sysno uint64) string {
	switch sysno {
	case 2:
		return "open"
	case 257:
		return "openat"
	case 85:
		return "creat"
	case 59:
		return "execve"
	case 322:
		return "execveat"
	case 42:
		return "connect"
	case 41:
		return "socket"
	case 49:
		return "bind"
	case 43:
		return "accept"
	case 288:
		return "accept4"
	case 105:
		return "setuid"
	case 106:
		return "setgid"
	case 113:
		return "setreuid"
	case 114:
		return "setregid"
	case 117:
		return "setresuid"
	case 119:
		return "setresgid"
	case 161:
		return "chroot"
	case 165:
		return "mount"
	case 166:
		return "umount2"
	case 101:
		return "ptrace"
	case 56:
		return "clone"
	case 57:
		return "fork"
	case 58:
		return "vfork"
	case 435:
		return "clone3"
	case 80:
		return "chdir"
	case 81:
		return "fchdir"
	case 3:
		return "close"
	case 0:
		return "read"
	case 1:
		return "write"
	}
	return ""
}
