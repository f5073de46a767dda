package runsc

import (
	"testing"

	gorunc "github.com/containerd/go-runc"
)

func TestExitBeforeRegistrationIsKept(t *testing.T) {
	tr := newExitTracker()
	c := &container{id: "c"}
	w := tr.watch(c, "e1")
	// The process exits while its starter still runs the runtime.
	if ps := tr.reaped(gorunc.Exit{Pid: 42, Status: 3}); len(ps) != 0 {
		t.Fatalf("nobody registered pid 42 yet, got %d", len(ps))
	}
	e, done := tr.started(w, c, "e1", 42)
	if !done || e.Status != 3 {
		t.Fatalf("started = %+v, %v; want the early exit with status 3", e, done)
	}
	// An exit after the window closed, for an unknown pid, is nobody's.
	if ps := tr.reaped(gorunc.Exit{Pid: 43}); len(ps) != 0 {
		t.Fatal("exit of an unregistered pid matched")
	}
}

func TestRegisteredExitIsDeliveredOnce(t *testing.T) {
	tr := newExitTracker()
	c := &container{id: "c"}
	w := tr.watch(nil, "")
	if _, done := tr.started(w, c, "", 7); done {
		t.Fatal("no exit yet")
	}
	ps := tr.reaped(gorunc.Exit{Pid: 7})
	if len(ps) != 1 || ps[0].c != c || ps[0].execID != "" {
		t.Fatalf("reaped = %+v", ps)
	}
	if ps := tr.reaped(gorunc.Exit{Pid: 7}); len(ps) != 0 {
		t.Fatal("the same pid delivered twice")
	}
}

func TestInitExitWaitsForExecs(t *testing.T) {
	tr := newExitTracker()
	c := &container{id: "c"}
	w1 := tr.watch(c, "e1")
	tr.started(w1, c, "e1", 10)
	w2 := tr.watch(c, "e2")
	tr.abandon(w2, c, "e2") // an exec that failed to start must not hold the init back
	var order []string
	tr.initExited(c, func() { order = append(order, "init") })
	if len(order) != 0 {
		t.Fatal("init exit published while an exec still runs")
	}
	order = append(order, "e1")
	tr.execExited(c)
	if len(order) != 2 || order[1] != "init" {
		t.Fatalf("order = %v, want [e1 init]", order)
	}
	// Afterwards a new init exit is published at once.
	done := false
	tr.initExited(c, func() { done = true })
	if !done {
		t.Fatal("init exit with no execs must publish immediately")
	}
}

func TestForgetDropsOnlyThatContainer(t *testing.T) {
	tr := newExitTracker()
	a, b := &container{id: "a"}, &container{id: "b"}
	tr.started(tr.watch(nil, ""), a, "", 5)
	tr.started(tr.watch(nil, ""), b, "", 5) // a pod's containers share the sandbox pid
	tr.forget(a)
	ps := tr.reaped(gorunc.Exit{Pid: 5})
	if len(ps) != 1 || ps[0].c != b {
		t.Fatalf("after forget(a), pid 5 ends %+v, want only b", ps)
	}
}
