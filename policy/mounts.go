package policy

import (
	"fmt"
	"path"
	"slices"
	"strings"

	"github.com/opencontainers/runtime-spec/specs-go"
)

// sharedPropagation are the mount options through which mounts travel
// between the host and the container (Kubernetes' Bidirectional uses
// rshared, HostToContainer rslave).
var sharedPropagation = []string{"shared", "rshared", "slave", "rslave"}

// mountsControl governs bind mounts by their class (ClassifyMount): kubelet
// pod volumes, containerd's CRI files and image volumes pass; a host path
// passes only when it is under a policy.host_paths prefix and not on the
// fixed deny list, and is then made read-only when host_paths_read_only is
// set. A host path the handler does not allow is refused, whatever
// over_ceiling says: dropping the mount would run the container without
// data it expects. File systems the floor does not recognise are refused.
type mountsControl struct{}

func (mountsControl) enforce(w *work) (Control, error) {
	h := w.s.Host
	c := Control{Name: ControlMounts, EnforcedBy: w.s.Backend}
	var o, clampRO outcome
	mounts := w.spec.Mounts
	copied := false
	count := map[MountKind]int{}
	for i, m := range mounts {
		kind := ClassifyMount(m, h)
		count[kind]++
		field := fmt.Sprintf("mounts[%d] (%s -> source %s)", i, m.Destination, m.Source)
		switch kind {
		case MountFilesystem:
			o.refuse("%s: file system type %q is not one the floor recognises", field, m.Type)
			continue
		case MountPseudo, MountServiceAccountToken:
			continue
		}
		if prop := propagation(m.Options); prop != "" && !w.cfg.HostPropagation {
			o.refuse("%s: %s propagation from the host not allowed by the handler (host_propagation)", field, prop)
		}
		if kind != MountHostPath {
			continue
		}
		if refuseHostPath(&o, field, m.Source, h, w.cfg.HostPaths) {
			continue
		}
		if real, ok := w.s.ResolvedSources[m.Source]; ok && real != m.Source &&
			refuseHostPath(&o, field+" (resolves to "+real+")", real, h, w.cfg.HostPaths) {
			continue
		}
		if w.cfg.hostPathsReadOnly() && !hasOpt(m.Options, "ro") {
			if !copied {
				mounts, copied = slices.Clone(mounts), true
			}
			mounts[i].Options = setReadOnly(m.Options)
			clampRO.over("-> ro", "%s: host path read-write (host_paths_read_only)", field)
		}
	}
	if p := w.spec.Linux.RootfsPropagation; (p == "shared" || p == "rshared" || p == "slave" || p == "rslave") && !w.cfg.HostPropagation {
		o.refuse("linux.rootfsPropagation: %s propagation not allowed by the handler (host_propagation)", p)
	}
	if _, err := o.finish(w, &c, OverCeilingRefuse); err != nil {
		return c, err
	}
	write, err := clampRO.finish(w, &c, w.cfg.overCeiling())
	if err != nil {
		return c, err
	}
	if write {
		w.spec.Mounts = mounts
	}
	var parts []string
	for _, k := range []MountKind{MountPseudo, MountKubeletVolume, MountServiceAccountToken, MountContainerd, MountImageVolume, MountHostPath} {
		if count[k] > 0 {
			parts = append(parts, fmt.Sprintf("%d %s", count[k], k))
		}
	}
	c.Requested = strings.Join(parts, ", ")
	if c.Requested == "" {
		c.Requested = "none"
	}
	c.Effective = "host paths: "
	switch {
	case len(w.cfg.HostPaths) == 0:
		c.Effective += "none allowed"
	case w.cfg.hostPathsReadOnly():
		c.Effective += "under " + strings.Join(w.cfg.HostPaths, ",") + ", read-only"
	default:
		c.Effective += "under " + strings.Join(w.cfg.HostPaths, ",")
	}
	return c, nil
}

// refuseHostPath records why host path p may not be mounted, if it may
// not: the fixed deny list first, then the handler's allow list.
func refuseHostPath(o *outcome, field, p string, h HostDirs, allowed []string) bool {
	if why := deniedHostPath(p, h); why != "" {
		o.refuse("%s: %s", field, why)
		return true
	}
	if !allowedHostPath(p, allowed) {
		o.refuse("%s: host path %q not allowed by the handler (host_paths)", field, p)
		return true
	}
	return false
}

func propagation(opts []string) string {
	for _, o := range opts {
		if slices.Contains(sharedPropagation, o) {
			return o
		}
	}
	return ""
}

// allowedHostPath: p is one of the prefixes or below one, by path
// components.
func allowedHostPath(p string, prefixes []string) bool {
	for _, a := range prefixes {
		if within(path.Clean(p), a) {
			return true
		}
	}
	return false
}

// tokenControl applies policy.service_account_token to the mounts that
// ClassifyMount finds to be a service-account token.
type tokenControl struct{}

func (tokenControl) enforce(w *work) (Control, error) {
	c := Control{Name: ControlToken, EnforcedBy: "palisade shim (spec)", Requested: "no token mounted"}
	mode := w.cfg.serviceAccountToken()
	var found []int
	for i, m := range w.spec.Mounts {
		if ClassifyMount(m, w.s.Host) == MountServiceAccountToken {
			found = append(found, i)
		}
	}
	if len(found) > 0 {
		c.Requested = fmt.Sprintf("%d token mount(s) at %s", len(found), w.spec.Mounts[found[0]].Destination)
	}
	c.Effective = c.Requested
	if len(found) == 0 || mode == TokenAllow {
		if mode != TokenAllow {
			c.Effective = "no token mounted (handler: " + mode + ")"
		}
		return c, nil
	}
	var o outcome
	for _, i := range found {
		m := w.spec.Mounts[i]
		if mode == TokenRefuse {
			o.refuse("mounts[%d] (%s -> source %s): service-account token not allowed by the handler (service_account_token = refuse)", i, m.Destination, m.Source)
		} else {
			o.over("removed", "mounts[%d] (%s -> source %s): service-account token (service_account_token = strip)", i, m.Destination, m.Source)
		}
	}
	write, err := o.finish(w, &c, OverCeilingClamp)
	if err != nil {
		return c, err
	}
	if write {
		kept := make([]specs.Mount, 0, len(w.spec.Mounts)-len(found))
		for i, m := range w.spec.Mounts {
			if !slices.Contains(found, i) {
				kept = append(kept, m)
			}
		}
		w.spec.Mounts = kept
		c.Effective = "token stripped (handler: strip)"
	}
	return c, nil
}
