package integration

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// palisadeRunsc is Palisade on gVisor with the handler policy given as the
// body of a [handlers.<name>.policy] table (empty: no floor). The config is
// written per containerd so runsc's state lives in the env's RuntimeRoot,
// where the leak check looks.
func palisadeRunsc(name, policy string) runtimeUnderTest {
	return runtimeUnderTest{
		Name:          name,
		RuntimeType:   "io.containerd.palisade.v2",
		Tools:         []string{"runsc"},
		NeedsPalisade: true,
		ConfigFor: func(t testing.TB, e *containerdEnv) string {
			t.Helper()
			return writePalisadeConfig(t, e, name, policy)
		},
	}
}

// writePalisadeConfig writes a config.toml whose default handler is name.
func writePalisadeConfig(t testing.TB, e *containerdEnv, name, policy string) string {
	t.Helper()
	runsc, err := lookupTool("runsc")
	if err != nil {
		t.Fatal(err)
	}
	cfg := fmt.Sprintf(`default_handler = %q
[handlers.%s]
backend = "runsc"
log_level = "debug"
[handlers.%s.runsc]
binary = %q
root = %q
[handlers.%s.policy]
%s
`, name, name, name, runsc, e.RuntimeRoot, name, policy)
	path := filepath.Join(e.Dir, name+".toml")
	if err := os.WriteFile(path, []byte(cfg), 0o644); err != nil {
		t.Fatal(err)
	}
	return path
}

// The default floor of the repo's config.toml, as a policy table body.
const defaultFloor = `seccomp = "runtime-default"
no_new_privileges = true
over_ceiling = "clamp"
[handlers.%[1]s.policy.capabilities]
ceiling = ["CAP_CHOWN", "CAP_DAC_OVERRIDE", "CAP_FSETID", "CAP_FOWNER", "CAP_MKNOD", "CAP_NET_RAW", "CAP_SETGID", "CAP_SETUID", "CAP_SETFCAP", "CAP_SETPCAP", "CAP_NET_BIND_SERVICE", "CAP_SYS_CHROOT", "CAP_KILL", "CAP_AUDIT_WRITE"]
drop = ["CAP_NET_RAW"]`

func floorFor(name string) string { return fmt.Sprintf(defaultFloor, name) }

// palisadeBackends are the Palisade rows every task-API test runs on.
func palisadeBackends() []runtimeUnderTest {
	return []runtimeUnderTest{palisadeRunsc("palisade-runsc", floorFor("palisade-runsc"))}
}

// decisionRecord reads the decision record Palisade left in a bundle.
func decisionRecord(t testing.TB, e *containerdEnv, id string) string {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(e.StateDir, "io.containerd.runtime.v2.task", e.Namespace, id, "palisade-decision.json"))
	if err != nil {
		t.Fatalf("decision record of %s: %v", id, err)
	}
	return string(b)
}

// statusField returns the value of a /proc/self/status line such as "Seccomp".
func statusField(status, key string) string {
	for _, line := range strings.Split(status, "\n") {
		if k, v, ok := strings.Cut(line, ":"); ok && k == key {
			return strings.TrimSpace(v)
		}
	}
	return ""
}
