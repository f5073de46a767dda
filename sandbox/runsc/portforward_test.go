package runsc

import (
	"encoding/json"
	"strings"
	"testing"
)

func TestPodNetNS(t *testing.T) {
	spec := func(js string) bundleSpec {
		var bs bundleSpec
		if err := json.Unmarshal([]byte(js), &bs); err != nil {
			t.Fatal(err)
		}
		return bs
	}
	const ns = `"linux":{"namespaces":[{"type":"pid"},{"type":"network","path":"/var/run/netns/cni-1"}]}`
	for _, tc := range []struct {
		name, js, want string
	}{
		{"pod sandbox", `{"annotations":{"io.kubernetes.cri.container-type":"sandbox"},` + ns + `}`, "/var/run/netns/cni-1"},
		{"pod container", `{"annotations":{"io.kubernetes.cri.container-type":"container"},` + ns + `}`, ""},
		{"lone container", `{` + ns + `}`, ""},
		{"host network sandbox", `{"annotations":{"io.kubernetes.cri.container-type":"sandbox"},"linux":{"namespaces":[{"type":"pid"}]}}`, ""},
		{"no linux", `{"annotations":{"io.kubernetes.cri.container-type":"sandbox"}}`, ""},
	} {
		if got := podNetNS(spec(tc.js)); got != tc.want {
			t.Errorf("%s: %q, want %q", tc.name, got, tc.want)
		}
	}
}

func TestPortForwardDir(t *testing.T) {
	c := Config{}.WithDefaults()
	long := strings.Repeat("f", 64)
	d := c.portForwardDir("k8s.io", long)
	if !strings.HasPrefix(d, "/run/palisade/runsc/_portfwd/") || len(d)+21 > maxSocketPath {
		t.Errorf("dir %q: want below <root>/_portfwd, short enough for a socket", d)
	}
	if d == c.portForwardDir("other", long) || d != c.portForwardDir("k8s.io", long) {
		t.Error("dir must be one per namespace and sandbox, and stable (shim delete finds it again)")
	}
}
