package imageprepull

import (
	"context"
	"errors"

	"github.com/tektoncd/pipeline/pkg/apis/pipeline/v1beta1"
	kreconciler "knative.dev/pkg/reconciler"

	"github.com/imageprepull/imageprepull/pkg/config"
)

// start begins a run: it resolves, admits and authorizes what the run
// asks, and pins it in the run's status with the run's start time. No job
// is made yet: the write that stores the pin is acted on once stored
// (runEvents), so that a job is only ever made from a stored pin, and a
// failed write leaves no job of a spec nobody can read back. Bad input and
// refusals end the run with nothing made; any other error leaves the status
// as it was, to be tried again (a started run always has its pin). No Event
// for the start: startTime and the Running condition tell it, and at a
// thousand runs an Event each is a thousand requests. The run's one Event
// is its end.
func (r *Reconciler) start(ctx context.Context, policy *config.Policy, a *attempt) kreconciler.Event {
	p, err := r.resolvePin(ctx, policy, a.run)
	if err != nil {
		if !errors.As(err, new(*failure)) {
			// Not started: no start time, no pin; the condition says why.
			a.run.Status.MarkCustomRunRunning(v1beta1.CustomRunReasonStarted.String(), "waiting to start: %s", bounded(err.Error()))
		}
		return r.failOrRetry(a, err)
	}
	a.run.Status.InitializeConditions()
	a.run.Status.StartTime = r.startTime()
	a.setPin(p)
	// What follow says once the jobs exist and no node has finished: making
	// them is then no status write.
	a.run.Status.MarkCustomRunRunning(v1beta1.CustomRunReasonRunning.String(), "%s", unstarted(a.images, p).progressMessage())
	return nil
}
