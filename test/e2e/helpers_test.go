//go:build e2e

package e2e

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"regexp"
	"strings"
	"testing"
	"time"

	kruisev1alpha1 "github.com/openkruise/kruise-api/apps/v1alpha1"
	pipelinev1 "github.com/tektoncd/pipeline/pkg/apis/pipeline/v1"
	"github.com/tektoncd/pipeline/pkg/apis/pipeline/v1beta1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/wait"
	"knative.dev/pkg/apis"
)

var nonName = regexp.MustCompile(`[^a-z0-9-]+`)

// namespace makes a namespace of the test's own (kept after the test, for
// what it shows) and, on failure, prints its objects and every component's
// log.
func namespace(t *testing.T) string {
	t.Helper()
	ns := strings.Trim(nonName.ReplaceAllString(strings.ToLower(t.Name()), "-"), "-")
	if len(ns) > 50 {
		ns = ns[:50]
	}
	ctx := context.Background()
	// The API server picks the suffix (generateName): a test may make
	// several namespaces in a moment.
	made, err := c.Kube.CoreV1().Namespaces().Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{GenerateName: strings.TrimRight(ns, "-") + "-"}}, metav1.CreateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	ns = made.Name
	// kube-controller-manager's ServiceAccount controller makes the default
	// ServiceAccount, which Pods (and the runs' reviews) need.
	if err := wait.PollUntilContextTimeout(ctx, 50*time.Millisecond, time.Minute, true, func(ctx context.Context) (bool, error) {
		_, err := c.Kube.CoreV1().ServiceAccounts(ns).Get(ctx, "default", metav1.GetOptions{})
		return err == nil, nil
	}); err != nil {
		t.Fatalf("no default ServiceAccount in %s: %v", ns, err)
	}
	// As a namespace whose pipelines pre-pull: its default ServiceAccount may.
	if err := c.AllowPrePulls(ctx, ns, "default"); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if t.Failed() {
			for _, kind := range []string{"pipelineruns", "customruns", "imagepulljobs", "events"} {
				out, _ := c.Kubectl(ctx, "get", kind, "-n", ns, "-o", "yaml")
				t.Logf("----- %s in %s\n%s", kind, ns, out)
			}
			// What Kruise asked of the nodes and what they answered.
			out, _ := c.Kubectl(ctx, "get", "nodeimages", "-o", "yaml")
			t.Logf("----- nodeimages\n%s", out)
			t.Log(c.Logs(25))
		}
	})
	return ns
}

// create makes the objects of a YAML document stream in ns.
func create(t *testing.T, ns, manifest string) string {
	t.Helper()
	out, err := kubectlStdin(manifest, "create", "-n", ns, "-o", "name", "-f", "-")
	if err != nil {
		t.Fatal(err)
	}
	return strings.TrimSpace(out)
}

func kubectlStdin(stdin string, args ...string) (string, error) {
	cmd := exec.Command(c.Tools.Path("kubectl"), append([]string{"--kubeconfig", c.Kubeconfig}, args...)...)
	cmd.Stdin = strings.NewReader(stdin)
	b, err := cmd.CombinedOutput()
	if err != nil {
		return "", fmt.Errorf("kubectl %s: %w: %s", strings.Join(args, " "), err, b)
	}
	return string(b), nil
}

// waitPipelineRun waits until the PipelineRun is done and returns it.
func waitPipelineRun(t *testing.T, ns, name string, timeout time.Duration) *pipelinev1.PipelineRun {
	t.Helper()
	var pr *pipelinev1.PipelineRun
	err := wait.PollUntilContextTimeout(context.Background(), 100*time.Millisecond, timeout, true, func(ctx context.Context) (bool, error) {
		var err error
		pr, err = c.Tekton.TektonV1().PipelineRuns(ns).Get(ctx, name, metav1.GetOptions{})
		return err == nil && !pr.Status.GetCondition(apis.ConditionSucceeded).IsUnknown(), nil
	})
	if err != nil {
		t.Fatalf("PipelineRun %s/%s not done in %s: %v", ns, name, timeout, err)
	}
	return pr
}

// customRuns returns the CustomRuns of a PipelineRun, by pipeline task.
func customRuns(t *testing.T, ns, pipelineRun string) map[string]*v1beta1.CustomRun {
	t.Helper()
	list, err := c.Tekton.TektonV1beta1().CustomRuns(ns).List(context.Background(), metav1.ListOptions{LabelSelector: "tekton.dev/pipelineRun=" + pipelineRun})
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]*v1beta1.CustomRun{}
	for i := range list.Items {
		out[list.Items[i].Labels["tekton.dev/pipelineTask"]] = &list.Items[i]
	}
	return out
}

// waitCustomRun waits until cond holds for the named CustomRun.
func waitCustomRun(t *testing.T, ns, name string, timeout time.Duration, what string, cond func(*v1beta1.CustomRun) bool) *v1beta1.CustomRun {
	t.Helper()
	var run *v1beta1.CustomRun
	err := wait.PollUntilContextTimeout(context.Background(), 100*time.Millisecond, timeout, true, func(ctx context.Context) (bool, error) {
		var err error
		run, err = c.Tekton.TektonV1beta1().CustomRuns(ns).Get(ctx, name, metav1.GetOptions{})
		return err == nil && cond(run), nil
	})
	if err != nil {
		t.Fatalf("CustomRun %s/%s: %s not within %s: %v", ns, name, what, timeout, err)
	}
	return run
}

func jobs(t *testing.T, ns string) []kruisev1alpha1.ImagePullJob {
	t.Helper()
	l, err := c.Kruise.AppsV1alpha1().ImagePullJobs(ns).List(context.Background(), metav1.ListOptions{})
	if err != nil {
		t.Fatal(err)
	}
	return l.Items
}

func result(run *v1beta1.CustomRun, name string) string {
	for _, r := range run.Status.Results {
		if r.Name == name {
			return r.Value
		}
	}
	return "<unset>"
}

// cond is the run's Succeeded condition, or an empty one before the
// controller first reports: polls call it on runs Tekton has just created.
func cond(run *v1beta1.CustomRun) *apis.Condition {
	if c := run.Status.GetCondition(apis.ConditionSucceeded); c != nil {
		return c
	}
	return &apis.Condition{}
}

func annotateNode(ctx context.Context, node, key, value string) error {
	n, err := c.Kube.CoreV1().Nodes().Get(ctx, node, metav1.GetOptions{})
	if err != nil {
		return err
	}
	if n.Annotations == nil {
		n.Annotations = map[string]string{}
	}
	n.Annotations[key] = value
	_, err = c.Kube.CoreV1().Nodes().Update(ctx, n, metav1.UpdateOptions{})
	return err
}

// createPullSecret makes a kubernetes.io/dockerconfigjson Secret in ns that
// logs in to registry as user.
func createPullSecret(t *testing.T, ns, name, registry, user, password string) {
	t.Helper()
	auth := base64.StdEncoding.EncodeToString([]byte(user + ":" + password))
	cfg, err := json.Marshal(map[string]any{"auths": map[string]any{registry: map[string]string{"auth": auth}}})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := c.Kube.CoreV1().Secrets(ns).Create(context.Background(), &corev1.Secret{
		ObjectMeta: metav1.ObjectMeta{Name: name},
		Type:       corev1.SecretTypeDockerConfigJson,
		Data:       map[string][]byte{corev1.DockerConfigJsonKey: cfg},
	}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
}

func contains(t *testing.T, what, s string, parts ...string) {
	t.Helper()
	for _, p := range parts {
		if !strings.Contains(s, p) {
			t.Errorf("%s %q does not contain %q", what, s, p)
		}
	}
}

// tkn runs the built tkn against the cluster in ns, logs and returns its output.
func tkn(t *testing.T, ns string, args ...string) string {
	t.Helper()
	cmd := exec.Command(c.Tools.Path("tkn"), append(args, "-n", ns, "--kubeconfig", c.Kubeconfig)...)
	cmd.Env = append(os.Environ(), "NO_COLOR=1")
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("tkn %v: %v\n%s", args, err, out)
	}
	t.Logf("$ tkn %s\n%s", strings.Join(args, " "), out)
	return string(out)
}
