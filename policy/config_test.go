package policy

import (
	"strings"
	"testing"
)

func TestConfigDecodeCeilingNilVersusEmpty(t *testing.T) {
	absent, err := decodeConfig([]byte("seccomp = \"none\"\n"))
	if err != nil || absent.Capabilities.Ceiling != nil {
		t.Fatalf("absent ceiling: %#v, %v", absent.Capabilities.Ceiling, err)
	}
	empty, err := decodeConfig([]byte("[capabilities]\nceiling = []\n"))
	if err != nil || empty.Capabilities.Ceiling == nil || len(empty.Capabilities.Ceiling) != 0 {
		t.Fatalf("empty ceiling: %#v, %v", empty.Capabilities.Ceiling, err)
	}
}

func TestConfigValidateNamesTheField(t *testing.T) {
	for _, tc := range []struct{ toml, want string }{
		{"mode = \"audit\"", `policy.mode: "audit" is not`},
		{"seccomp = \"default\"", `policy.seccomp: "default" is not`},
		{"seccomp = \"profiles/x.json\"", "not an absolute path"},
		{"seccomp = \"/etc/../x.json\"", "not clean"},
		{"over_ceiling = \"deny\"", `policy.over_ceiling: "deny"`},
		{"[capabilities]\nceiling = [\"CHOWN\", \"KILL\", \"CAP_FOO\"]", `policy.capabilities.ceiling[2]: unknown capability "CAP_FOO"`},
		{"[capabilities]\ndrop = [\"NET-RAW\"]", `policy.capabilities.drop[0]: unknown capability "NET-RAW"`},
		{"[apparmor]\nprofile = \"a/b\"", `policy.apparmor.profile: profile name "a/b" contains '/'`},
		{"[apparmor]\nprofile = \"a..b\"", `contains ".."`},
		{"[apparmor]\nprofile = \"a b\"", "space, control or invalid"},
		{"[apparmor]\nprofile = \"a\\u0007\"", "space, control or invalid"},
		{"[apparmor]\nprofile = \"-r\"", "starts with '-'"},
		{"[apparmor]\nprofile = \"unconfined\"", "not a confining profile"},
		{"[apparmor]\nprofile = \"" + strings.Repeat("p", 256) + "\"", "more than 255"},
		{"[apparmor]\nrequired = true", "policy.apparmor.required: true without policy.apparmor.profile"},
		{"[apparmor]\nfile = \"/etc/x\"", "policy.apparmor.file: set without policy.apparmor.profile"},
	} {
		_, err := decodeConfig([]byte(tc.toml))
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%q: got %v, want an error containing %q", tc.toml, err, tc.want)
		}
	}
}

func TestConfigUnknownKeyRejected(t *testing.T) {
	if _, err := decodeConfig([]byte("no_new_privs = true\n")); err == nil {
		t.Fatal("a misspelt key was accepted")
	}
}

func TestConfigValidReportsEveryError(t *testing.T) {
	err := Config{Mode: "x", OverCeiling: "y"}.Validate()
	if err == nil || !strings.Contains(err.Error(), "policy.mode") || !strings.Contains(err.Error(), "policy.over_ceiling") {
		t.Fatalf("got %v", err)
	}
	if err := (Config{Mode: ModeComplain, Seccomp: "/etc/palisade/p.json", OverCeiling: OverCeilingRefuse,
		Capabilities: CapsConfig{Ceiling: []string{"chown"}, Drop: []string{"CAP_NET_RAW"}},
		AppArmor:     AppArmorConfig{Profile: "palisade-runsc", File: "/etc/apparmor.d/palisade", Required: true}}).Validate(); err != nil {
		t.Fatalf("valid config rejected: %v", err)
	}
}

func TestNewFloorProfileBytes(t *testing.T) {
	if _, err := NewFloor(Config{Seccomp: "/etc/p.json"}, nil); err == nil {
		t.Error("a path floor without contents was accepted")
	}
	if _, err := NewFloor(Config{Seccomp: SeccompRuntimeDefault}, []byte("{}")); err == nil {
		t.Error("contents for runtime-default were accepted")
	}
	_, err := NewFloor(Config{Seccomp: "/etc/p.json"}, []byte(`{"defaultAction":"SCMP_ACT_ERRNO","syscalls":[{"names":["read"],"action":"SCMP_ACT_NOPE"}]}`))
	if err == nil || !strings.Contains(err.Error(), `policy.seccomp: profile /etc/p.json: syscalls[0].action: unknown action "SCMP_ACT_NOPE"`) {
		t.Errorf("got %v", err)
	}
}
