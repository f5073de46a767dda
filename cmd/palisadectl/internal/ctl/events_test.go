package ctl

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

const alertWeb = `{"time":"2026-12-04T06:00:00Z","rule":"Read sensitive file untrusted","priority":"Warning","output":"06:00:00: Warning Sensitive file opened for reading (file=/etc/shadow)","source":"syscall","tags":[],"output_fields":{"container.id":"web-app","k8s.pod.name":"web","k8s.ns.name":"team-a"}}`
const alertDB = `{"time":"2026-12-04T06:00:01Z","rule":"Terminal shell in container","priority":"Notice","output":"06:00:01: Notice A shell was spawned","source":"syscall","tags":[],"output_fields":{"container.id":"db-app","k8s.pod.name":"db","k8s.ns.name":"team-a"}}`

func TestEventsPrintsAndFilters(t *testing.T) {
	dir := t.TempDir()
	alerts := filepath.Join(dir, "alerts.jsonl")
	// A long garbage line and a partial last line are skipped.
	body := alertWeb + "\n" + strings.Repeat("x", maxAlertLine+10) + "\n" + alertDB + "\n" + `{"rule":"partial`
	if err := os.WriteFile(alerts, []byte(body), 0o600); err != nil {
		t.Fatal(err)
	}
	cfg := writeConfig(t, "[handlers.g]\nbackend = \"runsc\"\n[handlers.g.monitoring]\nenabled = true\nalert_file = \""+alerts+"\"\n")
	code, out, errOut := runCtl(t, testEnv(t), "events", "--config", cfg)
	if code != 0 || !strings.Contains(out, "Read sensitive file untrusted pod=team-a/web container=web-app") ||
		!strings.Contains(out, "Terminal shell in container pod=team-a/db container=db-app") || strings.Contains(out, "partial") {
		t.Fatalf("events: %d %q %q", code, out, errOut)
	}
	code, out, _ = runCtl(t, testEnv(t), "events", "--file", alerts, "--pod", "db")
	if code != 0 || strings.Contains(out, "web-app") || !strings.Contains(out, "db-app") {
		t.Fatalf("events --pod db: %d %q", code, out)
	}
	code, out, _ = runCtl(t, testEnv(t), "events", "--file", alerts, "--json", "--pod", "web")
	if code != 0 || strings.TrimSpace(out) != alertWeb {
		t.Fatalf("events --json: %d %q", code, out)
	}
}

func TestEventsNeedsAMonitoredHandler(t *testing.T) {
	cfg := writeConfig(t, "[handlers.g]\nbackend = \"runsc\"\n")
	if code, _, errOut := runCtl(t, testEnv(t), "events", "--config", cfg); code == 0 || !strings.Contains(errOut, "monitoring") {
		t.Fatalf("events without monitoring: %d %q", code, errOut)
	}
}

func TestPolicyCheckLoadsMonitoringRules(t *testing.T) {
	rules := filepath.Join(t.TempDir(), "rules.yaml")
	if err := os.WriteFile(rules, []byte("- rule: r\n  condition: proc.nam == \"x\"\n  output: x\n  priority: INFO\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	cfg := writeConfig(t, "[handlers.g]\nbackend = \"runsc\"\n[handlers.g.monitoring]\nenabled = true\nrules_file = \""+rules+"\"\n")
	code, out, _ := runCtl(t, testEnv(t), "policy", "check", cfg)
	if code == 0 || !strings.Contains(out, "monitoring.rules_file") || !strings.Contains(out, "rule r") {
		t.Fatalf("policy check with a broken rules file: %d %q", code, out)
	}
	ok := writeConfig(t, "[handlers.g]\nbackend = \"runsc\"\n[handlers.g.monitoring]\nenabled = true\n")
	if code, out, _ := runCtl(t, testEnv(t), "policy", "check", ok); code != 0 {
		t.Fatalf("policy check with the shipped rules: %d %q", code, out)
	}
}

// printAlerts follows a file across its rotation: the new file is read from
// its start even when it has grown past the old one's offset.
func TestEventsFollowsRotation(t *testing.T) {
	path := filepath.Join(t.TempDir(), "alerts.jsonl")
	if err := os.WriteFile(path, []byte(alertWeb+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	var out strings.Builder
	e := env{stdout: &out}
	pos, err := e.printAlerts(path, readPos{}, eventFilter{})
	if err != nil || !strings.Contains(out.String(), "web-app") {
		t.Fatalf("first read: %v %q", err, out.String())
	}
	if err := os.Rename(path, path+".1"); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, []byte(alertDB+"\n"+alertDB+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	out.Reset()
	if _, err := e.printAlerts(path, pos, eventFilter{}); err != nil || strings.Count(out.String(), "db-app") != 2 {
		t.Fatalf("after rotation: %v %q", err, out.String())
	}
}
