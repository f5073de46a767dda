package integration

import (
	"bytes"
	"flag"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/palisade-runtime/palisade/integration/internal/hostcheck"
)

// harnessTmpPrefix starts every directory the harness creates. It is short because
// containerd's sockets live below it: unix socket paths must stay under 108 bytes,
// and containerd refuses a shim socket directory longer than 38.
const harnessTmpPrefix = "/tmp/pal-it-"

// containerdOpts configures startContainerd. The zero value is a ctr-only daemon.
type containerdOpts struct {
	// CRI enables the CRI plugins, with restrict_oom_score_adj = true because the
	// test process lacks CAP_SYS_RESOURCE. Off, they are disabled so that a ctr-only
	// test does not depend on CNI or image settings.
	CRI bool
	// CRIRuntimes become plugins.'io.containerd.cri.v1.runtime'.containerd.runtimes
	// entries; only meaningful with CRI.
	CRIRuntimes []criRuntime
	// ShimDirs are put on containerd's PATH, ahead of the tools bin, so that it
	// finds shims such as containerd-shim-palisade-v2 there.
	ShimDirs []string
	// LogLevel is containerd's log level; "debug" also makes shims log at debug.
	// Default "info".
	LogLevel string
	// ExtraProcNames adds argv[0] names to the leak check (see hostcheck.Rules).
	ExtraProcNames []string

	// The fields below configure the CRI plugins (only with CRI); their zero
	// values keep containerd's defaults.

	// CRIRuntimesFor returns more runtime entries once the env's directories are
	// known, for runtimes whose options name them (a state root, a config file).
	CRIRuntimesFor func(e *containerdEnv) []criRuntime
	// RegistryConfigPath is the images plugin's registry config_path: a directory
	// of <host>/hosts.toml files (mirrors).
	RegistryConfigPath string
	// SandboxImage is the pinned sandbox (pause) image.
	SandboxImage string
	// CNIBinDirs and CNIConfDir are where the CRI finds CNI plugins and configs.
	CNIBinDirs []string
	CNIConfDir string
	// NetNSUnderStateDir sets netns_mounts_under_state_dir, so pod network
	// namespaces are mounted below StateDir instead of the global /var/run/netns.
	NetNSUnderStateDir bool
	// NetNS, a network namespace path (/run/netns/NAME), runs containerd in that
	// namespace (through nsenter): its CNI bridge, iptables rules and host ports
	// then live and die with the namespace, and host-network pods see it as host.
	NetNS string
	// NRI enables NRI on a private socket (containerdEnv.NRISocket) with plugin
	// directories below Dir, so that no host plugin is loaded.
	NRI bool
}

// criRuntime is one CRI runtime handler.
type criRuntime struct {
	Name    string         // handler name, e.g. "palisade"
	Type    string         // runtime_type, e.g. "io.containerd.palisade.v2"
	Options map[string]any // the options table, e.g. {"BinaryName": "/path/runsc"}
}

// containerdEnv is one private containerd. Everything it and its shims write goes
// below Dir, except what a shim hard-codes (the leak check watches those places).
type containerdEnv struct {
	Dir         string // private root of this daemon, below harnessTmpPrefix
	Address     string // gRPC socket, for ctr --address
	Namespace   string // unique per daemon; also names the containers' cgroups
	RuntimeRoot string // runtime state root: --runc-root for containerd-shim-runc-v2; give it to other runtimes too, the leak check looks here
	FIFODir     string // ctr --fifo-dir, instead of the global /run/containerd/fifo
	LogPath     string // containerd's stdout and stderr
	StateDir    string // containerd's state directory
	RootDir     string // containerd's root directory
	SocketDir   string // shim sockets (plugins.'io.containerd.shim.v1.manager'.socket_dir)
	NRISocket   string // NRI's socket, served only with containerdOpts.NRI

	cmd  *exec.Cmd
	done chan struct{} // closed when cmd has been waited for

	mu  sync.Mutex
	log bytes.Buffer // transcript of ctr calls, printed when the test fails; guarded by mu
	ids []string     // container IDs passed to ctr run, for the leak check; guarded by mu
}

// useID records a container ID the test runs, so the leak check can find the
// shim socket names derived from it.
func (e *containerdEnv) useID(id string) {
	e.mu.Lock()
	defer e.mu.Unlock()
	e.ids = append(e.ids, id)
}

func (e *containerdEnv) usedIDs() []string {
	e.mu.Lock()
	defer e.mu.Unlock()
	return slices.Clone(e.ids)
}

// startContainerd starts a private containerd for t and registers, in this order
// of execution at cleanup: the leak check (checkNoLeaks), then stopping containerd
// and removing its directories. The leak check counts only what this env owns
// (see leakRules), so tests may run in parallel and next to other containerds.
func startContainerd(t testing.TB, opts containerdOpts) *containerdEnv {
	t.Helper()
	requireIntegration(t)
	dir, err := os.MkdirTemp("/tmp", strings.TrimPrefix(harnessTmpPrefix, "/tmp/"))
	if err != nil {
		t.Fatal(err)
	}
	if err := writeOwner(dir); err != nil { // see sweep_test.go
		t.Fatal(err)
	}
	e := &containerdEnv{
		Dir:         dir,
		Address:     filepath.Join(dir, "c.sock"),
		Namespace:   filepath.Base(dir),
		RuntimeRoot: filepath.Join(dir, "r"),
		FIFODir:     filepath.Join(dir, "fifo"),
		LogPath:     filepath.Join(dir, "containerd.log"),
		StateDir:    filepath.Join(dir, "state"),
		RootDir:     filepath.Join(dir, "root"),
		SocketDir:   filepath.Join(dir, "s"),
		NRISocket:   filepath.Join(dir, "nri.sock"),
		done:        make(chan struct{}),
	}
	t.Cleanup(func() { e.shutdown(t) })

	cfg, err := e.config(opts)
	if err != nil {
		t.Fatal(err)
	}
	cfgPath := filepath.Join(dir, "config.toml")
	if err := os.WriteFile(cfgPath, []byte(cfg), 0o644); err != nil {
		t.Fatal(err)
	}
	bin, _ := lookupTool("containerd")
	logf, err := os.Create(e.LogPath)
	if err != nil {
		t.Fatal(err)
	}
	defer logf.Close()
	e.cmd = exec.Command(bin, "--config", cfgPath)
	if opts.NetNS != "" {
		// nsenter enters only the network namespace and execs containerd, so the
		// PID, the mount namespace and the leak check's view stay the same.
		e.cmd = exec.Command("nsenter", "--net="+opts.NetNS, "--", bin, "--config", cfgPath)
	}
	e.cmd.Stdout, e.cmd.Stderr = logf, logf
	e.cmd.Env = containerdEnviron(slices.Concat(opts.ShimDirs, []string{toolsBin()}))
	// Own process group: a ^C to `go test` must not kill containerd before the
	// cleanup stops it. Pdeathsig: if the test binary dies (timeout panic) before
	// its cleanups run, containerd goes with it instead of holding the directories.
	e.cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
	if err := e.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() { _ = e.cmd.Wait(); close(e.done) }()
	e.waitReady(t, 30*time.Second)

	before := takeLeakBaseline(t, func() hostcheck.Rules { return e.leakRules(opts.ExtraProcNames) })
	t.Cleanup(func() { checkNoLeaks(t, before) })
	return e
}

// containerdEnviron is the test's environment with dirs prepended to PATH, so that
// containerd (and the shims, which inherit it) find shims and runtimes there.
// CONTAINERD_* and OTEL_* are dropped so the host's settings cannot leak in.
func containerdEnviron(dirs []string) []string {
	var env []string
	path := strings.Join(dirs, ":")
	for _, kv := range os.Environ() {
		k, v, _ := strings.Cut(kv, "=")
		switch {
		case k == "PATH":
			path += ":" + v
		case strings.HasPrefix(k, "CONTAINERD_"), strings.HasPrefix(k, "OTEL_"):
		default:
			env = append(env, kv)
		}
	}
	return append(env, "PATH="+path)
}

// waitReady waits until containerd accepts connections. containerd opens its
// listeners only after loading every plugin, so a successful dial means ready.
func (e *containerdEnv) waitReady(t testing.TB, timeout time.Duration) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		select {
		case <-e.done:
			t.Fatalf("containerd exited during startup: %v", e.cmd.ProcessState)
		default:
		}
		if c, err := net.Dial("unix", e.Address); err == nil {
			c.Close()
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("containerd not ready after %v", timeout)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// shutdown stops containerd (SIGTERM, then SIGKILL after 10 s), checks that
// nothing of this env still runs, prints the logs if t failed, and removes the
// namespace's cgroups and Dir (unmounting what is left). containerd's exit does not
// stop shims; the leak check, which runs before this, reports and kills any left.
func (e *containerdEnv) shutdown(t testing.TB) {
	if e.cmd != nil && e.cmd.Process != nil {
		_ = e.cmd.Process.Signal(syscall.SIGTERM)
		select {
		case <-e.done:
		case <-time.After(10 * time.Second):
			t.Errorf("containerd did not exit 10s after SIGTERM; killing it")
			_ = e.cmd.Process.Kill()
			<-e.done
		}
	}
	// When a shim dies, containerd runs `shim delete` (and that `runsc delete`);
	// those can outlive containerd. Anything of this env still running now is a leak.
	afterStop := func() hostcheck.Rules {
		r := e.leakRules(nil)
		return hostcheck.Rules{ProcNames: r.ProcNames, ProcOwners: r.ProcOwners}
	}
	checkNoLeaks(t, leakBaseline{rules: afterStop})
	if t.Failed() {
		e.mu.Lock()
		t.Logf("ctr calls:\n%s", e.log.String())
		e.mu.Unlock()
		t.Logf("containerd log, last lines (all of it is kept with go test -artifacts):\n%s", hostcheck.Tail(e.LogPath, 80))
		e.keepArtifacts(t)
	}
	removeCgroups(t, "/"+e.Namespace)
	removeTree(t, e.Dir)
}

// keepArtifacts copies containerd's config and log into t.ArtifactDir when
// `go test -artifacts` asked for them; Dir itself is removed at cleanup.
func (e *containerdEnv) keepArtifacts(t testing.TB) {
	if f := flag.Lookup("test.artifacts"); f == nil || f.Value.String() != "true" {
		return
	}
	dst := t.ArtifactDir()
	for _, name := range []string{"config.toml", filepath.Base(e.LogPath)} {
		if b, err := os.ReadFile(filepath.Join(e.Dir, name)); err == nil {
			_ = os.WriteFile(filepath.Join(dst, name), b, 0o644)
		}
	}
	t.Logf("containerd config and log kept in %s", dst)
}

// removeCgroups removes the cgroup path in every hierarchy (see
// hostcheck.RemoveCgroups).
func removeCgroups(t testing.TB, path string) {
	t.Helper()
	if err := hostcheck.RemoveCgroups(path, 2*time.Second); err != nil {
		t.Error(err)
	}
}

// removeTree unmounts anything left below dir and removes it. Mounts found there
// after leakSettle are reported: by the time a test's directories go, nothing may
// be mounted in them (a shim may still be tearing down, hence the wait).
func removeTree(t testing.TB, dir string) {
	t.Helper()
	for deadline := time.Now().Add(leakSettle); time.Now().Before(deadline); time.Sleep(100 * time.Millisecond) {
		if m, err := hostcheck.Mountpoints(dir + "/"); err != nil || len(m) == 0 {
			break
		}
	}
	unmounted, err := hostcheck.UnmountAll(dir)
	if len(unmounted) > 0 {
		t.Errorf("mounts left under %s (now detached): %v", dir, unmounted)
	}
	if err != nil {
		t.Error(err)
	}
	if err := os.RemoveAll(dir); err != nil {
		t.Errorf("remove test dir: %v", err)
	}
}

// restart stops containerd with sig (SIGTERM: a clean stop; SIGKILL: a
// crash) and starts it again with the same command line, environment and log
// file; shims and their containers keep running meanwhile. downtime, if set,
// runs while no containerd runs. restart returns once the new daemon accepts
// connections; the leak baseline and cleanups of startContainerd stay valid.
func (e *containerdEnv) restart(t testing.TB, sig syscall.Signal, downtime func()) {
	t.Helper()
	old := e.cmd
	if err := old.Process.Signal(sig); err != nil {
		t.Fatalf("signal containerd: %v", err)
	}
	select {
	case <-e.done:
	case <-time.After(10 * time.Second):
		t.Fatalf("containerd did not exit 10s after %v", sig)
	}
	if downtime != nil {
		downtime()
	}
	logf, err := os.OpenFile(e.LogPath, os.O_WRONLY|os.O_APPEND, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer logf.Close()
	fmt.Fprintf(logf, "---- containerd restarted by the test after %v ----\n", sig)
	cmd := exec.Command(old.Path, old.Args[1:]...)
	cmd.Stdout, cmd.Stderr = logf, logf
	cmd.Env = old.Env
	cmd.SysProcAttr = old.SysProcAttr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	done := make(chan struct{})
	go func() { _ = cmd.Wait(); close(done) }()
	e.cmd, e.done = cmd, done
	e.waitReady(t, 30*time.Second)
}
