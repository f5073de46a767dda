// Command etcd is etcd's server, built from go.etcd.io/etcd/server/v3 at the version
// Kubernetes requires (see go.mod). etcd's own main package lives in a module of its
// own that is not published on the module proxy, so this is the same two lines around
// etcdmain.
package main

import (
	"os"

	"go.etcd.io/etcd/server/v3/etcdmain"
)

func main() {
	etcdmain.Main(os.Args)
}
