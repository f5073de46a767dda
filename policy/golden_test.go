package policy

import (
	"bytes"
	"encoding/json"
	"errors"
	"flag"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"github.com/opencontainers/runtime-spec/specs-go"
	"github.com/pelletier/go-toml/v2"
)

var update = flag.Bool("update", false, "rewrite the want-* files of testdata/golden")

// A golden case is a directory under testdata/golden holding:
//
//	policy.toml          the [handlers.<name>.policy] table (strict decode)
//	floor-seccomp.json   optional: the profile file when policy.seccomp is a path
//	support.json         what the backend and host can enforce
//	spec.json            the container's config.json (Enforce), or
//	process.json         an exec process spec (EnforceProcess)
//	want-spec.json       the enforced spec (or want-process.json)
//	want-decision.json   the decision record
//	want-error.txt       instead of the two above, when enforcement fails;
//	                     its first line names the sentinel (ErrInvalid, ...)
//
// go test ./policy -run TestGolden -update rewrites the want-* files.
func TestGolden(t *testing.T) {
	dirs, err := filepath.Glob("testdata/golden/*")
	if err != nil || len(dirs) == 0 {
		t.Fatalf("no golden cases: %v", err)
	}
	for _, dir := range dirs {
		t.Run(filepath.Base(dir), func(t *testing.T) { runGolden(t, dir) })
	}
}

func runGolden(t *testing.T, dir string) {
	f := loadFloor(t, dir)
	var s Support
	mustJSON(t, filepath.Join(dir, "support.json"), &s)

	var (
		d       *Decision
		err     error
		got     any
		wantOut string
	)
	if _, statErr := os.Stat(filepath.Join(dir, "process.json")); statErr == nil {
		var p specs.Process
		mustJSON(t, filepath.Join(dir, "process.json"), &p)
		d, err = EnforceProcess(&p, f, s)
		got, wantOut = &p, "want-process.json"
	} else {
		var spec specs.Spec
		mustJSON(t, filepath.Join(dir, "spec.json"), &spec)
		before := marshal(t, &spec)
		d, err = enforce(&spec, f, s, "amd64")
		if err != nil && !bytes.Equal(before, marshal(t, &spec)) {
			t.Errorf("spec changed although Enforce failed")
		}
		got, wantOut = &spec, "want-spec.json"
	}
	if err != nil {
		checkGolden(t, filepath.Join(dir, "want-error.txt"), []byte(sentinelName(err)+"\n"+err.Error()+"\n"))
		return
	}
	d.Handler = "test"
	checkGolden(t, filepath.Join(dir, wantOut), marshal(t, got))
	checkGolden(t, filepath.Join(dir, "want-decision.json"), marshal(t, d))
}

func loadFloor(t *testing.T, dir string) *Floor {
	t.Helper()
	raw, err := os.ReadFile(filepath.Join(dir, "policy.toml"))
	if err != nil {
		t.Fatal(err)
	}
	cfg, err := decodeConfig(raw)
	if err != nil {
		t.Fatalf("policy.toml: %v", err)
	}
	var prof []byte
	if strings.HasPrefix(cfg.Seccomp, "/") {
		if prof, err = os.ReadFile(filepath.Join(dir, "floor-seccomp.json")); err != nil {
			t.Fatal(err)
		}
	}
	f, err := NewFloor(cfg, prof)
	if err != nil {
		t.Fatalf("NewFloor: %v", err)
	}
	return f
}

// decodeConfig decodes a policy table the way the shim does: go-toml v2
// with unknown fields rejected.
func decodeConfig(raw []byte) (Config, error) {
	var cfg Config
	dec := toml.NewDecoder(bytes.NewReader(raw))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&cfg); err != nil {
		return cfg, err
	}
	return cfg, cfg.Validate()
}

func sentinelName(err error) string {
	for _, s := range []struct {
		name string
		err  error
	}{{"ErrInvalid", ErrInvalid}, {"ErrRefused", ErrRefused}, {"ErrNotEnforceable", ErrNotEnforceable}} {
		if errors.Is(err, s.err) {
			return s.name
		}
	}
	return "no sentinel"
}

func mustJSON(t *testing.T, path string, v any) {
	t.Helper()
	raw, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	dec := json.NewDecoder(bytes.NewReader(raw))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		t.Fatalf("%s: %v", path, err)
	}
}

func marshal(t testing.TB, v any) []byte {
	t.Helper()
	var b bytes.Buffer
	e := json.NewEncoder(&b)
	e.SetEscapeHTML(false) // keep "->" and "a0<0x26" readable in the goldens
	e.SetIndent("", "  ")
	if err := e.Encode(v); err != nil {
		t.Fatal(err)
	}
	return b.Bytes()
}

func checkGolden(t *testing.T, path string, got []byte) {
	t.Helper()
	if *update {
		if err := os.WriteFile(path, got, 0o644); err != nil {
			t.Fatal(err)
		}
		return
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("%v (run with -update to create it)", err)
	}
	if !bytes.Equal(got, want) {
		t.Errorf("%s differs (run with -update after checking the change):\n%s", path, lineDiff(string(want), string(got)))
	}
}

// lineDiff shows the first lines that differ, enough to see the change.
func lineDiff(want, got string) string {
	w, g := strings.Split(want, "\n"), strings.Split(got, "\n")
	var b strings.Builder
	shown := 0
	for i := 0; i < max(len(w), len(g)) && shown < 20; i++ {
		var wl, gl string
		if i < len(w) {
			wl = w[i]
		}
		if i < len(g) {
			gl = g[i]
		}
		if wl != gl {
			b.WriteString("line " + strconv.Itoa(i+1) + ":\n  want: " + wl + "\n  got:  " + gl + "\n")
			shown++
		}
	}
	return b.String()
}
