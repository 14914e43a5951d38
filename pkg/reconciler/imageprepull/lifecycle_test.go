package imageprepull

import (
	"fmt"
	"testing"

	kruisev1alpha1 "github.com/openkruise/kruise-api/apps/v1alpha1"
	"github.com/tektoncd/pipeline/pkg/apis/pipeline/v1beta1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/openkruise/imageprepull/pkg/apis/custom/v1alpha1"
)

const app = "registry.example.com/team/app:main-d92ae17"

func TestParamsOnlyRunCreatesOneJobAndSucceeds(t *testing.T) {
	e := newEnv(t)
	e.create(newRun("run", str("image", app), arr("nodeNames", "node-1", "node-2")))

	run := e.mustReconcile("run")
	if c := condition(run); !c.IsUnknown() || c.Reason != v1beta1.CustomRunReasonRunning.String() {
		t.Fatalf("condition = %+v, want Unknown/Running", c)
	}
	jobs := e.jobList()
	if len(jobs) != 1 {
		t.Fatalf("%d jobs, want 1", len(jobs))
	}
	job := jobs[0]
	if job.Spec.Image != app || job.Spec.CompletionPolicy.Type != kruisev1alpha1.Always {
		t.Errorf("job spec = %+v", job.Spec)
	}
	if got := job.Spec.Selector; got == nil || fmt.Sprint(got.Names) != "[node-1 node-2]" || len(got.MatchLabels) > 0 {
		t.Errorf("selector = %+v, want names node-1, node-2", got)
	}
	if got := job.Spec.Parallelism; got == nil || got.IntValue() != int(v1alpha1.DefaultParallelism) {
		t.Errorf("parallelism = %v, want %d set explicitly", got, v1alpha1.DefaultParallelism)
	}
	if got := job.Spec.PullPolicy; *got.TimeoutSeconds != 600 || *got.BackoffLimit != 3 {
		t.Errorf("pullPolicy = %+v", got)
	}
	if got := job.Spec.CompletionPolicy.ActiveDeadlineSeconds; got == nil || *got != 3600 {
		t.Errorf("activeDeadlineSeconds = %v, want the run's 1h timeout", got)
	}
	if !metav1.IsControlledBy(&job, run) {
		t.Errorf("job is not controlled by the run: %+v", job.OwnerReferences)
	}
	for k, want := range map[string]string{
		LabelManagedBy: ManagedBy, LabelCustomRun: "run", LabelAttempt: "0",
		"tekton.dev/pipelineRun": "build-1", "tekton.dev/pipelineTask": "prepull",
	} {
		if got := job.Labels[k]; got != want {
			t.Errorf("label %s = %q, want %q", k, got, want)
		}
	}

	e.setJobStatus(job.Name, pulling(2, 1, 0))
	run = e.mustReconcile("run")
	if got := condition(run).Message; got != "1/2 nodes have "+app {
		t.Errorf("running message = %q", got)
	}

	e.setJobStatus(job.Name, completed(2, 2))
	run = e.mustReconcile("run")
	if c := condition(run); !c.IsTrue() || c.Reason != v1beta1.CustomRunReasonSuccessful.String() {
		t.Fatalf("condition = %+v, want True/Succeeded", c)
	}
	if got := condition(run).Message; got != "2/2 nodes have "+app {
		t.Errorf("message = %q", got)
	}
	for name, want := range map[string]string{
		ResultDesired: "2", ResultSucceeded: "2", ResultFailed: "0", ResultFailedNodes: "[]",
		ResultImagePullJobs: fmt.Sprintf("[%q]", job.Name),
	} {
		if got := result(run, name); got != want {
			t.Errorf("result %s = %s, want %s", name, got, want)
		}
	}
	if run.Status.CompletionTime == nil {
		t.Error("completionTime not set")
	}
	events := e.events()
	if len(events) != 2 || events[0] != "Normal Started Pre-pull started" || events[1] != "Normal Succeeded 2/2 nodes have "+app {
		t.Errorf("events = %q", events)
	}
}
