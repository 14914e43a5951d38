//go:build e2e

package e2e

import (
	"context"
	"strings"
	"testing"
	"time"

	kruisev1alpha1 "github.com/openkruise/kruise-api/apps/v1alpha1"
	corev1 "k8s.io/api/core/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/wait"
	"k8s.io/utils/ptr"
)

// An OpenKruise CloneSet's pods are made by Kruise's manager; with no
// scheduler here, the test places them as a scheduler would, through the
// pods/binding subresource. nodes: running then pulls onto exactly those
// nodes, found through the CloneSet's own selector.
func TestWorkloadCloneSetRunningNodes(t *testing.T) {
	ctx := context.Background()
	ns := namespace(t)
	labels := map[string]string{"app": "shop"}
	cs := &kruisev1alpha1.CloneSet{
		ObjectMeta: metav1.ObjectMeta{Name: "shop", Namespace: ns},
		Spec: kruisev1alpha1.CloneSetSpec{
			Replicas: ptr.To[int32](2),
			Selector: &metav1.LabelSelector{MatchLabels: labels},
			Template: corev1.PodTemplateSpec{
				ObjectMeta: metav1.ObjectMeta{Labels: labels},
				Spec:       corev1.PodSpec{Containers: []corev1.Container{{Name: "shop", Image: "registry.local/shop:v1"}}},
			},
		},
	}
	if _, err := c.Kruise.AppsV1alpha1().CloneSets(ns).Create(ctx, cs, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	var pods []corev1.Pod
	err := wait.PollUntilContextTimeout(ctx, 200*time.Millisecond, time.Minute, true, func(ctx context.Context) (bool, error) {
		l, err := c.Kube.CoreV1().Pods(ns).List(ctx, metav1.ListOptions{LabelSelector: "app=shop"})
		if err != nil {
			return false, nil
		}
		pods = l.Items
		return len(pods) == 2, nil
	})
	if err != nil {
		t.Fatalf("Kruise made %d pods for the CloneSet: %v", len(pods), err)
	}
	for i, node := range []string{"web-a2", "batch-b1"} {
		if err := c.Kube.CoreV1().Pods(ns).Bind(ctx, &corev1.Binding{
			ObjectMeta: metav1.ObjectMeta{Name: pods[i].Name},
			Target:     corev1.ObjectReference{Kind: "Node", Name: node},
		}, metav1.CreateOptions{}); err != nil {
			t.Fatal(err)
		}
	}
	// The run's ServiceAccount may read the CloneSet, as the controller checks.
	role := &rbacv1.Role{ObjectMeta: metav1.ObjectMeta{Name: "read-shop"}, Rules: []rbacv1.PolicyRule{{
		APIGroups: []string{"apps.kruise.io"}, Resources: []string{"clonesets"}, ResourceNames: []string{"shop"}, Verbs: []string{"get"},
	}}}
	if _, err := c.Kube.RbacV1().Roles(ns).Create(ctx, role, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	binding := &rbacv1.RoleBinding{ObjectMeta: metav1.ObjectMeta{Name: "read-shop"},
		RoleRef:  rbacv1.RoleRef{APIGroup: rbacv1.GroupName, Kind: "Role", Name: "read-shop"},
		Subjects: []rbacv1.Subject{{Kind: rbacv1.ServiceAccountKind, Name: "default", Namespace: ns}}}
	if _, err := c.Kube.RbacV1().RoleBindings(ns).Create(ctx, binding, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}

	create(t, ns, pipelineRun("pr", `
      - name: prepull
        taskRef: {apiVersion: custom.kruise.dev/v1alpha1, kind: ImagePrePull}
        params:
          - {name: workload, value: cloneset.apps.kruise.io/shop}
          - {name: workloadImages, value: "true"}
`))
	waitPipelineRun(t, ns, "pr", prTimeout)
	run := customRuns(t, ns, "pr")["prepull"]
	if !cond(run).IsTrue() {
		t.Fatalf("CustomRun %+v", cond(run))
	}
	jobs, err := c.Kruise.AppsV1alpha1().ImagePullJobs(ns).List(ctx, metav1.ListOptions{})
	if err != nil || len(jobs.Items) != 1 {
		t.Fatalf("jobs %v, %v", jobs, err)
	}
	job := jobs.Items[0]
	if job.Spec.Image != "registry.local/shop:v1" || job.Spec.Selector == nil || strings.Join(job.Spec.Selector.Names, ",") != "batch-b1,web-a2" {
		t.Errorf("job pulls %s onto %+v, want registry.local/shop:v1 onto batch-b1,web-a2", job.Spec.Image, job.Spec.Selector)
	}
	contains(t, "message", cond(run).Message, "2/2 nodes have registry.local/shop:v1")
}
