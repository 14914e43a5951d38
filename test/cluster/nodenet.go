package cluster

import (
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"sync"

	"golang.org/x/sys/unix"
)

// A real node's network: a network namespace of its own, as a node is a
// host of its own (its addresses: addrsOf). containerd, the kubelet and the pods they start live in it;
// it has its loopback, the node's address and the pods' bridge, and no route
// anywhere else. The API server and the local registries are reachable in it
// on the same 127.0.0.1 ports as outside (a listener the harness opens inside
// and joins to the host's port), so kubeconfigs and image names work
// unchanged; any other registry fails at once with "network is unreachable".
// nodeNet is the real node's network namespace and the ports joined into it.
type nodeNet struct {
	name string
	path string

	mu        sync.Mutex
	listeners []net.Listener
}

// newNodeNet makes a network namespace named name with its loopback up and
// the node's address, ip, on it.
func newNodeNet(name, ip string) (*nodeNet, error) {
	if out, err := exec.Command("ip", "netns", "add", name).CombinedOutput(); err != nil {
		return nil, fmt.Errorf("ip netns add %s: %w: %s", name, err, out)
	}
	n := &nodeNet{name: name, path: filepath.Join("/run/netns", name)}
	for _, args := range [][]string{
		{"-n", name, "link", "set", "lo", "up"},
		{"-n", name, "addr", "add", ip + "/32", "dev", "lo"},
	} {
		if out, err := exec.Command("ip", args...).CombinedOutput(); err != nil {
			n.close()
			return nil, fmt.Errorf("ip %s: %w: %s", strings.Join(args, " "), err, out)
		}
	}
	return n, nil
}

// command runs bin inside the namespace (its network only: it shares the
// host's mounts, so that the kubelet, containerd and the harness see the same
// files and mounts).
func (n *nodeNet) command(bin string, args ...string) (string, []string) {
	return "nsenter", append([]string{"--net=" + n.path, "--", bin}, args...)
}

// join listens on every address of the namespace at hostAddr's port
// (127.0.0.1:PORT on the host) and joins each connection to hostAddr.
func (n *nodeNet) join(hostAddr string) error {
	_, port, err := net.SplitHostPort(hostAddr)
	if err != nil {
		return err
	}
	l, err := n.listen("tcp", "0.0.0.0:"+port)
	if err != nil {
		return fmt.Errorf("joining %s into the real node's network: %w", hostAddr, err)
	}
	n.mu.Lock()
	n.listeners = append(n.listeners, l)
	n.mu.Unlock()
	go func() {
		for {
			in, err := l.Accept()
			if err != nil {
				return
			}
			go pipe(in, hostAddr)
		}
	}()
	return nil
}

// listen opens a listener inside the namespace: a socket belongs to the
// namespace of the thread that made it, so the goroutine locks its thread,
// enters the namespace, listens and goes back. The thread must outlive this:
// the processes the cluster started from it get SIGKILL (Pdeathsig) when it
// ends, so where it cannot go back it is parked, never let go.
func (n *nodeNet) listen(network, addr string) (net.Listener, error) {
	type result struct {
		l   net.Listener
		err error
	}
	done := make(chan result, 1)
	go func() {
		runtime.LockOSThread()
		home, err := os.Open("/proc/thread-self/ns/net")
		if err != nil {
			runtime.UnlockOSThread()
			done <- result{err: err}
			return
		}
		defer home.Close()
		ns, err := os.Open(n.path)
		if err != nil {
			runtime.UnlockOSThread()
			done <- result{err: err}
			return
		}
		defer ns.Close()
		if err := unix.Setns(int(ns.Fd()), unix.CLONE_NEWNET); err != nil {
			runtime.UnlockOSThread()
			done <- result{err: fmt.Errorf("entering %s: %w", n.path, err)}
			return
		}
		l, err := net.Listen(network, addr)
		if back := unix.Setns(int(home.Fd()), unix.CLONE_NEWNET); back != nil {
			done <- result{l, err}
			select {} // in the node's namespace for good: keep the thread
		}
		runtime.UnlockOSThread()
		done <- result{l, err}
	}()
	r := <-done
	return r.l, r.err
}

// close stops the joined ports and deletes the namespace, with the pods'
// bridge in it.
func (n *nodeNet) close() error {
	n.mu.Lock()
	for _, l := range n.listeners {
		_ = l.Close()
	}
	n.listeners = nil
	n.mu.Unlock()
	out, err := exec.Command("ip", "netns", "del", n.name).CombinedOutput()
	if err != nil && !strings.Contains(string(out), "No such file") {
		return fmt.Errorf("ip netns del %s: %w: %s", n.name, err, out)
	}
	if _, err := os.Stat(n.path); !errors.Is(err, os.ErrNotExist) {
		return fmt.Errorf("%s is still there after ip netns del", n.path)
	}
	return nil
}
