//go:build e2e

package e2e

import (
	"context"
	"fmt"
	"slices"
	"sort"
	"strings"
	"testing"
	"time"

	kruisev1alpha1 "github.com/openkruise/kruise-api/apps/v1alpha1"
	"github.com/tektoncd/pipeline/pkg/apis/pipeline/v1beta1"
	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/apimachinery/pkg/util/wait"
	"k8s.io/utils/ptr"

	"github.com/imageprepull/imageprepull/pkg/apis/custom/v1alpha1"
	"github.com/imageprepull/imageprepull/test/cluster"
)

// A StatefulSet's pods are made by kube-controller-manager's StatefulSet
// controller, an OpenKruise CloneSet's by Kruise's manager, and the
// scheduler binds them (one a node): nodes: running then pulls onto exactly
// the nodes the scheduler chose, found through the workload's own selector.
func TestWorkloadRunningNodesAreWhereTheSchedulerBoundItsPods(t *testing.T) {
	for _, tc := range []struct {
		ref, group, resource string
		create               func(ctx context.Context, ns string, replicas *int32, sel *metav1.LabelSelector, template corev1.PodTemplateSpec) error
	}{
		{"statefulset.apps/shop", "apps", "statefulsets", func(ctx context.Context, ns string, replicas *int32, sel *metav1.LabelSelector, template corev1.PodTemplateSpec) error {
			// Parallel: pods on nodes without a kubelet never become Ready,
			// which OrderedReady waits for before the next pod.
			_, err := c.Kube.AppsV1().StatefulSets(ns).Create(ctx, &appsv1.StatefulSet{ObjectMeta: metav1.ObjectMeta{Name: "shop"},
				Spec: appsv1.StatefulSetSpec{Replicas: replicas, Selector: sel, Template: template, ServiceName: "shop",
					PodManagementPolicy: appsv1.ParallelPodManagement}}, metav1.CreateOptions{})
			return err
		}},
		{"cloneset.apps.kruise.io/shop", "apps.kruise.io", "clonesets", func(ctx context.Context, ns string, replicas *int32, sel *metav1.LabelSelector, template corev1.PodTemplateSpec) error {
			_, err := c.Kruise.AppsV1alpha1().CloneSets(ns).Create(ctx, &kruisev1alpha1.CloneSet{ObjectMeta: metav1.ObjectMeta{Name: "shop"},
				Spec: kruisev1alpha1.CloneSetSpec{Replicas: replicas, Selector: sel, Template: template}}, metav1.CreateOptions{})
			return err
		}},
	} {
		t.Run(tc.resource, func(t *testing.T) {
			ctx := context.Background()
			ns := namespace(t)
			labels := map[string]string{"app": "shop"}
			template := corev1.PodTemplateSpec{ObjectMeta: metav1.ObjectMeta{Labels: labels}, Spec: corev1.PodSpec{
				Containers: []corev1.Container{{Name: "shop", Image: "registry.local/shop:v1"}},
				Affinity:   onePerNode(labels),
			}}
			if err := tc.create(ctx, ns, ptr.To[int32](2), &metav1.LabelSelector{MatchLabels: labels}, template); err != nil {
				t.Fatal(err)
			}
			bound := waitBound(t, ns, "app=shop", 2)
			// The run's ServiceAccount may read the workload, as the controller checks.
			if err := c.AllowServiceAccount(ctx, ns, "default", "read-shop", rbacv1.PolicyRule{
				APIGroups: []string{tc.group}, Resources: []string{tc.resource}, ResourceNames: []string{"shop"}, Verbs: []string{"get"},
			}); err != nil {
				t.Fatal(err)
			}

			create(t, ns, pipelineRun("pr", `
      - name: prepull
        taskRef: {apiVersion: custom.kruise.dev/v1alpha1, kind: ImagePrePull}
        params:
          - {name: workload, value: `+tc.ref+`}
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
			if job.Spec.Image != "registry.local/shop:v1" || job.Spec.Selector == nil || strings.Join(job.Spec.Selector.Names, ",") != strings.Join(bound, ",") {
				t.Errorf("job pulls %s onto %+v, want registry.local/shop:v1 onto %v, where the scheduler bound the pods", job.Spec.Image, job.Spec.Selector, bound)
			}
			contains(t, "message", cond(run).Message, "2/2 nodes have registry.local/shop:v1")
		})
	}
}

// Every workload kind is read for a run, through the controller's own RBAC,
// once the run's ServiceAccount may read it: a missing one of each kind
// fails WorkloadNotFound, naming it (OpenKruise's kinds are served here).
func TestEveryWorkloadKindIsRead(t *testing.T) {
	ctx := context.Background()
	ns := namespace(t)
	if err := c.AllowServiceAccount(ctx, ns, "default", "read-workloads",
		rbacv1.PolicyRule{APIGroups: []string{"apps"}, Resources: []string{"deployments", "statefulsets", "daemonsets"}, Verbs: []string{"get"}},
		rbacv1.PolicyRule{APIGroups: []string{"apps.kruise.io"}, Resources: []string{"clonesets", "statefulsets", "daemonsets"}, Verbs: []string{"get"}},
	); err != nil {
		t.Fatal(err)
	}
	refs := map[string]string{
		"deploy": "deployment/gone", "sts": "sts/gone", "ds": "ds/gone", "clone": "cloneset/gone",
		"asts": "statefulset.apps.kruise.io/gone", "ads": "daemonset.apps.kruise.io/gone",
	}
	var tasks strings.Builder
	for name, ref := range refs {
		fmt.Fprintf(&tasks, `
      - name: %s
        taskRef: {apiVersion: custom.kruise.dev/v1alpha1, kind: ImagePrePull}
        params: [{name: image, value: "registry.local/app:v1"}, {name: workload, value: "%s"}]
`, name, ref)
	}
	create(t, ns, pipelineRun("pr", tasks.String()))
	waitPipelineRun(t, ns, "pr", prTimeout)
	runs := customRuns(t, ns, "pr")
	for name, ref := range refs {
		run := runs[name]
		if run == nil {
			t.Errorf("no CustomRun for %s", ref)
			continue
		}
		want, _ := v1alpha1.ParseWorkload(ref)
		if cond(run).Reason != v1alpha1.ReasonWorkloadNotFound.String() || !strings.Contains(cond(run).Message, "workload "+want.String()+" not found") {
			t.Errorf("%s: %s %s", ref, cond(run).Reason, cond(run).Message)
		}
	}
}

// A workload's nodes reach Kruise as the job's selector.names, one list in
// one object, and are kept in the run's status: at the most names a run
// takes (v1alpha1.MaxNodeNames), each as long as a node name may be, both
// objects are still stored by this API server and etcd with their default
// request limits (etcd's 1.5 MiB).
func TestLargestWorkloadTargetIsStored(t *testing.T) {
	ctx := context.Background()
	ns := namespace(t)
	names := make([]string, v1alpha1.MaxNodeNames)
	for i := range names {
		n := fmt.Sprintf("node-%05d.", i)
		names[i] = n + strings.Repeat("x", 253-len(n))
	}
	job := &kruisev1alpha1.ImagePullJob{
		ObjectMeta: metav1.ObjectMeta{Name: "largest", Namespace: ns},
		Spec: kruisev1alpha1.ImagePullJobSpec{Image: "registry.local/app:largest", ImagePullJobTemplate: kruisev1alpha1.ImagePullJobTemplate{
			Selector:         &kruisev1alpha1.ImagePullJobNodeSelector{Names: names},
			CompletionPolicy: kruisev1alpha1.CompletionPolicy{Type: kruisev1alpha1.Always},
		}},
	}
	got, err := c.Kruise.AppsV1alpha1().ImagePullJobs(ns).Create(ctx, job, metav1.CreateOptions{})
	if err != nil {
		t.Fatalf("an ImagePullJob with %d node names of 253 characters: %v", len(names), err)
	}
	if len(got.Spec.Selector.Names) != len(names) {
		t.Errorf("stored %d names", len(got.Spec.Selector.Names))
	}
	if err := c.Kruise.AppsV1alpha1().ImagePullJobs(ns).Delete(ctx, "largest", metav1.DeleteOptions{}); err != nil {
		t.Error(err)
	}

	run := &v1beta1.CustomRun{ObjectMeta: metav1.ObjectMeta{Name: "largest", Namespace: ns},
		Spec: v1beta1.CustomRunSpec{CustomRef: &v1beta1.TaskRef{APIVersion: "example.dev/v1", Kind: "Nothing"}}}
	run, err = c.Tekton.TektonV1beta1().CustomRuns(ns).Create(ctx, run, metav1.CreateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if err := run.Status.EncodeExtraFields(map[string]any{"target": map[string]any{"workload": "deployment.apps/web", "nodes": names}}); err != nil {
		t.Fatal(err)
	}
	if _, err := c.Tekton.TektonV1beta1().CustomRuns(ns).UpdateStatus(ctx, run, metav1.UpdateOptions{}); err != nil {
		t.Fatalf("a CustomRun status holding %d node names of 253 characters: %v", len(names), err)
	}
}

// nodes: eligible is checked against the scheduler it predicts. A
// Deployment whose template has required node affinity, a toleration and
// one pod a node (pod anti-affinity on the hostname) runs over a mixed set
// of nodes: tainted, tolerated, PreferNoSchedule, NoExecute, cordoned, one
// whose kubelet stopped (the node lifecycle controller marks it NotReady
// and taints it unreachable) and one of another type. Its ReplicaSet's pods
// are bound by kube-scheduler: nodes: running pulls where they are; every
// node they are bound to is within the eligible set, and scaled past it,
// they cover it.
func TestWorkloadDeploymentRunningAndEligible(t *testing.T) {
	ctx := context.Background()
	ns := namespace(t)
	web := map[string]string{"node-type": "web"}
	mixed := []struct {
		name   string
		labels map[string]string
		edit   func(*corev1.Node)
	}{
		{"mix-tainted", map[string]string{"node-type": "web", "zone": "c"}, taintNode("dedicated", "gpu", corev1.TaintEffectNoSchedule)},
		{"mix-tolerated", map[string]string{"node-type": "web", "zone": "c"}, taintNode("team", "api", corev1.TaintEffectNoSchedule)},
		{"mix-preferred", map[string]string{"node-type": "web", "zone": "c"}, taintNode("busy", "yes", corev1.TaintEffectPreferNoSchedule)},
		{"mix-evicting", web, taintNode("maintenance", "now", corev1.TaintEffectNoExecute)},
		{"mix-cordoned", web, func(n *corev1.Node) { n.Spec.Unschedulable = true }},
		{"mix-notready", web, nil},
		{"mix-other", map[string]string{"node-type": "db"}, nil},
	}
	for _, m := range mixed {
		if err := c.Nodes.Add(ctx, cluster.Node{Name: m.name, Labels: m.labels}); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _ = c.Kube.CoreV1().Nodes().Delete(ctx, m.name, metav1.DeleteOptions{}) })
		if m.edit == nil {
			continue
		}
		n, err := c.Kube.CoreV1().Nodes().Get(ctx, m.name, metav1.GetOptions{})
		if err != nil {
			t.Fatal(err)
		}
		m.edit(n)
		if _, err = c.Kube.CoreV1().Nodes().Update(ctx, n, metav1.UpdateOptions{}); err != nil {
			t.Fatal(err)
		}
	}
	// Its kubelet stops: the cluster sees it NotReady after the grace period.
	c.Nodes.StopHeartbeats("mix-notready")
	err := wait.PollUntilContextTimeout(ctx, time.Second, 3*time.Minute, true, func(ctx context.Context) (bool, error) {
		n, err := c.Kube.CoreV1().Nodes().Get(ctx, "mix-notready", metav1.GetOptions{})
		if err != nil {
			return false, nil
		}
		for _, taint := range n.Spec.Taints {
			if taint.Key == corev1.TaintNodeUnreachable && taint.Effect == corev1.TaintEffectNoSchedule {
				return true, nil
			}
		}
		return false, nil
	})
	if err != nil {
		t.Fatalf("the node lifecycle controller did not taint mix-notready unreachable: %v", err)
	}

	labels := map[string]string{"app": "api"}
	spec := corev1.PodSpec{
		Containers:  []corev1.Container{{Name: "api", Image: "registry.local/api:v1"}},
		Affinity:    onePerNode(labels),
		Tolerations: []corev1.Toleration{{Key: "team", Operator: corev1.TolerationOpEqual, Value: "api", Effect: corev1.TaintEffectNoSchedule}},
	}
	spec.Affinity.NodeAffinity = &corev1.NodeAffinity{RequiredDuringSchedulingIgnoredDuringExecution: &corev1.NodeSelector{
		NodeSelectorTerms: []corev1.NodeSelectorTerm{{MatchExpressions: []corev1.NodeSelectorRequirement{
			{Key: "node-type", Operator: corev1.NodeSelectorOpIn, Values: []string{"web"}},
			{Key: "zone", Operator: corev1.NodeSelectorOpNotIn, Values: []string{"a"}},
		}}},
	}}
	if _, err := c.Kube.AppsV1().Deployments(ns).Create(ctx, &appsv1.Deployment{
		ObjectMeta: metav1.ObjectMeta{Name: "api"},
		Spec: appsv1.DeploymentSpec{Replicas: ptr.To[int32](2), Selector: &metav1.LabelSelector{MatchLabels: labels},
			Template: corev1.PodTemplateSpec{ObjectMeta: metav1.ObjectMeta{Labels: labels}, Spec: spec}},
	}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	running := waitBound(t, ns, "app=api", 2)
	readDeployment(t, ns, "api")

	create(t, ns, pipelineRun("pr", `
      - name: running
        taskRef: {apiVersion: custom.kruise.dev/v1alpha1, kind: ImagePrePull}
        params: [{name: workload, value: deployment/api}, {name: image, value: "registry.local/api:running"}]
      - name: eligible
        taskRef: {apiVersion: custom.kruise.dev/v1alpha1, kind: ImagePrePull}
        params: [{name: workload, value: deployment/api}, {name: nodes, value: eligible}, {name: image, value: "registry.local/api:eligible"}]
`))
	waitPipelineRun(t, ns, "pr", prTimeout)
	runs := customRuns(t, ns, "pr")
	target := map[string][]string{}
	for _, task := range []string{"running", "eligible"} {
		run := runs[task]
		if !cond(run).IsTrue() {
			t.Fatalf("%s: CustomRun %+v", task, cond(run))
		}
		jobs, err := c.Kruise.AppsV1alpha1().ImagePullJobs(ns).List(ctx, metav1.ListOptions{LabelSelector: "tekton.dev/customRun=" + run.Name})
		if err != nil || len(jobs.Items) != 1 {
			t.Fatalf("%s: jobs %v, %v", task, jobs, err)
		}
		target[task] = jobs.Items[0].Spec.Selector.Names
	}
	if got := strings.Join(target["running"], ","); got != strings.Join(running, ",") {
		t.Errorf("running: the job pulls onto %s, want %v, where the scheduler bound the pods", got, running)
	}
	eligible := target["eligible"]
	for _, n := range running {
		if !slices.Contains(eligible, n) {
			t.Errorf("the scheduler bound a pod to %s, which the eligible set %v leaves out", n, eligible)
		}
	}
	contains(t, "eligible message", cond(runs["eligible"]).Message, fmt.Sprintf("nodes eligible: %d of ", len(eligible)))

	// Scaled past the eligible set, one pod a node: the scheduler fills
	// every eligible node, and no other (one pod stays Pending).
	if _, err := c.Kube.AppsV1().Deployments(ns).Patch(ctx, "api", types.MergePatchType,
		fmt.Appendf(nil, `{"spec":{"replicas":%d}}`, len(eligible)+1), metav1.PatchOptions{}); err != nil {
		t.Fatal(err)
	}
	if all := waitBound(t, ns, "app=api", len(eligible)); strings.Join(all, ",") != strings.Join(eligible, ",") {
		t.Errorf("the scheduler bound the pods to %v; the run's eligible set is %v", all, eligible)
	}
	if err := c.Nodes.StartHeartbeats(ctx, "mix-notready"); err != nil {
		t.Error(err)
	}
}

// onePerNode is a required pod anti-affinity over the hostname: one pod of
// the workload a node.
func onePerNode(labels map[string]string) *corev1.Affinity {
	return &corev1.Affinity{PodAntiAffinity: &corev1.PodAntiAffinity{RequiredDuringSchedulingIgnoredDuringExecution: []corev1.PodAffinityTerm{{
		LabelSelector: &metav1.LabelSelector{MatchLabels: labels}, TopologyKey: corev1.LabelHostname,
	}}}}
}

// waitBound waits until n pods of the selector are bound to nodes, and
// returns those nodes, sorted; more bound than n fails.
func waitBound(t *testing.T, ns, selector string, n int) []string {
	t.Helper()
	var nodes []string
	err := wait.PollUntilContextTimeout(context.Background(), 200*time.Millisecond, 2*time.Minute, true, func(ctx context.Context) (bool, error) {
		pods, err := c.Kube.CoreV1().Pods(ns).List(ctx, metav1.ListOptions{LabelSelector: selector})
		if err != nil {
			return false, nil
		}
		nodes = nil
		for _, p := range pods.Items {
			if p.Spec.NodeName != "" && p.DeletionTimestamp == nil {
				nodes = append(nodes, p.Spec.NodeName)
			}
		}
		return len(nodes) >= n, nil
	})
	if err != nil {
		t.Fatalf("%d pods of %s bound, want %d: %v", len(nodes), selector, n, err)
	}
	if len(nodes) > n {
		t.Fatalf("%d pods of %s bound to %v, want %d", len(nodes), selector, nodes, n)
	}
	sort.Strings(nodes)
	return nodes
}

func taintNode(key, value string, effect corev1.TaintEffect) func(*corev1.Node) {
	return func(n *corev1.Node) {
		n.Spec.Taints = append(n.Spec.Taints, corev1.Taint{Key: key, Value: value, Effect: effect})
	}
}

// readDeployment lets the namespace's default ServiceAccount get the
// Deployment, as the run's authorization asks.
func readDeployment(t *testing.T, ns, name string) {
	t.Helper()
	if err := c.AllowServiceAccount(context.Background(), ns, "default", "read-"+name, rbacv1.PolicyRule{
		APIGroups: []string{"apps"}, Resources: []string{"deployments"}, ResourceNames: []string{name}, Verbs: []string{"get"},
	}); err != nil {
		t.Fatal(err)
	}
}
