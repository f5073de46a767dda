package criimages

import (
	"bytes"
	"debug/elf"
	"fmt"
	"os"
	"os/exec"
	"path"
	"path/filepath"
	"strings"
)

// debPackages are the Debian packages the images are made of: the dynamic busybox
// (busybox-static runs applets in-process, which defeats critest's MaskedPaths
// spec), its C library, and util-linux for ipcs, which busybox lacks.
var debPackages = []string{"busybox", "libc6", "util-linux"}

// ensureDebs downloads each package's .deb into dir with `apt-get download`, unless
// one is already there, and returns the .deb paths. Their names carry the package
// versions, so they key the image cache. The package lists are refreshed once if
// apt does not know a package (a fresh machine).
func ensureDebs(dir string, logf func(string, ...any)) ([]string, error) {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, err
	}
	var debs []string
	updated := false
	for _, pkg := range debPackages {
		matches, _ := filepath.Glob(filepath.Join(dir, pkg+"_*.deb"))
		if len(matches) == 0 {
			logf("criimages: apt-get download %s", pkg)
			out, err := aptDownload(dir, pkg)
			if err != nil && !updated {
				updated = true
				logf("criimages: apt-get update (download of %s failed: %s)", pkg, bytes.TrimSpace(out))
				if out, err := exec.Command("apt-get", "update", "-qq").CombinedOutput(); err != nil {
					return nil, fmt.Errorf("apt-get update: %w\n%s", err, out)
				}
				out, err = aptDownload(dir, pkg)
			}
			if err != nil {
				return nil, fmt.Errorf("apt-get download %s: %w\n%s", pkg, err, out)
			}
			matches, _ = filepath.Glob(filepath.Join(dir, pkg+"_*.deb"))
		}
		if len(matches) != 1 {
			return nil, fmt.Errorf("want one %s .deb in %s, found %v", pkg, dir, matches)
		}
		debs = append(debs, matches[0])
	}
	return debs, nil
}

func aptDownload(dir, pkg string) ([]byte, error) {
	cmd := exec.Command("apt-get", "download", "-qq", pkg)
	cmd.Dir = dir
	return cmd.CombinedOutput()
}

// extractDebs unpacks the .debs into root with dpkg-deb -x (nothing is installed).
func extractDebs(debs []string, root string) error {
	for _, d := range debs {
		if out, err := exec.Command("dpkg-deb", "-x", d, root).CombinedOutput(); err != nil {
			return fmt.Errorf("dpkg-deb -x %s: %w\n%s", d, err, out)
		}
	}
	return nil
}

// libDirs are searched, in order, for the shared libraries a binary needs.
var libDirs = []string{"/lib/x86_64-linux-gnu", "/usr/lib/x86_64-linux-gnu", "/lib64", "/lib"}

// copyELF adds the executable at p (absolute in the extracted root) to t with mode,
// then its ELF interpreter and, transitively, every DT_NEEDED library, each from
// root. Symlinks on the way (/lib64/ld-linux-x86-64.so.2) are kept as symlinks.
func copyELF(t tree, root, p string, mode int64) error {
	if err := copyFile(t, root, p, mode); err != nil {
		return err
	}
	seen := map[string]bool{}
	queue := []string{p}
	for len(queue) > 0 {
		cur := queue[0]
		queue = queue[1:]
		f, err := elf.Open(filepath.Join(root, resolve(root, cur)))
		if err != nil {
			return fmt.Errorf("%s: %w", cur, err)
		}
		needed, err := f.ImportedLibraries()
		interp := interpreter(f)
		f.Close()
		if err != nil {
			return fmt.Errorf("%s: %w", cur, err)
		}
		var deps []string
		if interp != "" {
			deps = append(deps, interp)
		}
		for _, lib := range needed {
			found := ""
			for _, d := range libDirs {
				if _, err := os.Lstat(filepath.Join(root, d, lib)); err == nil {
					found = path.Join(d, lib)
					break
				}
			}
			if found == "" {
				return fmt.Errorf("%s needs %s, which is in none of %v of the extracted packages", cur, lib, libDirs)
			}
			deps = append(deps, found)
		}
		for _, d := range deps {
			if seen[d] {
				continue
			}
			seen[d] = true
			if err := copyFile(t, root, d, 0o755); err != nil {
				return err
			}
			queue = append(queue, d)
		}
	}
	return nil
}

func interpreter(f *elf.File) string {
	for _, p := range f.Progs {
		if p.Type == elf.PT_INTERP {
			b := make([]byte, p.Filesz)
			if _, err := p.ReadAt(b, 0); err == nil {
				return strings.TrimRight(string(b), "\x00")
			}
		}
	}
	return ""
}

// copyFile adds root's file at p to t, following and recreating symlinks.
func copyFile(t tree, root, p string, mode int64) error {
	for range 16 {
		fi, err := os.Lstat(filepath.Join(root, p))
		if err != nil {
			return err
		}
		if fi.Mode()&os.ModeSymlink == 0 {
			b, err := os.ReadFile(filepath.Join(root, p))
			if err != nil {
				return err
			}
			t.file(p, b, mode)
			return nil
		}
		target, err := os.Readlink(filepath.Join(root, p))
		if err != nil {
			return err
		}
		t.symlink(p, target)
		if !path.IsAbs(target) {
			target = path.Join(path.Dir(p), target)
		}
		p = target
	}
	return fmt.Errorf("%s: too many levels of symlinks", p)
}

// resolve follows symlinks of p inside root (absolute targets are taken relative
// to root), so that the host's own files are never read by mistake.
func resolve(root, p string) string {
	for range 16 {
		target, err := os.Readlink(filepath.Join(root, p))
		if err != nil {
			return p
		}
		if !path.IsAbs(target) {
			target = path.Join(path.Dir(p), target)
		}
		p = target
	}
	return p
}
