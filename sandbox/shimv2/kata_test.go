package shimv2

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/containerd/errdefs"
	specs "github.com/opencontainers/runtime-spec/specs-go"

	"github.com/palisade-runtime/palisade/policy"
)

// kataQemu is a configuration in the layout Kata documents and ships
// (configuration-qemu.toml), with keys Palisade does not read left in.
const kataQemu = `# Copyright (c) 2017-2019 Intel Corporation
# XXX: WARNING: this file is auto-generated.
[hypervisor.qemu]
path = "/opt/kata/bin/qemu-system-x86_64"
kernel = "/opt/kata/share/kata-containers/vmlinux.container"
image = "/opt/kata/share/kata-containers/kata-containers.img"
machine_type = "q35"
rootfs_type = "ext4"
enable_annotations = ["enable_iommu", "virtio_fs_extra_args", "kernel_params"]
valid_hypervisor_paths = ["/opt/kata/bin/qemu-system-x86_64"]
kernel_params = ""
default_vcpus = 1
default_maxvcpus = 0
default_memory = 2048
shared_fs = "virtio-fs"
virtio_fs_extra_args = ["--thread-pool-size=1", "-o", "announce_submounts"]
disable_selinux = false
disable_guest_selinux = true

[factory]
enable_template = false

[agent.kata]
enable_debug = false
kernel_modules = []
dial_timeout = 45

[runtime]
enable_debug = false
internetworking_model = "tcfilter"
disable_guest_seccomp = true
sandbox_cgroup_only = false
static_sandbox_resource_mgmt = true
experimental = []
`

func TestParseKataConfig(t *testing.T) {
	c, err := ParseKataConfig([]byte(kataQemu))
	if err != nil {
		t.Fatal(err)
	}
	if strings.Join(c.Hypervisors, ",") != "qemu" || strings.Join(c.Agents, ",") != "kata" || !c.DisableGuestSeccomp {
		t.Fatalf("got %+v", c)
	}
	on, err := ParseKataConfig([]byte(strings.Replace(kataQemu, "disable_guest_seccomp = true", "disable_guest_seccomp = false", 1)))
	if err != nil || on.DisableGuestSeccomp {
		t.Fatalf("disable_guest_seccomp = false: %+v, %v", on, err)
	}
	// A missing key is Kata's default for it: guest seccomp on.
	absent, err := ParseKataConfig([]byte("[hypervisor.clh]\npath = \"/x\"\n[runtime]\n"))
	if err != nil || absent.DisableGuestSeccomp || absent.Hypervisors[0] != "clh" {
		t.Fatalf("no disable_guest_seccomp: %+v, %v", absent, err)
	}
}

func TestParseKataConfigErrors(t *testing.T) {
	for name, data := range map[string]string{
		"wrong type":    "[hypervisor.qemu]\n[runtime]\ndisable_guest_seccomp = \"false\"\n",
		"no hypervisor": "[runtime]\ndisable_guest_seccomp = false\n",
		"not toml":      "[hypervisor.qemu\n",
		"palisade file": "default_handler = \"gvisor\"\n[handlers.gvisor]\nbackend = \"runsc\"\n",
	} {
		if c, err := ParseKataConfig([]byte(data)); err == nil {
			t.Errorf("%s: accepted as %+v", name, c)
		}
	}
}

func TestLoadKataConfig(t *testing.T) {
	path := filepath.Join(t.TempDir(), "configuration.toml")
	if err := os.WriteFile(path, []byte(kataQemu), 0o644); err != nil {
		t.Fatal(err)
	}
	c, err := LoadKataConfig(path)
	if err != nil || c.Path != path {
		t.Fatalf("%+v, %v", c, err)
	}
	if _, err := LoadKataConfig(path + ".missing"); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("missing file: %v", err)
	}
}

func TestKataSupport(t *testing.T) {
	cfg := Config{ConfigPath: "/etc/kata-containers/configuration.toml"}.WithDefaults(KindKata)
	off := &KataConfig{Path: cfg.ConfigPath, Hypervisors: []string{"qemu"}, DisableGuestSeccomp: true}
	s := support(cfg, KindKata, off)
	if s.SeccompEnforcer != "" || !strings.Contains(s.SeccompMissing, "disable_guest_seccomp = true") ||
		!strings.Contains(s.SeccompMissing, cfg.ConfigPath) {
		t.Fatalf("guest seccomp off must not be claimed and must name the setting: %+v", s)
	}
	if !strings.Contains(s.CapabilityEnforcer, "guest agent") || s.NoNewPrivsEnforcer == "" || s.AppArmorEnforcer != "" {
		t.Fatalf("capabilities are the guest agent's; AppArmor is never claimed: %+v", s)
	}
	// What policy makes of it: a seccomp floor fails closed, naming it.
	floor, err := policy.NewFloor(policy.Config{Seccomp: "runtime-default"}, nil)
	if err != nil {
		t.Fatal(err)
	}
	spec := &specs.Spec{Process: &specs.Process{}, Linux: &specs.Linux{}}
	if _, err := policy.Enforce(spec, floor, s); !errors.Is(err, policy.ErrNotEnforceable) ||
		!strings.Contains(err.Error(), "disable_guest_seccomp") {
		t.Fatalf("Enforce: %v", err)
	}
	on := *off
	on.DisableGuestSeccomp = false
	if s := support(cfg, KindKata, &on); !strings.Contains(s.SeccompEnforcer, "guest kernel") {
		t.Fatalf("guest seccomp on: %+v", s)
	}
}

func TestKataAnnotations(t *testing.T) {
	k := &KataConfig{Path: "/etc/kata-containers/configuration.toml"}
	filtered := &specs.Linux{Seccomp: &specs.LinuxSeccomp{DefaultAction: specs.ActErrno}}
	for _, tc := range []struct {
		name  string
		ann   map[string]string
		linux *specs.Linux
		ok    bool
	}{
		{"none", nil, filtered, true},
		{"guest seccomp off", map[string]string{kataNoSeccompAnnotation: "true"}, filtered, false},
		{"guest seccomp off, unparsable", map[string]string{kataNoSeccompAnnotation: "yes"}, filtered, false},
		{"guest seccomp kept", map[string]string{kataNoSeccompAnnotation: "false"}, filtered, true},
		{"off but no filter to lose", map[string]string{kataNoSeccompAnnotation: "true"}, &specs.Linux{}, true},
		{"other config", map[string]string{kataConfigPathAnnotation: "/tmp/evil.toml"}, &specs.Linux{}, false},
		{"same config", map[string]string{kataConfigPathAnnotation: "/etc/kata-containers//configuration.toml"}, filtered, true},
	} {
		err := checkKataAnnotations(&specs.Spec{Annotations: tc.ann, Linux: tc.linux}, k)
		if tc.ok != (err == nil) {
			t.Errorf("%s: %v", tc.name, err)
		}
		if err != nil && !errdefs.IsPermissionDenied(err) {
			t.Errorf("%s: want a permission-denied error, got %v", tc.name, err)
		}
	}
}

func TestAmendDecisionKata(t *testing.T) {
	d := &policy.Decision{Controls: []policy.Control{
		{Name: policy.ControlSeccomp},
		{Name: policy.ControlAppArmor, Requested: "runtime/default"},
	}}
	(&Service{kind: KindKata}).AmendDecision(d)
	if n := d.Controls[1].NotEnforced; !strings.Contains(n, "AppArmor is not available") || !strings.Contains(n, "runtime/default") {
		t.Fatalf("apparmor control: %q", n)
	}
	plain := &policy.Decision{Controls: []policy.Control{{Name: policy.ControlAppArmor}}}
	(&Service{kind: KindShim}).AmendDecision(plain)
	if plain.Controls[0].NotEnforced != "" {
		t.Fatalf("a generic shim's record must not speak of Kata: %+v", plain)
	}
}

func FuzzParseKataConfig(f *testing.F) {
	f.Add([]byte(kataQemu))
	f.Add([]byte("[hypervisor.fc]\n[runtime]\ndisable_guest_seccomp = false\n"))
	f.Add([]byte("[runtime]\ndisable_guest_seccomp = 1\n"))
	f.Add([]byte("hypervisor = 3\n"))
	f.Fuzz(func(t *testing.T, data []byte) {
		c, err := ParseKataConfig(data)
		if err != nil {
			if c != nil {
				t.Fatal("a config returned with an error")
			}
			return
		}
		if len(c.Hypervisors) == 0 {
			t.Fatal("accepted without a hypervisor table")
		}
		// Whatever parses yields a definite answer on guest seccomp, and
		// support never claims seccomp when Kata drops it.
		s := support(Config{}.WithDefaults(KindKata), KindKata, c)
		if c.DisableGuestSeccomp == (s.SeccompEnforcer != "") {
			t.Fatalf("disable_guest_seccomp %v but seccomp enforcer %q", c.DisableGuestSeccomp, s.SeccompEnforcer)
		}
	})
}

func TestSupportWithoutStarting(t *testing.T) {
	path := filepath.Join(t.TempDir(), "configuration.toml")
	if err := os.WriteFile(path, []byte(kataQemu), 0o644); err != nil {
		t.Fatal(err)
	}
	s, err := Support(Config{ConfigPath: path}, KindKata, "")
	if err != nil || s.SeccompEnforcer != "" || !strings.Contains(s.SeccompMissing, path) {
		t.Fatalf("kata as shipped (guest seccomp off): %+v, %v", s, err)
	}
	s, err = Support(Config{Binary: "containerd-shim-runc-v2"}, KindShim, "palisade-delegate")
	if err != nil || !strings.Contains(s.AppArmorEnforcer, "palisade-delegate") || s.SeccompEnforcer == "" {
		t.Fatalf("runc shim under a host profile: %+v, %v", s, err)
	}
	if _, err := Support(Config{ConfigPath: path + ".missing"}, KindKata, ""); err == nil {
		t.Fatal("a missing Kata configuration must be an error")
	}
}
