package shim

import (
	"context"
	"encoding/json"
	"io"
	"os"
	"path/filepath"
	"strconv"
	"testing"

	"github.com/containerd/containerd/v2/contrib/seccomp"
	"github.com/containerd/containerd/v2/core/containers"
	"github.com/containerd/containerd/v2/pkg/namespaces"
	"github.com/containerd/containerd/v2/pkg/oci"
	"github.com/containerd/log"

	"github.com/palisade-runtime/palisade/sandbox/runsc"
)

// The shim's own work on the container start path, before runsc runs: with
// one shim per ctr container, all of it is paid per container start.

func defaultSpecBundle(b *testing.B) string {
	b.Helper()
	quiet(b)
	ctx := namespaces.WithNamespace(context.Background(), "bench")
	spec, err := oci.GenerateSpec(ctx, nil, &containers.Container{ID: "bench"}, seccomp.WithDefaultProfile())
	if err != nil {
		b.Skipf("containerd default spec: %v", err)
	}
	data, err := json.Marshal(spec)
	if err != nil {
		b.Fatal(err)
	}
	dir := b.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "config.json"), data, 0o600); err != nil {
		b.Fatal(err)
	}
	return dir
}

func BenchmarkLoadConfig(b *testing.B) {
	for b.Loop() {
		if _, err := LoadConfig("../config.toml"); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkLoadFloorRuntimeDefault(b *testing.B) {
	c, err := LoadConfig("../config.toml")
	if err != nil {
		b.Fatal(err)
	}
	_, h, _ := c.Handler("gvisor")
	for b.Loop() {
		if _, err := loadFloor(h.Policy); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkEnforceBundle: read config.json (containerd's default spec with
// its RuntimeDefault seccomp profile), enforce the default floor, write it
// back with the decision record. Each op gets a freshly written bundle, as
// each container start does.
func BenchmarkEnforceBundle(b *testing.B) {
	c, err := LoadConfig("../config.toml")
	if err != nil {
		b.Fatal(err)
	}
	name, h, _ := c.Handler("gvisor")
	floor, err := loadFloor(h.Policy)
	if err != nil {
		b.Fatal(err)
	}
	st := &handlerState{name: name, handler: h, floor: floor, support: runsc.Support("")}
	hostSupport(&st.support, "")
	orig, err := os.ReadFile(filepath.Join(defaultSpecBundle(b), "config.json"))
	if err != nil {
		b.Fatal(err)
	}
	root := b.TempDir()
	ctx := context.Background()
	i := 0
	for b.Loop() {
		b.StopTimer()
		i++
		bundle := filepath.Join(root, strconv.Itoa(i))
		if err := os.Mkdir(bundle, 0o700); err != nil {
			b.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(bundle, "config.json"), orig, 0o600); err != nil {
			b.Fatal(err)
		}
		b.StartTimer()
		if _, err := enforceBundle(ctx, st, "bench", bundle); err != nil {
			b.Fatal(err)
		}
	}
}

// quiet keeps the per-container info line out of the benchmark's output.
func quiet(b *testing.B) {
	l := log.L.Logger
	old := l.Out
	l.SetOutput(io.Discard)
	b.Cleanup(func() { l.SetOutput(old) })
}
