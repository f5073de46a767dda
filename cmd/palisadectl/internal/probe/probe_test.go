package probe

import (
	"context"
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// fakeInfo is a FileInfo of a given mode, for device checks without mknod.
type fakeInfo struct{ mode fs.FileMode }

func (f fakeInfo) Name() string       { return "x" }
func (f fakeInfo) Size() int64        { return 0 }
func (f fakeInfo) Mode() fs.FileMode  { return f.mode }
func (f fakeInfo) ModTime() time.Time { return time.Time{} }
func (f fakeInfo) IsDir() bool        { return f.mode.IsDir() }
func (f fakeInfo) Sys() any           { return nil }

// fakeHost is a host whose files live in a temp dir. files maps a Host path
// field's base name to its content; paths and commands list what exists.
func fakeHost(t *testing.T, files map[string]string, paths map[string]fs.FileMode, commands ...string) Host {
	t.Helper()
	dir := t.TempDir()
	for name, content := range files {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	return Host{
		ProcStatus:      filepath.Join(dir, "status"),
		SeccompActions:  filepath.Join(dir, "actions_avail"),
		AppArmorEnabled: filepath.Join(dir, "enabled"),
		Mounts:          filepath.Join(dir, "mounts"),
		CgroupRoot:      "/sys/fs/cgroup",
		KVM:             "/dev/kvm",
		VhostVsock:      "/dev/vhost-vsock",
		Modules:         "/sys/module",
		LookPath: func(file string) (string, error) {
			for _, c := range commands {
				if filepath.Base(c) == file || c == file {
					return c, nil
				}
			}
			return "", errors.New("not found")
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

const (
	statusWithCaps = "Name:\tx\nSeccomp:\t0\nSeccomp_filters:\t0\nCapEff:\t000001ffffffffff\n"
	statusNoCaps   = "Name:\tx\nSeccomp:\t0\nCapEff:\t000001fffeffffff\n"
	mountsHybrid   = "tmpfs /sys/fs/cgroup tmpfs ro 0 0\ncgroup2 /sys/fs/cgroup/unified cgroup2 rw 0 0\ncgroup /sys/fs/cgroup/memory cgroup rw,memory 0 0\n"
	mountsV2       = "cgroup2 /sys/fs/cgroup cgroup2 rw,nsdelegate 0 0\n"
	mountsV1       = "tmpfs /sys/fs/cgroup tmpfs ro 0 0\ncgroup /sys/fs/cgroup/cpu\\040x cgroup rw,cpu 0 0\n"
)

func TestProbeFullHost(t *testing.T) {
	h := fakeHost(t, map[string]string{
		"status": statusWithCaps, "actions_avail": "kill_process errno allow\n", "enabled": "Y\n", "mounts": mountsV2,
	}, map[string]fs.FileMode{
		"/dev/kvm": fs.ModeDevice | fs.ModeCharDevice, "/dev/vhost-vsock": fs.ModeDevice | fs.ModeCharDevice,
		"/sys/module/kvm_intel": fs.ModeDir,
	}, "/sbin/apparmor_parser", "/usr/bin/containerd-shim-kata-v2")
	f := h.Probe()
	for name, fact := range map[string]Fact{
		"seccomp": f.Seccomp, "apparmor": f.AppArmor, "parser": f.AppArmorParser, "kata": f.KataShim,
		"kvm": f.KVM, "vsock": f.VhostVsock, "cgroup": f.Cgroup, "cap": f.CapSysResource,
	} {
		if !fact.OK {
			t.Errorf("%s: not OK: %s", name, fact.Detail)
		}
	}
	if f.Seccomp.Detail != "filter actions: kill_process errno allow" || f.Cgroup.Detail != "v2 (unified)" || f.KVM.Detail != "/dev/kvm (kvm_intel)" {
		t.Errorf("details: %+v", f)
	}
}

func TestProbeBareHost(t *testing.T) {
	h := fakeHost(t, map[string]string{"status": statusNoCaps, "enabled": "N\n", "mounts": mountsHybrid},
		map[string]fs.FileMode{"/dev/kvm": fs.ModeDevice | fs.ModeCharDevice, "/sys/module/kvm_pvm": fs.ModeDir, "/dev/vhost-vsock": 0})
	f := h.Probe()
	for _, c := range []struct {
		name string
		fact Fact
		want string
	}{
		{"seccomp", f.Seccomp, "CONFIG_SECCOMP_FILTER"},
		{"apparmor", f.AppArmor, `disabled (` + h.AppArmorEnabled + ` is "N")`},
		{"parser", f.AppArmorParser, "apparmor_parser not found"},
		{"kata", f.KataShim, "containerd-shim-kata-v2 not found"},
		{"kvm", f.KVM, "kvm_pvm"},
		{"vsock", f.VhostVsock, "not a character device"},
		{"cgroup", f.Cgroup, "v1 hybrid (v2 at /sys/fs/cgroup/unified)"},
		{"cap", f.CapSysResource, "CapEff 000001fffeffffff"},
	} {
		if c.fact.OK || !strings.Contains(c.fact.Detail, c.want) {
			t.Errorf("%s: %+v, want not OK and %q", c.name, c.fact, c.want)
		}
	}
}

func TestProbeMissingFiles(t *testing.T) {
	h := fakeHost(t, map[string]string{"mounts": mountsV1}, nil)
	f := h.Probe()
	if f.Seccomp.OK || f.CapSysResource.OK || f.AppArmor.OK || f.KVM.OK {
		t.Errorf("facts from missing files: %+v", f)
	}
	if !strings.Contains(f.AppArmor.Detail, "not in this kernel") || f.Cgroup.Detail != "v1 (legacy)" {
		t.Errorf("apparmor %q cgroup %q", f.AppArmor.Detail, f.Cgroup.Detail)
	}
	// Seccomp field present, no actions_avail: CONFIG_SECCOMP without filters.
	h = fakeHost(t, map[string]string{"status": statusNoCaps}, nil)
	if f := h.Probe(); f.Seccomp.OK || !strings.Contains(f.Seccomp.Detail, "without seccomp filters") {
		t.Errorf("seccomp: %+v", f.Seccomp)
	}
}

func TestRunscStaticCheck(t *testing.T) {
	// make exports PALISADE_TOOLS_BIN; CI keeps the tools outside the clone.
	tools := os.Getenv("PALISADE_TOOLS_BIN")
	if tools == "" {
		tools = "../../../../_tools/bin"
	}
	static, _ := filepath.Abs(filepath.Join(tools, "runsc"))
	if _, err := os.Stat(static); err != nil {
		if os.Getenv("PALISADE_INTEGRATION") == "required" {
			t.Fatalf("runsc not built: %v", err)
		}
		t.Skipf("runsc not built (make tools): %v", err)
	}
	dynamic := "/bin/sh"
	if interp, err := elfInterpreter(dynamic); err != nil || interp == "" {
		t.Skipf("%s is not a dynamic ELF here (%q, %v)", dynamic, interp, err)
	}
	h := fakeHost(t, nil, nil, static, dynamic)
	r := h.Runsc(context.Background(), static)
	if r.Err != nil || !r.Static || r.Path != static || r.Version != "runsc version test, spec: 1.2.1" {
		t.Errorf("static runsc: %+v", r)
	}
	r = h.Runsc(context.Background(), dynamic)
	if r.Err == nil || r.Static || !strings.Contains(r.Err.Error(), "dynamically linked") {
		t.Errorf("dynamic binary: %+v", r)
	}
	if r := h.Runsc(context.Background(), "runsc-nowhere"); r.Err == nil || !strings.Contains(r.Err.Error(), "not found") {
		t.Errorf("missing binary: %+v", r)
	}
	notELF := filepath.Join(t.TempDir(), "runsc")
	if err := os.WriteFile(notELF, []byte("#!/bin/sh\n"), 0o755); err != nil {
		t.Fatal(err)
	}
	if r := fakeHost(t, nil, nil, notELF).Runsc(context.Background(), notELF); r.Err == nil || !strings.Contains(r.Err.Error(), "not an ELF") {
		t.Errorf("script: %+v", r)
	}
}

func FuzzParseMounts(f *testing.F) {
	for _, s := range []string{mountsHybrid, mountsV2, mountsV1, "", "a b", "\n\n"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, data string) {
		for _, m := range parseMounts([]byte(data)) {
			if m.fstype == "" || strings.ContainsAny(m.fstype, " \t\n") {
				t.Errorf("mount %+v from %q", m, data)
			}
		}
	})
}

func FuzzStatusField(f *testing.F) {
	for _, s := range []string{statusWithCaps, statusNoCaps, "", "CapEff", "CapEff:"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, data string) {
		v, err := statusField([]byte(data), "CapEff")
		if err == nil && strings.ContainsAny(v, "\n") {
			t.Errorf("value %q spans lines", v)
		}
	})
}
