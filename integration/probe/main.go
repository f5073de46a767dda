// Command probe runs inside test containers and reports, one line per check,
// what the kernel the container sees (gVisor's sentry, or the host's) lets it
// do. It is built static and copied into the test rootfs.
//
//	probe nnp           prints "NoNewPrivs: 0|1" from prctl(PR_GET_NO_NEW_PRIVS),
//	                    which gVisor's /proc/self/status does not show
//	probe escape        the escape suite (escape.go): one line per attempt
//	probe connect ADDR  connects to unix sockets (a path, or @name), one line each
//	probe families      socket(2) for every address family (families.go)
//	probe whoami        prints its euid and effective capabilities (the
//	                    setuid-root copy runs this)
package main

import (
	"fmt"
	"os"

	"golang.org/x/sys/unix"
)

func main() {
	if len(os.Args) < 2 {
		fmt.Fprintln(os.Stderr, "usage: probe nnp|escape|families|connect ADDR...|whoami")
		os.Exit(2)
	}
	if code, ok := escapeCommand(os.Args[1:]); ok {
		os.Exit(code)
	}
	switch os.Args[1] {
	case "families":
		families()
	case "nnp":
		v, err := unix.PrctlRetInt(unix.PR_GET_NO_NEW_PRIVS, 0, 0, 0, 0)
		if err != nil {
			fmt.Fprintln(os.Stderr, "prctl(PR_GET_NO_NEW_PRIVS):", err)
			os.Exit(1)
		}
		fmt.Printf("NoNewPrivs: %d\n", v)
	default:
		fmt.Fprintln(os.Stderr, "unknown check", os.Args[1])
		os.Exit(2)
	}
}
