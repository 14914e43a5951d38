package cluster

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"syscall"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// RealNodeTaint keeps pods off the real node unless they tolerate it, as a
// dedicated node pool does: only the rollouts a test or the demo aims there
// start on it, never a pod another test left Pending.
var RealNodeTaint = corev1.Taint{Key: "node.custom.kruise.dev/real", Value: "true", Effect: corev1.TaintEffectNoSchedule}

// RealNodeLabel is on every real node (and on no simulated one).
const RealNodeLabel = "node.custom.kruise.dev/real"

// OnRealNode aims a pod template at the first real node: its hostname, and its taint tolerated.
func OnRealNode(spec *corev1.PodSpec) {
	spec.NodeSelector = map[string]string{corev1.LabelHostname: RealNodeName}
	tolerateRealNodes(spec)
}

// OnRealNodes aims a pod template at the real nodes, whichever run.
func OnRealNodes(spec *corev1.PodSpec) {
	spec.NodeSelector = map[string]string{RealNodeLabel: "true"}
	tolerateRealNodes(spec)
}

func tolerateRealNodes(spec *corev1.PodSpec) {
	spec.Tolerations = append(spec.Tolerations, corev1.Toleration{Key: RealNodeTaint.Key, Operator: corev1.TolerationOpEqual, Value: RealNodeTaint.Value, Effect: RealNodeTaint.Effect})
}

// kubeletConfig is the real node's KubeletConfiguration. What differs from
// the kubelet's defaults, and why:
//   - cgroupfs: this machine's cgroups are v1, without systemd managing them,
//     and containerd's runc uses cgroupfs too (SystemdCgroup = false); and
//     failCgroupV1 false, as v1.35's kubelet otherwise refuses cgroup v1 (it
//     still runs on it, in maintenance mode). Each node's pods' cgroups are
//     under a root of its own (cgroupRoot), as on hosts of their own.
//   - imageGCHighThresholdPercent 100 turns image garbage collection off, and
//     the eviction thresholds are low: a build machine's disk is often more
//     than 85 % full, and the kubelet would otherwise delete the very images
//     the tests pre-pull, or evict the pods.
//   - the kubelet's own files (pod logs, volume plugins) stay under its
//     directory; its server listens on the node's address only.
//   - clusterDNS names the pods' gateway, where no DNS server answers: the
//     cluster has no DNS add-on, and pods resolve nothing (the kubelet warns
//     on every pod without one).
const kubeletConfig = `apiVersion: kubelet.config.k8s.io/v1beta1
kind: KubeletConfiguration
address: %[1]s
healthzBindAddress: 127.0.0.1
readOnlyPort: 0
authentication:
  anonymous: {enabled: false}
  webhook: {enabled: false}
authorization: {mode: AlwaysAllow}
cgroupDriver: cgroupfs
cgroupRoot: %[10]s
failCgroupV1: false
containerRuntimeEndpoint: unix://%[2]s
failSwapOn: false
imageGCHighThresholdPercent: 100
imageGCLowThresholdPercent: 99
evictionHard: {memory.available: 100Mi, nodefs.available: 1%%, imagefs.available: 1%%, nodefs.inodesFree: 1%%}
podLogsDir: %[3]s
volumePluginDir: %[4]s
resolvConf: %[5]s
clusterDomain: cluster.local
clusterDNS: [%[9]s]
registerWithTaints: [{key: %[6]s, value: "%[7]s", effect: %[8]s}]
`

// cniConfig is the pods' network on the real node: a bridge in the node's
// namespace, addresses from podSubnet, and a route to the bridge only.
const cniConfig = `{
  "cniVersion": "0.4.0",
  "name": "imageprepull",
  "plugins": [{
    "type": "bridge",
    "bridge": "cni0",
    "isGateway": true,
    "ipMasq": false,
    "ipam": {"type": "host-local", "ranges": [[{"subnet": %q, "gateway": %q}]], "dataDir": %q}
  }]
}
`

// hostState is what the kubelet changes outside its own directory, taken
// before it starts so that stopping the real node can put it back: the
// kernel settings it sets (setupKernelTunables), the cgroups it makes and
// the fixed paths it writes to.
type hostState struct {
	sysctls map[string]string
	// made are paths that did not exist before the kubelet started.
	made []string
	// netns are the network namespaces there were (containerd's CRI pins
	// each pod's at /run/netns/cni-<id>).
	netns map[string]bool
}

// kubeletSysctls are the settings the kubelet sets when they differ from
// what it wants (pkg/kubelet/cm/container_manager_linux.go).
var kubeletSysctls = []string{"vm/overcommit_memory", "vm/panic_on_oom", "kernel/panic", "kernel/panic_on_oops",
	"kernel/keys/root_maxkeys", "kernel/keys/root_maxbytes"}

// kubeletPaths are the kubelet's and CRI's fixed paths outside --root-dir,
// shared by every kubelet here: the device plugins' socket directory, the
// container log links, the CNI results cache.
var kubeletPaths = []string{"/var/lib/kubelet", "/var/log/containers", "/var/lib/cni"}

// makeCgroups makes the node's cgroup root, name, in every cgroup v1
// hierarchy: the kubelet refuses a root that is missing in one. Stop
// removes them, with the pods' cgroups under them.
func (rn *RealNode) makeCgroups(name string) error {
	hierarchies, err := filepath.Glob("/sys/fs/cgroup/*")
	if err != nil {
		return err
	}
	for _, h := range hierarchies {
		if info, err := os.Lstat(h); err != nil || !info.IsDir() {
			continue // a link to a joined hierarchy (cpu -> cpu,cpuacct), or a file
		}
		dir := filepath.Join(h, name)
		if err := os.Mkdir(dir, 0o755); err != nil {
			return fmt.Errorf("the node's cgroup: %w", err)
		}
		rn.cgroups = append(rn.cgroups, dir)
	}
	if len(rn.cgroups) == 0 {
		return errors.New("no cgroup hierarchy under /sys/fs/cgroup")
	}
	return nil
}

func takeHostState() *hostState {
	s := &hostState{sysctls: map[string]string{}, netns: map[string]bool{}}
	pinned, _ := filepath.Glob("/run/netns/cni-*")
	for _, p := range pinned {
		s.netns[p] = true
	}
	for _, k := range kubeletSysctls {
		if b, err := os.ReadFile(filepath.Join("/proc/sys", k)); err == nil {
			s.sysctls[k] = strings.TrimSpace(string(b))
		}
	}
	for _, p := range kubeletPaths {
		if _, err := os.Lstat(p); errors.Is(err, os.ErrNotExist) {
			s.made = append(s.made, p)
		}
	}
	return s
}

// restore puts the kernel settings back and removes what the kubelet made,
// once nothing runs in it; it returns what it could not.
func (s *hostState) restore() []string {
	var left []string
	// A pod's namespace outlives it only where its sandbox was not removed
	// (the node stopped half-way).
	pinned, _ := filepath.Glob("/run/netns/cni-*")
	for _, p := range pinned {
		if s.netns[p] {
			continue
		}
		_ = exec.Command("umount", p).Run()
		if err := os.Remove(p); err != nil {
			left = append(left, "pod network namespace "+err.Error())
		}
	}
	for k, v := range s.sysctls {
		if err := os.WriteFile(filepath.Join("/proc/sys", k), []byte(v), 0o644); err != nil {
			left = append(left, "sysctl "+k+": "+err.Error())
		}
	}
	for _, p := range s.made {
		if err := os.RemoveAll(p); err != nil {
			left = append(left, err.Error())
		}
	}
	return left
}

// removeCgroup removes a node's cgroup v1 directory and those the kubelet
// made under it, deepest first (rmdir removes a cgroup no process is in). A
// process still in one is a pod's that outlived the node (its containerd
// gone before its pods were removed): it is killed first.
func removeCgroup(dir string) error {
	var dirs []string
	_ = filepath.WalkDir(dir, func(p string, d os.DirEntry, err error) error {
		if err == nil && d.IsDir() {
			dirs = append(dirs, p)
		}
		return nil
	})
	sort.Slice(dirs, func(i, j int) bool { return len(dirs[i]) > len(dirs[j]) })
	for _, d := range dirs {
		procs, _ := os.ReadFile(filepath.Join(d, "cgroup.procs"))
		for _, pid := range strings.Fields(string(procs)) {
			if n, err := strconv.Atoi(pid); err == nil {
				_ = syscall.Kill(n, syscall.SIGKILL)
			}
		}
	}
	if len(dirs) > 0 {
		time.Sleep(100 * time.Millisecond) // the killed leave their cgroups
	}
	for _, d := range dirs {
		if err := os.Remove(d); err != nil && !errors.Is(err, os.ErrNotExist) {
			return fmt.Errorf("cgroup %s: %w", d, err)
		}
	}
	return nil
}

// writeKubeletFiles writes the kubelet's configuration and kubeconfig (it
// authenticates as its Node) and the pods' network.
func (rn *RealNode) writeKubeletFiles() error {
	dir := filepath.Join(rn.dir, "kubelet")
	for _, d := range []string{dir, filepath.Join(rn.dir, "cni", "net.d"), filepath.Join(rn.dir, "cni", "ipam")} {
		if err := os.MkdirAll(d, 0o755); err != nil {
			return err
		}
	}
	// Pods resolve nothing: the node has no DNS server to give them.
	resolv := filepath.Join(dir, "resolv.conf")
	if err := os.WriteFile(resolv, []byte("options ndots:0\n"), 0o644); err != nil {
		return err
	}
	cfg := fmt.Sprintf(kubeletConfig, rn.addrs.ip, rn.socket, filepath.Join(dir, "pod-logs"), filepath.Join(dir, "volume-plugins"),
		resolv, RealNodeTaint.Key, RealNodeTaint.Value, RealNodeTaint.Effect, rn.addrs.bridge, "/"+filepath.Base(rn.cgroups[0]))
	if err := os.WriteFile(filepath.Join(dir, "config.yaml"), []byte(cfg), 0o644); err != nil {
		return err
	}
	token, ok := rn.api.cp.nodeTokens[rn.name]
	if !ok {
		return fmt.Errorf("the API server has no token for %s", rn.name)
	}
	if err := rn.api.cp.WriteKubeconfig(filepath.Join(dir, "kubeconfig"), "system:node:"+rn.name, token); err != nil {
		return err
	}
	cni := fmt.Sprintf(cniConfig, rn.addrs.podSubnet, rn.addrs.bridge, filepath.Join(rn.dir, "cni", "ipam"))
	return os.WriteFile(filepath.Join(rn.dir, "cni", "net.d", "10-imageprepull.conflist"), []byte(cni), 0o644)
}

// startKubelet starts the kubelet in the node's network, and waits until
// it has registered its Node and reported it Ready: nothing here writes the
// Node for it.
func (rn *RealNode) startKubelet(ctx context.Context) error {
	dir := filepath.Join(rn.dir, "kubelet")
	labels := []string{RealNodeLabel + "=true"}
	for k, v := range rn.labels {
		labels = append(labels, k+"="+v)
	}
	sort.Strings(labels)
	bin, args := rn.net.command(rn.h.tools.Path("kubelet"), "--config="+filepath.Join(dir, "config.yaml"),
		"--kubeconfig="+filepath.Join(dir, "kubeconfig"), "--root-dir="+dir, "--cert-dir="+filepath.Join(dir, "pki"),
		"--hostname-override="+rn.name, "--node-ip="+rn.addrs.ip, "--node-labels="+strings.Join(labels, ","), "--v=1")
	p, err := rn.h.run(ctx, program{
		name: rn.proc("kubelet"), bin: bin, args: args,
		ready:       rn.nodeReady(),
		readyWithin: 2 * time.Minute, waitingFor: "the kubelet to register " + rn.name + " and report it Ready",
	})
	if p != nil {
		rn.kubelet = p
	}
	return err
}

// nodeReady holds once the node's Ready condition is True and the node
// lifecycle controller (kube-controller-manager) has lifted the not-ready
// taints the node was registered with: until then the scheduler keeps pods
// off it and its NoExecute taint evicts them.
func (rn *RealNode) nodeReady() func(context.Context) error {
	return func(ctx context.Context) error {
		node, err := rn.api.kube.CoreV1().Nodes().Get(ctx, rn.name, metav1.GetOptions{})
		if err != nil {
			return err
		}
		for _, taint := range node.Spec.Taints {
			if taint.Key == corev1.TaintNodeNotReady || taint.Key == corev1.TaintNodeUnreachable {
				return fmt.Errorf("still tainted %s:%s", taint.Key, taint.Effect)
			}
		}
		for _, cond := range node.Status.Conditions {
			if cond.Type == corev1.NodeReady {
				if cond.Status == corev1.ConditionTrue {
					return nil
				}
				return fmt.Errorf("Ready is %s: %s", cond.Status, cond.Message)
			}
		}
		return errors.New("no Ready condition yet")
	}
}

// removePods stops and removes every pod sandbox through the CRI, as the
// kubelet would. The kubelet must be stopped first, or it starts them again.
func (rn *RealNode) removePods() error {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	return rn.withCRI(func(c *cri) error { return c.removeSandboxes(ctx, nil) })
}

// killShims stops the containerd shims that outlived containerd (each runs
// in its own process group, to keep containers running across a containerd
// restart).
func (rn *RealNode) killShims() []string {
	var left []string
	procs, _ := filepath.Glob("/proc/[0-9]*/cmdline")
	for _, p := range procs {
		b, err := os.ReadFile(p)
		if err != nil || !strings.Contains(string(b), rn.socket) || !strings.Contains(string(b), "containerd-shim") {
			continue
		}
		pid := filepath.Base(filepath.Dir(p))
		if out, err := exec.Command("kill", "-9", pid).CombinedOutput(); err != nil {
			left = append(left, fmt.Sprintf("shim %s: %s", pid, out))
		}
	}
	return left
}

// ServerForPods is the API server as a pod on the node reaches it: the
// node's bridge (the pods' gateway), at the API server's port, joined into
// the node's network; its serving certificate names kubernetes.default.svc,
// which in-cluster clients verify against the pod's ca.crt.
func (rn *RealNode) ServerForPods() (url, serverName string) {
	_, port, _ := strings.Cut(strings.TrimPrefix(rn.api.cp.Server, "https://"), ":")
	return "https://" + rn.addrs.bridge + ":" + port, "kubernetes.default.svc"
}
