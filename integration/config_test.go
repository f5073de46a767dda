package integration

import (
	"fmt"
	"maps"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
)

// config renders containerd's configuration (version 3, which containerd 2.4
// migrates in memory with a warning in its log).
func (e *containerdEnv) config(opts containerdOpts) (string, error) {
	level := opts.LogLevel
	if level == "" {
		level = "info"
	}
	// NRI is off unless asked for: it would open /var/run/nri/nri.sock and load
	// host plugins (containerdOpts.NRI gives it private paths instead). The
	// OTLP tracing processor is off so nothing can send traffic off the machine.
	disabled := []string{"io.containerd.nri.v1.nri", "io.containerd.tracing.processor.v1.otlp"}
	plugins := map[string]any{
		// opt prepends <path>/bin to PATH; the default is the host's /opt/containerd.
		"io.containerd.internal.v1.opt": map[string]any{"path": filepath.Join(e.Dir, "opt")},
		// Without this a root containerd puts shim sockets in the global /run/containerd/s.
		"io.containerd.shim.v1.manager": map[string]any{"socket_dir": e.SocketDir},
	}
	if opts.CRI {
		runtimes := map[string]any{}
		all := slices.Clone(opts.CRIRuntimes)
		if opts.CRIRuntimesFor != nil {
			all = append(all, opts.CRIRuntimesFor(e)...)
		}
		for _, r := range all {
			entry := map[string]any{"runtime_type": r.Type}
			if r.Options != nil {
				entry["options"] = r.Options
			}
			runtimes[r.Name] = entry
		}
		criRuntime := map[string]any{
			"restrict_oom_score_adj": true,
			"containerd":             map[string]any{"runtimes": runtimes},
		}
		if opts.NetNSUnderStateDir {
			criRuntime["netns_mounts_under_state_dir"] = true
		}
		if len(opts.CNIBinDirs) > 0 || opts.CNIConfDir != "" {
			cni := map[string]any{}
			if len(opts.CNIBinDirs) > 0 {
				cni["bin_dirs"] = opts.CNIBinDirs
			}
			if opts.CNIConfDir != "" {
				cni["conf_dir"] = opts.CNIConfDir
			}
			criRuntime["cni"] = cni
		}
		plugins["io.containerd.cri.v1.runtime"] = criRuntime
		images := map[string]any{}
		if opts.RegistryConfigPath != "" {
			images["registry"] = map[string]any{"config_path": opts.RegistryConfigPath}
		}
		if opts.SandboxImage != "" {
			images["pinned_images"] = map[string]any{"sandbox": opts.SandboxImage}
		}
		if len(images) > 0 {
			plugins["io.containerd.cri.v1.images"] = images
		}
		if opts.NRI {
			disabled = slices.DeleteFunc(disabled, func(p string) bool { return p == "io.containerd.nri.v1.nri" })
			plugins["io.containerd.nri.v1.nri"] = map[string]any{
				"disable":            false,
				"socket_path":        e.NRISocket,
				"plugin_path":        filepath.Join(e.Dir, "nri", "plugins"),
				"plugin_config_path": filepath.Join(e.Dir, "nri", "conf.d"),
			}
		}
	} else {
		disabled = append(disabled, "io.containerd.grpc.v1.cri", "io.containerd.cri.v1.runtime",
			"io.containerd.cri.v1.images", "io.containerd.podsandbox.controller.v1.podsandbox")
	}
	// containerd refuses a longer socket_dir, leaving room for the socket's name.
	if len(e.SocketDir) > 38 {
		return "", fmt.Errorf("shim socket dir %s is longer than containerd's limit of 38", e.SocketDir)
	}
	return renderTOML(map[string]any{
		"version":          3,
		"root":             e.RootDir,
		"state":            e.StateDir,
		"disabled_plugins": disabled,
		"grpc":             map[string]any{"address": e.Address},
		"ttrpc":            map[string]any{"address": e.Address + ".ttrpc"},
		"debug":            map[string]any{"address": "", "level": level},
		"metrics":          map[string]any{"address": ""},
		"plugins":          plugins,
	})
}

// renderTOML writes a nested map as TOML: a table's plain keys, then each
// sub-table under its full dotted header, keys sorted. It supports what a
// containerd config needs (strings, bools, integers, string lists, tables), which
// keeps a TOML library out of the module for one file.
func renderTOML(m map[string]any) (string, error) {
	var b strings.Builder
	err := renderTable(&b, nil, m)
	return b.String(), err
}

func renderTable(b *strings.Builder, path []string, m map[string]any) error {
	if len(path) > 0 {
		fmt.Fprintf(b, "\n[%s]\n", strings.Join(path, "."))
	}
	keys := slices.Sorted(maps.Keys(m))
	for _, k := range keys {
		if _, isTable := m[k].(map[string]any); isTable {
			continue
		}
		v, err := tomlValue(m[k])
		if err != nil {
			return fmt.Errorf("%s.%s: %w", strings.Join(path, "."), k, err)
		}
		fmt.Fprintf(b, "%s = %s\n", tomlKey(k), v)
	}
	for _, k := range keys {
		if sub, isTable := m[k].(map[string]any); isTable {
			if err := renderTable(b, append(slices.Clone(path), tomlKey(k)), sub); err != nil {
				return err
			}
		}
	}
	return nil
}

func tomlValue(v any) (string, error) {
	switch v := v.(type) {
	case string:
		return tomlString(v), nil
	case bool:
		return strconv.FormatBool(v), nil
	case int:
		return strconv.Itoa(v), nil
	case int64:
		return strconv.FormatInt(v, 10), nil
	case []string:
		q := make([]string, len(v))
		for i, s := range v {
			q[i] = tomlString(s)
		}
		return "[" + strings.Join(q, ", ") + "]", nil
	}
	return "", fmt.Errorf("unsupported TOML value %T", v)
}

// tomlKey leaves bare keys bare and quotes the rest (plugin IDs contain dots).
func tomlKey(k string) string {
	for _, r := range k {
		if !(r == '_' || r == '-' || r >= '0' && r <= '9' || r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z') {
			return tomlString(k)
		}
	}
	return k
}

// tomlString is a TOML basic string. Go's strconv.Quote is not used because its
// \x escapes are not valid TOML.
func tomlString(s string) string {
	var b strings.Builder
	b.WriteByte('"')
	for _, r := range s {
		switch {
		case r == '"' || r == '\\':
			b.WriteByte('\\')
			b.WriteRune(r)
		case r < 0x20 || r == 0x7f:
			fmt.Fprintf(&b, `\u%04x`, r)
		default:
			b.WriteRune(r)
		}
	}
	b.WriteByte('"')
	return b.String()
}

func TestRenderTOML(t *testing.T) {
	got, err := renderTOML(map[string]any{
		"version": 3,
		"plugins": map[string]any{
			"io.containerd.x": map[string]any{"on": true, "list": []string{`a"b`, "c\\"}},
		},
		"root": "/tmp/x\ty",
	})
	if err != nil {
		t.Fatal(err)
	}
	want := `root = "/tmp/x\u0009y"
version = 3

[plugins]

[plugins."io.containerd.x"]
list = ["a\"b", "c\\"]
on = true
`
	if got != want {
		t.Errorf("got:\n%s\nwant:\n%s", got, want)
	}
	if _, err := renderTOML(map[string]any{"f": 1.5}); err == nil {
		t.Error("a float was accepted")
	}
}
