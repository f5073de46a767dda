package shimv2

import (
	"fmt"
	"path/filepath"
	"strings"

	"github.com/palisade-runtime/palisade/policy"
)

// support states who enforces the floor behind the downstream shim. The
// shim itself enforces nothing: whatever it runs does. Palisade claims only
// what it knows: containerd-shim-runc-v2 with a host-kernel runtime (the
// host kernel applies the filter, the sets and no_new_privs), the same shim
// with runsc (the sentry does, but seccomp only with --oci-seccomp, which
// this shim cannot pass), and Kata (the guest kernel and agent). For any
// other shim nothing is claimed, so every configured control fails closed.
// AppArmor is decided by the shim package for the host side.
func support(c Config, kind string, kata *KataConfig) policy.Support {
	if kind == KindKata {
		s := policy.Support{
			Backend:            "kata (" + c.shimName() + ", " + strings.Join(kata.Hypervisors, ",") + ")",
			CapabilityEnforcer: "Kata guest agent (applies the capability sets inside the VM)",
			NoNewPrivsEnforcer: "Kata guest agent (inside the VM)",
			SeccompMissing:     kata.seccompMissing(),
		}
		if s.SeccompMissing == "" {
			s.SeccompEnforcer = "Kata guest kernel (the agent installs the filter; disable_guest_seccomp = false in " + kata.Path + ")"
		}
		// The guest kernel's version is not known here. The shim fills in
		// the host's; Kata's guest kernels are not older than the 4.8 that
		// runtime-default's kernel-gated rules ask for.
		return s
	}
	shim := c.shimName()
	s := policy.Support{Backend: "shim:" + shim}
	if shim != runcShim {
		s.SeccompMissing = fmt.Sprintf("Palisade does not know what %s runs or whether it applies linux.seccomp", shim)
		return s
	}
	runtime := filepath.Base(c.BinaryName)
	if c.BinaryName == "" {
		runtime = "runc" // containerd-shim-runc-v2's default
	}
	by := fmt.Sprintf(" (%s under %s)", runtime, shim)
	switch runtime {
	case "runc", "crun":
		s.SeccompEnforcer = "host kernel" + by
		s.CapabilityEnforcer = "host kernel" + by
		s.NoNewPrivsEnforcer = "host kernel" + by
		// KernelVersion: the host's, which the shim fills in.
	case "runsc":
		s.CapabilityEnforcer = "gVisor sentry" + by
		s.NoNewPrivsEnforcer = "gVisor sentry" + by
		s.SeccompMissing = shim + " starts runsc without --oci-seccomp, and runsc ignores linux.seccomp without it " +
			"(use backend = \"runsc\" for a seccomp floor on gVisor)"
	default:
		s.SeccompMissing = fmt.Sprintf("Palisade does not know whether %s (under %s) applies linux.seccomp", runtime, shim)
	}
	return s
}

// Support is what a delegate handler enforces, known without starting it:
// for Kata it reads Kata's configuration. hostProfile is the host AppArmor
// profile the downstream shim will run under ("" when none). New uses the
// same; palisadectl and `-info` can use it to predict a fail-closed Create.
func Support(cfg Config, kind, hostProfile string) (policy.Support, error) {
	cfg = cfg.WithDefaults(kind)
	if err := cfg.Validate(kind); err != nil {
		return policy.Support{}, err
	}
	var kata *KataConfig
	if kind == KindKata {
		var err error
		if kata, err = LoadKataConfig(cfg.ConfigPath); err != nil {
			return policy.Support{}, err
		}
	}
	return supportUnder(cfg, kind, kata, hostProfile), nil
}

// supportUnder is support with the host AppArmor profile the downstream
// runs under.
func supportUnder(cfg Config, kind string, kata *KataConfig, hostProfile string) policy.Support {
	s := support(cfg, kind, kata)
	if hostProfile != "" {
		s.AppArmorEnforcer = "host AppArmor profile " + hostProfile + " on " + cfg.shimName() +
			", the runtime it drives and their children (exec transition)"
	}
	return s
}

// AmendDecision adds to a container's decision record what only the
// backend knows. Under Kata the pod's process.apparmorProfile is never
// applied: the guest kernel has no AppArmor. (Capabilities and no_new_privs
// already name the guest agent as their enforcer, through Support.)
func (s *Service) AmendDecision(d *policy.Decision) {
	if s.kind != KindKata {
		return
	}
	for i := range d.Controls {
		c := &d.Controls[i]
		if c.Name != policy.ControlAppArmor {
			continue
		}
		note := "inside the Kata guest: AppArmor is not available (the guest kernel has none), " +
			"so the container's own profile"
		if c.Requested != "" {
			note += " " + fmt.Sprintf("%q", c.Requested)
		}
		note += " is not applied"
		if c.NotEnforced != "" {
			note = c.NotEnforced + "; " + note
		}
		c.NotEnforced = note
	}
}
