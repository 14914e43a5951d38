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
	tektonlisters "github.com/tektoncd/pipeline/pkg/client/listers/pipeline/v1beta1"
	tkncontroller "github.com/tektoncd/pipeline/pkg/controller"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/apimachinery/pkg/util/cache"
	"k8s.io/client-go/dynamic"
	"k8s.io/client-go/kubernetes"
	"k8s.io/utils/clock"
	"knative.dev/pkg/apis"
	kreconciler "knative.dev/pkg/reconciler"

	"github.com/imageprepull/imageprepull/pkg/apis/custom/v1alpha1"
	listers "github.com/imageprepull/imageprepull/pkg/client/listers/custom/v1alpha1"
	"github.com/imageprepull/imageprepull/pkg/config"
	"github.com/imageprepull/imageprepull/pkg/kruise"
	"github.com/imageprepull/imageprepull/pkg/registry"
)

// Reconciler implements the generated CustomRun reconciler's Interface.
type Reconciler struct {
	kube   kubernetes.Interface
	kruise kruiseclient.Interface
	// dynamic reads workloads, of whichever kind v1alpha1.WorkloadKinds names.
	dynamic dynamic.Interface
	auth    *authorizer
	// prePulls are the named ImagePrePulls a taskRef may call.
	prePulls listers.ImagePrePullLister
	// runs is the CustomRun informer's cache, as the run was before the
	// generated reconciler touched its copy.
	runs  tektonlisters.CustomRunLister
	jobs  *kruise.JobInformer
	clock clock.PassiveClock
	// ends are the runs this process ended that its informer does not show
	// ended yet.
	ends *endWrites
	// deleted are the jobs the informer saw deleted.
	deleted *deletedJobs
	// counts are recent counts of the nodes a selector reaches (nodecount.go).
	counts *cache.LRUExpireCache
	// resolver reads what an image's digest is on each platform (pulled.go).
	resolver *registry.Resolver
	// progressEvery is the least time between two progress writes of a
	// running run's status; zero writes every change.
	progressEvery time.Duration
}

// isOurs tells a CustomRun of kind ImagePrePull from every other custom
// task's, as Tekton's informer filter does.
var isOurs = tkncontroller.FilterCustomRunRef(v1alpha1.APIVersion, v1alpha1.Kind)

// ReconcileKind moves a CustomRun one step on: it reads the run's attempt
// from its status once, takes the steps that apply, and the generated
// reconciler writes the status back once. A step that ends the run is
// remembered until the informer shows the write that ended it (the metrics
// count it then); meanwhile the informer's copy is not trusted.
func (r *Reconciler) ReconcileKind(ctx context.Context, run *v1beta1.CustomRun) kreconciler.Event {
	// Whatever enqueued it (a leader's promotion, a job's event), another
	// custom task's run is not ours to touch, as in Tekton's wait-task.
	if !isOurs(run) {
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
		return r.finish(ctx, run)
	}
	if run.IsDone() {
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
	policy, err := config.FromContext(ctx)
	if err != nil {
		return err
	}
	a, err := readAttempt(run)
	var event kreconciler.Event
	if err != nil {
		event = r.failOrRetry(a, err)
	} else {
		event = r.reconcile(ctx, policy, a)
	}
	if err := a.write(); err != nil {
		return err
	}
	if run.IsDone() {
		r.ends.wrote(types.NamespacedName{Namespace: run.Namespace, Name: run.Name}, newEnding(run, a.jobs, a.classes, r.clock.Now()))
	}
	return event
}

// reconcile takes the steps of an attempt in order: start the run (resolve
// and admit what it asks, pin it; its jobs wait for the pin to be stored);
// tell an edit made since; stop it (cancelled or timed out); admit a retry
// again; ensure the attempt's jobs; end it at once without wait; follow
// the jobs; judge them once complete.
func (r *Reconciler) reconcile(ctx context.Context, policy *config.Policy, a *attempt) kreconciler.Event {
	if a.pin == nil {
		if a.run.IsCancelled() {
			// Cancelled before its start was stored: it made nothing.
			return r.failRun(a.run, v1beta1.CustomRunReasonCancelled, "%s", cancelMessage(a.run))
		}
		return r.start(ctx, policy, a)
	}
	r.tellEdit(ctx, a.run, &a.pin.Authorized.edits)
	if event, stopped := r.stop(ctx, policy, a); stopped {
		return event
	}
	if a.number() > 0 {
		if err := r.readmit(ctx, policy, a); err != nil {
			return r.failOrRetry(a, err)
		}
	}
	if err := r.ensure(ctx, policy, a); err != nil {
		return r.failOrRetry(a, err)
	}
	if !*a.spec.Wait {
		return r.endWithoutWaiting(a)
	}
	if !a.progress.complete {
		return r.follow(a)
	}
	return r.judge(ctx, policy, a)
}

// failOrRetry ends the run for a failure, and passes other errors on: the
// reconcile is tried again.
func (r *Reconciler) failOrRetry(a *attempt, err error) kreconciler.Event {
	var f *failure
	if errors.As(err, &f) {
		return r.failRun(a.run, f.reason, "%s", f.message)
	}
	return err
}

// failRun ends the run Failed, and the returned event tells the same on the
// CustomRun. reason is one of ours (v1alpha1.Reason) or Tekton's
// (v1beta1.CustomRunReason).
func (r *Reconciler) failRun(run *v1beta1.CustomRun, reason fmt.Stringer, format string, args ...any) kreconciler.Event {
	if run.Status.StartTime == nil {
		run.Status.StartTime = r.startTime()
	}
	run.Status.MarkCustomRunFailed(reason.String(), "%s", bounded(fmt.Sprintf(format, args...)))
	return kreconciler.NewEvent(corev1.EventTypeWarning, reason.String(), "%s", run.Status.GetCondition(apis.ConditionSucceeded).Message)
}
