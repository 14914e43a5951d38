package cluster

import (
	"context"
	"crypto/rand"
	"crypto/rsa"
	"crypto/tls"
	"crypto/x509"
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

// ControlPlane is etcd and kube-apiserver: the cluster's store and its API,
// with an admin token, the real node's kubelet's token, a service-account
// signing key (so that TokenRequest works), an audit log of the controller's
// requests, and an egress proxy for the API server's calls to Services.
type ControlPlane struct {
	h *host
	// Server is kube-apiserver's URL; Kubeconfig authenticates as cluster
	// admin; AuditLog is the audit log (JSON lines) of the controller's
	// requests.
	Server, Kubeconfig, AuditLog string
	// certDir holds the API server's certificate and keys.
	certDir string
	// nodeTokens are the real nodes' kubelets', by node name: user
	// system:node:<name> each.
	adminToken      string
	nodeTokens      map[string]string
	args            []string
	etcd, apiserver *process
	egress          *egressProxy
}

// Start starts etcd, then kube-apiserver on it, and writes an admin kubeconfig.
func (cp *ControlPlane) Start(ctx context.Context) error {
	etcd, err := cp.startEtcd(ctx)
	if err != nil {
		return err
	}
	return cp.startAPIServer(ctx, etcd)
}

// Stop stops kube-apiserver, then etcd.
func (cp *ControlPlane) Stop() {
	cp.apiserver.stop(10 * time.Second)
	cp.etcd.stop(10 * time.Second)
	if cp.egress != nil {
		cp.egress.close()
	}
}

// startEtcd starts etcd with its data in the cluster's directory.
func (cp *ControlPlane) startEtcd(ctx context.Context) (string, error) {
	ports, err := freePorts(2)
	if err != nil {
		return "", err
	}
	client := "http://127.0.0.1:" + strconv.Itoa(ports[0])
	peer := "http://127.0.0.1:" + strconv.Itoa(ports[1])
	cp.etcd, err = cp.h.run(ctx, program{
		name: "etcd", bin: cp.h.tools.Path("etcd"),
		args: []string{"--name=default", "--data-dir=" + filepath.Join(cp.h.dir, "etcd"),
			"--listen-client-urls=" + client, "--advertise-client-urls=" + client,
			"--listen-peer-urls=" + peer, "--initial-advertise-peer-urls=" + peer,
			"--initial-cluster=default=" + peer, "--log-level=warn"},
		ready: httpOK(http.DefaultClient, client+"/health", ""), readyWithin: time.Minute, waitingFor: "etcd",
	})
	return client, err
}

// startAPIServer starts kube-apiserver on etcd, with a static admin token and
// a service-account signing key, so that TokenRequest works.
func (cp *ControlPlane) startAPIServer(ctx context.Context, etcd string) error {
	port, err := freePort()
	if err != nil {
		return err
	}
	cp.certDir = filepath.Join(cp.h.dir, "apiserver")
	if err := os.MkdirAll(cp.certDir, 0o700); err != nil {
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
	// Each real node's kubelet authenticates as its Node, as kubelets do,
	// and the Node authorizer and NodeRestriction admission hold it to that.
	tokens := token + ",admin,admin,system:masters\n"
	cp.nodeTokens = map[string]string{}
	for k := 1; k <= MaxRealNodes; k++ {
		name := realNodeName(k)
		cp.nodeTokens[name] = randomHex(16)
		tokens += cp.nodeTokens[name] + ",system:node:" + name + "," + name + ",system:nodes\n"
	}
	files := map[string][]byte{
		"sa.key":     pem.EncodeToMemory(&pem.Block{Type: "RSA PRIVATE KEY", Bytes: x509.MarshalPKCS1PrivateKey(key)}),
		"sa.pub":     pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: pub}),
		"tokens.csv": []byte(tokens),
	}
	files["audit-policy.yaml"] = []byte(auditPolicy)
	if cp.egress, err = startEgressProxy(cp.h.dir); err != nil {
		return err
	}
	files["egress-selector.yaml"] = []byte(fmt.Sprintf(egressSelectorConfig, cp.egress.socket))
	for name, data := range files {
		if err := os.WriteFile(filepath.Join(cp.certDir, name), data, 0o600); err != nil {
			return err
		}
	}
	cp.AuditLog = filepath.Join(cp.h.dir, "logs", "audit.log")
	cp.args = []string{"--etcd-servers=" + etcd, "--bind-address=127.0.0.1", "--advertise-address=127.0.0.1",
		"--secure-port=" + strconv.Itoa(port), "--cert-dir=" + cp.certDir,
		"--service-account-issuer=https://kubernetes.default.svc",
		"--service-account-key-file=" + filepath.Join(cp.certDir, "sa.pub"),
		"--service-account-signing-key-file=" + filepath.Join(cp.certDir, "sa.key"),
		"--token-auth-file=" + filepath.Join(cp.certDir, "tokens.csv"),
		"--authorization-mode=Node,RBAC", "--service-cluster-ip-range=10.0.0.0/24",
		// As on clusters that check blockOwnerDeletion against the owner's
		// finalizers: the controller's jobs set it.
		"--enable-admission-plugins=OwnerReferencesPermissionEnforcement,NodeRestriction",
		"--enable-priority-and-fairness=false", "--v=0",
		"--audit-policy-file=" + filepath.Join(cp.certDir, "audit-policy.yaml"), "--audit-log-path=" + cp.AuditLog,
		"--audit-log-format=json", "--audit-log-mode=batch", "--audit-log-batch-max-wait=1s",
		"--egress-selector-config-file=" + filepath.Join(cp.certDir, "egress-selector.yaml")}
	cp.Server = "https://127.0.0.1:" + strconv.Itoa(port)
	cp.adminToken = token
	if err := cp.runAPIServer(ctx); err != nil {
		return err
	}
	cp.Kubeconfig = filepath.Join(cp.h.dir, "kubeconfig")
	return cp.WriteKubeconfig(cp.Kubeconfig, "admin", token)
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

func (cp *ControlPlane) runAPIServer(ctx context.Context) error {
	insecure := &http.Client{Transport: &http.Transport{TLSClientConfig: &tls.Config{InsecureSkipVerify: true}}} //nolint:gosec // a loopback test server with a self-signed cert
	p, err := cp.h.run(ctx, program{
		name: "kube-apiserver", bin: cp.h.tools.Path("kube-apiserver"), args: cp.args,
		ready: httpOK(insecure, cp.Server+"/readyz", cp.adminToken), readyWithin: 2 * time.Minute, waitingFor: "kube-apiserver /readyz",
	})
	if p != nil {
		cp.apiserver = p
	}
	return err
}

// RestartAPIServer stops kube-apiserver and starts it again on the same
// port; etcd keeps the data.
func (cp *ControlPlane) RestartAPIServer(ctx context.Context) error {
	cp.apiserver.stop(30 * time.Second)
	return cp.runAPIServer(ctx)
}

// WriteKubeconfig writes a kubeconfig that authenticates with a bearer token.
func (cp *ControlPlane) WriteKubeconfig(path, user, token string) error {
	cfg := clientcmdapi.NewConfig()
	cfg.Clusters["local"] = &clientcmdapi.Cluster{Server: cp.Server, InsecureSkipTLSVerify: true}
	cfg.AuthInfos[user] = &clientcmdapi.AuthInfo{Token: token}
	cfg.Contexts["local"] = &clientcmdapi.Context{Cluster: "local", AuthInfo: user, Namespace: "default"}
	cfg.CurrentContext = "local"
	return clientcmd.WriteToFile(*cfg, path)
}
