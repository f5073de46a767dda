package shim

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"sync"

	containersapi "github.com/containerd/containerd/api/services/containers/v1"
	contentapi "github.com/containerd/containerd/api/services/content/v1"
	imagesapi "github.com/containerd/containerd/api/services/images/v1"
	snapshotsapi "github.com/containerd/containerd/api/services/snapshots/v1"
	"github.com/containerd/containerd/v2/core/content"
	"github.com/containerd/containerd/v2/core/images"
	"github.com/containerd/containerd/v2/pkg/namespaces"
	"github.com/containerd/containerd/v2/pkg/oci"
	"github.com/containerd/errdefs/pkg/errgrpc"
	"github.com/containerd/platforms"
	"github.com/opencontainers/image-spec/identity"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
)

// grpcImageStore asks containerd, at the address containerd gave the shim,
// in the shim's namespace. It uses containerd's API services directly
// rather than its client package, which would bring much more code into
// the shim than these calls need. The connection is made at first use
// and kept: a shim serves one pod, whose containers all ask.
type grpcImageStore struct {
	address   string
	namespace string

	mu   sync.Mutex
	conn *grpc.ClientConn // guarded by mu; nil until the first call
}

var _ imageStore = (*grpcImageStore)(nil)

func newGRPCImageStore(address, namespace string) *grpcImageStore {
	return &grpcImageStore{address: address, namespace: namespace}
}

// client returns the connection and ctx with the namespace set.
func (s *grpcImageStore) client(ctx context.Context) (context.Context, *grpc.ClientConn, error) {
	if s.address == "" {
		return nil, nil, fmt.Errorf("containerd's address is unknown to the shim")
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.conn == nil {
		conn, err := grpc.NewClient("unix://"+s.address, grpc.WithTransportCredentials(insecure.NewCredentials()))
		if err != nil {
			return nil, nil, fmt.Errorf("connect to containerd at %s: %w", s.address, err)
		}
		s.conn = conn
	}
	return namespaces.WithNamespace(ctx, s.namespace), s.conn, nil
}

// Connect starts connecting without waiting; a failure shows in the
// first call.
func (s *grpcImageStore) Connect() {
	if _, conn, err := s.client(context.Background()); err == nil {
		conn.Connect()
	}
}

// Close drops the connection.
func (s *grpcImageStore) Close() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.conn == nil {
		return nil
	}
	err := s.conn.Close()
	s.conn = nil
	return err
}

func (s *grpcImageStore) Container(ctx context.Context, id string) (containerRecord, error) {
	ctx, conn, err := s.client(ctx)
	if err != nil {
		return containerRecord{}, err
	}
	r, err := containersapi.NewContainersClient(conn).Get(ctx, &containersapi.GetContainerRequest{ID: id})
	if err != nil {
		return containerRecord{}, errgrpc.ToNative(err)
	}
	c := r.GetContainer()
	_, sandbox := c.GetExtensions()[criSandboxExtension]
	return containerRecord{Image: c.GetImage(), Snapshotter: c.GetSnapshotter(), SnapshotKey: c.GetSnapshotKey(), CRISandbox: sandbox}, nil
}

// Image reads the image's target, and its manifest and config for this
// machine's platform from the content store, as containerd does when it
// unpacks the image for a container.
func (s *grpcImageStore) Image(ctx context.Context, name string) (storedImage, error) {
	ctx, conn, err := s.client(ctx)
	if err != nil {
		return storedImage{}, err
	}
	r, err := imagesapi.NewImagesClient(conn).Get(ctx, &imagesapi.GetImageRequest{Name: name})
	if err != nil {
		return storedImage{}, errgrpc.ToNative(err)
	}
	target := oci.DescriptorFromProto(r.GetImage().GetTarget())
	content := blobReader{contentapi.NewContentClient(conn)}
	config, err := images.Config(ctx, content, target, platforms.Default())
	if err != nil {
		return storedImage{}, fmt.Errorf("manifest for %s: %w", platforms.DefaultString(), err)
	}
	diffIDs, err := images.RootFS(ctx, content, config)
	if err != nil {
		return storedImage{}, fmt.Errorf("image config: %w", err)
	}
	return storedImage{Digest: target.Digest.String(), ChainID: identity.ChainID(diffIDs).String()}, nil
}

// maxBlobSize bounds the manifests, indexes and configs read: real ones
// are a few KiB.
const maxBlobSize = 4 << 20

// blobReader reads whole blobs from containerd's content store in one Read
// stream each, where the proxy content store asks for the blob's Info
// first; the descriptors come from containerd's own image store and give
// the size. The content is checked against its digest.
type blobReader struct{ client contentapi.ContentClient }

func (b blobReader) ReaderAt(ctx context.Context, desc ocispec.Descriptor) (content.ReaderAt, error) {
	if desc.Size < 0 || desc.Size > maxBlobSize {
		return nil, fmt.Errorf("blob %s: size %d is not in 0..%d", desc.Digest, desc.Size, maxBlobSize)
	}
	if err := desc.Digest.Validate(); err != nil { // an unknown algorithm would panic below
		return nil, fmt.Errorf("blob %q: %w", desc.Digest, err)
	}
	ctx, cancel := context.WithCancel(ctx) // ends the stream however the read ends
	defer cancel()
	stream, err := b.client.Read(ctx, &contentapi.ReadContentRequest{Digest: desc.Digest.String()})
	if err != nil {
		return nil, errgrpc.ToNative(err)
	}
	buf := make([]byte, 0, desc.Size)
	for {
		r, err := stream.Recv()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return nil, errgrpc.ToNative(err)
		}
		if len(buf)+len(r.GetData()) > maxBlobSize {
			return nil, fmt.Errorf("blob %s: larger than %d bytes", desc.Digest, maxBlobSize)
		}
		buf = append(buf, r.GetData()...)
	}
	if got := desc.Digest.Algorithm().FromBytes(buf); got != desc.Digest {
		return nil, fmt.Errorf("blob %s: content has digest %s", desc.Digest, got)
	}
	return blob{bytes.NewReader(buf)}, nil
}

// blob is a blob read into memory, as content.ReaderAt.
type blob struct{ *bytes.Reader }

func (blob) Close() error { return nil }

func (s *grpcImageStore) SnapshotParent(ctx context.Context, snapshotter, key string) (string, error) {
	ctx, conn, err := s.client(ctx)
	if err != nil {
		return "", err
	}
	r, err := snapshotsapi.NewSnapshotsClient(conn).Stat(ctx, &snapshotsapi.StatSnapshotRequest{Snapshotter: snapshotter, Key: key})
	if err != nil {
		return "", errgrpc.ToNative(err)
	}
	return r.GetInfo().GetParent(), nil
}
