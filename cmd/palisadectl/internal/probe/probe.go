// Package probe asks the host what Palisade's backends need: seccomp, AppArmor,
// a static runsc, Kata's shim with KVM and vhost-vsock, the cgroup layout and
// CAP_SYS_RESOURCE. Every read goes through Host, so tests point it at a
// temporary directory and fake functions.
package probe

import (
	"bufio"
	"bytes"
	"context"
	"debug/elf"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"time"
)

// Host is where the probes look.
type Host struct {
	ProcStatus      string // /proc/self/status: Seccomp and CapEff
	SeccompActions  string // /proc/sys/kernel/seccomp/actions_avail: filter mode (CONFIG_SECCOMP_FILTER)
	AppArmorEnabled string // /sys/module/apparmor/parameters/enabled
	Mounts          string // /proc/self/mounts: the cgroup layout
	CgroupRoot      string // /sys/fs/cgroup
	KVM             string // /dev/kvm
	Modules         string // /sys/module: which KVM implementation serves /dev/kvm
	VhostVsock      string // /dev/vhost-vsock

	// LookPath finds a command the way exec.LookPath does.
	LookPath func(file string) (string, error)
	// Output runs a command and returns its standard output.
	Output func(ctx context.Context, name string, args ...string) ([]byte, error)
	// Stat is os.Stat.
	Stat func(name string) (fs.FileInfo, error)
}

// Real is the running host.
func Real() Host {
	return Host{
		ProcStatus:      "/proc/self/status",
		SeccompActions:  "/proc/sys/kernel/seccomp/actions_avail",
		AppArmorEnabled: "/sys/module/apparmor/parameters/enabled",
		Mounts:          "/proc/self/mounts",
		CgroupRoot:      "/sys/fs/cgroup",
		KVM:             "/dev/kvm",
		Modules:         "/sys/module",
		VhostVsock:      "/dev/vhost-vsock",
		LookPath:        exec.LookPath,
		Output: func(ctx context.Context, name string, args ...string) ([]byte, error) {
			ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
			defer cancel()
			var stderr bytes.Buffer
			cmd := exec.CommandContext(ctx, name, args...)
			cmd.Stderr = &stderr
			out, err := cmd.Output()
			if err != nil {
				return out, fmt.Errorf("%s %s: %w (stderr: %q)", name, strings.Join(args, " "), err, strings.TrimSpace(stderr.String()))
			}
			return out, nil
		},
		Stat: os.Stat,
	}
}

// Fact is one answer: whether the host has the thing, and what was seen.
type Fact struct {
	OK     bool
	Detail string
}

// Facts are the host-wide answers.
type Facts struct {
	Seccomp        Fact // seccomp filter mode in the kernel
	AppArmor       Fact // AppArmor enabled in the kernel
	AppArmorParser Fact // apparmor_parser on PATH
	KataShim       Fact // containerd-shim-kata-v2 on PATH
	KVM            Fact // /dev/kvm
	VhostVsock     Fact // /dev/vhost-vsock
	Cgroup         Fact // OK on a pure v2 host; Detail names the layout
	CapSysResource Fact // CAP_SYS_RESOURCE in the effective set
}

// capSysResource is the bit of CAP_SYS_RESOURCE in CapEff.
const capSysResource = 24

// Probe reads every host-wide fact.
func (h Host) Probe() Facts {
	var f Facts
	status, statusErr := os.ReadFile(h.ProcStatus)
	f.Seccomp = h.seccomp(status, statusErr)
	f.AppArmor = h.appArmor()
	f.AppArmorParser = h.command("apparmor_parser")
	f.KataShim = h.command("containerd-shim-kata-v2")
	f.KVM = h.kvm()
	f.VhostVsock = h.device(h.VhostVsock)
	f.Cgroup = h.cgroup()
	switch capEff, err := statusField(status, "CapEff"); {
	case statusErr != nil:
		f.CapSysResource = Fact{Detail: statusErr.Error()}
	case err != nil:
		f.CapSysResource = Fact{Detail: err.Error()}
	default:
		mask, err := strconv.ParseUint(capEff, 16, 64)
		if err != nil {
			f.CapSysResource = Fact{Detail: fmt.Sprintf("%s: CapEff %q: %v", h.ProcStatus, capEff, err)}
			break
		}
		f.CapSysResource = Fact{OK: mask&(1<<capSysResource) != 0, Detail: "CapEff " + capEff}
	}
	return f
}

func (h Host) seccomp(status []byte, statusErr error) Fact {
	if statusErr != nil {
		return Fact{Detail: statusErr.Error()}
	}
	if _, err := statusField(status, "Seccomp"); err != nil {
		return Fact{Detail: "kernel without CONFIG_SECCOMP (" + err.Error() + ")"}
	}
	actions, err := os.ReadFile(h.SeccompActions)
	if err != nil {
		return Fact{Detail: "kernel without seccomp filters (CONFIG_SECCOMP_FILTER): " + err.Error()}
	}
	return Fact{OK: true, Detail: "filter actions: " + strings.Join(strings.Fields(string(actions)), " ")}
}

func (h Host) appArmor() Fact {
	data, err := os.ReadFile(h.AppArmorEnabled)
	switch {
	case errors.Is(err, fs.ErrNotExist):
		return Fact{Detail: "not in this kernel (" + h.AppArmorEnabled + " missing)"}
	case err != nil:
		return Fact{Detail: err.Error()}
	case strings.TrimSpace(string(data)) != "Y":
		return Fact{Detail: "disabled (" + h.AppArmorEnabled + " is " + strconv.Quote(strings.TrimSpace(string(data))) + ")"}
	}
	return Fact{OK: true, Detail: "enabled"}
}

func (h Host) command(name string) Fact {
	p, err := h.LookPath(name)
	if err != nil {
		return Fact{Detail: name + " not found on PATH"}
	}
	return Fact{OK: true, Detail: p}
}

func (h Host) device(path string) Fact {
	fi, err := h.Stat(path)
	switch {
	case err != nil:
		return Fact{Detail: path + " missing"}
	case fi.Mode()&fs.ModeCharDevice == 0:
		return Fact{Detail: path + " is not a character device"}
	}
	return Fact{OK: true, Detail: path}
}

// kvm checks /dev/kvm and the module behind it. kvm_pvm (paravirtual KVM
// inside a VM without VT-x or AMD-V) provides the device, but runsc's kvm
// platform and Kata's VMs fail on it.
func (h Host) kvm() Fact {
	f := h.device(h.KVM)
	if !f.OK {
		return f
	}
	var vendors []string
	for _, m := range []string{"kvm_intel", "kvm_amd", "kvm_pvm"} {
		if _, err := h.Stat(h.Modules + "/" + m); err == nil {
			vendors = append(vendors, m)
		}
	}
	switch {
	case len(vendors) == 0:
		return Fact{OK: true, Detail: f.Detail + " (no kvm_intel, kvm_amd or kvm_pvm module seen)"}
	case len(vendors) == 1 && vendors[0] == "kvm_pvm":
		return Fact{Detail: f.Detail + " is kvm_pvm (paravirtual, no VT-x/AMD-V): runsc --platform=kvm and Kata do not run on it"}
	}
	return Fact{OK: true, Detail: f.Detail + " (" + strings.Join(vendors, ", ") + ")"}
}

// cgroup reads the layout from the mount table: v2 mounted at the root is
// unified; v1 controllers at the root, with or without a v2 tree below it,
// is legacy or hybrid.
func (h Host) cgroup() Fact {
	data, err := os.ReadFile(h.Mounts)
	if err != nil {
		return Fact{Detail: err.Error()}
	}
	var v2root, v1 bool
	var v2at string
	for _, m := range parseMounts(data) {
		switch {
		case m.fstype == "cgroup2" && m.target == h.CgroupRoot:
			v2root = true
		case m.fstype == "cgroup2" && strings.HasPrefix(m.target, h.CgroupRoot+"/"):
			v2at = m.target
		case m.fstype == "cgroup" && strings.HasPrefix(m.target, h.CgroupRoot+"/"):
			v1 = true
		}
	}
	switch {
	case v2root:
		return Fact{OK: true, Detail: "v2 (unified)"}
	case v1 && v2at != "":
		return Fact{Detail: "v1 hybrid (v2 at " + v2at + ")"}
	case v1:
		return Fact{Detail: "v1 (legacy)"}
	}
	return Fact{Detail: "no cgroup file system under " + h.CgroupRoot}
}

type mount struct{ target, fstype string }

// parseMounts reads /proc/self/mounts: device, target, type, options, ...;
// the kernel escapes spaces in paths as \040.
func parseMounts(data []byte) []mount {
	var ms []mount
	sc := bufio.NewScanner(bytes.NewReader(data))
	sc.Buffer(nil, 1<<20)
	for sc.Scan() {
		f := strings.Fields(sc.Text())
		if len(f) < 3 {
			continue
		}
		ms = append(ms, mount{target: strings.ReplaceAll(f[1], `\040`, " "), fstype: f[2]})
	}
	return ms
}

// statusField returns the value of "Name:\tvalue" in /proc/self/status.
func statusField(status []byte, name string) (string, error) {
	for line := range strings.SplitSeq(string(status), "\n") {
		k, v, ok := strings.Cut(line, ":")
		if ok && k == name {
			return strings.TrimSpace(v), nil
		}
	}
	return "", fmt.Errorf("no %s field in /proc/self/status", name)
}

// Runsc is what doctor needs to know of one runsc binary.
type Runsc struct {
	Path    string // resolved path; "" when not found
	Static  bool   // no ELF interpreter (PT_INTERP)
	Version string // `runsc --version`, on one line
	Err     error  // why it is unusable; nil when found and static
}

// Runsc finds binary (a bare name is looked up on PATH), checks that it is a
// static ELF and asks its version. A dynamic runsc fails inside its own empty
// chroot, where the ELF interpreter is missing.
func (h Host) Runsc(ctx context.Context, binary string) Runsc {
	var r Runsc
	p, err := h.LookPath(binary)
	if err != nil {
		r.Err = fmt.Errorf("%s: not found: %w", binary, err)
		return r
	}
	r.Path = p
	interp, err := elfInterpreter(p)
	switch {
	case err != nil:
		r.Err = fmt.Errorf("%s: %w", p, err)
		return r
	case interp != "":
		r.Err = fmt.Errorf("%s is dynamically linked (interpreter %s): it cannot re-execute itself in its chroot; build it with CGO_ENABLED=0", p, interp)
		return r
	}
	r.Static = true
	out, err := h.Output(ctx, p, "--version")
	if err != nil {
		r.Version = "unknown (" + err.Error() + ")"
		return r
	}
	// "runsc version X\nspec: 1.2.1": both lines matter.
	r.Version = strings.Join(strings.Fields(strings.ReplaceAll(strings.TrimSpace(string(out)), "\n", ", ")), " ")
	return r
}

// elfInterpreter returns the PT_INTERP path of an ELF file, "" for a static one.
func elfInterpreter(path string) (string, error) {
	f, err := elf.Open(path)
	if err != nil {
		return "", fmt.Errorf("not an ELF executable: %w", err)
	}
	defer f.Close()
	for _, p := range f.Progs {
		if p.Type != elf.PT_INTERP {
			continue
		}
		b := make([]byte, min(p.Filesz, 4096))
		if _, err := p.ReadAt(b, 0); err != nil {
			return "", fmt.Errorf("read ELF interpreter: %w", err)
		}
		return strings.TrimRight(string(b), "\x00"), nil
	}
	return "", nil
}
