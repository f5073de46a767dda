// Package cninet makes the private networks the integration tests and the
// one-node cluster run pods in: a network namespace the run creates (no uplink, so
// no pod can send traffic off the machine), a bridge conflist for containerd's CRI
// inside it, and sockets opened inside it from a process that lives outside.
package cninet

import (
	"encoding/json"
	"fmt"
	"io/fs"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"slices"
	"strings"

	"golang.org/x/sys/unix"
)

// Plugins are the CNI plugins the conflist names (bridge, host-local, portmap)
// and loopback, which containerd's CRI adds to every pod on its own.
var Plugins = []string{"bridge", "host-local", "loopback", "portmap"}

// CacheDir is where libcni caches each attachment's result; containerd gives no
// way to move it, so what a run leaves there is removed by CleanCache.
const CacheDir = "/var/lib/cni"

// Add creates the network namespace /run/netns/name with its loopback up.
func Add(name string) error {
	if out, err := exec.Command("ip", "netns", "add", name).CombinedOutput(); err != nil {
		return fmt.Errorf("ip netns add %s: %w: %s", name, err, out)
	}
	if out, err := exec.Command("ip", "-n", name, "link", "set", "lo", "up").CombinedOutput(); err != nil {
		return fmt.Errorf("ip -n %s link set lo up: %w: %s", name, err, out)
	}
	return nil
}

// Delete removes the network namespace /run/netns/name.
func Delete(name string) error {
	if out, err := exec.Command("ip", "netns", "del", name).CombinedOutput(); err != nil {
		return fmt.Errorf("ip netns del %s: %w: %s", name, err, out)
	}
	return nil
}

// WriteConflist writes confDir/10-<name>.conflist: a bridge network named name
// on bridge br with host-local addresses from subnet (state in ipamDir) and
// portmap for host ports. The IPAM config has no routes, so pods reach their
// bridge (the namespace they live in) and nothing else.
func WriteConflist(confDir, name, br, subnet, ipamDir string) error {
	conf := map[string]any{
		"cniVersion": "1.0.0",
		"name":       name,
		"plugins": []any{
			map[string]any{
				"type": "bridge", "bridge": br, "isGateway": true, "ipMasq": false, "hairpinMode": true,
				"ipam": map[string]any{
					"type":    "host-local",
					"dataDir": ipamDir,
					"ranges":  []any{[]any{map[string]any{"subnet": subnet}}},
				},
			},
			map[string]any{"type": "portmap", "capabilities": map[string]any{"portMappings": true}, "backend": "iptables"},
		},
	}
	b, err := json.MarshalIndent(conf, "", "  ")
	if err != nil {
		return err
	}
	if err := os.MkdirAll(confDir, 0o755); err != nil {
		return err
	}
	return os.WriteFile(filepath.Join(confDir, "10-"+name+".conflist"), b, 0o644)
}

// Do runs fn on an OS thread that has entered the network namespace at nsPath;
// sockets fn creates belong to that namespace for their whole life. Exiting the
// goroutine still locked would not do: the runtime ends such a thread, except the
// main one, which it parks for good, still in the namespace, and
// /proc/self/ns/net, the main thread's, then names the wrong namespace for the
// rest of the run. Only if the way back fails does the goroutine exit locked.
func Do(nsPath string, fn func() error) error {
	ch := make(chan error, 1)
	go func() {
		runtime.LockOSThread()
		back, err := os.Open("/proc/thread-self/ns/net")
		if err != nil {
			ch <- err
			return
		}
		defer back.Close()
		f, err := os.Open(nsPath)
		if err != nil {
			ch <- err
			return
		}
		defer f.Close()
		if err := unix.Setns(int(f.Fd()), unix.CLONE_NEWNET); err != nil {
			ch <- fmt.Errorf("enter %s: %w", nsPath, err)
			return
		}
		err = fn()
		if unix.Setns(int(back.Fd()), unix.CLONE_NEWNET) == nil {
			runtime.UnlockOSThread()
		}
		ch <- err
	}()
	return <-ch
}

// Listen opens a TCP listener in the network namespace at nsPath.
func Listen(nsPath, addr string) (net.Listener, error) {
	var ln net.Listener
	err := Do(nsPath, func() (err error) {
		ln, err = net.Listen("tcp", addr)
		return err
	})
	return ln, err
}

// CleanCache removes what the network netName left in libcni's cache: results
// named <network>-<container>-eth0 and, for the same containers, the loopback
// results containerd adds (cni-loopback-<container>-lo). Each one is a pod whose
// network was never torn down; they are returned as leaked. Other networks'
// entries are not touched; directories are removed only if they are not in
// before (ListTree of CacheDir before the run) and are empty.
func CleanCache(netName string, before map[string]bool) (leaked []string, err error) {
	results := filepath.Join(CacheDir, "results")
	entries, _ := os.ReadDir(results)
	for _, e := range entries {
		rest, ok := strings.CutPrefix(e.Name(), netName+"-")
		if !ok {
			continue
		}
		id, _, _ := strings.Cut(rest, "-")
		for _, name := range []string{e.Name(), "cni-loopback-" + id + "-lo"} {
			p := filepath.Join(results, name)
			if rerr := os.Remove(p); rerr == nil {
				leaked = append(leaked, p)
			} else if !os.IsNotExist(rerr) && err == nil {
				err = fmt.Errorf("clean %s: %w", CacheDir, rerr)
			}
		}
	}
	added := []string{}
	for p := range ListTree(CacheDir) {
		if !before[p] {
			added = append(added, p)
		}
	}
	// Deepest first, so that a directory is empty when its turn comes.
	slices.SortFunc(added, func(a, b string) int { return strings.Count(b, "/") - strings.Count(a, "/") })
	for _, p := range added {
		if fi, lerr := os.Lstat(p); lerr == nil && fi.IsDir() {
			_ = os.Remove(p) // fails, as it should, if another run still has files there
		}
	}
	return leaked, err
}

// ListTree is the set of paths below root, root included; empty if it is absent.
func ListTree(root string) map[string]bool {
	paths := map[string]bool{}
	_ = filepath.WalkDir(root, func(p string, _ fs.DirEntry, err error) error {
		if err == nil {
			paths[p] = true
		}
		return nil
	})
	return paths
}
