package cluster

import (
	"context"
	"crypto/rand"
	"crypto/rsa"
	"crypto/tls"
	"crypto/x509"
	"encoding/hex"
	"encoding/pem"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"time"

	"k8s.io/client-go/tools/clientcmd"
	clientcmdapi "k8s.io/client-go/tools/clientcmd/api"
)

// startEtcd starts etcd with its data in the cluster's directory.
func (c *Cluster) startEtcd(ctx context.Context) (string, error) {
	ports, err := freePorts(2)
	if err != nil {
		return "", err
	}
	client := "http://127.0.0.1:" + strconv.Itoa(ports[0])
	peer := "http://127.0.0.1:" + strconv.Itoa(ports[1])
	_, err = c.run(ctx, component{
		name: "etcd", bin: c.tool("etcd"),
		args: []string{"--name=default", "--data-dir=" + filepath.Join(c.Dir, "etcd"),
			"--listen-client-urls=" + client, "--advertise-client-urls=" + client,
			"--listen-peer-urls=" + peer, "--initial-advertise-peer-urls=" + peer,
			"--initial-cluster=default=" + peer, "--log-level=warn"},
		ready: httpOK(http.DefaultClient, client+"/health", ""), readyWithin: time.Minute, waitingFor: "etcd",
	})
	return client, err
}

// startAPIServer starts kube-apiserver on etcd, with a static admin token and
// a service-account signing key, so that TokenRequest works.
func (c *Cluster) startAPIServer(ctx context.Context, etcd string) error {
	port, err := freePort()
	if err != nil {
		return err
	}
	certDir := filepath.Join(c.Dir, "apiserver")
	if err := os.MkdirAll(certDir, 0o700); err != nil {
		return err
	}
	key, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		return err
	}
	pub, err := x509.MarshalPKIXPublicKey(&key.PublicKey)
	if err != nil {
		return err
	}
	token := randomHex(16)
	// The real node's kubelet authenticates as its Node, as kubelets do, and
	// the Node authorizer and NodeRestriction admission hold it to that.
	c.nodeToken = randomHex(16)
	files := map[string][]byte{
		"sa.key": pem.EncodeToMemory(&pem.Block{Type: "RSA PRIVATE KEY", Bytes: x509.MarshalPKCS1PrivateKey(key)}),
		"sa.pub": pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: pub}),
		"tokens.csv": []byte(token + ",admin,admin,system:masters\n" +
			c.nodeToken + ",system:node:" + RealNodeName + "," + RealNodeName + ",system:nodes\n"),
	}
	files["audit-policy.yaml"] = []byte(auditPolicy)
	if c.egress, err = startEgressProxy(c.Dir); err != nil {
		return err
	}
	files["egress-selector.yaml"] = []byte(fmt.Sprintf(egressSelectorConfig, c.egress.socket))
	for name, data := range files {
		if err := os.WriteFile(filepath.Join(certDir, name), data, 0o600); err != nil {
			return err
		}
	}
	c.AuditLog = filepath.Join(c.Dir, "logs", "audit.log")
	args := []string{"--etcd-servers=" + etcd, "--bind-address=127.0.0.1", "--advertise-address=127.0.0.1",
		"--secure-port=" + strconv.Itoa(port), "--cert-dir=" + certDir,
		"--service-account-issuer=https://kubernetes.default.svc",
		"--service-account-key-file=" + filepath.Join(certDir, "sa.pub"),
		"--service-account-signing-key-file=" + filepath.Join(certDir, "sa.key"),
		"--token-auth-file=" + filepath.Join(certDir, "tokens.csv"),
		"--authorization-mode=Node,RBAC", "--service-cluster-ip-range=10.0.0.0/24",
		// As on clusters that check blockOwnerDeletion against the owner's
		// finalizers: the controller's jobs set it.
		"--enable-admission-plugins=OwnerReferencesPermissionEnforcement,NodeRestriction",
		"--enable-priority-and-fairness=false", "--v=0",
		"--audit-policy-file=" + filepath.Join(certDir, "audit-policy.yaml"), "--audit-log-path=" + c.AuditLog,
		"--audit-log-format=json", "--audit-log-mode=batch", "--audit-log-batch-max-wait=1s",
		"--egress-selector-config-file=" + filepath.Join(certDir, "egress-selector.yaml")}
	c.Server = "https://127.0.0.1:" + strconv.Itoa(port)
	c.adminToken = token
	c.apiserverArgs = args
	if err := c.runAPIServer(ctx); err != nil {
		return err
	}
	c.Kubeconfig = filepath.Join(c.Dir, "kubeconfig")
	return c.writeKubeconfig(c.Kubeconfig, "admin", token)
}

// auditPolicy records the controller's requests only, once each when
// answered (a watch when it starts): what the benchmark counts per run.
const auditPolicy = `apiVersion: audit.k8s.io/v1
kind: Policy
omitStages: [RequestReceived]
rules:
  - level: Metadata
    users: ["system:serviceaccount:` + Namespace + `:imageprepull-controller"]
  - level: None
`

func (c *Cluster) runAPIServer(ctx context.Context) error {
	insecure := &http.Client{Transport: &http.Transport{TLSClientConfig: &tls.Config{InsecureSkipVerify: true}}} //nolint:gosec // a loopback test server with a self-signed cert
	p, err := c.run(ctx, component{
		name: "kube-apiserver", bin: c.tool("kube-apiserver"), args: c.apiserverArgs,
		ready: httpOK(insecure, c.Server+"/readyz", c.adminToken), readyWithin: 2 * time.Minute, waitingFor: "kube-apiserver /readyz",
	})
	if p != nil {
		c.apiserver = p
	}
	return err
}

// RestartAPIServer stops kube-apiserver and starts it again on the same
// port; etcd keeps the data.
func (c *Cluster) RestartAPIServer(ctx context.Context) error {
	c.apiserver.stop(30 * time.Second)
	return c.runAPIServer(ctx)
}

// writeKubeconfig writes a kubeconfig that authenticates with a bearer token.
func (c *Cluster) writeKubeconfig(path, user, token string) error {
	cfg := clientcmdapi.NewConfig()
	cfg.Clusters["local"] = &clientcmdapi.Cluster{Server: c.Server, InsecureSkipTLSVerify: true}
	cfg.AuthInfos[user] = &clientcmdapi.AuthInfo{Token: token}
	cfg.Contexts["local"] = &clientcmdapi.Context{Cluster: "local", AuthInfo: user, Namespace: "default"}
	cfg.CurrentContext = "local"
	return clientcmd.WriteToFile(*cfg, path)
}

func randomHex(n int) string {
	b := make([]byte, n)
	if _, err := rand.Read(b); err != nil {
		panic(fmt.Sprintf("crypto/rand: %v", err))
	}
	return hex.EncodeToString(b)
}
