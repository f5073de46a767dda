package monitor

import (
	"strconv"
	"testing"
	"time"
)

func TestLimiter(t *testing.T) {
	now := time.Unix(1000, 0)
	l := newLimiter(2)
	l.now = func() time.Time { return now }
	for i, want := range []bool{true, true, false, false} {
		if ok, _ := l.allow("r", "c"); ok != want {
			t.Fatalf("alert %d: allowed %v, want %v", i, ok, want)
		}
	}
	if ok, _ := l.allow("r", "other"); !ok {
		t.Error("another container shares the first one's budget")
	}
	if ok, _ := l.allow("r2", "c"); !ok {
		t.Error("another rule shares the first one's budget")
	}
	now = now.Add(time.Minute)
	if ok, held := l.allow("r", "c"); !ok || held != 2 {
		t.Errorf("next minute: allowed %v, %d held reported, want true and 2", ok, held)
	}
	if n := newLimiter(0); !func() bool { ok, _ := n.allow("r", "c"); return ok }() {
		t.Error("limit 0 held an alert back")
	}
}

// Container ids come from the sandbox: the table stays bounded however
// many it invents.
func TestLimiterBounded(t *testing.T) {
	l := newLimiter(1)
	for i := range 3 * maxLimiterKeys {
		l.allow("r", strconv.Itoa(i))
	}
	if len(l.win) > maxLimiterKeys {
		t.Fatalf("%d keys, bound %d", len(l.win), maxLimiterKeys)
	}
}
