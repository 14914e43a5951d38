//go:build e2e

package e2e

import (
	"context"
	"os"
	"path/filepath"
	"testing"
	"time"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/wait"

	"github.com/imageprepull/imageprepull/test/cluster"
)

// `kubectl delete -f release.yaml` leaves what docs/upgrade.md says: the
// controller, its RBAC, its namespace and the ImagePrePull CRD go, with every
// ImagePrePull policy; CustomRuns stay (Tekton's), a run in flight stays
// Running with its ImagePullJob still pulling, a finished run keeps its job
// until the run is deleted (then the garbage collector deletes the job), and
// the RoleBindings admins made to imageprepull-runner stay, bound to nothing.
// Applying release.yaml again makes a working install.
func TestUninstallLeavesWhatTheDocsSay(t *testing.T) {
	ctx := context.Background()
	b, image := released.yaml, released.image
	if b == nil {
		release, err := c.Release(ctx, "v0.0.0-e2e.2", t.TempDir())
		if err != nil {
			t.Fatal(err)
		}
		image = releaseImage(t, release)
		if b, err = os.ReadFile(release); err != nil {
			t.Fatal(err)
		}
	}
	ns := namespace(t)
	done := prepullOnce(t, ns, "registry.local/app:before-uninstall")
	if !done.IsSuccessful() {
		t.Fatalf("run before the uninstall: %+v", cond(done))
	}
	create(t, ns, `apiVersion: custom.kruise.dev/v1alpha1
kind: ImagePrePull
metadata: {name: policy}
spec: {images: ["registry.local/app:policy"]}
`)
	create(t, ns, pipelineRun("inflight", `
      - name: prepull
        taskRef: {apiVersion: custom.kruise.dev/v1alpha1, kind: ImagePrePull}
        params: [{name: image, value: "registry.local/slow-uninstall:v1"}, {name: nodeNames, value: [web-a1]}]
`))
	waitJobs(t, ns, 2)

	// What a user does: the file alone.
	file := filepath.Join(t.TempDir(), "release.yaml")
	if err := os.WriteFile(file, b, 0o644); err != nil {
		t.Fatal(err)
	}
	if err := c.Uninstall(ctx, file); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := c.Reinstall(ctx, file, image); err != nil {
			t.Fatalf("installing again after the uninstall: %v", err)
		}
	})

	for what, get := range map[string]func() error{
		"namespace imageprepull": func() error {
			_, err := c.Kube.CoreV1().Namespaces().Get(ctx, cluster.Namespace, metav1.GetOptions{})
			return err
		},
		"ClusterRole imageprepull-controller": func() error {
			_, err := c.Kube.RbacV1().ClusterRoles().Get(ctx, "imageprepull-controller", metav1.GetOptions{})
			return err
		},
		"ClusterRole imageprepull-runner": func() error {
			_, err := c.Kube.RbacV1().ClusterRoles().Get(ctx, "imageprepull-runner", metav1.GetOptions{})
			return err
		},
	} {
		if err := get(); !apierrors.IsNotFound(err) {
			t.Errorf("%s after the uninstall: %v, want it gone", what, err)
		}
	}
	if out, err := c.Kubectl(ctx, "get", "crd", "imageprepulls.custom.kruise.dev"); err == nil {
		t.Errorf("the ImagePrePull CRD is still there, and with it the policies:\n%s", out)
	}
	if _, err := c.Kube.RbacV1().RoleBindings(ns).Get(ctx, "imageprepull-runner-default", metav1.GetOptions{}); err != nil {
		t.Errorf("the namespace's RoleBinding to imageprepull-runner: %v, want it left (bound to a ClusterRole that is gone)", err)
	}
	runs := customRuns(t, ns, "inflight")
	if r := runs["prepull"]; r == nil || r.IsDone() || !r.HasStarted() {
		t.Fatalf("the run in flight after the uninstall: %+v, want it still Running", r)
	}
	left := jobs(t, ns)
	if len(left) != 2 {
		t.Fatalf("%d ImagePullJobs after the uninstall, want the 2 of the runs", len(left))
	}
	for _, job := range left {
		if job.OwnerReferences[0].Name == runs["prepull"].Name && job.Status.CompletionTime != nil {
			t.Errorf("the run in flight's job %s completed; its pull was to go on", job.Name)
		}
	}

	// Deleting the runs deletes their jobs (the garbage collector, through
	// the ownerReferences), Kruise's finalizer released.
	if err := c.Tekton.TektonV1().PipelineRuns(ns).DeleteCollection(ctx, metav1.DeleteOptions{}, metav1.ListOptions{}); err != nil {
		t.Fatal(err)
	}
	err := wait.PollUntilContextTimeout(ctx, 200*time.Millisecond, time.Minute, true, func(context.Context) (bool, error) {
		return len(jobs(t, ns)) == 0, nil
	})
	if err != nil {
		t.Errorf("%d ImagePullJobs a minute after their runs were deleted, want none", len(jobs(t, ns)))
	}
}
