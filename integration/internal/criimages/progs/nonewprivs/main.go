// Command nonewprivs is the stand-in for e2e-test-images/nonewprivs: installed
// setuid root and run as uid 1000, it prints its effective uid, so a container with
// no_new_privs prints 1000 and one without prints 0 (critest's NoNewPrivs specs).
package main

import (
	"fmt"
	"os"
)

func main() {
	fmt.Printf("Effective uid: %d\n", os.Geteuid())
}
