//go:build e2e

package e2e

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/tektoncd/pipeline/pkg/apis/pipeline/v1beta1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/apimachinery/pkg/util/wait"
)

// waitJobs waits until ns holds n ImagePullJobs.
func waitJobs(t *testing.T, ns string, n int) {
	t.Helper()
	err := wait.PollUntilContextTimeout(context.Background(), 100*time.Millisecond, time.Minute, true, func(context.Context) (bool, error) {
		return len(jobs(t, ns)) == n, nil
	})
	if err != nil {
		t.Fatalf("%d ImagePullJobs in %s, want %d", len(jobs(t, ns)), ns, n)
	}
}

func TestPipelineRunCancelled(t *testing.T) {
	ns := namespace(t)
	create(t, ns, pipelineRun("pr", `
      - name: prepull
        taskRef: {apiVersion: custom.kruise.dev/v1alpha1, kind: ImagePrePull}
        params: [{name: image, value: "registry.local/slow-app:v1"}]
`))
	waitJobs(t, ns, 1)
	if _, err := c.Tekton.TektonV1().PipelineRuns(ns).Patch(context.Background(), "pr", types.MergePatchType,
		[]byte(`{"spec":{"status":"Cancelled"}}`), metav1.PatchOptions{}); err != nil {
		t.Fatal(err)
	}
	pr := waitPipelineRun(t, ns, "pr", prTimeout)
	if c := pr.Status.GetCondition("Succeeded"); c.IsTrue() || c.Reason != "Cancelled" {
		t.Errorf("PipelineRun %+v, want Cancelled", c)
	}
	// Tekton marks the PipelineRun cancelled once it asked the CustomRun to
	// stop, without waiting for it: wait for the CustomRun itself.
	run := waitCustomRun(t, ns, "pr-prepull", time.Minute, "cancelled", func(r *v1beta1.CustomRun) bool { return r.IsDone() })
	if c := cond(run); c.Reason != v1beta1.CustomRunReasonCancelled.String() || c.Message != string(v1beta1.CustomRunCancelledByPipelineMsg) {
		t.Errorf("CustomRun %+v", c)
	}
	waitJobs(t, ns, 0)
}

func TestPipelineRunTimeout(t *testing.T) {
	ns := namespace(t)
	create(t, ns, strings.Replace(pipelineRun("pr", `
      - name: prepull
        taskRef: {apiVersion: custom.kruise.dev/v1alpha1, kind: ImagePrePull}
        params: [{name: image, value: "registry.local/slow-app:v2"}]
`), "pipeline: 10m", "pipeline: 8s", 1))
	waitJobs(t, ns, 1)
	pr := waitPipelineRun(t, ns, "pr", prTimeout)
	if c := pr.Status.GetCondition("Succeeded"); c.IsTrue() || c.Reason != "PipelineRunTimeout" {
		t.Errorf("PipelineRun %+v, want PipelineRunTimeout", c)
	}
	run := waitCustomRun(t, ns, customRuns(t, ns, "pr")["prepull"].Name, time.Minute, "cancelled", func(r *v1beta1.CustomRun) bool { return r.IsDone() })
	if c := cond(run); c.Reason != v1beta1.CustomRunReasonCancelled.String() || c.Message != string(v1beta1.CustomRunCancelledByPipelineTimeoutMsg) {
		t.Errorf("CustomRun %+v", c)
	}
	waitJobs(t, ns, 0)
}

func TestCustomRunTimeoutRetries(t *testing.T) {
	ns := namespace(t)
	create(t, ns, pipelineRun("pr", `
      - name: prepull
        retries: 1
        timeout: 6s
        taskRef: {apiVersion: custom.kruise.dev/v1alpha1, kind: ImagePrePull}
        params: [{name: image, value: "registry.local/slow-app:v3"}, {name: pullTimeoutSeconds, value: "1"}]
`))
	pr := waitPipelineRun(t, ns, "pr", prTimeout)
	if pr.Status.GetCondition("Succeeded").IsTrue() {
		t.Fatalf("PipelineRun %+v", pr.Status.GetCondition("Succeeded"))
	}
	run := customRuns(t, ns, "pr")["prepull"]
	if c := cond(run); c.Reason != v1beta1.CustomRunReasonTimedOut.String() || len(run.Status.RetriesStatus) != 1 ||
		run.Status.RetriesStatus[0].GetCondition("Succeeded").Reason != v1beta1.CustomRunReasonTimedOut.String() {
		t.Errorf("CustomRun %+v, retriesStatus %+v", c, run.Status.RetriesStatus)
	}
	waitJobs(t, ns, 0)
}

// The CustomRuns of every custom task come through one informer: a start or
// a failover of this controller must leave the other tasks' runs alone.
func TestOtherCustomTasksRunsAreLeftAlone(t *testing.T) {
	ctx := context.Background()
	ns := namespace(t)
	other := &v1beta1.CustomRun{
		ObjectMeta: metav1.ObjectMeta{Name: "wait", Namespace: ns},
		Spec: v1beta1.CustomRunSpec{
			CustomRef: &v1beta1.TaskRef{APIVersion: "wait.testing.tekton.dev/v1beta1", Kind: "Wait"},
			Params:    v1beta1.Params{{Name: "duration", Value: *v1beta1.NewStructuredValues("1s")}},
		},
	}
	if _, err := c.Tekton.TektonV1beta1().CustomRuns(ns).Create(ctx, other, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	// A new process leads every key at once, and a leader takes up what it
	// leads before it can finish any run: by the time this one succeeded,
	// the other run was taken up too, or left out.
	if err := c.Controllers.Restart(ctx); err != nil {
		t.Fatal(err)
	}
	if run := prepullOnce(t, ns, "registry.local/app:neighbour"); !run.IsSuccessful() {
		t.Fatalf("our run: %+v", cond(run))
	}
	got, err := c.Tekton.TektonV1beta1().CustomRuns(ns).Get(ctx, "wait", metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if len(got.Status.Conditions) > 0 || got.Status.StartTime != nil {
		t.Errorf("the Wait task's run was changed by this controller: %+v", got.Status)
	}
}
