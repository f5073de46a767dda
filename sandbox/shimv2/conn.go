package shimv2

import (
	"context"
	"errors"
	"fmt"
	"os"
	"sync/atomic"
	"time"

	taskAPI "github.com/containerd/containerd/api/runtime/task/v3"
	cshim "github.com/containerd/containerd/v2/pkg/shim"
	"github.com/containerd/errdefs"
	"github.com/containerd/errdefs/pkg/errgrpc"
	"github.com/containerd/log"
	"github.com/containerd/ttrpc"
	"google.golang.org/protobuf/types/known/emptypb"
)

type emptypbEmpty = emptypb.Empty

// Timeouts for talking to a downstream shim outside a containerd request.
const (
	dialTimeout     = 10 * time.Second
	shutdownTimeout = 1500 * time.Millisecond
	eventGrace      = 25 * time.Millisecond
)

// conn is the ttrpc connection to one downstream shim process.
type conn struct {
	address  string
	pid      int    // the downstream shim's pid (from Connect)
	pidStart uint64 // and its start time, to tell it from a reused pid
	client   *ttrpc.Client
	task     taskAPI.TTRPCTaskService

	// closing is set before Palisade closes the connection or asks the
	// downstream to exit: a close that follows is not a crash.
	closing atomic.Bool
	// closed is closed when the connection is gone, for whatever reason.
	closed chan struct{}
	// recovered is closed once the containers of a downstream that died
	// have been reclaimed and their exits published (at once when the close
	// was expected).
	recovered chan struct{}
}

func (cn *conn) isClosed() bool {
	select {
	case <-cn.closed:
		return true
	default:
		return false
	}
}

// waitRecovered waits for the recovery that follows a close; false if ctx
// ended first.
func (cn *conn) waitRecovered(ctx context.Context) bool {
	select {
	case <-cn.closed:
	case <-ctx.Done():
		return false
	}
	select {
	case <-cn.recovered:
		return true
	case <-ctx.Done():
		return false
	}
}

func (cn *conn) gone() error {
	return fmt.Errorf("downstream shim (pid %d, %s) is gone: %w", cn.pid, cn.address, errdefs.ErrFailedPrecondition)
}

// native turns a downstream error back into a Go error with its errdefs
// kind; the shim's edge maps it to a status code again. A closed
// connection is the downstream being gone.
func (cn *conn) native(err error) error {
	if errors.Is(err, ttrpc.ErrClosed) {
		return cn.gone()
	}
	return errgrpc.ToNative(err)
}

// connect runs the downstream's `start` for container id and returns the
// connection to the shim that serves it. A pod's containers get the same
// address from `start` (the downstream groups them as containerd's shims
// do), and so share one connection.
func (s *Service) connect(ctx context.Context, id, bundle string) (*conn, error) {
	s.startMu.Lock()
	defer s.startMu.Unlock()
	res, err := s.launch.start(ctx, id, bundle)
	if err != nil {
		return nil, err
	}
	s.mu.Lock()
	cn := s.conns[res.Address]
	s.mu.Unlock()
	if cn != nil && !cn.isClosed() {
		return cn, nil
	}
	return s.dial(ctx, id, res.Address)
}

func (s *Service) dial(ctx context.Context, id, address string) (*conn, error) {
	nc, err := cshim.AnonDialer(address, dialTimeout)
	if err != nil {
		return nil, fmt.Errorf("connect to the downstream shim at %s: %w", address, err)
	}
	cn := &conn{address: address, closed: make(chan struct{}), recovered: make(chan struct{})}
	cn.client = ttrpc.NewClient(nc, ttrpc.WithOnClose(func() { s.onClose(cn) }))
	cn.task = taskAPI.NewTTRPCTaskClient(cn.client)
	resp, err := cn.task.Connect(ctx, &taskAPI.ConnectRequest{ID: id})
	if err != nil {
		cn.closing.Store(true)
		cn.client.Close()
		return nil, fmt.Errorf("downstream shim at %s: connect: %w", address, cn.native(err))
	}
	if int(resp.ShimPid) == os.Getpid() {
		// A shim that ignores the socket directory it is given names its
		// socket as Palisade's was named, finds Palisade there, and says so.
		cn.closing.Store(true)
		cn.client.Close()
		return nil, fmt.Errorf("downstream shim %s answered with Palisade's own socket %s (it ignores the "+
			"bootstrap socket_dir): %w", s.launch.binary, address, errdefs.ErrFailedPrecondition)
	}
	cn.pid = int(resp.ShimPid)
	cn.pidStart, _ = procStart(cn.pid)
	s.mu.Lock()
	s.conns[address] = cn
	s.mu.Unlock()
	log.G(ctx).WithFields(log.Fields{"address": address, "pid": cn.pid}).Info("connected to the downstream shim")
	return cn, nil
}

// onClose runs when a downstream connection closes. Unless Palisade closed
// it, the downstream died: its containers are reclaimed (see recover).
func (s *Service) onClose(cn *conn) {
	close(cn.closed)
	s.mu.Lock()
	if s.conns[cn.address] == cn {
		delete(s.conns, cn.address)
	}
	s.mu.Unlock()
	if cn.closing.Load() {
		close(cn.recovered)
		return
	}
	log.G(s.ctx).WithFields(log.Fields{"address": cn.address, "pid": cn.pid}).
		Error("downstream shim exited unexpectedly; reclaiming its containers")
	go s.recover(cn)
}

// stop is the shutdown callback: it asks every downstream shim to exit,
// kills one that does not, and removes their sockets and directory.
func (s *Service) stop(ctx context.Context) error {
	// The downstream publishes a container's TaskDelete after its Delete
	// returned; containerd-shim-runc-v2 drops events still queued when it
	// exits. Give the last one time to leave before asking it to exit.
	s.mu.Lock()
	last, pre := s.lastDelete, s.pre
	s.mu.Unlock()
	if pre != nil {
		// A start made ahead of a Create that never came: its shim, once
		// connected, is shut down with the others below.
		select {
		case <-pre.done:
		case <-ctx.Done():
		}
	}
	if d := time.Until(last.Add(eventGrace)); d > 0 {
		time.Sleep(d)
	}
	s.mu.Lock()
	cns := make([]*conn, 0, len(s.conns))
	for _, cn := range s.conns {
		cns = append(cns, cn)
	}
	s.mu.Unlock()
	for _, cn := range cns {
		cn.closing.Store(true)
		sctx, cancel := context.WithTimeout(ctx, shutdownTimeout)
		if _, err := cn.task.Shutdown(sctx, &taskAPI.ShutdownRequest{}); err != nil && !errors.Is(err, ttrpc.ErrClosed) {
			log.G(ctx).WithError(err).WithField("pid", cn.pid).Warn("shut down the downstream shim")
		}
		// Its sockets can go only once the process has. It is this shim's
		// child (reparented here, a subreaper), so it is gone when reaped:
		// a zombie leader may still have threads, and its listening
		// sockets, until then.
		for !reaped(cn.pid, cn.pidStart) && sctx.Err() == nil {
			time.Sleep(2 * time.Millisecond)
		}
		if !reaped(cn.pid, cn.pidStart) {
			// It still serves containers Palisade no longer knows of, or
			// hangs: nothing may outlive this shim.
			log.G(ctx).WithField("pid", cn.pid).Error("downstream shim did not exit; killing it")
			if err := killProcess(cn.pid, cn.pidStart); err != nil {
				log.G(ctx).WithError(err).Error("kill the downstream shim")
			}
		}
		cancel()
		cn.client.Close()
		removeSockets(ctx, cn.address, "")
	}
	removeSockets(ctx, "", s.launch.socketDir)
	return nil
}
