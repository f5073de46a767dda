package policy

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"runtime"

	"github.com/moby/profiles/seccomp"
	"github.com/opencontainers/runtime-spec/specs-go"
)

// ParseSeccompProfile accepts the OCI runtime-spec LinuxSeccomp JSON and the
// Docker/moby profile JSON (names or name, archMap, includes/excludes,
// errnoRet, args) and returns an OCI LinuxSeccomp. Unknown fields, actions,
// operators, architectures, flags, capabilities and syscall names (see
// syscallNames), empty syscall names, and a syscall in more than
// maxRulesPerSyscall rules are errors naming the JSON path.
//
// Conditional rules are resolved for the build architecture, an unknown
// kernel (a rule gated on minKernel is kept only when it is stricter than
// the default action) and no capabilities: the narrowest reading. A Floor
// keeps the conditions and resolves them per container against the
// container's effective capabilities.
func ParseSeccompProfile(data []byte) (*specs.LinuxSeccomp, error) {
	t, err := parseTemplate(data)
	if err != nil {
		return nil, err
	}
	return t.resolve(nativeArch(runtime.GOARCH), kernelVersion{}, 0), nil
}

// template is a profile whose rules may still carry moby's conditions.
type template struct {
	head    specs.LinuxSeccomp // everything but the syscalls
	archMap []seccomp.Architecture
	rules   []tmplRule
}

type tmplRule struct {
	sc       specs.LinuxSyscall
	inc, exc *seccomp.Filter
}

func parseTemplate(data []byte) (*template, error) {
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.DisallowUnknownFields()
	var p seccomp.Seccomp
	if err := dec.Decode(&p); err != nil {
		return nil, fmt.Errorf("seccomp profile: %w", err)
	}
	if _, err := dec.Token(); !errors.Is(err, io.EOF) {
		return nil, errors.New("seccomp profile: trailing data after the JSON object")
	}
	return newTemplate(&p)
}

// newTemplate validates a decoded moby profile and converts it.
func newTemplate(p *seccomp.Seccomp) (*template, error) {
	t := &template{head: p.LinuxSeccomp, archMap: p.ArchMap}
	t.head.Syscalls = nil
	errs := validateHead(&p.LinuxSeccomp, "")
	if p.DefaultAction == "" {
		errs = append(errs, errors.New("defaultAction: required"))
	}
	if len(p.Architectures) > 0 && len(p.ArchMap) > 0 {
		errs = append(errs, errors.New("archMap: set together with architectures; use one"))
	}
	for i, a := range p.ArchMap {
		if !knownArch(a.Arch) {
			errs = append(errs, fmt.Errorf("archMap[%d].architecture: unknown architecture %q", i, a.Arch))
		}
		for j, s := range a.SubArches {
			if !knownArch(s) {
				errs = append(errs, fmt.Errorf("archMap[%d].subArchitectures[%d]: unknown architecture %q", i, j, s))
			}
		}
	}
	perName := map[string]int{} // rules per syscall, all conditions taken
	for i, s := range p.Syscalls {
		path := fmt.Sprintf("syscalls[%d]", i)
		if s == nil {
			errs = append(errs, fmt.Errorf("%s: null", path))
			continue
		}
		sc := s.LinuxSyscall
		if s.Name != "" {
			if len(sc.Names) > 0 {
				errs = append(errs, fmt.Errorf("%s: both name and names are set; use names", path))
			}
			sc.Names = []string{s.Name}
		}
		errs2 := validateSyscall(&sc, func() string { return path })
		for j, n := range sc.Names {
			if len(errs2) == 0 && !knownSyscall(n) {
				errs = append(errs, fmt.Errorf("%s.names[%d]: unknown syscall %q", path, j, n))
			}
		}
		if len(errs2) > 0 {
			errs = append(errs, errs2...)
		} else if rs, err := readRules(&sc, newAction(p.DefaultAction, p.DefaultErrnoRet), &ruleArena{}); err != nil {
			errs = append(errs, fmt.Errorf("%s.args: %w", path, err))
		} else {
			for j, n := range sc.Names {
				if perName[n] += len(rs); perName[n] > maxRulesPerSyscall && perName[n]-len(rs) <= maxRulesPerSyscall {
					errs = append(errs, fmt.Errorf("%s.names[%d]: syscall %q has more than %d rules", path, j, n, maxRulesPerSyscall))
				}
			}
		}
		errs = append(errs, validateFilter(s.Includes, path+".includes")...)
		errs = append(errs, validateFilter(s.Excludes, path+".excludes")...)
		t.rules = append(t.rules, tmplRule{sc: sc, inc: s.Includes, exc: s.Excludes})
	}
	if len(errs) > 0 {
		return nil, errors.Join(errs...)
	}
	return t, nil
}

// validateHead checks the profile-wide fields; prefix is "" for a profile
// file and "linux.seccomp." for a request.
func validateHead(p *specs.LinuxSeccomp, prefix string) []error {
	var errs []error
	if p.DefaultAction != "" && actionRank(p.DefaultAction) == 0 {
		errs = append(errs, fmt.Errorf("%sdefaultAction: unknown action %q", prefix, p.DefaultAction))
	}
	for i, a := range p.Architectures {
		if !knownArch(a) {
			errs = append(errs, fmt.Errorf("%sarchitectures[%d]: unknown architecture %q", prefix, i, a))
		}
	}
	for i, f := range p.Flags {
		if !knownFlag(f) {
			errs = append(errs, fmt.Errorf("%sflags[%d]: unknown flag %q", prefix, i, f))
		}
	}
	return errs
}

// validateSyscall checks one rule; path gives its JSON path, built only
// when there is an error to report (requests have hundreds of rules).
func validateSyscall(sc *specs.LinuxSyscall, pathf func() string) []error {
	if syscallOK(sc) {
		return nil
	}
	path := pathf()
	var errs []error
	if len(sc.Names) == 0 {
		errs = append(errs, fmt.Errorf("%s.names: empty", path))
	}
	for j, n := range sc.Names {
		if err := checkSyscallName(n); err != nil {
			errs = append(errs, fmt.Errorf("%s.names[%d]: %w", path, j, err))
		}
	}
	if actionRank(sc.Action) == 0 {
		errs = append(errs, fmt.Errorf("%s.action: unknown action %q", path, sc.Action))
	}
	for j, a := range sc.Args {
		if a.Index >= syscallMaxArgs {
			errs = append(errs, fmt.Errorf("%s.args[%d].index: %d is not below %d", path, j, a.Index, syscallMaxArgs))
		}
		if !knownOp(a.Op) {
			errs = append(errs, fmt.Errorf("%s.args[%d].op: unknown operator %q", path, j, a.Op))
		}
	}
	return errs
}

// syscallOK is validateSyscall's fast path for a rule without problems.
func syscallOK(sc *specs.LinuxSyscall) bool {
	if len(sc.Names) == 0 || actionRank(sc.Action) == 0 {
		return false
	}
	for _, n := range sc.Names {
		if checkSyscallName(n) != nil {
			return false
		}
	}
	for _, a := range sc.Args {
		if a.Index >= syscallMaxArgs || !knownOp(a.Op) {
			return false
		}
	}
	return true
}

func validateFilter(f *seccomp.Filter, path string) []error {
	if f == nil {
		return nil
	}
	var errs []error
	for i, c := range f.Caps {
		if _, ok := capNumber(c); !ok {
			errs = append(errs, fmt.Errorf("%s.caps[%d]: unknown capability %q", path, i, c))
		}
	}
	for i, a := range f.Arches {
		if _, ok := nativeArches[a]; !ok {
			errs = append(errs, fmt.Errorf("%s.arches[%d]: unknown architecture %q", path, i, a))
		}
	}
	return errs
}

// checkSyscallName accepts kernel syscall names: lower-case letters, digits
// and underscores. Anything else is a typo that runc would silently ignore.
func checkSyscallName(n string) error {
	if n == "" {
		return errors.New("empty syscall name")
	}
	for i := 0; i < len(n); i++ {
		if r := n[i]; !(r >= 'a' && r <= 'z' || r >= '0' && r <= '9' || r == '_') {
			return fmt.Errorf("syscall name %q has a character other than [a-z0-9_]", n)
		}
	}
	return nil
}

func knownOp(o specs.LinuxSeccompOperator) bool {
	switch o {
	case specs.OpNotEqual, specs.OpLessThan, specs.OpLessEqual, specs.OpEqualTo,
		specs.OpGreaterEqual, specs.OpGreaterThan, specs.OpMaskedEqual:
		return true
	}
	return false
}

func knownFlag(f specs.LinuxSeccompFlag) bool {
	switch f {
	case specs.LinuxSeccompFlagLog, specs.LinuxSeccompFlagSpecAllow,
		specs.LinuxSeccompFlagWaitKillableRecv, "SECCOMP_FILTER_FLAG_TSYNC":
		return true
	}
	return false
}

func knownArch(a specs.Arch) bool {
	switch a {
	case specs.ArchX86, specs.ArchX86_64, specs.ArchX32, specs.ArchARM, specs.ArchAARCH64,
		specs.ArchMIPS, specs.ArchMIPS64, specs.ArchMIPS64N32, specs.ArchMIPSEL,
		specs.ArchMIPSEL64, specs.ArchMIPSEL64N32, specs.ArchPPC, specs.ArchPPC64,
		specs.ArchPPC64LE, specs.ArchS390, specs.ArchS390X, specs.ArchPARISC,
		specs.ArchPARISC64, specs.ArchRISCV64, specs.ArchLOONGARCH64, specs.ArchM68K,
		specs.ArchSH, specs.ArchSHEB:
		return true
	}
	return false
}
