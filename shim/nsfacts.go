package shim

import (
	"fmt"
	"path/filepath"

	specs "github.com/opencontainers/runtime-spec/specs-go"
	"golang.org/x/sys/unix"

	"github.com/palisade-runtime/palisade/policy"
)

// nsID identifies a namespace: the (device, inode) of its nsfs file.
type nsID struct{ dev, ino uint64 }

// nsFiles are the /proc/self/ns entries of each spec namespace type.
var nsFiles = map[specs.LinuxNamespaceType]string{
	specs.PIDNamespace: "pid", specs.IPCNamespace: "ipc", specs.UTSNamespace: "uts",
	specs.MountNamespace: "mnt", specs.NetworkNamespace: "net", specs.UserNamespace: "user",
	specs.CgroupNamespace: "cgroup", specs.TimeNamespace: "time",
}

// statNS stats a namespace path, following the magic /proc links as
// setns(2) does.
func statNS(path string) (nsID, error) {
	var st unix.Stat_t
	if err := unix.Stat(path, &st); err != nil {
		return nsID{}, err
	}
	return nsID{dev: uint64(st.Dev), ino: st.Ino}, nil
}

// selfNamespaces looks up the shim's own namespace of a type. The shim
// runs in the namespaces containerd runs in, which are the host's as far
// as a container is concerned.
func selfNamespaces(t specs.LinuxNamespaceType) (nsID, error) {
	return statNS(filepath.Join("/proc/self/ns", nsFiles[t]))
}

// containerFacts completes the handler's Support with what the host says
// about this container: whether each namespace path in the spec is the
// host's (the edge compares identities, policy stays pure), and
// containerd's state directory, from the bundle's place in it.
func containerFacts(spec *specs.Spec, bundle string, s policy.Support, self func(specs.LinuxNamespaceType) (nsID, error)) policy.Support {
	s.Host.ContainerdState = stateDirOf(bundle)
	for _, m := range spec.Mounts {
		if !policy.IsBindMount(m) || !filepath.IsAbs(m.Source) {
			continue
		}
		// The runtime follows symlinks in the source when it mounts; the
		// floor must judge the path that is mounted, not its name.
		if real, err := filepath.EvalSymlinks(m.Source); err == nil && real != m.Source {
			if s.ResolvedSources == nil {
				s.ResolvedSources = map[string]string{}
			}
			s.ResolvedSources[m.Source] = real
		}
	}
	if spec.Linux == nil {
		return s
	}
	for _, ns := range spec.Linux.Namespaces {
		if ns.Path == "" {
			continue
		}
		if s.NamespacePaths == nil {
			s.NamespacePaths = map[string]policy.NamespacePath{}
		}
		s.NamespacePaths[ns.Path] = resolveNamespace(ns, self)
	}
	return s
}

func resolveNamespace(ns specs.LinuxNamespace, self func(specs.LinuxNamespaceType) (nsID, error)) policy.NamespacePath {
	if _, ok := nsFiles[ns.Type]; !ok {
		return policy.NamespacePath{Err: fmt.Sprintf("unknown namespace type %q", ns.Type)}
	}
	id, err := statNS(ns.Path)
	if err != nil {
		return policy.NamespacePath{Err: err.Error()}
	}
	host, err := self(ns.Type)
	if err != nil {
		return policy.NamespacePath{Err: fmt.Sprintf("the shim's own %s namespace: %v", ns.Type, err)}
	}
	return policy.NamespacePath{Host: id == host}
}

// stateDirOf derives containerd's state directory from a bundle path,
// <state>/io.containerd.runtime.v2.task/<namespace>/<id>, or "" when the
// bundle is elsewhere (policy then uses the default /run/containerd).
func stateDirOf(bundle string) string {
	ns := filepath.Dir(filepath.Clean(bundle))
	task := filepath.Dir(ns)
	if filepath.Base(task) != "io.containerd.runtime.v2.task" {
		return ""
	}
	return filepath.Dir(task)
}
