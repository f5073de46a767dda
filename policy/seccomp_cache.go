package policy

import (
	"bytes"
	"encoding/binary"
	"hash/maphash"
	"slices"
	"sync"

	"github.com/opencontainers/runtime-spec/specs-go"
)

// resultCacheSize bounds how many recent seccomp results a Floor keeps. A
// shim serves one pod, whose containers nearly always carry the same
// request (containerd's RuntimeDefault profile on every CRI pod), so a few
// entries make the common case a hit; the bound keeps a stream of distinct
// profiles from growing the shim.
const resultCacheSize = 8

// maxCachedRequest bounds the encoding of a request the cache keeps (and
// the buffers it reuses). Real profiles encode to a few kilobytes; a
// hostile one of megabytes is merged each time rather than kept.
const maxCachedRequest = 256 << 10

// resultCache remembers the enforced profile and the control record of
// recent requests. It is the only mutable part of a Floor.
//
// Entries are found by the hash of the request's canonical encoding and
// confirmed by comparing the whole encoding: a hash collision must never
// hand one container another container's profile.
type resultCache struct {
	seed maphash.Seed // per Floor, so that hashes cannot be predicted
	bufs sync.Pool    // *[]byte encodings, reused across calls that hit

	mu      sync.Mutex
	entries [resultCacheSize]*cachedResult // guarded by mu; an entry is immutable once stored
	used    [resultCacheSize]uint64        // guarded by mu; last-use stamps, for LRU eviction
	clock   uint64                         // guarded by mu
}

// resultKey is what a result depends on besides the request and the Floor.
type resultKey struct {
	kv kernelVersion
	// bounding is the container's bounding set after the clamp, reduced to
	// the capabilities the floor's gated rules name: the only ones that
	// change the result.
	bounding capSet
	// families is the backend's Support.SocketFamilies: the result is
	// folded for it before it is stored (seccomp_sockets.go).
	families uint64
}

type cachedResult struct {
	hash uint64
	enc  []byte              // canonical encoding of the key and the request
	out  *specs.LinuxSeccomp // never handed out: callers get a copy
	ctl  Control             // EnforcedBy is set per call
}

func newResultCache() *resultCache { return &resultCache{seed: maphash.MakeSeed()} }

// cacheMiss is what put needs of a request that get did not find.
type cacheMiss struct {
	c    *resultCache
	hash uint64
	enc  *[]byte
}

// get returns a copy of the cached result for (k, req), or false and the
// cacheMiss to put the result with.
func (c *resultCache) get(k resultKey, req *specs.LinuxSeccomp) (*specs.LinuxSeccomp, Control, cacheMiss, bool) {
	enc, _ := c.bufs.Get().(*[]byte)
	if enc == nil {
		enc = new([]byte)
	}
	*enc = appendCanonical((*enc)[:0], k, req)
	l := cacheMiss{c: c, hash: maphash.Bytes(c.seed, *enc), enc: enc}
	c.mu.Lock()
	var hit *cachedResult
	for i, e := range c.entries {
		if e != nil && e.hash == l.hash && bytes.Equal(e.enc, *enc) {
			c.clock++
			c.used[i] = c.clock
			hit = e
			break
		}
	}
	c.mu.Unlock()
	if hit == nil {
		return nil, Control{}, l, false
	}
	c.bufs.Put(enc)
	ctl := hit.ctl
	ctl.Changed = slices.Clone(ctl.Changed)
	return copySeccomp(hit.out), ctl, cacheMiss{}, true
}

// put stores the result of a missed lookup, evicting the least recently
// used entry. It copies out and ctl, which stay the caller's.
func (l cacheMiss) put(out *specs.LinuxSeccomp, ctl Control) {
	c := l.c
	if len(*l.enc) > maxCachedRequest {
		return
	}
	ctl.EnforcedBy = ""
	ctl.Changed = slices.Clone(ctl.Changed)
	e := &cachedResult{hash: l.hash, enc: slices.Clone(*l.enc), out: copySeccomp(out), ctl: ctl}
	c.bufs.Put(l.enc) // the buffer has the right size for the next request
	c.mu.Lock()
	defer c.mu.Unlock()
	victim := -1
	for i, x := range c.entries {
		switch {
		case x == nil:
			if victim < 0 || c.entries[victim] != nil {
				victim = i // the first free slot
			}
		case x.hash == e.hash && bytes.Equal(x.enc, e.enc):
			return // a concurrent miss stored it first
		case victim < 0 || c.entries[victim] != nil && c.used[i] < c.used[victim]:
			victim = i
		}
	}
	c.clock++
	c.entries[victim], c.used[victim] = e, c.clock
}

// appendCanonical appends an encoding of k and p that differs whenever
// they do: every string and list is length-prefixed, and nil is told
// apart from empty, as the merge's output does.
func appendCanonical(b []byte, k resultKey, p *specs.LinuxSeccomp) []byte {
	b = binary.LittleEndian.AppendUint64(b, uint64(k.bounding))
	b = binary.LittleEndian.AppendUint64(b, k.families)
	b = binary.AppendUvarint(b, k.kv.major)
	b = binary.AppendUvarint(b, k.kv.minor)
	b = appendBool(b, k.kv.known)
	if b = appendBool(b, p != nil); p == nil {
		return b
	}
	b = appendStr(b, string(p.DefaultAction))
	b = appendPtr(b, p.DefaultErrnoRet)
	b = appendStrs(b, p.Architectures)
	b = appendStrs(b, p.Flags)
	b = appendStr(b, p.ListenerPath)
	b = appendStr(b, p.ListenerMetadata)
	b = appendLen(b, p.Syscalls == nil, len(p.Syscalls))
	for i := range p.Syscalls {
		s := &p.Syscalls[i]
		b = appendStrs(b, s.Names)
		b = appendStr(b, string(s.Action))
		b = appendPtr(b, s.ErrnoRet)
		b = appendLen(b, s.Args == nil, len(s.Args))
		for _, a := range s.Args {
			b = binary.AppendUvarint(b, uint64(a.Index))
			b = binary.AppendUvarint(b, a.Value)
			b = binary.AppendUvarint(b, a.ValueTwo)
			b = appendStr(b, string(a.Op))
		}
	}
	return b
}

func appendBool(b []byte, v bool) []byte {
	if v {
		return append(b, 1)
	}
	return append(b, 0)
}

func appendStr(b []byte, s string) []byte {
	return append(binary.AppendUvarint(b, uint64(len(s))), s...)
}

// appendLen writes 0 for a nil list, else 1 + its length.
func appendLen(b []byte, isNil bool, n int) []byte {
	if isNil {
		return append(b, 0)
	}
	return binary.AppendUvarint(b, uint64(n)+1)
}

func appendStrs[S ~[]E, E ~string](b []byte, s S) []byte {
	b = appendLen(b, s == nil, len(s))
	for _, x := range s {
		b = appendStr(b, string(x))
	}
	return b
}

func appendPtr(b []byte, v *uint) []byte {
	if v == nil {
		return append(b, 0)
	}
	return binary.AppendUvarint(append(b, 1), uint64(*v))
}

// copySeccomp deep-copies a profile into a few shared backing arrays (one
// each for names, arguments and errno values), keeping nil slices nil. The
// sub-slices are clipped, so appending to one never writes into another.
func copySeccomp(p *specs.LinuxSeccomp) *specs.LinuxSeccomp {
	if p == nil {
		return nil
	}
	c := *p
	c.DefaultErrnoRet = copyUint(p.DefaultErrnoRet)
	c.Architectures = slices.Clone(p.Architectures)
	c.Flags = slices.Clone(p.Flags)
	if p.Syscalls == nil {
		return &c
	}
	var nn, na, nr int
	for i := range p.Syscalls {
		s := &p.Syscalls[i]
		nn, na = nn+len(s.Names), na+len(s.Args)
		if s.ErrnoRet != nil {
			nr++
		}
	}
	names := make([]string, 0, nn)
	args := make([]specs.LinuxSeccompArg, 0, na)
	rets := make([]uint, 0, nr) // never grows, so the pointers into it stay valid
	c.Syscalls = make([]specs.LinuxSyscall, len(p.Syscalls))
	for i := range p.Syscalls {
		s, d := &p.Syscalls[i], &c.Syscalls[i]
		*d = *s
		if s.Names != nil {
			names = append(names, s.Names...)
			d.Names = names[len(names)-len(s.Names) : len(names) : len(names)]
		}
		if s.Args != nil {
			args = append(args, s.Args...)
			d.Args = args[len(args)-len(s.Args) : len(args) : len(args)]
		}
		if s.ErrnoRet != nil {
			rets = append(rets, *s.ErrnoRet)
			d.ErrnoRet = &rets[len(rets)-1]
		}
	}
	return &c
}

func copyUint(v *uint) *uint {
	if v == nil {
		return nil
	}
	x := *v
	return &x
}
