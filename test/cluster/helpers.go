package cluster

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"regexp"
	"strconv"
	"strings"
	"time"

	"k8s.io/apimachinery/pkg/util/wait"
)

// The harness's generic helpers: ports, waiting, HTTP, logs, sockets, files.

// freePort asks the kernel for a free port on the loopback address.
func freePort() (int, error) {
	ports, err := freePorts(1)
	if err != nil {
		return 0, err
	}
	return ports[0], nil
}

// freePorts asks the kernel for n distinct free ports, holding each until
// all are chosen: closing one before asking for the next could get it again.
func freePorts(n int) ([]int, error) {
	ports := make([]int, n)
	for i := range ports {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			return nil, err
		}
		defer l.Close()
		ports[i] = l.Addr().(*net.TCPAddr).Port
	}
	return ports, nil
}

// until polls cond until it holds, ctx ends, or p exits.
func until(ctx context.Context, timeout time.Duration, what string, p *process, cond func(context.Context) error) error {
	var last error
	err := wait.PollUntilContextTimeout(ctx, 100*time.Millisecond, timeout, true, func(ctx context.Context) (bool, error) {
		if last = cond(ctx); last == nil {
			return true, nil
		}
		if p != nil && p.exited() {
			return false, fmt.Errorf("%s exited while waiting for %s: %v\n%s", p.name, what, p.err, p.tail(30))
		}
		return false, nil
	})
	if err == nil || !wait.Interrupted(err) {
		return err
	}
	msg := fmt.Sprintf("timed out after %s waiting for %s: %v", timeout, what, last)
	if p != nil {
		msg += "\n" + p.tail(30)
	}
	return fmt.Errorf("%s", msg)
}

// httpOK holds once url answers 200 (with a bearer token, if one is given).
func httpOK(client *http.Client, url, token string) func(context.Context) error {
	return func(ctx context.Context) error {
		req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
		if err != nil {
			return err
		}
		if token != "" {
			req.Header.Set("Authorization", "Bearer "+token)
		}
		resp, err := client.Do(req)
		if err != nil {
			return err
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			return fmt.Errorf("%s: %s", url, resp.Status)
		}
		return nil
	}
}

func httpGet(ctx context.Context, url string) ([]byte, int, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return nil, 0, err
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return nil, 0, err
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	return body, resp.StatusCode, err
}

// logContains holds once p's log holds s.
func logContains(p *process, s string) func(context.Context) error {
	return func(context.Context) error {
		b, err := os.ReadFile(p.log)
		if err != nil {
			return err
		}
		if !strings.Contains(string(b), s) {
			return errNotYet(s)
		}
		return nil
	}
}

type errNotYet string

func (e errNotYet) Error() string { return "no " + strconv.Quote(string(e)) + " in the log yet" }

var errorLine = regexp.MustCompile(`"level":"(error|fatal)".*`)

// lastError is the last error a process logged (knative logs JSON lines), or
// its last line.
func lastError(p *process) string {
	lines := strings.Split(p.tail(200), "\n")
	for i := len(lines) - 1; i >= 0; i-- {
		if errorLine.MatchString(lines[i]) {
			return lines[i]
		}
	}
	return lines[len(lines)-1]
}

// oneLine folds a message onto one line.
func oneLine(s string) string { return strings.Join(strings.Fields(s), " ") }

func randomHex(n int) string {
	b := make([]byte, n)
	if _, err := rand.Read(b); err != nil {
		panic(fmt.Sprintf("crypto/rand: %v", err))
	}
	return hex.EncodeToString(b)
}

func exists(path string) bool {
	_, err := os.Stat(path)
	return err == nil
}

func writeExecutable(dest string, r io.Reader) error {
	f, err := os.OpenFile(dest, os.O_CREATE|os.O_WRONLY|os.O_TRUNC, 0o755)
	if err != nil {
		return err
	}
	if _, err := io.Copy(f, r); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}

// forwardUnix serves a Unix socket whose every connection is joined to the
// TCP address to: the way into the host's loopback for a process in a network
// namespace of its own (Unix sockets are files, which namespaces share).
func forwardUnix(socket, to string) (closeFn func(), err error) {
	_ = os.Remove(socket)
	l, err := net.Listen("unix", socket)
	if err != nil {
		return nil, err
	}
	go func() {
		for {
			conn, err := l.Accept()
			if err != nil {
				return
			}
			go func() {
				upstream, err := net.Dial("tcp", to)
				if err != nil {
					conn.Close()
					return
				}
				splice(conn, upstream)
			}()
		}
	}()
	return func() { _ = l.Close() }, nil
}

// pipe joins a connection to the TCP address to, passing on a half-close
// each way, until both sides end.
func pipe(in net.Conn, to string) {
	defer in.Close()
	out, err := net.Dial("tcp", to)
	if err != nil {
		return
	}
	defer out.Close()
	go func() { _, _ = io.Copy(out, in); _ = out.(*net.TCPConn).CloseWrite() }()
	_, _ = io.Copy(in, out)
}

// splice copies both ways until either side ends, then closes both.
func splice(a, b net.Conn) {
	done := make(chan struct{}, 2)
	go func() { _, _ = io.Copy(a, b); done <- struct{}{} }()
	go func() { _, _ = io.Copy(b, a); done <- struct{}{} }()
	<-done
	a.Close()
	b.Close()
	<-done
}
