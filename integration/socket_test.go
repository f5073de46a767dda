package integration

import (
	"bufio"
	"encoding/json"
	"fmt"
	"maps"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/pelletier/go-toml/v2"
)

// Socket hygiene (issue 7, part 5). CVE-2020-15257: containerd's shims
// listened on abstract unix sockets, which have no file mode and live in a
// network namespace, so any host-network container could drive them. The
// shims of every Palisade backend must listen on socket files of mode 0600
// in the socket directory containerd hands them (its state directory's "s"
// by default; the harness's own dir here), remove them on exit, and not be
// reachable from inside a container, a host-network one included.

// TestShimSocketHygiene checks, for a container on each backend, with and
// without --net-host: the shim's socket file (type, mode, owner, place), that
// no process of the container's stack (shim, downstream shim, runsc) listens
// on an abstract socket, that the probe inside cannot connect to the shim by
// path nor by any abstract name containerd ever used, and that the socket is
// gone once the container is deleted.
func TestShimSocketHygiene(t *testing.T) {
	for _, rts := range [][2]runtimeUnderTest{
		{palisadeRunsc(rowRunsc, floorFor(rowRunsc)), palisadeRunsc(rowRunsc+"-hostnet", hostNetFloor(rowRunsc+"-hostnet"))},
		{palisadeDelegate(rowDelegateRunc, "runc", floorFor(rowDelegateRunc)),
			palisadeDelegate(rowDelegateRunc+"-hostnet", "runc", hostNetFloor(rowDelegateRunc+"-hostnet"))},
	} {
		rt, hostNetRT := rts[0], rts[1]
		t.Run(rt.Name, func(t *testing.T) {
			env := startContainerdFor(t, rt, containerdOpts{})
			canary := listenAbstractCanary(t, "@palisade-canary-"+env.Namespace)
			cases := []struct {
				name    string
				rt      runtimeUnderTest
				hostNet bool
			}{{"own-netns", rt, false}, {"net-host", hostNetRT, true}}
			if rt.Name == rowRunsc {
				// runsc takes the network from the handler (runsc --network), and
				// the namespace from the spec: --net-host on a "sandbox" handler
				// still gets a new, empty namespace (runsc creates one when the
				// spec has none). Host networking needs network = "host" too.
				cases = append(cases, struct {
					name    string
					rt      runtimeUnderTest
					hostNet bool
				}{"net-host-network-host", palisadeRunscNetwork("sock-hostnet", "host"), true})
			}
			for _, c := range cases {
				t.Run(c.name, func(t *testing.T) {
					checkSocketHygiene(t, env, c.rt, "sock-"+c.name, c.hostNet, canary)
				})
			}
		})
	}
}

func checkSocketHygiene(t *testing.T, env *containerdEnv, rt runtimeUnderTest, id string, hostNet bool, canary string) {
	extra := []string{"-d", "--log-uri", "file://" + filepath.Join(env.Dir, id+".log")}
	if hostNet {
		extra = append(extra, "--net-host")
	}
	env.ctrOK(t, env.runArgs(t, rt, extra, probeRootfs(t), id, []string{"/bin/sleep", "600"})...)
	tk := &task{env: env, ID: id}
	t.Cleanup(func() { tk.forceRemove(t) })
	tk.waitStatus(t, "RUNNING", 20*time.Second)

	// The socket containerd was given, where Palisade put it.
	path, addrs := env.shimSocketNames(id)
	recorded := bootstrapAddressOf(t, env, id)
	if recorded != "unix://"+path {
		t.Errorf("shim address %q, want the socket file unix://%s (a file, not abstract, in the socket dir)", recorded, path)
	}
	checkSocketFile(t, path, env.SocketDir)
	if st, err := os.Stat(env.SocketDir); err != nil || st.Mode().Perm()&0o022 != 0 {
		t.Errorf("socket dir %s: %v, mode %v: must not be writable by others", env.SocketDir, err, st.Mode())
	}

	shim := shimPid(t, env, id)
	stack := descendants(shim)
	listening := listeningUnixSockets(t, stack)
	if len(listening) == 0 {
		t.Fatalf("no listening unix socket found for the shim (pid %d) and its children %v", shim, stack)
	}
	for _, l := range listening {
		switch {
		case strings.HasPrefix(l.path, "@"):
			t.Errorf("pid %d (%s) listens on abstract socket %q: reachable from the host's network namespace", l.pid, l.comm, l.path)
		case l.path == "":
			t.Errorf("pid %d (%s) listens on an unnamed unix socket (inode %d)", l.pid, l.comm, l.inode)
		case strings.HasPrefix(l.comm, "containerd-shim"):
			// The shims' sockets (Palisade's, and the delegate's downstream
			// shim's) sit in containerd's socket dir, in directories only
			// root may write.
			checkSocketFile(t, l.path, env.SocketDir)
			if st, err := os.Stat(filepath.Dir(l.path)); err != nil || st.Mode().Perm()&0o022 != 0 {
				t.Errorf("socket dir %s: %v, mode %v: must not be writable by others", filepath.Dir(l.path), err, st.Mode())
			}
		default:
			// Others' (runsc's control socket): connect(2) needs write
			// permission on the file, which only root may have.
			if st, err := os.Lstat(l.path); err != nil || st.Mode().Perm()&0o022 != 0 {
				t.Errorf("%s's socket %s: %v, mode %v: others may connect", l.comm, l.path, err, st.Mode())
			}
		}
	}
	t.Logf("listening unix sockets of the shim's process tree %v:\n%s", stack, formatListening(listening))

	// The network namespace the container really got.
	ns := containerNetns(t, stack)
	host := threadNetns()
	switch {
	case hostNet && rt.Name == "sock-hostnet" || hostNet && strings.HasPrefix(rt.Name, rowDelegateRunc):
		if ns != host {
			t.Errorf("--net-host: the container's network namespace is %s, want the host's %s", ns, host)
		}
	case ns == host:
		t.Errorf("the container shares the host's network namespace %s; it asked for its own", host)
	}
	t.Logf("container network namespace %s (host %s)", ns, host)

	// From inside: the shim by path and by every abstract name, and the test's
	// canary, an abstract socket in the host's network namespace.
	probeArgs := []string{"/bin/probe", "connect"}
	for _, a := range addrs {
		_, addr, _ := strings.Cut(a, "=")
		probeArgs = append(probeArgs, addr)
	}
	probeArgs = append(probeArgs, canary)
	res := tk.exec(t, "connect", probeArgs...)
	if res.ExitCode != 0 {
		t.Fatalf("probe connect: %v", res)
	}
	got := parseConnect(t, res.Stdout)
	// A runc container in the host's network namespace reaches abstract
	// sockets there: that is how the canary proves the probe would see an
	// abstract shim socket. gVisor's unix sockets never leave the sentry, so
	// no gVisor container reaches it, host network or not.
	canaryReachable := hostNet && strings.HasPrefix(rt.Name, rowDelegateRunc)
	for _, a := range probeArgs[2:] {
		want := a == canary && canaryReachable
		if (got[a] == "ok") != want {
			t.Errorf("connect %s from inside: %s, want reachable=%v", a, got[a], want)
		}
	}
	t.Logf("from inside (%s):\n%s", id, res.Stdout)

	// Gone when the container is.
	tk.kill(t, "SIGKILL", false)
	tk.waitStatus(t, "STOPPED", 20*time.Second)
	tk.delete(t)
	waitGone(t, path)
	for _, l := range listening {
		if strings.HasPrefix(l.comm, "containerd-shim") && l.path != "" {
			waitGone(t, l.path)
		}
	}
}

// palisadeRunscNetwork is palisadeRunsc with the default floor and runsc
// --network set to network.
func palisadeRunscNetwork(name, network string) runtimeUnderTest {
	rt := palisadeRunsc(name, "")
	rt.ConfigFor = func(t testing.TB, e *containerdEnv) string {
		t.Helper()
		path := writePalisadeConfig(t, e, name, floorFor(name))
		var cfg map[string]any
		b, err := os.ReadFile(path)
		if err == nil {
			err = toml.Unmarshal(b, &cfg)
		}
		if err != nil {
			t.Fatal(err)
		}
		h := cfg["handlers"].(map[string]any)[name].(map[string]any)
		h["runsc"].(map[string]any)["network"] = network
		if network == "host" {
			// ctr --net-host: the host's network namespace, and its
			// /etc/hosts and /etc/resolv.conf bound read-only.
			pol := h["policy"].(map[string]any)
			pol["host_namespaces"] = []string{"network"}
			pol["host_paths"] = []string{"/etc/hosts", "/etc/resolv.conf"}
		}
		if b, err = toml.Marshal(cfg); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(path, b, 0o644); err != nil {
			t.Fatal(err)
		}
		return path
	}
	return rt
}

// listenAbstractCanary listens on an abstract unix socket in the test's (the
// host's) network namespace, accepting and closing connections.
func listenAbstractCanary(t *testing.T, name string) string {
	t.Helper()
	l, err := net.Listen("unix", name)
	if err != nil {
		t.Fatalf("canary %s: %v", name, err)
	}
	t.Cleanup(func() { l.Close() })
	go func() {
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			c.Close()
		}
	}()
	// The probe reaches it from the host: the positive control for a reach.
	bin, err := buildProbe()
	if err != nil {
		t.Fatal(err)
	}
	if out, err := exec.Command(bin, "connect", name).Output(); err != nil || !strings.HasSuffix(strings.TrimSpace(string(out)), "\tok") {
		t.Fatalf("the probe cannot reach the canary from the host: %q %v", out, err)
	}
	return name
}

func bootstrapAddressOf(t *testing.T, env *containerdEnv, id string) string {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(env.StateDir, "io.containerd.runtime.v2.task", env.Namespace, id, "bootstrap.json"))
	if err != nil {
		t.Fatalf("bootstrap.json: %v", err)
	}
	var boot struct {
		Address string `json:"address"`
	}
	if err := json.Unmarshal(b, &boot); err != nil {
		t.Fatal(err)
	}
	return boot.Address
}

// checkSocketFile: a unix socket file, mode 0600, owned by root, below dir.
func checkSocketFile(t *testing.T, path, dir string) {
	t.Helper()
	if !strings.HasPrefix(path, dir+"/") {
		t.Errorf("socket %s is not below the socket dir %s", path, dir)
	}
	st, err := os.Lstat(path)
	if err != nil {
		t.Errorf("socket %s: %v", path, err)
		return
	}
	sys := st.Sys().(*syscall.Stat_t)
	if st.Mode().Type() != os.ModeSocket || st.Mode().Perm() != 0o600 || sys.Uid != 0 || sys.Gid != 0 {
		t.Errorf("socket %s: mode %v, owner %d:%d; want a socket, 0600, root:root", path, st.Mode(), sys.Uid, sys.Gid)
	}
}

// waitGone waits up to leakSettle for path to disappear: shims exit and
// remove their sockets after `ctr task delete` returns.
func waitGone(t *testing.T, path string) {
	t.Helper()
	for deadline := time.Now().Add(leakSettle); ; time.Sleep(50 * time.Millisecond) {
		if _, err := os.Lstat(path); os.IsNotExist(err) {
			return
		}
		if time.Now().After(deadline) {
			t.Errorf("socket %s still there %v after the container was deleted", path, leakSettle)
			return
		}
	}
}

// shimPid finds the Palisade shim daemon serving container id.
func shimPid(t *testing.T, env *containerdEnv, id string) int {
	t.Helper()
	pattern := palisadeShimName + " -namespace " + env.Namespace + " -id " + id + " -address " + env.Address + "( |$)"
	out, _ := exec.Command("pgrep", "-f", pattern).Output()
	f := strings.Fields(string(out))
	if len(f) != 1 {
		t.Fatalf("shim of %s: pgrep -f %q found %q", id, pattern, out)
	}
	pid, _ := strconv.Atoi(f[0])
	return pid
}

// descendants is root and every process below it.
func descendants(root int) []int {
	children := map[int][]int{}
	ents, _ := os.ReadDir("/proc")
	for _, e := range ents {
		pid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		b, err := os.ReadFile(filepath.Join("/proc", e.Name(), "stat"))
		if err != nil {
			continue
		}
		// The fields after the parenthesised command: state, ppid, ...
		rest := string(b[strings.LastIndexByte(string(b), ')')+2:])
		if f := strings.Fields(rest); len(f) > 1 {
			ppid, _ := strconv.Atoi(f[1])
			children[ppid] = append(children[ppid], pid)
		}
	}
	out := []int{root}
	for i := 0; i < len(out); i++ {
		out = append(out, children[out[i]]...)
	}
	return out
}

// unixListener is one listening unix socket held by a process.
type unixListener struct {
	pid   int
	comm  string // argv[0]'s base name: runsc's processes are all "exe" in comm
	inode uint64
	path  string // "@name" for an abstract socket, "" for an unnamed one
}

// listeningUnixSockets lists the listening unix sockets the processes hold,
// from their fds and the unix socket table of each one's network namespace.
func listeningUnixSockets(t *testing.T, pids []int) []unixListener {
	t.Helper()
	// A socket is listed in the table of the namespace it was made in, which
	// need not be its holder's: runsc makes the sandbox's control socket
	// before the sandbox enters its own namespace.
	table := unixTable(os.Getpid())
	for _, pid := range pids {
		maps.Copy(table, unixTable(pid))
	}
	var out []unixListener
	for _, pid := range pids {
		fds, _ := os.ReadDir(fmt.Sprintf("/proc/%d/fd", pid))
		seen := map[uint64]bool{}
		for _, fd := range fds {
			link, err := os.Readlink(fmt.Sprintf("/proc/%d/fd/%s", pid, fd.Name()))
			if err != nil || !strings.HasPrefix(link, "socket:[") {
				continue
			}
			inode, _ := strconv.ParseUint(strings.TrimSuffix(strings.TrimPrefix(link, "socket:["), "]"), 10, 64)
			if e, ok := table[inode]; ok && e.listening && !seen[inode] {
				seen[inode] = true
				out = append(out, unixListener{pid: pid, comm: argv0(pid), inode: inode, path: e.path})
			}
		}
	}
	return out
}

type unixEntry struct {
	listening bool
	path      string
}

// unixTable parses /proc/<pid>/net/unix: Num RefCount Protocol Flags Type St
// Inode [Path]. Flags has __SO_ACCEPTCON (0x10000) on a listening socket.
func unixTable(pid int) map[uint64]unixEntry {
	f, err := os.Open(fmt.Sprintf("/proc/%d/net/unix", pid))
	if err != nil {
		return nil
	}
	defer f.Close()
	table := map[uint64]unixEntry{}
	sc := bufio.NewScanner(f)
	sc.Scan() // header
	for sc.Scan() {
		fields := strings.Fields(sc.Text())
		if len(fields) < 7 {
			continue
		}
		flags, _ := strconv.ParseUint(fields[3], 16, 64)
		inode, _ := strconv.ParseUint(fields[6], 10, 64)
		e := unixEntry{listening: flags&0x10000 != 0}
		if len(fields) > 7 {
			e.path = fields[7]
		}
		table[inode] = e
	}
	return table
}

func formatListening(ls []unixListener) string {
	var b strings.Builder
	for _, l := range ls {
		path := l.path
		if st, err := os.Lstat(path); err == nil {
			path += fmt.Sprintf(" (%v)", st.Mode())
		}
		fmt.Fprintf(&b, "  pid %d %-28s %s\n", l.pid, l.comm, path)
	}
	return b.String()
}

// containerNetns is the network namespace of the container: the runsc
// sandbox's on gVisor, else that of the container's own process (behind the
// delegate, runc's child of the downstream shim): the first process of the
// stack that is neither a shim nor runc nor runsc.
func containerNetns(t *testing.T, pids []int) string {
	t.Helper()
	pick := slices.IndexFunc(pids, func(pid int) bool { return argv0(pid) == "runsc-sandbox" })
	if pick < 0 {
		pick = slices.IndexFunc(pids, func(pid int) bool {
			a := argv0(pid)
			return a != "" && !strings.HasPrefix(a, "containerd-shim") && !strings.HasPrefix(a, "runsc") && a != "runc"
		})
	}
	if pick < 0 {
		t.Fatalf("no container process among %v", pids)
	}
	ns, err := os.Readlink(fmt.Sprintf("/proc/%d/ns/net", pids[pick]))
	if err != nil {
		t.Fatal(err)
	}
	return ns
}

// argv0 is the base name of a process's argv[0], or its comm when argv[0]
// is empty (runsc's systrap stubs).
func argv0(pid int) string {
	b, _ := os.ReadFile(fmt.Sprintf("/proc/%d/cmdline", pid))
	if a, _, _ := strings.Cut(string(b), "\x00"); a != "" {
		return filepath.Base(a)
	}
	comm, _ := os.ReadFile(fmt.Sprintf("/proc/%d/comm", pid))
	return strings.TrimSpace(string(comm))
}

// parseConnect reads `probe connect` lines: address to result.
func parseConnect(t *testing.T, out string) map[string]string {
	t.Helper()
	got := map[string]string{}
	for _, line := range strings.Split(strings.TrimSpace(out), "\n") {
		if f := strings.Split(line, "\t"); len(f) == 3 && f[0] == "connect" {
			got[f[1]] = f[2]
		}
	}
	return got
}

// threadNetns names the network namespace of the calling goroutine's thread,
// the test's own. /proc/self/ns/net is the main thread's, which another test
// may have left parked in a namespace of its own.
func threadNetns() string {
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	ns, _ := os.Readlink("/proc/thread-self/ns/net")
	return ns
}

// hostNetFloor is the default floor of a handler that allows what ctr
// --net-host asks for: the host's network namespace, and its /etc/hosts and
// /etc/resolv.conf bound read-only.
func hostNetFloor(name string) string {
	return "host_namespaces = [\"network\"]\nhost_paths = [\"/etc/hosts\", \"/etc/resolv.conf\"]\n" + floorFor(name)
}
