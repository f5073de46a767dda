package integration

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/palisade-runtime/palisade/integration/internal/cninet"
)

// cniPlugins and cniCacheDir: see package cninet.
var cniPlugins = cninet.Plugins

const cniCacheDir = cninet.CacheDir

// critestNet is the private network of a critest run: a network namespace in
// which containerd, critest and the image registry all run. The CNI bridge, pod
// veths, portmap's iptables rules, host ports and the ip_forward sysctl the bridge
// plugin turns on are all per namespace, so they go when the namespace goes; and
// the namespace has no uplink, so no pod can send traffic off the machine.
type critestNet struct {
	Name    string // under /run/netns; also the CNI network's name
	Path    string // /run/netns/Name, for nsenter --net and containerdOpts.NetNS
	ConfDir string // holds the conflist, for containerdOpts.CNIConfDir
	BinDir  string // holds cniPlugins
}

// newCritestNet creates the namespace (loopback up) and a conflist for it below
// dir, and registers their removal and the cleanup of libcni's cache.
func newCritestNet(t testing.TB, dir string) *critestNet {
	t.Helper()
	bin := toolsBin()
	for _, p := range cniPlugins {
		if _, err := os.Stat(filepath.Join(bin, p)); err != nil {
			skipOrFatal(t, "CNI plugin %s: %v (run integration/tools/install.sh cni)", p, err)
		}
	}
	for _, tool := range []string{"ip", "nsenter", "iptables"} {
		if _, err := exec.LookPath(tool); err != nil {
			skipOrFatal(t, "%s not found: %v (iproute2, util-linux, iptables)", tool, err)
		}
	}
	suffix := make([]byte, 4)
	_, _ = rand.Read(suffix)
	n := &critestNet{
		Name:    "pal-critest-" + hex.EncodeToString(suffix),
		ConfDir: filepath.Join(dir, "cni-conf"),
		BinDir:  bin,
	}
	n.Path = filepath.Join("/run/netns", n.Name)

	cacheBefore := cninet.ListTree(cniCacheDir)
	t.Cleanup(func() { cleanCNICache(t, n.Name, cacheBefore) })
	if err := cninet.Add(n.Name); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := cninet.Delete(n.Name); err != nil {
			t.Error(err)
		}
	})
	if err := cninet.WriteConflist(n.ConfDir, n.Name, "cni-pal0", "10.88.0.0/16", filepath.Join(dir, "cni-ipam")); err != nil {
		t.Fatal(err)
	}
	return n
}

// command runs name in the namespace. nsenter enters only the network namespace,
// so the command shares the test's mounts and PIDs.
func (n *critestNet) command(ctx context.Context, name string, args ...string) *exec.Cmd {
	return exec.CommandContext(ctx, "nsenter", append([]string{"--net=" + n.Path, "--", name}, args...)...)
}

// listen opens a TCP listener in the namespace (see cninet.Listen).
func (n *critestNet) listen(addr string) (net.Listener, error) {
	return cninet.Listen(n.Path, addr)
}

// cleanCNICache removes what this run's network left in libcni's cache (see
// cninet.CleanCache) and reports each leaked result.
func cleanCNICache(t testing.TB, netName string, before map[string]bool) {
	t.Helper()
	leaked, err := cninet.CleanCache(netName, before)
	if err != nil {
		t.Error(err)
	}
	if len(leaked) > 0 {
		t.Errorf("libcni results left in %s (now removed): %v", cniCacheDir, leaked)
	}
}

// mustExec runs a command that must succeed.
func mustExec(t testing.TB, name string, args ...string) {
	t.Helper()
	if out, err := exec.Command(name, args...).CombinedOutput(); err != nil {
		t.Fatalf("%s %s: %v\n%s", name, strings.Join(args, " "), err, out)
	}
}
