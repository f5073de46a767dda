// Command palisade-cluster starts and stops the one-node Kubernetes cluster of
// package k8s in the background, for `make cluster` and `make cluster-down`.
//
//	palisade-cluster up -state DIR -tools DIR -bin DIR [-config FILE]
//	palisade-cluster down -state DIR
//
// up starts a detached server process that runs the cluster until down sends it
// SIGTERM; DIR (the repository's _cluster) holds its pid, its log and the
// kubeconfig. The cluster's own state lives in a short directory under /tmp
// (socket paths must stay short) and goes when it stops.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	"github.com/palisade-runtime/palisade/integration/internal/hostcheck"
	"github.com/palisade-runtime/palisade/integration/k8s"
)

func main() {
	if len(os.Args) < 2 {
		fmt.Fprintln(os.Stderr, "usage: palisade-cluster up|down [flags]")
		os.Exit(2)
	}
	fs := flag.NewFlagSet(os.Args[1], flag.ExitOnError)
	state := fs.String("state", "_cluster", "directory for the pid file, the log and the kubeconfig")
	tools := fs.String("tools", "_tools/bin", "the pinned tools (integration/tools/install.sh)")
	bin := fs.String("bin", "bin", "containerd-shim-palisade-v2, palisade-trampoline and palisadectl (make build)")
	config := fs.String("config", "", "Palisade config.toml to serve (default: the repository's)")
	_ = fs.Parse(os.Args[2:])
	abs := func(p string) string {
		a, err := filepath.Abs(p)
		if err != nil {
			fatal(err)
		}
		return a
	}
	s := paths{dir: abs(*state)}
	var err error
	switch os.Args[1] {
	case "up":
		err = up(s, []string{"-state", s.dir, "-tools", abs(*tools), "-bin", abs(*bin), "-config", *config})
	case "serve":
		err = serve(s, k8s.Options{ToolsBin: abs(*tools), PalisadeBin: abs(*bin), Config: *config, Log: os.Stderr})
	case "down":
		err = down(s)
	default:
		err = fmt.Errorf("unknown command %q: want up or down", os.Args[1])
	}
	if err != nil {
		fatal(err)
	}
}

func fatal(err error) {
	fmt.Fprintln(os.Stderr, "palisade-cluster:", err)
	os.Exit(1)
}

type paths struct{ dir string }

func (p paths) pid() string        { return filepath.Join(p.dir, "pid") }
func (p paths) log() string        { return filepath.Join(p.dir, "cluster.log") }
func (p paths) kubeconfig() string { return filepath.Join(p.dir, "kubeconfig") }

// running returns the server process recorded in the pid file, if it is alive.
func (p paths) running() (hostcheck.Proc, bool) {
	b, err := os.ReadFile(p.pid())
	if err != nil {
		return hostcheck.Proc{}, false
	}
	var pr hostcheck.Proc
	if _, err := fmt.Sscanf(string(b), "%d %d", &pr.PID, &pr.Start); err != nil {
		return hostcheck.Proc{}, false
	}
	return pr, hostcheck.Alive(pr)
}

// up starts the server detached (own session, output to the log) and waits until
// it has written the kubeconfig, or has exited.
func up(p paths, args []string) error {
	if pr, ok := p.running(); ok {
		return fmt.Errorf("a cluster is already running (pid %d); export KUBECONFIG=%s, or stop it with make cluster-down",
			pr.PID, p.kubeconfig())
	}
	// What a server killed without stopping its cluster left behind.
	swept, err := k8s.SweepStale(context.Background())
	for _, s := range swept {
		fmt.Fprintln(os.Stderr, "palisade-cluster:", s)
	}
	if err != nil {
		return err
	}
	if err := os.MkdirAll(p.dir, 0o755); err != nil {
		return err
	}
	_ = os.Remove(p.kubeconfig())
	logf, err := os.Create(p.log())
	if err != nil {
		return err
	}
	defer logf.Close()
	self, err := os.Executable()
	if err != nil {
		return err
	}
	cmd := exec.Command(self, append([]string{"serve"}, args...)...)
	cmd.Stdout, cmd.Stderr = logf, logf
	cmd.SysProcAttr = &syscall.SysProcAttr{Setsid: true}
	start := time.Now()
	if err := cmd.Start(); err != nil {
		return err
	}
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()
	fmt.Fprintf(os.Stderr, "palisade-cluster: starting (pid %d, log %s)\n", cmd.Process.Pid, p.log())
	for {
		select {
		case err := <-exited:
			b, _ := os.ReadFile(p.log())
			return fmt.Errorf("the cluster did not start (%v):\n%s", err, lastLines(string(b), 30))
		case <-time.After(500 * time.Millisecond):
		}
		if _, err := os.Stat(p.kubeconfig()); err == nil {
			fmt.Fprintf(os.Stderr, "palisade-cluster: up in %v; kubectl is in the tools bin\n", time.Since(start).Round(time.Second))
			fmt.Printf("export KUBECONFIG=%s\n", p.kubeconfig())
			return nil
		}
	}
}

// serve runs the cluster until SIGTERM or SIGINT, then stops it.
func serve(p paths, o k8s.Options) error {
	self, ok := hostcheck.Lookup(os.Getpid())
	if !ok {
		return errors.New("no /proc entry for this process")
	}
	if err := os.WriteFile(p.pid(), fmt.Appendf(nil, "%d %d\n", self.PID, self.Start), 0o644); err != nil {
		return err
	}
	defer os.Remove(p.pid())
	sigs := make(chan os.Signal, 1)
	signal.Notify(sigs, syscall.SIGTERM, syscall.SIGINT)
	ctx, cancel := context.WithCancel(context.Background())
	go func() { <-sigs; cancel() }()
	c, err := k8s.Start(ctx, o)
	if err != nil {
		return err
	}
	b, err := os.ReadFile(c.Kubeconfig())
	if err == nil {
		// Written whole, then renamed: up takes its appearance as "ready".
		tmp := p.kubeconfig() + ".tmp"
		if err = os.WriteFile(tmp, b, 0o600); err == nil {
			err = os.Rename(tmp, p.kubeconfig())
		}
	}
	if err == nil {
		<-ctx.Done()
	}
	start := time.Now()
	os.Remove(p.kubeconfig())
	serr := c.Stop(context.Background())
	fmt.Fprintf(os.Stderr, "palisade-cluster: stopped in %v\n", time.Since(start).Round(time.Millisecond))
	return errors.Join(err, serr)
}

// down signals the server and waits for it to have stopped everything.
func down(p paths) error {
	pr, ok := p.running()
	if !ok {
		fmt.Fprintln(os.Stderr, "palisade-cluster: no cluster running")
		return nil
	}
	start := time.Now()
	if err := syscall.Kill(pr.PID, syscall.SIGTERM); err != nil {
		return err
	}
	for hostcheck.Alive(pr) {
		if time.Since(start) > 5*time.Minute {
			return fmt.Errorf("the cluster (pid %d) has not stopped after 5 minutes; see %s", pr.PID, p.log())
		}
		time.Sleep(200 * time.Millisecond)
	}
	b, _ := os.ReadFile(p.log())
	last := lastLines(string(b), 1)
	if !strings.Contains(last, "stopped in") {
		return fmt.Errorf("the cluster stopped with errors (%s):\n%s", p.log(), lastLines(string(b), 30))
	}
	fmt.Fprintf(os.Stderr, "palisade-cluster: down in %v\n", time.Since(start).Round(time.Millisecond))
	return nil
}

func lastLines(s string, n int) string {
	lines := strings.Split(strings.TrimRight(s, "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}
