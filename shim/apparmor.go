package shim

import (
	"os"
	"strings"

	"github.com/palisade-runtime/palisade/policy"
)

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
