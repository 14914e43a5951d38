package cluster

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
)

// MaxRealNodes is how many real nodes a cluster can run at once: the API
// server reads its tokens once, at start, so each node's kubelet has its
// own from the beginning (controlplane.go).
const MaxRealNodes = 3

// realNodeName is the k-th real node's name (from 1): RealNodeName, then
// real-node-2, real-node-3.
func realNodeName(k int) string {
	if k == 1 {
		return RealNodeName
	}
	return fmt.Sprintf("%s-%d", RealNodeName, k)
}

// nodeAddrs are a real node's addresses: its InternalIP on its namespace's
// loopback, and its pods' range with the bridge (their gateway) at its
// first address. Each node's are its own, as on separate hosts.
type nodeAddrs struct {
	ip, podSubnet, bridge string
}

func addrsOf(k int) nodeAddrs {
	return nodeAddrs{
		ip:        fmt.Sprintf("10.231.0.%d", 1+k),
		podSubnet: fmt.Sprintf("10.232.%d.0/24", k-1),
		bridge:    fmt.Sprintf("10.232.%d.1", k-1),
	}
}

// realHost is what the real nodes of a cluster share on this machine, as
// they share its kernel: what the kubelets change outside their
// directories (taken before the first starts, put back when the last
// stops), and the /hostvarrun directory each kruise-daemon mounts its own
// node's run directory on, in a mount namespace of its own.
type realHost struct {
	// hostVarRun is hostVarRun, but for tests.
	hostVarRun string

	mu      sync.Mutex
	running int
	changed *hostState
	// madeHostVarRun says this cluster made the directory, to remove it.
	madeHostVarRun bool
}

// acquire readies the machine for one more node: the first takes the
// kubelets' host state and readies /hostvarrun.
func (h *realHost) acquire(log func(string, ...any)) error {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.running == 0 {
		if err := h.mountPoint(log); err != nil {
			return err
		}
		h.changed = takeHostState()
	}
	h.running++
	return nil
}

// release is a node's stop: the last one puts the host back and returns
// what it could not.
func (h *realHost) release() []string {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.running == 0 {
		return nil
	}
	if h.running--; h.running > 0 {
		return nil
	}
	var left []string
	if h.changed != nil {
		left = h.changed.restore()
		h.changed = nil
	}
	if h.madeHostVarRun {
		// Only ever an empty directory: the nodes' mounts on it are in
		// their daemons' namespaces, gone with them.
		if err := os.Remove(h.hostVarRun); err != nil && !errors.Is(err, os.ErrNotExist) {
			left = append(left, err.Error())
		}
		h.madeHostVarRun = false
	}
	return left
}

// mountPoint makes sure /hostvarrun is a directory (or a link to one) that
// each kruise-daemon can mount its node's run directory on, privately: the
// host's own stays as it was. It makes it when absent, and replaces a link
// that an earlier version of the cluster made into a directory now gone;
// anything else that is not a directory is refused, never touched.
func (h *realHost) mountPoint(log func(string, ...any)) error {
	info, err := os.Stat(h.hostVarRun)
	switch {
	case err == nil && info.IsDir():
		return nil
	case err == nil:
		return fmt.Errorf("%s exists and is not a directory: kruise-daemon looks for the CRI socket there only, so the real node cannot run here; set REAL_NODE=off", h.hostVarRun)
	case !errors.Is(err, os.ErrNotExist):
		return err
	}
	if target, err := os.Readlink(h.hostVarRun); err == nil {
		if !strings.HasPrefix(filepath.Base(filepath.Dir(filepath.Dir(target))), "imageprepull-cluster-") {
			return fmt.Errorf("%s links to %s, which does not exist: kruise-daemon looks for the CRI socket there only; remove the link, or set REAL_NODE=off", h.hostVarRun, target)
		}
		log("replacing %s -> %s, left by a cluster that is gone", h.hostVarRun, target)
		if err := os.Remove(h.hostVarRun); err != nil {
			return err
		}
	}
	if err := os.Mkdir(h.hostVarRun, 0o755); err != nil {
		return err
	}
	h.madeHostVarRun = true
	return nil
}

// daemonCommand runs kruise-daemon with the node's run directory at
// /hostvarrun, where it looks for the CRI socket (a constant in its source,
// not a flag): in a mount namespace of its own whose mounts do not
// propagate, so several daemons on one machine each see their own node's.
func (h *realHost) daemonCommand(run, bin string, args ...string) (string, []string) {
	script := `mount --bind "$0" "$1" && shift && exec "$@"`
	return "unshare", append([]string{"--mount", "--propagation", "private", "--", "sh", "-c", script, run, h.hostVarRun, bin}, args...)
}
