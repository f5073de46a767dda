package integration

import (
	"maps"

	"github.com/containerd/containerd/v2/pkg/oci"
	specs "github.com/opencontainers/runtime-spec/specs-go"
)

// The escape suite's privileged rows (issue 14): the shipped runc-floor and
// gvisor handlers (privileged = "clamp") run the probe in a container that
// asks for everything `ctr run --privileged` and a privileged pod ask for:
// every capability, no masked or read-only paths, writable sysfs and
// cgroupfs, the host's devices with an allow-all device cgroup, and on
// gVisor the host's PID namespace (recorded there, not refused: the
// sentry's PID namespace is its own). The floor must leave it no more than
// an unprivileged container under the same handler.

// privilegedAttack is what the rows ask for.
var privilegedAttack = []oci.SpecOpts{oci.WithPrivileged, oci.WithHostDevices, oci.WithAllDevicesAllowed, oci.WithNewPrivileges}

// defaultCeilingAllowed are the attempts the default ceiling (containerd's
// default capabilities) lets through on any backend, and why none is an
// escape.
var defaultCeilingAllowed = map[string]string{
	"chroot": "CAP_SYS_CHROOT is in containerd's default set; chroot inside the container's own root",
	// containerd's default device cgroup allows mknod (m) of every device,
	// as for any unprivileged container; the clamped cgroup denies reading
	// and writing it, and /tmp is nodev.
	"mknod-block-device": "CAP_MKNOD is in containerd's default set and its device cgroup allows m; the node cannot be opened",
}

func privilegedRows(ceiling []string) []escapeRow {
	runc := maps.Clone(defaultCeilingAllowed)
	runc["ptrace-own-child-same-uid"] = "host kernel: same uid and capabilities (strace); the floor allows ptrace on >= 4.8"
	runc["ptrace-pid1"] = "host kernel without YAMA: same uid and capabilities as pid 1"
	gv := maps.Clone(defaultCeilingAllowed)
	maps.Copy(gv, gVisorAllowed)
	return []escapeRow{
		{name: "privileged-runc-floor", handler: "runc-floor", spec: privilegedAttack, strict: true, allowed: runc, ceiling: ceiling},
		{name: "privileged-hostpid-gvisor", handler: "gvisor",
			spec:   append(append([]oci.SpecOpts{}, privilegedAttack...), oci.WithHostNamespace(specs.PIDNamespace)),
			strict: true, allowed: gv, ceiling: ceiling},
	}
}
