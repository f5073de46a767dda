package shim

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"

	taskAPI "github.com/containerd/containerd/api/runtime/task/v3"
	"github.com/containerd/containerd/v2/pkg/namespaces"
	cshim "github.com/containerd/containerd/v2/pkg/shim"
	"google.golang.org/protobuf/types/known/emptypb"

	"github.com/palisade-runtime/palisade/policy"
	"github.com/palisade-runtime/palisade/sandbox"
	"github.com/palisade-runtime/palisade/sandbox/runsc"
	"github.com/palisade-runtime/palisade/sandbox/shimv2"
)

// create selects the handler, enforces its floor on the bundle and creates
// the container on the handler's backend.
func (s *service) create(ctx context.Context, r *taskAPI.CreateTaskRequest) (*taskAPI.CreateTaskResponse, error) {
	st, err := s.activate(ctx, r)
	if err != nil {
		return nil, err
	}
	d, err := enforceBundle(ctx, st, r.ID, r.Bundle)
	if err != nil {
		return nil, err
	}
	if a, ok := st.backend.(decisionAmender); ok {
		a.AmendDecision(d)
		if err := rewriteDecision(r.Bundle, d); err != nil {
			return nil, err
		}
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
func newBackend(ctx context.Context, name string, h Handler, env sandbox.Env) (sandbox.Backend, error) {
	switch h.Backend {
	case BackendRunsc:
		return runsc.New(ctx, h.Runsc, env, runsc.WithMonitoring(name, h.Monitoring))
	case BackendShim, BackendKata:
		removeSocketAtShutdown(ctx, env)
		return shimv2.New(ctx, h.Shim, h.Backend, env)
	}
	return nil, fmt.Errorf("backend %q: not available", h.Backend)
}

// removeSocketAtShutdown removes this shim's socket as soon as its shutdown
// starts. containerd's pkg/shim removes it only after every shutdown callback
// has returned, and finds it through the bundle's "s" link; the delegate's
// callback waits for its downstream shim to exit, by which time containerd
// may have deleted the bundle, and the socket was left behind. The address
// is derived as Manager.Start derived it.
func removeSocketAtShutdown(ctx context.Context, env sandbox.Env) {
	dir, err := os.Readlink("s")
	if err != nil {
		return // no socket_dir from containerd: pkg/shim's default finds it
	}
	cwd, err := os.Getwd()
	if err != nil {
		return
	}
	group, err := groupOf(".")
	if err != nil || group == "" {
		group = filepath.Base(cwd)
	}
	address, err := cshim.CreateSocketAddress(namespaces.WithNamespace(ctx, env.Namespace), dir, env.GRPCAddress, group, false)
	if err != nil {
		return
	}
	env.Shutdown.RegisterCallback(func(context.Context) error {
		if err := cshim.RemoveSocket(address); err != nil && !errors.Is(err, os.ErrNotExist) {
			return err
		}
		return nil
	})
}

// cleanerFor returns the `shim delete` path of a handler's backend.
func cleanerFor(h Handler) (sandbox.Cleaner, error) {
	switch h.Backend {
	case BackendRunsc:
		cl := runsc.Cleaner{Config: h.Runsc}
		if h.Monitoring.Enabled {
			cl.MonitorSocketDir = h.Monitoring.WithDefaults("").SocketDir
		}
		return cl, nil
	case BackendShim, BackendKata:
		return shimv2.Cleaner{}, nil
	}
	return nil, fmt.Errorf("backend %q: no cleanup", h.Backend)
}

// decisionAmender is a backend that adds to the decision record what only
// it knows (under Kata: the guest has no AppArmor).
type decisionAmender interface {
	AmendDecision(*policy.Decision)
}

// rewriteDecision writes the amended decision record over the one
// enforceBundle wrote.
func rewriteDecision(bundle string, d *policy.Decision) error {
	record, err := json.MarshalIndent(d, "", "  ")
	if err != nil {
		return err
	}
	if err := os.WriteFile(filepath.Join(bundle, DecisionFile), record, 0o644); err != nil {
		return fmt.Errorf("write decision record: %w", err)
	}
	return nil
}
