//go:build e2e

package e2e

import (
	"context"
	"testing"
	"time"

	"github.com/tektoncd/pipeline/pkg/apis/pipeline/v1beta1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/wait"
)

// Kubernetes' garbage collector deletes what the controller made through
// the ownerReferences it set, as config/ ships it (blockOwnerDeletion on the
// jobs, checked by the OwnerReferencesPermissionEnforcement admission
// plugin): a deleted PipelineRun takes its CustomRun and the run's
// ImagePullJobs; a deleted CustomRun takes its jobs. The controller is
// stopped meanwhile, so that nothing but the garbage collector deletes them
// (the controller deletes a deleted run's jobs itself, at once).
func TestGarbageCollectorDeletesWhatTheControllerOwns(t *testing.T) {
	ctx := context.Background()
	ns := namespace(t)
	// slow-: the jobs are still pulling, with OpenKruise's deletion
	// protection finalizer on them.
	create(t, ns, pipelineRun("pr", `
      - name: prepull
        taskRef: {apiVersion: custom.kruise.dev/v1alpha1, kind: ImagePrePull}
        params: [{name: image, value: "registry.local/slow-app:gc-1"}, {name: nodeNames, value: [web-a1]}]
`))
	if _, err := c.Tekton.TektonV1beta1().CustomRuns(ns).Create(ctx, &v1beta1.CustomRun{
		ObjectMeta: metav1.ObjectMeta{Name: "run"},
		Spec: v1beta1.CustomRunSpec{
			CustomRef: &v1beta1.TaskRef{APIVersion: "custom.kruise.dev/v1alpha1", Kind: "ImagePrePull"},
			Params: v1beta1.Params{{Name: "image", Value: *v1beta1.NewStructuredValues("registry.local/slow-app:gc-2")},
				{Name: "nodeNames", Value: v1beta1.ParamValue{Type: v1beta1.ParamTypeArray, ArrayVal: []string{"web-a2"}}}},
		},
	}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	waitJobs(t, ns, 2)
	prRun := customRuns(t, ns, "pr")["prepull"]

	c.Controllers.KillAll()
	t.Cleanup(func() {
		if err := c.Controllers.Restart(ctx); err != nil {
			t.Error(err)
		}
	})
	if err := c.Tekton.TektonV1().PipelineRuns(ns).Delete(ctx, "pr", metav1.DeleteOptions{}); err != nil {
		t.Fatal(err)
	}
	if err := c.Tekton.TektonV1beta1().CustomRuns(ns).Delete(ctx, "run", metav1.DeleteOptions{}); err != nil {
		t.Fatal(err)
	}
	err := wait.PollUntilContextTimeout(ctx, 200*time.Millisecond, 2*time.Minute, true, func(ctx context.Context) (bool, error) {
		_, err := c.Tekton.TektonV1beta1().CustomRuns(ns).Get(ctx, prRun.Name, metav1.GetOptions{})
		return apierrors.IsNotFound(err) && len(jobs(t, ns)) == 0, nil
	})
	if err != nil {
		t.Fatalf("the garbage collector left the PipelineRun's CustomRun or %d ImagePullJobs: %v", len(jobs(t, ns)), err)
	}
}
