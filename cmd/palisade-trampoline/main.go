// Command palisade-trampoline is what Palisade's shim runs in front of runsc
// and delegate shims: it adds --internal-pid-file to a `runsc exec`, or
// moves into a host AppArmor profile, and execs the runtime (see
// sandbox/trampoline). It is small so that it starts fast: it runs on every
// exec in a container. Install it next to containerd-shim-palisade-v2.
package main

import (
	"fmt"
	"os"

	"github.com/palisade-runtime/palisade/sandbox/trampoline"
)

func main() {
	trampoline.Main()
	fmt.Fprintln(os.Stderr, "palisade-trampoline: run by Palisade's shim only")
	os.Exit(2)
}
