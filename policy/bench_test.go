package policy

import (
	"encoding/json"
	"fmt"
	"os"
	"testing"

	"github.com/opencontainers/runtime-spec/specs-go"
)

// containerdDefault is containerd v2.4.2's RuntimeDefault profile
// (contrib/seccomp.DefaultProfile for containerd's default capability set
// on amd64), as a CRI request carries it. Regenerate it with a throwaway
// program calling that function if containerd's profile changes.
func containerdDefault(tb testing.TB) *specs.LinuxSeccomp {
	tb.Helper()
	raw, err := os.ReadFile("testdata/containerd-runtime-default.json")
	if err != nil {
		tb.Fatal(err)
	}
	var p specs.LinuxSeccomp
	if err := json.Unmarshal(raw, &p); err != nil {
		tb.Fatal(err)
	}
	return &p
}

var defaultCaps = []string{"CAP_CHOWN", "CAP_DAC_OVERRIDE", "CAP_FSETID", "CAP_FOWNER", "CAP_MKNOD",
	"CAP_NET_RAW", "CAP_SETGID", "CAP_SETUID", "CAP_SETFCAP", "CAP_SETPCAP", "CAP_NET_BIND_SERVICE",
	"CAP_SYS_CHROOT", "CAP_KILL", "CAP_AUDIT_WRITE"}

// largeRequest is a 400-syscall allowlist where every tenth syscall carries
// argument rules, to exercise the conditional merge path.
func largeRequest(tb testing.TB) *specs.LinuxSeccomp {
	base := containerdDefault(tb).Syscalls[0].Names
	p := &specs.LinuxSeccomp{DefaultAction: specs.ActErrno}
	for i := range 400 {
		name := fmt.Sprintf("fake_%d", i)
		if i < len(base) {
			name = base[i]
		}
		sc := specs.LinuxSyscall{Names: []string{name}, Action: specs.ActAllow}
		if i%10 == 0 {
			sc.Args = []specs.LinuxSeccompArg{{Index: 0, Value: uint64(i), Op: specs.OpLessThan}, {Index: 1, Value: 7, Op: specs.OpNotEqual}}
		}
		p.Syscalls = append(p.Syscalls, sc)
	}
	return p
}

// benchEnforce enforces the floor on requests, cycling through them. One
// request measures the common case, a cache hit (containerd sends the same
// RuntimeDefault profile for every pod); coldVariants distinct requests,
// more than the Floor remembers, measure the first sight of a profile.
func benchEnforce(b *testing.B, reqs ...*specs.LinuxSeccomp) {
	f, err := NewFloor(Config{Seccomp: SeccompRuntimeDefault, NoNewPrivileges: true,
		Capabilities: CapsConfig{Drop: []string{"NET_RAW"}}}, nil)
	if err != nil {
		b.Fatal(err)
	}
	s := Support{SeccompEnforcer: "x", CapabilityEnforcer: "x", NoNewPrivsEnforcer: "x", KernelVersion: "6.1"}
	caps := &specs.LinuxCapabilities{Bounding: defaultCaps, Effective: defaultCaps, Permitted: defaultCaps}
	b.ReportAllocs()
	i := 0
	for b.Loop() {
		// Enforce writes the spec; each iteration gets a fresh one that
		// shares the (unmodified) request profile.
		spec := &specs.Spec{
			Process: &specs.Process{Capabilities: caps},
			Linux:   &specs.Linux{Namespaces: containerNamespaces(), Seccomp: reqs[i%len(reqs)]},
		}
		i++
		if _, err := Enforce(spec, f, s); err != nil {
			b.Fatal(err)
		}
	}
}

// coldVariants is more distinct requests than a Floor's cache holds, so
// that cycling through them misses every time.
const coldVariants = 64

// variants returns n copies of req that differ only in listenerMetadata, a
// field the merge copies through: the work is the same, the cache key not.
func variants(req *specs.LinuxSeccomp, n int) []*specs.LinuxSeccomp {
	out := make([]*specs.LinuxSeccomp, n)
	for i := range out {
		c := *req
		c.ListenerMetadata = fmt.Sprintf("variant-%d", i)
		out[i] = &c
	}
	return out
}

// Hot: the request was seen before (the Floor's cache answers).
func BenchmarkEnforceRuntimeDefaultRequest(b *testing.B) { benchEnforce(b, containerdDefault(b)) }

func BenchmarkEnforceLargeRequest(b *testing.B) { benchEnforce(b, largeRequest(b)) }

// Cold: every request is new to the Floor.
func BenchmarkEnforceRuntimeDefaultRequestCold(b *testing.B) {
	benchEnforce(b, variants(containerdDefault(b), coldVariants)...)
}

func BenchmarkEnforceLargeRequestCold(b *testing.B) {
	benchEnforce(b, variants(largeRequest(b), coldVariants)...)
}
