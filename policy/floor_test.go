package policy

import (
	"errors"
	"fmt"
	"math/rand/v2"
	"slices"
	"testing"

	"github.com/opencontainers/runtime-spec/specs-go"
)

// checkFloorPromise states the floor's promise once, for every whole-spec
// control: the enforced spec is never more privileged than the floor,
// whatever the request. It holds in enforce mode; complain mode promises
// nothing about the spec.
func checkFloorPromise(t *testing.T, out *specs.Spec, cfg Config, s Support) {
	t.Helper()
	if cfg.mode() != ModeEnforce {
		return
	}
	fail := func(format string, a ...any) { t.Helper(); t.Fatalf("floor promise broken: "+format, a...) }
	l := out.Linux
	if l == nil {
		fail("linux: missing after enforcement")
	}
	// privileged
	for _, p := range defaultMaskedPaths {
		if !slices.Contains(l.MaskedPaths, p) {
			fail("linux.maskedPaths lacks %s", p)
		}
	}
	for _, p := range defaultReadonlyPaths {
		if !slices.Contains(l.ReadonlyPaths, p) {
			fail("linux.readonlyPaths lacks %s", p)
		}
	}
	for i, m := range out.Mounts {
		if pseudoReadOnly(m.Type) && !hasOpt(m.Options, "ro") {
			fail("mounts[%d] %s %s is read-write", i, m.Type, m.Destination)
		}
	}
	// namespaces
	var hostNS []string
	for _, t := range requiredNamespaces {
		i := slices.IndexFunc(l.Namespaces, func(n specs.LinuxNamespace) bool { return n.Type == t })
		host := i < 0 || l.Namespaces[i].Path != "" && s.NamespacePaths[l.Namespaces[i].Path].Host
		if i >= 0 && l.Namespaces[i].Path != "" {
			if f, ok := s.NamespacePaths[l.Namespaces[i].Path]; !ok || f.Err != "" {
				fail("namespace %s joins unresolved path %q", t, l.Namespaces[i].Path)
			}
		}
		name := kubeNamespace(t)
		if host && !slices.Contains(s.IsolatedNamespaces, name) {
			if !slices.Contains(cfg.HostNamespaces, name) || t == specs.MountNamespace {
				fail("shares the host's %s namespace", name)
			}
			hostNS = append(hostNS, name)
		}
	}
	for _, n := range l.Namespaces {
		if !slices.Contains(knownNamespaces, n.Type) {
			fail("unknown namespace %q kept", n.Type)
		}
	}
	// devices
	for i, d := range l.Devices {
		if why := deviceNotAllowed(d, cfg.Devices); why != "" {
			fail("linux.devices[%d] %s kept: %s", i, d.Path, why)
		}
	}
	if l.Resources == nil || len(l.Resources.Devices) == 0 || l.Resources.Devices[0].Allow || !isAllDevices(l.Resources.Devices[0]) {
		fail("device cgroup does not start with deny all")
	}
	for i, r := range l.Resources.Devices {
		if r.Allow && !ruleIn(r, defaultDeviceRules()) && !ruleForDevice(r, l.Devices) {
			fail("linux.resources.devices[%d] allows %s", i, ruleString(r))
		}
	}
	// sysctls
	allow := cfg.Sysctls
	if allow == nil {
		allow = safeSysctls
	}
	for k := range l.Sysctl {
		n := dotted(k)
		ns, ok := namespacedSysctl(n)
		if !ok || !sysctlAllowed(n, allow) || slices.Contains(hostNS, ns) {
			fail("sysctl %s kept", k)
		}
	}
	// resources
	if o := out.Process.OOMScoreAdj; o != nil && (*o < cfg.oomScoreAdjMin() || *o > 1000) {
		fail("oomScoreAdj %d", *o)
	}
	for _, r := range out.Process.Rlimits {
		if !slices.Contains(rlimitTypes, r.Type) || r.Soft > r.Hard {
			fail("rlimit %+v kept", r)
		}
	}
	if why := badCgroupsPath(l.CgroupsPath); why != "" {
		fail("cgroupsPath %q: %s", l.CgroupsPath, why)
	}
	// mounts and the token
	s.Host.CRISandbox = out.Annotations[CRISandboxAnnotation]
	for i, m := range out.Mounts {
		switch kind := ClassifyMount(m, s.Host); kind {
		case MountFilesystem:
			fail("mounts[%d]: file system %q kept", i, m.Type)
		case MountServiceAccountToken:
			if cfg.serviceAccountToken() != TokenAllow {
				fail("mounts[%d]: token kept with service_account_token = %s", i, cfg.serviceAccountToken())
			}
		case MountHostPath:
			for _, p := range []string{m.Source, s.ResolvedSources[m.Source]} {
				if p != "" && (deniedHostPath(p, s.Host) != "" || !allowedHostPath(p, cfg.HostPaths)) {
					fail("mounts[%d]: host path %s (%s) kept", i, m.Source, p)
				}
			}
			if cfg.hostPathsReadOnly() && !hasOpt(m.Options, "ro") {
				fail("mounts[%d]: host path %s read-write", i, m.Source)
			}
		}
		if kind := ClassifyMount(m, s.Host); kind != MountPseudo && propagation(m.Options) != "" && !cfg.HostPropagation {
			fail("mounts[%d]: propagation %s kept", i, propagation(m.Options))
		}
	}
	// image
	if why := imagePromiseBroken(cfg.Images, s.Image); why != "" {
		fail("image: %s", why)
	}
}

func dotted(k string) string {
	b := []byte(k)
	for i := range b {
		if b[i] == '/' {
			b[i] = '.'
		}
	}
	return string(b)
}

// Pieces of real specs the random requests are made of.
var (
	propHostDirs = HostDirs{KubeletRoot: "/var/lib/kubelet", ContainerdRoot: "/var/lib/containerd", ContainerdState: "/run/containerd"}
	propSources  = []string{
		"/var/lib/kubelet/pods/0b5f/volumes/kubernetes.io~projected/kube-api-access-x7k2p",
		"/var/lib/kubelet/pods/0b5f/volumes/kubernetes.io~empty-dir/cache",
		"/var/lib/kubelet/pods/0b5f/etc-hosts",
		"/var/lib/kubelet/pods/0b5f/containers/app/5d1e",
		"/var/lib/containerd/io.containerd.grpc.v1.cri/sandboxes/ab12/resolv.conf",
		"/run/containerd/io.containerd.grpc.v1.cri/sandboxes/ab12/shm",
		"/", "/etc", "/srv/www", "/data", "/data/x", "/database", "/var/run/docker.sock", "/run/containerd/containerd.sock",
		"/var/lib/kubelet", "/proc", "/sys/fs/cgroup", "/dev/sda", "/var",
	}
	propDests   = []string{"/mnt", ServiceAccountTokenDir, "/etc/hosts", "/dev/shm", "/host"}
	propSysctls = []string{"kernel.shm_rmid_forced", "net.ipv4.ip_local_port_range", "net.ipv4.ip_forward",
		"kernel.panic", "vm.overcommit_memory", "net/ipv4/tcp_syncookies", "kernel.msgmax", "fs.mqueue.msg_max"}
	propCgroups = []string{"", "/", "/default/c1", "/kubepods/burstable/pod1/c1", "system.slice:cri:x",
		"kubepods-pod1.slice:cri-containerd:c1", "/system.slice/containerd.service", "kubepods", "../../x"}
)

// randomSpec is a containerd-like spec with random privileged parts.
func randomSpec(r *rand.Rand) *specs.Spec {
	spec := &specs.Spec{Process: &specs.Process{Args: []string{"sh"}}, Linux: &specs.Linux{}}
	l := spec.Linux
	for _, t := range requiredNamespaces {
		switch r.IntN(6) {
		case 0: // shares the host's
		case 1:
			l.Namespaces = append(l.Namespaces, specs.LinuxNamespace{Type: t, Path: "/proc/1/ns/" + string(t)})
		case 2:
			l.Namespaces = append(l.Namespaces, specs.LinuxNamespace{Type: t, Path: "/proc/77/ns/" + string(t)})
		default:
			l.Namespaces = append(l.Namespaces, specs.LinuxNamespace{Type: t})
		}
	}
	if r.IntN(2) == 0 {
		l.MaskedPaths = slices.Clone(defaultMaskedPaths[:r.IntN(len(defaultMaskedPaths)+1)])
		l.ReadonlyPaths = slices.Clone(defaultReadonlyPaths[:r.IntN(len(defaultReadonlyPaths)+1)])
	}
	for _, typ := range []string{"proc", "sysfs", "cgroup", "tmpfs", "ext4"} {
		if r.IntN(3) == 0 {
			continue
		}
		opts := []string{"nosuid", []string{"ro", "rw"}[r.IntN(2)]}
		spec.Mounts = append(spec.Mounts, specs.Mount{Type: typ, Source: typ, Destination: "/" + typ, Options: opts})
	}
	for range r.IntN(5) {
		opts := []string{"rbind", []string{"ro", "rw"}[r.IntN(2)], []string{"rprivate", "rshared", "rslave"}[r.IntN(3)]}
		spec.Mounts = append(spec.Mounts, specs.Mount{Type: "bind", Source: propSources[r.IntN(len(propSources))],
			Destination: propDests[r.IntN(len(propDests))], Options: opts})
	}
	n := func(i int64) *int64 { return &i }
	for range r.IntN(3) {
		d := []specs.LinuxDevice{{Path: "/dev/null", Type: "c", Major: 1, Minor: 3}, {Path: "/dev/sda", Type: "b", Major: 8},
			{Path: "/dev/null", Type: "b", Major: 8}, {Path: "/dev/fuse", Type: "c", Major: 10, Minor: 229}}[r.IntN(4)]
		l.Devices = append(l.Devices, d)
	}
	res := &specs.LinuxResources{}
	switch r.IntN(3) {
	case 0:
		res.Devices = []specs.LinuxDeviceCgroup{{Allow: true, Access: "rwm"}}
	case 1:
		res.Devices = []specs.LinuxDeviceCgroup{{Allow: false, Access: "rwm"}, {Allow: true, Type: "b", Major: n(8), Minor: n(0), Access: "rwm"}}
	default:
		res.Devices = append([]specs.LinuxDeviceCgroup{{Allow: false, Access: "rwm"}}, defaultDeviceRules()...)
	}
	l.Resources = res
	for range r.IntN(3) {
		if l.Sysctl == nil {
			l.Sysctl = map[string]string{}
		}
		l.Sysctl[propSysctls[r.IntN(len(propSysctls))]] = "1"
	}
	if r.IntN(2) == 0 {
		o := r.IntN(2100) - 1050
		spec.Process.OOMScoreAdj = &o
	}
	if r.IntN(3) == 0 {
		spec.Process.Rlimits = []specs.POSIXRlimit{{Type: []string{"RLIMIT_NOFILE", "RLIMIT_BOGUS"}[r.IntN(2)], Soft: 10, Hard: uint64(r.IntN(20))}}
	}
	l.CgroupsPath = propCgroups[r.IntN(len(propCgroups))]
	return spec
}

// propSupport: /proc/1/ns/* is the host's, /proc/77/ns/* a pod's.
func propSupport() Support {
	s := Support{Backend: "shim:runc", CapabilityEnforcer: "k", NoNewPrivsEnforcer: "k", SeccompEnforcer: "k",
		Host: propHostDirs, NamespacePaths: map[string]NamespacePath{},
		// /data/x is a symlink to the host's root.
		ResolvedSources: map[string]string{"/data/x": "/"}}
	for _, t := range requiredNamespaces {
		s.NamespacePaths["/proc/1/ns/"+string(t)] = NamespacePath{Host: true}
		s.NamespacePaths["/proc/77/ns/"+string(t)] = NamespacePath{}
	}
	return s
}

// TestPropertyFloorPromise: over random privileged requests, under every
// kind of handler, Enforce either refuses with a sentinel or returns a spec
// no more privileged than the floor; and a clamping handler refuses only
// what it must always refuse.
func TestPropertyFloorPromise(t *testing.T) {
	yes := true
	no := false
	configs := []Config{
		{}, // every default: privileged clamp, nothing shared
		{Privileged: PrivilegedRefuse, OverCeiling: OverCeilingRefuse, ServiceAccountToken: TokenStrip},
		{ServiceAccountToken: TokenRefuse, HostPaths: []string{"/data"}, HostNamespaces: []string{"network", "pid"}},
		{HostPaths: []string{"/data", "/srv"}, HostPathsReadOnly: &no, HostPropagation: true, Devices: []string{"/dev/fuse"},
			Sysctls: []string{"net.*", "kernel.msgmax"}, HostNamespaces: []string{"network", "ipc"}},
		{HostPaths: []string{"/data"}, HostPathsReadOnly: &yes, Mode: ModeComplain},
		{Images: propImages},
	}
	gvisor := propSupport()
	gvisor.IsolatedNamespaces = []string{"pid", "ipc", "uts", "mount"}
	counts := map[string]int{}
	for seed := range 3000 {
		r := rand.New(rand.NewPCG(uint64(seed), 14))
		cfg := configs[seed%len(configs)]
		s := propSupport()
		if seed%2 == 1 {
			s = gvisor
		}
		fl, err := NewFloor(cfg, nil)
		if err != nil {
			t.Fatal(err)
		}
		s.Image = randomImageFacts(r)
		spec := randomSpec(r)
		before := marshalSpec(spec)
		_, err = Enforce(spec, fl, s)
		if err != nil {
			if !errors.Is(err, ErrRefused) && !errors.Is(err, ErrInvalid) {
				t.Fatalf("seed %d: error without a sentinel: %v", seed, err)
			}
			if marshalSpec(spec) != before {
				t.Fatalf("seed %d: refused but changed the spec", seed)
			}
			counts["refused"]++
			continue
		}
		counts["enforced"]++
		if cfg.Images.active() {
			counts["enforced with an image policy"]++
		}
		checkFloorPromise(t, spec, cfg, s)
	}
	t.Logf("%v", counts)
	if counts["refused"] == 0 || counts["enforced"] == 0 || counts["enforced with an image policy"] == 0 {
		t.Fatalf("the random requests do not exercise both outcomes: %v", counts)
	}
}

func marshalSpec(s *specs.Spec) string { return fmt.Sprintf("%s", js(s)) }
