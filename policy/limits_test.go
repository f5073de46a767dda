package policy

import (
	"encoding/json"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/opencontainers/runtime-spec/specs-go"
)

// manyRules is a profile naming socket in n rules, each comparing its
// first argument with op.
func manyRules(n int, op specs.LinuxSeccompOperator) *specs.LinuxSeccomp {
	p := &specs.LinuxSeccomp{DefaultAction: specs.ActErrno}
	for i := range n {
		p.Syscalls = append(p.Syscalls, specs.LinuxSyscall{Names: []string{"socket"}, Action: specs.ActAllow,
			Args: []specs.LinuxSeccompArg{{Index: 0, Value: uint64(i + 1), Op: op}}})
	}
	return p
}

// The merge compares one syscall's rules pairwise: a profile repeating a
// name in 40,000 rules took seconds per container. Beyond
// maxRulesPerSyscall rules it is refused, naming the rule; at the bound,
// even the slowest shape of rule takes about 0.1 s (5 s leaves room for
// the race detector and a busy machine).
func TestRulesPerSyscallBounded(t *testing.T) {
	f := runtimeDefaultFloor(t)
	s := Support{SeccompEnforcer: "x", CapabilityEnforcer: "x"}
	want := `linux.seccomp.syscalls[4096].names[0]: syscall "socket" has more than 4096 rules`
	spec := &specs.Spec{Process: &specs.Process{}, Linux: &specs.Linux{Namespaces: containerNamespaces(), Seccomp: manyRules(maxRulesPerSyscall+1, specs.OpEqualTo)}}
	if _, err := Enforce(spec, f, s); !errors.Is(err, ErrInvalid) || !strings.Contains(err.Error(), want) {
		t.Fatalf("request: got %v, want ErrInvalid naming %q", err, want)
	}
	raw, _ := json.Marshal(manyRules(maxRulesPerSyscall+1, specs.OpEqualTo))
	if _, err := ParseSeccompProfile(raw); err == nil || !strings.Contains(err.Error(), strings.TrimPrefix(want, "linux.seccomp.")) {
		t.Fatalf("profile: got %v", err)
	}
	for _, op := range []specs.LinuxSeccompOperator{specs.OpEqualTo, specs.OpLessEqual, specs.OpNotEqual} {
		spec := &specs.Spec{Process: &specs.Process{}, Linux: &specs.Linux{Namespaces: containerNamespaces(), Seccomp: manyRules(maxRulesPerSyscall, op)}}
		start := time.Now()
		if _, err := Enforce(spec, f, s); err != nil {
			t.Fatal(err)
		}
		if took := time.Since(start); took > 5*time.Second {
			t.Errorf("%d %s rules on one syscall took %v", maxRulesPerSyscall, op, took)
		}
	}
}
