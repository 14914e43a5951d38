package cluster

import (
	"context"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"time"

	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// RealNodeName is the first real node's Node: its pulls a real kruise-daemon
// makes, through a real containerd, from the local registries.
const RealNodeName = "real-node"

// hostVarRun is where kruise-daemon looks for the CRI socket: a constant in
// its source (pkg/daemon/criruntime/factory_unix.go, varRunMountPath), not a
// flag.
const hostVarRun = "/hostvarrun"

// RealNode is one node of its own on this machine: a network namespace
// (nodenet.go), Debian's containerd and the real kubelet in it (kubelet.go),
// and the real kruise-daemon of the OpenKruise release the cluster runs. The
// kubelet registers the Node and reports it Ready; pods that tolerate
// RealNodeTaint start on it from the images kruise-daemon pulled. Several
// can run at once (Cluster.RealNodes), each with its own containerd, state,
// addresses, pod range and cgroups, all pulling through the registries'
// one link. It needs Linux and root (RealNodeUnavailable).
type RealNode struct {
	h        *host
	api      *api
	kruise   *OpenKruise
	registry *Registries
	shared   *realHost
	// labels are added to the node's; koBuild builds the pod sandbox image.
	labels  map[string]string
	koBuild func(ctx context.Context, repo, tag, importPath string) (string, error)
	// Notice says why the node does not run, when it does not.
	Notice string

	// k is the node's place among the cluster's real nodes, from 1; name
	// and addrs follow from it.
	k     int
	name  string
	addrs nodeAddrs
	dir   string
	// socket is containerd's, in the node's run directory.
	socket string
	// net is the node's network namespace; containerd, the kubelet and the
	// pods run in it.
	net *nodeNet
	// cgroups are the node's cgroup root in each hierarchy (its pods' are
	// under it), made before its kubelet starts.
	cgroups    []string
	containerd *process
	kubelet    *process
	daemon     *process
	// acquired says the node holds its share of the host (realHost).
	acquired bool
	running  bool
}

// RealNodeUnavailable says why this machine cannot run the real node, or "".
func RealNodeUnavailable() string {
	if runtime.GOOS != "linux" {
		return "it needs Linux"
	}
	if os.Geteuid() != 0 {
		return "containerd needs root"
	}
	if _, err := exec.LookPath("containerd"); err != nil {
		return "containerd is not installed (hack/install-system-packages.sh installs it)"
	}
	if _, err := exec.LookPath("ctr"); err != nil {
		return "ctr (containerd's client) is not installed"
	}
	if _, err := exec.LookPath("runc"); err != nil {
		return "runc is not installed (hack/install-system-packages.sh installs it)"
	}
	if _, err := os.Stat(filepath.Join(cniBinDir, "bridge")); err != nil {
		return "the CNI plugins are not installed in " + cniBinDir + " (hack/install-system-packages.sh installs containernetworking-plugins)"
	}
	for _, cmd := range []string{"ip", "nsenter", "unshare", "mount"} {
		if _, err := exec.LookPath(cmd); err != nil {
			return cmd + " is not installed"
		}
	}
	return ""
}

// cniBinDir is where Debian's containernetworking-plugins puts the plugins.
const cniBinDir = "/usr/lib/cni"

// startIf starts the node where it can (mode auto, the default), must
// (on), or not at all (off), and says why it does not run in Notice.
func (rn *RealNode) startIf(ctx context.Context, mode string) error {
	switch mode {
	case "", "auto":
		if why := RealNodeUnavailable(); why != "" {
			rn.Notice = "no real node: " + why + "; simulated nodes only"
			rn.h.log("%s", rn.Notice)
			return nil
		}
	case "on":
	case "off":
		rn.Notice = "no real node: REAL_NODE=off; simulated nodes only"
		return nil
	default:
		return fmt.Errorf("REAL_NODE=%q: want auto, on or off", mode)
	}
	return rn.Start(ctx)
}

// Name is the node's name while it runs, "" otherwise.
func (rn *RealNode) Name() string {
	if rn == nil || !rn.running {
		return ""
	}
	return rn.name
}

// proc names one of the node's processes (and its log): the first node's
// by what they are, the others' with the node's name too.
func (rn *RealNode) proc(what string) string {
	if rn.k == 1 {
		return what
	}
	return what + "@" + rn.name
}

// Start starts the node. Stop (or Remove) undoes what it made, also when it
// fails half-way.
func (rn *RealNode) Start(ctx context.Context) error {
	if rn.running || rn.net != nil || rn.acquired {
		return fmt.Errorf("the real node %s is already running", rn.name)
	}
	if why := RealNodeUnavailable(); why != "" {
		return fmt.Errorf("no real node here: %s", why)
	}
	rn.Notice = ""
	rn.dir = filepath.Join(rn.h.dir, rn.name)
	run := filepath.Join(rn.dir, "hostvarrun")
	rn.socket = filepath.Join(run, "containerd.sock")
	if err := os.MkdirAll(filepath.Join(rn.dir, "certs.d"), 0o755); err != nil {
		return err
	}
	if err := os.MkdirAll(run, 0o755); err != nil {
		return err
	}
	if err := rn.shared.acquire(rn.h.log); err != nil {
		return err
	}
	rn.acquired = true
	var err error
	suffix := strings.TrimPrefix(filepath.Base(rn.h.dir), "imageprepull-cluster-")
	if rn.k > 1 {
		suffix += fmt.Sprintf("-%d", rn.k)
	}
	if rn.net, err = newNodeNet("imageprepull-"+suffix, rn.addrs.ip); err != nil {
		return err
	}
	for _, addr := range append([]string{strings.TrimPrefix(rn.api.cp.Server, "https://")}, rn.registry.hosts()...) {
		if err := rn.net.join(addr); err != nil {
			return err
		}
	}
	if err := rn.makeCgroups("imageprepull-" + suffix); err != nil {
		return err
	}
	sandbox, err := rn.koBuild(ctx, rn.registry.Open+"/imageprepull/pause", "local", "./test/cmd/pause")
	if err != nil {
		return fmt.Errorf("building the pod sandbox image: %w", err)
	}
	if err := rn.writeContainerdConfig(sandbox); err != nil {
		return err
	}
	if err := rn.writeKubeletFiles(); err != nil {
		return err
	}
	bin, args := rn.net.command("containerd", "--config", filepath.Join(rn.dir, "config.toml"))
	p, err := rn.h.run(ctx, program{
		name: rn.proc("containerd"), bin: bin, args: args,
		ready: func(ctx context.Context) error {
			_, err := rn.ctr(ctx, "version")
			return err
		},
		readyWithin: time.Minute, waitingFor: "containerd",
	})
	if p != nil {
		rn.containerd = p
	}
	if err != nil {
		return err
	}
	// A node has its sandbox image before its first pod, as image builders
	// and installers put it there: no rollout pays for it.
	if err := rn.withCRI(func(c *cri) error { return c.pull(ctx, sandbox) }); err != nil {
		return fmt.Errorf("pulling the pod sandbox image: %w", err)
	}
	if err := rn.startKubelet(ctx); err != nil {
		return err
	}
	if err := until(ctx, time.Minute, "the NodeImage of "+rn.name, rn.kruise.manager, func(ctx context.Context) error {
		_, err := rn.api.kruise.AppsV1alpha1().NodeImages().Get(ctx, rn.name, metav1.GetOptions{})
		return err
	}); err != nil {
		return err
	}
	port, err := freePorts(1)
	if err != nil {
		return err
	}
	bin, args = rn.shared.daemonCommand(run, rn.h.tools.Path("kruise-daemon"),
		"--socket-file=containerd.sock", "--addr=127.0.0.1:"+strconv.Itoa(port[0]), "--enable-pprof=false")
	p, err = rn.h.run(ctx, program{
		name: rn.proc("kruise-daemon"), bin: bin, args: args,
		env:   []string{"NODE_NAME=" + rn.name, "KUBECONFIG=" + rn.api.cp.Kubeconfig},
		ready: httpOK(http.DefaultClient, fmt.Sprintf("http://127.0.0.1:%d/healthz", port[0]), ""), readyWithin: time.Minute,
		waitingFor: "kruise-daemon's health",
	})
	if p != nil {
		rn.daemon = p
	}
	if err != nil {
		return err
	}
	rn.running = true
	rn.h.log("real node %s: a kubelet and containerd %s in network namespace %s (node %s, pods %s, cgroups under /%s), kruise-daemon %s",
		rn.name, rn.socket, rn.net.name, rn.addrs.ip, rn.addrs.podSubnet, filepath.Base(rn.cgroups[0]), rn.kruise.Version)
	return nil
}

// Stop stops the node and cleans up what it made on this machine, saying
// what it could not in the cluster's log.
func (rn *RealNode) Stop() {
	if err := rn.stop(); err != nil {
		rn.h.log("%v", err)
	}
}

// Remove stops the node and deletes its Node, and waits until Kruise has
// deleted its NodeImage: ImagePullJobs that select every node would count it
// otherwise. It returns what the node left behind on this machine.
func (rn *RealNode) Remove(ctx context.Context) error {
	if rn.net == nil && !rn.acquired {
		return nil
	}
	if err := rn.stop(); err != nil {
		return err
	}
	err := rn.api.kube.CoreV1().Nodes().Delete(ctx, rn.name, metav1.DeleteOptions{})
	if err != nil && !apierrors.IsNotFound(err) {
		return err
	}
	return until(ctx, time.Minute, "Kruise to delete the NodeImage of "+rn.name, rn.kruise.manager, func(ctx context.Context) error {
		_, err := rn.api.kruise.AppsV1alpha1().NodeImages().Get(ctx, rn.name, metav1.GetOptions{})
		if apierrors.IsNotFound(err) {
			return nil
		}
		return fmt.Errorf("still there (%v)", err)
	})
}

// stop stops the daemon and containerd, unmounts anything containerd left
// mounted under the node's directory, removes its cgroups and network
// namespace, and gives back its share of the host (the last node puts the
// host back). The node can start again.
//
// It returns what it could not clean up: a process still running, a mount,
// a cgroup, a setting.
func (rn *RealNode) stop() error {
	if rn.net == nil && !rn.acquired {
		return nil
	}
	defer func() {
		rn.running, rn.net, rn.cgroups, rn.acquired = false, nil, nil, false
		rn.containerd, rn.kubelet, rn.daemon = nil, nil, nil
	}()
	var left []string
	stop := func(p *process) {
		if p != nil {
			p.stop(10 * time.Second)
			if !p.exited() {
				left = append(left, p.name+" still runs")
			}
		}
	}
	// The kubelet first, or it starts again the pods removed next.
	stop(rn.daemon)
	stop(rn.kubelet)
	if rn.containerd != nil && !rn.containerd.exited() && rn.kubelet != nil {
		if err := rn.removePods(); err != nil {
			left = append(left, err.Error())
		}
	}
	stop(rn.containerd)
	left = append(left, rn.killShims()...)
	for _, m := range mountsUnder(rn.dir) {
		_ = exec.Command("umount", "-l", m).Run()
	}
	for _, m := range mountsUnder(rn.dir) {
		left = append(left, "mount "+m)
	}
	for _, cg := range rn.cgroups {
		if err := removeCgroup(cg); err != nil {
			left = append(left, err.Error())
		}
	}
	if rn.net != nil {
		if err := rn.net.close(); err != nil {
			left = append(left, err.Error())
		}
	}
	if rn.acquired {
		left = append(left, rn.shared.release()...)
	}
	if len(left) > 0 {
		return fmt.Errorf("the real node %s left behind: %s", rn.name, strings.Join(left, "; "))
	}
	return nil
}

// mountsUnder lists the mount points under dir, deepest first.
func mountsUnder(dir string) []string {
	data, err := os.ReadFile("/proc/self/mountinfo")
	if err != nil {
		return nil
	}
	var out []string
	for _, line := range strings.Split(string(data), "\n") {
		f := strings.Fields(line)
		if len(f) > 4 && strings.HasPrefix(f[4], dir+"/") {
			out = append([]string{f[4]}, out...)
		}
	}
	return out
}

// writeContainerdConfig keeps containerd's state, socket and registry
// configuration under the cluster's directory, and tells its CRI plugin to
// reach the loopback registries over plain HTTP.
func (rn *RealNode) writeContainerdConfig(sandboxImage string) error {
	cfg := fmt.Sprintf(`version = 2
root = %q
state = %q
[grpc]
  address = %q
[ttrpc]
  address = %q
[debug]
  address = ""
[metrics]
  address = ""
[plugins."io.containerd.grpc.v1.cri"]
  sandbox_image = %q
  # Processes here may not lower their oom_score_adj (no CAP_SYS_RESOURCE in
  # this machine's bounding set): the pods' sandboxes ask for -998, which runc
  # then fails to set; this keeps them at containerd's own, as rootless and
  # nested clusters do.
  restrict_oom_score_adj = true
  disable_tcp_service = true
  stream_server_address = "127.0.0.1"
  stream_server_port = "0"
  [plugins."io.containerd.grpc.v1.cri".containerd]
    snapshotter = "overlayfs"
  [plugins."io.containerd.grpc.v1.cri".registry]
    config_path = %q
  [plugins."io.containerd.grpc.v1.cri".cni]
    bin_dir = %q
    conf_dir = %q
`, filepath.Join(rn.dir, "root"), filepath.Join(rn.dir, "state"), rn.socket, rn.socket+".ttrpc", sandboxImage, filepath.Join(rn.dir, "certs.d"), cniBinDir, filepath.Join(rn.dir, "cni", "net.d"))
	if err := os.WriteFile(filepath.Join(rn.dir, "config.toml"), []byte(cfg), 0o644); err != nil {
		return err
	}
	for _, host := range rn.registry.hosts() {
		hosts := fmt.Sprintf("server = \"http://%s\"\n\n[host.\"http://%s\"]\n  capabilities = [\"pull\", \"resolve\"]\n", host, host)
		d := filepath.Join(rn.dir, "certs.d", host)
		if err := os.MkdirAll(d, 0o755); err != nil {
			return err
		}
		if err := os.WriteFile(filepath.Join(d, "hosts.toml"), []byte(hosts), 0o644); err != nil {
			return err
		}
	}
	return nil
}

// Ctr runs containerd's ctr against the node's containerd, in the namespace
// the CRI plugin keeps images in.
func (rn *RealNode) Ctr(ctx context.Context, args ...string) (string, error) {
	if !rn.running {
		return "", fmt.Errorf("the real node %s does not run", rn.name)
	}
	return rn.ctr(ctx, args...)
}

func (rn *RealNode) ctr(ctx context.Context, args ...string) (string, error) {
	out, err := exec.CommandContext(ctx, "ctr", append([]string{"--address", rn.socket, "--namespace", "k8s.io"}, args...)...).CombinedOutput()
	if err != nil {
		return string(out), fmt.Errorf("ctr %s: %w: %s", strings.Join(args, " "), err, out)
	}
	return string(out), nil
}

// Has says whether the node's containerd has image (a full reference).
func (rn *RealNode) Has(ctx context.Context, image string) (bool, error) {
	out, err := rn.Ctr(ctx, "images", "ls", "-q")
	if err != nil {
		return false, err
	}
	for _, l := range strings.Split(out, "\n") {
		if strings.TrimSpace(l) == image {
			return true, nil
		}
	}
	return false, nil
}

// Pull pulls image into the node's containerd through the CRI, as the
// kubelet would: for images a measurement must not count (step images).
func (rn *RealNode) Pull(ctx context.Context, image string) error {
	if !rn.running {
		return fmt.Errorf("the real node %s does not run", rn.name)
	}
	return rn.withCRI(func(c *cri) error { return c.pull(ctx, image) })
}

// RemoveImage removes image from the node's containerd, every name it has
// there (tag, digest, id), with the stopped pods that still hold it, as the
// kubelet's garbage collection would: the next pod of it pulls it all again,
// cold. The pods of image must have been deleted.
func (rn *RealNode) RemoveImage(ctx context.Context, image string) error {
	if !rn.running {
		return fmt.Errorf("the real node %s does not run", rn.name)
	}
	return rn.withCRI(func(c *cri) error {
		notReady := &runtimeapi.PodSandboxFilter{State: &runtimeapi.PodSandboxStateValue{State: runtimeapi.PodSandboxState_SANDBOX_NOTREADY}}
		if err := c.removeSandboxes(ctx, notReady); err != nil {
			return err
		}
		return c.removeImage(ctx, image)
	})
}
