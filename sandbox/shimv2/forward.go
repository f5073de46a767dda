package shimv2

import (
	"context"
	"fmt"

	taskAPI "github.com/containerd/containerd/api/runtime/task/v3"
	"github.com/containerd/errdefs"
)

// The rest are forwarded as they are.

func (s *Service) Pids(ctx context.Context, r *taskAPI.PidsRequest) (*taskAPI.PidsResponse, error) {
	return forward(ctx, s, r.ID, func(ctx context.Context, t taskAPI.TTRPCTaskService) (*taskAPI.PidsResponse, error) {
		return t.Pids(ctx, r)
	})
}

func (s *Service) Pause(ctx context.Context, r *taskAPI.PauseRequest) (*emptypbEmpty, error) {
	return forward(ctx, s, r.ID, func(ctx context.Context, t taskAPI.TTRPCTaskService) (*emptypbEmpty, error) {
		return t.Pause(ctx, r)
	})
}

func (s *Service) Resume(ctx context.Context, r *taskAPI.ResumeRequest) (*emptypbEmpty, error) {
	return forward(ctx, s, r.ID, func(ctx context.Context, t taskAPI.TTRPCTaskService) (*emptypbEmpty, error) {
		return t.Resume(ctx, r)
	})
}

func (s *Service) Checkpoint(ctx context.Context, r *taskAPI.CheckpointTaskRequest) (*emptypbEmpty, error) {
	return forward(ctx, s, r.ID, func(ctx context.Context, t taskAPI.TTRPCTaskService) (*emptypbEmpty, error) {
		return t.Checkpoint(ctx, r)
	})
}

func (s *Service) ResizePty(ctx context.Context, r *taskAPI.ResizePtyRequest) (*emptypbEmpty, error) {
	return forward(ctx, s, r.ID, func(ctx context.Context, t taskAPI.TTRPCTaskService) (*emptypbEmpty, error) {
		return t.ResizePty(ctx, r)
	})
}

func (s *Service) CloseIO(ctx context.Context, r *taskAPI.CloseIORequest) (*emptypbEmpty, error) {
	return forward(ctx, s, r.ID, func(ctx context.Context, t taskAPI.TTRPCTaskService) (*emptypbEmpty, error) {
		return t.CloseIO(ctx, r)
	})
}

func (s *Service) Update(ctx context.Context, r *taskAPI.UpdateTaskRequest) (*emptypbEmpty, error) {
	return forward(ctx, s, r.ID, func(ctx context.Context, t taskAPI.TTRPCTaskService) (*emptypbEmpty, error) {
		return t.Update(ctx, r)
	})
}

func (s *Service) Stats(ctx context.Context, r *taskAPI.StatsRequest) (*taskAPI.StatsResponse, error) {
	return forward(ctx, s, r.ID, func(ctx context.Context, t taskAPI.TTRPCTaskService) (*taskAPI.StatsResponse, error) {
		return t.Stats(ctx, r)
	})
}

// Kill of a process whose downstream is gone finds it finished: it was
// killed with it.
func (s *Service) Kill(ctx context.Context, r *taskAPI.KillRequest) (*emptypbEmpty, error) {
	if c, err := s.container(r.ID); err == nil && c.cn.isClosed() {
		return nil, fmt.Errorf("container %s: process already finished (its downstream shim is gone): %w",
			r.ID, errdefs.ErrNotFound)
	}
	return forward(ctx, s, r.ID, func(ctx context.Context, t taskAPI.TTRPCTaskService) (*emptypbEmpty, error) {
		return t.Kill(ctx, r)
	})
}
