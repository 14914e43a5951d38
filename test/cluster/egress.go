package cluster

import (
	"bufio"
	"fmt"
	"io"
	"net"
	"net/http"
	"path/filepath"
	"sync"
)

// egressProxy carries kube-apiserver's calls to in-cluster Services (Tekton's
// admission and conversion webhooks) to the process that serves them on the
// loopback address. kube-apiserver resolves a webhook's Service to its
// ClusterIP and, with an egress selector for the "cluster" network, asks this
// proxy to CONNECT there over a Unix socket instead of dialling it. Nothing
// listens on a ClusterIP here (there is no kube-proxy): the proxy connects only
// the ClusterIP:port pairs it was told about, each to a loopback port, and
// refuses every other address, so no call ever leaves the machine.
type egressProxy struct {
	socket string
	l      net.Listener

	mu     sync.Mutex
	routes map[string]string // ClusterIP:port -> 127.0.0.1:port
}

// egressSelectorConfig is kube-apiserver's --egress-selector-config-file:
// only the "cluster" network goes through the proxy. URL webhooks (Kruise's
// manager points its own at https://127.0.0.1:PORT) are "controlplane" and
// are dialled directly, as before.
const egressSelectorConfig = `apiVersion: apiserver.k8s.io/v1beta1
kind: EgressSelectorConfiguration
egressSelections:
  - name: cluster
    connection:
      proxyProtocol: HTTPConnect
      transport:
        uds:
          udsName: %s
`

func startEgressProxy(dir string) (*egressProxy, error) {
	socket := filepath.Join(dir, "egress.sock")
	l, err := net.Listen("unix", socket)
	if err != nil {
		return nil, fmt.Errorf("the egress proxy's socket: %w", err)
	}
	p := &egressProxy{socket: socket, l: l, routes: map[string]string{}}
	go p.serve()
	return p, nil
}

// route sends CONNECTs to from (a Service's ClusterIP:port) to to (a loopback host:port).
func (p *egressProxy) route(from, to string) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.routes[from] = to
}

func (p *egressProxy) close() { _ = p.l.Close() }

func (p *egressProxy) serve() {
	for {
		conn, err := p.l.Accept()
		if err != nil {
			return
		}
		go p.connect(conn)
	}
}

func (p *egressProxy) connect(conn net.Conn) {
	br := bufio.NewReader(conn)
	req, err := http.ReadRequest(br)
	if err != nil {
		conn.Close()
		return
	}
	p.mu.Lock()
	to, ok := p.routes[req.Host]
	p.mu.Unlock()
	if req.Method != http.MethodConnect || !ok {
		fmt.Fprintf(conn, "HTTP/1.1 403 Forbidden\r\n\r\nthe local cluster's egress proxy connects only its Services' ClusterIPs, not %s\n", req.Host)
		conn.Close()
		return
	}
	upstream, err := net.Dial("tcp", to)
	if err != nil {
		fmt.Fprintf(conn, "HTTP/1.1 502 Bad Gateway\r\n\r\n%v\n", err)
		conn.Close()
		return
	}
	if _, err := io.WriteString(conn, "HTTP/1.1 200 Connection established\r\n\r\n"); err != nil {
		conn.Close()
		upstream.Close()
		return
	}
	// kube-apiserver sends nothing before the 200, so br holds no bytes of
	// the tunnel yet; reading from br keeps that true either way.
	splice(bufferedConn{br, conn}, upstream)
}

// bufferedConn reads through the reader that read the CONNECT request.
type bufferedConn struct {
	r *bufio.Reader
	net.Conn
}

func (c bufferedConn) Read(b []byte) (int, error) { return c.r.Read(b) }
