package runsc

import (
	"sync"

	gorunc "github.com/containerd/go-runc"
)

// exitTracker matches reaped host pids to the processes waiting for them, and
// keeps an init exit from being published before the exits of its container's
// execs (containerd expects the init exit last).
//
// A process may exit before its starter has registered its pid. Starters
// therefore open a window (watch) before running the runtime and look into it
// afterwards; exits that arrive while any window is open are copied into it.
type exitTracker struct {
	mu sync.Mutex
	// running maps a host pid to the processes that end when it exits.
	running map[int][]*tracked
	// windows are the open start windows.
	windows map[*window]struct{}
	// execs counts the running execs of each container.
	execs map[*container]int
	// initWaiting holds an init exit until execs[c] reaches zero.
	initWaiting map[*container]func()
}

type tracked struct {
	c      *container
	execID string // "" for the container's init
}

type window struct{ exits map[int]gorunc.Exit }

func newExitTracker() *exitTracker {
	return &exitTracker{
		running:     map[int][]*tracked{},
		windows:     map[*window]struct{}{},
		execs:       map[*container]int{},
		initWaiting: map[*container]func(){},
	}
}

// watch opens a start window. The caller must call started or abandon.
func (t *exitTracker) watch(c *container, execID string) *window {
	t.mu.Lock()
	defer t.mu.Unlock()
	w := &window{exits: map[int]gorunc.Exit{}}
	t.windows[w] = struct{}{}
	if execID != "" {
		t.execs[c]++
	}
	return w
}

// abandon closes a window whose process never started.
func (t *exitTracker) abandon(w *window, c *container, execID string) {
	t.mu.Lock()
	delete(t.windows, w)
	var release func()
	if execID != "" {
		release = t.execDoneLocked(c)
	}
	t.mu.Unlock()
	if release != nil {
		release()
	}
}

// started registers pid for (c, execID) and returns the exit if it already
// happened while the window was open.
func (t *exitTracker) started(w *window, c *container, execID string, pid int) (gorunc.Exit, bool) {
	t.mu.Lock()
	defer t.mu.Unlock()
	delete(t.windows, w)
	if e, ok := w.exits[pid]; ok {
		return e, true
	}
	t.running[pid] = append(t.running[pid], &tracked{c: c, execID: execID})
	return gorunc.Exit{}, false
}

// reaped records a host exit and returns the processes it ends.
func (t *exitTracker) reaped(e gorunc.Exit) []*tracked {
	t.mu.Lock()
	defer t.mu.Unlock()
	for w := range t.windows {
		w.exits[e.Pid] = e
	}
	ps := t.running[e.Pid]
	delete(t.running, e.Pid)
	return ps
}

// forget drops every pid registered for c (its init was reported by other
// means, or it was deleted).
func (t *exitTracker) forget(c *container) {
	t.mu.Lock()
	defer t.mu.Unlock()
	for pid, ps := range t.running {
		kept := ps[:0]
		for _, p := range ps {
			if p.c != c {
				kept = append(kept, p)
			}
		}
		if len(kept) == 0 {
			delete(t.running, pid)
		} else {
			t.running[pid] = kept
		}
	}
}

// initExited runs publish now if c has no running execs, else once the last
// one has exited.
func (t *exitTracker) initExited(c *container, publish func()) {
	t.mu.Lock()
	if t.execs[c] > 0 {
		t.initWaiting[c] = publish
		t.mu.Unlock()
		return
	}
	delete(t.execs, c)
	t.mu.Unlock()
	publish()
}

// execExited is called after an exec's exit has been published.
func (t *exitTracker) execExited(c *container) {
	t.mu.Lock()
	release := t.execDoneLocked(c)
	t.mu.Unlock()
	if release != nil {
		release()
	}
}

func (t *exitTracker) execDoneLocked(c *container) func() {
	t.execs[c]--
	if t.execs[c] > 0 {
		return nil
	}
	delete(t.execs, c)
	release := t.initWaiting[c]
	delete(t.initWaiting, c)
	return release
}
