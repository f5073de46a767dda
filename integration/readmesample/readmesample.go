// Package readmesample reads the sample outputs that README.md shows, so that
// tests can run the commands and compare. A sample is a fenced block whose
// opening fence follows a marker line:
//
//	<!-- sample: doctor -->
//	```
//	HOST CHECK  STATUS  DETAIL
//	```
//
// The marker is an HTML comment, invisible where the README is rendered. A
// block inside a list item may be indented: the fence's indentation is
// removed from every line of the block.
package readmesample

import (
	"bufio"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strings"
)

var marker = regexp.MustCompile(`^\s*<!-- sample: ([a-z0-9-]+) -->\s*$`)

// Samples returns the README's samples by name, each with the lines of its
// block and a final newline, as a command prints them.
func Samples(readme string) (map[string]string, error) {
	f, err := os.Open(readme)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	samples := map[string]string{}
	sc := bufio.NewScanner(f)
	lineNo := 0
	next := func() (string, bool) {
		if !sc.Scan() {
			return "", false
		}
		lineNo++
		return sc.Text(), true
	}
	for line, ok := next(); ok; line, ok = next() {
		m := marker.FindStringSubmatch(line)
		if m == nil {
			continue
		}
		name, at := m[1], lineNo
		if _, dup := samples[name]; dup {
			return nil, fmt.Errorf("%s:%d: sample %q marked twice", readme, at, name)
		}
		fence, ok := next()
		trimmed := strings.TrimLeft(fence, " ")
		if !ok || !strings.HasPrefix(trimmed, "```") {
			return nil, fmt.Errorf("%s:%d: sample %q: the marker's next line is not a fence", readme, at, name)
		}
		indent := fence[:len(fence)-len(trimmed)]
		var b strings.Builder
		closed := false
		for line, ok := next(); ok; line, ok = next() {
			if strings.TrimSpace(line) == "```" {
				closed = true
				break
			}
			fmt.Fprintln(&b, strings.TrimPrefix(line, indent))
		}
		if !closed {
			return nil, fmt.Errorf("%s:%d: sample %q: block not closed", readme, at, name)
		}
		samples[name] = b.String()
	}
	return samples, sc.Err()
}

// Load returns the samples of the module's README.md (see Path).
func Load() (map[string]string, error) {
	path, err := Path()
	if err != nil {
		return nil, err
	}
	return Samples(path)
}

// Path is the README.md next to the go.mod above the working directory (a
// test's package directory).
func Path() (string, error) {
	dir, err := os.Getwd()
	if err != nil {
		return "", err
	}
	for {
		if _, err := os.Stat(filepath.Join(dir, "go.mod")); err == nil {
			return filepath.Join(dir, "README.md"), nil
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			return "", fmt.Errorf("no go.mod above %s", dir)
		}
		dir = parent
	}
}

// Rule rewrites a value that legitimately differs between the README and a
// run (a path, a version), in both texts before they are compared.
type Rule struct {
	Match *regexp.Regexp
	With  string
}

// Normalise applies rules in order.
func Normalise(s string, rules ...Rule) string {
	for _, r := range rules {
		s = r.Match.ReplaceAllString(s, r.With)
	}
	return s
}

// Diff is "" when want and got are equal, else the first line that differs
// and both texts in full, for the test's failure message.
func Diff(want, got string) string {
	if want == got {
		return ""
	}
	w, g := strings.Split(want, "\n"), strings.Split(got, "\n")
	i := 0
	for i < len(w) && i < len(g) && w[i] == g[i] {
		i++
	}
	line := func(l []string) string {
		if i < len(l) {
			return fmt.Sprintf("%q", l[i])
		}
		return "(end)"
	}
	return fmt.Sprintf("line %d differs:\n  README: %s\n  output: %s\n--- README:\n%s--- output:\n%s", i+1, line(w), line(g), want, got)
}
