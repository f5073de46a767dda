package shim

import (
	"bytes"
	"context"
	"errors"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/containerd/containerd/api/types"
	runcoptions "github.com/containerd/containerd/api/types/runc/options"
	"github.com/containerd/containerd/api/types/runtimeoptions/v1"
	"github.com/containerd/errdefs"
	"github.com/containerd/typeurl/v2"
	"github.com/opencontainers/runtime-spec/specs-go/features"
	"google.golang.org/protobuf/proto"

	"github.com/palisade-runtime/palisade/sandbox/runsc"
)

// fakeRunscFeatures is the shape of `runsc features`, with what Palisade
// must not pass on: an rro mount option, a capability policy does not know,
// and flag-override annotations.
const fakeRunscFeatures = `{
  "ociVersionMin": "1.0.0", "ociVersionMax": "1.2.1",
  "hooks": ["prestart", "poststop"],
  "mountOptions": ["bind", "rbind", "ro", "rro", "rprivate", "nosuid"],
  "linux": {
    "namespaces": ["ipc", "mount", "network", "pid", "user", "uts"],
    "capabilities": ["CAP_SYS_ADMIN", "CAP_CHOWN", "CAP_FROM_THE_FUTURE"],
    "cgroup": {"v1": true, "v2": false},
    "seccomp": {"enabled": false, "actions": ["SCMP_ACT_KILL", "SCMP_ACT_ERRNO", "SCMP_ACT_ALLOW"],
      "operators": ["SCMP_CMP_EQ"], "archs": ["SCMP_ARCH_X86_64", "SCMP_ARCH_AARCH64"]},
    "apparmor": {"enabled": true},
    "mountExtensions": {"idmap": {"enabled": true}}
  },
  "annotations": {"dev.gvisor.flag.oci-seccomp": "false", "dev.gvisor.internal.seccomp.": ""},
  "potentiallyUnsafeConfigAnnotations": ["dev.gvisor.flag.oci-seccomp", "dev.gvisor.internal.seccomp."]
}`

// infoFixture writes a fake runsc and a config.toml with two handlers.
func infoFixture(t *testing.T, runscBody string) string {
	t.Helper()
	dir := t.TempDir()
	fake := filepath.Join(dir, "runsc")
	script := "#!/bin/sh\n[ \"$1\" = features ] || { echo \"unexpected $*\" >&2; exit 2; }\n" + runscBody
	if err := os.WriteFile(fake, []byte(script), 0o755); err != nil {
		t.Fatal(err)
	}
	cfg := filepath.Join(dir, "config.toml")
	body := `default_handler = "open"
[handlers.open]
backend = "runsc"
runsc.binary = "` + fake + `"
[handlers.strict]
backend = "runsc"
runsc.binary = "` + fake + `"
policy.seccomp = "runtime-default"
policy.apparmor.profile = "palisade-runsc"
`
	if err := os.WriteFile(cfg, []byte(body), 0o644); err != nil {
		t.Fatal(err)
	}
	return cfg
}

// callInfo feeds opts to Info as containerd does: a marshalled Any on stdin.
func callInfo(t *testing.T, opts proto.Message) (*types.RuntimeInfo, error) {
	t.Helper()
	var stdin []byte
	if opts != nil {
		b, err := proto.Marshal(anyOf(t, opts))
		if err != nil {
			t.Fatal(err)
		}
		stdin = b
	}
	return NewManager(RuntimeName).Info(context.Background(), bytes.NewReader(stdin))
}

func decodeFeatures(t *testing.T, info *types.RuntimeInfo) *features.Features {
	t.Helper()
	v, err := typeurl.UnmarshalAny(info.Features)
	if err != nil {
		t.Fatal(err)
	}
	f, ok := v.(*features.Features)
	if !ok {
		t.Fatalf("features are %T", v)
	}
	return f
}

func TestInfoHandlerFromCRIOptions(t *testing.T) {
	cfg := infoFixture(t, "cat <<'EOF'\n"+fakeRunscFeatures+"\nEOF\n")
	// What containerd's CRI sends for a runtime entry whose options table
	// has handler and config_path (and no ConfigPath key).
	opts := &runtimeoptions.Options{ConfigBody: []byte("config_path = \"" + cfg + "\"\nhandler = \"strict\"\n")}
	info, err := callInfo(t, opts)
	if err != nil {
		t.Fatal(err)
	}
	if info.Name != RuntimeName || info.Version.GetVersion() != Version {
		t.Errorf("name %q version %v", info.Name, info.Version)
	}
	a := info.Annotations
	if a[InfoAnnotationHandler] != "strict" || a[InfoAnnotationBackend] != "runsc" || a[InfoAnnotationConfig] != cfg {
		t.Errorf("annotations: %v", a)
	}
	if !strings.Contains(a[InfoAnnotationSeccomp], "floor runtime-default, enforced by gVisor sentry") {
		t.Errorf("seccomp annotation: %q", a[InfoAnnotationSeccomp])
	}
	// No host here can attach it: the kernel has no AppArmor, or has no
	// profile of that name and the handler names no file to load.
	if !strings.HasPrefix(a[InfoAnnotationAppArmor], `optional profile "palisade-runsc" not attached: `) {
		t.Errorf("apparmor annotation: %q", a[InfoAnnotationAppArmor])
	}
	var echoed runtimeoptions.Options
	if err := typeurl.UnmarshalTo(info.Options, &echoed); err != nil || !bytes.Equal(echoed.ConfigBody, opts.ConfigBody) {
		t.Errorf("options not echoed: %v, %v", &echoed, err)
	}

	f := decodeFeatures(t, info)
	if want := []string{"bind", "rbind", "ro", "rprivate", "nosuid"}; !slices.Equal(f.MountOptions, want) {
		t.Errorf("mount options %v, want %v (no rro)", f.MountOptions, want)
	}
	l := f.Linux
	if want := []string{"CAP_CHOWN", "CAP_SYS_ADMIN"}; !slices.Equal(l.Capabilities, want) {
		t.Errorf("capabilities %v, want %v", l.Capabilities, want)
	}
	if l.Seccomp == nil || !*l.Seccomp.Enabled || !slices.Equal(l.Seccomp.Actions, []string{"SCMP_ACT_KILL", "SCMP_ACT_ERRNO", "SCMP_ACT_ALLOW"}) {
		t.Errorf("seccomp %+v", l.Seccomp)
	}
	if *l.Apparmor.Enabled || *l.Selinux.Enabled || *l.MountExtensions.IDMap.Enabled {
		t.Errorf("claims apparmor %v selinux %v idmap %v", *l.Apparmor.Enabled, *l.Selinux.Enabled, *l.MountExtensions.IDMap.Enabled)
	}
	if _, ok := f.Annotations["dev.gvisor.flag.oci-seccomp"]; ok || slices.Contains(f.PotentiallyUnsafeConfigAnnotations, "dev.gvisor.flag.oci-seccomp") {
		t.Errorf("flag-override annotations passed on: %v %v", f.Annotations, f.PotentiallyUnsafeConfigAnnotations)
	}
	if _, ok := f.Annotations["dev.gvisor.internal.seccomp."]; !ok {
		t.Errorf("runsc's own annotations lost: %v", f.Annotations)
	}
}

func TestInfoWithoutHandlerName(t *testing.T) {
	cfg := infoFixture(t, "cat <<'EOF'\n"+fakeRunscFeatures+"\nEOF\n")
	// ctr --runtime-config-path: the file's default_handler answers.
	info, err := callInfo(t, &runtimeoptions.Options{ConfigPath: cfg})
	if err != nil {
		t.Fatal(err)
	}
	if h := info.Annotations[InfoAnnotationHandler]; h != "open" {
		t.Errorf("handler %q, want the default, open", h)
	}
	if s := info.Annotations[InfoAnnotationSeccomp]; !strings.HasPrefix(s, "no floor") {
		t.Errorf("seccomp annotation %q", s)
	}

	// No options at all: /etc/palisade/config.toml and its default handler.
	info, err = callInfo(t, nil)
	if _, statErr := os.Stat(DefaultConfigPath); errors.Is(statErr, os.ErrNotExist) {
		// containerd probes like this before every task create until an
		// answer succeeds: answer, describing no handler and no features.
		if err != nil || info.Features != nil || info.Name != RuntimeName ||
			info.Annotations[InfoAnnotationConfig] != DefaultConfigPath+" (absent)" {
			t.Fatalf("without options and without %s: %+v, %v; want plain info", DefaultConfigPath, info, err)
		}
		return
	}
	if err == nil && info.Annotations[InfoAnnotationConfig] != DefaultConfigPath {
		t.Errorf("without options: config %q", info.Annotations[InfoAnnotationConfig])
	}
}

func TestInfoErrors(t *testing.T) {
	cfg := infoFixture(t, "echo 'runsc: broken' >&2; exit 1\n")
	for _, tc := range []struct {
		name    string
		opts    proto.Message
		want    string
		invalid bool
	}{
		{"runc options", &runcoptions.Options{BinaryName: "runsc"}, "want *runtimeoptions.Options", true},
		{"typo in options table", &runtimeoptions.Options{ConfigBody: []byte("handlr = \"x\"\n")}, "handlr", true},
		{"unknown handler", &runtimeoptions.Options{ConfigBody: []byte("config_path = \"" + cfg + "\"\nhandler = \"nope\"\n")}, `no handler named "nope"`, true},
		{"missing config", &runtimeoptions.Options{ConfigPath: "/nonexistent/palisade.toml"}, "/nonexistent/palisade.toml", true},
		{"runsc fails", &runtimeoptions.Options{ConfigPath: cfg}, "handlers.open.runsc.binary: ", false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := callInfo(t, tc.opts)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("err = %v, want one containing %q", err, tc.want)
			}
			if errdefs.IsInvalidArgument(err) != tc.invalid {
				t.Errorf("invalid argument: %v, want %v", errdefs.IsInvalidArgument(err), tc.invalid)
			}
		})
	}
	if _, err := NewManager(RuntimeName).Info(context.Background(), strings.NewReader("\xff\xff not protobuf")); !errdefs.IsInvalidArgument(err) {
		t.Errorf("garbage on stdin: %v", err)
	}
}

// TestInfoRealRunsc checks the pinned runsc's own document, when it is built:
// whatever it lists, Palisade must not claim rro, idmap or AppArmor.
func TestInfoRealRunsc(t *testing.T) {
	// make exports PALISADE_TOOLS_BIN; CI keeps the tools outside the clone.
	tools := os.Getenv("PALISADE_TOOLS_BIN")
	if tools == "" {
		tools = "../_tools/bin"
	}
	bin, _ := filepath.Abs(filepath.Join(tools, "runsc"))
	if _, err := os.Stat(bin); err != nil {
		if os.Getenv("PALISADE_INTEGRATION") == "required" {
			t.Fatalf("runsc not built: %v", err)
		}
		t.Skipf("runsc not built (make tools): %v", err)
	}
	raw, err := runscFeatures(context.Background(), runsc.Config{Binary: bin})
	if err != nil {
		t.Fatal(err)
	}
	f := palisadeFeatures(raw)
	if slices.Contains(f.MountOptions, "rro") || *f.Linux.MountExtensions.IDMap.Enabled || *f.Linux.Apparmor.Enabled {
		t.Errorf("claims what runsc cannot do: %v", f)
	}
	if !*f.Linux.Seccomp.Enabled || !slices.Contains(f.Linux.Seccomp.Actions, "SCMP_ACT_ERRNO") {
		t.Errorf("seccomp: %+v", f.Linux.Seccomp)
	}
}
