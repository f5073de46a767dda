// Package sandbox holds the contract between Palisade's task service and the
// runtimes that isolate containers (gVisor's runsc, or another shim v2 such as
// Kata's). The backends live in subpackages; this package only names what they
// must do.
package sandbox

import (
	"context"

	taskAPI "github.com/containerd/containerd/api/runtime/task/v3"
	"github.com/containerd/containerd/v2/core/events"
	"github.com/containerd/containerd/v2/pkg/shutdown"

	"github.com/palisade-runtime/palisade/policy"
)

// Backend runs the containers of one shim process (one pod, or one plain
// container). It serves the containerd task API with Go errors: every error
// wraps an errdefs sentinel where one applies, and the shim converts them to
// ttrpc status codes. A Backend never sees a spec that policy has not
// enforced: the shim rewrites config.json before Create and the process spec
// before Exec.
//
// Lifecycle: a Backend is built by its package's New when the first Create
// arrives; it publishes task events itself (through Env.Publisher), or leaves
// that to a delegate that does. Shutdown reports through the shutdown service
// once the last container is deleted. Nothing is reusable after the shutdown
// service is done.
type Backend interface {
	taskAPI.TTRPCTaskService

	// Support states what this backend, on this host, enforces. It must not
	// claim a control that it cannot apply: policy fails closed on that basis.
	Support() policy.Support
}

// Env is what the shim hands a backend when it is built.
type Env struct {
	// Namespace is the containerd namespace of this shim.
	Namespace string
	// Publisher sends task events to containerd.
	Publisher events.Publisher
	// Shutdown is the shim's shutdown service; backends register cleanup on it
	// and call its Shutdown when the shim may exit.
	Shutdown shutdown.Service
	// TTRPCAddress and GRPCAddress reach containerd (a delegate passes them on).
	TTRPCAddress string
	GRPCAddress  string
	// HostProfile is the AppArmor profile, loaded and enforceable on this
	// host, that the backend must confine its host-side processes with
	// (sandbox/apparmor). Empty: none. A backend that cannot confine must
	// not claim AppArmorEnforcer in its Support.
	HostProfile string
}

// StopStatus is the result of the `shim delete` cleanup path, run when
// containerd finds a shim gone and must reclaim what it left.
type StopStatus struct {
	Pid        int
	ExitStatus int
}

// Cleaner reclaims the state of one container whose shim is gone.
type Cleaner interface {
	Cleanup(ctx context.Context, namespace, id, bundle string) (StopStatus, error)
}
