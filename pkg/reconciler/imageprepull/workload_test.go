package imageprepull

import (
	"fmt"
	"slices"
	"strings"
	"testing"

	kruisev1alpha1 "github.com/openkruise/kruise-api/apps/v1alpha1"
	kruisev1beta1 "github.com/openkruise/kruise-api/apps/v1beta1"
	appsv1 "k8s.io/api/apps/v1"
	authorizationv1 "k8s.io/api/authorization/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	clientgotesting "k8s.io/client-go/testing"
	dynamicfake "knative.dev/pkg/injection/clients/dynamicclient/fake"

	"github.com/imageprepull/imageprepull/pkg/apis/custom/v1alpha1"
)

var webLabels = map[string]string{"app": "web"}

func podSpec(images ...string) corev1.PodSpec {
	var s corev1.PodSpec
	for i, image := range images {
		s.Containers = append(s.Containers, corev1.Container{Name: fmt.Sprintf("c%d", i), Image: image})
	}
	return s
}

func (e *env) deployment(name string, spec corev1.PodSpec) {
	e.t.Helper()
	d := &appsv1.Deployment{ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: ns}, Spec: appsv1.DeploymentSpec{
		Selector: &metav1.LabelSelector{MatchLabels: webLabels},
		Template: corev1.PodTemplateSpec{ObjectMeta: metav1.ObjectMeta{Labels: webLabels}, Spec: spec},
	}}
	e.workload("deployment", d)
}

// workload stores a workload object as the API server would serve it to the
// controller's dynamic client, under the resource of kind (as kubectl names
// it: deployment, cloneset.apps.kruise.io).
func (e *env) workload(kind string, obj metav1.Object) {
	e.t.Helper()
	ref, fe := v1alpha1.ParseWorkload(kind + "/" + obj.GetName())
	if fe != nil {
		e.t.Fatal(fe)
	}
	u, err := runtime.DefaultUnstructuredConverter.ToUnstructured(obj)
	if err != nil {
		e.t.Fatal(err)
	}
	w := &unstructured.Unstructured{Object: u}
	w.SetAPIVersion(ref.GroupVersion().String())
	w.SetKind(ref.Kind)
	if _, err := dynamicfake.Get(e.ctx).Resource(ref.GroupVersionResource).Namespace(ns).Create(e.ctx, w, metav1.CreateOptions{}); err != nil {
		e.t.Fatal(err)
	}
}

func (e *env) pod(name, node string, labels map[string]string, phase corev1.PodPhase) {
	e.t.Helper()
	p := &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: ns, Labels: labels},
		Spec: corev1.PodSpec{NodeName: node}, Status: corev1.PodStatus{Phase: phase}}
	if _, err := e.kube.CoreV1().Pods(ns).Create(e.ctx, p, metav1.CreateOptions{}); err != nil {
		e.t.Fatal(err)
	}
}

// node makes a Node: Ready unless a NotReady condition is asked for.
func (e *env) node(name string, labels map[string]string, mutate ...func(*corev1.Node)) {
	e.t.Helper()
	n := &corev1.Node{ObjectMeta: metav1.ObjectMeta{Name: name, Labels: labels},
		Status: corev1.NodeStatus{Conditions: []corev1.NodeCondition{{Type: corev1.NodeReady, Status: corev1.ConditionTrue}}}}
	for _, m := range mutate {
		m(n)
	}
	if _, err := e.kube.CoreV1().Nodes().Create(e.ctx, n, metav1.CreateOptions{}); err != nil {
		e.t.Fatal(err)
	}
}

func cordon(n *corev1.Node) { n.Spec.Unschedulable = true }

func markNotReady(n *corev1.Node) {
	n.Status.Conditions = []corev1.NodeCondition{{Type: corev1.NodeReady, Status: corev1.ConditionFalse}}
}

func taint(key string, effect corev1.TaintEffect) func(*corev1.Node) {
	return func(n *corev1.Node) {
		n.Spec.Taints = append(n.Spec.Taints, corev1.Taint{Key: key, Value: "x", Effect: effect})
	}
}

func jobNodes(t *testing.T, e *env) map[string]string {
	t.Helper()
	out := map[string]string{}
	for _, j := range e.jobList() {
		if j.Spec.Selector == nil || len(j.Spec.Selector.Names) == 0 {
			t.Fatalf("job %s has no node names: a job without them would pull on every node", j.Name)
		}
		out[j.Spec.Image] = strings.Join(j.Spec.Selector.Names, ",")
	}
	return out
}

// running: the nodes where the workload's pods, found by its own selector,
// are scheduled now; pods not scheduled, finished or of another app are not.
func TestWorkloadRunningNodes(t *testing.T) {
	e := newEnv(t)
	e.deployment("web", podSpec("registry.example.com/team/app:v1"))
	e.pod("web-1", "node-a", webLabels, corev1.PodRunning)
	e.pod("web-2", "node-b", webLabels, corev1.PodRunning)
	e.pod("web-3", "node-a", webLabels, corev1.PodPending)
	e.pod("web-4", "", webLabels, corev1.PodPending)
	e.pod("web-old", "node-c", webLabels, corev1.PodSucceeded)
	e.pod("api-1", "node-d", map[string]string{"app": "api"}, corev1.PodRunning)
	e.create(newRun("run", str("image", app), str("workload", "deployment/web")))
	run := e.mustReconcile("run")
	if c := condition(run); !c.IsUnknown() {
		t.Fatalf("condition = %+v", c)
	}
	if got := jobNodes(t, e)[app]; got != "node-a,node-b" {
		t.Errorf("job nodes = %s, want node-a,node-b", got)
	}
	var extra pin
	if err := run.Status.DecodeExtraFields(&extra); err != nil || extra.Target == nil {
		t.Fatalf("target not recorded: %v %+v", err, extra)
	}
	contains(t, "target", extra.Target.Matched, "nodes running: 2, where 3 of its 5 pods are scheduled")
	contains(t, "message", condition(run).Message, "workload deployment.apps/web: nodes running: 2, where 3 of its 5 pods are scheduled")
	if extra.Target.Workload != "deployment.apps/web" {
		t.Errorf("workload recorded as %q", extra.Target.Workload)
	}
}

// eligible: the template's nodeSelector, required node affinity (In,
// NotIn, Exists) and tolerations against the nodes' taints; Ready and not
// cordoned.
func TestWorkloadEligibleNodes(t *testing.T) {
	e := newEnv(t)
	spec := podSpec(app)
	spec.NodeSelector = map[string]string{"pool": "web"}
	spec.Affinity = &corev1.Affinity{NodeAffinity: &corev1.NodeAffinity{RequiredDuringSchedulingIgnoredDuringExecution: &corev1.NodeSelector{
		NodeSelectorTerms: []corev1.NodeSelectorTerm{{MatchExpressions: []corev1.NodeSelectorRequirement{
			{Key: "zone", Operator: corev1.NodeSelectorOpIn, Values: []string{"a", "b"}},
			{Key: "arch", Operator: corev1.NodeSelectorOpNotIn, Values: []string{"s390x"}},
			{Key: "ssd", Operator: corev1.NodeSelectorOpExists},
		}}},
	}}}
	spec.Tolerations = []corev1.Toleration{{Key: "dedicated", Operator: corev1.TolerationOpEqual, Value: "x", Effect: corev1.TaintEffectNoSchedule}}
	e.deployment("web", spec)
	ok := map[string]string{"pool": "web", "zone": "a", "arch": "amd64", "ssd": "true"}
	with := func(k, v string) map[string]string {
		m := map[string]string{}
		for key, val := range ok {
			m[key] = val
		}
		if v == "" {
			delete(m, k)
		} else {
			m[k] = v
		}
		return m
	}
	e.node("fits", ok)
	e.node("fits-tolerated", ok, taint("dedicated", corev1.TaintEffectNoSchedule))
	e.node("fits-prefer", ok, taint("busy", corev1.TaintEffectPreferNoSchedule))
	e.node("other-pool", with("pool", "batch"))
	e.node("zone-c", with("zone", "c"))
	e.node("s390x", with("arch", "s390x"))
	e.node("no-ssd", with("ssd", ""))
	e.node("gpu-tainted", ok, taint("gpu", corev1.TaintEffectNoSchedule))
	e.node("evicting", ok, taint("maintenance", corev1.TaintEffectNoExecute))
	e.node("cordoned", ok, cordon)
	e.node("not-ready", ok, markNotReady)
	e.create(newRun("run", str("image", app), str("workload", "deployment/web"), str("nodes", "eligible")))
	run := e.mustReconcile("run")
	if got := jobNodes(t, e)[app]; got != "fits,fits-prefer,fits-tolerated" {
		t.Errorf("job nodes = %s", got)
	}
	var extra pin
	_ = run.Status.DecodeExtraFields(&extra)
	contains(t, "target", extra.Target.Matched, "nodes eligible: 3 of 11",
		"1 not Ready", "1 cordoned", "4 not matched by the node selector or required node affinity", "2 with a taint not tolerated")
}

// A DaemonSet's pods tolerate cordoned, NotReady and pressured nodes, as
// the DaemonSet controller makes them.
func TestWorkloadEligibleNodesOfADaemonSet(t *testing.T) {
	e := newEnv(t)
	ds := &appsv1.DaemonSet{ObjectMeta: metav1.ObjectMeta{Name: "agent", Namespace: ns}, Spec: appsv1.DaemonSetSpec{
		Selector: &metav1.LabelSelector{MatchLabels: webLabels},
		Template: corev1.PodTemplateSpec{ObjectMeta: metav1.ObjectMeta{Labels: webLabels}, Spec: podSpec(app)},
	}}
	e.workload("daemonset", ds)
	e.node("plain", nil)
	e.node("cordoned", nil, cordon, taint(corev1.TaintNodeUnschedulable, corev1.TaintEffectNoSchedule))
	e.node("not-ready", nil, markNotReady, taint(corev1.TaintNodeNotReady, corev1.TaintEffectNoExecute))
	e.node("disk-pressure", nil, taint(corev1.TaintNodeDiskPressure, corev1.TaintEffectNoSchedule))
	e.node("gpu", nil, taint("gpu", corev1.TaintEffectNoSchedule))
	e.create(newRun("run", str("image", app), str("workload", "ds/agent"), str("nodes", "eligible")))
	e.mustReconcile("run")
	if got := jobNodes(t, e)[app]; got != "cordoned,disk-pressure,not-ready,plain" {
		t.Errorf("job nodes = %s", got)
	}
}

// workloadImages: every image of the template, init containers and
// sidecars included; an image param replaces the one of its repository.
func TestWorkloadImages(t *testing.T) {
	e := newEnv(t)
	spec := podSpec("registry.example.com/team/app:v1", "envoyproxy/envoy:v1.30.0", "nginx")
	spec.InitContainers = []corev1.Container{{Name: "init", Image: "busybox:1.36"}}
	e.deployment("web", spec)
	e.pod("web-1", "node-a", webLabels, corev1.PodRunning)
	e.create(newRun("run", str("image", "registry.example.com/team/app:v2"), str("workload", "deployment/web"), str("workloadImages", "true")))
	if c := condition(e.mustReconcile("run")); !c.IsUnknown() {
		t.Fatalf("condition = %+v", c)
	}
	var images []string
	for image := range jobNodes(t, e) {
		images = append(images, image)
	}
	want := "busybox:1.36 docker.io/library/nginx:latest envoyproxy/envoy:v1.30.0 registry.example.com/team/app:v2"
	if got := strings.Join(slices.Sorted(slices.Values(images)), " "); got != want {
		t.Errorf("images = %s, want %s", got, want)
	}
}

// OpenKruise's CloneSet is read through Kruise's API.
func TestWorkloadCloneSet(t *testing.T) {
	e := newEnv(t)
	cs := &kruisev1alpha1.CloneSet{ObjectMeta: metav1.ObjectMeta{Name: "web", Namespace: ns}, Spec: kruisev1alpha1.CloneSetSpec{
		Selector: &metav1.LabelSelector{MatchLabels: webLabels},
		Template: corev1.PodTemplateSpec{ObjectMeta: metav1.ObjectMeta{Labels: webLabels}, Spec: podSpec(app)},
	}}
	e.workload("cloneset", cs)
	e.pod("web-x1", "node-b", webLabels, corev1.PodRunning)
	e.create(newRun("run", str("workload", "cloneset.apps.kruise.io/web"), str("workloadImages", "true")))
	e.mustReconcile("run")
	if got := jobNodes(t, e)[app]; got != "node-b" {
		t.Errorf("job nodes = %v", jobNodes(t, e))
	}
}

func TestWorkloadFailures(t *testing.T) {
	e := newEnv(t)
	e.deployment("idle", podSpec(app))
	e.create(newRun("missing", str("image", app), str("workload", "deployment/nope")))
	e.failsAtOnce("missing", v1alpha1.ReasonWorkloadNotFound, "workload deployment.apps/nope not found in namespace "+ns)
	e.create(newRun("no-pods", str("image", app), str("workload", "deployment/idle")))
	e.failsAtOnce("no-pods", v1alpha1.ReasonNoNodes, "no node matched workload deployment.apps/idle: nodes running: 0, where 0 of its 0 pods are scheduled")
	e.create(newRun("bad-kind", str("image", app), str("workload", "job/x")))
	e.failsAtOnce("bad-kind", v1alpha1.ReasonInvalidParams, "params.workload", "kind job is not one of deployment.apps")
	e.create(newRun("both", str("image", app), str("workload", "deployment/idle"), str("nodeSelector", "a=b")))
	e.failsAtOnce("both", v1alpha1.ReasonInvalidParams, "expected exactly one, got both", "params.nodeSelector", "params.workload")
	if n := len(e.jobList()); n != 0 {
		t.Errorf("%d jobs made by failed runs", n)
	}
}

// The run's ServiceAccount must be allowed to read the workload itself.
func TestWorkloadNeedsTheServiceAccountToReadIt(t *testing.T) {
	e := newEnv(t)
	e.deployment("web", podSpec(app))
	e.pod("web-1", "node-a", webLabels, corev1.PodRunning)
	e.deny = func(s authorizationv1.SubjectAccessReviewSpec) bool {
		return s.ResourceAttributes.Resource == "deployments"
	}
	e.create(newRun("run", str("image", app), str("workload", "deployment/web")))
	run := e.failsAtOnce("run", v1alpha1.ReasonNotAuthorized, `may not get deployments.apps "web" (the run's workload)`,
		"--verb=get --resource=deployments.apps --resource-name=web")
	_ = run
	if n := len(e.jobList()); n != 0 {
		t.Errorf("%d jobs for a refused run", n)
	}
}

// The nodes are fixed at the run's start: a retry pulls onto them even
// after the workload's pods moved.
func TestWorkloadNodesAreKeptThroughRetries(t *testing.T) {
	e := newEnv(t)
	e.deployment("web", podSpec(app))
	e.pod("web-1", "node-a", webLabels, corev1.PodRunning)
	e.create(newRun("run", str("image", app), str("workload", "deployment/web"), retries(1)))
	e.mustReconcile("run")
	first := e.jobList()[0]
	e.setJobStatus(first.Name, completed(1, 0, "node-a"))
	if err := e.kube.CoreV1().Pods(ns).Delete(e.ctx, "web-1", metav1.DeleteOptions{}); err != nil {
		t.Fatal(err)
	}
	e.pod("web-2", "node-z", webLabels, corev1.PodRunning)
	run := e.mustReconcile("run") // the attempt fails: a retry starts
	if len(run.Status.RetriesStatus) != 1 {
		t.Fatalf("retries %d, condition %+v", len(run.Status.RetriesStatus), condition(run))
	}
	e.mustReconcile("run")
	for _, j := range e.jobList() {
		if j.Name != first.Name && strings.Join(j.Spec.Selector.Names, ",") != "node-a" {
			t.Errorf("the retry's job %s pulls onto %v, want node-a as the first attempt", j.Name, j.Spec.Selector.Names)
		}
	}
	if len(e.jobList()) < 2 {
		t.Errorf("no job for the retry: %v", e.jobList())
	}
}

// Each kind is read through its own API, with its own selector and template.
func TestWorkloadEveryKind(t *testing.T) {
	template := corev1.PodTemplateSpec{ObjectMeta: metav1.ObjectMeta{Labels: webLabels}, Spec: podSpec(app)}
	sel := &metav1.LabelSelector{MatchLabels: webLabels}
	meta := metav1.ObjectMeta{Name: "w", Namespace: ns}
	for _, tc := range []struct {
		ref string
		obj metav1.Object
	}{
		{"deployment/w", &appsv1.Deployment{ObjectMeta: meta, Spec: appsv1.DeploymentSpec{Selector: sel, Template: template}}},
		{"statefulset/w", &appsv1.StatefulSet{ObjectMeta: meta, Spec: appsv1.StatefulSetSpec{Selector: sel, Template: template}}},
		{"daemonset.apps/w", &appsv1.DaemonSet{ObjectMeta: meta, Spec: appsv1.DaemonSetSpec{Selector: sel, Template: template}}},
		{"clone/w", &kruisev1alpha1.CloneSet{ObjectMeta: meta, Spec: kruisev1alpha1.CloneSetSpec{Selector: sel, Template: template}}},
		{"statefulset.apps.kruise.io/w", &kruisev1beta1.StatefulSet{ObjectMeta: meta, Spec: kruisev1beta1.StatefulSetSpec{Selector: sel, Template: template}}},
		{"daemonset.apps.kruise.io/w", &kruisev1alpha1.DaemonSet{ObjectMeta: meta, Spec: kruisev1alpha1.DaemonSetSpec{Selector: sel, Template: template}}},
	} {
		t.Run(tc.ref, func(t *testing.T) {
			e := newEnv(t)
			kind, _, _ := strings.Cut(tc.ref, "/")
			e.workload(kind, tc.obj)
			e.pod("w-1", "node-k", webLabels, corev1.PodRunning)
			e.create(newRun("run", str("workload", tc.ref), str("workloadImages", "true")))
			run := e.mustReconcile("run")
			if got := jobNodes(t, e)[app]; got != "node-k" {
				t.Errorf("jobs %v, want %s onto node-k; condition %+v", jobNodes(t, e), app, condition(run))
			}
		})
	}
}

// OpenKruise's kinds without OpenKruise: the API server answers 404 for the
// resource, not for an object, and the run says which resource is missing.
func TestWorkloadKindNotServed(t *testing.T) {
	e := newEnv(t)
	dynamicfake.Get(e.ctx).PrependReactor("get", "clonesets", func(clientgotesting.Action) (bool, runtime.Object, error) {
		return true, nil, apierrors.NewNotFound(schema.GroupResource{}, "") // as for a path nothing serves
	})
	e.create(newRun("run", str("image", app), str("workload", "cloneset/web")))
	e.failsAtOnce("run", v1alpha1.ReasonWorkloadNotFound,
		"workload cloneset.apps.kruise.io/web: the API server does not serve clonesets.apps.kruise.io/v1alpha1 (is OpenKruise installed?)")
}
