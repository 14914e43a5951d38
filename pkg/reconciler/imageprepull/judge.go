package imageprepull

import (
	"context"
	"fmt"
	"slices"

	"github.com/tektoncd/pipeline/pkg/apis/pipeline/v1beta1"
	corev1 "k8s.io/api/core/v1"
	"knative.dev/pkg/logging"
	kreconciler "knative.dev/pkg/reconciler"

	"github.com/imageprepull/imageprepull/pkg/apis/custom/v1alpha1"
	"github.com/imageprepull/imageprepull/pkg/config"
)

// endWithoutWaiting ends a run that does not wait for its pulls (wait:
// false) once its jobs exist, as the kubectl Task it replaces did.
func (r *Reconciler) endWithoutWaiting(a *attempt) kreconciler.Event {
	a.run.Status.Results = a.progress.results()
	a.run.Status.MarkCustomRunSucceeded(v1beta1.CustomRunReasonSuccessful.String(),
		"Created %d ImagePullJob(s) without waiting for the pulls (wait: false)", len(a.jobs))
	return kreconciler.NewEvent(corev1.EventTypeNormal, v1beta1.CustomRunReasonSuccessful.String(), "ImagePullJobs created")
}

// judge ends an attempt whose jobs are all complete: the run succeeds when
// successThreshold is met, else the attempt fails.
func (r *Reconciler) judge(ctx context.Context, policy *config.Policy, a *attempt) kreconciler.Event {
	pulled, err := r.checkPulls(ctx, a)
	if err != nil {
		return r.failOrRetry(a, err)
	}
	a.progress = a.progress.withPulled(pulled)
	run, spec, p := a.run, a.spec, a.progress
	run.Status.Results = p.results()
	if p.desired == 0 {
		return r.failRun(run, v1alpha1.ReasonNoNodes, "no node matched %s", describeTargets(spec))
	}
	need, err := required(*spec.SuccessThreshold, p.desired)
	if err != nil {
		return r.failRun(run, v1alpha1.ReasonInvalidParams, "successThreshold: %v", err)
	}
	failed, classes := r.whyFailed(ctx, p)
	failed += credentialsHint(run.Namespace, spec, classes)
	a.classes = classes
	if p.succeeded >= need {
		msg := p.message()
		if failed != "" {
			msg += "; successThreshold " + spec.SuccessThreshold.String() + " met; failed: " + failed
		}
		msg = bounded(msg)
		run.Status.MarkCustomRunSucceeded(v1beta1.CustomRunReasonSuccessful.String(), "%s", msg)
		return kreconciler.NewEvent(corev1.EventTypeNormal, v1beta1.CustomRunReasonSuccessful.String(), "%s", msg)
	}
	return r.failAttempt(ctx, policy, a, v1alpha1.ReasonThresholdNotMet, "%s; %d of %d nodes have every image, successThreshold %s needs %d; failed: %s",
		p.message(), p.succeeded, p.desired, spec.SuccessThreshold.String(), need, failed)
}

// failAttempt ends the current attempt: another one starts if the retries
// the run was authorized with allow it, and the platform's max-retries
// still does (Tekton counts them in retriesStatus); else the run fails. The
// next attempt's jobs are made once the write that starts it is stored
// (runEvents), as the first attempt's are.
func (r *Reconciler) failAttempt(ctx context.Context, policy *config.Policy, a *attempt, reason fmt.Stringer, format string, args ...any) kreconciler.Event {
	run := a.run
	retries := min(a.pin.Authorized.Retries, int(policy.MaxRetries))
	if retries <= a.number() {
		return r.failRun(run, reason, format, args...)
	}
	ended := run.Status.DeepCopy()
	ended.RetriesStatus = nil
	ended.ExtraFields.Raw = nil
	// Each attempt's status stays in the run: its failed nodes are in its
	// message (the first few); listed whole, retries would multiply them.
	ended.Results = slices.DeleteFunc(ended.Results, func(res v1beta1.CustomRunResult) bool { return res.Name == v1alpha1.ResultFailedNodes })
	ended.MarkCustomRunFailed(reason.String(), "%s", bounded(fmt.Sprintf(format, args...)))
	run.Status.RetriesStatus = append(run.Status.RetriesStatus, *ended)

	run.Status.StartTime = r.startTime()
	run.Status.CompletionTime = nil
	run.Status.Results = nil
	run.Status.MarkCustomRunRunning(v1beta1.CustomRunReasonRunning.String(), "Retrying: attempt %d of %d (%s)",
		a.number()+1, retries+1, reason)
	logging.FromContext(ctx).Infow("Retrying", "attempt", a.number(), "reason", reason.String())
	return nil
}
