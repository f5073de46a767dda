package policy

import (
	"errors"
	"testing"

	"github.com/opencontainers/runtime-spec/specs-go"
)

// TestRefuseClampsCRISandbox: on a refuse handler whose ceiling is below
// containerd's default capabilities, a pod's app container asking for those
// is refused, but the pod's sandbox (pause) container, which gets them from
// containerd whatever the pod says, is clamped: otherwise no pod could run.
func TestRefuseClampsCRISandbox(t *testing.T) {
	f, err := NewFloor(Config{OverCeiling: OverCeilingRefuse, Capabilities: CapsConfig{Ceiling: []string{"CAP_KILL"}}}, nil)
	if err != nil {
		t.Fatal(err)
	}
	spec := func(kind string) *specs.Spec {
		caps := []string{"CAP_KILL", "CAP_CHOWN"}
		return &specs.Spec{
			Annotations: map[string]string{"io.kubernetes.cri.container-type": kind},
			Process:     &specs.Process{Capabilities: &specs.LinuxCapabilities{Bounding: caps, Effective: caps, Permitted: caps}},
			Linux: &specs.Linux{Resources: &specs.LinuxResources{Devices: []specs.LinuxDeviceCgroup{{Allow: false, Access: "rwm"}}},
				Namespaces: []specs.LinuxNamespace{{Type: specs.PIDNamespace}, {Type: specs.IPCNamespace},
					{Type: specs.UTSNamespace}, {Type: specs.MountNamespace}, {Type: specs.NetworkNamespace}}},
		}
	}
	if _, err := Enforce(spec("container"), f, Support{Backend: "runsc", CapabilityEnforcer: "sentry"}); !errors.Is(err, ErrRefused) {
		t.Fatalf("app container above the ceiling: %v, want refused", err)
	}
	s := spec("sandbox")
	if _, err := Enforce(s, f, Support{Backend: "runsc", CapabilityEnforcer: "sentry"}); err != nil {
		t.Fatalf("sandbox container: %v, want clamped", err)
	}
	if b := s.Process.Capabilities.Bounding; len(b) != 1 || b[0] != "CAP_KILL" {
		t.Fatalf("sandbox container's bounding set %q, want [CAP_KILL]", b)
	}
}
