package runsc

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"time"

	"golang.org/x/sys/unix"
	"gvisor.dev/gvisor/pkg/control/client"
	"gvisor.dev/gvisor/pkg/urpc"
)

// A pod container's end is learnt from its sandbox, over the sandbox's
// control socket: the uRPC call `runsc wait` makes (containerManager.Wait,
// runsc/boot/controller.go), made from the shim itself. It blocks in the
// sentry until the container's init process is gone, exactly as `runsc
// wait` does, so a process of the pod that still holds the container's
// root does not keep it "running". What it saves is a host process per pod
// container for the container's whole life (a `runsc wait`: 3 MiB of
// anonymous memory, 22 MB RSS) and its start.

// contMgrWait is runsc's name for the Wait call of its container manager;
// runsc/boot is not imported for one constant (it pulls in the sentry).
const contMgrWait = "containerManager.Wait"

// sandboxWait waits in the sandbox for container id, whose state file is in
// root, and returns its exit status as `runsc wait` reports it: the exit
// code, or 128+signal for a process killed by a signal.
func sandboxWait(root, id string) (int, error) {
	sock, err := controlSocket(root, id)
	if err != nil {
		return 0, err
	}
	conn, err := connectControl(sock)
	if err != nil {
		return 0, fmt.Errorf("connect to the sandbox of %s at %s: %w", id, sock, err)
	}
	defer conn.Close()
	var ws unix.WaitStatus
	if err := conn.Call(contMgrWait, &id, &ws); err != nil {
		return 0, fmt.Errorf("wait for %s in its sandbox: %w", id, err)
	}
	if ws.Signaled() {
		return 128 + int(ws.Signal()), nil
	}
	return ws.ExitStatus(), nil
}

// connectControl connects to a control socket. A path too long for a unix
// socket address is reached through /proc/self/fd, as runsc does.
func connectControl(sock string) (*urpc.Client, error) {
	if len(sock) < len(unix.RawSockaddrUnix{}.Path) {
		return client.ConnectTo(sock)
	}
	fd, err := unix.Open(sock, unix.O_PATH|unix.O_CLOEXEC, 0)
	if err != nil {
		return nil, err
	}
	defer unix.Close(fd)
	return client.ConnectTo(fmt.Sprintf("/proc/self/fd/%d", fd))
}

// controlSocket reads the path of the control socket of id's sandbox from
// id's runsc state file. runsc chooses it (the root when the path fits a
// socket address, else /var/run, /run or /tmp) and records it there.
// runsc rewrites the file in place under its own lock, which Palisade does
// not take: a read that meets a rewrite is retried.
func controlSocket(root, id string) (string, error) {
	file, err := stateFile(root, id)
	if err != nil {
		return "", err
	}
	var state struct {
		Sandbox struct {
			ControlSocketPath string `json:"controlSocketPath"`
		} `json:"sandbox"`
	}
	for try := 0; ; try++ {
		data, err := os.ReadFile(file)
		if err != nil {
			return "", fmt.Errorf("runsc state of %s: %w", id, err)
		}
		err = json.Unmarshal(data, &state)
		if err == nil && state.Sandbox.ControlSocketPath != "" {
			return state.Sandbox.ControlSocketPath, nil
		}
		if try == 4 {
			if err == nil {
				err = errors.New("no controlSocketPath")
			}
			return "", fmt.Errorf("runsc state of %s in %s: %w", id, file, err)
		}
		time.Sleep(10 * time.Millisecond)
	}
}
