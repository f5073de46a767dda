// Package apparmor confines the host-side processes a backend spawns (runsc's
// sandbox and gofer, a delegate shim) with an AppArmor profile. gVisor and
// Kata ignore process.apparmorProfile inside the sandbox, so the profile has
// to be on the processes that run on the host.
//
// Confinement is an exec transition: the backend runs its runtime binary
// through the trampoline (sandbox/trampoline), which writes
// "exec <profile>" to its AppArmor exec attribute and then executes the
// runtime. Every process the runtime starts inherits the profile.
package apparmor

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"strings"

	gorunc "github.com/containerd/go-runc"

	"github.com/palisade-runtime/palisade/sandbox/trampoline"
)

// Environment the trampoline reads. Both are set only on the runtime
// invocations of a confined backend.
const (
	EnvProfile = trampoline.EnvProfile
	EnvTarget  = trampoline.EnvTarget
)

// Host is what the host can do, read from the paths below (fields so tests
// can point them elsewhere).
type Host struct {
	EnabledPath  string // /sys/module/apparmor/parameters/enabled
	ProfilesPath string // /sys/kernel/security/apparmor/profiles
	Parser       string // apparmor_parser
}

// DefaultHost reads the running kernel.
func DefaultHost() Host {
	return Host{
		EnabledPath:  "/sys/module/apparmor/parameters/enabled",
		ProfilesPath: "/sys/kernel/security/apparmor/profiles",
		Parser:       "apparmor_parser",
	}
}

// Enabled reports whether AppArmor confines processes on this host, and if
// not, why, naming the check.
func (h Host) Enabled() (bool, string) {
	data, err := os.ReadFile(h.EnabledPath)
	if err != nil {
		return false, "AppArmor is not enabled in this kernel (" + h.EnabledPath + " is missing)"
	}
	if strings.TrimSpace(string(data)) != "Y" {
		return false, "AppArmor is disabled (" + h.EnabledPath + " is not Y)"
	}
	return true, ""
}

// Loaded reports whether the kernel has a profile of that name.
func (h Host) Loaded(name string) (bool, error) {
	data, err := os.ReadFile(h.ProfilesPath)
	if err != nil {
		return false, fmt.Errorf("list loaded AppArmor profiles: %w", err)
	}
	for _, line := range strings.Split(string(data), "\n") {
		// Lines read "name (mode)".
		if n, _, ok := strings.Cut(line, " ("); ok && n == name {
			return true, nil
		}
	}
	return false, nil
}

// Load compiles and (re)loads a profile file into the kernel.
func (h Host) Load(ctx context.Context, file string) error {
	var stderr bytes.Buffer
	cmd := exec.CommandContext(ctx, h.Parser, "-r", "-W", file)
	cmd.Stderr = &stderr
	if err := runMonitored(cmd); err != nil {
		return fmt.Errorf("%s -r %s: %w: %s", h.Parser, file, err, strings.TrimSpace(stderr.String()))
	}
	return nil
}

// needsFile says whether profile has to come from file: not when the kernel
// has it loaded; an error when it has not and there is no file.
func (h Host) needsFile(profile, file string) (bool, error) {
	ok, err := h.Loaded(profile)
	if err != nil || ok {
		return false, err
	}
	if file == "" {
		return false, fmt.Errorf("AppArmor profile %q is not loaded and the handler names no file to load it from", profile)
	}
	return true, nil
}

// Ensure makes profile available: loaded already, or loaded from file.
func (h Host) Ensure(ctx context.Context, profile, file string) error {
	if need, err := h.needsFile(profile, file); err != nil || !need {
		return err
	}
	if err := h.Load(ctx, file); err != nil {
		return err
	}
	if ok, err := h.Loaded(profile); err != nil || !ok {
		return errors.Join(fmt.Errorf("%s does not define profile %q", file, profile), err)
	}
	return nil
}

// Check says, without changing the host, whether profile can be had: it is
// loaded, or file defines it (`apparmor_parser -N` lists a file's profiles
// and loads nothing). It is Ensure for checks such as palisadectl doctor,
// which must not load profiles; Create loads them with Ensure.
func (h Host) Check(ctx context.Context, profile, file string) error {
	if need, err := h.needsFile(profile, file); err != nil || !need {
		return err
	}
	var stdout, stderr bytes.Buffer
	cmd := exec.CommandContext(ctx, h.Parser, "-N", file)
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := runMonitored(cmd); err != nil {
		return fmt.Errorf("%s -N %s: %w: %s", h.Parser, file, err, strings.TrimSpace(stderr.String()))
	}
	for _, name := range strings.Split(stdout.String(), "\n") {
		if strings.TrimSpace(name) == profile {
			return nil
		}
	}
	return fmt.Errorf("%s does not define profile %q (it defines %q)", file, profile, strings.Fields(stdout.String()))
}

// Confine returns a context under which go-runc invocations run through the
// trampoline (trampoline.Path) into target, confined by profile.
func Confine(ctx context.Context, profile, target string) context.Context {
	return gorunc.WithExtraEnv(ctx, EnvProfile+"="+profile, EnvTarget+"="+target)
}

// runMonitored runs cmd through go-runc's Monitor: in the shim, the reaper
// collects children, so exec.Cmd.Wait must not.
func runMonitored(cmd *exec.Cmd) error {
	ec, err := gorunc.Monitor.Start(cmd)
	if err != nil {
		return err
	}
	status, err := gorunc.Monitor.Wait(cmd, ec)
	if err == nil && status != 0 {
		err = fmt.Errorf("exit status %d", status)
	}
	return err
}
