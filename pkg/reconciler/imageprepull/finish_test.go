package imageprepull

import (
	"testing"

	"github.com/tektoncd/pipeline/pkg/apis/pipeline/v1beta1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	clientgotesting "k8s.io/client-go/testing"
)

// A job OpenKruise deletes by its TTL is not one deleted by someone else:
// with ttlSecondsAfterFinished: 0, an image whose pulls finished first must
// not fail the run while its other images still pull.
func TestTTLCannotBiteARunningRun(t *testing.T) {
	e := newEnv(t)
	e.create(newRun("run", arr("images", "nginx:1.27", "redis:7"), embeddedTTL(0)))
	e.mustReconcile("run")
	jobs := e.jobList()
	e.setJobStatus(jobs[0].Name, completed(2, 2))
	e.setJobStatus(jobs[1].Name, pulling(2, 1, 0))
	e.expireJobs(t0)
	if c := condition(e.mustReconcile("run")); c.IsFalse() {
		t.Fatalf("condition = %+v: the run failed while an image still pulled", c)
	}
	e.setJobStatus(jobs[1].Name, completed(2, 2))
	if c := condition(e.mustReconcile("run")); !c.IsTrue() {
		t.Fatalf("condition = %+v, want Succeeded", c)
	}
	// Done with them, the run hands the TTL on, and Kruise deletes them.
	e.expireJobs(t0)
	if n := len(e.jobList()); n != 0 {
		t.Errorf("%d jobs left after their TTL", n)
	}
}

// The jobs get their TTL only once the run's end is stored and seen: were
// it handed on with an end whose write then failed, OpenKruise would delete
// the jobs, and the next reconcile would fail ImagePullJobDeleted a run
// whose nodes all had the image.
func TestTheTTLWaitsForTheEndToBeStored(t *testing.T) {
	e := newEnv(t)
	e.create(newRun("run", str("image", app), embeddedTTL(0)))
	e.mustReconcile("run")
	e.setJobStatus(e.jobList()[0].Name, completed(2, 2))
	refused := true
	e.tekton.PrependReactor("update", "customruns", func(a clientgotesting.Action) (bool, runtime.Object, error) {
		if refused && a.GetSubresource() == "status" {
			return true, nil, apierrors.NewServiceUnavailable("etcd is away")
		}
		return false, nil, nil
	})
	if _, err := e.reconcile("run"); err == nil {
		t.Fatal("the ending status write did not fail")
	}
	if ttl := e.jobList()[0].Spec.CompletionPolicy.TTLSecondsAfterFinished; ttl != nil {
		t.Fatalf("the job got its TTL (%d) before the run's end was stored", *ttl)
	}
	e.expireJobs(t0) // OpenKruise: nothing to delete yet

	refused = false
	run := e.mustReconcile("run")
	if c := condition(run); !c.IsTrue() || c.Reason != v1beta1.CustomRunReasonSuccessful.String() {
		t.Fatalf("condition = %+v, want Succeeded", c)
	}
	jobs := e.jobList()
	if len(jobs) != 1 || jobs[0].Spec.CompletionPolicy.TTLSecondsAfterFinished == nil {
		t.Fatalf("jobs %+v: want the run's one job, handed its TTL once the end was seen", jobs)
	}
	e.expireJobs(t0)
	if n := len(e.jobList()); n != 0 {
		t.Errorf("%d jobs left after their TTL", n)
	}
}

// Every attempt's jobs get the TTL at the run's end, not only the last one's.
func TestTheTTLGoesToEveryAttemptsJobs(t *testing.T) {
	e := newEnv(t)
	e.create(newRun("run", str("image", app), embeddedTTL(60), retries(1)))
	e.mustReconcile("run")
	e.setJobStatus(e.jobList()[0].Name, completed(2, 1, "node-2"))
	e.mustReconcile("run") // a retry
	e.setJobStatus(JobName("run", "uid-run", app, 1), completed(2, 2))
	if c := condition(e.mustReconcile("run")); !c.IsTrue() {
		t.Fatalf("condition = %+v", c)
	}
	for _, j := range e.jobList() {
		if ttl := j.Spec.CompletionPolicy.TTLSecondsAfterFinished; ttl == nil || *ttl != 60 {
			t.Errorf("job %s has TTL %v, want 60", j.Name, ttl)
		}
	}
}

func TestFinishedRunIsLeftAlone(t *testing.T) {
	e := newEnv(t)
	e.create(newRun("run", str("image", app)))
	e.mustReconcile("run")
	e.setJobStatus(e.jobList()[0].Name, completed(1, 1))
	e.mustReconcile("run")
	e.kruise.ClearActions()
	e.tekton.ClearActions()

	// Kruise's TTL deletes the job after the run finished: nothing to do.
	if err := e.kruise.AppsV1alpha1().ImagePullJobs(ns).Delete(e.ctx, e.jobList()[0].Name, metav1.DeleteOptions{}); err != nil {
		t.Fatal(err)
	}
	e.kruise.ClearActions()
	run := e.mustReconcile("run")
	writes := countActions(e.kruise.Actions(), "create", "imagepulljobs") + countActions(e.kruise.Actions(), "delete", "imagepulljobs")
	if !condition(run).IsTrue() || writes != 0 || countActions(e.tekton.Actions(), "update", "customruns") != 0 {
		t.Errorf("a finished run was touched: %+v, kruise %v", condition(run), e.kruise.Actions())
	}
}
