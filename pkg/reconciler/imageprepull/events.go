package imageprepull

import (
	kruisev1alpha1 "github.com/openkruise/kruise-api/apps/v1alpha1"
	"github.com/tektoncd/pipeline/pkg/apis/pipeline/v1beta1"
	tektonlisters "github.com/tektoncd/pipeline/pkg/client/listers/pipeline/v1beta1"
	tkncontroller "github.com/tektoncd/pipeline/pkg/controller"
	"k8s.io/apimachinery/pkg/api/equality"
	"k8s.io/client-go/tools/cache"
	"knative.dev/pkg/controller"

	"github.com/imageprepull/imageprepull/pkg/apis/custom/v1alpha1"
)

// runEventHandler enqueues the CustomRuns of kind ImagePrePull, deletions
// included (a deletion is what makes ObserveDeletion delete the run's jobs),
// on runEvents' terms.
func runEventHandler(impl *controller.Impl) cache.ResourceEventHandler {
	return cache.FilteringResourceEventHandler{
		FilterFunc: withTombstones(tkncontroller.FilterCustomRunRef(v1alpha1.APIVersion, v1alpha1.Kind)),
		Handler:    runEvents(impl.Enqueue),
	}
}

// runEvents enqueues a run on every event but a write of its status that
// the reconcile which wrote it has already acted on. Nearly all status
// writes are this controller's own, and each came back through the watch
// as a full reconcile that found nothing to do: what a running run waits
// for next comes as a job event or its own requeue. Two writes are acted on
// only once they are stored: the one that starts an attempt (its pin and
// start time: the attempt's jobs are made from what is stored, never from
// what a reconcile only meant to store) and the one that ends the run (its
// jobs get their TTL once the end is stored). A move of the spec (a
// cancel, an edit), of the metadata, a resync (the same resourceVersion)
// and a deletion are enqueued too.
func runEvents(enqueue func(any)) cache.ResourceEventHandler {
	return cache.ResourceEventHandlerFuncs{
		AddFunc: enqueue,
		UpdateFunc: func(oldObj, newObj any) {
			if !statusWriteActedOn(oldObj, newObj) {
				enqueue(newObj)
			}
		},
		DeleteFunc: enqueue,
	}
}

// statusWriteActedOn reports whether an update of a CustomRun is a write of
// its status alone, other than a start of an attempt or the run's end: it
// moved nothing a reconcile reads beside the status (the generation, that
// is the spec, labels, annotations, finalizers, the deletion timestamp,
// owners).
func statusWriteActedOn(oldObj, newObj any) bool {
	before, ok1 := oldObj.(*v1beta1.CustomRun)
	after, ok2 := newObj.(*v1beta1.CustomRun)
	if !ok1 || !ok2 || before.ResourceVersion == after.ResourceVersion {
		return false
	}
	if startsAttempt(before, after) || (!before.IsDone() && after.IsDone()) {
		return false
	}
	return before.Generation == after.Generation &&
		equality.Semantic.DeepEqual(before.DeletionTimestamp, after.DeletionTimestamp) &&
		equality.Semantic.DeepEqual(before.Labels, after.Labels) &&
		equality.Semantic.DeepEqual(before.Annotations, after.Annotations) &&
		equality.Semantic.DeepEqual(before.Finalizers, after.Finalizers) &&
		equality.Semantic.DeepEqual(before.OwnerReferences, after.OwnerReferences)
}

// startsAttempt says whether a status write started an attempt: the run's
// first (its start time set, with its pin) or a retry (its start time
// moved, one more attempt in retriesStatus).
func startsAttempt(before, after *v1beta1.CustomRun) bool {
	if after.Status.StartTime == nil || after.IsDone() {
		return false
	}
	return before.Status.StartTime == nil || !before.Status.StartTime.Equal(after.Status.StartTime) ||
		len(before.Status.RetriesStatus) != len(after.Status.RetriesStatus)
}

// jobEventHandler enqueues the CustomRun that controls an ImagePullJob when
// the job has news (jobEvents), and tells gone of each job deleted.
func jobEventHandler(impl *controller.Impl, runs tektonlisters.CustomRunLister, gone func(*kruisev1alpha1.ImagePullJob)) cache.ResourceEventHandler {
	return cache.FilteringResourceEventHandler{
		FilterFunc: withTombstones(tkncontroller.FilterOwnerCustomRunRef(runs, v1alpha1.APIVersion, v1alpha1.Kind)),
		Handler:    jobEvents(impl.EnqueueControllerOf, gone),
	}
}

// jobEvents enqueues a job's CustomRun when the job says something new:
// Kruise changed its status, or it is gone. Its creation is not news: the
// reconcile that created it has seen it, and a reconcile at once, before
// the informer holds that reconcile's status write, would only conflict
// with it. Kruise's first status write follows within moments. Writes that
// leave the status as it was (labels, annotations, resyncs) are not news
// either: the run's own informer resyncs it. A deletion is also told to
// gone (nil: to none), so that the run fails rather than make the job again.
func jobEvents(enqueue func(any), gone func(*kruisev1alpha1.ImagePullJob)) cache.ResourceEventHandler {
	return cache.ResourceEventHandlerFuncs{
		AddFunc: func(obj any) {
			if job, ok := obj.(*kruisev1alpha1.ImagePullJob); !ok || !equality.Semantic.DeepEqual(job.Status, kruisev1alpha1.ImagePullJobStatus{}) {
				enqueue(obj)
			}
		},
		UpdateFunc: func(oldObj, newObj any) {
			before, ok1 := oldObj.(*kruisev1alpha1.ImagePullJob)
			after, ok2 := newObj.(*kruisev1alpha1.ImagePullJob)
			if !ok1 || !ok2 || !equality.Semantic.DeepEqual(before.Status, after.Status) {
				enqueue(newObj)
			}
		},
		DeleteFunc: func(obj any) {
			// Told before the run is enqueued: the reconcile this enqueues
			// must know the job is gone, not made yet.
			job, ok := obj.(*kruisev1alpha1.ImagePullJob)
			if tombstone, isTombstone := obj.(cache.DeletedFinalStateUnknown); isTombstone {
				job, ok = tombstone.Obj.(*kruisev1alpha1.ImagePullJob)
			}
			if ok && gone != nil {
				gone(job)
			}
			enqueue(obj)
		},
	}
}

// withTombstones lets filter judge a deletion the watch missed by the
// object's last known state: an informer hands such a deletion over as a
// cache.DeletedFinalStateUnknown, which Tekton's filters, asserting the
// object's type, would drop (Knative's Enqueue unwraps it itself).
func withTombstones(filter func(any) bool) func(any) bool {
	return func(obj any) bool {
		if tombstone, ok := obj.(cache.DeletedFinalStateUnknown); ok {
			obj = tombstone.Obj
		}
		return filter(obj)
	}
}
