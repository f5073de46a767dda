package k8s

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/palisade-runtime/palisade/integration/internal/cninet"
	"github.com/palisade-runtime/palisade/integration/internal/criimages"
	"github.com/palisade-runtime/palisade/integration/internal/registry"
)

// startRegistry builds (or reuses) the offline images and serves them from a
// registry on 127.0.0.1 inside the namespace, with the mirror config containerd
// reads in Dir/hosts.
func (c *Cluster) startRegistry(ctx context.Context) error {
	layout, err := criimages.Build(criimages.Options{
		CacheDir: c.opts.ImageCache,
		RepoRoot: c.opts.RepoRoot,
		Logf:     c.logf,
	})
	if err != nil {
		return err
	}
	ln, err := cninet.Listen(c.netnsPath, "127.0.0.1:0")
	if err != nil {
		return fmt.Errorf("registry listener: %w", err)
	}
	if c.regLog, err = os.Create(filepath.Join(c.dirs.Logs, "registry.log")); err != nil {
		ln.Close()
		return err
	}
	c.reg = registry.Serve(ln, c.regLog)
	// The listener is in the namespace; push through the handler directly.
	if err := criimages.Push(layout, c.reg.Host, c.reg.Transport()); err != nil {
		return err
	}
	return registry.WriteHostsDir(filepath.Join(c.opts.Dir, "hosts"), c.reg.Host, registry.MirroredHosts)
}

// startControlPlane issues the certificates and starts etcd, the apiserver (and
// the host's forwarder to it), the controller-manager and the scheduler.
func (c *Cluster) startControlPlane(ctx context.Context) error {
	p, err := newPKI(c.dirs.PKI)
	if err != nil {
		return err
	}
	ids := map[string]identity{}
	for _, x := range []struct {
		name, cn string
		orgs     []string
		hosts    []string
	}{
		{"apiserver", "kube-apiserver", nil, []string{"127.0.0.1", nodeIP, "10.96.0.1", "localhost", "kubernetes",
			"kubernetes.default", "kubernetes.default.svc", "kubernetes.default.svc.cluster.local"}},
		{"apiserver-kubelet-client", "kube-apiserver-kubelet-client", []string{"system:masters"}, nil},
		{"admin", "palisade-admin", []string{"system:masters"}, nil},
		{"controller-manager", "system:kube-controller-manager", nil, nil},
		{"scheduler", "system:kube-scheduler", nil, nil},
		{"kubelet", "system:node:" + NodeName, []string{"system:nodes"}, nil},
		{"kubelet-serving", "system:node:" + NodeName, []string{"system:nodes"}, []string{nodeIP, NodeName}},
	} {
		if ids[x.name], err = p.issue(x.name, x.cn, x.orgs, x.hosts...); err != nil {
			return err
		}
	}
	saKey, saPub, err := p.serviceAccountKey()
	if err != nil {
		return err
	}
	inner := "https://127.0.0.1:" + apiPort
	kubeconfigs := map[string]string{}
	for _, n := range []string{"controller-manager", "scheduler", "kubelet"} {
		kc, err := p.kubeconfig(inner, n, ids[n])
		if err != nil {
			return err
		}
		kubeconfigs[n] = filepath.Join(c.dirs.PKI, n+".kubeconfig")
		if err := os.WriteFile(kubeconfigs[n], []byte(kc), 0o600); err != nil {
			return err
		}
	}
	env := c.environ()

	etcd, err := c.startProc("etcd", c.tool("etcd"), []string{
		"--name=palisade", "--data-dir=" + c.dirs.Etcd,
		"--listen-client-urls=http://127.0.0.1:2379", "--advertise-client-urls=http://127.0.0.1:2379",
		"--listen-peer-urls=http://127.0.0.1:2380", "--initial-advertise-peer-urls=http://127.0.0.1:2380",
		"--initial-cluster=palisade=http://127.0.0.1:2380",
		// The cluster lives for one run: durability is not worth an fsync per write.
		"--unsafe-no-fsync", "--log-level=warn",
	}, env)
	if err != nil {
		return err
	}
	nsClient := c.nsHTTPClient(nil)
	if err := waitFor(ctx, "etcd", time.Minute, func() error { return httpOK(nsClient, "http://127.0.0.1:2379/health") }, etcd); err != nil {
		return err
	}

	api, err := c.startProc("kube-apiserver", c.tool("kube-apiserver"), []string{
		"--etcd-servers=http://127.0.0.1:2379",
		"--bind-address=0.0.0.0", "--secure-port=" + apiPort, "--advertise-address=" + nodeIP,
		"--tls-cert-file=" + ids["apiserver"].Cert, "--tls-private-key-file=" + ids["apiserver"].Key,
		"--client-ca-file=" + p.CAFile(),
		"--kubelet-client-certificate=" + ids["apiserver-kubelet-client"].Cert,
		"--kubelet-client-key=" + ids["apiserver-kubelet-client"].Key,
		"--kubelet-certificate-authority=" + p.CAFile(),
		"--kubelet-preferred-address-types=InternalIP",
		"--service-account-issuer=https://kubernetes.default.svc.cluster.local",
		"--service-account-key-file=" + saPub, "--service-account-signing-key-file=" + saKey,
		"--service-cluster-ip-range=" + serviceSubnet,
		"--authorization-mode=Node,RBAC",
		// On by default too; named so that the cluster's contract is visible here.
		"--enable-admission-plugins=NodeRestriction,ServiceAccount,RuntimeClass,DefaultStorageClass,LimitRanger",
		// Privileged pods must reach the node: refusing them is Palisade's job.
		"--allow-privileged=true",
		"--profiling=false",
	}, env)
	if err != nil {
		return err
	}
	if c.fwd, err = newForwarder(c.netnsPath, "127.0.0.1:"+apiPort); err != nil {
		return err
	}
	admin, err := p.kubeconfig("https://"+c.fwd.Addr(), "admin", ids["admin"])
	if err != nil {
		return err
	}
	c.kubeconfig = filepath.Join(c.opts.Dir, "kubeconfig")
	if err := os.WriteFile(c.kubeconfig, []byte(admin), 0o600); err != nil {
		return err
	}
	hostClient, err := tlsClient(p.CAFile(), ids["admin"])
	if err != nil {
		return err
	}
	if err := waitFor(ctx, "kube-apiserver", 2*time.Minute, func() error { return httpOK(hostClient, c.APIServer()+"/readyz") }, api); err != nil {
		return err
	}

	if _, err := c.startProc("kube-controller-manager", c.tool("kube-controller-manager"), []string{
		"--kubeconfig=" + kubeconfigs["controller-manager"],
		"--authentication-kubeconfig=" + kubeconfigs["controller-manager"],
		"--authorization-kubeconfig=" + kubeconfigs["controller-manager"],
		"--bind-address=127.0.0.1", "--leader-elect=false",
		"--use-service-account-credentials=true",
		"--service-account-private-key-file=" + saKey,
		"--root-ca-file=" + p.CAFile(),
		"--cluster-signing-cert-file=" + p.CAFile(),
		"--cluster-signing-key-file=" + filepath.Join(c.dirs.PKI, "ca.key"),
		"--service-cluster-ip-range=" + serviceSubnet,
	}, env); err != nil {
		return err
	}
	_, err = c.startProc("kube-scheduler", c.tool("kube-scheduler"), []string{
		"--kubeconfig=" + kubeconfigs["scheduler"],
		"--authentication-kubeconfig=" + kubeconfigs["scheduler"],
		"--authorization-kubeconfig=" + kubeconfigs["scheduler"],
		"--bind-address=127.0.0.1", "--leader-elect=false",
	}, env)
	c.kubeletKubeconfig = kubeconfigs["kubelet"]
	c.kubeletServing = ids["kubelet-serving"]
	c.caFile = p.CAFile()
	return err
}

// environ is the components' environment: this process's, with the tools and
// Palisade's binaries first on PATH (containerd finds shims and runtimes there) and
// nothing of the host's containerd, tracing or kubectl settings.
func (c *Cluster) environ() []string {
	path := c.opts.PalisadeBin + ":" + c.opts.ToolsBin
	var env []string
	for _, kv := range os.Environ() {
		k, v, _ := strings.Cut(kv, "=")
		switch {
		case k == "PATH":
			path += ":" + v
		case strings.HasPrefix(k, "CONTAINERD_"), strings.HasPrefix(k, "OTEL_"), k == "KUBECONFIG":
		default:
			env = append(env, kv)
		}
	}
	return append(env, "PATH="+path)
}

func (c *Cluster) tool(name string) string { return filepath.Join(c.opts.ToolsBin, name) }

// nsHTTPClient is an HTTP client whose connections are made inside the cluster's
// namespace.
func (c *Cluster) nsHTTPClient(tlsConf *tls.Config) *http.Client {
	return &http.Client{Timeout: 5 * time.Second, Transport: &http.Transport{
		TLSClientConfig: tlsConf,
		DialContext: func(ctx context.Context, network, addr string) (conn net.Conn, err error) {
			err = cninet.Do(c.netnsPath, func() (err error) {
				conn, err = (&net.Dialer{Timeout: 5 * time.Second}).DialContext(ctx, network, addr)
				return err
			})
			return conn, err
		},
	}}
}

// tlsClient is an HTTP client that trusts ca and presents id.
func tlsClient(ca string, id identity) (*http.Client, error) {
	pem, err := os.ReadFile(ca)
	if err != nil {
		return nil, err
	}
	pool := x509.NewCertPool()
	pool.AppendCertsFromPEM(pem)
	cert, err := tls.LoadX509KeyPair(id.Cert, id.Key)
	if err != nil {
		return nil, err
	}
	return &http.Client{Timeout: 5 * time.Second, Transport: &http.Transport{
		TLSClientConfig: &tls.Config{RootCAs: pool, Certificates: []tls.Certificate{cert}},
	}}, nil
}

// httpOK returns nil if GET url answers 200.
func httpOK(client *http.Client, url string) error {
	resp, err := client.Get(url)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(io.LimitReader(resp.Body, 4096))
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("GET %s: %s: %s", url, resp.Status, strings.TrimSpace(string(body)))
	}
	return nil
}
