package runsc

import (
	"context"
	"fmt"
	"io"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"

	"github.com/containerd/containerd/v2/cmd/containerd-shim-runc-v2/process"
	"github.com/containerd/containerd/v2/pkg/stdio"
	gorunc "github.com/containerd/go-runc"
	"golang.org/x/sys/unix"
)

// startStdio is the stdio handed to `runsc start` for a pod container.
type startStdio struct {
	stdin, stdout, stderr *os.File
	binary                gorunc.IO // a binary:// logger, which takes stdout and stderr
	// stdinKeeper is a write end of the stdin FIFO held until CloseIO, so the
	// container does not see EOF while containerd reconnects its writer.
	stdinKeeper io.Closer
}

// openStdio opens what containerd named: FIFO paths, file:// or binary://
// URIs for stdout and stderr, a FIFO for stdin.
func openStdio(ctx context.Context, id string, sio stdio.Stdio) (_ *startStdio, err error) {
	s := &startStdio{}
	defer func() {
		if err != nil {
			s.closeAll()
		}
	}()
	if sio.Stdin != "" {
		if s.stdin, err = openFifo(sio.Stdin, unix.O_RDONLY); err != nil {
			return nil, fmt.Errorf("stdin: %w", err)
		}
		if s.stdinKeeper, err = openFifo(sio.Stdin, unix.O_WRONLY); err != nil {
			return nil, fmt.Errorf("stdin: %w", err)
		}
	}
	u, err := url.Parse(sio.Stdout)
	if err != nil {
		return nil, fmt.Errorf("stdout %q: %w", sio.Stdout, err)
	}
	if u.Scheme == "binary" {
		if s.binary, err = process.NewBinaryIO(ctx, id, u); err != nil {
			return nil, fmt.Errorf("binary log: %w", err)
		}
		return s, nil
	}
	if s.stdout, err = openOutput(sio.Stdout); err != nil {
		return nil, fmt.Errorf("stdout: %w", err)
	}
	switch {
	case sio.Stderr == sio.Stdout && s.stdout != nil:
		s.stderr = s.stdout
	default:
		if s.stderr, err = openOutput(sio.Stderr); err != nil {
			return nil, fmt.Errorf("stderr: %w", err)
		}
	}
	return s, nil
}

// openFifo opens a FIFO without blocking on the other end, then makes the
// descriptor blocking again for the sandbox that will use it.
func openFifo(path string, mode int) (*os.File, error) {
	fd, err := unix.Open(path, mode|unix.O_NONBLOCK|unix.O_CLOEXEC, 0)
	if err != nil {
		return nil, fmt.Errorf("open %s: %w", path, err)
	}
	if err := unix.SetNonblock(fd, false); err != nil {
		unix.Close(fd)
		return nil, err
	}
	return os.NewFile(uintptr(fd), path), nil
}

// openOutput opens a stdout or stderr target: a FIFO path (containerd has its
// reader open already) or a file:// URI.
func openOutput(target string) (*os.File, error) {
	if target == "" {
		return nil, nil
	}
	u, err := url.Parse(target)
	if err != nil {
		return nil, err
	}
	switch u.Scheme {
	case "file":
		if err := os.MkdirAll(filepath.Dir(u.Path), 0o755); err != nil {
			return nil, err
		}
		return os.OpenFile(u.Path, os.O_WRONLY|os.O_CREATE|os.O_APPEND, 0o640)
	case "", "fifo":
		path := target
		if u.Scheme == "fifo" {
			path = u.Path
		}
		return openFifo(path, unix.O_WRONLY)
	}
	return nil, fmt.Errorf("unsupported stdio URI scheme %q", u.Scheme)
}

// set makes the descriptors the command's stdio.
func (s *startStdio) set(cmd *exec.Cmd) {
	if s.stdin != nil {
		cmd.Stdin = s.stdin
	}
	if s.binary != nil {
		s.binary.Set(cmd)
		return
	}
	if s.stdout != nil {
		cmd.Stdout = s.stdout
	}
	if s.stderr != nil {
		cmd.Stderr = s.stderr
	}
}

// closeAfterStart drops the shim's copies: the sandbox holds its own now.
func (s *startStdio) closeAfterStart() {
	for _, f := range []*os.File{s.stdin, s.stdout, s.stderr} {
		if f != nil {
			f.Close()
		}
	}
	if sc, ok := s.binary.(gorunc.StartCloser); ok {
		sc.CloseAfterStart()
	}
}

// closeAll also closes what outlives a successful start.
func (s *startStdio) closeAll() {
	s.closeAfterStart()
	if s.stdinKeeper != nil {
		s.stdinKeeper.Close()
	}
	if s.binary != nil {
		s.binary.Close()
	}
}
