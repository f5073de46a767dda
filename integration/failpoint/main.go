// Command runtime-failpoint stands in for an OCI runtime (runsc or runc) in
// fault tests: it runs the real runtime, except at the subcommands its
// control file names, where it fails or hangs. It plays the part of
// containerd's integration/failpoint runc-fp, chosen per test through a
// config file instead of an annotation, so that it works behind Palisade
// and behind containerd-shim-runc-v2 alike.
//
// The environment names the real runtime and the control file:
//
//	FAILPOINT_RUNTIME=/usr/local/bin/runsc
//	FAILPOINT_CONTROL=/tmp/x/failpoint.json
//
// The control file is read at every invocation, so a test can arm a rule
// after its container started:
//
//	{"rules": [{"command": "kill", "action": "hang", "times": 1}]}
//
// Actions:
//   - fail: do not run the runtime; write an error record to its --log file
//     (as runsc and runc do) and to stderr, and exit 1;
//   - hang: do not run the runtime; sleep until killed (at most hangLimit);
//   - fail-after: run the runtime to its end, then exit 1 whatever it did (a
//     runtime that did the work but reported a failure);
//   - hang-after: run the runtime to its end, then sleep as hang does;
//   - slow: sleep slowDelay, then run the runtime (a runtime on a loaded
//     host, slower than its caller's patience);
//   - unlink-socket-after (runsc only): run the runtime to its end, then
//     point the sandbox's control socket recorded in the container's state
//     file (in --root, the container being the last argument) at a path that
//     does not exist: a caller that reads the state file to reach the
//     sandbox cannot, while runsc itself still finds the socket in --root.
//
// times, if not zero, is how often the rule fires; later matches run the
// runtime. Every invocation is recorded, one JSON line each, in the control
// file's name plus ".log", so a test can prove that its rule fired.
//
// Tests install it as runsc-failpoint, whichever runtime it wraps: the leak
// check watches processes named runsc*, so a hung one is reported.
package main

import (
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"strings"
	"syscall"
	"time"
)

// slowDelay is how long a slow runtime waits before it runs.
const slowDelay = 3 * time.Second

// hangLimit bounds a hang, so that a shim which never kills its runtime
// leaves a process that the leak check reports, not one that lives forever.
const hangLimit = 5 * time.Minute

type rule struct {
	Command string `json:"command"`
	Action  string `json:"action"`
	Times   int    `json:"times"`
}

type control struct {
	Rules []rule `json:"rules"`
}

// record is one line of the invocation log.
type record struct {
	Time    string   `json:"time"`
	Pid     int      `json:"pid"`
	Command string   `json:"command"`
	Action  string   `json:"action"` // "run" when no rule fired
	Args    []string `json:"args"`
}

// valueFlags are the global flags that go-runc and Palisade pass with their
// value in the next argument.
var valueFlags = map[string]bool{"root": true, "log": true, "log-format": true, "criu": true}

// subcommand finds the runtime subcommand in args and the --log file.
func subcommand(args []string) (cmd, logFile string) {
	cmd, logFile, _ = parseArgs(args)
	return cmd, logFile
}

// parseArgs finds the runtime subcommand, the --log file and the --root.
func parseArgs(args []string) (cmd, logFile, root string) {
	for i := 0; i < len(args); i++ {
		a := args[i]
		if !strings.HasPrefix(a, "-") {
			return a, logFile, root
		}
		name, value, hasValue := strings.Cut(strings.TrimLeft(a, "-"), "=")
		if !hasValue && valueFlags[name] && i+1 < len(args) {
			i++
			value, hasValue = args[i], true
		}
		if name == "log" && hasValue {
			logFile = value
		}
		if name == "root" && hasValue {
			root = value
		}
	}
	return "", logFile, root
}

func main() {
	runtime := os.Getenv("FAILPOINT_RUNTIME")
	ctlPath := os.Getenv("FAILPOINT_CONTROL")
	if runtime == "" || ctlPath == "" {
		fmt.Fprintln(os.Stderr, "runtime-failpoint: FAILPOINT_RUNTIME and FAILPOINT_CONTROL must be set")
		os.Exit(2)
	}
	args := os.Args[1:]
	cmd, logFile := subcommand(args)
	action, err := decide(ctlPath, cmd)
	if err != nil {
		fmt.Fprintf(os.Stderr, "runtime-failpoint: %v\n", err)
		os.Exit(2)
	}
	logInvocation(ctlPath, record{Time: time.Now().Format(time.RFC3339Nano), Pid: os.Getpid(),
		Command: cmd, Action: action, Args: args})
	if action == "slow" {
		time.Sleep(slowDelay)
		action = "run"
	}
	switch action {
	case "run":
		// Replace this process, so that the runtime's pid, signals and
		// stdio are the caller's as if it had run the runtime itself.
		err := syscall.Exec(runtime, append([]string{runtime}, args...), os.Environ())
		fmt.Fprintf(os.Stderr, "runtime-failpoint: exec %s: %v\n", runtime, err)
		os.Exit(2)
	case "fail":
		fail(logFile, cmd)
	case "hang":
		hang()
	case "unlink-socket-after":
		c := exec.Command(runtime, args...)
		c.Stdin, c.Stdout, c.Stderr = os.Stdin, os.Stdout, os.Stderr
		if err := c.Run(); err != nil {
			os.Exit(1)
		}
		_, _, root := parseArgs(args)
		if err := unlinkSocket(root, args[len(args)-1]); err != nil {
			fmt.Fprintf(os.Stderr, "runtime-failpoint: %v\n", err)
			os.Exit(2)
		}
		os.Exit(0)
	case "fail-after", "hang-after":
		c := exec.Command(runtime, args...)
		c.Stdin, c.Stdout, c.Stderr = os.Stdin, os.Stdout, os.Stderr
		_ = c.Run()
		if action == "hang-after" {
			hang()
		}
		fail(logFile, cmd)
	}
	fmt.Fprintf(os.Stderr, "runtime-failpoint: unknown action %q\n", action)
	os.Exit(2)
}

// decide returns the action for cmd and counts a firing rule, under an
// exclusive lock on the control file so that concurrent invocations count
// right.
func decide(ctlPath, cmd string) (string, error) {
	f, err := os.OpenFile(ctlPath, os.O_RDWR, 0)
	if err != nil {
		return "", err
	}
	defer f.Close()
	if err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX); err != nil {
		return "", err
	}
	var ctl control
	if err := json.NewDecoder(f).Decode(&ctl); err != nil {
		return "", fmt.Errorf("%s: %w", ctlPath, err)
	}
	for i, r := range ctl.Rules {
		if r.Command != cmd {
			continue
		}
		if r.Times == 0 {
			return r.Action, nil
		}
		counter := fmt.Sprintf("%s.fired-%d", ctlPath, i)
		b, _ := os.ReadFile(counter)
		if len(b) >= r.Times {
			continue
		}
		if err := os.WriteFile(counter, append(b, 'x'), 0o644); err != nil {
			return "", err
		}
		return r.Action, nil
	}
	return "run", nil
}

func logInvocation(ctlPath string, r record) {
	b, _ := json.Marshal(r)
	f, err := os.OpenFile(ctlPath+".log", os.O_WRONLY|os.O_APPEND|os.O_CREATE, 0o644)
	if err != nil {
		return
	}
	defer f.Close()
	_, _ = f.Write(append(b, '\n'))
}

// fail reports an injected failure the way runsc and runc report theirs:
// the last "error" record of --log is what containerd's process package
// shows the user.
func fail(logFile, cmd string) {
	msg := fmt.Sprintf("failpoint: %s failed (injected by runtime-failpoint)", cmd)
	if logFile != "" {
		b, _ := json.Marshal(map[string]string{"level": "error", "msg": msg, "time": time.Now().Format(time.RFC3339Nano)})
		if f, err := os.OpenFile(logFile, os.O_WRONLY|os.O_APPEND|os.O_CREATE, 0o644); err == nil {
			_, _ = f.Write(append(b, '\n'))
			f.Close()
		}
	}
	fmt.Fprintln(os.Stderr, msg)
	os.Exit(1)
}

// unlinkSocket rewrites id's runsc state file in root so that the control
// socket it records does not exist; the rest of the state is kept as it is.
func unlinkSocket(root, id string) error {
	files, err := filepath.Glob(filepath.Join(root, id+"_sandbox:*.state"))
	if err != nil || len(files) != 1 {
		return fmt.Errorf("state file of %s in %s: %v %v", id, root, files, err)
	}
	b, err := os.ReadFile(files[0])
	if err != nil {
		return err
	}
	var state map[string]any
	if err := json.Unmarshal(b, &state); err != nil {
		return err
	}
	sb, ok := state["sandbox"].(map[string]any)
	if !ok {
		return fmt.Errorf("%s: no sandbox", files[0])
	}
	sb["controlSocketPath"] = "/nonexistent/failpoint/" + filepath.Base(fmt.Sprint(sb["controlSocketPath"]))
	if b, err = json.Marshal(state); err != nil {
		return err
	}
	return os.WriteFile(files[0], b, 0o640)
}

// hang sleeps until a signal that ends the process, or hangLimit.
func hang() {
	sigs := make(chan os.Signal, 1)
	signal.Notify(sigs, syscall.SIGTERM, syscall.SIGINT)
	select {
	case <-sigs:
	case <-time.After(hangLimit):
	}
	fmt.Fprintln(os.Stderr, "failpoint: hang ended")
	os.Exit(1)
}
