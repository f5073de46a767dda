package policy

import "github.com/opencontainers/runtime-spec/specs-go"

// containerNamespaces are the namespaces containerd's default spec asks
// for: all new, none shared with the host.
func containerNamespaces() []specs.LinuxNamespace {
	return []specs.LinuxNamespace{{Type: specs.PIDNamespace}, {Type: specs.IPCNamespace},
		{Type: specs.UTSNamespace}, {Type: specs.MountNamespace}, {Type: specs.NetworkNamespace}}
}
