package runsc

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"sync"

	taskAPI "github.com/containerd/containerd/api/runtime/task/v3"
	"github.com/containerd/containerd/v2/cmd/containerd-shim-runc-v2/process"
	"github.com/containerd/containerd/v2/core/mount"
	"github.com/containerd/containerd/v2/pkg/stdio"
	"github.com/containerd/errdefs"
	"github.com/containerd/log"

	"github.com/palisade-runtime/palisade/sandbox/runsc/portfwd"
)

// CRI annotations that runsc itself reads to place a container in a pod's
// sandbox. Palisade reads them for the same decision.
const (
	annoContainerType = "io.kubernetes.cri.container-type"
	annoSandboxID     = "io.kubernetes.cri.sandbox-id"
)

// container is one runsc container and its exec'd processes.
type container struct {
	id     string
	bundle string
	init   initProcess
	// execParent creates the exec'd processes (see exec.go).
	execParent *process.Init
	// sub is true for a container that joins an existing pod sandbox. Its
	// pid file names the sandbox process, which outlives it, so its exit comes
	// from a wait in the sandbox (ctlwait.go) instead of the reaper.
	sub bool
	// sandbox is the id of the pod sandbox the container runs in (its own
	// for a pod's first container or a lone one).
	sandbox string

	mu       sync.Mutex
	execs    map[string]process.Process // guarded by mu
	reserved map[string]struct{}        // exec ids being created, guarded by mu
	// portfwd serves port forwards into a pod sandbox (portforward.go);
	// nil for other containers. Guarded by mu.
	portfwd *portfwd.Forwarder
}

// bundleSpec is the part of config.json this package needs; a shallow decode
// keeps Create cheap. The masked and read-only paths decide whether the full
// spec must be rewritten (paths.go); most containers stop at this decode.
type bundleSpec struct {
	Annotations map[string]string `json:"annotations"`
	Linux       *struct {
		MaskedPaths   []string `json:"maskedPaths"`
		ReadonlyPaths []string `json:"readonlyPaths"`
		// Namespaces: a pod sandbox's network namespace is where its
		// port forwarder listens (portforward.go).
		Namespaces []struct {
			Type string `json:"type"`
			Path string `json:"path"`
		} `json:"namespaces"`
	} `json:"linux"`
}

// readBundleSpec reads config.json once for Create: its shallow decode,
// and the raw bytes for the rare rewrite.
func readBundleSpec(bundle string) (bundleSpec, []byte, error) {
	var s bundleSpec
	data, err := os.ReadFile(filepath.Join(bundle, "config.json"))
	if err != nil {
		return s, nil, err
	}
	if err := json.Unmarshal(data, &s); err != nil {
		return s, nil, fmt.Errorf("decode %s/config.json: %w", bundle, err)
	}
	return s, data, nil
}

// newContainer mounts the rootfs and runs `runsc create` in the root of the
// container's sandbox (roots.go).
func newContainer(ctx context.Context, s *Service, r *taskAPI.CreateTaskRequest) (_ *container, retErr error) {
	if r.Checkpoint != "" {
		return nil, fmt.Errorf("restore from checkpoint: %w", errdefs.ErrNotImplemented)
	}
	bs, cfg, err := readBundleSpec(r.Bundle)
	if err != nil {
		return nil, err
	}
	annotations := bs.Annotations
	sub := annotations[annoContainerType] == "container"
	sb := sandboxOf(r.ID, sub, annotations)
	if err := s.checkSiblings(r.ID, sb); err != nil {
		return nil, err
	}
	rc, execRC := s.client(sb, r.Bundle), s.execClient(sb, r.Bundle)
	if err := os.MkdirAll(rc.Root, 0o711); err != nil {
		return nil, fmt.Errorf("runsc root: %w", err)
	}
	platform, confined := s.platform, s.confined
	var mounts []mount.Mount
	pmounts := make([]process.Mount, 0, len(r.Rootfs))
	for _, m := range r.Rootfs {
		mounts = append(mounts, mount.Mount{Type: m.Type, Source: m.Source, Target: m.Target, Options: m.Options})
		pmounts = append(pmounts, process.Mount{Type: m.Type, Source: m.Source, Target: m.Target, Options: m.Options})
	}
	rootfs := ""
	if len(mounts) > 0 {
		rootfs = filepath.Join(r.Bundle, "rootfs")
		if err := os.Mkdir(rootfs, 0o711); err != nil && !os.IsExist(err) {
			return nil, err
		}
		if err := mount.All(mounts, rootfs); err != nil {
			return nil, fmt.Errorf("mount rootfs: %w", err)
		}
		defer func() {
			if retErr != nil {
				if err := mount.UnmountRecursive(rootfs, 0); err != nil {
					log.G(ctx).WithError(err).Warn("unmount rootfs after failed create")
				}
			}
		}()
	}

	notes, err := applyPathRestrictions(r.Bundle, rootfs, bs, cfg)
	if err != nil {
		return nil, fmt.Errorf("masked and read-only paths: %w", err)
	}
	for _, n := range notes {
		log.G(ctx).WithField("id", r.ID).Warn("gVisor does not apply linux." + n)
	}

	if !sub {
		stop, err := s.startMonitor(ctx, sb, rc, r.Bundle)
		if err != nil {
			return nil, err
		}
		defer func() {
			if retErr != nil {
				stop()
			}
		}()
	}
	s.watchContainer(sb, r.ID, annotations)

	sio := stdio.Stdio{Stdin: r.Stdin, Stdout: r.Stdout, Stderr: r.Stderr, Terminal: r.Terminal}
	var p initProcess
	if sub && !r.Terminal {
		si := newSubInit(r.ID, r.Bundle, rootfs, rc, sio, platform, confined)
		if err := si.create(ctx); err != nil {
			return nil, err
		}
		p = si
	} else {
		// A sandbox's first container, or a terminal one (runsc sets up its
		// console at create): runc's contract, containerd's process.Init.
		pi := process.New(r.ID, rc, sio)
		pi.Bundle = r.Bundle
		pi.Platform = platform
		pi.Rootfs = rootfs
		pi.WorkDir = filepath.Join(r.Bundle, "work")
		if err := pi.Create(ctx, &process.CreateConfig{
			ID: r.ID, Bundle: r.Bundle, Runtime: rc.Command, Rootfs: pmounts,
			Terminal: r.Terminal, Stdin: r.Stdin, Stdout: r.Stdout, Stderr: r.Stderr,
			Options: r.Options,
		}); err != nil {
			return nil, err
		}
		p = pi
	}
	c := &container{
		id:         r.ID,
		bundle:     r.Bundle,
		init:       p,
		execParent: newExecParent(r.ID, r.Bundle, rootfs, execRC, sio, platform),
		sub:        sub,
		sandbox:    sb,
		execs:      map[string]process.Process{},
		reserved:   map[string]struct{}{},
	}
	s.startPortForward(ctx, c, bs)
	return c, nil
}

// process returns the init ("") or an exec'd process.
func (c *container) process(execID string) (process.Process, error) {
	if execID == "" {
		return c.init, nil
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	p, ok := c.execs[execID]
	if !ok {
		return nil, fmt.Errorf("process %s of container %s: %w", execID, c.id, errdefs.ErrNotFound)
	}
	return p, nil
}

// reserve claims execID for an Exec in progress.
func (c *container) reserve(execID string) bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	if _, ok := c.execs[execID]; ok {
		return false
	}
	if _, ok := c.reserved[execID]; ok {
		return false
	}
	c.reserved[execID] = struct{}{}
	return true
}

// commit turns a reservation into a process; p nil releases it.
func (c *container) commit(execID string, p process.Process) {
	c.mu.Lock()
	defer c.mu.Unlock()
	delete(c.reserved, execID)
	if p != nil {
		c.execs[execID] = p
	}
}

func (c *container) removeExec(execID string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	delete(c.execs, execID)
}

// sandboxOf is the sandbox a container runs in: the pod's, for a container
// that joins one.
func sandboxOf(id string, sub bool, annotations map[string]string) string {
	if sb := annotations[annoSandboxID]; sub && sb != "" {
		return sb
	}
	return id
}
