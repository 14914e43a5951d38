package imageprepull

import (
	"fmt"
	"testing"

	kruisev1alpha1 "github.com/openkruise/kruise-api/apps/v1alpha1"
	"github.com/tektoncd/pipeline/pkg/apis/pipeline/v1beta1"
	"github.com/tektoncd/pipeline/pkg/reconciler/events/k8sevent"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/utils/ptr"

	"github.com/imageprepull/imageprepull/pkg/apis/custom/v1alpha1"
)

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
	if got := job.Spec.CompletionPolicy.ActiveDeadlineSeconds; got == nil || *got != 3600+deadlineGrace {
		t.Errorf("activeDeadlineSeconds = %v, want the run's 1h timeout and the grace", ptr.Deref(got, 0))
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
		v1alpha1.ResultDesired: "2", v1alpha1.ResultSucceeded: "2", v1alpha1.ResultFailed: "0", v1alpha1.ResultFailedNodes: "",
		v1alpha1.ResultImagePullJobs: job.Name,
	} {
		if got := result(run, name); got != want {
			t.Errorf("result %s = %s, want %s", name, got, want)
		}
	}
	if run.Status.CompletionTime == nil {
		t.Error("completionTime not set")
	}
	if err := k8sevent.CheckEventsOrdered(t, e.recorder.Events, t.Name(), []string{"Normal Succeeded 2/2 nodes have " + app}); err != nil {
		t.Error(err)
	}
}
