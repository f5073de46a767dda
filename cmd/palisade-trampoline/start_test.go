package main

import (
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"testing"
	"time"
)

// BenchmarkStart compares what one `runsc exec` costs before runsc runs:
// the shim's binary as the trampoline (the fallback, and how every exec ran
// before palisade-trampoline) against palisade-trampoline, both execing
// /bin/true in runsc's place. The runs alternate so that the load of a
// shared machine falls on both alike; /bin/true run directly is the floor
// (added-ratio compares what each adds to it). It needs built binaries:
//
//	make build && PALISADE_BIN=$PWD/bin go test -run '^$' -bench Start -benchtime 200x ./cmd/palisade-trampoline
func BenchmarkStart(b *testing.B) {
	bin := os.Getenv("PALISADE_BIN")
	if bin == "" {
		b.Skip("PALISADE_BIN names no directory of built binaries (make build)")
	}
	args := []string{"exec", "--pid-file", filepath.Join(b.TempDir(), "x.pid"), "c"}
	run := func(path string) time.Duration {
		cmd := exec.Command(path, args...)
		cmd.Env = append(os.Environ(), "PALISADE_RUNSC_EXEC=/bin/true")
		start := time.Now()
		if out, err := cmd.CombinedOutput(); err != nil {
			b.Fatalf("%s: %v\n%s", path, err, out)
		}
		return time.Since(start)
	}
	// direct is runsc (/bin/true) run without a trampoline: the floor both
	// are measured against.
	paths := []string{filepath.Join(bin, "containerd-shim-palisade-v2"), filepath.Join(bin, "palisade-trampoline"), "/bin/true"}
	times := make([][]time.Duration, len(paths))
	for i := 0; b.Loop(); i++ {
		for j := range paths {
			k := (i + j) % len(paths) // each first in turn
			times[k] = append(times[k], run(paths[k]))
		}
	}
	shim, tramp, direct := median(times[0]), median(times[1]), median(times[2])
	b.ReportMetric(0, "ns/op")
	b.ReportMetric(ms(shim), "shim-ms")
	b.ReportMetric(ms(tramp), "trampoline-ms")
	b.ReportMetric(ms(direct), "direct-ms")
	b.ReportMetric(float64(shim)/float64(tramp), "ratio")
	b.ReportMetric(float64(shim-direct)/float64(tramp-direct), "added-ratio")
}

func ms(d time.Duration) float64 { return float64(d.Microseconds()) / 1000 }

func median(d []time.Duration) time.Duration {
	d = slices.Clone(d)
	slices.Sort(d)
	return d[len(d)/2]
}
