package shim

import (
	"context"
	"testing"
	"time"

	"github.com/containerd/ttrpc"
)

func TestBoundRequests(t *testing.T) {
	icpt := boundRequests(time.Minute)
	deadline := func(ctx context.Context, method string) (time.Time, bool) {
		var got time.Time
		var ok bool
		_, err := icpt(ctx, func(any) error { return nil }, &ttrpc.UnaryServerInfo{FullMethod: method},
			func(ctx context.Context, _ func(any) error) (any, error) {
				got, ok = ctx.Deadline()
				return nil, nil
			})
		if err != nil {
			t.Fatal(err)
		}
		return got, ok
	}
	if d, ok := deadline(context.Background(), "/containerd.task.v3.Task/Kill"); !ok || time.Until(d) > time.Minute || time.Until(d) < 50*time.Second {
		t.Errorf("Kill without a deadline: deadline %v (%v), want about a minute from now", d, ok)
	}
	if _, ok := deadline(context.Background(), "/containerd.task.v3.Task/Wait"); ok {
		t.Errorf("Wait got a deadline; it waits for the process, however long")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	want, _ := ctx.Deadline()
	if d, ok := deadline(ctx, "/containerd.task.v3.Task/Create"); !ok || !d.Equal(want) {
		t.Errorf("Create with the caller's deadline %v: got %v (%v), want the caller's kept", want, d, ok)
	}
}
