package shim

import (
	"os"
	"strings"
	"testing"
)

func TestRepoConfigParses(t *testing.T) {
	c, err := LoadConfig("../config.toml")
	if err != nil {
		t.Fatalf("the documented config.toml must parse: %v", err)
	}
	name, h, err := c.Handler("")
	if err != nil {
		t.Fatal(err)
	}
	if name != "gvisor" || h.Backend != BackendRunsc {
		t.Fatalf("default handler = %q (%s), want gvisor on runsc", name, h.Backend)
	}
	if _, h, err := c.Handler("gvisor-strict"); err != nil || h.Policy.OverCeiling != "refuse" {
		t.Fatalf("gvisor-strict: %v, over_ceiling %q", err, h.Policy.OverCeiling)
	}
}

func TestConfigErrorsNameTheField(t *testing.T) {
	for _, tc := range []struct {
		name, toml, want string
	}{
		{"unknown top key", "defualt_handler = \"x\"\n[handlers.a]\nbackend = \"runsc\"\n", "defualt_handler"},
		{"unknown handler key", "[handlers.a]\nbackend = \"runsc\"\nbakend = \"x\"\n", "handlers.a.bakend"},
		{"unknown runsc key", "[handlers.a]\nbackend = \"runsc\"\n[handlers.a.runsc]\nplatfrom = \"kvm\"\n", "handlers.a.runsc.platfrom"},
		{"missing backend", "[handlers.a]\nlog_level = \"info\"\n", "handlers.a.backend"},
		{"unknown backend", "[handlers.a]\nbackend = \"lxc\"\n", `unknown backend "lxc"`},
		{"bad platform", "[handlers.a]\nbackend = \"runsc\"\n[handlers.a.runsc]\nplatform = \"vm\"\n", "handlers.a.runsc.platform"},
		{"managed flag", "[handlers.a]\nbackend = \"runsc\"\n[handlers.a.runsc.flags]\noci-seccomp = \"false\"\n", "handlers.a.runsc.flags.oci-seccomp"},
		{"flag with dashes", "[handlers.a]\nbackend = \"runsc\"\n[handlers.a.runsc.flags]\n\"--debug\" = \"true\"\n", "handlers.a.runsc.flags.--debug"},
		{"relative root", "[handlers.a]\nbackend = \"runsc\"\n[handlers.a.runsc]\nroot = \"run/x\"\n", "handlers.a.runsc.root"},
		{"bad log level", "[handlers.a]\nbackend = \"runsc\"\nlog_level = \"loud\"\n", "handlers.a.log_level"},
		{"unknown images key", "[handlers.a]\nbackend = \"runsc\"\n[handlers.a.policy.images]\nallow_latest = true\n", "handlers.a.policy.images.allow_latest"},
		{"bad image pattern", "[handlers.a]\nbackend = \"runsc\"\n[handlers.a.policy.images]\nallow = [\"nginx\"]\n", "handlers.a.policy.images.allow[0]"},
		{"default names nothing", "default_handler = \"b\"\n[handlers.a]\nbackend = \"runsc\"\n", "default_handler"},
		{"no handlers", "default_handler = \"\"\n", "no handler defined"},
		{"wrong type", "[handlers.a]\nbackend = 3\n", "line 2"},
		{"unknown policy key", "[handlers.a]\nbackend = \"runsc\"\n[handlers.a.policy]\nsecomp = \"none\"\n", "handlers.a.policy.secomp"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := ParseConfig([]byte(tc.toml))
			if err == nil {
				t.Fatalf("accepted:\n%s", tc.toml)
			}
			if !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("error %q does not name %q", err, tc.want)
			}
		})
	}
}

func TestHandlerSelection(t *testing.T) {
	c, err := ParseConfig([]byte("[handlers.a]\nbackend = \"runsc\"\n[handlers.b]\nbackend = \"runsc\"\n"))
	if err != nil {
		t.Fatal(err)
	}
	if _, _, err := c.Handler(""); err == nil {
		t.Fatal("two handlers and no default: an empty name must not pick one at random")
	}
	if n, _, err := c.Handler("b"); err != nil || n != "b" {
		t.Fatalf("Handler(b) = %q, %v", n, err)
	}
	if _, _, err := c.Handler("c"); err == nil || !strings.Contains(err.Error(), `"c"`) {
		t.Fatalf("unknown handler: %v", err)
	}
	single, err := ParseConfig([]byte("[handlers.only]\nbackend = \"runsc\"\n"))
	if err != nil {
		t.Fatal(err)
	}
	if n, _, err := single.Handler(""); err != nil || n != "only" {
		t.Fatalf("a single handler serves by default: %q, %v", n, err)
	}
}

func FuzzParseConfig(f *testing.F) {
	if data, err := os.ReadFile("../config.toml"); err == nil {
		f.Add(data)
	}
	f.Add([]byte("[handlers.a]\nbackend = \"runsc\"\n[handlers.a.runsc.flags]\nx = \"1\"\n"))
	f.Add([]byte("default_handler = \"a\"\n[handlers.a]\nbackend = \"runsc\"\n[handlers.a.policy]\nseccomp = \"none\"\n"))
	f.Fuzz(func(t *testing.T, data []byte) {
		c, err := ParseConfig(data)
		if err != nil {
			if c != nil {
				t.Fatal("a config returned with an error")
			}
			return
		}
		// Whatever parses must be usable: every handler valid, and the
		// default (if any) resolvable.
		if err := c.Validate(); err != nil {
			t.Fatalf("parsed config fails validation: %v", err)
		}
		for name := range c.Handlers {
			if _, h, err := c.Handler(name); err != nil || h.Backend == "" {
				t.Fatalf("handler %q unusable: %v", name, err)
			}
		}
	})
}

// TestRepoConfigImageExample: the commented image policy example in
// config.toml, uncommented, is a valid policy that does what it says.
func TestRepoConfigImageExample(t *testing.T) {
	data, err := os.ReadFile("../config.toml")
	if err != nil {
		t.Fatal(err)
	}
	text := string(data)
	i := strings.Index(text, "# [handlers.gvisor-strict.policy.images]")
	if i < 0 {
		t.Fatal("config.toml has no image policy example")
	}
	var lines []string
	for _, l := range strings.Split(text[i:], "\n") {
		if !strings.HasPrefix(l, "# ") {
			break
		}
		lines = append(lines, strings.TrimPrefix(l, "# "))
	}
	c, err := ParseConfig([]byte(text[:i] + strings.Join(lines, "\n") + "\n"))
	if err != nil {
		t.Fatalf("the example does not parse: %v", err)
	}
	_, h, _ := c.Handler("gvisor-strict")
	floor, err := loadFloor(h.Policy)
	if err != nil || !floor.HasImagePolicy() || !h.Policy.Images.RequireDigest {
		t.Fatalf("example: %v, %+v", err, h.Policy.Images)
	}
	for _, n := range []string{"gvisor", "gvisor-strict", "runc-floor"} {
		_, h, _ := c.Handler(n)
		if f, _ := loadFloor(h.Policy); f.HasImagePolicy() != (n == "gvisor-strict") {
			t.Errorf("%s: image policy %v", n, f.HasImagePolicy())
		}
	}
}

func TestMonitoringConfig(t *testing.T) {
	base := "[handlers.g]\nbackend = \"runsc\"\n[handlers.g.monitoring]\n"
	ok := []string{
		"enabled = true\n",
		"enabled = true\non_setup_error = \"continue\"\npoints = [\"sentry/execve\"]\nalert_file = \"-\"\nretries = 0\n",
		"enabled = false\n",
	}
	for _, c := range ok {
		if _, err := ParseConfig([]byte(base + c)); err != nil {
			t.Errorf("%q: %v", c, err)
		}
	}
	bad := map[string]string{
		"enabled = true\nbogus = 1\n":                                          "bogus",
		"enabled = true\non_setup_error = \"ignore\"\n":                        "on_setup_error",
		"enabled = true\nrules_file = \"rules.yaml\"\n":                        "rules_file",
		"enabled = true\npoints = [\"Syscall/open\"]\n":                        "points",
		"enabled = true\nsocket_dir = \"/" + strings.Repeat("d", 100) + "\"\n": "socket_dir",
		"on_setup_error = \"fail\"\n":                                          "enabled is not true",
		"enabled = true\nretries = -1\n":                                       "retries",
	}
	for c, want := range bad {
		_, err := ParseConfig([]byte(base + c))
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("%q: err %v, want one naming %q", c, err, want)
		}
	}
	shim := "[handlers.s]\nbackend = \"shim\"\n[handlers.s.shim]\nbinary = \"containerd-shim-runc-v2\"\n[handlers.s.monitoring]\nenabled = true\n"
	if _, err := ParseConfig([]byte(shim)); err == nil || !strings.Contains(err.Error(), "only for backend") {
		t.Errorf("monitoring on a delegate: %v", err)
	}
}
