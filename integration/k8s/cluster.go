// Package k8s runs a real one-node Kubernetes cluster whose node runs containers
// through Palisade: etcd, kube-apiserver, kube-controller-manager, kube-scheduler
// and a kubelet, over a private containerd whose CRI runtimes are the handlers of a
// Palisade config.toml (from `palisadectl config containerd`) plus runc, the
// reference. It backs `make cluster` (cmd/palisade-cluster) and the end-to-end
// tests.
//
// Everything runs inside a network namespace the cluster creates: loopback, which
// also carries the node's address, and the CNI bridge of the pods. It
// has no uplink, so nothing can leave the machine. Only the apiserver is reachable
// from the host, through a TCP forwarder on a host loopback port. Images come from
// the project's offline image recipes (integration/internal/criimages), served by
// a registry inside the namespace that containerd's mirror config points at.
package k8s

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"github.com/palisade-runtime/palisade/integration/internal/hostcheck"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"github.com/palisade-runtime/palisade/integration/internal/cninet"
	"github.com/palisade-runtime/palisade/integration/internal/registry"
)

// Options configures Start.
type Options struct {
	// Dir holds all state (certs, etcd data, kubelet root, containerd root and
	// state, runsc root, logs). It must be short: unix socket paths stay under 108
	// bytes and containerd's shim socket directory under 38. "" is a fresh
	// directory under /tmp. Stop removes it.
	Dir string
	// ToolsBin holds containerd, ctr, runsc, runc, crictl, the CNI plugins,
	// kube-apiserver, kubelet, kubectl, kube-scheduler, kube-controller-manager
	// and etcd (integration/tools/install.sh).
	ToolsBin string
	// PalisadeBin holds containerd-shim-palisade-v2, palisade-trampoline and
	// palisadectl (make build).
	PalisadeBin string
	// Config is the Palisade config.toml served; "" is RepoRoot/config.toml. The
	// cluster serves an adapted copy: runsc's binary and root, a shim backend's
	// runc and root, and kubelet_root_dir / containerd_root_dir if the file has
	// those keys, all point at this cluster's.
	Config string
	// RepoRoot is the repository, for the default Config and the image recipes;
	// "" is found from the working directory.
	RepoRoot string
	// ExtraConfig is TOML appended to the adapted config (extra handlers for
	// tests). Its handlers get containerd runtimes and RuntimeClasses too.
	ExtraConfig string
	// RuncRuntimes are more handlers of containerd's own shim
	// (io.containerd.runc.v2), each with a RuntimeClass of its name: name →
	// the OCI runtime binary it drives (e.g. a runsc, to compare Palisade
	// with the runc shim driving the same runsc). Each gets a root of its own.
	RuncRuntimes map[string]string
	// ImageCache keeps the built images between runs; "" is ToolsBin/../critest-images,
	// shared with the critest harness.
	ImageCache string
	// Log receives progress lines; nil discards them.
	Log io.Writer
}

// Dirs are the cluster's directories, for tests that check what is left behind.
type Dirs struct {
	Root            string // Options.Dir
	PKI             string
	Etcd            string
	Kubelet         string // kubelet --root-dir
	PodLogs         string // kubelet podLogsDirectory
	ContainerdRoot  string
	ContainerdState string
	ShimSockets     string // containerd's shim socket_dir
	RunscRoot       string // runsc --root of every runsc handler
	RuntimeRoot     string // state roots of shim-backed handlers and of runc
	Logs            string
	CgroupRoot      string // kubelet cgroupRoot: a cgroup path, not a directory
	NetNS           string // /run/netns/<name>
}

// NodeName is the cluster's only node.
const NodeName = "palisade-node"

// Cluster is a running cluster. Stop it with Stop.
type Cluster struct {
	opts       Options
	dirs       Dirs
	netnsName  string
	netnsPath  string
	kubeconfig string
	address    string // containerd's socket
	procs      []*proc
	fwd        *forwarder
	reg        *registry.Server
	regLog     *os.File
	cniBefore  map[string]bool
	leakOwners []string

	// From the control plane, for the kubelet.
	kubeletKubeconfig string
	kubeletServing    identity
	caFile            string
	paliConfig        string // the adapted Palisade config
}

// Addresses inside the cluster's network namespace.
const (
	nodeIP        = "10.87.0.1"
	podSubnet     = "10.88.0.0/16"
	serviceSubnet = "10.96.0.0/24"
	apiPort       = "6443"
)

// Start brings the cluster up: every component running, the node Ready, the
// RuntimeClasses applied, and the default ServiceAccount and kube-root-ca.crt in
// namespace default. On error, what was started is stopped again.
func Start(ctx context.Context, o Options) (_ *Cluster, err error) {
	if o.Log == nil {
		o.Log = io.Discard
	}
	if o.RepoRoot == "" {
		if o.RepoRoot, err = findRepoRoot(); err != nil {
			return nil, err
		}
	}
	if o.Config == "" {
		o.Config = filepath.Join(o.RepoRoot, "config.toml")
	}
	if o.ImageCache == "" {
		o.ImageCache = filepath.Join(filepath.Dir(o.ToolsBin), "critest-images")
	}
	if err := checkTools(o); err != nil {
		return nil, err
	}
	if o.Dir == "" {
		if o.Dir, err = os.MkdirTemp(filepath.Dir(tmpPrefix), filepath.Base(tmpPrefix)); err != nil {
			return nil, err
		}
	} else if err := os.MkdirAll(o.Dir, 0o711); err != nil {
		return nil, err
	}
	// Pods running as a non-root user reach their volumes below the kubelet's root.
	if err := os.Chmod(o.Dir, 0o711); err != nil {
		return nil, err
	}
	suffix := make([]byte, 4)
	_, _ = rand.Read(suffix)
	id := hex.EncodeToString(suffix)
	c := &Cluster{opts: o, netnsName: "pal-k8s-" + id}
	c.netnsPath = filepath.Join("/run/netns", c.netnsName)
	d := o.Dir
	c.dirs = Dirs{
		Root: d, PKI: filepath.Join(d, "pki"), Etcd: filepath.Join(d, "etcd"),
		Kubelet: filepath.Join(d, "kubelet"), PodLogs: filepath.Join(d, "pod-logs"),
		ContainerdRoot: filepath.Join(d, "c", "root"), ContainerdState: filepath.Join(d, "c", "state"),
		ShimSockets: filepath.Join(d, "s"), RunscRoot: filepath.Join(d, "runsc"),
		RuntimeRoot: filepath.Join(d, "rt"), Logs: filepath.Join(d, "logs"),
		CgroupRoot: "/palisade-k8s-" + id, NetNS: c.netnsPath,
	}
	c.address = filepath.Join(d, "c", "c.sock")
	c.leakOwners = []string{d + "/"}
	defer func() {
		if err != nil {
			// Stop removes the logs with the rest: show their ends first.
			for _, p := range c.procs {
				c.logf("last lines of %s:\n%s", p.log, hostcheck.Tail(p.log, 15))
			}
			if serr := c.Stop(context.WithoutCancel(ctx)); serr != nil {
				err = errors.Join(err, fmt.Errorf("stopping after the failed start: %w", serr))
			}
		}
	}()
	if err := c.writeRecord(); err != nil {
		return c, err
	}
	for _, dir := range []string{c.dirs.Logs, c.dirs.Kubelet, c.dirs.PodLogs, c.dirs.RunscRoot, c.dirs.RuntimeRoot} {
		if err := os.MkdirAll(dir, 0o711); err != nil {
			return c, err
		}
	}
	start := time.Now()
	c.cniBefore = cninet.ListTree(cninet.CacheDir)
	if err := c.network(); err != nil {
		return c, err
	}
	steps := []struct {
		name string
		fn   func(context.Context) error
	}{
		{"images", c.startRegistry},
		{"control plane", c.startControlPlane},
		{"containerd", c.startContainerd},
		{"kubelet", c.startKubelet},
		{"cluster objects", c.waitClusterObjects},
	}
	for _, s := range steps {
		t := time.Now()
		if err := s.fn(ctx); err != nil {
			return c, fmt.Errorf("%s: %w", s.name, err)
		}
		c.logf("%s ready in %v", s.name, time.Since(t).Round(time.Millisecond))
	}
	c.logf("cluster up in %v; KUBECONFIG=%s", time.Since(start).Round(time.Millisecond), c.kubeconfig)
	return c, nil
}

// Kubeconfig is the admin kubeconfig (system:masters), for kubectl on the host.
func (c *Cluster) Kubeconfig() string { return c.kubeconfig }

// ContainerdAddress is the node's containerd socket, for crictl and ctr (the CRI
// namespace is k8s.io).
func (c *Cluster) ContainerdAddress() string { return c.address }

// Dirs returns the cluster's directories.
func (c *Cluster) Dirs() Dirs { return c.dirs }

// APIServer is the apiserver's URL as reachable from the host.
func (c *Cluster) APIServer() string { return "https://" + c.fwd.Addr() }

// Kubectl runs kubectl with the admin kubeconfig and returns its stdout; the
// error carries stderr.
func (c *Cluster) Kubectl(ctx context.Context, args ...string) ([]byte, error) {
	return c.kubectlIn(ctx, nil, args...)
}

// KubectlStdin is Kubectl with stdin, for `apply -f -`.
func (c *Cluster) KubectlStdin(ctx context.Context, stdin []byte, args ...string) ([]byte, error) {
	return c.kubectlIn(ctx, stdin, args...)
}

func (c *Cluster) kubectlIn(ctx context.Context, stdin []byte, args ...string) ([]byte, error) {
	cmd := exec.CommandContext(ctx, filepath.Join(c.opts.ToolsBin, "kubectl"), append([]string{"--kubeconfig", c.kubeconfig}, args...)...)
	if stdin != nil {
		cmd.Stdin = bytes.NewReader(stdin)
	}
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		return out, fmt.Errorf("kubectl %s: %w: %s", strings.Join(args, " "), err, strings.TrimSpace(stderr.String()))
	}
	return out, nil
}

func (c *Cluster) logf(format string, args ...any) {
	fmt.Fprintf(c.opts.Log, "cluster: "+format+"\n", args...)
}

// network creates the namespace with the node's address (the kubelet refuses a
// node IP in 127.0.0.0/8) and the pods' conflist.
func (c *Cluster) network() error {
	for _, tool := range []string{"ip", "nsenter", "iptables"} {
		if _, err := exec.LookPath(tool); err != nil {
			return fmt.Errorf("%s not found (iproute2, util-linux, iptables): %w", tool, err)
		}
	}
	if err := cninet.Add(c.netnsName); err != nil {
		return err
	}
	// On lo: this kernel may lack the dummy link type, and an address outside
	// 127.0.0.0/8 is not a "loopback address" to the kubelet.
	if out, err := exec.Command("ip", "-n", c.netnsName, "addr", "add", nodeIP+"/32", "dev", "lo").CombinedOutput(); err != nil {
		return fmt.Errorf("ip -n %s addr add %s/32 dev lo: %w: %s", c.netnsName, nodeIP, err, out)
	}
	return cninet.WriteConflist(filepath.Join(c.opts.Dir, "cni-conf"), c.netnsName, "cni-pal0", podSubnet,
		filepath.Join(c.opts.Dir, "cni-ipam"))
}

// checkTools fails early, naming what is missing and how to get it.
func checkTools(o Options) error {
	var missing []string
	for _, t := range slices.Concat([]string{"containerd", "containerd-shim-runc-v2", "runc", "runsc", "crictl",
		"kube-apiserver", "kube-controller-manager", "kube-scheduler", "kubelet", "kubectl", "etcd"}, cninet.Plugins) {
		if _, err := os.Stat(filepath.Join(o.ToolsBin, t)); err != nil {
			missing = append(missing, t)
		}
	}
	if len(missing) > 0 {
		return fmt.Errorf("%v missing in %s (make tools critest-tools kube-tools)", missing, o.ToolsBin)
	}
	for _, b := range []string{"containerd-shim-palisade-v2", "palisade-trampoline", "palisadectl"} {
		if _, err := os.Stat(filepath.Join(o.PalisadeBin, b)); err != nil {
			return fmt.Errorf("%s missing in %s (make build): %w", b, o.PalisadeBin, err)
		}
	}
	if os.Geteuid() != 0 {
		return fmt.Errorf("the cluster needs root (euid %d)", os.Geteuid())
	}
	return nil
}

// findRepoRoot walks up from the working directory to the directory of go.mod
// with this module.
func findRepoRoot() (string, error) {
	dir, err := os.Getwd()
	if err != nil {
		return "", err
	}
	for {
		if b, err := os.ReadFile(filepath.Join(dir, "go.mod")); err == nil &&
			bytes.HasPrefix(b, []byte("module github.com/palisade-runtime/palisade\n")) {
			return dir, nil
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			return "", errors.New("the repository (go.mod of github.com/palisade-runtime/palisade) is not above the working directory")
		}
		dir = parent
	}
}
