// Package hostcheck takes snapshots of the host resources a container runtime can
// leave behind (processes, mounts, directory entries such as shim sockets, processes
// in a cgroup) and reports what appeared between two snapshots. It knows nothing about
// testing, so the policy (what to watch, how long to wait) stays with the caller.
package hostcheck

import (
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
)

// Rules say which host resources a Snapshot records.
type Rules struct {
	// ProcNames selects processes by the base name of argv[0]. A name ending in '*'
	// is a prefix ("runsc*" matches runsc-sandbox and runsc-gofer). argv[0] is used,
	// not the whole command line, so that `go test -run Runsc` does not match.
	ProcNames []string
	// ProcOwners, if set, narrows ProcNames to processes whose command line, or an
	// ancestor's, contains one of these strings (a test's private directory), so
	// that containers run by someone else on the same host are not counted.
	ProcOwners []string
	// MountPrefixes selects mount points by string prefix.
	MountPrefixes []string
	// MountContains selects mount points containing one of these strings anywhere
	// (a unique containerd namespace names every path containerd derives from it).
	MountContains []string
	// WatchDirs are directories whose direct entries are recorded (for example the
	// shim socket directory, or the runtime's per-namespace state directory).
	WatchDirs []string
	// WatchFiles are single paths recorded if they exist.
	WatchFiles []string
	// SocketRoots are trees in which every unix socket, at any depth, is recorded.
	SocketRoots []string
	// FileRoots are trees in which every entry that is not a directory, at any
	// depth, is recorded (a runtime's state root: empty directories may stay).
	FileRoots []string
	// CgroupPaths are cgroup paths (such as "/<namespace>") whose subtree, in every
	// mounted hierarchy, must hold no process.
	CgroupPaths []string
}

// Proc is a process. PID and Start (clock ticks after boot) identify it; Start
// guards against a PID being reused between the snapshot and a later kill.
type Proc struct {
	PID     int
	PPID    int // changes when the process is reparented; not part of its identity
	Start   uint64
	Cmdline string
}

func (p Proc) key() [2]uint64 { return [2]uint64{uint64(p.PID), p.Start} }

// String shows the PID and the command line, cut short: runsc's run to 1 kB.
func (p Proc) String() string {
	cmd := p.Cmdline
	if len(cmd) > 160 {
		cmd = cmd[:160] + "..."
	}
	return fmt.Sprintf("pid %d: %s", p.PID, cmd)
}

// Snapshot is the state of the watched resources at one moment.
type Snapshot struct {
	Procs       []Proc
	Mounts      []string // mount points; a stacked mount appears more than once
	Paths       []string // entries of WatchDirs and sockets under SocketRoots
	CgroupProcs []Proc
}

// Leaks is what is in one snapshot and not in an earlier one.
type Leaks struct {
	Procs       []Proc
	Mounts      []string
	Paths       []string
	CgroupProcs []Proc
}

// Empty reports whether nothing leaked.
func (l Leaks) Empty() bool {
	return len(l.Procs)+len(l.Mounts)+len(l.Paths)+len(l.CgroupProcs) == 0
}

func (l Leaks) String() string {
	var b strings.Builder
	for _, p := range l.Procs {
		fmt.Fprintf(&b, "process %v\n", p)
	}
	for _, p := range l.CgroupProcs {
		fmt.Fprintf(&b, "process left in a test cgroup %v\n", p)
	}
	for _, m := range l.Mounts {
		fmt.Fprintf(&b, "mount %s\n", m)
	}
	for _, p := range l.Paths {
		fmt.Fprintf(&b, "path %s\n", p)
	}
	return b.String()
}

// Take records the resources selected by r. Errors reading individual entries are
// ignored on purpose: processes and files vanish while they are being read.
func Take(r Rules) (Snapshot, error) {
	table, err := processTable()
	if err != nil {
		return Snapshot{}, err
	}
	mounts, err := mountinfo()
	if err != nil {
		return Snapshot{}, err
	}
	s := Snapshot{Procs: table.selectProcs(r.ProcNames, r.ProcOwners)}
	for _, m := range mounts {
		if hasPrefix(m.Point, r.MountPrefixes) || slices.ContainsFunc(r.MountContains, func(c string) bool {
			return strings.Contains(m.Point, c)
		}) {
			s.Mounts = append(s.Mounts, m.Point)
		}
	}
	for _, f := range r.WatchFiles {
		if _, err := os.Lstat(f); err == nil {
			s.Paths = append(s.Paths, f)
		}
	}
	for _, d := range r.WatchDirs {
		ents, _ := os.ReadDir(d)
		for _, e := range ents {
			s.Paths = append(s.Paths, filepath.Join(d, e.Name()))
		}
	}
	walk := func(roots []string, keep func(os.DirEntry) bool) {
		for _, root := range roots {
			_ = filepath.WalkDir(root, func(p string, d os.DirEntry, err error) error {
				if err == nil && keep(d) {
					s.Paths = append(s.Paths, p)
				}
				return nil
			})
		}
	}
	walk(r.SocketRoots, func(d os.DirEntry) bool { return d.Type()&os.ModeSocket != 0 })
	walk(r.FileRoots, func(d os.DirEntry) bool { return !d.IsDir() })
	for _, cg := range r.CgroupPaths {
		dirs, err := CgroupDirs(cg)
		if err != nil {
			return Snapshot{}, err
		}
		for _, d := range dirs {
			s.CgroupProcs = append(s.CgroupProcs, table.cgroupMembers(d)...)
		}
	}
	// A process is in one cgroup per hierarchy: list it once, and not again if it
	// is already listed by name.
	seen := map[[2]uint64]bool{}
	for _, p := range s.Procs {
		seen[p.key()] = true
	}
	s.CgroupProcs = slices.DeleteFunc(s.CgroupProcs, func(p Proc) bool {
		dup := seen[p.key()]
		seen[p.key()] = true
		return dup
	})
	return s, nil
}

// Diff returns what after holds and before does not. Each occurrence counts, so a
// second mount stacked on a mount point that existed before is reported.
func Diff(before, after Snapshot) Leaks {
	return Leaks{
		Procs:       newOnly(before.Procs, after.Procs, Proc.key),
		Mounts:      newOnly(before.Mounts, after.Mounts, same),
		Paths:       newOnly(before.Paths, after.Paths, same),
		CgroupProcs: newOnly(before.CgroupProcs, after.CgroupProcs, Proc.key),
	}
}

func same(s string) string { return s }

func newOnly[T any, K comparable](before, after []T, key func(T) K) []T {
	seen := map[K]int{}
	for _, b := range before {
		seen[key(b)]++
	}
	var out []T
	for _, a := range after {
		if seen[key(a)] > 0 {
			seen[key(a)]--
			continue
		}
		out = append(out, a)
	}
	return out
}

func hasPrefix(s string, prefixes []string) bool {
	return slices.ContainsFunc(prefixes, func(p string) bool { return strings.HasPrefix(s, p) })
}

// matchName reports whether base matches one of names (a trailing '*' is a prefix).
func matchName(base string, names []string) bool {
	return slices.ContainsFunc(names, func(n string) bool {
		if p, ok := strings.CutSuffix(n, "*"); ok {
			return strings.HasPrefix(base, p)
		}
		return base == n
	})
}
