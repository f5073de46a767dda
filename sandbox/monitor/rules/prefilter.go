package rules

import (
	"slices"

	"github.com/expr-lang/expr/ast"
)

// evtTypes is the set of evt.type values a condition can match, read off
// its syntax tree (lists and macros expanded), or nil when it cannot tell.
// Most rules begin like Falco's, with the event types they look at
// (spawned_process, open_read, evt.type == "connect"), and most points are
// of other types: Match skips the rules an event's type rules out, instead
// of running every rule's program on every point.
//
// Only what must hold is used: an "and" needs both sides, so either side's
// set bounds it (the smaller is kept); an "or" bounds it only when both
// sides do (their union). Anything else (a "not", a function, another
// field) tells nothing. The result is therefore never smaller than the set
// of types the condition can be true for.
func evtTypes(n ast.Node) []string {
	switch n := n.(type) {
	case *ast.BinaryNode:
		switch n.Operator {
		case "and", "&&":
			l, r := evtTypes(n.Left), evtTypes(n.Right)
			switch {
			case l == nil:
				return r
			case r == nil:
				return l
			}
			return intersect(l, r)
		case "or", "||":
			l, r := evtTypes(n.Left), evtTypes(n.Right)
			if l == nil || r == nil {
				return nil
			}
			u := append(slices.Clone(l), r...)
			slices.Sort(u)
			return slices.Compact(u)
		case "==":
			if isEvtType(n.Left) {
				if s, ok := n.Right.(*ast.StringNode); ok {
					return []string{s.Value}
				}
			}
		case "in":
			if isEvtType(n.Left) {
				return stringItems(n.Right)
			}
		}
	}
	return nil
}

// isEvtType reports whether n is the field evt.type.
func isEvtType(n ast.Node) bool {
	m, ok := n.(*ast.MemberNode)
	if !ok || m.Optional || m.Method {
		return false
	}
	id, ok := m.Node.(*ast.IdentifierNode)
	prop, ok2 := m.Property.(*ast.StringNode)
	return ok && ok2 && id.Value == "evt" && prop.Value == "type"
}

// stringItems are the strings of an array literal or an expanded list, or
// nil if n is neither or holds anything else.
func stringItems(n ast.Node) []string {
	var out []string
	switch n := n.(type) {
	case *ast.ArrayNode:
		for _, item := range n.Nodes {
			s, ok := item.(*ast.StringNode)
			if !ok {
				return nil
			}
			out = append(out, s.Value)
		}
	case *ast.ConstantNode:
		items, ok := n.Value.([]string)
		if !ok {
			return nil
		}
		out = slices.Clone(items)
	default:
		return nil
	}
	slices.Sort(out)
	// An empty set would rule the rule out for every event; keep an empty
	// list's rule running (and matching nothing) rather than special-case it.
	if len(out) == 0 {
		return nil
	}
	return slices.Compact(out)
}

// intersect is the intersection of two sorted sets. An empty one is
// returned as an empty, non-nil slice: the rule can match no event.
func intersect(a, b []string) []string {
	out := []string{}
	for _, s := range a {
		if _, ok := slices.BinarySearch(b, s); ok {
			out = append(out, s)
		}
	}
	return out
}
