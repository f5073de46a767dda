package policy

import (
	"math"
	"math/rand/v2"
	"slices"
	"strings"
	"testing"

	"github.com/opencontainers/runtime-spec/specs-go"
)

// runscFamilies is what the runsc backend declares (sandbox/runsc); the
// integration test TestSocketFamiliesRunsc checks it against gVisor.
var runscFamilies = Families(AFUnix, AFInet, AFInet6, AFNetlink, AFPacket)

func enforceRuntimeDefault(t *testing.T, families uint64, req *specs.LinuxSeccomp) (*specs.LinuxSeccomp, Control) {
	t.Helper()
	f, err := NewFloor(Config{Seccomp: "runtime-default"}, nil)
	if err != nil {
		t.Fatal(err)
	}
	return enforceOn(t, f, families, req)
}

func enforceOn(t *testing.T, f *Floor, families uint64, req *specs.LinuxSeccomp) (*specs.LinuxSeccomp, Control) {
	t.Helper()
	spec := &specs.Spec{Process: &specs.Process{Args: []string{"sh"}}, Linux: &specs.Linux{Namespaces: containerNamespaces(), Seccomp: req}}
	d, err := enforce(spec, f, Support{Backend: "runsc", SeccompEnforcer: "test", KernelVersion: "4.4", SocketFamilies: families}, "amd64")
	if err != nil {
		t.Fatal(err)
	}
	return spec.Linux.Seccomp, d.Controls[0]
}

// TestFoldSocketFamiliesExact: the folded runtime-default floor decides
// every call as the unfolded one does, except socket for a family the
// backend does not implement, which it lets through to the backend's
// EAFNOSUPPORT; and it has no rule left that compares socket's arguments.
func TestFoldSocketFamiliesExact(t *testing.T) {
	for run := range 2 { // the second run is served by the floor's cache
		plain, _ := enforceRuntimeDefault(t, 0, nil)
		folded, ctl := enforceRuntimeDefault(t, runscFamilies, nil)
		if n := len(folded.Syscalls); n >= len(plain.Syscalls)-20 {
			t.Errorf("run %d: %d rules folded to %d", run, len(plain.Syscalls), n)
		}
		if !slices.ContainsFunc(ctl.Changed, func(s string) bool { return strings.Contains(s, "socket: 30 address-family rules folded") }) {
			t.Errorf("run %d: no fold in the record: %q", run, ctl.Changed)
		}
		names := map[string]bool{}
		for _, sc := range plain.Syscalls {
			for _, n := range sc.Names {
				names[n] = true
			}
		}
		for _, sc := range folded.Syscalls {
			if slices.Contains(sc.Names, "socket") && len(sc.Args) > 0 {
				t.Errorf("run %d: socket rule with conditions left: %+v", run, sc)
			}
		}
		vals := append(slices.Clone(propVals), 38, 40, 44, 45, 46, 63, 64, 0x20000, 0x20008, math.MaxUint32)
		for name := range names {
			for _, v := range vals {
				args := [6]uint64{v}
				was, is := evalStrict(plain, name, args), evalStrict(folded, name, args)
				switch {
				case name == "socket" && v < 64 && runscFamilies&(1<<v) != 0:
					if was.kind != specs.ActAllow || is.kind != specs.ActAllow {
						t.Errorf("run %d: socket(%d), implemented: %s before, %s folded; want allowed both", run, v, was, is)
					}
				case name == "socket":
					if is.kind != specs.ActAllow {
						t.Errorf("run %d: socket(%d): %s folded, want the call passed to the backend", run, v, is)
					}
				case was != is:
					t.Errorf("run %d: %s(%#x): %s before, %s folded", run, name, v, was, is)
				}
			}
		}
	}
}

// TestFoldSocketFamiliesCacheKey: one floor serves backends with and
// without the families from its result cache without mixing them up.
func TestFoldSocketFamiliesCacheKey(t *testing.T) {
	f, err := NewFloor(Config{Seccomp: "runtime-default"}, nil)
	if err != nil {
		t.Fatal(err)
	}
	hasArgs := func(p *specs.LinuxSeccomp) bool {
		return slices.ContainsFunc(p.Syscalls, func(sc specs.LinuxSyscall) bool {
			return slices.Contains(sc.Names, "socket") && len(sc.Args) > 0
		})
	}
	for i, families := range []uint64{0, runscFamilies, 0, runscFamilies} {
		out, ctl := enforceOn(t, f, families, nil)
		folded := slices.ContainsFunc(ctl.Changed, func(s string) bool { return strings.Contains(s, "folded") })
		if want := families != 0; folded != want || hasArgs(out) == want {
			t.Errorf("call %d, families %#x: folded in the record %v, socket rules with conditions %v", i, families, folded, hasArgs(out))
		}
	}
}

// TestFoldSocketFamiliesKept: whenever the rules for socket deny something
// the backend implements, or are not plain allows on the family, the
// profile is left as it is.
func TestFoldSocketFamiliesKept(t *testing.T) {
	// A request that denies AF_NETLINK: the merge keeps it, so must the fold.
	req := &specs.LinuxSeccomp{DefaultAction: specs.ActAllow, Syscalls: []specs.LinuxSyscall{{
		Names: []string{"socket"}, Action: specs.ActErrno,
		Args: []specs.LinuxSeccompArg{{Index: 0, Value: AFNetlink, Op: specs.OpEqualTo}},
	}}}
	out, ctl := enforceRuntimeDefault(t, runscFamilies, req)
	if got := evalStrict(out, "socket", [6]uint64{AFNetlink}); got.kind != specs.ActErrno {
		t.Errorf("socket(AF_NETLINK) after a request that denies it: %s", got)
	}
	if slices.ContainsFunc(ctl.Changed, func(s string) bool { return strings.Contains(s, "folded") }) {
		t.Errorf("folded although AF_NETLINK is denied: %q", ctl.Changed)
	}

	allow := func(args ...specs.LinuxSeccompArg) specs.LinuxSyscall {
		return specs.LinuxSyscall{Names: []string{"socket"}, Action: specs.ActAllow, Args: args}
	}
	eq := func(i uint, v uint64) specs.LinuxSeccompArg {
		return specs.LinuxSeccompArg{Index: i, Value: v, Op: specs.OpEqualTo}
	}
	lt := specs.LinuxSeccompArg{Index: 0, Value: 64, Op: specs.OpLessThan}
	for name, p := range map[string]*specs.LinuxSeccomp{
		"default allows":    {DefaultAction: specs.ActAllow, Syscalls: []specs.LinuxSyscall{allow(lt)}},
		"default logs":      {DefaultAction: specs.ActLog, Syscalls: []specs.LinuxSyscall{allow(lt)}},
		"no socket rule":    {DefaultAction: specs.ActErrno},
		"a family missing":  {DefaultAction: specs.ActErrno, Syscalls: []specs.LinuxSyscall{allow(eq(0, AFUnix)), allow(eq(0, AFInet))}},
		"second condition":  {DefaultAction: specs.ActErrno, Syscalls: []specs.LinuxSyscall{allow(lt, eq(1, 1))}},
		"another argument":  {DefaultAction: specs.ActErrno, Syscalls: []specs.LinuxSyscall{allow(specs.LinuxSeccompArg{Index: 1, Value: 64, Op: specs.OpLessThan})}},
		"unconditional":     {DefaultAction: specs.ActErrno, Syscalls: []specs.LinuxSyscall{allow()}},
		"an errno rule too": {DefaultAction: specs.ActErrno, Syscalls: []specs.LinuxSyscall{allow(lt), {Names: []string{"socket"}, Action: specs.ActErrno, Args: []specs.LinuxSeccompArg{eq(0, 40)}}}},
	} {
		before := js(p)
		if note := foldSocketFamilies(p, runscFamilies); note != "" || js(p) != before {
			t.Errorf("%s: folded (%q):\n%s\n->\n%s", name, note, before, js(p))
		}
	}
	if note := foldSocketFamilies(&specs.LinuxSeccomp{DefaultAction: specs.ActErrno, Syscalls: []specs.LinuxSyscall{allow(lt)}}, 0); note != "" {
		t.Errorf("folded with no family mask: %s", note)
	}
}

// TestFoldSocketFamiliesShapes: each comparison operator counts the
// families it allows; socket joins an existing allowlist, or gets a rule.
func TestFoldSocketFamiliesShapes(t *testing.T) {
	for _, tc := range []struct {
		name string
		args []specs.LinuxSeccompArg
	}{
		{"lt", []specs.LinuxSeccompArg{{Value: 18, Op: specs.OpLessThan}}},
		{"le", []specs.LinuxSeccompArg{{Value: 17, Op: specs.OpLessEqual}}},
		{"ne", []specs.LinuxSeccompArg{{Value: 40, Op: specs.OpNotEqual}}},
		{"masked", []specs.LinuxSeccompArg{{Value: ^uint64(31), ValueTwo: 0, Op: specs.OpMaskedEqual}}},
		{"gt and lt", []specs.LinuxSeccompArg{{Value: 0, Op: specs.OpGreaterThan}, {Value: 18, Op: specs.OpLessThan}}},
		{"ge and eq", []specs.LinuxSeccompArg{{Value: 1, Op: specs.OpGreaterEqual}, {Value: AFPacket, Op: specs.OpEqualTo}}},
	} {
		// One rule per comparison: together they must cover the families.
		p := &specs.LinuxSeccomp{DefaultAction: specs.ActKillProcess}
		for _, a := range tc.args {
			p.Syscalls = append(p.Syscalls, specs.LinuxSyscall{Names: []string{"socket", "bind"}, Action: specs.ActAllow, Args: []specs.LinuxSeccompArg{a}})
		}
		if note := foldSocketFamilies(p, runscFamilies); note == "" {
			t.Errorf("%s: not folded: %s", tc.name, js(p))
			continue
		}
		want := []specs.LinuxSyscall{}
		for _, a := range tc.args {
			want = append(want, specs.LinuxSyscall{Names: []string{"bind"}, Action: specs.ActAllow, Args: []specs.LinuxSeccompArg{a}})
		}
		want = append(want, specs.LinuxSyscall{Names: []string{"socket"}, Action: specs.ActAllow})
		if js(p.Syscalls) != js(want) {
			t.Errorf("%s: got %s, want %s", tc.name, js(p.Syscalls), js(want))
		}
	}

	names := []string{"read", "write"}
	p := &specs.LinuxSeccomp{DefaultAction: specs.ActErrno, Syscalls: []specs.LinuxSyscall{
		{Names: names, Action: specs.ActAllow},
		{Names: []string{"socket"}, Action: specs.ActAllow, Args: []specs.LinuxSeccompArg{{Value: 18, Op: specs.OpLessThan}}},
	}}
	if foldSocketFamilies(p, runscFamilies) == "" || js(p.Syscalls) != js([]specs.LinuxSyscall{{Names: []string{"read", "write", "socket"}, Action: specs.ActAllow}}) {
		t.Errorf("socket did not join the allowlist: %s", js(p.Syscalls))
	}
	if !slices.Equal(names, []string{"read", "write"}) {
		t.Errorf("the allowlist's names were changed in place: %q", names)
	}
}

// TestPropertyFoldSocketFamilies: on random profiles, the fold changes no
// decision but socket's for families outside the mask (which the backend
// refuses itself), and when it applies, socket for every family in the mask
// was allowed before.
func TestPropertyFoldSocketFamilies(t *testing.T) {
	folded := 0
	for seed := range uint64(3000) {
		r := rand.New(rand.NewPCG(seed, 0xf01d))
		g := gen{r: r, uniform: seed%2 == 0}
		p := g.profile()
		// Some profiles get the shape the fold is for: allows on a0 alone.
		if seed%3 == 0 {
			for i := range p.Syscalls {
				if slices.Contains(p.Syscalls[i].Names, "socket") {
					p.Syscalls[i].Action, p.Syscalls[i].ErrnoRet = specs.ActAllow, nil
					p.Syscalls[i].Args = []specs.LinuxSeccompArg{g.arg()}
					p.Syscalls[i].Args[0].Index = 0
				}
			}
		}
		before := copySeccomp(p)
		if foldSocketFamilies(p, runscFamilies) != "" {
			folded++
		}
		for _, name := range propNames {
			for _, args := range probes(r, before) {
				was, is := evalStrict(before, name, args), evalStrict(p, name, args)
				if name == "socket" && (args[0] >= 64 || runscFamilies&(1<<args[0]) == 0) {
					continue
				}
				if was != is {
					t.Fatalf("seed %d: %s%v: %s before the fold, %s after\nbefore %s\nafter %s", seed, name, args[:3], was, is, js(before), js(p))
				}
			}
		}
	}
	if folded == 0 {
		t.Fatal("no random profile was folded: the property was never exercised")
	}
	t.Logf("%d of 3000 profiles folded", folded)
}
