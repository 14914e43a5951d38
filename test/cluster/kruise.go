package cluster

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	kruisev1alpha1 "github.com/openkruise/kruise-api/apps/v1alpha1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/yaml"
)

// OpenKruise is OpenKruise's manager, of the release the cluster runs,
// with its CRDs and webhook configurations from that release's module and
// the ImagePullJob feature gate; the real node's kruise-daemon is of the same
// release (RealNode).
type OpenKruise struct {
	h   *host
	api *api
	// Version is the release; args are added to the manager's flags.
	Version string
	args    []string

	manager *process
}

// Stop stops the manager.
func (k *OpenKruise) Stop() { k.manager.stop(10 * time.Second) }

// Start installs OpenKruise's CRDs and webhook configurations and starts its
// manager with the ImagePullJob feature gate.
func (k *OpenKruise) Start(ctx context.Context) error {
	out, err := exec.CommandContext(ctx, "go", "mod", "download", "-json", "github.com/openkruise/kruise@"+k.Version).Output()
	if err != nil {
		return fmt.Errorf("downloading OpenKruise's source: %w", err)
	}
	var mod struct{ Dir string }
	if err := json.Unmarshal(out, &mod); err != nil {
		return err
	}
	if _, err := k.api.kubectl(ctx, "apply", "--server-side", "-f", filepath.Join(mod.Dir, "config", "crd", "bases")); err != nil {
		return err
	}
	for _, ns := range []string{"kruise-system", "kruise-daemon-config"} {
		if err := k.api.createNamespace(ctx, ns); err != nil {
			return err
		}
	}
	webhooks, err := renderKruiseWebhooks(filepath.Join(mod.Dir, "config", "webhook", "manifests.yaml"))
	if err != nil {
		return err
	}
	path := filepath.Join(k.h.dir, "kruise-webhooks.yaml")
	if err := os.WriteFile(path, webhooks, 0o644); err != nil {
		return err
	}
	if _, err := k.api.kubectl(ctx, "apply", "-f", path); err != nil {
		return err
	}
	return k.StartManager(ctx, "ImagePullJobGate=true")
}

// StartManager (re)starts the manager with the given feature gates and
// waits until its webhook admits an ImagePullJob (a server-side dry run), the
// one signal that its imagepulljob controller and webhooks serve.
func (k *OpenKruise) StartManager(ctx context.Context, featureGates string) error {
	k.manager.stop(10 * time.Second)
	ports, err := freePorts(3)
	if err != nil {
		return err
	}
	certDir := filepath.Join(k.h.dir, "kruise", "certs")
	logDir := filepath.Join(k.h.dir, "kruise", "protection")
	for _, d := range []string{certDir, logDir} {
		if err := os.MkdirAll(d, 0o755); err != nil {
			return err
		}
	}
	manager := program{
		name: "kruise-manager", bin: k.h.tools.Path("kruise-manager"),
		env: []string{"WEBHOOK_HOST=127.0.0.1", "WEBHOOK_PORT=" + strconv.Itoa(ports[0]),
			"WEBHOOK_CERT_DIR=" + certDir, "POD_NAMESPACE=kruise-system"},
		args: append([]string{"--kubeconfig=" + k.api.cp.Kubeconfig, "--enable-leader-election=false",
			"--feature-gates=" + featureGates,
			"--metrics-addr=127.0.0.1:" + strconv.Itoa(ports[1]),
			"--health-probe-addr=127.0.0.1:" + strconv.Itoa(ports[2]),
			"--enable-pprof=false", "--protection-log-path=" + logDir,
			"--nodeimage-creation-delay=1s"}, k.args...),
		ready: k.dryRunImagePullJob, readyWithin: 2 * time.Minute, waitingFor: "OpenKruise's webhook to admit an ImagePullJob",
	}
	if !strings.Contains(featureGates, "ImagePullJobGate=true") {
		// Its webhook refuses every ImagePullJob: wait for that answer instead.
		manager.waitingFor = "OpenKruise's webhook"
		manager.ready = func(ctx context.Context) error {
			err := k.dryRunImagePullJob(ctx)
			if apierrors.IsForbidden(err) {
				return nil
			}
			return fmt.Errorf("want the webhook's refusal, got %v", err)
		}
	}
	p, err := k.h.run(ctx, manager)
	if p != nil {
		k.manager = p
	}
	return err
}

// StopManager stops the manager: its webhooks then refuse Kruise objects and Pods.
func (k *OpenKruise) StopManager() { k.manager.stop(10 * time.Second) }

func (k *OpenKruise) dryRunImagePullJob(ctx context.Context) error {
	_, err := k.api.kruise.AppsV1alpha1().ImagePullJobs("kruise-system").Create(ctx, &kruisev1alpha1.ImagePullJob{
		ObjectMeta: metav1.ObjectMeta{GenerateName: "probe-"},
		Spec: kruisev1alpha1.ImagePullJobSpec{Image: "probe:v1", ImagePullJobTemplate: kruisev1alpha1.ImagePullJobTemplate{
			CompletionPolicy: kruisev1alpha1.CompletionPolicy{Type: kruisev1alpha1.Always},
		}},
	}, metav1.CreateOptions{DryRun: []string{metav1.DryRunAll}})
	return err
}

// renderKruiseWebhooks does what Kruise's kustomization does to its webhook
// configurations: the "kruise-" name prefix (the manager looks them up by
// that name) and the kruise-system service. The manager rewrites their
// clientConfig to itself when it starts.
func renderKruiseWebhooks(path string) ([]byte, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	var docs []string
	for _, doc := range strings.Split(string(data), "\n---") {
		if strings.TrimSpace(doc) == "" {
			continue
		}
		var obj map[string]any
		if err := yaml.Unmarshal([]byte(doc), &obj); err != nil {
			return nil, fmt.Errorf("%s: %w", path, err)
		}
		meta := obj["metadata"].(map[string]any)
		meta["name"] = "kruise-" + meta["name"].(string)
		hooks, _ := obj["webhooks"].([]any)
		for _, h := range hooks {
			svc := h.(map[string]any)["clientConfig"].(map[string]any)["service"].(map[string]any)
			svc["namespace"] = "kruise-system"
			svc["name"] = "kruise-webhook-service"
		}
		out, err := yaml.Marshal(obj)
		if err != nil {
			return nil, err
		}
		docs = append(docs, string(out))
	}
	return []byte(strings.Join(docs, "---\n")), nil
}
