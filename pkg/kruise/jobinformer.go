// Package kruise holds what the controller needs from OpenKruise: its
// injected client, and an ImagePullJob informer that starts only once the
// API server serves ImagePullJobs and keeps of each job what the controller
// reads (Shrink).
package kruise

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"

	kruiseappsv1alpha1 "github.com/openkruise/kruise-api/apps/v1alpha1"
	kruiseclient "github.com/openkruise/kruise-api/client/clientset/versioned"
	kruiseinformers "github.com/openkruise/kruise-api/client/informers/externalversions"
	kruiselisters "github.com/openkruise/kruise-api/client/listers/apps/v1alpha1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/tools/cache"
	"knative.dev/pkg/controller"
	"knative.dev/pkg/logging"
)

// ErrNotInstalled says the API server does not serve ImagePullJobs.
var ErrNotInstalled = errors.New("the API server does not serve imagepulljobs.apps.kruise.io/v1alpha1: " +
	"install OpenKruise (its CRDs and manager) with the ImagePullJobGate feature gate enabled")

// errStarting says the informer is syncing; the caller should try again shortly.
var errStarting = errors.New("the ImagePullJob informer is still syncing")

// IsStarting reports whether err only means "try again in a moment".
func IsStarting(err error) bool { return errors.Is(err, errStarting) }

// JobInformer is an ImagePullJob informer that does not exist until Kruise
// does. Knative's sharedmain waits for every injected informer to sync before
// it starts any controller, so an injected informer on a missing CRD would
// stop the controller from ever reconciling a CustomRun.
type JobInformer struct {
	client     kruiseclient.Interface
	selector   string
	indexLabel string
	handler    cache.ResourceEventHandler
	stop       <-chan struct{}

	mu      sync.Mutex
	started bool
	synced  cache.InformerSynced
	lister  kruiselisters.ImagePullJobLister
	indexer cache.Indexer
}

// NewJobInformer watches the ImagePullJobs that labelSelector matches and
// hands their events to handler, from the first call to Start or Lister that
// finds Kruise installed until ctx ends. Jobs are indexed by their namespace
// and the value of indexLabel (none if empty), for Labelled.
func NewJobInformer(ctx context.Context, client kruiseclient.Interface, labelSelector, indexLabel string, handler cache.ResourceEventHandler) *JobInformer {
	return &JobInformer{client: client, selector: labelSelector, indexLabel: indexLabel, handler: handler, stop: ctx.Done()}
}

// byLabel is the name of the index over indexLabel.
const byLabel = "namespace/label"

// Labelled returns the jobs of namespace whose indexLabel is value, from the
// synced informer's index, or Lister's error. A lister's List over a
// namespace's jobs matches a selector against every one of them, once per
// lookup: with many runs in one namespace, each run's reconcile would then
// cost as much as all of them (docs/benchmarks.md measured it).
func (j *JobInformer) Labelled(ctx context.Context, namespace, value string) ([]*kruiseappsv1alpha1.ImagePullJob, error) {
	if _, err := j.Lister(ctx); err != nil {
		return nil, err
	}
	objs, err := j.indexer.ByIndex(byLabel, namespace+"/"+value)
	if err != nil {
		return nil, err
	}
	jobs := make([]*kruiseappsv1alpha1.ImagePullJob, 0, len(objs))
	for _, obj := range objs {
		jobs = append(jobs, obj.(*kruiseappsv1alpha1.ImagePullJob))
	}
	return jobs, nil
}

// Start starts the informer now if Kruise is installed, so that the first
// run does not wait for it. Kruise being absent is not an error here.
func (j *JobInformer) Start(ctx context.Context) {
	if _, err := j.Lister(ctx); err != nil && !IsStarting(err) {
		logging.FromContext(ctx).Infow("ImagePullJob informer not started yet", "reason", err)
	}
}

// Lister returns the synced lister. Until then it returns ErrNotInstalled
// when the API server does not serve ImagePullJobs, an error for which
// IsStarting is true while the informer syncs, or the discovery error.
func (j *JobInformer) Lister(ctx context.Context) (kruiselisters.ImagePullJobLister, error) {
	j.mu.Lock()
	defer j.mu.Unlock()
	if j.started {
		if !j.synced() {
			return nil, errStarting
		}
		return j.lister, nil
	}
	if err := Served(j.client); err != nil {
		return nil, err
	}
	factory := kruiseinformers.NewSharedInformerFactoryWithOptions(j.client, controller.GetResyncPeriod(ctx),
		kruiseinformers.WithTweakListOptions(func(o *metav1.ListOptions) { o.LabelSelector = j.selector }))
	informer := factory.Apps().V1alpha1().ImagePullJobs()
	if j.indexLabel != "" {
		err := informer.Informer().AddIndexers(cache.Indexers{byLabel: func(obj any) ([]string, error) {
			job, ok := obj.(*kruiseappsv1alpha1.ImagePullJob)
			if !ok {
				return nil, nil
			}
			if v, ok := job.Labels[j.indexLabel]; ok {
				return []string{job.Namespace + "/" + v}, nil
			}
			return nil, nil
		}})
		if err != nil {
			return nil, fmt.Errorf("indexing ImagePullJobs by %s: %w", j.indexLabel, err)
		}
	}
	if err := informer.Informer().SetTransform(shrinkTransform); err != nil {
		return nil, fmt.Errorf("setting the ImagePullJob informer's transform: %w", err)
	}
	if _, err := informer.Informer().AddEventHandler(j.handler); err != nil {
		return nil, fmt.Errorf("adding the ImagePullJob event handler: %w", err)
	}
	factory.Start(j.stop)
	j.started, j.synced, j.lister = true, informer.Informer().HasSynced, informer.Lister()
	j.indexer = informer.Informer().GetIndexer()
	logging.FromContext(ctx).Info("OpenKruise ImagePullJobs are served: ImagePullJob informer started")
	return nil, errStarting
}

// UnsupportedVersionError says the API server serves ImagePullJobs, but not
// in apps.kruise.io/v1alpha1, the version this controller talks.
type UnsupportedVersionError struct {
	// Served are the apps.kruise.io versions that serve ImagePullJobs.
	Served []string
}

func (e *UnsupportedVersionError) Error() string {
	return fmt.Sprintf("the API server serves imagepulljobs.apps.kruise.io in %s only, not in v1alpha1, "+
		"which this controller uses (OpenKruise v1.8 and v1.9 serve both): run an OpenKruise release that "+
		"serves v1alpha1, or a version of this controller that supports %s",
		strings.Join(e.Served, ", "), strings.Join(e.Served, ", "))
}

// Served returns nil when the API server serves ImagePullJobs in
// apps.kruise.io/v1alpha1, an *UnsupportedVersionError when it serves them
// in other versions only, ErrNotInstalled when not at all, and any other
// discovery error as it is.
func Served(client kruiseclient.Interface) error {
	gv := kruiseappsv1alpha1.SchemeGroupVersion.String()
	served, err := servesImagePullJobs(client, gv)
	if err != nil || served {
		return err
	}
	groups, err := client.Discovery().ServerGroups()
	if err != nil {
		return fmt.Errorf("asking the API server which versions of %s it serves: %w", kruiseappsv1alpha1.SchemeGroupVersion.Group, err)
	}
	var others []string
	for _, g := range groups.Groups {
		if g.Name != kruiseappsv1alpha1.SchemeGroupVersion.Group {
			continue
		}
		for _, v := range g.Versions {
			if ok, err := servesImagePullJobs(client, v.GroupVersion); err != nil {
				return err
			} else if ok {
				others = append(others, v.Version)
			}
		}
	}
	if len(others) > 0 {
		return &UnsupportedVersionError{Served: others}
	}
	return ErrNotInstalled
}

func servesImagePullJobs(client kruiseclient.Interface, gv string) (bool, error) {
	list, err := client.Discovery().ServerResourcesForGroupVersion(gv)
	if apierrors.IsNotFound(err) {
		return false, nil
	}
	if err != nil {
		return false, fmt.Errorf("asking the API server whether it serves %s: %w", gv, err)
	}
	for _, r := range list.APIResources {
		if r.Name == "imagepulljobs" {
			return true, nil
		}
	}
	return false, nil
}
