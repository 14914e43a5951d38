package imageprepull

import (
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"knative.dev/pkg/apis"
)

func TestStatusIsWrittenOnlyWhenItChanges(t *testing.T) {
	e := newEnv(t)
	e.create(newRun("run", str("image", app)))
	e.mustReconcile("run")
	e.setJobStatus(e.jobList()[0].Name, pulling(10, 3, 1))
	e.mustReconcile("run")
	before := countActions(e.tekton.Actions(), "update", "customruns")
	e.mustReconcile("run")
	e.mustReconcile("run")
	if after := countActions(e.tekton.Actions(), "update", "customruns"); after != before {
		t.Errorf("%d status writes for reconciles that changed nothing", after-before)
	}
	if got := condition(e.get("run")).Message; got != "3/10 nodes have "+app+" (1 failed)" {
		t.Errorf("message = %q", got)
	}
}

// OpenKruise starting a job, with no node finished, is no news worth a
// status write (each is decoded by every CustomRun watcher and makes
// Tekton's reconcile the PipelineRun), even where every change is written.
func TestKruiseStartingAJobIsNotAWrite(t *testing.T) {
	e := newEnv(t, withProgressEvery(0))
	e.create(newRun("run", str("image", app), arr("nodeNames", "node-1", "node-2", "node-3")))
	first := condition(e.mustReconcile("run")).Message
	if first != "no node has finished pulling "+app+" yet" {
		t.Fatalf("first message %q", first)
	}
	writes := countActions(e.tekton.Actions(), "update", "customruns")
	e.setJobStatus(e.jobList()[0].Name, pulling(3, 0, 0))
	if got := condition(e.mustReconcile("run")).Message; got != first {
		t.Fatalf("message once OpenKruise started = %q, want %q still", got, first)
	}
	if n := countActions(e.tekton.Actions(), "update", "customruns"); n != writes {
		t.Fatalf("%d status writes for OpenKruise's start alone, want none", n-writes)
	}
	e.setJobStatus(e.jobList()[0].Name, pulling(3, 1, 0))
	if got := condition(e.mustReconcile("run")).Message; got != "1/3 nodes have "+app {
		t.Fatalf("message once a node finished = %q", got)
	}
}

// Progress writes are coalesced: a node's report within the interval waits
// (the run is requeued for the rest of it), one after it is written, and
// the end of the run is never held.
func TestProgressWritesAreCoalesced(t *testing.T) {
	e := newEnv(t, withProgressEvery(10*time.Minute))
	e.create(newRun("run", str("image", app), arr("nodeNames", "node-1", "node-2", "node-3")))
	first := condition(e.mustReconcile("run")).Message
	contains(t, "first message", first, "no node has finished pulling "+app+" yet")
	job := e.jobList()[0]

	e.setJobStatus(job.Name, pulling(3, 1, 0))
	run, err := e.reconcile("run")
	if ok, after := isRequeue(err); !ok || after <= 9*time.Minute || after > 10*time.Minute {
		t.Fatalf("reconcile = %v, want a requeue for the rest of the 10m interval", err)
	}
	if got := condition(run).Message; got != first {
		t.Fatalf("message written within the interval: %q", got)
	}

	// The last progress write is older than the interval: write.
	run.Status.Conditions[0].LastTransitionTime = apis.VolatileTime{Inner: metav1.NewTime(time.Now().Add(-11 * time.Minute))}
	if _, err := e.tekton.TektonV1beta1().CustomRuns(ns).UpdateStatus(e.ctx, run, metav1.UpdateOptions{}); err != nil {
		t.Fatal(err)
	}
	if got := condition(e.mustReconcile("run")).Message; got != "1/3 nodes have "+app {
		t.Fatalf("message after the interval = %q", got)
	}

	// Done at once, however recent the last write.
	e.setJobStatus(job.Name, completed(3, 3))
	if c := condition(e.mustReconcile("run")); !c.IsTrue() || c.Message != "3/3 nodes have "+app {
		t.Fatalf("condition = %+v, want True at once", c)
	}
}
