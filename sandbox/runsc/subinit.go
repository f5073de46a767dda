package runsc

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"sync"
	"time"

	"github.com/containerd/console"
	"github.com/containerd/containerd/v2/cmd/containerd-shim-runc-v2/process"
	"github.com/containerd/containerd/v2/core/mount"
	ptypes "github.com/containerd/containerd/v2/pkg/protobuf/types"
	"github.com/containerd/containerd/v2/pkg/stdio"
	"github.com/containerd/errdefs"
	gorunc "github.com/containerd/go-runc"
	"github.com/containerd/log"
)

// initProcess is what a container needs of its first process. containerd's
// process.Init provides it for sandbox roots and terminal pod containers;
// subInit for the other pod containers.
type initProcess interface {
	process.Process
	Pause(ctx context.Context) error
	Resume(ctx context.Context) error
	Update(ctx context.Context, r *ptypes.Any) error
	Exec(ctx context.Context, path string, r *process.ExecConfig) (process.Process, error)
	Runtime() *gorunc.Runc
}

var (
	_ initProcess = (*process.Init)(nil)
	_ initProcess = (*subInit)(nil)
)

// subInit is the first process of a non-terminal container that joins a pod's
// sandbox. runsc gives such a container the stdio of the `runsc start`
// process, not of `runsc create` as runc does, so it cannot use
// process.Init (whose start runs with go-runc's output capture as stdio).
// subInit opens the container's FIFOs, files or logging binary itself and
// hands them to `runsc start`; runsc passes the descriptors into the sandbox,
// so no copy loop runs in the shim.
type subInit struct {
	id      string
	bundle  string
	rootfs  string
	runtime *gorunc.Runc
	sio     stdio.Stdio
	// parent is a process.Init that is never created: containerd's exec
	// process needs one for its runtime, platform and io settings.
	parent *process.Init
	// env is added to `runsc start`, which starts the container's gofer and
	// so must run confined like every other runsc invocation.
	env  []string
	done chan struct{} // closed when exited

	mu      sync.Mutex
	state   string    // created, running, paused, stopped, deleted; guarded by mu
	pid     int       // guarded by mu
	status  int       // guarded by mu
	exited  time.Time // guarded by mu
	stdinKe io.Closer // keeps the stdin FIFO open until CloseIO; guarded by mu
	logger  io.Closer // a binary:// logger, closed at Delete; guarded by mu
}

func newSubInit(id, bundle, rootfs string, r *gorunc.Runc, sio stdio.Stdio, platform stdio.Platform, env []string) *subInit {
	parent := process.New(id, r, sio)
	parent.Bundle = bundle
	parent.Platform = platform
	return &subInit{id: id, bundle: bundle, rootfs: rootfs, runtime: r, sio: sio, parent: parent, env: env,
		done: make(chan struct{}), state: "created"}
}

// create runs `runsc create` without stdio; the pid file names the sandbox.
func (p *subInit) create(ctx context.Context) error {
	pidFile := p.bundle + "/init.pid"
	// Stdio of /dev/null, not go-runc's output capture: the gofer that runsc
	// create leaves running would hold a capture pipe open.
	null, err := gorunc.NewNullIO()
	if err != nil {
		return err
	}
	defer null.Close()
	if err := p.runtime.Create(ctx, p.id, p.bundle, &gorunc.CreateOpts{PidFile: pidFile, IO: null}); err != nil {
		return fmt.Errorf("runsc create %s: %w%s", p.id, err, lastRuntimeError(p.runtime.Log))
	}
	pid, err := gorunc.ReadPidFile(pidFile)
	if err != nil {
		return fmt.Errorf("read runsc pid file: %w", err)
	}
	p.mu.Lock()
	p.pid = pid
	p.mu.Unlock()
	return nil
}

func (p *subInit) ID() string { return p.id }

func (p *subInit) Pid() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.pid
}

func (p *subInit) ExitStatus() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.status
}

func (p *subInit) ExitedAt() time.Time {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.exited
}

func (p *subInit) Stdin() io.Closer {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.stdinKe
}

func (p *subInit) Stdio() stdio.Stdio { return p.sio }

func (p *subInit) Status(context.Context) (string, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.state, nil
}

func (p *subInit) Wait(ctx context.Context) error {
	select {
	case <-p.done:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// Resize has no console to resize: terminal containers use process.Init.
func (p *subInit) Resize(console.WinSize) error { return nil }

func (p *subInit) Runtime() *gorunc.Runc { return p.runtime }

// Start opens the container's stdio and runs `runsc start` with it.
func (p *subInit) Start(ctx context.Context) error {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.state != "created" {
		return fmt.Errorf("start %s in state %s: %w", p.id, p.state, errdefs.ErrFailedPrecondition)
	}
	sio, err := openStdio(ctx, p.id, p.sio)
	if err != nil {
		return err
	}
	defer sio.closeAfterStart()
	args := append(append([]string{"--root", p.runtime.Root}, p.runtime.ExtraArgs...), "--log", p.runtime.Log, "--log-format", "json", "start", p.id)
	cmd := exec.CommandContext(ctx, p.runtime.Command, args...)
	cmd.Env = append(os.Environ(), p.env...)
	sio.set(cmd)
	if cmd.Stderr == nil {
		// /dev/null, not a pipe into a buffer: `runsc start` starts the
		// container's gofer, which inherits the pipe and outlives it, and
		// the wait for the copy to end would last until the gofer's exit.
		// runsc's log has the error.
		null, err := os.OpenFile(os.DevNull, os.O_WRONLY, 0)
		if err != nil {
			sio.closeAll()
			return fmt.Errorf("runsc start %s: %w", p.id, err)
		}
		defer null.Close()
		cmd.Stderr = null
	}
	ec, err := gorunc.Monitor.Start(cmd)
	if err == nil {
		var status int
		if status, err = gorunc.Monitor.Wait(cmd, ec); err == nil && status != 0 {
			err = fmt.Errorf("exit status %d%s", status, lastRuntimeError(p.runtime.Log))
		}
	}
	if err != nil {
		sio.closeAll()
		return fmt.Errorf("runsc start %s: %w", p.id, err)
	}
	p.stdinKe = sio.stdinKeeper
	if sio.binary != nil {
		p.logger = sio.binary
	}
	p.state = "running"
	return nil
}

func (p *subInit) SetExited(status int) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.state == "stopped" || p.state == "deleted" {
		return
	}
	p.status, p.exited, p.state = status, time.Now(), "stopped"
	close(p.done)
}

func (p *subInit) Delete(ctx context.Context) error {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.state == "running" || p.state == "paused" {
		return fmt.Errorf("container %s is %s: %w", p.id, p.state, errdefs.ErrFailedPrecondition)
	}
	err := p.runtime.Delete(ctx, p.id, &gorunc.DeleteOpts{Force: true})
	if err != nil && isNotExist(err) {
		err = nil
	}
	for _, c := range []io.Closer{p.stdinKe, p.logger} {
		if c != nil {
			c.Close()
		}
	}
	p.stdinKe, p.logger = nil, nil
	if p.rootfs != "" {
		if uerr := mount.UnmountRecursive(p.rootfs, 0); uerr != nil {
			log.G(ctx).WithError(uerr).Warn("unmount rootfs")
			err = errors.Join(err, uerr)
		}
	}
	p.state = "deleted"
	return err
}

// Kill signals the container through runsc; Service.Kill maps runsc's
// errors for a process that has ended.
func (p *subInit) Kill(ctx context.Context, sig uint32, all bool) error {
	p.mu.Lock()
	st := p.state
	p.mu.Unlock()
	if st == "stopped" || st == "deleted" {
		return fmt.Errorf("container %s: process already finished: %w", p.id, errdefs.ErrNotFound)
	}
	return p.runtime.Kill(ctx, p.id, int(sig), &gorunc.KillOpts{All: all})
}

func (p *subInit) Pause(ctx context.Context) error {
	return p.transition(ctx, "running", "paused", p.runtime.Pause)
}

func (p *subInit) Resume(ctx context.Context) error {
	return p.transition(ctx, "paused", "running", p.runtime.Resume)
}

func (p *subInit) transition(ctx context.Context, from, to string, op func(context.Context, string) error) error {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.state != from {
		return fmt.Errorf("container %s is %s, not %s: %w", p.id, p.state, from, errdefs.ErrFailedPrecondition)
	}
	if err := op(ctx, p.id); err != nil {
		return err
	}
	p.state = to
	return nil
}

func (p *subInit) Update(ctx context.Context, r *ptypes.Any) error { return p.parent.Update(ctx, r) }

func (p *subInit) Exec(ctx context.Context, path string, r *process.ExecConfig) (process.Process, error) {
	if st, _ := p.Status(ctx); st != "running" {
		return nil, fmt.Errorf("exec in container %s that is %s: %w", p.id, st, errdefs.ErrFailedPrecondition)
	}
	return p.parent.Exec(ctx, path, r)
}
