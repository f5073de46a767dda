package shim

import (
	"context"
	"os"

	"github.com/containerd/containerd/v2/pkg/namespaces"
	cshim "github.com/containerd/containerd/v2/pkg/shim"
	"github.com/containerd/containerd/v2/pkg/shutdown"
	"github.com/containerd/containerd/v2/pkg/sys/reaper"
	"github.com/containerd/containerd/v2/plugins"
	gorunc "github.com/containerd/go-runc"
	"github.com/containerd/plugin"
	"github.com/containerd/plugin/registry"

	"github.com/palisade-runtime/palisade/sandbox"
)

// Register adds Palisade's task service to containerd's shim plugin
// registry. Call it once from main, before cshim.RunShim.
func Register() {
	registry.Register(&plugin.Registration{
		Type:     plugins.TTRPCPlugin,
		ID:       "task",
		Requires: []plugin.Type{plugins.EventPlugin, plugins.InternalPlugin},
		InitFn: func(ic *plugin.InitContext) (any, error) {
			pp, err := ic.GetByID(plugins.EventPlugin, "publisher")
			if err != nil {
				return nil, err
			}
			sp, err := ic.GetByID(plugins.InternalPlugin, "shutdown")
			if err != nil {
				return nil, err
			}
			ns, _ := namespaces.Namespace(ic.Context)
			sd := sp.(shutdown.Service)
			// go-runc waits for its children through this package-level
			// monitor; the shim is a subreaper whose SIGCHLD handler feeds
			// reaper.Default, so go-runc must wait there too.
			gorunc.Monitor = reaper.Default
			if address, err := cshim.ReadAddress("address"); err == nil {
				sd.RegisterCallback(func(context.Context) error { return cshim.RemoveSocket(address) })
			}
			return newService(ic.Context, sandbox.Env{
				Namespace:    ns,
				Publisher:    pp.(cshim.Publisher),
				Shutdown:     sd,
				TTRPCAddress: os.Getenv("TTRPC_ADDRESS"),
				GRPCAddress:  ic.Properties[plugins.PropertyGRPCAddress],
			}), nil
		},
	})
}
