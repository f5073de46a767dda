package shim

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"slices"
	"strings"
	"time"

	"github.com/containerd/containerd/api/types"
	// Registers features.Features with typeurl, which containerd's CRI
	// expects in RuntimeInfo.Features.
	_ "github.com/containerd/containerd/v2/core/runtime"
	"github.com/containerd/typeurl/v2"
	"github.com/opencontainers/runtime-spec/specs-go/features"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/anypb"

	"github.com/palisade-runtime/palisade/policy"
	"github.com/palisade-runtime/palisade/sandbox/apparmor"
	"github.com/palisade-runtime/palisade/sandbox/runsc"
)

// Keys of RuntimeInfo.Annotations: which handler answered, and what it
// enforces on this host. containerd's CRI does not read them; `ctr` and the
// introspection API show them.
const (
	InfoAnnotationHandler  = "io.palisade.handler"
	InfoAnnotationBackend  = "io.palisade.backend"
	InfoAnnotationConfig   = "io.palisade.config"
	InfoAnnotationSeccomp  = "io.palisade.seccomp"
	InfoAnnotationAppArmor = "io.palisade.apparmor"
)

// featuresTimeout bounds `runsc features`. containerd's CRI runs -info for
// every runtime entry when it starts and waits for the answer.
const featuresTimeout = 10 * time.Second

// runtimeInfo answers `containerd-shim-palisade-v2 -info`: containerd writes
// the runtime entry's options on stdin, and the answer describes the handler
// those options select, chosen exactly as Create chooses it.
func runtimeInfo(ctx context.Context, name string, optionsR io.Reader) (*types.RuntimeInfo, error) {
	opts, err := readInfoOptions(optionsR)
	if err != nil {
		return nil, invalid(err)
	}
	sel, err := selectHandler(opts)
	if err != nil {
		return nil, invalid(err)
	}
	cfg, err := LoadConfig(sel.ConfigPath)
	if opts == nil && errors.Is(err, os.ErrNotExist) {
		// containerd also asks with no options at all, before every task
		// create until one answer succeeds (its deprecated mount-migration
		// probe). With no default config there is no handler to describe:
		// say who we are and claim nothing, so the answer can be cached
		// instead of failing (and costing an exec) on every start.
		return &types.RuntimeInfo{
			Name:        name,
			Version:     &types.RuntimeVersion{Version: Version},
			Annotations: map[string]string{InfoAnnotationConfig: sel.ConfigPath + " (absent)"},
		}, nil
	}
	if err != nil {
		return nil, invalid(err)
	}
	hname, h, err := cfg.Handler(sel.Handler)
	if err != nil {
		return nil, invalid(fmt.Errorf("%s: %w", sel.ConfigPath, err))
	}
	// A handler whose profile file is unreadable would fail every Create;
	// say so now, when containerd starts, rather than at the first pod.
	if _, err := loadFloor(h.Policy); err != nil {
		return nil, invalid(fmt.Errorf("%s: handlers.%s.%w", sel.ConfigPath, hname, err))
	}
	info := &types.RuntimeInfo{
		Name:    name,
		Version: &types.RuntimeVersion{Version: Version},
		Options: opts,
		Annotations: map[string]string{
			InfoAnnotationHandler: hname,
			InfoAnnotationBackend: h.Backend,
			InfoAnnotationConfig:  sel.ConfigPath,
		},
	}
	s, err := HandlerSupport(h)
	if err != nil {
		// Another backend: nothing more is known before it runs. CRI then
		// reports no features for the handler, which claims nothing.
		return info, nil
	}
	info.Annotations[InfoAnnotationSeccomp] = seccompSummary(h.Policy, s)
	info.Annotations[InfoAnnotationAppArmor] = appArmorSummary(h.Policy.AppArmor, s)
	raw, err := runscFeatures(ctx, h.Runsc)
	if err != nil {
		return nil, fmt.Errorf("handlers.%s.runsc.binary: %w", hname, err)
	}
	info.Features, err = typeurl.MarshalAnyToProto(palisadeFeatures(raw))
	if err != nil {
		return nil, fmt.Errorf("marshal features: %w", err)
	}
	return info, nil
}

// readInfoOptions decodes stdin: a protobuf Any, or nothing at all when the
// runtime entry has no options.
func readInfoOptions(r io.Reader) (*anypb.Any, error) {
	data, err := io.ReadAll(r)
	if err != nil {
		return nil, fmt.Errorf("read runtime options: %w", err)
	}
	if len(data) == 0 {
		return nil, nil
	}
	var a anypb.Any
	if err := proto.Unmarshal(data, &a); err != nil {
		return nil, fmt.Errorf("decode runtime options: %w", err)
	}
	return &a, nil
}

// HandlerSupport is what Create tells policy about handler h on this host,
// computed without starting the backend: the backend's enforcers, completed
// with the host's AppArmor state and kernel version. palisadectl doctor uses
// it to predict a fail-closed Create.
func HandlerSupport(h Handler) (policy.Support, error) {
	var s policy.Support
	// As at Create: the handler's AppArmor profile, if this host can
	// enforce it. A profile that is not loaded counts if its file defines
	// it, which Create would load; nothing is loaded here.
	profile, missing := hostProfile(context.Background(), h.Policy.AppArmor, apparmor.DefaultHost(), false)
	switch h.Backend {
	case BackendRunsc:
		s = runsc.Support(profile)
	default:
		return s, fmt.Errorf("backend %q: what it enforces is known only once it runs", h.Backend)
	}
	hostSupport(&s, missing)
	return s, nil
}

// runscFeatures runs `runsc features`, runsc's OCI features document.
func runscFeatures(ctx context.Context, c runsc.Config) (*features.Features, error) {
	c = c.WithDefaults()
	ctx, cancel := context.WithTimeout(ctx, featuresTimeout)
	defer cancel()
	var stderr bytes.Buffer
	cmd := exec.CommandContext(ctx, c.Binary, "features")
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		return nil, fmt.Errorf("%s features: %w (stderr: %q)", c.Binary, err, strings.TrimSpace(stderr.String()))
	}
	var f features.Features
	if err := json.Unmarshal(out, &f); err != nil {
		return nil, fmt.Errorf("%s features: decode: %w", c.Binary, err)
	}
	return &f, nil
}

// unsupportedMountOptions are the recursive mount attributes (rro and its
// kin) and idmapped mounts. runsc does not implement them (critest's rro and
// idmap specs fail under it), and containerd's CRI turns an "rro" here into
// RecursiveReadOnlyMounts = true, so they must never be claimed even if a
// runsc build lists them.
var unsupportedMountOptions = []string{
	"rro", "rrw", "rnosuid", "rsuid", "rnodev", "rdev", "rnoexec", "rexec",
	"rnodiratime", "rdiratime", "rrelatime", "rnorelatime", "rnoatime", "ratime",
	"rstrictatime", "rnostrictatime", "rnosymfollow", "rsymfollow", "idmap", "ridmap",
}

// runscFlagAnnotation prefixes the annotations that override runsc flags.
// runsc honours them only with --allow-flag-override, which Palisade does
// not pass, and one of them (oci-seccomp) would switch the floor off.
const runscFlagAnnotation = "dev.gvisor.flag."

// palisadeFeatures is runsc's features document reduced to what a container
// under Palisade really gets. It copies what it changes; raw is not modified.
func palisadeFeatures(raw *features.Features) *features.Features {
	f := *raw
	f.MountOptions = slices.DeleteFunc(slices.Clone(raw.MountOptions), func(o string) bool {
		return slices.Contains(unsupportedMountOptions, o)
	})
	f.Annotations = nil
	for k, v := range raw.Annotations {
		if !strings.HasPrefix(k, runscFlagAnnotation) {
			if f.Annotations == nil {
				f.Annotations = map[string]string{}
			}
			f.Annotations[k] = v
		}
	}
	f.PotentiallyUnsafeConfigAnnotations = slices.DeleteFunc(slices.Clone(raw.PotentiallyUnsafeConfigAnnotations),
		func(k string) bool { return strings.HasPrefix(k, runscFlagAnnotation) })
	if raw.Linux == nil {
		return &f
	}
	l := *raw.Linux
	// Capabilities: Palisade rejects a name its policy does not know, so
	// only names both know are usable.
	known := policy.KnownCapabilities()
	l.Capabilities = slices.DeleteFunc(slices.Clone(raw.Linux.Capabilities), func(c string) bool {
		return !slices.Contains(known, c)
	})
	slices.Sort(l.Capabilities)
	if raw.Linux.Seccomp != nil {
		sc := *raw.Linux.Seccomp
		// Palisade always passes --oci-seccomp; without it runsc would
		// accept linux.seccomp and ignore it.
		sc.Enabled = boolPtr(true)
		l.Seccomp = &sc
	}
	// process.apparmorProfile and process.selinuxLabel are ignored inside
	// the sandbox. A handler's AppArmor profile confines runsc's host
	// processes instead; that is reported in RuntimeInfo.Annotations.
	l.Apparmor = &features.Apparmor{Enabled: boolPtr(false)}
	l.Selinux = &features.Selinux{Enabled: boolPtr(false)}
	// Stated explicitly: containerd refuses idmapped mounts for a runtime
	// whose features lack this entry, and CRI needs it for user namespaces.
	l.MountExtensions = &features.MountExtensions{IDMap: &features.IDMap{Enabled: boolPtr(false)}}
	f.Linux = &l
	return &f
}

func boolPtr(b bool) *bool { return &b }

// seccompSummary says which floor every container gets and who enforces it.
func seccompSummary(p policy.Config, s policy.Support) string {
	floor := p.Seccomp
	if floor == "" {
		floor = policy.SeccompNone
	}
	if floor == policy.SeccompNone {
		return "no floor; the pod's own profile is enforced by " + s.SeccompEnforcer
	}
	return "floor " + floor + ", enforced by " + s.SeccompEnforcer
}

// appArmorSummary says what happens to the handler's AppArmor profile here.
func appArmorSummary(a policy.AppArmorConfig, s policy.Support) string {
	switch {
	case a.Profile == "":
		return "no host profile"
	case s.AppArmorEnforcer != "":
		return fmt.Sprintf("host profile %q, enforced by %s", a.Profile, s.AppArmorEnforcer)
	case a.Required:
		return fmt.Sprintf("fails closed: profile %q is required: %s", a.Profile, s.AppArmorMissing)
	}
	return fmt.Sprintf("optional profile %q not attached: %s", a.Profile, s.AppArmorMissing)
}

// LoadFloor builds a handler's floor as Create does, reading its seccomp
// profile file from disk; `palisadectl policy check` and doctor use it.
func LoadFloor(p policy.Config) (*policy.Floor, error) { return loadFloor(p) }
