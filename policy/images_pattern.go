package policy

import (
	"errors"
	"fmt"
	"strings"
)

// imagePattern is one entry of policy.images.allow, deny or sandbox_allow:
// registry/path[:tag], matched against a normalised ImageRef.
//
//   - registry: a host with an optional port, where * stands for any run
//     of characters (127.0.0.1:* is any port on 127.0.0.1). Required: a
//     pattern without one would silently mean docker.io.
//   - path: components separated by /; ** alone is zero or more whole
//     components, * within a component any run of characters but /.
//     docker.io/<one component> means docker.io/library/<it>, as for
//     references.
//   - tag: optional, after a : in the last component, with * as above.
//     Without one any tag (or none, for a reference by digest) matches; with
//     one the reference must carry a matching tag.
//
// Digests are not part of patterns: policy.images.digests lists them.
type imagePattern struct {
	raw  string
	host string   // lower-cased glob
	path []string // components: "**" or a glob
	tag  string   // glob; "" = any
}

// maxPatternLen bounds a pattern, and so the matching work.
const maxPatternLen = 512

// parseImagePattern validates and splits a pattern. Errors say what is
// wrong without the key; the caller names it.
func parseImagePattern(s string) (imagePattern, error) {
	p := imagePattern{raw: s}
	switch {
	case s == "":
		return p, errors.New("empty pattern")
	case len(s) > maxPatternLen:
		return p, fmt.Errorf("pattern is %d bytes, more than %d", len(s), maxPatternLen)
	case strings.Contains(s, "@"):
		return p, fmt.Errorf("%q: a pattern has no digest (list digests in policy.images.digests)", s)
	}
	host, rest, ok := strings.Cut(s, "/")
	if !ok || rest == "" {
		return p, fmt.Errorf("%q: want registry/path[:tag], e.g. docker.io/library/nginx:1.*", s)
	}
	if err := checkHostGlob(host); err != nil {
		return p, fmt.Errorf("%q: %w", s, err)
	}
	p.host = strings.ToLower(host)
	if p.host == "index.docker.io" { // what distribution normalises it to
		p.host = "docker.io"
	}
	comps := strings.Split(rest, "/")
	last := comps[len(comps)-1]
	if name, tag, ok := strings.Cut(last, ":"); ok {
		if err := checkTagGlob(tag); err != nil {
			return p, fmt.Errorf("%q: tag %w", s, err)
		}
		comps[len(comps)-1], p.tag = name, tag
	}
	for _, c := range comps {
		if err := checkPathGlob(c); err != nil {
			return p, fmt.Errorf("%q: path %w", s, err)
		}
	}
	if p.host == "docker.io" && len(comps) == 1 && comps[0] != "**" {
		comps = []string{"library", comps[0]}
	}
	p.path = comps
	return p, nil
}

// checkHostGlob accepts host[:port] with * anywhere, bracketed IPv6, and
// insists on something that is a registry host rather than a repository's
// first component (nginx/…): a dot, a port, localhost, or a wildcard.
func checkHostGlob(h string) error {
	if h == "" {
		return errors.New("no registry host")
	}
	for _, c := range h {
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' ||
			strings.ContainsRune(".-:*[]", c)) {
			return fmt.Errorf("registry host %q: character %q not allowed", h, c)
		}
	}
	if !strings.ContainsAny(h, ".:*[") && !strings.EqualFold(h, "localhost") {
		return fmt.Errorf("%q is not a registry host (write it in full, e.g. docker.io/%s/…)", h, h)
	}
	return nil
}

// checkPathGlob accepts one path component: ** alone, or lower-case
// letters, digits, separators and *, as repository names are lower case.
func checkPathGlob(c string) error {
	switch {
	case c == "":
		return errors.New("has an empty component")
	case c == "**":
		return nil
	case strings.Contains(c, "**"):
		return fmt.Errorf("component %q: ** must be a whole component", c)
	}
	for _, r := range c {
		if r >= 'A' && r <= 'Z' {
			return fmt.Errorf("component %q: repository paths are lower case", c)
		}
		if !(r >= 'a' && r <= 'z' || r >= '0' && r <= '9' || strings.ContainsRune("._-*", r)) {
			return fmt.Errorf("component %q: character %q not allowed", c, r)
		}
	}
	return nil
}

// checkTagGlob accepts a tag glob: the characters of a tag, and *.
func checkTagGlob(t string) error {
	if t == "" {
		return errors.New("is empty")
	}
	if len(t) > 128 {
		return fmt.Errorf("%q is longer than 128 characters", t)
	}
	for _, r := range t {
		if !(r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || strings.ContainsRune("_.-*", r)) {
			return fmt.Errorf("%q: character %q not allowed", t, r)
		}
	}
	return nil
}

// match reports whether r is one of the references p describes.
func (p imagePattern) match(r ImageRef) bool {
	if !glob(p.host, r.Domain) {
		return false
	}
	if p.tag != "" && (r.Tag == "" || !glob(p.tag, r.Tag)) {
		return false
	}
	return matchPath(p.path, strings.Split(r.Path, "/"))
}

// matchPath matches path components against pattern components, ** being
// any number of components. Dynamic programming over (pattern, path)
// positions keeps it linear in their product whatever the pattern.
func matchPath(pat, path []string) bool {
	// ok[j]: pat[:i] matches path[:j], for the current i.
	ok := make([]bool, len(path)+1)
	ok[0] = true
	for _, pc := range pat {
		next := make([]bool, len(path)+1)
		if pc == "**" {
			seen := false
			for j := range ok {
				seen = seen || ok[j]
				next[j] = seen
			}
		} else {
			for j := 1; j <= len(path); j++ {
				next[j] = ok[j-1] && glob(pc, path[j-1])
			}
		}
		ok = next
	}
	return ok[len(path)]
}

// glob matches s against a pattern whose only wildcard is *, any run of
// characters. Linear backtracking to the last *: no exponential cases.
func glob(pat, s string) bool {
	pi, si := 0, 0
	star, mark := -1, 0
	for si < len(s) {
		switch {
		case pi < len(pat) && pat[pi] == '*':
			star, mark = pi, si
			pi++
		case pi < len(pat) && pat[pi] == s[si]:
			pi++
			si++
		case star >= 0:
			pi, mark = star+1, mark+1
			si = mark
		default:
			return false
		}
	}
	for pi < len(pat) && pat[pi] == '*' {
		pi++
	}
	return pi == len(pat)
}
