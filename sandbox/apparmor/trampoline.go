package apparmor

import (
	"fmt"
	"os"
	"runtime"
	"slices"
	"strings"
	"syscall"
)

// execAttrPaths are tried in order: the AppArmor-specific file (Linux 5.8+,
// works when several LSMs are stacked), then the legacy shared one. Both are
// the calling thread's: the kernel lets a task write only its own attribute
// (EACCES otherwise), and /proc/self is the thread group leader, which the
// calling thread need not be.
func execAttrPaths() []string {
	return []string{"/proc/thread-self/attr/apparmor/exec", "/proc/thread-self/attr/exec"}
}

// Trampoline is the first thing Palisade's binary does. When the environment
// asks for it, it moves itself into the profile at its next exec and execs
// the target runtime with the same arguments; it does not return then. Any
// failure ends the process with an error: a runtime must never run
// unconfined because its confinement failed.
func Trampoline() {
	profile, ok := os.LookupEnv(EnvProfile)
	if !ok {
		return
	}
	target := os.Getenv(EnvTarget)
	if err := execConfined(profile, target, os.Args[1:], os.Environ(), execAttrPaths()); err != nil {
		fmt.Fprintf(os.Stderr, "palisade: confine %s with AppArmor profile %q: %v\n", target, profile, err)
		os.Exit(1)
	}
}

// ExecConfined execs target with args and env, moving into profile at the
// exec: for a trampoline that rewrites the runtime's arguments first. It
// returns only on failure.
func ExecConfined(profile, target string, args, env []string) error {
	return execConfined(profile, target, args, env, execAttrPaths())
}

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
