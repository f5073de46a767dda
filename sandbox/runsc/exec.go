package runsc

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"

	"github.com/containerd/containerd/v2/cmd/containerd-shim-runc-v2/process"
	"github.com/containerd/containerd/v2/pkg/stdio"
	"github.com/containerd/errdefs"
	gorunc "github.com/containerd/go-runc"

	"github.com/palisade-runtime/palisade/sandbox/trampoline"
)

// Exec'd processes. containerd's process package runs `runsc exec --detach`
// and records the pid of the host-side `runsc exec` that waits for the
// process; the process itself lives in the sandbox, out of the host's reach.
// Signals to the waiter are forwarded to it, but SIGKILL cannot be: killing
// the waiter would leave the process running in the sandbox (CRI's ExecSync
// timeout does exactly that). So every `runsc exec` also writes the
// process's pid inside the sandbox (--internal-pid-file), and Kill signals
// that pid with `runsc kill --pid`, as gVisor's own shim does.
//
// containerd's process package builds the exec command line itself, so the
// flag is added by the trampoline: for execs, go-runc runs
// palisade-trampoline (trampoline.Path) with trampoline.EnvRunscExec naming
// runsc, and it rewrites the arguments and execs runsc.

// execPidFile is where containerd's process package has `runsc exec` write
// the waiter's pid for exec id in dir (process.newExecPidFile).
func execPidFile(dir, id string) string { return dir + "/" + id + ".pid" }

// sandboxExec is an exec'd process whose signals go to its pid in the
// sandbox.
type sandboxExec struct {
	process.Process
	container   string
	runtime     *gorunc.Runc
	internalPid string // file runsc writes the in-sandbox pid to
}

func (e *sandboxExec) Kill(ctx context.Context, sig uint32, all bool) error {
	data, err := os.ReadFile(e.internalPid)
	if err != nil {
		// Not started, or ended and cleaned up: containerd's own answer
		// (FailedPrecondition, NotFound) is the right one then.
		return e.Process.Kill(ctx, sig, all)
	}
	if st, _ := e.Status(ctx); st == "stopped" {
		return e.Process.Kill(ctx, sig, all) // NotFound: process already finished
	}
	pid, err := strconv.Atoi(strings.TrimSpace(string(data)))
	if err != nil {
		return fmt.Errorf("exec %s: internal pid file %s: %w", e.ID(), e.internalPid, err)
	}
	err = e.runtime.Kill(ctx, e.container, int(sig), &gorunc.KillOpts{ExtraArgs: []string{"--pid", strconv.Itoa(pid)}})
	if err != nil && killedFinished(err) {
		return fmt.Errorf("exec %s: process already finished: %w", e.ID(), errdefs.ErrNotFound)
	}
	return err
}

// exec creates an exec'd process in c. Its parent is a process.Init that is
// never created (execParent): containerd's process package takes the exec's
// go-runc client from its parent, and execs need the trampoline's.
func (c *container) exec(ctx context.Context, cfg *process.ExecConfig) (process.Process, error) {
	st, _ := c.init.Status(ctx)
	if st == "stopped" || st == "deleted" || c.sub && st != "running" {
		return nil, fmt.Errorf("exec in container %s that is %s: %w", c.id, st, errdefs.ErrFailedPrecondition)
	}
	p, err := c.execParent.Exec(ctx, c.bundle, cfg)
	if err != nil {
		return nil, err
	}
	return &sandboxExec{
		Process:     p,
		container:   c.id,
		runtime:     c.init.Runtime(),
		internalPid: execPidFile(c.bundle, cfg.ID) + trampoline.InternalPidSuffix,
	}, nil
}

// newExecParent is the exec parent for container id: runc is the
// container's go-runc client with the trampoline as the command.
func newExecParent(id, bundle, rootfs string, runc *gorunc.Runc, sio stdio.Stdio, platform stdio.Platform) *process.Init {
	p := process.New(id, runc, sio)
	p.Bundle, p.Rootfs, p.Platform = bundle, rootfs, platform
	p.WorkDir = filepath.Join(bundle, "work")
	return p
}
