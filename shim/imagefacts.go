package shim

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/containerd/errdefs"
	specs "github.com/opencontainers/runtime-spec/specs-go"

	"github.com/palisade-runtime/palisade/policy"
)

// Annotations containerd's CRI writes into a container's spec. They are
// the pod author's words (the image as the pod spec wrote it) and any
// client can set them, so they name what to look up, never what to trust.
const (
	criImageAnnotation        = "io.kubernetes.cri.image-name"
	criSandboxImageAnnotation = "io.kubernetes.cri.podsandbox.image-name"
	// criSandboxExtension is the container record extension containerd's
	// CRI gives a pod's sandbox (pause) container. Only a containerd API
	// client can set it; ctr cannot.
	criSandboxExtension = "io.cri-containerd.sandbox.metadata"
)

// imageLookupTimeout bounds the questions to containerd at Create, when
// the request brings no sooner deadline.
const imageLookupTimeout = 10 * time.Second

// containerRecord is what the image control needs of containerd's record
// of a container.
type containerRecord struct {
	Image       string // the image name the client gave (ctr, WithImage); CRI leaves it empty
	Snapshotter string
	SnapshotKey string // "" when the root file system is a directory (ctr --rootfs)
	CRISandbox  bool   // the record carries CRI's sandbox metadata
}

// storedImage is what containerd's image store says about one name.
type storedImage struct {
	Digest  string // the target descriptor's digest
	ChainID string // the chain ID of its layers for this platform: a snapshot of it has this parent
}

// imageStore is the part of containerd the image control asks. The real
// one talks to containerd over its gRPC API (imagestore_grpc.go); tests
// give a fake.
type imageStore interface {
	Container(ctx context.Context, id string) (containerRecord, error)
	Image(ctx context.Context, name string) (storedImage, error)
	SnapshotParent(ctx context.Context, snapshotter, key string) (string, error)
}

// resolveImage finds out, from containerd, which image container id runs.
// The reference it reports is the container record's image, or (CRI
// leaves the record's empty) the CRI annotation; either is looked up in
// the image store, and the container's root file system snapshot must
// have been made from that image (same layer chain), so a name that is not
// the container's image, forged in an annotation or in the record, is
// refused rather than judged. Any failure is returned in Err: the image
// control fails closed on it.
func resolveImage(ctx context.Context, store imageStore, id string, spec *specs.Spec) *policy.ImageFacts {
	if _, ok := ctx.Deadline(); !ok {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, imageLookupTimeout)
		defer cancel()
	}
	f := &policy.ImageFacts{}
	rec, err := store.Container(ctx, id)
	if err != nil {
		f.Err = fmt.Sprintf("container record %q: %v", id, err)
		return f
	}
	f.Sandbox = rec.CRISandbox
	if rec.SnapshotKey == "" {
		// Whatever the record's image says, the root file system is a
		// directory the client chose, not a snapshot of that image.
		f.Rootfs = true
		return f
	}
	annotation := criImageAnnotation
	if rec.CRISandbox {
		annotation = criSandboxImageAnnotation
	}
	switch {
	case rec.Image != "":
		f.Requested, f.Source = rec.Image, "containerd container record"
	case spec.Annotations[annotation] != "":
		f.Requested, f.Source = spec.Annotations[annotation], "CRI annotation "+annotation+", checked against the container's snapshot"
	default:
		f.Err = "the container record names no image and the spec has no " + annotation + " annotation"
		return f
	}
	name, err := policy.ImageStoreName(f.Requested)
	if err != nil {
		f.Err = err.Error()
		return f
	}
	img, err := store.Image(ctx, name)
	if errors.Is(err, errdefs.ErrNotFound) && name != f.Requested {
		// A record written by a client that did not normalise.
		img, err = store.Image(ctx, f.Requested)
	}
	if err != nil {
		f.Err = fmt.Sprintf("image %q in containerd's image store: %v", name, err)
		return f
	}
	parent, err := store.SnapshotParent(ctx, rec.Snapshotter, rec.SnapshotKey)
	if err != nil {
		f.Err = fmt.Sprintf("the container's snapshot %q (%s): %v", rec.SnapshotKey, rec.Snapshotter, err)
		return f
	}
	if parent != img.ChainID {
		f.Err = fmt.Sprintf("the container's root file system is not image %q: its snapshot's parent is %s, the image's layers are %s",
			name, orDash(parent), img.ChainID)
		return f
	}
	f.Digest = img.Digest
	return f
}

func orDash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}
