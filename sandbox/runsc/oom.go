package runsc

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"

	"github.com/containerd/cgroups/v3"
	"github.com/containerd/cgroups/v3/cgroup1"
	v1 "github.com/containerd/cgroups/v3/cgroup1/stats"
	cgroupsv2 "github.com/containerd/cgroups/v3/cgroup2"
	"github.com/containerd/containerd/v2/core/events"
	"github.com/containerd/containerd/v2/pkg/oom"
	oomv1 "github.com/containerd/containerd/v2/pkg/oom/v1"
	oomv2 "github.com/containerd/containerd/v2/pkg/oom/v2"
)

// newOOMWatcher watches memory cgroups for OOM kills and publishes TaskOOM,
// with containerd's own watchers (epoll on memory.oom_control for v1, the
// cgroup's event file for v2).
func newOOMWatcher(ctx context.Context, publisher events.Publisher) (oom.Watcher, error) {
	var (
		w   oom.Watcher
		err error
	)
	if cgroups.Mode() == cgroups.Unified {
		w, err = oomv2.New(publisher)
	} else {
		w, err = oomv1.New(publisher)
	}
	if err != nil {
		return nil, fmt.Errorf("oom watcher: %w", err)
	}
	go w.Run(ctx)
	return w, nil
}

// watchSandboxOOM adds the memory cgroup of a sandbox process. runsc puts the
// sandbox, and with it all memory of the gVisor kernel and its applications,
// into the cgroup the spec names, so an OOM kill there is the container's.
// Containers that join a pod's sandbox have no memory of their own on the
// host (it is all the sandbox's), so only a sandbox's first container is
// watched.
func watchSandboxOOM(w oom.Watcher, id string, pid int) error {
	if cgroups.Mode() == cgroups.Unified {
		path, err := cgroupsv2.PidGroupPath(pid)
		if err != nil {
			return err
		}
		cg, err := cgroupsv2.Load(path)
		if err != nil {
			return err
		}
		return w.Add(id, cg)
	}
	cg, err := cgroup1.Load(cgroup1.PidPath(pid))
	if err != nil {
		return err
	}
	return w.Add(id, cg)
}

// sandboxOOMControl reads the OOM state of the memory cgroup of sandbox
// process pid, for the metrics CRI reports (container_oom_events_total).
// The sentry keeps no such count: an OOM kill happens on the host, to the
// sandbox's cgroup, so that is where it is counted.
func sandboxOOMControl(pid int) (*v1.MemoryOomControl, error) {
	if cgroups.Mode() == cgroups.Unified {
		path, err := cgroupsv2.PidGroupPath(pid)
		if err != nil {
			return nil, err
		}
		kv, err := readKeyValues(filepath.Join("/sys/fs/cgroup", path, "memory.events"))
		if err != nil {
			return nil, err
		}
		return &v1.MemoryOomControl{OomKill: kv["oom_kill"]}, nil
	}
	paths, err := cgroup1.ParseCgroupFile(fmt.Sprintf("/proc/%d/cgroup", pid))
	if err != nil {
		return nil, err
	}
	mem, ok := paths["memory"]
	if !ok {
		return nil, fmt.Errorf("process %d has no memory cgroup", pid)
	}
	kv, err := readKeyValues(filepath.Join("/sys/fs/cgroup/memory", mem, "memory.oom_control"))
	if err != nil {
		return nil, err
	}
	return &v1.MemoryOomControl{OomKillDisable: kv["oom_kill_disable"], UnderOom: kv["under_oom"], OomKill: kv["oom_kill"]}, nil
}

// readKeyValues reads a cgroup file of "key value" lines.
func readKeyValues(path string) (map[string]uint64, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	kv := map[string]uint64{}
	for _, line := range strings.Split(string(data), "\n") {
		k, v, ok := strings.Cut(line, " ")
		if !ok {
			continue
		}
		n, err := strconv.ParseUint(strings.TrimSpace(v), 10, 64)
		if err != nil {
			return nil, fmt.Errorf("%s: %q: %w", path, line, err)
		}
		kv[k] = n
	}
	return kv, nil
}
