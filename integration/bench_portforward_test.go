//go:build bench

package integration

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"slices"
	"strings"
	"testing"
	"time"
)

// envBenchPFRounds is the number of rounds of P6 (default 20 connection
// setups per handler; a quarter of that, at least 3, 100 MiB downloads).
const envBenchPFRounds = "PALISADE_BENCH_PF_ROUNDS"

// TestBenchPortForward is P6 of make bench: `crictl port-forward` to a
// busybox httpd in a pod on Palisade's gvisor handler and in a pod on runc
// (containerd's shim), side by side in one containerd, rounds interleaved:
//
//	p6-setup       ms from dialling crictl's local port to the first byte
//	               of the answer to a GET on a new connection: containerd's
//	               stream, its dial in the pod's namespace and, on Palisade,
//	               the redirect and a `runsc port-forward` per connection
//	p6-throughput  MiB/s of a 100 MiB download through the forward
func TestBenchPortForward(t *testing.T) {
	rounds := benchEnvInt(t, envBenchPFRounds, 20)
	handlers := []string{"palisade", "runc"}
	p := startPortForwardEnv(t, handlers...)
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Minute)
	defer cancel()
	clients := map[string]*http.Client{}
	for _, h := range handlers {
		pod := p.startHTTPPod(t, ctx, h, "bench-"+h)
		clients[h] = p.httpClient(p.forward(t, pod.id, pfHTTPPort)[pfHTTPPort])
		// Warm: the first connection pays for first runs of binaries.
		if _, _, err := get(clients[h], "/index.html"); err != nil {
			t.Fatalf("%s: %v", h, err)
		}
	}
	samples := map[string]map[string][]float64{"p6-setup": {}, "p6-throughput": {}}
	for r := range rounds {
		order := slices.Clone(handlers)
		if r%2 == 1 {
			slices.Reverse(order)
		}
		for _, h := range order {
			d, err := firstByte(clients[h])
			if err != nil {
				t.Fatalf("%s setup round %d: %v", h, r, err)
			}
			samples["p6-setup"][h] = append(samples["p6-setup"][h], float64(d.Microseconds())/1000)
		}
	}
	stalls := map[string]int{}
	for r := range max(3, rounds/4) {
		order := slices.Clone(handlers)
		if r%2 == 1 {
			slices.Reverse(order)
		}
		for _, h := range order {
			// A download that stalls (gVisor's lost wakeup, see
			// docs/portforward.md) is counted and tried again.
			for try := 0; ; try++ {
				t0 := time.Now()
				n, _, err := get(clients[h], "/big")
				if errors.Is(err, errStalled) && try < 3 {
					stalls[h]++
					t.Logf("%s download round %d stalled: %v", h, r, err)
					continue
				}
				if err != nil || n != pfBigMiB<<20 {
					t.Fatalf("%s download round %d: %d bytes, %v", h, r, n, err)
				}
				samples["p6-throughput"][h] = append(samples["p6-throughput"][h], float64(pfBigMiB)/time.Since(t0).Seconds())
				break
			}
		}
	}
	var b strings.Builder
	for _, m := range []string{"p6-setup", "p6-throughput"} {
		med := map[string]float64{}
		for _, h := range handlers {
			med[h] = median(samples[m][h])
			for _, v := range samples[m][h] {
				fmt.Fprintf(&b, "%s\t%s\t%.3f\n", m, h, v)
			}
		}
		unit := "ms"
		if m == "p6-throughput" {
			unit = "MiB/s"
		}
		t.Logf("%-14s palisade %8.2f %s, runc %8.2f %s (medians of %d), palisade/runc %.2f",
			m, med["palisade"], unit, med["runc"], unit, len(samples[m]["runc"]), med["palisade"]/med["runc"])
	}
	for _, h := range handlers {
		fmt.Fprintf(&b, "p6-stalls\t%s\t%d\n", h, stalls[h])
	}
	t.Logf("stalled 100 MiB downloads (tried again): palisade %d, runc %d", stalls["palisade"], stalls["runc"])
	if dir := os.Getenv(envBenchData); dir != "" {
		appendSamples(t, dir, b.String())
	}
}

// firstByte is the time from a new connection's dial to the first byte of
// the answer to GET /index.html.
func firstByte(c *http.Client) (time.Duration, error) {
	t0 := time.Now()
	resp, err := c.Get("http://127.0.0.1/index.html")
	if err != nil {
		return 0, err
	}
	d := time.Since(t0)
	_, err = io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	return d, err
}
