package portfwd

import (
	"bytes"
	"context"
	"fmt"
	"net"
	"os/exec"
	"path/filepath"
	"strconv"
	"sync/atomic"
	"syscall"
	"time"
)

// acceptGrace bounds the Accept of a connection that is already queued.
const acceptGrace = 5 * time.Second

// Runsc reaches a port inside a sandbox with `runsc port-forward --stream`
// (runsc/cmd/portforward.go): runsc connects to a unix socket that the
// caller listens on, hands that connection to the sentry, which connects
// to 127.0.0.1:<port> in the sandbox's netstack and copies between the two,
// and exits: 0 when the sentry's connection is made, non-zero when it
// failed (nothing listens on the port: "connection refused"). So the
// caller accepts runsc's connection, then waits for runsc's exit to know
// whether the stream leads anywhere.
type Runsc struct {
	// Binary is the runsc executable.
	Binary string
	// Root is the sandbox's runsc --root.
	Root string
	// GlobalArgs are runsc's other global flags, as the sandbox was
	// created with (a debug log, for one, applies here too).
	GlobalArgs []string
	// ContainerID is a started container of the sandbox; the pod shares one
	// netstack, so the pod sandbox (pause) container serves every port.
	ContainerID string
	// SocketDir is a directory only root can enter, for the per-connection
	// sockets (SocketDir below).
	SocketDir string
	// Run starts cmd and waits for it, returning its combined output. The
	// shim is a subreaper whose reaper collects every child, so the command
	// must go through the reaper's Monitor, not exec.Cmd.Wait.
	Run func(cmd *exec.Cmd) ([]byte, error)

	seq atomic.Uint64
}

// args is the command line of one forward through the socket at path.
func (r *Runsc) args(path string, port uint16) []string {
	args := []string{"--root", r.Root}
	args = append(args, r.GlobalArgs...)
	return append(args, "port-forward", "--stream", path, r.ContainerID, strconv.Itoa(int(port)))
}

// Dial returns a stream to 127.0.0.1:port in the sandbox, or an error that
// carries runsc's message when the sentry could not connect.
func (r *Runsc) Dial(ctx context.Context, port uint16) (net.Conn, error) {
	path := filepath.Join(r.SocketDir, strconv.FormatUint(r.seq.Add(1), 10))
	ln, err := net.ListenUnix("unix", &net.UnixAddr{Name: path, Net: "unix"})
	if err != nil {
		return nil, fmt.Errorf("port-forward socket: %w", err)
	}
	// Close also unlinks path: the listener created it.
	defer ln.Close()

	cmd := exec.CommandContext(ctx, r.Binary, r.args(path, port)...)
	// A shim killed mid-forward must not leave runsc waiting on the sentry.
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	out, err := r.Run(cmd)
	if err != nil {
		// What runsc connected is still in the listener's backlog; the
		// deferred Close drops it.
		return nil, fmt.Errorf("runsc port-forward %s %d: %w: %s", r.ContainerID, port, err, bytes.TrimSpace(out))
	}
	// runsc connected before it asked the sentry, and exits only after the
	// sentry's answer: the connection is queued, Accept does not wait.
	if err := ln.SetDeadline(time.Now().Add(acceptGrace)); err != nil {
		return nil, err
	}
	conn, err := ln.AcceptUnix()
	if err != nil {
		return nil, fmt.Errorf("runsc port-forward %s %d: exited 0 without connecting: %w", r.ContainerID, port, err)
	}
	return conn, nil
}
