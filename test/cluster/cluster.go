// Package cluster runs a local control plane for end-to-end tests and the
// demo, from Go sources alone: etcd, kube-apiserver, kube-controller-manager,
// kube-scheduler, the Tekton Pipelines controller and admission webhook, the
// OpenKruise manager, Node objects kept alive as kubelets would, a node-side
// pull simulator standing in for kruise-daemon, and this project's
// controller. Everything listens on 127.0.0.1, on free ports, with its data
// in one temporary directory; nothing needs Docker or a kubelet, and only the
// real node needs root (Tekton's controller runs in user and network
// namespaces of its own, which Linux grants without root).
package cluster

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"time"

	kruiseclient "github.com/openkruise/kruise-api/client/clientset/versioned"
	tektonclient "github.com/tektoncd/pipeline/pkg/client/clientset/versioned"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/clientcmd"

	customclient "github.com/imageprepull/imageprepull/pkg/client/clientset/versioned"
	"github.com/imageprepull/imageprepull/test/simulator"
)

// Options say what to run.
type Options struct {
	// Root is the repository's root directory.
	Root string
	// Nodes are the simulated nodes to create.
	Nodes []Node
	// Simulator configures the pulls of the simulated nodes.
	Simulator simulator.Config
	// PlainBuild installs config/ with kubectl and runs `go build ./cmd/controller`,
	// instead of installing with ko and running the binary from the image ko
	// pushed: quicker, but not the artifact users install.
	PlainBuild bool
	// RealNode is auto (the default: a real node where it can run), on or
	// off; empty reads REAL_NODE from the environment.
	RealNode string
	// RealNodeLabels are added to the real node's labels.
	RealNodeLabels map[string]string
	// KruiseVersion is the OpenKruise release to run (manager, CRDs,
	// kruise-daemon); empty reads KRUISE_VERSION, else hack/build-tools.sh's default.
	KruiseVersion string
	// TektonArgs are added to the Tekton controller's flags (its
	// -threads-per-controller, -kube-api-qps, -kube-api-burst, say); none
	// runs it with its defaults.
	TektonArgs []string
	// KruiseArgs are added to OpenKruise's manager's flags (its
	// --rest-config-qps and --rest-config-burst, say); none runs it with its
	// defaults.
	KruiseArgs []string
	// Log receives progress lines; nil discards them.
	Log func(format string, args ...any)
}

// Node is a simulated node: a Node object the pull simulator answers for.
type Node struct {
	Name        string
	Labels      map[string]string
	Annotations map[string]string
}

// Cluster is a running local cluster.
type Cluster struct {
	opts Options
	// Dir holds every component's data, logs (Dir/logs) and the kubeconfig.
	Dir string
	// Server is kube-apiserver's URL; Kubeconfig authenticates as cluster admin.
	Server     string
	Kubeconfig string
	adminToken string
	// registryLink is the registries' bandwidth to the nodes.
	registryLink *link
	// nodeToken is the real node's kubelet's: user system:node:real-node.
	nodeToken string
	// AuditLog is kube-apiserver's audit log (JSON lines) of the
	// controller's requests.
	AuditLog string

	// KruiseVersion is the OpenKruise release it runs.
	KruiseVersion string

	// Registry is the local registry's host:port; BaseImage is ko's base there.
	Registry  string
	BaseImage string
	// AuthRegistry is a second local registry that wants a user and
	// password (AuthRegistryUser, AuthRegistryPassword) for every request.
	AuthRegistry, AuthRegistryUser, AuthRegistryPassword string
	// RealNode is the real node's name when it runs; RealNodeNotice says why
	// it does not.
	RealNode, RealNodeNotice string
	// ControllerImage is the image ko pushed, by digest; KoApplyOutput is
	// what `ko apply -f config/` printed on standard error (warnings included).
	ControllerImage string
	KoApplyOutput   string

	Kube   kubernetes.Interface
	Tekton tektonclient.Interface
	Kruise kruiseclient.Interface
	Custom customclient.Interface
	Config *rest.Config
	// Controllers are the controller's processes.
	Controllers *Replicas

	procs         []*process
	apiserver     *process
	tektonWebhook *process
	// egress carries the API server's calls to Services (Tekton's webhook).
	egress *egressProxy
	// closers stop what the cluster serves in this process (socket forwarders).
	closers       []func()
	apiserverArgs []string
	kruise        *process
	// prometheusURL is the cluster's Prometheus, once StartPrometheus ran.
	prometheusURL string

	controllerBinary     string
	controllerKubeconfig string
	sim                  *simulator.Simulator
	stopSim              context.CancelFunc
	stopRegistry         func()
	registryLog          *accessLog
	real                 *realNode
	// beats keep the nodes without a kubelet alive.
	beats *heartbeats
}

// Start brings the whole cluster up. On error it has already torn down what
// it started.
func Start(ctx context.Context, opts Options) (_ *Cluster, err error) {
	if opts.Log == nil {
		opts.Log = func(string, ...any) {}
	}
	if opts.RealNode == "" {
		opts.RealNode = os.Getenv("REAL_NODE")
	}
	dir, err := os.MkdirTemp("", "imageprepull-cluster-")
	if err != nil {
		return nil, err
	}
	c := &Cluster{opts: opts, Dir: dir}
	c.Controllers = &Replicas{c: c}
	defer func() {
		if err != nil {
			c.Stop()
		}
	}()
	if c.KruiseVersion, err = c.kruiseVersion(); err != nil {
		return nil, err
	}
	steps := []struct {
		what string
		do   func(context.Context) error
	}{
		{"tools", c.buildTools},
		{"etcd and kube-apiserver", func(ctx context.Context) error {
			etcd, err := c.startEtcd(ctx)
			if err != nil {
				return err
			}
			return c.startAPIServer(ctx, etcd)
		}},
		{"clients", c.connect},
		{"controller manager and scheduler", c.startKubeControllers},
		{"registry", c.startRegistry},
		{"Tekton controller", c.startTekton},
		{"Tekton webhook", c.startTektonWebhook},
		{"OpenKruise manager", c.startKruise},
		{"nodes", c.createNodes},
		{"pull simulator", c.startSimulator},
		{"real node", c.startRealNode},
		{"imageprepull controller", c.installAndStartController},
	}
	for _, s := range steps {
		t0 := time.Now()
		if err := s.do(ctx); err != nil {
			return nil, fmt.Errorf("%s: %w", s.what, err)
		}
		opts.Log("%-24s ready in %.1fs", s.what, time.Since(t0).Seconds())
	}
	return c, nil
}

// Stop stops every component, in reverse order, and removes the directory
// unless KEEP_CLUSTER_DIR is set.
func (c *Cluster) Stop() {
	if c.stopSim != nil {
		c.stopSim()
	}
	if c.beats != nil {
		c.beats.stopAll()
	}
	if c.stopRegistry != nil {
		defer c.stopRegistry()
	}
	// The real node first: its pods are removed through its containerd,
	// which must still run.
	if c.real != nil {
		if err := c.real.stop(); err != nil {
			c.opts.Log("%v", err)
		}
	}
	for i := len(c.procs) - 1; i >= 0; i-- {
		c.procs[i].stop(10 * time.Second)
	}
	for _, closeFn := range c.closers {
		closeFn()
	}
	if c.egress != nil {
		c.egress.close()
	}
	if os.Getenv("KEEP_CLUSTER_DIR") == "" {
		_ = os.RemoveAll(c.Dir)
	}
}

func (c *Cluster) connect(context.Context) error {
	cfg, err := clientcmd.BuildConfigFromFlags("", c.Kubeconfig)
	if err != nil {
		return err
	}
	cfg.QPS, cfg.Burst = 200, 400
	c.Config = cfg
	if c.Kube, err = kubernetes.NewForConfig(cfg); err != nil {
		return err
	}
	if c.Tekton, err = tektonclient.NewForConfig(cfg); err != nil {
		return err
	}
	if c.Kruise, err = kruiseclient.NewForConfig(cfg); err != nil {
		return err
	}
	if c.Custom, err = customclient.NewForConfig(cfg); err != nil {
		return err
	}
	c.beats = newHeartbeats(c.Kube, c.opts.Log)
	return nil
}

// buildTools builds what is missing with hack/build-tools.sh.
func (c *Cluster) buildTools(ctx context.Context) error {
	cmd := exec.CommandContext(ctx, filepath.Join(c.opts.Root, "hack", "build-tools.sh"), "etcd", "k8s", "tekton", "tekton-webhook", "kruise", "ko")
	if RealNodeUnavailable() == "" {
		cmd.Args = append(cmd.Args, "kruise-daemon", "kubelet", "crictl")
	}
	cmd.Env = append(os.Environ(), "KRUISE_VERSION="+c.KruiseVersion)
	cmd.Stdout, cmd.Stderr = os.Stderr, os.Stderr
	return cmd.Run()
}

// tool returns the path of a built tool.
func (c *Cluster) tool(name string) string {
	cmd := exec.Command(filepath.Join(c.opts.Root, "hack", "build-tools.sh"), "--path", name)
	cmd.Env = append(os.Environ(), "KRUISE_VERSION="+c.KruiseVersion)
	out, err := cmd.Output()
	if err != nil || len(bytes.TrimSpace(out)) == 0 {
		return name // not built: let exec report it
	}
	return string(bytes.TrimSpace(out))
}

// Kubectl runs the built kubectl as cluster admin and returns its output.
func (c *Cluster) Kubectl(ctx context.Context, args ...string) (string, error) {
	cmd := exec.CommandContext(ctx, c.tool("kubectl"), append([]string{"--kubeconfig", c.Kubeconfig}, args...)...)
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	if err := cmd.Run(); err != nil {
		return out.String(), fmt.Errorf("kubectl %s: %w: %s", strings.Join(args, " "), err, errb.String())
	}
	return out.String(), nil
}

// moduleDir is where the module cache holds a module's source.
func (c *Cluster) moduleDir(ctx context.Context, toolsModule, module string) (string, error) {
	cmd := exec.CommandContext(ctx, "go", "list", "-m", "-f", "{{.Dir}}", module)
	cmd.Dir = filepath.Join(c.opts.Root, "hack", "tools", toolsModule)
	out, err := cmd.Output()
	if err != nil {
		return "", fmt.Errorf("locating %s: %w", module, err)
	}
	return strings.TrimSpace(string(out)), nil
}

// Logs returns the last lines of every component's log, for a failing test.
func (c *Cluster) Logs(lines int) string {
	var b strings.Builder
	for _, p := range c.procs {
		fmt.Fprintf(&b, "----- %s (last %d lines of %s)\n%s\n", p.name, lines, p.log, p.tail(lines))
	}
	return b.String()
}
