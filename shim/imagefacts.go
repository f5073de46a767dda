package shim

import (
	"context"
	"errors"
	"fmt"
	"strings"
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
// Candidates for the reference are the CRI annotation (the image as the pod
// spec wrote it, which keeps a digest or a missing tag the user wrote) and
// the container record's image (the image store name containerd made the
// root file system from; ctr's image, or CRI's first name for the image).
// Each is looked up in the image store, and the container's root file
// system snapshot must have been made from that image (the same layer
// chain): a name that is not the container's image, forged in an
// annotation or in the record, is never what gets judged. The first that
// passes is reported. Any failure is returned in Err: the image control
// fails closed on it.
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
	type candidate struct{ ref, source string }
	var cands []candidate
	if a := spec.Annotations[annotation]; a != "" {
		cands = append(cands, candidate{a, "CRI annotation " + annotation + ", checked against the container's snapshot"})
	}
	if rec.Image != "" {
		cands = append(cands, candidate{rec.Image, "containerd container record, checked against the container's snapshot"})
	}
	if len(cands) == 0 {
		f.Err = "the container record names no image and the spec has no " + annotation + " annotation"
		return f
	}
	// The snapshot's parent is asked for while the first candidate is
	// looked up: the two are the longest part of the lookup.
	type parentResult struct {
		parent string
		err    error
	}
	parentCh := make(chan parentResult, 1)
	go func() {
		p, err := store.SnapshotParent(ctx, rec.Snapshotter, rec.SnapshotKey)
		parentCh <- parentResult{p, err}
	}()
	var parent *parentResult
	var failed []string
	for _, c := range cands {
		img, name, err := lookupImage(ctx, store, c.ref)
		if parent == nil {
			r := <-parentCh
			parent = &r
		}
		if parent.err != nil {
			f.Requested = c.ref
			f.Err = fmt.Sprintf("the container's snapshot %q (%s): %v", rec.SnapshotKey, rec.Snapshotter, parent.err)
			return f
		}
		if err == nil && parent.parent != img.ChainID {
			err = fmt.Errorf("the container's root file system is not image %q: its snapshot's parent is %s, the image's layers are %s",
				name, orDash(parent.parent), img.ChainID)
		}
		if err != nil {
			failed = append(failed, err.Error())
			continue
		}
		f.Requested, f.Source, f.Digest = c.ref, c.source, img.Digest
		if len(failed) > 0 {
			f.Source += "; ignored: " + strings.Join(failed, "; ")
		}
		return f
	}
	f.Requested = cands[0].ref
	f.Err = strings.Join(failed, "; ")
	return f
}

// lookupImage finds ref in the image store under the name containerd
// gives it, or as written.
func lookupImage(ctx context.Context, store imageStore, ref string) (storedImage, string, error) {
	name, err := policy.ImageStoreName(ref)
	if err != nil {
		return storedImage{}, ref, err
	}
	img, err := store.Image(ctx, name)
	if errors.Is(err, errdefs.ErrNotFound) && name != ref {
		// A record written by a client that did not normalise.
		img, err = store.Image(ctx, ref)
	}
	if err != nil {
		return storedImage{}, name, fmt.Errorf("image %q in containerd's image store: %w", name, err)
	}
	return img, name, nil
}

func orDash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}
