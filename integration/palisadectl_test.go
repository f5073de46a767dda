package integration

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	apitypes "github.com/containerd/containerd/api/types"
	"github.com/containerd/containerd/api/types/runtimeoptions/v1"
	"github.com/containerd/typeurl/v2"
	"github.com/opencontainers/runtime-spec/specs-go/features"
	"github.com/pelletier/go-toml/v2"
)

// palisadectl runs the palisadectl built next to the shim.
func palisadectl(t testing.TB, args ...string) string {
	t.Helper()
	bin := filepath.Join(palisadeBinDir(t), "palisadectl")
	if _, err := os.Stat(bin); err != nil {
		t.Fatalf("palisadectl not built next to the shim: %v", err)
	}
	var stderr bytes.Buffer
	cmd := exec.Command(bin, args...)
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("palisadectl %s: %v\n%s%s", strings.Join(args, " "), err, out, stderr.String())
	}
	return string(out)
}

// dropInRuntimes reads the runtime entries of a `palisadectl config
// containerd` drop-in, so that the harness writes exactly those entries
// into containerd's config.
func dropInRuntimes(t testing.TB, dropIn string) []criRuntime {
	t.Helper()
	var d struct {
		Version int `toml:"version"`
		Plugins struct {
			Runtime struct {
				Containerd struct {
					Runtimes map[string]struct {
						Type    string         `toml:"runtime_type"`
						Options map[string]any `toml:"options"`
					} `toml:"runtimes"`
				} `toml:"containerd"`
			} `toml:"io.containerd.cri.v1.runtime"`
		} `toml:"plugins"`
	}
	if err := toml.NewDecoder(strings.NewReader(dropIn)).DisallowUnknownFields().Decode(&d); err != nil {
		t.Fatalf("drop-in: %v\n%s", err, dropIn)
	}
	var rts []criRuntime
	for name, r := range d.Plugins.Runtime.Containerd.Runtimes {
		rts = append(rts, criRuntime{Name: name, Type: r.Type, Options: r.Options})
	}
	return rts
}

// TestPalisadectlCRIHandlers: the runtime entries `palisadectl config
// containerd` prints are accepted by containerd's CRI, which runs the shim's
// -info for each and lists the handlers; the features Palisade reports there
// are what runsc under Palisade can do (no rro, no idmap, no AppArmor).
func TestPalisadectlCRIHandlers(t *testing.T) {
	rt := palisadeRunsc("palisadectl", "")
	runc, err := lookupTool("runc")
	if err != nil {
		skipOrFatal(t, "%v", err)
	}
	var cfgPath string
	env := startContainerdFor(t, rt, containerdOpts{
		CRI:      true,
		LogLevel: "debug", // CRI logs a failed introspection at debug only
		// The stock runc handler is the contrast: it reports rro.
		CRIRuntimes: []criRuntime{{Name: "runc", Type: runcShimType, Options: map[string]any{"BinaryName": runc}}},
		CRIRuntimesFor: func(e *containerdEnv) []criRuntime {
			cfgPath = writePalisadeConfig(t, e, "pal-open", "")
			strict := fmt.Sprintf("[handlers.pal-strict]\nbackend = \"runsc\"\n[handlers.pal-strict.runsc]\nbinary = %q\nroot = %q\n"+
				"[handlers.pal-strict.policy]\n%s\n", mustTool(t, "runsc"), e.RuntimeRoot, floorFor("pal-strict"))
			appendFile(t, cfgPath, strict)
			rts := dropInRuntimes(t, palisadectl(t, "config", "containerd", "--config", cfgPath))
			// An entry naming no handler of the file: its -info fails, which
			// shows what the features check below looks like when it fails.
			broken := criRuntime{Name: "pal-broken", Type: rt.RuntimeType,
				Options: map[string]any{"config_path": cfgPath, "handler": "nope"}}
			return append(rts, broken)
		},
	})
	plugins := env.ctrOK(t, "plugins", "ls")
	if st := pluginStatus(plugins, "cri"); st != "ok" {
		t.Fatalf("plugin cri: status %q, want ok\n%s", st, plugins)
	}

	// The introspection call CRI makes, with the options CRI builds from the
	// drop-in's table (ConfigBody, since it has no ConfigPath key).
	c, ctx := env.client(t)
	body := fmt.Sprintf("config_path = %q\nhandler = \"pal-strict\"\n", cfgPath)
	opts, err := typeurl.MarshalAnyToProto(&runtimeoptions.Options{ConfigBody: []byte(body)})
	if err != nil {
		t.Fatal(err)
	}
	resp, err := c.IntrospectionService().PluginInfo(ctx, "io.containerd.runtime.v2", "task",
		&apitypes.RuntimeRequest{RuntimePath: rt.RuntimeType, Options: opts})
	if err != nil {
		t.Fatalf("PluginInfo for %s: %v", rt.RuntimeType, err)
	}
	var info apitypes.RuntimeInfo
	if err := typeurl.UnmarshalTo(resp.Extra, &info); err != nil {
		t.Fatal(err)
	}
	if h := info.Annotations["io.palisade.handler"]; h != "pal-strict" || !strings.Contains(info.Annotations["io.palisade.seccomp"], "floor runtime-default") {
		t.Errorf("runtime info annotations: %v", info.Annotations)
	}
	v, err := typeurl.UnmarshalAny(info.Features)
	if err != nil {
		t.Fatalf("features: %v", err)
	}
	f := v.(*features.Features)
	if slices.Contains(f.MountOptions, "rro") || *f.Linux.MountExtensions.IDMap.Enabled || *f.Linux.Apparmor.Enabled || !*f.Linux.Seccomp.Enabled {
		t.Errorf("features claim what runsc cannot do: mount options %v, linux %+v", f.MountOptions, f.Linux)
	}

	// What `crictl info` shows: every handler with a features object (nil
	// when -info failed), Palisade's without rro or user namespaces.
	crictl, err := lookupTool("crictl")
	if err != nil {
		t.Logf("crictl not built (bash integration/tools/install.sh crictl): skipping the crictl info check")
		return
	}
	cctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	out, err := exec.CommandContext(cctx, crictl, "--runtime-endpoint", "unix://"+env.Address, "info").Output()
	if err != nil {
		t.Fatalf("crictl info: %v", err)
	}
	// crictl prints the CRI StatusResponse: runtimeHandlers is a top-level
	// field, next to status and config.
	var ci struct {
		RuntimeHandlers []struct {
			Name     string          `json:"name"`
			Features map[string]bool `json:"features"`
		} `json:"runtimeHandlers"`
	}
	if err := json.Unmarshal(out, &ci); err != nil {
		t.Fatalf("crictl info: %v\n%s", err, out)
	}
	seen := map[string]map[string]bool{}
	for _, h := range ci.RuntimeHandlers {
		seen[h.Name] = h.Features
	}
	if feats, ok := seen["pal-broken"]; !ok || feats != nil {
		t.Errorf("crictl info: the broken handler: present %v, features %v; want present, without features", ok, feats)
	}
	for _, name := range []string{"pal-open", "pal-strict"} {
		feats, ok := seen[name]
		if !ok || feats == nil {
			t.Errorf("crictl info: handler %s missing or without features (its -info failed; see containerd's log): %v", name, seen)
			continue
		}
		for k, v := range feats {
			if v {
				t.Errorf("handler %s claims %s", name, k)
			}
		}
	}
	if t.Failed() {
		t.Logf("crictl info:\n%s", out)
	}
	handlers, _ := json.Marshal(ci.RuntimeHandlers)
	t.Logf("crictl info runtimeHandlers: %s", handlers)
}

func mustTool(t testing.TB, name string) string {
	t.Helper()
	p, err := lookupTool(name)
	if err != nil {
		t.Fatal(err)
	}
	return p
}

func appendFile(t testing.TB, path, text string) {
	t.Helper()
	f, err := os.OpenFile(path, os.O_APPEND|os.O_WRONLY, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if _, err := f.WriteString(text); err != nil {
		t.Fatal(err)
	}
}

// TestPalisadectlInspectDoctorPolicyCheck runs the built palisadectl against
// a real container and its handler's config: inspect reads the decision
// record from the running container's bundle, doctor passes on this host,
// and policy check accepts the config.
func TestPalisadectlInspectDoctorPolicyCheck(t *testing.T) {
	rt := palisadeRunsc("ctl-floor", floorFor("ctl-floor"))
	env := startContainerdFor(t, rt, containerdOpts{})
	tk := env.runDetached(t, rt, busyboxRootfs(t), "inspected", "sleep", "600")
	tk.waitStatus(t, "RUNNING", 20*time.Second)

	out := palisadectl(t, "inspect", "--state", env.StateDir, "--namespace", env.Namespace, tk.ID)
	// Compared with runs of spaces collapsed: column widths depend on the rows.
	flat := regexp.MustCompile(` {2,}`).ReplaceAllString(out, " ")
	for _, want := range []string{
		"handler ctl-floor\n",
		"backend runsc\n",
		"seccomp requested absent\n",
		" enforced by gVisor sentry (runsc --oci-seccomp)\n",
		" changes linux.seccomp: handler floor runtime-default applied (request had none)\n",
		" changes process.capabilities.bounding: removed CAP_NET_RAW (drop list)\n",
		"no_new_privileges requested true\n",
		"apparmor requested -\n effective no host profile (handler names none)\n",
	} {
		if !strings.Contains(flat, want) {
			t.Errorf("inspect: missing %q in:\n%s", want, out)
		}
	}
	var rec struct {
		Handler  string `json:"handler"`
		Controls []struct {
			Name string `json:"name"`
		} `json:"controls"`
	}
	raw := palisadectl(t, "inspect", "--json", "--state", env.StateDir, "-n", env.Namespace, tk.ID)
	if err := json.Unmarshal([]byte(raw), &rec); err != nil || rec.Handler != "ctl-floor" || len(rec.Controls) != 11 || rec.Controls[0].Name != "seccomp" || rec.Controls[4].Name != "privileged" {
		t.Errorf("inspect --json: %+v, %v\n%s", rec, err, raw)
	}

	cfg := filepath.Join(env.Dir, "ctl-floor.toml")
	if out := palisadectl(t, "policy", "check", cfg); out != "ctl-floor  OK\n" {
		t.Errorf("policy check: %q", out)
	}
	// Exit status 0: every handler can run here (palisadectl fails the
	// call otherwise).
	out = palisadectl(t, "doctor", "--config", cfg)
	if !strings.Contains(out, "ctl-floor (runsc)") || !strings.Contains(out, "can run here") {
		t.Errorf("doctor:\n%s", out)
	}
	tk.kill(t, "SIGKILL", false)
	tk.waitStatus(t, "STOPPED", 20*time.Second)
	tk.delete(t)
}
