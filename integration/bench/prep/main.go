// Command prep writes the files integration/bench.sh runs with: Palisade's
// handler configs, taken from the repo's config.toml, and the OCI bundles of
// the raw runsc rows. It measures nothing.
//
//	prep handlers CONFIG RUNSC ROOT OUTDIR
//	    gvisor.toml  the shipped [handlers.gvisor] floor (runtime-default
//	                 seccomp, capability ceiling and drop list,
//	                 no_new_privileges; clamp)
//	    strict.toml  the shipped [handlers.gvisor-strict] floor (smaller
//	                 ceiling, refuse), the strictest that runs here
//	    open.toml    the same backend with no floor at all
//	  Each selects its handler as the file's default_handler, which is how ctr
//	  picks one. Only runsc's binary and state root change; the AppArmor table
//	  is left out (this kernel has no AppArmor: the strict handler, required =
//	  true, would fail closed, the default one would only record the skip).
//	  It prints the capabilities of ctr's default set above the strict
//	  ceiling, one per line, which the strict row drops so its request fits.
//
//	prep delegate NAME TOOLS WORK [POLICY_FROM]
//	    prints a config whose handler NAME runs containerd-shim-runc-v2 and
//	    runc from TOOLS (backend = "shim"), with the policy of the gvisor
//	    handler of the config POLICY_FROM, if given.
//
//	    images.toml  gvisor.toml's floor plus an image policy (handler
//	                 images) that P1's image, localhost/palisade-bench/*,
//	                 passes: with the gvisor row on the same image, the
//	                 cost of asking containerd about the image
//
//	prep image ROOTFS OUT NAME
//	    writes an OCI archive of one image NAME with ROOTFS's files, for
//	    `ctr images import`.
//
//	prep bundle CONFIG_JSON ROOTFS
//	    makes `runc spec`'s config.json run /bin/true from ROOTFS, no terminal.
//
//	prep graft RAW ENFORCED OUT
//	    writes RAW's spec with ENFORCED's seccomp profile, capabilities and
//	    no_new_privileges (what Palisade enforced on a container) to OUT.
package main

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"

	"github.com/pelletier/go-toml/v2"
)

// ctrDefaultCaps is containerd's default capability set
// (oci.WithDefaultSpec), what ctr asks for.
var ctrDefaultCaps = []string{
	"CAP_CHOWN", "CAP_DAC_OVERRIDE", "CAP_FSETID", "CAP_FOWNER", "CAP_MKNOD",
	"CAP_NET_RAW", "CAP_SETGID", "CAP_SETUID", "CAP_SETFCAP", "CAP_SETPCAP",
	"CAP_NET_BIND_SERVICE", "CAP_SYS_CHROOT", "CAP_KILL", "CAP_AUDIT_WRITE",
}

func main() {
	if err := run(os.Args[1:]); err != nil {
		fmt.Fprintln(os.Stderr, "prep:", err)
		os.Exit(1)
	}
}

func run(args []string) error {
	if len(args) == 0 {
		return errors.New("usage: prep handlers|delegate|image|bundle|graft ARGS...")
	}
	switch cmd, a := args[0], args[1:]; {
	case cmd == "handlers" && len(a) == 4:
		return handlers(a[0], a[1], a[2], a[3])
	case cmd == "delegate" && (len(a) == 3 || len(a) == 4):
		from := ""
		if len(a) == 4 {
			from = a[3]
		}
		return delegate(a[0], a[1], a[2], from)
	case cmd == "image" && len(a) == 3:
		return image(a[0], a[1], a[2])
	case cmd == "bundle" && len(a) == 2:
		return bundle(a[0], a[1])
	case cmd == "graft" && len(a) == 3:
		return graft(a[0], a[1], a[2])
	}
	return fmt.Errorf("bad arguments: %q", args)
}

type table = map[string]any

func readTOML(path string) (table, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	var t table
	if err := toml.Unmarshal(data, &t); err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	return t, nil
}

// sub returns t[keys[0]][keys[1]]... as a table, or an error naming the path.
func sub(t table, keys ...string) (table, error) {
	for i, k := range keys {
		next, ok := t[k].(table)
		if !ok {
			return nil, fmt.Errorf("no table %v", keys[:i+1])
		}
		t = next
	}
	return t, nil
}

func writeHandler(path, name string, h table) error {
	data, err := toml.Marshal(table{"default_handler": name, "handlers": table{name: h}})
	if err != nil {
		return err
	}
	return os.WriteFile(path, data, 0o644)
}

func handlers(config, runsc, root, outdir string) error {
	cfg, err := readTOML(config)
	if err != nil {
		return err
	}
	handler := func(name string, floor bool) (table, error) {
		rs, err := sub(cfg, "handlers", name, "runsc")
		if err != nil {
			return nil, err
		}
		rs = clone(rs)
		rs["binary"], rs["root"] = runsc, root
		h := table{"backend": "runsc", "runsc": rs, "policy": table{}}
		if floor {
			p, err := sub(cfg, "handlers", name, "policy")
			if err != nil {
				return nil, err
			}
			p = clone(p)
			delete(p, "apparmor")
			h["policy"] = p
		}
		return h, nil
	}
	for _, f := range []struct{ file, name, from string }{
		{"gvisor.toml", "gvisor", "gvisor"}, {"strict.toml", "strict", "gvisor-strict"}, {"open.toml", "open", "gvisor"},
		{"images.toml", "images", "gvisor"},
	} {
		h, err := handler(f.from, f.name != "open")
		if err != nil {
			return err
		}
		if f.name == "images" {
			h["policy"].(table)["images"] = table{
				"allow": []string{"localhost/palisade-bench/**"}, "deny": []string{"localhost/palisade-bench/debug*"},
				"deny_latest": true,
			}
		}
		if err := writeHandler(filepath.Join(outdir, f.file), f.name, h); err != nil {
			return err
		}
	}
	caps, err := sub(cfg, "handlers", "gvisor-strict", "policy", "capabilities")
	if err != nil {
		return err
	}
	ceiling, _ := caps["ceiling"].([]any)
	for _, c := range ctrDefaultCaps {
		if !slices.Contains(ceiling, any(c)) {
			fmt.Println(c)
		}
	}
	return nil
}

// clone is a shallow copy of t.
func clone(t table) table {
	c := make(table, len(t))
	for k, v := range t {
		c[k] = v
	}
	return c
}

func delegate(name, tools, work, policyFrom string) error {
	h := table{
		"backend": "shim",
		"shim": table{
			"binary":       filepath.Join(tools, "containerd-shim-runc-v2"),
			"options_type": "runc",
			"binary_name":  filepath.Join(tools, "runc"),
			"root":         filepath.Join(work, "runc-delegate"),
		},
	}
	if policyFrom != "" {
		cfg, err := readTOML(policyFrom)
		if err != nil {
			return err
		}
		p, err := sub(cfg, "handlers", "gvisor", "policy")
		if err != nil {
			return err
		}
		h["policy"] = p
	}
	data, err := toml.Marshal(table{"default_handler": name, "handlers": table{name: h}})
	if err != nil {
		return err
	}
	_, err = os.Stdout.Write(data)
	return err
}

func readJSON(path string) (table, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	var t table
	if err := json.Unmarshal(data, &t); err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	return t, nil
}

func writeJSON(path string, t table) error {
	data, err := json.Marshal(t)
	if err != nil {
		return err
	}
	return os.WriteFile(path, data, 0o644)
}

func bundle(config, rootfs string) error {
	s, err := readJSON(config)
	if err != nil {
		return err
	}
	p, err := sub(s, "process")
	if err != nil {
		return fmt.Errorf("%s: %w", config, err)
	}
	p["args"], p["terminal"] = []string{"/bin/true"}, false
	s["root"] = table{"path": rootfs, "readonly": false}
	return writeJSON(config, s)
}

func graft(raw, enforced, out string) error {
	s, err := readJSON(raw)
	if err != nil {
		return err
	}
	e, err := readJSON(enforced)
	if err != nil {
		return err
	}
	sp, err1 := sub(s, "process")
	ep, err2 := sub(e, "process")
	sl, err3 := sub(s, "linux")
	el, err4 := sub(e, "linux")
	if err := errors.Join(err1, err2, err3, err4); err != nil {
		return err
	}
	if el["seccomp"] == nil {
		return fmt.Errorf("%s: no linux.seccomp: was the container's floor enforced?", enforced)
	}
	sl["seccomp"] = el["seccomp"]
	sp["capabilities"] = ep["capabilities"]
	sp["noNewPrivileges"] = ep["noNewPrivileges"] == true
	return writeJSON(out, s)
}
