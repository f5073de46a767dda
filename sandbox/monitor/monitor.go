package monitor

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"
	"time"

	"github.com/containerd/log"

	"github.com/palisade-runtime/palisade/sandbox/monitor/rules"
)

// CRI annotations Palisade reads to name a container's pod and image.
const (
	annoSandboxName      = "io.kubernetes.cri.sandbox-name"
	annoSandboxNamespace = "io.kubernetes.cri.sandbox-namespace"
	annoContainerName    = "io.kubernetes.cri.container-name"
	annoImageName        = "io.kubernetes.cri.image-name"
)

// Meta is what alerts say about a container, besides its id.
type Meta struct {
	Name, Image, PodName, PodNamespace string
}

// MetaFromAnnotations reads a container's metadata from its spec's CRI
// annotations; a container outside Kubernetes has none of them.
func MetaFromAnnotations(a map[string]string) Meta {
	return Meta{
		Name: a[annoContainerName], Image: a[annoImageName],
		PodName: a[annoSandboxName], PodNamespace: a[annoSandboxNamespace],
	}
}

// SocketPath is the receiver's socket for a sandbox: a hash keeps the path
// short (a unix socket address has 108 bytes) and unique per namespace and
// sandbox, and lets `shim delete` find it again from the same two names.
func SocketPath(dir, namespace, sandbox string) string {
	sum := sha256.Sum256([]byte(namespace + "/" + sandbox))
	return filepath.Join(dir, hex.EncodeToString(sum[:8])+".sock")
}

// Monitor watches one sandbox: its receiver, rules and alert outputs.
type Monitor struct {
	ctx   context.Context
	cfg   Config
	rules *rules.Set
	file  alertFile
	recv  *Receiver
	// hostname is the node's, for the alerts' hostname field (falcosidekick
	// shows and routes by it).
	hostname string

	limit *limiter

	alerts atomic.Uint64 // raised, written or held back
	held   atomic.Uint64 // held back by the rate limit
	errs   atomic.Uint64 // rule evaluation errors

	mu   sync.Mutex
	meta map[string]Meta // by container id; guarded by mu
}

// Start loads the rules and starts the receiver of one sandbox. cfg must
// have been validated and given its defaults. The receiver is serving when
// Start returns: runsc may connect from then on.
func Start(ctx context.Context, cfg Config, namespace, sandbox string) (*Monitor, error) {
	set, err := LoadRules(cfg.RulesFile)
	if err != nil {
		return nil, err
	}
	m := &Monitor{ctx: ctx, cfg: cfg, rules: set, meta: map[string]Meta{}, limit: newLimiter(*cfg.AlertRateLimit)}
	m.hostname, _ = os.Hostname()
	if cfg.AlertFile != "-" {
		m.file = alertFile{path: cfg.AlertFile, max: cfg.AlertFileMaxBytes}
	}
	m.recv, err = Listen(ctx, SocketPath(cfg.SocketDir, namespace, sandbox), m.handle)
	if err != nil {
		return nil, err
	}
	return m, nil
}

// LoadRules reads a rules file, or the shipped rules for "".
func LoadRules(path string) (*rules.Set, error) {
	data := rules.DefaultRules()
	if path != "" {
		f, err := os.Open(path)
		if err != nil {
			return nil, fmt.Errorf("monitoring rules: %w", err)
		}
		defer f.Close()
		// One byte past the limit is enough for Parse to refuse it.
		if data, err = io.ReadAll(io.LimitReader(f, rules.MaxRulesSize+1)); err != nil {
			return nil, fmt.Errorf("monitoring rules: %w", err)
		}
	}
	set, err := rules.Parse(data)
	if err != nil {
		if path == "" {
			path = "the shipped rules"
		}
		return nil, fmt.Errorf("monitoring rules %s: %w", path, err)
	}
	return set, nil
}

// Endpoint is the socket the sandbox's sink connects to.
func (m *Monitor) Endpoint() string { return m.recv.Path() }

// PodInitConfig is the --pod-init-config content for this sandbox.
func (m *Monitor) PodInitConfig() ([]byte, error) { return m.cfg.PodInitConfig(m.Endpoint()) }

// AddContainer records a container's metadata before it is created, so its
// first points (container/start) already name its pod.
func (m *Monitor) AddContainer(id string, meta Meta) {
	m.mu.Lock()
	m.meta[id] = meta
	m.mu.Unlock()
}

// handle evaluates the rules on one event; it runs on a receiver
// goroutine.
func (m *Monitor) handle(e *rules.Event) {
	m.mu.Lock()
	meta, ok := m.meta[e.Container.ID]
	m.mu.Unlock()
	if ok {
		e.Container.Name, e.Container.Image = meta.Name, meta.Image
		e.K8s.Pod.Name, e.K8s.Ns.Name = meta.PodName, meta.PodNamespace
	}
	alerts, err := m.rules.Match(e)
	if err != nil && m.errs.Add(1) == 1 {
		// Once per sandbox: a rule that fails at run time fails on every
		// event like this one.
		log.G(m.ctx).WithError(err).Warn("monitor: rule evaluation failed")
	}
	for _, a := range alerts {
		m.emit(a)
	}
}

// Exec reports a process that the runtime starts in a running container
// (kubectl exec, crictl exec, ctr task exec). gVisor starts such a process
// from its control server, not by an execve inside the sandbox, so no
// trace point reports it; the shim knows it from the exec's process spec,
// which is trusted, and feeds it to the rules as a "container_exec" event.
func (m *Monitor) Exec(containerID string, args []string, cwd string, terminal bool, uid int64) {
	e := rules.Event{}
	e.Evt.Type, e.Evt.Dir, e.Evt.Time = "container_exec", "<", time.Now().UnixNano()
	e.Evt.Arg.UID, e.Evt.Arg.GID = -1, -1
	e.Container.ID = containerID
	e.Proc.Cwd, e.Proc.Tty = bound(cwd), terminal
	e.User.UID, e.User.RUID = uid, uid
	if len(args) > 0 {
		e.Proc.Exepath = bound(args[0])
	}
	setArgv(&e, args)
	m.handle(&e)
}

// Stats are the receiver's counts and the alerts raised.
func (m *Monitor) Stats() (Stats, uint64) { return m.recv.Stats(), m.alerts.Load() }

// Close stops the receiver, removes its socket and logs the counts,
// dropped points first: they are what an operator must know about.
func (m *Monitor) Close() error {
	err := m.recv.Close()
	st, alerts := m.Stats()
	entry := log.G(m.ctx).WithFields(log.Fields{
		"points": st.Points, "dropped": st.Dropped, "overflow": st.Overflow, "malformed": st.Malformed,
		"unknown": st.Unknown, "alerts": alerts, "alerts_held": m.held.Load(),
	})
	if st.Dropped > 0 || st.Overflow > 0 || st.Malformed > 0 {
		entry.Warn("monitor: sandbox points were lost")
	} else {
		entry.Info("monitor: stopped")
	}
	return err
}
