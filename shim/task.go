package shim

import (
	"context"
	"fmt"

	taskAPI "github.com/containerd/containerd/api/runtime/task/v3"
	"google.golang.org/protobuf/types/known/emptypb"

	"github.com/palisade-runtime/palisade/sandbox"
	"github.com/palisade-runtime/palisade/sandbox/runsc"
)

// create selects the handler, enforces its floor on the bundle and creates
// the container on the handler's backend.
func (s *service) create(ctx context.Context, r *taskAPI.CreateTaskRequest) (*taskAPI.CreateTaskResponse, error) {
	st, err := s.activate(ctx, r)
	if err != nil {
		return nil, err
	}
	if _, err := enforceBundle(ctx, st, r.ID, r.Bundle); err != nil {
		return nil, err
	}
	if err := persistHandler(r.Bundle, st); err != nil {
		return nil, fmt.Errorf("record handler in bundle: %w", err)
	}
	return st.backend.Create(ctx, r)
}

// exec enforces the floor on the exec's process spec and creates it.
func (s *service) exec(ctx context.Context, r *taskAPI.ExecProcessRequest) (*emptypb.Empty, error) {
	st, err := s.state()
	if err != nil {
		return nil, err
	}
	if r.Spec == nil {
		return nil, invalid(fmt.Errorf("exec %s: no process spec", r.ExecID))
	}
	enforced, err := enforceExec(ctx, st, r.ID, r.ExecID, r.Spec.Value)
	if err != nil {
		return nil, err
	}
	r.Spec.Value = enforced
	return st.backend.Exec(ctx, r)
}

// newBackend builds the backend a handler names.
func newBackend(ctx context.Context, h Handler, env sandbox.Env) (sandbox.Backend, error) {
	switch h.Backend {
	case BackendRunsc:
		return runsc.New(ctx, h.Runsc, env)
	}
	return nil, fmt.Errorf("backend %q: not available", h.Backend)
}

// cleanerFor returns the `shim delete` path of a handler's backend.
func cleanerFor(h Handler) (sandbox.Cleaner, error) {
	switch h.Backend {
	case BackendRunsc:
		return runsc.Cleaner{Config: h.Runsc}, nil
	}
	return nil, fmt.Errorf("backend %q: no cleanup", h.Backend)
}
