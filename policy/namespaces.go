package policy

import (
	"slices"
	"strings"

	"github.com/opencontainers/runtime-spec/specs-go"
)

// shareableNamespaces are the host namespaces a handler may allow
// (host_namespaces), in the names Kubernetes uses (hostNetwork, hostPID,
// hostIPC) plus uts. The host's mount namespace is never shared.
var shareableNamespaces = []string{"network", "pid", "ipc", "uts"}

// requiredNamespaces must be new, or joined by a path that is not the
// host's: without an entry the container shares the host's.
var requiredNamespaces = []specs.LinuxNamespaceType{specs.PIDNamespace, specs.IPCNamespace,
	specs.UTSNamespace, specs.MountNamespace, specs.NetworkNamespace}

// knownNamespaces are the types the floor recognises; any other is refused.
var knownNamespaces = append(slices.Clone(requiredNamespaces), specs.UserNamespace,
	specs.CgroupNamespace, specs.TimeNamespace)

// namespacesControl refuses a spec that shares a host namespace the handler
// does not allow: a required type without an entry, or an entry whose path
// the edge found to be the host's. Clamping would silently change what the
// container is (a hostNetwork pod would get no network), so an over-floor
// request is always refused, whatever over_ceiling says.
type namespacesControl struct{}

func (namespacesControl) enforce(w *work) (Control, error) {
	l := w.spec.Linux
	c := Control{Name: ControlNamespaces, EnforcedBy: w.s.Backend}
	var o outcome
	var req, eff []string
	idx := map[specs.LinuxNamespaceType]int{}
	for i, ns := range l.Namespaces {
		if !slices.Contains(knownNamespaces, ns.Type) {
			o.refuse("linux.namespaces[%d]: unknown namespace type %q", i, ns.Type)
			continue
		}
		if _, dup := idx[ns.Type]; dup {
			o.refuse("linux.namespaces[%d]: namespace %q listed twice", i, ns.Type)
			continue
		}
		idx[ns.Type] = i
		if ns.Path == "" {
			req = append(req, string(ns.Type)+"=new")
			continue
		}
		req = append(req, string(ns.Type)+"="+ns.Path)
		fact, ok := w.s.NamespacePaths[ns.Path]
		switch {
		case !ok:
			o.refuse("linux.namespaces[%d] (%s): path %q was not resolved by the shim", i, ns.Type, ns.Path)
		case fact.Err != "":
			o.refuse("linux.namespaces[%d] (%s): path %q: %s", i, ns.Type, ns.Path, fact.Err)
		case fact.Host:
			w.hostNamespace(&o, ns.Type, "linux.namespaces["+kubeNamespace(ns.Type)+"]", "joins the host's namespace at "+ns.Path)
		}
	}
	for _, t := range requiredNamespaces {
		if _, ok := idx[t]; !ok {
			w.hostNamespace(&o, t, "linux.namespaces["+kubeNamespace(t)+"]", "no new namespace")
		}
	}
	if _, err := o.finish(w, &c, OverCeilingRefuse); err != nil {
		return c, err
	}
	for _, t := range requiredNamespaces {
		shared := slices.Contains(w.hostNS, kubeNamespace(t))
		switch {
		case shared:
			eff = append(eff, kubeNamespace(t)+"=host")
		case slices.Contains(w.s.IsolatedNamespaces, kubeNamespace(t)):
			eff = append(eff, kubeNamespace(t)+"=backend's own")
		default:
			eff = append(eff, kubeNamespace(t)+"=container's")
		}
	}
	c.Requested = strings.Join(req, " ")
	if c.Requested == "" {
		c.Requested = "none"
	}
	c.Effective = strings.Join(eff, " ")
	if slices.Contains(w.hostNS, "network") && w.s.Network != "" {
		c.Effective += "; network stack: " + w.s.Network
	}
	return c, nil
}

// hostNamespace records that the container would share the host's
// namespace of type t: allowed by host_namespaces, kept by the backend's
// own implementation, or refused.
func (w *work) hostNamespace(o *outcome, t specs.LinuxNamespaceType, field, what string) {
	name := kubeNamespace(t)
	switch {
	case slices.Contains(w.s.IsolatedNamespaces, name):
		// gVisor: the sentry's own namespace, whatever the host's is.
	case slices.Contains(w.cfg.HostNamespaces, name) && t != specs.MountNamespace:
		w.hostNS = append(w.hostNS, name)
	default:
		o.refuse("%s: host %s namespace (%s) not allowed by the handler (host_namespaces)", field, name, what)
	}
}

// kubeNamespace names a namespace type as host_namespaces does.
func kubeNamespace(t specs.LinuxNamespaceType) string {
	if t == specs.NetworkNamespace {
		return "network"
	}
	return string(t)
}
