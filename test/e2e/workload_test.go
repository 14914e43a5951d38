//go:build e2e

package e2e

import (
	"context"
	"fmt"
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
	"k8s.io/apimachinery/pkg/util/wait"
	"k8s.io/utils/ptr"

	"github.com/openkruise/imageprepull/pkg/apis/custom/v1alpha1"
	"github.com/openkruise/imageprepull/test/cluster"
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
	if err := c.AllowServiceAccount(ctx, ns, "default", "read-shop", rbacv1.PolicyRule{
		APIGroups: []string{"apps.kruise.io"}, Resources: []string{"clonesets"}, ResourceNames: []string{"shop"}, Verbs: []string{"get"},
	}); err != nil {
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

// A Deployment as its controllers would leave it (a ReplicaSet it owns, pods
// the ReplicaSet owns, placed on nodes) over nodes with mixed labels, taints,
// a cordon and a NotReady one: nodes: running pulls where its pods are, and
// nodes: eligible where its template could be scheduled, the expected set
// computed here by the rules written out plainly.
func TestWorkloadDeploymentRunningAndEligible(t *testing.T) {
	ctx := context.Background()
	ns := namespace(t)
	web := map[string]string{"node-type": "web"}
	mixed := []struct {
		name   string
		labels map[string]string
		edit   func(*corev1.Node)
		status func(*corev1.Node)
	}{
		{"mix-tainted", map[string]string{"node-type": "web", "zone": "c"}, taintNode("dedicated", "gpu", corev1.TaintEffectNoSchedule), nil},
		{"mix-tolerated", map[string]string{"node-type": "web", "zone": "c"}, taintNode("team", "api", corev1.TaintEffectNoSchedule), nil},
		{"mix-preferred", map[string]string{"node-type": "web", "zone": "c"}, taintNode("busy", "yes", corev1.TaintEffectPreferNoSchedule), nil},
		{"mix-evicting", web, taintNode("maintenance", "now", corev1.TaintEffectNoExecute), nil},
		{"mix-cordoned", web, func(n *corev1.Node) { n.Spec.Unschedulable = true }, nil},
		{"mix-notready", web, nil, func(n *corev1.Node) {
			n.Status.Conditions = []corev1.NodeCondition{{Type: corev1.NodeReady, Status: corev1.ConditionFalse, Reason: "KubeletNotReady"}}
		}},
		{"mix-other", map[string]string{"node-type": "db"}, nil, nil},
	}
	for _, m := range mixed {
		if err := c.AddNode(ctx, cluster.Node{Name: m.name, Labels: m.labels}); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _ = c.Kube.CoreV1().Nodes().Delete(ctx, m.name, metav1.DeleteOptions{}) })
		n, err := c.Kube.CoreV1().Nodes().Get(ctx, m.name, metav1.GetOptions{})
		if err != nil {
			t.Fatal(err)
		}
		if m.edit != nil {
			m.edit(n)
			if n, err = c.Kube.CoreV1().Nodes().Update(ctx, n, metav1.UpdateOptions{}); err != nil {
				t.Fatal(err)
			}
		}
		if m.status != nil {
			m.status(n)
			if _, err := c.Kube.CoreV1().Nodes().UpdateStatus(ctx, n, metav1.UpdateOptions{}); err != nil {
				t.Fatal(err)
			}
		}
	}

	labels := map[string]string{"app": "api"}
	spec := corev1.PodSpec{
		Containers: []corev1.Container{{Name: "api", Image: "registry.local/api:v1"}},
		Affinity: &corev1.Affinity{NodeAffinity: &corev1.NodeAffinity{RequiredDuringSchedulingIgnoredDuringExecution: &corev1.NodeSelector{
			NodeSelectorTerms: []corev1.NodeSelectorTerm{{MatchExpressions: []corev1.NodeSelectorRequirement{
				{Key: "node-type", Operator: corev1.NodeSelectorOpIn, Values: []string{"web"}},
				{Key: "zone", Operator: corev1.NodeSelectorOpNotIn, Values: []string{"a"}},
			}}},
		}}},
		Tolerations: []corev1.Toleration{{Key: "team", Operator: corev1.TolerationOpEqual, Value: "api", Effect: corev1.TaintEffectNoSchedule}},
	}
	d, err := c.Kube.AppsV1().Deployments(ns).Create(ctx, &appsv1.Deployment{
		ObjectMeta: metav1.ObjectMeta{Name: "api"},
		Spec: appsv1.DeploymentSpec{Selector: &metav1.LabelSelector{MatchLabels: labels},
			Template: corev1.PodTemplateSpec{ObjectMeta: metav1.ObjectMeta{Labels: labels}, Spec: spec}},
	}, metav1.CreateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	rs, err := c.Kube.AppsV1().ReplicaSets(ns).Create(ctx, &appsv1.ReplicaSet{
		ObjectMeta: metav1.ObjectMeta{Name: "api-5d4f", Labels: labels, OwnerReferences: []metav1.OwnerReference{
			*metav1.NewControllerRef(d, appsv1.SchemeGroupVersion.WithKind("Deployment"))}},
		Spec: appsv1.ReplicaSetSpec{Selector: &metav1.LabelSelector{MatchLabels: labels},
			Template: corev1.PodTemplateSpec{ObjectMeta: metav1.ObjectMeta{Labels: labels}, Spec: spec}},
	}, metav1.CreateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	for i, node := range []string{"web-b1", "batch-b1"} {
		pod := &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Name: fmt.Sprintf("api-5d4f-%d", i), Labels: labels,
			OwnerReferences: []metav1.OwnerReference{*metav1.NewControllerRef(rs, appsv1.SchemeGroupVersion.WithKind("ReplicaSet"))}},
			Spec: *spec.DeepCopy()}
		pod.Spec.NodeName = node
		if _, err := c.Kube.CoreV1().Pods(ns).Create(ctx, pod, metav1.CreateOptions{}); err != nil {
			t.Fatal(err)
		}
	}
	readDeployment(t, ns, "api")

	// Eligible, by the rules written out: node-type web, zone not a, Ready,
	// not cordoned, and no NoSchedule/NoExecute taint but team=api.
	nodes, err := c.Kube.CoreV1().Nodes().List(ctx, metav1.ListOptions{})
	if err != nil {
		t.Fatal(err)
	}
	var want []string
	for _, n := range nodes.Items {
		ready := false
		for _, cond := range n.Status.Conditions {
			ready = ready || (cond.Type == corev1.NodeReady && cond.Status == corev1.ConditionTrue)
		}
		ok := n.Labels["node-type"] == "web" && n.Labels["zone"] != "a" && ready && !n.Spec.Unschedulable
		for _, taint := range n.Spec.Taints {
			if taint.Effect != corev1.TaintEffectPreferNoSchedule && !(taint.Key == "team" && taint.Value == "api") {
				ok = false
			}
		}
		if ok {
			want = append(want, n.Name)
		}
	}
	sort.Strings(want)
	if strings.Join(want, ",") != "mix-preferred,mix-tolerated,web-b1" {
		t.Fatalf("the test's own rules pick %v; the nodes are not what this test set up", want)
	}

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
	for task, nodes := range map[string]string{"running": "batch-b1,web-b1", "eligible": strings.Join(want, ",")} {
		run := runs[task]
		if !cond(run).IsTrue() {
			t.Errorf("%s: CustomRun %+v", task, cond(run))
			continue
		}
		jobs, err := c.Kruise.AppsV1alpha1().ImagePullJobs(ns).List(ctx, metav1.ListOptions{LabelSelector: "tekton.dev/customRun=" + run.Name})
		if err != nil || len(jobs.Items) != 1 {
			t.Fatalf("%s: jobs %v, %v", task, jobs, err)
		}
		if got := strings.Join(jobs.Items[0].Spec.Selector.Names, ","); got != nodes {
			t.Errorf("%s: the job pulls onto %s, want %s", task, got, nodes)
		}
	}
	contains(t, "eligible message", cond(runs["eligible"]).Message, "nodes eligible: 3 of ")
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
