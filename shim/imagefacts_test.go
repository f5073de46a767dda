package shim

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/containerd/errdefs"
	"github.com/containerd/log"
	specs "github.com/opencontainers/runtime-spec/specs-go"

	"github.com/palisade-runtime/palisade/policy"
	"github.com/palisade-runtime/palisade/sandbox/runsc"
)

const (
	recordSource  = "containerd container record, checked against the container's snapshot"
	digestAllowed = "sha256:1111111111111111111111111111111111111111111111111111111111111111"
	digestDenied  = "sha256:2222222222222222222222222222222222222222222222222222222222222222"
	chainAllowed  = "sha256:aaaa"
	chainDenied   = "sha256:dddd"
)

// fakeStore is containerd as the image control sees it: records by
// container ID, images by name, snapshot parents by key.
type fakeStore struct {
	containers map[string]containerRecord
	images     map[string]storedImage
	parents    map[string]string
	down       error // every call fails with it
	asked      []string
}

func (f *fakeStore) Container(_ context.Context, id string) (containerRecord, error) {
	f.asked = append(f.asked, "container "+id)
	if f.down != nil {
		return containerRecord{}, f.down
	}
	c, ok := f.containers[id]
	if !ok {
		return c, fmt.Errorf("container %q: %w", id, errdefs.ErrNotFound)
	}
	return c, nil
}

func (f *fakeStore) Image(_ context.Context, name string) (storedImage, error) {
	f.asked = append(f.asked, "image "+name)
	i, ok := f.images[name]
	if !ok {
		return i, fmt.Errorf("image %q: %w", name, errdefs.ErrNotFound)
	}
	return i, nil
}

func (f *fakeStore) SnapshotParent(_ context.Context, _, key string) (string, error) {
	p, ok := f.parents[key]
	if !ok {
		return "", fmt.Errorf("snapshot %q: %w", key, errdefs.ErrNotFound)
	}
	return p, nil
}

func newFakeStore() *fakeStore {
	return &fakeStore{
		containers: map[string]containerRecord{
			"ctr-allowed":  {Image: "registry.example.com/app:1", Snapshotter: "overlayfs", SnapshotKey: "ctr-allowed"},
			"ctr-denied":   {Image: "registry.example.com/bad/app:1", Snapshotter: "overlayfs", SnapshotKey: "ctr-denied"},
			"ctr-rootfs":   {Image: "registry.example.com/app:1"}, // an image name, but a directory for rootfs
			"cri-app":      {Snapshotter: "overlayfs", SnapshotKey: "cri-app"},
			"cri-forged":   {Snapshotter: "overlayfs", SnapshotKey: "cri-forged"},
			"cri-pause":    {Snapshotter: "overlayfs", SnapshotKey: "cri-pause", CRISandbox: true},
			"cri-noanno":   {Snapshotter: "overlayfs", SnapshotKey: "cri-noanno"},
			"ctr-unnormal": {Image: "app:1", Snapshotter: "overlayfs", SnapshotKey: "ctr-unnormal"},
		},
		images: map[string]storedImage{
			"registry.example.com/app@" + digestAllowed: {Digest: digestAllowed, ChainID: chainAllowed},
			"registry.example.com/app:1":                {Digest: digestAllowed, ChainID: chainAllowed},
			"registry.example.com/bad/app:1":            {Digest: digestDenied, ChainID: chainDenied},
			"registry.k8s.io/pause:3.10":                {Digest: digestAllowed, ChainID: "sha256:pause"},
			"app:1":                                     {Digest: digestAllowed, ChainID: chainAllowed},
			"docker.io/library/app:1@" + "bad":          {},
		},
		parents: map[string]string{
			"ctr-allowed": chainAllowed, "ctr-denied": chainDenied, "cri-app": chainAllowed,
			"cri-forged": chainDenied, "cri-pause": "sha256:pause", "cri-noanno": chainAllowed, "ctr-unnormal": chainAllowed,
		},
	}
}

func TestResolveImage(t *testing.T) {
	store := newFakeStore()
	anno := func(k, v string) *specs.Spec { return &specs.Spec{Annotations: map[string]string{k: v}} }
	for _, c := range []struct {
		id   string
		spec *specs.Spec
		want policy.ImageFacts
		err  string
	}{
		{id: "ctr-allowed", spec: &specs.Spec{}, want: policy.ImageFacts{Requested: "registry.example.com/app:1",
			Source: recordSource, Digest: digestAllowed}},
		// A forged annotation on a ctr container: the record's image counts.
		{id: "ctr-denied", spec: anno(criImageAnnotation, "registry.example.com/app:1"),
			want: policy.ImageFacts{Requested: "registry.example.com/bad/app:1", Digest: digestDenied,
				Source: recordSource + `; ignored: the container's root file system is not image "registry.example.com/app:1": its snapshot's parent is sha256:dddd, the image's layers are sha256:aaaa`}},
		// CRI writes both; the annotation keeps what the user wrote.
		{id: "ctr-allowed", spec: anno(criImageAnnotation, "registry.example.com/app:1@"+digestAllowed),
			want: policy.ImageFacts{Requested: "registry.example.com/app:1@" + digestAllowed, Digest: digestAllowed,
				Source: "CRI annotation io.kubernetes.cri.image-name, checked against the container's snapshot"}},
		{id: "ctr-rootfs", spec: &specs.Spec{}, want: policy.ImageFacts{Rootfs: true}},
		// CRI: the record has no image; the annotation is checked against
		// the snapshot.
		{id: "cri-app", spec: anno(criImageAnnotation, "registry.example.com/app:1"),
			want: policy.ImageFacts{Requested: "registry.example.com/app:1", Digest: digestAllowed,
				Source: "CRI annotation io.kubernetes.cri.image-name, checked against the container's snapshot"}},
		{id: "cri-forged", spec: anno(criImageAnnotation, "registry.example.com/app:1"),
			err: "the container's root file system is not image \"registry.example.com/app:1\""},
		{id: "cri-pause", spec: anno(criSandboxImageAnnotation, "registry.k8s.io/pause:3.10"),
			want: policy.ImageFacts{Requested: "registry.k8s.io/pause:3.10", Digest: digestAllowed, Sandbox: true,
				Source: "CRI annotation io.kubernetes.cri.podsandbox.image-name, checked against the container's snapshot"}},
		// The pause container's image is not read from the container one's
		// annotation, whoever set it.
		{id: "cri-pause", spec: anno(criImageAnnotation, "registry.k8s.io/pause:3.10"), err: "no io.kubernetes.cri.podsandbox.image-name annotation"},
		{id: "cri-noanno", spec: &specs.Spec{}, err: "names no image"},
		{id: "cri-app", spec: anno(criImageAnnotation, "registry.example.com/other:1"), err: "not found"},
		{id: "cri-app", spec: anno(criImageAnnotation, "sha256:"+strings.Repeat("a", 64)), err: "image ID"},
		{id: "gone", spec: &specs.Spec{}, err: "container record \"gone\""},
		// A name as the client wrote it, not normalised, is found as such.
		{id: "ctr-unnormal", spec: &specs.Spec{}, want: policy.ImageFacts{Requested: "app:1", Source: recordSource, Digest: digestAllowed}},
	} {
		got := resolveImage(context.Background(), store, c.id, c.spec)
		if c.err != "" {
			if !strings.Contains(got.Err, c.err) {
				t.Errorf("%s: Err %q, want it to say %q (%+v)", c.id, got.Err, c.err, got)
			}
			continue
		}
		if *got != c.want {
			t.Errorf("%s:\n got %+v\nwant %+v", c.id, *got, c.want)
		}
	}
	store.down = errors.New("connection refused")
	if got := resolveImage(context.Background(), store, "ctr-allowed", &specs.Spec{}); !strings.Contains(got.Err, "connection refused") {
		t.Errorf("containerd down: %+v", got)
	}
}

// TestEnforceBundleImagePolicy: the whole edge. A refusal names the image,
// the rule and the handler, and is PermissionDenied; containerd that
// cannot be asked refuses too; the record of an allowed container names the
// digest and the rule; a handler without an image policy asks nothing.
func TestEnforceBundleImagePolicy(t *testing.T) {
	cfg, err := ParseConfig([]byte(`
[handlers.pinned]
backend = "runsc"
[handlers.pinned.policy.images]
allow = ["registry.example.com/**"]
deny = ["registry.example.com/bad/**"]
deny_latest = true
[handlers.open]
backend = "runsc"
`))
	if err != nil {
		t.Fatal(err)
	}
	state := func(name string, store imageStore) *handlerState {
		_, h, err := cfg.Handler(name)
		if err != nil {
			t.Fatal(err)
		}
		floor, err := loadFloor(h.Policy)
		if err != nil {
			t.Fatal(err)
		}
		st := &handlerState{name: name, handler: h, floor: floor, support: runsc.Support("")}
		if floor.HasImagePolicy() {
			st.images = store
		}
		return st
	}
	bundle := func(t *testing.T, annotations map[string]string) string {
		dir := t.TempDir()
		data, err := json.Marshal(&specs.Spec{Version: specs.Version, Process: &specs.Process{Args: []string{"sh"}},
			Root: &specs.Root{Path: "rootfs"}, Annotations: annotations, Linux: &specs.Linux{Namespaces: []specs.LinuxNamespace{
				{Type: specs.PIDNamespace}, {Type: specs.IPCNamespace}, {Type: specs.UTSNamespace},
				{Type: specs.MountNamespace}, {Type: specs.NetworkNamespace}}}})
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(dir, "config.json"), data, 0o600); err != nil {
			t.Fatal(err)
		}
		return dir
	}
	ctx := context.Background()
	store := newFakeStore()
	l := log.L.Logger
	out := l.Out
	l.SetOutput(io.Discard) // the per-container info line
	t.Cleanup(func() { l.SetOutput(out) })

	_, err = enforceBundle(ctx, state("pinned", store), "ctr-denied", bundle(t, map[string]string{criImageAnnotation: "registry.example.com/app:1"}))
	if !errors.Is(err, errdefs.ErrPermissionDenied) {
		t.Fatalf("denied image: %v, want PermissionDenied", err)
	}
	for _, want := range []string{`handler "pinned"`, `image "registry.example.com/bad/app:1"`, `policy.images.deny[0] "registry.example.com/bad/**"`, digestDenied} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("refusal lacks %q: %v", want, err)
		}
	}
	_, err = enforceBundle(ctx, state("pinned", store), "ctr-rootfs", bundle(t, nil))
	if err == nil || !strings.Contains(err.Error(), "allow_rootfs = false") {
		t.Errorf("rootfs: %v", err)
	}
	down := newFakeStore()
	down.down = errors.New("connection refused")
	_, err = enforceBundle(ctx, state("pinned", down), "ctr-allowed", bundle(t, nil))
	if err == nil || !strings.Contains(err.Error(), "not confirmed by containerd") || !strings.Contains(err.Error(), "connection refused") {
		t.Errorf("containerd down: %v, want a refusal", err)
	}

	dir := bundle(t, nil)
	d, err := enforceBundle(ctx, state("pinned", store), "ctr-allowed", dir)
	if err != nil {
		t.Fatal(err)
	}
	var img *policy.Control
	for i := range d.Controls {
		if d.Controls[i].Name == policy.ControlImage {
			img = &d.Controls[i]
		}
	}
	if img == nil || !strings.Contains(img.Effective, digestAllowed) || !strings.Contains(img.Effective, `allow[0] "registry.example.com/**"`) ||
		!strings.Contains(img.Requested, "registry.example.com/app:1") {
		t.Errorf("image control: %+v", img)
	}
	record, err := os.ReadFile(filepath.Join(dir, DecisionFile))
	if err != nil || !strings.Contains(string(record), `"name": "image"`) {
		t.Errorf("decision record: %v\n%s", err, record)
	}

	asked := len(store.asked)
	d, err = enforceBundle(ctx, state("open", store), "ctr-denied", bundle(t, nil))
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range d.Controls {
		if c.Name == policy.ControlImage {
			t.Errorf("a handler without an image policy records an image control: %+v", c)
		}
	}
	if len(store.asked) != asked {
		t.Errorf("a handler without an image policy asked containerd: %q", store.asked[asked:])
	}
}

// TestResolveImageContainerdUnreachable: the real client, with no
// containerd behind the address, fails fast and closed.
func TestResolveImageContainerdUnreachable(t *testing.T) {
	for _, addr := range []string{filepath.Join(t.TempDir(), "no-containerd.sock"), ""} {
		store := newGRPCImageStore(addr, "default")
		start := time.Now()
		got := resolveImage(context.Background(), store, "c1", &specs.Spec{})
		if got.Err == "" || got.Digest != "" {
			t.Errorf("address %q: %+v, want an error", addr, got)
		}
		if d := time.Since(start); d > 5*time.Second {
			t.Errorf("address %q: took %v", addr, d)
		}
		if err := store.Close(); err != nil {
			t.Error(err)
		}
	}
}
