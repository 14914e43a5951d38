package cluster

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"syscall"
	"time"

	pipelinev1 "github.com/tektoncd/pipeline/pkg/apis/pipeline/v1"
	"github.com/tektoncd/pipeline/pkg/apis/pipeline/v1beta1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/intstr"
)

// Tekton's webhook Service, as Tekton's config/ names it: its webhook
// configurations and CRD conversion point at it.
const (
	tektonNamespace      = "tekton-pipelines"
	tektonWebhookService = "tekton-pipelines-webhook"
)

// knativeProbePort is the port knative's sharedmain binds for health probes in
// every program built on it that does not turn them off, Tekton's controller
// and webhook included (injection.HealthCheckDefaultPort; no flag or env moves it).
const knativeProbePort = 8080

// startTekton installs Tekton Pipelines' CRDs and config maps from its
// module, at the version go.mod uses, and starts its controller in a network
// namespace of its own: it and the webhook both bind knativeProbePort.
func (c *Cluster) startTekton(ctx context.Context) error {
	dir, err := c.moduleDir(ctx, "tekton", "github.com/tektoncd/pipeline")
	if err != nil {
		return err
	}
	if err := c.createNamespace(ctx, tektonNamespace); err != nil {
		return err
	}
	if _, err := c.Kubectl(ctx, "apply", "--server-side", "-f", filepath.Join(dir, "config", "300-crds")); err != nil {
		return err
	}
	configs, err := filepath.Glob(filepath.Join(dir, "config", "config-*.yaml"))
	if err != nil {
		return err
	}
	// What Tekton grants the namespace roles (CustomRuns to edit, to view).
	configs = append(configs, filepath.Join(dir, "config", "clusterrole-aggregate-edit.yaml"),
		filepath.Join(dir, "config", "clusterrole-aggregate-view.yaml"))
	for _, f := range configs {
		if _, err := c.Kubectl(ctx, "apply", "-f", f); err != nil {
			return err
		}
	}
	isolate, err := c.buildIsolate(ctx)
	if err != nil {
		return err
	}
	// In its namespace, the API server's address (the same 127.0.0.1:PORT,
	// so the same kubeconfig serves) leads through a Unix socket to the host's.
	server, err := url.Parse(c.Server)
	if err != nil {
		return err
	}
	socket := filepath.Join(c.Dir, "apiserver.sock")
	closeFwd, err := forwardUnix(socket, server.Host)
	if err != nil {
		return fmt.Errorf("the API server's socket for Tekton's controller: %w", err)
	}
	c.closers = append(c.closers, closeFwd)
	p, err := c.run(ctx, component{
		name: "tekton-controller", bin: isolate, sys: ownNetwork,
		env: []string{"SYSTEM_NAMESPACE=" + tektonNamespace, "METRICS_DOMAIN=tekton.dev/pipeline",
			"CONFIG_LOGGING_NAME=config-logging", "CONFIG_OBSERVABILITY_NAME=config-observability",
			"CONFIG_LEADERELECTION_NAME=config-leader-election-controller"},
		args: append([]string{"-listen", server.Host, "-to", socket, "--",
			c.tool("tekton-controller"), "-kubeconfig", c.Kubeconfig, "-disable-ha",
			// No pod ever runs here: the images of Tekton's helper containers are never pulled.
			"-entrypoint-image", "x", "-nop-image", "x", "-sidecarlogresults-image", "x",
			"-workingdirinit-image", "x", "-shell-image", "x", "-shell-image-win", "x"}, c.opts.TektonArgs...),
		readyLog: "Starting controllers", readyWithin: 2 * time.Minute, waitingFor: "the Tekton controller to start its controllers",
	})
	if p != nil {
		p.wrapped = true
	}
	return err
}

// ownNetwork starts a process in new user and network namespaces (no root
// needed where the kernel allows user namespaces), as the same user inside.
func ownNetwork(a *syscall.SysProcAttr) {
	a.Cloneflags = syscall.CLONE_NEWUSER | syscall.CLONE_NEWNET
	a.UidMappings = []syscall.SysProcIDMap{{ContainerID: os.Getuid(), HostID: os.Getuid(), Size: 1}}
	a.GidMappings = []syscall.SysProcIDMap{{ContainerID: os.Getgid(), HostID: os.Getgid(), Size: 1}}
}

// buildIsolate builds test/cmd/isolate, which runs a program in its own
// network namespace with one port joined to the host.
func (c *Cluster) buildIsolate(ctx context.Context) (string, error) {
	bin := filepath.Join(c.Dir, "isolate")
	build := exec.CommandContext(ctx, "go", "build", "-o", bin, "./test/cmd/isolate")
	build.Dir = c.opts.Root
	if out, err := build.CombinedOutput(); err != nil {
		return "", fmt.Errorf("building test/cmd/isolate: %w: %s", err, out)
	}
	return bin, nil
}

// startTektonWebhook runs Tekton's admission webhook as every install does:
// its webhook configurations from Tekton's config/, a Service the API server
// reaches through the egress proxy, and its own certificate, which it makes
// and puts into the configurations' and CRDs' caBundle itself. PipelineRuns,
// Pipelines and CustomRuns then get Tekton's defaults, validation and
// v1beta1<->v1 conversion. It fails with one line that says why.
func (c *Cluster) startTektonWebhook(ctx context.Context) error {
	err := c.runTektonWebhook(ctx)
	if err != nil {
		return fmt.Errorf("Tekton's admission webhook cannot start: %s", oneLine(err.Error()))
	}
	return nil
}

func (c *Cluster) runTektonWebhook(ctx context.Context) error {
	if l, err := net.Listen("tcp", ":"+strconv.Itoa(knativeProbePort)); err != nil {
		return fmt.Errorf("port %d is in use (another local cluster, or another program?); knative's sharedmain, "+
			"which the webhook is built on, always binds it for health probes", knativeProbePort)
	} else {
		l.Close()
	}
	dir, err := c.moduleDir(ctx, "tekton", "github.com/tektoncd/pipeline")
	if err != nil {
		return err
	}
	ports, err := freePorts(4)
	if err != nil {
		return err
	}
	svc, err := c.Kube.CoreV1().Services(tektonNamespace).Create(ctx, &corev1.Service{
		ObjectMeta: metav1.ObjectMeta{Name: tektonWebhookService},
		Spec: corev1.ServiceSpec{Ports: []corev1.ServicePort{{
			Name: "https-webhook", Port: 443, TargetPort: intstr.FromInt32(int32(ports[0])),
		}}},
	}, metav1.CreateOptions{})
	if err != nil {
		return fmt.Errorf("the webhook's Service: %w", err)
	}
	c.egress.route(net.JoinHostPort(svc.Spec.ClusterIP, "443"), "127.0.0.1:"+strconv.Itoa(ports[0]))
	if _, err := c.Kubectl(ctx, "apply", "-f", filepath.Join(dir, "config", "500-webhooks.yaml")); err != nil {
		return err
	}
	p, err := c.run(ctx, component{
		name: "tekton-webhook", bin: c.tool("tekton-webhook"), args: []string{"-kubeconfig", c.Kubeconfig, "-disable-ha"},
		env: []string{"SYSTEM_NAMESPACE=" + tektonNamespace, "METRICS_DOMAIN=tekton.dev/pipeline",
			"WEBHOOK_PORT=" + strconv.Itoa(ports[0]), "WEBHOOK_SERVICE_NAME=" + tektonWebhookService,
			"WEBHOOK_SECRET_NAME=webhook-certs", "WEBHOOK_ADMISSION_CONTROLLER_NAME=webhook.pipeline.tekton.dev",
			"CONFIG_LOGGING_NAME=config-logging", "CONFIG_OBSERVABILITY_NAME=config-observability",
			"CONFIG_LEADERELECTION_NAME=config-leader-election-webhook", "CONFIG_FEATURE_FLAGS_NAME=feature-flags",
			"PROBES_PORT=" + strconv.Itoa(ports[1]), "PROFILING_PORT=" + strconv.Itoa(ports[2]),
			"METRICS_PROMETHEUS_PORT=" + strconv.Itoa(ports[3])},
		ready: c.tektonAdmits, readyWithin: 2 * time.Minute, waitingFor: "Tekton's webhook to default a PipelineRun and convert a v1beta1 Pipeline",
	})
	if p == nil {
		return err
	}
	c.tektonWebhook = p
	if err != nil && p.exited() {
		return fmt.Errorf("it exited: %s", lastError(p))
	}
	return err
}

// tektonAdmits holds once the API server defaults a PipelineRun through the
// webhook (the default pipeline timeout appears) and converts a v1beta1
// Pipeline (stored as v1): admission and conversion both serve.
func (c *Cluster) tektonAdmits(ctx context.Context) error {
	dry := metav1.CreateOptions{DryRun: []string{metav1.DryRunAll}}
	pr, err := c.Tekton.TektonV1().PipelineRuns(tektonNamespace).Create(ctx, &pipelinev1.PipelineRun{
		ObjectMeta: metav1.ObjectMeta{GenerateName: "probe-"},
		Spec:       pipelinev1.PipelineRunSpec{PipelineRef: &pipelinev1.PipelineRef{Name: "probe"}},
	}, dry)
	if err != nil {
		return err
	}
	if pr.Spec.Timeouts == nil || pr.Spec.Timeouts.Pipeline == nil {
		return errors.New("a PipelineRun was stored without Tekton's default timeout: the webhook does not default yet")
	}
	_, err = c.Tekton.TektonV1beta1().Pipelines(tektonNamespace).Create(ctx, &v1beta1.Pipeline{
		ObjectMeta: metav1.ObjectMeta{GenerateName: "probe-"},
		Spec: v1beta1.PipelineSpec{Tasks: []v1beta1.PipelineTask{{Name: "t",
			TaskSpec: &v1beta1.EmbeddedTask{TaskSpec: v1beta1.TaskSpec{Steps: []v1beta1.Step{{Name: "s", Image: "x", Script: "true"}}}}}}},
	}, dry)
	if apierrors.IsNotFound(err) {
		return fmt.Errorf("v1beta1 Pipelines are not served: %w", err)
	}
	return err
}

// StopTektonWebhook stops Tekton's webhook: every write of a Tekton object
// is then refused (its webhooks fail closed).
func (c *Cluster) StopTektonWebhook() {
	if c.tektonWebhook != nil {
		c.tektonWebhook.stop(10 * time.Second)
	}
}

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
