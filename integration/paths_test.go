package integration

import (
	"strings"
	"testing"

	"github.com/containerd/containerd/v2/pkg/oci"
)

// TestMaskedAndReadonlyPaths: gVisor ignores linux.maskedPaths and
// linux.readonlyPaths, so Palisade's runsc backend turns those outside /proc
// and /sys into mounts, as runc applies them: a masked file cannot be run or
// read, a masked directory is empty, a read-only path cannot be written,
// and the rest of the root filesystem is untouched (critest: "runtime should
// support MaskedPaths", "ReadonlyPaths").
func TestMaskedAndReadonlyPaths(t *testing.T) {
	for _, rt := range palisadeBackends() {
		t.Run(rt.Name, func(t *testing.T) {
			if rt.Name == rowDelegateRunsc {
				t.Skip("containerd-shim-runc-v2 driving runsc: gVisor ignores masked and read-only paths there (google/gvisor#9245); Palisade applies them in its runsc backend")
			}
			env := startContainerdFor(t, rt, containerdOpts{})
			script := `/bin/probe nnp >/dev/null 2>&1; echo probe=$?; ` +
				`echo etc=$(ls /etc | wc -l); ` +
				`touch /tmp/x 2>/dev/null; echo tmp=$?; ` +
				`touch /root/x; echo root=$?`
			out, code := env.runWithSpec(t, rt, "paths", probeRootfs(t),
				oci.WithMaskedPaths([]string{"/proc/kcore", "/bin/probe", "/etc"}),
				oci.WithReadonlyPaths([]string{"/proc/sys", "/tmp"}),
				oci.WithProcessArgs("/bin/sh", "-c", script))
			if code != 0 {
				t.Fatalf("exit %d:\n%s", code, out)
			}
			for _, want := range []string{"probe=126", "etc=0", "tmp=1", "root=0"} {
				if !strings.Contains(out, want+"\n") {
					t.Errorf("want %q (masked file not runnable: 126; masked directory empty; read-only path not writable; the rest writable), got:\n%s", want, out)
				}
			}
		})
	}
}
