// Package kruise holds what the controller needs from OpenKruise: its
// injected client, and an ImagePullJob informer that starts only once the
// API server serves ImagePullJobs.
package kruise

import (
	"context"
	"errors"
	"fmt"
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
	client   kruiseclient.Interface
	selector string
	handler  cache.ResourceEventHandler
	stop     <-chan struct{}

	mu      sync.Mutex
	started bool
	synced  cache.InformerSynced
	lister  kruiselisters.ImagePullJobLister
}

// NewJobInformer watches the ImagePullJobs that labelSelector matches and
// hands their events to handler, from the first call to Start or Lister that
// finds Kruise installed until ctx ends.
func NewJobInformer(ctx context.Context, client kruiseclient.Interface, labelSelector string, handler cache.ResourceEventHandler) *JobInformer {
	return &JobInformer{client: client, selector: labelSelector, handler: handler, stop: ctx.Done()}
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
	if _, err := informer.Informer().AddEventHandler(j.handler); err != nil {
		return nil, fmt.Errorf("adding the ImagePullJob event handler: %w", err)
	}
	factory.Start(j.stop)
	j.started, j.synced, j.lister = true, informer.Informer().HasSynced, informer.Lister()
	logging.FromContext(ctx).Info("OpenKruise ImagePullJobs are served: ImagePullJob informer started")
	return nil, errStarting
}

// Served returns nil when the API server serves ImagePullJobs, ErrNotInstalled
// when it does not, and any other discovery error as it is.
func Served(client kruiseclient.Interface) error {
	gv := kruiseappsv1alpha1.SchemeGroupVersion.String()
	list, err := client.Discovery().ServerResourcesForGroupVersion(gv)
	if apierrors.IsNotFound(err) {
		return ErrNotInstalled
	}
	if err != nil {
		return fmt.Errorf("asking the API server whether it serves %s: %w", gv, err)
	}
	for _, r := range list.APIResources {
		if r.Name == "imagepulljobs" {
			return nil
		}
	}
	return ErrNotInstalled
}
