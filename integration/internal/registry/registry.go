// Package registry serves an in-memory OCI distribution registry on loopback and
// writes the containerd mirror configuration (hosts.toml) that sends pulls for
// public registries to it. critest pulls through CRI PullImage, which always asks
// a registry; with this, every pull stays on the machine.
package registry

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"time"

	ggcrregistry "github.com/google/go-containerregistry/pkg/registry"
)

// Server is a running registry. Its zero value is not usable; see Serve.
type Server struct {
	// Host is the listener's host:port.
	Host string

	srv  *http.Server
	done chan error
}

// Serve serves a fresh, empty registry on ln until Close. ln should be on
// 127.0.0.1 with a kernel-chosen port, so that concurrent runs do not collide and
// nothing listens beyond loopback. Request logs go to logw (io.Discard drops them).
func Serve(ln net.Listener, logw io.Writer) *Server {
	h := ggcrregistry.New(ggcrregistry.Logger(log.New(logw, "registry: ", log.LstdFlags)))
	s := &Server{
		Host: ln.Addr().String(),
		srv:  &http.Server{Handler: h, ReadHeaderTimeout: 30 * time.Second},
		done: make(chan error, 1),
	}
	go func() { s.done <- s.srv.Serve(ln) }()
	return s
}

// Transport answers requests by calling the registry's handler in this process.
// It lets this process push images into a registry whose listener it cannot
// reach, such as one listening in another network namespace.
func (s *Server) Transport() http.RoundTripper { return handlerTransport{s.srv.Handler} }

type handlerTransport struct{ h http.Handler }

func (t handlerTransport) RoundTrip(req *http.Request) (*http.Response, error) {
	if req.Body == nil {
		req.Body = http.NoBody
	}
	rec := httptest.NewRecorder()
	t.h.ServeHTTP(rec, req)
	resp := rec.Result()
	resp.Request = req
	return resp, nil
}

// Close stops the server and waits for its goroutine. The blobs are in memory and
// go with it.
func (s *Server) Close() error {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	err := s.srv.Shutdown(ctx)
	if serr := <-s.done; !errors.Is(serr, http.ErrServerClosed) {
		err = errors.Join(err, serr)
	}
	return err
}

// MirroredHosts are the registries critest's images come from. docker.io is
// included so that a short name such as "busybox" cannot reach the internet either.
var MirroredHosts = []string{"registry.k8s.io", "gcr.io", "k8s.gcr.io", "docker.io"}

// WriteHostsDir writes dir/<host>/hosts.toml for each of hosts, sending both pulls
// and resolves to the plain-HTTP registry at mirror (host:port). dir becomes
// containerd's registry config_path. server is the mirror too, not the upstream:
// if the mirror fails, containerd must not fall back to the internet.
func WriteHostsDir(dir, mirror string, hosts []string) error {
	for _, h := range hosts {
		d := filepath.Join(dir, h)
		if err := os.MkdirAll(d, 0o755); err != nil {
			return err
		}
		body := fmt.Sprintf("server = %q\n\n[host.%q]\n  capabilities = [\"pull\", \"resolve\"]\n",
			"http://"+mirror, "http://"+mirror)
		if err := os.WriteFile(filepath.Join(d, "hosts.toml"), []byte(body), 0o644); err != nil {
			return err
		}
	}
	return nil
}
