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
	for _, load := range []bool{true, false} {
		dir := t.TempDir()
		host := apparmor.Host{EnabledPath: filepath.Join(dir, "enabled"), ProfilesPath: filepath.Join(dir, "profiles")}
		ctx := context.Background()
		if p, why := hostProfile(ctx, policy.AppArmorConfig{}, host, load); p != "" || why == "" {
			t.Errorf("load=%v: no profile configured: %q, %q", load, p, why)
		}
		cfg := policy.AppArmorConfig{Profile: "palisade-runsc", Required: true}
		if p, why := hostProfile(ctx, cfg, host, load); p != "" || !strings.Contains(why, host.EnabledPath) {
			t.Errorf("load=%v: no AppArmor: profile %q, reason %q must name %s", load, p, why, host.EnabledPath)
		}
		os.WriteFile(host.EnabledPath, []byte("Y"), 0o644)
		os.WriteFile(host.ProfilesPath, []byte("palisade-runsc (enforce)\n"), 0o644)
		if p, why := hostProfile(ctx, cfg, host, load); p != "palisade-runsc" || why != "" {
			t.Errorf("load=%v: loaded profile on an AppArmor host: %q, %q", load, p, why)
		}
		cfg.Profile = "other"
		if p, why := hostProfile(ctx, cfg, host, load); p != "" || !strings.Contains(why, "not loaded") {
			t.Errorf("load=%v: unloaded profile without a file: %q, %q", load, p, why)
		}
	}
}

// TestHostProfileFromFile: a profile the kernel lacks but the handler's file
// defines is loaded at Create (apparmor_parser -r), and only looked for in
// the file by checks such as palisadectl doctor (apparmor_parser -N).
func TestHostProfileFromFile(t *testing.T) {
	for _, load := range []bool{true, false} {
		dir := t.TempDir()
		calls := filepath.Join(dir, "calls")
		host := apparmor.Host{
			EnabledPath:  filepath.Join(dir, "enabled"),
			ProfilesPath: filepath.Join(dir, "profiles"),
			Parser:       filepath.Join(dir, "apparmor_parser"),
		}
		os.WriteFile(host.EnabledPath, []byte("Y"), 0o644)
		os.WriteFile(host.ProfilesPath, nil, 0o644)
		// A parser that records its arguments: -N lists the file's one
		// profile, -r "loads" it into the profiles list.
		script := "#!/bin/sh\necho \"$*\" >>" + calls + "\n" +
			"case $1 in -N) echo palisade-runsc ;; -r) echo 'palisade-runsc (enforce)' >>" + host.ProfilesPath + " ;; esac\n"
		if err := os.WriteFile(host.Parser, []byte(script), 0o755); err != nil {
			t.Fatal(err)
		}
		cfg := policy.AppArmorConfig{Profile: "palisade-runsc", File: "/etc/apparmor.d/palisade-runsc"}
		if p, why := hostProfile(context.Background(), cfg, host, load); p != "palisade-runsc" || why != "" {
			t.Errorf("load=%v: profile in its file: %q, %q", load, p, why)
		}
		got, _ := os.ReadFile(calls)
		want := "-r -W /etc/apparmor.d/palisade-runsc\n"
		if !load {
			want = "-N /etc/apparmor.d/palisade-runsc\n"
		}
		if string(got) != want {
			t.Errorf("load=%v: apparmor_parser ran with %q, want %q", load, got, want)
		}
		if loaded, _ := host.Loaded("palisade-runsc"); loaded != load {
			t.Errorf("load=%v: profile loaded afterwards: %v", load, loaded)
		}
		cfg.Profile = "other"
		if p, why := hostProfile(context.Background(), cfg, host, load); p != "" || !strings.Contains(why, "does not define profile") {
			t.Errorf("load=%v: a profile the file lacks: %q, %q", load, p, why)
		}
	}
}
