package integration

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"text/tabwriter"

	"github.com/palisade-runtime/palisade/integration/readmesample"
)

// readmeSample is README.md's sample output name (see readmesample).
func readmeSample(t *testing.T, name string) string {
	t.Helper()
	samples, err := readmesample.Load()
	if err != nil {
		t.Fatal(err)
	}
	s, ok := samples[name]
	if !ok {
		t.Fatalf("README.md has no sample %q (<!-- sample: %s --> before its block)", name, name)
	}
	return s
}

// TestREADMEDemo runs make demo's script and compares its output with the
// README's, and the palisadectl inspect table it prints with the README's
// inspect sample. The demo's output is also checked for what must never be
// in it: ctr's log lines (warnings, errors), which the README does not show.
func TestREADMEDemo(t *testing.T) {
	requireIntegration(t, "runsc")
	root, err := repoRoot()
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command("bash", filepath.Join(root, "integration", "demo.sh"))
	cmd.Env = append(os.Environ(), envToolsBin+"="+toolsBin(), envPalisadeBin+"="+palisadeBinDir(t))
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("demo.sh: %v\n%s", err, out)
	}
	if m := regexp.MustCompile(`(?m)^.*level=(warning|error|fatal).*$`).Find(out); m != nil {
		t.Errorf("the demo's output has a log line: %s", m)
	}
	// The binaries' directory and the pinned versions differ between
	// checkouts; nothing else may.
	rules := []readmesample.Rule{
		{Match: regexp.MustCompile(`\(\S+/containerd-shim-palisade-v2\)`), With: "(BIN/containerd-shim-palisade-v2)"},
		{Match: regexp.MustCompile(`on runsc [^\s,]+, containerd \S+`), With: "on runsc VERSION, containerd VERSION"},
	}
	got := string(out)
	if d := readmesample.Diff(readmesample.Normalise(readmeSample(t, "demo"), rules...), readmesample.Normalise(got, rules...)); d != "" {
		t.Errorf("README sample \"demo\" is not what make demo prints: %s", d)
	}

	// The inspect table is the demo's section after its "-- what Palisade
	// enforced" heading, up to the next heading.
	_, table, ok := strings.Cut(got, "-- what Palisade enforced")
	if !ok {
		t.Fatalf("no inspect section in the demo's output:\n%s", got)
	}
	_, table, _ = strings.Cut(table, "\n")
	table, _, _ = strings.Cut(table, "\n-- ")
	if d := readmesample.Diff(readmeSample(t, "inspect"), table+"\n"); d != "" {
		t.Errorf("README sample \"inspect\" is not what palisadectl inspect prints in the demo: %s", d)
	}
}

// TestREADMEDoctor runs palisadectl doctor on this host with the
// repository's config.toml and compares with the README's sample, which is
// this project's CI machine. Normalised: the config's path (the README shows
// it installed as /etc/palisade/config.toml; the table is re-aligned for
// it), runsc's path, and the detail of the /dev/kvm row, which depends on
// the virtual machine the run gets (kvm_pvm, or no /dev/kvm at all).
func TestREADMEDoctor(t *testing.T) {
	requireIntegration(t, "runsc")
	root, err := repoRoot()
	if err != nil {
		t.Fatal(err)
	}
	config := filepath.Join(root, "config.toml")
	bin := filepath.Join(palisadeBinDir(t), "palisadectl")
	cmd := exec.Command(bin, "--config", config, "doctor")
	// runsc as a user's PATH would find it: the pinned build.
	cmd.Env = append(os.Environ(), "PATH="+toolsBin()+":"+os.Getenv("PATH"))
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	var exit *exec.ExitError
	if err != nil && !(errors.As(err, &exit) && exit.ExitCode() == 1) {
		t.Fatalf("palisadectl doctor: %v\n%s%s", err, out, stderr.String())
	}
	if failed := bytes.Contains(out, []byte(" FAIL ")); failed != (err != nil) {
		t.Errorf("doctor's exit status (%v) does not follow its FAIL rows:\n%s", err, out)
	}
	got := realign(strings.ReplaceAll(string(out), config, "/etc/palisade/config.toml"))
	rules := []readmesample.Rule{
		{Match: regexp.MustCompile(`(?m)^(runsc \(runsc\) +ok +)/\S+/runsc:`), With: "${1}RUNSC:"},
		{Match: regexp.MustCompile(`(?m)^(/dev/kvm +\S+ +).*$`), With: "${1}KVM"},
	}
	if d := readmesample.Diff(readmesample.Normalise(readmeSample(t, "doctor"), rules...), readmesample.Normalise(got, rules...)); d != "" {
		t.Errorf("README sample \"doctor\" is not what palisadectl doctor prints here: %s", d)
	}
}

// realign lays out again a table printed by a tabwriter (cells separated by
// two or more spaces, tables by blank lines) after a cell was rewritten, the
// way palisadectl's tabwriter would have printed it.
func realign(s string) string {
	var b bytes.Buffer
	tw := tabwriter.NewWriter(&b, 0, 4, 2, ' ', 0)
	sep := regexp.MustCompile(` {2,}`)
	for _, line := range strings.SplitAfter(s, "\n") {
		if line == "" {
			continue
		}
		fmt.Fprint(tw, strings.Join(sep.Split(line, -1), "\t"))
	}
	if err := tw.Flush(); err != nil {
		panic(err) // a bytes.Buffer does not fail
	}
	return b.String()
}
