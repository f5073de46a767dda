package shim

import (
	"context"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/palisade-runtime/palisade/policy"
	"github.com/palisade-runtime/palisade/sandbox/apparmor"
)

func TestHostSupport(t *testing.T) {
	s := policy.Support{Backend: "runsc", KernelVersion: "4.4"}
	hostSupport(&s, "")
	if s.KernelVersion != "4.4" {
		t.Errorf("a backend's own kernel version was overwritten: %q", s.KernelVersion)
	}
	// A backend that does not claim AppArmor gets a reason, which ends up in
	// the fail-closed error.
	if s.AppArmorEnforcer != "" || !strings.Contains(s.AppArmorMissing, "runsc") {
		t.Errorf("AppArmor: enforcer %q, missing %q", s.AppArmorEnforcer, s.AppArmorMissing)
	}
	s = policy.Support{AppArmorEnforcer: "host AppArmor"}
	hostSupport(&s, "ignored")
	if s.AppArmorMissing != "" {
		t.Errorf("an enforcing backend got a missing reason %q", s.AppArmorMissing)
	}
	if !regexp.MustCompile(`^[0-9]+\.[0-9]+$`).MatchString(s.KernelVersion) {
		t.Errorf("host kernel version %q is not major.minor", s.KernelVersion)
	}
}

func TestHostProfile(t *testing.T) {
	dir := t.TempDir()
	host := apparmor.Host{EnabledPath: filepath.Join(dir, "enabled"), ProfilesPath: filepath.Join(dir, "profiles")}
	ctx := context.Background()
	if p, why := hostProfile(ctx, policy.AppArmorConfig{}, host); p != "" || why == "" {
		t.Errorf("no profile configured: %q, %q", p, why)
	}
	cfg := policy.AppArmorConfig{Profile: "palisade-runsc", Required: true}
	if p, why := hostProfile(ctx, cfg, host); p != "" || !strings.Contains(why, host.EnabledPath) {
		t.Errorf("no AppArmor: profile %q, reason %q must name %s", p, why, host.EnabledPath)
	}
	os.WriteFile(host.EnabledPath, []byte("Y"), 0o644)
	os.WriteFile(host.ProfilesPath, []byte("palisade-runsc (enforce)\n"), 0o644)
	if p, why := hostProfile(ctx, cfg, host); p != "palisade-runsc" || why != "" {
		t.Errorf("loaded profile on an AppArmor host: %q, %q", p, why)
	}
	cfg.Profile = "other"
	if p, why := hostProfile(ctx, cfg, host); p != "" || !strings.Contains(why, "not loaded") {
		t.Errorf("unloaded profile without a file: %q, %q", p, why)
	}
}
