// Package imageprepull reconciles the CustomRuns of the ImagePrePull custom
// task: it creates one OpenKruise ImagePullJob per image, follows the jobs,
// and ends the run when the nodes really have the images.
package imageprepull

import (
	"context"
	"errors"
	"fmt"
	"time"

	kruiseclient "github.com/openkruise/kruise-api/client/clientset/versioned"
	"github.com/tektoncd/pipeline/pkg/apis/pipeline/v1beta1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/kubernetes"
	"k8s.io/utils/clock"
	"knative.dev/pkg/apis"
	"knative.dev/pkg/controller"
	"knative.dev/pkg/logging"
	kreconciler "knative.dev/pkg/reconciler"

	"github.com/openkruise/imageprepull/pkg/apis/custom/v1alpha1"
	listers "github.com/openkruise/imageprepull/pkg/client/listers/custom/v1alpha1"
	"github.com/openkruise/imageprepull/pkg/kruise"
)

// Reconciler implements the generated CustomRun reconciler's Interface.
type Reconciler struct {
	kube     kubernetes.Interface
	kruise   kruiseclient.Interface
	auth     *authorizer
	policies listers.ImagePrePullLister
	jobs     *kruise.JobInformer
	clock    clock.PassiveClock
	// ends are the runs this process ended that its informer does not show
	// ended yet.
	ends *endWrites
	// progressEvery is the least time between two progress writes of a
	// running run's status; zero writes every change.
	progressEvery time.Duration
}

// extraFields is kept in the run's status.extraFields. Its fields are in
// the order of their JSON names (see target).
type extraFields struct {
	// ImagePullJobs were created by this attempt: one missing later was
	// deleted by someone else, not yet to be created.
	ImagePullJobs []string `json:"imagePullJobs,omitempty"`
	// Target is what spec.workload resolved to at the run's start; it is
	// kept through retries.
	Target *target `json:"target,omitempty"`
}

// ReconcileKind moves a CustomRun one step on: start, cancel, time out,
// create the jobs, follow them, and finish. A step that ends the run is
// remembered until the informer shows the status write that ended it (the
// metrics count it then); meanwhile the informer's copy is not trusted.
func (r *Reconciler) ReconcileKind(ctx context.Context, run *v1beta1.CustomRun) kreconciler.Event {
	if run.IsDone() {
		return nil
	}
	if live, err := r.ends.stale(ctx, run); err != nil {
		return err
	} else if live != nil {
		// Ended here a moment ago: the informer's event for that write
		// will come, and nothing is left to do.
		return nil
	}
	classes := map[string]int{}
	event := r.reconcile(ctx, run, classes)
	if run.IsDone() {
		jobs, _ := r.attemptJobs(ctx, run) // none readable: Kruise's share unknown
		r.ends.wrote(types.NamespacedName{Namespace: run.Namespace, Name: run.Name}, newEnding(run, jobs, classes, r.clock.Now()))
	}
	return event
}

// reconcile is ReconcileKind's step; the classes of failed nodes' reasons
// it reads go into classes.
func (r *Reconciler) reconcile(ctx context.Context, run *v1beta1.CustomRun, classes map[string]int) kreconciler.Event {
	if !run.HasStarted() {
		// No Event for the start: startTime and the Running condition tell
		// it, and at a thousand runs an Event each is a thousand requests.
		// The run's one Event is its end.
		run.Status.InitializeConditions()
		run.Status.StartTime = &metav1.Time{Time: r.clock.Now()}
	}

	if run.IsCancelled() {
		if err := r.deleteJobs(ctx, run, -1); err != nil {
			return err
		}
		msg := string(run.Spec.StatusMessage)
		if msg == "" {
			msg = "CustomRun cancelled"
		}
		return r.fail(run, v1beta1.CustomRunReasonCancelled, "%s", msg)
	}
	if run.HasTimedOut(r.clock) {
		msg := fmt.Sprintf("CustomRun %s timed out after %s", run.Name, run.GetTimeout())
		jobs, err := r.attemptJobs(ctx, run)
		if kruise.IsStarting(err) {
			// The jobs, which tell where the pulls stood, are deleted
			// next: wait for the informer that reads them. Kruise's own
			// deadline on them holds meanwhile.
			return controller.NewRequeueAfter(startingRetry)
		}
		if len(jobs) > 0 {
			// Where the pulls stood, before the jobs that tell it go.
			p := summarize(jobs)
			msg += "; " + p.message()
			if why := r.whyNotDone(ctx, jobs); why != "" {
				msg += "; " + why
			}
			// Kruise may have ended a job at its deadline a moment before:
			// its nodes then count as failed, queued ones included.
			if len(p.failedNodes) > 0 {
				msg += "; failed: " + r.whyFailed(ctx, p, classes)
			}
		}
		if err := r.deleteJobs(ctx, run, attempt(run)); err != nil {
			return err
		}
		return r.failAttempt(ctx, run, v1beta1.CustomRunReasonTimedOut, "%s", msg)
	}

	spec, err := r.resolveSpec(ctx, run)
	if err != nil {
		return r.failOrRetry(run, err)
	}
	lister, err := r.jobs.Lister(ctx)
	switch {
	case kruise.IsStarting(err):
		return controller.NewRequeueAfter(startingRetry)
	case err != nil:
		return r.failOrRetry(run, notServedFailure(err))
	}

	var extra extraFields
	_ = run.Status.DecodeExtraFields(&extra) // unreadable extra fields: as good as none
	first := attempt(run) == 0 && len(extra.ImagePullJobs) == 0
	if first {
		// Once, before the run's first job: retries pull the same images
		// with the same Secrets.
		if err := r.auth.authorize(ctx, run, spec); err != nil {
			return r.failOrRetry(run, err)
		}
	}
	if spec.Workload != "" {
		if extra.Target == nil {
			t, err := r.resolveWorkload(ctx, run, spec)
			if err == nil && first {
				err = r.auth.allowImages(ctx, t.Images)
			}
			if err != nil {
				return r.failOrRetry(run, err)
			}
			extra.Target = t
		}
		extra.Target.applyTo(spec)
	}
	jobs, err := r.ensureJobs(ctx, run, spec, lister, extra.ImagePullJobs)
	if err != nil {
		return r.failOrRetry(run, err)
	}
	p := summarize(jobs)
	p.target = extra.Target
	if err := run.Status.EncodeExtraFields(extraFields{ImagePullJobs: p.jobNames(), Target: extra.Target}); err != nil {
		return err
	}

	if !*spec.Wait {
		run.Status.Results = p.results()
		run.Status.MarkCustomRunSucceeded(v1beta1.CustomRunReasonSuccessful.String(),
			"Created %d ImagePullJob(s) without waiting for the pulls (wait: false)", len(jobs))
		return kreconciler.NewEvent(corev1.EventTypeNormal, v1beta1.CustomRunReasonSuccessful.String(), "ImagePullJobs created")
	}
	if !p.complete {
		hold := r.holdProgress(run, p.message())
		if hold == 0 {
			run.Status.MarkCustomRunRunning(v1beta1.CustomRunReasonRunning.String(), "%s", p.message())
		}
		d := r.requeueBefore(run)
		if hold > 0 && (d == 0 || hold < d) {
			d = hold
		}
		if d > 0 {
			return controller.NewRequeueAfter(d)
		}
		return nil
	}
	return r.judge(ctx, run, spec, p, classes)
}

// judge ends an attempt whose jobs are all complete.
func (r *Reconciler) judge(ctx context.Context, run *v1beta1.CustomRun, spec *v1alpha1.ImagePrePullSpec, p progress, classes map[string]int) kreconciler.Event {
	run.Status.Results = p.results()
	if p.desired == 0 {
		return r.fail(run, v1alpha1.ReasonNoNodes, "no node matched %s", describeTargets(spec))
	}
	need, err := required(*spec.SuccessThreshold, p.desired)
	if err != nil {
		return r.fail(run, v1alpha1.ReasonInvalidParams, "successThreshold: %v", err)
	}
	// whyFailed classes the failed nodes, which the hint reads.
	failed := r.whyFailed(ctx, p, classes)
	failed += credentialsHint(run.Namespace, spec, classes)
	if p.succeeded >= need {
		msg := p.message()
		if len(p.failedNodes) > 0 {
			msg += "; successThreshold " + spec.SuccessThreshold.String() + " met; failed: " + failed
		}
		run.Status.MarkCustomRunSucceeded(v1beta1.CustomRunReasonSuccessful.String(), "%s", msg)
		return kreconciler.NewEvent(corev1.EventTypeNormal, v1beta1.CustomRunReasonSuccessful.String(), "%s", msg)
	}
	return r.failAttempt(ctx, run, v1alpha1.ReasonThresholdNotMet, "%s; %d of %d nodes have every image, successThreshold %s needs %d; failed: %s",
		p.message(), p.succeeded, p.desired, spec.SuccessThreshold.String(), need, failed)
}

// failOrRetry ends the run for a failure, and passes other errors on to be retried.
func (r *Reconciler) failOrRetry(run *v1beta1.CustomRun, err error) kreconciler.Event {
	var f *failure
	if errors.As(err, &f) {
		return r.fail(run, f.reason, "%s", f.message)
	}
	return err
}

// failAttempt ends the current attempt: another one starts if spec.retries
// allows it (Tekton counts them in retriesStatus), else the run fails.
func (r *Reconciler) failAttempt(ctx context.Context, run *v1beta1.CustomRun, reason fmt.Stringer, format string, args ...any) kreconciler.Event {
	if run.Spec.Retries <= len(run.Status.RetriesStatus) {
		return r.fail(run, reason, format, args...)
	}
	ended := run.Status.DeepCopy()
	ended.RetriesStatus = nil
	ended.MarkCustomRunFailed(reason.String(), "%s", bounded(fmt.Sprintf(format, args...)))
	run.Status.RetriesStatus = append(run.Status.RetriesStatus, *ended)

	run.Status.StartTime = &metav1.Time{Time: r.clock.Now()}
	run.Status.CompletionTime = nil
	run.Status.Results = nil
	// The next attempt makes new jobs, onto the nodes this one resolved.
	var extra extraFields
	_ = run.Status.DecodeExtraFields(&extra)
	run.Status.ExtraFields.Raw = nil
	if extra.Target != nil {
		if err := run.Status.EncodeExtraFields(extraFields{Target: extra.Target}); err != nil {
			return err
		}
	}
	run.Status.MarkCustomRunRunning(v1beta1.CustomRunReasonRunning.String(), "Retrying: attempt %d of %d (%s)",
		attempt(run)+1, run.Spec.Retries+1, reason)
	logging.FromContext(ctx).Infow("Retrying", "attempt", attempt(run), "reason", reason.String())
	return controller.NewRequeueImmediately()
}

// fail ends the run, and the returned event tells the same on the CustomRun.
// reason is one of ours (v1alpha1.Reason) or Tekton's (v1beta1.CustomRunReason).
func (r *Reconciler) fail(run *v1beta1.CustomRun, reason fmt.Stringer, format string, args ...any) kreconciler.Event {
	run.Status.MarkCustomRunFailed(reason.String(), "%s", bounded(fmt.Sprintf(format, args...)))
	return kreconciler.NewEvent(corev1.EventTypeWarning, reason.String(), "%s", run.Status.GetCondition(apis.ConditionSucceeded).Message)
}
