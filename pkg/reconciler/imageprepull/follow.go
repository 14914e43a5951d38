package imageprepull

import (
	"time"

	"github.com/tektoncd/pipeline/pkg/apis/pipeline/v1beta1"
	"knative.dev/pkg/apis"
	"knative.dev/pkg/controller"
	kreconciler "knative.dev/pkg/reconciler"
)

// follow writes a running run's progress, at most every progressEvery, and
// asks to be called again before its timeout.
func (r *Reconciler) follow(a *attempt) kreconciler.Event {
	msg := bounded(a.progress.progressMessage())
	hold := r.holdProgress(a.run, msg)
	if hold == 0 {
		a.run.Status.MarkCustomRunRunning(v1beta1.CustomRunReasonRunning.String(), "%s", msg)
	}
	d := r.requeueBefore(a.run)
	if hold > 0 && (d == 0 || hold < d) {
		d = hold
	}
	if d > 0 {
		return controller.NewRequeueAfter(d)
	}
	return nil
}

// holdProgress says how long to wait before writing msg as a running run's
// progress: every node's report changes the message, and hundreds of nodes
// reporting must not make hundreds of status writes. Zero means write now.
// The last progress write is the Running condition's last transition, which
// Knative stamps with the wall clock.
func (r *Reconciler) holdProgress(run *v1beta1.CustomRun, msg string) time.Duration {
	c := run.Status.GetCondition(apis.ConditionSucceeded)
	if r.progressEvery <= 0 || c == nil || c.Reason != v1beta1.CustomRunReasonRunning.String() || c.Message == msg {
		return 0
	}
	if wait := r.progressEvery - time.Since(c.LastTransitionTime.Inner.Time); wait > 0 {
		return wait
	}
	return 0
}
