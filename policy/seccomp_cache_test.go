package policy

import (
	"bytes"
	"fmt"
	"hash/maphash"
	"math/rand/v2"
	"slices"
	"sync"
	"testing"

	"github.com/opencontainers/runtime-spec/specs-go"
)

// enforceJSON enforces f on a fresh spec holding req and bounding, and
// returns the enforced spec and decision as JSON.
func enforceJSON(t *testing.T, f *Floor, req *specs.LinuxSeccomp, bounding []string, kernel string) string {
	t.Helper()
	spec := &specs.Spec{Process: &specs.Process{Capabilities: &specs.LinuxCapabilities{Bounding: slices.Clone(bounding)}},
		Linux: &specs.Linux{Namespaces: containerNamespaces(), Seccomp: req}}
	d, err := enforce(spec, f, Support{SeccompEnforcer: "sentry", CapabilityEnforcer: "sentry", KernelVersion: kernel}, nativeArch("amd64"))
	if err != nil {
		t.Fatal(err)
	}
	return js(spec) + "\n" + js(d)
}

// keyFor is the cache key of a container with bounding set caps on kernel
// 6.1 under f.
func keyFor(t *testing.T, f *Floor, caps []string) resultKey {
	t.Helper()
	b, err := parseCapList("", caps)
	if err != nil {
		t.Fatal(err)
	}
	return resultKey{kv: kernelVersion{known: true, major: 6, minor: 1}, bounding: b &^ f.drop & f.compiled.gatedCaps}
}

func cacheEntries(f *Floor) int {
	f.cache.mu.Lock()
	defer f.cache.mu.Unlock()
	n := 0
	for _, e := range f.cache.entries {
		if e != nil {
			n++
		}
	}
	return n
}

func runtimeDefaultFloor(t *testing.T) *Floor {
	t.Helper()
	f, err := NewFloor(Config{Seccomp: SeccompRuntimeDefault, Capabilities: CapsConfig{Drop: []string{"NET_RAW"}}}, nil)
	if err != nil {
		t.Fatal(err)
	}
	return f
}

// A hit gives exactly what the miss gave, for every kind of request and
// for the capability sets and kernels the runtime-default floor depends on.
func TestCacheHitEqualsMiss(t *testing.T) {
	g := gen{r: rand.New(rand.NewPCG(7, 7))}
	reqs := map[string]*specs.LinuxSeccomp{
		"absent":     nil,
		"empty":      {},
		"containerd": containerdDefault(t),
		"large":      largeRequest(t),
		"unconfined": {DefaultAction: specs.ActAllow},
		"generated":  g.profile(),
	}
	admin := append(slices.Clone(defaultCaps), "CAP_SYS_ADMIN")
	for name, req := range reqs {
		for _, caps := range [][]string{defaultCaps, admin, nil} {
			for _, kernel := range []string{"", "4.4", "6.1"} {
				f := runtimeDefaultFloor(t)
				miss := enforceJSON(t, f, req, caps, kernel)
				if n := cacheEntries(f); n != 1 {
					t.Fatalf("%s: %d cache entries after one miss", name, n)
				}
				if hit := enforceJSON(t, f, req, caps, kernel); hit != miss {
					t.Fatalf("%s %v %q: the cached result differs:\n%s\n%s", name, caps, kernel, miss, hit)
				}
				if n := cacheEntries(f); n != 1 {
					t.Fatalf("%s: %d cache entries after a hit", name, n)
				}
			}
		}
	}
}

// The capabilities the floor's rules are gated on are part of the key;
// the others are not, so they share an entry.
func TestCacheKeyedByGatedCapabilities(t *testing.T) {
	f := runtimeDefaultFloor(t)
	req := containerdDefault(t)
	admin := append(slices.Clone(defaultCaps), "CAP_SYS_ADMIN")
	want := map[string]string{}
	for _, caps := range [][]string{defaultCaps, admin} {
		want[fmt.Sprint(caps)] = enforceJSON(t, runtimeDefaultFloor(t), req, caps, "6.1")
	}
	if want[fmt.Sprint(defaultCaps)] == want[fmt.Sprint(admin)] {
		t.Fatal("CAP_SYS_ADMIN does not change the runtime-default floor")
	}
	for range 3 {
		for _, caps := range [][]string{defaultCaps, admin} {
			if got := enforceJSON(t, f, req, caps, "6.1"); got != want[fmt.Sprint(caps)] {
				t.Fatalf("bounding %v: got the result of another capability set", caps)
			}
		}
	}
	// CAP_MKNOD gates no rule of the runtime-default profile.
	enforceJSON(t, f, req, append(slices.Clone(defaultCaps)[:len(defaultCaps)-1], "CAP_MKNOD"), "6.1")
	if n := cacheEntries(f); n != 2 {
		t.Fatalf("%d entries, want 2 (one per CAP_SYS_ADMIN presence)", n)
	}
}

// What Enforce returns is the caller's: changing it, or changing the
// request afterwards, does not change what later containers get.
func TestCacheResultsArePrivate(t *testing.T) {
	f := runtimeDefaultFloor(t)
	req := containerdDefault(t)
	want := enforceJSON(t, runtimeDefaultFloor(t), req, defaultCaps, "6.1")
	for range 2 { // a miss, then a hit
		spec := &specs.Spec{Process: &specs.Process{Capabilities: &specs.LinuxCapabilities{Bounding: slices.Clone(defaultCaps)}},
			Linux: &specs.Linux{Namespaces: containerNamespaces(), Seccomp: req}}
		d, err := enforce(spec, f, Support{SeccompEnforcer: "sentry", CapabilityEnforcer: "sentry", KernelVersion: "6.1"}, "amd64")
		if err != nil {
			t.Fatal(err)
		}
		out := spec.Linux.Seccomp
		for i := range out.Syscalls {
			sc := &out.Syscalls[i]
			sc.Names[0] = "scribbled"
			sc.Names = append(sc.Names, "appended")
			if sc.ErrnoRet != nil {
				*sc.ErrnoRet = 99
			}
			for j := range sc.Args {
				sc.Args[j].Value = 99
			}
		}
		*out.DefaultErrnoRet = 99
		d.Controls[0].Changed[0] = "scribbled"
	}
	if got := enforceJSON(t, f, req, defaultCaps, "6.1"); got != want {
		t.Fatalf("a caller's change reached the cache:\n%s", got)
	}
	// The request changes after it was cached: the change is a new request.
	req.Syscalls[0].Names[0] = "mkdir"
	changed := enforceJSON(t, runtimeDefaultFloor(t), req, defaultCaps, "6.1")
	if got := enforceJSON(t, f, req, defaultCaps, "6.1"); got != changed {
		t.Fatal("a request changed in place got the result of its old contents")
	}
}

// A hash collision is a miss: hits are confirmed on the whole encoding.
func TestCacheCollisionIsAMiss(t *testing.T) {
	f := runtimeDefaultFloor(t)
	a, b := containerdDefault(t), containerdDefault(t)
	b.Syscalls[0].Names = b.Syscalls[0].Names[1:]
	enforceJSON(t, f, a, defaultCaps, "6.1")
	// Forge the collision: a's entry now carries b's hash.
	f.cache.entries[0].hash = maphash.Bytes(f.cache.seed, appendCanonical(nil, keyFor(t, f, defaultCaps), b))
	want := enforceJSON(t, runtimeDefaultFloor(t), b, defaultCaps, "6.1")
	if got := enforceJSON(t, f, b, defaultCaps, "6.1"); got != want {
		t.Fatal("a request got the cached result of another with the same hash")
	}
}

// The encoding tells apart what the merge tells apart.
func TestCanonicalEncodingDistinguishes(t *testing.T) {
	one := uint(1)
	pairs := [][2]*specs.LinuxSeccomp{
		{nil, {}},
		{{Architectures: nil}, {Architectures: []specs.Arch{}}},
		{{Syscalls: []specs.LinuxSyscall{{Names: []string{"ab"}}}}, {Syscalls: []specs.LinuxSyscall{{Names: []string{"a", "b"}}}}},
		{{Syscalls: []specs.LinuxSyscall{{Names: []string{"a"}}, {Names: []string{"b"}}}}, {Syscalls: []specs.LinuxSyscall{{Names: []string{"a", "b"}}}}},
		{{DefaultErrnoRet: nil}, {DefaultErrnoRet: &one}},
		{{ListenerPath: "a", ListenerMetadata: "b"}, {ListenerPath: "ab"}},
		{{Syscalls: []specs.LinuxSyscall{{Args: []specs.LinuxSeccompArg{{Value: 1}}}}}, {Syscalls: []specs.LinuxSyscall{{Args: []specs.LinuxSeccompArg{{ValueTwo: 1}}}}}},
	}
	for _, p := range pairs {
		if bytes.Equal(appendCanonical(nil, resultKey{}, p[0]), appendCanonical(nil, resultKey{}, p[1])) {
			t.Errorf("same encoding for %s and %s", js(p[0]), js(p[1]))
		}
	}
	keys := []resultKey{{bounding: 1}, {kv: kernelVersion{known: true}}, {families: 1}, {}}
	for i := range keys {
		for j := range i {
			if bytes.Equal(appendCanonical(nil, keys[i], nil), appendCanonical(nil, keys[j], nil)) {
				t.Errorf("keys %+v and %+v not told apart", keys[i], keys[j])
			}
		}
	}
}

// The cache holds at most resultCacheSize entries and keeps the most
// recently used; under concurrent hits, misses and evictions every result
// is still the right one (run with -race).
func TestCacheBoundedAndConcurrent(t *testing.T) {
	f := runtimeDefaultFloor(t)
	base := containerdDefault(t)
	reqs := make([]*specs.LinuxSeccomp, 3*resultCacheSize)
	want := make([]string, len(reqs))
	for i := range reqs {
		c := *base
		c.Syscalls = slices.Clone(base.Syscalls)
		c.Syscalls[0].Names = base.Syscalls[0].Names[i:] // a different allowlist each
		reqs[i] = &c
		want[i] = enforceJSON(t, runtimeDefaultFloor(t), reqs[i], defaultCaps, "6.1")
	}
	var wg sync.WaitGroup
	for w := range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for j := range 60 {
				i := (w*7 + j) % len(reqs)
				if j%3 == 0 {
					i %= 2 // a few requests stay hot
				}
				if got := enforceJSON(t, f, reqs[i], defaultCaps, "6.1"); got != want[i] {
					t.Errorf("request %d: wrong result", i)
					return
				}
			}
		}()
	}
	wg.Wait()
	if n := cacheEntries(f); n > resultCacheSize {
		t.Fatalf("%d entries, bound %d", n, resultCacheSize)
	}
	// Least recently used goes first: fill with fresh requests, touching
	// request 0 in between; it survives, request 1 does not.
	g := runtimeDefaultFloor(t)
	enforceJSON(t, g, reqs[0], defaultCaps, "6.1")
	enforceJSON(t, g, reqs[1], defaultCaps, "6.1")
	for i := 2; i < 2+resultCacheSize; i++ {
		enforceJSON(t, g, reqs[0], defaultCaps, "6.1")
		enforceJSON(t, g, reqs[i], defaultCaps, "6.1")
	}
	has := func(req *specs.LinuxSeccomp) bool {
		enc := appendCanonical(nil, keyFor(t, g, defaultCaps), req)
		for _, e := range g.cache.entries {
			if e != nil && bytes.Equal(e.enc, enc) {
				return true
			}
		}
		return false
	}
	if !has(reqs[0]) || has(reqs[1]) {
		t.Fatalf("eviction is not least-recently-used: request 0 cached %v, request 1 cached %v", has(reqs[0]), has(reqs[1]))
	}
}

// A request too large to keep is merged every time, not cached.
func TestCacheSkipsHugeRequests(t *testing.T) {
	f := runtimeDefaultFloor(t)
	req := &specs.LinuxSeccomp{DefaultAction: specs.ActErrno}
	for len(appendCanonical(nil, resultKey{}, req)) <= maxCachedRequest {
		for i := range 1000 {
			n := syscallNames[i%len(syscallNames)]
			req.Syscalls = append(req.Syscalls, specs.LinuxSyscall{Names: []string{n, n + "_x"}, Action: specs.ActAllow})
		}
	}
	want := enforceJSON(t, f, req, defaultCaps, "6.1")
	if n := cacheEntries(f); n != 0 {
		t.Fatalf("a %d-rule request was cached", len(req.Syscalls))
	}
	if got := enforceJSON(t, f, req, defaultCaps, "6.1"); got != want {
		t.Fatal("a huge request enforced twice differs")
	}
}
