package shimv2

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"syscall"
	"time"

	bootapi "github.com/containerd/containerd/api/runtime/bootstrap/v1"
	taskAPI "github.com/containerd/containerd/api/runtime/task/v3"
	"github.com/containerd/containerd/v2/pkg/sys/reaper"
	"github.com/containerd/containerd/v2/version"
	"github.com/containerd/errdefs"
	"github.com/containerd/log"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/anypb"

	"github.com/palisade-runtime/palisade/sandbox/apparmor"
)

// workDirName is the downstream shim's working directory inside a bundle.
// A shim v2 keeps state in its working directory (the log FIFO it writes,
// the "s" link to its socket directory, Kata's "address" file), and
// Palisade's own shim already works in the bundle: sharing it would let
// each shim's exit clean up the other's socket. The directory holds a hard
// link to the bundle's config.json (read by `start` for grouping) and a
// symbolic one to its log FIFO (so the downstream's logs reach containerd
// like Palisade's).
const workDirName = "palisade-delegate"

// Limits on the downstream's start and delete actions.
const (
	startTimeout  = 30 * time.Second
	deleteTimeout = 30 * time.Second
	outputLimit   = 1 << 20
)

// launcher runs the downstream shim binary's `start` and `delete` actions
// as containerd 2.4 does (core/runtime/v2 command.go): the same flags,
// bootstrap parameters on stdin, and containerd's addresses in the
// environment, so that the downstream publishes its events to containerd
// itself.
type launcher struct {
	binary       string // absolute path of the downstream shim
	namespace    string
	grpcAddress  string
	ttrpcAddress string
	// socketDir is handed to the downstream for its socket. It must not be
	// Palisade's own: both derive the socket name from the same address,
	// namespace and pod, so in one directory the downstream would find
	// Palisade's socket and answer with it.
	socketDir string
	opts      *anypb.Any // the downstream runtime options, or nil
	// profile, when set, is the host AppArmor profile the downstream shim
	// runs under: it is started through the trampoline (self,
	// trampoline.Path), which moves into the profile at the exec of the
	// shim. The shim's daemon, the runtime it drives and the containers
	// inherit it.
	profile, self string
	// run starts cmd and waits for it. The shim is a subreaper whose SIGCHLD
	// handler reaps every child, so it must wait through reaper.Default.
	run func(*exec.Cmd) error
}

// reaperRun runs cmd through the shim's reaper; the caller's process must
// run containerd's reap loop (the shim daemon and `shim delete` both do).
func reaperRun(cmd *exec.Cmd) error {
	ec, err := reaper.Default.Start(cmd)
	if err != nil {
		return err
	}
	// cmd's context kills it when its time is up, which ends the wait.
	status, err := reaper.Default.Wait(cmd, ec)
	if err != nil {
		return err
	}
	if status != 0 {
		return fmt.Errorf("exit status %d", status)
	}
	return nil
}

func (l launcher) command(ctx context.Context, action, id, bundle, dir string) *exec.Cmd {
	args := []string{"-namespace", l.namespace, "-address", l.grpcAddress, "-id", id}
	if action == "delete" {
		args = append(args, "-bundle", bundle)
	}
	if lv := log.GetLevel(); lv == log.DebugLevel || lv == log.TraceLevel {
		args = append(args, "-debug")
	}
	args = append(args, action)
	program := l.binary
	env := append(os.Environ(),
		"GOMAXPROCS=2",
		"MAX_SHIM_VERSION=2",
		"TTRPC_ADDRESS="+l.ttrpcAddress,
		"GRPC_ADDRESS="+l.grpcAddress,
		"NAMESPACE="+l.namespace,
	)
	if l.profile != "" {
		program = l.self
		env = append(env, apparmor.EnvProfile+"="+l.profile, apparmor.EnvTarget+"="+l.binary)
	}
	cmd := exec.CommandContext(ctx, program, args...)
	cmd.Dir = dir
	cmd.Env = env
	// Its own process group, as containerd does: a signal to Palisade's
	// group must not reach the downstream shim.
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	return cmd
}

// start runs `<shim> start` for container id and returns where the
// downstream serves it: a new shim, or the pod's running one.
func (l launcher) start(ctx context.Context, id, bundle string) (*bootapi.BootstrapResult, error) {
	dir, err := prepareWorkDir(bundle)
	if err != nil {
		return nil, err
	}
	params := &bootapi.BootstrapParams{
		InstanceID:             id,
		Namespace:              l.namespace,
		LogLevel:               bootapi.LogLevelFromString(log.GetLevel().String()),
		ContainerdVersion:      version.Version,
		ContainerdGrpcAddress:  l.grpcAddress,
		ContainerdTtrpcAddress: l.ttrpcAddress,
		SocketDir:              &l.socketDir,
	}
	if l.opts != nil {
		if err := params.AddExtension(l.opts); err != nil {
			return nil, fmt.Errorf("bootstrap runtime options: %w", err)
		}
	}
	stdin, err := proto.Marshal(params)
	if err != nil {
		return nil, fmt.Errorf("encode bootstrap parameters: %w", err)
	}
	ctx, cancel := context.WithTimeout(ctx, startTimeout)
	defer cancel()
	cmd := l.command(ctx, "start", id, bundle, dir)
	cmd.Stdin = bytes.NewReader(stdin)
	out, err := l.output(cmd)
	if err != nil {
		return nil, fmt.Errorf("%s start: %w", l.binary, err)
	}
	res, err := parseStartResponse(out)
	if err != nil {
		return nil, fmt.Errorf("%s start: %w", l.binary, err)
	}
	if res.Protocol != "ttrpc" {
		return nil, fmt.Errorf("%s start: protocol %q: Palisade speaks ttrpc to its delegate: %w",
			l.binary, res.Protocol, errdefs.ErrNotImplemented)
	}
	return res, nil
}

// delete runs `<shim> delete` in the bundle: the downstream's own cleanup
// of a container whose shim is gone (for runc: runc delete --force and the
// rootfs unmount).
func (l launcher) delete(ctx context.Context, id, bundle string) (*taskAPI.DeleteResponse, error) {
	ctx, cancel := context.WithTimeout(ctx, deleteTimeout)
	defer cancel()
	cmd := l.command(ctx, "delete", id, bundle, bundle)
	out, err := l.output(cmd)
	if err != nil {
		return nil, fmt.Errorf("%s delete: %w", l.binary, err)
	}
	var resp taskAPI.DeleteResponse
	if err := proto.Unmarshal(out, &resp); err != nil {
		return nil, fmt.Errorf("%s delete: decode its response: %w", l.binary, err)
	}
	return &resp, nil
}

// output runs cmd and returns its stdout; stderr goes into the error.
func (l launcher) output(cmd *exec.Cmd) ([]byte, error) {
	var stdout, stderr limitedBuffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := l.run(cmd); err != nil {
		if msg := bytes.TrimSpace(stderr.b); len(msg) > 0 {
			return nil, fmt.Errorf("%w: %s", err, msg)
		}
		return nil, err
	}
	return stdout.b, nil
}

type limitedBuffer struct{ b []byte }

func (l *limitedBuffer) Write(p []byte) (int, error) {
	if room := outputLimit - len(l.b); room > 0 {
		l.b = append(l.b, p[:min(room, len(p))]...)
	}
	return len(p), nil
}

// parseStartResponse is containerd's: a BootstrapResult in protobuf, or
// from older shims the address as JSON or as plain text.
func parseStartResponse(out []byte) (*bootapi.BootstrapResult, error) {
	var res bootapi.BootstrapResult
	if err := proto.Unmarshal(out, &res); err == nil && res.Address != "" {
		return &res, nil
	}
	out = bytes.TrimSpace(out)
	if len(out) == 0 {
		return nil, errors.New("no address in its response")
	}
	params := &bootapi.BootstrapResult{}
	if err := json.Unmarshal(out, params); err != nil || params.Version < 2 {
		params = &bootapi.BootstrapResult{Address: string(out), Protocol: "ttrpc", Version: 2}
	}
	if params.Version > 3 {
		return nil, fmt.Errorf("shim protocol version %d: %w", params.Version, errdefs.ErrNotImplemented)
	}
	return params, nil
}

// prepareWorkDir makes the downstream's working directory in the bundle
// (see workDirName). It is removed with the bundle.
func prepareWorkDir(bundle string) (string, error) {
	dir := filepath.Join(bundle, workDirName)
	if err := os.Mkdir(dir, 0o711); err != nil && !errors.Is(err, os.ErrExist) {
		return "", fmt.Errorf("downstream shim work dir: %w", err)
	}
	// A hard link to config.json, not a symbolic one: the first container's
	// `start` runs while the shim replaces config.json with the enforced
	// spec (the request renamed aside, a new file written), and through a
	// symbolic link it could read a missing or half-written file. The
	// link keeps the file it was made to; `start` reads only annotations,
	// which enforcement does not change.
	// A link made already stays: made early, it is the whole request, and
	// the bundle's config.json may be mid-replacement now.
	link := filepath.Join(dir, "config.json")
	if _, err := os.Lstat(link); errors.Is(err, os.ErrNotExist) {
		err := os.Link(filepath.Join(bundle, "config.json"), link)
		if err != nil && !errors.Is(err, os.ErrExist) {
			return "", fmt.Errorf("downstream shim work dir: %w", err)
		}
	}
	if err := os.Symlink(filepath.Join("..", "log"), filepath.Join(dir, "log")); err != nil && !errors.Is(err, os.ErrExist) {
		return "", fmt.Errorf("downstream shim work dir: %w", err)
	}
	return dir, nil
}

// relinkSpec points the work dir's config.json at the bundle's current one,
// the enforced spec, before the downstream creates the container: the link
// made for the first container's early `start` still names the request,
// and nothing of the downstream may read that one from here on.
func relinkSpec(bundle string) error {
	dir := filepath.Join(bundle, workDirName)
	tmp := filepath.Join(dir, "config.json.tmp")
	_ = os.Remove(tmp)
	if err := os.Link(filepath.Join(bundle, "config.json"), tmp); err != nil {
		return fmt.Errorf("downstream shim work dir: %w", err)
	}
	if err := os.Rename(tmp, filepath.Join(dir, "config.json")); err != nil {
		return fmt.Errorf("downstream shim work dir: %w", err)
	}
	return nil
}
