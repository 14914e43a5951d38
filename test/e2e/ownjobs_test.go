//go:build e2e

package e2e

import (
	"context"
	"testing"
	"time"

	kruisev1alpha1 "github.com/openkruise/kruise-api/apps/v1alpha1"
	"github.com/tektoncd/pipeline/pkg/apis/pipeline/v1beta1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"knative.dev/pkg/kmeta"

	"github.com/imageprepull/imageprepull/pkg/apis/custom/v1alpha1"
	"github.com/imageprepull/imageprepull/pkg/reconciler/imageprepull"
)

// Job names are predictable: a job made in advance under the name of a
// run's next attempt, of another image onto another node, with the run as
// its controller, does not turn the run's failing pull into a success. The
// run fails ImagePullJobConflict, saying what differs, and the job is left
// as it is (not deleted, not handed the run's TTL).
func TestAJobMadeAheadDoesNotMakeAFailingRunSucceed(t *testing.T) {
	ns := namespace(t)
	ctx := context.Background()
	failing := "registry.local/app:missing-ahead" // fails on every node
	run, err := c.Tekton.TektonV1beta1().CustomRuns(ns).Create(ctx, &v1beta1.CustomRun{
		ObjectMeta: metav1.ObjectMeta{Name: "victim"},
		Spec: v1beta1.CustomRunSpec{
			CustomRef: &v1beta1.TaskRef{APIVersion: v1alpha1.APIVersion, Kind: v1alpha1.Kind},
			Retries:   1,
			Params: v1beta1.Params{
				{Name: "image", Value: *v1beta1.NewStructuredValues(failing)},
				{Name: "nodeNames", Value: v1beta1.ParamValue{Type: v1beta1.ParamTypeArray, ArrayVal: []string{"web-a1"}}},
				{Name: "backoffLimit", Value: *v1beta1.NewStructuredValues("0")},
			},
		},
	}, metav1.CreateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	ahead := &kruisev1alpha1.ImagePullJob{
		ObjectMeta: metav1.ObjectMeta{
			Name:            imageprepull.JobName(run.Name, run.UID, failing, 1),
			Labels:          map[string]string{imageprepull.LabelManagedBy: imageprepull.ManagedBy, imageprepull.LabelCustomRun: run.Name, imageprepull.LabelAttempt: "1"},
			OwnerReferences: []metav1.OwnerReference{*kmeta.NewControllerRef(run)},
		},
		Spec: kruisev1alpha1.ImagePullJobSpec{
			Image: "registry.local/app:v1", // pulls everywhere
			ImagePullJobTemplate: kruisev1alpha1.ImagePullJobTemplate{
				Selector:         &kruisev1alpha1.ImagePullJobNodeSelector{Names: []string{"web-a2"}},
				CompletionPolicy: kruisev1alpha1.CompletionPolicy{Type: kruisev1alpha1.Always},
			},
		},
	}
	if ahead, err = c.Kruise.AppsV1alpha1().ImagePullJobs(ns).Create(ctx, ahead, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	done := waitCustomRun(t, ns, "victim", 3*time.Minute, "done", func(r *v1beta1.CustomRun) bool { return r.IsDone() })
	if cond(done).Reason != v1alpha1.ReasonImagePullJobConflict.String() {
		t.Fatalf("the run ended %s (%s), want %s", cond(done).Reason, cond(done).Message, v1alpha1.ReasonImagePullJobConflict)
	}
	contains(t, "message", cond(done).Message, ahead.Name, "it pulls registry.local/app:v1, which attempt 1 of the run does not", "it is left as it is")
	if len(done.Status.RetriesStatus) != 1 || cond(&v1beta1.CustomRun{Status: done.Status.RetriesStatus[0]}).Reason != v1alpha1.ReasonThresholdNotMet.String() {
		t.Errorf("attempts %+v, want the first ended ThresholdNotMet", done.Status.RetriesStatus)
	}
	left, err := c.Kruise.AppsV1alpha1().ImagePullJobs(ns).Get(ctx, ahead.Name, metav1.GetOptions{})
	if err != nil || left.UID != ahead.UID || left.Spec.CompletionPolicy.TTLSecondsAfterFinished != nil {
		t.Errorf("the job made ahead: %v, %+v; want it left as it was", err, left)
	}
}
