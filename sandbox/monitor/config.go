package monitor

import (
	"encoding/json"
	"errors"
	"fmt"
	"path/filepath"
	"regexp"
	"slices"
)

// Config is a handler's [handlers.<name>.monitoring] table.
type Config struct {
	// Enabled turns runtime monitoring on for every sandbox of the handler.
	Enabled bool `toml:"enabled"`
	// Points are gVisor trace points (`runsc trace metadata` lists them);
	// empty means DefaultPoints. Each gets every context field the rules
	// use.
	Points []string `toml:"points"`
	// RulesFile is a rules file in Falco's YAML shape; empty means the
	// shipped rules (sandbox/monitor/rules/default_rules.yaml).
	RulesFile string `toml:"rules_file"`
	// AlertFile receives the alerts as JSON lines, one file per handler;
	// empty means DefaultAlertDir/<handler>.jsonl. "-" writes no file.
	AlertFile string `toml:"alert_file"`
	// AlertFileMaxBytes rotates AlertFile to AlertFile.1 when it would grow
	// past this size; 0 means DefaultAlertFileMaxBytes.
	AlertFileMaxBytes int64 `toml:"alert_file_max_bytes"`
	// AlertLog also logs every alert through containerd's log (the shim's
	// log, which containerd collects). Default true.
	AlertLog *bool `toml:"alert_log"`
	// AlertRateLimit is how many alerts one rule may raise for one
	// container in a minute; the rest are counted and reported, not
	// written. 0 means no limit. Default DefaultAlertRateLimit.
	AlertRateLimit *int `toml:"alert_rate_limit"`
	// OnSetupError is "fail" (the default: a sandbox whose receiver cannot
	// be set up is not created, so no workload runs unwatched on a
	// monitored handler) or "continue" (create it unwatched, with a
	// warning; the sandbox also ignores a sink it cannot reach).
	OnSetupError string `toml:"on_setup_error"`
	// SocketDir holds the receivers' sockets. A unix socket's address has
	// 108 bytes, too few for paths under containerd's task state, so the
	// sockets live in a short directory of their own, one per sandbox,
	// named by a hash of namespace and sandbox id.
	SocketDir string `toml:"socket_dir"`
	// Retries is how often the sandbox retries a point when the receiver's
	// socket is full before it drops it (and counts it as dropped); each
	// retry waits, so more retries slow the workload under a burst.
	Retries *int `toml:"retries"`
}

// Defaults.
const (
	DefaultAlertDir          = "/var/log/palisade"
	DefaultAlertFileMaxBytes = 16 << 20
	DefaultSocketDir         = "/run/palisade/monitor"
	DefaultRetries           = 3
	DefaultAlertRateLimit    = 60
	OnSetupErrorFail         = "fail"
	OnSetupErrorContinue     = "continue"
)

// DefaultPoints are the points Falco's gVisor configuration enabled: the
// sentry's process life cycle and the enter and exit of the syscalls its
// rules look at (files, sockets, execs, identity changes, chroot), plus
// by number (amd64) mount and umount2 (165, 166) for the mount rule and
// ptrace (101) for the ptrace rule, which have no points of their own.
func DefaultPoints() []string {
	pts := []string{"container/start", "sentry/clone", "sentry/execve", "sentry/exit_notify_parent", "sentry/task_exit"}
	for _, sc := range []string{
		"open", "openat", "creat", "connect", "socket", "bind", "accept", "accept4",
		"execve", "execveat", "setuid", "setgid", "setresuid", "setresgid", "setsid",
		"chroot", "clone", "fork", "vfork", "chdir", "fchdir", "sysno/165", "sysno/166", "sysno/101",
	} {
		pts = append(pts, "syscall/"+sc+"/enter", "syscall/"+sc+"/exit")
	}
	return pts
}

// contextFields are requested on every point: the rules' proc, user and
// container fields come from them.
func contextFields() []string {
	return []string{"time", "thread_id", "group_id", "container_id", "credentials", "cwd", "process_name", "parent_thread_group_id"}
}

// optionalFields are requested where a point has them: fd_path resolves
// openat's relative paths; binary_info gives an exec's path and mode.
func optionalFields(point string) []string {
	switch {
	case point == "sentry/execve":
		return []string{"binary_info"}
	case point == "container/start":
		return nil
	case point == "syscall/openat/enter", point == "syscall/openat/exit",
		point == "syscall/execveat/enter", point == "syscall/execveat/exit",
		point == "syscall/connect/enter", point == "syscall/connect/exit",
		point == "syscall/bind/enter", point == "syscall/bind/exit",
		point == "syscall/accept/enter", point == "syscall/accept/exit",
		point == "syscall/accept4/enter", point == "syscall/accept4/exit",
		point == "syscall/fchdir/enter", point == "syscall/fchdir/exit":
		return []string{"fd_path"}
	}
	return nil
}

var pointName = regexp.MustCompile(`^(container|sentry|syscall)/[a-z0-9_/]+$`)

// Validate checks the table, naming the key as config.toml spells it.
func (c Config) Validate() error {
	switch c.OnSetupError {
	case "", OnSetupErrorFail, OnSetupErrorContinue:
	default:
		return fmt.Errorf("monitoring.on_setup_error: %q: want \"fail\" or \"continue\"", c.OnSetupError)
	}
	for _, p := range c.Points {
		if !pointName.MatchString(p) {
			return fmt.Errorf("monitoring.points: %q is not a trace point name (see runsc trace metadata)", p)
		}
	}
	for _, kv := range [][2]string{{"rules_file", c.RulesFile}, {"socket_dir", c.SocketDir}} {
		if kv[1] != "" && !filepath.IsAbs(kv[1]) {
			return fmt.Errorf("monitoring.%s: %q is not an absolute path", kv[0], kv[1])
		}
	}
	if c.AlertFile != "" && c.AlertFile != "-" && !filepath.IsAbs(c.AlertFile) {
		return fmt.Errorf("monitoring.alert_file: %q is not an absolute path (or \"-\" for none)", c.AlertFile)
	}
	if c.AlertFileMaxBytes < 0 {
		return errors.New("monitoring.alert_file_max_bytes: negative")
	}
	if c.AlertRateLimit != nil && *c.AlertRateLimit < 0 {
		return fmt.Errorf("monitoring.alert_rate_limit: %d: want 0 (no limit) or more", *c.AlertRateLimit)
	}
	if c.Retries != nil && (*c.Retries < 0 || *c.Retries > 100) {
		return fmt.Errorf("monitoring.retries: %d: want 0 to 100", *c.Retries)
	}
	if dir := c.WithDefaults("x").SocketDir; len(dir)+len("/0123456789abcdef.sock") >= 108 {
		return fmt.Errorf("monitoring.socket_dir: %q is too long for a unix socket address", dir)
	}
	if !c.Enabled && !c.isZeroBesidesEnabled() {
		// Settings without enabled = true are almost always a mistake
		// in a security setting: say so rather than ignore them.
		return errors.New("monitoring: settings given but enabled is not true")
	}
	return nil
}

func (c Config) isZeroBesidesEnabled() bool {
	return len(c.Points) == 0 && c.RulesFile == "" && c.AlertFile == "" && c.AlertFileMaxBytes == 0 &&
		c.AlertLog == nil && c.AlertRateLimit == nil && c.OnSetupError == "" && c.SocketDir == "" && c.Retries == nil
}

// WithDefaults fills empty fields; handler names the default alert file.
func (c Config) WithDefaults(handler string) Config {
	if len(c.Points) == 0 {
		c.Points = DefaultPoints()
	}
	if c.AlertFile == "" {
		c.AlertFile = filepath.Join(DefaultAlertDir, handler+".jsonl")
	}
	if c.AlertFileMaxBytes == 0 {
		c.AlertFileMaxBytes = DefaultAlertFileMaxBytes
	}
	if c.AlertLog == nil {
		t := true
		c.AlertLog = &t
	}
	if c.OnSetupError == "" {
		c.OnSetupError = OnSetupErrorFail
	}
	if c.SocketDir == "" {
		c.SocketDir = DefaultSocketDir
	}
	if c.Retries == nil {
		r := DefaultRetries
		c.Retries = &r
	}
	if c.AlertRateLimit == nil {
		l := DefaultAlertRateLimit
		c.AlertRateLimit = &l
	}
	return c
}

// podInitConfig is runsc's --pod-init-config file (runsc/boot's
// InitConfig): one trace session, "Default", with the remote sink.
type podInitConfig struct {
	TraceSession struct {
		Name   string `json:"name"`
		Points []struct {
			Name           string   `json:"name"`
			OptionalFields []string `json:"optional_fields,omitempty"`
			ContextFields  []string `json:"context_fields,omitempty"`
		} `json:"points"`
		Sinks []struct {
			Name             string         `json:"name"`
			Config           map[string]any `json:"config"`
			IgnoreSetupError bool           `json:"ignore_setup_error,omitempty"`
		} `json:"sinks"`
	} `json:"trace_session"`
}

// PodInitConfig renders the pod-init config for a receiver at endpoint.
// With on_setup_error = "continue" the sandbox also starts when it cannot
// reach the receiver; with "fail" it refuses to, like Palisade.
func (c Config) PodInitConfig(endpoint string) ([]byte, error) {
	var p podInitConfig
	p.TraceSession.Name = "Default"
	pts := slices.Clone(c.Points)
	slices.Sort(pts)
	for _, name := range slices.Compact(pts) {
		p.TraceSession.Points = append(p.TraceSession.Points, struct {
			Name           string   `json:"name"`
			OptionalFields []string `json:"optional_fields,omitempty"`
			ContextFields  []string `json:"context_fields,omitempty"`
		}{Name: name, OptionalFields: optionalFields(name), ContextFields: pointContext(name)})
	}
	retries := DefaultRetries
	if c.Retries != nil {
		retries = *c.Retries
	}
	p.TraceSession.Sinks = append(p.TraceSession.Sinks, struct {
		Name             string         `json:"name"`
		Config           map[string]any `json:"config"`
		IgnoreSetupError bool           `json:"ignore_setup_error,omitempty"`
	}{
		Name:             "remote",
		Config:           map[string]any{"endpoint": endpoint, "retries": retries},
		IgnoreSetupError: c.OnSetupError == OnSetupErrorContinue,
	})
	return json.MarshalIndent(p, "", "  ")
}

// pointContext is contextFields less what a point does not offer:
// sentry/exit_notify_parent has no cwd.
func pointContext(point string) []string {
	f := contextFields()
	if point == "sentry/exit_notify_parent" {
		f = slices.DeleteFunc(f, func(s string) bool { return s == "cwd" })
	}
	return f
}
