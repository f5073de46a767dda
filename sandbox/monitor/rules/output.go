package rules

import (
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/expr-lang/expr/vm"
)

// Priority is a rule's severity, Falco's syslog-like levels.
type Priority int

// Priorities, most severe first, as Falco orders them.
const (
	Emergency Priority = iota
	Alert
	Critical
	Error
	Warning
	Notice
	Informational
	Debug
)

// priorityNames are the spellings Falco prints in its JSON output.
func priorityNames() []string {
	return []string{"Emergency", "Alert", "Critical", "Error", "Warning", "Notice", "Informational", "Debug"}
}

// ParsePriority reads a priority in any case; "INFO" is Falco's alias.
func ParsePriority(s string) (Priority, error) {
	if strings.EqualFold(s, "info") {
		return Informational, nil
	}
	for i, n := range priorityNames() {
		if strings.EqualFold(s, n) {
			return Priority(i), nil
		}
	}
	return 0, fmt.Errorf("priority %q: want one of %s", s, strings.Join(priorityNames(), ", "))
}

func (p Priority) String() string {
	if names := priorityNames(); p >= 0 && int(p) < len(names) {
		return names[p]
	}
	return "Priority(" + strconv.Itoa(int(p)) + ")"
}

// template is an output template: literal text and %field references.
type template []part

type part struct {
	text  string
	field string // a field name, or "" for literal text
}

// parseTemplate splits Falco's output syntax: "%proc.name" names a field;
// "%%" is a literal percent sign. A name that is not a field is an error, so
// a typo is found when the rules load, not when the alert is written.
func parseTemplate(s string) (template, error) {
	if strings.TrimSpace(s) == "" {
		return nil, errors.New("empty")
	}
	var t template
	lit := strings.Builder{}
	for i := 0; i < len(s); i++ {
		if s[i] != '%' {
			lit.WriteByte(s[i])
			continue
		}
		if i+1 < len(s) && s[i+1] == '%' {
			lit.WriteByte('%')
			i++
			continue
		}
		j := i + 1
		for j < len(s) && (s[j] >= 'a' && s[j] <= 'z' || s[j] >= '0' && s[j] <= '9' || s[j] == '_' || s[j] == '.') {
			j++
		}
		// A sentence may end right after a field: "... in %container.id."
		name := strings.TrimRight(s[i+1:j], ".")
		j = i + 1 + len(name)
		if !isField(name) {
			return nil, fmt.Errorf("%%%s: not a field", name)
		}
		if lit.Len() > 0 {
			t = append(t, part{text: lit.String()})
			lit.Reset()
		}
		t = append(t, part{field: name})
		i = j - 1
	}
	if lit.Len() > 0 {
		t = append(t, part{text: lit.String()})
	}
	return t, nil
}

// render fills the template from e. Empty values print as Falco's "<NA>".
func (t template) render(e *Event) string {
	var b strings.Builder
	for _, p := range t {
		if p.field == "" {
			b.WriteString(p.text)
			continue
		}
		b.WriteString(formatValue(e, p.field))
	}
	return b.String()
}

func formatValue(e *Event, name string) string {
	v, _ := e.Field(name)
	switch v := v.(type) {
	case string:
		if v == "" {
			return "<NA>"
		}
		return v
	case int64:
		return strconv.FormatInt(v, 10)
	case bool:
		return strconv.FormatBool(v)
	}
	return fmt.Sprint(v)
}

// AlertRecord is one alert in Falco's JSON output format, so that tools that
// read Falco's output (falcosidekick, for one) read Palisade's.
type AlertRecord struct {
	Time         string         `json:"time"`
	Rule         string         `json:"rule"`
	Priority     string         `json:"priority"`
	Output       string         `json:"output"`
	Source       string         `json:"source"`
	Tags         []string       `json:"tags"`
	Hostname     string         `json:"hostname,omitempty"`
	OutputFields map[string]any `json:"output_fields"`
}

// Source is the event source Palisade's alerts name: the syscalls Falco's
// gVisor engine also reported as "syscall".
const Source = "syscall"

// Match evaluates every rule against e and returns an alert for each that
// fires. A rule whose condition fails at run time (it cannot, once
// type-checked, short of a bug) does not fire; its error is returned
// alongside the alerts of the other rules.
func (s *Set) Match(e *Event) ([]AlertRecord, error) {
	var alerts []AlertRecord
	var errs []error
	var machine vm.VM
	for _, r := range s.Rules {
		if r.types != nil {
			if _, ok := slices.BinarySearch(r.types, e.Evt.Type); !ok {
				continue
			}
		}
		out, err := machine.Run(r.program, e)
		if err != nil {
			errs = append(errs, fmt.Errorf("rule %s: %w", r.Name, err))
			continue
		}
		if fired, _ := out.(bool); fired {
			alerts = append(alerts, r.alert(e))
		}
	}
	return alerts, errors.Join(errs...)
}

// alert builds the record of r firing on e.
func (r *Rule) alert(e *Event) AlertRecord {
	fields := make(map[string]any, len(r.fields))
	for _, n := range r.fields {
		v, _ := e.Field(n)
		if s, ok := v.(string); ok && s == "" {
			v = nil // Falco reports a missing value as null
		}
		fields[n] = v
	}
	fields["evt.time"] = e.Evt.Time
	return AlertRecord{
		Time:         time.Unix(0, e.Evt.Time).UTC().Format(time.RFC3339Nano),
		Rule:         r.Name,
		Priority:     r.Priority.String(),
		Output:       time.Unix(0, e.Evt.Time).UTC().Format("15:04:05.000000000") + ": " + r.Priority.String() + " " + r.output.render(e),
		Source:       Source,
		Tags:         append([]string{}, r.Tags...),
		OutputFields: fields,
	}
}
