package policy

import (
	"fmt"
	"path"
	"slices"
	"strings"
)

// rlimitTypes are the POSIX rlimits a Linux runtime knows; any other name
// is refused rather than passed through to a runtime that may ignore it.
var rlimitTypes = []string{"RLIMIT_AS", "RLIMIT_CORE", "RLIMIT_CPU", "RLIMIT_DATA", "RLIMIT_FSIZE",
	"RLIMIT_LOCKS", "RLIMIT_MEMLOCK", "RLIMIT_MSGQUEUE", "RLIMIT_NICE", "RLIMIT_NOFILE",
	"RLIMIT_NPROC", "RLIMIT_RSS", "RLIMIT_RTPRIO", "RLIMIT_RTTIME", "RLIMIT_SIGPENDING", "RLIMIT_STACK"}

// hostSlices are systemd's top-level units: a cgroup under one of them is
// the host's services', not a container's.
var hostSlices = []string{"system.slice", "user.slice", "init.scope", "machine.slice", "-.slice"}

// resourcesControl governs the process fields a runtime applies with host
// privilege: rlimits (known names, soft <= hard), oomScoreAdj (never below
// oom_score_adj_min: more protected from the OOM killer than kubelet makes
// pods, the host's own services would be killed first) and cgroupsPath (the
// container's own cgroup, never the root or a host service's).
type resourcesControl struct{}

func (resourcesControl) enforce(w *work) (Control, error) {
	p, l := w.spec.Process, w.spec.Linux
	c := Control{Name: ControlResources, EnforcedBy: w.s.Backend}
	var o outcome
	for i, r := range p.Rlimits {
		if !slices.Contains(rlimitTypes, r.Type) {
			o.refuse("process.rlimits[%d]: unknown rlimit type %q", i, r.Type)
		} else if r.Soft > r.Hard {
			o.refuse("process.rlimits[%d] (%s): soft limit %d above hard limit %d", i, r.Type, r.Soft, r.Hard)
		}
	}
	oom := p.OOMScoreAdj
	if min := w.cfg.oomScoreAdjMin(); oom != nil && *oom < min {
		o.over(fmt.Sprintf("-> %d", min), "process.oomScoreAdj: %d is below the handler's oom_score_adj_min %d", *oom, min)
		oom = &min
	} else if oom != nil && *oom > 1000 {
		o.refuse("process.oomScoreAdj: %d above 1000", *oom)
	}
	if why := badCgroupsPath(l.CgroupsPath); why != "" {
		o.refuse("linux.cgroupsPath %q: %s", l.CgroupsPath, why)
	}
	write, err := o.finish(w, &c, w.cfg.overCeiling())
	if err != nil {
		return c, err
	}
	oomText := "unset"
	if p.OOMScoreAdj != nil {
		oomText = fmt.Sprint(*p.OOMScoreAdj)
	}
	c.Requested = fmt.Sprintf("%d rlimits, oomScoreAdj %s, cgroupsPath %q", len(p.Rlimits), oomText, l.CgroupsPath)
	if write {
		p.OOMScoreAdj = oom
	}
	if oom != nil {
		oomText = fmt.Sprint(*oom)
	}
	c.Effective = fmt.Sprintf("rlimits as requested (known types), oomScoreAdj %s, cgroupsPath %q", oomText, l.CgroupsPath)
	return c, nil
}

// badCgroupsPath says why cgroupsPath p is not a container's own cgroup,
// or "". Empty lets the runtime choose. The systemd driver's form is
// "slice:prefix:name"; the cgroupfs form is a path of at least two
// components (containerd's /<namespace>/<id>, kubelet's
// /kubepods/<qos>/pod<uid>/<id>), relative to the runtime's own cgroup
// when it does not start with '/'.
func badCgroupsPath(p string) string {
	if p == "" {
		return ""
	}
	if parts := strings.Split(p, ":"); len(parts) == 3 {
		switch {
		case parts[2] == "":
			return "systemd form without a unit name"
		case slices.Contains(hostSlices, parts[0]) || parts[0] == "":
			return fmt.Sprintf("systemd slice %q is not a container's", parts[0])
		case strings.ContainsAny(p, "/"):
			return "systemd form with '/'"
		}
		return ""
	}
	if strings.Contains(p, ":") {
		return "neither a path nor the systemd form slice:prefix:name"
	}
	clean := path.Clean("/" + p)
	if clean != "/"+strings.TrimPrefix(p, "/") || strings.Contains(p, "..") {
		return "not a clean path"
	}
	parts := strings.Split(strings.TrimPrefix(clean, "/"), "/")
	if len(parts) < 2 {
		return "a top-level cgroup is shared, not a container's own"
	}
	if slices.Contains(hostSlices, parts[0]) {
		return fmt.Sprintf("under %q, the host services' cgroup", parts[0])
	}
	return ""
}
