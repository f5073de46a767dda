package k8s

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"sync"
	"syscall"
	"time"

	"github.com/palisade-runtime/palisade/integration/internal/cninet"
	"github.com/palisade-runtime/palisade/integration/internal/hostcheck"
)

// proc is one component the cluster runs, inside the cluster's network namespace.
type proc struct {
	name string
	cmd  *exec.Cmd
	log  string
	done chan struct{} // closed once cmd has been waited for
}

// startProc starts bin with args inside the network namespace at nsPath (through
// nsenter, which enters only that namespace and execs bin), its output in
// logs/<name>.log. Own process group: a ^C to the caller must not stop it before
// Stop does; Pdeathsig: if the caller dies, the component goes with it.
func (c *Cluster) startProc(name, bin string, args []string, env []string) (*proc, error) {
	logPath := filepath.Join(c.dirs.Logs, name+".log")
	f, err := os.OpenFile(logPath, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	cmd := exec.Command("nsenter", append([]string{"--net=" + c.netnsPath, "--", bin}, args...)...)
	cmd.Stdout, cmd.Stderr = f, f
	cmd.Env = env
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("start %s: %w", name, err)
	}
	p := &proc{name: name, cmd: cmd, log: logPath, done: make(chan struct{})}
	go func() { _ = cmd.Wait(); close(p.done) }()
	c.procs = append(c.procs, p)
	c.logf("started %s (pid %d), log %s", name, cmd.Process.Pid, logPath)
	return p, nil
}

// exited returns an error if p has exited, naming its log's last lines.
func (p *proc) exited() error {
	select {
	case <-p.done:
		return fmt.Errorf("%s exited (%v); last lines of %s:\n%s", p.name, p.cmd.ProcessState, p.log, hostcheck.Tail(p.log, 25))
	default:
		return nil
	}
}

// stop sends SIGTERM and, after grace, SIGKILL; it returns once p has exited.
func (p *proc) stop(grace time.Duration) error {
	select {
	case <-p.done:
		return nil
	default:
	}
	_ = p.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-p.done:
		return nil
	case <-time.After(grace):
	}
	_ = p.cmd.Process.Kill()
	<-p.done
	return fmt.Errorf("%s did not exit %v after SIGTERM; killed", p.name, grace)
}

// waitFor polls check every interval until it returns nil, ctx ends or one of
// procs exits.
func waitFor(ctx context.Context, what string, timeout time.Duration, check func() error, procs ...*proc) error {
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	var last error
	for {
		for _, p := range procs {
			if err := p.exited(); err != nil {
				return fmt.Errorf("waiting for %s: %w", what, err)
			}
		}
		if last = check(); last == nil {
			return nil
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("%s: not ready after %v: %w", what, timeout, last)
		case <-time.After(200 * time.Millisecond):
		}
	}
}

// forwarder accepts TCP connections on a host loopback port and connects each to
// target inside the cluster's network namespace: the apiserver listens there, next
// to the kubelet it must reach, and kubectl on the host reaches it through this.
type forwarder struct {
	ln     net.Listener
	nsPath string
	target string
	wg     sync.WaitGroup
	mu     sync.Mutex
	conns  map[net.Conn]struct{}
}

func newForwarder(nsPath, target string) (*forwarder, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, err
	}
	f := &forwarder{ln: ln, nsPath: nsPath, target: target, conns: map[net.Conn]struct{}{}}
	f.wg.Add(1)
	go f.serve()
	return f, nil
}

func (f *forwarder) Addr() string { return f.ln.Addr().String() }

func (f *forwarder) serve() {
	defer f.wg.Done()
	for {
		in, err := f.ln.Accept()
		if err != nil {
			return
		}
		f.wg.Add(1)
		go func() {
			defer f.wg.Done()
			f.pipe(in)
		}()
	}
}

func (f *forwarder) pipe(in net.Conn) {
	var out net.Conn
	err := cninet.Do(f.nsPath, func() (err error) {
		out, err = net.DialTimeout("tcp", f.target, 10*time.Second)
		return err
	})
	if err != nil {
		in.Close()
		return
	}
	if !f.track(in, out) {
		return
	}
	done := make(chan struct{}, 2)
	cp := func(dst, src net.Conn) {
		_, _ = io.Copy(dst, src)
		if tc, ok := dst.(*net.TCPConn); ok {
			_ = tc.CloseWrite()
		}
		done <- struct{}{}
	}
	go cp(out, in)
	go cp(in, out)
	<-done
	<-done
	f.untrack(in, out)
}

// track records a connection pair; false (both closed) if the forwarder is closing.
func (f *forwarder) track(cs ...net.Conn) bool {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.conns == nil {
		for _, c := range cs {
			c.Close()
		}
		return false
	}
	for _, c := range cs {
		f.conns[c] = struct{}{}
	}
	return true
}

func (f *forwarder) untrack(cs ...net.Conn) {
	f.mu.Lock()
	defer f.mu.Unlock()
	for _, c := range cs {
		c.Close()
		delete(f.conns, c)
	}
}

// Close stops accepting, closes every open connection and waits for the copies.
func (f *forwarder) Close() error {
	err := f.ln.Close()
	f.mu.Lock()
	for c := range f.conns {
		c.Close()
	}
	f.conns = nil
	f.mu.Unlock()
	f.wg.Wait()
	if errors.Is(err, net.ErrClosed) {
		return nil
	}
	return err
}
