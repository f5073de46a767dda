package hostcheck

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
)

// procInfo is a Proc plus what selection needs.
type procInfo struct {
	Proc
	state byte // 'R', 'S', 'Z', ... from /proc/<pid>/stat
}

// procTable is every process on the host at one moment, by PID.
type procTable map[int]procInfo

func processTable() (procTable, error) {
	ents, err := os.ReadDir("/proc")
	if err != nil {
		return nil, err
	}
	t := procTable{}
	for _, e := range ents {
		pid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		if p, ok := readProc(pid); ok {
			t[pid] = p
		}
	}
	return t, nil
}

// selectProcs returns the live processes whose argv[0] base name matches names
// and, if owners is not empty, that are owned (see Rules.ProcOwners). Zombies are
// skipped: they hold nothing but a PID, and this host's init reaps them late.
func (t procTable) selectProcs(names, owners []string) []Proc {
	self := os.Getpid()
	var out []Proc
	for pid, p := range t {
		if pid == self || p.state == 'Z' {
			continue
		}
		argv0, _, _ := strings.Cut(p.Cmdline, " ")
		if matchName(filepath.Base(argv0), names) && (len(owners) == 0 || t.owned(pid, owners)) {
			out = append(out, p.Proc)
		}
	}
	slices.SortFunc(out, func(a, b Proc) int { return a.PID - b.PID })
	return out
}

// owned reports whether pid or one of its ancestors has a command line containing
// one of owners. Runtimes started by a shim stay its children (shims are child
// subreapers), so this follows runsc's sandbox and gofer back to the shim.
func (t procTable) owned(pid int, owners []string) bool {
	for depth := 0; depth < 64 && pid > 1; depth++ {
		p, ok := t[pid]
		if !ok {
			return false
		}
		if slices.ContainsFunc(owners, func(o string) bool { return strings.Contains(p.Cmdline, o) }) {
			return true
		}
		pid = p.PPID
	}
	return false
}

// readProc reads a process's parent, start time, state and command line; ok is
// false when the process is gone.
func readProc(pid int) (procInfo, bool) {
	stat, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return procInfo{}, false
	}
	// The command name (field 2) may hold spaces and parentheses, so fields are
	// counted from the last ')': state (field 3), ppid (4) ... starttime (22).
	i := bytes.LastIndexByte(stat, ')')
	if i < 0 {
		return procInfo{}, false
	}
	fields := strings.Fields(string(stat[i+1:]))
	if len(fields) < 20 {
		return procInfo{}, false
	}
	ppid, err1 := strconv.Atoi(fields[1])
	start, err2 := strconv.ParseUint(fields[19], 10, 64)
	if err1 != nil || err2 != nil {
		return procInfo{}, false
	}
	cmdline, err := os.ReadFile(fmt.Sprintf("/proc/%d/cmdline", pid))
	if err != nil {
		return procInfo{}, false
	}
	cmd := strings.TrimSpace(string(bytes.ReplaceAll(cmdline, []byte{0}, []byte{' '})))
	if cmd == "" {
		// Kernel threads and some of runsc's helpers have no command line; show
		// the command name as ps does.
		cmd = "[" + string(stat[bytes.IndexByte(stat, '(')+1:i]) + "]"
	}
	return procInfo{Proc: Proc{PID: pid, PPID: ppid, Start: start, Cmdline: cmd}, state: fields[0][0]}, true
}

// Alive reports whether p is still running (not gone, not a zombie, and its PID
// not reused).
func Alive(p Proc) bool {
	now, ok := readProc(p.PID)
	return ok && now.Start == p.Start && now.state != 'Z'
}

// Kill sends SIGKILL to each process that is still the one recorded. It is meant
// for processes a test started and leaked, so that the next test starts clean.
func Kill(procs []Proc) error {
	var errs []error
	for _, p := range procs {
		if !Alive(p) {
			continue
		}
		if err := syscall.Kill(p.PID, syscall.SIGKILL); err != nil && !errors.Is(err, syscall.ESRCH) {
			errs = append(errs, fmt.Errorf("kill %v: %w", p, err))
		}
	}
	return errors.Join(errs...)
}

// cgroupMembers lists the live processes in dir and every cgroup below it.
func (t procTable) cgroupMembers(dir string) []Proc {
	var out []Proc
	_ = filepath.WalkDir(dir, func(p string, d os.DirEntry, err error) error {
		if err != nil || d.IsDir() || d.Name() != "cgroup.procs" {
			return nil
		}
		f, err := os.Open(p)
		if err != nil {
			return nil
		}
		defer f.Close()
		sc := bufio.NewScanner(f)
		for sc.Scan() {
			pid, err := strconv.Atoi(strings.TrimSpace(sc.Text()))
			if err != nil {
				continue
			}
			if pr, ok := t[pid]; ok && pr.state != 'Z' {
				out = append(out, pr.Proc)
			}
		}
		return nil
	})
	return out
}

// Lookup returns process pid as it is now; ok is false when it is gone.
func Lookup(pid int) (Proc, bool) {
	p, ok := readProc(pid)
	return p.Proc, ok && p.state != 'Z'
}

// Tail returns about the last n lines of a file, for failure reports: a
// daemon's log when it did not come up, what a test left behind.
func Tail(path string, n int) string {
	b, err := os.ReadFile(path)
	if err != nil {
		return err.Error()
	}
	lines := strings.Split(strings.TrimRight(string(b), "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}
