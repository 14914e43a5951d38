package imageprepull

import (
	"context"
	"fmt"

	"github.com/tektoncd/pipeline/pkg/apis/pipeline/v1beta1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	kreconciler "knative.dev/pkg/reconciler"
)

// finish hands the run's ttlSecondsAfterFinished on to its jobs, every
// attempt's, once the run's end is stored and the informer shows it (run
// is the informer's copy): from then on OpenKruise may delete them. Handed
// on earlier, a job that completed while the run's other jobs still pulled
// would be deleted and taken for deleted by someone else, and a job deleted
// before the end's write landed would fail, at the next reconcile, a run
// whose nodes all had the image. Only the run's own jobs are patched.
func (r *Reconciler) finish(ctx context.Context, run *v1beta1.CustomRun) kreconciler.Event {
	if len(run.Status.ExtraFields.Raw) == 0 {
		return nil // ended before it was pinned: it made no job
	}
	jobs, err := r.attemptJobs(ctx, run, -1)
	if err != nil || len(jobs) == 0 {
		return nil // none to hand it to, or none readable: the jobs stay with the run
	}
	a, err := readAttempt(run)
	if err != nil || a.pin == nil || a.spec.TTLSecondsAfterFinished == nil {
		return nil
	}
	ttl := *a.spec.TTLSecondsAfterFinished
	for _, job := range jobs {
		if t := job.Spec.CompletionPolicy.TTLSecondsAfterFinished; (t != nil && *t == ttl) || r.notOurs(a, job) != "" {
			continue
		}
		// The uid makes it a precondition: a job made again under the
		// name since it was read is not patched.
		patch := fmt.Appendf(nil, `{"metadata":{"uid":%q},"spec":{"completionPolicy":{"ttlSecondsAfterFinished":%d}}}`, job.UID, ttl)
		_, err := r.kruise.AppsV1alpha1().ImagePullJobs(job.Namespace).Patch(ctx, job.Name, types.MergePatchType, patch, metav1.PatchOptions{})
		if err != nil && !apierrors.IsNotFound(err) && !apierrors.IsConflict(err) {
			return fmt.Errorf("setting ttlSecondsAfterFinished on ImagePullJob %s/%s: %w", job.Namespace, job.Name, err)
		}
	}
	return nil
}
