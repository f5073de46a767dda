package monitor

import (
	"sync"
	"time"
)

// maxLimiterKeys bounds the limiter's table. Its keys hold container ids
// that the sandbox reports, so a hostile sandbox could otherwise grow it
// without end; past the bound the table starts over, which at worst lets
// one more window of alerts through.
const maxLimiterKeys = 4096

// limiter caps alerts per rule and container to limit a minute. A
// workload that trips a rule in a loop (cat /etc/shadow a thousand times a
// second) would otherwise fill the node's disk through containerd's log;
// the first alerts of each minute say what happened, and the number held
// back is reported when the minute is over.
type limiter struct {
	limit int // per key and minute; 0: no limit
	now   func() time.Time

	mu  sync.Mutex
	win map[limitKey]*window // guarded by mu
}

type limitKey struct{ rule, container string }

type window struct {
	start      time.Time
	sent, held int
}

func newLimiter(limit int) *limiter {
	return &limiter{limit: limit, now: time.Now, win: map[limitKey]*window{}}
}

// allow reports whether an alert of rule for container may be written, and
// how many were held back in the key's window that just ended (to report).
func (l *limiter) allow(rule, container string) (ok bool, heldBefore int) {
	if l.limit <= 0 {
		return true, 0
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	now := l.now()
	k := limitKey{rule, container}
	w := l.win[k]
	if w == nil || now.Sub(w.start) >= time.Minute {
		if w != nil {
			heldBefore = w.held
		}
		if w == nil && len(l.win) >= maxLimiterKeys {
			l.win = map[limitKey]*window{}
		}
		w = &window{start: now}
		l.win[k] = w
	}
	if w.sent >= l.limit {
		w.held++
		return false, heldBefore
	}
	w.sent++
	return true, heldBefore
}
