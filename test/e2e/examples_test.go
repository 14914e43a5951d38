//go:build e2e

package e2e

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"sort"
	"strings"
	"testing"
	"time"

	pipelinev1 "github.com/tektoncd/pipeline/pkg/apis/pipeline/v1"
	"github.com/tektoncd/pipeline/pkg/apis/pipeline/v1beta1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/wait"
	"sigs.k8s.io/yaml"

	"github.com/imageprepull/imageprepull/pkg/apis/custom/v1alpha1"
	"github.com/imageprepull/imageprepull/test/simulator"
)

// An example of examples/ with what its pre-pull targets, so that each state
// (no node fails, some fail, too many fail) has a known outcome.
type example struct {
	// files are read from examples/, in order; the last document is the PipelineRun.
	files []string
	// edit changes a document before it is created (nil: as it is).
	edit func(t *testing.T, doc string) string
	// setup makes what the example expects to find in its namespace.
	setup func(t *testing.T, ns string)
	// nodes the pre-pull targets, and how many must get the images.
	nodes []string
	need  int
}

var webNodes = []string{"web-a1", "web-a2", "web-b1"}

var examples = map[string]example{
	"first pipeline": {files: []string{"first-pipeline.yaml"}, nodes: webNodes, need: 3}, // 90% of 3, rounded up
	"named policy":   {files: []string{"ways/named-policy.yaml"}, nodes: webNodes, need: 3},
	"params only":    {files: []string{"ways/params-only.yaml"}, nodes: webNodes, need: 2},
	"embedded spec": {files: []string{"ways/embedded-spec.yaml"}, nodes: []string{"web-a2", "web-b1"}, need: 2,
		setup: func(t *testing.T, ns string) { podsOn(t, ns, map[string]string{"app": "web"}, "web-a2", "web-b1") }},
	// nodes: eligible picks web's nodeSelector (node-type=web): the web nodes.
	"workload": {files: []string{"ways/workload.yaml"}, nodes: webNodes, need: 3},
	// The seed pipeline's pre-pull in each state, without its build Task,
	// whose pod the simulated nodes do not run (examples/local-demo, the
	// pipeline whole, runs on the real node: TestRealNode).
	"seed pipeline": {files: []string{"seed-pipeline/10-build-push-task.yaml", "seed-pipeline/20-imageprepull.yaml",
		"seed-pipeline/30-pipeline.yaml", "seed-pipeline/40-pipelinerun.yaml"}, nodes: webNodes, need: 3,
		edit: withoutBuildTask},
}

// Every pre-pull of examples/ runs whole, in each state users meet: its
// CustomRun ends as its threshold says, every pipeline result it declares
// holds the pre-pull's result, and the PipelineRun never fails validation.
func TestExamples(t *testing.T) {
	for name, ex := range examples {
		t.Run(name, func(t *testing.T) {
			states := [][]string{nil}
			if len(ex.nodes) > ex.need {
				states = append(states, ex.nodes[len(ex.nodes)-1:]) // some fail, the threshold is met
			}
			states = append(states, ex.nodes[ex.need-1:]) // one more than the threshold allows
			for _, failing := range states {
				succeed := len(ex.nodes)-len(failing) >= ex.need
				t.Run(fmt.Sprintf("%d of %d nodes fail", len(failing), len(ex.nodes)), func(t *testing.T) {
					failOn(t, failing...)
					ns := namespace(t)
					if ex.setup != nil {
						ex.setup(t, ns)
					}
					pr := ex.create(t, ns, customTasksOnly)
					done := waitPipelineRun(t, ns, pr, prTimeout)
					run := customRuns(t, ns, pr)["prepull"]
					checkOutcome(t, done, run, failing, succeed)
				})
			}
		})
	}
}

// examples/ways/params-only.yaml with a node that cannot pull, and with too
// many, and README's first pipeline: their later tasks and finally tasks are
// created with the results in their params (no pod runs here, so the
// TaskRuns are where it shows).
func TestExamplesFeedTheirTasks(t *testing.T) {
	for _, tc := range []struct {
		example, name string
		failing       []string
		task          string
		params        map[string]string
	}{
		{"params only", "none fails", nil, "summary", map[string]string{"desired": "3", "succeeded": "3", "failed-nodes": ""}},
		{"params only", "one fails", []string{"web-b1"}, "report", map[string]string{"nodes": "web-b1"}},
		{"params only", "too many fail", []string{"web-a2", "web-b1"}, "summary", map[string]string{"desired": "3", "succeeded": "1", "failed-nodes": "web-a2,web-b1"}},
		{"first pipeline", "none fails", nil, "report", map[string]string{"succeeded": "3", "failed-nodes": ""}},
	} {
		t.Run(tc.example+"/"+tc.name, func(t *testing.T) {
			failOn(t, tc.failing...)
			ns := namespace(t)
			pr := examples[tc.example].create(t, ns, nil)
			tr := waitTaskRun(t, ns, pr, tc.task)
			for name, want := range tc.params {
				var got *pipelinev1.Param
				for i := range tr.Spec.Params {
					if tr.Spec.Params[i].Name == name {
						got = &tr.Spec.Params[i]
					}
				}
				if got == nil || got.Value.Type != pipelinev1.ParamTypeString || got.Value.StringVal != want {
					t.Errorf("TaskRun %s param %s = %+v, want the string %q", tr.Name, name, got, want)
				}
			}
			p, err := c.Tekton.TektonV1().PipelineRuns(ns).Get(context.Background(), pr, metav1.GetOptions{})
			if err != nil {
				t.Fatal(err)
			}
			if cond := p.Status.GetCondition("Succeeded"); cond != nil && cond.Reason == "PipelineValidationFailed" {
				t.Fatalf("PipelineRun failed validation: %s", cond.Message)
			}
			cancel(t, ns, pr)
		})
	}
}

// examples/ways/workload.yaml: the pre-pull resolves deployment/web's
// eligible nodes and its template's image replaced by the new one, and the
// rollout task is created with the pre-pull's result in its params.
func TestWorkloadExampleFeedsItsRollout(t *testing.T) {
	ns := namespace(t)
	pr := examples["workload"].create(t, ns, nil)
	tr := waitTaskRun(t, ns, pr, "rollout")
	params := map[string]string{}
	for _, p := range tr.Spec.Params {
		params[p.Name] = p.Value.StringVal
	}
	if params["nodes"] != "3" || params["image"] != "registry.local/web:v2" {
		t.Errorf("rollout TaskRun params %v, want nodes 3 and image registry.local/web:v2", params)
	}
	run := customRuns(t, ns, pr)["prepull"]
	if !cond(run).IsTrue() {
		t.Fatalf("CustomRun %+v", cond(run))
	}
	// The batch node is left out by web's nodeSelector.
	if want := "3/3 nodes have registry.local/web:v2; workload deployment.apps/web: nodes eligible: 3 of 4 " +
		"(left out: 1 not matched by the node selector or required node affinity)"; cond(run).Message != want {
		t.Errorf("message %q, want %q", cond(run).Message, want)
	}
	jobs, err := c.Kruise.AppsV1alpha1().ImagePullJobs(ns).List(context.Background(), metav1.ListOptions{})
	if err != nil || len(jobs.Items) != 1 {
		t.Fatalf("jobs %v, %v", jobs, err)
	}
	job := jobs.Items[0]
	if job.Spec.Image != "registry.local/web:v2" || job.Spec.Selector == nil || strings.Join(job.Spec.Selector.Names, ",") != "web-a1,web-a2,web-b1" {
		t.Errorf("job pulls %s onto %+v, want registry.local/web:v2 onto web-a1,web-a2,web-b1", job.Spec.Image, job.Spec.Selector)
	}
	cancel(t, ns, pr)
}

// create makes the example's objects in ns and returns its PipelineRun's name;
// edit, when set, changes the PipelineRun first.
func (ex example) create(t *testing.T, ns string, edit func(*testing.T, *pipelinev1.PipelineRun)) string {
	t.Helper()
	var docs []string
	for _, f := range ex.files {
		b, err := os.ReadFile(filepath.Join("..", "..", "examples", f))
		if err != nil {
			t.Fatal(err)
		}
		for _, doc := range strings.Split(string(b), "\n---\n") {
			if ex.edit != nil {
				doc = ex.edit(t, doc)
			}
			docs = append(docs, doc)
		}
	}
	for _, doc := range docs[:len(docs)-1] {
		create(t, ns, doc)
	}
	var pr pipelinev1.PipelineRun
	if err := yaml.UnmarshalStrict([]byte(docs[len(docs)-1]), &pr); err != nil {
		t.Fatalf("the example's PipelineRun: %v", err)
	}
	if edit != nil {
		edit(t, &pr)
	}
	got, err := c.Tekton.TektonV1().PipelineRuns(ns).Create(context.Background(), &pr, metav1.CreateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	return got.Name
}

// customTasksOnly drops the tasks that need a pod (there is no kubelet), so
// that the PipelineRun ends and Tekton writes its pipeline results.
func customTasksOnly(t *testing.T, pr *pipelinev1.PipelineRun) {
	if pr.Spec.PipelineSpec == nil {
		return
	}
	var keep []pipelinev1.PipelineTask
	for _, pt := range pr.Spec.PipelineSpec.Tasks {
		if isPrePull(pt) {
			keep = append(keep, pt)
		}
	}
	pr.Spec.PipelineSpec.Tasks, pr.Spec.PipelineSpec.Finally = keep, nil
}

func isPrePull(pt pipelinev1.PipelineTask) bool {
	return (pt.TaskRef != nil && pt.TaskRef.Kind == "ImagePrePull") || (pt.TaskSpec != nil && pt.TaskSpec.Kind == "ImagePrePull")
}

// withoutBuildTask takes the build Task out of the seed's Pipeline, as make
// demo does (it builds and pushes with ko instead).
func withoutBuildTask(t *testing.T, doc string) string {
	if !strings.Contains(doc, "kind: Pipeline\n") {
		return doc
	}
	var p pipelinev1.Pipeline
	if err := yaml.UnmarshalStrict([]byte(doc), &p); err != nil {
		t.Fatal(err)
	}
	var keep []pipelinev1.PipelineTask
	for _, pt := range p.Spec.Tasks {
		if isPrePull(pt) {
			pt.RunAfter = nil
			keep = append(keep, pt)
		}
	}
	if len(keep) != 1 || len(p.Spec.Tasks) != 2 {
		t.Fatalf("the seed pipeline has tasks %+v, want the build task and prepull", p.Spec.Tasks)
	}
	p.Spec.Tasks = keep
	b, err := yaml.Marshal(p)
	if err != nil {
		t.Fatal(err)
	}
	return "apiVersion: tekton.dev/v1\nkind: Pipeline\n" + string(b)
}

var resultRef = regexp.MustCompile(`^\$\(tasks\.prepull\.results\.(\w+)\)$`)

// checkOutcome checks the pre-pull's CustomRun and its PipelineRun, pipeline
// results included, against the nodes that failed.
func checkOutcome(t *testing.T, pr *pipelinev1.PipelineRun, run *v1beta1.CustomRun, failing []string, succeed bool) {
	t.Helper()
	prCond := pr.Status.GetCondition("Succeeded")
	if prCond.Reason == "PipelineValidationFailed" || prCond.IsTrue() != succeed {
		t.Fatalf("PipelineRun %+v, want succeeded %v", prCond, succeed)
	}
	if run == nil || cond(run).IsTrue() != succeed {
		t.Fatalf("CustomRun %+v, want succeeded %v", run, succeed)
	}
	if !succeed && cond(run).Reason != v1alpha1.ReasonThresholdNotMet.String() {
		t.Errorf("reason %s, want ThresholdNotMet", cond(run).Reason)
	}
	want := append([]string(nil), failing...)
	sort.Strings(want)
	if got := result(run, v1alpha1.ResultFailedNodes); got != strings.Join(want, ",") {
		t.Errorf("failedNodes = %q, want %q", got, strings.Join(want, ","))
	}
	if got := result(run, v1alpha1.ResultFailed); got != fmt.Sprint(len(failing)) {
		t.Errorf("failed = %q, want %d", got, len(failing))
	}
	declared := 0
	if pr.Status.PipelineSpec != nil {
		for _, r := range pr.Status.PipelineSpec.Results {
			m := resultRef.FindStringSubmatch(r.Value.StringVal)
			if m == nil {
				continue
			}
			declared++
			var got *pipelinev1.PipelineRunResult
			for i := range pr.Status.Results {
				if pr.Status.Results[i].Name == r.Name {
					got = &pr.Status.Results[i]
				}
			}
			if got == nil || got.Value.StringVal != result(run, m[1]) {
				t.Errorf("pipeline result %s = %+v, want %q (the pre-pull's %s)", r.Name, got, result(run, m[1]), m[1])
			}
		}
	}
	if declared == 0 {
		t.Errorf("the example declares no pipeline result from the pre-pull")
	}
}

// failOn makes the simulated nodes fail every image until the test ends.
func failOn(t *testing.T, nodes ...string) {
	t.Helper()
	ctx := context.Background()
	for _, node := range nodes {
		n, err := c.Kube.CoreV1().Nodes().Get(ctx, node, metav1.GetOptions{})
		if err != nil {
			t.Fatal(err)
		}
		before := n.Annotations[simulator.AnnotationFail]
		if err := annotateNode(ctx, node, simulator.AnnotationFail, ".+"); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() {
			if err := annotateNode(ctx, node, simulator.AnnotationFail, before); err != nil {
				t.Error(err)
			}
		})
	}
}

// podsOn makes a labelled pod on each node, as a workload's would be placed.
func podsOn(t *testing.T, ns string, labels map[string]string, nodes ...string) {
	t.Helper()
	for i, node := range nodes {
		_, err := c.Kube.CoreV1().Pods(ns).Create(context.Background(), &corev1.Pod{
			ObjectMeta: metav1.ObjectMeta{Name: fmt.Sprintf("pod-%d", i), Labels: labels},
			Spec:       corev1.PodSpec{NodeName: node, Containers: []corev1.Container{{Name: "c", Image: "registry.local/web:v1"}}},
		}, metav1.CreateOptions{})
		if err != nil {
			t.Fatal(err)
		}
	}
}

// waitTaskRun waits for the TaskRun Tekton creates for a pipeline task.
func waitTaskRun(t *testing.T, ns, pr, task string) *pipelinev1.TaskRun {
	t.Helper()
	var tr *pipelinev1.TaskRun
	err := wait.PollUntilContextTimeout(context.Background(), 200*time.Millisecond, prTimeout, true, func(ctx context.Context) (bool, error) {
		l, err := c.Tekton.TektonV1().TaskRuns(ns).List(ctx, metav1.ListOptions{
			LabelSelector: "tekton.dev/pipelineRun=" + pr + ",tekton.dev/pipelineTask=" + task})
		if err != nil || len(l.Items) == 0 {
			return false, nil
		}
		tr = &l.Items[0]
		return true, nil
	})
	if err != nil {
		p, _ := c.Tekton.TektonV1().PipelineRuns(ns).Get(context.Background(), pr, metav1.GetOptions{})
		t.Fatalf("no TaskRun for %s within %s; PipelineRun: %+v", task, prTimeout, p.Status.GetCondition("Succeeded"))
	}
	return tr
}

// cancel cancels a PipelineRun whose TaskRun's pod stays Pending on a
// simulated node.
func cancel(t *testing.T, ns, pr string) {
	t.Helper()
	if _, err := c.Tekton.TektonV1().PipelineRuns(ns).Patch(context.Background(), pr, "application/merge-patch+json",
		[]byte(`{"spec":{"status":"Cancelled"}}`), metav1.PatchOptions{}); err != nil {
		t.Error(err)
	}
}
