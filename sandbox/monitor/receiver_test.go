package monitor

import (
	"bufio"
	"context"
	"encoding/json"
	"net"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
	"time"

	"google.golang.org/protobuf/proto"
	pb "gvisor.dev/gvisor/pkg/sentry/seccheck/points/points_go_proto"

	"github.com/palisade-runtime/palisade/sandbox/monitor/rules"
)

// fakeSandbox connects to a receiver as runsc's remote sink does.
func fakeSandbox(t *testing.T, path string) *net.UnixConn {
	t.Helper()
	return fakeSandboxB(t, path)
}

func fakeSandboxB(t testing.TB, path string) *net.UnixConn {
	t.Helper()
	c, err := net.DialUnix("unixpacket", nil, &net.UnixAddr{Name: path, Net: "unixpacket"})
	if err != nil {
		t.Fatal(err)
	}
	hs, _ := proto.Marshal(&pb.Handshake{Version: 1})
	if _, err := c.Write(hs); err != nil {
		t.Fatal(err)
	}
	buf := make([]byte, handshakeBuffer)
	c.SetReadDeadline(time.Now().Add(5 * time.Second))
	n, err := c.Read(buf)
	if err != nil {
		t.Fatal(err)
	}
	var reply pb.Handshake
	if err := proto.Unmarshal(buf[:n], &reply); err != nil || reply.Version != 1 {
		t.Fatalf("handshake reply %v %v", reply.Version, err)
	}
	return c
}

func testConfig(t *testing.T) Config {
	cfg := Config{Enabled: true, SocketDir: t.TempDir(), AlertFile: filepath.Join(t.TempDir(), "alerts.jsonl")}
	return cfg.WithDefaults("test")
}

func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	for deadline := time.Now().Add(5 * time.Second); time.Now().Before(deadline); time.Sleep(10 * time.Millisecond) {
		if cond() {
			return
		}
	}
	t.Fatalf("timed out waiting for %s", what)
}

// A fake sandbox's points become alerts naming the right container and pod;
// garbage and a dropped count are counted; Close leaves no socket and no
// goroutine behind.
func TestMonitorEndToEnd(t *testing.T) {
	before := runtime.NumGoroutine()
	cfg := testConfig(t)
	m, err := Start(context.Background(), cfg, "k8s.io", "sandbox1")
	if err != nil {
		t.Fatal(err)
	}
	if fi, err := os.Stat(m.Endpoint()); err != nil || fi.Mode().Perm() != 0o600 || fi.Mode()&os.ModeSocket == 0 {
		t.Fatalf("socket %v %v", fi, err)
	}
	m.AddContainer("web", Meta{Name: "web", Image: "busybox", PodName: "pod-a", PodNamespace: "ns-a"})
	m.AddContainer("db", Meta{Name: "db", Image: "busybox", PodName: "pod-a", PodNamespace: "ns-a"})
	c := fakeSandbox(t, m.Endpoint())
	send := func(p []byte) {
		if _, err := c.Write(p); err != nil {
			t.Fatal(err)
		}
	}
	send(packet(t, pb.MessageType_MESSAGE_SYSCALL_OPEN, 0, &pb.Open{ContextData: ctxData("web", "cat"), Sysno: 257, Fd: atFdCwd, Pathname: "/etc/shadow", Exit: &pb.Exit{Result: 3}}))
	send(packet(t, pb.MessageType_MESSAGE_SYSCALL_OPEN, 2, &pb.Open{ContextData: ctxData("db", "cat"), Sysno: 257, Fd: atFdCwd, Pathname: "/etc/hostname", Exit: &pb.Exit{Result: 3}}))
	send([]byte{1, 2, 3})
	send(append(appendHeader(nil, pb.MessageType_MESSAGE_SYSCALL_OPEN, 2), 0xff))
	send(appendHeader(nil, 999, 5))
	send(packet(t, pb.MessageType_MESSAGE_SYSCALL_OPEN, 5, &pb.Open{ContextData: ctxData("db", "touch"), Sysno: 2, Pathname: "/etc/x", Flags: oWrOnly | oCreat, Exit: &pb.Exit{Result: 3}}))
	waitFor(t, "points", func() bool { st, _ := m.Stats(); return st.Points == 3 && st.Malformed == 2 && st.Unknown == 1 })
	c.Close()
	if err := m.Close(); err != nil {
		t.Fatal(err)
	}
	st, alerts := m.Stats()
	if st.Dropped != 5 || alerts != 2 {
		t.Errorf("stats %+v, %d alerts", st, alerts)
	}
	if _, err := os.Stat(m.Endpoint()); !os.IsNotExist(err) {
		t.Errorf("socket left behind: %v", err)
	}
	f, err := os.Open(cfg.AlertFile)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var got []rules.AlertRecord
	for sc := bufio.NewScanner(f); sc.Scan(); {
		var a rules.AlertRecord
		if err := json.Unmarshal(sc.Bytes(), &a); err != nil {
			t.Fatal(err)
		}
		got = append(got, a)
	}
	if len(got) != 2 || got[0].Rule != "Read sensitive file untrusted" || got[0].OutputFields["container.id"] != "web" ||
		got[0].OutputFields["k8s.pod.name"] != "pod-a" || got[1].Rule != "Write below etc" || got[1].OutputFields["container.id"] != "db" {
		t.Errorf("alerts %+v", got)
	}
	waitFor(t, "goroutines to end", func() bool { return runtime.NumGoroutine() <= before })
}

// A connection that never says hello, or says nonsense, does not hold the
// receiver; Close ends connections that are still open.
func TestReceiverHostilePeers(t *testing.T) {
	before := runtime.NumGoroutine()
	m, err := listen(context.Background(), filepath.Join(t.TempDir(), "s.sock"), func(*rules.Event) {}, 1024)
	if err != nil {
		t.Fatal(err)
	}
	silent, err := net.DialUnix("unixpacket", nil, &net.UnixAddr{Name: m.Path(), Net: "unixpacket"})
	if err != nil {
		t.Fatal(err)
	}
	defer silent.Close()
	bad, err := net.DialUnix("unixpacket", nil, &net.UnixAddr{Name: m.Path(), Net: "unixpacket"})
	if err != nil {
		t.Fatal(err)
	}
	defer bad.Close()
	bad.Write([]byte{0xff, 0xff})
	good := fakeSandbox(t, m.Path())
	defer good.Close()
	if _, err := good.Write(make([]byte, 2048)); err != nil { // truncated on receipt
		t.Fatal(err)
	}
	waitFor(t, "refusal and truncation", func() bool { st := m.Stats(); return st.Refused >= 1 && st.Malformed == 1 })
	done := make(chan error)
	go func() { done <- m.Close() }()
	select {
	case err := <-done:
		if err != nil {
			t.Fatal(err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("Close hangs on open connections")
	}
	waitFor(t, "goroutines to end", func() bool { return runtime.NumGoroutine() <= before })
}

func TestAlertFileRotates(t *testing.T) {
	p := filepath.Join(t.TempDir(), "a.jsonl")
	f := alertFile{path: p, max: 100}
	line := []byte(strings.Repeat("x", 59) + "\n")
	for range 3 {
		if err := f.write(line); err != nil {
			t.Fatal(err)
		}
	}
	cur, _ := os.ReadFile(p)
	old, _ := os.ReadFile(p + ".1")
	if len(cur) != 60 || len(old) != 60 {
		t.Errorf("current %d bytes, rotated %d", len(cur), len(old))
	}
}

func TestSocketPathShort(t *testing.T) {
	p := SocketPath(DefaultSocketDir, "k8s.io", strings.Repeat("f", 64))
	if len(p) >= 108 || !strings.HasPrefix(p, DefaultSocketDir+"/") {
		t.Errorf("%q", p)
	}
	if SocketPath(DefaultSocketDir, "a", "b") == SocketPath(DefaultSocketDir, "a", "c") {
		t.Error("collision")
	}
}

// A rule tripped in a loop writes alert_rate_limit alerts a minute per
// container; the rest are counted.
func TestMonitorRateLimit(t *testing.T) {
	cfg := testConfig(t)
	limit := 3
	cfg.AlertRateLimit = &limit
	m, err := Start(context.Background(), cfg, "default", "rl")
	if err != nil {
		t.Fatal(err)
	}
	c := fakeSandbox(t, m.Endpoint())
	for range 10 {
		if _, err := c.Write(packet(t, pb.MessageType_MESSAGE_SYSCALL_OPEN, 0, &pb.Open{ContextData: ctxData("loop", "cat"), Sysno: 257, Fd: atFdCwd, Pathname: "/etc/shadow", Exit: &pb.Exit{Result: 3}})); err != nil {
			t.Fatal(err)
		}
	}
	waitFor(t, "points", func() bool { st, _ := m.Stats(); return st.Points == 10 })
	c.Close()
	if err := m.Close(); err != nil {
		t.Fatal(err)
	}
	data, _ := os.ReadFile(cfg.AlertFile)
	if n := strings.Count(string(data), "\n"); n != 3 || m.held.Load() != 7 {
		t.Errorf("%d alerts written, %d held; want 3 and 7", n, m.held.Load())
	}
}
