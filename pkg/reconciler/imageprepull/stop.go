package imageprepull

import (
	"context"
	"errors"
	"fmt"
	"slices"

	kruisev1alpha1 "github.com/openkruise/kruise-api/apps/v1alpha1"
	"github.com/tektoncd/pipeline/pkg/apis/pipeline/v1beta1"
	kreconciler "knative.dev/pkg/reconciler"

	"github.com/imageprepull/imageprepull/pkg/config"
)

// stop ends a run that was cancelled, or an attempt that timed out, deleting
// its jobs; it reports whether it did.
func (r *Reconciler) stop(ctx context.Context, policy *config.Policy, a *attempt) (kreconciler.Event, bool) {
	run := a.run
	switch {
	case run.IsCancelled():
		note, err := r.deleteToStop(ctx, a, -1)
		if err != nil {
			return err, true
		}
		return r.failRun(run, v1beta1.CustomRunReasonCancelled, "%s%s", cancelMessage(run), note), true
	case run.HasTimedOut(r.clock):
		msg := fmt.Sprintf("CustomRun %s timed out after %s", run.Name, run.GetTimeout())
		jobs, err := r.attemptJobs(ctx, run, a.number())
		if err != nil && !errors.As(err, new(*unlistedError)) { // else deleteToStop tells it
			msg += "; where the pulls stood is unknown: " + err.Error()
		}
		a.jobs = slices.DeleteFunc(jobs, func(job *kruisev1alpha1.ImagePullJob) bool { return r.notOurs(a, job) != "" })
		if len(a.jobs) > 0 {
			// Where the pulls stood, before the jobs that tell it go.
			a.progress = summarize(a.jobs, a.pin, a.images)
			msg += "; " + a.progress.message()
			if why := r.whyNotDone(ctx, a.spec.NodeSelector, a.jobs); why != "" {
				msg += "; " + why
			}
			// Kruise may have ended a job at its deadline a moment before:
			// its nodes then count as failed, queued ones included.
			if len(a.progress.failedNodes) > 0 {
				why, classes := r.whyFailed(ctx, a.progress)
				msg += "; failed: " + why
				a.classes = classes
			}
		}
		note, err := r.deleteToStop(ctx, a, a.number())
		if err != nil {
			return err, true
		}
		return r.failAttempt(ctx, policy, a, v1beta1.CustomRunReasonTimedOut, "%s%s", msg, note), true
	}
	return nil, false
}

// cancelMessage is why the run was cancelled, as Tekton or the user said.
func cancelMessage(run *v1beta1.CustomRun) string {
	if msg := string(run.Spec.StatusMessage); msg != "" {
		return msg
	}
	return "CustomRun cancelled"
}
