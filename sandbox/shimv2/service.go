package shimv2

import (
	"context"
	"crypto/sha256"
	"fmt"
	"os"
	"path/filepath"
	"sync"
	"time"

	taskAPI "github.com/containerd/containerd/api/runtime/task/v3"
	"github.com/containerd/containerd/v2/defaults"
	"github.com/containerd/errdefs"
	"github.com/containerd/log"
	"google.golang.org/protobuf/proto"

	"github.com/palisade-runtime/palisade/policy"
	"github.com/palisade-runtime/palisade/sandbox"
	"github.com/palisade-runtime/palisade/sandbox/trampoline"
)

// Service is the delegate backend of one Palisade shim: it forwards the
// task API of its containers to the downstream shim that serves them.
//
// Events: the downstream shim gets containerd's TTRPC address and publishes
// every task event itself, so Service publishes nothing while it runs.
// Only when a downstream shim dies does Service publish what it no longer
// can: the exits of the processes it had not reported, and the deletes.
type Service struct {
	kind    string
	cfg     Config
	env     sandbox.Env
	launch  launcher
	kata    *KataConfig // nil unless kind is KindKata
	support policy.Support
	ctx     context.Context // the shim's, for work that outlives a request

	// startMu serialises `start` and dialling, so that the containers of a
	// pod created at once share one connection to their downstream shim.
	startMu sync.Mutex

	mu sync.Mutex
	// conns are the live downstream shims by address; guarded by mu.
	conns map[string]*conn
	// containers by id; guarded by mu, as are their fields.
	containers map[string]*container
	// lastDelete is when the last container was deleted downstream;
	// guarded by mu.
	lastDelete time.Time
	// pre is the downstream start for the shim's first container, begun
	// when the backend is built; taken by that container's Create. Guarded
	// by mu.
	pre *prestart
	// shutdownAsked is set when containerd asked the shim to exit while it
	// still had containers; guarded by mu.
	shutdownAsked bool
}

// prestart is a downstream `start` and connection made ahead of Create.
type prestart struct {
	id   string
	done chan struct{} // closed when cn and err are set
	cn   *conn
	err  error
}

var _ sandbox.Backend = (*Service)(nil)

// container is one container served by a downstream shim.
type container struct {
	id, bundle string
	// creating is closed when the container's Create has returned.
	creating chan struct{}
	cn       *conn
	created  bool
	procs    map[string]*proc // by exec id; "" is the init process
	// lost is set once the downstream shim died and the container was
	// reclaimed; the shim then answers for it (see lost.go).
	lost *exitInfo
}

// proc is a process of a container as Palisade saw it pass.
type proc struct {
	pid     uint32
	started bool
	// exit is what the downstream's Wait returned: it saw the exit, and has
	// published it. nil while Palisade has not seen it report one.
	exit *exitInfo
}

// New builds the delegate for a handler. kind is KindShim or KindKata.
// It runs in the Palisade shim, at the first Create: its working directory
// is the first container's bundle.
func New(ctx context.Context, cfg Config, kind string, env sandbox.Env) (*Service, error) {
	cfg = cfg.WithDefaults(kind)
	if err := cfg.Validate(kind); err != nil {
		return nil, fmt.Errorf("%w: %w", errdefs.ErrInvalidArgument, err)
	}
	binary, err := cfg.resolveBinary()
	if err != nil {
		return nil, fmt.Errorf("%w: %w", errdefs.ErrFailedPrecondition, err)
	}
	s := &Service{kind: kind, cfg: cfg, env: env, ctx: context.WithoutCancel(ctx),
		conns: map[string]*conn{}, containers: map[string]*container{}}
	if kind == KindKata {
		if s.kata, err = LoadKataConfig(cfg.ConfigPath); err != nil {
			return nil, fmt.Errorf("%w: %w", errdefs.ErrFailedPrecondition, err)
		}
		// Kata reads the file Palisade checked, not one it finds itself.
		s.cfg.ConfigPath = s.kata.Path
	}
	opts, err := s.cfg.options()
	if err != nil {
		return nil, err
	}
	socketDir, err := downstreamSocketDir()
	if err != nil {
		return nil, err
	}
	s.launch = launcher{binary: binary, namespace: env.Namespace, grpcAddress: env.GRPCAddress,
		ttrpcAddress: env.TTRPCAddress, socketDir: socketDir, opts: opts, run: reaperRun}
	s.support = supportUnder(s.cfg, kind, s.kata, env.HostProfile)
	if env.HostProfile != "" {
		// The same exec transition as the runsc backend's: see launcher.profile.
		if s.launch.self, err = trampoline.Path(); err != nil {
			return nil, fmt.Errorf("AppArmor trampoline: %w", err)
		}
		s.launch.profile = env.HostProfile
	}
	env.Shutdown.RegisterCallback(s.stop)
	if kind == KindShim {
		s.startEarly()
	}
	log.G(ctx).WithField("downstream", s.cfg.String()).WithField("binary", binary).Info("delegate backend ready")
	return s, nil
}

// startEarly runs the downstream's `start` for the shim's first container
// while the shim is still enforcing the floor on its bundle: New runs at
// that container's Create, in its bundle. `start` reads only the bundle's
// annotations, which enforcement does not change, and the container is
// created downstream only after enforcement. If Create fails before that,
// the downstream shim serves nothing and exits at Shutdown. Kata is started
// only for a container that passed: Create fails closed before anything
// runs.
func (s *Service) startEarly() {
	bundle, err := os.Getwd()
	if err != nil {
		return
	}
	// The work dir, with its link to config.json, is made now, before
	// the shim replaces config.json with the enforced spec: the link keeps
	// the request whole while the new file is written (see prepareWorkDir).
	// An error here is start's to report.
	_, _ = prepareWorkDir(bundle)
	pre := &prestart{id: filepath.Base(bundle), done: make(chan struct{})}
	s.pre = pre
	go func() {
		defer close(pre.done)
		pre.cn, pre.err = s.connect(s.ctx, pre.id, bundle)
	}()
}

// connectFor returns the downstream connection for container id: the one
// started early for it, or a new `start`.
func (s *Service) connectFor(ctx context.Context, id, bundle string) (*conn, error) {
	s.mu.Lock()
	pre := s.pre
	if pre != nil && pre.id == id {
		s.pre = nil
	}
	s.mu.Unlock()
	if pre == nil || pre.id != id {
		return s.connect(ctx, id, bundle)
	}
	select {
	case <-pre.done:
		return pre.cn, pre.err
	case <-ctx.Done():
		return nil, ctx.Err()
	}
}

// downstreamSocketDir is a directory of its own, next to Palisade's socket,
// for the downstream shim's sockets (see launcher.socketDir). It is named
// after this shim's working directory (the first bundle), which no other
// running shim shares, so it can be removed whole when the shim goes.
func downstreamSocketDir() (string, error) {
	cwd, err := os.Getwd()
	if err != nil {
		return "", err
	}
	// containerd's `start` left the socket directory it chose in "s".
	dir, err := os.Readlink("s")
	if err != nil {
		dir = filepath.Join(defaults.DefaultStateDir, "s")
	}
	sum := sha256.Sum256([]byte(cwd))
	return filepath.Join(dir, fmt.Sprintf("d-%x", sum[:6])), nil
}

// Support reports who enforces the floor behind the downstream shim.
func (s *Service) Support() policy.Support { return s.support }

// Create starts (or joins) the downstream shim for the container and
// forwards Create with the downstream's runtime options.
func (s *Service) Create(ctx context.Context, r *taskAPI.CreateTaskRequest) (*taskAPI.CreateTaskResponse, error) {
	if s.kata != nil {
		if err := checkKataBundle(r.Bundle, s.kata); err != nil {
			return nil, err
		}
	}
	c := &container{id: r.ID, bundle: r.Bundle, creating: make(chan struct{}), procs: map[string]*proc{}}
	defer close(c.creating)
	s.mu.Lock()
	if _, ok := s.containers[r.ID]; ok {
		s.mu.Unlock()
		return nil, fmt.Errorf("container %s: %w", r.ID, errdefs.ErrAlreadyExists)
	}
	s.containers[r.ID] = c
	s.mu.Unlock()
	resp, err := s.create(ctx, c, r)
	if err != nil {
		if c.cn != nil && c.cn.isClosed() {
			// The recovery of a dead downstream reclaims this container too.
			c.cn.waitRecovered(ctx)
		} else if c.cn != nil {
			s.reclaimFailed(ctx, c)
		}
		s.forget(c.id)
		s.shutdownIfAbandoned()
		return nil, err
	}
	return resp, nil
}

// waitCreate waits for an in-flight Create of container id to return.
// containerd, once it has given up on a Create at its deadline, deletes the
// container and removes its bundle at once; answering before the failing
// Create has reclaimed what it left would race that cleanup (the bundle is
// left behind half removed, and the id cannot be used again).
func (s *Service) waitCreate(ctx context.Context, id string) {
	s.mu.Lock()
	c := s.containers[id]
	s.mu.Unlock()
	if c == nil {
		return
	}
	select {
	case <-c.creating:
	case <-ctx.Done():
	}
}

// shutdownIfAbandoned ends a shim left serving nothing by a failed Create
// that containerd had given up on. containerd cleans up at its own
// deadline, when the Create here may still run: its Delete finds the
// container still being created, and its Shutdown leaves the shim serving
// it. Nobody asks again once the Create has failed.
func (s *Service) shutdownIfAbandoned() {
	s.mu.Lock()
	exit := s.shutdownAsked && len(s.containers) == 0
	s.mu.Unlock()
	if exit {
		s.env.Shutdown.Shutdown()
	}
}

// reclaimFailed runs the downstream's own `delete` for a container whose
// Create it failed: its runtime may have created the container before it
// failed (containerd-shim-runc-v2 leaves runc's state and `runc init`),
// and the downstream, which still serves the pod, will not. Only that
// container goes: the downstream shim lives on. The request's deadline may
// be what failed the Create, so the delete has its own.
func (s *Service) reclaimFailed(ctx context.Context, c *container) {
	if _, err := s.launch.delete(context.WithoutCancel(ctx), c.id, c.bundle); err != nil {
		log.G(ctx).WithError(err).WithField("id", c.id).Warn("reclaim the container of a failed create")
	}
}

func (s *Service) create(ctx context.Context, c *container, r *taskAPI.CreateTaskRequest) (*taskAPI.CreateTaskResponse, error) {
	cn, err := s.connectFor(ctx, r.ID, r.Bundle)
	if err != nil {
		return nil, err
	}
	s.mu.Lock()
	c.cn = cn
	s.mu.Unlock()
	if err := writeRecord(r.Bundle, record{Binary: s.launch.binary, Namespace: s.env.Namespace,
		GRPCAddress: s.env.GRPCAddress, TTRPCAddress: s.env.TTRPCAddress, Address: cn.address,
		SocketDir: s.launch.socketDir, Profile: s.launch.profile, Pid: cn.pid, PidStart: cn.pidStart}); err != nil {
		return nil, fmt.Errorf("record the downstream shim in the bundle: %w", err)
	}
	if err := relinkSpec(r.Bundle); err != nil {
		return nil, err
	}
	fr := proto.Clone(r).(*taskAPI.CreateTaskRequest)
	fr.Options = s.launch.opts // nil for options_type "none", as containerd sends none
	resp, err := cn.task.Create(ctx, fr)
	if err != nil {
		return nil, cn.native(err)
	}
	s.mu.Lock()
	c.created = true
	c.procs[""] = &proc{pid: resp.Pid}
	s.mu.Unlock()
	return resp, nil
}

// forget drops a container that failed to be created or was deleted.
func (s *Service) forget(id string) {
	s.mu.Lock()
	delete(s.containers, id)
	s.mu.Unlock()
}

func (s *Service) container(id string) (*container, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	c, ok := s.containers[id]
	if !ok || c.cn == nil {
		return nil, fmt.Errorf("container %s: %w", id, errdefs.ErrNotFound)
	}
	return c, nil
}

// forward calls fn on the downstream shim serving container id. A
// downstream that is gone is ErrFailedPrecondition, naming it.
func forward[T any](ctx context.Context, s *Service, id string, fn func(context.Context, taskAPI.TTRPCTaskService) (T, error)) (T, error) {
	var zero T
	c, err := s.container(id)
	if err != nil {
		return zero, err
	}
	if c.cn.isClosed() {
		return zero, c.cn.gone()
	}
	v, err := fn(ctx, c.cn.task)
	if err != nil {
		return zero, c.cn.native(err)
	}
	return v, nil
}

// Start starts the init or an exec and watches for the downstream to
// report its exit.
func (s *Service) Start(ctx context.Context, r *taskAPI.StartRequest) (*taskAPI.StartResponse, error) {
	resp, err := forward(ctx, s, r.ID, func(ctx context.Context, t taskAPI.TTRPCTaskService) (*taskAPI.StartResponse, error) {
		return t.Start(ctx, r)
	})
	if err != nil {
		return nil, err
	}
	s.started(r.ID, r.ExecID, resp.Pid)
	return resp, nil
}

// Exec forwards an exec whose process spec the shim has already enforced.
func (s *Service) Exec(ctx context.Context, r *taskAPI.ExecProcessRequest) (*emptypbEmpty, error) {
	resp, err := forward(ctx, s, r.ID, func(ctx context.Context, t taskAPI.TTRPCTaskService) (*emptypbEmpty, error) {
		return t.Exec(ctx, r)
	})
	if err != nil {
		return nil, err
	}
	s.mu.Lock()
	if c, ok := s.containers[r.ID]; ok {
		c.procs[r.ExecID] = &proc{}
	}
	s.mu.Unlock()
	return resp, nil
}

// Connect reports this shim's pid: containerd talks to Palisade.
func (s *Service) Connect(ctx context.Context, r *taskAPI.ConnectRequest) (*taskAPI.ConnectResponse, error) {
	c, err := s.container(r.ID)
	if err != nil || c.cn.isClosed() {
		var pid uint32
		if err == nil {
			pid = s.initPid(c)
		}
		return &taskAPI.ConnectResponse{ShimPid: uint32(os.Getpid()), TaskPid: pid}, nil
	}
	resp, err := c.cn.task.Connect(ctx, r)
	if err != nil {
		return nil, c.cn.native(err)
	}
	resp.ShimPid = uint32(os.Getpid())
	return resp, nil
}

// Shutdown lets the shim exit once it serves no container; the shutdown
// callback (stop) takes the downstream shims down with it.
func (s *Service) Shutdown(ctx context.Context, r *taskAPI.ShutdownRequest) (*emptypbEmpty, error) {
	s.mu.Lock()
	n := len(s.containers)
	s.shutdownAsked = n > 0
	s.mu.Unlock()
	if n == 0 {
		s.env.Shutdown.Shutdown()
	}
	return &emptypbEmpty{}, nil
}
