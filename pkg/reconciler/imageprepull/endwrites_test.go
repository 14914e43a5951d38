package imageprepull

import (
	"testing"
	"time"

	"github.com/tektoncd/pipeline/pkg/apis/pipeline/v1beta1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/runtime"
	clientgotesting "k8s.io/client-go/testing"
	kreconciler "knative.dev/pkg/reconciler"
)

// Deleting a timed-out run's jobs enqueues it again at once, often before
// the informer shows the write that ended it. That reconcile must not end
// the run a second time from the informer's stale copy: with its jobs gone
// it would overwrite the message that said where the pulls stood.
func TestAnEndIsNotWrittenAgainFromAStaleCopy(t *testing.T) {
	e := newEnv(t)
	e.create(newRun("run", str("image", app), arr("nodeNames", "node-1", "node-2"), timeout(time.Minute)))
	e.mustReconcile("run")
	e.setJobStatus(e.jobList()[0].Name, pulling(2, 1, 0))
	stale := e.mustReconcile("run")
	e.clock.Step(time.Minute + time.Second)
	ended := condition(e.mustReconcile("run"))
	contains(t, "message", ended.Message, "timed out after 1m0s; 1/2 nodes have "+app)
	e.syncJobs()
	writes := countActions(e.tekton.Actions(), "update", "customruns")

	if err := e.runs.Update(stale); err != nil {
		t.Fatal(err)
	}
	if err := e.rec.Reconcile(e.ctx, ns+"/run"); err != nil {
		t.Fatalf("reconcile over the stale copy: %v", err)
	}
	if c := condition(e.get("run")); c.Message != ended.Message || c.Reason != ended.Reason {
		t.Errorf("the end was written again over a stale copy:\n got %s: %s\nwant %s: %s", c.Reason, c.Message, ended.Reason, ended.Message)
	}
	if n := countActions(e.tekton.Actions(), "update", "customruns"); n != writes {
		t.Errorf("%d status writes after the end, want none", n-writes)
	}

}

// A replica whose ending write failed, and which then lost the run's key to
// another replica, does not count the end the new leader wrote: only the
// leader's count has it.
func TestAnEndWrittenByAnotherReplicaIsNotCounted(t *testing.T) {
	reader := withMetrics(t)
	e := newEnv(t)
	e.create(newRun("run", str("image", app), arr("nodeNames", "node-1")))
	e.mustReconcile("run")
	e.setJobStatus(e.jobList()[0].Name, completed(1, 1))
	e.tekton.PrependReactor("update", "customruns", func(a clientgotesting.Action) (bool, runtime.Object, error) {
		if a.GetSubresource() == "status" {
			return true, nil, apierrors.NewServiceUnavailable("the API server is going away")
		}
		return false, nil, nil
	})
	before := e.get("run")
	if _, err := e.reconcile("run"); err == nil {
		t.Fatal("the ending status write did not fail")
	}

	e.rec.(kreconciler.LeaderAware).Demote(kreconciler.UniversalBucket())
	elsewhere := before.DeepCopy()
	elsewhere.Status.MarkCustomRunSucceeded(v1beta1.CustomRunReasonSuccessful.String(), "1/1 nodes have "+app)
	e.r.ends.eventHandler().OnUpdate(before, elsewhere)
	if n := sums(t, reader)["imageprepull_runs_finished reason=Succeeded"]; n != 0 {
		t.Errorf("runs finished = %d on the replica that lost the run, want 0", n)
	}
}

// Knative's generated reconciler marks a run's condition Unknown
// ("NewObservedGenFailure") before ReconcileKind when the run's spec moved
// since its status was written, and writes back the status it is left
// with. A run that had ended keeps its end: edited after its end, or seen
// from a stale copy in which the cancel that ended it is not observed yet.
func TestAMovedGenerationDoesNotUndoAnEnd(t *testing.T) {
	t.Run("edited after its end", func(t *testing.T) {
		e := newEnv(t)
		e.create(newRun("run", str("image", app)))
		e.mustReconcile("run")
		e.setJobStatus(e.jobList()[0].Name, completed(2, 2))
		ended := condition(e.mustReconcile("run"))
		if !ended.IsTrue() {
			t.Fatalf("condition = %+v", ended)
		}
		e.edit("run", func(r *v1beta1.CustomRun) { r.Generation++ })
		if c := condition(e.mustReconcile("run")); !c.IsTrue() || c.Reason != ended.Reason || c.Message != ended.Message {
			t.Errorf("the end became %s %s: %s", c.Status, c.Reason, c.Message)
		}
	})
	t.Run("a stale copy of the cancel", func(t *testing.T) {
		e := newEnv(t)
		e.create(newRun("run", str("image", app)))
		e.mustReconcile("run")
		e.edit("run", func(r *v1beta1.CustomRun) {
			r.Spec.Status = v1beta1.CustomRunSpecStatusCancelled
			r.Generation++
		})
		stale := e.get("run")
		ended := condition(e.mustReconcile("run"))
		if ended.Reason != v1beta1.CustomRunReasonCancelled.String() {
			t.Fatalf("condition = %+v", ended)
		}
		if err := e.runs.Update(stale); err != nil {
			t.Fatal(err)
		}
		if err := e.rec.Reconcile(e.ctx, ns+"/run"); err != nil {
			t.Fatalf("reconcile over the stale copy: %v", err)
		}
		if c := condition(e.get("run")); c.Reason != ended.Reason || c.Message != ended.Message {
			t.Errorf("the end became %s %s: %s", c.Status, c.Reason, c.Message)
		}
	})
}
