package runsc

import (
	"context"
	"fmt"
	"os/exec"
	"path/filepath"
	"strings"
	"time"

	"github.com/containerd/containerd/v2/cmd/containerd-shim-runc-v2/runc"
	"github.com/containerd/containerd/v2/core/mount"
	"github.com/containerd/errdefs"
	gorunc "github.com/containerd/go-runc"
	"github.com/containerd/log"
	"golang.org/x/sys/unix"

	"github.com/palisade-runtime/palisade/sandbox"
)

// sandboxGone is the status reported when a container's sandbox died without
// telling how its container ended: the sandbox was killed, so say SIGKILL.
const sandboxGone = 128 + int(unix.SIGKILL)

// waitSubcontainer waits for a container that shares a pod's sandbox. Its
// pid is the sandbox's, which lives on, so the reaper cannot tell; the
// sandbox itself is asked (ctlwait.go).
func (s *Service) waitSubcontainer(ctx context.Context, c *container) {
	ctx = context.WithoutCancel(ctx)
	status, err := sandboxWait(s.cfg.sandboxRoot(s.env.Namespace, c.sandbox), c.id)
	if err != nil {
		log.G(ctx).WithError(err).WithField("id", c.id).Error("waiting in the sandbox failed; killing the container and reporting it killed")
		s.killUnwatched(ctx, c)
		status = sandboxGone
	}
	s.handleExit(ctx, c, "", gorunc.Exit{Pid: c.init.Pid(), Status: status, Timestamp: time.Now()})
}

// killUnwatched kills a pod container whose end Palisade can no longer
// learn of. It is about to be reported ended; were it left running, the
// report would be false, and an orchestrator that restarts it would run a
// second copy next to it.
func (s *Service) killUnwatched(ctx context.Context, c *container) {
	ctx, cancel := s.bound(s.rt(ctx))
	defer cancel()
	err := c.init.Runtime().Kill(ctx, c.id, int(unix.SIGKILL), &gorunc.KillOpts{All: true})
	if err != nil && !isNotExist(err) {
		log.G(ctx).WithError(err).WithField("id", c.id).Error("kill a pod container whose wait in the sandbox was lost")
	}
}

func outputMonitored(cmd *exec.Cmd) ([]byte, error) {
	var buf limitedBuffer
	cmd.Stdout = &buf
	cmd.Stderr = &buf
	ec, err := gorunc.Monitor.Start(cmd)
	if err != nil {
		return nil, err
	}
	status, err := gorunc.Monitor.Wait(cmd, ec)
	if err == nil && status != 0 {
		err = fmt.Errorf("exit status %d", status)
	}
	return buf.Bytes(), err
}

// limitedBuffer keeps the first 64 KiB written to it: runsc's output is small,
// and a runaway one must not grow the shim.
type limitedBuffer struct{ b []byte }

func (l *limitedBuffer) Write(p []byte) (int, error) {
	if room := 64<<10 - len(l.b); room > 0 {
		l.b = append(l.b, p[:min(len(p), room)]...)
	}
	return len(p), nil
}

func (l *limitedBuffer) Bytes() []byte { return l.b }

// Cleaner is the `shim delete` path for runsc: containerd calls it when the
// shim died, to reclaim the container's sandbox, rootfs mount and state.
type Cleaner struct {
	Config Config
	// MonitorSocketDir is the handler's monitoring socket_dir, "" when it
	// does not monitor: the socket of a sandbox whose shim died is removed.
	MonitorSocketDir string
}

var _ sandbox.Cleaner = Cleaner{}

// Cleanup force-deletes the container in runsc (killing its sandbox if it is
// the pod's last), unmounts the rootfs and reports the recorded exit status.
func (cl Cleaner) Cleanup(ctx context.Context, namespace, id, bundle string) (sandbox.StopStatus, error) {
	cfg := cl.Config.WithDefaults()
	root, err := cleanupRoot(cfg, namespace, id, bundle)
	if err != nil {
		log.G(ctx).WithError(err).WithField("id", id).Warn("find the container's runsc root")
	}
	r := cfg.clientIn(root, bundle)
	// The shim that would have reaped runsc is gone: this process is runsc's
	// parent now, so the default exec.Cmd wait is right here.
	r.PdeathSignal = 0
	// After a clean exit the shim has deleted it in runsc already. Without
	// its own state file runsc would resolve id as a prefix of another
	// container's: the container is gone, there is nothing to delete.
	if !wasDeleted(bundle) {
		if ok, err := hasState(root, id); ok {
			if err := r.Delete(ctx, id, &gorunc.DeleteOpts{Force: true}); err != nil && !isNotExist(err) {
				log.G(ctx).WithError(err).WithField("id", id).Warn("runsc delete --force")
			}
		} else if err != nil {
			log.G(ctx).WithError(err).WithField("id", id).Warn("read the runsc root")
		}
	}
	cleanupPortForward(ctx, cfg, namespace, id, bundle)
	if err := removeStaleLocks(root, id); err != nil {
		log.G(ctx).WithError(err).WithField("id", id).Warn("remove runsc's stale lock files")
	}
	if root != cfg.namespaceRoot(namespace) {
		if err := removeSandboxRoot(root); err != nil {
			log.G(ctx).WithError(err).WithField("id", id).Warn("remove the sandbox's runsc root")
		}
	}
	if bundleSandbox(id, bundle) == id {
		if err := removeMonitorSocket(cl.MonitorSocketDir, namespace, id); err != nil {
			log.G(ctx).WithError(err).WithField("id", id).Warn("remove the runtime monitoring socket")
		}
	}
	if err := mount.UnmountRecursive(filepath.Join(bundle, "rootfs"), 0); err != nil {
		log.G(ctx).WithError(err).Warn("unmount rootfs")
	}
	if e, err := runc.ReadExitStatus(bundle); err == nil {
		return sandbox.StopStatus{Pid: e.Pid, ExitStatus: e.Status}, nil
	}
	pid, _ := gorunc.ReadPidFile(filepath.Join(bundle, "init.pid"))
	return sandbox.StopStatus{Pid: pid, ExitStatus: sandboxGone}, nil
}

func isNotExist(err error) bool {
	return errdefs.IsNotFound(err) || strings.Contains(err.Error(), "does not exist") || strings.Contains(err.Error(), "not found")
}

// cleanupRoot is the runsc root that holds id's state: its sandbox's root,
// or, for a container created before Palisade gave each sandbox a root of
// its own, the namespace's root (the upgrade path). A container found in
// neither is cleaned up in its sandbox's root, where nothing is left.
func cleanupRoot(cfg Config, namespace, id, bundle string) (string, error) {
	root := cfg.sandboxRoot(namespace, bundleSandbox(id, bundle))
	if ok, err := hasState(root, id); ok || err != nil {
		return root, err
	}
	legacy := cfg.namespaceRoot(namespace)
	if ok, err := hasState(legacy, id); ok || err != nil {
		return legacy, err
	}
	return root, nil
}
