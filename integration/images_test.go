package integration

import (
	"archive/tar"
	"runtime"
	"strings"
	"testing"

	"github.com/palisade-runtime/palisade/integration/internal/criimages"
)

// TestCritestImages checks the built images against what critest's specs rely
// on (critest-offline.md), so that a recipe mistake shows up here, named, rather
// than as a puzzling critest failure under every handler.
func TestCritestImages(t *testing.T) {
	layout := critestImages(t)
	const (
		busybox = "registry.k8s.io/e2e-test-images/busybox:1.29-2"
		staging = "gcr.io/k8s-staging-cri-tools/"
	)
	digest := func(ref string) string {
		t.Helper()
		h, err := criimages.Digest(layout, ref)
		if err != nil {
			t.Fatal(err)
		}
		return h.String()
	}
	files := func(ref string) map[string]*tar.Header {
		t.Helper()
		f, err := criimages.Files(layout, ref)
		if err != nil {
			t.Fatal(err)
		}
		return f
	}

	// Applets are hard links: masking /bin/ls must not mask the shell.
	bb := files(busybox)
	for _, applet := range []string{"bin/ls", "bin/sh", "usr/bin/id", "bin/pidof", "usr/sbin/brctl", "usr/bin/top"} {
		if h := bb[applet]; h == nil || h.Typeflag != tar.TypeLink || h.Linkname != "bin/busybox" {
			t.Errorf("%s: want a hard link to bin/busybox, got %+v", applet, h)
		}
	}
	for _, f := range []string{"bin/busybox", "usr/bin/ipcs", "usr/bin/pgrep", "lib/x86_64-linux-gnu/libc.so.6", "etc/passwd"} {
		if h := bb[f]; h == nil || h.Typeflag != tar.TypeReg {
			t.Errorf("%s: want a regular file, got %+v", f, h)
		}
	}
	if h := bb["lib64/ld-linux-x86-64.so.2"]; h == nil || h.Typeflag != tar.TypeSymlink {
		t.Errorf("the ELF interpreter's /lib64 link is missing: %+v", h)
	}

	// Tags that must be different images, and tags that must be one image.
	if digest("registry.k8s.io/pause:3.9") == digest(critestSandboxImage) {
		t.Error("pause:3.9 has the sandbox image's digest; the image specs would remove a pinned image")
	}
	distinct := map[string]string{}
	for _, ref := range []string{staging + "test-image-1:latest", staging + "test-image-2:latest",
		staging + "test-image-3:latest", staging + "test-image-latest", staging + "test-image-tag:test"} {
		if other, dup := distinct[digest(ref)]; dup {
			t.Errorf("%s and %s are the same image", ref, other)
		}
		distinct[digest(ref)] = ref
	}
	if a, b := digest(staging+"test-image-tags:1"), digest(staging+"test-image-tags:3"); a != b {
		t.Errorf("test-image-tags:1 and :3 must be one image: %s, %s", a, b)
	}

	// Users, as image config and as /etc entries.
	for ref, want := range map[string]string{
		staging + "test-image-user-uid":                  "1002",
		staging + "test-image-user-username":             "www-data",
		staging + "test-image-user-uid-group":            "1003:1003",
		staging + "test-image-user-username-group":       "www-data:www-data",
		staging + "test-image-predefined-group":          "1000",
		"registry.k8s.io/e2e-test-images/nonewprivs:1.3": "1000",
	} {
		cfg, err := criimages.Config(layout, ref)
		if err != nil {
			t.Fatal(err)
		}
		if cfg.Config.User != want {
			t.Errorf("%s: user %q, want %q", ref, cfg.Config.User, want)
		}
	}
	if h := files("registry.k8s.io/e2e-test-images/nonewprivs:1.3")["usr/local/bin/nnp"]; h == nil || h.Mode&0o4000 == 0 || h.Uid != 0 {
		t.Errorf("nnp must be setuid root: %+v", h)
	}
	for ref, path := range map[string]string{
		"registry.k8s.io/e2e-test-images/nginx:1.14-2":   "usr/sbin/nginx",
		staging + "hostnet-nginx-" + runtime.GOARCH:      "usr/sbin/nginx",
		"registry.k8s.io/e2e-test-images/httpd:2.4.39-4": "usr/local/bin/httpd-foreground",
		critestSandboxImage:                              "pause",
	} {
		if h := files(ref)[path]; h == nil || h.Typeflag != tar.TypeReg || h.Mode&0o111 == 0 {
			t.Errorf("%s: %s must be an executable file: %+v", ref, path, h)
		}
	}
	cfg, err := criimages.Config(layout, staging+"hostnet-nginx-"+runtime.GOARCH)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(strings.Join(cfg.Config.Env, " "), "LISTEN_ADDR=127.0.0.1:12003") {
		t.Errorf("hostnet-nginx must listen on 12003: env %v", cfg.Config.Env)
	}
}
