package runsc

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"os"
	"path/filepath"

	"github.com/containerd/log"

	"github.com/palisade-runtime/palisade/sandbox/runsc/portfwd"
)

// A CRI pod sandbox on network "sandbox" gets a port forwarder (package
// portfwd) from its Create to its Delete: containerd's port forwarding dials
// 127.0.0.1 inside the pod's network namespace, where gVisor's netstack has
// no sockets. It is a convenience, not a control: a forwarder that cannot
// start is logged and the pod runs without it.

// annoSandboxType is the container-type CRI gives a pod's sandbox (pause)
// container.
const annoSandboxType = "sandbox"

// maxSocketPath is the longest unix socket path (sun_path, 108 bytes with
// its terminating NUL).
const maxSocketPath = 107

// portForwardDir is where a sandbox's per-connection sockets live while
// runsc connects to them: <root>/_portfwd/<hash of namespace and sandbox>.
// A containerd namespace cannot begin with "_", so it never meets a
// sandbox root, and the hash keeps the path short enough for a socket
// whatever the IDs are.
func (c Config) portForwardDir(namespace, sandbox string) string {
	sum := sha256.Sum256([]byte(namespace + "/" + sandbox))
	return filepath.Join(c.Root, "_portfwd", hex.EncodeToString(sum[:8]))
}

// podNetNS is the network namespace path of a CRI pod sandbox container,
// "" for any other container or a sandbox without a namespace of its own.
func podNetNS(bs bundleSpec) string {
	if bs.Annotations[annoContainerType] != annoSandboxType || bs.Linux == nil {
		return ""
	}
	for _, n := range bs.Linux.Namespaces {
		if n.Type == "network" {
			return n.Path
		}
	}
	return ""
}

// startPortForward starts the forwarder of a pod sandbox container just
// created, when the handler wants one; c.portfwd holds it.
func (s *Service) startPortForward(ctx context.Context, c *container, bs bundleSpec) {
	netns := podNetNS(bs)
	if netns == "" || !s.cfg.portForward() {
		return
	}
	logger := log.G(ctx).WithField("id", c.id).WithField("netns", netns)
	dir := s.cfg.portForwardDir(s.env.Namespace, c.sandbox)
	// The longest socket name is a uint64's 20 digits.
	if len(dir)+1+20 > maxSocketPath {
		logger.WithField("dir", dir).Error("port forwarding off: runsc.root is too long for its unix sockets")
		return
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		logger.WithError(err).Error("port forwarding off")
		return
	}
	fwd, err := portfwd.Start(ctx, portfwd.Config{
		NetNS: netns,
		Dialer: &portfwd.Runsc{
			Binary:      s.cfg.Binary,
			Root:        s.cfg.sandboxRoot(s.env.Namespace, c.sandbox),
			GlobalArgs:  s.cfg.globalArgs(),
			ContainerID: c.id,
			SocketDir:   dir,
			Run:         outputMonitored,
		},
	})
	if err != nil {
		os.Remove(dir)
		logger.WithError(err).Error("port forwarding off")
		return
	}
	logger.WithField("port", fwd.Port()).Debug("port forwarding: listening in the pod's network namespace")
	c.portfwd = fwd
	// A shim told to shut down with the sandbox still there (containerd
	// gone) must not leave the rule behind either.
	s.env.Shutdown.RegisterCallback(func(ctx context.Context) error {
		s.stopPortForward(ctx, c)
		return nil
	})
}

// stopPortForward ends the container's forwarder, if it has one: the
// listener, the forwards in flight, the rule and the socket directory.
func (s *Service) stopPortForward(ctx context.Context, c *container) {
	c.mu.Lock()
	fwd := c.portfwd
	c.portfwd = nil
	c.mu.Unlock()
	if fwd == nil {
		return
	}
	if err := fwd.Close(); err != nil {
		log.G(ctx).WithError(err).WithField("id", c.id).Warn("port forwarding: stop")
	}
	if err := os.RemoveAll(s.cfg.portForwardDir(s.env.Namespace, c.sandbox)); err != nil {
		log.G(ctx).WithError(err).WithField("id", c.id).Warn("port forwarding: remove the socket directory")
	}
}

// cleanupPortForward is `shim delete` for a pod sandbox whose shim died:
// the listener and its sockets died with the shim, but the rule lives as
// long as the pod's namespace, which containerd removes only with the pod.
func cleanupPortForward(ctx context.Context, cfg Config, namespace, id, bundle string) {
	bs, _, err := readBundleSpec(bundle)
	if err != nil {
		return
	}
	netns := podNetNS(bs)
	if netns == "" {
		return
	}
	if err := portfwd.Remove(netns); err != nil {
		log.G(ctx).WithError(err).WithField("id", id).Warn("port forwarding: remove the rule from the pod's network namespace")
	}
	if err := os.RemoveAll(cfg.portForwardDir(namespace, id)); err != nil {
		log.G(ctx).WithError(err).WithField("id", id).Warn("port forwarding: remove the socket directory")
	}
}
