package policy

import (
	"errors"
	"fmt"
	"math/rand/v2"
	"slices"
	"strings"
	"testing"

	"github.com/opencontainers/runtime-spec/specs-go"
)

const (
	dgA = "sha256:aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa"
	dgB = "sha256:bbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb"
)

// TestParseImageRefGolden: references as users write them, normalised as
// containerd names them (ImageStoreName) and as the patterns see them.
func TestParseImageRefGolden(t *testing.T) {
	for _, c := range []struct{ in, ref, store string }{
		// Short names: docker.io, library/, latest.
		{"nginx", "docker.io/library/nginx:latest", "docker.io/library/nginx:latest"},
		{"nginx:1.25", "docker.io/library/nginx:1.25", "docker.io/library/nginx:1.25"},
		{"bitnami/nginx", "docker.io/bitnami/nginx:latest", "docker.io/bitnami/nginx:latest"},
		{"docker.io/nginx", "docker.io/library/nginx:latest", "docker.io/library/nginx:latest"},
		{"index.docker.io/library/nginx:1", "docker.io/library/nginx:1", "docker.io/library/nginx:1"},
		// Ports in registry hosts: the colon before a / is a port, the last
		// one after it a tag.
		{"127.0.0.1:5000/busybox", "127.0.0.1:5000/busybox:latest", "127.0.0.1:5000/busybox:latest"},
		{"localhost:5000/team/app:v2", "localhost:5000/team/app:v2", "localhost:5000/team/app:v2"},
		{"localhost/app", "localhost/app:latest", "localhost/app:latest"},
		{"[::1]:5000/app:1", "[::1]:5000/app:1", "[::1]:5000/app:1"},
		{"registry.k8s.io/e2e-test-images/busybox:1.29-2", "registry.k8s.io/e2e-test-images/busybox:1.29-2", "registry.k8s.io/e2e-test-images/busybox:1.29-2"},
		// Digests with and without tags: the store name drops the tag, the
		// policy keeps it (a tag pattern still applies).
		{"nginx@" + dgA, "docker.io/library/nginx@" + dgA, "docker.io/library/nginx@" + dgA},
		{"nginx:1.25@" + dgA, "docker.io/library/nginx:1.25@" + dgA, "docker.io/library/nginx@" + dgA},
		{"nginx:latest@" + dgA, "docker.io/library/nginx:latest@" + dgA, "docker.io/library/nginx@" + dgA},
		// Case: hosts are case-insensitive (lower-cased for matching, kept
		// for the store), tags are not.
		{"Registry.Example.COM/app:V1", "registry.example.com/app:V1", "Registry.Example.COM/app:V1"},
		{"Docker.IO/nginx", "docker.io/library/nginx:latest", "Docker.IO/nginx:latest"},
	} {
		r, err := ParseImageRef(c.in)
		if err != nil {
			t.Errorf("ParseImageRef(%q): %v", c.in, err)
			continue
		}
		if got := r.String(); got != c.ref {
			t.Errorf("ParseImageRef(%q) = %q, want %q", c.in, got, c.ref)
		}
		s, err := ImageStoreName(c.in)
		if err != nil || s != c.store {
			t.Errorf("ImageStoreName(%q) = %q, %v, want %q", c.in, s, err, c.store)
		}
	}
	for _, bad := range []string{"", "Nginx", "library/NGINX:1", "nginx:", "nginx@sha256:abc",
		"sha256:" + strings.Repeat("a", 64), strings.Repeat("a", 64), "a b", "nginx::1", "/nginx",
		strings.Repeat("a/", 600) + "x"} {
		if r, err := ParseImageRef(bad); err == nil {
			t.Errorf("ParseImageRef(%q) = %v, want an error", bad, r)
		}
	}
}

// TestImagePatternGolden: which normalised references each pattern
// matches.
func TestImagePatternGolden(t *testing.T) {
	for _, c := range []struct {
		pat       string
		match, no []string
	}{
		{"docker.io/library/nginx", []string{"nginx", "nginx:1.25", "docker.io/library/nginx@" + dgA, "nginx:1@" + dgA},
			[]string{"bitnami/nginx", "nginx/extra", "quay.io/library/nginx"}},
		// docker.io/<one component> is library/<it>, as for references.
		{"docker.io/nginx", []string{"nginx:1"}, []string{"bitnami/nginx"}},
		{"docker.io/*", []string{"nginx", "redis:7"}, []string{"bitnami/nginx"}},
		{"docker.io/library/nginx:1.*", []string{"nginx:1.25", "nginx:1.25@" + dgA},
			[]string{"nginx", "nginx:2.0", "nginx@" + dgA, "nginx:11"}},
		// * is one component (or part of one), ** any number.
		{"registry.example.com/team/*", []string{"registry.example.com/team/app"},
			[]string{"registry.example.com/team/a/b", "registry.example.com/team", "registry.example.com/other/app"}},
		{"registry.example.com/team/**", []string{"registry.example.com/team/app", "registry.example.com/team/a/b/c:1"},
			[]string{"registry.example.com/teams/app", "registry.example.com/other/app"}},
		{"registry.example.com/**/app", []string{"registry.example.com/app", "registry.example.com/a/b/app"},
			[]string{"registry.example.com/a/app2"}},
		{"registry.example.com/**", []string{"registry.example.com/x", "REGISTRY.example.com/a/b"},
			[]string{"registry.example.com.evil/x", "evil.com/registry.example.com/x"}},
		{"registry.example.com/team-*/app", []string{"registry.example.com/team-a/app"}, []string{"registry.example.com/team/app"}},
		// Ports.
		{"127.0.0.1:5000/**", []string{"127.0.0.1:5000/busybox:1"}, []string{"127.0.0.1:5001/busybox", "127.0.0.1/busybox"}},
		{"127.0.0.1:*/**", []string{"127.0.0.1:5000/busybox", "127.0.0.1:39211/a/b"}, []string{"127.0.0.2:5000/busybox"}},
		{"localhost/app", []string{"localhost/app:3"}, []string{"localhost:5000/app"}},
		// Case: the host of a pattern is lower-cased, its tag is not.
		{"Registry.Example.com/app:V*", []string{"registry.example.com/app:V1"}, []string{"registry.example.com/app:v1"}},
		{"*/**", []string{"nginx", "127.0.0.1:5000/a/b"}, nil},
		{"index.docker.io/library/**", []string{"nginx"}, nil},
	} {
		p, err := parseImagePattern(c.pat)
		if err != nil {
			t.Errorf("parseImagePattern(%q): %v", c.pat, err)
			continue
		}
		for _, want := range []bool{true, false} {
			refs := c.match
			if !want {
				refs = c.no
			}
			for _, s := range refs {
				r, err := ParseImageRef(s)
				if err != nil {
					t.Fatalf("ParseImageRef(%q): %v", s, err)
				}
				if got := p.match(r); got != want {
					t.Errorf("pattern %q on %q (%s): match %v, want %v", c.pat, s, r, got, want)
				}
			}
		}
	}
	for bad, why := range map[string]string{
		"":                                      "empty",
		"nginx":                                 "registry/path",
		"nginx/app":                             "not a registry host",
		"library/nginx":                         "not a registry host",
		"docker.io":                             "registry/path",
		"docker.io/":                            "registry/path",
		"docker.io/Library/nginx":               "lower case",
		"docker.io/a//b":                        "empty component",
		"docker.io/a/**b":                       "whole component",
		"docker.io/a/***":                       "whole component",
		"docker.io/nginx:":                      "tag is empty",
		"docker.io/nginx:1:2":                   "not allowed",
		"docker.io/nginx@" + dgA:                "digest",
		"docker.io/ngi?x":                       "not allowed",
		"docker.io/ngi[x]":                      "not allowed",
		"reg istry.io/a":                        "not allowed",
		"docker.io/" + strings.Repeat("a", 600): "bytes",
	} {
		if _, err := parseImagePattern(bad); err == nil || !strings.Contains(err.Error(), why) {
			t.Errorf("parseImagePattern(%q): %v, want an error saying %q", bad, err, why)
		}
	}
}

// TestImagePolicyJudge: the rules in their order, deny first.
func TestImagePolicyJudge(t *testing.T) {
	pol := func(c ImagesConfig) *imagePolicy {
		t.Helper()
		p, err := newImagePolicy(c)
		if err != nil {
			t.Fatal(err)
		}
		return p
	}
	strict := pol(ImagesConfig{Allow: []string{"registry.example.com/**"}, Deny: []string{"registry.example.com/bad/**"},
		RequireDigest: true, Digests: []string{dgB}, DenyLatest: true, SandboxAllow: []string{"registry.k8s.io/pause:*"}})
	for _, c := range []struct {
		p               *imagePolicy
		ref, digest     string
		sandbox         bool
		allowed, refuse string // a substring of the rules allowing, the start of the refusing one
	}{
		{strict, "registry.example.com/app@" + dgA, dgA, false, "allow[0]", ""},
		{strict, "registry.example.com/app@" + dgA, dgA, false, "require_digest (pinned by digest)", ""},
		{strict, "registry.example.com/app:1", dgB, false, "require_digest (digests[0])", ""},
		{strict, "registry.example.com/app:1", dgA, false, "", "require_digest: not pinned"},
		{strict, "registry.example.com/app@" + dgA, dgB, false, "", "pinned digest " + dgA + " is not the image's digest"},
		{strict, "registry.example.com/bad/app@" + dgA, dgA, false, "", `deny[0] "registry.example.com/bad/**"`},
		{strict, "docker.io/library/nginx@" + dgA, dgA, false, "", "allow: matches none"},
		{strict, "registry.example.com/app", dgB, false, "", "deny_latest: no tag (latest)"},
		{strict, "registry.example.com/app:latest", dgB, false, "", "deny_latest: tagged latest"},
		{strict, "registry.example.com/app:latest@" + dgA, dgA, false, "deny_latest (tag latest)", ""},
		// The pause image: its own list, none of the other rules.
		{strict, "registry.k8s.io/pause:3.10", dgA, true, `sandbox_allow[0]`, ""},
		{strict, "registry.example.com/app@" + dgA, dgA, true, "", "sandbox_allow: matches none"},
		// A sandbox_allow-less policy judges the pause image like any other.
		{pol(ImagesConfig{Allow: []string{"registry.example.com/**"}}), "registry.k8s.io/pause:3.10", dgA, true, "", "allow: matches none"},
		{pol(ImagesConfig{Deny: []string{"docker.io/**"}}), "quay.io/x/y", dgA, false, "no deny pattern matches", ""},
		{pol(ImagesConfig{Deny: []string{"docker.io/**"}}), "nginx", dgA, false, "", "deny[0]"},
	} {
		r, err := ParseImageRef(c.ref)
		if err != nil {
			t.Fatal(err)
		}
		by, refused := c.p.judge(r, c.digest, c.sandbox)
		if c.refuse != "" && !strings.HasPrefix(refused, c.refuse) || c.refuse == "" && (refused != "" || !strings.Contains(by, c.allowed)) {
			t.Errorf("%s (digest %s, sandbox %v): allowed by %q, refused by %q; want %q / %q",
				c.ref, c.digest, c.sandbox, by, refused, c.allowed, c.refuse)
		}
	}
}

// TestImagesConfigErrorsNameTheKey: every problem, each with its key.
func TestImagesConfigErrorsNameTheKey(t *testing.T) {
	err := Config{Images: ImagesConfig{Allow: []string{"docker.io/x", "nginx"}, Deny: []string{"docker.io/A"},
		Digests: []string{"sha256:abc"}, SandboxAllow: []string{}}}.Validate()
	if err == nil {
		t.Fatal("no error")
	}
	for _, want := range []string{"policy.images.allow[1]:", "policy.images.deny[0]:", "policy.images.digests[0]:",
		"policy.images.digests: set without require_digest", "policy.images.sandbox_allow: empty list"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error lacks %q:\n%v", want, err)
		}
	}
	if err := (Config{Images: ImagesConfig{Allow: []string{}}}).Validate(); err == nil || !strings.Contains(err.Error(), "policy.images.allow: empty list") {
		t.Errorf("allow = []: %v", err)
	}
	if p, err := newImagePolicy(ImagesConfig{}); p != nil || err != nil {
		t.Errorf("empty table: %v, %v; want no policy", p, err)
	}
}

func FuzzParseImagePattern(f *testing.F) {
	for _, s := range []string{"docker.io/library/nginx:1.*", "127.0.0.1:*/**", "*/**", "registry.example.com/**/app",
		"[::1]:5000/a/*/b", "docker.io/nginx", "x/y"} {
		f.Add(s, "registry.example.com/a/b/app:1")
	}
	f.Fuzz(func(t *testing.T, pat, ref string) {
		p, err := parseImagePattern(pat)
		if err != nil {
			return
		}
		if p.raw != pat || p.host == "" || len(p.path) == 0 {
			t.Fatalf("parsed %q into %+v", pat, p)
		}
		r, err := ParseImageRef(ref)
		if err != nil {
			return
		}
		got := p.match(r)
		// ** for a whole path matches every path of its host and tag.
		all, _ := parseImagePattern(p.raw[:strings.IndexByte(p.raw, '/')] + "/**")
		if got && !all.match(r) {
			t.Fatalf("%q matches %s but %q does not", pat, r, all.raw)
		}
	})
}

func FuzzParseImageRef(f *testing.F) {
	for _, s := range []string{"nginx", "nginx:1.25@" + dgA, "127.0.0.1:5000/a/b:c", "Docker.IO/x", "[::1]:5000/app:1", "localhost/app"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		r, err := ParseImageRef(s)
		if err != nil {
			return
		}
		if r.Domain != strings.ToLower(r.Domain) || r.Path == "" || r.Tag == "" && r.Digest == "" {
			t.Fatalf("ParseImageRef(%q) = %+v", s, r)
		}
		// The normalised form is a fixed point.
		again, err := ParseImageRef(r.String())
		again.ImplicitLatest = r.ImplicitLatest
		if err != nil || again != r {
			t.Fatalf("ParseImageRef(%q) = %s, which parses to %+v, %v", s, r, again, err)
		}
		if _, err := ImageStoreName(s); err != nil {
			t.Fatalf("ParseImageRef accepts %q, ImageStoreName does not: %v", s, err)
		}
	})
}

// FuzzImageControlFailsClosed states the image control's promise over any
// facts the edge might report: a container runs only when containerd
// confirmed an image (or none, with allow_rootfs) and that image passes
// every rule; nothing the facts say can turn a refusal into a run.
func FuzzImageControlFailsClosed(f *testing.F) {
	f.Add("registry.example.com/app@"+dgA, dgA, false, false, "", false)
	f.Add("registry.example.com/app:1", dgB, false, false, "", true)
	f.Add("registry.k8s.io/pause:3.10", dgA, false, true, "", false)
	f.Add("", "", true, false, "", true)
	f.Add("registry.example.com/app@"+dgA, dgA, false, false, "connection refused", false)
	f.Add("registry.example.com/bad/app@"+dgA, dgA, false, false, "", false)
	floor, err := NewFloor(Config{Images: propImages}, nil)
	if err != nil {
		f.Fatal(err)
	}
	f.Fuzz(func(t *testing.T, requested, digest string, rootfs, sandbox bool, why string, nilFacts bool) {
		s := Support{Backend: "test"}
		if !nilFacts {
			s.Image = &ImageFacts{Requested: requested, Digest: digest, Rootfs: rootfs, Sandbox: sandbox, Err: why}
		}
		_, err := enforce(plainSpec(), floor, s, "amd64")
		if err != nil {
			if !errors.Is(err, ErrRefused) {
				t.Fatalf("not a refusal: %v", err)
			}
			return
		}
		if why := imagePromiseBroken(propImages, s.Image); why != "" {
			t.Fatalf("%s (facts %+v)", why, s.Image)
		}
	})
}

// propImages is the image policy of the whole-spec property test: every
// rule at once.
var propImages = ImagesConfig{Allow: []string{"registry.example.com/**"}, Deny: []string{"registry.example.com/bad/**"},
	RequireDigest: true, Digests: []string{dgB}, DenyLatest: true, SandboxAllow: []string{"registry.k8s.io/pause:*"}}

// randomImageFacts is what the shim's edge might report: confirmed or not,
// an image or a root file system, a pod's sandbox or not, pinned or not.
func randomImageFacts(r *rand.Rand) *ImageFacts {
	if r.IntN(10) == 0 {
		return nil
	}
	refs := []string{"registry.example.com/app@" + dgA, "registry.example.com/app:1", "registry.example.com/app",
		"registry.example.com/app:latest", "registry.example.com/bad/app@" + dgA, "docker.io/library/nginx@" + dgA,
		"registry.k8s.io/pause:3.10", "registry.k8s.io/pause", "REGISTRY.example.com/a/b/c:2", "not a ref"}
	digests := []string{dgA, dgB, ""}
	f := &ImageFacts{Requested: refs[r.IntN(len(refs))], Digest: digests[r.IntN(len(digests))],
		Rootfs: r.IntN(8) == 0, Sandbox: r.IntN(4) == 0}
	if r.IntN(8) == 0 {
		f.Err = "connection refused"
	}
	return f
}

// imagePromiseBroken says how a container that ran breaks the image
// policy c, given the facts the edge reported; "" when it does not. It
// restates the rules independently of imagePolicy.judge: with a policy, a
// container runs only on facts containerd confirmed, with an image no deny
// pattern matches that is allowed (sandbox_allow for a pod's sandbox
// image), not latest under deny_latest, and pinned or listed under
// require_digest; or with no image where allow_rootfs says so.
func imagePromiseBroken(c ImagesConfig, f *ImageFacts) string {
	if !c.active() {
		return ""
	}
	switch {
	case f == nil:
		return "ran without image facts"
	case f.Err != "":
		return "ran on facts containerd did not confirm: " + f.Err
	case f.Rootfs && !c.AllowRootfs:
		return "ran without an image under allow_rootfs = false"
	case f.Rootfs:
		return ""
	}
	ref, err := ParseImageRef(f.Requested)
	if err != nil {
		return fmt.Sprintf("ran the unparsable reference %q", f.Requested)
	}
	matches := func(patterns []string) bool {
		return slices.ContainsFunc(patterns, func(raw string) bool {
			p, err := parseImagePattern(raw)
			return err == nil && p.match(ref)
		})
	}
	switch {
	case ref.Digest != "" && f.Digest != "" && ref.Digest != f.Digest:
		return fmt.Sprintf("ran %s whose digest in containerd is %s", ref, f.Digest)
	case matches(c.Deny):
		return fmt.Sprintf("ran denied %s", ref)
	case f.Sandbox && c.SandboxAllow != nil:
		if !matches(c.SandboxAllow) {
			return fmt.Sprintf("ran sandbox image %s outside sandbox_allow", ref)
		}
		return ""
	case c.Allow != nil && !matches(c.Allow):
		return fmt.Sprintf("ran %s outside allow", ref)
	case c.DenyLatest && ref.Latest():
		return fmt.Sprintf("ran %s, latest", ref)
	case c.RequireDigest && !(ref.Digest != "" && ref.Digest == f.Digest || f.Digest != "" && slices.Contains(c.Digests, f.Digest)):
		return fmt.Sprintf("ran %s, neither pinned nor listed (digest %q)", ref, f.Digest)
	}
	return ""
}

// plainSpec asks for nothing the whole-spec controls refuse: what is left
// to judge is the image.
func plainSpec() *specs.Spec {
	return &specs.Spec{Process: &specs.Process{}, Linux: &specs.Linux{Namespaces: []specs.LinuxNamespace{
		{Type: specs.PIDNamespace}, {Type: specs.IPCNamespace}, {Type: specs.UTSNamespace},
		{Type: specs.MountNamespace}, {Type: specs.NetworkNamespace}}}}
}

// TestPropertyImagePromise: over random facts from the edge, a container
// with a plain spec runs only when imagePromiseBroken finds nothing; both
// outcomes occur (the whole-spec property test states the same promise,
// but its hostile specs are mostly refused before the image counts).
func TestPropertyImagePromise(t *testing.T) {
	floor, err := NewFloor(Config{Images: propImages}, nil)
	if err != nil {
		t.Fatal(err)
	}
	counts := map[string]int{}
	for seed := range 3000 {
		r := rand.New(rand.NewPCG(uint64(seed), 17))
		s := Support{Backend: "test", Image: randomImageFacts(r)}
		if _, err := enforce(plainSpec(), floor, s, "amd64"); err != nil {
			if !errors.Is(err, ErrRefused) {
				t.Fatalf("seed %d: not a refusal: %v", seed, err)
			}
			counts["refused"]++
			continue
		}
		counts["ran"]++
		if why := imagePromiseBroken(propImages, s.Image); why != "" {
			t.Fatalf("seed %d: %s (facts %+v)", seed, why, s.Image)
		}
	}
	t.Logf("%v", counts)
	if counts["refused"] == 0 || counts["ran"] < 50 {
		t.Fatalf("the random facts do not exercise both outcomes: %v", counts)
	}
}
