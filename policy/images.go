package policy

import (
	"errors"
	"fmt"
	"reflect"
	"slices"
	"strings"
)

// ControlImage is the image control's name in a Decision. It is recorded
// only when the handler has an image policy: without one the shim does not
// ask containerd about the image, and there is nothing to say.
const ControlImage = "image"

// ImagesConfig is [handlers.<name>.policy.images]: which images the
// handler runs. An absent or empty table is no image policy.
type ImagesConfig struct {
	// Allow: patterns (see imagePattern); an image must match one. Absent:
	// every image passes this step. An empty list is an error, because
	// it would refuse every container, which is rarely what was meant.
	Allow []string `toml:"allow"`
	// Deny: patterns that refuse an image whatever else matches.
	Deny []string `toml:"deny"`
	// RequireDigest: the image must be pinned by digest (the reference
	// names the digest containerd has), or its digest, as containerd's
	// image store has it, must be one of Digests.
	RequireDigest bool     `toml:"require_digest"`
	Digests       []string `toml:"digests"`
	// DenyLatest refuses a reference tagged latest, or with no tag, unless
	// it is pinned by digest.
	DenyLatest bool `toml:"deny_latest"`
	// AllowRootfs lets a container with no image run (ctr run --rootfs: a
	// root file system from a host directory nobody can judge by name).
	AllowRootfs bool `toml:"allow_rootfs"`
	// SandboxAllow: patterns for the image of a CRI pod's sandbox (pause)
	// container, which containerd's own configuration chooses, not the
	// pod. When set, that image must match one of them (and no deny
	// pattern), and allow, deny_latest and require_digest do not apply to
	// it. Absent: it is judged like every other image.
	SandboxAllow []string `toml:"sandbox_allow"`
}

// active reports whether the table sets anything.
func (c ImagesConfig) active() bool { return !reflect.ValueOf(c).IsZero() }

// ImageFacts is what the shim found out about a container's image from
// containerd, never from the spec alone: annotations are the user's.
type ImageFacts struct {
	// Requested is the reference as asked for (the CRI image-name
	// annotation once the edge has checked it names the container's image,
	// else the container record's image).
	Requested string `json:"requested,omitempty"`
	// Source says where Requested came from and how it was checked.
	Source string `json:"source,omitempty"`
	// Digest is the image store's target digest for Requested.
	Digest string `json:"digest,omitempty"`
	// Rootfs: the container has no image (its root file system is a
	// directory, not a snapshot of an image).
	Rootfs bool `json:"rootfs,omitempty"`
	// Sandbox: a CRI pod's sandbox (pause) container, by containerd's own
	// record of it (its CRI sandbox metadata), not by annotation.
	Sandbox bool `json:"sandbox,omitempty"`
	// Err says why containerd could not tell, or why the image could not
	// be verified; the image control then refuses (fails closed).
	Err string `json:"err,omitempty"`
}

// imagePolicy is a validated ImagesConfig with its patterns parsed.
type imagePolicy struct {
	cfg     ImagesConfig
	allow   []imagePattern
	deny    []imagePattern
	sandbox []imagePattern
}

// newImagePolicy parses the table; nil when it is empty. Errors name the
// key, e.g. policy.images.allow[2].
func newImagePolicy(c ImagesConfig) (*imagePolicy, error) {
	if !c.active() {
		return nil, nil
	}
	var errs []error
	parse := func(key string, pats []string) []imagePattern {
		if pats != nil && len(pats) == 0 && key == "allow" {
			errs = append(errs, errors.New("policy.images.allow: empty list refuses every image (omit the key to allow any image, or list patterns)"))
		}
		if pats != nil && len(pats) == 0 && key == "sandbox_allow" {
			errs = append(errs, errors.New("policy.images.sandbox_allow: empty list refuses every pod (omit the key to judge the sandbox image like any other)"))
		}
		out := make([]imagePattern, 0, len(pats))
		for i, s := range pats {
			p, err := parseImagePattern(s)
			if err != nil {
				errs = append(errs, fmt.Errorf("policy.images.%s[%d]: %w", key, i, err))
				continue
			}
			out = append(out, p)
		}
		return out
	}
	p := &imagePolicy{cfg: c, allow: parse("allow", c.Allow), deny: parse("deny", c.Deny), sandbox: parse("sandbox_allow", c.SandboxAllow)}
	for i, d := range c.Digests {
		if err := checkDigest(d); err != nil {
			errs = append(errs, fmt.Errorf("policy.images.digests[%d]: %q: %w", i, d, err))
		}
	}
	if len(c.Digests) > 0 && !c.RequireDigest {
		errs = append(errs, errors.New("policy.images.digests: set without require_digest = true (the list is what require_digest accepts)"))
	}
	if err := errors.Join(errs...); err != nil {
		return nil, err
	}
	return p, nil
}

// judge applies the rules to one image: the rules that let it through, or
// the rule that refused it. digest is containerd's.
func (p *imagePolicy) judge(ref ImageRef, digest string, sandbox bool) (allowedBy string, refusedBy string) {
	if ref.Digest != "" && digest != "" && ref.Digest != digest {
		return "", fmt.Sprintf("pinned digest %s is not the image's digest %s in containerd", ref.Digest, digest)
	}
	for i, d := range p.deny {
		if d.match(ref) {
			return "", fmt.Sprintf("deny[%d] %q", i, d.raw)
		}
	}
	if sandbox && p.cfg.SandboxAllow != nil {
		for i, a := range p.sandbox {
			if a.match(ref) {
				return fmt.Sprintf("sandbox_allow[%d] %q", i, a.raw), ""
			}
		}
		return "", fmt.Sprintf("sandbox_allow: matches none of %q", p.cfg.SandboxAllow)
	}
	var by []string
	if p.cfg.Allow != nil {
		i := slices.IndexFunc(p.allow, func(a imagePattern) bool { return a.match(ref) })
		if i < 0 {
			return "", fmt.Sprintf("allow: matches none of %q", p.cfg.Allow)
		}
		by = append(by, fmt.Sprintf("allow[%d] %q", i, p.allow[i].raw))
	}
	if p.cfg.DenyLatest {
		if ref.Latest() {
			what := "tagged latest"
			if ref.ImplicitLatest {
				what = "no tag (latest)"
			}
			return "", "deny_latest: " + what + " and not pinned by digest"
		}
		by = append(by, "deny_latest (tag "+orNone(ref.Tag)+")")
	}
	if p.cfg.RequireDigest {
		switch i := slices.Index(p.cfg.Digests, digest); {
		case ref.Digest != "" && ref.Digest == digest:
			by = append(by, "require_digest (pinned by digest)")
		case digest != "" && i >= 0:
			by = append(by, fmt.Sprintf("require_digest (digests[%d])", i))
		default:
			return "", fmt.Sprintf("require_digest: not pinned by digest, and digest %s is not in digests", orNone(digest))
		}
	}
	if len(by) == 0 {
		by = append(by, "no deny pattern matches")
	}
	return strings.Join(by, ", "), ""
}

func orNone(s string) string {
	if s == "" {
		return "none"
	}
	return s
}

// imageControl refuses a container whose image the handler does not run.
// Refusing is the only answer: an image cannot be clamped. The facts come
// from the shim's edge, which asked containerd; without them, or when
// containerd could not tell, the control refuses (fails closed).
type imageControl struct{}

func (imageControl) enforce(w *work) (Control, error) {
	p := w.images
	if p == nil {
		return Control{}, nil // no image policy: not recorded
	}
	c := Control{Name: ControlImage, EnforcedBy: "palisade shim at Create (containerd's container record and image store)"}
	var o outcome
	f := w.s.Image
	switch {
	case f == nil:
		c.Requested = "unknown"
		o.refuse("image: not resolved by the shim")
	case f.Err != "":
		c.Requested = orNone(f.Requested)
		o.refuse("image %s: not confirmed by containerd: %s", quoteOrNone(f.Requested), f.Err)
	case f.Rootfs:
		c.Requested = "none (root file system from a directory)"
		c.Effective = "no image"
		if p.cfg.AllowRootfs {
			c.Effective += "; allowed by allow_rootfs"
		} else {
			o.refuse("image: none (root file system from a directory, e.g. ctr run --rootfs): refused by allow_rootfs = false")
		}
	default:
		c.Requested = f.Requested + " (" + f.Source + ")"
		ref, err := ParseImageRef(f.Requested)
		if err != nil {
			o.refuse("image %q: %v", f.Requested, err)
			break
		}
		c.Effective = ref.String() + " digest " + orNone(f.Digest)
		if f.Sandbox {
			c.Effective += " (pod sandbox image)"
		}
		by, refused := p.judge(ref, f.Digest, f.Sandbox)
		if refused != "" {
			o.refuse("image %q (%s, digest %s): refused by policy.images.%s", f.Requested, ref, orNone(f.Digest), refused)
			break
		}
		c.Effective += "; allowed by " + by
	}
	_, err := o.finish(w, &c, OverCeilingRefuse)
	return c, err
}

func quoteOrNone(s string) string {
	if s == "" {
		return "(none)"
	}
	return fmt.Sprintf("%q", s)
}
