package integration

import (
	"testing"
)

// runcShimType is containerd's own shim. ctr gives it its options through
// --runc-binary and --runc-root, and ignores --runtime-config-path for it.
const runcShimType = "io.containerd.runc.v2"

// runtimeUnderTest is one row of a backend table: how ctr selects the runtime and
// what must exist on the host for it. Every helper that runs a container takes one.
type runtimeUnderTest struct {
	// Name names the subtest.
	Name string
	// RuntimeType is ctr's --runtime: a shim runtime name such as
	// io.containerd.palisade.v2 (containerd looks up containerd-shim-palisade-v2).
	RuntimeType string
	// ConfigPath is passed as --runtime-config-path (not for runcShimType).
	ConfigPath string
	// ConfigFor, if set, writes a runtime config for one containerd and returns its
	// path; it overrides ConfigPath and lets the config name the env's private dirs.
	ConfigFor func(t testing.TB, e *containerdEnv) string
	// RuncBinary is the runc-compatible binary containerd-shim-runc-v2 drives, a
	// tool name or absolute path (runcShimType only). Its state goes to the env's
	// RuntimeRoot, not the global /run/containerd/runc.
	RuncBinary string
	// Tools must all be found by lookupTool, or the test is skipped.
	Tools []string
	// NeedsPalisade puts the Palisade shim (see palisadeBinDir) on containerd's PATH.
	NeedsPalisade bool
}

// runcRuntime is the stock shim driving runc: the reference every other backend is
// compared with.
func runcRuntime() runtimeUnderTest {
	return runtimeUnderTest{
		Name:        "runc",
		RuntimeType: runcShimType,
		RuncBinary:  "runc",
		Tools:       []string{"containerd-shim-runc-v2", "runc"},
	}
}

// runscViaRuncShim is the stock shim driving runsc with runsc's default flags: an
// unpatched gVisor peer (gVisor's own shim cannot run here, see machine notes).
func runscViaRuncShim() runtimeUnderTest {
	return runtimeUnderTest{
		Name:        "runcshim-runsc",
		RuntimeType: runcShimType,
		RuncBinary:  "runsc",
		Tools:       []string{"containerd-shim-runc-v2", "runsc"},
	}
}

// startContainerdFor checks rt's prerequisites, puts its shim directories on
// containerd's PATH and starts a private containerd (see startContainerd).
func startContainerdFor(t testing.TB, rt runtimeUnderTest, opts containerdOpts) *containerdEnv {
	t.Helper()
	requireIntegration(t, rt.Tools...)
	if rt.NeedsPalisade {
		opts.ShimDirs = append(opts.ShimDirs, palisadeBinDir(t))
	}
	return startContainerd(t, opts)
}

// ctrFlags are the `ctr run` flags that select rt.
func (rt runtimeUnderTest) ctrFlags(t testing.TB, e *containerdEnv) []string {
	t.Helper()
	flags := []string{"--runtime", rt.RuntimeType}
	if rt.RuntimeType == runcShimType {
		flags = append(flags, "--runc-root", e.RuntimeRoot)
		if rt.RuncBinary != "" {
			bin, err := lookupTool(rt.RuncBinary)
			if err != nil {
				t.Fatal(err)
			}
			flags = append(flags, "--runc-binary", bin)
		}
		return flags
	}
	switch {
	case rt.ConfigFor != nil:
		flags = append(flags, "--runtime-config-path", rt.ConfigFor(t, e))
	case rt.ConfigPath != "":
		flags = append(flags, "--runtime-config-path", rt.ConfigPath)
	}
	return flags
}
