package runsc

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"strings"

	gorunc "github.com/containerd/go-runc"
	"github.com/containerd/log"
	"golang.org/x/sys/unix"
)

// bound gives a request's runsc commands the handler's command timeout,
// or less if the request's own deadline comes sooner. go-runc kills a
// command whose context ends, so a hung runsc cannot hold the container's
// lock, and every later request for it, forever.
func (s *Service) bound(ctx context.Context) (context.Context, context.CancelFunc) {
	return context.WithTimeout(ctx, s.cfg.commandTimeout())
}

// timedOut says so when ctx's end, not runsc, ended a failed command: runsc
// killed by go-runc reports no more than "signal: killed", and its log
// file's last error may be an older one.
func timedOut(ctx context.Context, what string, err error) error {
	if err == nil || ctx.Err() == nil {
		return err
	}
	return fmt.Errorf("%s: runsc did not finish in time: %w (%v)", what, ctx.Err(), err)
}

// request prepares ctx for the runsc commands of one request: confinement
// (rt) and the command timeout. The returned func, deferred with the
// request's error, releases the timeout and names it in the error when it
// ended the request.
func (s *Service) request(ctx context.Context, what string) (context.Context, func(*error)) {
	ctx, cancel := s.bound(s.rt(ctx))
	return ctx, func(err *error) {
		*err = timedOut(ctx, what, *err)
		cancel()
	}
}

// deleteFailed removes what a failed `runsc create` may have left behind:
// runsc can fail after it started the sandbox, or be killed half way at the
// command timeout. Nothing else would delete that container: Delete never
// learns of it, and containerd runs `shim delete` only when a shim dies,
// which a pod's shim does not after one failed create. It runs with a
// timeout of its own: the request's may be what ended the create.
func (s *Service) deleteFailed(ctx context.Context, id, bundle string) {
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), s.cfg.commandTimeout())
	defer cancel()
	sb := bundleSandbox(id, bundle)
	r := s.client(sb, bundle)
	if err := r.Delete(ctx, id, &gorunc.DeleteOpts{Force: true}); err != nil && !isNotExist(err) {
		log.G(ctx).WithError(err).WithField("id", id).Warn("runsc delete --force after a failed create")
	}
	if err := removeStaleLocks(r.Root, id); err != nil {
		log.G(ctx).WithError(err).WithField("id", id).Warn("remove runsc's stale lock files")
	}
	if err := removeSandboxRoot(r.Root); err != nil {
		log.G(ctx).WithError(err).WithField("id", id).Warn("remove the sandbox's runsc root")
	}
}

// lastRuntimeError is ": " and the last error runsc wrote to its JSON log
// file, or "" if there is none. Its stdio is /dev/null for a pod's
// containers, so go-runc's error holds no more than the exit status;
// containerd's process package reads the log file the same way for the
// containers it creates.
func lastRuntimeError(logFile string) string {
	f, err := os.Open(logFile)
	if err != nil {
		return ""
	}
	defer f.Close()
	msg := ""
	sc := bufio.NewScanner(f)
	sc.Buffer(nil, 1<<20)
	for sc.Scan() {
		var rec struct {
			Level string `json:"level"`
			Msg   string `json:"msg"`
		}
		if json.Unmarshal(sc.Bytes(), &rec) == nil && rec.Level == "error" {
			msg = rec.Msg
		}
	}
	if msg == "" {
		return ""
	}
	return ": " + msg
}

// withDiskFull adds to a failed create's error that the bundle's file
// system is full, when it is and the error does not say so: runsc writes
// its errors to its log file in the bundle, so on a full disk its message
// is lost and all that is left is its exit status.
func withDiskFull(bundle string, err error) error {
	if strings.Contains(err.Error(), unix.ENOSPC.Error()) {
		return err
	}
	var st unix.Statfs_t
	if unix.Statfs(bundle, &st) != nil {
		return err
	}
	switch {
	case st.Bavail == 0:
		return fmt.Errorf("%w (the bundle's file system is full: %v)", err, unix.ENOSPC)
	case st.Ffree == 0 && st.Files > 0:
		return fmt.Errorf("%w (the bundle's file system has no free inodes: %v)", err, unix.ENOSPC)
	}
	return err
}

// waitCreate waits for an in-flight Create of container id to return.
// containerd, once it has given up on a Create at its deadline, deletes the
// container and removes its bundle at once; answering before the failing
// Create has removed what runsc left (deleteFailed) would race that
// cleanup, and leave runsc state, or a half-removed bundle, behind.
func (s *Service) waitCreate(ctx context.Context, id string) {
	s.mu.Lock()
	ch := s.creating[id]
	s.mu.Unlock()
	if ch == nil {
		return
	}
	select {
	case <-ch:
	case <-ctx.Done():
	}
}
