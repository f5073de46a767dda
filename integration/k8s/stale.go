package k8s

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"

	"github.com/palisade-runtime/palisade/integration/internal/cninet"
	"github.com/palisade-runtime/palisade/integration/internal/hostcheck"
)

// A process that is itself killed (a CI timeout, kill -9 of the server of make
// cluster) runs no Stop: shims, runsc sandboxes, mounts, cgroups and the network
// namespace of its cluster stay. Each cluster under tmpPrefix records its owner
// and its host-wide names in recordFile, and SweepStale stops the clusters whose
// owner is gone.

const (
	tmpPrefix  = "/tmp/pal-k8s-"
	recordFile = "cluster.json"
)

// record is what SweepStale needs to stop a cluster without its process.
type record struct {
	OwnerPID   int    `json:"owner_pid"`
	OwnerStart uint64 `json:"owner_start"`
	NetNS      string `json:"netns"`
	CgroupRoot string `json:"cgroup_root"`
}

func (c *Cluster) writeRecord() error {
	self, ok := hostcheck.Lookup(os.Getpid())
	if !ok {
		return fmt.Errorf("no /proc entry for this process (%d)", os.Getpid())
	}
	b, err := json.Marshal(record{OwnerPID: self.PID, OwnerStart: self.Start, NetNS: c.netnsName, CgroupRoot: c.dirs.CgroupRoot})
	if err != nil {
		return err
	}
	return os.WriteFile(filepath.Join(c.dirs.Root, recordFile), b, 0o644)
}

// SweepStale stops and removes every cluster under /tmp/pal-k8s-* whose owning
// process is gone, and returns one line per cluster swept, with what it found.
// Clusters of live processes, and directories without a record (one being
// created right now), are left alone.
func SweepStale(ctx context.Context) ([]string, error) {
	dirs, err := filepath.Glob(tmpPrefix + "*")
	if err != nil {
		return nil, err
	}
	var swept []string
	for _, d := range dirs {
		b, err := os.ReadFile(filepath.Join(d, recordFile))
		if err != nil {
			continue
		}
		var r record
		if err := json.Unmarshal(b, &r); err != nil || !strings.HasPrefix(r.NetNS, "pal-k8s-") {
			continue
		}
		if hostcheck.Alive(hostcheck.Proc{PID: r.OwnerPID, Start: r.OwnerStart}) {
			continue
		}
		c := &Cluster{
			opts:       Options{Log: io.Discard},
			dirs:       Dirs{Root: d, Kubelet: filepath.Join(d, "kubelet"), CgroupRoot: r.CgroupRoot, NetNS: filepath.Join("/run/netns", r.NetNS)},
			netnsName:  r.NetNS,
			netnsPath:  filepath.Join("/run/netns", r.NetNS),
			leakOwners: []string{d + "/"},
			cniBefore:  cninet.ListTree(cninet.CacheDir),
		}
		line := "cluster " + d + " of a process that is gone: removed"
		if err := c.Stop(ctx); err != nil {
			line += "; " + strings.ReplaceAll(err.Error(), "\n", "; ")
		}
		swept = append(swept, line)
	}
	return swept, nil
}
