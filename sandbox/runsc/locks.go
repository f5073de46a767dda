package runsc

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"

	"github.com/containerd/log"
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

// removeStaleLocks runs after container c is deleted. It removes c's own
// stale lock and, when no create is in flight in this shim, those of every
// container of c's sandbox: a sibling's runsc start or delete may have
// recreated the lock of a container deleted before, and the last deletion
// of a burst sweeps what the others left. A create in flight holds a lock
// whose state file may not exist yet, so then only c's own is removed (its
// id is gone from runsc and cannot be recreated).
func (s *Service) removeStaleLocks(ctx context.Context, c *container) {
	root := c.init.Runtime().Root
	ids := []string{c.id}
	s.mu.Lock()
	defer s.mu.Unlock()
	if len(s.creating) == 0 && c.sandbox != c.id {
		ids = append(ids, c.sandbox)
	}
	for _, id := range ids {
		if err := removeStaleLocks(root, id); err != nil {
			log.G(ctx).WithError(err).WithField("id", c.id).Warn("remove runsc's stale lock files")
		}
	}
	// The sandbox's root goes with its last container (roots.go); while a
	// sibling is being created, its lock file keeps the root.
	if len(s.creating) == 0 {
		if err := removeSandboxRoot(root); err != nil {
			log.G(ctx).WithError(err).WithField("id", c.id).Warn("remove the sandbox's runsc root")
		}
	}
}
