package registry

import (
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/v1/random"
	"github.com/google/go-containerregistry/pkg/v1/remote"
)

// An image pushed through Transport (no network) is served over the listener.
func TestPushInProcessPullOverHTTP(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	s := Serve(ln, io.Discard)
	defer func() {
		if err := s.Close(); err != nil {
			t.Error(err)
		}
	}()
	img, err := random.Image(1024, 2)
	if err != nil {
		t.Fatal(err)
	}
	ref, err := name.ParseReference(s.Host+"/e2e-test-images/busybox:1.29-2", name.Insecure)
	if err != nil {
		t.Fatal(err)
	}
	if err := remote.Write(ref, img, remote.WithTransport(s.Transport())); err != nil {
		t.Fatal(err)
	}
	got, err := remote.Image(ref, remote.WithTransport(&http.Transport{}))
	if err != nil {
		t.Fatal(err)
	}
	want, _ := img.Digest()
	if d, _ := got.Digest(); d != want {
		t.Errorf("pulled %s, pushed %s", d, want)
	}
}

func TestWriteHostsDir(t *testing.T) {
	dir := t.TempDir()
	if err := WriteHostsDir(dir, "127.0.0.1:5000", MirroredHosts); err != nil {
		t.Fatal(err)
	}
	for _, h := range MirroredHosts {
		b, err := os.ReadFile(filepath.Join(dir, h, "hosts.toml"))
		if err != nil {
			t.Fatal(err)
		}
		// The upstream must not appear: if the mirror fails, no fallback to it.
		if !strings.HasPrefix(string(b), `server = "http://127.0.0.1:5000"`) ||
			!strings.Contains(string(b), `[host."http://127.0.0.1:5000"]`) || strings.Contains(string(b), h) {
			t.Errorf("%s/hosts.toml:\n%s", h, b)
		}
	}
}
