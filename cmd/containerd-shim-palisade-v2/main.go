// Command containerd-shim-palisade-v2 is Palisade's containerd shim v2
// (runtime type io.containerd.palisade.v2).
package main

import (
	"context"

	cshim "github.com/containerd/containerd/v2/pkg/shim"

	"github.com/palisade-runtime/palisade/sandbox/trampoline"
	"github.com/palisade-runtime/palisade/shim"
)

func main() {
	// When a backend runs its runtime through this binary as the trampoline
	// (palisade-trampoline is not installed next to it; see
	// trampoline.Path), Main execs the runtime and does not return.
	trampoline.Main()
	shim.Register()
	cshim.RunShim(context.Background(), shim.NewManager(shim.RuntimeName))
}
