package main

import (
	"bufio"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
)

// samples are the measurements of one run, as integration/bench.sh and
// TestBenchDensity append them to samples.tsv: one line per value, "metric
// TAB series TAB value". A metric's values for one series are in the order
// they were measured, so that the i-th values of two series that were
// measured in turn (A, B, A, B) belong to the same round.
type samples map[string]map[string][]float64

func readSamples(path string) (samples, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	s := samples{}
	sc := bufio.NewScanner(f)
	for n := 1; sc.Scan(); n++ {
		fields := strings.Split(sc.Text(), "\t")
		if len(fields) != 3 {
			return nil, fmt.Errorf("%s:%d: want metric, series and value, got %q", path, n, sc.Text())
		}
		v, err := strconv.ParseFloat(fields[2], 64)
		if err != nil {
			return nil, fmt.Errorf("%s:%d: %w", path, n, err)
		}
		if s[fields[0]] == nil {
			s[fields[0]] = map[string][]float64{}
		}
		s[fields[0]][fields[1]] = append(s[fields[0]][fields[1]], v)
	}
	return s, sc.Err()
}

// get returns the values of one metric and series (nil if none).
func (s samples) get(metric, series string) []float64 { return s[metric][series] }

// summary is what a table shows of a set of values.
type summary struct {
	median, min, max float64
	n                int
}

func summarize(v []float64) summary {
	if len(v) == 0 {
		return summary{median: math.NaN(), min: math.NaN(), max: math.NaN()}
	}
	s := slices.Sorted(slices.Values(v))
	m := s[len(s)/2]
	if len(s)%2 == 0 {
		m = (s[len(s)/2-1] + s[len(s)/2]) / 2
	}
	return summary{median: m, min: s[0], max: s[len(s)-1], n: len(s)}
}

func (s samples) summary(metric, series string) summary { return summarize(s.get(metric, series)) }

// ratio is the ratio of the medians of two series, and the median of the
// ratios of their values round by round (their first n values, n the
// shorter count). Both are shown: on a noisy machine the paired ratio is
// the steadier one, since each pair ran back to back.
type ratio struct {
	ofMedians, paired summary
}

func (s samples) ratio(metric, a, b string) ratio {
	va, vb := s.get(metric, a), s.get(metric, b)
	r := ratio{ofMedians: summary{median: summarize(va).median / summarize(vb).median, n: 1}}
	var pairs []float64
	for i := range min(len(va), len(vb)) {
		if vb[i] != 0 {
			pairs = append(pairs, va[i]/vb[i])
		}
	}
	r.paired = summarize(pairs)
	return r
}

// meta is the run's description (meta.tsv: key TAB value).
func readMeta(path string) (map[string]string, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	m := map[string]string{}
	for line := range strings.Lines(string(data)) {
		k, v, ok := strings.Cut(strings.TrimRight(line, "\n"), "\t")
		if ok {
			m[k] = v
		}
	}
	return m, nil
}

// goBench is one line of `go test -bench -benchmem` output.
type goBench struct {
	pkg, name                   string
	nsPerOp, bytesPerOp, allocs float64
}

var benchLine = regexp.MustCompile(`^(Benchmark\S+?)(?:-\d+)?\s+\d+\s+([\d.]+) ns/op(?:\s+([\d.]+) B/op)?(?:\s+([\d.]+) allocs/op)?`)

// readGoBench parses the benchmark lines and the package each belongs to
// ("pkg:" lines precede them). A missing file means P3 was skipped.
func readGoBench(dir string) ([]goBench, error) {
	data, err := os.ReadFile(filepath.Join(dir, "gobench.txt"))
	if os.IsNotExist(err) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	var out []goBench
	pkg := ""
	for line := range strings.Lines(string(data)) {
		if p, ok := strings.CutPrefix(line, "pkg: "); ok {
			pkg = strings.TrimSpace(p)
			continue
		}
		m := benchLine.FindStringSubmatch(line)
		if m == nil {
			continue
		}
		b := goBench{pkg: pkg, name: m[1]}
		b.nsPerOp, _ = strconv.ParseFloat(m[2], 64)
		b.bytesPerOp, _ = strconv.ParseFloat(m[3], 64)
		b.allocs, _ = strconv.ParseFloat(m[4], 64)
		out = append(out, b)
	}
	return out, nil
}
