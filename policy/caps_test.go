package policy

import (
	"encoding/json"
	"errors"
	"math/rand/v2"
	"slices"
	"strings"
	"testing"

	"github.com/opencontainers/runtime-spec/specs-go"
	"golang.org/x/sys/unix"
)

// The table must cover exactly the kernel's capabilities: a capability
// added to the kernel headers (x/sys/unix) fails this test instead of
// being rejected as unknown at run time, and the bit set must hold them.
func TestCapabilityTableMatchesKernel(t *testing.T) {
	if got, want := len(capabilityNames), unix.CAP_LAST_CAP+1; got != want {
		t.Fatalf("capability table has %d entries, kernel headers define %d", got, want)
	}
	if len(capabilityNames) > 64 {
		t.Fatal("capSet is a uint64 bit set")
	}
	for n, want := range map[string]int{"CAP_CHOWN": unix.CAP_CHOWN, "CAP_SYS_ADMIN": unix.CAP_SYS_ADMIN,
		"CAP_NET_RAW": unix.CAP_NET_RAW, "CAP_BPF": unix.CAP_BPF, "CAP_CHECKPOINT_RESTORE": unix.CAP_CHECKPOINT_RESTORE} {
		if got, ok := capNumber(n); !ok || got != want {
			t.Errorf("%s = %d, want %d", n, got, want)
		}
	}
}

func TestCapNumberSpellings(t *testing.T) {
	for _, n := range []string{"CAP_SYS_ADMIN", "sys_admin", "Cap_Sys_Admin", "SYS_ADMIN", " sys_admin "} {
		if c, ok := capNumber(n); !ok || capabilityNames[c] != "CAP_SYS_ADMIN" {
			t.Errorf("capNumber(%q) = %d, %v", n, c, ok)
		}
	}
	for _, n := range []string{"", "CAP_", "CAP_FOO", "SYS-ADMIN", "CAP_SYS_ADMIN2"} {
		if _, ok := capNumber(n); ok {
			t.Errorf("capNumber(%q) accepted", n)
		}
	}
}

// Property: for random ceilings, drop lists and requests, every result set
// is exactly request ∩ ceiling − drop; refuse fails exactly when a request
// capability is above the ceiling, and names every such capability.
func TestPropertyCapabilities(t *testing.T) {
	for seed := range uint64(2000) {
		r := rand.New(rand.NewPCG(seed, 0xca95))
		pick := func(p float64) []string {
			var out []string
			for _, n := range capabilityNames {
				if r.Float64() < p {
					switch r.IntN(3) { // any spelling the request may use
					case 0:
						n = strings.ToLower(n)
					case 1:
						n = strings.TrimPrefix(n, "CAP_")
					}
					out = append(out, n)
				}
			}
			r.Shuffle(len(out), func(i, j int) { out[i], out[j] = out[j], out[i] })
			return out
		}
		cfg := Config{Capabilities: CapsConfig{Drop: pick(0.1)}}
		if r.IntN(4) > 0 {
			cfg.Capabilities.Ceiling = append([]string{}, pick(0.5)...)
		}
		if r.IntN(2) == 0 {
			cfg.OverCeiling = OverCeilingRefuse
		}
		f, err := NewFloor(cfg, nil)
		if err != nil {
			t.Fatal(err)
		}
		req := &specs.LinuxCapabilities{Bounding: pick(0.6), Effective: pick(0.3), Inheritable: pick(0.2),
			Permitted: pick(0.3), Ambient: pick(0.1)}
		orig := *req
		p := &specs.Process{Capabilities: req}
		_, err = EnforceProcess(p, f, Support{CapabilityEnforcer: "test"})

		ceiling, _ := parseCapList("", cfg.Capabilities.Ceiling)
		drop, _ := parseCapList("", cfg.Capabilities.Drop)
		var above []string
		for i, set := range capSlices(&orig) {
			in, _ := parseCapList("", *set)
			if cfg.Capabilities.Ceiling != nil && in&^ceiling != 0 {
				above = append(above, capSetNames[i]+": "+strings.Join((in&^ceiling).names(), ", "))
			}
		}
		if cfg.OverCeiling == OverCeilingRefuse && len(above) > 0 {
			if !errors.Is(err, ErrRefused) {
				t.Fatalf("seed %d: want ErrRefused for %v, got %v", seed, above, err)
			}
			for _, a := range above {
				if !strings.Contains(err.Error(), a+" above ceiling") {
					t.Fatalf("seed %d: refusal %q does not list %q", seed, err, a)
				}
			}
			continue
		}
		if err != nil {
			t.Fatalf("seed %d: %v", seed, err)
		}
		for i, set := range capSlices(p.Capabilities) {
			in, _ := parseCapList("", *capSlices(&orig)[i])
			want := in &^ drop
			if cfg.Capabilities.Ceiling != nil {
				want &= ceiling
			}
			got, err := parseCapList("", *set)
			if err != nil || got != want {
				t.Fatalf("seed %d: %s = %v, want %v", seed, capSetNames[i], *set, want.names())
			}
			for _, n := range *set {
				if !slices.Contains(capabilityNames[:], n) {
					t.Fatalf("seed %d: non-canonical name %q in the result", seed, n)
				}
			}
		}
	}
}

func TestUnknownCapabilityIsInvalid(t *testing.T) {
	f, _ := NewFloor(Config{}, nil)
	p := &specs.Process{Capabilities: &specs.LinuxCapabilities{Permitted: []string{"CAP_CHOWN", "CAP_TIME_TRAVEL"}}}
	_, err := EnforceProcess(p, f, Support{})
	if !errors.Is(err, ErrInvalid) || !strings.Contains(err.Error(), `process.capabilities.permitted[1]: unknown capability "CAP_TIME_TRAVEL"`) {
		t.Fatalf("got %v", err)
	}
}

// A Floor is shared by every container of a handler: concurrent Enforce
// calls must not write to it (go test -race checks), and must agree.
func TestFloorConcurrentUse(t *testing.T) {
	f, err := NewFloor(Config{Seccomp: SeccompRuntimeDefault, Capabilities: CapsConfig{Drop: []string{"NET_RAW"}}}, nil)
	if err != nil {
		t.Fatal(err)
	}
	s := Support{SeccompEnforcer: "x", CapabilityEnforcer: "x", KernelVersion: "6.1"}
	req := containerdDefault(t)
	results := make(chan string, 8)
	for range 8 {
		go func() {
			caps := slices.Clone(defaultCaps)
			spec := &specs.Spec{Process: &specs.Process{Capabilities: &specs.LinuxCapabilities{Bounding: caps}},
				Linux: &specs.Linux{Namespaces: containerNamespaces(), Seccomp: req}}
			if _, err := Enforce(spec, f, s); err != nil {
				results <- err.Error()
				return
			}
			b, _ := json.Marshal(spec)
			results <- string(b)
		}()
	}
	first := <-results
	for range 7 {
		if got := <-results; got != first {
			t.Fatalf("concurrent results differ:\n%s\n%s", first, got)
		}
	}
}
