package imageprepull

import (
	"sort"
	"testing"

	"github.com/google/go-cmp/cmp"
	kruisev1alpha1 "github.com/openkruise/kruise-api/apps/v1alpha1"
	"github.com/tektoncd/pipeline/pkg/apis/pipeline/v1beta1"
	customruninformer "github.com/tektoncd/pipeline/pkg/client/injection/informers/pipeline/v1beta1/customrun/fake"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/tools/cache"
	"k8s.io/utils/clock"
	"knative.dev/pkg/configmap"
	"knative.dev/pkg/kmeta"
	kreconciler "knative.dev/pkg/reconciler"
	rtesting "knative.dev/pkg/reconciler/testing"

	"github.com/imageprepull/imageprepull/pkg/apis/custom/v1alpha1"
	"github.com/imageprepull/imageprepull/pkg/config"
)

// Whatever enqueues it, a run of another custom task is left as it is.
func TestAnotherCustomTasksRunIsLeftAlone(t *testing.T) {
	e := newEnv(t)
	run := newRun("theirs", str("image", app), func(r *v1beta1.CustomRun) {
		r.Spec.CustomRef = &v1beta1.TaskRef{APIVersion: "example.dev/v1", Kind: "Wait"}
	})
	if event := e.r.ReconcileKind(e.ctx, run); event != nil {
		t.Errorf("event %v", event)
	}
	if run.Status.StartTime != nil || len(run.Status.Conditions) != 0 || len(e.jobList()) != 0 {
		t.Errorf("another task's run was touched: %+v", run.Status)
	}
}

// policyWatcher serves the policy ConfigMap with no keys, as config/ ships it.
func policyWatcher() configmap.Watcher {
	return configmap.NewStaticWatcher(&corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Name: config.PolicyConfigName}})
}

// A controller that becomes leader (at every start, and at failover) must
// take up its own runs only: the CustomRuns of other custom tasks share the
// informer, and reconciling them would fail them.
func TestNewLeaderTakesUpOnlyItsRuns(t *testing.T) {
	ctx, _ := rtesting.SetupFakeContext(t)
	impl := NewController(Options{}, clock.RealClock{})(ctx, policyWatcher())
	runs := customruninformer.Get(ctx).Informer().GetIndexer()
	for _, run := range []*v1beta1.CustomRun{
		{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "by-ref"},
			Spec: v1beta1.CustomRunSpec{CustomRef: &v1beta1.TaskRef{APIVersion: v1alpha1.APIVersion, Kind: v1alpha1.Kind}}},
		{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "embedded"},
			Spec: v1beta1.CustomRunSpec{CustomSpec: &v1beta1.EmbeddedCustomRunSpec{
				TypeMeta: runtime.TypeMeta{APIVersion: v1alpha1.APIVersion, Kind: v1alpha1.Kind}}}},
		{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "a-wait-task"},
			Spec: v1beta1.CustomRunSpec{CustomRef: &v1beta1.TaskRef{APIVersion: "wait.testing.tekton.dev/v1beta1", Kind: "Wait"}}},
		{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "same-kind-other-group"},
			Spec: v1beta1.CustomRunSpec{CustomRef: &v1beta1.TaskRef{APIVersion: "example.dev/v1", Kind: v1alpha1.Kind}}},
	} {
		if err := runs.Add(run); err != nil {
			t.Fatal(err)
		}
	}

	var got []string
	leader := impl.Reconciler.(kreconciler.LeaderAware)
	if err := leader.Promote(kreconciler.UniversalBucket(), func(_ kreconciler.Bucket, key types.NamespacedName) {
		got = append(got, key.Name)
	}); err != nil {
		t.Fatal(err)
	}
	sort.Strings(got)
	if diff := cmp.Diff([]string{"by-ref", "embedded"}, got); diff != "" {
		t.Errorf("runs enqueued on promotion (-want +got):\n%s", diff)
	}
}

// A deletion the watch missed reaches the handlers as a tombstone
// (cache.DeletedFinalStateUnknown). It must still enqueue the run: for a
// deleted run that is what calls ObserveDeletion, which deletes its jobs; for
// a deleted job, what fails the run that lost it.
func TestTombstonesAreEnqueued(t *testing.T) {
	ctx, _ := rtesting.SetupFakeContext(t)
	impl := NewController(Options{}, clock.RealClock{})(ctx, policyWatcher())
	run := &v1beta1.CustomRun{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "run", UID: "uid-run"},
		Spec: v1beta1.CustomRunSpec{CustomRef: &v1beta1.TaskRef{APIVersion: v1alpha1.APIVersion, Kind: v1alpha1.Kind}}}
	other := &v1beta1.CustomRun{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "a-wait-task"},
		Spec: v1beta1.CustomRunSpec{CustomRef: &v1beta1.TaskRef{APIVersion: "wait.testing.tekton.dev/v1beta1", Kind: "Wait"}}}
	job := &kruisev1alpha1.ImagePullJob{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "run-0123abcd-0",
		OwnerReferences: []metav1.OwnerReference{*kmeta.NewControllerRef(run)}}}
	if err := customruninformer.Get(ctx).Informer().GetIndexer().Add(run); err != nil {
		t.Fatal(err)
	}
	sentinel := types.NamespacedName{Namespace: ns, Name: "sentinel"}
	tombstone := func(obj metav1.Object) cache.DeletedFinalStateUnknown {
		return cache.DeletedFinalStateUnknown{Key: obj.GetNamespace() + "/" + obj.GetName(), Obj: obj}
	}

	for _, tc := range []struct {
		name    string
		handler cache.ResourceEventHandler
		deleted any
		want    int
	}{
		{"our run", runEventHandler(impl), tombstone(run), 1},
		{"another custom task's run", runEventHandler(impl), tombstone(other), 0},
		{"our run's job", jobEventHandler(impl, customruninformer.Get(ctx).Lister(), nil), tombstone(job), 1},
	} {
		t.Run(tc.name, func(t *testing.T) {
			tc.handler.OnDelete(tc.deleted)
			// Knative's queue hands keys from its lanes to its consumers on
			// a goroutine, in order: the keys before this one are what the
			// handler enqueued.
			impl.EnqueueKey(sentinel)
			got := 0
			for {
				key, _ := impl.WorkQueue().Get()
				impl.WorkQueue().Done(key)
				impl.WorkQueue().Forget(key)
				if key == sentinel {
					break
				}
				got++
				if key.(types.NamespacedName) != (types.NamespacedName{Namespace: ns, Name: "run"}) {
					t.Errorf("enqueued %v, want %s/run", key, ns)
				}
			}
			if got != tc.want {
				t.Errorf("%d keys enqueued, want %d", got, tc.want)
			}
		})
	}
}
