package rules

import (
	"slices"
	"testing"
)

// Every shipped rule names the event types it looks at, so that Match runs
// only the rules an event's type allows.
func TestDefaultRulesArePrefiltered(t *testing.T) {
	for _, r := range defaultSet(t).Rules {
		if len(r.types) == 0 {
			t.Errorf("rule %q: no event types found (%v): it runs on every point", r.Name, r.types)
		}
	}
}

func TestEvtTypes(t *testing.T) {
	cases := map[string][]string{
		`evt.type == "open"`:                                        {"open"},
		`evt.type in ["b", "a"] and proc.name == "x"`:               {"a", "b"},
		`evt.type == "a" or evt.type == "b"`:                        {"a", "b"},
		`evt.type == "a" or proc.name == "x"`:                       nil,
		`not (evt.type == "a")`:                                     nil,
		`evt.type != "a"`:                                           nil,
		`evt.type in ["a", "b"] and evt.type in ["b", "c"]`:         {"b"},
		`evt.type == "a" and evt.type == "b"`:                       {},
		`proc.name == "x" and (evt.type == "a" or evt.type == "c")`: {"a", "c"},
	}
	for cond, want := range cases {
		c := compiler{lists: map[string]any{}, macros: map[string]string{}}
		tree, err := c.parse(cond)
		if err != nil {
			t.Fatalf("%s: %v", cond, err)
		}
		got := evtTypes(tree.Node)
		if (got == nil) != (want == nil) || !slices.Equal(got, want) {
			t.Errorf("%s: types %#v, want %#v", cond, got, want)
		}
	}
}

// unfiltered is s with the prefilter off: every rule runs on every event.
func unfiltered(s *Set) *Set {
	u := &Set{}
	for _, r := range s.Rules {
		c := *r
		c.types = nil
		u.Rules = append(u.Rules, &c)
	}
	return u
}

// sameAlerts compares the rules two Match results fired.
func sameAlerts(a, b []AlertRecord) bool {
	return slices.EqualFunc(a, b, func(x, y AlertRecord) bool { return x.Rule == y.Rule })
}

// BenchmarkMatch runs the shipped rules on an openat exit of an ordinary
// file (the commonest point, and no rule fires), with the evt.type
// prefilter and without it.
func BenchmarkMatch(b *testing.B) {
	s, err := Parse(DefaultRules())
	if err != nil {
		b.Fatal(err)
	}
	e := open("/var/lib/app/data", false)
	for name, set := range map[string]*Set{"prefiltered": s, "every-rule": unfiltered(s)} {
		b.Run(name, func(b *testing.B) {
			for range b.N {
				if _, err := set.Match(e); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
