package shimv2

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"

	cshim "github.com/containerd/containerd/v2/pkg/shim"
	"github.com/containerd/log"

	"github.com/palisade-runtime/palisade/sandbox"
	"github.com/palisade-runtime/palisade/sandbox/trampoline"
)

// recordFile, in each bundle, is how `shim delete` finds the downstream
// shim of a container after Palisade's shim died.
const recordFile = "palisade-delegate.json"

// record is the downstream shim that serves a container.
type record struct {
	Binary       string `json:"binary"`
	Namespace    string `json:"namespace"`
	GRPCAddress  string `json:"grpc_address"`
	TTRPCAddress string `json:"ttrpc_address"`
	Address      string `json:"address"`
	SocketDir    string `json:"socket_dir"`
	// Profile is the host AppArmor profile the downstream runs under; its
	// `delete` runs under it too.
	Profile string `json:"apparmor_profile,omitempty"`
	// Pid and PidStart (clock ticks after boot) identify the downstream
	// shim process; the start time guards against a reused pid.
	Pid      int    `json:"pid"`
	PidStart uint64 `json:"pid_start"`
}

func writeRecord(bundle string, r record) error {
	data, err := json.Marshal(r)
	if err != nil {
		return err
	}
	tmp := filepath.Join(bundle, recordFile+".tmp")
	if err := os.WriteFile(tmp, data, 0o600); err != nil {
		return err
	}
	return os.Rename(tmp, filepath.Join(bundle, recordFile))
}

func readRecord(bundle string) (record, error) {
	var r record
	data, err := os.ReadFile(filepath.Join(bundle, recordFile))
	if err != nil {
		return r, err
	}
	if err := json.Unmarshal(data, &r); err != nil {
		return r, fmt.Errorf("decode %s: %w", recordFile, err)
	}
	return r, nil
}

// Cleaner is the `shim delete` path of the delegate: containerd runs it
// when Palisade's shim is gone. The downstream shim may still be running:
// it is killed first, so that it cannot publish a second exit for the task
// that containerd is reporting itself, and then the downstream's own
// `delete` reclaims the container (for runc: runc delete --force, rootfs
// unmount).
type Cleaner struct{}

var _ sandbox.Cleaner = Cleaner{}

// Cleanup reclaims container id in bundle.
func (Cleaner) Cleanup(ctx context.Context, namespace, id, bundle string) (sandbox.StopStatus, error) {
	rec, err := readRecord(bundle)
	if errors.Is(err, os.ErrNotExist) {
		// Create never reached the downstream shim: nothing runs.
		return sandbox.StopStatus{ExitStatus: 255}, nil
	}
	if err != nil {
		return sandbox.StopStatus{}, err
	}
	if err := killProcess(rec.Pid, rec.PidStart); err != nil {
		log.G(ctx).WithError(err).WithField("pid", rec.Pid).Warn("kill the downstream shim")
	}
	l := launcher{binary: rec.Binary, namespace: namespace, grpcAddress: rec.GRPCAddress,
		ttrpcAddress: rec.TTRPCAddress, socketDir: rec.SocketDir, profile: rec.Profile, run: reaperRun}
	if l.profile != "" {
		if l.self, err = trampoline.Path(); err != nil {
			return sandbox.StopStatus{}, fmt.Errorf("AppArmor trampoline: %w", err)
		}
	}
	resp, err := l.delete(ctx, id, bundle)
	removeSockets(ctx, rec.Address, rec.SocketDir)
	if err != nil {
		return sandbox.StopStatus{}, err
	}
	return sandbox.StopStatus{Pid: int(resp.Pid), ExitStatus: int(resp.ExitStatus)}, nil
}

// removeSockets removes the downstream's socket, unless a live shim still
// answers on it, and the per-shim socket directory Palisade gave it.
func removeSockets(ctx context.Context, address, socketDir string) {
	if address != "" && !cshim.CanConnect(address) {
		if err := cshim.RemoveSocket(address); err != nil && !errors.Is(err, os.ErrNotExist) {
			log.G(ctx).WithError(err).Warn("remove the downstream shim's socket")
		}
	}
	if socketDir == "" {
		return
	}
	// A shim that has just exited may hold its listener for a moment
	// longer (its last threads are still going): look again, briefly.
	for deadline := time.Now().Add(200 * time.Millisecond); ; time.Sleep(5 * time.Millisecond) {
		entries, err := os.ReadDir(socketDir)
		if err != nil {
			return
		}
		for _, e := range entries {
			addr := "unix://" + filepath.Join(socketDir, e.Name())
			if !cshim.CanConnect(addr) {
				_ = cshim.RemoveSocket(addr)
			}
		}
		// Fails, as it should, while a live shim's socket is still in it.
		if err := os.Remove(socketDir); err == nil || errors.Is(err, os.ErrNotExist) || time.Now().After(deadline) {
			return
		}
	}
}

// procStart is a process's start time (clock ticks after boot), from field
// 22 of /proc/<pid>/stat.
func procStart(pid int) (uint64, error) {
	data, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return 0, err
	}
	// The command name (field 2) may hold spaces; count from its ')'.
	i := strings.LastIndexByte(string(data), ')')
	if i < 0 {
		return 0, fmt.Errorf("/proc/%d/stat: malformed", pid)
	}
	f := strings.Fields(string(data[i+1:]))
	if len(f) < 20 {
		return 0, fmt.Errorf("/proc/%d/stat: malformed", pid)
	}
	return strconv.ParseUint(f[19], 10, 64)
}

// alive reports whether the process pid, started at start, still runs
// (a zombie does not count).
func alive(pid int, start uint64) bool {
	if pid <= 0 {
		return false
	}
	data, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return false
	}
	if i := strings.LastIndexByte(string(data), ')'); i >= 0 && strings.HasPrefix(string(data[i+1:]), " Z") {
		return false
	}
	got, err := procStart(pid)
	return err == nil && got == start
}

// reaped reports whether the process pid, started at start, is gone
// altogether (not even a zombie).
func reaped(pid int, start uint64) bool {
	got, err := procStart(pid)
	return err != nil || got != start
}

// killProcess sends SIGKILL to pid if it is still the process started at
// start, and waits briefly for it to die.
func killProcess(pid int, start uint64) error {
	if !alive(pid, start) {
		return nil
	}
	if err := syscall.Kill(pid, syscall.SIGKILL); err != nil && !errors.Is(err, syscall.ESRCH) {
		return err
	}
	for deadline := time.Now().Add(2 * time.Second); time.Now().Before(deadline); time.Sleep(10 * time.Millisecond) {
		if !alive(pid, start) {
			return nil
		}
	}
	return fmt.Errorf("pid %d still alive 2s after SIGKILL", pid)
}
