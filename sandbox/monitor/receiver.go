package monitor

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/containerd/log"

	"github.com/palisade-runtime/palisade/sandbox/monitor/rules"
)

// Limits of the receiver.
const (
	// maxConns bounds the sandbox's concurrent connections: runsc opens
	// one per sink; a few more allow for a sink that reconnects.
	maxConns = 4
	// handshakeTimeout bounds the wait for a connection's handshake, so a
	// connection that says nothing does not hold a slot.
	handshakeTimeout = 10 * time.Second
	// queueLen and maxQueuedBytes bound the points read but not yet
	// evaluated, per connection: about a second of a busy sandbox's points
	// (typical points are 100 to 300 bytes), and never more than 16 MiB.
	queueLen       = 1 << 14
	maxQueuedBytes = 16 << 20
)

// Stats counts what a receiver has seen. All counts are cumulative.
type Stats struct {
	// Points decoded and handed to the rules.
	Points uint64
	// Dropped points the sandbox reported it could not send (the socket
	// was full past its retries): the header's count, summed over
	// connections, with its 32-bit wrap-around undone.
	Dropped uint64
	// Overflow counts points this receiver read but had no room to queue
	// for the rules (see drain): lost like Dropped, on this side.
	Overflow uint64
	// Malformed packets: short, truncated, a bad header, or a payload that
	// does not decode.
	Malformed uint64
	// Unknown packets: a message type this receiver does not decode.
	Unknown uint64
	// Connections accepted and refused (beyond maxConns or a failed
	// handshake).
	Connections, Refused uint64
}

// counters are Stats, updated concurrently.
type counters struct {
	points, dropped, overflow, malformed, unknown, conns, refused atomic.Uint64
}

func (c *counters) snapshot() Stats {
	return Stats{
		Points: c.points.Load(), Dropped: c.dropped.Load(), Overflow: c.overflow.Load(), Malformed: c.malformed.Load(),
		Unknown: c.unknown.Load(), Connections: c.conns.Load(), Refused: c.refused.Load(),
	}
}

// Receiver is the listening end of one sandbox's remote sink. It is
// serving from the moment Listen returns, so runsc can connect during its
// create; Close stops it and removes the socket.
type Receiver struct {
	path   string
	ln     *net.UnixListener
	handle func(*rules.Event)
	stats  counters
	// maxPacket is the read buffer: a longer packet is truncated by the
	// kernel and counted as malformed.
	maxPacket int

	mu    sync.Mutex
	conns map[*net.UnixConn]struct{} // guarded by mu; nil once closed
	wg    sync.WaitGroup
	once  sync.Once
}

// Listen creates the socket at path (its directory is made 0700, the
// socket 0600: only root may speak for a sandbox) and serves connections
// until Close, calling handle for each decoded point from one worker
// goroutine per connection. A stale socket of an earlier shim at path is replaced.
func Listen(ctx context.Context, path string, handle func(*rules.Event)) (*Receiver, error) {
	return listen(ctx, path, handle, MaxPacket)
}

// listen is Listen with a packet bound of maxPacket bytes.
func listen(ctx context.Context, path string, handle func(*rules.Event), maxPacket int) (*Receiver, error) {
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		return nil, fmt.Errorf("monitor socket directory: %w", err)
	}
	if err := os.Remove(path); err != nil && !errors.Is(err, os.ErrNotExist) {
		return nil, fmt.Errorf("remove stale monitor socket: %w", err)
	}
	ln, err := net.ListenUnix("unixpacket", &net.UnixAddr{Name: path, Net: "unixpacket"})
	if err != nil {
		return nil, fmt.Errorf("monitor socket: %w", err)
	}
	// The listener unlinks the file when it closes, and Close removes it
	// again in case it did not; a shim that is killed does neither, and
	// `shim delete` removes it then (runsc.Cleaner).
	ln.SetUnlinkOnClose(true)
	if err := os.Chmod(path, 0o600); err != nil {
		ln.Close()
		return nil, fmt.Errorf("monitor socket mode: %w", err)
	}
	r := &Receiver{path: path, ln: ln, handle: handle, maxPacket: maxPacket, conns: map[*net.UnixConn]struct{}{}}
	r.wg.Add(1)
	go r.accept(log.WithLogger(context.WithoutCancel(ctx), log.G(ctx).WithField("monitor", path)))
	return r, nil
}

// Path is the socket's path: the sink's endpoint.
func (r *Receiver) Path() string { return r.path }

// Stats returns the counts so far.
func (r *Receiver) Stats() Stats { return r.stats.snapshot() }

// Close stops accepting, ends every connection, waits for their
// goroutines and removes the socket. It is safe to call more than once.
func (r *Receiver) Close() error {
	var err error
	r.once.Do(func() {
		err = r.ln.Close()
		r.mu.Lock()
		for c := range r.conns {
			c.Close()
		}
		r.conns = nil
		r.mu.Unlock()
		r.wg.Wait()
		if rerr := os.Remove(r.path); rerr != nil && !errors.Is(rerr, os.ErrNotExist) {
			err = errors.Join(err, rerr)
		}
	})
	return err
}

func (r *Receiver) accept(ctx context.Context) {
	defer r.wg.Done()
	for {
		c, err := r.ln.AcceptUnix()
		if err != nil {
			if !errors.Is(err, net.ErrClosed) {
				log.G(ctx).WithError(err).Warn("monitor: accept failed; no more points from this sandbox")
			}
			return
		}
		r.mu.Lock()
		if r.conns == nil || len(r.conns) >= maxConns {
			r.mu.Unlock()
			r.stats.refused.Add(1)
			c.Close()
			continue
		}
		r.conns[c] = struct{}{}
		r.wg.Add(1)
		r.mu.Unlock()
		r.stats.conns.Add(1)
		go func() {
			defer r.wg.Done()
			defer r.forget(c)
			if err := r.serve(c); err != nil {
				log.G(ctx).WithError(err).Warn("monitor: connection ended")
			}
		}()
	}
}

func (r *Receiver) forget(c *net.UnixConn) {
	c.Close()
	r.mu.Lock()
	if r.conns != nil {
		delete(r.conns, c)
	}
	r.mu.Unlock()
}

// serve answers one connection's handshake and reads its points until it
// ends. Only the connection's end, or a broken handshake, returns.
func (r *Receiver) serve(c *net.UnixConn) error {
	if err := c.SetReadDeadline(time.Now().Add(handshakeTimeout)); err != nil {
		return err
	}
	buf := make([]byte, max(r.maxPacket, handshakeBuffer))
	n, _, flags, _, err := c.ReadMsgUnix(buf[:handshakeBuffer], nil)
	if err != nil {
		r.stats.refused.Add(1)
		return fmt.Errorf("handshake: %w", err)
	}
	if flags&syscall.MSG_TRUNC != 0 {
		r.stats.refused.Add(1)
		return fmt.Errorf("%w: handshake longer than %d bytes", errMalformed, handshakeBuffer)
	}
	reply, err := handshakeReply(buf[:n])
	if err != nil {
		r.stats.refused.Add(1)
		return err
	}
	if _, err := c.Write(reply); err != nil {
		return fmt.Errorf("handshake reply: %w", err)
	}
	if err := c.SetReadDeadline(time.Time{}); err != nil {
		return err
	}
	return r.drain(c, buf)
}

// drain reads points off the socket as fast as it can and hands them to a
// worker that decodes them and runs the rules. The sandbox's sink does not
// block: when the socket is full it retries a few times and then drops the
// point, and the socket holds only a few hundred points, so a reader that
// evaluated rules itself would lose points whenever the shim is not
// scheduled for a moment. The queue between the two is bounded in bytes;
// what does not fit is counted as Overflow.
func (r *Receiver) drain(c *net.UnixConn, buf []byte) error {
	queue := make(chan []byte, queueLen)
	done := make(chan struct{})
	var queued atomic.Int64
	go func() {
		defer close(done)
		var lastDropped uint32
		for p := range queue {
			queued.Add(-int64(len(p)))
			r.packet(p, &lastDropped)
		}
	}()
	defer func() {
		close(queue)
		<-done
	}()
	for {
		n, _, flags, _, err := c.ReadMsgUnix(buf[:r.maxPacket], nil)
		if err != nil {
			if errors.Is(err, net.ErrClosed) || errors.Is(err, io.EOF) {
				return nil
			}
			return err
		}
		if n == 0 {
			// The sandbox closed its end (a SOCK_SEQPACKET EOF); the
			// sink never sends an empty point.
			return nil
		}
		if flags&syscall.MSG_TRUNC != 0 {
			r.stats.malformed.Add(1)
			continue
		}
		if queued.Load()+int64(n) > maxQueuedBytes {
			r.stats.overflow.Add(1)
			continue
		}
		p := append([]byte(nil), buf[:n]...)
		select {
		case queue <- p:
			queued.Add(int64(n))
		default:
			r.stats.overflow.Add(1)
		}
	}
}

// packet handles one packet. The dropped count is cumulative per
// connection and wraps at 2^32: the difference to the last one, taken in
// uint32 arithmetic, is what was dropped since.
func (r *Receiver) packet(p []byte, lastDropped *uint32) {
	h, msg, err := decodePacket(p)
	if err == nil || errors.Is(err, errUnknownType) {
		r.stats.dropped.Add(uint64(h.dropped - *lastDropped))
		*lastDropped = h.dropped
	}
	switch {
	case errors.Is(err, errUnknownType):
		r.stats.unknown.Add(1)
		return
	case err != nil:
		r.stats.malformed.Add(1)
		return
	}
	r.stats.points.Add(1)
	e := toEvent(msg)
	r.handle(&e)
}
