package runsc

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"

	"github.com/containerd/errdefs"
	"golang.org/x/sys/unix"
)

// runsc resolves a container ID it is given by prefix when no state file in
// its --root matches it exactly (runsc/container/state_file.go,
// findContainerID): with "web2" in the root, "web" is ambiguous, and once a
// container's own state is gone a prefix of it names a neighbour, so a kill
// or delete could reach another container. Palisade makes that impossible
// by construction, in two parts:
//
//   - every sandbox (a pod, or a lone container) gets a runsc root of its
//     own, <root>/<namespace>/<sandbox id>, so runsc never sees another
//     sandbox's containers;
//   - within one sandbox, a container whose ID is a prefix of a sibling's,
//     or the reverse, is refused at Create (see prefixConflict).
//
// Within a root no ID then prefixes another, so the only file runsc can
// resolve an ID to is that container's own.
//
// runsc puts the sandbox's control socket, runsc-<sandbox id>.sock, in the
// root when the path fits a unix socket address (108 bytes) and otherwise
// in /var/run, /run or /tmp; it removes the socket when it destroys the
// sandbox either way.

// sandboxRoot is the runsc --root of the sandbox's containers.
func (c Config) sandboxRoot(namespace, sandbox string) string {
	return filepath.Join(c.namespaceRoot(namespace), sandbox)
}

// namespaceRoot is where the sandbox roots of a namespace live. Palisade
// before per-sandbox roots kept every state file here: that is the legacy
// root that shim delete still looks in.
func (c Config) namespaceRoot(namespace string) string {
	return filepath.Join(c.Root, namespace)
}

// hasState reports whether root holds runsc's state file of exactly id:
// "<id>_sandbox:<sandbox>.state" (containerd IDs have no ':').
func hasState(root, id string) (bool, error) {
	ids, err := stateIDs(root)
	return slices.Contains(ids, id), err
}

// prefixConflict names a sibling whose ID is a prefix of id or has id as a
// prefix; runsc could not address both in one root.
func prefixConflict(id string, siblings []string) (string, bool) {
	for _, s := range siblings {
		if s != id && (strings.HasPrefix(s, id) || strings.HasPrefix(id, s)) {
			return s, true
		}
	}
	return "", false
}

// removeSandboxRoot removes a sandbox's root once nothing of runsc is left
// in it. A root that still holds files (a sibling still being deleted) is
// kept; the last deletion removes it.
func removeSandboxRoot(root string) error {
	err := os.Remove(root)
	if err == nil || errors.Is(err, os.ErrNotExist) || errors.Is(err, unix.ENOTEMPTY) {
		return nil
	}
	return fmt.Errorf("remove runsc root %s: %w", root, err)
}

// bundleSandbox is the sandbox id of the container in bundle, from its
// config.json annotations, as Create decided it. A bundle whose spec cannot
// be read is taken to be a lone container (its own sandbox).
func bundleSandbox(id, bundle string) string {
	data, err := os.ReadFile(filepath.Join(bundle, "config.json"))
	if err != nil {
		return id
	}
	var s bundleSpec
	if json.Unmarshal(data, &s) != nil {
		return id
	}
	return sandboxOf(id, s.Annotations[annoContainerType] == "container", s.Annotations)
}

// checkSiblings refuses a container whose ID is a prefix of another
// container's in the same sandbox root, or the reverse: the containers this
// shim has or is creating, and the state files already in the root (a
// sibling this shim does not know, such as one left by a shim that died).
func (s *Service) checkSiblings(id, sandbox string) error {
	s.mu.Lock()
	siblings := make([]string, 0, len(s.containers)+len(s.creating))
	for cid, c := range s.containers {
		if c.sandbox == sandbox {
			siblings = append(siblings, cid)
		}
	}
	for cid := range s.creating {
		siblings = append(siblings, cid)
	}
	s.mu.Unlock()
	onDisk, err := stateIDs(s.cfg.sandboxRoot(s.env.Namespace, sandbox))
	if err != nil {
		return err
	}
	if other, ok := prefixConflict(id, append(siblings, onDisk...)); ok {
		return fmt.Errorf("container %q and %q are in the same sandbox %q and one ID is a prefix of the other; "+
			"runsc resolves container IDs by prefix, so it could not address both: choose IDs that do not prefix each other: %w",
			id, other, sandbox, errdefs.ErrAlreadyExists)
	}
	return nil
}

// stateIDs lists the container IDs that have a runsc state file in root.
func stateIDs(root string) ([]string, error) {
	files, err := stateFiles(root)
	var ids []string
	for id := range files {
		ids = append(ids, id)
	}
	slices.Sort(ids)
	return ids, err
}

// stateFile is the path of id's runsc state file in root.
func stateFile(root, id string) (string, error) {
	files, err := stateFiles(root)
	if err != nil {
		return "", err
	}
	f, ok := files[id]
	if !ok {
		return "", fmt.Errorf("no runsc state of %s in %s: %w", id, root, os.ErrNotExist)
	}
	return f, nil
}

// stateFiles maps the container IDs that have a runsc state file in root to
// that file.
func stateFiles(root string) (map[string]string, error) {
	entries, err := os.ReadDir(root)
	if err != nil {
		if errors.Is(err, os.ErrNotExist) {
			return nil, nil
		}
		return nil, err
	}
	files := map[string]string{}
	for _, e := range entries {
		if name, ok := strings.CutSuffix(e.Name(), ".state"); ok {
			if id, _, ok := strings.Cut(name, "_sandbox:"); ok {
				files[id] = filepath.Join(root, e.Name())
			}
		}
	}
	return files, nil
}
