package imageprepull

import (
	"testing"

	kruisev1alpha1 "github.com/openkruise/kruise-api/apps/v1alpha1"
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
			tc.send(jobEvents(func(any) { enqueued = true }))
			if enqueued != tc.want {
				t.Errorf("enqueued = %v, want %v", enqueued, tc.want)
			}
		})
	}
}
