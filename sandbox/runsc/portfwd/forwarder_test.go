package portfwd

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/containernetworking/plugins/pkg/ns"
	"golang.org/x/sys/unix"
)

// fakeSandbox answers every port with "port N" and then echoes, except
// refused, which fails as runsc does for a port with no listener.
type fakeSandbox struct {
	refused uint16
	mu      sync.Mutex
	dials   []uint16
}

func (s *fakeSandbox) Dial(ctx context.Context, port uint16) (net.Conn, error) {
	s.mu.Lock()
	s.dials = append(s.dials, port)
	s.mu.Unlock()
	if port == s.refused {
		return nil, errors.New("connecting endpoint: connection refused")
	}
	fds, err := unix.Socketpair(unix.AF_UNIX, unix.SOCK_STREAM|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		return nil, err
	}
	conn := func(fd int) net.Conn {
		f := os.NewFile(uintptr(fd), "pair")
		defer f.Close()
		c, _ := net.FileConn(f)
		return c
	}
	a, b := conn(fds[0]), conn(fds[1])
	go func() {
		defer b.Close()
		fmt.Fprintf(b, "port %d\n", port)
		io.Copy(b, b)
	}()
	return a, nil
}

// testNetNS is a fresh, named network namespace with its loopback up, as
// CNI's loopback plugin leaves a pod's. It is mounted at a path, as
// containerd's are: a /proc/<pid>/task/<tid>/ns/net path would name
// whatever namespace that thread is in by the time it is opened.
func testNetNS(t *testing.T) ns.NetNS {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("needs root: creates a network namespace and nftables rules in it")
	}
	if _, err := exec.LookPath("ip"); err != nil {
		t.Skip("needs ip (iproute2)")
	}
	name := fmt.Sprintf("pal-portfwd-test-%d", os.Getpid())
	if out, err := exec.Command("ip", "netns", "add", name).CombinedOutput(); err != nil {
		t.Fatalf("ip netns add: %v: %s", err, out)
	}
	t.Cleanup(func() { exec.Command("ip", "netns", "del", name).Run() })
	if out, err := exec.Command("ip", "-n", name, "link", "set", "lo", "up").CombinedOutput(); err != nil {
		t.Fatalf("loopback up: %v: %s", err, out)
	}
	netns, err := ns.GetNS("/run/netns/" + name)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { netns.Close() })
	return netns
}

func dialIn(t *testing.T, netns ns.NetNS, port int) (net.Conn, error) {
	t.Helper()
	var c net.Conn
	err := netns.Do(func(ns.NetNS) (err error) {
		c, err = net.DialTimeout("tcp4", fmt.Sprintf("127.0.0.1:%d", port), 5*time.Second)
		return err
	})
	return c, err
}

// TestForwarder: in a namespace of its own, a connection to any port on
// 127.0.0.1 reaches the sandbox's same port; a port the sandbox refuses
// resets the client at once; Close removes the rule and the listener.
func TestForwarder(t *testing.T) {
	netns := testNetNS(t)
	sb := &fakeSandbox{refused: 9}
	f, err := Start(context.Background(), Config{NetNS: netns.Path(), Dialer: sb})
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if ok, err := HasTable(netns.Path()); !ok || err != nil {
		t.Fatalf("table after Start: %v %v", ok, err)
	}
	if ok, err := HasTable("/proc/self/ns/net"); ok || err != nil {
		t.Fatalf("the test's own namespace got the table: %v %v", ok, err)
	}

	var wg sync.WaitGroup
	for _, port := range []int{80, 8080, 65535, int(f.Port())} {
		wg.Go(func() {
			c, err := dialIn(t, netns, port)
			if err != nil {
				t.Errorf("port %d: %v", port, err)
				return
			}
			defer c.Close()
			c.SetDeadline(time.Now().Add(5 * time.Second))
			fmt.Fprintf(c, "hello\n")
			buf := make([]byte, 64)
			n, err := io.ReadAtLeast(c, buf, len(fmt.Sprintf("port %d\nhello\n", port)))
			if want := fmt.Sprintf("port %d\nhello\n", port); err != nil || string(buf[:n]) != want {
				t.Errorf("port %d: %q %v, want %q", port, buf[:n], err, want)
			}
		})
	}
	wg.Wait()

	// The reset can beat the dialer to its own connect result, so it
	// shows either as the dial's error or as the first read's.
	t0 := time.Now()
	c, err := dialIn(t, netns, 9)
	if err == nil {
		c.SetDeadline(time.Now().Add(5 * time.Second))
		_, err = c.Read(make([]byte, 1))
		c.Close()
	}
	if err == nil || !strings.Contains(err.Error(), "connection reset") {
		t.Errorf("refused port: %v, want a reset", err)
	}
	if d := time.Since(t0); d > 2*time.Second {
		t.Errorf("refused port took %v", d)
	}

	if err := f.Close(); err != nil {
		t.Fatal(err)
	}
	if ok, err := HasTable(netns.Path()); ok || err != nil {
		t.Fatalf("table after Close: %v %v", ok, err)
	}
	if _, err := dialIn(t, netns, 80); err == nil || !strings.Contains(err.Error(), "refused") {
		t.Fatalf("after Close: %v, want connection refused", err)
	}
}

// TestRemove is the shim delete path: a table left by a dead shim goes;
// a namespace with none, or one that is gone, is fine.
func TestRemove(t *testing.T) {
	netns := testNetNS(t)
	if err := installRule(int(netns.Fd()), 1234); err != nil {
		t.Fatal(err)
	}
	// A second install (a restarted forwarder) replaces the table.
	if err := installRule(int(netns.Fd()), 1235); err != nil {
		t.Fatal(err)
	}
	if err := Remove(netns.Path()); err != nil {
		t.Fatal(err)
	}
	if ok, err := HasTable(netns.Path()); ok || err != nil {
		t.Fatalf("table after Remove: %v %v", ok, err)
	}
	if err := Remove(netns.Path()); err != nil {
		t.Fatalf("second Remove: %v", err)
	}
	if err := Remove(t.TempDir() + "/gone"); err != nil {
		t.Fatalf("absent namespace: %v", err)
	}
}
