package policy

import (
	"fmt"
	"strings"
)

// capabilityNames is the Linux capability table, indexed by capability
// number. It is constant data; caps_linux_test.go pins its length against
// golang.org/x/sys/unix.CAP_LAST_CAP so a kernel that adds a capability makes
// the test fail instead of letting an unknown name slip through as a warning
// (runc's behaviour, and a hole for a security floor).
var capabilityNames = [...]string{
	"CAP_CHOWN",              // 0
	"CAP_DAC_OVERRIDE",       // 1
	"CAP_DAC_READ_SEARCH",    // 2
	"CAP_FOWNER",             // 3
	"CAP_FSETID",             // 4
	"CAP_KILL",               // 5
	"CAP_SETGID",             // 6
	"CAP_SETUID",             // 7
	"CAP_SETPCAP",            // 8
	"CAP_LINUX_IMMUTABLE",    // 9
	"CAP_NET_BIND_SERVICE",   // 10
	"CAP_NET_BROADCAST",      // 11
	"CAP_NET_ADMIN",          // 12
	"CAP_NET_RAW",            // 13
	"CAP_IPC_LOCK",           // 14
	"CAP_IPC_OWNER",          // 15
	"CAP_SYS_MODULE",         // 16
	"CAP_SYS_RAWIO",          // 17
	"CAP_SYS_CHROOT",         // 18
	"CAP_SYS_PTRACE",         // 19
	"CAP_SYS_PACCT",          // 20
	"CAP_SYS_ADMIN",          // 21
	"CAP_SYS_BOOT",           // 22
	"CAP_SYS_NICE",           // 23
	"CAP_SYS_RESOURCE",       // 24
	"CAP_SYS_TIME",           // 25
	"CAP_SYS_TTY_CONFIG",     // 26
	"CAP_MKNOD",              // 27
	"CAP_LEASE",              // 28
	"CAP_AUDIT_WRITE",        // 29
	"CAP_AUDIT_CONTROL",      // 30
	"CAP_SETFCAP",            // 31
	"CAP_MAC_OVERRIDE",       // 32
	"CAP_MAC_ADMIN",          // 33
	"CAP_SYSLOG",             // 34
	"CAP_WAKE_ALARM",         // 35
	"CAP_BLOCK_SUSPEND",      // 36
	"CAP_AUDIT_READ",         // 37
	"CAP_PERFMON",            // 38
	"CAP_BPF",                // 39
	"CAP_CHECKPOINT_RESTORE", // 40
}

// KnownCapabilities returns the capability names this package accepts, in
// kernel number order, for feature reporting (palisadectl doctor).
func KnownCapabilities() []string {
	return append([]string(nil), capabilityNames[:]...)
}

// capSet is a set of capabilities as a bit mask; the table has fewer than
// 64 entries, which caps_linux_test.go also pins.
type capSet uint64

func (s capSet) has(c int) bool { return s&(1<<uint(c)) != 0 }

// names lists the set's capabilities in kernel number order.
func (s capSet) names() []string {
	var out []string
	for i, n := range capabilityNames {
		if s.has(i) {
			out = append(out, n)
		}
	}
	return out
}

// joined lists the set's names, comma-separated, in kernel number order.
func (s capSet) joined() string {
	var b []byte
	for i, n := range capabilityNames {
		if s.has(i) {
			if len(b) > 0 {
				b = append(b, ", "...)
			}
			b = append(b, n...)
		}
	}
	return string(b)
}

// capNumber resolves a capability name written with or without the CAP_
// prefix, in any case. ok is false for a name not in the table.
func capNumber(name string) (int, bool) {
	for i, c := range capabilityNames { // the common spelling, without copying
		if c == name {
			return i, true
		}
	}
	n := strings.ToUpper(strings.TrimSpace(name))
	if !strings.HasPrefix(n, "CAP_") {
		n = "CAP_" + n
	}
	for i, c := range capabilityNames {
		if c == n {
			return i, true
		}
	}
	return 0, false
}

// parseCapList resolves names into a set; field names the list in errors,
// e.g. "policy.capabilities.ceiling" gives "policy.capabilities.ceiling[2]".
func parseCapList(field string, names []string) (capSet, error) {
	var s capSet
	for i, n := range names {
		c, ok := capNumber(n)
		if !ok {
			return 0, fmt.Errorf("%s[%d]: unknown capability %q", field, i, n)
		}
		s |= 1 << uint(c)
	}
	return s, nil
}
