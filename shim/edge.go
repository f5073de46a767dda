package shim

import (
	"context"

	taskAPI "github.com/containerd/containerd/api/runtime/task/v3"
	"github.com/containerd/errdefs"
	"github.com/containerd/errdefs/pkg/errgrpc"
	"google.golang.org/protobuf/types/known/emptypb"
)

// edge is the ttrpc face of the service. Below it errors are Go errors that
// wrap errdefs sentinels; here, and only here, they become status codes.
type edge struct{ s *service }

var _ taskAPI.TTRPCTaskService = edge{}

func grpcResult[T any](v T, err error) (T, error) {
	if err != nil {
		var zero T
		return zero, toTTRPC(err)
	}
	return v, nil
}

// toTTRPC maps err to a status code by the errdefs kind it wraps, keeping its
// whole message. The error is flattened to that kind first: errgrpc encodes
// every further branch of a multi-%w chain as a status detail, which ctr and
// crictl print again as extra lines under the real message.
func toTTRPC(err error) error {
	if k, ok := errdefs.Resolve(err).(interface{ WithMessage(string) error }); ok {
		err = k.WithMessage(err.Error())
	}
	return errgrpc.ToGRPC(err)
}

// Create enforces the handler's floor on the bundle, then creates.
func (e edge) Create(ctx context.Context, r *taskAPI.CreateTaskRequest) (*taskAPI.CreateTaskResponse, error) {
	return grpcResult(e.s.create(ctx, r))
}

// Exec enforces the floor on the process spec, then creates the exec.
func (e edge) Exec(ctx context.Context, r *taskAPI.ExecProcessRequest) (*emptypb.Empty, error) {
	return grpcResult(e.s.exec(ctx, r))
}

// Shutdown lets an idle shim exit, even one that never created a container.
func (e edge) Shutdown(ctx context.Context, r *taskAPI.ShutdownRequest) (*emptypb.Empty, error) {
	st, err := e.s.state()
	if err != nil {
		e.s.env.Shutdown.Shutdown()
		return &emptypb.Empty{}, nil
	}
	return grpcResult(st.backend.Shutdown(ctx, r))
}

// The rest pass through to the backend.

func (e edge) State(ctx context.Context, r *taskAPI.StateRequest) (*taskAPI.StateResponse, error) {
	return via(e.s, func(st *handlerState) (*taskAPI.StateResponse, error) { return st.backend.State(ctx, r) })
}

func (e edge) Start(ctx context.Context, r *taskAPI.StartRequest) (*taskAPI.StartResponse, error) {
	return via(e.s, func(st *handlerState) (*taskAPI.StartResponse, error) { return st.backend.Start(ctx, r) })
}

func (e edge) Delete(ctx context.Context, r *taskAPI.DeleteRequest) (*taskAPI.DeleteResponse, error) {
	return via(e.s, func(st *handlerState) (*taskAPI.DeleteResponse, error) { return st.backend.Delete(ctx, r) })
}

func (e edge) Pids(ctx context.Context, r *taskAPI.PidsRequest) (*taskAPI.PidsResponse, error) {
	return via(e.s, func(st *handlerState) (*taskAPI.PidsResponse, error) { return st.backend.Pids(ctx, r) })
}

func (e edge) Pause(ctx context.Context, r *taskAPI.PauseRequest) (*emptypb.Empty, error) {
	return via(e.s, func(st *handlerState) (*emptypb.Empty, error) { return st.backend.Pause(ctx, r) })
}

func (e edge) Resume(ctx context.Context, r *taskAPI.ResumeRequest) (*emptypb.Empty, error) {
	return via(e.s, func(st *handlerState) (*emptypb.Empty, error) { return st.backend.Resume(ctx, r) })
}

func (e edge) Checkpoint(ctx context.Context, r *taskAPI.CheckpointTaskRequest) (*emptypb.Empty, error) {
	return via(e.s, func(st *handlerState) (*emptypb.Empty, error) { return st.backend.Checkpoint(ctx, r) })
}

func (e edge) Kill(ctx context.Context, r *taskAPI.KillRequest) (*emptypb.Empty, error) {
	return via(e.s, func(st *handlerState) (*emptypb.Empty, error) { return st.backend.Kill(ctx, r) })
}

func (e edge) ResizePty(ctx context.Context, r *taskAPI.ResizePtyRequest) (*emptypb.Empty, error) {
	return via(e.s, func(st *handlerState) (*emptypb.Empty, error) { return st.backend.ResizePty(ctx, r) })
}

func (e edge) CloseIO(ctx context.Context, r *taskAPI.CloseIORequest) (*emptypb.Empty, error) {
	return via(e.s, func(st *handlerState) (*emptypb.Empty, error) { return st.backend.CloseIO(ctx, r) })
}

func (e edge) Update(ctx context.Context, r *taskAPI.UpdateTaskRequest) (*emptypb.Empty, error) {
	return via(e.s, func(st *handlerState) (*emptypb.Empty, error) { return st.backend.Update(ctx, r) })
}

func (e edge) Wait(ctx context.Context, r *taskAPI.WaitRequest) (*taskAPI.WaitResponse, error) {
	return via(e.s, func(st *handlerState) (*taskAPI.WaitResponse, error) { return st.backend.Wait(ctx, r) })
}

func (e edge) Stats(ctx context.Context, r *taskAPI.StatsRequest) (*taskAPI.StatsResponse, error) {
	return via(e.s, func(st *handlerState) (*taskAPI.StatsResponse, error) { return st.backend.Stats(ctx, r) })
}

func (e edge) Connect(ctx context.Context, r *taskAPI.ConnectRequest) (*taskAPI.ConnectResponse, error) {
	return via(e.s, func(st *handlerState) (*taskAPI.ConnectResponse, error) { return st.backend.Connect(ctx, r) })
}

// via runs fn against the active handler and maps its error.
func via[T any](s *service, fn func(*handlerState) (T, error)) (T, error) {
	st, err := s.state()
	if err != nil {
		var zero T
		return zero, toTTRPC(err)
	}
	return grpcResult(fn(st))
}
