package criimages

import (
	"archive/tar"
	"bytes"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/types"
)

// builder assembles the images from the extracted packages (root) and the built
// programs (progs).
type builder struct {
	root, progs string
}

// built is one image and every upstream reference it is pushed as.
type built struct {
	refs []string
	img  v1.Image
}

const (
	e2e     = "registry.k8s.io/e2e-test-images/"
	staging = "gcr.io/k8s-staging-cri-tools/"
)

// recipe is the table of critest-offline.md. Where critest needs tags to be
// different images, the images differ in content (a file named after the image, as
// upstream's image-test Dockerfile does) or in config (pause:3.9's label).
func (b *builder) recipe() ([]built, error) {
	base, err := b.busybox()
	if err != nil {
		return nil, err
	}
	layer := func(t tree) v1.Layer {
		l, lerr := t.layer()
		if lerr != nil && err == nil {
			err = lerr
		}
		return l
	}
	prog := func(name string) []byte {
		data, rerr := os.ReadFile(filepath.Join(b.progs, name))
		if rerr != nil && err == nil {
			err = rerr
		}
		return data
	}
	pause := tree{}
	pause.file("/pause", prog("pause"), 0o755)
	pauseLayer := layer(pause)
	pauseCfg := v1.Config{Entrypoint: []string{"/pause"}, User: "65535:65535"}

	web := func(p string) v1.Layer {
		t := tree{}
		t.file(p, prog("webserver"), 0o755)
		return layer(t)
	}
	nginx := web("/usr/sbin/nginx")
	nginxCfg := v1.Config{Cmd: []string{"nginx", "-g", "daemon off;"}}
	// The hostnet spec reaches it on 127.0.0.1:12003 only; binding loopback keeps a
	// host-network listener off the machine's other interfaces.
	hostnetCfg := nginxCfg
	hostnetCfg.Env = []string{"LISTEN_ADDR=127.0.0.1:12003"}

	nnp := tree{}
	nnp.add("/usr/local/bin/nnp", &entry{typ: tar.TypeReg, mode: 0o4755, data: prog("nonewprivs")})

	group := tree{}
	group.file("/etc/passwd", []byte(passwd+"default-user:x:1000:1000:Linux User,,,:/home/default-user:/bin/sh\n"), 0o644)
	group.file("/etc/group", []byte(groups+"default-user:x:1000:\ngroup-defined-in-image:x:50000:default-user\n"), 0o644)
	group.add("/home/default-user", &entry{typ: tar.TypeDir, mode: 0o755, uid: 1000, gid: 1000})

	named := func(file string) v1.Layer {
		t := tree{}
		t.file("/"+file, nil, 0o644)
		return layer(t)
	}
	sh := v1.Config{Cmd: []string{"sh"}}
	user := func(u string) v1.Config { return v1.Config{Cmd: []string{"sh"}, User: u} }

	specs := []struct {
		refs   []string
		base   bool // on the busybox layer
		layers []v1.Layer
		cfg    v1.Config
	}{
		{refs: []string{"registry.k8s.io/pause:3.10.2", "registry.k8s.io/pause:3.10.1", "registry.k8s.io/pause:3.10"},
			layers: []v1.Layer{pauseLayer}, cfg: pauseCfg},
		// Not the sandbox image: the image specs remove it, which a pinned sandbox
		// image would refuse. k8s.gcr.io/pause:3.9 is the same repository on the mirror.
		{refs: []string{"registry.k8s.io/pause:3.9"}, layers: []v1.Layer{pauseLayer},
			cfg: withLabel(pauseCfg, "io.palisade.critest.image", "pause-3.9")},
		{refs: []string{e2e + "busybox:1.29-2"}, base: true, cfg: sh},
		{refs: []string{e2e + "nginx:1.14-2"}, base: true, layers: []v1.Layer{nginx}, cfg: nginxCfg},
		{refs: []string{staging + "hostnet-nginx-" + runtime.GOARCH}, base: true, layers: []v1.Layer{nginx}, cfg: hostnetCfg},
		{refs: []string{e2e + "httpd:2.4.39-4"}, base: true, layers: []v1.Layer{web("/usr/local/bin/httpd-foreground")},
			cfg: v1.Config{Cmd: []string{"httpd-foreground"}}},
		{refs: []string{e2e + "nonewprivs:1.3"}, base: true, layers: []v1.Layer{layer(nnp)},
			cfg: v1.Config{Cmd: []string{"/usr/local/bin/nnp"}, User: "1000"}},
		{refs: []string{staging + "test-image-latest"}, base: true, layers: []v1.Layer{named("test-image-latest")}, cfg: sh},
		{refs: []string{staging + "test-image-1:latest"}, base: true, layers: []v1.Layer{named("test-image-1")}, cfg: sh},
		{refs: []string{staging + "test-image-2:latest"}, base: true, layers: []v1.Layer{named("test-image-2")}, cfg: sh},
		{refs: []string{staging + "test-image-3:latest"}, base: true, layers: []v1.Layer{named("test-image-3")}, cfg: sh},
		{refs: []string{staging + "test-image-tag:test", staging + "test-image-tag:all"}, base: true,
			layers: []v1.Layer{named("test-image-tag")}, cfg: sh},
		{refs: []string{staging + "test-image-tags:1", staging + "test-image-tags:2", staging + "test-image-tags:3"},
			base: true, layers: []v1.Layer{named("same-image")}, cfg: sh},
		{refs: []string{staging + "test-image-user-uid"}, base: true, cfg: user("1002")},
		{refs: []string{staging + "test-image-user-username"}, base: true, cfg: user("www-data")},
		{refs: []string{staging + "test-image-user-uid-group"}, base: true, cfg: user("1003:1003")},
		{refs: []string{staging + "test-image-user-username-group"}, base: true, cfg: user("www-data:www-data")},
		{refs: []string{staging + "test-image-predefined-group"}, base: true, layers: []v1.Layer{layer(group)}, cfg: user("1000")},
	}
	if err != nil {
		return nil, err
	}
	var out []built
	for _, s := range specs {
		layers := s.layers
		if s.base {
			layers = append([]v1.Layer{base}, layers...)
		}
		img, err := image(layers, s.cfg)
		if err != nil {
			return nil, fmt.Errorf("%v: %w", s.refs, err)
		}
		out = append(out, built{refs: s.refs, img: img})
	}
	return out, nil
}

func withLabel(c v1.Config, k, v string) v1.Config {
	c.Labels = map[string]string{k: v}
	return c
}

// image makes an OCI image of layers with cfg, for linux on this architecture.
func image(layers []v1.Layer, cfg v1.Config) (v1.Image, error) {
	cfg.Env = append([]string{"PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"}, cfg.Env...)
	img := mutate.MediaType(empty.Image, types.OCIManifestSchema1)
	img = mutate.ConfigMediaType(img, types.OCIConfigJSON)
	img, err := mutate.ConfigFile(img, &v1.ConfigFile{
		Architecture: runtime.GOARCH,
		OS:           "linux",
		Created:      v1.Time{Time: epoch},
		Config:       cfg,
	})
	if err != nil {
		return nil, err
	}
	for _, l := range layers {
		img, err = mutate.Append(img, mutate.Addendum{
			Layer:   l,
			History: v1.History{Created: v1.Time{Time: epoch}, CreatedBy: "palisade integration/internal/criimages"},
		})
		if err != nil {
			return nil, err
		}
	}
	return img, nil
}

// The users and groups of the upstream busybox image; critest runs as nobody and
// www-data by name.
const (
	passwd = `root:x:0:0:root:/root:/bin/sh
daemon:x:1:1:daemon:/usr/sbin:/bin/false
bin:x:2:2:bin:/bin:/bin/false
sys:x:3:3:sys:/dev:/bin/false
sync:x:4:100:sync:/bin:/bin/sync
mail:x:8:8:mail:/var/spool/mail:/bin/false
www-data:x:33:33:www-data:/var/www:/bin/false
operator:x:37:37:Operator:/var:/bin/false
nobody:x:65534:65534:nobody:/home:/bin/false
`
	groups = `root:x:0:
daemon:x:1:
bin:x:2:
sys:x:3:
adm:x:4:
tty:x:5:
disk:x:6:
wheel:x:10:root
mail:x:8:
www-data:x:33:
operator:x:37:
staff:x:50:
users:x:100:
nogroup:x:65534:
`
	// glibc reads passwd and group through NSS; name the files backend so no
	// other module (and no network lookup) is ever tried.
	nsswitch = "passwd: files\ngroup: files\nshadow: files\nhosts: files dns\n"

	// pgrep is not a busybox applet. critest runs `pgrep sleep || true` and wants
	// no output once an exec'd sleep was killed; this matches an extended regex
	// against each process name, as procps pgrep does by default.
	pgrep = `#!/bin/sh
[ $# -eq 1 ] || { echo "usage: pgrep PATTERN" >&2; exit 2; }
status=1
for d in /proc/[0-9]*; do
	pid=${d#/proc/}
	[ "$pid" = "$$" ] && continue
	comm=$(cat "$d/comm" 2>/dev/null) || continue
	if echo "$comm" | grep -Eq -- "$1"; then
		echo "$pid"
		status=0
	fi
done
exit $status
`
)

// busybox is the shared base layer: Debian's dynamic busybox with every applet as
// a hard link (critest masks /bin/ls; a symlink would mask busybox itself), the C
// library it needs, util-linux's ipcs, the pgrep script, users and groups.
func (b *builder) busybox() (v1.Layer, error) {
	t := tree{}
	if err := copyELF(t, b.root, "/bin/busybox", 0o755); err != nil {
		return nil, err
	}
	if err := copyELF(t, b.root, "/usr/bin/ipcs", 0o755); err != nil {
		return nil, err
	}
	applets, err := b.applets()
	if err != nil {
		return nil, err
	}
	for _, a := range applets {
		if _, taken := t[a]; !taken {
			t.hardlink(a, "/bin/busybox")
		}
	}
	t.file("/usr/bin/pgrep", []byte(pgrep), 0o755)
	t.file("/etc/passwd", []byte(passwd), 0o644)
	t.file("/etc/group", []byte(groups), 0o644)
	t.file("/etc/nsswitch.conf", []byte(nsswitch), 0o644)
	for _, d := range []string{"/dev", "/proc", "/sys", "/run", "/var/run", "/var/www", "/home", "/usr/local/bin"} {
		t.dir(d, 0o755)
	}
	t.dir("/root", 0o700)
	t.dir("/tmp", 0o1777)
	return t.layer()
}

// applets asks the extracted busybox, through the extracted dynamic loader, where
// each applet belongs ("bin/ls", "usr/bin/id"). The host's libc is not used.
func (b *builder) applets() ([]string, error) {
	lib := filepath.Join(b.root, "lib/x86_64-linux-gnu")
	cmd := exec.Command(filepath.Join(lib, "ld-linux-x86-64.so.2"), "--library-path", lib,
		filepath.Join(b.root, "bin/busybox"), "--list-full")
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		return nil, fmt.Errorf("busybox --list-full: %w: %s", err, stderr.String())
	}
	var applets []string
	for _, line := range strings.Fields(string(out)) {
		// Applets without a directory (linuxrc) belong in / and none of critest's
		// commands use them.
		if strings.Contains(line, "/") {
			applets = append(applets, "/"+line)
		}
	}
	if len(applets) < 100 {
		return nil, fmt.Errorf("busybox --list-full listed %d applets; is this the full Debian busybox?", len(applets))
	}
	return applets, nil
}
