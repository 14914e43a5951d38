//go:build e2e

package e2e

import (
	"context"
	"path/filepath"
	"strings"
	"testing"
	"time"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/utils/ptr"

	"github.com/imageprepull/imageprepull/test/cluster"
)

// Tekton's matrix fans the custom task out: one CustomRun and one
// ImagePullJob per image of examples/ways/matrix.yaml, all finished.
func TestMatrixExample(t *testing.T) {
	ns := namespace(t)
	ex := example{files: []string{"ways/matrix.yaml"}}
	pr := ex.create(t, ns, nil)
	done := waitPipelineRun(t, ns, pr, prTimeout)
	if !done.Status.GetCondition("Succeeded").IsTrue() {
		t.Fatalf("PipelineRun %+v", done.Status.GetCondition("Succeeded"))
	}
	runs, err := c.Tekton.TektonV1beta1().CustomRuns(ns).List(context.Background(), metav1.ListOptions{LabelSelector: "tekton.dev/pipelineRun=" + pr})
	if err != nil {
		t.Fatal(err)
	}
	images := map[string]bool{}
	for _, run := range runs.Items {
		if !cond(&run).IsTrue() || result(&run, "succeeded") != "3" {
			t.Errorf("CustomRun %s: %+v, results %+v", run.Name, cond(&run), run.Status.Results)
		}
		if p := run.Spec.GetParam("image"); p != nil {
			images[p.Value.StringVal] = true
		}
	}
	if len(runs.Items) != 3 || len(images) != 3 {
		t.Errorf("%d CustomRuns for images %v, want one per image of the matrix", len(runs.Items), images)
	}
	if js := jobs(t, ns); len(js) != 3 {
		t.Errorf("%d ImagePullJobs, want 3", len(js))
	}
}

// A tekton.dev/v1beta1 Pipeline with an embedded ImagePrePull spec goes
// through Tekton's webhook (validation, conversion to v1) and runs.
func TestV1beta1Pipeline(t *testing.T) {
	ns := namespace(t)
	create(t, ns, `apiVersion: tekton.dev/v1beta1
kind: Pipeline
metadata: {name: old}
spec:
  params: [{name: image, type: string}]
  tasks:
    - name: prepull
      taskSpec:
        apiVersion: custom.kruise.dev/v1alpha1
        kind: ImagePrePull
        spec:
          nodeSelector: {matchLabels: {node-type: web}}
          successThreshold: 2
      params: [{name: image, value: $(params.image)}]
  results: [{name: failed-nodes, value: $(tasks.prepull.results.failedNodes)}]
---
apiVersion: tekton.dev/v1beta1
kind: PipelineRun
metadata: {name: pr}
spec:
  pipelineRef: {name: old}
  params: [{name: image, value: registry.local/flaky-v1beta1:v1}]
`)
	pr := waitPipelineRun(t, ns, "pr", prTimeout)
	if !pr.Status.GetCondition("Succeeded").IsTrue() {
		t.Fatalf("PipelineRun %+v", pr.Status.GetCondition("Succeeded"))
	}
	if len(pr.Status.Results) != 1 || pr.Status.Results[0].Value.StringVal != "web-b1" {
		t.Errorf("pipeline results %+v, want failed-nodes web-b1", pr.Status.Results)
	}
}

// Timeouts as Tekton sets them, with its webhook's defaults: the CustomRun
// carries a pipeline task's timeout (a taskRunSpecs timeout wins) and
// timeouts.tasks over Tekton's 60-minute default, not timeouts.tasks within
// it (Tekton cancels the run at that time itself) nor timeouts.pipeline
// alone (pipelineRunTimeout in Tekton's pipelinerun reconciler); the
// ImagePullJobs' activeDeadlineSeconds follow the run's effective timeout,
// even below the default pull timeout.
func TestTimeoutsAsTektonSetsThem(t *testing.T) {
	for _, tc := range []struct {
		name, spec, task string
		want             time.Duration // the CustomRun's spec.timeout; 0: unset
		deadline         time.Duration // the jobs' activeDeadlineSeconds, about
	}{
		{"PipelineRun without timeouts", "", "", 0, time.Hour},
		{"a pipeline task timeout", "", "        timeout: 7m\n", 7 * time.Minute, 7 * time.Minute},
		{"taskRunSpecs over the task timeout", "  taskRunSpecs: [{pipelineTaskName: prepull, timeout: 9m}]\n", "        timeout: 7m\n", 9 * time.Minute, 9 * time.Minute},
		{"timeouts.tasks within the default", "  timeouts: {pipeline: 2h, tasks: 50m}\n", "", 0, time.Hour},
		{"timeouts.pipeline alone", "  timeouts: {pipeline: 90m}\n", "", 0, time.Hour},
		{"timeouts.tasks over the default", "  timeouts: {pipeline: 3h, tasks: 90m}\n", "", 90 * time.Minute, 90 * time.Minute},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ns := namespace(t)
			create(t, ns, onePrePull(tc.spec, tc.task, "registry.local/slow-timeouts:v1"))
			waitJobs(t, ns, 1)
			pr, err := c.Tekton.TektonV1().PipelineRuns(ns).Get(context.Background(), "pr", metav1.GetOptions{})
			if err != nil {
				t.Fatal(err)
			}
			if tc.spec == "" && (pr.Spec.Timeouts == nil || pr.Spec.Timeouts.Pipeline == nil || pr.Spec.Timeouts.Pipeline.Duration != time.Hour) {
				t.Errorf("PipelineRun timeouts %+v, want Tekton's default pipeline: 1h", pr.Spec.Timeouts)
			}
			run := customRuns(t, ns, "pr")["prepull"]
			var got time.Duration
			if run.Spec.Timeout != nil {
				got = run.Spec.Timeout.Duration
			}
			if got != tc.want {
				t.Errorf("CustomRun spec.timeout %v, want %v (0: unset)", run.Spec.Timeout, tc.want)
			}
			// Kruise's deadline is 10 s past the run's (docs/imagepulljobs.md).
			job := jobs(t, ns)[0]
			want := int64(tc.deadline.Seconds()) + 10
			if d := ptr.Deref(job.Spec.CompletionPolicy.ActiveDeadlineSeconds, 0); d > want || d < want-60 {
				t.Errorf("activeDeadlineSeconds %d, want about %d", d, want)
			}
			cancel(t, ns, "pr")
		})
	}
}

// The run's identity as Tekton passes it: taskRunTemplate's ServiceAccount,
// or a taskRunSpecs one for the pre-pull's task, reaches the CustomRun, and
// tkn shows it.
func TestServiceAccountReachesTheCustomRun(t *testing.T) {
	for _, tc := range []struct{ name, spec, want string }{
		{"Tekton default", "", "default"},
		{"taskRunTemplate", "  taskRunTemplate: {serviceAccountName: ci-bot}\n", "ci-bot"},
		{"taskRunSpecs", "  taskRunTemplate: {serviceAccountName: ci-bot}\n  taskRunSpecs: [{pipelineTaskName: prepull, serviceAccountName: prepuller}]\n", "prepuller"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ns := namespace(t)
			if err := c.AllowPrePulls(context.Background(), ns, tc.want); err != nil && !apierrors.IsAlreadyExists(err) {
				t.Fatal(err)
			}
			create(t, ns, onePrePull(tc.spec, "", "registry.local/app:sa"))
			if pr := waitPipelineRun(t, ns, "pr", prTimeout); !pr.Status.GetCondition("Succeeded").IsTrue() {
				t.Errorf("PipelineRun %+v", pr.Status.GetCondition("Succeeded"))
			}
			run := customRuns(t, ns, "pr")["prepull"]
			if run.Spec.ServiceAccountName != tc.want {
				t.Errorf("CustomRun serviceAccountName %q, want %q", run.Spec.ServiceAccountName, tc.want)
			}
			out := tkn(t, ns, "customrun", "describe", run.Name)
			if !strings.Contains(out, "Service Account:   "+tc.want+"\n") {
				t.Errorf("tkn customrun describe does not show Service Account %s:\n%s", tc.want, out)
			}
		})
	}
}

// A cluster whose Tekton webhook cannot start fails at once with one line
// that says why. A second cluster on this host is such a case: knative's
// sharedmain in the first cluster's webhook holds port 8080.
func TestClusterSaysWhyTheWebhookCannotStart(t *testing.T) {
	root, err := filepath.Abs(filepath.Join("..", ".."))
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancelCtx := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancelCtx()
	second, err := cluster.Start(ctx, cluster.Options{Root: root, RealNode: "off", PlainBuild: true})
	if err == nil {
		second.Stop()
		t.Fatal("a second cluster started its Tekton webhook while the first one's holds port 8080")
	}
	msg := err.Error()
	if strings.Contains(msg, "\n") || !strings.Contains(msg, "Tekton's admission webhook cannot start") || !strings.Contains(msg, "port 8080 is in use") {
		t.Errorf("error %q, want one line naming the webhook and port 8080", msg)
	}
}

// onePrePull is a PipelineRun "pr" whose one task pre-pulls image onto
// web-a1; spec and task are added lines of its spec and of the task, indented.
func onePrePull(spec, task, image string) string {
	return `apiVersion: tekton.dev/v1
kind: PipelineRun
metadata: {name: pr}
spec:
` + spec + `  pipelineSpec:
    tasks:
      - name: prepull
` + task + `        taskRef: {apiVersion: custom.kruise.dev/v1alpha1, kind: ImagePrePull}
        params: [{name: image, value: ` + image + `}, {name: nodeNames, value: [web-a1]}]
`
}
