package imageprepull

import (
	"testing"

	kruisev1alpha1 "github.com/openkruise/kruise-api/apps/v1alpha1"
	"github.com/tektoncd/pipeline/pkg/apis/pipeline/v1beta1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/tools/cache"
)

func TestJobEventsEnqueueWhatIsNews(t *testing.T) {
	fresh := &kruisev1alpha1.ImagePullJob{ObjectMeta: metav1.ObjectMeta{Name: "j", ResourceVersion: "1"}}
	started := fresh.DeepCopy()
	started.ResourceVersion = "2"
	started.Status = kruisev1alpha1.ImagePullJobStatus{Desired: 2, StartTime: &metav1.Time{Time: t0}}
	relabelled := started.DeepCopy()
	relabelled.ResourceVersion = "3"
	relabelled.Labels = map[string]string{"team": "ci"}
	done := started.DeepCopy()
	done.ResourceVersion = "4"
	done.Status.Succeeded = 2
	done.Status.CompletionTime = &metav1.Time{Time: t0}

	for _, tc := range []struct {
		name string
		send func(cache.ResourceEventHandler)
		want bool
	}{
		{"a job just created, no status yet", func(h cache.ResourceEventHandler) { h.OnAdd(fresh, false) }, false},
		{"a job Kruise reported on, first seen (a restart)", func(h cache.ResourceEventHandler) { h.OnAdd(done, true) }, true},
		{"Kruise started the job", func(h cache.ResourceEventHandler) { h.OnUpdate(fresh, started) }, true},
		{"Kruise finished the job", func(h cache.ResourceEventHandler) { h.OnUpdate(started, done) }, true},
		{"a label changed, the status did not", func(h cache.ResourceEventHandler) { h.OnUpdate(started, relabelled) }, false},
		{"a resync", func(h cache.ResourceEventHandler) { h.OnUpdate(done, done) }, false},
		{"the job was deleted", func(h cache.ResourceEventHandler) { h.OnDelete(started) }, true},
		{"the job was deleted while the watch was down", func(h cache.ResourceEventHandler) {
			h.OnDelete(cache.DeletedFinalStateUnknown{Key: "ci/j", Obj: fresh})
		}, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			enqueued := false
			tc.send(jobEvents(func(any) { enqueued = true }, nil))
			if enqueued != tc.want {
				t.Errorf("enqueued = %v, want %v", enqueued, tc.want)
			}
		})
	}
}

// A run is reconciled for everything but a write of its status alone: the
// controller's own status writes would each come back as a reconcile with
// nothing to do.
func TestRunEventsSkipStatusWritesOnly(t *testing.T) {
	before := &v1beta1.CustomRun{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "run", ResourceVersion: "1", Generation: 1,
		Labels: map[string]string{"tekton.dev/pipelineRun": "pr"}}}
	edit := func(f func(*v1beta1.CustomRun)) *v1beta1.CustomRun {
		r := before.DeepCopy()
		r.ResourceVersion = "2"
		f(r)
		return r
	}
	for _, tc := range []struct {
		name  string
		after *v1beta1.CustomRun
		want  int
	}{
		{"a status write", edit(func(r *v1beta1.CustomRun) { r.Status.MarkCustomRunRunning("Running", "0/2 nodes") }), 0},
		{"a cancel (the spec moved)", edit(func(r *v1beta1.CustomRun) {
			r.Generation, r.Spec.Status = 2, v1beta1.CustomRunSpecStatusCancelled
		}), 1},
		{"a resync", before.DeepCopy(), 1},
		{"a label", edit(func(r *v1beta1.CustomRun) { r.Labels["team"] = "a" }), 1},
		{"an annotation", edit(func(r *v1beta1.CustomRun) { r.Annotations = map[string]string{"a": "b"} }), 1},
		{"a finalizer", edit(func(r *v1beta1.CustomRun) { r.Finalizers = []string{"example.dev/keep"} }), 1},
		{"a deletion started", edit(func(r *v1beta1.CustomRun) { r.DeletionTimestamp = &metav1.Time{} }), 1},
		{"an owner", edit(func(r *v1beta1.CustomRun) { r.OwnerReferences = []metav1.OwnerReference{{Name: "pr"}} }), 1},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got := 0
			runEvents(func(any) { got++ }).OnUpdate(before, tc.after)
			if got != tc.want {
				t.Errorf("enqueued %d times, want %d", got, tc.want)
			}
		})
	}
	got := 0
	h := runEvents(func(any) { got++ })
	h.OnAdd(before, false)
	h.OnDelete(before)
	if got != 2 {
		t.Errorf("a creation and a deletion enqueued %d times, want 2", got)
	}
}
