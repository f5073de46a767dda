package policy

import (
	"encoding/json"
	"os"
	"runtime"
	"slices"
	"strings"
	"testing"

	"github.com/opencontainers/runtime-spec/specs-go"
)

func TestParseSeccompProfileErrorsNameThePath(t *testing.T) {
	for _, tc := range []struct{ json, want string }{
		{`{"syscalls":[]}`, "defaultAction: required"},
		{`{"defaultAction":"SCMP_ACT_DENY"}`, `defaultAction: unknown action "SCMP_ACT_DENY"`},
		{`{"defaultAction":"SCMP_ACT_ERRNO","architectures":["SCMP_ARCH_X86_64","SCMP_ARCH_Z80"]}`, `architectures[1]: unknown architecture "SCMP_ARCH_Z80"`},
		{`{"defaultAction":"SCMP_ACT_ERRNO","archMap":[{"architecture":"SCMP_ARCH_X86_64","subArchitectures":["x86"]}]}`, `archMap[0].subArchitectures[0]: unknown architecture "x86"`},
		{`{"defaultAction":"SCMP_ACT_ERRNO","flags":["SECCOMP_FILTER_FLAG_FAST"]}`, `flags[0]: unknown flag`},
		{`{"defaultAction":"SCMP_ACT_ERRNO","syscalls":[{"names":["read",""],"action":"SCMP_ACT_ALLOW"}]}`, `syscalls[0].names[1]: empty syscall name`},
		{`{"defaultAction":"SCMP_ACT_ERRNO","syscalls":[{"action":"SCMP_ACT_ALLOW"}]}`, `syscalls[0].names: empty`},
		{`{"defaultAction":"SCMP_ACT_ERRNO","syscalls":[{"names":["read"],"action":"SCMP_ACT_ALLOW"},{"names":["write"],"action":"ALLOW"}]}`, `syscalls[1].action: unknown action "ALLOW"`},
		{`{"defaultAction":"SCMP_ACT_ERRNO","syscalls":[{"names":["read"],"action":"SCMP_ACT_ALLOW","args":[{"index":0,"value":1,"op":"SCMP_CMP_EQUAL"}]}]}`, `syscalls[0].args[0].op: unknown operator "SCMP_CMP_EQUAL"`},
		{`{"defaultAction":"SCMP_ACT_ERRNO","syscalls":[{"names":["read"],"action":"SCMP_ACT_ALLOW","args":[{"index":6,"value":1,"op":"SCMP_CMP_EQ"}]}]}`, `syscalls[0].args[0].index: 6 is not below 6`},
		{`{"defaultAction":"SCMP_ACT_ERRNO","syscalls":[{"name":"read","names":["write"],"action":"SCMP_ACT_ALLOW"}]}`, `syscalls[0]: both name and names`},
		{`{"defaultAction":"SCMP_ACT_ERRNO","syscalls":[{"names":["Read"],"action":"SCMP_ACT_ALLOW"}]}`, `syscalls[0].names[0]: syscall name "Read"`},
		{`{"defaultAction":"SCMP_ACT_ERRNO","syscalls":[{"names":["mount"],"action":"SCMP_ACT_ALLOW","includes":{"caps":["CAP_SYS_GOD"]}}]}`, `syscalls[0].includes.caps[0]: unknown capability "CAP_SYS_GOD"`},
		{`{"defaultAction":"SCMP_ACT_ERRNO","syscalls":[{"names":["mount"],"action":"SCMP_ACT_ALLOW","excludes":{"arches":["vax"]}}]}`, `syscalls[0].excludes.arches[0]: unknown architecture "vax"`},
		{`{"defaultAction":"SCMP_ACT_ERRNO","defaultAcion":"SCMP_ACT_ALLOW"}`, `unknown field "defaultAcion"`},
		{`{"defaultAction":"SCMP_ACT_ERRNO"} {}`, `trailing data`},
		{`{"defaultAction":"SCMP_ACT_ERRNO","architectures":["SCMP_ARCH_X86_64"],"archMap":[{"architecture":"SCMP_ARCH_X86_64"}]}`, `archMap: set together with architectures`},
	} {
		_, err := ParseSeccompProfile([]byte(tc.json))
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s:\n got %v\nwant an error containing %q", tc.json, err, tc.want)
		}
	}
}

// moby's own default.json (the Docker format, with archMap and
// includes/excludes) parses, and resolves like the Go value it is made from.
func TestParseMobyDefaultJSON(t *testing.T) {
	// A copy of github.com/moby/profiles/seccomp@v0.3.0/default.json.
	raw, err := os.ReadFile("testdata/fuzz-seed/moby-default.json")
	if err != nil {
		t.Fatal(err)
	}
	got, err := ParseSeccompProfile(raw)
	if err != nil {
		t.Fatal(err)
	}
	want := runtimeDefaultTemplate().resolve(nativeArch(runtime.GOARCH), kernelVersion{}, 0)
	gj, _ := json.Marshal(got)
	wj, _ := json.Marshal(want)
	if string(gj) != string(wj) {
		t.Errorf("default.json and DefaultProfile() resolve differently")
	}
	if got.DefaultAction != specs.ActErrno || len(got.Syscalls) == 0 {
		t.Fatalf("default action %s, %d rules", got.DefaultAction, len(got.Syscalls))
	}
	if !slices.ContainsFunc(got.Syscalls, func(s specs.LinuxSyscall) bool { return slices.Contains(s.Names, "read") }) {
		t.Fatal("read is not allowed")
	}
	// Unknown kernel, no capabilities: ptrace is gated on both, so it is out.
	for _, s := range got.Syscalls {
		if slices.Contains(s.Names, "ptrace") && s.Action == specs.ActAllow {
			t.Fatal("ptrace allowed without CAP_SYS_PTRACE or a known kernel")
		}
	}
}

func TestParseOCIProfileRoundTrip(t *testing.T) {
	in := containerdDefault(t)
	raw, _ := json.Marshal(in)
	out, err := ParseSeccompProfile(raw)
	if err != nil {
		t.Fatal(err)
	}
	a, _ := json.Marshal(in)
	b, _ := json.Marshal(out)
	if string(a) != string(b) {
		t.Fatalf("an OCI profile changed on parse:\n%s\n%s", a, b)
	}
}
