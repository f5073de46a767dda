package policy

import (
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"

	"github.com/moby/profiles/seccomp"
)

// armPrivate are the ARM private calls (__ARM_NR_*) that libseccomp names
// and x/sys does not number.
var armPrivate = []string{"breakpoint", "cacheflush", "set_tls", "usr26", "usr32"}

func TestSyscallTableSortedAndKnowsTheDefaults(t *testing.T) {
	if !slices.IsSorted(syscallNames[:]) || len(slices.Compact(slices.Clone(syscallNames[:]))) != len(syscallNames) {
		t.Fatal("syscallNames must be sorted and unique: knownSyscall searches it")
	}
	var unknown []string
	for _, s := range seccomp.DefaultProfile().Syscalls {
		for _, n := range s.Names {
			if !knownSyscall(n) {
				unknown = append(unknown, n)
			}
		}
	}
	for _, s := range containerdDefault(t).Syscalls {
		for _, n := range s.Names {
			if !knownSyscall(n) {
				unknown = append(unknown, n)
			}
		}
	}
	if len(unknown) > 0 {
		t.Fatalf("the default profiles name syscalls the table lacks: %v", unknown)
	}
	if knownSyscall("ptrce") || knownSyscall("") {
		t.Fatal("knownSyscall accepts a misspelt name")
	}
}

// The table is x/sys/unix's Linux syscall numbers, all architectures, as of
// the version this module builds with. When x/sys is updated, this test
// lists the names to add (keep the table sorted).
func TestSyscallTableMatchesXSys(t *testing.T) {
	dir := xsysUnixDir(t)
	files, _ := filepath.Glob(filepath.Join(dir, "zsysnum_linux_*.go"))
	if len(files) == 0 {
		t.Skipf("no zsysnum_linux_*.go in %s", dir)
	}
	re := regexp.MustCompile(`(?m)^\s+SYS_([A-Z0-9_]+)\s+=`)
	want := slices.Clone(armPrivate)
	for _, f := range files {
		src, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		for _, m := range re.FindAllSubmatch(src, -1) {
			want = append(want, strings.ToLower(string(m[1])))
		}
	}
	slices.Sort(want)
	want = slices.Compact(want)
	var missing, extra []string
	for _, n := range want {
		if !knownSyscall(n) {
			missing = append(missing, n)
		}
	}
	for _, n := range syscallNames {
		if _, ok := slices.BinarySearch(want, n); !ok {
			extra = append(extra, n)
		}
	}
	if len(missing) > 0 || len(extra) > 0 {
		t.Fatalf("syscallNames differs from %s: add %q, remove %q", dir, missing, extra)
	}
}

// xsysUnixDir finds golang.org/x/sys/unix at the version this module
// requires.
func xsysUnixDir(t *testing.T) string {
	out, err := exec.Command("go", "list", "-m", "-f", "{{.Dir}}", "golang.org/x/sys").Output()
	if err != nil || len(strings.TrimSpace(string(out))) == 0 {
		t.Skipf("go list -m golang.org/x/sys: %v", err)
	}
	return filepath.Join(strings.TrimSpace(string(out)), "unix")
}
