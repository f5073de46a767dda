package ctl

import (
	"bytes"
	"context"
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/palisade-runtime/palisade/cmd/palisadectl/internal/probe"
	"github.com/palisade-runtime/palisade/policy"
	"github.com/palisade-runtime/palisade/shim"
)

// hostSpec describes a fake host for doctor.
type hostSpec struct {
	seccomp, apparmor, parser, kvm bool
	runsc                          string // path of the runsc binary found on PATH; "" = none
}

type fakeInfo struct{ mode fs.FileMode }

func (f fakeInfo) Name() string       { return "x" }
func (f fakeInfo) Size() int64        { return 0 }
func (f fakeInfo) Mode() fs.FileMode  { return f.mode }
func (f fakeInfo) ModTime() time.Time { return time.Time{} }
func (f fakeInfo) IsDir() bool        { return f.mode.IsDir() }
func (f fakeInfo) Sys() any           { return nil }

// fakeProbeHost builds a probe.Host over a temp dir that has what spec says.
func fakeProbeHost(t *testing.T, spec hostSpec) probe.Host {
	t.Helper()
	dir := t.TempDir()
	write := func(name, content string) {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	write("status", "Seccomp:\t0\nCapEff:\t000001fffeffffff\n")
	write("mounts", "cgroup2 /sys/fs/cgroup cgroup2 rw 0 0\n")
	if spec.seccomp {
		write("actions_avail", "kill_process errno allow\n")
	}
	if spec.apparmor {
		write("enabled", "Y\n")
	}
	paths := map[string]fs.FileMode{}
	if spec.kvm {
		paths["/dev/kvm"] = fs.ModeDevice | fs.ModeCharDevice
		paths["/sys/module/kvm_amd"] = fs.ModeDir
	}
	commands := map[string]string{}
	if spec.parser {
		commands["apparmor_parser"] = "/sbin/apparmor_parser"
	}
	if spec.runsc != "" {
		commands["runsc"] = spec.runsc
		commands[spec.runsc] = spec.runsc
	}
	return probe.Host{
		ProcStatus:      filepath.Join(dir, "status"),
		SeccompActions:  filepath.Join(dir, "actions_avail"),
		AppArmorEnabled: filepath.Join(dir, "enabled"),
		Mounts:          filepath.Join(dir, "mounts"),
		CgroupRoot:      "/sys/fs/cgroup",
		KVM:             "/dev/kvm",
		VhostVsock:      "/dev/vhost-vsock",
		Modules:         "/sys/module",
		LookPath: func(file string) (string, error) {
			if p, ok := commands[file]; ok {
				return p, nil
			}
			return "", errors.New("executable file not found in $PATH")
		},
		Output: func(context.Context, string, ...string) ([]byte, error) {
			return []byte("runsc version test\nspec: 1.2.1\n"), nil
		},
		Stat: func(name string) (fs.FileInfo, error) {
			if m, ok := paths[name]; ok {
				return fakeInfo{m}, nil
			}
			return nil, fs.ErrNotExist
		},
	}
}

// fakeSupport is runsc's support on a host with or without AppArmor, as
// shim.HandlerSupport would compute it once Palisade can attach profiles.
func fakeSupport(appArmor bool) func(shim.Handler) (policy.Support, error) {
	return func(h shim.Handler) (policy.Support, error) {
		if h.Backend != shim.BackendRunsc {
			return policy.Support{}, errors.New("backend " + h.Backend + ": unknown")
		}
		s := policy.Support{Backend: "runsc", KernelVersion: "4.4", SeccompEnforcer: "sentry",
			CapabilityEnforcer: "sentry", NoNewPrivsEnforcer: "sentry"}
		if appArmor {
			s.AppArmorEnforcer = "host AppArmor"
		} else {
			s.AppArmorMissing = "AppArmor is not enabled in this kernel (test)"
		}
		return s, nil
	}
}

// staticRunsc is the pinned runsc when it is built, for the ELF check.
func staticRunsc(t *testing.T) string {
	t.Helper()
	p, _ := filepath.Abs("../../../../_tools/bin/runsc")
	if dir := os.Getenv("PALISADE_TOOLS_BIN"); dir != "" {
		p = filepath.Join(dir, "runsc")
	}
	if _, err := os.Stat(p); err != nil {
		t.Skipf("runsc not built (make tools): %v", err)
	}
	return p
}

// testEnv is a host with everything but AppArmor and a static runsc.
func testEnv(t *testing.T) env {
	return env{host: fakeProbeHost(t, hostSpec{seccomp: true, parser: true, runsc: staticRunsc(t)}), support: fakeSupport(false)}
}

// runCtl runs palisadectl with args in e and returns status and output.
func runCtl(t *testing.T, e env, args ...string) (int, string, string) {
	t.Helper()
	var stdout, stderr bytes.Buffer
	e.stdout, e.stderr = &stdout, &stderr
	code := run(context.Background(), append([]string{"palisadectl"}, args...), e)
	return code, stdout.String(), stderr.String()
}

func writeConfig(t *testing.T, body string) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), "config.toml")
	if err := os.WriteFile(p, []byte(body), 0o644); err != nil {
		t.Fatal(err)
	}
	return p
}

func TestUsageErrors(t *testing.T) {
	e := env{host: probe.Host{}, support: fakeSupport(false)}
	if code, _, stderr := runCtl(t, e, "inspect"); code != 1 || stderr == "" {
		t.Errorf("inspect without an id: %d %q", code, stderr)
	}
	if code, _, stderr := runCtl(t, e, "policy", "check", "a", "b"); code != 1 || stderr == "" {
		t.Errorf("policy check with two files: %d %q", code, stderr)
	}
	if code, _, _ := runCtl(t, e, "nonsense"); code == 0 {
		t.Errorf("unknown command: status 0")
	}
	if code, out, _ := runCtl(t, e, "--help"); code != 0 || !bytes.Contains([]byte(out), []byte("doctor")) {
		t.Errorf("help: %d %s", code, out)
	}
}
