package runsc

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"

	"github.com/containerd/errdefs"
	gorunc "github.com/containerd/go-runc"
	"github.com/containerd/log"
	specs "github.com/opencontainers/runtime-spec/specs-go"

	"github.com/palisade-runtime/palisade/sandbox/monitor"
)

// Option configures the backend beyond its [handlers.<name>.runsc] table.
type Option func(*Service)

// WithMonitoring turns on runtime monitoring (sandbox/monitor) with the
// handler's [handlers.<name>.monitoring] table, which must be valid. A
// disabled table changes nothing: no socket, no file, no runsc flag.
func WithMonitoring(handler string, cfg monitor.Config) Option {
	return func(s *Service) {
		if cfg.Enabled {
			c := cfg.WithDefaults(handler)
			s.monitoring = &c
		}
	}
}

// podInitConfigFile is where the sandbox's pod-init config is written, in
// the bundle of the sandbox's first container: runsc reads it during that
// container's create, and the bundle goes with the container.
const podInitConfigFile = "palisade-pod-init.json"

// startMonitor starts the receiver of a new sandbox and points runsc at it
// with --pod-init-config on rc, the client of the sandbox's first
// container. It must run before that container's `runsc create`: the
// sink connects during it. stop, never nil, undoes it if the create fails.
//
// With on_setup_error = "fail" an error here fails the create, so that no
// workload of a monitored handler runs unwatched; with "continue" it is
// logged and the sandbox runs without monitoring.
func (s *Service) startMonitor(ctx context.Context, sb string, rc *gorunc.Runc, bundle string) (stop func(), err error) {
	stop = func() {}
	if s.monitoring == nil {
		return stop, nil
	}
	m, err := s.setupMonitor(ctx, sb, rc, bundle)
	if err != nil {
		if s.monitoring.OnSetupError == monitor.OnSetupErrorContinue {
			log.G(ctx).WithError(err).WithField("sandbox", sb).Warn("runtime monitoring not set up; on_setup_error = \"continue\": the sandbox runs unmonitored")
			return stop, nil
		}
		return stop, fmt.Errorf("runtime monitoring (on_setup_error = \"fail\"): %w: %w", err, errdefs.ErrFailedPrecondition)
	}
	s.mu.Lock()
	s.monitors[sb] = m
	s.mu.Unlock()
	return func() { s.stopMonitor(ctx, sb) }, nil
}

func (s *Service) setupMonitor(ctx context.Context, sb string, rc *gorunc.Runc, bundle string) (*monitor.Monitor, error) {
	m, err := monitor.Start(ctx, *s.monitoring, s.env.Namespace, sb)
	if err != nil {
		return nil, err
	}
	conf, err := m.PodInitConfig()
	if err == nil {
		path := filepath.Join(bundle, podInitConfigFile)
		if err = os.WriteFile(path, conf, 0o600); err == nil {
			rc.ExtraArgs = append(rc.ExtraArgs, "--pod-init-config="+path)
			return m, nil
		}
	}
	return nil, errors.Join(fmt.Errorf("pod-init config: %w", err), m.Close())
}

// watchContainer tells the sandbox's monitor, if it has one, whose points
// carry this container's id.
func (s *Service) watchContainer(sb, id string, annotations map[string]string) {
	s.mu.Lock()
	m := s.monitors[sb]
	s.mu.Unlock()
	if m != nil {
		m.AddContainer(id, monitor.MetaFromAnnotations(annotations))
	}
}

// noteExec reports an exec'd process to its sandbox's monitor: gVisor has
// no trace point for a process its control server starts (see
// monitor.Monitor.Exec). spec is the exec's process spec, as enforced.
func (s *Service) noteExec(ctx context.Context, c *container, spec []byte) {
	s.mu.Lock()
	m := s.monitors[c.sandbox]
	s.mu.Unlock()
	if m == nil {
		return
	}
	var p specs.Process
	if err := json.Unmarshal(spec, &p); err != nil {
		log.G(ctx).WithError(err).WithField("id", c.id).Warn("runtime monitoring: exec spec not decoded; the exec is not reported")
		return
	}
	m.Exec(c.id, p.Args, p.Cwd, p.Terminal, int64(p.User.UID))
}

// stopMonitor closes a sandbox's monitor once the sandbox is gone.
func (s *Service) stopMonitor(ctx context.Context, sb string) {
	s.mu.Lock()
	m := s.monitors[sb]
	delete(s.monitors, sb)
	s.mu.Unlock()
	if m != nil {
		if err := m.Close(); err != nil {
			log.G(ctx).WithError(err).WithField("sandbox", sb).Warn("stop runtime monitoring")
		}
	}
}

// stopMonitors closes every monitor, at shim shutdown.
func (s *Service) stopMonitors(ctx context.Context) {
	s.mu.Lock()
	sbs := make([]string, 0, len(s.monitors))
	for sb := range s.monitors {
		sbs = append(sbs, sb)
	}
	s.mu.Unlock()
	for _, sb := range sbs {
		s.stopMonitor(ctx, sb)
	}
}

// removeMonitorSocket is `shim delete`'s share: the socket of a sandbox
// whose shim died (a live shim removes it when it stops the monitor).
func removeMonitorSocket(dir, namespace, sb string) error {
	if dir == "" {
		return nil
	}
	err := os.Remove(monitor.SocketPath(dir, namespace, sb))
	if err == nil || errors.Is(err, os.ErrNotExist) {
		return nil
	}
	return fmt.Errorf("remove monitor socket: %w", err)
}
