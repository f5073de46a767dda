package rules

import _ "embed"

//go:embed default_rules.yaml
var defaultRules []byte

// DefaultRules is the shipped rules file (default_rules.yaml), used when a
// handler's monitoring names none. It returns a copy: callers may keep it.
func DefaultRules() []byte {
	return append([]byte(nil), defaultRules...)
}
