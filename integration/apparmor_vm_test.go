package integration

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"
)

// This machine's kernel has no AppArmor, so TestAppArmorVM boots one that
// has: Debian's cloud kernel under qemu with TCG software emulation (KVM is
// unusable here), from an initramfs that integration/apparmorvm/build.sh
// assembles. The guest's /init (apparmorvm/init.sh, checks.sh) starts a
// containerd and runs containers through Palisade with ctr, prints one
// "PASS name: detail" or "FAIL name: detail" line per check on the serial
// console, then "N passed, M failed", and powers off. The host reads the
// console; apparmorvm/README.md says what each check proves.

// vmBoot is one boot of the VM and the checks it must report, in order.
type vmBoot struct {
	name    string
	cmdline string // appended to the kernel command line
	checks  []string
}

var appArmorVMBoots = []vmBoot{
	{
		name: "enforcing",
		checks: []string{
			"doctor-apparmor-enabled",
			"doctor-loads-nothing",
			"runsc-required-profile-loaded",
			"runsc-sandbox-confined",
			"runsc-gofer-confined",
			"runsc-profile-denies-host-open",
			"runsc-decision-record",
			"delegate-shim-confined",
			"delegate-container-confined",
			"delegate-write-denied",
			"runc-without-palisade-unconfined",
			"shipped-profile-sandbox-confined",
			"shipped-profile-workload",
			"shipped-strict-handler-runs",
			"shipped-profile-no-denials",
			"no-confinement-errors",
		},
	},
	{
		// The negative control: the same kernel with AppArmor switched off.
		name:    "apparmor=0",
		cmdline: "apparmor=0",
		checks: []string{
			"doctor-apparmor-disabled",
			"required-runsc-fails-closed",
			"required-delegate-fails-closed",
			"optional-handler-runs-unenforced",
		},
	},
}

// vmBootTimeout bounds one boot. A boot takes 20–60 s here (2 cores, TCG);
// the rest is headroom for a loaded machine.
const vmBootTimeout = 4 * time.Minute

var (
	resultLine  = regexp.MustCompile(`^(PASS|FAIL) ([a-z0-9=-]+): (.*)$`)
	summaryLine = regexp.MustCompile(`^(\d+) passed, (\d+) failed$`)
	// The guest's own clock at its milestones; the console may put terminal
	// escapes before the first of them.
	milestoneLine = regexp.MustCompile(`# (initramfs /init|guest up|guest done) at [0-9.]+s`)
)

func TestAppArmorVM(t *testing.T) {
	qemu, err := exec.LookPath("qemu-system-x86_64")
	if err != nil {
		skipOrFatal(t, "qemu-system-x86_64 not found (integration/tools/install.sh qemu installs it)")
	}
	for _, tool := range []string{"containerd", "ctr", "containerd-shim-runc-v2", "runc", "runsc"} {
		if _, err := lookupTool(tool); err != nil {
			skipOrFatal(t, "%v (run integration/tools/install.sh)", err)
		}
	}
	kernel, initrd := buildAppArmorVM(t)
	for _, b := range appArmorVMBoots {
		t.Run(b.name, func(t *testing.T) {
			bootAppArmorVM(t, qemu, kernel, initrd, b)
		})
	}
}

// buildAppArmorVM runs apparmorvm/build.sh, which reuses its cached kernel
// and initramfs when their inputs have not changed.
func buildAppArmorVM(t *testing.T) (kernel, initrd string) {
	t.Helper()
	root, err := repoRoot()
	if err != nil {
		t.Fatal(err)
	}
	tools := toolsBin()
	cache := filepath.Join(filepath.Dir(tools), "apparmor-vm")
	start := time.Now()
	cmd := exec.Command("bash", filepath.Join(root, "integration", "apparmorvm", "build.sh"), cache)
	cmd.Env = append(os.Environ(), "TOOLS_BIN="+tools, "PALISADE_BIN="+palisadeBinDir(t))
	var stderr strings.Builder
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("apparmorvm/build.sh: %v\n%s", err, stderr.String())
	}
	for _, line := range strings.Split(string(out), "\n") {
		if v, ok := strings.CutPrefix(line, "kernel="); ok {
			kernel = v
		}
		if v, ok := strings.CutPrefix(line, "initramfs="); ok {
			initrd = v
		}
	}
	if kernel == "" || initrd == "" {
		t.Fatalf("apparmorvm/build.sh named no kernel or initramfs:\n%s\n%s", out, stderr.String())
	}
	st, err := os.Stat(initrd)
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("kernel %s, initramfs %s (%.1f MB), ready in %v\n%s", kernel, initrd,
		float64(st.Size())/1e6, time.Since(start).Round(time.Millisecond), strings.TrimSpace(stderr.String()))
	return kernel, initrd
}

// bootAppArmorVM boots the VM once and asserts its result lines: every check
// of b passed, no other check ran, and the summary counts them.
func bootAppArmorVM(t *testing.T, qemu, kernel, initrd string, b vmBoot) {
	serial := filepath.Join(filepath.Dir(initrd), "serial-"+strings.ReplaceAll(b.name, "=", "")+".log")
	lines, took, err := runVM(qemu, kernel, initrd, b.cmdline, serial)
	if err != nil {
		t.Errorf("qemu: %v (serial log in %s)", err, serial)
	}
	results := map[string]string{}
	var order []string
	summary := ""
	var resultAt time.Duration
	for _, l := range lines {
		if m := milestoneLine.FindString(l.text); m != "" {
			t.Logf("%s (host: %.1fs after qemu started)", m, l.at.Seconds())
		}
		if m := resultLine.FindStringSubmatch(l.text); m != nil {
			t.Log(l.text)
			if _, dup := results[m[2]]; dup {
				t.Errorf("check %s reported twice", m[2])
			}
			results[m[2]] = m[1]
			order = append(order, m[2])
		}
		if summaryLine.MatchString(l.text) {
			summary, resultAt = l.text, l.at
		}
	}
	if len(results) == 0 {
		t.Fatalf("the VM printed no result line in %v; serial log %s, last lines:\n%s", took, serial, tailLines(lines, 40))
	}
	for _, name := range b.checks {
		switch results[name] {
		case "PASS":
		case "":
			t.Errorf("check %s did not report", name)
		default:
			t.Errorf("check %s failed", name)
		}
	}
	for _, name := range order {
		if !slices.Contains(b.checks, name) {
			t.Errorf("the VM ran check %s, which this test does not expect", name)
		}
	}
	if want := fmt.Sprintf("%d passed, 0 failed", len(b.checks)); summary != want {
		t.Errorf("summary %q, want %q", summary, want)
	}
	if t.Failed() {
		t.Logf("serial log %s, last lines:\n%s", serial, tailLines(lines, 60))
	}
	t.Logf("boot to result line: %v (qemu ran %v)", resultAt.Round(100*time.Millisecond), took.Round(100*time.Millisecond))
}

// serialLine is one console line and when it arrived after qemu started.
type serialLine struct {
	text string
	at   time.Duration
}

// runVM boots the kernel under qemu with TCG and collects the console,
// which also goes to the file serial. The boot is bounded by coreutils'
// timeout; if the test process dies first, timeout gets SIGTERM and passes
// it on to qemu, so no VM outlives the test.
func runVM(qemu, kernel, initrd, cmdline, serial string) ([]serialLine, time.Duration, error) {
	log, err := os.Create(serial)
	if err != nil {
		return nil, 0, err
	}
	defer log.Close()
	ctx, cancel := context.WithTimeout(context.Background(), vmBootTimeout+30*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, "timeout", "-k", "5", fmt.Sprint(int(vmBootTimeout.Seconds())),
		qemu, "-accel", "tcg,thread=multi", "-cpu", "max", "-m", "2048", "-smp", "2",
		"-nographic", "-no-reboot", "-nic", "none",
		"-kernel", kernel, "-initrd", initrd,
		"-append", strings.TrimSpace("console=ttyS0 panic=-1 quiet "+cmdline))
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGTERM}
	cmd.WaitDelay = 10 * time.Second
	pr, pw := io.Pipe()
	cmd.Stdout, cmd.Stderr = pw, pw
	start := time.Now()
	if err := cmd.Start(); err != nil {
		return nil, 0, err
	}
	done := make(chan error, 1)
	go func() { err := cmd.Wait(); pw.Close(); done <- err }()
	var lines []serialLine
	sc := bufio.NewScanner(io.TeeReader(pr, log))
	sc.Buffer(make([]byte, 0, 64*1024), 1024*1024)
	for sc.Scan() {
		lines = append(lines, serialLine{strings.TrimRight(sc.Text(), "\r"), time.Since(start)})
	}
	err = <-done
	took := time.Since(start)
	var exit *exec.ExitError
	if errors.As(err, &exit) && exit.ExitCode() == 124 {
		err = fmt.Errorf("the VM ran past %v: %w", vmBootTimeout, err)
	}
	return lines, took, err
}

func tailLines(lines []serialLine, n int) string {
	var b strings.Builder
	for _, l := range lines[max(0, len(lines)-n):] {
		fmt.Fprintf(&b, "%6.1fs %s\n", l.at.Seconds(), l.text)
	}
	return b.String()
}
