package runsc

import (
	"context"
	"fmt"

	"github.com/containerd/cgroups/v3"
	"github.com/containerd/cgroups/v3/cgroup1"
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
