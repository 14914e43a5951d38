package imageprepull

import (
	"testing"

	"github.com/tektoncd/pipeline/pkg/apis/pipeline/v1beta1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/runtime"
	clientgotesting "k8s.io/client-go/testing"
)

func TestCancelBeforeStart(t *testing.T) {
	e := newEnv(t)
	e.create(newRun("run", str("image", app), func(r *v1beta1.CustomRun) { r.Spec.Status = v1beta1.CustomRunSpecStatusCancelled }))
	run := e.mustReconcile("run")
	if c := condition(run); !c.IsFalse() || c.Reason != v1beta1.CustomRunReasonCancelled.String() || c.Message != "CustomRun cancelled" {
		t.Errorf("condition = %+v", c)
	}
	if n := len(e.jobList()); n != 0 {
		t.Errorf("%d jobs for a cancelled run", n)
	}
}

// The pin is stored before the first job: the reconcile that starts a run
// makes none, and the next, once the pin is stored, makes them from it.
func TestThePinIsStoredBeforeTheFirstJob(t *testing.T) {
	e := newEnv(t)
	e.create(newRun("run", arr("images", app, "nginx:1.27")))
	run, err := e.reconcileOnce("run")
	if err != nil {
		t.Fatal(err)
	}
	if n := len(e.jobList()); n != 0 {
		t.Fatalf("%d jobs made by the reconcile that started the run", n)
	}
	if !run.HasStarted() || len(run.Status.ExtraFields.Raw) == 0 {
		t.Fatalf("the start and the pin were not stored: %+v", run.Status)
	}
	writes := countActions(e.tekton.Actions(), "update", "customruns")
	e.mustReconcile("run")
	if n := len(e.jobList()); n != 2 {
		t.Fatalf("%d jobs after the pin was stored, want 2", n)
	}
	if n := countActions(e.tekton.Actions(), "update", "customruns") - writes; n != 0 {
		t.Errorf("making the jobs wrote the status %d times, want none: the start said what follows", n)
	}
}

// A start that cannot be checked (the API server cannot answer a review) is
// no start: no start time, no pin, and the condition says what it waits for.
func TestAStartThatCannotBeCheckedIsNoStart(t *testing.T) {
	e := newEnv(t)
	e.kube.PrependReactor("create", "subjectaccessreviews", func(clientgotesting.Action) (bool, runtime.Object, error) {
		return true, nil, apierrors.NewServiceUnavailable("the API server is restarting")
	})
	e.create(newRun("run", str("image", app)))
	run, err := e.reconcile("run")
	if err == nil {
		t.Fatal("no error to retry")
	}
	c := condition(run)
	if run.HasStarted() || len(run.Status.ExtraFields.Raw) != 0 || !c.IsUnknown() || c.Reason != v1beta1.CustomRunReasonStarted.String() {
		t.Fatalf("status %+v, want no start time, no pin, Unknown/Started", run.Status)
	}
	contains(t, "message", c.Message, "waiting to start: ", "the API server is restarting")
}
