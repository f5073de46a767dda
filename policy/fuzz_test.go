package policy

import (
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"testing"

	"github.com/opencontainers/runtime-spec/specs-go"
)

// addSeeds adds every file matching the globs as a seed.
func addSeeds(f *testing.F, globs ...string) {
	for _, g := range globs {
		files, _ := filepath.Glob(g)
		for _, p := range files {
			raw, err := os.ReadFile(p)
			if err != nil {
				f.Fatal(err)
			}
			f.Add(raw)
		}
	}
}

// FuzzParseSeccompProfile: never panics; whatever it accepts is a valid
// OCI profile that parses again to the same profile.
func FuzzParseSeccompProfile(f *testing.F) {
	addSeeds(f, "testdata/fuzz-seed/*.json", "testdata/golden/*/floor-seccomp.json", "testdata/containerd-runtime-default.json")
	f.Fuzz(func(t *testing.T, data []byte) {
		p, err := ParseSeccompProfile(data)
		if err != nil {
			return
		}
		if err := validateRequest(p); err != nil {
			t.Fatalf("accepted profile does not validate: %v", err)
		}
		raw, _ := json.Marshal(p)
		again, err := ParseSeccompProfile(raw)
		if err != nil {
			t.Fatalf("output does not parse again: %v\n%s", err, raw)
		}
		if b, _ := json.Marshal(again); string(b) != string(raw) {
			t.Fatalf("parse is not stable:\n%s\n%s", raw, b)
		}
	})
}

// FuzzConfig: a policy table that decodes strictly and validates makes a
// floor; one that does not is an error, never a panic.
func FuzzConfig(f *testing.F) {
	addSeeds(f, "testdata/golden/*/policy.toml")
	f.Fuzz(func(t *testing.T, data []byte) {
		cfg, err := decodeConfig(data)
		if err != nil {
			return
		}
		var prof []byte
		if cfg.seccompMode() != SeccompNone && cfg.seccompMode() != SeccompRuntimeDefault {
			prof = []byte(`{"defaultAction":"SCMP_ACT_ERRNO","syscalls":[{"names":["read"],"action":"SCMP_ACT_ALLOW"}]}`)
		}
		if _, err := NewFloor(cfg, prof); err != nil {
			t.Fatalf("validated config rejected by NewFloor: %v", err)
		}
	})
}

// FuzzEnforce: over fuzzed specs, Enforce fails only with a sentinel, and
// what it returns validates, honours the ceiling, the drop list and
// no_new_privileges, never lets a syscall through that the floor or the
// request stops, and keeps the whole-spec floor's promise
// (checkFloorPromise).
func FuzzEnforce(f *testing.F) {
	addSeeds(f, "testdata/golden/*/spec.json")
	floorProfile, err := os.ReadFile("testdata/golden/args-and/floor-seccomp.json")
	if err != nil {
		f.Fatal(err)
	}
	floors := []Config{
		{Seccomp: SeccompRuntimeDefault, NoNewPrivileges: true,
			Capabilities: CapsConfig{Ceiling: []string{"CHOWN", "KILL", "SYS_ADMIN", "NET_RAW"}, Drop: []string{"SYS_ADMIN"}}},
		{Seccomp: "/floor.json", OverCeiling: OverCeilingRefuse, Capabilities: CapsConfig{Ceiling: []string{"CHOWN"}}},
		{Seccomp: "/floor.json", Mode: ModeComplain},
		// The whole-spec controls, refusing and allowing.
		{Privileged: PrivilegedRefuse, ServiceAccountToken: TokenStrip, OverCeiling: OverCeilingRefuse},
		{HostPaths: []string{"/data"}, HostNamespaces: []string{"network"}, Devices: []string{"/dev/fuse"}, Sysctls: []string{"net.*"}},
	}
	s := Support{SeccompEnforcer: "x", CapabilityEnforcer: "x", NoNewPrivsEnforcer: "x", KernelVersion: "5.10"}
	// The same backend with a kernel of five address families: the floor's
	// socket rules may be folded (seccomp_sockets.go).
	folding := s
	folding.SocketFamilies = Families(AFUnix, AFInet, AFInet6, AFNetlink, AFPacket)
	f.Fuzz(func(t *testing.T, data []byte) {
		for i := range 2 * len(floors) {
			cfg, s := floors[i/2], s
			if i%2 == 1 {
				s = folding
			}
			var spec specs.Spec
			if json.Unmarshal(data, &spec) != nil {
				return
			}
			var prof []byte
			if cfg.Seccomp == "/floor.json" {
				prof = floorProfile
			}
			fl, err := NewFloor(cfg, prof)
			if err != nil {
				t.Fatal(err)
			}
			var req *specs.LinuxSeccomp
			if spec.Linux != nil && spec.Linux.Seccomp != nil {
				c := *spec.Linux.Seccomp
				req = &c
			}
			_, err = enforce(&spec, fl, s, "amd64")
			if err != nil {
				if !errors.Is(err, ErrInvalid) && !errors.Is(err, ErrRefused) {
					t.Fatalf("floor %d: error without a sentinel: %v", i, err)
				}
				continue
			}
			if fl.seccomp != nil {
				checkEnforced(t, &spec, fl, req, prof, s.SocketFamilies)
			}
			checkFloorPromise(t, &spec, cfg, s)
		}
	})
}

// families is the backend's Support.SocketFamilies: socket for a family
// outside it may be let through to the backend, which refuses it.
func checkEnforced(t *testing.T, spec *specs.Spec, fl *Floor, req *specs.LinuxSeccomp, prof []byte, families uint64) {
	cfg := fl.Config()
	out := spec.Linux.Seccomp
	if err := validateRequest(out); err != nil {
		t.Fatalf("enforced profile does not validate: %v", err)
	}
	if cfg.mode() == ModeEnforce {
		if cfg.NoNewPrivileges && !spec.Process.NoNewPrivileges {
			t.Fatal("no_new_privileges not forced")
		}
		if c := spec.Process.Capabilities; c != nil {
			for _, set := range capSlices(c) {
				got, err := parseCapList("", *set)
				if err != nil || got&^fl.ceiling != 0 && fl.hasCeiling || got&fl.drop != 0 {
					t.Fatalf("capabilities %v exceed ceiling %v or keep %v", *set, fl.ceiling.names(), fl.drop.names())
				}
			}
		}
	}
	// The floor as the container sees it: resolved for its bounding set.
	var bounding capSet
	if c := spec.Process.Capabilities; c != nil {
		bounding, _ = parseCapList("", c.Bounding)
	}
	floor := fl.seccomp.resolve("amd64", kernelVersion{known: true, major: 5, minor: 10}, bounding)
	names := []string{"read", "socket", "ptrace", "clone", "personality", "ioctl", "mount"}
	if req != nil {
		for _, sc := range req.Syscalls {
			names = append(names, sc.Names...)
		}
	}
	if len(names) > 40 {
		names = names[:40]
	}
	for _, n := range names {
		for _, args := range [][6]uint64{{}, {1}, {10, 1}, {17}, {0x7e020000}, {^uint64(0), ^uint64(0), ^uint64(0)}} {
			if n == "socket" && families != 0 && (args[0] >= 64 || families&(1<<args[0]) == 0) {
				continue
			}
			want := evalStrict(floor, n, args)
			if cfg.mode() == ModeComplain {
				want = toLog(want)
			}
			if req != nil && req.DefaultAction != "" && !buildUnconfined(req) {
				want = stricter(want, evalStrict(req, n, args))
			}
			for _, got := range evalAll(t, out, n, args) {
				if got.rank() < want.rank() {
					t.Fatalf("%s%v: enforced profile may %s, floor ∩ request says %s", n, args, got, want)
				}
			}
		}
	}
}

// buildUnconfined reports whether a (valid) request is treated as absent.
func buildUnconfined(p *specs.LinuxSeccomp) bool {
	m, err := buildModel(p, "", nil)
	return err == nil && m.isUnconfined()
}
