package runsc

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"os/exec"

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
func (s *Service) Stats(ctx context.Context, r *taskAPI.StatsRequest) (_ *taskAPI.StatsResponse, retErr error) {
	ctx, end := s.request(ctx, "runsc events --stats")
	defer end(&retErr)
	c, err := s.container(r.ID)
	if err != nil {
		return nil, err
	}
	st, err := runscStats(ctx, c.init.Runtime(), s.cfg.Binary, c.id)
	if err != nil {
		return nil, err
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

// runscStats runs `runsc events --stats id`. go-runc's Stats decodes stdout
// and drops stderr and the exit status, so a runsc that fails reads as
// "EOF"; this keeps runsc's message. binary is runsc itself, as for
// runscWait: the command only asks the sandbox over its control socket.
func runscStats(ctx context.Context, r *gorunc.Runc, binary, id string) (*gorunc.Stats, error) {
	args := []string{}
	if r.Root != "" {
		args = append(args, "--root", r.Root)
	}
	args = append(append(args, r.ExtraArgs...), "events", "--stats", id)
	cmd := exec.CommandContext(ctx, binary, args...)
	var stdout, stderr limitedBuffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	ec, err := gorunc.Monitor.Start(cmd)
	if err != nil {
		return nil, fmt.Errorf("runsc events --stats %s: %w", id, err)
	}
	status, err := gorunc.Monitor.Wait(cmd, ec)
	if err == nil && status != 0 {
		err = fmt.Errorf("exit status %d", status)
	}
	if err != nil {
		return nil, fmt.Errorf("runsc events --stats %s: %w: %s", id, err, bytes.TrimSpace(stderr.Bytes()))
	}
	var e gorunc.Event
	if err := json.Unmarshal(stdout.Bytes(), &e); err != nil || e.Stats == nil {
		return nil, fmt.Errorf("runsc events --stats %s: no stats in %q (%v)", id, stdout.Bytes(), err)
	}
	return e.Stats, nil
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
