package shim

import (
	"strings"
	"testing"

	runcoptions "github.com/containerd/containerd/api/types/runc/options"
	"github.com/containerd/containerd/api/types/runtimeoptions/v1"
	"github.com/containerd/typeurl/v2"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/anypb"
)

func anyOf(t *testing.T, m proto.Message) *anypb.Any {
	t.Helper()
	a, err := typeurl.MarshalAnyToProto(m)
	if err != nil {
		t.Fatal(err)
	}
	return a
}

func TestSelectHandler(t *testing.T) {
	for _, tc := range []struct {
		name       string
		opts       *anypb.Any
		path, hand string
		err        string
	}{
		{name: "none", path: DefaultConfigPath},
		{name: "ctr --runtime-config-path", opts: anyOf(t, &runtimeoptions.Options{ConfigPath: "/x/p.toml"}), path: "/x/p.toml"},
		{name: "CRI options table", opts: anyOf(t, &runtimeoptions.Options{ConfigBody: []byte("handler = \"gvisor-strict\"\nconfig_path = \"/y.toml\"\n")}), path: "/y.toml", hand: "gvisor-strict"},
		{name: "CRI table, default path", opts: anyOf(t, &runtimeoptions.Options{ConfigBody: []byte("handler = \"h\"\n")}), path: DefaultConfigPath, hand: "h"},
		{name: "CRI table typo", opts: anyOf(t, &runtimeoptions.Options{ConfigBody: []byte("handlr = \"h\"\n")}), err: "handlr"},
		{name: "runc options", opts: anyOf(t, &runcoptions.Options{BinaryName: "runsc"}), err: "want *runtimeoptions.Options"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			sel, err := selectHandler(tc.opts)
			if tc.err != "" {
				if err == nil || !strings.Contains(err.Error(), tc.err) {
					t.Fatalf("err = %v, want one naming %q", err, tc.err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if sel.ConfigPath != tc.path || sel.Handler != tc.hand {
				t.Fatalf("got %+v, want path %q handler %q", sel, tc.path, tc.hand)
			}
		})
	}
}
