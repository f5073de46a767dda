package k8s

import (
	"context"
	"fmt"
	"maps"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"github.com/pelletier/go-toml/v2"
)

// SandboxImage is the pause image the node's containerd runs pods with, pinned
// in its config; the offline image recipes build it (as for critest).
const SandboxImage = "registry.k8s.io/pause:3.10.2"

// runcHandler is the reference runtime every cluster has next to Palisade's
// handlers: containerd's own shim and runc.
const runcHandler = "runc"

// startContainerd writes the adapted Palisade config, the CRI runtime entries for
// its handlers (`palisadectl config containerd`, imported), and containerd's own
// config, and starts containerd.
func (c *Cluster) startContainerd(ctx context.Context) error {
	var err error
	if c.paliConfig, err = c.adaptConfig(); err != nil {
		return err
	}
	dropIn := filepath.Join(c.opts.Dir, "palisade-containerd.toml")
	out, err := exec.CommandContext(ctx, filepath.Join(c.opts.PalisadeBin, "palisadectl"), "config", "containerd",
		"--config", c.paliConfig, "--shim-path", filepath.Join(c.opts.PalisadeBin, "containerd-shim-palisade-v2")).Output()
	if err != nil {
		return fmt.Errorf("palisadectl config containerd: %w%s", err, stderrOf(err))
	}
	if err := os.WriteFile(dropIn, out, 0o644); err != nil {
		return err
	}
	if len(c.dirs.ShimSockets) > 38 {
		return fmt.Errorf("shim socket dir %s is longer than containerd's limit of 38: use a shorter Options.Dir", c.dirs.ShimSockets)
	}
	cfg := map[string]any{
		"version":          3,
		"root":             c.dirs.ContainerdRoot,
		"state":            c.dirs.ContainerdState,
		"imports":          []string{dropIn},
		"disabled_plugins": []string{"io.containerd.nri.v1.nri", "io.containerd.tracing.processor.v1.otlp"},
		"grpc":             map[string]any{"address": c.address},
		"ttrpc":            map[string]any{"address": c.address + ".ttrpc"},
		"debug":            map[string]any{"address": "", "level": "info"},
		"metrics":          map[string]any{"address": ""},
		"plugins": map[string]any{
			// opt prepends <path>/bin to PATH; the default is the host's /opt/containerd.
			"io.containerd.internal.v1.opt": map[string]any{"path": filepath.Join(c.opts.Dir, "opt")},
			// Without this a root containerd puts shim sockets in /run/containerd/s.
			"io.containerd.shim.v1.manager": map[string]any{"socket_dir": c.dirs.ShimSockets},
			"io.containerd.cri.v1.runtime": map[string]any{
				// The process lacks CAP_SYS_RESOURCE: never lower a container's oom_score_adj.
				"restrict_oom_score_adj":       true,
				"netns_mounts_under_state_dir": true,
				"cni": map[string]any{
					"bin_dirs": []string{c.opts.ToolsBin},
					"conf_dir": filepath.Join(c.opts.Dir, "cni-conf"),
				},
				"containerd": map[string]any{
					"default_runtime_name": runcHandler,
					"runtimes":             c.runcRuntimes(),
				},
			},
			"io.containerd.cri.v1.images": map[string]any{
				"registry":      map[string]any{"config_path": filepath.Join(c.opts.Dir, "hosts")},
				"pinned_images": map[string]any{"sandbox": SandboxImage},
			},
		},
	}
	b, err := toml.Marshal(cfg)
	if err != nil {
		return err
	}
	cfgPath := filepath.Join(c.opts.Dir, "containerd.toml")
	if err := os.WriteFile(cfgPath, b, 0o644); err != nil {
		return err
	}
	p, err := c.startProc("containerd", c.tool("containerd"), []string{"--config", cfgPath}, c.environ())
	if err != nil {
		return err
	}
	// containerd opens its listeners only after loading every plugin.
	return waitFor(ctx, "containerd", time.Minute, func() error {
		conn, err := net.Dial("unix", c.address)
		if err == nil {
			conn.Close()
		}
		return err
	}, p)
}

// runcRuntimes are the CRI runtime entries of containerd's own shim: runc,
// the reference, and Options.RuncRuntimes.
func (c *Cluster) runcRuntimes() map[string]any {
	rs := map[string]any{}
	add := func(name, binary string) {
		rs[name] = map[string]any{
			"runtime_type": "io.containerd.runc.v2",
			"options":      map[string]any{"BinaryName": binary, "Root": filepath.Join(c.dirs.RuntimeRoot, name)},
		}
	}
	add(runcHandler, c.tool("runc"))
	for name, bin := range c.opts.RuncRuntimes {
		add(name, bin)
	}
	return rs
}

// adaptConfig writes the served Palisade config: Options.Config with
// Options.ExtraConfig appended, every handler's runtime binary and state root
// pointed at this cluster's, and the host facts (kubelet_root_dir,
// containerd_root_dir) set to this cluster's if the config has those keys.
func (c *Cluster) adaptConfig() (string, error) {
	src, err := os.ReadFile(c.opts.Config)
	if err != nil {
		return "", err
	}
	src = append(src, "\n"+c.opts.ExtraConfig+"\n"...)
	var cfg map[string]any
	if err := toml.Unmarshal(src, &cfg); err != nil {
		return "", fmt.Errorf("%s (with ExtraConfig): %w", c.opts.Config, err)
	}
	handlers, _ := cfg["handlers"].(map[string]any)
	for name, h := range handlers {
		hm, _ := h.(map[string]any)
		if rs, ok := hm["runsc"].(map[string]any); ok {
			rs["binary"] = c.tool("runsc")
			rs["root"] = c.dirs.RunscRoot
		}
		if sh, ok := hm["shim"].(map[string]any); ok {
			sh["root"] = filepath.Join(c.dirs.RuntimeRoot, name)
			if bn, _ := sh["binary_name"].(string); bn != "" && !filepath.IsAbs(bn) {
				if _, err := os.Stat(c.tool(bn)); err == nil {
					sh["binary_name"] = c.tool(bn)
				}
			}
		}
	}
	for key, dir := range map[string]string{"kubelet_root_dir": c.dirs.Kubelet, "containerd_root_dir": c.dirs.ContainerdRoot} {
		if _, ok := cfg[key]; ok {
			cfg[key] = dir
		}
	}
	b, err := toml.Marshal(cfg)
	if err != nil {
		return "", err
	}
	path := filepath.Join(c.opts.Dir, "palisade.toml")
	return path, os.WriteFile(path, b, 0o644)
}

// startKubelet writes the KubeletConfiguration and starts the kubelet.
func (c *Cluster) startKubelet(ctx context.Context) error {
	resolv := filepath.Join(c.opts.Dir, "resolv.conf")
	// Pods get this file for dnsPolicy Default: a nameserver on the node's own
	// address, inside the namespace, so that no lookup can leave the machine.
	if err := os.WriteFile(resolv, []byte("nameserver "+nodeIP+"\noptions ndots:1\n"), 0o644); err != nil {
		return err
	}
	if err := c.installSeccompProfiles(); err != nil {
		return err
	}
	conf := fmt.Sprintf(`apiVersion: kubelet.config.k8s.io/v1beta1
kind: KubeletConfiguration
# This machine has cgroup v1, which kubelet >= 1.35 refuses unless told.
failCgroupV1: false
cgroupDriver: cgroupfs
# Every pod cgroup lives below this one, which Stop removes.
cgroupRoot: %q
failSwapOn: false
containerRuntimeEndpoint: unix://%s
address: %s
port: 10250
readOnlyPort: 0
healthzBindAddress: 127.0.0.1
healthzPort: 10248
tlsCertFile: %q
tlsPrivateKeyFile: %q
authentication:
  anonymous: {enabled: false}
  webhook: {enabled: true}
  x509: {clientCAFile: %q}
authorization:
  mode: Webhook
resolvConf: %q
# No cluster DNS runs: pods get a resolver on the node's address, where nothing
# answers, instead of a warning on every pod and the node's resolv.conf.
clusterDNS: [%q]
clusterDomain: cluster.local
podLogsDirectory: %q
# The test host's disks may be nearly full; only the kernel's limits matter here.
evictionHard:
  memory.available: "1Mi"
  nodefs.available: "1%%"
  nodefs.inodesFree: "1%%"
  imagefs.available: "1%%"
imageGCHighThresholdPercent: 100
imageGCLowThresholdPercent: 99
# Lowering its own oom_score_adj needs CAP_SYS_RESOURCE, which this host lacks.
oomScoreAdj: 0
serializeImagePulls: false
`, c.dirs.CgroupRoot, c.address, nodeIP, c.kubeletServing.Cert, c.kubeletServing.Key, c.caFile, resolv, nodeIP, c.dirs.PodLogs)
	if err := makeCgroup(c.dirs.CgroupRoot); err != nil {
		return err
	}
	path := filepath.Join(c.opts.Dir, "kubelet.yaml")
	if err := os.WriteFile(path, []byte(conf), 0o644); err != nil {
		return err
	}
	p, err := c.startProc("kubelet", c.tool("kubelet"), []string{
		"--config=" + path, "--kubeconfig=" + c.kubeletKubeconfig, "--root-dir=" + c.dirs.Kubelet,
		"--hostname-override=" + NodeName, "--node-ip=" + nodeIP, "--v=2",
	}, c.environ())
	if err != nil {
		return err
	}
	return waitFor(ctx, "node "+NodeName+" Ready", 3*time.Minute, func() error {
		out, err := c.Kubectl(ctx, "get", "node", NodeName, "-o", `jsonpath={.status.conditions[?(@.type=="Ready")].status}`)
		if err != nil {
			return err
		}
		if s := strings.TrimSpace(string(out)); s != "True" {
			return fmt.Errorf("Ready is %q", s)
		}
		return nil
	}, p)
}

// installSeccompProfiles copies the repository's example profiles
// (examples/seccomp/*.json) into the kubelet's seccomp directory, as a node
// operator installs profiles, so that the examples' Localhost pod runs.
func (c *Cluster) installSeccompProfiles() error {
	profiles, err := filepath.Glob(filepath.Join(c.opts.RepoRoot, "examples", "seccomp", "*.json"))
	if err != nil {
		return err
	}
	dir := filepath.Join(c.dirs.Kubelet, "seccomp")
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	for _, p := range profiles {
		b, err := os.ReadFile(p)
		if err != nil {
			return err
		}
		if err := os.WriteFile(filepath.Join(dir, filepath.Base(p)), b, 0o644); err != nil {
			return err
		}
	}
	return nil
}

// waitClusterObjects applies the RuntimeClasses (`palisadectl config
// runtimeclass` and runc's) and waits for what the controller-manager makes in
// each namespace: the default ServiceAccount and the kube-root-ca.crt ConfigMap.
func (c *Cluster) waitClusterObjects(ctx context.Context) error {
	rcs, err := exec.CommandContext(ctx, filepath.Join(c.opts.PalisadeBin, "palisadectl"), "config", "runtimeclass",
		"--config", c.paliConfig).Output()
	if err != nil {
		return fmt.Errorf("palisadectl config runtimeclass: %w%s", err, stderrOf(err))
	}
	for _, name := range append([]string{runcHandler}, slices.Sorted(maps.Keys(c.opts.RuncRuntimes))...) {
		rcs = append(rcs, "\n---\napiVersion: node.k8s.io/v1\nkind: RuntimeClass\nmetadata:\n  name: "+name+"\nhandler: "+name+"\n"...)
	}
	if _, err := c.KubectlStdin(ctx, rcs, "apply", "-f", "-"); err != nil {
		return err
	}
	for _, obj := range []string{"serviceaccount/default", "configmap/kube-root-ca.crt"} {
		if err := waitFor(ctx, obj, 2*time.Minute, func() error {
			_, err := c.Kubectl(ctx, "-n", "default", "get", obj)
			return err
		}, c.procs...); err != nil {
			return err
		}
	}
	return nil
}

// makeCgroup creates cgroup path in every mounted hierarchy under /sys/fs/cgroup
// (the kubelet refuses a cgroupRoot missing in one), with cpuset's cpus and mems
// copied from the root, which a new cpuset cgroup lacks.
func makeCgroup(path string) error {
	const base = "/sys/fs/cgroup"
	ents, err := os.ReadDir(base)
	if err != nil {
		return err
	}
	for _, e := range ents {
		h := filepath.Join(base, e.Name())
		if !e.IsDir() {
			continue // cpu -> cpu,cpuacct and the like
		}
		if _, err := os.Stat(filepath.Join(h, "cgroup.procs")); err != nil {
			continue
		}
		d := filepath.Join(h, path)
		if err := os.MkdirAll(d, 0o755); err != nil {
			return err
		}
		for _, f := range []string{"cpuset.cpus", "cpuset.mems"} {
			if b, err := os.ReadFile(filepath.Join(h, f)); err == nil {
				if err := os.WriteFile(filepath.Join(d, f), b, 0o644); err != nil {
					return fmt.Errorf("cgroup %s: %w", d, err)
				}
			}
		}
	}
	return nil
}

func stderrOf(err error) string {
	if ee, ok := err.(*exec.ExitError); ok && len(ee.Stderr) > 0 {
		return ": " + strings.TrimSpace(string(ee.Stderr))
	}
	return ""
}
