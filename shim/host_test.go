package shim

import (
	"regexp"
	"testing"

	"github.com/palisade-runtime/palisade/policy"
)

func TestHostSupport(t *testing.T) {
	s := policy.Support{Backend: "runsc", KernelVersion: "4.4"}
	hostSupport(&s)
	if s.KernelVersion != "4.4" {
		t.Errorf("a backend's own kernel version was overwritten: %q", s.KernelVersion)
	}
	// AppArmor attachment is not implemented yet, so no host may claim it,
	// and the reason must say why (it ends up in the fail-closed error).
	if s.AppArmorEnforcer != "" || s.AppArmorMissing == "" {
		t.Errorf("AppArmor: enforcer %q, missing %q", s.AppArmorEnforcer, s.AppArmorMissing)
	}
	s = policy.Support{}
	hostSupport(&s)
	if !regexp.MustCompile(`^[0-9]+\.[0-9]+$`).MatchString(s.KernelVersion) {
		t.Errorf("host kernel version %q is not major.minor", s.KernelVersion)
	}
}
