package imageprepull

import (
	"context"
	"fmt"
	"time"

	kruisev1alpha1 "github.com/openkruise/kruise-api/apps/v1alpha1"
	"k8s.io/apimachinery/pkg/api/equality"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/apimachinery/pkg/util/cache"
	"k8s.io/utils/clock"
	"knative.dev/pkg/controller"

	"github.com/imageprepull/imageprepull/pkg/apis/custom/v1alpha1"
	"github.com/imageprepull/imageprepull/pkg/config"
	"github.com/imageprepull/imageprepull/pkg/kruise"
)

// startingRetry is how soon a run that waits for the ImagePullJob informer's
// first sync is looked at again.
const startingRetry = time.Second

// ensure makes sure the attempt has its job for every image, made from the
// stored pin, and reads what they say. A job is made at most once: one
// already in the informer's cache, or found by name after AlreadyExists, is
// used as it is, if it is the run's own (differs); any other job under the
// name fails the run and is left as it is. A job that was deleted while the
// run went on is not made again: the run fails.
func (r *Reconciler) ensure(ctx context.Context, policy *config.Policy, a *attempt) error {
	lister, err := r.jobs.Lister(ctx)
	switch {
	case kruise.IsStarting(err):
		return controller.NewRequeueAfter(startingRetry)
	case err != nil:
		return notServedFailure(err)
	}
	jobs := make([]*kruisev1alpha1.ImagePullJob, 0, len(a.images))
	for _, image := range a.images {
		want := r.newJob(a.run, a.spec, image, a.number())
		job, err := lister.ImagePullJobs(a.run.Namespace).Get(want.Name)
		switch {
		case err == nil:
		case !apierrors.IsNotFound(err):
			return err
		case r.deleted.seen(want):
			return failed(v1alpha1.ReasonImagePullJobDeleted, "ImagePullJob %s (image %s) was deleted while the run was in progress", want.Name, image)
		default:
			if job, err = r.create(ctx, want); err != nil {
				return err
			}
		}
		if why := r.differs(a, want, job); why != "" {
			return failed(v1alpha1.ReasonImagePullJobConflict, "ImagePullJob %s exists and is not the job this run makes for %s (attempt %d): %s; "+
				"it is left as it is", want.Name, image, a.number(), why)
		}
		jobs = append(jobs, job)
	}
	a.jobs, a.progress = jobs, summarize(jobs, a.pin, a.images)
	// Nodes can join a selector between the run's start and OpenKruise's
	// count: its count is checked too, after the fact.
	if err := withinNodeLimit(policy, int(a.progress.desired), "as OpenKruise counted them"); err != nil {
		if err := r.deleteJobs(ctx, a, a.number()); err != nil {
			return err
		}
		return err
	}
	return nil
}

// create makes a job; AlreadyExists reads the one there (the informer's
// cache lags what an earlier reconcile made).
func (r *Reconciler) create(ctx context.Context, want *kruisev1alpha1.ImagePullJob) (*kruisev1alpha1.ImagePullJob, error) {
	jobs := r.kruise.AppsV1alpha1().ImagePullJobs(want.Namespace)
	job, err := jobs.Create(ctx, want, metav1.CreateOptions{})
	switch {
	case apierrors.IsAlreadyExists(err):
		job, err = jobs.Get(ctx, want.Name, metav1.GetOptions{})
	case apierrors.IsNotFound(err):
		// The resource is gone since the informer started: say why.
		return nil, r.notServed()
	case err != nil:
		return nil, refusedCreate(err)
	}
	if err != nil {
		return nil, err
	}
	return kruise.Shrink(job), nil
}

// deletedJobs are the jobs the informer saw deleted. The controller deletes
// an attempt's jobs only in the reconcile that ends the attempt, so a job
// seen deleted while its attempt still ensures its jobs was deleted by
// someone else, and is not made again. It is kept in memory: a job deleted
// while no controller ran is made again.
type deletedJobs struct {
	jobs *cache.LRUExpireCache
}

// deletedFor is how long a deletion is remembered: the run it belongs to is
// reconciled at once (the deletion is a job event).
const deletedFor = time.Hour

func newDeletedJobs(clk clock.PassiveClock) *deletedJobs {
	return &deletedJobs{jobs: cache.NewLRUExpireCacheWithClock(4096, clk)}
}

func (d *deletedJobs) record(job *kruisev1alpha1.ImagePullJob) {
	d.jobs.Add(types.NamespacedName{Namespace: job.Namespace, Name: job.Name}, true, deletedFor)
}

func (d *deletedJobs) seen(job *kruisev1alpha1.ImagePullJob) bool {
	_, ok := d.jobs.Get(types.NamespacedName{Namespace: job.Namespace, Name: job.Name})
	return ok
}

// notOurs says how a job under one of the run's names differs from the job
// the run makes for that image and attempt; "" when it is the run's own. A
// job's name is predictable (the run's name, a hash of its UID and image,
// the attempt), and whoever may create ImagePullJobs in the namespace can
// make one under a name the run has yet to use: taken as the run's, a job
// of another image or other nodes would end the run with what that job
// says. So a job is the run's only if it is exactly what the run would
// make: image, nodes, pull Secrets, parallelism, pull policy, completion
// policy, owner and labels. Two fields follow the clock when the job is
// made (activeDeadlineSeconds and pullPolicy.timeoutSeconds, from the run's
// time left) and may be anything up to what the attempt's start gives: a
// shorter deadline only ends the job sooner. TTL is either unset or the
// run's own (handed on at its end). job has been through kruise.Shrink.
func (r *Reconciler) notOurs(a *attempt, job *kruisev1alpha1.ImagePullJob) string {
	number := attemptOf(job)
	ref, ok := a.imageOf(job)
	if number < 0 || !ok {
		return fmt.Sprintf("its name is not one the run gives a job of attempt %d", number)
	}
	return r.differs(a, r.newJob(a.run, a.spec, ref, number), job)
}

// differs says how job, found under want's name, differs from want, the
// job the run makes for an image and attempt; "" when it is the run's own.
func (r *Reconciler) differs(a *attempt, want, job *kruisev1alpha1.ImagePullJob) string {
	number := attemptOf(want)
	if job.Spec.Image != want.Spec.Image {
		return fmt.Sprintf("it pulls %s, which attempt %d of the run does not", job.Spec.Image, number)
	}
	if owner := metav1.GetControllerOf(job); owner == nil || owner.UID != a.run.UID {
		return "it is not controlled by this CustomRun"
	}
	for k, v := range ourLabels(a.run.Name, number) {
		if job.Labels[k] != v {
			return fmt.Sprintf("its label %s is %q, not %q", k, job.Labels[k], v)
		}
	}
	got := job.Spec.DeepCopy()
	wantSpec := kruise.Shrink(want).Spec
	ttl := a.spec.TTLSecondsAfterFinished
	if t := got.CompletionPolicy.TTLSecondsAfterFinished; t == nil || (ttl != nil && *t == *ttl) {
		got.CompletionPolicy.TTLSecondsAfterFinished = nil
	}
	most := wholeTimeout(a.run)
	if d := got.CompletionPolicy.ActiveDeadlineSeconds; d != nil && most != nil && *d >= 1 && *d <= *jobDeadline(most) {
		got.CompletionPolicy.ActiveDeadlineSeconds = wantSpec.CompletionPolicy.ActiveDeadlineSeconds
	}
	if p := got.PullPolicy; p != nil && p.TimeoutSeconds != nil && *p.TimeoutSeconds >= 1 &&
		*p.TimeoutSeconds <= *pullTimeout(*a.spec.PullTimeoutSeconds, most) {
		p.TimeoutSeconds = wantSpec.PullPolicy.TimeoutSeconds
	}
	for _, f := range []struct {
		name      string
		got, want any
	}{
		{"selector (nodes)", got.Selector, wantSpec.Selector},
		{"podSelector", got.PodSelector, wantSpec.PodSelector},
		{"pullSecrets", got.PullSecrets, wantSpec.PullSecrets},
		{"parallelism", got.Parallelism, wantSpec.Parallelism},
		{"pullPolicy", got.PullPolicy, wantSpec.PullPolicy},
		{"completionPolicy", got.CompletionPolicy, wantSpec.CompletionPolicy},
		{"sandboxConfig", got.SandboxConfig, wantSpec.SandboxConfig},
		{"imagePullPolicy", got.ImagePullPolicy, wantSpec.ImagePullPolicy},
	} {
		if !equality.Semantic.DeepEqual(f.got, f.want) {
			return "its " + f.name + " differs"
		}
	}
	return ""
}
