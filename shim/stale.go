package shim

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"time"

	taskAPI "github.com/containerd/containerd/api/runtime/task/v3"
	"github.com/containerd/containerd/v2/pkg/namespaces"
	cshim "github.com/containerd/containerd/v2/pkg/shim"
	"github.com/containerd/ttrpc"
)

// Bounds on stopping a stale shim: first asked, then killed.
const (
	staleShutdownTimeout = time.Second
	staleKillTimeout     = 5 * time.Second
)

// stopStaleShim stops the shim that answers at a container's own address
// before the container exists. Only a shim that containerd started and then
// lost is there: containerd v2.4 leaves the shim running when it fails to
// write shim-binary-path or bootstrap.json into the bundle after `start` (a
// full disk). That shim serves nothing, and its working directory, the old
// bundle, is gone; it may even never serve, blocked opening the log FIFO
// whose reader containerd closed. So it is not handed the new container: it
// is asked to exit, and killed if it does not. Like all of `start`, this
// logs nothing: containerd reads start's combined output as its result.
func stopStaleShim(ctx context.Context, address, id, grpcAddress string) error {
	if conn, err := cshim.AnonDialer(address, staleShutdownTimeout); err == nil {
		client := ttrpc.NewClient(conn)
		sctx, cancel := context.WithTimeout(ctx, staleShutdownTimeout)
		_, _ = taskAPI.NewTTRPCTaskClient(client).Shutdown(sctx, &taskAPI.ShutdownRequest{})
		cancel()
		client.Close()
	}
	if waitUnreachable(address, staleShutdownTimeout) {
		return nil
	}
	ns, err := namespaces.NamespaceRequired(ctx)
	if err != nil {
		return err
	}
	pids, err := shimDaemons(ns, id, grpcAddress)
	if err != nil {
		return err
	}
	for _, pid := range pids {
		if err := syscall.Kill(pid, syscall.SIGKILL); err != nil && !errors.Is(err, syscall.ESRCH) {
			return fmt.Errorf("kill stale shim %d: %w", pid, err)
		}
	}
	if !waitUnreachable(address, staleKillTimeout) {
		return fmt.Errorf("a shim at %s holds container %s's socket and does not exit (found pids %v)", address, id, pids)
	}
	return nil
}

// waitUnreachable waits up to d for nothing to answer at address.
func waitUnreachable(address string, d time.Duration) bool {
	for deadline := time.Now().Add(d); cshim.CanConnect(address); time.Sleep(10 * time.Millisecond) {
		if time.Now().After(deadline) {
			return false
		}
	}
	return true
}

// shimDaemons finds the daemons of this binary started for container id of
// namespace ns by the containerd at grpcAddress: the command line Start
// gives them (daemonCommand) names all three.
func shimDaemons(ns, id, grpcAddress string) ([]int, error) {
	self, err := os.Executable()
	if err != nil {
		return nil, err
	}
	want := []string{"-namespace", ns, "-id", id, "-address", grpcAddress}
	ents, err := os.ReadDir("/proc")
	if err != nil {
		return nil, err
	}
	var pids []int
	for _, e := range ents {
		pid, err := strconv.Atoi(e.Name())
		if err != nil || pid == os.Getpid() {
			continue
		}
		b, err := os.ReadFile(filepath.Join("/proc", e.Name(), "cmdline"))
		if err != nil {
			continue
		}
		args := strings.Split(string(bytes.TrimRight(b, "\x00")), "\x00")
		if len(args) < len(want)+1 || filepath.Base(args[0]) != filepath.Base(self) {
			continue
		}
		if slices.Equal(args[1:1+len(want)], want) && !slices.Contains(args, "start") && !slices.Contains(args, "delete") {
			pids = append(pids, pid)
		}
	}
	return pids, nil
}
