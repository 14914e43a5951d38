package imageprepull

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"

	kruisev1alpha1 "github.com/openkruise/kruise-api/apps/v1alpha1"
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
	imagepkg "github.com/imageprepull/imageprepull/pkg/image"
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

// JobName is the name of a run's job of an image for an attempt. It is
// deterministic, so that a retried reconcile or a restarted
// controller finds the job it created instead of making a second one. The
// hash covers the run's UID as well as the image: a CustomRun deleted and
// created again under the same name must not pick up the old run's jobs.
func JobName(runName string, runUID types.UID, image string, attempt int) string {
	sum := sha256.Sum256([]byte(string(runUID) + "\n" + image))
	suffix := "-" + hex.EncodeToString(sum[:])[:8] + "-" + strconv.Itoa(attempt)
	prefix := strings.ReplaceAll(runName, ".", "-")
	if max := 63 - len(suffix); len(prefix) > max {
		prefix = prefix[:max]
	}
	return strings.TrimRight(prefix, "-") + suffix
}

// ourLabels are the labels that say which run and attempt a job is of.
func ourLabels(runName string, attempt int) map[string]string {
	return map[string]string{LabelManagedBy: ManagedBy, LabelCustomRun: runName, LabelAttempt: strconv.Itoa(attempt)}
}

// newJob builds the ImagePullJob for one image of a run's attempt, as the
// run's time left now allows. TTL is handed on once the run's end is
// stored (finish). An image given with a digest is pulled by its tag (all
// kruise-daemon can pull) with imagePullPolicy Always, so that a node that
// has another image under the tag pulls again; checkPulls then reads what
// each node has.
func (r *Reconciler) newJob(run *v1beta1.CustomRun, spec *v1alpha1.ImagePrePullSpec, ref imagepkg.Ref, attempt int) *kruisev1alpha1.ImagePullJob {
	policy := kruisev1alpha1.ImagePullPolicy(spec.ImagePullPolicy)
	if ref.Digest() != "" {
		policy = kruisev1alpha1.PullAlways
	}
	lbls := ourLabels(run.Name, attempt)
	for _, k := range copiedLabels {
		if v, ok := run.Labels[k]; ok {
			lbls[k] = v
		}
	}
	left := r.secondsLeft(run)
	job := &kruisev1alpha1.ImagePullJob{
		ObjectMeta: metav1.ObjectMeta{
			Name:            JobName(run.Name, run.UID, ref.String(), attempt),
			Namespace:       run.Namespace,
			Labels:          lbls,
			OwnerReferences: []metav1.OwnerReference{*kmeta.NewControllerRef(run)},
		},
		Spec: kruisev1alpha1.ImagePullJobSpec{
			Image: ref.Pulled(),
			ImagePullJobTemplate: kruisev1alpha1.ImagePullJobTemplate{
				PullSecrets: spec.PullSecrets,
				Parallelism: ptr.To(intstr.FromInt32(*spec.Parallelism)),
				PullPolicy: &kruisev1alpha1.PullPolicy{
					TimeoutSeconds: pullTimeout(*spec.PullTimeoutSeconds, left),
					BackoffLimit:   spec.BackoffLimit,
				},
				CompletionPolicy: kruisev1alpha1.CompletionPolicy{
					Type:                  kruisev1alpha1.Always,
					ActiveDeadlineSeconds: jobDeadline(left),
				},
				ImagePullPolicy: policy,
			},
		},
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

// attemptOf is the attempt a job's label says it belongs to, -1 when it
// says none.
func attemptOf(job *kruisev1alpha1.ImagePullJob) int {
	n, err := strconv.Atoi(job.Labels[LabelAttempt])
	if err != nil || n < 0 {
		return -1
	}
	return n
}

// attemptJobs are the jobs labelled as one attempt's of the run (every
// attempt's when attempt is negative), sorted by name, whoever made them:
// callers keep the run's own (notOurs, ensure.go).
func (r *Reconciler) attemptJobs(ctx context.Context, run *v1beta1.CustomRun, attempt int) ([]*kruisev1alpha1.ImagePullJob, error) {
	sel := labels.Set{LabelCustomRun: run.Name}
	if attempt >= 0 {
		sel[LabelAttempt] = strconv.Itoa(attempt)
	}
	jobs, err := r.listJobs(ctx, run.Namespace, sel)
	if err != nil {
		return nil, err
	}
	slices.SortFunc(jobs, func(a, b *kruisev1alpha1.ImagePullJob) int { return strings.Compare(a.Name, b.Name) })
	return jobs, nil
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
		jobs[i] = kruise.Shrink(&list.Items[i])
	}
	return jobs, nil
}

// unlistedError says the jobs could be read neither from the informer,
// which has not synced, nor from the API server.
type unlistedError struct{ err error }

func (e *unlistedError) Error() string {
	return "its ImagePullJobs could not be listed (the informer has not synced, and the API server answered: " + e.err.Error() + ")"
}

// deleteJobs deletes the run's own jobs (of one attempt, or of all when
// attempt is negative): a job under its name that it did not make is left
// as it is. Kruise releases its deletion-protection finalizer on them.
func (r *Reconciler) deleteJobs(ctx context.Context, a *attempt, attempt int) error {
	jobs, err := r.attemptJobs(ctx, a.run, attempt)
	if err != nil {
		return err
	}
	return r.deleteEach(ctx, a.run.Namespace, slices.DeleteFunc(jobs, func(job *kruisev1alpha1.ImagePullJob) bool {
		return r.notOurs(a, job) != ""
	}))
}

// deleteToStop deletes the jobs of a run that stops (of one attempt, or of
// all when attempt is negative). Where they cannot be listed, it reads the
// attempt's jobs one by one by their names, deletes those that are the
// run's own, and returns what the run's message should say of it: the run
// ends all the same.
func (r *Reconciler) deleteToStop(ctx context.Context, a *attempt, attempt int) (string, error) {
	err := r.deleteJobs(ctx, a, attempt)
	var unlisted *unlistedError
	switch {
	case errors.Is(err, kruise.ErrNotInstalled), errors.As(err, new(*kruise.UnsupportedVersionError)):
		// None can exist, or none can be reached through v1alpha1: the
		// garbage collector deletes them through their ownerReferences.
		return "", nil
	case !errors.As(err, &unlisted):
		// Discovery failed (an unsteady API server): the jobs may well
		// exist, so the run must not end before they are deleted.
		return "", err
	}
	number := max(attempt, a.number())
	var named []*kruisev1alpha1.ImagePullJob
	for _, image := range a.spec.Images {
		name := JobName(a.run.Name, a.run.UID, image, number)
		job, err := r.kruise.AppsV1alpha1().ImagePullJobs(a.run.Namespace).Get(ctx, name, metav1.GetOptions{})
		switch {
		case apierrors.IsNotFound(err):
		case err != nil:
			return "", fmt.Errorf("reading ImagePullJob %s/%s: %w", a.run.Namespace, name, err)
		case r.notOurs(a, kruise.Shrink(job)) == "":
			named = append(named, job)
		}
	}
	if err := r.deleteEach(ctx, a.run.Namespace, named); err != nil {
		return "", err
	}
	return fmt.Sprintf("; %s: deleted the %d of this attempt found by name; any other goes with the CustomRun (ownerReferences)",
		unlisted.Error(), len(named)), nil
}

func (r *Reconciler) deleteEach(ctx context.Context, namespace string, jobs []*kruisev1alpha1.ImagePullJob) error {
	for _, job := range jobs {
		if job.DeletionTimestamp != nil {
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

// ObserveDeletion deletes the jobs of a CustomRun that is gone, at once:
// their ownerReferences let Kubernetes' garbage collector do the same, but
// later. The run's pin went with it, so a job is not compared with what the
// run made; only a job the collector deletes anyway is deleted (it bears our
// labels, and its one owner is the gone run): this only makes it sooner.
func (r *Reconciler) ObserveDeletion(ctx context.Context, key types.NamespacedName) error {
	jobs, err := r.listJobs(ctx, key.Namespace, labels.Set{LabelCustomRun: key.Name, LabelManagedBy: ManagedBy})
	switch {
	case errors.Is(err, kruise.ErrNotInstalled), errors.As(err, new(*kruise.UnsupportedVersionError)):
		return nil
	case err != nil:
		return err
	}
	return r.deleteEach(ctx, key.Namespace, slices.DeleteFunc(jobs, func(job *kruisev1alpha1.ImagePullJob) bool {
		if len(job.OwnerReferences) != 1 {
			return true
		}
		owner := job.OwnerReferences[0]
		return owner.Controller == nil || !*owner.Controller || owner.Kind != pipeline.CustomRunControllerName || owner.Name != key.Name
	}))
}
