package ctl

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"unicode/utf8"

	"github.com/containerd/containerd/api/types/runtimeoptions/v1"
	srvconfig "github.com/containerd/containerd/v2/cmd/containerd/server/config"
	"github.com/pelletier/go-toml/v2"

	"github.com/palisade-runtime/palisade/shim"
)

// criRuntime mirrors the keys of containerd v2.4.2's CRI runtime entry
// (internal/cri/config.Runtime) that the drop-in uses; the decoder below is
// strict, so a key containerd does not know fails the test.
type criRuntime struct {
	Type    string         `toml:"runtime_type"`
	Path    string         `toml:"runtime_path"`
	Options map[string]any `toml:"options"`
}

type dropIn struct {
	Version int `toml:"version"`
	Plugins struct {
		Runtime struct {
			Containerd struct {
				Runtimes map[string]criRuntime `toml:"runtimes"`
			} `toml:"containerd"`
		} `toml:"io.containerd.cri.v1.runtime"`
	} `toml:"plugins"`
}

func parseDropIn(t testing.TB, out string) dropIn {
	t.Helper()
	var d dropIn
	if err := toml.NewDecoder(strings.NewReader(out)).DisallowUnknownFields().Decode(&d); err != nil {
		t.Fatalf("drop-in does not decode: %v\n%s", err, out)
	}
	return d
}

func twoHandlers() *shim.Config {
	return &shim.Config{Handlers: map[string]shim.Handler{
		"gvisor": {Backend: shim.BackendRunsc}, "gvisor-strict": {Backend: shim.BackendRunsc},
	}}
}

func TestContainerdDropIn(t *testing.T) {
	for _, version := range []int{3, 4} {
		out, err := containerdDropIn(twoHandlers(), "/etc/palisade/config.toml", version, "/usr/local/bin/containerd-shim-palisade-v2")
		if err != nil {
			t.Fatal(err)
		}
		d := parseDropIn(t, out)
		if d.Version != version || len(d.Plugins.Runtime.Containerd.Runtimes) != 2 {
			t.Fatalf("version %d: %+v", version, d)
		}
		r := d.Plugins.Runtime.Containerd.Runtimes["gvisor-strict"]
		if r.Type != shim.RuntimeName || r.Path != "/usr/local/bin/containerd-shim-palisade-v2" ||
			r.Options["handler"] != "gvisor-strict" || r.Options["config_path"] != "/etc/palisade/config.toml" || len(r.Options) != 2 {
			t.Errorf("version %d: entry %+v", version, r)
		}
	}
	out, err := containerdDropIn(twoHandlers(), "/p.toml", 3, "")
	if err != nil || strings.Contains(out, "runtime_path") {
		t.Errorf("without --shim-path: %v\n%s", err, out)
	}
	for _, bad := range []struct {
		version int
		shim    string
		want    string
	}{{2, "", "--version 2"}, {5, "", "--version 5"}, {3, "bin/shim", "--shim-path"}, {3, "/a/../b", "--shim-path"}} {
		if _, err := containerdDropIn(twoHandlers(), "/p.toml", bad.version, bad.shim); err == nil || !strings.Contains(err.Error(), bad.want) {
			t.Errorf("%+v: err = %v", bad, err)
		}
	}
}

// TestDropInThroughContainerdLoader imports the drop-in into a main config
// with containerd's own loader (imports, version migration, merge), then
// builds the runtime options as containerd's CRI does
// (criconfig.GenerateRuntimeOptions) and feeds them to the shim's selection.
func TestDropInThroughContainerdLoader(t *testing.T) {
	for _, tc := range []struct{ main, drop int }{{3, 3}, {4, 4}, {4, 3}} {
		dir := t.TempDir()
		out, err := containerdDropIn(twoHandlers(), "/etc/palisade/config.toml", tc.drop, "")
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(dir, "palisade.toml"), []byte(out), 0o644); err != nil {
			t.Fatal(err)
		}
		main := "version = " + string(rune('0'+tc.main)) + "\nimports = [\"" + dir + "/*.toml\"]\n" +
			"[plugins.'io.containerd.cri.v1.runtime']\n  restrict_oom_score_adj = true\n" +
			"[plugins.'io.containerd.cri.v1.runtime'.containerd.runtimes.runc]\n  runtime_type = \"io.containerd.runc.v2\"\n"
		mainPath := filepath.Join(t.TempDir(), "config.toml")
		if err := os.WriteFile(mainPath, []byte(main), 0o644); err != nil {
			t.Fatal(err)
		}
		var c srvconfig.Config
		if err := srvconfig.LoadConfig(context.Background(), mainPath, &c); err != nil {
			t.Fatalf("main %d, drop-in %d: %v", tc.main, tc.drop, err)
		}
		raw, err := toml.Marshal(c.Plugins["io.containerd.cri.v1.runtime"])
		if err != nil {
			t.Fatal(err)
		}
		var merged struct {
			Restrict   bool `toml:"restrict_oom_score_adj"`
			Containerd struct {
				Runtimes map[string]criRuntime `toml:"runtimes"`
			} `toml:"containerd"`
		}
		if err := toml.Unmarshal(raw, &merged); err != nil {
			t.Fatal(err)
		}
		rts := merged.Containerd.Runtimes
		if !merged.Restrict || len(rts) != 3 || rts["runc"].Type != "io.containerd.runc.v2" {
			t.Fatalf("main %d, drop-in %d: merged %+v", tc.main, tc.drop, merged)
		}
		// criconfig.GenerateRuntimeOptions: marshal the table, unmarshal it
		// into runtimeoptions.Options; with no ConfigPath the table itself
		// becomes ConfigBody. config_path must not land in ConfigPath.
		body, err := toml.Marshal(rts["gvisor-strict"].Options)
		if err != nil {
			t.Fatal(err)
		}
		var ro runtimeoptions.Options
		if err := toml.Unmarshal(body, &ro); err != nil {
			t.Fatal(err)
		}
		if ro.ConfigPath != "" {
			t.Fatalf("containerd would send ConfigPath %q and no ConfigBody", ro.ConfigPath)
		}
		var sel struct {
			ConfigPath string `toml:"config_path"`
			Handler    string `toml:"handler"`
		}
		if err := toml.NewDecoder(bytes.NewReader(body)).DisallowUnknownFields().Decode(&sel); err != nil ||
			sel.Handler != "gvisor-strict" || sel.ConfigPath != "/etc/palisade/config.toml" {
			t.Errorf("ConfigBody %q: %+v, %v", body, sel, err)
		}
	}
}

func TestRuntimeClasses(t *testing.T) {
	cfg := twoHandlers()
	cfg.Handlers["gvisor"] = shim.Handler{Backend: shim.BackendRunsc, RuntimeClass: shim.RuntimeClass{
		OverheadMemory: "40Mi", OverheadCPU: "10m",
		NodeSelector: map[string]string{"palisade.io/runsc": "true", "kubernetes.io/arch": "amd64"},
	}}
	out, err := runtimeClasses(cfg, "/etc/palisade/config.toml")
	if err != nil {
		t.Fatal(err)
	}
	want := `# RuntimeClass objects for the Palisade handlers in "/etc/palisade/config.toml".
# Generated by ` + "`palisadectl config runtimeclass`; apply with `kubectl apply -f`." + `
---
apiVersion: node.k8s.io/v1
kind: RuntimeClass
metadata:
  name: "gvisor"
handler: "gvisor"
overhead:
  podFixed:
    cpu: "10m"
    memory: "40Mi"
scheduling:
  nodeSelector:
    "kubernetes.io/arch": "amd64"
    "palisade.io/runsc": "true"
---
apiVersion: node.k8s.io/v1
kind: RuntimeClass
metadata:
  name: "gvisor-strict"
handler: "gvisor-strict"
`
	if out != want {
		t.Errorf("got:\n%s\nwant:\n%s", out, want)
	}
	cfg.Handlers["Not_A_Label"] = shim.Handler{Backend: shim.BackendRunsc}
	if _, err := runtimeClasses(cfg, "/p"); err == nil || !strings.Contains(err.Error(), "handlers.Not_A_Label: a RuntimeClass handler must be a DNS label") {
		t.Errorf("bad handler name: %v", err)
	}
}

func TestConfigCommands(t *testing.T) {
	path := filepath.Join(t.TempDir(), "config.toml")
	body := "[handlers.g]\nbackend = \"runsc\"\n[handlers.g.runtimeclass]\noverhead_memory = \"1Gi\"\n"
	if err := os.WriteFile(path, []byte(body), 0o644); err != nil {
		t.Fatal(err)
	}
	code, stdout, stderr := runCtl(t, testEnv(t), "config", "containerd", "--config", path, "--version", "4")
	if code != 0 || !strings.Contains(stdout, "version = 4\n") || !strings.Contains(stdout, "config_path = \""+path+"\"") {
		t.Errorf("config containerd: %d\n%s%s", code, stdout, stderr)
	}
	code, stdout, stderr = runCtl(t, testEnv(t), "config", "runtimeclass", "-c", path)
	if code != 0 || !strings.Contains(stdout, "memory: \"1Gi\"") {
		t.Errorf("config runtimeclass: %d\n%s%s", code, stdout, stderr)
	}
	code, _, stderr = runCtl(t, testEnv(t), "config", "containerd", "--config", path+".missing")
	if code != 1 || !strings.Contains(stderr, "config.toml.missing") {
		t.Errorf("missing config: %d %s", code, stderr)
	}
}

// FuzzContainerdDropIn: whatever the handler names, the drop-in is TOML
// with exactly those runtime entries, each selecting its own handler.
func FuzzContainerdDropIn(f *testing.F) {
	for _, s := range []string{"gvisor", "a.b", `q"uote`, "back\\slash", "new\nline", "", "ünï", "\x7f"} {
		f.Add(s, "/etc/palisade/config.toml")
	}
	f.Fuzz(func(t *testing.T, name, path string) {
		cfg := &shim.Config{Handlers: map[string]shim.Handler{name: {}, "other": {}}}
		out, err := containerdDropIn(cfg, path, 3, "")
		if !utf8.ValidString(path) {
			if err == nil {
				t.Errorf("path %q: not refused", path)
			}
			return
		}
		if err != nil {
			t.Fatal(err)
		}
		if !utf8.ValidString(name) {
			return // handler names come from a TOML file, so they are UTF-8
		}
		rts := parseDropIn(t, out).Plugins.Runtime.Containerd.Runtimes
		if len(rts) != len(cfg.Handlers) || rts[name].Options["handler"] != name || rts[name].Options["config_path"] != path {
			t.Errorf("handler %q path %q: %+v\n%s", name, path, rts, out)
		}
	})
}
