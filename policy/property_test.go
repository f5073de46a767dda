package policy

import (
	"encoding/json"
	"fmt"
	"math"
	"math/rand/v2"
	"slices"
	"strings"
	"testing"

	"github.com/opencontainers/runtime-spec/specs-go"
)

// The property tests check the merge against an independent evaluator:
// for many generated floors and requests, and many calls (name, args),
//
//	every action a runtime could pick from the output (any matching rule,
//	whatever the overlap resolution, or the default) is at least as strict
//	as the floor's and the request's action for that call,
//
// and, when no profile has overlapping rules of different actions on one
// syscall (so nothing forces an approximation), exactly as strict.

var (
	propNames = []string{"read", "socket", "ioctl", "clone", "ptrace"}
	propVals  = []uint64{0, 1, 2, 3, 5, 7, 8, 10, 15, 16, 17, 0xff, 0x100, 0x1000, math.MaxUint64 - 1, math.MaxUint64}
	propMasks = []uint64{0, 1, 0x3, 0xf0, 0xff, 0x7e020000, math.MaxUint64}
	propActs  = []specs.LinuxSeccompAction{specs.ActKillProcess, specs.ActKill, specs.ActKillThread, specs.ActTrap,
		specs.ActErrno, specs.ActTrace, specs.ActNotify, specs.ActLog, specs.ActAllow}
	propOps = []specs.LinuxSeccompOperator{specs.OpNotEqual, specs.OpLessThan, specs.OpLessEqual, specs.OpEqualTo,
		specs.OpGreaterEqual, specs.OpGreaterThan, specs.OpMaskedEqual}
)

type gen struct {
	r *rand.Rand
	// uniform: all rules of one syscall share one action, so the merge
	// has no reason to approximate and must be exact.
	uniform bool
}

func (g gen) act() (specs.LinuxSeccompAction, *uint) {
	a := propActs[g.r.IntN(len(propActs))]
	if a == specs.ActErrno && g.r.IntN(2) == 0 {
		v := uint(1 + g.r.IntN(3)*11)
		return a, &v
	}
	return a, nil
}

func (g gen) arg() specs.LinuxSeccompArg {
	a := specs.LinuxSeccompArg{Index: uint(g.r.IntN(3)), Op: propOps[g.r.IntN(len(propOps))]}
	a.Value = propVals[g.r.IntN(len(propVals))]
	if a.Op == specs.OpMaskedEqual {
		a.Value = propMasks[g.r.IntN(len(propMasks))]
		a.ValueTwo = propVals[g.r.IntN(len(propVals))]
	}
	return a
}

func (g gen) profile() *specs.LinuxSeccomp {
	p := &specs.LinuxSeccomp{}
	p.DefaultAction, p.DefaultErrnoRet = g.act()
	for _, n := range propNames {
		k := g.r.IntN(4)
		act, ret := g.act()
		for range k {
			if !g.uniform {
				act, ret = g.act()
			}
			sc := specs.LinuxSyscall{Names: []string{n}, Action: act, ErrnoRet: ret}
			for range g.r.IntN(3) {
				sc.Args = append(sc.Args, g.arg())
			}
			if !g.uniform && g.r.IntN(4) == 0 {
				sc.Names = append(sc.Names, propNames[g.r.IntN(len(propNames))])
			}
			p.Syscalls = append(p.Syscalls, sc)
		}
	}
	return p
}

// evalStrict is the strict reading of a profile, written independently of
// readRules: the strictest matching rule, else the default. A rule that
// compares one argument twice matches on any comparison when its action is
// at least as strict as the default (runc's OR), else on all of them.
func evalStrict(p *specs.LinuxSeccomp, name string, args [6]uint64) action {
	def := newAction(p.DefaultAction, p.DefaultErrnoRet)
	best, found := action{}, false
	for _, sc := range p.Syscalls {
		if !slices.Contains(sc.Names, name) {
			continue
		}
		a := newAction(sc.Action, sc.ErrnoRet)
		seen, repeated := map[uint]bool{}, false
		for _, c := range sc.Args {
			repeated = repeated || seen[c.Index]
			seen[c.Index] = true
		}
		or := repeated && a.rank() >= def.rank()
		m := !or
		for _, c := range sc.Args {
			if or {
				m = m || rawMatch(c, args)
			} else {
				m = m && rawMatch(c, args)
			}
		}
		if m && (!found || a.rank() > best.rank()) {
			best, found = a, true
		}
	}
	if !found {
		return def
	}
	return best
}

func rawMatch(c specs.LinuxSeccompArg, args [6]uint64) bool {
	x := args[c.Index]
	switch c.Op {
	case specs.OpNotEqual:
		return x != c.Value
	case specs.OpLessThan:
		return x < c.Value
	case specs.OpLessEqual:
		return x <= c.Value
	case specs.OpEqualTo:
		return x == c.Value
	case specs.OpGreaterEqual:
		return x >= c.Value
	case specs.OpGreaterThan:
		return x > c.Value
	case specs.OpMaskedEqual:
		return x&c.Value == c.ValueTwo&c.Value
	}
	panic("unknown op " + c.Op)
}

// evalAll returns every action a runtime could take for the call: the
// action of each matching rule, or the default when none matches. It fails
// the test on a rule that compares one argument twice (runc would OR it).
func evalAll(t *testing.T, p *specs.LinuxSeccomp, name string, args [6]uint64) []action {
	var out []action
	for _, sc := range p.Syscalls {
		if !slices.Contains(sc.Names, name) {
			continue
		}
		if repeatsIndex(sc.Args) {
			t.Fatalf("output rule compares one argument twice: %+v", sc)
		}
		m := true
		for _, c := range sc.Args {
			m = m && rawMatch(c, args)
		}
		if m {
			out = append(out, newAction(sc.Action, sc.ErrnoRet))
		}
	}
	if len(out) == 0 {
		out = append(out, newAction(p.DefaultAction, p.DefaultErrnoRet))
	}
	return out
}

// probes returns argument vectors: random values plus each constant of the
// profiles and its neighbours, so rule boundaries are exercised.
func probes(r *rand.Rand, ps ...*specs.LinuxSeccomp) [][6]uint64 {
	vals := slices.Clone(propVals)
	for _, p := range ps {
		for _, sc := range p.Syscalls {
			for _, a := range sc.Args {
				vals = append(vals, a.Value, a.Value+1, a.Value-1, a.ValueTwo, a.ValueTwo|^a.Value)
			}
		}
	}
	out := make([][6]uint64, 48)
	for i := range out {
		for j := range 3 {
			out[i][j] = vals[r.IntN(len(vals))]
		}
	}
	return out
}

func TestPropertyMergeNeverLoosens(t *testing.T) {
	approximated, probed := 0, 0
	defer func() { t.Logf("%d of %d probes on approximated syscalls", approximated, probed) }()
	for seed := range uint64(1500) {
		r := rand.New(rand.NewPCG(seed, 0x5eccc0))
		g := gen{r: r, uniform: seed%3 == 0}
		fp, rp := g.profile(), g.profile()
		complain := seed%5 == 4
		out, approx := mergeForTest(t, fp, rp, complain)
		checkWellFormed(t, seed, out)
		for _, name := range append(slices.Clone(propNames), "absent") {
			for _, args := range probes(r, fp, rp) {
				f, q := evalStrict(fp, name, args), evalStrict(rp, name, args)
				if complain {
					f = toLog(f)
				}
				want := stricter(f, q)
				probed++
				for _, got := range evalAll(t, out, name, args) {
					if got.rank() < want.rank() {
						t.Fatalf("seed %d: %s%v: output may %s, floor says %s, request %s\nfloor %s\nrequest %s\nout %s",
							seed, name, args[:3], got, f, q, js(fp), js(rp), js(out))
					}
					if approx[name] {
						approximated++
						continue
					}
					if got.rank() != want.rank() {
						t.Fatalf("seed %d: %s%v: output may %s, want exactly %s\nfloor %s\nrequest %s\nout %s",
							seed, name, args[:3], got, want, js(fp), js(rp), js(out))
					}
				}
			}
		}
	}
}

// mergeForTest runs the floor through NewFloor (as a profile file) and
// Enforce, so parsing, reading and rendering are all under test.
func mergeForTest(t *testing.T, fp, rp *specs.LinuxSeccomp, complain bool) (*specs.LinuxSeccomp, map[string]bool) {
	t.Helper()
	raw, err := json.Marshal(fp)
	if err != nil {
		t.Fatal(err)
	}
	cfg := Config{Seccomp: "/floor.json"}
	if complain {
		cfg.Mode = ModeComplain
	}
	f, err := NewFloor(cfg, raw)
	if err != nil {
		t.Fatalf("NewFloor: %v\n%s", err, raw)
	}
	spec := &specs.Spec{Process: &specs.Process{}, Linux: &specs.Linux{Namespaces: containerNamespaces(), Seccomp: rp}}
	d, err := enforce(spec, f, Support{SeccompEnforcer: "test"}, "amd64")
	if err != nil {
		t.Fatalf("Enforce: %v", err)
	}
	approx := map[string]bool{}
	for _, ch := range d.Controls[0].Changed {
		if name, ok := strings.CutSuffix(ch, ": "+approxNote); ok {
			approx[strings.TrimPrefix(name, "linux.seccomp: ")] = true
		}
	}
	again := &specs.Spec{Process: &specs.Process{}, Linux: &specs.Linux{Namespaces: containerNamespaces(), Seccomp: rp}}
	if _, err := enforce(again, f, Support{SeccompEnforcer: "test"}, "amd64"); err != nil {
		t.Fatal(err)
	}
	if js(spec.Linux.Seccomp) != js(again.Linux.Seccomp) {
		t.Fatalf("two runs differ:\n%s\n%s", js(spec.Linux.Seccomp), js(again.Linux.Seccomp))
	}
	return spec.Linux.Seccomp, approx
}

// checkWellFormed: a profile runc and runsc accept, with no duplicate
// (names, action, args) rules and no duplicate names within a rule.
func checkWellFormed(t *testing.T, seed uint64, p *specs.LinuxSeccomp) {
	t.Helper()
	if err := validateRequest(p); err != nil {
		t.Fatalf("seed %d: output does not validate: %v", seed, err)
	}
	seen := map[string]bool{}
	for _, sc := range p.Syscalls {
		if !slices.IsSorted(sc.Names) || len(slices.Compact(slices.Clone(sc.Names))) != len(sc.Names) {
			t.Fatalf("seed %d: names not sorted and unique: %v", seed, sc.Names)
		}
		for _, n := range sc.Names {
			k := fmt.Sprint(n, sc.Action, sc.ErrnoRet, sc.Args)
			if sc.ErrnoRet != nil {
				k = fmt.Sprint(n, sc.Action, *sc.ErrnoRet, sc.Args)
			}
			if seen[k] {
				t.Fatalf("seed %d: duplicate rule %s", seed, k)
			}
			seen[k] = true
		}
	}
}

// js renders v for a failure message, cut to a readable length.
func js(v any) string {
	b, _ := json.Marshal(v)
	if len(b) > 3000 {
		return string(b[:3000]) + "..."
	}
	return string(b)
}

// The runtime-default floor, made capability-aware against the clamped
// bounding set: for random capability sets, ceilings and requests the
// enforced profile never allows what moby's profile resolved for the
// resulting bounding set denies, nor what the request denies.
func TestPropertyRuntimeDefaultFloor(t *testing.T) {
	names := []string{"read", "ptrace", "clone", "clone3", "socket", "personality", "mount", "unshare",
		"bpf", "reboot", "chroot", "open_by_handle_at", "kexec_load", "arch_prctl"}
	vals := []uint64{0, 1, 2, 8, 16, 17, 0x10000000, 0x20000, 0x7e020000, 0xffffffff}
	for seed := range uint64(300) {
		r := rand.New(rand.NewPCG(seed, 0xdef))
		var reqCaps, ceiling []string
		for _, c := range capabilityNames {
			if r.IntN(3) == 0 {
				reqCaps = append(reqCaps, c)
			}
			if r.IntN(2) == 0 {
				ceiling = append(ceiling, c)
			}
		}
		f, err := NewFloor(Config{Seccomp: SeccompRuntimeDefault, Capabilities: CapsConfig{Ceiling: ceiling}}, nil)
		if err != nil {
			t.Fatal(err)
		}
		g := gen{r: r}
		rp := g.profile()
		for i := range rp.Syscalls { // aim the generated rules at real syscalls
			for j := range rp.Syscalls[i].Names {
				rp.Syscalls[i].Names[j] = names[r.IntN(len(names))]
			}
		}
		spec := &specs.Spec{Process: &specs.Process{Capabilities: &specs.LinuxCapabilities{Bounding: reqCaps}},
			Linux: &specs.Linux{Namespaces: containerNamespaces(), Seccomp: rp}}
		kernel := []string{"", "4.4", "6.1"}[r.IntN(3)]
		if _, err := enforce(spec, f, Support{SeccompEnforcer: "x", CapabilityEnforcer: "x", KernelVersion: kernel}, "amd64"); err != nil {
			t.Fatalf("seed %d: %v", seed, err)
		}
		bounding, _ := parseCapList("", spec.Process.Capabilities.Bounding)
		kv, _ := parseKernelVersion(kernel)
		floor := runtimeDefaultTemplate().resolve("amd64", kv, bounding)
		out := spec.Linux.Seccomp
		checkWellFormed(t, seed, out)
		for _, n := range names {
			for range 20 {
				var args [6]uint64
				for k := range 3 {
					args[k] = vals[r.IntN(len(vals))]
				}
				want := stricter(evalStrict(floor, n, args), evalStrict(rp, n, args))
				for _, got := range evalAll(t, out, n, args) {
					if got.rank() < want.rank() {
						t.Fatalf("seed %d: %s%v: output may %s, want at least %s (bounding %v)", seed, n, args[:3], got, want, bounding.names())
					}
				}
			}
		}
	}
}
