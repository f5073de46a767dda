package runsc

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestCleanupAfterCleanDelete: `shim delete` runs runsc only when the shim
// did not delete the container itself. A fake runsc records its calls.
func TestCleanupAfterCleanDelete(t *testing.T) {
	for _, marked := range []bool{false, true} {
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
		if marked {
			if err := markDeleted(bundle); err != nil {
				t.Fatal(err)
			}
		}
		cl := Cleaner{Config: Config{Binary: fake, Root: filepath.Join(dir, "root")}}
		if _, err := cl.Cleanup(context.Background(), "ns", "c1", bundle); err != nil {
			t.Fatal(err)
		}
		got, _ := os.ReadFile(calls)
		ranDelete := strings.Contains(string(got), "delete --force c1")
		if ranDelete == marked {
			t.Errorf("marked deleted %v: runsc calls %q", marked, got)
		}
	}
}
