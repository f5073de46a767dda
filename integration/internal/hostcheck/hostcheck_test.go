package hostcheck

import (
	"fmt"
	"os"
	"os/exec"
	"slices"
	"testing"
)

func TestUnescape(t *testing.T) {
	for in, want := range map[string]string{
		`/tmp/a\040b`: "/tmp/a b",
		`/plain`:      "/plain",
		`/end\04`:     `/end\04`, // truncated escape stays as written
		`/tab\011x`:   "/tab\tx",
	} {
		if got := unescape(in); got != want {
			t.Errorf("unescape(%q) = %q, want %q", in, got, want)
		}
	}
}

func TestDiffCountsOccurrences(t *testing.T) {
	before := Snapshot{Mounts: []string{"/a", "/b"}, Paths: []string{"/s/1"}}
	after := Snapshot{Mounts: []string{"/a", "/b", "/b"}, Paths: []string{"/s/2"}}
	l := Diff(before, after)
	if !slices.Equal(l.Mounts, []string{"/b"}) || !slices.Equal(l.Paths, []string{"/s/2"}) {
		t.Fatalf("Diff = %+v", l)
	}
	if Diff(after, after).Empty() != true {
		t.Fatal("a snapshot leaks against itself")
	}
}

func TestMatchName(t *testing.T) {
	names := []string{"runsc*", "containerd-shim-runc-v2"}
	for base, want := range map[string]bool{
		"runsc": true, "runsc-sandbox": true, "runsc-gofer": true,
		"containerd-shim-runc-v2": true, "containerd-shim-runc-v2x": false, "integration.test": false,
	} {
		if got := matchName(base, names); got != want {
			t.Errorf("matchName(%q) = %v, want %v", base, got, want)
		}
	}
}

// TestProcessesFindsChild checks the /proc parsing against a real child process.
func TestProcessesFindsChild(t *testing.T) {
	sleep, err := exec.LookPath("sleep")
	if err != nil {
		t.Skip("no sleep binary")
	}
	cmd := exec.Command(sleep, "30")
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	table, err := processTable()
	if err != nil {
		t.Fatal(err)
	}
	self := fmt.Sprint(os.Getpid())
	// The child is owned through its parent, this test, whose PID is on no command
	// line: so own by the parent's command line instead.
	owner := table[os.Getpid()].Cmdline
	procs := table.selectProcs([]string{"sleep"}, []string{owner})
	i := slices.IndexFunc(procs, func(p Proc) bool { return p.PID == cmd.Process.Pid })
	if i < 0 {
		t.Fatalf("child %d of %s not in %v", cmd.Process.Pid, self, procs)
	}
	if got := table.selectProcs([]string{"sleep"}, []string{"no-such-owner-string"}); slices.ContainsFunc(got, func(p Proc) bool { return p.PID == cmd.Process.Pid }) {
		t.Fatalf("child selected for an owner it does not have")
	}
	if err := Kill(procs[i : i+1]); err != nil {
		t.Fatal(err)
	}
	if err := cmd.Wait(); err == nil {
		t.Fatal("child was not killed")
	}
	if _, err := os.Stat("/proc/self/mountinfo"); err == nil {
		if _, err := Mountpoints("/"); err != nil {
			t.Fatal(err)
		}
	}
}
