package cluster

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/url"
	"os"
	"path/filepath"
	"strconv"
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

// TektonPipelines is Tekton Pipelines' controller and admission webhook, at
// the version go.mod uses, with its CRDs, config maps and webhook
// configurations from its module, and the images of its TaskRun pods' helper
// containers in the local registry (tektonimages.go): a TaskRun's pod runs
// where a kubelet runs it, on the real node.
type TektonPipelines struct {
	h        *host
	api      *api
	registry *Registries
	// ShellImage is the image Tekton places scripts with (busybox, by digest
	// in the open registry): a step image for tests, the only one here with
	// a shell.
	ShellImage string
	// args are added to the controller's flags.
	args []string

	controller, webhook *process
	// closers stop the API server's socket for the controller.
	closers []func()
}

// Start installs Tekton and starts its controller, then its webhook.
func (t *TektonPipelines) Start(ctx context.Context) error {
	if err := t.startController(ctx); err != nil {
		return err
	}
	if err := t.runWebhook(ctx); err != nil {
		return fmt.Errorf("Tekton's admission webhook cannot start: %s", oneLine(err.Error()))
	}
	return nil
}

// Stop stops the webhook and the controller.
func (t *TektonPipelines) Stop() {
	t.webhook.stop(10 * time.Second)
	t.controller.stop(10 * time.Second)
	for _, c := range t.closers {
		c()
	}
}

// startController installs Tekton Pipelines' CRDs and config maps and starts
// its controller in a network namespace of its own: it and the webhook both
// bind knativeProbePort.
func (t *TektonPipelines) startController(ctx context.Context) error {
	dir, err := t.h.tools.ModuleDir(ctx, "tekton", "github.com/tektoncd/pipeline")
	if err != nil {
		return err
	}
	if err := t.api.createNamespace(ctx, tektonNamespace); err != nil {
		return err
	}
	if _, err := t.api.kubectl(ctx, "apply", "--server-side", "-f", filepath.Join(dir, "config", "300-crds")); err != nil {
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
		if _, err := t.api.kubectl(ctx, "apply", "-f", f); err != nil {
			return err
		}
	}
	// test/cmd/isolate runs a program in its own network namespace with one
	// port joined to the host.
	isolate := filepath.Join(t.h.dir, "isolate")
	if err := t.h.tools.GoBuild(ctx, "./test/cmd/isolate", isolate); err != nil {
		return err
	}
	// In its namespace, the API server's address (the same 127.0.0.1:PORT,
	// so the same kubeconfig serves) leads through a Unix socket to the host's.
	server, err := url.Parse(t.api.cp.Server)
	if err != nil {
		return err
	}
	socket := filepath.Join(t.h.dir, "apiserver.sock")
	closeFwd, err := forwardUnix(socket, server.Host)
	if err != nil {
		return fmt.Errorf("the API server's socket for Tekton's controller: %w", err)
	}
	t.closers = append(t.closers, closeFwd)
	images, err := pushTektonImages(ctx, t.h.tools, t.registry.Open)
	if err != nil {
		return err
	}
	t.ShellImage = images.shell
	p, err := t.h.run(ctx, program{
		name: "tekton-controller", bin: isolate, sys: ownNetwork,
		env: []string{"SYSTEM_NAMESPACE=" + tektonNamespace, "METRICS_DOMAIN=tekton.dev/pipeline",
			"CONFIG_LOGGING_NAME=config-logging", "CONFIG_OBSERVABILITY_NAME=config-observability",
			"CONFIG_LEADERELECTION_NAME=config-leader-election-controller"},
		args: append([]string{"-listen", server.Host, "-to", socket, "--",
			t.h.tools.Path("tekton-controller"), "-kubeconfig", t.api.cp.Kubeconfig, "-disable-ha"},
			append(images.flags(), t.args...)...),
		readyLog: "Starting controllers", readyWithin: 2 * time.Minute, waitingFor: "the Tekton controller to start its controllers",
	})
	if p != nil {
		p.wrapped = true
		t.controller = p
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

// runWebhook runs Tekton's admission webhook as every install does: its
// webhook configurations from Tekton's config/, a Service the API server
// reaches through the egress proxy, and its own certificate, which it makes
// and puts into the configurations' and CRDs' caBundle itself. PipelineRuns,
// Pipelines and CustomRuns then get Tekton's defaults, validation and
// v1beta1<->v1 conversion.
func (t *TektonPipelines) runWebhook(ctx context.Context) error {
	if l, err := net.Listen("tcp", ":"+strconv.Itoa(knativeProbePort)); err != nil {
		return fmt.Errorf("port %d is in use (another local cluster, or another program?); knative's sharedmain, "+
			"which the webhook is built on, always binds it for health probes", knativeProbePort)
	} else {
		l.Close()
	}
	dir, err := t.h.tools.ModuleDir(ctx, "tekton", "github.com/tektoncd/pipeline")
	if err != nil {
		return err
	}
	ports, err := freePorts(4)
	if err != nil {
		return err
	}
	svc, err := t.api.kube.CoreV1().Services(tektonNamespace).Create(ctx, &corev1.Service{
		ObjectMeta: metav1.ObjectMeta{Name: tektonWebhookService},
		Spec: corev1.ServiceSpec{Ports: []corev1.ServicePort{{
			Name: "https-webhook", Port: 443, TargetPort: intstr.FromInt32(int32(ports[0])),
		}}},
	}, metav1.CreateOptions{})
	if err != nil {
		return fmt.Errorf("the webhook's Service: %w", err)
	}
	t.api.cp.egress.route(net.JoinHostPort(svc.Spec.ClusterIP, "443"), "127.0.0.1:"+strconv.Itoa(ports[0]))
	if _, err := t.api.kubectl(ctx, "apply", "-f", filepath.Join(dir, "config", "500-webhooks.yaml")); err != nil {
		return err
	}
	p, err := t.h.run(ctx, program{
		name: "tekton-webhook", bin: t.h.tools.Path("tekton-webhook"), args: []string{"-kubeconfig", t.api.cp.Kubeconfig, "-disable-ha"},
		env: []string{"SYSTEM_NAMESPACE=" + tektonNamespace, "METRICS_DOMAIN=tekton.dev/pipeline",
			"WEBHOOK_PORT=" + strconv.Itoa(ports[0]), "WEBHOOK_SERVICE_NAME=" + tektonWebhookService,
			"WEBHOOK_SECRET_NAME=webhook-certs", "WEBHOOK_ADMISSION_CONTROLLER_NAME=webhook.pipeline.tekton.dev",
			"CONFIG_LOGGING_NAME=config-logging", "CONFIG_OBSERVABILITY_NAME=config-observability",
			"CONFIG_LEADERELECTION_NAME=config-leader-election-webhook", "CONFIG_FEATURE_FLAGS_NAME=feature-flags",
			"PROBES_PORT=" + strconv.Itoa(ports[1]), "PROFILING_PORT=" + strconv.Itoa(ports[2]),
			"METRICS_PROMETHEUS_PORT=" + strconv.Itoa(ports[3])},
		ready: t.admits, readyWithin: 2 * time.Minute, waitingFor: "Tekton's webhook to default a PipelineRun and convert a v1beta1 Pipeline",
	})
	if p == nil {
		return err
	}
	t.webhook = p
	if err != nil && p.exited() {
		return fmt.Errorf("it exited: %s", lastError(p))
	}
	return err
}

// admits holds once the API server defaults a PipelineRun through the
// webhook (the default pipeline timeout appears) and converts a v1beta1
// Pipeline (stored as v1): admission and conversion both serve.
func (t *TektonPipelines) admits(ctx context.Context) error {
	dry := metav1.CreateOptions{DryRun: []string{metav1.DryRunAll}}
	pr, err := t.api.tekton.TektonV1().PipelineRuns(tektonNamespace).Create(ctx, &pipelinev1.PipelineRun{
		ObjectMeta: metav1.ObjectMeta{GenerateName: "probe-"},
		Spec:       pipelinev1.PipelineRunSpec{PipelineRef: &pipelinev1.PipelineRef{Name: "probe"}},
	}, dry)
	if err != nil {
		return err
	}
	if pr.Spec.Timeouts == nil || pr.Spec.Timeouts.Pipeline == nil {
		return errors.New("a PipelineRun was stored without Tekton's default timeout: the webhook does not default yet")
	}
	_, err = t.api.tekton.TektonV1beta1().Pipelines(tektonNamespace).Create(ctx, &v1beta1.Pipeline{
		ObjectMeta: metav1.ObjectMeta{GenerateName: "probe-"},
		Spec: v1beta1.PipelineSpec{Tasks: []v1beta1.PipelineTask{{Name: "t",
			TaskSpec: &v1beta1.EmbeddedTask{TaskSpec: v1beta1.TaskSpec{Steps: []v1beta1.Step{{Name: "s", Image: "x", Script: "true"}}}}}}},
	}, dry)
	if apierrors.IsNotFound(err) {
		return fmt.Errorf("v1beta1 Pipelines are not served: %w", err)
	}
	return err
}

// StopWebhook stops Tekton's webhook: every write of a Tekton object is
// then refused (its webhooks fail closed).
func (t *TektonPipelines) StopWebhook() {
	t.webhook.stop(10 * time.Second)
}
