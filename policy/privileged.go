package policy

import (
	"fmt"
	"slices"
	"strings"

	"github.com/opencontainers/runtime-spec/specs-go"
)

// ControlPrivileged and the other whole-spec control names in a Decision.
const (
	ControlPrivileged = "privileged"
	ControlNamespaces = "namespaces"
	ControlDevices    = "devices"
	ControlSysctls    = "sysctls"
	ControlResources  = "resources" // rlimits, oomScoreAdj, cgroupsPath
	ControlMounts     = "mounts"
	ControlToken      = "service_account_token"
)

// defaultMaskedPaths and defaultReadonlyPaths are containerd's defaults
// (pkg/oci populateDefaultUnixSpec, containerd 2.4); kubelet sends the same
// lists for a pod without procMount Unmasked. TestContainerdDefaults
// compares them with containerd's spec generation.
var (
	defaultMaskedPaths = []string{"/proc/acpi", "/proc/asound", "/proc/interrupts", "/proc/kcore",
		"/proc/keys", "/proc/latency_stats", "/proc/timer_list", "/proc/timer_stats",
		"/proc/sched_debug", "/sys/firmware", "/sys/devices/virtual/powercap", "/proc/scsi"}
	defaultReadonlyPaths = []string{"/proc/bus", "/proc/fs", "/proc/irq", "/proc/sys", "/proc/sysrq-trigger"}
)

// privilegedControl restores the confinement a privileged request takes
// away (OCI has no privileged flag: containerd's WithPrivileged shows up as
// empty maskedPaths and readonlyPaths and a writable sysfs and cgroupfs).
// Capabilities, seccomp and AppArmor are their own controls; host devices
// and the device cgroup are the devices control's.
type privilegedControl struct{}

func (privilegedControl) enforce(w *work) (Control, error) {
	l := w.spec.Linux
	c := Control{Name: ControlPrivileged, EnforcedBy: w.s.Backend,
		Requested: fmt.Sprintf("maskedPaths %d, readonlyPaths %d, sysfs %s, cgroupfs %s",
			len(l.MaskedPaths), len(l.ReadonlyPaths), mountAccess(w.spec.Mounts, "sysfs"), mountAccess(w.spec.Mounts, "cgroup", "cgroup2"))}
	var o outcome
	masked, missing := withAll(l.MaskedPaths, defaultMaskedPaths)
	if len(missing) > 0 {
		o.over("added", "linux.maskedPaths: lacks containerd's default %s", strings.Join(missing, ","))
	}
	ro, missingRO := withAll(l.ReadonlyPaths, defaultReadonlyPaths)
	if len(missingRO) > 0 {
		o.over("added", "linux.readonlyPaths: lacks containerd's default %s", strings.Join(missingRO, ","))
	}
	mounts := w.spec.Mounts
	copied := false
	for i, m := range mounts {
		if !pseudoReadOnly(m.Type) || hasOpt(m.Options, "ro") {
			continue
		}
		if !copied {
			mounts, copied = slices.Clone(mounts), true
		}
		mounts[i].Options = setReadOnly(m.Options)
		o.over("-> ro", "mounts[%d] (%s %s): read-write", i, m.Type, m.Destination)
	}
	write, err := o.finish(w, &c, w.cfg.privileged())
	if err != nil {
		return c, err
	}
	if write {
		l.MaskedPaths, l.ReadonlyPaths, w.spec.Mounts = masked, ro, mounts
	}
	c.Effective = fmt.Sprintf("maskedPaths ⊇ containerd's %d, readonlyPaths ⊇ containerd's %d, sysfs and cgroupfs read-only",
		len(defaultMaskedPaths), len(defaultReadonlyPaths))
	if !write && len(o.changed) > 0 {
		c.Effective = "as requested (complain mode)"
	}
	return c, nil
}

// pseudoReadOnly: file systems that expose host state and must be
// mounted read-only in an unprivileged container.
func pseudoReadOnly(typ string) bool {
	return typ == "sysfs" || typ == "cgroup" || typ == "cgroup2"
}

// withAll returns have plus whichever of want it lacks (a new slice when
// anything is added), and what was added.
func withAll(have, want []string) ([]string, []string) {
	var missing []string
	for _, p := range want {
		if !slices.Contains(have, p) {
			missing = append(missing, p)
		}
	}
	if len(missing) == 0 {
		return have, nil
	}
	return append(slices.Clip(have), missing...), missing
}

func hasOpt(opts []string, o string) bool { return slices.Contains(opts, o) }

// setReadOnly returns opts with "rw" replaced by "ro" (or "ro" added).
func setReadOnly(opts []string) []string {
	out := make([]string, 0, len(opts)+1)
	for _, o := range opts {
		if o != "rw" {
			out = append(out, o)
		}
	}
	return append(out, "ro")
}

// mountAccess describes how the spec mounts the first file system of the
// given types: "ro", "rw" or "absent".
func mountAccess(ms []specs.Mount, types ...string) string {
	for _, m := range ms {
		if slices.Contains(types, m.Type) {
			if hasOpt(m.Options, "ro") {
				return "ro"
			}
			return "rw"
		}
	}
	return "absent"
}
