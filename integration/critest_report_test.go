package integration

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"text/tabwriter"
	"time"
)

// critestResult is one handler's run, read from ginkgo's JSON report.
type critestResult struct {
	Handler string
	Passed  int
	Failed  int // failed, panicked, timed out, aborted or interrupted
	Skipped int // filtered out by focus/skip, or skipped by the spec itself
	// SkippedInSpec counts specs that ran and called Skip (a missing feature).
	SkippedInSpec int
	Time          time.Duration // critest's wall-clock time
	Failures      []string      // full names of failed specs, sorted
	Messages      map[string]string
	Log           string // critest's output
}

// ginkgoReport is the part of ginkgo's JSON report (types.Report) read here;
// ginkgo itself stays out of this module.
type ginkgoReport struct {
	SpecReports []struct {
		ContainerHierarchyTexts []string
		LeafNodeType            string
		LeafNodeText            string
		State                   string
		Failure                 struct {
			Message  string
			Location struct {
				FileName   string
				LineNumber int
			}
		}
	}
}

func readCritestReport(path string) (critestResult, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return critestResult{}, err
	}
	var reports []ginkgoReport
	if err := json.Unmarshal(b, &reports); err != nil {
		return critestResult{}, fmt.Errorf("%s: %w", path, err)
	}
	res := critestResult{Messages: map[string]string{}}
	for _, r := range reports {
		for _, s := range r.SpecReports {
			name := strings.Join(append(slices.Clone(s.ContainerHierarchyTexts), s.LeafNodeText), " ")
			if s.LeafNodeType != "It" {
				// A failed BeforeSuite fails the run without failing any It.
				if s.State != "passed" && s.State != "skipped" {
					res.Failed++
					res.Failures = append(res.Failures, "["+s.LeafNodeType+"]")
					res.Messages["["+s.LeafNodeType+"]"] = s.Failure.Message
				}
				continue
			}
			switch s.State {
			case "passed":
				res.Passed++
			case "skipped", "pending":
				res.Skipped++
				if s.Failure.Message != "" {
					res.SkippedInSpec++
				}
			default:
				res.Failed++
				res.Failures = append(res.Failures, name)
				res.Messages[name] = fmt.Sprintf("%s (%s:%d)", s.Failure.Message,
					s.Failure.Location.FileName, s.Failure.Location.LineNumber)
			}
		}
	}
	if res.Passed+res.Failed+res.Skipped == 0 {
		return res, fmt.Errorf("%s: no specs", path)
	}
	slices.Sort(res.Failures)
	return res, nil
}

// text is the per-handler text report: counts, then each failure with the
// first lines of its message.
func (r critestResult) text() string {
	var b strings.Builder
	fmt.Fprintf(&b, "handler %s: %d passed, %d failed, %d skipped (%d by the spec itself) in %v\n",
		r.Handler, r.Passed, r.Failed, r.Skipped, r.SkippedInSpec, r.Time.Round(time.Second))
	for _, f := range r.Failures {
		msg := strings.TrimSpace(r.Messages[f])
		if lines := strings.Split(msg, "\n"); len(lines) > 6 {
			msg = strings.Join(lines[:6], "\n") + "\n..."
		}
		fmt.Fprintf(&b, "\nFAILED %s\n  %s\n", f, strings.ReplaceAll(msg, "\n", "\n  "))
	}
	return b.String()
}

// critestSummary is the side-by-side table and the failed specs per handler.
func critestSummary(mode string, results []critestResult) string {
	var b strings.Builder
	fmt.Fprintf(&b, "critest %s, %s suite, containerd %s\n", pinnedVersion("CRI_TOOLS_VERSION"), mode, pinnedVersion("CONTAINERD_VERSION"))
	tw := tabwriter.NewWriter(&b, 0, 0, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintln(tw, "handler\ttime\tpassed\tfailed\tskipped\t")
	for _, r := range results {
		fmt.Fprintf(tw, "%s\t%v\t%d\t%d\t%d\t\n", r.Handler, r.Time.Round(time.Second), r.Passed, r.Failed, r.Skipped)
	}
	tw.Flush()
	for _, r := range results {
		if len(r.Failures) == 0 {
			continue
		}
		fmt.Fprintf(&b, "\n%s failed (%d):\n", r.Handler, len(r.Failures))
		for _, f := range r.Failures {
			fmt.Fprintf(&b, "  %s\n", f)
		}
	}
	return b.String()
}

// pinnedVersion reads a version from integration/tools/versions.env.
func pinnedVersion(key string) string {
	root, err := repoRoot()
	if err != nil {
		return "?"
	}
	b, err := os.ReadFile(filepath.Join(root, "integration", "tools", "versions.env"))
	if err != nil {
		return "?"
	}
	for _, line := range strings.Split(string(b), "\n") {
		if k, v, ok := strings.Cut(line, "="); ok && k == key {
			return v
		}
	}
	return "?"
}
