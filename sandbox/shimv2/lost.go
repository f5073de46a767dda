package shimv2

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"time"

	eventstypes "github.com/containerd/containerd/api/events"
	taskAPI "github.com/containerd/containerd/api/runtime/task/v3"
	tasktypes "github.com/containerd/containerd/api/types/task"
	"github.com/containerd/containerd/v2/core/runtime"
	"github.com/containerd/containerd/v2/pkg/namespaces"
	"github.com/containerd/errdefs"
	"github.com/containerd/log"
	"github.com/containerd/ttrpc"
	"google.golang.org/protobuf/types/known/timestamppb"
)

// What happens when a downstream shim dies (this file).
//
// The downstream's container processes are reparented to Palisade's shim
// (a subreaper) and keep running, and containerd, which talks to Palisade,
// would never hear of an exit. So Palisade runs the downstream's own
// `delete` for each of its containers (for runc: runc delete --force),
// publishes TaskExit for every process whose exit the downstream had not
// reported, and from then on answers Wait, State and Delete for those
// containers itself (and publishes their TaskDelete). Once containerd has
// deleted them, its Shutdown lets the shim exit.
//
// "Reported" means the downstream's Wait for the process returned: it had
// recorded the exit, and publishes TaskExit right after. Palisade keeps one
// such Wait pending for each started process (watch).

// exitInfo is how a process ended.
type exitInfo struct {
	pid    uint32
	status uint32
	at     *timestamppb.Timestamp
}

// started records a started process and watches for its exit.
func (s *Service) started(id, execID string, pid uint32) {
	s.mu.Lock()
	c, ok := s.containers[id]
	if !ok {
		s.mu.Unlock()
		return
	}
	p := c.procs[execID]
	if p == nil {
		p = &proc{}
		c.procs[execID] = p
	}
	p.pid, p.started = pid, true
	cn := c.cn
	s.mu.Unlock()
	go s.watch(cn, c, execID)
}

// watch waits for the downstream to report the exit of a process.
func (s *Service) watch(cn *conn, c *container, execID string) {
	resp, err := cn.task.Wait(s.ctx, &taskAPI.WaitRequest{ID: c.id, ExecID: execID})
	if err != nil {
		return // the downstream is gone (recover answers), or the process is deleted
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if p := c.procs[execID]; p != nil && p.exit == nil {
		p.exit = &exitInfo{pid: p.pid, status: resp.ExitStatus, at: resp.ExitedAt}
	}
}

// recover reclaims the containers of a downstream shim that died.
func (s *Service) recover(cn *conn) {
	defer close(cn.recovered)
	ctx := namespaces.WithNamespace(s.ctx, s.env.Namespace)
	s.mu.Lock()
	var cs []*container
	for _, c := range s.containers {
		if c.cn == cn {
			cs = append(cs, c)
		}
	}
	s.mu.Unlock()
	for _, c := range cs {
		exit := exitInfo{status: 255, at: timestamppb.Now()}
		if resp, err := s.launch.delete(ctx, c.id, c.bundle); err != nil {
			log.G(ctx).WithError(err).WithField("id", c.id).Error("reclaim a container of the dead downstream shim")
		} else {
			exit = exitInfo{pid: resp.Pid, status: resp.ExitStatus, at: resp.ExitedAt}
		}
		s.mu.Lock()
		events := s.unreported(c, exit)
		s.mu.Unlock()
		for _, e := range events {
			s.publish(ctx, e)
		}
	}
	removeSockets(ctx, cn.address, "")
}

// unreported marks the processes of c whose exit the downstream had not
// reported as ended with exit, and returns their TaskExit events, the
// init's last (containerd expects a task's execs to end before it).
// Caller holds s.mu.
func (s *Service) unreported(c *container, exit exitInfo) []any {
	c.lost = &exit
	var events []any
	ids := make([]string, 0, len(c.procs))
	for id := range c.procs {
		if id != "" {
			ids = append(ids, id)
		}
	}
	slices.Sort(ids)
	if _, ok := c.procs[""]; ok {
		ids = append(ids, "")
	}
	for _, id := range ids {
		p := c.procs[id]
		if p.exit != nil || (id != "" && !p.started) || (id == "" && !c.created) {
			continue
		}
		e := exit
		if id != "" || e.pid == 0 {
			e.pid = p.pid
		}
		p.exit = &e
		events = append(events, &eventstypes.TaskExit{ContainerID: c.id, ID: orInit(id, c.id),
			Pid: e.pid, ExitStatus: e.status, ExitedAt: e.at})
	}
	return events
}

func orInit(execID, id string) string {
	if execID == "" {
		return id
	}
	return execID
}

func (s *Service) publish(ctx context.Context, e any) {
	if err := s.env.Publisher.Publish(ctx, runtime.GetTopic(e), e); err != nil {
		log.G(ctx).WithError(err).Error("publish event")
	}
}

// lostExit is how a process of a reclaimed container ended.
func (s *Service) lostExit(c *container, execID string) (exitInfo, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if p := c.procs[execID]; p != nil && p.exit != nil && c.lost != nil {
		return *p.exit, nil
	}
	if c.lost == nil {
		return exitInfo{}, c.cn.gone()
	}
	if execID != "" {
		return exitInfo{}, fmt.Errorf("exec %s in %s: %w", execID, c.id, errdefs.ErrNotFound)
	}
	return *c.lost, nil
}

func (s *Service) initPid(c *container) uint32 {
	s.mu.Lock()
	defer s.mu.Unlock()
	if p := c.procs[""]; p != nil {
		return p.pid
	}
	return 0
}

// downstreamLost calls fn on the downstream unless it is gone, and reports
// whether it is (after its recovery, so that lostExit can answer).
func downstreamLost[T any](ctx context.Context, c *container, fn func(context.Context, taskAPI.TTRPCTaskService) (T, error)) (T, bool, error) {
	var zero T
	if !c.cn.isClosed() {
		v, err := fn(ctx, c.cn.task)
		if err == nil {
			return v, false, nil
		}
		if !errors.Is(err, ttrpc.ErrClosed) {
			return zero, false, c.cn.native(err)
		}
	}
	if !c.cn.waitRecovered(ctx) {
		return zero, true, ctx.Err()
	}
	return zero, true, nil
}

// Wait forwards, or after the downstream died answers with the exit that
// recover recorded.
func (s *Service) Wait(ctx context.Context, r *taskAPI.WaitRequest) (*taskAPI.WaitResponse, error) {
	c, err := s.container(r.ID)
	if err != nil {
		return nil, err
	}
	resp, lost, err := downstreamLost(ctx, c, func(ctx context.Context, t taskAPI.TTRPCTaskService) (*taskAPI.WaitResponse, error) {
		return t.Wait(ctx, r)
	})
	if !lost || err != nil {
		return resp, err
	}
	e, err := s.lostExit(c, r.ExecID)
	if err != nil {
		return nil, err
	}
	return &taskAPI.WaitResponse{ExitStatus: e.status, ExitedAt: e.at}, nil
}

// State forwards, or reports a reclaimed container as stopped.
func (s *Service) State(ctx context.Context, r *taskAPI.StateRequest) (*taskAPI.StateResponse, error) {
	c, err := s.container(r.ID)
	if err != nil {
		return nil, err
	}
	resp, lost, err := downstreamLost(ctx, c, func(ctx context.Context, t taskAPI.TTRPCTaskService) (*taskAPI.StateResponse, error) {
		return t.State(ctx, r)
	})
	if !lost || err != nil {
		return resp, err
	}
	e, err := s.lostExit(c, r.ExecID)
	if err != nil {
		return nil, err
	}
	return &taskAPI.StateResponse{ID: orInit(r.ExecID, r.ID), Bundle: c.bundle, Pid: e.pid, ExecID: r.ExecID,
		Status: tasktypes.Status_STOPPED, ExitStatus: e.status, ExitedAt: e.at}, nil
}

// Delete forwards, or deletes a reclaimed container's record and publishes
// the TaskDelete its dead downstream cannot.
func (s *Service) Delete(ctx context.Context, r *taskAPI.DeleteRequest) (*taskAPI.DeleteResponse, error) {
	if r.ExecID == "" {
		s.waitCreate(ctx, r.ID)
	}
	c, err := s.container(r.ID)
	if err != nil {
		return nil, err
	}
	resp, lost, err := downstreamLost(ctx, c, func(ctx context.Context, t taskAPI.TTRPCTaskService) (*taskAPI.DeleteResponse, error) {
		return t.Delete(ctx, r)
	})
	if err != nil {
		return nil, err
	}
	if lost {
		e, err := s.lostExit(c, r.ExecID)
		if err != nil {
			return nil, err
		}
		resp = &taskAPI.DeleteResponse{Pid: e.pid, ExitStatus: e.status, ExitedAt: e.at}
		if r.ExecID == "" {
			s.publish(ctx, &eventstypes.TaskDelete{ContainerID: c.id, Pid: e.pid, ExitStatus: e.status, ExitedAt: e.at})
		}
	}
	if r.ExecID == "" {
		s.forget(r.ID)
		s.mu.Lock()
		s.lastDelete = time.Now()
		s.mu.Unlock()
		// The container is reclaimed: containerd's `shim delete`, which
		// follows every shim exit, finds nothing left to do.
		if err := os.Remove(filepath.Join(c.bundle, recordFile)); err != nil && !errors.Is(err, os.ErrNotExist) {
			log.G(ctx).WithError(err).Warn("remove the downstream record")
		}
	} else {
		s.mu.Lock()
		delete(c.procs, r.ExecID)
		s.mu.Unlock()
	}
	return resp, nil
}
