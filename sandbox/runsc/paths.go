package runsc

import (
	"encoding/json"
	"fmt"
	"os"
	"path"
	"path/filepath"
	"slices"
	"strings"

	securejoin "github.com/cyphar/filepath-securejoin"
	specs "github.com/opencontainers/runtime-spec/specs-go"
)

// gVisor does not apply linux.maskedPaths and linux.readonlyPaths
// (google/gvisor#9245): a pod that asks to hide a file or to make a
// directory read-only would silently get neither. Below /proc and /sys that
// is harmless, because gVisor serves its own synthetic files there instead
// of the host's, which is what containerd's default masked paths protect.
// Anywhere else Palisade applies them the way runc does, as mounts gVisor
// does honour: a masked directory gets an empty read-only tmpfs, a masked
// file an empty file with no permissions (reads return nothing, exec fails
// with EACCES), and a read-only path a read-only bind of itself.

// maskedFile is the bundle file bound over masked files.
const maskedFile = "palisade-masked"

// gvisorServes reports whether p is in a filesystem gVisor synthesises.
func gvisorServes(p string) bool {
	p = path.Clean(p)
	return p == "/proc" || p == "/sys" || strings.HasPrefix(p, "/proc/") || strings.HasPrefix(p, "/sys/")
}

// applyPathRestrictions rewrites the bundle's config.json (data, already
// decoded shallowly into bs) so that masked and read-only paths outside
// /proc and /sys become mounts. rootfs is the mounted root filesystem ("" to
// use the spec's root.path). It returns one note per path it did not apply,
// for the log.
func applyPathRestrictions(bundle, rootfs string, bs bundleSpec, data []byte) ([]string, error) {
	if bs.Linux == nil || !slices.ContainsFunc(slices.Concat(bs.Linux.MaskedPaths, bs.Linux.ReadonlyPaths), func(p string) bool { return !gvisorServes(p) }) {
		return nil, nil
	}
	cfgPath := filepath.Join(bundle, "config.json")
	var spec specs.Spec
	if err := json.Unmarshal(data, &spec); err != nil {
		return nil, fmt.Errorf("decode %s: %w", cfgPath, err)
	}
	if rootfs == "" && spec.Root != nil {
		rootfs = spec.Root.Path
		if !filepath.IsAbs(rootfs) {
			rootfs = filepath.Join(bundle, rootfs)
		}
	}
	notes, err := restrictPaths(&spec, bundle, rootfs)
	if err != nil {
		return nil, err
	}
	out, err := json.Marshal(&spec)
	if err != nil {
		return nil, err
	}
	// The same write as the shim's: a new file in place of the old.
	tmp := cfgPath + ".tmp"
	if err := os.WriteFile(tmp, out, 0o600); err != nil {
		return nil, err
	}
	return notes, os.Rename(tmp, cfgPath)
}

// restrictPaths turns spec's masked and read-only paths outside /proc and
// /sys into mounts, and removes them from the lists.
func restrictPaths(spec *specs.Spec, bundle, rootfs string) ([]string, error) {
	var notes []string
	var keepMasked, keepRO []string
	for _, p := range spec.Linux.MaskedPaths {
		if gvisorServes(p) {
			keepMasked = append(keepMasked, p)
			continue
		}
		fi, note := inspect(spec.Mounts, rootfs, p)
		switch {
		case note != "":
			notes = append(notes, "maskedPaths "+p+": "+note)
		case fi == nil: // absent: nothing to hide, as runc
		case fi.IsDir():
			spec.Mounts = append(spec.Mounts, specs.Mount{Destination: p, Type: "tmpfs", Source: "tmpfs",
				Options: []string{"ro", "nosuid", "nodev", "noexec", "size=0"}})
		default:
			src := filepath.Join(bundle, maskedFile)
			if err := os.WriteFile(src, nil, 0); err != nil {
				return nil, fmt.Errorf("maskedPaths %s: %w", p, err)
			}
			spec.Mounts = append(spec.Mounts, specs.Mount{Destination: p, Type: "bind", Source: src,
				Options: []string{"bind", "ro", "nosuid", "nodev", "noexec"}})
		}
	}
	for _, p := range spec.Linux.ReadonlyPaths {
		if gvisorServes(p) {
			keepRO = append(keepRO, p)
			continue
		}
		fi, note := inspect(spec.Mounts, rootfs, p)
		switch {
		case note != "":
			notes = append(notes, "readonlyPaths "+p+": "+note)
		case fi == nil:
		default:
			host, _ := securejoin.SecureJoin(rootfs, p) // inspect has resolved it
			spec.Mounts = append(spec.Mounts, specs.Mount{Destination: p, Type: "bind", Source: host,
				Options: []string{"rbind", "ro"}})
		}
	}
	spec.Linux.MaskedPaths, spec.Linux.ReadonlyPaths = keepMasked, keepRO
	return notes, nil
}

// inspect finds p in the root filesystem, resolving symlinks inside it as
// the container would. It returns nil for an absent path, and a note for a
// path below another mount, whose contents the root filesystem does not
// show (those are left alone and logged).
func inspect(mounts []specs.Mount, rootfs, p string) (os.FileInfo, string) {
	clean := path.Clean(p)
	for _, m := range mounts {
		d := path.Clean(m.Destination)
		if clean == d || strings.HasPrefix(clean, d+"/") || d == "/" {
			return nil, "inside the mount at " + m.Destination + ": not applied"
		}
	}
	host, err := securejoin.SecureJoin(rootfs, clean)
	if err != nil {
		return nil, "resolve in the root filesystem: " + err.Error()
	}
	fi, err := os.Stat(host)
	if os.IsNotExist(err) {
		return nil, ""
	}
	if err != nil {
		return nil, err.Error()
	}
	return fi, ""
}
