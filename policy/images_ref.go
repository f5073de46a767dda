package policy

import (
	"errors"
	"fmt"
	"strings"

	"github.com/distribution/reference"
)

// ImageRef is an image reference normalised the way containerd names
// images: a registry host always present (docker.io for short names, with
// library/ for single-component names), a repository path, and a tag and
// a digest where the reference has them. A reference with neither gets
// the tag "latest", as containerd pulls it.
type ImageRef struct {
	// Domain is the registry host and optional port, lower-cased for
	// matching: host names are case-insensitive, and a pattern must not be
	// bypassed by writing Docker.IO.
	Domain string
	Path   string // repository path, e.g. library/nginx
	Tag    string // "" when the reference has a digest and no tag
	Digest string // "sha256:…" when pinned, else ""
	// ImplicitLatest: the reference named no tag and no digest; Tag is
	// "latest" because that is what a pull of it resolves.
	ImplicitLatest bool
}

// maxImageRefLen bounds what is parsed: real references are well under
// it (distribution limits the name to 255 characters).
const maxImageRefLen = 1024

// ParseImageRef normalises s, a reference as a user writes it (nginx,
// nginx:1.25, 127.0.0.1:5000/team/app@sha256:…). An image ID (64 hex
// digits, or sha256:<hex>) names no repository and is refused: a policy
// over registries and repositories cannot judge it.
func ParseImageRef(s string) (ImageRef, error) {
	if len(s) > maxImageRefLen {
		return ImageRef{}, fmt.Errorf("image reference is %d bytes, more than %d", len(s), maxImageRefLen)
	}
	if strings.HasPrefix(s, "sha256:") {
		return ImageRef{}, fmt.Errorf("image reference %q is an image ID, not a repository reference", s)
	}
	named, err := reference.ParseNormalizedNamed(s)
	if err != nil {
		return ImageRef{}, fmt.Errorf("image reference %q: %w", s, err)
	}
	r := ImageRef{Domain: strings.ToLower(reference.Domain(named)), Path: reference.Path(named)}
	// distribution compares the domain case-sensitively: Docker.IO/nginx
	// keeps its one-component path. Lower-cased it is docker.io, and there
	// single names are library/ ones; so the normalised form is a fixed point.
	if !strings.ContainsAny(r.Domain, ".:[") && r.Domain != "localhost" {
		// Only upper case makes distribution read A/b as host A: lower-cased
		// it would name docker.io/a/b, so it is refused rather than guessed.
		return ImageRef{}, fmt.Errorf("image reference %q: registry host %q has no dot or port", s, reference.Domain(named))
	}
	if r.Domain == "index.docker.io" {
		r.Domain = "docker.io"
	}
	if r.Domain == "docker.io" && !strings.Contains(r.Path, "/") {
		r.Path = "library/" + r.Path
	}
	if t, ok := named.(reference.Tagged); ok {
		r.Tag = t.Tag()
	}
	if d, ok := named.(reference.Digested); ok {
		r.Digest = d.Digest().String()
	}
	if r.Tag == "" && r.Digest == "" {
		r.Tag, r.ImplicitLatest = "latest", true
	}
	return r, nil
}

// String is the normalised reference: domain/path[:tag][@digest].
func (r ImageRef) String() string {
	s := r.Domain + "/" + r.Path
	if r.Tag != "" {
		s += ":" + r.Tag
	}
	if r.Digest != "" {
		s += "@" + r.Digest
	}
	return s
}

// Latest reports whether r floats on the tag latest: tagged so (or with
// no tag) and not pinned by a digest, which fixes the content whatever
// the tag says.
func (r ImageRef) Latest() bool { return r.Tag == "latest" && r.Digest == "" }

// ImageStoreName is the name containerd keeps an image under in its image
// store for reference s: normalised, latest added when there is neither
// tag nor digest, and the tag dropped when there is a digest
// (containerd's docker.ParseDockerRef, which CRI uses). The domain keeps
// its case here, because image store names are compared as strings.
func ImageStoreName(s string) (string, error) {
	if len(s) > maxImageRefLen {
		return "", fmt.Errorf("image reference is %d bytes, more than %d", len(s), maxImageRefLen)
	}
	if strings.HasPrefix(s, "sha256:") {
		return "", fmt.Errorf("image reference %q is an image ID, not a repository reference", s)
	}
	named, err := reference.ParseDockerRef(s)
	if err != nil {
		return "", fmt.Errorf("image reference %q: %w", s, err)
	}
	return named.String(), nil
}

// checkDigest validates an entry of policy.images.digests: an algorithm
// and its hex encoding, as in sha256:<64 hex digits>.
func checkDigest(d string) error {
	alg, hex, ok := strings.Cut(d, ":")
	if !ok || alg != "sha256" && alg != "sha384" && alg != "sha512" {
		return errors.New("want sha256:<hex>, sha384:<hex> or sha512:<hex>")
	}
	want := map[string]int{"sha256": 64, "sha384": 96, "sha512": 128}[alg]
	if len(hex) != want {
		return fmt.Errorf("%s digest has %d hex digits, want %d", alg, len(hex), want)
	}
	for _, c := range hex {
		if !(c >= '0' && c <= '9' || c >= 'a' && c <= 'f') {
			return errors.New("digest is not lower-case hex")
		}
	}
	return nil
}
