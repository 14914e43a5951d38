package imageprepull

import (
	kruisev1alpha1 "github.com/openkruise/kruise-api/apps/v1alpha1"
	"k8s.io/apimachinery/pkg/api/equality"
	"k8s.io/client-go/tools/cache"
)

// jobEvents enqueues a job's CustomRun when the job says something new:
// Kruise changed its status, or it is gone. Its creation is not news: the
// reconcile that created it has seen it, and a reconcile at once, before
// the informer holds that reconcile's status write, would only conflict
// with it. Kruise's first status write follows within moments. Writes that
// leave the status as it was (labels, annotations, resyncs) are not news
// either: the run's own informer resyncs it.
func jobEvents(enqueue func(any)) cache.ResourceEventHandler {
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
		DeleteFunc: enqueue,
	}
}
