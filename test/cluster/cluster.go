// Package cluster runs a local cluster for end-to-end tests, the bench and
// the demo, from Go sources alone, on this machine. Today it runs:
//
//   - ControlPlane: etcd and kube-apiserver (with an audit log of the
//     controller's requests);
//   - KubeControllers: kube-controller-manager and kube-scheduler;
//   - Registries: two OCI registries in this process, one wanting a password;
//   - TektonPipelines: Tekton's controller (in user and network namespaces of
//     its own) and admission webhook, and the images of its TaskRun pods'
//     helper containers (Tekton's programs, and busybox as the shell);
//   - OpenKruise: OpenKruise's manager, v1.9.1 or KRUISE_VERSION;
//   - SimulatedNodes: Node objects kept alive as kubelets would, answered for
//     by a pull simulator standing in for kruise-daemon;
//   - RealNode, where Linux and root allow it: a network namespace with
//     Debian's containerd, a real kubelet and the real kruise-daemon, which
//     runs the pods aimed at it (rollouts', and TaskRuns');
//   - Controllers: this project's controller, installed with ko as users
//     install it and run as processes of the image ko pushed;
//   - Prometheus, when a test or the bench asks for it.
//
// Each component is a type with Start and Stop; Cluster holds them together,
// in the order they start, with the clients and addresses the tests use.
// Tools finds the programs hack/build-tools.sh built. Everything listens on
// 127.0.0.1 (or in the real node's network namespace), on free ports, with
// its data in one temporary directory; nothing needs Docker.
package cluster

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"strings"
	"time"

	kruiseclient "github.com/openkruise/kruise-api/client/clientset/versioned"
	tektonclient "github.com/tektoncd/pipeline/pkg/client/clientset/versioned"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
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
	h    *host
	// Dir holds every component's data, logs (Dir/logs) and the kubeconfig.
	Dir   string
	Tools *Tools

	// Server is kube-apiserver's URL; Kubeconfig authenticates as cluster
	// admin; AuditLog is the API server's audit log (JSON lines) of the
	// controller's requests.
	Server, Kubeconfig, AuditLog string
	// Registry is the first local registry's host:port; BaseImage is ko's
	// base there.
	Registry, BaseImage string
	// KruiseVersion is the OpenKruise release it runs.
	KruiseVersion string
	// ControllerImage is the image ko pushed, by digest; KoApplyOutput is
	// what `ko apply -f config/` printed on standard error (warnings included).
	ControllerImage, KoApplyOutput string

	// The components, in the order they start.
	ControlPlane    *ControlPlane
	KubeControllers *KubeControllers
	Registries      *Registries
	Pipelines       *TektonPipelines
	OpenKruise      *OpenKruise
	Nodes           *SimulatedNodes
	RealNode        *RealNode
	Controllers     *Replicas
	Prometheus      *Prometheus

	// Clients, as cluster admin.
	Kube   kubernetes.Interface
	Tekton tektonclient.Interface
	Kruise kruiseclient.Interface
	Custom customclient.Interface
	Config *rest.Config

	api *api
	// realNodes are the real nodes made so far, RealNode first; they share
	// realHost.
	realNodes []*RealNode
	realHost  *realHost
}

// api is how a component reaches the API server: the control plane, and
// clients as cluster admin.
type api struct {
	cp     *ControlPlane
	tools  *Tools
	kube   kubernetes.Interface
	tekton tektonclient.Interface
	kruise kruiseclient.Interface
	config *rest.Config
}

// kubectl runs the built kubectl as cluster admin and returns its output.
func (a *api) kubectl(ctx context.Context, args ...string) (string, error) {
	cmd := exec.CommandContext(ctx, a.tools.Path("kubectl"), append([]string{"--kubeconfig", a.cp.Kubeconfig}, args...)...)
	var out, errb strings.Builder
	cmd.Stdout, cmd.Stderr = &out, &errb
	if err := cmd.Run(); err != nil {
		return out.String(), fmt.Errorf("kubectl %s: %w: %s", strings.Join(args, " "), err, errb.String())
	}
	return out.String(), nil
}

func (a *api) createNamespace(ctx context.Context, name string) error {
	_, err := a.kube.CoreV1().Namespaces().Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: name}}, metav1.CreateOptions{})
	if apierrors.IsAlreadyExists(err) {
		return nil
	}
	return err
}

// component is one part of the cluster: Start brings it up (and leaves what
// it made for Stop when it fails half-way); Stop takes it down.
type component interface {
	Start(context.Context) error
	Stop()
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
	tools, err := NewTools(opts.Root, opts.KruiseVersion)
	if err != nil {
		return nil, err
	}
	h := &host{dir: dir, tools: tools, log: opts.Log}
	cp := &ControlPlane{h: h}
	a := &api{cp: cp, tools: tools}
	c := &Cluster{opts: opts, h: h, Dir: dir, Tools: tools, KruiseVersion: tools.KruiseVersion(), ControlPlane: cp, api: a}
	c.KubeControllers = &KubeControllers{h: h, api: a}
	c.Registries = &Registries{}
	c.Pipelines = &TektonPipelines{h: h, api: a, registry: c.Registries, args: opts.TektonArgs}
	c.OpenKruise = &OpenKruise{h: h, api: a, Version: c.KruiseVersion, args: opts.KruiseArgs}
	simCfg := opts.Simulator
	if simCfg.ImageID == nil {
		simCfg.ImageID = c.Registries.ImageID
	}
	c.Nodes = &SimulatedNodes{api: a, kruise: c.OpenKruise, log: opts.Log, initial: opts.Nodes, cfg: simCfg}
	c.realHost = &realHost{hostVarRun: hostVarRun}
	c.RealNode = c.RealNodes(1)[0]
	c.Prometheus = &Prometheus{h: h}
	c.Controllers = &Replicas{h: h, api: a, prometheus: c.Prometheus}
	c.Prometheus.replicas = c.Controllers
	defer func() {
		if err != nil {
			c.Stop()
		}
	}()
	steps := []struct {
		what  string
		start func(context.Context) error
	}{
		{"tools", c.buildTools},
		{"etcd and kube-apiserver", cp.Start},
		{"clients", c.connect},
		{"controller manager and scheduler", c.KubeControllers.Start},
		{"registries", func(ctx context.Context) error {
			err := c.Registries.Start(ctx)
			c.Registry, c.BaseImage = c.Registries.Open, c.Registries.BaseImage
			return err
		}},
		{"Tekton Pipelines", c.Pipelines.Start},
		{"OpenKruise manager", c.OpenKruise.Start},
		{"simulated nodes", c.Nodes.Start},
		{"real node", func(ctx context.Context) error { return c.RealNode.startIf(ctx, opts.RealNode) }},
		{"imageprepull controller", c.installAndStartController},
	}
	for _, s := range steps {
		t0 := time.Now()
		if err := s.start(ctx); err != nil {
			return nil, fmt.Errorf("%s: %w", s.what, err)
		}
		opts.Log("%-24s ready in %.1fs", s.what, time.Since(t0).Seconds())
	}
	return c, nil
}

// Stop stops every component, the last started first, and removes the
// directory unless KEEP_CLUSTER_DIR is set.
func (c *Cluster) Stop() {
	// The real nodes before the rest: their pods are removed through their
	// containerd, and their kubelets report to the API server.
	for i := len(c.realNodes) - 1; i >= 0; i-- {
		c.realNodes[i].Stop()
	}
	for _, comp := range []interface{ Stop() }{c.Prometheus, c.Controllers, c.Nodes, c.OpenKruise, c.Pipelines,
		c.Registries, c.KubeControllers, c.ControlPlane} {
		comp.Stop()
	}
	c.h.stopAll()
	if os.Getenv("KEEP_CLUSTER_DIR") == "" {
		_ = os.RemoveAll(c.Dir)
	}
}

// RealNodes returns the cluster's first n real nodes, RealNode first, each
// with its own name, addresses and directory; those not made yet are made,
// not started (Start each; make bench's realnodes level runs three). Up to
// MaxRealNodes.
func (c *Cluster) RealNodes(n int) []*RealNode {
	if n > MaxRealNodes {
		panic(fmt.Sprintf("%d real nodes asked for; the API server has tokens for %d", n, MaxRealNodes))
	}
	for k := len(c.realNodes) + 1; k <= n; k++ {
		c.realNodes = append(c.realNodes, &RealNode{h: c.h, api: c.api, kruise: c.OpenKruise, registry: c.Registries, shared: c.realHost,
			labels: c.opts.RealNodeLabels, koBuild: c.KoBuild, k: k, name: realNodeName(k), addrs: addrsOf(k)})
	}
	return c.realNodes[:n]
}

// buildTools builds what is missing with hack/build-tools.sh.
func (c *Cluster) buildTools(ctx context.Context) error {
	names := []string{"etcd", "k8s", "tekton", "tekton-webhook", "kruise", "ko"}
	if RealNodeUnavailable() == "" {
		names = append(names, "kruise-daemon", "kubelet")
	}
	return c.Tools.Build(ctx, names...)
}

func (c *Cluster) connect(context.Context) error {
	c.Server, c.Kubeconfig, c.AuditLog = c.ControlPlane.Server, c.ControlPlane.Kubeconfig, c.ControlPlane.AuditLog
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
	c.api.kube, c.api.tekton, c.api.kruise, c.api.config = c.Kube, c.Tekton, c.Kruise, cfg
	return nil
}

// Kubectl runs the built kubectl as cluster admin and returns its output.
func (c *Cluster) Kubectl(ctx context.Context, args ...string) (string, error) {
	return c.api.kubectl(ctx, args...)
}

// Logs returns the last lines of every component's log, for a failing test.
func (c *Cluster) Logs(lines int) string { return c.h.logs(lines) }

// PID is the process id of the cluster's live program of that name
// ("tekton-controller", "kruise-manager", ...), the program itself where
// isolate runs it; 0 if none.
func (c *Cluster) PID(name string) int { return c.h.pid(name) }

// Each part of the cluster started in order is a component.
var _ = []component{(*ControlPlane)(nil), (*KubeControllers)(nil), (*Registries)(nil), (*TektonPipelines)(nil),
	(*OpenKruise)(nil), (*SimulatedNodes)(nil), (*RealNode)(nil)}
