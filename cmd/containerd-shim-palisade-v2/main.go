// Command containerd-shim-palisade-v2 is Palisade's containerd shim v2
// (runtime type io.containerd.palisade.v2).
package main

import (
	"context"

	cshim "github.com/containerd/containerd/v2/pkg/shim"

	"github.com/palisade-runtime/palisade/shim"
)

func main() {
	shim.Register()
	cshim.RunShim(context.Background(), shim.NewManager(shim.RuntimeName))
}
