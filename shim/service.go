package shim

import (
	"context"
	"fmt"
	"os"
	"sync"

	taskAPI "github.com/containerd/containerd/api/runtime/task/v3"
	"github.com/containerd/log"
	"github.com/containerd/ttrpc"

	"github.com/palisade-runtime/palisade/policy"
	"github.com/palisade-runtime/palisade/sandbox"
	"github.com/palisade-runtime/palisade/sandbox/apparmor"
)

// service is Palisade's task service: it picks the handler at the first
// Create, enforces the handler's floor on every container and exec, and
// hands the task API to the handler's backend. It is the only place where
// errors become ttrpc status codes (see edge.go).
type service struct {
	ctx context.Context
	env sandbox.Env

	mu sync.Mutex
	// active is set by the first Create and never changes: one shim serves
	// one pod, and a pod has one RuntimeClass.
	active *handlerState // guarded by mu
}

// handlerState is a handler made ready: its backend and its floor.
type handlerState struct {
	name    string
	handler Handler
	backend sandbox.Backend
	floor   *policy.Floor
	support policy.Support
	// images answers the image control's questions; nil when the handler
	// has no image policy, so that no container costs a lookup for it.
	images imageStore
}

func newService(ctx context.Context, env sandbox.Env) *service {
	return &service{ctx: ctx, env: env}
}

// RegisterTTRPC serves the task API through the error-mapping edge.
func (s *service) RegisterTTRPC(server *ttrpc.Server) error {
	taskAPI.RegisterTTRPCTaskService(server, edge{s})
	return nil
}

// backend returns the active handler, or ErrNotFound-like failure before
// any Create.
func (s *service) state() (*handlerState, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.active == nil {
		return nil, errNoContainer
	}
	return s.active, nil
}

// activate loads the handler a Create selects, once per shim.
func (s *service) activate(ctx context.Context, r *taskAPI.CreateTaskRequest) (*handlerState, error) {
	sel, err := selectHandler(r.Options)
	if err != nil {
		return nil, invalid(err)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.active != nil {
		if sel.Handler != "" && sel.Handler != s.active.name {
			return nil, invalid(fmt.Errorf("this shim serves handler %q, not %q", s.active.name, sel.Handler))
		}
		return s.active, nil
	}
	cfg, err := LoadConfig(sel.ConfigPath)
	if err != nil {
		return nil, invalid(err)
	}
	name, h, err := cfg.Handler(sel.Handler)
	if err != nil {
		return nil, invalid(fmt.Errorf("%s: %w", sel.ConfigPath, err))
	}
	if h.LogLevel != "" {
		if err := log.SetLevel(h.LogLevel); err != nil {
			return nil, invalid(fmt.Errorf("handlers.%s.log_level: %w", name, err))
		}
	}
	floor, err := loadFloor(h.Policy)
	if err != nil {
		return nil, invalid(fmt.Errorf("handlers.%s.%w", name, err))
	}
	var images *grpcImageStore
	if floor.HasImagePolicy() {
		images = newGRPCImageStore(s.env.GRPCAddress, s.env.Namespace)
		if s.env.Shutdown != nil {
			s.env.Shutdown.RegisterCallback(func(context.Context) error { return images.Close() })
		}
		// Connecting is most of the first lookup's cost: it starts now,
		// while the backend is made ready.
		images.Connect()
	}
	env := s.env
	profile, missing := hostProfile(ctx, h.Policy.AppArmor, apparmor.DefaultHost(), true)
	env.HostProfile = profile
	b, err := newBackend(ctx, name, h, env)
	if err != nil {
		return nil, fmt.Errorf("handler %s: %w", name, err)
	}
	st := &handlerState{name: name, handler: h, backend: b, floor: floor}
	if images != nil {
		st.images = images
	}
	st.support = b.Support()
	st.support.Host = cfg.HostDirs()
	hostSupport(&st.support, missing)
	s.active = st
	log.G(ctx).WithFields(log.Fields{"handler": name, "backend": h.Backend, "config": sel.ConfigPath}).Info("handler active")
	return st, nil
}

// loadFloor reads the handler's seccomp profile file, if it names one, and
// builds its floor. This is the edge where policy meets the file system.
func loadFloor(cfg policy.Config) (*policy.Floor, error) {
	var profile []byte
	switch cfg.Seccomp {
	case "", "none", "runtime-default":
	default:
		data, err := os.ReadFile(cfg.Seccomp)
		if err != nil {
			return nil, fmt.Errorf("policy.seccomp: %w", err)
		}
		profile = data
	}
	return policy.NewFloor(cfg, profile)
}
