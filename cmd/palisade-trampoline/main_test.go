package main

import (
	"os/exec"
	"slices"
	"strings"
	"testing"
)

// TestLeafDependencies keeps the trampoline small: it runs on every exec in
// a container, and each package it links adds its initialisers to that
// start (the shim's binary spends 12-20 ms in them). The standard library,
// golang.org/x/sys and the trampoline itself only.
func TestLeafDependencies(t *testing.T) {
	goTool, err := exec.LookPath("go")
	if err != nil {
		t.Skipf("no go tool to list the dependencies: %v", err)
	}
	out, err := exec.Command(goTool, "list", "-deps", "-f", "{{if not .Standard}}{{.ImportPath}}{{end}}", ".").Output()
	if err != nil {
		t.Fatalf("go list -deps: %v", err)
	}
	own := []string{
		"github.com/palisade-runtime/palisade/cmd/palisade-trampoline",
		"github.com/palisade-runtime/palisade/sandbox/trampoline",
	}
	pkgs := strings.Fields(string(out))
	for _, p := range pkgs {
		if !slices.Contains(own, p) && !strings.HasPrefix(p, "golang.org/x/sys/") {
			t.Errorf("palisade-trampoline links %s: keep it to the standard library and golang.org/x/sys", p)
		}
	}
	if len(pkgs) < len(own) {
		t.Errorf("go list -deps listed %q: expected at least %q", pkgs, own)
	}
}
