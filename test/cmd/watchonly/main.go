// Command watchonly is a custom-task controller that does nothing: it
// watches what the imageprepull controller watches, through the same
// libraries and the same wiring (Knative's sharedmain, Tekton's cluster-wide
// CustomRun informer and FilterCustomRunRef, the ImagePullJob informer over
// the jobs the controller labels, FilterOwnerCustomRunRef, a workqueue), and
// its reconcile returns at once. The bench runs it beside the controller:
// its CPU is the floor of what any custom task built this way pays for the
// same runs (decoding every CustomRun write of the cluster and every event
// of its jobs), the part of the controller's cost that is not its own work.
package main

import (
	"context"

	customruninformer "github.com/tektoncd/pipeline/pkg/client/injection/informers/pipeline/v1beta1/customrun"
	tkncontroller "github.com/tektoncd/pipeline/pkg/controller"
	"k8s.io/client-go/tools/cache"
	"knative.dev/pkg/configmap"
	"knative.dev/pkg/controller"
	"knative.dev/pkg/injection"
	"knative.dev/pkg/injection/sharedmain"
	"knative.dev/pkg/logging"
	"knative.dev/pkg/reconciler"
	"knative.dev/pkg/signals"

	"github.com/imageprepull/imageprepull/pkg/apis/custom/v1alpha1"
	"github.com/imageprepull/imageprepull/pkg/kruise"
	kruiseclient "github.com/imageprepull/imageprepull/pkg/kruise/client"
	"github.com/imageprepull/imageprepull/pkg/reconciler/imageprepull"
)

// name is its component name: its own leases and logs, apart from the
// controller's.
const name = "imageprepull-watch-only"

func main() {
	cfg := injection.ParseAndGetRESTConfigOrDie()
	ctx := sharedmain.WithHealthProbesDisabled(signals.NewContext())
	sharedmain.MainWithConfig(ctx, name, cfg, newController)
}

func newController(ctx context.Context, _ configmap.Watcher) *controller.Impl {
	runs := customruninformer.Get(ctx)
	impl := controller.NewContext(ctx, &nothing{}, controller.ControllerOptions{WorkQueueName: "WatchOnly", Logger: logging.FromContext(ctx)})
	ours := tkncontroller.FilterCustomRunRef(v1alpha1.APIVersion, v1alpha1.Kind)
	if _, err := runs.Informer().AddEventHandler(cache.FilteringResourceEventHandler{FilterFunc: ours, Handler: controller.HandleAll(impl.Enqueue)}); err != nil {
		logging.FromContext(ctx).Fatalw("Adding the CustomRun event handler", "error", err)
	}
	jobs := kruise.NewJobInformer(ctx, kruiseclient.Get(ctx), imageprepull.ManagedBySelector, "", cache.FilteringResourceEventHandler{
		FilterFunc: tkncontroller.FilterOwnerCustomRunRef(runs.Lister(), v1alpha1.APIVersion, v1alpha1.Kind),
		Handler:    controller.HandleAll(impl.EnqueueControllerOf),
	})
	jobs.Start(ctx)
	return impl
}

// nothing is the reconciler that does nothing. It is leader-aware, as
// sharedmain requires of every reconciler when leader election is on (it
// is in config/); as ours, it leads the buckets it wins.
type nothing struct{ reconciler.LeaderAwareFuncs }

func (*nothing) Reconcile(context.Context, string) error { return nil }
