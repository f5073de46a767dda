package shim

import (
	"context"
	"io"
	"strings"
	"testing"

	contentapi "github.com/containerd/containerd/api/services/content/v1"
	"github.com/opencontainers/go-digest"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
	"google.golang.org/grpc"
)

// fakeContent serves blobs by digest, in chunks, as containerd's Read does.
type fakeContent struct {
	contentapi.ContentClient // only Read is called
	blobs                    map[string][]byte
}

func (f fakeContent) Read(_ context.Context, r *contentapi.ReadContentRequest, _ ...grpc.CallOption) (contentapi.Content_ReadClient, error) {
	return &fakeReadStream{data: f.blobs[r.Digest]}, nil
}

type fakeReadStream struct {
	grpc.ClientStream
	data []byte
}

func (s *fakeReadStream) Recv() (*contentapi.ReadContentResponse, error) {
	if len(s.data) == 0 {
		return nil, io.EOF
	}
	n := min(3, len(s.data))
	r := &contentapi.ReadContentResponse{Data: s.data[:n]}
	s.data = s.data[n:]
	return r, nil
}

// TestBlobReader: whole blobs in one stream, checked against their digest
// and bounded in size.
func TestBlobReader(t *testing.T) {
	good := []byte(`{"schemaVersion":2}`)
	d := digest.FromBytes(good)
	other := digest.FromString("other")
	b := blobReader{fakeContent{blobs: map[string][]byte{d.String(): good, other.String(): good}}}
	ra, err := b.ReaderAt(context.Background(), ocispec.Descriptor{Digest: d, Size: int64(len(good))})
	if err != nil {
		t.Fatal(err)
	}
	buf := make([]byte, ra.Size())
	if _, err := ra.ReadAt(buf, 0); err != nil || string(buf) != string(good) || ra.Close() != nil {
		t.Fatalf("read %q, %v", buf, err)
	}
	for _, c := range []struct {
		desc ocispec.Descriptor
		want string
	}{
		{ocispec.Descriptor{Digest: other, Size: int64(len(good))}, "content has digest " + d.String()},
		{ocispec.Descriptor{Digest: d, Size: maxBlobSize + 1}, "is not in 0.."},
		{ocispec.Descriptor{Digest: "md5:abc", Size: 1}, "md5:abc"},
		{ocispec.Descriptor{Digest: "", Size: 1}, "blob"},
	} {
		if _, err := b.ReaderAt(context.Background(), c.desc); err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%+v: %v, want an error with %q", c.desc, err, c.want)
		}
	}
}
