package imageprepull

import (
	"context"
	"time"

	tektonclient "github.com/tektoncd/pipeline/pkg/client/injection/client"
	customruninformer "github.com/tektoncd/pipeline/pkg/client/injection/informers/pipeline/v1beta1/customrun"
	customrunreconciler "github.com/tektoncd/pipeline/pkg/client/injection/reconciler/pipeline/v1beta1/customrun"
	tkncontroller "github.com/tektoncd/pipeline/pkg/controller"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/apimachinery/pkg/util/cache"
	"k8s.io/utils/clock"
	kubeclient "knative.dev/pkg/client/injection/kube/client"
	"knative.dev/pkg/configmap"
	"knative.dev/pkg/controller"
	"knative.dev/pkg/injection"
	"knative.dev/pkg/injection/clients/dynamicclient"
	"knative.dev/pkg/logging"
	kreconciler "knative.dev/pkg/reconciler"

	"github.com/imageprepull/imageprepull/pkg/apis/custom/v1alpha1"
	imageprepullinformer "github.com/imageprepull/imageprepull/pkg/client/injection/informers/custom/v1alpha1/imageprepull"
	"github.com/imageprepull/imageprepull/pkg/config"
	"github.com/imageprepull/imageprepull/pkg/kruise"
	kruiseclient "github.com/imageprepull/imageprepull/pkg/kruise/client"
	"github.com/imageprepull/imageprepull/pkg/registry"
)

// ControllerName names the controller in logs, events and leader election.
const ControllerName = "imageprepull-controller"

// DefaultProgressInterval is the least time between two progress writes of
// a running run's status (cmd/controller's -progress-interval): with
// hundreds of nodes reporting, each report would otherwise be a status
// write. The end of a run is written at once.
const DefaultProgressInterval = 5 * time.Second

// Options are what differs between the controller's production wiring and
// its tests, as Tekton's taskrun.NewController takes them.
type Options struct {
	// ProgressInterval: see DefaultProgressInterval; zero writes every change.
	ProgressInterval time.Duration
}

// Compile-time checks that the generated reconciler's interfaces hold, so
// that a signature drift fails the build rather than a run.
var (
	_ customrunreconciler.Interface   = (*Reconciler)(nil)
	_ kreconciler.OnDeletionInterface = (*Reconciler)(nil)
)

// NewController returns the constructor sharedmain calls: it wires the
// reconciler to CustomRuns of kind ImagePrePull and to the ImagePullJobs they own.
func NewController(opts Options, clk clock.PassiveClock) injection.ControllerConstructor {
	return func(ctx context.Context, cmw configmap.Watcher) *controller.Impl {
		impl, _ := newController(ctx, cmw, opts, clk)
		return impl
	}
}

// newController is NewController's constructor; it returns the reconciler
// too, for the tests to reach its informer.
func newController(ctx context.Context, cmw configmap.Watcher, opts Options, clk clock.PassiveClock) (*controller.Impl, *Reconciler) {
	customRuns := customruninformer.Get(ctx)
	r := &Reconciler{
		kube:          kubeclient.Get(ctx),
		kruise:        kruiseclient.Get(ctx),
		dynamic:       dynamicclient.Get(ctx),
		auth:          newAuthorizer(kubeclient.Get(ctx), clk),
		prePulls:      imageprepullinformer.Get(ctx).Lister(),
		deleted:       newDeletedJobs(clk),
		counts:        cache.NewLRUExpireCacheWithClock(1024, clk),
		resolver:      registry.NewResolver(1024),
		runs:          customRuns.Lister(),
		clock:         clk,
		progressEvery: opts.ProgressInterval,
	}
	ours := tkncontroller.FilterCustomRunRef(v1alpha1.APIVersion, v1alpha1.Kind)
	impl := customrunreconciler.NewImpl(ctx, r, func(*controller.Impl) controller.Options {
		policy := config.NewStore(logging.FromContext(ctx).Named("config-store"))
		policy.WatchConfigs(cmw)
		return controller.Options{
			AgentName:   ControllerName,
			ConfigStore: policy,
			// On becoming leader the generated reconciler enqueues every
			// CustomRun in the informer, whatever its kind: without this,
			// each start or failover would reconcile, and fail, the runs of
			// every other custom task in the cluster.
			PromoteFilterFunc: ours,
		}
	})

	customRuns.Informer().AddEventHandler(runEventHandler(impl))
	r.jobs = kruise.NewJobInformer(ctx, r.kruise, ManagedBySelector, LabelCustomRun, jobEventHandler(impl, customRuns.Lister(), r.deleted.record))
	r.jobs.Start(ctx)
	r.ends = &endWrites{tekton: tektonclient.Get(ctx), isLeader: impl.Reconciler.(leaderAware).IsLeaderFor}
	if m, err := newRunMetrics(customRuns.Lister(), r.jobs); err != nil {
		// The metrics are the operators', not the runs': a run goes on without them.
		logging.FromContext(ctx).Errorw("Metrics are not recorded", "error", err)
	} else {
		r.ends.seen = m.record
	}
	customRuns.Informer().AddEventHandler(r.ends.eventHandler())
	return impl, r
}

// leaderAware is what the generated reconciler's embedded
// reconciler.LeaderAwareFuncs tells of the keys this process leads.
type leaderAware interface {
	IsLeaderFor(types.NamespacedName) bool
}
