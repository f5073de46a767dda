package runsc

import (
	"os"
	"path/filepath"
)

// deletedMarker, in a bundle, says that the shim deleted the container in
// runsc itself. containerd runs `shim delete` after every shim exits, not
// only after a crash, and waits for it before it answers the task's
// deletion; with the marker, Cleanup skips `runsc delete --force`, a whole
// runsc start-up (15-25 ms here) that would find nothing to delete, on the
// path of every container's removal.
const deletedMarker = "runsc-deleted"

// markDeleted records that runsc deleted the container of bundle. It is
// written only after `runsc delete` succeeded; without it, Cleanup does the
// full cleanup, which is always safe.
func markDeleted(bundle string) error {
	return os.WriteFile(filepath.Join(bundle, deletedMarker), nil, 0o600)
}

// wasDeleted reports whether the shim recorded the container of bundle as
// deleted in runsc.
func wasDeleted(bundle string) bool {
	_, err := os.Stat(filepath.Join(bundle, deletedMarker))
	return err == nil
}
