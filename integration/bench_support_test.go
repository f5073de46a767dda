//go:build bench

// What TestBenchDensity needs around it: memory and process readings from
// /proc, and the samples it writes for integration/bench.

package integration

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"
)

// usage is memory in bytes, summed over processes.
type usage struct{ rss, pss, pssAnon int64 }

func (u *usage) add(v usage) { u.rss += v.rss; u.pss += v.pss; u.pssAnon += v.pssAnon }

// readUsage reads a process's Rss, Pss and Pss_Anon from smaps_rollup. PSS
// divides each shared page among the processes that map it, so that a sum
// of PSS over processes counts every page once; but it also divides a
// binary's pages with processes outside the measurement (another test's
// shims), so Pss_Anon, memory no other process shares, is kept apart. A
// process that is gone counts 0.
func readUsage(pid int) usage {
	f, err := os.Open(fmt.Sprintf("/proc/%d/smaps_rollup", pid))
	if err != nil {
		return usage{}
	}
	defer f.Close()
	var u usage
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		k, v, ok := strings.Cut(sc.Text(), ":")
		field := map[string]*int64{"Rss": &u.rss, "Pss": &u.pss, "Pss_Anon": &u.pssAnon}[k]
		if !ok || field == nil {
			continue
		}
		kb, err := strconv.ParseInt(strings.TrimSuffix(strings.TrimSpace(v), " kB"), 10, 64)
		if err != nil {
			continue
		}
		*field = kb << 10
	}
	return u
}

// memAvailable is the kernel's estimate of memory available for new work.
func memAvailable(t testing.TB) int64 {
	data, err := os.ReadFile("/proc/meminfo")
	if err != nil {
		t.Fatal(err)
	}
	for line := range strings.Lines(string(data)) {
		if v, ok := strings.CutPrefix(line, "MemAvailable:"); ok {
			kb, err := strconv.ParseInt(strings.TrimSuffix(strings.TrimSpace(v), " kB"), 10, 64)
			if err != nil {
				t.Fatal(err)
			}
			return kb << 10
		}
	}
	t.Fatal("no MemAvailable in /proc/meminfo")
	return 0
}

type procNode struct {
	ppid    int
	cmdline string
}

// procs is the host's processes by PID, with their parents.
type procs map[int]procNode

func procTree(t testing.TB) procs {
	ents, err := os.ReadDir("/proc")
	if err != nil {
		t.Fatal(err)
	}
	out := procs{}
	for _, e := range ents {
		pid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		stat, err1 := os.ReadFile("/proc/" + e.Name() + "/stat")
		cmd, err2 := os.ReadFile("/proc/" + e.Name() + "/cmdline")
		i := bytes.LastIndexByte(stat, ')')
		if err1 != nil || err2 != nil || i < 0 {
			continue // gone, or a kernel thread
		}
		f := strings.Fields(string(stat[i+1:]))
		if len(f) < 2 || f[0] == "Z" {
			continue
		}
		ppid, _ := strconv.Atoi(f[1])
		out[pid] = procNode{ppid: ppid, cmdline: string(bytes.ReplaceAll(bytes.TrimRight(cmd, "\x00"), []byte{0}, []byte{' '}))}
	}
	return out
}

// descendants are the processes below pid. Shims are child subreapers, so
// runsc's sandboxes and gofers stay below their shim.
func (p procs) descendants(pid int) []int {
	kids := map[int][]int{}
	for c, n := range p {
		kids[n.ppid] = append(kids[n.ppid], c)
	}
	queue := append([]int(nil), kids[pid]...)
	for i := 0; i < len(queue); i++ {
		queue = append(queue, kids[queue[i]]...)
	}
	return queue
}

// report logs the batch and appends it to $PALISADE_BENCH_DATA/samples.tsv.
func (res batchResult) report(t *testing.T) {
	slices.Sort(res.podStart)
	median := res.podStart[len(res.podStart)/2]
	t.Logf("%-16s %d pods running in %6.2f s (pod start median %v, max %v), removed in %5.2f s; per pod: "+
		"MemAvailable down %.1f MiB, shim PSS %.1f MiB (anon %.1f), sandbox PSS %.1f MiB (anon %.1f), %.1f processes under the shim; leaks %+v",
		res.series, res.pods, res.wall.Seconds(), median.Round(time.Millisecond), res.podStart[len(res.podStart)-1].Round(time.Millisecond),
		res.teardown.Seconds(), res.perPod(res.memAvailable), res.perPod(res.shim.pss), res.perPod(res.shim.pssAnon),
		res.perPod(res.sandbox.pss), res.perPod(res.sandbox.pssAnon),
		float64(res.procs)/float64(res.pods), res.leaked)
	dir := os.Getenv(envBenchData)
	if dir == "" {
		return
	}
	var b strings.Builder
	add := func(metric string, v float64) { fmt.Fprintf(&b, "%s\t%s\t%.3f\n", metric, res.series, v) }
	add("p4-wall", res.wall.Seconds())
	add("p4-teardown", res.teardown.Seconds())
	for _, d := range res.podStart {
		add("p4-pod-start", float64(d.Milliseconds()))
	}
	add("p4-pods", float64(res.pods))
	add("p4-memavailable-per-pod", res.perPod(res.memAvailable))
	add("p4-shim-pss-per-pod", res.perPod(res.shim.pss))
	add("p4-shim-rss-per-pod", res.perPod(res.shim.rss))
	add("p4-shim-pss-anon-per-pod", res.perPod(res.shim.pssAnon))
	add("p4-sandbox-pss-per-pod", res.perPod(res.sandbox.pss))
	add("p4-sandbox-pss-anon-per-pod", res.perPod(res.sandbox.pssAnon))
	add("p4-procs-per-pod", float64(res.procs)/float64(res.pods))
	l := res.leaked
	add("p4-leaked", float64(l.procs+l.mounts+l.paths+l.cni+l.ipLeases+l.cgroups))
	add("p4-leaked-procs", float64(l.procs))
	add("p4-leaked-mounts", float64(l.mounts))
	add("p4-leaked-paths", float64(l.paths))
	add("p4-leaked-cni", float64(l.cni+l.ipLeases))
	add("p4-leaked-cgroups", float64(l.cgroups))
	appendSamples(t, dir, b.String())
}

// appendSamples appends lines (metric, series, value; tab-separated) to
// dir/samples.tsv, which integration/bench reads.
func appendSamples(t testing.TB, dir, lines string) {
	f, err := os.OpenFile(filepath.Join(dir, "samples.tsv"), os.O_APPEND|os.O_CREATE|os.O_WRONLY, 0o644)
	if err == nil {
		_, err = f.WriteString(lines)
		err = errors.Join(err, f.Close())
	}
	if err != nil {
		t.Errorf("write samples: %v", err)
	}
}

func benchEnvInt(t testing.TB, name string, def int) int {
	v := os.Getenv(name)
	if v == "" {
		return def
	}
	n, err := strconv.Atoi(v)
	if err != nil || n < 1 {
		t.Fatalf("%s=%q: want a positive integer", name, v)
	}
	return n
}

func newEntries(before, after []string) []string {
	var out []string
	for _, a := range after {
		if !slices.Contains(before, a) {
			out = append(out, a)
		}
	}
	return out
}
