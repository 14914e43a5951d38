package imageprepull

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"math"
	"slices"
	"strconv"
	"strings"
	"time"

	kruisev1alpha1 "github.com/openkruise/kruise-api/apps/v1alpha1"
	kruiselisters "github.com/openkruise/kruise-api/client/listers/apps/v1alpha1"
	"github.com/tektoncd/pipeline/pkg/apis/pipeline"
	"github.com/tektoncd/pipeline/pkg/apis/pipeline/v1beta1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/apimachinery/pkg/util/intstr"
	"k8s.io/utils/ptr"
	"knative.dev/pkg/kmeta"

	"github.com/imageprepull/imageprepull/pkg/apis/custom/v1alpha1"
	"github.com/imageprepull/imageprepull/pkg/kruise"
)

// Labels on every ImagePullJob, so that `kubectl get imagepulljobs -l` finds
// the jobs of a run, a PipelineRun or a pipeline task.
const (
	LabelManagedBy = "app.kubernetes.io/managed-by"
	// ManagedBy is also the informer's label selector: it watches our jobs only.
	ManagedBy      = "imageprepull.custom.kruise.dev"
	LabelCustomRun = pipeline.CustomRunKey
	LabelAttempt   = "custom.kruise.dev/attempt"
)

// ManagedBySelector selects the ImagePullJobs this controller creates.
var ManagedBySelector = labels.SelectorFromSet(labels.Set{LabelManagedBy: ManagedBy}).String()

// Tekton's labels that lead from a job back to its pipeline.
var copiedLabels = []string{
	pipeline.PipelineLabelKey, pipeline.PipelineRunLabelKey, pipeline.PipelineTaskLabelKey,
	pipeline.PipelineRunUIDLabelKey,
}

// jobName is deterministic, so that a retried reconcile or a restarted
// controller finds the job it created instead of making a second one. The
// hash covers the run's UID as well as the image: a CustomRun deleted and
// created again under the same name must not pick up the old run's jobs.
func jobName(run *v1beta1.CustomRun, image string, attempt int) string {
	sum := sha256.Sum256([]byte(string(run.UID) + "\n" + image))
	suffix := "-" + hex.EncodeToString(sum[:])[:8] + "-" + strconv.Itoa(attempt)
	prefix := strings.ReplaceAll(run.Name, ".", "-")
	if max := 63 - len(suffix); len(prefix) > max {
		prefix = prefix[:max]
	}
	return strings.TrimRight(prefix, "-") + suffix
}

func attempt(run *v1beta1.CustomRun) int { return len(run.Status.RetriesStatus) }

// newJob builds the ImagePullJob for one image of the run's current attempt.
func (r *Reconciler) newJob(run *v1beta1.CustomRun, spec *v1alpha1.ImagePrePullSpec, image string) *kruisev1alpha1.ImagePullJob {
	lbls := map[string]string{
		LabelManagedBy: ManagedBy,
		LabelCustomRun: run.Name,
		LabelAttempt:   strconv.Itoa(attempt(run)),
	}
	for _, k := range copiedLabels {
		if v, ok := run.Labels[k]; ok {
			lbls[k] = v
		}
	}
	left := r.secondsLeft(run)
	job := &kruisev1alpha1.ImagePullJob{
		ObjectMeta: metav1.ObjectMeta{
			Name:            jobName(run, image, attempt(run)),
			Namespace:       run.Namespace,
			Labels:          lbls,
			OwnerReferences: []metav1.OwnerReference{*kmeta.NewControllerRef(run)},
		},
		Spec: kruisev1alpha1.ImagePullJobSpec{
			Image: image,
			ImagePullJobTemplate: kruisev1alpha1.ImagePullJobTemplate{
				PullSecrets: spec.PullSecrets,
				Parallelism: ptr.To(intstr.FromInt32(*spec.Parallelism)),
				PullPolicy: &kruisev1alpha1.PullPolicy{
					TimeoutSeconds: pullTimeout(spec, left),
					BackoffLimit:   spec.BackoffLimit,
				},
				CompletionPolicy: kruisev1alpha1.CompletionPolicy{
					Type:                  kruisev1alpha1.Always,
					ActiveDeadlineSeconds: jobDeadline(left),
				},
				ImagePullPolicy: kruisev1alpha1.ImagePullPolicy(spec.ImagePullPolicy),
			},
		},
	}
	if !*spec.Wait {
		// The run ends as its jobs are created: nothing of it can be bitten
		// by Kruise deleting them. Else handOnTTL sets it at the end.
		job.Spec.CompletionPolicy.TTLSecondsAfterFinished = spec.TTLSecondsAfterFinished
	}
	if spec.NodeSelector != nil {
		job.Spec.Selector = &kruisev1alpha1.ImagePullJobNodeSelector{
			Names: spec.NodeSelector.Names, LabelSelector: spec.NodeSelector.LabelSelector,
		}
	}
	if spec.PodSelector != nil {
		job.Spec.PodSelector = &kruisev1alpha1.ImagePullJobPodSelector{LabelSelector: *spec.PodSelector}
	}
	return job
}

// deadlineGrace is how long after the run's timeout OpenKruise stops its
// jobs itself (activeDeadlineSeconds). The run's timeout is the controller's
// to enforce: at it, the run reads where each node stood (queued, pulling)
// and deletes the jobs. With the job's deadline at the same second, OpenKruise
// often ended the job first, and the run reported its unfinished nodes as
// failed ("job exceeds activeDeadlineSeconds"). The deadline stays a backstop
// for a controller that is not running when the run times out.
const deadlineGrace = 10

// secondsLeft is the run's remaining time, in seconds rounded up (at least
// one), or nil when it has no timeout.
func (r *Reconciler) secondsLeft(run *v1beta1.CustomRun) *int64 {
	timeout := run.GetTimeout()
	if timeout <= 0 {
		return nil
	}
	left := timeout - r.clock.Since(run.Status.StartTime.Time)
	return ptr.To(max(int64(math.Ceil(left.Seconds())), 1))
}

// jobDeadline is a job's activeDeadlineSeconds: deadlineGrace after the run's
// timeout, or none when the run has no timeout.
func jobDeadline(left *int64) *int64 {
	if left == nil {
		return nil
	}
	return ptr.To(*left + deadlineGrace)
}

// pullTimeout is a node's time for one pull, never more than the run has
// left: a pull cannot usefully outlive the run, and Kruise rejects a job
// whose activeDeadlineSeconds is below it.
func pullTimeout(spec *v1alpha1.ImagePrePullSpec, left *int64) *int32 {
	if left != nil && *left < int64(*spec.PullTimeoutSeconds) {
		return ptr.To(int32(*left))
	}
	return spec.PullTimeoutSeconds
}

// ensureJobs returns the attempt's job for every image, creating the missing
// ones. A job is created at most once: one already in the informer's cache,
// or found by name after AlreadyExists, is used as it is.
func (r *Reconciler) ensureJobs(ctx context.Context, run *v1beta1.CustomRun, spec *v1alpha1.ImagePrePullSpec,
	lister kruiselisters.ImagePullJobLister, created []string) ([]*kruisev1alpha1.ImagePullJob, error) {
	jobs := make([]*kruisev1alpha1.ImagePullJob, 0, len(spec.Images))
	for _, image := range spec.Images {
		want := r.newJob(run, spec, image)
		job, err := lister.ImagePullJobs(run.Namespace).Get(want.Name)
		switch {
		case err == nil:
		case !apierrors.IsNotFound(err):
			return nil, err
		case slices.Contains(created, want.Name):
			// Created by an earlier reconcile: the cache may lag, the API does not.
			job, err = r.kruise.AppsV1alpha1().ImagePullJobs(run.Namespace).Get(ctx, want.Name, metav1.GetOptions{})
			if apierrors.IsNotFound(err) {
				return nil, failed(v1alpha1.ReasonImagePullJobDeleted, "ImagePullJob %s (image %s) was deleted while the run was in progress", want.Name, image)
			}
		default:
			job, err = r.kruise.AppsV1alpha1().ImagePullJobs(run.Namespace).Create(ctx, want, metav1.CreateOptions{})
			if apierrors.IsAlreadyExists(err) {
				job, err = r.kruise.AppsV1alpha1().ImagePullJobs(run.Namespace).Get(ctx, want.Name, metav1.GetOptions{})
			} else if apierrors.IsNotFound(err) {
				// The resource is gone since the informer started: say why.
				return nil, r.notServed()
			} else if err != nil {
				return nil, refusedCreate(err)
			}
		}
		if err != nil {
			return nil, err
		}
		if !metav1.IsControlledBy(job, run) {
			return nil, failed(v1alpha1.ReasonImagePullJobConflict, "ImagePullJob %s already exists and is not controlled by this CustomRun", want.Name)
		}
		jobs = append(jobs, job)
	}
	return jobs, nil
}

// handOnTTL gives spec.ttlSecondsAfterFinished to the jobs of an attempt
// that has ended. Given at their creation, Kruise would delete a job that
// completed while the run's other jobs still pulled, and the run would take
// it for deleted by someone else.
func (r *Reconciler) handOnTTL(ctx context.Context, spec *v1alpha1.ImagePrePullSpec, jobs []*kruisev1alpha1.ImagePullJob) error {
	if spec.TTLSecondsAfterFinished == nil {
		return nil
	}
	patch := fmt.Appendf(nil, `{"spec":{"completionPolicy":{"ttlSecondsAfterFinished":%d}}}`, *spec.TTLSecondsAfterFinished)
	for _, job := range jobs {
		if ttl := job.Spec.CompletionPolicy.TTLSecondsAfterFinished; ttl != nil && *ttl == *spec.TTLSecondsAfterFinished {
			continue
		}
		_, err := r.kruise.AppsV1alpha1().ImagePullJobs(job.Namespace).Patch(ctx, job.Name, types.MergePatchType, patch, metav1.PatchOptions{})
		if err != nil && !apierrors.IsNotFound(err) {
			return fmt.Errorf("setting ttlSecondsAfterFinished on ImagePullJob %s/%s: %w", job.Namespace, job.Name, err)
		}
	}
	return nil
}

// attemptJobs are the jobs of the run's current attempt, by name.
func (r *Reconciler) attemptJobs(ctx context.Context, run *v1beta1.CustomRun) ([]*kruisev1alpha1.ImagePullJob, error) {
	jobs, err := r.listJobs(ctx, run.Namespace, labels.Set{LabelCustomRun: run.Name, LabelAttempt: strconv.Itoa(attempt(run))})
	if err != nil {
		return nil, err
	}
	jobs = slices.DeleteFunc(jobs, func(job *kruisev1alpha1.ImagePullJob) bool { return !metav1.IsControlledBy(job, run) })
	slices.SortFunc(jobs, func(a, b *kruisev1alpha1.ImagePullJob) int { return strings.Compare(a.Name, b.Name) })
	return jobs, nil
}

// deleteJobs deletes the run's jobs (of one attempt, or of all when attempt
// is negative). Kruise releases its deletion-protection finalizer on them.
func (r *Reconciler) deleteJobs(ctx context.Context, run *v1beta1.CustomRun, attempt int) error {
	sel := labels.Set{LabelCustomRun: run.Name}
	if attempt >= 0 {
		sel[LabelAttempt] = strconv.Itoa(attempt)
	}
	return r.deleteJobsOf(ctx, run.Namespace, sel, func(job *kruisev1alpha1.ImagePullJob) bool {
		return metav1.IsControlledBy(job, run)
	})
}

// listJobs lists the jobs sel matches from the informer's cache, or, while
// the informer has not synced, from the API server: a run that is
// cancelled or times out must end even if the informer never syncs (its
// list refused after an RBAC edit, say).
func (r *Reconciler) listJobs(ctx context.Context, namespace string, sel labels.Set) ([]*kruisev1alpha1.ImagePullJob, error) {
	jobs, err := r.jobs.Labelled(ctx, namespace, sel[LabelCustomRun])
	switch {
	case err == nil:
		selector := labels.SelectorFromSet(sel)
		return slices.DeleteFunc(jobs, func(job *kruisev1alpha1.ImagePullJob) bool { return !selector.Matches(labels.Set(job.Labels)) }), nil
	case !kruise.IsStarting(err):
		return nil, err
	}
	list, err := r.kruise.AppsV1alpha1().ImagePullJobs(namespace).List(ctx, metav1.ListOptions{LabelSelector: labels.SelectorFromSet(sel).String()})
	if err != nil {
		return nil, &unlistedError{err}
	}
	jobs = make([]*kruisev1alpha1.ImagePullJob, len(list.Items))
	for i := range list.Items {
		jobs[i] = &list.Items[i]
	}
	return jobs, nil
}

// unlistedError says the jobs could be read neither from the informer,
// which has not synced, nor from the API server.
type unlistedError struct{ err error }

func (e *unlistedError) Error() string {
	return "its ImagePullJobs could not be listed (the informer has not synced, and the API server answered: " + e.err.Error() + ")"
}

// deleteToStop deletes the jobs of a run that stops (of one attempt, or of
// all when attempt is negative). Where they cannot be listed, it deletes
// those the attempt recorded, by name, and returns what the run's message
// should say of it: the run ends all the same.
func (r *Reconciler) deleteToStop(ctx context.Context, run *v1beta1.CustomRun, attempt int, extra *extraFields) (string, error) {
	err := r.deleteJobs(ctx, run, attempt)
	var unlisted *unlistedError
	if !errors.As(err, &unlisted) {
		return "", err
	}
	for _, name := range extra.ImagePullJobs {
		err := r.kruise.AppsV1alpha1().ImagePullJobs(run.Namespace).Delete(ctx, name, metav1.DeleteOptions{})
		if err != nil && !apierrors.IsNotFound(err) {
			return "", fmt.Errorf("deleting ImagePullJob %s/%s: %w", run.Namespace, name, err)
		}
	}
	return fmt.Sprintf("; %s: deleted the %d this attempt recorded, by name; any other goes with the CustomRun (ownerReferences)",
		unlisted.Error(), len(extra.ImagePullJobs)), nil
}

// ObserveDeletion deletes the jobs of a CustomRun that is gone, at once:
// their ownerReferences let Kubernetes' garbage collector do the same, but
// later, and only where one runs.
func (r *Reconciler) ObserveDeletion(ctx context.Context, key types.NamespacedName) error {
	return r.deleteJobsOf(ctx, key.Namespace, labels.Set{LabelCustomRun: key.Name}, func(job *kruisev1alpha1.ImagePullJob) bool {
		owner := metav1.GetControllerOf(job)
		return owner != nil && owner.Kind == pipeline.CustomRunControllerName && owner.Name == key.Name
	})
}

func (r *Reconciler) deleteJobsOf(ctx context.Context, namespace string, sel labels.Set, owned func(*kruisev1alpha1.ImagePullJob) bool) error {
	jobs, err := r.listJobs(ctx, namespace, sel)
	switch {
	case errors.Is(err, kruise.ErrNotInstalled), errors.As(err, new(*kruise.UnsupportedVersionError)):
		// None can exist, or none can be reached through v1alpha1: the
		// garbage collector deletes them through their ownerReferences.
		return nil
	case err != nil:
		// Discovery failed (an unsteady API server), or the jobs cannot be
		// listed: they may well exist, so the run must not end before they
		// are deleted (deleteToStop).
		return err
	}
	for _, job := range jobs {
		if !owned(job) || job.DeletionTimestamp != nil {
			continue
		}
		err := r.kruise.AppsV1alpha1().ImagePullJobs(namespace).Delete(ctx, job.Name, metav1.DeleteOptions{
			Preconditions: &metav1.Preconditions{UID: &job.UID},
		})
		if err != nil && !apierrors.IsNotFound(err) && !apierrors.IsConflict(err) {
			return fmt.Errorf("deleting ImagePullJob %s/%s: %w", namespace, job.Name, err)
		}
	}
	return nil
}

// notServed explains a NotFound from creating an ImagePullJob: the resource
// is gone since the informer started.
func (r *Reconciler) notServed() error {
	err := kruise.Served(r.kruise)
	if err == nil {
		return errors.New("creating an ImagePullJob: the API server answered NotFound, though it serves them")
	}
	return notServedFailure(err)
}

// notServedFailure fails the run when ImagePullJobs are not served in
// v1alpha1 (not installed, or served in other versions only); other errors
// pass, to be retried.
func notServedFailure(err error) error {
	switch {
	case errors.Is(err, kruise.ErrNotInstalled):
		return failed(v1alpha1.ReasonKruiseNotInstalled, "%s", err.Error())
	case errors.As(err, new(*kruise.UnsupportedVersionError)):
		return failed(v1alpha1.ReasonKruiseVersionUnsupported, "%s", err.Error())
	}
	return err
}

// refusedCreate fails the run for an answer to creating its job that
// another try will not change, with what to do about it; other errors (an
// unreachable webhook, a timeout, a conflict) pass, to be retried. A
// NotFound (ImagePullJobs not served) is notServed's to explain.
func refusedCreate(err error) error {
	msg := err.Error()
	switch {
	case kruise.IsFeatureGateRefusal(err):
		return failed(v1alpha1.ReasonKruiseFeatureGateDisabled, "OpenKruise refused the ImagePullJob (%s): start kruise-manager "+
			"with --feature-gates=ImagePullJobGate=true (Helm: --set featureGates=ImagePullJobGate=true)", msg)
	case apierrors.IsForbidden(err):
		return failed(v1alpha1.ReasonImagePullJobForbidden, "the controller may not create ImagePullJobs here (%s): "+
			"apply the ClusterRole in config/ again", msg)
	case apierrors.IsBadRequest(err) || apierrors.IsInvalid(err):
		return failed(v1alpha1.ReasonImagePullJobRejected, "OpenKruise rejected the ImagePullJob: %s", msg)
	}
	return err
}

// requeueBefore is how long to wait before checking the run's timeout again.
func (r *Reconciler) requeueBefore(run *v1beta1.CustomRun) time.Duration {
	if run.GetTimeout() <= 0 {
		return 0
	}
	return max(run.GetTimeout()-r.clock.Since(run.Status.StartTime.Time), time.Second)
}
