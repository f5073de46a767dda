// Command containerd-shim-palisade-v2 is Palisade's containerd shim v2
// (runtime type io.containerd.palisade.v2).
package main

import (
	"context"

	cshim "github.com/containerd/containerd/v2/pkg/shim"

	"github.com/palisade-runtime/palisade/sandbox/apparmor"
	"github.com/palisade-runtime/palisade/sandbox/runsc"
	"github.com/palisade-runtime/palisade/shim"
)

func main() {
	// When a backend runs its runtime through this binary (to add flags to
	// `runsc exec`, or to confine the runtime with AppArmor), these exec the
	// runtime and do not return.
	runsc.ExecTrampoline()
	apparmor.Trampoline()
	shim.Register()
	cshim.RunShim(context.Background(), shim.NewManager(shim.RuntimeName))
}
