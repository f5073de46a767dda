package rules

import "testing"

// FuzzParse feeds arbitrary rules files to the parser and the compiled
// rules to events: neither may panic, a file that parses must evaluate
// without a run-time error, and the evt.type prefilter must fire exactly
// the rules that running every rule fires.
func FuzzParse(f *testing.F) {
	f.Add(DefaultRules())
	f.Add([]byte("- rule: r\n  condition: proc.name in [\"sh\"] and fd.name startsWith \"/etc\"\n  output: \"%proc.name %%\"\n  priority: INFO\n"))
	f.Add([]byte("- list: l\n  items: [1, 2]\n- macro: m\n  condition: fd.sport in l\n- rule: r\n  condition: m or not m\n  output: x\n  priority: debug\n"))
	f.Add([]byte("- list: t\n  items: [openat, connect]\n- rule: r\n  condition: evt.type in t and (evt.type == \"connect\" or fd.name != \"\")\n  output: x\n  priority: info\n"))
	f.Fuzz(func(t *testing.T, data []byte) {
		s, err := Parse(data)
		if err != nil {
			return
		}
		all := unfiltered(s)
		for _, e := range []*Event{exec("sh", "-c", "x"), open("/etc/shadow", false), connect("10.0.0.1", 80, 0), {}} {
			got, err := s.Match(e)
			if err != nil {
				t.Fatalf("match: %v", err)
			}
			want, _ := all.Match(e)
			if !sameAlerts(got, want) {
				t.Fatalf("prefiltered %v, every rule %v", got, want)
			}
		}
	})
}
