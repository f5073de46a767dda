package shim

import (
	"context"
	"time"

	"github.com/containerd/ttrpc"
)

// defaultRequestTimeout bounds a task API request that arrives without a
// deadline. CRI requests carry the kubelet's (its runtime-request-timeout,
// 2 minutes by default); ctr's and the Go client's usually carry none, and
// a runtime that hangs (runsc, or the runtime behind a delegate's shim)
// would otherwise hold the request, and the container's lock in the shim
// below, forever. The deadline reaches the backend's commands (go-runc
// kills a command whose context ends) and, over ttrpc, a delegate's
// downstream shim, whose runtime calls end with it.
const defaultRequestTimeout = 2 * time.Minute

// unboundedMethods are the task API calls that wait by design: Wait
// returns when the process exits, however long that takes.
var unboundedMethods = map[string]bool{
	"/containerd.task.v3.Task/Wait": true,
}

// UnaryServerInterceptor gives every task API request without a deadline
// defaultRequestTimeout, except the waits. containerd's pkg/shim installs
// it on the shim's ttrpc server (TTRPCServerUnaryOptioner).
func (s *service) UnaryServerInterceptor() ttrpc.UnaryServerInterceptor {
	return boundRequests(defaultRequestTimeout)
}

func boundRequests(timeout time.Duration) ttrpc.UnaryServerInterceptor {
	return func(ctx context.Context, unmarshal ttrpc.Unmarshaler, info *ttrpc.UnaryServerInfo, method ttrpc.Method) (any, error) {
		if _, ok := ctx.Deadline(); !ok && !unboundedMethods[info.FullMethod] {
			var cancel context.CancelFunc
			ctx, cancel = context.WithTimeout(ctx, timeout)
			defer cancel()
		}
		return method(ctx, unmarshal)
	}
}
