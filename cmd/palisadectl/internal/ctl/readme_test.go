package ctl

import (
	"path/filepath"
	"regexp"
	"testing"

	"github.com/palisade-runtime/palisade/integration/readmesample"
	"github.com/palisade-runtime/palisade/shim"
)

// TestREADMESamples runs the commands whose output README.md shows and need
// no root, and compares. The README shows the repository's config.toml
// installed as /etc/palisade/config.toml; that path is the one
// normalisation.
func TestREADMESamples(t *testing.T) {
	samples, err := readmesample.Load()
	if err != nil {
		t.Fatal(err)
	}
	config, err := filepath.Abs("../../../../config.toml")
	if err != nil {
		t.Fatal(err)
	}
	installed := readmesample.Rule{Match: regexp.MustCompile(regexp.QuoteMeta(config)), With: shim.DefaultConfigPath}

	// The README's policy check sample: a config with a seccomp profile
	// file that does not exist, a misspelt key and a misspelt capability.
	broken := writeConfig(t, `[handlers.custom]
backend = "runsc"
policy.seccomp = "/etc/palisade/custom.json"
[handlers.gvisor]
backend = "runsc"
policy.secomp = "runtime-default"
[handlers.gvisor-strict]
backend = "runsc"
policy.capabilities.ceiling = ["CAP_CHOWN", "CAP_NET_ADMN"]
`)
	for _, tc := range []struct {
		sample string
		args   []string
		status int
	}{
		{"config-containerd", []string{"--config", config, "config", "containerd"}, 0},
		{"config-runtimeclass", []string{"config", "runtimeclass", "--config", config}, 0},
		{"policy-check", []string{"policy", "check", broken}, 1},
	} {
		want, ok := samples[tc.sample]
		if !ok {
			t.Errorf("README.md has no sample %q (<!-- sample: %s --> before its block)", tc.sample, tc.sample)
			continue
		}
		code, out, stderr := runCtl(t, env{}, tc.args...)
		if code != tc.status {
			t.Errorf("%s: status %d, want %d: %s", tc.sample, code, tc.status, stderr)
		}
		if d := readmesample.Diff(want, readmesample.Normalise(out, installed)); d != "" {
			t.Errorf("README sample %q is not what palisadectl %v prints: %s", tc.sample, tc.args, d)
		}
	}
}
