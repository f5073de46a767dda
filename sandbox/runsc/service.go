package runsc

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"sync"

	eventstypes "github.com/containerd/containerd/api/events"
	taskAPI "github.com/containerd/containerd/api/runtime/task/v3"
	"github.com/containerd/containerd/v2/cmd/containerd-shim-runc-v2/process"
	"github.com/containerd/containerd/v2/cmd/containerd-shim-runc-v2/runc"
	"github.com/containerd/containerd/v2/core/runtime"
	"github.com/containerd/containerd/v2/pkg/oom"
	"github.com/containerd/containerd/v2/pkg/protobuf"
	"github.com/containerd/containerd/v2/pkg/stdio"
	"github.com/containerd/containerd/v2/pkg/sys/reaper"
	"github.com/containerd/errdefs"
	gorunc "github.com/containerd/go-runc"
	"github.com/containerd/log"

	"github.com/palisade-runtime/palisade/policy"
	"github.com/palisade-runtime/palisade/sandbox"
	"github.com/palisade-runtime/palisade/sandbox/apparmor"
	"github.com/palisade-runtime/palisade/sandbox/monitor"
	"github.com/palisade-runtime/palisade/sandbox/trampoline"
)

// Service is the runsc backend: the task API for the containers of one shim.
type Service struct {
	cfg Config
	env sandbox.Env
	// command is what go-runc runs: runsc itself, or the trampoline in
	// front of it, which moves into the AppArmor profile (confined).
	command  string
	confined []string // extra environment of every runsc invocation
	// self is the trampoline (trampoline.Path): palisade-trampoline, or
	// Palisade's shim binary when that is missing. Execs always run
	// through it (it adds --internal-pid-file), confined ones too.
	self     string
	platform stdio.Platform
	exits    *exitTracker
	events   chan any
	oom      oom.Watcher
	// reaped receives every exit the shim reaps (runsc CLI calls included).
	reaped chan gorunc.Exit

	mu         sync.Mutex
	containers map[string]*container // guarded by mu
	// creating holds a channel, closed when it returns, for each Create in
	// flight; guarded by mu.
	creating map[string]chan struct{}
	// monitoring is the handler's runtime monitoring, nil when off
	// (monitoring.go); monitors holds each sandbox's, by sandbox id,
	// guarded by mu.
	monitoring *monitor.Config
	monitors   map[string]*monitor.Monitor
}

var _ sandbox.Backend = (*Service)(nil)

// New builds the runsc backend. The shim's process must already be a child
// subreaper whose reaper feeds reaper.Default, and go-runc's Monitor must be
// reaper.Default, so that runsc's sandbox processes, which runsc leaves to be
// reparented to the shim, are reaped here.
func New(ctx context.Context, cfg Config, env sandbox.Env, opts ...Option) (*Service, error) {
	cfg = cfg.WithDefaults()
	if err := cfg.Validate(); err != nil {
		return nil, fmt.Errorf("%w: %w", errdefs.ErrInvalidArgument, err)
	}
	platform, err := runc.NewPlatform()
	if err != nil {
		return nil, fmt.Errorf("console platform: %w", err)
	}
	s := &Service{
		cfg:        cfg,
		env:        env,
		command:    cfg.Binary,
		platform:   platform,
		exits:      newExitTracker(),
		events:     make(chan any, 128),
		reaped:     reaper.Default.Subscribe(),
		containers: map[string]*container{},
		creating:   map[string]chan struct{}{},
		monitors:   map[string]*monitor.Monitor{},
	}
	for _, o := range opts {
		o(s)
	}
	if s.self, err = trampoline.Path(); err != nil {
		platform.Close()
		return nil, fmt.Errorf("exec trampoline: %w", err)
	}
	if env.HostProfile != "" {
		if err := s.confine(env.HostProfile); err != nil {
			platform.Close()
			return nil, err
		}
	}
	if s.oom, err = newOOMWatcher(ctx, env.Publisher); err != nil {
		platform.Close()
		return nil, err
	}
	env.Shutdown.RegisterCallback(func(ctx context.Context) error {
		s.stopMonitors(ctx)
		reaper.Default.Unsubscribe(s.reaped)
		return errors.Join(s.oom.Close(), platform.Close())
	})
	// The shim exits when its shutdown callbacks have returned: publish
	// what is queued first. containerd sends Shutdown right after a
	// Delete, whose TaskDelete may still be on its way.
	stop, flushed := make(chan struct{}), make(chan struct{})
	env.Shutdown.RegisterCallback(func(ctx context.Context) error {
		close(stop)
		select {
		case <-flushed:
		case <-ctx.Done():
		}
		return nil
	})
	go s.processExits(ctx)
	go s.forward(ctx, stop, flushed)
	return s, nil
}

// Support reports what runsc enforces. Seccomp runs inside gVisor's sentry
// (--oci-seccomp is always passed); capabilities and no_new_privs are applied
// by the sentry to the container's processes. AppArmor is decided by the shim
// (it confines the host-side runsc processes), so it is not claimed here.
//
// KernelVersion is the Linux version gVisor's sentry reports (4.4): the
// runtime-default profile's kernel-gated rules are about the kernel that
// runs the filter, and under runsc that is the sentry, not the host.
func (s *Service) Support() policy.Support {
	profile := ""
	if len(s.confined) > 0 {
		profile = s.env.HostProfile
	}
	sup := Support(profile)
	switch net := s.cfg.Network; net {
	case "none":
		// No interfaces at all: the host's network namespace gives the
		// container nothing.
		sup.IsolatedNamespaces = append(sup.IsolatedNamespaces, "network")
		sup.Network = "none (runsc --network=none)"
	case "host":
		sup.Network = "the host's network stack (runsc --network=host)"
	default:
		sup.Network = "gVisor netstack (runsc --network=" + net + ") on the namespace's interfaces"
	}
	return sup
}

// Support is what the runsc backend enforces when it confines its host
// processes with hostProfile ("" when it does not).
func Support(hostProfile string) policy.Support {
	sup := policy.Support{
		Backend:            "runsc",
		KernelVersion:      "4.4",
		SeccompEnforcer:    "gVisor sentry (runsc --oci-seccomp)",
		CapabilityEnforcer: "gVisor sentry",
		NoNewPrivsEnforcer: "gVisor sentry",
		// runsc refuses a filter with it ("invalid action: SCMP_ACT_LOG").
		SeccompLogMissing: "gVisor's seccomp has no log action (runsc refuses SCMP_ACT_LOG)",
		// The sentry's socket providers, on every --network mode; any other
		// family fails there with EAFNOSUPPORT. The floor then needs no
		// per-family socket rules (see policy.Support.SocketFamilies);
		// integration/families_test.go checks this list against runsc.
		SocketFamilies: policy.Families(policy.AFUnix, policy.AFInet, policy.AFInet6, policy.AFNetlink, policy.AFPacket),
		// The sentry implements these namespaces itself: a container that
		// shares the host's pid, ipc, uts or mount namespace in its spec
		// still sees only the sandbox's processes, IPC objects, hostname
		// and file systems. The network is the host's unless the netns is
		// the pod's (the sentry's netstack takes over the namespace's
		// interfaces), so it is not in this list.
		IsolatedNamespaces: []string{"pid", "ipc", "uts", "mount"},
	}
	if hostProfile != "" {
		sup.AppArmorEnforcer = "host AppArmor profile " + hostProfile + " on runsc, its sandbox and gofer (exec transition)"
	}
	return sup
}

// confine runs every runsc invocation through the trampoline (s.self),
// which moves into the AppArmor profile before it executes runsc (see
// sandbox/trampoline). runsc's sandbox and gofer inherit the profile.
func (s *Service) confine(profile string) error {
	target, err := exec.LookPath(s.cfg.Binary)
	if err != nil {
		return fmt.Errorf("runsc binary: %w", err)
	}
	s.cfg.Binary = target
	s.command = s.self
	s.confined = []string{apparmor.EnvProfile + "=" + profile, apparmor.EnvTarget + "=" + target}
	return nil
}

// rt is the context for runsc invocations: it carries the confinement.
func (s *Service) rt(ctx context.Context) context.Context {
	return gorunc.WithExtraEnv(ctx, s.confined...)
}

func (s *Service) container(id string) (*container, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	c, ok := s.containers[id]
	if !ok {
		return nil, fmt.Errorf("container %s: %w", id, errdefs.ErrNotFound)
	}
	return c, nil
}

func (s *Service) send(e any) {
	select {
	case s.events <- e:
	case <-s.env.Shutdown.Done():
	}
}

// forward publishes events in the order they were sent: containerd expects a
// task's create, start, exit and delete in that order. Once stop is closed
// it publishes what is queued and closes flushed.
func (s *Service) forward(ctx context.Context, stop <-chan struct{}, flushed chan<- struct{}) {
	defer close(flushed)
	ctx = context.WithoutCancel(ctx)
	publish := func(e any) {
		if err := s.env.Publisher.Publish(ctx, runtime.GetTopic(e), e); err != nil {
			log.G(ctx).WithError(err).Error("publish event")
		}
	}
	for {
		select {
		case e := <-s.events:
			publish(e)
		case <-stop:
			for {
				select {
				case e := <-s.events:
					publish(e)
				default:
					return
				}
			}
		}
	}
}

// Create runs `runsc create` for the bundle that the shim has already
// enforced.
func (s *Service) Create(ctx context.Context, r *taskAPI.CreateTaskRequest) (_ *taskAPI.CreateTaskResponse, retErr error) {
	ctx, end := s.request(ctx, "runsc create")
	defer end(&retErr)
	s.mu.Lock()
	_, exists := s.containers[r.ID]
	_, inFlight := s.creating[r.ID]
	if !exists && !inFlight {
		s.creating[r.ID] = make(chan struct{})
	}
	s.mu.Unlock()
	if exists || inFlight {
		return nil, fmt.Errorf("container %s: %w", r.ID, errdefs.ErrAlreadyExists)
	}
	defer func() {
		s.mu.Lock()
		close(s.creating[r.ID])
		delete(s.creating, r.ID)
		s.mu.Unlock()
	}()
	// The sandbox process can die right after create; open the window first.
	w := s.exits.watch(nil, "")
	c, err := newContainer(ctx, s, r)
	if err != nil {
		s.exits.abandon(w, nil, "")
		if !errdefs.IsAlreadyExists(err) {
			s.deleteFailed(ctx, r.ID, r.Bundle)
		}
		return nil, withDiskFull(r.Bundle, err)
	}
	s.mu.Lock()
	s.containers[r.ID] = c
	s.mu.Unlock()
	s.send(&eventstypes.TaskCreate{
		ContainerID: r.ID,
		Bundle:      r.Bundle,
		Rootfs:      r.Rootfs,
		IO:          &eventstypes.TaskIO{Stdin: r.Stdin, Stdout: r.Stdout, Stderr: r.Stderr, Terminal: r.Terminal},
		Pid:         uint32(c.init.Pid()),
	})
	if c.sub {
		// The pid is the pod's sandbox; this container's end comes from a wait in the sandbox.
		s.exits.abandon(w, nil, "")
	} else {
		// Watch before start, so an OOM right at start is not missed.
		if err := watchSandboxOOM(s.oom, c.id, c.init.Pid()); err != nil {
			log.G(ctx).WithError(err).WithField("id", c.id).Warn("OOM events will not be reported")
		}
		if e, done := s.exits.started(w, c, "", c.init.Pid()); done {
			s.handleExit(ctx, c, "", e)
		}
	}
	return &taskAPI.CreateTaskResponse{Pid: uint32(c.init.Pid())}, nil
}

// Start starts the container's init or a created exec.
func (s *Service) Start(ctx context.Context, r *taskAPI.StartRequest) (_ *taskAPI.StartResponse, retErr error) {
	ctx, end := s.request(ctx, "runsc start")
	defer end(&retErr)
	c, err := s.container(r.ID)
	if err != nil {
		return nil, err
	}
	if r.ExecID == "" {
		if err := c.init.Start(ctx); err != nil {
			return nil, err
		}
		s.send(&eventstypes.TaskStart{ContainerID: c.id, Pid: uint32(c.init.Pid())})
		if c.sub {
			go s.waitSubcontainer(ctx, c)
		}
		return &taskAPI.StartResponse{Pid: uint32(c.init.Pid())}, nil
	}
	p, err := c.process(r.ExecID)
	if err != nil {
		return nil, err
	}
	if st, _ := c.init.Status(ctx); st != "running" {
		return nil, fmt.Errorf("container %s init process is %s: %w", c.id, st, errdefs.ErrFailedPrecondition)
	}
	runsc, err := exec.LookPath(s.cfg.Binary)
	if err != nil {
		return nil, fmt.Errorf("runsc binary: %w", err)
	}
	ctx = gorunc.WithExtraEnv(ctx, trampoline.EnvRunscExec+"="+runsc)
	w := s.exits.watch(c, r.ExecID)
	if err := p.Start(ctx); err != nil {
		s.exits.abandon(w, c, r.ExecID)
		return nil, err
	}
	s.send(&eventstypes.TaskExecStarted{ContainerID: c.id, ExecID: r.ExecID, Pid: uint32(p.Pid())})
	if e, done := s.exits.started(w, c, r.ExecID, p.Pid()); done {
		s.handleExit(ctx, c, r.ExecID, e)
	}
	return &taskAPI.StartResponse{Pid: uint32(p.Pid())}, nil
}

// processExits hands every reaped exit to the processes waiting for its pid.
func (s *Service) processExits(ctx context.Context) {
	for e := range s.reaped {
		for _, t := range s.exits.reaped(e) {
			s.handleExit(ctx, t.c, t.execID, e)
		}
	}
}

// handleExit records an exit and publishes it; an init exit waits for the
// exits of its container's execs.
func (s *Service) handleExit(ctx context.Context, c *container, execID string, e gorunc.Exit) {
	p, err := c.process(execID)
	if err != nil {
		log.G(ctx).WithError(err).Warn("exit of an unknown process")
		return
	}
	publish := func() {
		p.SetExited(e.Status)
		if execID == "" {
			e.Timestamp = p.ExitedAt()
			if err := runc.WriteExitStatus(c.bundle, e); err != nil {
				log.G(ctx).WithError(err).WithField("id", c.id).Warn("record exit status in bundle")
			}
		}
		s.send(&eventstypes.TaskExit{
			ContainerID: c.id,
			ID:          p.ID(),
			Pid:         uint32(e.Pid),
			ExitStatus:  uint32(e.Status),
			ExitedAt:    protobuf.ToTimestamp(p.ExitedAt()),
		})
	}
	if execID != "" {
		publish()
		s.exits.execExited(c)
		return
	}
	s.exits.initExited(c, publish)
}

// Delete removes the container (runsc delete) or an exec'd process.
//
// A container's deletion runs to its end, bounded by the command timeout,
// even when the caller stops waiting: CRI gives the delete after a
// container's exit 10 s, which runsc can need on a loaded node (it waits up
// to 5 s for the container's gofer, then up to 5 s for its cgroups to be
// removable). A runsc delete killed half way has removed the container's
// state but not its cgroups, and the caller's retry then finds nothing to
// delete: the cgroups were left for good (seen with 50 pods started and
// removed at once on two cores).
func (s *Service) Delete(ctx context.Context, r *taskAPI.DeleteRequest) (_ *taskAPI.DeleteResponse, retErr error) {
	if r.ExecID == "" {
		ctx = context.WithoutCancel(ctx)
	}
	ctx, end := s.request(ctx, "runsc delete")
	defer end(&retErr)
	if r.ExecID == "" {
		s.waitCreate(ctx, r.ID)
	}
	c, err := s.container(r.ID)
	if err != nil {
		return nil, err
	}
	p, err := c.process(r.ExecID)
	if err != nil {
		return nil, err
	}
	if err := p.Delete(ctx); err != nil {
		return nil, err
	}
	if r.ExecID != "" {
		c.removeExec(r.ExecID)
	} else {
		// The pod's sandbox is gone; containerd removes its network
		// namespace only after this Delete, so the rule can still be
		// removed from it.
		s.stopPortForward(ctx, c)
		s.mu.Lock()
		delete(s.containers, r.ID)
		s.mu.Unlock()
		s.exits.forget(c)
		if !c.sub {
			// The sandbox went with its first container.
			s.stopMonitor(ctx, c.sandbox)
		}
		if err := markDeleted(c.bundle); err != nil {
			log.G(ctx).WithError(err).WithField("id", c.id).Warn("record the deletion in the bundle; shim delete will redo it")
		}
		s.removeStaleLocks(ctx, c)
		s.send(&eventstypes.TaskDelete{
			ContainerID: c.id,
			Pid:         uint32(p.Pid()),
			ExitStatus:  uint32(p.ExitStatus()),
			ExitedAt:    protobuf.ToTimestamp(p.ExitedAt()),
		})
	}
	return &taskAPI.DeleteResponse{
		Pid:        uint32(p.Pid()),
		ExitStatus: uint32(p.ExitStatus()),
		ExitedAt:   protobuf.ToTimestamp(p.ExitedAt()),
	}, nil
}

// Exec creates (not starts) a process in the container.
func (s *Service) Exec(ctx context.Context, r *taskAPI.ExecProcessRequest) (_ *emptypbEmpty, retErr error) {
	ctx, end := s.request(ctx, "exec")
	defer end(&retErr)
	c, err := s.container(r.ID)
	if err != nil {
		return nil, err
	}
	if !c.reserve(r.ExecID) {
		return nil, fmt.Errorf("exec %s: %w", r.ExecID, errdefs.ErrAlreadyExists)
	}
	p, err := c.exec(ctx, &process.ExecConfig{
		ID: r.ExecID, Terminal: r.Terminal, Stdin: r.Stdin, Stdout: r.Stdout, Stderr: r.Stderr, Spec: r.Spec,
	})
	c.commit(r.ExecID, p)
	if err != nil {
		return nil, err
	}
	if r.Spec != nil {
		s.noteExec(ctx, c, r.Spec.Value)
	}
	s.send(&eventstypes.TaskExecAdded{ContainerID: c.id, ExecID: r.ExecID})
	return empty, nil
}

// Connect returns the shim's and the task's pid.
func (s *Service) Connect(ctx context.Context, r *taskAPI.ConnectRequest) (*taskAPI.ConnectResponse, error) {
	var pid int
	if c, err := s.container(r.ID); err == nil {
		pid = c.init.Pid()
	}
	return &taskAPI.ConnectResponse{ShimPid: uint32(os.Getpid()), TaskPid: uint32(pid)}, nil
}

// Shutdown lets the shim exit once it serves no container.
func (s *Service) Shutdown(ctx context.Context, r *taskAPI.ShutdownRequest) (*emptypbEmpty, error) {
	s.mu.Lock()
	n := len(s.containers)
	s.mu.Unlock()
	if n == 0 {
		s.env.Shutdown.Shutdown()
	}
	return empty, nil
}

// execClient is the go-runc client for the execs of one container's
// bundle: the trampoline, which execs runsc (see sandbox/trampoline).
func (s *Service) execClient(sandbox, bundle string) *gorunc.Runc {
	r := s.cfg.client(s.env.Namespace, sandbox, bundle)
	r.Command = s.self
	return r
}

// client is the go-runc client for one container's bundle.
func (s *Service) client(sandbox, bundle string) *gorunc.Runc {
	r := s.cfg.client(s.env.Namespace, sandbox, bundle)
	r.Command = s.command
	return r
}
