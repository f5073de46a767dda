// Package trampoline is what Palisade's shim runs in front of a runtime
// when it has to change how the runtime starts: it adds a flag to a
// `runsc exec` command line (containerd's process package builds that
// command line itself), or it moves into a host AppArmor profile at the
// exec of the runtime (runsc, a delegate shim), which the runtime and
// everything it starts inherit. The shim sets the environment below on the
// invocation and runs the trampoline (Path) in the runtime's place; the
// trampoline does what the environment asks and execs the runtime.
//
// It runs on every exec in a container (Kubernetes exec probes, kubectl
// exec) and every confined runtime call, so it is a leaf: the standard
// library and golang.org/x/sys only. The package initialisers of its own
// binary, palisade-trampoline, take under a millisecond; the shim's binary,
// whose initialisers take 12-20 ms, runs Main too, as the fallback
// (BenchmarkStart in cmd/palisade-trampoline compares the two).
package trampoline

import (
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"syscall"
)

// Environment the trampoline reads. The shim sets it only on the runtime
// invocations that need the trampoline.
const (
	// EnvRunscExec names runsc for a `runsc exec`: the trampoline adds
	// --internal-pid-file to the command line (see withInternalPidFile).
	EnvRunscExec = "PALISADE_RUNSC_EXEC"
	// EnvProfile and EnvTarget: exec EnvTarget (or EnvRunscExec's runsc)
	// confined by the AppArmor profile EnvProfile.
	EnvProfile = "PALISADE_APPARMOR_PROFILE"
	EnvTarget  = "PALISADE_APPARMOR_TARGET"
)

// InternalPidSuffix is appended to a `runsc exec`'s --pid-file for its
// --internal-pid-file: both live in the bundle and go with it.
const InternalPidSuffix = ".internal"

// Name is the trampoline's own binary, installed next to the shim's.
const Name = "palisade-trampoline"

// Main is the first thing the trampoline's binary and the shim's binary
// do. When the environment asks for it, Main execs the runtime (with
// --internal-pid-file added to a `runsc exec`, confined by an AppArmor
// profile, or both) and does not return: any failure ends the process with
// an error, so a runtime never runs unconfined because its confinement
// failed. Without that environment it returns.
func Main() {
	if target, ok := os.LookupEnv(EnvRunscExec); ok {
		runscExec(target)
	}
	if profile, ok := os.LookupEnv(EnvProfile); ok {
		confined(profile, os.Getenv(EnvTarget), os.Args[1:], os.Environ())
	}
}

// confined execs target confined by profile and does not return: a failed
// confinement ends the process, saying so in the same words whichever
// runtime call it was (integration/apparmorvm looks for them).
func confined(profile, target string, args, env []string) {
	err := execConfined(profile, target, args, env, execAttrPaths())
	fmt.Fprintf(os.Stderr, "palisade: confine %s with AppArmor profile %q: %v\n", target, profile, err)
	os.Exit(1)
}

// runscExec execs runsc (target) with --internal-pid-file added to a
// `runsc exec` command line, confined when the environment names a profile.
// It does not return.
func runscExec(target string) {
	args := withInternalPidFile(os.Args[1:])
	env := slices.DeleteFunc(os.Environ(), func(kv string) bool { return strings.HasPrefix(kv, EnvRunscExec+"=") })
	if profile, ok := os.LookupEnv(EnvProfile); ok {
		confined(profile, target, args, env)
	}
	err := syscall.Exec(target, append([]string{target}, args...), env)
	fmt.Fprintf(os.Stderr, "palisade: exec %s: %v\n", target, err)
	os.Exit(1)
}

// withInternalPidFile adds --internal-pid-file <pid file>.internal after
// the exec subcommand when the command line is a `runsc exec` with a
// --pid-file; any other command line is returned as it is.
func withInternalPidFile(args []string) []string {
	i := slices.Index(args, "exec")
	if i < 0 {
		return args
	}
	for j := i + 1; j < len(args); j++ {
		pid, ok := strings.CutPrefix(args[j], "--pid-file=")
		if args[j] == "--pid-file" && j+1 < len(args) {
			pid, ok = args[j+1], true
		}
		if ok {
			out := slices.Clip(args[:i+1])
			out = append(out, "--internal-pid-file", pid+InternalPidSuffix)
			return append(out, args[i+1:]...)
		}
	}
	return args
}

// Path is what the shim runs as the trampoline: palisade-trampoline next
// to the shim's own binary when it is there and executable, else the
// shim's binary itself, which runs Main first (an install that copied only
// the shim still works, each trampoline start paying for the shim's
// package initialisers).
func Path() (string, error) {
	self, err := os.Executable()
	if err != nil {
		return "", fmt.Errorf("trampoline: %w", err)
	}
	return pathNextTo(self), nil
}

// pathNextTo is Path for the shim binary self.
func pathNextTo(self string) string {
	p := filepath.Join(filepath.Dir(self), Name)
	if st, err := os.Stat(p); err == nil && st.Mode().IsRegular() && st.Mode().Perm()&0o111 != 0 {
		return p
	}
	return self
}

// execAttrPaths are tried in order: the AppArmor-specific file (Linux 5.8+,
// works when several LSMs are stacked), then the legacy shared one. Both are
// the calling thread's: the kernel lets a task write only its own attribute
// (EACCES otherwise), and /proc/self is the thread group leader, which the
// calling thread need not be.
func execAttrPaths() []string {
	return []string{"/proc/thread-self/attr/apparmor/exec", "/proc/thread-self/attr/exec"}
}

// execConfined execs target with args and env, moving into profile at the
// exec. It returns only on failure.
func execConfined(profile, target string, args, env, attrPaths []string) error {
	// AppArmor keeps the pending exec transition per thread, so the write of
	// the attribute and the execve must happen on one OS thread. Unlocked, Go
	// may move this goroutine between them: the write then fails with EACCES,
	// or worse, succeeds on one thread while another execs the target
	// unconfined. Seen in integration/apparmorvm. Never unlocked: the
	// process execs or exits.
	runtime.LockOSThread()
	if profile == "" || target == "" {
		return fmt.Errorf("%s and %s must both be set", EnvProfile, EnvTarget)
	}
	if strings.ContainsAny(profile, "\x00\n") {
		return fmt.Errorf("invalid profile name %q", profile)
	}
	if err := setExecAttr(profile, attrPaths); err != nil {
		return err
	}
	env = slices.DeleteFunc(env, func(kv string) bool {
		return strings.HasPrefix(kv, EnvProfile+"=") || strings.HasPrefix(kv, EnvTarget+"=")
	})
	return syscall.Exec(target, append([]string{target}, args...), env)
}

// setExecAttr writes "exec <profile>" to the first attribute file that takes
// it. The write must succeed: a kernel without AppArmor refuses it (EINVAL or
// ENOENT), and that is an error, not a reason to run unconfined.
func setExecAttr(profile string, paths []string) error {
	var errs []string
	for _, p := range paths {
		f, err := os.OpenFile(p, os.O_WRONLY, 0)
		if err != nil {
			errs = append(errs, err.Error())
			continue
		}
		_, err = f.Write([]byte("exec " + profile))
		f.Close()
		if err == nil {
			return nil
		}
		errs = append(errs, fmt.Sprintf("write %s: %v", p, err))
	}
	return fmt.Errorf("set AppArmor exec attribute: %s", strings.Join(errs, "; "))
}
