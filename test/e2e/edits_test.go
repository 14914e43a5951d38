//go:build e2e

package e2e

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/tektoncd/pipeline/pkg/apis/pipeline/v1beta1"
	rbacv1 "k8s.io/api/rbac/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/wait"

	"github.com/imageprepull/imageprepull/pkg/apis/custom/v1alpha1"
)

// A user with the namespace's edit role (Tekton aggregates CustomRuns into
// it) edits a running run's image to one the platform's policy refuses, as
// issue #24 found it done: the run pulls only what it was authorized for,
// and says the edit was ignored.
func TestEditedRunPullsOnlyWhatWasAuthorized(t *testing.T) {
	ns := namespace(t)
	ctx := context.Background()
	setPolicy(t, map[string]string{"allowed-images": "registry.local/shop/**"})
	waitPolicy(t, ns, "registry.local/other/app:v1", v1alpha1.ReasonImageNotAllowed.String())
	// The namespace's edit role: Kubernetes' edit with Tekton's share,
	// which kube-controller-manager's aggregation would fold into it.
	for _, role := range []string{"edit", "tekton-aggregate-edit"} {
		if _, err := c.Kube.RbacV1().RoleBindings(ns).Create(ctx, &rbacv1.RoleBinding{
			ObjectMeta: metav1.ObjectMeta{Name: "dev-" + role},
			RoleRef:    rbacv1.RoleRef{APIGroup: rbacv1.GroupName, Kind: "ClusterRole", Name: role},
			Subjects:   []rbacv1.Subject{{Kind: rbacv1.UserKind, APIGroup: rbacv1.GroupName, Name: "dev"}},
		}, metav1.CreateOptions{}); err != nil {
			t.Fatal(err)
		}
	}
	// slow-: the simulated node pulls it for an hour, so the run is still
	// running when the user edits it.
	if _, err := kubectlStdin(`apiVersion: tekton.dev/v1beta1
kind: CustomRun
metadata: {name: run}
spec:
  customRef: {apiVersion: custom.kruise.dev/v1alpha1, kind: ImagePrePull}
  params:
  - {name: image, value: registry.local/shop/slow-app:v1}
  - {name: nodeNames, value: [web-a1]}
`, "--as=dev", "create", "-n", ns, "-f", "-"); err != nil {
		t.Fatal(err)
	}
	waitJobs(t, ns, 1)
	if _, err := c.Kubectl(ctx, "--as=dev", "-n", ns, "patch", "customrun", "run", "--type=json",
		"-p", `[{"op":"replace","path":"/spec/params/0/value","value":"registry.local/evil/miner:v1"}]`); err != nil {
		t.Fatalf("the edit role could not edit the run's params (what #24 is about): %v", err)
	}
	run := waitCustomRun(t, ns, "run", time.Minute, "the edit told", func(r *v1beta1.CustomRun) bool {
		return strings.Contains(cond(r).Message, "edited after its start")
	})
	if run.IsDone() {
		t.Fatalf("the run ended: %+v", cond(run))
	}
	waitEvent(t, ns, "run", "EditIgnored", "the run keeps the images, nodes, pull Secrets and ServiceAccount it was authorized for")
	for _, j := range jobs(t, ns) {
		if j.Spec.Image != "registry.local/shop/slow-app:v1" {
			t.Errorf("ImagePullJob %s pulls %s after the edit", j.Name, j.Spec.Image)
		}
	}
	if n := len(jobs(t, ns)); n != 1 {
		t.Errorf("%d ImagePullJobs after the edit, want the authorized one", n)
	}
	// Cancelled, the run leaves nothing behind.
	if _, err := c.Kubectl(ctx, "-n", ns, "patch", "customrun", "run", "--type=merge", "-p", `{"spec":{"status":"RunCancelled"}}`); err != nil {
		t.Fatal(err)
	}
	waitCustomRun(t, ns, "run", time.Minute, "cancelled", func(r *v1beta1.CustomRun) bool { return r.IsDone() })
	waitJobs(t, ns, 0)
}

// Each attempt is authorized again before its jobs: once the binding of
// the run's ServiceAccount is removed (and the 30 s the controller keeps an
// allowed decision have passed), the retry fails ServiceAccountNotAuthorized
// and creates no job.
func TestRetryAfterTheBindingIsRemovedFails(t *testing.T) {
	ns := namespace(t)
	ctx := context.Background()
	if err := c.AllowPrePulls(ctx, ns, "builder"); err != nil {
		t.Fatal(err)
	}
	_, err := c.Tekton.TektonV1beta1().CustomRuns(ns).Create(ctx, &v1beta1.CustomRun{
		ObjectMeta: metav1.ObjectMeta{Name: "run"},
		Spec: v1beta1.CustomRunSpec{
			CustomRef:          &v1beta1.TaskRef{APIVersion: "custom.kruise.dev/v1alpha1", Kind: "ImagePrePull"},
			ServiceAccountName: "builder",
			Retries:            1,
			// Past the allowed decision's 30 s: the retry asks again.
			Timeout: &metav1.Duration{Duration: 40 * time.Second},
			Params: v1beta1.Params{
				{Name: "image", Value: *v1beta1.NewStructuredValues("registry.local/slow-app:revoked")},
				{Name: "nodeNames", Value: v1beta1.ParamValue{Type: v1beta1.ParamTypeArray, ArrayVal: []string{"web-a1"}}},
			},
		},
	}, metav1.CreateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	waitJobs(t, ns, 1)
	if err := c.Kube.RbacV1().RoleBindings(ns).Delete(ctx, "imageprepull-runner-builder", metav1.DeleteOptions{}); err != nil {
		t.Fatal(err)
	}
	run := waitCustomRun(t, ns, "run", 2*time.Minute, "done", func(r *v1beta1.CustomRun) bool { return r.IsDone() })
	if c := cond(run); c.Reason != v1alpha1.ReasonNotAuthorized.String() || len(run.Status.RetriesStatus) != 1 ||
		run.Status.RetriesStatus[0].GetCondition("Succeeded").Reason != v1beta1.CustomRunReasonTimedOut.String() {
		t.Fatalf("CustomRun %+v, retriesStatus %+v: want the first attempt TimedOut, then ServiceAccountNotAuthorized", c, run.Status.RetriesStatus)
	}
	contains(t, "message", cond(run).Message, "ServiceAccount "+ns+"/builder may not pre-pull in namespace "+ns)
	// The first attempt's job went with its timeout; the retry made none.
	for _, j := range jobs(t, ns) {
		t.Errorf("ImagePullJob %s (attempt %s) left", j.Name, j.Labels["custom.kruise.dev/attempt"])
	}
}

// ttlSecondsAfterFinished: 0 on a run of two images: OpenKruise deletes
// the jobs once the run is done with them, never while it follows them
// (issue #25: a job that finished first was taken for deleted by someone
// else).
func TestTTLJobsGoOnceTheRunEnds(t *testing.T) {
	ns := namespace(t)
	create(t, ns, pipelineRun("pr", `
      - name: prepull
        taskSpec:
          apiVersion: custom.kruise.dev/v1alpha1
          kind: ImagePrePull
          spec: {ttlSecondsAfterFinished: 0}
        params:
        - {name: images, value: ["registry.local/app:ttl-1", "registry.local/app:ttl-2"]}
        - {name: nodeSelector, value: "node-type=web"}
`))
	pr := waitPipelineRun(t, ns, "pr", prTimeout)
	run := customRuns(t, ns, "pr")["prepull"]
	if !pr.Status.GetCondition("Succeeded").IsTrue() || !cond(run).IsTrue() {
		t.Fatalf("PipelineRun %+v, CustomRun %+v", pr.Status.GetCondition("Succeeded"), cond(run))
	}
	if got := result(run, v1alpha1.ResultImagePullJobs); len(strings.Split(got, ",")) != 2 {
		t.Errorf("imagePullJobs %q, want two", got)
	}
	waitJobs(t, ns, 0)
}

// waitEvent waits for an Event of reason on the named object whose message
// holds want.
func waitEvent(t *testing.T, ns, name, reason, want string) {
	t.Helper()
	err := wait.PollUntilContextTimeout(context.Background(), 200*time.Millisecond, time.Minute, true, func(ctx context.Context) (bool, error) {
		events, err := c.Kube.CoreV1().Events(ns).List(ctx, metav1.ListOptions{FieldSelector: "involvedObject.name=" + name + ",reason=" + reason})
		if err != nil {
			return false, nil
		}
		for _, e := range events.Items {
			if strings.Contains(e.Message, want) {
				return true, nil
			}
		}
		return false, nil
	})
	if err != nil {
		t.Fatalf("no %s Event on %s/%s holding %q: %v", reason, ns, name, want, err)
	}
}
