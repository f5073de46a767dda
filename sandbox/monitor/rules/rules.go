package rules

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"regexp"
	"strings"

	"github.com/expr-lang/expr"
	"github.com/expr-lang/expr/ast"
	"github.com/expr-lang/expr/parser"
	"github.com/expr-lang/expr/vm"
	"go.yaml.in/yaml/v3"
)

// Bounds of a rules file. A rules file is the operator's, not the
// workload's, but it is parsed in every shim: a mistake must fail with a
// message, not exhaust the shim.
const (
	MaxRulesSize     = 1 << 20
	MaxItems         = 1000
	MaxListItems     = 10000
	MaxConditionSize = 8 << 10
	// maxNodes bounds a condition's syntax tree after lists and macros are
	// expanded into it.
	maxNodes = 4000
)

// item is one entry of a rules file: a list, a macro or a rule, as in
// Falco's rules files. Unknown keys are errors (see Parse).
type item struct {
	List  string `yaml:"list"`
	Items []any  `yaml:"items"`

	Macro string `yaml:"macro"`

	Rule      string   `yaml:"rule"`
	Desc      string   `yaml:"desc"`
	Condition string   `yaml:"condition"`
	Output    string   `yaml:"output"`
	Priority  string   `yaml:"priority"`
	Tags      []string `yaml:"tags"`
	Enabled   *bool    `yaml:"enabled"`
}

// Rule is one compiled rule.
type Rule struct {
	Name     string
	Desc     string
	Priority Priority
	Tags     []string
	output   template
	fields   []string // output_fields names, sorted
	program  *vm.Program
	// types are the evt.type values the rule can match, sorted; nil means
	// any (prefilter.go).
	types []string
}

// Set is a compiled rules file. It is immutable after Parse and safe for
// concurrent use.
type Set struct {
	Rules []*Rule
}

var identifier = regexp.MustCompile(`^[A-Za-z_][A-Za-z0-9_]*$`)

// Parse reads a rules file in Falco's YAML shape:
//
//   - list: shell_binaries
//     items: [sh, bash]
//   - macro: spawned_process
//     condition: evt.type == "sentry_execve"
//   - rule: Terminal shell in container
//     desc: A shell was started in a container.
//     condition: spawned_process and proc.name in shell_binaries
//     output: Shell spawned (cmdline=%proc.cmdline container=%container.id)
//     priority: NOTICE
//     tags: [container, shell]
//
// Conditions are expr-lang expressions over the fields of Event; a list's
// name stands for its items and a macro's name for its condition, each
// defined before it is used. Every error names the entry.
func Parse(data []byte) (*Set, error) {
	if len(data) > MaxRulesSize {
		return nil, fmt.Errorf("%d bytes: larger than the %d-byte limit", len(data), MaxRulesSize)
	}
	var items []item
	dec := yaml.NewDecoder(bytes.NewReader(data))
	dec.KnownFields(true)
	if err := dec.Decode(&items); err != nil && !errors.Is(err, io.EOF) {
		return nil, fmt.Errorf("rules: %w", err)
	}
	if len(items) > MaxItems {
		return nil, fmt.Errorf("rules: %d entries, more than %d", len(items), MaxItems)
	}
	c := compiler{lists: map[string]any{}, macros: map[string]string{}}
	set := &Set{}
	names := map[string]bool{}
	for i, it := range items {
		r, err := c.add(it)
		if err != nil {
			return nil, fmt.Errorf("rules entry %d (%s): %w", i+1, it.name(), err)
		}
		if r == nil {
			continue
		}
		if names[r.Name] {
			return nil, fmt.Errorf("rules entry %d (%s): a rule of that name is already defined", i+1, it.name())
		}
		names[r.Name] = true
		set.Rules = append(set.Rules, r)
	}
	return set, nil
}

func (it item) name() string {
	switch {
	case it.Rule != "":
		return "rule " + it.Rule
	case it.Macro != "":
		return "macro " + it.Macro
	case it.List != "":
		return "list " + it.List
	}
	return "unnamed"
}

// compiler holds the lists and macros defined so far in one Parse.
type compiler struct {
	lists  map[string]any
	macros map[string]string
}

// add compiles one entry; it returns the rule, or nil for a list, a macro
// or a disabled rule.
func (c *compiler) add(it item) (*Rule, error) {
	kinds := 0
	for _, s := range []string{it.List, it.Macro, it.Rule} {
		if s != "" {
			kinds++
		}
	}
	if kinds != 1 {
		return nil, errors.New("want exactly one of list, macro or rule")
	}
	switch {
	case it.List != "":
		if it.Condition != "" || it.Output != "" || it.Priority != "" || it.Desc != "" || it.Tags != nil || it.Enabled != nil {
			return nil, errors.New("a list has only items")
		}
		return nil, c.addList(it.List, it.Items)
	case it.Macro != "":
		if it.Items != nil || it.Output != "" || it.Priority != "" || it.Tags != nil || it.Enabled != nil {
			return nil, errors.New("a macro has only a condition")
		}
		if err := c.checkName(it.Macro); err != nil {
			return nil, err
		}
		if _, err := c.parse(it.Condition); err != nil {
			return nil, err
		}
		c.macros[it.Macro] = it.Condition
		return nil, nil
	}
	if it.Items != nil {
		return nil, errors.New("items: only for a list")
	}
	if it.Output == "" {
		return nil, errors.New("output: required")
	}
	prio, err := ParsePriority(it.Priority)
	if err != nil {
		return nil, err
	}
	tmpl, err := parseTemplate(it.Output)
	if err != nil {
		return nil, fmt.Errorf("output: %w", err)
	}
	prog, types, err := c.compile(it.Condition)
	if err != nil {
		return nil, err
	}
	if it.Enabled != nil && !*it.Enabled {
		return nil, nil
	}
	return &Rule{
		Name: it.Rule, Desc: it.Desc, Priority: prio, Tags: it.Tags,
		output: tmpl, fields: outputFieldNames(tmpl), program: prog, types: types,
	}, nil
}

// checkName refuses a list or macro name that is not an identifier or that
// would shadow a field group or an earlier list or macro.
func (c *compiler) checkName(name string) error {
	if !identifier.MatchString(name) {
		return fmt.Errorf("name %q: want letters, digits and '_'", name)
	}
	switch name {
	case "evt", "proc", "user", "group", "fd", "container", "k8s":
		return fmt.Errorf("name %q: a field group of the condition language", name)
	}
	if _, ok := c.lists[name]; ok {
		return fmt.Errorf("name %q: already a list", name)
	}
	if _, ok := c.macros[name]; ok {
		return fmt.Errorf("name %q: already a macro", name)
	}
	return nil
}

// addList records a list. Items of one kind keep their type ([]string, or
// []int for ports and ids) so that `x in list` type-checks against the
// field it is compared with.
func (c *compiler) addList(name string, items []any) error {
	if err := c.checkName(name); err != nil {
		return err
	}
	if len(items) > MaxListItems {
		return fmt.Errorf("%d items, more than %d", len(items), MaxListItems)
	}
	strs, ints := make([]string, 0, len(items)), make([]int, 0, len(items))
	for _, v := range items {
		switch v := v.(type) {
		case string:
			strs = append(strs, v)
		case int:
			ints = append(ints, v)
		default:
			return fmt.Errorf("items: %v is neither a string nor an integer", v)
		}
	}
	switch {
	case len(ints) == 0:
		c.lists[name] = strs
	case len(strs) == 0:
		c.lists[name] = ints
	default:
		return errors.New("items: mixes strings and integers")
	}
	return nil
}

// parse checks a macro's condition on its own: it must parse, and its
// lists and macros must expand within the bounds.
func (c *compiler) parse(cond string) (*parser.Tree, error) {
	x := &expander{c: c, budget: new(int)}
	return x.expand(cond, 0)
}

// expander replaces list and macro names in a syntax tree. budget counts
// the nodes of the whole expansion: a macro used twice in a macro used
// twice, and so on, would otherwise grow a condition exponentially.
type expander struct {
	c      *compiler
	depth  int
	budget *int
	err    error
}

// expand parses cond and expands what it names.
func (x *expander) expand(cond string, depth int) (*parser.Tree, error) {
	if strings.TrimSpace(cond) == "" {
		return nil, errors.New("condition: required")
	}
	if len(cond) > MaxConditionSize {
		return nil, fmt.Errorf("condition: %d bytes, more than %d", len(cond), MaxConditionSize)
	}
	// Macros name only earlier macros, so depth is bounded by their
	// number; the check keeps a future change from recursing unbounded.
	if depth > MaxItems {
		return nil, errors.New("condition: macros nested too deep")
	}
	tree, err := parser.Parse(cond)
	if err != nil {
		return nil, fmt.Errorf("condition: %w", err)
	}
	sub := &expander{c: x.c, depth: depth, budget: x.budget}
	ast.Walk(&tree.Node, sub)
	if sub.err != nil {
		return nil, sub.err
	}
	return tree, nil
}

func (x *expander) Visit(node *ast.Node) {
	if x.err != nil {
		return
	}
	if *x.budget++; *x.budget > maxNodes {
		x.err = fmt.Errorf("condition: more than %d nodes once lists and macros are expanded", maxNodes)
		return
	}
	id, ok := (*node).(*ast.IdentifierNode)
	if !ok {
		return
	}
	if v, ok := x.c.lists[id.Value]; ok {
		ast.Patch(node, &ast.ConstantNode{Value: v})
		return
	}
	if m, ok := x.c.macros[id.Value]; ok {
		t, err := x.expand(m, x.depth+1)
		if err != nil {
			x.err = fmt.Errorf("macro %s: %w", id.Value, err)
			return
		}
		ast.Patch(node, t.Node)
	}
}

// compile type-checks a condition against Event, with lists and macros
// expanded by a patcher, and compiles it. types are the event types it can
// match (nil: any).
func (c *compiler) compile(cond string) (*vm.Program, []string, error) {
	tree, err := c.parse(cond)
	if err != nil {
		return nil, nil, err
	}
	x := &expander{c: c, budget: new(int)}
	prog, err := expr.Compile(cond, expr.Env(Event{}), expr.AsBool(), expr.MaxNodes(maxNodes), expr.Patch(x))
	if x.err != nil {
		return nil, nil, x.err
	}
	if err != nil {
		return nil, nil, fmt.Errorf("condition: %w", err)
	}
	return prog, evtTypes(tree.Node), nil
}
