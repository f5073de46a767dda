package runsc

import (
	"context"
	"fmt"
	"strings"
	"time"

	"github.com/containerd/console"
	eventstypes "github.com/containerd/containerd/api/events"
	taskAPI "github.com/containerd/containerd/api/runtime/task/v3"
	"github.com/containerd/containerd/api/types/task"
	"github.com/containerd/containerd/v2/pkg/protobuf"
	"github.com/containerd/errdefs"
	gorunc "github.com/containerd/go-runc"
	"golang.org/x/sys/unix"
	"google.golang.org/protobuf/types/known/emptypb"
)

type emptypbEmpty = emptypb.Empty

var empty = &emptypb.Empty{}

var statusNames = map[string]task.Status{
	"created": task.Status_CREATED,
	"running": task.Status_RUNNING,
	"stopped": task.Status_STOPPED,
	"paused":  task.Status_PAUSED,
	"pausing": task.Status_PAUSING,
}

// State reports a process's state as the shim's state machine knows it; runsc
// is not asked, which keeps State cheap for containerd's frequent polling.
func (s *Service) State(ctx context.Context, r *taskAPI.StateRequest) (*taskAPI.StateResponse, error) {
	c, err := s.container(r.ID)
	if err != nil {
		return nil, err
	}
	p, err := c.process(r.ExecID)
	if err != nil {
		return nil, err
	}
	st, err := p.Status(ctx)
	if err != nil {
		return nil, err
	}
	status, ok := statusNames[st]
	if !ok {
		status = task.Status_UNKNOWN
	}
	sio := p.Stdio()
	return &taskAPI.StateResponse{
		ID: p.ID(), Bundle: c.bundle, Pid: uint32(p.Pid()), Status: status,
		Stdin: sio.Stdin, Stdout: sio.Stdout, Stderr: sio.Stderr, Terminal: sio.Terminal,
		ExitStatus: uint32(p.ExitStatus()), ExitedAt: protobuf.ToTimestamp(p.ExitedAt()),
	}, nil
}

// Pids lists the container's processes as gVisor's kernel numbers them
// (runsc ps): they live in the sandbox, not in the host's pid namespace.
func (s *Service) Pids(ctx context.Context, r *taskAPI.PidsRequest) (_ *taskAPI.PidsResponse, retErr error) {
	ctx, end := s.request(ctx, "runsc ps")
	defer end(&retErr)
	c, err := s.container(r.ID)
	if err != nil {
		return nil, err
	}
	pids, err := c.init.Runtime().Ps(ctx, c.id)
	if err != nil {
		return nil, fmt.Errorf("runsc ps: %w", err)
	}
	out := make([]*task.ProcessInfo, 0, len(pids))
	for _, pid := range pids {
		out = append(out, &task.ProcessInfo{Pid: uint32(pid)})
	}
	return &taskAPI.PidsResponse{Processes: out}, nil
}

// Pause freezes every process of the container in the sentry.
func (s *Service) Pause(ctx context.Context, r *taskAPI.PauseRequest) (_ *emptypbEmpty, retErr error) {
	ctx, end := s.request(ctx, "runsc pause")
	defer end(&retErr)
	c, err := s.container(r.ID)
	if err != nil {
		return nil, err
	}
	if err := c.init.Pause(ctx); err != nil {
		return nil, err
	}
	s.send(&eventstypes.TaskPaused{ContainerID: c.id})
	return empty, nil
}

// Resume thaws a paused container.
func (s *Service) Resume(ctx context.Context, r *taskAPI.ResumeRequest) (_ *emptypbEmpty, retErr error) {
	ctx, end := s.request(ctx, "runsc resume")
	defer end(&retErr)
	c, err := s.container(r.ID)
	if err != nil {
		return nil, err
	}
	if err := c.init.Resume(ctx); err != nil {
		return nil, err
	}
	s.send(&eventstypes.TaskResumed{ContainerID: c.id})
	return empty, nil
}

// Checkpoint is not offered: containerd's checkpoint options are CRIU's
// (work path, TCP, file locks), which runsc checkpoint does not take, and a
// checkpoint that silently drops them would restore something else.
func (s *Service) Checkpoint(ctx context.Context, r *taskAPI.CheckpointTaskRequest) (*emptypbEmpty, error) {
	return nil, fmt.Errorf("checkpoint of runsc containers through containerd's CRIU options: %w", errdefs.ErrNotImplemented)
}

// Kill signals the init (runsc kill, --all when asked) or an exec'd process.
func (s *Service) Kill(ctx context.Context, r *taskAPI.KillRequest) (_ *emptypbEmpty, retErr error) {
	ctx, end := s.request(ctx, "runsc kill")
	defer end(&retErr)
	c, err := s.container(r.ID)
	if err != nil {
		return nil, err
	}
	p, err := c.process(r.ExecID)
	if err != nil {
		return nil, err
	}
	if r.ExecID == "" {
		if st, _ := c.init.Status(ctx); st == "created" {
			return empty, s.abortCreated(ctx, c)
		}
	}
	if err := p.Kill(ctx, r.Signal, r.All); err != nil {
		if killedFinished(err) {
			return nil, fmt.Errorf("kill %s: process already finished: %w", r.ID, errdefs.ErrNotFound)
		}
		return nil, err
	}
	return empty, nil
}

// killedFinished reports whether a kill failed because the process had
// already ended: runsc says "sandbox is not running" for a root container,
// "no such process" for a pod container whose exit the sandbox has not
// reported yet, and "loading container: file does not exist" (or, racing
// the removal, "loading container: open <root>/<id>.state: no such file or
// directory") once the pod container is gone from the sandbox (containerd's
// own shims map "does not exist" to NotFound too). containerd's shims answer NotFound ("process already
// finished") then, which CRI's StopContainer and its sandbox exit handler
// take as stopped; anything else makes CRI retry a stop that cannot succeed.
func killedFinished(err error) bool {
	if errdefs.IsNotFound(err) {
		return true
	}
	msg := strings.ToLower(err.Error())
	return strings.Contains(msg, "process already finished") ||
		strings.Contains(msg, "sandbox is not running") ||
		strings.Contains(msg, "loading container: file does not exist") ||
		strings.Contains(msg, "loading container: open ") && strings.HasSuffix(msg, ".state: no such file or directory") ||
		strings.Contains(msg, "no such process") ||
		strings.Contains(msg, "container not running")
}

// abortCreated ends a container that was created but never started. runsc
// refuses to signal such a container (runc does not), yet containerd kills
// one whenever a Start fails, so the shim ends it itself: a root container
// by killing its sandbox process (the reaper then reports the exit), a pod
// container by deleting it in runsc and reporting the exit directly.
func (s *Service) abortCreated(ctx context.Context, c *container) error {
	if !c.sub {
		if err := unix.Kill(c.init.Pid(), unix.SIGKILL); err != nil && err != unix.ESRCH {
			return fmt.Errorf("kill sandbox of created container %s: %w", c.id, err)
		}
		return nil
	}
	if err := c.init.Runtime().Delete(ctx, c.id, &gorunc.DeleteOpts{Force: true}); err != nil {
		return fmt.Errorf("runsc delete --force %s: %w", c.id, err)
	}
	s.handleExit(ctx, c, "", gorunc.Exit{Pid: c.init.Pid(), Status: sandboxGone, Timestamp: time.Now()})
	return nil
}

// ResizePty resizes a process's terminal.
func (s *Service) ResizePty(ctx context.Context, r *taskAPI.ResizePtyRequest) (*emptypbEmpty, error) {
	c, err := s.container(r.ID)
	if err != nil {
		return nil, err
	}
	p, err := c.process(r.ExecID)
	if err != nil {
		return nil, err
	}
	if err := p.Resize(console.WinSize{Width: uint16(r.Width), Height: uint16(r.Height)}); err != nil {
		return nil, err
	}
	return empty, nil
}

// CloseIO closes a process's stdin.
func (s *Service) CloseIO(ctx context.Context, r *taskAPI.CloseIORequest) (*emptypbEmpty, error) {
	c, err := s.container(r.ID)
	if err != nil {
		return nil, err
	}
	p, err := c.process(r.ExecID)
	if err != nil {
		return nil, err
	}
	if stdin := p.Stdin(); stdin != nil {
		if err := stdin.Close(); err != nil {
			return nil, fmt.Errorf("close stdin: %w", err)
		}
	}
	return empty, nil
}

// Update changes the container's resources (runsc update).
func (s *Service) Update(ctx context.Context, r *taskAPI.UpdateTaskRequest) (_ *emptypbEmpty, retErr error) {
	ctx, end := s.request(ctx, "runsc update")
	defer end(&retErr)
	c, err := s.container(r.ID)
	if err != nil {
		return nil, err
	}
	if err := c.init.Update(ctx, r.Resources); err != nil {
		return nil, err
	}
	return empty, nil
}

// Wait blocks until the process has exited.
func (s *Service) Wait(ctx context.Context, r *taskAPI.WaitRequest) (*taskAPI.WaitResponse, error) {
	c, err := s.container(r.ID)
	if err != nil {
		return nil, err
	}
	p, err := c.process(r.ExecID)
	if err != nil {
		return nil, err
	}
	if err := p.Wait(ctx); err != nil {
		return nil, err
	}
	return &taskAPI.WaitResponse{
		ExitStatus: uint32(p.ExitStatus()),
		ExitedAt:   protobuf.ToTimestamp(p.ExitedAt()),
	}, nil
}
