// Package imageprepull reconciles the CustomRuns of the ImagePrePull custom
// task: it creates one OpenKruise ImagePullJob per image, follows the jobs,
// and ends the run when the nodes really have the images.
package imageprepull

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"time"

	kruiseclient "github.com/openkruise/kruise-api/client/clientset/versioned"
	"github.com/tektoncd/pipeline/pkg/apis/pipeline/v1beta1"
	tektonlisters "github.com/tektoncd/pipeline/pkg/client/listers/pipeline/v1beta1"
	tkncontroller "github.com/tektoncd/pipeline/pkg/controller"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/dynamic"
	"k8s.io/client-go/kubernetes"
	"k8s.io/utils/clock"
	"knative.dev/pkg/apis"
	"knative.dev/pkg/controller"
	"knative.dev/pkg/logging"
	kreconciler "knative.dev/pkg/reconciler"

	"github.com/imageprepull/imageprepull/pkg/apis/custom/v1alpha1"
	listers "github.com/imageprepull/imageprepull/pkg/client/listers/custom/v1alpha1"
	"github.com/imageprepull/imageprepull/pkg/config"
	"github.com/imageprepull/imageprepull/pkg/kruise"
)

// Reconciler implements the generated CustomRun reconciler's Interface.
type Reconciler struct {
	kube   kubernetes.Interface
	kruise kruiseclient.Interface
	// dynamic reads workloads, of whichever kind v1alpha1.WorkloadKinds names.
	dynamic  dynamic.Interface
	auth     *authorizer
	policies listers.ImagePrePullLister
	// runs is the CustomRun informer's cache, as the run was before the
	// generated reconciler touched its copy.
	runs  tektonlisters.CustomRunLister
	jobs  *kruise.JobInformer
	clock clock.PassiveClock
	// ends are the runs this process ended that its informer does not show
	// ended yet.
	ends *endWrites
	// progressEvery is the least time between two progress writes of a
	// running run's status; zero writes every change.
	progressEvery time.Duration
}

// isOurs tells a CustomRun of kind ImagePrePull from every other custom
// task's, as Tekton's informer filter does.
var isOurs = tkncontroller.FilterCustomRunRef(v1alpha1.APIVersion, v1alpha1.Kind)

// outcome is what one reconcile did: the event it returns, and the classes
// of the failed nodes' reasons it read to end the run, which the metrics
// count once the end shows.
type outcome struct {
	event   kreconciler.Event
	classes map[string]int
}

func eventOnly(event kreconciler.Event) outcome { return outcome{event: event} }

// ReconcileKind moves a CustomRun one step on. A step that ends the run is
// remembered until the informer shows the status write that ended it (the
// metrics count it then); meanwhile the informer's copy is not trusted.
func (r *Reconciler) ReconcileKind(ctx context.Context, run *v1beta1.CustomRun) kreconciler.Event {
	// Whatever enqueued it (a leader's promotion, a job's event), another
	// custom task's run is not ours to touch, as in Tekton's wait-task.
	if !isOurs(run) || run.IsDone() {
		return nil
	}
	// Knative's generated reconciler marks the condition Unknown
	// ("NewObservedGenFailure") before this is called when the spec moved
	// since the status was written (a cancel, an edit), and writes back
	// whatever status it is left with: a run that had ended must be left
	// with its end, or that write would undo it.
	original, err := r.runs.CustomRuns(run.Namespace).Get(run.Name)
	if err != nil {
		original = nil
	}
	if original != nil && original.IsDone() {
		run.Status = *original.Status.DeepCopy()
		return nil
	}
	if live, err := r.ends.liveEnded(ctx, run); err != nil {
		return err
	} else if live != nil {
		// Ended here a moment ago: the informer's event for that write
		// will come, and nothing is left to do but leave the API server's
		// status as it is: the informer's copy, where it was not touched
		// (nothing to write), else the API server's own.
		run.Status = *live.Status.DeepCopy()
		if original != nil && original.Status.ObservedGeneration == original.Generation {
			run.Status = *original.Status.DeepCopy()
		}
		return nil
	}
	o := r.reconcile(ctx, run)
	if run.IsDone() {
		jobs, _ := r.attemptJobs(ctx, run) // none readable: Kruise's share unknown
		r.ends.wrote(types.NamespacedName{Namespace: run.Namespace, Name: run.Name}, newEnding(run, jobs, o.classes, r.clock.Now()))
	}
	return o.event
}

// reconcile takes the steps of a run's life in order: start; stop
// (cancelled or timed out); resolve what the attempt may do; ensure its
// jobs; follow them; judge them once complete.
func (r *Reconciler) reconcile(ctx context.Context, run *v1beta1.CustomRun) outcome {
	r.start(run)
	var extra extraFields
	_ = run.Status.DecodeExtraFields(&extra) // unreadable extra fields: as good as none
	if o, stopped := r.stop(ctx, run, &extra); stopped {
		return o
	}

	spec, err := r.resolve(ctx, run, &extra)
	if err != nil {
		return eventOnly(r.failOrRequeue(run, err))
	}
	lister, err := r.jobs.Lister(ctx)
	switch {
	case kruise.IsStarting(err):
		// Kept meanwhile: the pin, and an edit already told.
		if err := extra.encode(run); err != nil {
			return eventOnly(err)
		}
		return eventOnly(controller.NewRequeueAfter(startingRetry))
	case err != nil:
		return eventOnly(r.failOrRequeue(run, notServedFailure(err)))
	}
	jobs, err := r.ensureJobs(ctx, run, spec, lister, extra.ImagePullJobs)
	if err != nil {
		return eventOnly(r.failOrRequeue(run, err))
	}
	p := summarize(jobs)
	p.target, p.editIgnored = extra.Target, extra.Authorized.IgnoredEdit != ""
	extra.ImagePullJobs = p.jobNames()
	if err := extra.encode(run); err != nil {
		return eventOnly(err)
	}
	if err := r.withinNodeLimit(ctx, p.desired); err != nil {
		// Known only once OpenKruise counted the nodes a selector matched.
		if err := r.deleteJobs(ctx, run, attempt(run)); err != nil {
			return eventOnly(err)
		}
		return eventOnly(r.failOrRequeue(run, err))
	}

	if !*spec.Wait {
		run.Status.Results = p.results()
		run.Status.MarkCustomRunSucceeded(v1beta1.CustomRunReasonSuccessful.String(),
			"Created %d ImagePullJob(s) without waiting for the pulls (wait: false)", len(jobs))
		return eventOnly(kreconciler.NewEvent(corev1.EventTypeNormal, v1beta1.CustomRunReasonSuccessful.String(), "ImagePullJobs created"))
	}
	if !p.complete {
		return eventOnly(r.follow(run, p))
	}
	return r.judge(ctx, run, &extra, spec, p)
}

// start marks a new run Running. No Event for the start: startTime and the
// Running condition tell it, and at a thousand runs an Event each is a
// thousand requests. The run's one Event is its end.
func (r *Reconciler) start(run *v1beta1.CustomRun) {
	if !run.HasStarted() {
		run.Status.InitializeConditions()
		run.Status.StartTime = r.startTime()
	}
}

// startTime is now, to the second, as the API server keeps a time: the
// reconcile that starts an attempt then times it (its requeue, the jobs'
// activeDeadlineSeconds) from the start that every later reconcile reads,
// not from one up to a second later.
func (r *Reconciler) startTime() *metav1.Time {
	return &metav1.Time{Time: r.clock.Now().Truncate(time.Second)}
}

// stop ends a run that was cancelled or timed out, deleting its jobs; it
// reports whether it did.
func (r *Reconciler) stop(ctx context.Context, run *v1beta1.CustomRun, extra *extraFields) (outcome, bool) {
	switch {
	case run.IsCancelled():
		msg := string(run.Spec.StatusMessage)
		if msg == "" {
			msg = "CustomRun cancelled"
		}
		note, err := r.deleteToStop(ctx, run, -1, extra)
		if err != nil {
			return eventOnly(err), true
		}
		return eventOnly(r.failRun(run, v1beta1.CustomRunReasonCancelled, "%s%s", msg, note)), true
	case run.HasTimedOut(r.clock):
		msg := fmt.Sprintf("CustomRun %s timed out after %s", run.Name, run.GetTimeout())
		o := outcome{}
		jobs, err := r.attemptJobs(ctx, run)
		if err != nil && !errors.As(err, new(*unlistedError)) { // else deleteToStop tells it
			msg += "; where the pulls stood is unknown: " + err.Error()
		} else if len(jobs) > 0 {
			// Where the pulls stood, before the jobs that tell it go.
			p := summarize(jobs)
			msg += "; " + p.message()
			if why := r.whyNotDone(ctx, jobs); why != "" {
				msg += "; " + why
			}
			// Kruise may have ended a job at its deadline a moment before:
			// its nodes then count as failed, queued ones included.
			if len(p.failedNodes) > 0 {
				why, classes := r.whyFailed(ctx, p)
				msg += "; failed: " + why
				o.classes = classes
			}
		}
		note, err := r.deleteToStop(ctx, run, attempt(run), extra)
		if err != nil {
			return eventOnly(err), true
		}
		o.event = r.failAttempt(ctx, run, extra, v1beta1.CustomRunReasonTimedOut, "%s%s", msg, note)
		return o, true
	}
	return outcome{}, false
}

// follow writes a running run's progress, at most every progressEvery, and
// asks to be called again before its timeout.
func (r *Reconciler) follow(run *v1beta1.CustomRun, p progress) kreconciler.Event {
	msg := p.progressMessage()
	hold := r.holdProgress(run, msg)
	if hold == 0 {
		run.Status.MarkCustomRunRunning(v1beta1.CustomRunReasonRunning.String(), "%s", msg)
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

// judge ends an attempt whose jobs are all complete.
func (r *Reconciler) judge(ctx context.Context, run *v1beta1.CustomRun, extra *extraFields, spec *v1alpha1.ImagePrePullSpec, p progress) outcome {
	// The run no longer needs them: from now on Kruise may delete them.
	if err := r.handOnTTL(ctx, spec, p.jobs); err != nil {
		return eventOnly(err)
	}
	run.Status.Results = p.results()
	if p.desired == 0 {
		return eventOnly(r.failRun(run, v1alpha1.ReasonNoNodes, "no node matched %s", describeTargets(spec)))
	}
	need, err := required(*spec.SuccessThreshold, p.desired)
	if err != nil {
		return eventOnly(r.failRun(run, v1alpha1.ReasonInvalidParams, "successThreshold: %v", err))
	}
	failed, classes := r.whyFailed(ctx, p)
	failed += credentialsHint(run.Namespace, spec, classes)
	o := outcome{classes: classes}
	if p.succeeded >= need {
		msg := p.message()
		if len(p.failedNodes) > 0 {
			msg += "; successThreshold " + spec.SuccessThreshold.String() + " met; failed: " + failed
		}
		run.Status.MarkCustomRunSucceeded(v1beta1.CustomRunReasonSuccessful.String(), "%s", msg)
		o.event = kreconciler.NewEvent(corev1.EventTypeNormal, v1beta1.CustomRunReasonSuccessful.String(), "%s", msg)
		return o
	}
	o.event = r.failAttempt(ctx, run, extra, v1alpha1.ReasonThresholdNotMet, "%s; %d of %d nodes have every image, successThreshold %s needs %d; failed: %s",
		p.message(), p.succeeded, p.desired, spec.SuccessThreshold.String(), need, failed)
	return o
}

// failOrRequeue fails the run for a failure, and passes other errors on:
// the reconcile is tried again.
func (r *Reconciler) failOrRequeue(run *v1beta1.CustomRun, err error) kreconciler.Event {
	var f *failure
	if errors.As(err, &f) {
		return r.failRun(run, f.reason, "%s", f.message)
	}
	return err
}

// failAttempt ends the current attempt: another one starts if the retries
// the run was authorized with allow it, and the platform's max-retries
// still does (Tekton counts them in retriesStatus); else the run fails.
func (r *Reconciler) failAttempt(ctx context.Context, run *v1beta1.CustomRun, extra *extraFields, reason fmt.Stringer, format string, args ...any) kreconciler.Event {
	retries := run.Spec.Retries
	if extra.Authorized != nil {
		retries = extra.Authorized.Retries
	}
	retries = min(retries, int(config.FromContext(ctx).MaxRetries))
	if retries <= len(run.Status.RetriesStatus) {
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
	// The next attempt makes new jobs, for what the run was authorized
	// for, onto the nodes this one resolved; it is authorized again first.
	next := extraFields{Authorized: extra.Authorized, Target: extra.Target}
	if err := next.encode(run); err != nil {
		return err
	}
	run.Status.MarkCustomRunRunning(v1beta1.CustomRunReasonRunning.String(), "Retrying: attempt %d of %d (%s)",
		attempt(run)+1, retries+1, reason)
	logging.FromContext(ctx).Infow("Retrying", "attempt", attempt(run), "reason", reason.String())
	return controller.NewRequeueImmediately()
}

// failRun ends the run Failed, and the returned event tells the same on the
// CustomRun. reason is one of ours (v1alpha1.Reason) or Tekton's
// (v1beta1.CustomRunReason).
func (r *Reconciler) failRun(run *v1beta1.CustomRun, reason fmt.Stringer, format string, args ...any) kreconciler.Event {
	run.Status.MarkCustomRunFailed(reason.String(), "%s", bounded(fmt.Sprintf(format, args...)))
	return kreconciler.NewEvent(corev1.EventTypeWarning, reason.String(), "%s", run.Status.GetCondition(apis.ConditionSucceeded).Message)
}
