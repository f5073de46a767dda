package criimages

import (
	"archive/tar"
	"bytes"
	"fmt"
	"io"
	"maps"
	"path"
	"slices"
	"strings"
	"time"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/tarball"
	"github.com/google/go-containerregistry/pkg/v1/types"
)

// epoch is every file's mtime, so that a rebuild from the same packages gives the
// same layer digests.
var epoch = time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)

// entry is one file of a layer. Paths are absolute inside the image.
type entry struct {
	typ      byte   // tar.TypeReg, TypeDir, TypeSymlink or TypeLink
	mode     int64  // permission bits, with setuid/setgid/sticky
	data     []byte // TypeReg
	link     string // TypeSymlink: the target as written; TypeLink: the absolute path linked to
	uid, gid int
}

// tree is the content of one layer, built up in memory. Parent directories are
// created implicitly with mode 0755.
type tree map[string]*entry

func (t tree) add(p string, e *entry) {
	p = path.Clean("/" + p)
	for d := path.Dir(p); d != "/"; d = path.Dir(d) {
		if _, ok := t[d]; !ok {
			t[d] = &entry{typ: tar.TypeDir, mode: 0o755}
		}
	}
	t[p] = e
}

func (t tree) dir(p string, mode int64) { t.add(p, &entry{typ: tar.TypeDir, mode: mode}) }

func (t tree) file(p string, data []byte, mode int64) {
	t.add(p, &entry{typ: tar.TypeReg, mode: mode, data: data})
}

func (t tree) symlink(p, target string) {
	t.add(p, &entry{typ: tar.TypeSymlink, mode: 0o777, link: target})
}

// hardlink makes p another name of the regular file target, which must be in t.
func (t tree) hardlink(p, target string) {
	t.add(p, &entry{typ: tar.TypeLink, mode: 0o755, link: target})
}

// tarball writes t as an uncompressed tar: directories, files and symlinks in path
// order (so parents come first), then hard links, whose targets must already have
// been written for an extractor to link them.
func (t tree) tarball() ([]byte, error) {
	paths := slices.Sorted(maps.Keys(t))
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	for _, links := range []bool{false, true} {
		for _, p := range paths {
			e := t[p]
			if (e.typ == tar.TypeLink) != links {
				continue
			}
			h := &tar.Header{
				Typeflag: e.typ,
				Name:     strings.TrimPrefix(p, "/"),
				Mode:     e.mode,
				Uid:      e.uid,
				Gid:      e.gid,
				ModTime:  epoch,
				Format:   tar.FormatPAX,
			}
			switch e.typ {
			case tar.TypeDir:
				h.Name += "/"
			case tar.TypeReg:
				h.Size = int64(len(e.data))
			case tar.TypeSymlink:
				h.Linkname = e.link
			case tar.TypeLink:
				target, ok := t[e.link]
				if !ok || target.typ != tar.TypeReg {
					return nil, fmt.Errorf("hard link %s: target %s is not a regular file of this layer", p, e.link)
				}
				h.Linkname = strings.TrimPrefix(e.link, "/")
			default:
				return nil, fmt.Errorf("%s: unsupported entry type %q", p, e.typ)
			}
			if err := tw.WriteHeader(h); err != nil {
				return nil, err
			}
			if _, err := tw.Write(e.data); err != nil {
				return nil, err
			}
		}
	}
	if err := tw.Close(); err != nil {
		return nil, err
	}
	return buf.Bytes(), nil
}

// layer turns t into a gzip-compressed OCI layer.
func (t tree) layer() (v1.Layer, error) {
	b, err := t.tarball()
	if err != nil {
		return nil, err
	}
	return tarball.LayerFromOpener(func() (io.ReadCloser, error) {
		return io.NopCloser(bytes.NewReader(b)), nil
	}, tarball.WithMediaType(types.OCILayer))
}
