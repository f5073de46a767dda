package policy

import (
	"path"
	"strings"
	"testing"

	"github.com/opencontainers/runtime-spec/specs-go"
)

// TestClassifyMount: the mounts kubelet and containerd 2.4 really write for
// a pod (paths as in a kubelet pod's config.json), and what a host path
// looks like next to them.
func TestClassifyMount(t *testing.T) {
	h := HostDirs{KubeletRoot: "/var/lib/kubelet", ContainerdRoot: "/var/lib/containerd", ContainerdState: "/run/containerd"}
	const pod = "/var/lib/kubelet/pods/6f0f3a7e-2b7c-4d0e-9a51-0c3f0e3d9b11"
	const sb = "4c7f2b9e8d1a"
	bind := []string{"rbind", "rprivate", "rw"}
	cases := []struct {
		m    specs.Mount
		want MountKind
	}{
		{specs.Mount{Destination: "/proc", Type: "proc", Source: "proc"}, MountPseudo},
		{specs.Mount{Destination: "/sys", Type: "sysfs", Source: "sysfs", Options: []string{"nosuid", "ro"}}, MountPseudo},
		{specs.Mount{Destination: "/dev", Type: "tmpfs", Source: "tmpfs"}, MountPseudo},
		{specs.Mount{Destination: "/dev/pts", Type: "devpts", Source: "devpts"}, MountPseudo},
		{specs.Mount{Destination: "/dev/mqueue", Type: "mqueue", Source: "mqueue"}, MountPseudo},
		{specs.Mount{Destination: "/sys/fs/cgroup", Type: "cgroup", Source: "cgroup"}, MountPseudo},
		{specs.Mount{Destination: "/sys/fs/cgroup", Type: "cgroup2", Source: "cgroup"}, MountPseudo},
		// kubelet
		{specs.Mount{Destination: "/etc/hosts", Type: "bind", Source: pod + "/etc-hosts", Options: bind}, MountKubeletVolume},
		{specs.Mount{Destination: "/dev/termination-log", Type: "bind", Source: pod + "/containers/app/9b1f0c2e", Options: bind}, MountKubeletVolume},
		{specs.Mount{Destination: ServiceAccountTokenDir, Type: "bind", Source: pod + "/volumes/kubernetes.io~projected/kube-api-access-7xk2q",
			Options: []string{"rbind", "rprivate", "ro"}}, MountServiceAccountToken},
		{specs.Mount{Destination: "/etc/cfg", Type: "bind", Source: pod + "/volumes/kubernetes.io~projected/config", Options: bind}, MountKubeletVolume},
		{specs.Mount{Destination: "/cache", Type: "bind", Source: pod + "/volumes/kubernetes.io~empty-dir/cache", Options: bind}, MountKubeletVolume},
		{specs.Mount{Destination: "/etc/app", Type: "bind", Source: pod + "/volumes/kubernetes.io~configmap/app", Options: bind}, MountKubeletVolume},
		{specs.Mount{Destination: "/s", Type: "bind", Source: pod + "/volume-subpaths/data/app/0", Options: bind}, MountKubeletVolume},
		// A legacy secret token at the token's place is the token too.
		{specs.Mount{Destination: ServiceAccountTokenDir, Type: "bind", Source: pod + "/volumes/kubernetes.io~secret/default-token-abcde", Options: bind}, MountServiceAccountToken},
		// containerd's CRI files
		{specs.Mount{Destination: "/etc/hostname", Type: "bind", Source: "/var/lib/containerd/io.containerd.grpc.v1.cri/sandboxes/" + sb + "/hostname", Options: bind}, MountContainerd},
		{specs.Mount{Destination: "/etc/resolv.conf", Type: "bind", Source: "/var/lib/containerd/io.containerd.grpc.v1.cri/sandboxes/" + sb + "/resolv.conf", Options: bind}, MountContainerd},
		{specs.Mount{Destination: "/dev/shm", Type: "bind", Source: "/run/containerd/io.containerd.grpc.v1.cri/sandboxes/" + sb + "/shm", Options: bind}, MountContainerd},
		{specs.Mount{Destination: "/data", Type: "bind", Source: "/var/lib/containerd/io.containerd.grpc.v1.cri/containers/" + sb + "/volumes/0a1b", Options: bind}, MountImageVolume},
		{specs.Mount{Destination: "/mnt/image-volume", Type: "bind", Source: "/run/containerd/io.containerd.grpc.v1.cri/image-volumes/" + sb + "/9f8e7d", Options: []string{"rbind", "ro"}}, MountImageVolume},
		{specs.Mount{Destination: "/mnt/image-volume", Type: "bind", Source: "/run/containerd/io.containerd.grpc.v1.cri/image-volumes/" + sb + "/9f8e7d/etc", Options: []string{"rbind", "ro"}}, MountImageVolume},
		{specs.Mount{Destination: "/iv", Type: "bind", Source: "/run/containerd/io.containerd.grpc.v1.cri/image-volumes/" + sb, Options: bind}, MountHostPath},
		// host paths, including look-alikes
		{specs.Mount{Destination: "/host", Type: "bind", Source: "/", Options: bind}, MountHostPath},
		{specs.Mount{Destination: "/data", Type: "none", Source: "/data", Options: []string{"bind"}}, MountHostPath},
		{specs.Mount{Destination: "/k", Type: "bind", Source: "/var/lib/kubelet", Options: bind}, MountHostPath},
		{specs.Mount{Destination: "/k", Type: "bind", Source: "/var/lib/kubelet/pods", Options: bind}, MountHostPath},
		{specs.Mount{Destination: "/k", Type: "bind", Source: pod, Options: bind}, MountHostPath},
		{specs.Mount{Destination: "/k", Type: "bind", Source: pod + "/volumes", Options: bind}, MountHostPath},
		{specs.Mount{Destination: "/k", Type: "bind", Source: pod + "/../../pki", Options: bind}, MountHostPath},
		{specs.Mount{Destination: "/k", Type: "bind", Source: "/var/lib/kubeletx/pods/u/etc-hosts", Options: bind}, MountHostPath},
		{specs.Mount{Destination: "/c", Type: "bind", Source: "/var/lib/containerd/io.containerd.grpc.v1.cri/sandboxes/" + sb, Options: bind}, MountHostPath},
		{specs.Mount{Destination: "/c", Type: "bind", Source: "/var/lib/containerd/io.containerd.content.v1.content", Options: bind}, MountHostPath},
		{specs.Mount{Destination: "/c", Type: "bind", Source: "/run/containerd/containerd.sock", Options: bind}, MountHostPath},
		{specs.Mount{Destination: "/r", Type: "bind", Source: "relative/path", Options: bind}, MountHostPath},
		// other file systems
		{specs.Mount{Destination: "/disk", Type: "ext4", Source: "/dev/sda1"}, MountFilesystem},
		{specs.Mount{Destination: "/nfs", Type: "nfs", Source: "server:/export"}, MountFilesystem},
	}
	for _, c := range cases {
		if got := ClassifyMount(c.m, h); got != c.want {
			t.Errorf("%s (%s from %s): got %q, want %q", c.m.Destination, c.m.Type, c.m.Source, got, c.want)
		}
	}
	// Another kubelet root: the default's paths become host paths.
	other := HostDirs{KubeletRoot: "/data/kubelet"}
	if got := ClassifyMount(cases[7].m, other); got != MountHostPath {
		t.Errorf("with kubelet_root_dir /data/kubelet, %s: got %q, want a host path", cases[7].m.Source, got)
	}
	m := specs.Mount{Destination: "/etc/hosts", Type: "bind", Source: "/data/kubelet/pods/u1/etc-hosts", Options: bind}
	if got := ClassifyMount(m, other); got != MountKubeletVolume {
		t.Errorf("with kubelet_root_dir /data/kubelet, %s: got %q, want a kubelet volume", m.Source, got)
	}
}

// TestClassifyMountCRISandbox: with containerd's root elsewhere than
// containerd_root_dir says (a test harness, a custom --root), the pod's own
// sandbox files are still containerd's; another sandbox's are not.
func TestClassifyMountCRISandbox(t *testing.T) {
	const root = "/tmp/pal-it-1/root/io.containerd.grpc.v1.cri/sandboxes/"
	h := HostDirs{CRISandbox: "2235a6b6c754"}
	for src, want := range map[string]MountKind{
		root + "2235a6b6c754/resolv.conf": MountContainerd,
		root + "2235a6b6c754/hostname":    MountContainerd,
		root + "2235a6b6c754/hosts":       MountContainerd,
		root + "2235a6b6c754/secret":      MountHostPath,
		root + "0c8a886bb723/resolv.conf": MountHostPath,
		"/tmp/2235a6b6c754/resolv.conf":   MountHostPath,
	} {
		m := specs.Mount{Destination: "/etc/x", Type: "bind", Source: src, Options: []string{"rbind"}}
		if got := ClassifyMount(m, h); got != want {
			t.Errorf("%s: got %q, want %q", src, got, want)
		}
	}
	if got := ClassifyMount(specs.Mount{Type: "bind", Source: root + "x/resolv.conf"}, HostDirs{CRISandbox: "../x"}); got != MountHostPath {
		t.Errorf("a sandbox id with a path in it: got %q", got)
	}
}

func TestDeniedHostPath(t *testing.T) {
	h := HostDirs{}
	for _, p := range []string{"/", "/proc", "/proc/1/root", "/sys", "/dev", "/dev/sda", "/var/lib/kubelet", "/var/lib/kubelet/pki",
		"/var/lib/containerd", "/run/containerd/containerd.sock", "/var/run/docker.sock", "/var", "/run", "/var/lib", "/etc/palisade"} {
		if deniedHostPath(p, h) == "" {
			t.Errorf("%s: not denied", p)
		}
	}
	for _, p := range []string{"/data", "/srv/www", "/var/log/app", "/var/lib/kubeletx", "/etc/ssl/certs", "/home"} {
		if why := deniedHostPath(p, h); why != "" {
			t.Errorf("%s: denied: %s", p, why)
		}
	}
	if !allowedHostPath("/data/x", []string{"/data"}) || allowedHostPath("/database", []string{"/data"}) || !allowedHostPath("/data", []string{"/data"}) {
		t.Error("host_paths prefixes are not path-boundary aware")
	}
}

// FuzzClassifyMount: whatever the source, only a clean path below
// kubelet's pods directory is a pod volume or the token, and only a clean
// path in containerd's CRI directories (or the pod's own sandbox's) is
// containerd's; anything else bind-mounted is a host path.
func FuzzClassifyMount(f *testing.F) {
	for _, s := range []string{"/var/lib/kubelet/pods/u/etc-hosts", "/var/lib/kubelet/pods/u/volumes/kubernetes.io~projected/kube-api-access-x",
		"/var/lib/containerd/io.containerd.grpc.v1.cri/sandboxes/s/resolv.conf", "/run/containerd/io.containerd.grpc.v1.cri/sandboxes/s/shm",
		"/var/lib/kubelet/pods/../../../etc", "/x/io.containerd.grpc.v1.cri/sandboxes/sb/hosts", "/"} {
		f.Add(s, "bind", "/dst")
	}
	h := HostDirs{KubeletRoot: "/var/lib/kubelet", ContainerdRoot: "/var/lib/containerd", ContainerdState: "/run/containerd", CRISandbox: "sb"}
	f.Fuzz(func(t *testing.T, src, typ, dst string) {
		m := specs.Mount{Source: src, Type: typ, Destination: dst, Options: []string{"rbind"}}
		kind := ClassifyMount(m, h)
		clean := path.IsAbs(src) && path.Clean(src) == src
		switch kind {
		case MountKubeletVolume, MountServiceAccountToken:
			if !clean || !within(src, "/var/lib/kubelet/pods") {
				t.Fatalf("%q classified %q", src, kind)
			}
		case MountContainerd, MountImageVolume:
			if !clean || !within(src, "/var/lib/containerd/io.containerd.grpc.v1.cri") &&
				!within(src, "/run/containerd/io.containerd.grpc.v1.cri") && !strings.Contains(src, "/sandboxes/sb/") {
				t.Fatalf("%q classified %q", src, kind)
			}
		case MountPseudo, MountFilesystem:
			t.Fatalf("a bind mount of %q classified %q", src, kind)
		}
	})
}
