package shim

import (
	"strings"
	"testing"
)

func TestRuntimeClassValidate(t *testing.T) {
	for _, tc := range []struct {
		rc   RuntimeClass
		want string // "" = valid
	}{
		{RuntimeClass{}, ""},
		{RuntimeClass{OverheadMemory: "40Mi", OverheadCPU: "10m"}, ""},
		{RuntimeClass{OverheadMemory: "1.5Gi", OverheadCPU: "0.25"}, ""},
		{RuntimeClass{OverheadMemory: "128974848", OverheadCPU: "1e3m"}, "overhead_cpu"},
		{RuntimeClass{OverheadMemory: "12e6", OverheadCPU: "1E"}, ""},
		{RuntimeClass{OverheadMemory: "40MB"}, `overhead_memory: "40MB" is not a Kubernetes quantity`},
		{RuntimeClass{OverheadMemory: "40m"}, `did you mean "40Mi"`},
		{RuntimeClass{OverheadCPU: "-1"}, "overhead_cpu"},
		{RuntimeClass{OverheadCPU: "10 m"}, "overhead_cpu"},
		{RuntimeClass{NodeSelector: map[string]string{"palisade.io/runsc": "true", "kubernetes.io/arch": "amd64", "plain": ""}}, ""},
		{RuntimeClass{NodeSelector: map[string]string{"Bad_Prefix/x": "y"}}, "node_selector.Bad_Prefix/x: label key prefix"},
		{RuntimeClass{NodeSelector: map[string]string{"a/b/c": "y"}}, "label key name"},
		{RuntimeClass{NodeSelector: map[string]string{"-x": "y"}}, "label key name"},
		{RuntimeClass{NodeSelector: map[string]string{"x": "not ok"}}, `node_selector.x: label value "not ok"`},
		{RuntimeClass{NodeSelector: map[string]string{"x": strings.Repeat("v", 64)}}, "at most 63"},
	} {
		err := tc.rc.validate()
		switch {
		case tc.want == "" && err != nil:
			t.Errorf("%+v: %v", tc.rc, err)
		case tc.want != "" && (err == nil || !strings.Contains(err.Error(), tc.want)):
			t.Errorf("%+v: err = %v, want one containing %q", tc.rc, err, tc.want)
		}
	}
}

func TestConfigRuntimeClassKeys(t *testing.T) {
	c, err := ParseConfig([]byte(`
[handlers.g]
backend = "runsc"
[handlers.g.runtimeclass]
overhead_memory = "40Mi"
overhead_cpu = "10m"
node_selector = { "palisade.io/runsc" = "true" }
`))
	if err != nil {
		t.Fatal(err)
	}
	rc := c.Handlers["g"].RuntimeClass
	if rc.OverheadMemory != "40Mi" || rc.OverheadCPU != "10m" || rc.NodeSelector["palisade.io/runsc"] != "true" {
		t.Errorf("decoded %+v", rc)
	}
	_, err = ParseConfig([]byte("[handlers.g]\nbackend = \"runsc\"\nruntimeclass.overhead_mem = \"1Mi\"\n"))
	if err == nil || !strings.Contains(err.Error(), "handlers.g.runtimeclass.overhead_mem") {
		t.Errorf("typo: %v", err)
	}
	_, err = ParseConfig([]byte("[handlers.g]\nbackend = \"runsc\"\nruntimeclass.overhead_cpu = \"lots\"\n"))
	if err == nil || !strings.Contains(err.Error(), "handlers.g.runtimeclass.overhead_cpu") {
		t.Errorf("bad quantity: %v", err)
	}
}

// FuzzRuntimeClassValidate: the validators never panic, and what they accept
// has the shape Kubernetes needs (no sign, no space, short label parts).
func FuzzRuntimeClassValidate(f *testing.F) {
	for _, s := range []string{"40Mi", "10m", "1e3", ".5", "1.", "palisade.io/runsc", "a/b", "", "-", "1E", "x/"} {
		f.Add(s, s)
	}
	f.Fuzz(func(t *testing.T, q, label string) {
		if checkQuantity(q) == nil && strings.ContainsAny(q, "+- \t\n") && !strings.ContainsAny(q, "eE") {
			t.Errorf("accepted quantity %q", q)
		}
		if checkLabelKey(label) == nil {
			_, name, ok := strings.Cut(label, "/")
			if !ok {
				name = label
			}
			if name == "" || len(name) > 63 || strings.ContainsAny(label, " \t\n\"'") {
				t.Errorf("accepted label key %q", label)
			}
		}
		if checkLabelValue(label) == nil && (len(label) > 63 || strings.ContainsAny(label, "/ \"")) {
			t.Errorf("accepted label value %q", label)
		}
		_ = RuntimeClass{OverheadMemory: q, OverheadCPU: q, NodeSelector: map[string]string{label: label}}.validate()
	})
}
