package integration

import (
	"fmt"
	"math/bits"
	"strconv"
	"strings"
	"testing"

	"github.com/palisade-runtime/palisade/policy"
	"github.com/palisade-runtime/palisade/sandbox/runsc"
)

// TestSocketFamiliesRunsc checks what the runsc backend declares in
// Support.SocketFamilies against gVisor itself: socket(2) for every address
// family and type, in real containers, on each runsc network mode. The
// floor folds its 28 per-family socket rules into one allow on that
// declaration (policy/seccomp_sockets.go), so a family gVisor implements
// but the declaration lacks would slip past moby's family list: were gVisor
// ever to add one, this test fails before any such floor ships.
//
// Under the floor, AF_ALG (38) and AF_VSOCK (40), which runtime-default
// denies, come back EAFNOSUPPORT from the sentry (the fold is in force)
// rather than EPERM from the filter.
func TestSocketFamiliesRunsc(t *testing.T) {
	floored := palisadeRunsc("fam-floor", floorFor("fam-floor"))
	env := startContainerdFor(t, floored, containerdOpts{})
	declared := runsc.Support("").SocketFamilies
	if declared == 0 {
		t.Fatal("the runsc backend declares no socket families")
	}
	rows := []struct {
		name    string
		rt      runtimeUnderTest
		hostNet bool
		floor   bool
	}{
		{"floor", floored, false, true},
		{"no-floor", palisadeRunsc("fam-open", ""), false, false},
		{"floor-network-none", palisadeRunscNetwork("fam-none", "none"), false, true},
		{"floor-network-host", palisadeRunscNetwork("fam-host", "host"), true, true},
	}
	for _, row := range rows {
		t.Run(row.name, func(t *testing.T) {
			extra := []string{"--rm", "--fifo-dir", env.FIFODir}
			if row.hostNet {
				extra = append(extra, "--net-host")
			}
			res := env.ctr(t, env.runArgs(t, row.rt, extra, probeRootfs(t), "fam-"+row.name, []string{"/bin/probe", "families"})...)
			if res.ExitCode != 0 {
				t.Fatalf("probe families: %v", res)
			}
			present, results := parseFamilies(t, res.Stdout)
			if extra := present &^ declared; extra != 0 {
				t.Errorf("gVisor implements families %v that the runsc backend does not declare (%v): "+
					"the floor's socket fold would let them through\n%s", famList(extra), famList(declared), res.Stdout)
			}
			for _, af := range []int{policy.AFUnix, policy.AFInet, policy.AFInet6} {
				if results[af] != "ok" {
					t.Errorf("socket(%d): %q, want it to work\n%s", af, results[af], res.Stdout)
				}
			}
			if row.floor {
				for _, af := range []int{38, 40} { // AF_ALG, AF_VSOCK
					if results[af] != "absent" {
						t.Errorf("socket(%d) under the folded floor: %q, want absent (EAFNOSUPPORT from the sentry)", af, results[af])
					}
				}
			}
			t.Logf("families present: %v (declared %v)", famList(present), famList(declared))
		})
	}
}

// parseFamilies reads `probe families`: the mask of families present, and
// each family's result ("absent", "ok" or an errno name).
func parseFamilies(t *testing.T, out string) (uint64, map[int]string) {
	t.Helper()
	var present uint64
	results := map[int]string{}
	for _, line := range strings.Split(strings.TrimSpace(out), "\n") {
		f := strings.Fields(line)
		if len(f) < 3 || f[0] != "family" {
			t.Fatalf("probe families: bad line %q\n%s", line, out)
		}
		af, err := strconv.Atoi(f[1])
		if err != nil || af < 0 || af > 63 {
			t.Fatalf("probe families: bad family in %q", line)
		}
		switch {
		case f[2] == "absent":
			results[af] = "absent"
		case f[2] == "present" && len(f) == 4:
			results[af] = f[3]
			present |= 1 << af
		default:
			t.Fatalf("probe families: bad line %q", line)
		}
	}
	if len(results) != 64 {
		t.Fatalf("probe families: %d families, want 64\n%s", len(results), out)
	}
	return present, results
}

func famList(m uint64) string {
	var s []string
	for ; m != 0; m &= m - 1 {
		s = append(s, fmt.Sprint(bits.TrailingZeros64(m)))
	}
	return "[" + strings.Join(s, " ") + "]"
}
