package shim

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	goruntime "runtime"
	"syscall"

	bootapi "github.com/containerd/containerd/api/runtime/bootstrap/v1"
	"github.com/containerd/containerd/api/types"
	"github.com/containerd/containerd/v2/defaults"
	"github.com/containerd/containerd/v2/pkg/namespaces"
	cshim "github.com/containerd/containerd/v2/pkg/shim"
	"github.com/containerd/log"
)

// Version is set at build time with -ldflags -X.
var Version = "dev"

// RuntimeName is the runtime type containerd knows Palisade by.
const RuntimeName = "io.containerd.palisade.v2"

// groupAnnotation puts the containers of one pod into one shim.
const groupAnnotation = "io.kubernetes.cri.sandbox-id"

// Manager is the shim's own lifecycle: start (spawn or reuse the pod's shim),
// delete (clean up after a dead shim) and info.
type Manager struct{ name string }

var _ cshim.Shim = Manager{}

// NewManager returns the manager for runtime type name.
func NewManager(name string) Manager { return Manager{name: name} }

// Name is the runtime type.
func (m Manager) Name() string { return m.name }

// Start returns the address of the shim that serves this container: the
// pod's shim when one runs already, else a new one spawned from this binary.
func (m Manager) Start(ctx context.Context, params *bootapi.BootstrapParams) (_ *bootapi.BootstrapResult, retErr error) {
	res := &bootapi.BootstrapResult{Version: 3, Protocol: "ttrpc"}
	id := params.GetInstanceID()
	group, err := groupOf(".")
	if err != nil {
		return nil, err
	}
	if group == "" {
		group = id
	}
	socketDir := params.GetSocketDir()
	if socketDir == "" {
		socketDir = filepath.Join(defaults.DefaultStateDir, "s")
	}
	address, err := cshim.CreateSocketAddress(ctx, socketDir, params.GetContainerdGrpcAddress(), group, false)
	if err != nil {
		return nil, err
	}
	// cshim.NewSocket makes a file socket with mode 0600, never an abstract
	// one: abstract sockets are reachable from host-network containers.
	l, err := cshim.NewSocket(address)
	if err != nil {
		if !cshim.SocketEaddrinuse(err) {
			return nil, fmt.Errorf("create shim socket: %w", err)
		}
		if cshim.CanConnect(address) {
			if group != id {
				res.Address = address
				return res, nil // the pod's shim serves this container too
			}
			if err := stopStaleShim(ctx, address, id, params.GetContainerdGrpcAddress()); err != nil {
				return nil, err
			}
		}
		if err := cshim.RemoveSocket(address); err != nil && !errors.Is(err, os.ErrNotExist) {
			return nil, fmt.Errorf("remove stale shim socket: %w", err)
		}
		if l, err = cshim.NewSocket(address); err != nil {
			return nil, fmt.Errorf("create shim socket: %w", err)
		}
	}
	defer func() {
		if retErr != nil {
			l.Close()
			_ = cshim.RemoveSocket(address)
		}
	}()
	f, err := l.File()
	if err != nil {
		return nil, err
	}
	defer f.Close()

	cmd, err := daemonCommand(ctx, id, params)
	if err != nil {
		return nil, err
	}
	cmd.ExtraFiles = []*os.File{f}
	goruntime.LockOSThread()
	err = cmd.Start()
	goruntime.UnlockOSThread()
	if err != nil {
		return nil, err
	}
	defer func() {
		if retErr != nil {
			_ = cmd.Process.Kill()
		}
	}()
	go func() { _ = cmd.Wait() }()
	// The daemon holds the socket now; closing our copy must not unlink it.
	l.SetUnlinkOnClose(false)
	l.Close()
	if err := cshim.AdjustOOMScore(cmd.Process.Pid); err != nil {
		// Raising a child's oom_score_adj above containerd's needs no
		// privilege, but hosts without CAP_SYS_RESOURCE refuse to copy a
		// lowered score; a shim that cannot be adjusted still works. It is
		// not logged: containerd reads start's combined output as its
		// result, and a log line there fails every container's start.
		if !errors.Is(err, syscall.EPERM) && !errors.Is(err, syscall.EACCES) {
			return nil, fmt.Errorf("adjust shim OOM score: %w", err)
		}
	}
	res.Address = address
	return res, nil
}

// daemonCommand is this binary serving the task API on fd 3.
func daemonCommand(ctx context.Context, id string, params *bootapi.BootstrapParams) (*exec.Cmd, error) {
	ns, err := namespaces.NamespaceRequired(ctx)
	if err != nil {
		return nil, err
	}
	self, err := os.Executable()
	if err != nil {
		return nil, err
	}
	cwd, err := os.Getwd()
	if err != nil {
		return nil, err
	}
	args := []string{"-namespace", ns, "-id", id, "-address", params.GetContainerdGrpcAddress()}
	if params.GetLogLevel() <= bootapi.LogLevel_LOG_LEVEL_DEBUG {
		args = append(args, "-debug")
	}
	cmd := exec.Command(self, args...)
	cmd.Dir = cwd
	cmd.Env = os.Environ()
	// Its own process group: a signal to containerd's group must not take
	// down the shims of running containers.
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	return cmd, nil
}

// groupOf reads the pod id from the bundle's annotations.
func groupOf(bundle string) (string, error) {
	data, err := os.ReadFile(filepath.Join(bundle, "config.json"))
	if err != nil {
		return "", err
	}
	var spec struct {
		Annotations map[string]string `json:"annotations"`
	}
	if err := json.Unmarshal(data, &spec); err != nil {
		return "", fmt.Errorf("decode config.json: %w", err)
	}
	return spec.Annotations[groupAnnotation], nil
}

// Stop is `shim delete`: containerd runs it in the bundle of a container
// whose shim is gone, and it reclaims what the backend left.
func (m Manager) Stop(ctx context.Context, id string) (cshim.StopStatus, error) {
	cwd, err := os.Getwd()
	if err != nil {
		return cshim.StopStatus{}, err
	}
	bundle := filepath.Join(filepath.Dir(cwd), id)
	ns, err := namespaces.NamespaceRequired(ctx)
	if err != nil {
		return cshim.StopStatus{}, err
	}
	_, h, err := readPersistedHandler(bundle)
	if errors.Is(err, os.ErrNotExist) {
		// Create never got as far as the backend: nothing to reclaim.
		return cshim.StopStatus{ExitStatus: 255}, nil
	}
	if err != nil {
		return cshim.StopStatus{}, err
	}
	address := bootstrapAddress(bundle)
	if address != "" && cshim.CanConnect(address) {
		// The shim lives: containerd runs `delete` for a container of a
		// live shim when its Create failed in a shim that a pod shares.
		// The shim removed what that Create left, and a backend's cleanup,
		// written for a dead shim, would take down what the pod still
		// uses (the delegate kills the downstream shim).
		log.G(ctx).WithField("id", id).Info("shim still serves the pod; nothing to reclaim for a failed create")
		return cshim.StopStatus{ExitStatus: 255}, nil
	}
	cl, err := cleanerFor(h)
	if err != nil {
		return cshim.StopStatus{}, err
	}
	st, err := cl.Cleanup(ctx, ns, id, bundle)
	if err != nil {
		return cshim.StopStatus{}, err
	}
	// A shim killed outright leaves its socket file.
	if address != "" {
		if err := cshim.RemoveSocket(address); err != nil && !errors.Is(err, os.ErrNotExist) {
			log.G(ctx).WithError(err).Warn("remove dead shim's socket")
		}
	}
	return cshim.StopStatus{Pid: st.Pid, ExitStatus: st.ExitStatus}, nil
}

// Info describes the shim to containerd (`containerd-shim-palisade-v2 -info`):
// the handler that the runtime options on optionsR select, and the OCI
// features its backend really provides (see info.go).
func (m Manager) Info(ctx context.Context, optionsR io.Reader) (*types.RuntimeInfo, error) {
	return runtimeInfo(ctx, m.name, optionsR)
}

// bootstrapAddress is the shim socket containerd recorded for the bundle
// (bootstrap.json, written from the result of Start).
func bootstrapAddress(bundle string) string {
	data, err := os.ReadFile(filepath.Join(bundle, "bootstrap.json"))
	if err != nil {
		return ""
	}
	var b struct {
		Address string `json:"address"`
	}
	if json.Unmarshal(data, &b) != nil {
		return ""
	}
	return b.Address
}
