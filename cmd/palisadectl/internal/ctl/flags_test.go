package ctl

import (
	"strings"
	"testing"
)

// TestGlobalFlags: --config and --json are global, so users can type them
// before the command, between a command and its subcommand, or after it,
// and every command's help lists them.
func TestGlobalFlags(t *testing.T) {
	path := writeConfig(t, "[handlers.g]\nbackend = \"runsc\"\n")
	// A host without runsc: the flags are under test, not the host, so
	// doctor's verdict (status 1) does not matter here.
	noRunsc := func() env { return env{host: fakeProbeHost(t, hostSpec{seccomp: true}), support: fakeSupport(false)} }
	for _, args := range [][]string{
		{"--config", path, "config", "runtimeclass"},
		{"-c", path, "config", "runtimeclass"},
		{"config", "--config", path, "runtimeclass"},
		{"config", "runtimeclass", "--config", path},
		{"config", "runtimeclass", "-c", path},
	} {
		code, out, stderr := runCtl(t, noRunsc(), args...)
		if code != 0 || !strings.Contains(out, "in \""+path+"\"") || !strings.Contains(out, "handler: \"g\"") {
			t.Errorf("%v: %d\n%s%s", args, code, out, stderr)
		}
	}
	// doctor reads --config wherever it is written: the table names the file.
	for _, args := range [][]string{{"--config", path, "doctor"}, {"doctor", "--config", path}} {
		_, out, stderr := runCtl(t, noRunsc(), args...)
		if !strings.Contains(out, "HANDLER ("+path+")") {
			t.Errorf("%v:\n%s%s", args, out, stderr)
		}
	}
	// The per-command flags still work next to the global ones.
	code, out, stderr := runCtl(t, noRunsc(), "--config", path, "config", "containerd", "--version", "4", "--shim-path", "/opt/bin/shim")
	if code != 0 || !strings.Contains(out, "version = 4\n") || !strings.Contains(out, `runtime_path = "/opt/bin/shim"`) {
		t.Errorf("config containerd with its own flags: %d\n%s%s", code, out, stderr)
	}

	// policy check: its argument, else --config.
	for _, args := range [][]string{{"policy", "check", path}, {"--config", path, "policy", "check"}, {"policy", "check", "-c", path}} {
		if code, out, stderr := runCtl(t, env{}, args...); code != 0 || out != "g  OK\n" {
			t.Errorf("%v: %d %q %q", args, code, out, stderr)
		}
	}
	if code, out, _ := runCtl(t, env{}, "--config", path+".missing", "policy", "check"); code != 1 || !strings.Contains(out, path+".missing: ") {
		t.Errorf("policy check of a missing --config: %d %q", code, out)
	}

	// --json before or after inspect; refused, not ignored, where there is
	// no JSON form.
	state := stateWithRecord(t, "default", "c1", decisionRecord)
	for _, args := range [][]string{
		{"--json", "inspect", "-n", "default", "--state", state, "c1"},
		{"inspect", "--json", "-n", "default", "--state", state, "c1"},
	} {
		if code, out, stderr := runCtl(t, env{}, args...); code != 0 || out != decisionRecord {
			t.Errorf("%v: %d %q %q", args, code, out, stderr)
		}
	}
	for _, args := range [][]string{
		{"--json", "doctor"},
		{"config", "containerd", "--json"},
		{"--json", "config", "runtimeclass"},
		{"policy", "check", "--json", path},
	} {
		code, out, stderr := runCtl(t, noRunsc(), append(args, "--config", path)...)
		if code != 1 || out != "" || !strings.Contains(stderr, "--json is not supported") {
			t.Errorf("%v: %d %q %q", args, code, out, stderr)
		}
	}

	for _, cmd := range [][]string{{}, {"doctor"}, {"inspect"}, {"config", "containerd"}, {"config", "runtimeclass"}, {"policy", "check"}} {
		code, out, _ := runCtl(t, env{}, append(cmd, "--help")...)
		if code != 0 || !strings.Contains(out, "--config string, -c string") || !strings.Contains(out, "--json") {
			t.Errorf("help of %v does not list the global flags: %d\n%s", cmd, code, out)
		}
	}
}
