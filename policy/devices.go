package policy

import (
	"fmt"
	"slices"

	"github.com/opencontainers/runtime-spec/specs-go"
)

// ociDevice is a device every OCI runtime creates in a container.
type ociDevice struct {
	path         string
	major, minor int64
}

// ociDefaultDevices are the runtime-spec's default devices (config-linux.md
// "Default Devices"). A linux.devices entry at one of these paths is
// allowed only with the device numbers it always has.
var ociDefaultDevices = []ociDevice{
	{"/dev/null", 1, 3}, {"/dev/zero", 1, 5}, {"/dev/full", 1, 7}, {"/dev/random", 1, 8},
	{"/dev/urandom", 1, 9}, {"/dev/tty", 5, 0}, {"/dev/console", 5, 1}, {"/dev/ptmx", 5, 2},
}

// defaultDeviceRules is containerd's default device cgroup allow list
// (pkg/oci WithDefaultUnixDevices); TestContainerdDefaults compares it.
// A nil minor is every minor (the pty slaves, major 136).
var defaultDeviceRules = func() []specs.LinuxDeviceCgroup {
	n := func(i int64) *int64 { return &i }
	rule := func(major int64, minor *int64) specs.LinuxDeviceCgroup {
		return specs.LinuxDeviceCgroup{Allow: true, Type: "c", Major: n(major), Minor: minor, Access: "rwm"}
	}
	return []specs.LinuxDeviceCgroup{rule(1, n(3)), rule(1, n(8)), rule(1, n(7)), rule(5, n(0)),
		rule(1, n(5)), rule(1, n(9)), rule(5, n(1)), rule(136, nil), rule(5, n(2))}
}

// devicesControl keeps linux.devices to the OCI defaults plus the paths in
// the handler's devices list, and makes the device cgroup default-deny
// with containerd's default allow list plus rules for the devices kept.
// A privileged request (host devices, allow-all) ends as an unprivileged
// one would; over_ceiling decides between that and a refusal.
type devicesControl struct{}

func (devicesControl) enforce(w *work) (Control, error) {
	l := w.spec.Linux
	c := Control{Name: ControlDevices, EnforcedBy: w.s.Backend}
	var o outcome
	var kept []specs.LinuxDevice
	for i, d := range l.Devices {
		if why := deviceNotAllowed(d, w.cfg.Devices); why != "" {
			o.over("removed", "linux.devices[%d] (%s %s %d:%d): %s", i, d.Type, d.Path, d.Major, d.Minor, why)
			continue
		}
		kept = append(kept, d)
	}
	var rules []specs.LinuxDeviceCgroup
	var reqRules []specs.LinuxDeviceCgroup
	if l.Resources != nil {
		reqRules = l.Resources.Devices
	}
	rules = append(rules, specs.LinuxDeviceCgroup{Allow: false, Access: "rwm"})
	for i, r := range reqRules {
		switch {
		case i == 0 && !r.Allow && isAllDevices(r):
			continue // the default deny, already first
		case !r.Allow:
			rules = append(rules, r) // a deny narrows: kept, in order
		case ruleIn(r, defaultDeviceRules()) || ruleForDevice(r, kept):
			rules = append(rules, r)
		default:
			o.over("removed", "linux.resources.devices[%d] (allow %s): allows more than the default devices and the allowed devices", i, ruleString(r))
		}
	}
	if len(reqRules) == 0 || reqRules[0].Allow || !isAllDevices(reqRules[0]) {
		o.over("default deny (a rwm) put first", "linux.resources.devices: does not start by denying every device")
	}
	if len(o.changed) > 0 {
		// What a clamped request keeps is what an unprivileged one gets:
		// containerd's default allow list after the deny.
		rules = append(rules[:1:1], append(defaultDeviceRules(), rules[1:]...)...)
	}
	write, err := o.finish(w, &c, w.cfg.overCeiling())
	if err != nil {
		return c, err
	}
	c.Requested = fmt.Sprintf("%d devices, %d device cgroup rules", len(l.Devices), len(reqRules))
	c.Effective = fmt.Sprintf("%d devices (OCI defaults and policy.devices only); device cgroup: deny all first, allow only containerd's defaults and kept devices",
		len(kept))
	if write {
		l.Devices = kept
		res := specs.LinuxResources{}
		if l.Resources != nil {
			res = *l.Resources
		}
		res.Devices = rules
		l.Resources = &res
	} else if len(o.changed) > 0 {
		c.Effective = "as requested (complain mode)"
	}
	return c, nil
}

// deviceNotAllowed says why d may not be created, or "".
func deviceNotAllowed(d specs.LinuxDevice, allowed []string) string {
	for _, od := range ociDefaultDevices {
		if d.Path == od.path {
			if d.Type == "c" && d.Major == od.major && d.Minor == od.minor {
				return ""
			}
			return fmt.Sprintf("an OCI default device path with other device numbers (want c %d:%d)", od.major, od.minor)
		}
	}
	if slices.Contains(allowed, d.Path) {
		return ""
	}
	return "not an OCI default device and not in policy.devices"
}

func isAllDevices(r specs.LinuxDeviceCgroup) bool {
	return (r.Type == "" || r.Type == "a") && r.Major == nil && r.Minor == nil
}

func ruleIn(r specs.LinuxDeviceCgroup, list []specs.LinuxDeviceCgroup) bool {
	for _, d := range list {
		if d.Allow == r.Allow && d.Type == r.Type && eqPtr(d.Major, r.Major) && eqPtr(d.Minor, r.Minor) && accessWithin(r.Access, d.Access) {
			return true
		}
	}
	return false
}

// ruleForDevice: r allows exactly one device of kept (type and numbers).
func ruleForDevice(r specs.LinuxDeviceCgroup, kept []specs.LinuxDevice) bool {
	if r.Major == nil || r.Minor == nil {
		return false
	}
	for _, d := range kept {
		if d.Type == r.Type && d.Major == *r.Major && d.Minor == *r.Minor {
			return true
		}
	}
	return false
}

func accessWithin(a, of string) bool {
	for _, ch := range a {
		if !slices.Contains([]rune(of), ch) {
			return false
		}
	}
	return true
}

func eqPtr(a, b *int64) bool { return a == nil && b == nil || a != nil && b != nil && *a == *b }

func ruleString(r specs.LinuxDeviceCgroup) string {
	num := func(p *int64) string {
		if p == nil {
			return "*"
		}
		return fmt.Sprint(*p)
	}
	t := r.Type
	if t == "" {
		t = "a"
	}
	return fmt.Sprintf("%s %s:%s %s", t, num(r.Major), num(r.Minor), r.Access)
}
