package imageprepull

import (
	"testing"

	"github.com/tektoncd/pipeline/pkg/apis/pipeline/v1beta1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

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
