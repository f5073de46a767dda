package monitor

import (
	"context"
	"path/filepath"
	"testing"

	pb "gvisor.dev/gvisor/pkg/sentry/seccheck/points/points_go_proto"
)

// BenchmarkReceiver is the receiver's own ceiling: a fake sandbox writes
// openat exit points as fast as the socket takes them, and every point is
// decoded and run through the shipped rules (none fires: the file is not
// sensitive). It reports the points/s evaluated, and the points the
// receiver's queue had no room for (the fake sandbox writes blocking, unlike
// runsc's sink, so nothing is dropped on its side).
func BenchmarkReceiver(b *testing.B) {
	cfg := Config{Enabled: true, SocketDir: b.TempDir(), AlertFile: filepath.Join(b.TempDir(), "a.jsonl")}.WithDefaults("bench")
	m, err := Start(context.Background(), cfg, "bench", "sb")
	if err != nil {
		b.Fatal(err)
	}
	defer m.Close()
	m.AddContainer("c", Meta{PodName: "p", PodNamespace: "n"})
	c := fakeSandboxB(b, m.Endpoint())
	p := packet(b, pb.MessageType_MESSAGE_SYSCALL_OPEN, 0, &pb.Open{
		ContextData: ctxData("c", "app"), Sysno: 257, Fd: atFdCwd, Pathname: "/var/lib/app/data", Exit: &pb.Exit{Result: 3},
	})
	b.SetBytes(int64(len(p)))
	b.ResetTimer()
	for range b.N {
		if _, err := c.Write(p); err != nil {
			b.Fatal(err)
		}
	}
	c.Close()
	var st Stats
	for st.Points+st.Overflow < uint64(b.N) {
		st, _ = m.Stats()
	}
	b.ReportMetric(float64(st.Points)/b.Elapsed().Seconds(), "points/s")
	b.ReportMetric(float64(st.Overflow), "overflow")
}
