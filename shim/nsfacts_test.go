package shim

import (
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"testing"
	"time"

	specs "github.com/opencontainers/runtime-spec/specs-go"

	"github.com/palisade-runtime/palisade/policy"
)

// TestContainerFactsHostNamespaces: a path to the shim's own namespace is
// the host's, a path to another process's new namespace is not, and a path
// that cannot be resolved is reported, not guessed.
func TestContainerFactsHostNamespaces(t *testing.T) {
	spec := &specs.Spec{Linux: &specs.Linux{Namespaces: []specs.LinuxNamespace{
		{Type: specs.PIDNamespace},
		{Type: specs.NetworkNamespace, Path: "/proc/self/ns/net"},
		{Type: specs.UTSNamespace, Path: filepath.Join(t.TempDir(), "missing")},
	}}}
	s := containerFacts(spec, "/run/containerd/io.containerd.runtime.v2.task/k8s.io/abc", policy.Support{}, selfNamespaces)
	if s.Host.ContainerdState != "/run/containerd" {
		t.Errorf("state dir: got %q", s.Host.ContainerdState)
	}
	if f := s.NamespacePaths["/proc/self/ns/net"]; !f.Host || f.Err != "" {
		t.Errorf("/proc/self/ns/net: got %+v, want the host's", f)
	}
	if f := s.NamespacePaths[spec.Linux.Namespaces[2].Path]; f.Err == "" || f.Host {
		t.Errorf("missing path: got %+v, want an error", f)
	}
	if _, ok := s.NamespacePaths[""]; ok {
		t.Error("a new namespace (no path) was resolved")
	}
	// The same path seen from a shim in another namespace is not the host's.
	other := func(specs.LinuxNamespaceType) (nsID, error) { return nsID{dev: 1, ino: 1}, nil }
	if f := containerFacts(spec, "", policy.Support{}, other).NamespacePaths["/proc/self/ns/net"]; f.Host || f.Err != "" {
		t.Errorf("/proc/self/ns/net from another namespace: got %+v", f)
	}
	broken := func(specs.LinuxNamespaceType) (nsID, error) { return nsID{}, errors.New("no /proc") }
	if f := containerFacts(spec, "", policy.Support{}, broken).NamespacePaths["/proc/self/ns/net"]; f.Err == "" {
		t.Errorf("own namespace unreadable: got %+v, want an error", f)
	}
}

// TestContainerFactsPodNetns: a process in a network namespace of its own
// (as a pod's pause container is) is not the host's, by its
// /proc/<pid>/ns/net path, exactly as CRI writes it for app containers.
func TestContainerFactsPodNetns(t *testing.T) {
	unshare, err := exec.LookPath("unshare")
	if err != nil {
		t.Skipf("needs unshare(1) to make a network namespace: %v", err)
	}
	cmd := exec.Command(unshare, "--net", "sleep", "30")
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() { _ = cmd.Process.Kill(); _ = cmd.Wait() }()
	path := "/proc/" + strconv.Itoa(cmd.Process.Pid) + "/ns/net"
	self, _ := os.Readlink("/proc/self/ns/net")
	var f policy.NamespacePath
	for deadline := time.Now().Add(5 * time.Second); time.Now().Before(deadline); time.Sleep(20 * time.Millisecond) {
		// unshare(1) is in the shim's namespace until it has unshared.
		if link, _ := os.Readlink(path); link != "" && link != self {
			break
		}
	}
	spec := &specs.Spec{Linux: &specs.Linux{Namespaces: []specs.LinuxNamespace{{Type: specs.NetworkNamespace, Path: path}}}}
	f = containerFacts(spec, "", policy.Support{}, selfNamespaces).NamespacePaths[path]
	if f.Err != "" {
		if os.Getuid() != 0 {
			t.Skipf("unshare --net needs CAP_SYS_ADMIN here (not root): %s", f.Err)
		}
		t.Fatal(f.Err)
	}
	if link, _ := os.Readlink(path); link == self {
		if os.Getuid() != 0 {
			t.Skip("unshare --net did not make a network namespace (not root)")
		}
		t.Fatalf("unshare --net did not leave %s's network namespace", path)
	}
	if f.Host {
		t.Errorf("%s: a new network namespace resolved as the host's", path)
	}
}

func TestStateDirOf(t *testing.T) {
	for bundle, want := range map[string]string{
		"/run/containerd/io.containerd.runtime.v2.task/k8s.io/abc": "/run/containerd",
		"/var/run/x/io.containerd.runtime.v2.task/default/c1/":     "/var/run/x",
		"/tmp/bundle": "",
		"/run/containerd/io.containerd.runtime.v1.linux/default/c1": "",
	} {
		if got := stateDirOf(bundle); got != want {
			t.Errorf("stateDirOf(%q) = %q, want %q", bundle, got, want)
		}
	}
}

// TestContainerFactsResolvesSymlinkedSources: a bind-mount source that is a
// symlink is handed to policy with the path the runtime would mount.
func TestContainerFactsResolvesSymlinkedSources(t *testing.T) {
	dir := t.TempDir()
	link := filepath.Join(dir, "app")
	if err := os.Symlink("/", link); err != nil {
		t.Fatal(err)
	}
	plain := filepath.Join(dir, "plain")
	if err := os.Mkdir(plain, 0o755); err != nil {
		t.Fatal(err)
	}
	spec := &specs.Spec{Mounts: []specs.Mount{
		{Destination: "/a", Type: "bind", Source: link, Options: []string{"rbind"}},
		{Destination: "/b", Type: "bind", Source: plain, Options: []string{"rbind"}},
		{Destination: "/proc", Type: "proc", Source: "proc"},
	}}
	s := containerFacts(spec, "", policy.Support{}, selfNamespaces)
	realPlain, _ := filepath.EvalSymlinks(plain)
	want := map[string]string{link: "/"}
	if realPlain != plain { // t.TempDir itself may sit behind a symlink
		want[plain] = realPlain
	}
	if len(s.ResolvedSources) != len(want) || s.ResolvedSources[link] != "/" {
		t.Errorf("resolved sources: got %v, want %v", s.ResolvedSources, want)
	}
}
