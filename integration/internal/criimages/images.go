// Package criimages builds the container images critest pulls, from Debian
// packages and three small Go programs, so that critest can run with no internet.
// It follows ../../../../shared/notes/critest-offline.md (the table of what each
// image must contain); recipe.go holds that table. The result is an OCI image
// layout cached on disk, then pushed to a loopback registry for each run.
package criimages

import (
	"archive/tar"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	"io/fs"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"

	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/layout"
	"github.com/google/go-containerregistry/pkg/v1/remote"
)

// recipeVersion is part of the cache key; bump it when the recipe changes in a way
// the hashed sources do not show (they do show every edit to this package).
const recipeVersion = "1"

// refAnnotation names each manifest of the layout with its upstream reference.
const refAnnotation = "org.opencontainers.image.ref.name"

// Options configures Build.
type Options struct {
	// CacheDir keeps the downloaded .debs and the built layouts (under _tools).
	CacheDir string
	// RepoRoot is the module root; the programs under progs/ are built from it.
	RepoRoot string
	// Logf reports slow steps (downloads, builds). Optional.
	Logf func(format string, args ...any)
}

// Build returns the path of an OCI layout holding every image of the recipe,
// building it only when no layout for the same packages and sources is cached.
func Build(o Options) (string, error) {
	logf := o.Logf
	if logf == nil {
		logf = func(string, ...any) {}
	}
	debs, err := ensureDebs(filepath.Join(o.CacheDir, "debs"), logf)
	if err != nil {
		return "", err
	}
	key, err := cacheKey(o.RepoRoot, debs)
	if err != nil {
		return "", err
	}
	out := filepath.Join(o.CacheDir, "layout-"+key)
	if _, err := os.Stat(filepath.Join(out, "index.json")); err == nil {
		return out, nil
	}
	logf("criimages: building the images into %s", out)
	work, err := os.MkdirTemp(o.CacheDir, ".build-")
	if err != nil {
		return "", err
	}
	defer os.RemoveAll(work)
	b := &builder{root: filepath.Join(work, "root"), progs: filepath.Join(work, "progs")}
	if err := extractDebs(debs, b.root); err != nil {
		return "", err
	}
	if err := buildProgs(o.RepoRoot, b.progs); err != nil {
		return "", err
	}
	images, err := b.recipe()
	if err != nil {
		return "", err
	}
	lp, err := layout.Write(filepath.Join(work, "layout"), empty.Index)
	if err != nil {
		return "", err
	}
	for _, im := range images {
		for _, ref := range im.refs {
			if err := lp.AppendImage(im.img, layout.WithAnnotations(map[string]string{refAnnotation: ref})); err != nil {
				return "", fmt.Errorf("%s: %w", ref, err)
			}
		}
	}
	// Complete layouts only: a build cut short leaves a .build- directory, never
	// a layout- one. Older layouts are stale and go.
	old, _ := filepath.Glob(filepath.Join(o.CacheDir, "layout-*"))
	if err := os.Rename(filepath.Join(work, "layout"), out); err != nil {
		return "", err
	}
	for _, d := range old {
		_ = os.RemoveAll(d)
	}
	return out, nil
}

// cacheKey hashes what the images are made of: the recipe version, the .deb
// names (package and version) and the Go sources of this package and its programs.
func cacheKey(repoRoot string, debs []string) (string, error) {
	h := sha256.New()
	fmt.Fprintf(h, "recipe %s\n", recipeVersion)
	for _, d := range debs {
		fmt.Fprintf(h, "deb %s\n", filepath.Base(d))
	}
	src := filepath.Join(repoRoot, pkgDir)
	err := filepath.WalkDir(src, func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() || !strings.HasSuffix(p, ".go") || strings.HasSuffix(p, "_test.go") {
			return err
		}
		b, err := os.ReadFile(p)
		if err != nil {
			return err
		}
		fmt.Fprintf(h, "src %s %x\n", strings.TrimPrefix(p, src), sha256.Sum256(b))
		return nil
	})
	if err != nil {
		return "", fmt.Errorf("hash the image sources: %w", err)
	}
	return hex.EncodeToString(h.Sum(nil))[:16], nil
}

// pkgDir is this package, relative to the module root.
const pkgDir = "integration/internal/criimages"

// buildProgs builds progs/* as static binaries into dir: they run in images that
// have no C library (pause) or must not depend on the one they carry.
func buildProgs(repoRoot, dir string) error {
	cmd := exec.Command("go", "build", "-trimpath", "-ldflags=-s -w", "-o", dir+"/", "./"+pkgDir+"/progs/...")
	cmd.Dir = repoRoot
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0", "GOFLAGS=-buildvcs=false")
	if out, err := cmd.CombinedOutput(); err != nil {
		return fmt.Errorf("build the image programs: %w\n%s", err, out)
	}
	return nil
}

// Refs lists the upstream references of the images in a layout.
func Refs(layoutDir string) ([]string, error) {
	idx, err := layout.ImageIndexFromPath(layoutDir)
	if err != nil {
		return nil, err
	}
	m, err := idx.IndexManifest()
	if err != nil {
		return nil, err
	}
	var refs []string
	for _, d := range m.Manifests {
		refs = append(refs, d.Annotations[refAnnotation])
	}
	return refs, nil
}

// Push copies every image of the layout to the registry at host (host:port)
// through tr, under its upstream repository path without the registry name: the
// mirror configuration sends each upstream registry to that one registry.
func Push(layoutDir, host string, tr http.RoundTripper) error {
	idx, err := layout.ImageIndexFromPath(layoutDir)
	if err != nil {
		return err
	}
	m, err := idx.IndexManifest()
	if err != nil {
		return err
	}
	for _, d := range m.Manifests {
		ref := d.Annotations[refAnnotation]
		_, path, ok := strings.Cut(ref, "/")
		if !ok {
			return fmt.Errorf("reference %q names no registry", ref)
		}
		dst, err := name.ParseReference(host+"/"+path, name.Insecure)
		if err != nil {
			return err
		}
		img, err := idx.Image(d.Digest)
		if err != nil {
			return err
		}
		if err := remote.Write(dst, img, remote.WithTransport(tr)); err != nil {
			return fmt.Errorf("push %s as %s: %w", ref, dst, err)
		}
	}
	return nil
}

// Digest returns the manifest digest of ref in the layout.
func Digest(layoutDir, ref string) (v1.Hash, error) {
	idx, err := layout.ImageIndexFromPath(layoutDir)
	if err != nil {
		return v1.Hash{}, err
	}
	m, err := idx.IndexManifest()
	if err != nil {
		return v1.Hash{}, err
	}
	i := slices.IndexFunc(m.Manifests, func(d v1.Descriptor) bool { return d.Annotations[refAnnotation] == ref })
	if i < 0 {
		return v1.Hash{}, fmt.Errorf("%s is not in %s", ref, layoutDir)
	}
	return m.Manifests[i].Digest, nil
}

// Files returns the headers of the files of ref's image in the layout, layers
// applied in order (a later layer's entry replaces an earlier one; whiteouts are
// not needed by this recipe and not handled), by path without the leading "/".
func Files(layoutDir, ref string) (map[string]*tar.Header, error) {
	idx, err := layout.ImageIndexFromPath(layoutDir)
	if err != nil {
		return nil, err
	}
	h, err := Digest(layoutDir, ref)
	if err != nil {
		return nil, err
	}
	img, err := idx.Image(h)
	if err != nil {
		return nil, err
	}
	layers, err := img.Layers()
	if err != nil {
		return nil, err
	}
	files := map[string]*tar.Header{}
	for _, l := range layers {
		rc, err := l.Uncompressed()
		if err != nil {
			return nil, err
		}
		tr := tar.NewReader(rc)
		for {
			hdr, err := tr.Next()
			if err == io.EOF {
				break
			}
			if err != nil {
				rc.Close()
				return nil, err
			}
			files[strings.TrimSuffix(hdr.Name, "/")] = hdr
		}
		rc.Close()
	}
	return files, nil
}

// Config returns the config of ref's image in the layout.
func Config(layoutDir, ref string) (*v1.ConfigFile, error) {
	idx, err := layout.ImageIndexFromPath(layoutDir)
	if err != nil {
		return nil, err
	}
	h, err := Digest(layoutDir, ref)
	if err != nil {
		return nil, err
	}
	img, err := idx.Image(h)
	if err != nil {
		return nil, err
	}
	return img.ConfigFile()
}
