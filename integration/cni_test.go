package integration

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"io/fs"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"testing"

	"golang.org/x/sys/unix"
)

// cniPlugins are the CNI plugins the conflist names (bridge, host-local,
// portmap) and loopback, which containerd's CRI adds to every pod on its own.
var cniPlugins = []string{"bridge", "host-local", "loopback", "portmap"}

// cniCacheDir is where libcni caches each attachment's result; containerd gives
// no way to move it, so what a run leaves there is removed at cleanup.
const cniCacheDir = "/var/lib/cni"

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

	cacheBefore := listTree(cniCacheDir)
	t.Cleanup(func() { cleanCNICache(t, n.Name, cacheBefore) })
	mustExec(t, "ip", "netns", "add", n.Name)
	t.Cleanup(func() {
		if out, err := exec.Command("ip", "netns", "del", n.Name).CombinedOutput(); err != nil {
			t.Errorf("ip netns del %s: %v: %s", n.Name, err, out)
		}
	})
	mustExec(t, "ip", "-n", n.Name, "link", "set", "lo", "up")

	conf := map[string]any{
		"cniVersion": "1.0.0",
		"name":       n.Name,
		"plugins": []any{
			map[string]any{
				"type": "bridge", "bridge": "cni-pal0", "isGateway": true, "ipMasq": false, "hairpinMode": true,
				// No default route: pods reach their bridge and nothing else.
				"ipam": map[string]any{
					"type":    "host-local",
					"dataDir": filepath.Join(dir, "cni-ipam"),
					"ranges":  []any{[]any{map[string]any{"subnet": "10.88.0.0/16"}}},
				},
			},
			map[string]any{"type": "portmap", "capabilities": map[string]any{"portMappings": true}, "backend": "iptables"},
		},
	}
	b, err := json.MarshalIndent(conf, "", "  ")
	if err != nil {
		t.Fatal(err)
	}
	if err := os.MkdirAll(n.ConfDir, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(n.ConfDir, "10-critest.conflist"), b, 0o644); err != nil {
		t.Fatal(err)
	}
	return n
}

// command runs name in the namespace. nsenter enters only the network namespace,
// so the command shares the test's mounts and PIDs.
func (n *critestNet) command(ctx context.Context, name string, args ...string) *exec.Cmd {
	return exec.CommandContext(ctx, "nsenter", append([]string{"--net=" + n.Path, "--", name}, args...)...)
}

// listen opens a TCP listener in the namespace. A socket belongs to the network
// namespace of the thread that creates it, so a locked thread enters the namespace,
// listens and goes back. Exiting the goroutine still locked would not do: the
// runtime ends such a thread, except the main one, which it parks for good, still
// in the namespace, and /proc/self/ns/net, the main thread's, then names the
// wrong namespace for the rest of the run. Only if the way back fails does the
// goroutine exit locked.
func (n *critestNet) listen(addr string) (net.Listener, error) {
	type result struct {
		ln  net.Listener
		err error
	}
	ch := make(chan result, 1)
	go func() {
		runtime.LockOSThread()
		back, err := os.Open("/proc/thread-self/ns/net")
		if err != nil {
			ch <- result{err: err}
			return
		}
		defer back.Close()
		f, err := os.Open(n.Path)
		if err != nil {
			ch <- result{err: err}
			return
		}
		defer f.Close()
		if err := unix.Setns(int(f.Fd()), unix.CLONE_NEWNET); err != nil {
			ch <- result{err: err}
			return
		}
		ln, err := net.Listen("tcp", addr)
		if unix.Setns(int(back.Fd()), unix.CLONE_NEWNET) == nil {
			runtime.UnlockOSThread()
		}
		ch <- result{ln, err}
	}()
	r := <-ch
	return r.ln, r.err
}

// cleanCNICache removes what this run's network left in libcni's cache:
// results named <network>-<container>-eth0 and, for the same containers, the
// loopback results containerd adds (cni-loopback-<container>-lo). Each one is
// a pod whose network was never torn down, so it is reported. Other runs'
// entries are not touched; directories are removed only if this run made them
// and they are empty.
func cleanCNICache(t testing.TB, netName string, before map[string]bool) {
	t.Helper()
	results := filepath.Join(cniCacheDir, "results")
	entries, _ := os.ReadDir(results)
	var leaked []string
	for _, e := range entries {
		rest, ok := strings.CutPrefix(e.Name(), netName+"-")
		if !ok {
			continue
		}
		id, _, _ := strings.Cut(rest, "-")
		for _, name := range []string{e.Name(), "cni-loopback-" + id + "-lo"} {
			p := filepath.Join(results, name)
			if err := os.Remove(p); err == nil {
				leaked = append(leaked, p)
			} else if !os.IsNotExist(err) {
				t.Errorf("clean %s: %v", cniCacheDir, err)
			}
		}
	}
	if len(leaked) > 0 {
		t.Errorf("libcni results left in %s (now removed): %v", cniCacheDir, leaked)
	}
	added := []string{}
	for p := range listTree(cniCacheDir) {
		if !before[p] {
			added = append(added, p)
		}
	}
	// Deepest first, so that a directory is empty when its turn comes.
	slices.SortFunc(added, func(a, b string) int { return strings.Count(b, "/") - strings.Count(a, "/") })
	for _, p := range added {
		if fi, err := os.Lstat(p); err == nil && fi.IsDir() {
			_ = os.Remove(p) // fails, as it should, if another run still has files there
		}
	}
}

// listTree is the set of paths below root, root included; empty if it is absent.
func listTree(root string) map[string]bool {
	paths := map[string]bool{}
	_ = filepath.WalkDir(root, func(p string, _ fs.DirEntry, err error) error {
		if err == nil {
			paths[p] = true
		}
		return nil
	})
	return paths
}

// mustExec runs a command that must succeed.
func mustExec(t testing.TB, name string, args ...string) {
	t.Helper()
	if out, err := exec.Command(name, args...).CombinedOutput(); err != nil {
		t.Fatalf("%s %s: %v\n%s", name, strings.Join(args, " "), err, out)
	}
}
