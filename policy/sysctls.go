package policy

import (
	"fmt"
	"maps"
	"slices"
	"strings"
)

// safeSysctls is Kubernetes' safe set, as kubelet v1.37.2 has it
// (pkg/kubelet/sysctl/safe_sysctls.go): namespaced and isolated from other
// pods, allowed for every pod. The default when a handler has no sysctls
// key. kubelet drops some of them on kernels too old to namespace them; the
// floor need not: such a sysctl is missing from a new network namespace's
// /proc/sys, and setting it fails the container's start.
var safeSysctls = []string{
	"kernel.shm_rmid_forced",
	"net.ipv4.ip_local_port_range",
	"net.ipv4.tcp_syncookies",
	"net.ipv4.ping_group_range",
	"net.ipv4.ip_unprivileged_port_start",
	"net.ipv4.ip_local_reserved_ports",
	"net.ipv4.tcp_keepalive_time",
	"net.ipv4.tcp_fin_timeout",
	"net.ipv4.tcp_keepalive_intvl",
	"net.ipv4.tcp_keepalive_probes",
	"net.ipv4.tcp_rmem",
	"net.ipv4.tcp_wmem",
	"net.ipv4.tcp_slow_start_after_idle",
	"net.ipv4.tcp_notsent_lowat",
}

// namespacedSysctl reports whether the kernel keeps sysctl n per namespace
// (the list runc checks before it writes one), and which namespace: a
// sysctl of a namespace the container shares with the host is the host's.
func namespacedSysctl(n string) (string, bool) {
	switch {
	case slices.Contains([]string{"kernel.msgmax", "kernel.msgmnb", "kernel.msgmni", "kernel.sem",
		"kernel.shmall", "kernel.shmmax", "kernel.shmmni", "kernel.shm_rmid_forced"}, n),
		strings.HasPrefix(n, "fs.mqueue."):
		return "ipc", true
	case n == "kernel.hostname" || n == "kernel.domainname":
		return "uts", true
	case strings.HasPrefix(n, "net."):
		return "network", true
	}
	return "", false
}

// checkSysctlName validates an entry of policy.sysctls: a namespaced
// sysctl, or a prefix of them ending in ".*" (e.g. "net.ipv4.*").
func checkSysctlName(n string) error {
	base := strings.TrimSuffix(n, "*")
	if n == "" || strings.ContainsAny(base, "*/ \t") || strings.Contains(n, "..") {
		return fmt.Errorf("%q is not a sysctl name (dotted, optionally ending in \".*\")", n)
	}
	if _, ok := namespacedSysctl(base); !ok {
		return fmt.Errorf("%q is not a namespaced sysctl: it would be the host's", n)
	}
	return nil
}

// sysctlAllowed matches n against the allow list.
func sysctlAllowed(n string, allow []string) bool {
	for _, a := range allow {
		if a == n || strings.HasSuffix(a, "*") && strings.HasPrefix(n, strings.TrimSuffix(a, "*")) {
			return true
		}
	}
	return false
}

// sysctlsControl keeps linux.sysctl to the allow list, and to sysctls of
// namespaces the container does not share with the host.
type sysctlsControl struct{}

func (sysctlsControl) enforce(w *work) (Control, error) {
	l := w.spec.Linux
	c := Control{Name: ControlSysctls, EnforcedBy: w.s.Backend}
	allow := w.cfg.Sysctls
	if allow == nil {
		allow = safeSysctls
	}
	var o outcome
	kept := map[string]string{}
	names := slices.Sorted(maps.Keys(l.Sysctl))
	for _, raw := range names {
		// runc accepts slashes (net/ipv4/...); compare in dotted form.
		n := strings.ReplaceAll(raw, "/", ".")
		ns, ok := namespacedSysctl(n)
		switch {
		case !ok:
			o.over("removed", "linux.sysctl[%s]: not namespaced, it would be the host's", raw)
		case slices.Contains(w.hostNS, ns):
			o.over("removed", "linux.sysctl[%s]: the container shares the host's %s namespace", raw, ns)
		case !sysctlAllowed(n, allow):
			o.over("removed", "linux.sysctl[%s]: not in the handler's allowed sysctls", raw)
		default:
			kept[raw] = l.Sysctl[raw]
		}
	}
	write, err := o.finish(w, &c, w.cfg.overCeiling())
	if err != nil {
		return c, err
	}
	c.Requested = strings.Join(names, ",")
	if c.Requested == "" {
		c.Requested = "none"
	}
	what := "the handler's list"
	if w.cfg.Sysctls == nil {
		what = "Kubernetes' safe set"
	}
	c.Effective = fmt.Sprintf("%d sysctls, namespaced and in %s", len(kept), what)
	if write {
		l.Sysctl = kept
	} else if len(o.changed) > 0 {
		c.Effective = "as requested (complain mode)"
	}
	return c, nil
}
