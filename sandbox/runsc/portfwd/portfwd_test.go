package portfwd

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"io"
	"net"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/google/nftables/expr"
	"golang.org/x/sys/unix"
)

func TestRedirectExprs(t *testing.T) {
	ex := redirectExprs(40123)
	var cmps [][]byte
	var ops []expr.CmpOp
	var redir, imm int
	for _, e := range ex {
		switch e := e.(type) {
		case *expr.Cmp:
			cmps = append(cmps, e.Data)
			ops = append(ops, e.Op)
		case *expr.Immediate:
			imm++
			if !bytes.Equal(e.Data, []byte{0x9c, 0xbb}) {
				t.Errorf("redirect target %x, want port 40123 big-endian", e.Data)
			}
		case *expr.Redir:
			redir++
			if e.RegisterProtoMin != 1 {
				t.Errorf("redir reads register %d", e.RegisterProtoMin)
			}
		}
	}
	lo := make([]byte, unix.IFNAMSIZ)
	copy(lo, "lo")
	want := [][]byte{lo, {unix.IPPROTO_TCP}, {127, 0, 0, 1}, {0x9c, 0xbb}}
	if !slices.EqualFunc(cmps, want, bytes.Equal) {
		t.Errorf("matches %x, want oifname lo, tcp, 127.0.0.1, dport 40123: %x", cmps, want)
	}
	if !slices.Equal(ops, []expr.CmpOp{expr.CmpOpEq, expr.CmpOpEq, expr.CmpOpEq, expr.CmpOpNeq}) {
		t.Errorf("comparison ops %v: the listener's own port must be excluded (neq), the rest equal", ops)
	}
	if redir != 1 || imm != 1 || ex[len(ex)-1] != ex[len(ex)-1].(*expr.Redir) {
		t.Errorf("want one immediate and one redirect, last: %d, %d", imm, redir)
	}
}

func TestParseSockaddrInet4(t *testing.T) {
	var b [unix.SizeofSockaddrInet4]byte
	binary.NativeEndian.PutUint16(b[0:2], unix.AF_INET)
	binary.BigEndian.PutUint16(b[2:4], 8080)
	copy(b[4:8], []byte{127, 0, 0, 1})
	got, err := parseSockaddrInet4(b)
	if err != nil || got != netip.MustParseAddrPort("127.0.0.1:8080") {
		t.Fatalf("parse = %v, %v", got, err)
	}
	binary.NativeEndian.PutUint16(b[0:2], unix.AF_INET6)
	if _, err := parseSockaddrInet4(b); err == nil {
		t.Fatal("AF_INET6 accepted")
	}
}

// tcpPair is a connected pair of loopback TCP connections.
func tcpPair(t *testing.T) (*net.TCPConn, *net.TCPConn) {
	t.Helper()
	ln, err := net.ListenTCP("tcp4", &net.TCPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	c, err := net.DialTCP("tcp4", nil, ln.Addr().(*net.TCPAddr))
	if err != nil {
		t.Fatal(err)
	}
	s, err := ln.AcceptTCP()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close(); s.Close() })
	return c, s
}

// unixPair is a connected pair of unix stream sockets.
func unixPair(t *testing.T) (*net.UnixConn, *net.UnixConn) {
	t.Helper()
	fds, err := unix.Socketpair(unix.AF_UNIX, unix.SOCK_STREAM|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		t.Fatal(err)
	}
	conn := func(fd int) *net.UnixConn {
		f := os.NewFile(uintptr(fd), "pair")
		defer f.Close()
		c, err := net.FileConn(f)
		if err != nil {
			t.Fatal(err)
		}
		return c.(*net.UnixConn)
	}
	a, b := conn(fds[0]), conn(fds[1])
	t.Cleanup(func() { a.Close(); b.Close() })
	return a, b
}

// TestSpliceHalfClose: the client sends a request and shuts down its
// sending side; the server reads to EOF, then answers, and the answer
// arrives in full after the client's half-close.
func TestSpliceHalfClose(t *testing.T) {
	client, front := tcpPair(t)
	back, server := unixPair(t)
	done := make(chan struct{})
	go func() { splice(front, back); close(done) }()

	big := bytes.Repeat([]byte("0123456789abcdef"), 1<<16) // 1 MiB
	go func() {
		req, _ := io.ReadAll(server) // until the client's half-close
		server.Write(append([]byte("got "), req[:4]...))
		server.Write(big)
		server.CloseWrite()
	}()
	if _, err := client.Write([]byte("ping")); err != nil {
		t.Fatal(err)
	}
	if err := client.CloseWrite(); err != nil {
		t.Fatal(err)
	}
	client.SetReadDeadline(time.Now().Add(10 * time.Second))
	got, err := io.ReadAll(client)
	if err != nil {
		t.Fatal(err)
	}
	if want := append([]byte("got ping"), big...); !bytes.Equal(got, want) {
		t.Fatalf("answer after half-close: %d bytes, want %d", len(got), len(want))
	}
	select {
	case <-done:
	case <-time.After(5 * time.Second):
		t.Fatal("splice did not end after both directions ended")
	}
}

// TestSpliceReset: a peer that resets ends both directions; the other
// side is not left waiting.
func TestSpliceReset(t *testing.T) {
	client, front := tcpPair(t)
	back, server := unixPair(t)
	done := make(chan struct{})
	go func() { splice(front, back); close(done) }()
	client.SetLinger(0)
	client.Close() // RST
	server.SetReadDeadline(time.Now().Add(5 * time.Second))
	if _, err := io.ReadAll(server); err != nil {
		t.Fatalf("server side after the client's reset: %v", err)
	}
	select {
	case <-done:
	case <-time.After(5 * time.Second):
		t.Fatal("splice still running after a reset")
	}
}

func TestRunscArgs(t *testing.T) {
	r := &Runsc{Binary: "runsc", Root: "/run/r/ns/pod", GlobalArgs: []string{"--oci-seccomp", "--network=sandbox"}, ContainerID: "pod"}
	got := r.args("/run/r/_portfwd/x/1", 8080)
	want := []string{"--root", "/run/r/ns/pod", "--oci-seccomp", "--network=sandbox", "port-forward", "--stream", "/run/r/_portfwd/x/1", "pod", "8080"}
	if !slices.Equal(got, want) {
		t.Fatalf("args %q, want %q", got, want)
	}
}

// fakeRunsc behaves as runsc port-forward --stream does: it connects to
// the socket, then exits 0, or fails with a message for refused ports.
func fakeRunsc(refused uint16, serve func(net.Conn)) func(*exec.Cmd) ([]byte, error) {
	return func(cmd *exec.Cmd) ([]byte, error) {
		args := cmd.Args
		path, port := args[len(args)-3], args[len(args)-1]
		c, err := net.Dial("unix", path)
		if err != nil {
			return nil, err
		}
		if port == strconv16(refused) {
			c.Close()
			return []byte("doStream: PortForward: connecting endpoint: connection refused\n"), errors.New("exit status 128")
		}
		go serve(c)
		return nil, nil
	}
}

func strconv16(p uint16) string { return strconv.Itoa(int(p)) }

func TestRunscDial(t *testing.T) {
	echo := func(c net.Conn) { io.Copy(c, c); c.Close() }
	r := &Runsc{Binary: "runsc", Root: "/r", ContainerID: "pod", SocketDir: t.TempDir(), Run: fakeRunsc(9, echo)}
	c, err := r.Dial(context.Background(), 80)
	if err != nil {
		t.Fatal(err)
	}
	c.Write([]byte("hi"))
	buf := make([]byte, 2)
	if _, err := io.ReadFull(c, buf); err != nil || string(buf) != "hi" {
		t.Fatalf("echo: %q %v", buf, err)
	}
	c.Close()
	_, err = r.Dial(context.Background(), 9)
	if err == nil || !strings.Contains(err.Error(), "connection refused") {
		t.Fatalf("refused port: %v, want runsc's message", err)
	}
	if left, _ := filepath.Glob(filepath.Join(r.SocketDir, "*")); len(left) > 0 {
		t.Errorf("sockets left: %v", left)
	}
}
