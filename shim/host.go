package shim

import (
	"fmt"
	"os"
	"strings"

	"golang.org/x/sys/unix"

	"github.com/palisade-runtime/palisade/policy"
)

// hostSupport completes a backend's Support with what only the host can tell:
// whether AppArmor can confine the backend's host processes, and the kernel
// version that gates some runtime-default seccomp rules (when the backend
// has not named the kernel that enforces seccomp itself).
func hostSupport(s *policy.Support) {
	hostAppArmor(s)
	if s.KernelVersion == "" {
		s.KernelVersion = hostKernelVersion()
	}
}

// hostKernelVersion is "major.minor" of the running kernel, or "" when uname
// says something unexpected (policy then keeps kernel-gated rules only where
// they deny).
func hostKernelVersion() string {
	var u unix.Utsname
	if err := unix.Uname(&u); err != nil {
		return ""
	}
	var major, minor int
	if _, err := fmt.Sscanf(unix.ByteSliceToString(u.Release[:]), "%d.%d", &major, &minor); err != nil {
		return ""
	}
	return fmt.Sprintf("%d.%d", major, minor)
}

// appArmorEnabledPath is where the kernel says whether AppArmor is on.
const appArmorEnabledPath = "/sys/module/apparmor/parameters/enabled"

// hostAppArmor fills in what the host can do with AppArmor. Palisade does not
// yet move the backend's host processes into a profile (the exec transition
// lands with the AppArmor work), so even a host with AppArmor reports it as
// not enforceable; a handler that requires it fails closed instead of
// running unconfined.
func hostAppArmor(s *policy.Support) {
	data, err := os.ReadFile(appArmorEnabledPath)
	switch {
	case err != nil:
		s.AppArmorMissing = "AppArmor is not enabled in this kernel (" + appArmorEnabledPath + " is missing)"
	case strings.TrimSpace(string(data)) != "Y":
		s.AppArmorMissing = "AppArmor is disabled (" + appArmorEnabledPath + " is not Y)"
	default:
		s.AppArmorMissing = "Palisade does not yet attach AppArmor profiles to the " + s.Backend + " host processes"
	}
	s.AppArmorEnforcer = ""
}
