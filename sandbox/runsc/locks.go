package runsc

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
)

// removeStaleLocks removes the lock files runsc leaves behind in root for
// container id. runsc keeps "<container>_sandbox:<sandbox>.state" and a
// ".lock" beside it; starting or destroying a container of a pod loads the
// state of every sibling, taking each one's lock, which creates the lock
// file again for a sibling deleted a moment before (runsc's own TODO,
// gvisor.dev/issue/238). Kubernetes stops a pod's containers concurrently,
// so the files pile up. A lock without its state belongs to no container:
// after id is deleted, its own stale lock goes, and when id is the pod's
// sandbox, those of all its containers.
func removeStaleLocks(root, id string) error {
	entries, err := os.ReadDir(root)
	if err != nil {
		if errors.Is(err, os.ErrNotExist) {
			return nil
		}
		return err
	}
	var errs []error
	for _, e := range entries {
		name, ok := strings.CutSuffix(e.Name(), ".lock")
		if !ok {
			continue
		}
		container, sandbox, ok := strings.Cut(name, "_sandbox:")
		if !ok || container != id && sandbox != id {
			continue
		}
		if _, err := os.Stat(filepath.Join(root, name+".state")); !errors.Is(err, os.ErrNotExist) {
			continue // a live container's, or unknown: keep it
		}
		if err := os.Remove(filepath.Join(root, e.Name())); err != nil && !errors.Is(err, os.ErrNotExist) {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}
