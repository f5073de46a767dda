package policy

import (
	"fmt"
	"slices"
	"strconv"
	"strings"

	"github.com/moby/profiles/seccomp"
	"github.com/opencontainers/runtime-spec/specs-go"
)

// nativeArches maps the libseccomp architecture names used by moby's
// includes/excludes "arches" to the OCI architecture. x32 has no entry in
// moby's table but appears in its default profile's filters.
var nativeArches = map[string]specs.Arch{
	"x86":         specs.ArchX86,
	"amd64":       specs.ArchX86_64,
	"x32":         specs.ArchX32,
	"arm":         specs.ArchARM,
	"arm64":       specs.ArchAARCH64,
	"loongarch64": specs.ArchLOONGARCH64,
	"mips64":      specs.ArchMIPS64,
	"mips64n32":   specs.ArchMIPS64N32,
	"mipsel64":    specs.ArchMIPSEL64,
	"mips3l64n32": specs.ArchMIPSEL64N32, // sic, as moby spells it
	"mipsel":      specs.ArchMIPSEL,
	"ppc":         specs.ArchPPC,
	"ppc64":       specs.ArchPPC64,
	"ppc64le":     specs.ArchPPC64LE,
	"riscv64":     specs.ArchRISCV64,
	"s390":        specs.ArchS390,
	"s390x":       specs.ArchS390X,
}

// nativeArch maps a GOARCH to the libseccomp name moby's filters use.
func nativeArch(goarch string) string {
	switch goarch {
	case "386":
		return "x86"
	case "loong64":
		return "loongarch64"
	case "mips64le":
		return "mipsel64"
	case "mips64p32":
		return "mips64n32"
	case "mips64p32le":
		return "mips3l64n32"
	case "mipsle":
		return "mipsel"
	}
	return goarch // amd64, arm, arm64, mips64, ppc, ppc64, ppc64le, riscv64, s390, s390x
}

// kernelVersion is "major.minor"; known is false when the edge did not say.
type kernelVersion struct {
	known        bool
	major, minor uint64
}

func parseKernelVersion(s string) (kernelVersion, error) {
	if s == "" {
		return kernelVersion{}, nil
	}
	var k kernelVersion
	// The usual "6.1", without fmt's scanner (it runs for every container);
	// anything else is read as before.
	if maj, min, ok := strings.Cut(s, "."); ok && len(maj) <= 9 && len(min) <= 9 && allDigits(maj) && allDigits(min) {
		k.major, _ = strconv.ParseUint(maj, 10, 64)
		k.minor, _ = strconv.ParseUint(min, 10, 64)
		k.known = true
		return k, nil
	}
	if _, err := fmt.Sscanf(s, "%d.%d", &k.major, &k.minor); err != nil {
		return k, fmt.Errorf("support.KernelVersion %q: want <major>.<minor>: %w", s, err)
	}
	k.known = true
	return k, nil
}

func allDigits(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] < '0' || s[i] > '9' {
			return false
		}
	}
	return s != ""
}

// atLeast reports whether k ≥ v; ok is false when k is unknown.
func (k kernelVersion) atLeast(v *seccomp.KernelVersion) (bool, bool) {
	if !k.known {
		return false, false
	}
	return k.major > v.Kernel || k.major == v.Kernel && k.minor >= v.Major, true
}

// runtimeDefaultTemplate is moby's default profile as data. It is built
// from moby's Go value rather than through seccomp.GetDefaultProfile,
// which reads the host's kernel version and architecture itself.
func runtimeDefaultTemplate() *template {
	p := seccomp.DefaultProfile()
	t := &template{head: p.LinuxSeccomp, archMap: p.ArchMap}
	t.head.Syscalls = nil
	for _, s := range p.Syscalls {
		t.rules = append(t.rules, tmplRule{sc: s.LinuxSyscall, inc: s.Includes, exc: s.Excludes})
	}
	return t
}

// resolve evaluates the template's conditions the way moby's setupSeccomp
// does, but for a given architecture, kernel and bounding set. When the
// kernel is unknown a kernel-gated rule is kept exactly when it is stricter
// than the default action, so not knowing never allows more.
func (t *template) resolve(native string, kv kernelVersion, bounding capSet) *specs.LinuxSeccomp {
	out := t.resolveHead(native)
	def := actionRank(out.DefaultAction)
	out.Syscalls = make([]specs.LinuxSyscall, 0, len(t.rules))
	for _, r := range t.rules {
		stricterThanDefault := actionRank(r.sc.Action) > def
		if r.exc != nil && excluded(r.exc, native, kv, bounding, stricterThanDefault) {
			continue
		}
		if r.inc != nil && !included(r.inc, native, kv, bounding, stricterThanDefault) {
			continue
		}
		out.Syscalls = append(out.Syscalls, r.sc)
	}
	return out
}

// resolveHead returns the profile-wide fields for architecture native:
// archMap becomes the native architecture and its sub-architectures.
func (t *template) resolveHead(native string) *specs.LinuxSeccomp {
	out := t.head
	out.Architectures = slices.Clone(t.head.Architectures)
	if arch, ok := nativeArches[native]; ok {
		for _, a := range t.archMap {
			if a.Arch == arch {
				out.Architectures = append(append(out.Architectures, a.Arch), a.SubArches...)
				break
			}
		}
	}
	return &out
}

// excluded: any listed arch is the native one, any listed capability is in
// the bounding set, or the kernel is at least minKernel.
func excluded(f *seccomp.Filter, native string, kv kernelVersion, bounding capSet, strict bool) bool {
	if slices.Contains(f.Arches, native) {
		return true
	}
	for _, c := range f.Caps {
		if n, ok := capNumber(c); ok && bounding.has(n) {
			return true
		}
	}
	if f.MinKernel != nil {
		ge, known := kv.atLeast(f.MinKernel)
		if !known {
			return !strict
		}
		return ge
	}
	return false
}

// included: the native arch is listed (when any are), every listed
// capability is in the bounding set, and the kernel is at least minKernel.
func included(f *seccomp.Filter, native string, kv kernelVersion, bounding capSet, strict bool) bool {
	if len(f.Arches) > 0 && !slices.Contains(f.Arches, native) {
		return false
	}
	for _, c := range f.Caps {
		if n, ok := capNumber(c); !ok || !bounding.has(n) {
			return false
		}
	}
	if f.MinKernel != nil {
		ge, known := kv.atLeast(f.MinKernel)
		if !known {
			return strict
		}
		return ge
	}
	return true
}
