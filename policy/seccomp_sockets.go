package policy

import (
	"fmt"
	"math/bits"
	"slices"
	"strconv"

	"github.com/opencontainers/runtime-spec/specs-go"
)

// Socket address families, for Support.SocketFamilies.
const (
	AFUnix    = 1
	AFInet    = 2
	AFInet6   = 10
	AFNetlink = 16
	AFPacket  = 17
)

// Families is the Support.SocketFamilies mask of the given address families.
func Families(afs ...int) uint64 {
	var m uint64
	for _, af := range afs {
		m |= 1 << uint(af)
	}
	return m
}

// foldSocketFamilies rewrites the enforced profile p, in place, when the
// backend's kernel implements only the address families in the mask
// families, and p's rules for socket allow every one of them by its first
// argument. The rules for socket are then replaced by one unconditional
// allow.
//
// Why: runtime-default (moby's profile) allows socket for 28 address
// families, one rule each, and gVisor's sentry compiles every rule into the
// container's filter at each start and exec; those rules are half of what
// the floor costs a container start on runsc. Under a kernel that implements
// only these families, socket for any other family fails in that kernel
// (EAFNOSUPPORT) before any code of the family could run, so the rules
// deny nothing that the kernel does not refuse anyway; only the errno of
// such a call changes, from the floor's EPERM to EAFNOSUPPORT. The fold is
// exact for the families that exist there: each was allowed and stays
// allowed. It is not done when a rule for socket is anything else (another
// action, another argument, several conditions), or when some implemented
// family is denied: then the rules do deny something and stay.
//
// It returns the Changed line of the decision record, "" when p is kept.
func foldSocketFamilies(p *specs.LinuxSeccomp, families uint64) string {
	if p == nil || families == 0 || newAction(p.DefaultAction, p.DefaultErrnoRet).rank() <= actionRank(specs.ActLog) {
		return ""
	}
	var allowed uint64
	rules := 0
	for i := range p.Syscalls {
		sc := &p.Syscalls[i]
		if !slices.Contains(sc.Names, "socket") {
			continue
		}
		if sc.Action != specs.ActAllow || len(sc.Args) != 1 || sc.Args[0].Index != 0 {
			return ""
		}
		rules++
		c, _ := canonCmp(sc.Args[0])
		for m := families; m != 0; m &= m - 1 {
			if af := uint64(bits.TrailingZeros64(m)); c.matches(af) {
				allowed |= 1 << af
			}
		}
	}
	if rules == 0 || allowed != families {
		return ""
	}
	out := p.Syscalls[:0]
	for _, sc := range p.Syscalls {
		if i := slices.Index(sc.Names, "socket"); i >= 0 {
			sc.Names = slices.Delete(slices.Clone(sc.Names), i, i+1)
			if len(sc.Names) == 0 {
				continue
			}
		}
		out = append(out, sc)
	}
	p.Syscalls = out
	// socket joins the profile's unconditional allowlist, if it has one:
	// one rule fewer for the backend to compile.
	if plain := slices.IndexFunc(out, func(sc specs.LinuxSyscall) bool {
		return sc.Action == specs.ActAllow && len(sc.Args) == 0
	}); plain >= 0 {
		p.Syscalls[plain].Names = append(slices.Clone(p.Syscalls[plain].Names), "socket")
	} else {
		p.Syscalls = append(p.Syscalls, specs.LinuxSyscall{Names: []string{"socket"}, Action: specs.ActAllow})
	}
	return fmt.Sprintf("linux.seccomp: socket: %d address-family rules folded into one allow: "+
		"the backend's kernel implements only families %s, each allowed by them; "+
		"socket for any other family fails there with EAFNOSUPPORT instead of EPERM", rules, familyList(families))
}

func familyList(m uint64) string {
	b := []byte{'['}
	for ; m != 0; m &= m - 1 {
		if len(b) > 1 {
			b = append(b, ' ')
		}
		b = strconv.AppendInt(b, int64(bits.TrailingZeros64(m)), 10)
	}
	return string(append(b, ']'))
}
