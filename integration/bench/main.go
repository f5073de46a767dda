// Command bench writes the benchmark report, docs/benchmarks.md, and its
// chart, docs/benchmarks.png, from the samples integration/bench.sh measured
// (make bench runs it last). It measures nothing itself.
//
//	go run . -data DIR -out DIR
//
// DIR holds samples.tsv, meta.tsv and, when P3 ran, gobench.txt.
package main

import (
	"flag"
	"fmt"
	"image/png"
	"os"
	"path/filepath"
	"strings"
)

func main() {
	data := flag.String("data", "", "directory with samples.tsv, meta.tsv and gobench.txt")
	out := flag.String("out", "docs", "directory to write benchmarks.md and benchmarks.png into")
	flag.Parse()
	if err := run(*data, *out); err != nil {
		fmt.Fprintln(os.Stderr, "bench:", err)
		os.Exit(1)
	}
}

func run(data, out string) error {
	s, err := readSamples(filepath.Join(data, "samples.tsv"))
	if err != nil {
		return err
	}
	meta, err := readMeta(filepath.Join(data, "meta.tsv"))
	if err != nil {
		return err
	}
	gob, err := readGoBench(data)
	if err != nil {
		return err
	}
	if err := os.MkdirAll(out, 0o755); err != nil {
		return err
	}
	const chartName = "benchmarks.png"
	r := &report{s: s, meta: meta, gob: gob, m: describeMachine(), chart: chartName}
	md := filepath.Join(out, "benchmarks.md")
	if err := os.WriteFile(md, []byte(r.build()), 0o644); err != nil {
		return err
	}
	f, err := os.Create(filepath.Join(out, chartName))
	if err != nil {
		return err
	}
	if err := png.Encode(f, render(chartPanels(s))); err != nil {
		f.Close()
		return err
	}
	if err := f.Close(); err != nil {
		return err
	}
	fmt.Printf("wrote %s and %s\n", md, filepath.Join(out, chartName))
	return nil
}

// chartPanels are P1's start-to-exit times and P4's time and memory, per
// runtime, from the same samples as the report's tables.
func chartPanels(s samples) []panel {
	timed := func(metric string, rows []series) []bar {
		var bars []bar
		for _, r := range rows {
			v := s.summary(metric, r.name)
			if v.n == 0 {
				continue
			}
			bars = append(bars, bar{label: r.name, median: v.median, lo: v.min, hi: v.max,
				highlighted: strings.HasPrefix(r.name, "palisade")})
		}
		return bars
	}
	panels := []panel{
		{title: "P1 start-to-exit, ctr run --rm busybox /bin/true (median, min-max)", unit: "ms", bars: timed("p1", p1Series)},
	}
	pods := s.summary("p4-pods", "palisade-sandbox").median
	wall := timed("p4-wall", p4Series)
	if len(wall) > 0 {
		panels = append(panels, panel{title: fmt.Sprintf("P4 %.0f pods started at once through CRI: time until all run (median, min-max)", pods),
			unit: "s", bars: wall})
		var mem []bar
		for _, r := range p4Series {
			shim, below := s.summary("p4-shim-pss-per-pod", r.name), s.summary("p4-sandbox-pss-per-pod", r.name)
			if shim.n == 0 {
				continue
			}
			mem = append(mem, bar{label: r.name, stack: []float64{shim.median, below.median}})
		}
		panels = append(panels, panel{title: "P4 memory per pod, PSS (median)", unit: "MiB", bars: mem,
			legend: []string{"shim", "runsc sandbox, gofers and helpers under the shim"}})
	}
	return panels
}
