package shim

import (
	"fmt"
	"maps"
	"regexp"
	"slices"
	"strings"
)

// RuntimeClass is the [handlers.<name>.runtimeclass] table: what
// `palisadectl config runtimeclass` writes into the handler's Kubernetes
// RuntimeClass. The shim does not read it, but Validate checks it so that a
// typo is found by `palisadectl policy check`, not by the API server.
type RuntimeClass struct {
	// OverheadMemory is overhead.podFixed.memory, a Kubernetes quantity
	// ("40Mi"). Empty: no memory overhead is declared.
	OverheadMemory string `toml:"overhead_memory"`
	// OverheadCPU is overhead.podFixed.cpu, a Kubernetes quantity ("10m").
	// Empty: no CPU overhead is declared.
	OverheadCPU string `toml:"overhead_cpu"`
	// NodeSelector is scheduling.nodeSelector: pods of this RuntimeClass only
	// go to nodes with these labels (the nodes where Palisade is installed).
	NodeSelector map[string]string `toml:"node_selector"`
}

// quantityRe is the non-negative part of Kubernetes' resource.Quantity
// grammar: a decimal number, then a binary SI suffix, a decimal SI suffix
// or a decimal exponent. A sign is refused: an overhead cannot be negative.
var quantityRe = regexp.MustCompile(`^([0-9]+(\.[0-9]*)?|\.[0-9]+)([eE][+-]?[0-9]+|Ki|Mi|Gi|Ti|Pi|Ei|[numkMGTPE])?$`)

// labelNameRe is the name part of a label key, and the whole of a value.
var labelNameRe = regexp.MustCompile(`^([A-Za-z0-9]([-A-Za-z0-9_.]*[A-Za-z0-9])?)?$`)

// dnsSubdomainRe is a label key's optional prefix (RFC 1123 subdomain).
var dnsSubdomainRe = regexp.MustCompile(`^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$`)

// validate names the first field the Kubernetes API server would reject.
func (r RuntimeClass) validate() error {
	if err := checkQuantity(r.OverheadMemory); err != nil {
		return fmt.Errorf("runtimeclass.overhead_memory: %w", err)
	}
	if s := r.OverheadMemory; s != "" && strings.ContainsAny(s[len(s)-1:], "num") {
		// "40m" is 0.04 bytes; Kubernetes accepts it, and the pod then
		// reserves nothing. Always a mistake for memory.
		return fmt.Errorf("runtimeclass.overhead_memory: %q is a fraction of a byte (did you mean %q?)", s, s[:len(s)-1]+"Mi")
	}
	if err := checkQuantity(r.OverheadCPU); err != nil {
		return fmt.Errorf("runtimeclass.overhead_cpu: %w", err)
	}
	for _, k := range slices.Sorted(maps.Keys(r.NodeSelector)) {
		if err := checkLabelKey(k); err != nil {
			return fmt.Errorf("runtimeclass.node_selector.%s: %w", k, err)
		}
		if err := checkLabelValue(r.NodeSelector[k]); err != nil {
			return fmt.Errorf("runtimeclass.node_selector.%s: %w", k, err)
		}
	}
	return nil
}

func checkQuantity(q string) error {
	if q == "" || quantityRe.MatchString(q) {
		return nil
	}
	return fmt.Errorf("%q is not a Kubernetes quantity (e.g. \"40Mi\", \"10m\", \"0.5\")", q)
}

// checkLabelKey follows Kubernetes' qualified names: [prefix/]name, the
// prefix a DNS subdomain of at most 253 bytes, the name at most 63.
func checkLabelKey(k string) error {
	prefix, name, hasPrefix := strings.Cut(k, "/")
	if !hasPrefix {
		prefix, name = "", k
	}
	switch {
	case hasPrefix && (prefix == "" || len(prefix) > 253 || !dnsSubdomainRe.MatchString(prefix)):
		return fmt.Errorf("label key prefix %q is not a DNS subdomain", prefix)
	case name == "" || len(name) > 63 || !labelNameRe.MatchString(name):
		return fmt.Errorf("label key name %q: want 1-63 letters, digits, '-', '_' or '.', starting and ending alphanumeric", name)
	}
	return nil
}

func checkLabelValue(v string) error {
	if len(v) > 63 || !labelNameRe.MatchString(v) {
		return fmt.Errorf("label value %q: want at most 63 letters, digits, '-', '_' or '.', starting and ending alphanumeric", v)
	}
	return nil
}
