package readmesample

import (
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
)

func write(t *testing.T, body string) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), "README.md")
	if err := os.WriteFile(p, []byte(body), 0o644); err != nil {
		t.Fatal(err)
	}
	return p
}

func TestSamples(t *testing.T) {
	readme := write(t, "# x\n```\nunmarked\n```\n<!-- sample: a -->\n```\nA 1\n\tA 2\n```\n"+
		"1. item\n\n   <!-- sample: b -->\n   ```toml\n   b = 1\n     nested\n   ```\n")
	got, err := Samples(readme)
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != 2 || got["a"] != "A 1\n\tA 2\n" || got["b"] != "b = 1\n  nested\n" {
		t.Errorf("samples: %q", got)
	}
	for body, want := range map[string]string{
		"<!-- sample: a -->\ntext\n":                         "not a fence",
		"<!-- sample: a -->\n```\nx\n":                       "not closed",
		"<!-- sample: a -->\n```\n```\n<!-- sample: a -->\n": "marked twice",
	} {
		if _, err := Samples(write(t, body)); err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("%q: %v, want %q", body, err, want)
		}
	}
}

func TestNormaliseAndDiff(t *testing.T) {
	r := Rule{regexp.MustCompile(`runsc v[^\s,]+`), "runsc VERSION"}
	if got := Normalise("on runsc v0.0.0-2026, containerd", r); got != "on runsc VERSION, containerd" {
		t.Errorf("normalise: %q", got)
	}
	if d := Diff("a\nb\n", "a\nb\n"); d != "" {
		t.Errorf("equal texts: %q", d)
	}
	if d := Diff("a\nb\n", "a\nc\n"); !strings.Contains(d, `line 2 differs:`) || !strings.Contains(d, `README: "b"`) {
		t.Errorf("diff: %q", d)
	}
}
