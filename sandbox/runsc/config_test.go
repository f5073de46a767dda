package runsc

import (
	"slices"
	"strings"
	"testing"
	"time"
)

func TestGlobalArgs(t *testing.T) {
	c := Config{Flags: map[string]string{"debug-log": "/tmp/x/", "debug": "true"}}.WithDefaults()
	got := c.globalArgs()
	want := []string{"--oci-seccomp", "--platform=systrap", "--network=sandbox", "--debug=true", "--debug-log=/tmp/x/"}
	if !slices.Equal(got, want) {
		t.Fatalf("globalArgs = %q, want %q (sorted extra flags, oci-seccomp always)", got, want)
	}
	r := c.client("k8s.io", "pod", "/b")
	if r.Root != "/run/palisade/runsc/k8s.io/pod" || r.Log != "/b/log.json" || r.Command != "runsc" {
		t.Fatalf("client: root %q log %q command %q", r.Root, r.Log, r.Command)
	}
}

func TestValidateRejects(t *testing.T) {
	for _, tc := range []struct {
		c    Config
		want string
	}{
		{Config{Platform: "xen"}, "runsc.platform"},
		{Config{Network: "bridge"}, "runsc.network"},
		{Config{Root: "relative"}, "runsc.root"},
		{Config{Flags: map[string]string{"oci-seccomp": "false"}}, "runsc.flags.oci-seccomp"},
		{Config{Flags: map[string]string{"root": "/x"}}, "runsc.flags.root"},
		{Config{Flags: map[string]string{"allow-flag-override": "true"}}, "runsc.flags.allow-flag-override"},
		{Config{Flags: map[string]string{"-x": "1"}}, "runsc.flags.-x"},
		{Config{Flags: map[string]string{"a b": "1"}}, "runsc.flags.a b"},
		{Config{CommandTimeout: "soon"}, "runsc.command_timeout"},
		{Config{CommandTimeout: "-1s"}, "runsc.command_timeout"},
		{Config{CommandTimeout: "0s"}, "runsc.command_timeout"},
		{Config{Network: "host", PortForward: ptr(true)}, "runsc.port_forward"},
		{Config{Network: "none", PortForward: ptr(true)}, "runsc.port_forward"},
	} {
		err := tc.c.Validate()
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("Validate(%+v) = %v, want an error naming %q", tc.c, err, tc.want)
		}
	}
	if err := (Config{}).Validate(); err != nil {
		t.Errorf("empty config: %v", err)
	}
}

func TestCommandTimeout(t *testing.T) {
	if got := (Config{}).commandTimeout(); got != DefaultCommandTimeout {
		t.Errorf("default command timeout %v, want %v", got, DefaultCommandTimeout)
	}
	c := Config{CommandTimeout: "1m30s"}
	if err := c.Validate(); err != nil {
		t.Fatal(err)
	}
	if got := c.commandTimeout(); got != 90*time.Second {
		t.Errorf("command_timeout 1m30s: %v", got)
	}
}

func ptr[T any](v T) *T { return &v }

func TestPortForwardDefault(t *testing.T) {
	for _, tc := range []struct {
		c    Config
		want bool
	}{
		{Config{}, true},
		{Config{Network: "sandbox"}, true},
		{Config{Network: "host"}, false},
		{Config{Network: "none"}, false},
		{Config{PortForward: ptr(false)}, false},
		{Config{Network: "host", PortForward: ptr(false)}, false},
		{Config{Network: "sandbox", PortForward: ptr(true)}, true},
	} {
		if err := tc.c.Validate(); err != nil {
			t.Errorf("Validate(%+v): %v", tc.c, err)
		}
		if got := tc.c.portForward(); got != tc.want {
			t.Errorf("portForward(network %q, port_forward %v) = %v, want %v", tc.c.Network, tc.c.PortForward, got, tc.want)
		}
	}
}
