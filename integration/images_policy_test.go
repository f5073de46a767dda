package integration

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/palisade-runtime/palisade/integration/internal/criimages"
)

// Image policy at the node (issue 17), in real containers: images pulled
// from the test's registry mirror by containerd's CRI, then run through
// ctr (the container record names the image) and through crictl (the
// record names none; the CRI annotation is checked against the
// container's snapshot). The refusals must name the image, the rule and
// the handler.

const (
	criNginxImage  = "registry.k8s.io/e2e-test-images/nginx:1.14-2"
	criLatestImage = "gcr.io/k8s-staging-cri-tools/test-image-latest"
)

// imageHandlers are the handlers the tests below run, by name: each is the
// default floor on runsc plus an images table.
var imageHandlers = map[string]map[string]any{
	// Only e2e-test-images, nginx denied; the pause image by its own rule.
	"img-allow": {"allow": []string{"registry.k8s.io/e2e-test-images/**"},
		"deny": []string{"registry.k8s.io/e2e-test-images/nginx:*"}, "sandbox_allow": []string{"registry.k8s.io/pause:*"}},
	"img-latest": {"deny_latest": true, "sandbox_allow": []string{"registry.k8s.io/pause:*"}},
	// Only digest-pinned images from registry.k8s.io: the "done".
	"img-digest": {"allow": []string{"registry.k8s.io/**"}, "require_digest": true, "sandbox_allow": []string{"registry.k8s.io/pause:*"}},
	"img-rootfs": {"allow_rootfs": true, "allow": []string{"registry.k8s.io/e2e-test-images/**"}},
	// No sandbox_allow: the pause image is judged like any other, and
	// matches no allow pattern.
	"img-nopause": {"allow": []string{"registry.k8s.io/e2e-test-images/**"}},
	// img-allow on the delegate (containerd-shim-runc-v2 and runc): the
	// control is the shim's, whatever the backend.
	"img-allow-runc": {"allow": []string{"registry.k8s.io/e2e-test-images/**"},
		"deny": []string{"registry.k8s.io/e2e-test-images/nginx:*"}},
}

// k8sCtr runs ctr in CRI's namespace, where crictl pulled the images.
func k8sCtr(ctx context.Context, t testing.TB, e *containerdEnv, args ...string) (string, error) {
	t.Helper()
	bin, err := lookupTool("ctr")
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.CommandContext(ctx, bin, append([]string{"--address", e.Address, "-n", "k8s.io"}, args...)...)
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	err = cmd.Run()
	t.Logf("$ ctr -n k8s.io %s\n%s", strings.Join(args, " "), out.String())
	return out.String(), err
}

func TestImagePolicy(t *testing.T) {
	layout := critestImages(t)
	bbDigest, err := criimages.Digest(layout, criBusyboxImage)
	if err != nil {
		t.Fatal(err)
	}
	bbPinned := "registry.k8s.io/e2e-test-images/busybox@" + bbDigest.String()
	configs := map[string]string{}
	e := startCRIEnv(t, criEnvOpts{name: "images", tools: []string{"runsc", "containerd-shim-runc-v2", "runc"}, layout: layout,
		pull: []string{criBusyboxImage, criNginxImage, criLatestImage, bbPinned},
		runtimes: func(e *containerdEnv) []criRuntime {
			var rs []criRuntime
			for name, images := range imageHandlers {
				backend := "runsc"
				if strings.HasSuffix(name, "-runc") {
					backend = "runc"
				}
				rt := floorRuntime(t, e, backend, name, "", map[string]any{"images": images})
				configs[name] = rt.ConfigPath
				rs = append(rs, criRuntime{Name: name, Type: palisadeRuntimeType,
					Options: map[string]any{"handler": name, "config_path": rt.ConfigPath}})
			}
			return rs
		}})
	env, cri, dir := e.containerdEnv, e.cri, e.dir
	ctx, cancel := context.WithTimeout(context.Background(), 15*time.Minute)
	defer cancel()

	t.Run("ctr", func(t *testing.T) {
		for i, c := range []struct {
			handler, image string
			extra          []string // ctr run flags
			refused        []string // substrings of the refusal; nil: runs
		}{
			{handler: "img-allow", image: criBusyboxImage},
			{handler: "img-allow", image: criNginxImage, refused: []string{`image "` + criNginxImage + `"`,
				`policy.images.deny[0] "registry.k8s.io/e2e-test-images/nginx:*"`, `handler "img-allow"`}},
			// The CRI annotation is the user's: naming an allowed image in
			// it changes nothing, the container record's image is judged.
			{handler: "img-allow", image: criNginxImage, extra: []string{"--annotation", "io.kubernetes.cri.image-name=" + criBusyboxImage},
				refused: []string{`image "` + criNginxImage + `"`, "deny[0]"}},
			// Pretending to be a pod's pause container changes nothing
			// either: that is containerd's record, not an annotation.
			{handler: "img-allow", image: criNginxImage, extra: []string{"--annotation", "io.kubernetes.cri.container-type=sandbox",
				"--annotation", "io.kubernetes.cri.podsandbox.image-name=" + critestSandboxImage},
				refused: []string{`image "` + criNginxImage + `"`, "deny[0]"}},
			// ctr does not add :latest; CRI does (see the cri cases).
			{handler: "img-latest", image: criLatestImage + ":latest", refused: []string{"gcr.io/k8s-staging-cri-tools/test-image-latest:latest",
				"policy.images.deny_latest: tagged latest and not pinned by digest", `handler "img-latest"`}},
			{handler: "img-latest", image: criBusyboxImage},
			{handler: "img-digest", image: criBusyboxImage, refused: []string{"policy.images.require_digest: not pinned by digest", `handler "img-digest"`}},
			{handler: "img-digest", image: bbPinned},
			// --rootfs: a directory, no image.
			{handler: "img-allow", image: "", refused: []string{"allow_rootfs = false", `handler "img-allow"`}},
			{handler: "img-rootfs", image: ""},
			{handler: "img-allow-runc", image: criBusyboxImage},
			{handler: "img-allow-runc", image: criNginxImage, refused: []string{`image "` + criNginxImage + `"`, "deny[0]", `handler "img-allow-runc"`}},
		} {
			id := "img-ctr-" + string(rune('a'+i))
			args := []string{"run", "--rm", "--fifo-dir", env.FIFODir, "--env", containerPATH,
				"--runtime", palisadeRuntimeType, "--runtime-config-path", configs[c.handler]}
			args = append(args, c.extra...)
			if c.image == "" {
				args = append(args, "--rootfs", busyboxRootfs(t), id)
			} else {
				args = append(args, c.image, id)
			}
			out, err := k8sCtr(ctx, t, env, append(args, "/bin/echo", "ran")...)
			k8sCtr(ctx, t, env, "containers", "rm", id) // after a refusal ctr may leave the record
			what := c.handler + " " + c.image + " " + strings.Join(c.extra, " ")
			if c.refused == nil {
				if err != nil || !strings.Contains(out, "ran") {
					t.Errorf("%s: want it to run, got %v: %s", what, err, out)
				}
				continue
			}
			if err == nil {
				t.Errorf("%s: ran, want a refusal", what)
				continue
			}
			for _, want := range c.refused {
				if !strings.Contains(out, want) {
					t.Errorf("%s: the refusal lacks %q:\n%s", what, want, out)
				}
			}
		}
	})

	defer logLookupTimes(t, env)

	t.Run("cri", func(t *testing.T) {
		for i, c := range []struct {
			handler, image string
			podRefused     string // substring of runp's error; "": the pod runs
			refused        string // substring of start's error; "": the container runs
		}{
			{handler: "img-allow", image: criBusyboxImage},
			{handler: "img-allow", image: criNginxImage, refused: `policy.images.deny[0] "registry.k8s.io/e2e-test-images/nginx:*"`},
			{handler: "img-latest", image: criLatestImage, refused: "policy.images.deny_latest: no tag (latest) and not pinned by digest"},
			{handler: "img-latest", image: criBusyboxImage},
			{handler: "img-digest", image: criBusyboxImage, refused: "policy.images.require_digest"},
			{handler: "img-digest", image: bbPinned},
			{handler: "img-nopause", podRefused: `image "` + critestSandboxImage + `"`},
			{handler: "img-allow", image: criLatestImage, refused: `policy.images.allow: matches none of ["registry.k8s.io/e2e-test-images/**"]`},
		} {
			name := c.handler + "-" + string(rune('a'+i))
			podCfg := writeJSONFile(t, filepath.Join(dir, name+"-pod.json"), map[string]any{
				"metadata":      map[string]any{"name": "img-" + name, "namespace": "images", "uid": "uid-" + name},
				"log_directory": filepath.Join(dir, "logs", name),
			})
			podID, err := cri.run(ctx, "runp", "--runtime", c.handler, podCfg)
			err = unquoted(err)
			if c.podRefused != "" {
				if err == nil || !strings.Contains(err.Error(), c.podRefused) || !strings.Contains(err.Error(), "sandbox") {
					t.Errorf("%s: runp: %v, want a refusal naming %q", name, err, c.podRefused)
				}
				if podID != "" {
					cri.run(ctx, "rmp", "-f", podID)
				}
				continue
			}
			if err != nil {
				t.Errorf("%s: runp: %v", name, err)
				continue
			}
			ctrCfg := writeJSONFile(t, filepath.Join(dir, name+"-ctr.json"), map[string]any{
				"metadata": map[string]any{"name": "app"},
				// As kubelet sends it: the image as the pod spec wrote it,
				// which containerd puts in the image-name annotation.
				"image":    map[string]any{"image": c.image, "user_specified_image": c.image},
				"command":  []string{"sleep", "3600"},
				"log_path": "app.log",
			})
			ctrID, err := cri.run(ctx, "create", podID, ctrCfg, podCfg)
			if err == nil {
				_, err = cri.run(ctx, "start", ctrID)
			}
			err = unquoted(err)
			switch {
			case c.refused == "" && err != nil:
				t.Errorf("%s: %v", name, err)
			case c.refused != "" && (err == nil || !strings.Contains(err.Error(), c.refused) || !strings.Contains(err.Error(), `handler "`+c.handler+`"`)):
				t.Errorf("%s: %v, want a refusal naming %q and the handler", name, err, c.refused)
			case c.refused == "":
				if rec := decisionRecordIn(t, env.StateDir, "k8s.io", ctrID); !strings.Contains(rec, `"name": "image"`) || !strings.Contains(rec, "sha256:") {
					t.Errorf("%s: the decision record has no image control with a digest:\n%s", name, rec)
				}
			}
			cri.run(ctx, "stopp", podID)
			if _, err := cri.run(ctx, "rmp", podID); err != nil {
				t.Errorf("rmp: %v", err)
			}
		}
	})
}

// logLookupTimes logs what the image lookups cost, as the shim timed them
// in containerd's log (image_lookup_ms), for the cost note.
func logLookupTimes(t *testing.T, e *containerdEnv) {
	data, err := os.ReadFile(e.LogPath)
	if err != nil {
		t.Log(err)
		return
	}
	var ms []float64
	var each []string
	for _, m := range regexp.MustCompile(`handler=([a-z-]+) id=(\S{1,12})\S* image_lookup_ms=([0-9.]+)`).FindAllSubmatch(data, -1) {
		if v, err := strconv.ParseFloat(string(m[3]), 64); err == nil {
			ms = append(ms, v)
			each = append(each, fmt.Sprintf("%s %s %.2f", m[1], m[2], v))
		}
	}
	t.Logf("image lookups (handler, container, ms), in order:\n%s", strings.Join(each, "\n"))
	if len(ms) == 0 {
		t.Error("no image_lookup_ms in containerd's log")
		return
	}
	slices.Sort(ms)
	t.Logf("image lookups: %d, median %.2f ms, min %.2f, max %.2f", len(ms), ms[len(ms)/2], ms[0], ms[len(ms)-1])
}

// unquoted undoes the quoting crictl's log lines put on the error's quotes.
func unquoted(err error) error {
	if err == nil {
		return nil
	}
	return errors.New(strings.ReplaceAll(err.Error(), `\"`, `"`))
}
