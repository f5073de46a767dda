package k8s

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"slices"
	"strings"
	"time"

	"github.com/palisade-runtime/palisade/integration/internal/cninet"
	"github.com/palisade-runtime/palisade/integration/internal/hostcheck"
)

// Stop stops everything the cluster started and removes its state: the kubelet
// first (so that it restarts nothing), then every pod through CRI (which stops
// the containers, ends their shims and runsc sandboxes and tears down their
// network), then containerd and the control plane. Whatever of the cluster still
// runs or is mounted after that is a leak: it is killed or unmounted and
// reported in the error. The kubelet's own mounts (its root dir, the volumes of
// pods still running) are not leaks: the kubelet is stopped before it can
// unmount them.
func (c *Cluster) Stop(ctx context.Context) error {
	var errs []error
	procs := slices.Clone(c.procs)
	byName := func(name string) *proc {
		i := slices.IndexFunc(procs, func(p *proc) bool { return p.name == name })
		if i < 0 {
			return nil
		}
		return procs[i]
	}
	if p := byName("kubelet"); p != nil {
		errs = append(errs, p.stop(30*time.Second))
	}
	if p := byName("containerd"); p != nil && p.exited() == nil {
		errs = append(errs, c.removePods(ctx))
	}
	for _, p := range slices.Backward(procs) {
		if p.name != "kubelet" {
			errs = append(errs, p.stop(30*time.Second))
		}
	}
	if c.fwd != nil {
		errs = append(errs, c.fwd.Close())
	}
	if c.reg != nil {
		errs = append(errs, c.reg.Close())
		c.regLog.Close()
	}
	errs = append(errs, c.sweep()...)
	if c.netnsName != "" {
		if _, err := os.Stat(c.netnsPath); err == nil {
			errs = append(errs, cninet.Delete(c.netnsName))
		}
		leaked, err := cninet.CleanCache(c.netnsName, c.cniBefore)
		errs = append(errs, err)
		if len(leaked) > 0 {
			errs = append(errs, fmt.Errorf("libcni results left in %s (now removed): %v", cninet.CacheDir, leaked))
		}
	}
	if c.dirs.Root != "" {
		if err := os.RemoveAll(c.dirs.Root); err != nil {
			errs = append(errs, err)
		}
	}
	c.logf("stopped")
	return errors.Join(errs...)
}

// removePods stops and removes every pod sandbox through CRI, with crictl.
func (c *Cluster) removePods(ctx context.Context) error {
	ctx, cancel := context.WithTimeout(ctx, 2*time.Minute)
	defer cancel()
	out, err := exec.CommandContext(ctx, c.tool("crictl"), "--runtime-endpoint", "unix://"+c.address,
		"--timeout", "60s", "rmp", "--all", "--force").CombinedOutput()
	if err != nil {
		return fmt.Errorf("crictl rmp --all --force: %w: %s", err, out)
	}
	return nil
}

// sweep kills what still runs of the cluster, unmounts what is still mounted
// below its directory and removes its cgroups; each of those, except the
// kubelet's volume mounts, is reported.
func (c *Cluster) sweep() []error {
	var errs []error
	rules := hostcheck.Rules{ProcNames: []string{"*"}, ProcOwners: c.leakOwners, CgroupPaths: []string{c.dirs.CgroupRoot}}
	for deadline := time.Now().Add(5 * time.Second); ; time.Sleep(200 * time.Millisecond) {
		snap, err := hostcheck.Take(rules)
		if err != nil {
			errs = append(errs, err)
			break
		}
		left := slices.Concat(snap.Procs, snap.CgroupProcs)
		if len(left) == 0 {
			break
		}
		if time.Now().After(deadline) {
			errs = append(errs, fmt.Errorf("processes of the cluster left running (now killed): %v", left))
			errs = append(errs, hostcheck.Kill(left))
			time.Sleep(500 * time.Millisecond)
			break
		}
	}
	if c.dirs.Root != "" {
		unmounted, err := hostcheck.UnmountAll(c.dirs.Root)
		errs = append(errs, err)
		if leaked := slices.DeleteFunc(unmounted, func(m string) bool {
			// The kubelet bind-mounts its root dir on itself (to make it shared)
			// and mounts the volumes of its pods.
			return m == c.dirs.Kubelet || strings.HasPrefix(m, c.dirs.Kubelet+"/pods/")
		}); len(leaked) > 0 {
			errs = append(errs, fmt.Errorf("mounts left below %s (now detached): %v", c.dirs.Root, leaked))
		}
	}
	if c.dirs.CgroupRoot != "" {
		errs = append(errs, hostcheck.RemoveCgroups(c.dirs.CgroupRoot, 5*time.Second))
	}
	return errs
}
