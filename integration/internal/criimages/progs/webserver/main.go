// Command webserver stands in for the nginx and httpd test images. critest checks
// only the observable behaviour of those servers, which this reproduces:
//   - installed as nginx: the process is named nginx, its command line reads
//     "nginx: master process ..." (critest greps /proc/1/cmdline for it), and it
//     writes its PID to /var/run/nginx.pid (the HostPID spec compares it with pidof);
//   - installed under any other name (httpd-foreground): it logs a line naming
//     itself on stderr, which the multi-container spec looks for in the log;
//   - both answer HTTP GET with 200 on $LISTEN_ADDR (default :80).
package main

import (
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
)

// masterTitle is the command line nginx gives its master process.
const masterTitle = "nginx: master process "

func main() {
	name := filepath.Base(os.Args[0])
	if name == "nginx" {
		retitle()
	}
	if strings.HasPrefix(os.Args[0], masterTitle) {
		name = "nginx"
		pid := strconv.Itoa(os.Getpid()) + "\n"
		if err := os.WriteFile("/var/run/nginx.pid", []byte(pid), 0o644); err != nil {
			fatal(err)
		}
	}
	addr := os.Getenv("LISTEN_ADDR")
	if addr == "" {
		addr = ":80"
	}
	fmt.Fprintf(os.Stderr, "%s: stand-in web server listening on %s\n", name, addr)
	http.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		fmt.Fprintf(w, "<html><body><h1>Welcome to %s (critest stand-in)</h1></body></html>\n", name)
	})
	fatal(http.ListenAndServe(addr, nil))
}

// retitle re-executes the binary with nginx's master-process title as its only
// argument. Rewriting argv in place would need prctl(PR_SET_MM), which needs
// CAP_SYS_RESOURCE; execve keeps the PID, and the process name (comm) comes from
// the file executed, so it stays "nginx".
func retitle() {
	exe, err := os.Executable()
	if err != nil {
		fatal(err)
	}
	fatal(syscall.Exec(exe, []string{masterTitle + strings.Join(os.Args, " ")}, os.Environ()))
}

func fatal(err error) {
	fmt.Fprintln(os.Stderr, err)
	os.Exit(1)
}
