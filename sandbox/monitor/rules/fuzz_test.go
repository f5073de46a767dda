package rules

import "testing"

// FuzzParse feeds arbitrary rules files to the parser and the compiled
// rules to an event: neither may panic, and a file that parses must
// evaluate without a run-time error.
func FuzzParse(f *testing.F) {
	f.Add(DefaultRules())
	f.Add([]byte("- rule: r\n  condition: proc.name in [\"sh\"] and fd.name startsWith \"/etc\"\n  output: \"%proc.name %%\"\n  priority: INFO\n"))
	f.Add([]byte("- list: l\n  items: [1, 2]\n- macro: m\n  condition: fd.sport in l\n- rule: r\n  condition: m or not m\n  output: x\n  priority: debug\n"))
	f.Fuzz(func(t *testing.T, data []byte) {
		s, err := Parse(data)
		if err != nil {
			return
		}
		for _, e := range []*Event{exec("sh", "-c", "x"), open("/etc/shadow", false), connect("10.0.0.1", 80, 0), {}} {
			if _, err := s.Match(e); err != nil {
				t.Fatalf("match: %v", err)
			}
		}
	})
}
