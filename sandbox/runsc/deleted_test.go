package runsc

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestCleanupAfterCleanDelete: `shim delete` runs runsc only when the shim
// did not delete the container itself, and only in the root that holds the
// container's own state: its sandbox's root, or the namespace's root of the
// layout before per-sandbox roots. Without a state file of its own it runs
// nothing, since runsc would resolve the ID as a prefix of a neighbour's. A
// fake runsc records its calls.
func TestCleanupAfterCleanDelete(t *testing.T) {
	for _, tc := range []struct {
		name     string
		marked   bool
		state    string // where c1's state file is, relative to the handler root
		wantRoot string // the --root of runsc delete, "" = no runsc call
	}{
		{"sandbox root", false, "ns/c1", "ns/c1"},
		{"marked deleted", true, "ns/c1", ""},
		{"legacy root", false, "ns", "ns"},
		{"no state, neighbour c10", false, "", ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			calls := filepath.Join(dir, "calls")
			fake := filepath.Join(dir, "runsc")
			script := "#!/bin/sh\necho \"$*\" >>" + calls + "\n"
			if err := os.WriteFile(fake, []byte(script), 0o755); err != nil {
				t.Fatal(err)
			}
			bundle := filepath.Join(dir, "bundle")
			if err := os.Mkdir(bundle, 0o700); err != nil {
				t.Fatal(err)
			}
			if tc.marked {
				if err := markDeleted(bundle); err != nil {
					t.Fatal(err)
				}
			}
			root := filepath.Join(dir, "root")
			// A neighbour whose ID c1 prefixes, in both layouts.
			for _, d := range []string{"ns", "ns/c10"} {
				writeFile(t, filepath.Join(root, d, "c10_sandbox:c10.state"))
			}
			if tc.state != "" {
				writeFile(t, filepath.Join(root, tc.state, "c1_sandbox:c1.state"))
			}
			cl := Cleaner{Config: Config{Binary: fake, Root: root}}
			if _, err := cl.Cleanup(context.Background(), "ns", "c1", bundle); err != nil {
				t.Fatal(err)
			}
			got, _ := os.ReadFile(calls)
			want := ""
			if tc.wantRoot != "" {
				want = "--root " + filepath.Join(root, tc.wantRoot) + " "
			}
			switch {
			case want == "" && len(got) > 0:
				t.Errorf("runsc ran: %q", got)
			case want != "" && (!strings.Contains(string(got), want) || !strings.Contains(string(got), "delete --force c1")):
				t.Errorf("runsc calls %q, want delete --force c1 with %q", got, want)
			}
			if _, err := os.Stat(filepath.Join(root, "ns/c10/c10_sandbox:c10.state")); err != nil {
				t.Errorf("neighbour touched: %v", err)
			}
		})
	}
}

func writeFile(t *testing.T, p string) {
	t.Helper()
	if err := os.MkdirAll(filepath.Dir(p), 0o700); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(p, []byte("{}"), 0o600); err != nil {
		t.Fatal(err)
	}
}
