package shim_test

import (
	"bufio"
	"bytes"
	"compress/gzip"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"runtime/debug"
	"slices"
	"strings"
	"testing"
	"time"

	specs "github.com/opencontainers/runtime-spec/specs-go"

	"github.com/palisade-runtime/palisade/policy"
	"github.com/palisade-runtime/palisade/shim"
)

// badDir is the corpus of malformed and hostile inputs (issue 7, item 2).
// Its MANIFEST lists every file with a substring its error must contain:
// the field at fault, so that an operator can find it. The directory
// says which parser the file is for:
//
//	config/   Palisade's config.toml, through shim.ParseConfig
//	seccomp/  a handler's seccomp profile file, through
//	          policy.ParseSeccompProfile and policy.NewFloor
//	spec/     a container's config.json, decoded as the shim decodes it and
//	          enforced with policy.Enforce under badSpecFloor
//
// A file ending in .gz is decompressed first, so that the 10 MB inputs
// stay small in git.
const badDir = "../integration/testdata/bad"

// badInputLimit bounds the time one input may take to be refused: a
// hostile input must not hold up the shim. The 10 MB inputs take about a
// quarter of it; the race detector makes parsing about ten times slower.
func badInputLimit() time.Duration {
	if bi, ok := debug.ReadBuildInfo(); ok {
		for _, s := range bi.Settings {
			if s.Key == "-race" && s.Value == "true" {
				return 10 * time.Second
			}
		}
	}
	return time.Second
}

// badSpecFloor is the floor the specs meet: the README's gvisor-strict
// handler, which refuses requests above its ceiling.
var badSpecFloor = policy.Config{
	Mode:            policy.ModeEnforce,
	Seccomp:         policy.SeccompRuntimeDefault,
	OverCeiling:     policy.OverCeilingRefuse,
	NoNewPrivileges: true,
	Capabilities: policy.CapsConfig{
		Ceiling: []string{"CAP_CHOWN", "CAP_DAC_OVERRIDE", "CAP_FSETID", "CAP_FOWNER", "CAP_MKNOD", "CAP_NET_RAW",
			"CAP_SETGID", "CAP_SETUID", "CAP_SETFCAP", "CAP_SETPCAP", "CAP_NET_BIND_SERVICE", "CAP_SYS_CHROOT",
			"CAP_KILL", "CAP_AUDIT_WRITE"},
		Drop: []string{"CAP_NET_RAW"},
	},
}

var badSpecSupport = policy.Support{Backend: "runsc", SeccompEnforcer: "gVisor sentry",
	CapabilityEnforcer: "gVisor sentry", NoNewPrivsEnforcer: "gVisor sentry", KernelVersion: "6.1"}

func TestBadInputsAreRefused(t *testing.T) {
	manifest := readManifest(t)
	floor, err := policy.NewFloor(badSpecFloor, nil)
	if err != nil {
		t.Fatal(err)
	}
	refused := map[string]int{}
	limit := badInputLimit()
	for _, c := range manifest {
		t.Run(c.file, func(t *testing.T) {
			data := readBad(t, c.file)
			start := time.Now()
			var err error
			switch kind := strings.SplitN(c.file, "/", 2)[0]; kind {
			case "config":
				err = refuseConfig(data)
			case "seccomp":
				err = refuseProfile(data)
			case "spec":
				err = refuseSpec(data, floor)
			default:
				t.Fatalf("no parser for directory %q", kind)
			}
			took := time.Since(start)
			switch {
			case err == nil:
				t.Fatalf("accepted")
			case !strings.Contains(err.Error(), c.want):
				t.Fatalf("refused, but the error does not name %q:\n%s", c.want, clip(err.Error()))
			case took > limit:
				t.Fatalf("refused after %v, more than %v", took, limit)
			}
			refused[strings.SplitN(c.file, "/", 2)[0]]++
		})
	}
	total := refused["config"] + refused["seccomp"] + refused["spec"]
	t.Logf("bad inputs refused: %d of %d (config.toml %d, seccomp profiles %d, OCI specs %d)",
		total, len(manifest), refused["config"], refused["seccomp"], refused["spec"])
}

// refuseConfig parses a config.toml as the shim does at start.
func refuseConfig(data []byte) error {
	c, err := shim.ParseConfig(data)
	if err == nil && c == nil {
		return errors.New("no config and no error")
	}
	return err
}

// refuseProfile parses a seccomp profile file both ways a handler's floor
// can be made; both must refuse it, naming the same field.
func refuseProfile(data []byte) error {
	_, perr := policy.ParseSeccompProfile(data)
	_, ferr := policy.NewFloor(policy.Config{Seccomp: "/etc/palisade/bad.json"}, data)
	switch {
	case perr == nil || ferr == nil:
		return nil
	case !strings.Contains(ferr.Error(), perr.Error()):
		return fmt.Errorf("NewFloor and ParseSeccompProfile disagree:\n%v\n%v", ferr, perr)
	}
	return ferr
}

// refuseSpec decodes a config.json as the shim's Create does and enforces
// the floor on it. A refused spec must come back unchanged.
func refuseSpec(data []byte, floor *policy.Floor) error {
	var spec specs.Spec
	if err := json.Unmarshal(data, &spec); err != nil {
		return err
	}
	before, _ := json.Marshal(&spec)
	_, err := policy.Enforce(&spec, floor, badSpecSupport)
	if err == nil {
		return nil
	}
	if after, _ := json.Marshal(&spec); !bytes.Equal(before, after) {
		return fmt.Errorf("refused but changed the spec: %w", err)
	}
	if !errors.Is(err, policy.ErrInvalid) && !errors.Is(err, policy.ErrRefused) {
		return fmt.Errorf("refused without ErrInvalid or ErrRefused: %w", err)
	}
	return err
}

type badCase struct{ file, want string }

// readManifest reads MANIFEST and checks that it and the directories list
// the same files, so that no input is left out unnoticed.
func readManifest(t *testing.T) []badCase {
	t.Helper()
	f, err := os.Open(filepath.Join(badDir, "MANIFEST"))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var cases []badCase
	listed := map[string]bool{}
	sc := bufio.NewScanner(f)
	for n := 1; sc.Scan(); n++ {
		line := sc.Text()
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		file, want, ok := strings.Cut(line, "\t")
		if !ok || file == "" || want == "" || listed[file] {
			t.Fatalf("MANIFEST:%d: want a new file<TAB>expected substring, got %q", n, line)
		}
		listed[file] = true
		cases = append(cases, badCase{file, want})
	}
	if err := sc.Err(); err != nil {
		t.Fatal(err)
	}
	var onDisk []string
	for _, dir := range []string{"config", "seccomp", "spec"} {
		entries, err := os.ReadDir(filepath.Join(badDir, dir))
		if err != nil {
			t.Fatal(err)
		}
		for _, e := range entries {
			onDisk = append(onDisk, dir+"/"+e.Name())
		}
	}
	for _, file := range onDisk {
		if !listed[file] {
			t.Errorf("MANIFEST does not list %s", file)
		}
	}
	for file := range listed {
		if !slices.Contains(onDisk, file) {
			t.Errorf("MANIFEST lists %s, which does not exist", file)
		}
	}
	return cases
}

func readBad(t *testing.T, file string) []byte {
	t.Helper()
	data, err := os.ReadFile(filepath.Join(badDir, file))
	if err != nil {
		t.Fatal(err)
	}
	if !strings.HasSuffix(file, ".gz") {
		return data
	}
	z, err := gzip.NewReader(bytes.NewReader(data))
	if err != nil {
		t.Fatal(err)
	}
	if data, err = io.ReadAll(z); err != nil {
		t.Fatal(err)
	}
	return data
}

// clip keeps an error about a 10 MB input readable.
func clip(s string) string {
	if len(s) > 600 {
		return s[:600] + fmt.Sprintf("... (%d bytes)", len(s))
	}
	return s
}
