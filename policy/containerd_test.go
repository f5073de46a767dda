package policy

import (
	"context"
	"errors"
	"slices"
	"strings"
	"testing"

	"github.com/containerd/containerd/v2/core/containers"
	"github.com/containerd/containerd/v2/pkg/namespaces"
	"github.com/containerd/containerd/v2/pkg/oci"
	"github.com/opencontainers/runtime-spec/specs-go"
)

// containerdSpec is the spec containerd 2.4's own code generates for
// `ctr run` with opts (ctr --privileged is oci.WithPrivileged,
// oci.WithAllDevicesAllowed and oci.WithHostDevices), on this host.
func containerdSpec(t *testing.T, opts ...oci.SpecOpts) *specs.Spec {
	t.Helper()
	ctx := namespaces.WithNamespace(context.Background(), "default")
	s, err := oci.GenerateSpec(ctx, nil, &containers.Container{ID: "c1"}, opts...)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// TestContainerdDefaults: the floor's tables are containerd's defaults.
func TestContainerdDefaults(t *testing.T) {
	s := containerdSpec(t, oci.WithDefaultUnixDevices)
	if !slices.Equal(s.Linux.MaskedPaths, defaultMaskedPaths) {
		t.Errorf("masked paths: containerd %v, floor %v", s.Linux.MaskedPaths, defaultMaskedPaths)
	}
	if !slices.Equal(s.Linux.ReadonlyPaths, defaultReadonlyPaths) {
		t.Errorf("read-only paths: containerd %v, floor %v", s.Linux.ReadonlyPaths, defaultReadonlyPaths)
	}
	got := s.Linux.Resources.Devices
	want := append([]specs.LinuxDeviceCgroup{{Allow: false, Access: "rwm"}}, defaultDeviceRules()...)
	if js(got) != js(want) {
		t.Errorf("device cgroup: containerd %s, floor %s", js(got), js(want))
	}
}

func TestCtrPrivilegedClamped(t *testing.T) {
	req := containerdSpec(t, oci.WithPrivileged, oci.WithAllDevicesAllowed, oci.WithHostDevices,
		oci.WithLinuxNamespace(specs.LinuxNamespace{Type: specs.NetworkNamespace}))
	if len(req.Linux.MaskedPaths) != 0 || mountAccess(req.Mounts, "sysfs") != "rw" {
		t.Fatalf("containerd's privileged spec changed shape: maskedPaths %v, sysfs %s", req.Linux.MaskedPaths, mountAccess(req.Mounts, "sysfs"))
	}
	runcFloor := Config{Seccomp: SeccompRuntimeDefault, NoNewPrivileges: true,
		Capabilities: CapsConfig{Ceiling: []string{"CHOWN", "DAC_OVERRIDE", "FSETID", "FOWNER", "MKNOD", "NET_RAW", "SETGID",
			"SETUID", "SETFCAP", "SETPCAP", "NET_BIND_SERVICE", "SYS_CHROOT", "KILL", "AUDIT_WRITE"}}}
	s := Support{Backend: "shim:containerd-shim-runc-v2", SeccompEnforcer: "k", CapabilityEnforcer: "k", NoNewPrivsEnforcer: "k", KernelVersion: "6.1"}
	fl, err := NewFloor(runcFloor, nil)
	if err != nil {
		t.Fatal(err)
	}
	spec := containerdSpec(t, oci.WithPrivileged, oci.WithAllDevicesAllowed, oci.WithHostDevices,
		oci.WithLinuxNamespace(specs.LinuxNamespace{Type: specs.NetworkNamespace}))
	d, err := Enforce(spec, fl, s)
	if err != nil {
		t.Fatal(err)
	}
	checkFloorPromise(t, spec, runcFloor, s)
	for _, dev := range spec.Linux.Devices {
		if !slices.ContainsFunc(ociDefaultDevices, func(o ociDevice) bool { return o.path == dev.Path }) {
			t.Errorf("host device %s kept", dev.Path)
		}
	}
	t.Logf("host devices: %d requested, %d kept (OCI defaults)", len(req.Linux.Devices), len(spec.Linux.Devices))
	if slices.Contains(spec.Process.Capabilities.Bounding, "CAP_SYS_ADMIN") {
		t.Error("CAP_SYS_ADMIN kept")
	}
	var priv Control
	for _, c := range d.Controls {
		if c.Name == ControlPrivileged {
			priv = c
		}
	}
	if !slices.ContainsFunc(priv.Changed, func(s string) bool { return strings.Contains(s, "/proc/sys") }) ||
		!slices.ContainsFunc(priv.Changed, func(s string) bool { return strings.Contains(s, "sysfs /sys") }) {
		t.Errorf("privileged record does not name /proc/sys and sysfs: %v", priv.Changed)
	}

	// The same request on a refusing handler fails, naming each field.
	strict := runcFloor
	strict.Privileged = PrivilegedRefuse
	fl, err = NewFloor(strict, nil)
	if err != nil {
		t.Fatal(err)
	}
	_, err = Enforce(req, fl, s)
	if !errors.Is(err, ErrRefused) {
		t.Fatalf("privileged = refuse: got %v", err)
	}
	for _, field := range []string{"linux.maskedPaths", "linux.readonlyPaths", "sysfs /sys"} {
		if !strings.Contains(err.Error(), field) {
			t.Errorf("refusal does not name %s: %v", field, err)
		}
	}
}
