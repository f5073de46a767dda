package shim

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"time"

	"github.com/containerd/errdefs"
	"github.com/containerd/log"
	specs "github.com/opencontainers/runtime-spec/specs-go"

	"github.com/palisade-runtime/palisade/policy"
)

// Files Palisade writes into a bundle.
const (
	// DecisionFile is the decision record of the container.
	DecisionFile = "palisade-decision.json"
	// RequestFile is the spec as containerd wrote it, before enforcement.
	RequestFile = "config.request.json"
	// handlerFile lets `shim delete` find the backend after a crash.
	handlerFile = "palisade-handler.json"
)

// enforceBundle applies the floor to the bundle's config.json, rewrites it,
// and writes the decision record next to it.
func enforceBundle(ctx context.Context, st *handlerState, id, bundle string) (*policy.Decision, error) {
	path := filepath.Join(bundle, "config.json")
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("read OCI spec: %w", err)
	}
	var spec specs.Spec
	if err := json.Unmarshal(data, &spec); err != nil {
		return nil, invalid(fmt.Errorf("decode %s: %w", path, err))
	}
	facts := containerFacts(&spec, bundle, st.support, selfNamespaces)
	fields := log.Fields{"id": id, "handler": st.name}
	if st.images != nil {
		start := time.Now()
		facts.Image = resolveImage(ctx, st.images, id, &spec)
		// What an image policy costs a container, in the line every
		// container gets (make bench reads it).
		fields["image_lookup_ms"] = float64(time.Since(start).Microseconds()) / 1000
		log.G(ctx).WithFields(log.Fields{"id": id, "image": facts.Image.Requested, "digest": facts.Image.Digest,
			"rootfs": facts.Image.Rootfs, "sandbox": facts.Image.Sandbox, "error": facts.Image.Err}).Debug("image resolved with containerd")
	}
	d, err := policy.Enforce(&spec, st.floor, facts)
	if err != nil {
		return nil, policyError(fmt.Errorf("handler %q: %w", st.name, err))
	}
	d.Handler = st.name
	d.Pod = podOf(spec.Annotations)
	out, err := json.Marshal(&spec)
	if err != nil {
		return nil, err
	}
	if err := replaceSpec(bundle, out); err != nil {
		return nil, fmt.Errorf("write enforced OCI spec: %w", err)
	}
	record, err := json.MarshalIndent(d, "", "  ")
	if err != nil {
		return nil, err
	}
	if err := os.WriteFile(filepath.Join(bundle, DecisionFile), record, 0o644); err != nil {
		return nil, fmt.Errorf("write decision record: %w", err)
	}
	fields["backend"] = d.Backend
	if d.Pod != nil {
		fields["pod"] = d.Pod.Namespace + "/" + d.Pod.Name
	}
	log.G(ctx).WithFields(fields).WithField("decision", string(compact(record))).Info("security floor enforced")
	return d, nil
}

// containerd's CRI plugin names a container's pod in these annotations.
const (
	annoSandboxNamespace = "io.kubernetes.cri.sandbox-namespace"
	annoSandboxName      = "io.kubernetes.cri.sandbox-name"
	annoSandboxUID       = "io.kubernetes.cri.sandbox-uid"
	annoContainerName    = "io.kubernetes.cri.container-name"
)

// podOf is the pod a CRI container belongs to; nil outside CRI.
func podOf(annotations map[string]string) *policy.PodRef {
	name := annotations[annoSandboxName]
	if name == "" {
		return nil
	}
	return &policy.PodRef{Namespace: annotations[annoSandboxNamespace], Name: name,
		UID: annotations[annoSandboxUID], Container: annotations[annoContainerName]}
}

// enforceExec applies the floor to an exec's process spec.
func enforceExec(ctx context.Context, st *handlerState, id, execID string, raw []byte) ([]byte, error) {
	var p specs.Process
	if err := json.Unmarshal(raw, &p); err != nil {
		return nil, invalid(fmt.Errorf("decode exec process spec: %w", err))
	}
	d, err := policy.EnforceProcess(&p, st.floor, st.support)
	if err != nil {
		return nil, policyError(err)
	}
	d.Handler = st.name
	log.G(ctx).WithFields(log.Fields{"id": id, "exec_id": execID, "handler": st.name}).
		WithField("decision", d).Debug("security floor enforced on exec")
	return json.Marshal(&p)
}

// policyError gives policy's sentinels their containerd meaning.
func policyError(err error) error {
	switch {
	case errors.Is(err, policy.ErrInvalid):
		return fmt.Errorf("%w: %w", errdefs.ErrInvalidArgument, err)
	case errors.Is(err, policy.ErrRefused):
		return fmt.Errorf("%w: %w", errdefs.ErrPermissionDenied, err)
	case errors.Is(err, policy.ErrNotEnforceable):
		return fmt.Errorf("%w: %w", errdefs.ErrFailedPrecondition, err)
	}
	return err
}

func invalid(err error) error { return fmt.Errorf("%w: %w", errdefs.ErrInvalidArgument, err) }

var errNoContainer = fmt.Errorf("no container created in this shim: %w", errdefs.ErrNotFound)

func compact(b []byte) []byte {
	var buf bytes.Buffer
	if err := json.Compact(&buf, b); err != nil {
		return b
	}
	return buf.Bytes()
}

// replaceSpec puts the enforced spec in place of the requested one. The
// request is renamed aside (RequestFile, kept for audit) and config.json is
// created anew. Writing a temporary file and renaming it over config.json
// would be atomic too, but ext4 (auto_da_alloc) then forces the new data to
// disk before the rename, which cost 20-30 ms per container start here,
// right after containerd wrote the request. A crash between the two steps
// leaves no config.json, so runsc cannot start from half a spec.
func replaceSpec(bundle string, data []byte) error {
	path := filepath.Join(bundle, "config.json")
	if err := os.Rename(path, filepath.Join(bundle, RequestFile)); err != nil {
		return err
	}
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		return err
	}
	if _, err := f.Write(data); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}

// persistHandler records the handler in the bundle for `shim delete`.
func persistHandler(bundle string, st *handlerState) error {
	data, err := json.Marshal(struct {
		Name    string  `json:"name"`
		Handler Handler `json:"handler"`
	}{st.name, st.handler})
	if err != nil {
		return err
	}
	return os.WriteFile(filepath.Join(bundle, handlerFile), data, 0o600)
}

func readPersistedHandler(bundle string) (string, Handler, error) {
	var v struct {
		Name    string  `json:"name"`
		Handler Handler `json:"handler"`
	}
	data, err := os.ReadFile(filepath.Join(bundle, handlerFile))
	if err != nil {
		return "", Handler{}, err
	}
	if err := json.Unmarshal(data, &v); err != nil {
		return "", Handler{}, fmt.Errorf("decode %s: %w", handlerFile, err)
	}
	return v.Name, v.Handler, nil
}
