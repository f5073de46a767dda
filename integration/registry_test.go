package integration

import (
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/palisade-runtime/palisade/integration/internal/criimages"
	"github.com/palisade-runtime/palisade/integration/internal/registry"
)

// critestSandboxImage is the pause image containerd runs pods with. It is
// containerd 2.4's default, pinned in the config so that a containerd upgrade
// cannot silently ask the mirror for an image it does not have.
const critestSandboxImage = "registry.k8s.io/pause:3.10.2"

// critestImages returns the OCI layout of the images critest pulls, built from
// Debian packages into _tools/critest-images on first use and reused after (see
// package criimages). A machine that cannot reach the Debian archive skips.
func critestImages(t testing.TB) string {
	t.Helper()
	root, err := repoRoot()
	if err != nil {
		t.Fatal(err)
	}
	for _, tool := range []string{"apt-get", "dpkg-deb", "go"} {
		if _, err := lookupTool(tool); err != nil {
			skipOrFatal(t, "building critest's images needs %s: %v", tool, err)
		}
	}
	start := time.Now()
	layout, err := criimages.Build(criimages.Options{
		CacheDir: filepath.Join(filepath.Dir(toolsBin()), "critest-images"),
		RepoRoot: root,
		Logf:     t.Logf,
	})
	if err != nil {
		skipOrFatal(t, "build critest's images: %v", err)
	}
	t.Logf("critest images: %s (%v)", layout, time.Since(start).Round(time.Millisecond))
	return layout
}

// startMirror serves the images of layout from a registry listening on 127.0.0.1
// inside n's namespace, and writes the containerd mirror configuration for the
// upstream registries into dir/hosts. It returns that directory, for
// containerdOpts.RegistryConfigPath. The registry stops at cleanup.
func startMirror(t testing.TB, n *critestNet, layout, dir string) string {
	t.Helper()
	ln, err := n.listen("127.0.0.1:0")
	if err != nil {
		t.Fatalf("registry listener in %s: %v", n.Name, err)
	}
	logf, err := os.Create(filepath.Join(dir, "registry.log"))
	if err != nil {
		t.Fatal(err)
	}
	srv := registry.Serve(ln, logf)
	t.Cleanup(func() {
		if err := srv.Close(); err != nil {
			t.Errorf("stop the registry: %v", err)
		}
		logf.Close()
	})
	// The listener is in the other namespace; push through the handler directly.
	start := time.Now()
	if err := criimages.Push(layout, srv.Host, srv.Transport()); err != nil {
		t.Fatal(err)
	}
	hosts := filepath.Join(dir, "hosts")
	if err := registry.WriteHostsDir(hosts, srv.Host, registry.MirroredHosts); err != nil {
		t.Fatal(err)
	}
	t.Logf("registry on %s in netns %s, images pushed in %v", srv.Host, n.Name, time.Since(start).Round(time.Millisecond))
	return hosts
}
