// Package portfwd makes containerd's CRI port forwarding reach a pod that
// runs on gVisor with its own network stack (runsc --network=sandbox).
//
// containerd forwards a port by entering the pod's network namespace on the
// host and dialling localhost:<port> there. With runsc's netstack the pod's
// sockets live in the sentry, not in that namespace, so nothing listens and
// the dial fails. The Forwarder closes that gap inside the namespace and
// nowhere else:
//
//   - a TCP listener of the shim on 127.0.0.1 in the pod's namespace (a
//     socket belongs to the namespace it was created in, for its life);
//   - one nftables rule in that namespace redirecting TCP sent to
//     127.0.0.1 over loopback to the listener (nft.go), so a connection to
//     any port lands there, its original port kept by conntrack;
//   - per connection, the original port (SO_ORIGINAL_DST, origdst.go) and
//     a stream to that port in the sandbox (Dialer; runsc port-forward
//     --stream in stream.go), with bytes copied both ways (splice.go).
//
// Only loopback of the pod's own namespace is touched: the listener is not
// reachable from any interface (the kernel drops packets for 127.0.0.0/8
// that arrive from outside), and the pod's own traffic goes through
// gVisor's endpoint, not the namespace's output hook.
package portfwd

import (
	"context"
	"errors"
	"fmt"
	"net"
	"sync"
	"time"

	"github.com/containerd/log"
	"github.com/containernetworking/plugins/pkg/ns"
)

// Dialer opens a stream to 127.0.0.1:port inside the sandbox; an error
// means the port cannot be reached (nothing listens there).
type Dialer interface {
	Dial(ctx context.Context, port uint16) (net.Conn, error)
}

// Config is what a Forwarder needs.
type Config struct {
	// NetNS is the path of the pod's network namespace (the sandbox
	// container's linux.namespaces[network].path).
	NetNS string
	// Dialer reaches a port in the sandbox.
	Dialer Dialer
	// DialTimeout bounds one Dial: a port that drops SYNs inside the pod
	// must fail the client, not hold it. Zero: DefaultDialTimeout.
	DialTimeout time.Duration
}

// DefaultDialTimeout is Config.DialTimeout when it is zero.
const DefaultDialTimeout = 30 * time.Second

// Forwarder serves the port forwards of one pod. Start builds it; Close
// ends it, and nothing is reusable after Close.
type Forwarder struct {
	cfg    Config
	netns  ns.NetNS
	ln     *net.TCPListener
	port   uint16
	ctx    context.Context // cancelled by Close: ends the dials in flight
	cancel context.CancelFunc
	wg     sync.WaitGroup

	mu     sync.Mutex
	conns  map[net.Conn]struct{} // open connections, both ends; guarded by mu
	closed bool                  // guarded by mu
}

// Start opens the listener in the namespace, installs the redirect rule
// and serves until Close. On error nothing is left behind.
func Start(ctx context.Context, cfg Config) (_ *Forwarder, retErr error) {
	if cfg.DialTimeout == 0 {
		cfg.DialTimeout = DefaultDialTimeout
	}
	netns, err := ns.GetNS(cfg.NetNS)
	if err != nil {
		return nil, fmt.Errorf("port forwarding: %w", err)
	}
	defer func() {
		if retErr != nil {
			netns.Close()
		}
	}()
	var ln net.Listener
	if err := netns.Do(func(ns.NetNS) error {
		ln, err = net.Listen("tcp4", net.JoinHostPort(loopback.String(), "0"))
		return err
	}); err != nil {
		return nil, fmt.Errorf("port forwarding: listen on 127.0.0.1 in %s: %w", cfg.NetNS, err)
	}
	tl := ln.(*net.TCPListener)
	port := uint16(tl.Addr().(*net.TCPAddr).Port)
	if err := installRule(int(netns.Fd()), port); err != nil {
		tl.Close()
		return nil, fmt.Errorf("port forwarding: %w", err)
	}
	fctx, cancel := context.WithCancel(context.WithoutCancel(ctx))
	f := &Forwarder{
		cfg: cfg, netns: netns, ln: tl, port: port, ctx: fctx, cancel: cancel,
		conns: map[net.Conn]struct{}{},
	}
	f.wg.Add(1)
	go f.serve()
	return f, nil
}

// Port is the listener's port in the pod's namespace.
func (f *Forwarder) Port() uint16 { return f.port }

// Close stops the listener, ends every forward in flight, removes the rule
// and releases the namespace. The namespace may already be on its way out
// (containerd removes it when the pod goes): a rule it can no longer hold
// is not an error.
func (f *Forwarder) Close() error {
	f.mu.Lock()
	if f.closed {
		f.mu.Unlock()
		return nil
	}
	f.closed = true
	conns := make([]net.Conn, 0, len(f.conns))
	for c := range f.conns {
		conns = append(conns, c)
	}
	f.mu.Unlock()
	f.cancel()
	err := f.ln.Close()
	for _, c := range conns {
		c.Close()
	}
	f.wg.Wait()
	if rerr := removeRule(int(f.netns.Fd())); rerr != nil {
		err = errors.Join(err, rerr)
	}
	return errors.Join(err, f.netns.Close())
}

// track records an open connection; false once Close has begun (the
// connection is then closed here).
func (f *Forwarder) track(c net.Conn) bool {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.closed {
		c.Close()
		return false
	}
	f.conns[c] = struct{}{}
	return true
}

func (f *Forwarder) untrack(c net.Conn) {
	f.mu.Lock()
	defer f.mu.Unlock()
	delete(f.conns, c)
}

func (f *Forwarder) serve() {
	defer f.wg.Done()
	for {
		c, err := f.ln.AcceptTCP()
		if err != nil {
			if errors.Is(err, net.ErrClosed) {
				return
			}
			// EMFILE and the like: back off instead of spinning.
			log.G(f.ctx).WithError(err).Warn("port forwarding: accept")
			select {
			case <-f.ctx.Done():
				return
			case <-time.After(100 * time.Millisecond):
			}
			continue
		}
		if !f.track(c) {
			continue
		}
		f.wg.Add(1)
		go func() {
			defer f.wg.Done()
			defer f.untrack(c)
			f.forward(c)
		}()
	}
}

// forward serves one connection. A port that cannot be reached in the
// sandbox resets the client at once (SO_LINGER 0): the TCP handshake was the
// listener's, so the closest thing to "connection refused" is a reset
// before any byte, which containerd passes on as an error of the forward.
func (f *Forwarder) forward(c *net.TCPConn) {
	ctx := f.ctx
	dst, err := originalDst(c)
	if err != nil {
		log.G(ctx).WithError(err).Warn("port forwarding: original destination")
		reset(c)
		return
	}
	dctx, cancel := context.WithTimeout(ctx, f.cfg.DialTimeout)
	up, err := f.cfg.Dialer.Dial(dctx, dst.Port())
	cancel()
	if err != nil {
		log.G(ctx).WithError(err).WithField("port", dst.Port()).Info("port forwarding: port not reachable in the sandbox")
		reset(c)
		return
	}
	if !f.track(up) {
		c.Close()
		return
	}
	defer f.untrack(up)
	hup, ok := up.(halfCloser)
	if !ok {
		up.Close()
		reset(c)
		log.G(ctx).WithField("type", fmt.Sprintf("%T", up)).Error("port forwarding: the sandbox stream cannot half-close")
		return
	}
	splice(c, hup)
}

// reset closes c with a TCP reset instead of a FIN.
func reset(c *net.TCPConn) {
	_ = c.SetLinger(0) // on failure, a FIN still ends the client's wait
	c.Close()
}
