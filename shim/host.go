package shim

import (
	"context"
	"fmt"

	"golang.org/x/sys/unix"

	"github.com/palisade-runtime/palisade/policy"
	"github.com/palisade-runtime/palisade/sandbox/apparmor"
)

// hostSupport completes a backend's Support with what only the host can tell:
// why AppArmor is not enforced (when the backend does not confine), and the
// kernel version that gates some runtime-default seccomp rules (when the
// backend has not named the kernel that enforces seccomp itself).
func hostSupport(s *policy.Support, appArmorMissing string) {
	if s.AppArmorEnforcer == "" {
		s.AppArmorMissing = appArmorMissing
		if s.AppArmorMissing == "" {
			s.AppArmorMissing = "the " + s.Backend + " backend does not confine its host processes"
		}
	}
	if s.KernelVersion == "" {
		s.KernelVersion = hostKernelVersion()
	}
}

// hostProfile decides the AppArmor profile for the backend's host processes:
// the handler's, when this host can enforce it: loaded, or defined by its
// file, which is then loaded if load is set (at Create; a check such as
// palisadectl doctor leaves the host as it is). Otherwise it says why not,
// naming the check; policy then fails closed or records it, as the handler
// asks.
func hostProfile(ctx context.Context, cfg policy.AppArmorConfig, host apparmor.Host, load bool) (profile, missing string) {
	if cfg.Profile == "" {
		return "", "the handler names no AppArmor profile"
	}
	if ok, why := host.Enabled(); !ok {
		return "", why
	}
	check := host.Ensure
	if !load {
		check = host.Check
	}
	if err := check(ctx, cfg.Profile, cfg.File); err != nil {
		return "", err.Error()
	}
	return cfg.Profile, ""
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
