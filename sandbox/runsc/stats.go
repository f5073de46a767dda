package runsc

import (
	"context"
	"fmt"

	v1 "github.com/containerd/cgroups/v3/cgroup1/stats"
	taskAPI "github.com/containerd/containerd/api/runtime/task/v3"
	gorunc "github.com/containerd/go-runc"
	"github.com/containerd/log"
	"github.com/containerd/typeurl/v2"
)

// Stats reports what gVisor's sentry accounts for the container (runsc
// events --stats), in the cgroup v1 metrics type that containerd's CRI and
// `ctr task metrics` decode. The host cgroup of the sandbox would mix the
// containers of a pod together.
func (s *Service) Stats(ctx context.Context, r *taskAPI.StatsRequest) (*taskAPI.StatsResponse, error) {
	ctx = s.rt(ctx)
	c, err := s.container(r.ID)
	if err != nil {
		return nil, err
	}
	st, err := c.init.Runtime().Stats(ctx, c.id)
	if err != nil {
		return nil, fmt.Errorf("runsc events --stats: %w", err)
	}
	m := toMetrics(st)
	if m.MemoryOomControl, err = sandboxOOMControl(c.init.Pid()); err != nil {
		log.G(ctx).WithError(err).WithField("id", c.id).Debug("no OOM count for the sandbox's memory cgroup")
	}
	any, err := typeurl.MarshalAny(m)
	if err != nil {
		return nil, err
	}
	return &taskAPI.StatsResponse{Stats: typeurl.MarshalProto(any)}, nil
}

func toMetrics(st *gorunc.Stats) *v1.Metrics {
	entry := func(e gorunc.MemoryEntry) *v1.MemoryEntry {
		return &v1.MemoryEntry{Limit: e.Limit, Usage: e.Usage, Max: e.Max, Failcnt: e.Failcnt}
	}
	return &v1.Metrics{
		CPU: &v1.CPUStat{
			Usage: &v1.CPUUsage{
				Total: st.Cpu.Usage.Total, Kernel: st.Cpu.Usage.Kernel,
				User: st.Cpu.Usage.User, PerCPU: st.Cpu.Usage.Percpu,
			},
			Throttling: &v1.Throttle{
				Periods:          st.Cpu.Throttling.Periods,
				ThrottledPeriods: st.Cpu.Throttling.ThrottledPeriods,
				ThrottledTime:    st.Cpu.Throttling.ThrottledTime,
			},
		},
		Memory: &v1.MemoryStat{
			Cache:     st.Memory.Cache,
			RSS:       st.Memory.Raw["rss"],
			Usage:     entry(st.Memory.Usage),
			Swap:      entry(st.Memory.Swap),
			Kernel:    entry(st.Memory.Kernel),
			KernelTCP: entry(st.Memory.KernelTCP),
		},
		Pids: &v1.PidsStat{Current: st.Pids.Current, Limit: st.Pids.Limit},
	}
}
