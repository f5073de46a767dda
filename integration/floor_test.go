package integration

import (
	"encoding/json"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	specs "github.com/opencontainers/runtime-spec/specs-go"
	"github.com/pelletier/go-toml/v2"
)

// In-container proofs of the whole-spec floor (issue 14): what a request
// for --privileged, a host namespace, a host path, a device or a sysctl
// ends as, on gVisor (runsc) and on the host kernel (the delegate in front
// of containerd-shim-runc-v2 and runc). Each proof reads three things back:
// what the process inside sees, the config.json Palisade handed the backend
// (the bundle's, rewritten), and the decision record naming the change.
//
// Nothing here may change the host even when the floor is broken: a sysctl
// is written with the value it already holds, devices are only listed, a
// host path the container could write to is a directory of the test's own.

// floorBackends are the two backends every proof runs on.
var floorBackends = []string{"runsc", "runc"}

// floorRuntime writes a config whose default handler is name on backend
// ("runsc", or "runc" behind the delegate) with the repo's default floor
// plus extra policy keys, and kubelet_root_dir set to kubeletRoot (empty:
// the default). The handler sees the env's runtime root, so the leak check
// covers its state.
func floorRuntime(t testing.TB, e *containerdEnv, backend, name, kubeletRoot string, extra map[string]any) runtimeUnderTest {
	t.Helper()
	pol := map[string]any{
		"mode": "enforce", "seccomp": "runtime-default", "no_new_privileges": true, "over_ceiling": "clamp",
		"capabilities": map[string]any{
			"ceiling": []string{"CAP_CHOWN", "CAP_DAC_OVERRIDE", "CAP_FSETID", "CAP_FOWNER", "CAP_MKNOD",
				"CAP_NET_RAW", "CAP_SETGID", "CAP_SETUID", "CAP_SETFCAP", "CAP_SETPCAP",
				"CAP_NET_BIND_SERVICE", "CAP_SYS_CHROOT", "CAP_KILL", "CAP_AUDIT_WRITE"},
			"drop": []string{"CAP_NET_RAW"},
		},
	}
	for k, v := range extra {
		pol[k] = v
	}
	h := map[string]any{"log_level": "debug", "policy": pol}
	switch backend {
	case "runsc":
		runsc, err := lookupTool("runsc")
		if err != nil {
			t.Fatal(err)
		}
		h["backend"] = "runsc"
		h["runsc"] = map[string]any{"binary": runsc, "root": e.RuntimeRoot}
	case "runc":
		h["backend"] = "shim"
		h["shim"] = runcShimTable(t, e)
	default:
		t.Fatalf("unknown backend %q", backend)
	}
	cfg := map[string]any{"default_handler": name, "handlers": map[string]any{name: h}}
	if kubeletRoot != "" {
		cfg["kubelet_root_dir"] = kubeletRoot
	}
	b, err := toml.Marshal(cfg)
	if err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(e.Dir, name+".toml")
	if err := os.WriteFile(path, b, 0o644); err != nil {
		t.Fatal(err)
	}
	return runtimeUnderTest{Name: name, RuntimeType: palisadeRuntimeType, ConfigPath: path, NeedsPalisade: true}
}

// runcShimTable is a delegate handler's [shim] table: the pinned
// containerd-shim-runc-v2 driving the pinned runc, state in the env's
// runtime root.
func runcShimTable(t testing.TB, e *containerdEnv) map[string]any {
	t.Helper()
	shim, err := lookupTool("containerd-shim-runc-v2")
	if err != nil {
		t.Fatal(err)
	}
	runc, err := lookupTool("runc")
	if err != nil {
		t.Fatal(err)
	}
	return map[string]any{"binary": shim, "options_type": "runc", "binary_name": runc, "root": e.RuntimeRoot}
}

// startFloorEnv starts one containerd for both backends.
func startFloorEnv(t *testing.T) *containerdEnv {
	t.Helper()
	rt := runtimeUnderTest{Name: "floor", RuntimeType: palisadeRuntimeType, NeedsPalisade: true,
		Tools: []string{"runsc", "containerd-shim-runc-v2", "runc"}}
	return startContainerdFor(t, rt, containerdOpts{})
}

// floorRun is a detached container started with extra `ctr run` flags,
// with what its backend was handed.
type floorRun struct {
	tk       *task
	spec     specs.Spec
	decision decisionDoc
	raw      string
}

// decisionDoc is the part of palisade-decision.json the proofs read.
type decisionDoc struct {
	Handler  string `json:"handler"`
	Controls []struct {
		Name      string   `json:"name"`
		Requested string   `json:"requested"`
		Effective string   `json:"effective"`
		Changed   []string `json:"changed"`
	} `json:"controls"`
}

// changed is the Changed list of the named control, and whether it is there.
func (d decisionDoc) changed(name string) ([]string, bool) {
	for _, c := range d.Controls {
		if c.Name == name {
			return c.Changed, true
		}
	}
	return nil, false
}

// startFloorRun starts `ctr run -d` with extra flags, running sleep, and
// reads back the bundle's config.json and decision record.
func startFloorRun(t *testing.T, e *containerdEnv, rt runtimeUnderTest, id string, extra ...string) *floorRun {
	t.Helper()
	tk := &task{env: e, ID: id, LogPath: filepath.Join(e.Dir, id+".log")}
	args := e.runArgs(t, rt, append([]string{"-d", "--log-uri", "file://" + tk.LogPath}, extra...),
		probeRootfs(t), id, []string{"sleep", "600"})
	t.Cleanup(func() { tk.forceRemove(t) })
	e.ctrOK(t, args...)
	tk.waitStatus(t, "RUNNING", 20*time.Second)
	r := &floorRun{tk: tk}
	bundle := filepath.Join(e.StateDir, "io.containerd.runtime.v2.task", e.Namespace, id)
	b, err := os.ReadFile(filepath.Join(bundle, "config.json"))
	if err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal(b, &r.spec); err != nil {
		t.Fatalf("%s: config.json: %v", id, err)
	}
	r.raw = decisionRecord(t, e, id)
	if err := json.Unmarshal([]byte(r.raw), &r.decision); err != nil {
		t.Fatalf("%s: decision record: %v\n%s", id, err, r.raw)
	}
	return r
}

// sh runs a shell command in the container and returns its stdout.
func (r *floorRun) sh(t *testing.T, execID, cmd string) ctrResult {
	t.Helper()
	return r.tk.exec(t, execID, "/bin/sh", "-c", cmd)
}

// stop kills and removes the container.
func (r *floorRun) stop(t *testing.T) { t.Helper(); r.tk.forceRemove(t) }

// wantChanged fails unless the decision record's control name lists a
// change containing each of want.
func (r *floorRun) wantChanged(t *testing.T, name string, want ...string) {
	t.Helper()
	ch, ok := r.decision.changed(name)
	if !ok {
		t.Errorf("%s: decision record has no %q control:\n%s", r.tk.ID, name, r.raw)
		return
	}
	if len(ch) == 0 {
		t.Errorf("%s: decision record's %q control lists no change:\n%s", r.tk.ID, name, r.raw)
	}
	for _, w := range want {
		if !slices.ContainsFunc(ch, func(c string) bool { return strings.Contains(c, w) }) {
			t.Errorf("%s: decision record's %q control does not name %q: %q", r.tk.ID, name, w, ch)
		}
	}
}

// mountOptions maps each mount point in a /proc/self/mountinfo to the
// per-mount options of the topmost mount there.
func mountOptions(mountinfo string) map[string][]string {
	m := map[string][]string{}
	for _, line := range strings.Split(mountinfo, "\n") {
		f := strings.Fields(line)
		if len(f) >= 6 {
			m[f[4]] = strings.Split(f[5], ",")
		}
	}
	return m
}

// keyValues parses the key=value lines the in-container scripts print.
func keyValues(out string) map[string]string {
	kv := map[string]string{}
	for _, line := range strings.Split(out, "\n") {
		if k, v, ok := strings.Cut(line, "="); ok {
			kv[k] = strings.TrimSpace(v)
		}
	}
	return kv
}

// reproSysctl is the reproduction, made harmless: it writes
// vm.swappiness with the value the host already has, so a broken floor
// prints "written" without changing the host.
const reproSysctl = `v=$(cat /proc/sys/vm/swappiness) && echo "$v" > /proc/sys/vm/swappiness && echo written`

// privilegedCheck prints what a privileged request left the container.
const privilegedCheck = `v=$(cat /proc/sys/vm/swappiness 2>/dev/null)
if [ -n "$v" ] && (echo "$v" > /proc/sys/vm/swappiness) 2>/dev/null; then echo sysctl-write=ok; else echo sysctl-write=denied; fi
echo blockdevs=$(find /dev -type b 2>/dev/null | tr '\n' ' ')
echo chardevs=$(find /dev -type c 2>/dev/null | tr '\n' ' ')
if [ -e /dev/kmsg ]; then echo kmsg=present; else echo kmsg=absent; fi
if [ -e /proc/kcore ]; then echo kcore=present-$(head -c 16 /proc/kcore 2>/dev/null | wc -c)-bytes; else echo kcore=absent; fi
`

// ociDefaultDevices are the character devices an unprivileged container's
// /dev holds (the OCI defaults, and the pts and console the runtime adds).
var ociDefaultDevices = []string{"/dev/null", "/dev/zero", "/dev/full", "/dev/random", "/dev/urandom",
	"/dev/tty", "/dev/console", "/dev/ptmx", "/dev/pts/ptmx"}

// gVisorDevices are devices gVisor's sentry serves in every container's
// /dev from its own implementation (FUSE and TUN on the sentry's netstack),
// not host device nodes: they are there without --privileged too.
var gVisorDevices = []string{"/dev/fuse", "/dev/net/tun"}

// TestFloorPrivilegedClamped is the issue's reproduction: `ctr run
// --privileged` on the default floor (privileged = "clamp") cannot write a
// host sysctl, and ends as an unprivileged container would: /sys and
// /proc/sys read-only, no host devices, /proc/kcore masked, containerd's
// masked and read-only paths in the spec, each change in the record.
func TestFloorPrivilegedClamped(t *testing.T) {
	env := startFloorEnv(t)
	for _, backend := range floorBackends {
		t.Run(backend, func(t *testing.T) {
			rt := floorRuntime(t, env, backend, "priv-clamp-"+backend, "", nil)
			res := env.ctr(t, env.runArgs(t, rt, []string{"--rm", "--fifo-dir", env.FIFODir, "--privileged"},
				busyboxRootfs(t), "repro-"+backend, []string{"/bin/sh", "-c", reproSysctl})...)
			if strings.Contains(res.Stdout, "written") {
				t.Errorf("HOLE: a --privileged container wrote the host's vm.swappiness: %v", res)
			}

			r := startFloorRun(t, env, rt, "priv-"+backend, "--privileged")
			// What the backend was handed.
			for _, p := range []string{"/proc/kcore", "/proc/keys", "/proc/timer_list", "/sys/firmware"} {
				if !slices.Contains(r.spec.Linux.MaskedPaths, p) {
					t.Errorf("config.json maskedPaths lacks %s: %q", p, r.spec.Linux.MaskedPaths)
				}
			}
			for _, p := range []string{"/proc/sys", "/proc/sysrq-trigger", "/proc/bus", "/proc/irq"} {
				if !slices.Contains(r.spec.Linux.ReadonlyPaths, p) {
					t.Errorf("config.json readonlyPaths lacks %s: %q", p, r.spec.Linux.ReadonlyPaths)
				}
			}
			for _, m := range r.spec.Mounts {
				if (m.Type == "sysfs" || m.Type == "cgroup" || m.Type == "cgroup2") && !slices.Contains(m.Options, "ro") {
					t.Errorf("config.json: %s on %s is not read-only: %q", m.Type, m.Destination, m.Options)
				}
			}
			var kept []string
			for _, d := range r.spec.Linux.Devices {
				if !slices.Contains(ociDefaultDevices, d.Path) {
					kept = append(kept, d.Path)
				}
			}
			if len(kept) > 0 {
				t.Errorf("config.json keeps %d host devices: %q", len(kept), kept)
			}
			if res := r.spec.Linux.Resources; res == nil || len(res.Devices) == 0 || res.Devices[0].Allow || res.Devices[0].Access != "rwm" {
				t.Errorf("config.json device cgroup does not start by denying every device: %+v", res)
			}
			r.wantChanged(t, "privileged", "maskedPaths", "readonlyPaths")
			r.wantChanged(t, "devices", "/dev/kmsg")
			// What an operator reads: palisadectl inspect shows the same rows.
			insp := palisadectl(t, "inspect", "--state", env.StateDir, "--namespace", env.Namespace, r.tk.ID)
			for _, w := range []string{"privileged", "devices", "linux.maskedPaths", "/dev/kmsg"} {
				if !strings.Contains(insp, w) {
					t.Errorf("palisadectl inspect does not show %q:\n%s", w, insp)
				}
			}

			// What the container sees.
			out := r.sh(t, "check", privilegedCheck)
			if out.ExitCode != 0 {
				t.Fatalf("check: %v", out)
			}
			kv := keyValues(out.Stdout)
			if kv["sysctl-write"] != "denied" {
				t.Errorf("HOLE: writing /proc/sys/vm/swappiness: %s", kv["sysctl-write"])
			}
			if kv["blockdevs"] != "" {
				t.Errorf("host block devices in /dev: %s", kv["blockdevs"])
			}
			var hostDevs []string
			for _, d := range strings.Fields(kv["chardevs"]) {
				if !slices.Contains(ociDefaultDevices, d) && !(backend == "runsc" && slices.Contains(gVisorDevices, d)) {
					hostDevs = append(hostDevs, d)
				}
			}
			if len(hostDevs) > 0 {
				t.Errorf("host character devices in /dev: %q", hostDevs)
			}
			if kv["kmsg"] != "absent" {
				t.Errorf("/dev/kmsg is %s", kv["kmsg"])
			}
			if k := kv["kcore"]; k != "absent" && k != "present-0-bytes" {
				t.Errorf("/proc/kcore is %s, want masked (0 bytes) or absent", k)
			}
			mi := r.sh(t, "mountinfo", "cat /proc/self/mountinfo")
			opts := mountOptions(mi.Stdout)
			if o, ok := opts["/sys"]; !ok || !slices.Contains(o, "ro") {
				t.Errorf("/sys is not mounted read-only inside (options %q)\n%s", o, mi.Stdout)
			}
			if backend == "runc" {
				// runc applies maskedPaths and readonlyPaths as mounts over
				// /proc; gVisor's sentry serves its own /proc, which has no
				// host kcore and whose /proc/sys is its own (the write above
				// is refused there whatever the spec).
				if o, ok := opts["/proc/sys"]; !ok || !slices.Contains(o, "ro") {
					t.Errorf("/proc/sys is not a read-only mount inside (options %q)", o)
				}
				// runc masks only what exists: this kernel may have no
				// /proc/kcore (CONFIG_PROC_KCORE off), so every masked /proc
				// path the host has must have a mount over it inside.
				masked := 0
				for _, p := range r.spec.Linux.MaskedPaths {
					if _, err := os.Stat(p); err != nil || !strings.HasPrefix(p, "/proc/") {
						continue
					}
					masked++
					if _, ok := opts[p]; !ok {
						t.Errorf("%s is not masked inside (no mount over it)\n%s", p, mi.Stdout)
					}
				}
				if masked == 0 {
					t.Errorf("none of the masked paths %q exists on this host: the masking proof proves nothing", r.spec.Linux.MaskedPaths)
				}
				if _, err := os.Stat("/proc/kcore"); err == nil && kv["kcore"] != "present-0-bytes" {
					t.Errorf("the host has /proc/kcore and inside it is %s, want masked", kv["kcore"])
				}
			}
			r.stop(t)
		})
	}
}

// TestFloorPrivilegedRefused: privileged = "refuse" (the shipped
// gvisor-strict's) fails Create, naming the fields a privileged request
// leaves out.
func TestFloorPrivilegedRefused(t *testing.T) {
	env := startFloorEnv(t)
	for _, backend := range floorBackends {
		t.Run(backend, func(t *testing.T) {
			rt := floorRuntime(t, env, backend, "priv-refuse-"+backend, "", map[string]any{"privileged": "refuse"})
			id := "priv-refused-" + backend
			res := env.ctr(t, env.runArgs(t, rt, []string{"--rm", "--fifo-dir", env.FIFODir, "--privileged"},
				busyboxRootfs(t), id, []string{"/bin/sh", "-c", reproSysctl})...)
			if res.ExitCode == 0 || strings.Contains(res.Stdout, "written") || !strings.Contains(res.Stderr, "linux.maskedPaths") {
				t.Errorf("want Create refused naming linux.maskedPaths: %v", res)
			}
			env.ctr(t, "container", "rm", id)
			// The same handler runs an unprivileged container.
			if res := env.runRm(t, rt, busyboxRootfs(t), "unpriv-"+backend, "true"); res.ExitCode != 0 {
				t.Errorf("an unprivileged container under privileged = refuse: %v", res)
			}
		})
	}
}
