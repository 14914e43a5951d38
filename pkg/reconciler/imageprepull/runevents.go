package imageprepull

import (
	"github.com/tektoncd/pipeline/pkg/apis/pipeline/v1beta1"
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

// runEvents enqueues a run on every event but a write of its status alone.
// Nearly all of those are this controller's own 2 to 4 status writes per
// run, each of which came back through the watch as a full reconcile that
// found nothing to do (a tenth of the controller's CPU at 1,000 runs, make
// bench): the reconcile that wrote the status has already moved the run on,
// and what it waits for next comes as a job event or its own requeue. A
// move of the spec (a cancel, an edit), of the metadata, a resync (the same
// resourceVersion) and a deletion are still enqueued.
func runEvents(enqueue func(any)) cache.ResourceEventHandler {
	return cache.ResourceEventHandlerFuncs{
		AddFunc: enqueue,
		UpdateFunc: func(oldObj, newObj any) {
			if !statusWriteOnly(oldObj, newObj) {
				enqueue(newObj)
			}
		},
		DeleteFunc: enqueue,
	}
}

// statusWriteOnly reports whether an update of a CustomRun moved its status
// and nothing a reconcile reads beside it: the generation (the spec),
// labels, annotations, finalizers, the deletion timestamp, owners.
func statusWriteOnly(oldObj, newObj any) bool {
	before, ok1 := oldObj.(*v1beta1.CustomRun)
	after, ok2 := newObj.(*v1beta1.CustomRun)
	if !ok1 || !ok2 || before.ResourceVersion == after.ResourceVersion {
		return false
	}
	return before.Generation == after.Generation &&
		equality.Semantic.DeepEqual(before.DeletionTimestamp, after.DeletionTimestamp) &&
		equality.Semantic.DeepEqual(before.Labels, after.Labels) &&
		equality.Semantic.DeepEqual(before.Annotations, after.Annotations) &&
		equality.Semantic.DeepEqual(before.Finalizers, after.Finalizers) &&
		equality.Semantic.DeepEqual(before.OwnerReferences, after.OwnerReferences)
}
