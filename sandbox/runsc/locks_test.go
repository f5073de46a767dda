package runsc

import (
	"os"
	"path/filepath"
	"slices"
	"testing"
)

func TestRemoveStaleLocks(t *testing.T) {
	root := t.TempDir()
	files := []string{
		"pod_sandbox:pod.lock",    // the sandbox's own, stale
		"app1_sandbox:pod.lock",   // a sibling's, stale
		"app2_sandbox:pod.lock",   // a live sibling's
		"app2_sandbox:pod.state",  //
		"other_sandbox:pod2.lock", // another pod's, stale: not ours
		"notes.lock",              // not runsc's naming
	}
	for _, f := range files {
		if err := os.WriteFile(filepath.Join(root, f), nil, 0o600); err != nil {
			t.Fatal(err)
		}
	}
	if err := removeStaleLocks(root, "pod"); err != nil {
		t.Fatal(err)
	}
	entries, _ := os.ReadDir(root)
	var left []string
	for _, e := range entries {
		left = append(left, e.Name())
	}
	want := []string{"app2_sandbox:pod.lock", "app2_sandbox:pod.state", "notes.lock", "other_sandbox:pod2.lock"}
	if !slices.Equal(left, want) {
		t.Errorf("left %q, want %q", left, want)
	}
	if err := removeStaleLocks(filepath.Join(root, "absent"), "pod"); err != nil {
		t.Errorf("absent root: %v", err)
	}
}
