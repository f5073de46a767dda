package k8s

import (
	"crypto/x509"
	"encoding/pem"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/pelletier/go-toml/v2"
)

func TestPKIIssue(t *testing.T) {
	p, err := newPKI(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	id, err := p.issue("kubelet-serving", "system:node:n", []string{"system:nodes"}, "10.87.0.1", "n")
	if err != nil {
		t.Fatal(err)
	}
	b, err := os.ReadFile(id.Cert)
	if err != nil {
		t.Fatal(err)
	}
	blk, _ := pem.Decode(b)
	cert, err := x509.ParseCertificate(blk.Bytes)
	if err != nil {
		t.Fatal(err)
	}
	roots := x509.NewCertPool()
	roots.AddCert(p.ca)
	for _, usage := range []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth, x509.ExtKeyUsageServerAuth} {
		if _, err := cert.Verify(x509.VerifyOptions{Roots: roots, DNSName: "n", KeyUsages: []x509.ExtKeyUsage{usage}}); err != nil {
			t.Errorf("verify for %v: %v", usage, err)
		}
	}
	if cert.Subject.CommonName != "system:node:n" || !slices.Equal(cert.Subject.Organization, []string{"system:nodes"}) {
		t.Errorf("subject %v: want CN system:node:n, O system:nodes", cert.Subject)
	}
	if len(cert.IPAddresses) != 1 || cert.IPAddresses[0].String() != "10.87.0.1" {
		t.Errorf("IP SANs %v", cert.IPAddresses)
	}
	client, err := p.issue("admin", "a", []string{"system:masters"})
	if err != nil {
		t.Fatal(err)
	}
	b, _ = os.ReadFile(client.Cert)
	blk, _ = pem.Decode(b)
	cert, _ = x509.ParseCertificate(blk.Bytes)
	if slices.Contains(cert.ExtKeyUsage, x509.ExtKeyUsageServerAuth) {
		t.Error("a client-only identity can serve")
	}
	kc, err := p.kubeconfig("https://127.0.0.1:1", "admin", client)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(kc, "server: https://127.0.0.1:1\n") || !strings.Contains(kc, "client-key-data: ") {
		t.Errorf("kubeconfig:\n%s", kc)
	}
}

// TestAdaptConfig checks that the served config points every runtime at the
// cluster's binaries and roots, keeps the policies, and takes ExtraConfig's
// handlers through the same adaptation.
func TestAdaptConfig(t *testing.T) {
	root, err := findRepoRoot()
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	tools := filepath.Join(dir, "tools")
	if err := os.MkdirAll(tools, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(tools, "runc"), nil, 0o755); err != nil {
		t.Fatal(err)
	}
	c := &Cluster{
		opts: Options{Dir: dir, ToolsBin: tools, Config: filepath.Join(root, "config.toml"),
			ExtraConfig: "[handlers.extra]\nbackend = \"runsc\"\n[handlers.extra.runsc]\nroot = \"/run/elsewhere\"\n"},
		dirs: Dirs{RunscRoot: filepath.Join(dir, "runsc"), RuntimeRoot: filepath.Join(dir, "rt"),
			Kubelet: filepath.Join(dir, "kubelet"), ContainerdRoot: filepath.Join(dir, "c", "root")},
	}
	path, err := c.adaptConfig()
	if err != nil {
		t.Fatal(err)
	}
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	var got struct {
		KubeletRootDir string `toml:"kubelet_root_dir"`
		Handlers       map[string]struct {
			Runsc *struct{ Binary, Root string }
			Shim  *struct {
				Root       string
				BinaryName string `toml:"binary_name"`
			}
			Policy map[string]any
		}
	}
	if err := toml.Unmarshal(b, &got); err != nil {
		t.Fatal(err)
	}
	for _, name := range []string{"gvisor", "gvisor-strict", "extra"} {
		h := got.Handlers[name]
		if h.Runsc == nil || h.Runsc.Binary != filepath.Join(tools, "runsc") || h.Runsc.Root != c.dirs.RunscRoot {
			t.Errorf("handler %s: runsc %+v", name, h.Runsc)
		}
	}
	if got.Handlers["gvisor"].Policy["seccomp"] != "runtime-default" {
		t.Errorf("gvisor's policy changed: %v", got.Handlers["gvisor"].Policy)
	}
	if sh := got.Handlers["runc-floor"].Shim; sh == nil || sh.Root != filepath.Join(c.dirs.RuntimeRoot, "runc-floor") ||
		sh.BinaryName != filepath.Join(tools, "runc") {
		t.Errorf("runc-floor: shim %+v", sh)
	}
	src, _ := os.ReadFile(c.opts.Config)
	if strings.Contains(string(src), "\nkubelet_root_dir") != (got.KubeletRootDir == c.dirs.Kubelet) {
		t.Errorf("kubelet_root_dir %q: set iff config.toml has the key", got.KubeletRootDir)
	}
}
