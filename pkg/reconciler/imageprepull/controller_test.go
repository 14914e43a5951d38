package imageprepull

import (
	"sort"
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/tektoncd/pipeline/pkg/apis/pipeline/v1beta1"
	customruninformer "github.com/tektoncd/pipeline/pkg/client/injection/informers/pipeline/v1beta1/customrun/fake"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/types"
	"knative.dev/pkg/configmap"
	kreconciler "knative.dev/pkg/reconciler"
	rtesting "knative.dev/pkg/reconciler/testing"

	"github.com/openkruise/imageprepull/pkg/apis/custom/v1alpha1"
)

// A controller that becomes leader (at every start, and at failover) must
// take up its own runs only: the CustomRuns of other custom tasks share the
// informer, and reconciling them would fail them.
func TestNewLeaderTakesUpOnlyItsRuns(t *testing.T) {
	ctx, _ := rtesting.SetupFakeContext(t)
	impl := NewController(ctx, configmap.NewStaticWatcher())
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
