package shimv2

import (
	"context"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	bootapi "github.com/containerd/containerd/api/runtime/bootstrap/v1"
	"github.com/containerd/containerd/api/types/runc/options"
	"github.com/containerd/containerd/api/types/runtimeoptions/v1"
	"github.com/containerd/typeurl/v2"
	"google.golang.org/protobuf/proto"

	"github.com/palisade-runtime/palisade/sandbox/apparmor"
)

func TestConfigValidate(t *testing.T) {
	for _, tc := range []struct {
		name string
		kind string
		cfg  Config
		want string // "" = valid; else a substring of the error
	}{
		{"runc shim", KindShim, Config{Binary: "containerd-shim-runc-v2", BinaryName: "runc", Root: "/run/x"}, ""},
		{"runtime type", KindShim, Config{RuntimeType: "io.containerd.runc.v2"}, ""},
		{"kata defaults", KindKata, Config{}, ""},
		{"kata config path", KindKata, Config{ConfigPath: "/etc/kata-containers/configuration.toml"}, ""},
		{"no shim", KindShim, Config{}, "shim.binary: missing"},
		{"both", KindShim, Config{Binary: "x", RuntimeType: "io.containerd.x.v2"}, "shim.runtime_type"},
		{"relative binary", KindShim, Config{Binary: "bin/containerd-shim-x-v2"}, "shim.binary"},
		{"bad runtime type", KindShim, Config{RuntimeType: "runc"}, "shim.runtime_type"},
		{"bad options type", KindShim, Config{Binary: "x", OptionsType: "json"}, "shim.options_type"},
		{"kata with runc options", KindKata, Config{OptionsType: OptionsRunc}, "shim.options_type"},
		{"runc option elsewhere", KindShim, Config{Binary: "containerd-shim-x-v2", BinaryName: "runc"}, "shim.binary_name"},
		{"root elsewhere", KindKata, Config{Root: "/run/x"}, "shim.root"},
		{"relative root", KindShim, Config{Binary: "containerd-shim-runc-v2", Root: "run/x"}, "shim.root"},
		{"config path with runc", KindShim, Config{Binary: "containerd-shim-runc-v2", ConfigPath: "/x.toml"}, "shim.config_path"},
		{"relative config path", KindKata, Config{ConfigPath: "kata.toml"}, "shim.config_path"},
	} {
		err := tc.cfg.Validate(tc.kind)
		switch {
		case tc.want == "" && err != nil:
			t.Errorf("%s: %v", tc.name, err)
		case tc.want != "" && (err == nil || !strings.Contains(err.Error(), tc.want)):
			t.Errorf("%s: error %v, want one naming %q", tc.name, err, tc.want)
		}
	}
}

func TestConfigDefaults(t *testing.T) {
	if c := (Config{}).WithDefaults(KindKata); c.Binary != KataBinary || c.OptionsType != OptionsRuntimeOptions {
		t.Errorf("kata: %+v", c)
	}
	if c := (Config{RuntimeType: "io.containerd.runc.v2"}).WithDefaults(KindShim); c.OptionsType != OptionsRunc {
		t.Errorf("runc shim: %+v", c)
	}
	if c := (Config{Binary: "/opt/x/containerd-shim-other-v2"}).WithDefaults(KindShim); c.OptionsType != OptionsNone {
		t.Errorf("unknown shim: %+v", c)
	}
}

func TestOptions(t *testing.T) {
	a, err := Config{OptionsType: OptionsRunc, BinaryName: "/usr/bin/runc", Root: "/run/r"}.options()
	if err != nil {
		t.Fatal(err)
	}
	v, err := typeurl.UnmarshalAny(a)
	if o, ok := v.(*options.Options); err != nil || !ok || o.BinaryName != "/usr/bin/runc" || o.Root != "/run/r" {
		t.Fatalf("runc options: %v %v", v, err)
	}
	a, err = Config{OptionsType: OptionsRuntimeOptions, ConfigPath: "/k.toml"}.options()
	if err != nil {
		t.Fatal(err)
	}
	v, err = typeurl.UnmarshalAny(a)
	if o, ok := v.(*runtimeoptions.Options); err != nil || !ok || o.ConfigPath != "/k.toml" {
		t.Fatalf("runtimeoptions: %v %v", v, err)
	}
	if a, err := (Config{OptionsType: OptionsNone}).options(); a != nil || err != nil {
		t.Fatalf("none: %v %v", a, err)
	}
}

func TestSupportTable(t *testing.T) {
	for _, tc := range []struct {
		cfg                Config
		seccomp, caps, nnp bool
	}{
		{Config{Binary: "/x/containerd-shim-runc-v2", OptionsType: OptionsRunc, BinaryName: "/usr/sbin/runc"}, true, true, true},
		{Config{Binary: "containerd-shim-runc-v2", OptionsType: OptionsRunc}, true, true, true},
		{Config{Binary: "containerd-shim-runc-v2", OptionsType: OptionsRunc, BinaryName: "runsc"}, false, true, true},
		{Config{Binary: "containerd-shim-runc-v2", OptionsType: OptionsRunc, BinaryName: "mystery"}, false, false, false},
		{Config{Binary: "containerd-shim-other-v2", OptionsType: OptionsNone}, false, false, false},
	} {
		s := support(tc.cfg, KindShim, nil)
		if (s.SeccompEnforcer != "") != tc.seccomp || (s.CapabilityEnforcer != "") != tc.caps ||
			(s.NoNewPrivsEnforcer != "") != tc.nnp {
			t.Errorf("%v: %+v", tc.cfg, s)
		}
		if s.SeccompEnforcer == "" && s.SeccompMissing == "" {
			t.Errorf("%v: an unclaimed seccomp needs a reason", tc.cfg)
		}
		if s.AppArmorEnforcer != "" {
			t.Errorf("%v: AppArmor is only claimed when confining: %+v", tc.cfg, s)
		}
	}
}

func TestParseStartResponse(t *testing.T) {
	b, _ := proto.Marshal(&bootapi.BootstrapResult{Version: 3, Protocol: "ttrpc", Address: "unix:///run/x/s"})
	for name, tc := range map[string]struct {
		out      []byte
		address  string
		protocol string
	}{
		"bootstrap protobuf": {b, "unix:///run/x/s", "ttrpc"},
		"json":               {[]byte(`{"version":2,"address":"unix:///run/x/j","protocol":"grpc"}`), "unix:///run/x/j", "grpc"},
		"plain address":      {[]byte("unix:///run/x/p\n"), "unix:///run/x/p", "ttrpc"},
	} {
		res, err := parseStartResponse(tc.out)
		if err != nil || res.Address != tc.address || res.Protocol != tc.protocol {
			t.Errorf("%s: %+v, %v", name, res, err)
		}
	}
	if _, err := parseStartResponse(nil); err == nil {
		t.Error("empty output accepted")
	}
}

// TestWorkDirKeepsRequest: the downstream's `start` may read config.json
// while the shim replaces it with the enforced spec (renamed aside, then
// written anew); its work dir's link must keep showing a whole file.
func TestWorkDirKeepsRequest(t *testing.T) {
	bundle := t.TempDir()
	spec := filepath.Join(bundle, "config.json")
	if err := os.WriteFile(spec, []byte(`{"annotations":{"a":"b"}}`), 0o644); err != nil {
		t.Fatal(err)
	}
	dir, err := prepareWorkDir(bundle)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(spec, filepath.Join(bundle, "config.request.json")); err != nil {
		t.Fatal(err)
	}
	if _, err := prepareWorkDir(bundle); err != nil { // the bundle has no config.json now
		t.Errorf("prepareWorkDir mid-replacement: %v", err)
	}
	if err := os.WriteFile(spec, nil, 0o600); err != nil { // created, not yet written
		t.Fatal(err)
	}
	if b, err := os.ReadFile(filepath.Join(dir, "config.json")); err != nil || string(b) != `{"annotations":{"a":"b"}}` {
		t.Errorf("work dir config.json mid-replacement: %q, %v", b, err)
	}
	if _, err := prepareWorkDir(bundle); err != nil {
		t.Errorf("prepareWorkDir again: %v", err)
	}
	// Once enforced, the downstream's Create may only find the new spec.
	if err := os.WriteFile(spec, []byte(`{"enforced":true}`), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := relinkSpec(bundle); err != nil {
		t.Fatal(err)
	}
	if b, err := os.ReadFile(filepath.Join(dir, "config.json")); err != nil || string(b) != `{"enforced":true}` {
		t.Errorf("work dir config.json after relinkSpec: %q, %v", b, err)
	}
}

// TestStartCommand runs `start` against a stand-in shim (a script) and
// checks what containerd would pass: flags, working directory, environment
// and the bootstrap parameters on stdin.
func TestStartCommand(t *testing.T) {
	dir := t.TempDir()
	bundle := filepath.Join(dir, "bundle")
	if err := os.MkdirAll(bundle, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(bundle, "config.json"), []byte("{}"), 0o644); err != nil {
		t.Fatal(err)
	}
	shim := filepath.Join(dir, "containerd-shim-fake-v2")
	script := "#!/bin/sh\necho \"$@\" > " + dir + "/args\npwd > " + dir + "/cwd\nenv > " + dir + "/env\n" +
		"cat > " + dir + "/stdin\ntest -f config.json && ! test -L config.json && test -L log || exit 9\nprintf unix:///run/fake/sock\n"
	if err := os.WriteFile(shim, []byte(script), 0o755); err != nil {
		t.Fatal(err)
	}
	opts, _ := Config{OptionsType: OptionsRunc, BinaryName: "runc"}.options()
	l := launcher{binary: shim, namespace: "ns1", grpcAddress: "/run/c.sock", ttrpcAddress: "/run/c.sock.ttrpc",
		socketDir: "/run/s/d-1", opts: opts, run: func(c *exec.Cmd) error { return c.Run() }}
	res, err := l.start(context.Background(), "c1", bundle)
	if err != nil {
		t.Fatal(err)
	}
	if res.Address != "unix:///run/fake/sock" {
		t.Errorf("address %q", res.Address)
	}
	read := func(name string) string {
		b, err := os.ReadFile(filepath.Join(dir, name))
		if err != nil {
			t.Fatal(err)
		}
		return string(b)
	}
	if got := strings.TrimSpace(read("args")); !strings.HasPrefix(got, "-namespace ns1 -address /run/c.sock -id c1") || !strings.HasSuffix(got, " start") {
		t.Errorf("args %q", got)
	}
	if got := strings.TrimSpace(read("cwd")); got != filepath.Join(bundle, workDirName) {
		t.Errorf("cwd %q", got)
	}
	env := strings.Split(read("env"), "\n")
	for _, kv := range []string{"TTRPC_ADDRESS=/run/c.sock.ttrpc", "GRPC_ADDRESS=/run/c.sock", "NAMESPACE=ns1"} {
		if !slices.Contains(env, kv) {
			t.Errorf("environment lacks %s", kv)
		}
	}
	var params bootapi.BootstrapParams
	if err := proto.Unmarshal([]byte(read("stdin")), &params); err != nil {
		t.Fatal(err)
	}
	var ro options.Options
	found, err := params.FindExtension(&ro)
	if params.GetInstanceID() != "c1" || params.GetNamespace() != "ns1" || params.GetSocketDir() != "/run/s/d-1" ||
		params.GetContainerdTtrpcAddress() != "/run/c.sock.ttrpc" || !found || err != nil || ro.BinaryName != "runc" {
		t.Errorf("bootstrap params %v (runc options %v, %v)", &params, &ro, err)
	}

	// Confined: the same call goes through the trampoline, which turns into
	// the shim under the profile.
	l.profile, l.self = "palisade-delegate", "/usr/local/bin/palisade-trampoline"
	cmd := l.command(context.Background(), "start", "c1", bundle, bundle)
	if cmd.Path != l.self || !slices.Contains(cmd.Env, apparmor.EnvProfile+"=palisade-delegate") ||
		!slices.Contains(cmd.Env, apparmor.EnvTarget+"="+shim) {
		t.Errorf("confined command %s %v", cmd.Path, cmd.Env)
	}
}

func TestRecordRoundTrip(t *testing.T) {
	dir := t.TempDir()
	r := record{Binary: "/x", Address: "unix:///s", Pid: 42, PidStart: 7, Profile: "p"}
	if err := writeRecord(dir, r); err != nil {
		t.Fatal(err)
	}
	got, err := readRecord(dir)
	if err != nil || got != r {
		t.Fatalf("%+v, %v", got, err)
	}
	data, _ := os.ReadFile(filepath.Join(dir, recordFile))
	if !json.Valid(data) {
		t.Fatalf("%s", data)
	}
}

func TestUnreportedExits(t *testing.T) {
	c := &container{id: "c", created: true, procs: map[string]*proc{
		"":     {pid: 10, started: true},
		"seen": {pid: 11, started: true, exit: &exitInfo{pid: 11, status: 3}},
		"b":    {pid: 12, started: true},
		"a":    {pid: 13, started: true},
		"idle": {},
	}}
	events := (&Service{}).unreported(c, exitInfo{status: 137})
	var ids []string
	for _, e := range events {
		x := e.(interface {
			GetID() string
			GetExitStatus() uint32
			GetPid() uint32
		})
		if x.GetExitStatus() != 137 || x.GetPid() == 0 {
			t.Errorf("event %v", e)
		}
		ids = append(ids, x.GetID())
	}
	// Execs first (sorted), the init last; not the reported or the unstarted.
	if strings.Join(ids, ",") != "a,b,c" {
		t.Fatalf("exits for %v", ids)
	}
	if c.procs["seen"].exit.status != 3 || c.procs[""].exit.pid != 10 {
		t.Fatalf("recorded exits: %+v %+v", c.procs["seen"].exit, c.procs[""].exit)
	}
}
