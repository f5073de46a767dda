package policy

import (
	"path"
	"slices"
	"strings"

	"github.com/opencontainers/runtime-spec/specs-go"
)

// MountKind is what a mount in a spec is, from the host's side.
type MountKind string

// The kinds ClassifyMount returns.
const (
	// MountPseudo: a file system the runtime makes (proc, sysfs, tmpfs,
	// devpts, mqueue, cgroup), not a bind mount of host files.
	MountPseudo MountKind = "pseudo file system"
	// MountKubeletVolume: a pod volume kubelet prepared under
	// <kubelet_root_dir>/pods/<uid>/ (volumes, volume-subpaths, etc-hosts,
	// the termination log under containers/).
	MountKubeletVolume MountKind = "kubelet pod volume"
	// MountServiceAccountToken: the projected service-account token volume.
	MountServiceAccountToken MountKind = "service-account token"
	// MountContainerd: containerd's CRI files for the pod (hostname,
	// resolv.conf, hosts, shm).
	MountContainerd MountKind = "containerd CRI sandbox file"
	// MountImageVolume: a volume containerd made for an image's VOLUME, or
	// a Kubernetes image volume (an image mounted read-only).
	MountImageVolume MountKind = "image volume"
	// MountHostPath: anything else bind-mounted: a path of the host.
	MountHostPath MountKind = "host path"
	// MountFilesystem: another file system (a block device, NFS, overlay):
	// the floor does not recognise it.
	MountFilesystem MountKind = "other file system"
)

// Default directories when HostDirs leaves them empty.
const (
	DefaultKubeletRoot     = "/var/lib/kubelet"
	DefaultContainerdRoot  = "/var/lib/containerd"
	DefaultContainerdState = "/run/containerd"
	// ServiceAccountTokenDir is where kubelet mounts the token.
	ServiceAccountTokenDir = "/var/run/secrets/kubernetes.io/serviceaccount"
	criPlugin              = "io.containerd.grpc.v1.cri"
)

// pseudoFilesystems are the types a runtime creates itself.
var pseudoFilesystems = []string{"proc", "sysfs", "tmpfs", "devpts", "mqueue", "cgroup", "cgroup2", "shm"}

func (h HostDirs) withDefaults() HostDirs {
	if h.KubeletRoot == "" {
		h.KubeletRoot = DefaultKubeletRoot
	}
	if h.ContainerdRoot == "" {
		h.ContainerdRoot = DefaultContainerdRoot
	}
	if h.ContainerdState == "" {
		h.ContainerdState = DefaultContainerdState
	}
	return h
}

// IsBindMount: runc and runsc treat a mount as a bind mount when its type
// is "bind" or its options say bind or rbind.
func IsBindMount(m specs.Mount) bool {
	return m.Type == "bind" || slices.Contains(m.Options, "bind") || slices.Contains(m.Options, "rbind")
}

// ClassifyMount says what m is. It is pure: the source is taken as
// written (kubelet and containerd write resolved paths). Both the mounts
// and the service-account token controls use it.
func ClassifyMount(m specs.Mount, h HostDirs) MountKind {
	h = h.withDefaults()
	if !IsBindMount(m) {
		if slices.Contains(pseudoFilesystems, m.Type) {
			return MountPseudo
		}
		return MountFilesystem
	}
	src := m.Source
	if !path.IsAbs(src) || path.Clean(src) != src {
		return MountHostPath // not what kubelet or containerd write
	}
	if rest, ok := under(src, path.Join(h.KubeletRoot, "pods")); ok {
		parts := strings.Split(rest, "/")
		// <uid>/volumes/<plugin>/<name>..., <uid>/volume-subpaths/...,
		// <uid>/etc-hosts, <uid>/containers/<name>/<hex>.
		if len(parts) >= 2 && parts[0] != "" {
			switch {
			case parts[1] == "etc-hosts" && len(parts) == 2:
				return MountKubeletVolume
			case parts[1] == "volumes" && len(parts) >= 4:
				if parts[2] == "kubernetes.io~projected" && strings.HasPrefix(parts[3], "kube-api-access-") ||
					m.Destination == ServiceAccountTokenDir {
					return MountServiceAccountToken
				}
				return MountKubeletVolume
			case parts[1] == "volume-subpaths" && len(parts) >= 3, parts[1] == "containers" && len(parts) >= 4:
				return MountKubeletVolume
			}
		}
		return MountHostPath
	}
	if rest, ok := under(src, path.Join(h.ContainerdRoot, criPlugin, "sandboxes")); ok {
		if parts := strings.Split(rest, "/"); len(parts) == 2 && slices.Contains([]string{"hostname", "resolv.conf", "hosts"}, parts[1]) {
			return MountContainerd
		}
		return MountHostPath
	}
	if h.CRISandbox != "" && criSandboxFile(src, h.CRISandbox) {
		return MountContainerd
	}
	// Kubernetes image volumes (an OCI image mounted as a volume): CRI
	// mounts the image's snapshot at <state>/io.containerd.grpc.v1.cri/
	// image-volumes/<sandbox>/<image>[/subPath].
	if rest, ok := under(src, path.Join(h.ContainerdState, criPlugin, "image-volumes")); ok {
		if parts := strings.Split(rest, "/"); len(parts) >= 2 {
			return MountImageVolume
		}
		return MountHostPath
	}
	if rest, ok := under(src, path.Join(h.ContainerdState, criPlugin, "sandboxes")); ok {
		if parts := strings.Split(rest, "/"); len(parts) == 2 && parts[1] == "shm" {
			return MountContainerd
		}
		return MountHostPath
	}
	if rest, ok := under(src, path.Join(h.ContainerdRoot, criPlugin, "containers")); ok {
		if parts := strings.Split(rest, "/"); len(parts) >= 3 && parts[1] == "volumes" {
			return MountImageVolume
		}
	}
	return MountHostPath
}

// criSandboxFile: src is <some root>/io.containerd.grpc.v1.cri/sandboxes/<id>/
// hostname, resolv.conf or hosts of the sandbox id.
func criSandboxFile(src, id string) bool {
	dir, file := path.Split(src)
	if file != "hostname" && file != "resolv.conf" && file != "hosts" || strings.ContainsAny(id, "/.") {
		return false
	}
	return strings.HasSuffix(dir, "/"+criPlugin+"/sandboxes/"+id+"/")
}

// CRISandboxAnnotation is where CRI writes a container's pod sandbox id.
const CRISandboxAnnotation = "io.kubernetes.cri.sandbox-id"

// under reports whether p is strictly below dir, path-boundary aware
// (/data/x is under /data, /database is not), and the rest of p.
func under(p, dir string) (string, bool) {
	if dir == "/" {
		return strings.TrimPrefix(p, "/"), p != "/"
	}
	if !strings.HasPrefix(p, dir+"/") {
		return "", false
	}
	return p[len(dir)+1:], true
}

// within: p is dir or under it.
func within(p, dir string) bool {
	_, ok := under(p, dir)
	return ok || p == dir
}

// fixedDenied are host paths no handler may allow as bind-mount sources:
// the runtimes' sockets and state, and the kernel's and devices' views.
// The kubelet root and containerd's root and state come from HostDirs.
var fixedDenied = []string{"/proc", "/sys", "/dev",
	"/run/containerd", "/var/run/containerd", "/run/docker.sock", "/var/run/docker.sock",
	"/var/lib/docker", "/run/docker", "/var/run/docker", "/run/crio", "/var/run/crio", "/var/lib/containers",
	"/run/cri-dockerd.sock", "/var/run/cri-dockerd.sock", "/run/dockershim.sock", "/var/run/dockershim.sock",
	"/run/palisade", "/etc/palisade"}

// deniedHostPath says why host path p may never be mounted, or "": it is
// on the fixed deny list, under an entry, or above one (mounting /var
// would mount /var/lib/containerd too).
func deniedHostPath(p string, h HostDirs) string {
	h = h.withDefaults()
	if p == "/" {
		return `host path "/" is on the fixed deny list`
	}
	deny := append(slices.Clone(fixedDenied), h.KubeletRoot, h.ContainerdRoot, h.ContainerdState)
	for _, d := range deny {
		switch {
		case within(p, d):
			return "host path " + quote(p) + " is on the fixed deny list (" + d + ")"
		case within(d, p):
			return "host path " + quote(p) + " holds " + d + ", on the fixed deny list"
		}
	}
	return ""
}

func quote(s string) string { return `"` + s + `"` }
