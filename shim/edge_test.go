package shim

import (
	"fmt"
	"strings"
	"testing"

	"github.com/containerd/errdefs"
	"github.com/containerd/errdefs/pkg/errgrpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/palisade-runtime/palisade/policy"
)

func TestToTTRPCKeepsKindAndOneMessage(t *testing.T) {
	inner := fmt.Errorf("%w: process.capabilities.bounding: CAP_SYS_ADMIN above ceiling", policy.ErrRefused)
	for _, tc := range []struct {
		err  error
		code codes.Code
	}{
		{policyError(inner), codes.PermissionDenied},
		{invalid(fmt.Errorf("handlers.x.runsc.platform: bad")), codes.InvalidArgument},
		{fmt.Errorf("container c: %w", errdefs.ErrNotFound), codes.NotFound},
		{fmt.Errorf("plain"), codes.Unknown},
	} {
		got := toTTRPC(tc.err)
		st, ok := status.FromError(got)
		if !ok || st.Code() != tc.code {
			t.Errorf("%v: code %v, want %v", tc.err, st.Code(), tc.code)
		}
		if len(st.Details()) != 0 {
			t.Errorf("%v: %d status details; each would print as an extra line", tc.err, len(st.Details()))
		}
		// What containerd's client turns it back into says the same, once.
		native := errgrpc.ToNative(got).Error()
		if strings.Count(native, tc.err.Error()) != 1 || strings.Contains(native, "\n") {
			t.Errorf("client sees %q for %q", native, tc.err)
		}
	}
}
