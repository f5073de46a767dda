package integration

import (
	"context"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"github.com/containerd/containerd/api/types/runtimeoptions/v1"
	containerd "github.com/containerd/containerd/v2/client"
	"github.com/containerd/containerd/v2/core/containers"
	"github.com/containerd/containerd/v2/pkg/cio"
	"github.com/containerd/containerd/v2/pkg/oci"
)

// Proofs of the whole-spec floor beyond --privileged: host namespaces, host
// paths, devices, sysctls and the service-account token, each on runsc and
// on the runc delegate (floor_test.go has the helpers).

// refusedRun runs `ctr run --rm` with extra flags, which the floor must
// refuse at Create with an error containing each of want; it removes the
// container ctr left.
func refusedRun(t *testing.T, e *containerdEnv, rt runtimeUnderTest, id string, extra []string, want ...string) {
	t.Helper()
	res := e.ctr(t, e.runArgs(t, rt, append([]string{"--rm", "--fifo-dir", e.FIFODir}, extra...),
		busyboxRootfs(t), id, []string{"/bin/echo", "created"})...)
	if res.ExitCode == 0 || strings.Contains(res.Stdout, "created") {
		t.Errorf("%s: want Create refused, it ran: %v", id, res)
	}
	for _, w := range want {
		if !strings.Contains(res.Stderr, w) {
			t.Errorf("%s: the refusal does not name %q: %v", id, w, res)
		}
	}
	e.ctr(t, "container", "rm", id)
}

// TestFloorHostNamespaces: joining the host's PID, IPC or network namespace
// is refused on the host kernel, naming the namespace. On runsc the sentry
// implements pid and ipc itself, so a request to share the host's is
// recorded and the container still sees only its own processes; the
// network is refused there too (the sentry would take over the host's
// interfaces).
func TestFloorHostNamespaces(t *testing.T) {
	env := startFloorEnv(t)
	for _, backend := range floorBackends {
		t.Run(backend, func(t *testing.T) {
			rt := floorRuntime(t, env, backend, "ns-"+backend, "", nil)
			refusedRun(t, env, rt, "hostnet-"+backend, []string{"--net-host"}, "linux.namespaces", "network")
			for _, ns := range []string{"pid", "ipc"} {
				id := "host" + ns + "-" + backend
				// pid 1's namespace links may be unreadable to the shim here
				// (it fails closed, naming the field); the test's own are the
				// host's too, and readable.
				refusedRun(t, env, rt, id+"-init", []string{"--with-ns", ns + ":/proc/1/ns/" + ns}, "linux.namespaces[", "("+ns+")")
				flag := []string{"--with-ns", ns + ":/proc/" + strconv.Itoa(os.Getpid()) + "/ns/" + ns}
				if backend == "runc" {
					refusedRun(t, env, rt, id, flag, "linux.namespaces", "host "+ns+" namespace")
					if ns == "pid" {
						// Listed in host_namespaces, the same request runs and
						// sees the host's processes: the refusal above is the
						// floor's, not the request's failing.
						allow := floorRuntime(t, env, backend, "ns-allow-"+backend, "", map[string]any{"host_namespaces": []string{"pid"}})
						r := startFloorRun(t, env, allow, id+"-allowed", flag...)
						out := r.sh(t, "ps", `ls -d /proc/[0-9]* | wc -l`)
						if n, err := strconv.Atoi(strings.TrimSpace(out.Stdout)); err != nil || n < 10 {
							t.Errorf("%s-allowed: host_namespaces = [pid] should show the host's processes: %v", id, out)
						}
						r.stop(t)
					}
					continue
				}
				r := startFloorRun(t, env, rt, id, flag...)
				var req string
				for _, c := range r.decision.Controls {
					if c.Name == "namespaces" {
						req = c.Requested
					}
				}
				// The record must show the request to share the host's.
				if !strings.Contains(req, ns+"=") || strings.Contains(req, ns+"=new") {
					t.Errorf("%s: the namespaces control does not record the host %s request (requested %q):\n%s", id, ns, req, r.raw)
				}
				t.Logf("%s: namespaces requested %q", id, req)
				if ns == "pid" {
					// The host's environments stay out of reach: the sentry's
					// /proc lists the sandbox's processes only.
					out := r.sh(t, "ps", `ls -d /proc/[0-9]* | wc -l; cat /proc/1/cmdline | tr '\0' ' '`)
					lines := strings.Split(strings.TrimSpace(out.Stdout), "\n")
					if out.ExitCode != 0 || len(lines) != 2 || strings.TrimSpace(lines[1]) != "sleep 600" {
						t.Errorf("%s: pid 1 inside should be the container's sleep: %v", id, out)
					} else if n := strings.TrimSpace(lines[0]); len(n) > 1 {
						t.Errorf("%s: %s processes visible inside, want the container's own (< 10)", id, n)
					}
				}
				r.stop(t)
			}
		})
	}
}

// TestFloorHostMounts: a bind of / is refused naming the mount; the
// containerd socket is refused even when host_paths allows its directory;
// an allowed host path asked read-write is mounted read-only (a write
// inside fails, the host directory is unchanged) and the record says so.
func TestFloorHostMounts(t *testing.T) {
	env := startFloorEnv(t)
	shared := t.TempDir()
	if err := os.WriteFile(filepath.Join(shared, "f"), []byte("host-data\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	for _, backend := range floorBackends {
		t.Run(backend, func(t *testing.T) {
			// A handler cannot even allow the containerd socket's directory:
			// the config is refused naming the key.
			bad := floorRuntime(t, env, backend, "mnt-bad-"+backend, "",
				map[string]any{"host_paths": []string{shared, "/run/containerd"}})
			refusedRun(t, env, bad, "bad-"+backend, nil, "host_paths[1]", "fixed deny list")
			rt := floorRuntime(t, env, backend, "mnt-"+backend, "",
				map[string]any{"host_paths": []string{shared}})
			refusedRun(t, env, rt, "root-"+backend, []string{"--mount", "type=bind,src=/,dst=/host,options=rbind:ro"},
				"mounts[", "/host -> source /")
			refusedRun(t, env, rt, "sock-"+backend,
				[]string{"--mount", "type=bind,src=/run/containerd/containerd.sock,dst=/c.sock,options=rbind:rw"},
				"mounts[", "/c.sock")

			// Propagation from the host (Kubernetes' Bidirectional) on an
			// allowed path is refused: host_propagation is false.
			refusedRun(t, env, rt, "rshared-"+backend,
				[]string{"--mount", "type=bind,src=" + shared + ",dst=/data,options=rbind:ro:rshared"},
				"mounts[", "/data", "host_propagation")

			r := startFloorRun(t, env, rt, "rw-"+backend, "--mount", "type=bind,src="+shared+",dst=/data,options=rbind:rw")
			out := r.sh(t, "write", `cat /data/f; if touch /data/new 2>/dev/null; then echo write=ok; else echo write=denied; fi`)
			if !strings.Contains(out.Stdout, "host-data") || !strings.Contains(out.Stdout, "write=denied") {
				t.Errorf("allowed host path: want readable and read-only inside: %v", out)
			}
			if _, err := os.Stat(filepath.Join(shared, "new")); err == nil {
				t.Errorf("the container created a file in the host path %s", shared)
				os.Remove(filepath.Join(shared, "new"))
			}
			r.wantChanged(t, "mounts", "/data", "ro")
			r.stop(t)
		})
	}
}

// TestFloorDevices: a host device (--device /dev/kmsg) is removed under
// clamp (absent inside, named in the record), refused under
// over_ceiling = "refuse", and present when policy.devices allows it.
func TestFloorDevices(t *testing.T) {
	if _, err := os.Stat("/dev/kmsg"); err != nil {
		t.Fatalf("this proof needs the host's /dev/kmsg: %v", err)
	}
	env := startFloorEnv(t)
	for _, backend := range floorBackends {
		t.Run(backend, func(t *testing.T) {
			const check = `if [ -c /dev/kmsg ]; then echo kmsg=present; else echo kmsg=absent; fi`
			clamp := floorRuntime(t, env, backend, "dev-clamp-"+backend, "", nil)
			r := startFloorRun(t, env, clamp, "dev-"+backend, "--device", "/dev/kmsg")
			if out := r.sh(t, "kmsg", check); !strings.Contains(out.Stdout, "kmsg=absent") {
				t.Errorf("clamped --device /dev/kmsg: %v", out)
			}
			r.wantChanged(t, "devices", "/dev/kmsg")
			r.stop(t)

			refuse := floorRuntime(t, env, backend, "dev-refuse-"+backend, "", map[string]any{"over_ceiling": "refuse"})
			refusedRun(t, env, refuse, "dev-refused-"+backend, []string{"--device", "/dev/kmsg"}, "linux.devices", "/dev/kmsg")

			allow := floorRuntime(t, env, backend, "dev-allow-"+backend, "", map[string]any{"devices": []string{"/dev/kmsg"}})
			r = startFloorRun(t, env, allow, "dev-allowed-"+backend, "--device", "/dev/kmsg")
			out := r.sh(t, "kmsg", check)
			if backend == "runc" && !strings.Contains(out.Stdout, "kmsg=present") {
				t.Errorf("allowed --device /dev/kmsg is not in the container: %v", out)
			}
			if backend == "runsc" {
				// gVisor serves its own /dev and passes no host device
				// through; what is proven is that the floor kept it in the
				// spec, the rest is runsc's.
				t.Logf("runsc, allowed /dev/kmsg inside: %s", strings.TrimSpace(out.Stdout))
			}
			if !strings.Contains(r.raw, "/dev/kmsg") {
				t.Logf("the decision record does not mention the allowed device (nothing changed)")
			}
			r.stop(t)
		})
	}
}

// withSysctls sets linux.sysctl, which ctr has no flag for.
func withSysctls(kv map[string]string) oci.SpecOpts {
	return func(_ context.Context, _ oci.Client, _ *containers.Container, s *oci.Spec) error {
		if s.Linux == nil {
			return nil
		}
		s.Linux.Sysctl = kv
		return nil
	}
}

// TestFloorSysctls: a sysctl of Kubernetes' safe set is applied; a
// namespaced one outside the allow list and a host-wide one are removed
// under clamp (named in the record, the container's value is the
// default) and refused under over_ceiling = "refuse".
func TestFloorSysctls(t *testing.T) {
	env := startFloorEnv(t)
	for _, backend := range floorBackends {
		t.Run(backend, func(t *testing.T) {
			clamp := floorRuntime(t, env, backend, "sysctl-clamp-"+backend, "", nil)
			const show = `echo shm_rmid_forced=$(cat /proc/sys/kernel/shm_rmid_forced 2>/dev/null); echo msgmax=$(cat /proc/sys/kernel/msgmax 2>/dev/null)`
			id := "sysctl-" + backend
			out, code := env.runWithSpec(t, clamp, id, busyboxRootfs(t),
				withSysctls(map[string]string{"kernel.shm_rmid_forced": "1", "kernel.msgmax": "12345", "vm.swappiness": "61"}),
				oci.WithProcessArgs("/bin/sh", "-c", show))
			if code != 0 {
				t.Fatalf("%s: exit %d: %s", id, code, out)
			}
			kv := keyValues(out)
			if kv["msgmax"] == "12345" {
				t.Errorf("%s: kernel.msgmax (not in the safe set) was applied: %s", id, out)
			}
			if backend == "runc" && kv["shm_rmid_forced"] != "1" {
				t.Errorf("%s: kernel.shm_rmid_forced (safe set) was not applied: %s", id, out)
			}
			d := decisionRecordOf(t, env, id)
			for _, w := range []string{"linux.sysctl[kernel.msgmax]", "linux.sysctl[vm.swappiness]"} {
				if !strings.Contains(d, w) {
					t.Errorf("%s: decision record does not name %s:\n%s", id, w, d)
				}
			}
			if strings.Contains(d, "linux.sysctl[kernel.shm_rmid_forced]") {
				t.Errorf("%s: the safe sysctl was changed:\n%s", id, d)
			}

			refuse := floorRuntime(t, env, backend, "sysctl-refuse-"+backend, "", map[string]any{"over_ceiling": "refuse"})
			err := createTaskErr(t, env, refuse, "sysctl-refused-"+backend, withSysctls(map[string]string{"kernel.msgmax": "12345"}))
			if err == nil || !strings.Contains(err.Error(), "linux.sysctl[kernel.msgmax]") {
				t.Errorf("over_ceiling = refuse: want Create refused naming linux.sysctl[kernel.msgmax], got %v", err)
			}
		})
	}
}

// createTaskErr creates a container and its task through containerd's Go
// client and returns the task's Create error; a task that was created is
// deleted again.
func createTaskErr(t *testing.T, e *containerdEnv, rt runtimeUnderTest, id string, opts ...oci.SpecOpts) error {
	t.Helper()
	e.useID(id)
	c, ctx := e.client(t)
	spec := append([]oci.SpecOpts{oci.WithRootFSPath(busyboxRootfs(t)), oci.WithEnv([]string{containerPATH}),
		oci.WithProcessArgs("/bin/true")}, opts...)
	ctrd, err := c.NewContainer(ctx, id,
		containerd.WithRuntime(rt.RuntimeType, &runtimeoptions.Options{ConfigPath: rt.ConfigPath}),
		containerd.WithNewSpec(spec...))
	if err != nil {
		t.Fatalf("new container %s: %v", id, err)
	}
	defer ctrd.Delete(ctx)
	tk, err := ctrd.NewTask(ctx, cio.NullIO)
	if err == nil {
		tk.Delete(ctx, containerd.WithProcessKill)
	}
	return err
}

// TestFloorServiceAccountToken: the kubelet's projected token, a bind from
// <kubelet_root_dir>/pods/<uid>/volumes/kubernetes.io~projected/
// kube-api-access-… on /var/run/secrets/kubernetes.io/serviceaccount, is
// removed under "strip" (absent inside, named in the record), fails Create
// naming the mount under "refuse", and is readable under "allow".
func TestFloorServiceAccountToken(t *testing.T) {
	env := startFloorEnv(t)
	kubelet := filepath.Join(env.Dir, "kubelet")
	vol := filepath.Join(kubelet, "pods", "3f1c7a52-0d7e-4f43-9a55-1b2c3d4e5f60", "volumes", "kubernetes.io~projected", "kube-api-access-x7k2p")
	if err := os.MkdirAll(vol, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(vol, "token"), []byte("test-token\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	const dst = "/var/run/secrets/kubernetes.io/serviceaccount"
	mount := []string{"--mount", "type=bind,src=" + vol + ",dst=" + dst + ",options=rbind:ro"}
	const read = `if cat ` + dst + `/token 2>/dev/null; then :; else echo token=absent; fi`
	for _, backend := range floorBackends {
		t.Run(backend, func(t *testing.T) {
			strip := floorRuntime(t, env, backend, "sa-strip-"+backend, kubelet, map[string]any{"service_account_token": "strip"})
			r := startFloorRun(t, env, strip, "sa-stripped-"+backend, mount...)
			if out := r.sh(t, "token", read); strings.Contains(out.Stdout, "test-token") || !strings.Contains(out.Stdout, "token=absent") {
				t.Errorf("strip: the token is readable inside: %v", out)
			}
			r.wantChanged(t, "service_account_token", dst)
			r.stop(t)

			refuse := floorRuntime(t, env, backend, "sa-refuse-"+backend, kubelet, map[string]any{"service_account_token": "refuse"})
			refusedRun(t, env, refuse, "sa-refused-"+backend, mount, "service-account token", dst)

			allow := floorRuntime(t, env, backend, "sa-allow-"+backend, kubelet, map[string]any{"service_account_token": "allow"})
			r = startFloorRun(t, env, allow, "sa-allowed-"+backend, mount...)
			if out := r.sh(t, "token", read); !strings.Contains(out.Stdout, "test-token") {
				t.Errorf("allow: the token is not readable inside: %v", out)
			}
			r.stop(t)
		})
	}
}
