package runsc

import (
	"path/filepath"
	"slices"
	"testing"
)

func TestPrefixConflict(t *testing.T) {
	for _, tc := range []struct {
		id       string
		siblings []string
		want     string
	}{
		{"web", []string{"web2"}, "web2"},
		{"web2", []string{"web"}, "web"},
		{"web", []string{"web"}, ""}, // itself
		{"web", []string{"wep", "we-b", "app"}, ""},
		{"a.b", []string{"a.bc"}, "a.bc"},
	} {
		got, ok := prefixConflict(tc.id, tc.siblings)
		if got != tc.want || ok != (tc.want != "") {
			t.Errorf("prefixConflict(%q, %q) = %q, %v; want %q", tc.id, tc.siblings, got, ok, tc.want)
		}
	}
}

func TestStateIDs(t *testing.T) {
	root := t.TempDir()
	for _, f := range []string{"web_sandbox:web.state", "web.lock", "web2_sandbox:pod.lock", "a_b_sandbox:pod.state", "sub/x_sandbox:x.state"} {
		writeFile(t, filepath.Join(root, f))
	}
	ids, err := stateIDs(root)
	if err != nil {
		t.Fatal(err)
	}
	slices.Sort(ids)
	if !slices.Equal(ids, []string{"a_b", "web"}) {
		t.Errorf("stateIDs = %q", ids)
	}
	if ok, _ := hasState(root, "we"); ok {
		t.Error("hasState matched a prefix")
	}
	if ok, _ := hasState(filepath.Join(root, "missing"), "web"); ok {
		t.Error("hasState in a missing root")
	}
}
