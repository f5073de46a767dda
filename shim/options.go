package shim

import (
	"bytes"
	"fmt"

	"github.com/containerd/containerd/api/types/runtimeoptions/v1"
	"github.com/containerd/typeurl/v2"
	"github.com/pelletier/go-toml/v2"
	"google.golang.org/protobuf/types/known/anypb"
)

// selection is what a containerd runtime entry tells Palisade: which
// config.toml and which handler in it.
//
// containerd sends runtime options for non-runc runtimes as
// runtimeoptions.Options. With ConfigPath set (ctr --runtime-config-path, or
// `ConfigPath` in a CRI runtime's options table) that file is Palisade's
// config.toml and its default_handler serves. Without it, CRI sends the whole
// options table as TOML in ConfigBody; Palisade reads two keys from it:
//
//	[plugins.'io.containerd.cri.v1.runtime'.containerd.runtimes.gvisor-strict.options]
//	  config_path = "/etc/palisade/config.toml"   # optional, this is the default
//	  handler = "gvisor-strict"
type selection struct {
	ConfigPath string `toml:"config_path"`
	Handler    string `toml:"handler"`
}

// selectHandler decodes the runtime options of a Create request.
func selectHandler(opts *anypb.Any) (selection, error) {
	sel := selection{ConfigPath: DefaultConfigPath}
	if opts == nil || len(opts.GetValue()) == 0 && opts.GetTypeUrl() == "" {
		return sel, nil
	}
	v, err := typeurl.UnmarshalAny(opts)
	if err != nil {
		return sel, fmt.Errorf("decode runtime options: %w", err)
	}
	ro, ok := v.(*runtimeoptions.Options)
	if !ok {
		return sel, fmt.Errorf("runtime options: want %T (ctr --runtime-config-path or a CRI options table), got %T", ro, v)
	}
	if ro.ConfigPath != "" {
		sel.ConfigPath = ro.ConfigPath
		return sel, nil
	}
	if ro.ConfigBody == nil {
		return sel, nil
	}
	if len(ro.ConfigBody) > MaxConfigSize {
		return sel, fmt.Errorf("runtime options table (ConfigBody): %d bytes: larger than the %d-byte limit", len(ro.ConfigBody), MaxConfigSize)
	}
	dec := toml.NewDecoder(bytes.NewReader(ro.ConfigBody)).DisallowUnknownFields()
	var body selection
	if err := dec.Decode(&body); err != nil {
		return sel, fmt.Errorf("runtime options table (ConfigBody): %w", describeTOMLError(err))
	}
	if body.ConfigPath != "" {
		sel.ConfigPath = body.ConfigPath
	}
	sel.Handler = body.Handler
	return sel, nil
}
