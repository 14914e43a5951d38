//go:build e2e

package e2e

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/tektoncd/pipeline/pkg/apis/pipeline/v1beta1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/imageprepull/imageprepull/pkg/apis/custom/v1alpha1"
)

const prTimeout = 3 * time.Minute

func pipelineRun(name, tasks string, extra ...string) string {
	return fmt.Sprintf(`apiVersion: tekton.dev/v1
kind: PipelineRun
metadata:
  name: %s
spec:
  timeouts:
    pipeline: 10m
%s  pipelineSpec:
    tasks:
%s`, name, strings.Join(extra, ""), tasks)
}

func TestParamsOnlySeveralImages(t *testing.T) {
	ns := namespace(t)
	create(t, ns, pipelineRun("pr", `
      - name: prepull
        taskRef: {apiVersion: custom.kruise.dev/v1alpha1, kind: ImagePrePull}
        params:
          - {name: images, value: ["registry.local/app:v1", "registry.local/sidecar:v2"]}
          - {name: nodeSelector, value: "node-type=web,zone in (a,b)"}
`))
	pr := waitPipelineRun(t, ns, "pr", prTimeout)
	if c := pr.Status.GetCondition("Succeeded"); !c.IsTrue() {
		t.Fatalf("PipelineRun: %+v", c)
	}
	run := customRuns(t, ns, "pr")["prepull"]
	for name, want := range map[string]string{"desired": "3", "succeeded": "3", "failed": "0", "failedNodes": ""} {
		if got := result(run, name); got != want {
			t.Errorf("result %s = %s, want %s", name, got, want)
		}
	}
	contains(t, "message", cond(run).Message, "3/3 nodes have registry.local/app:v1", "3/3 nodes have registry.local/sidecar:v2")
	js := jobs(t, ns)
	if len(js) != 2 {
		t.Fatalf("%d ImagePullJobs, want 2", len(js))
	}
	// The labels lead from a run, or a PipelineRun, to its jobs.
	for _, sel := range []string{"tekton.dev/customRun=" + run.Name, "tekton.dev/pipelineRun=pr,tekton.dev/pipelineTask=prepull"} {
		out, err := c.Kubectl(context.Background(), "get", "imagepulljobs", "-n", ns, "-l", sel, "-o", "name")
		if err != nil || strings.Count(out, "imagepulljob.apps.kruise.io/") != 2 {
			t.Errorf("kubectl get imagepulljobs -l %s: %v\n%s", sel, err, out)
		}
	}
	names := strings.Split(result(run, v1alpha1.ResultImagePullJobs), ",")
	for _, j := range js {
		if j.Spec.CompletionPolicy.Type != "Always" || j.Labels["tekton.dev/pipelineRun"] != "pr" || !strings.Contains(strings.Join(names, " "), j.Name) {
			t.Errorf("job %s: %+v %v", j.Name, j.Spec.CompletionPolicy, j.Labels)
		}
	}
}

func TestNamedPolicyWithMatchExpressions(t *testing.T) {
	ns := namespace(t)
	create(t, ns, `apiVersion: custom.kruise.dev/v1alpha1
kind: ImagePrePull
metadata: {name: zone-a}
spec:
  nodeSelector:
    matchExpressions:
      - {key: zone, operator: In, values: [a]}
      - {key: node-type, operator: NotIn, values: [batch]}
  parallelism: 1
`)
	create(t, ns, pipelineRun("pr", `
      - name: prepull
        taskRef: {apiVersion: custom.kruise.dev/v1alpha1, kind: ImagePrePull, name: zone-a}
        params: [{name: image, value: "registry.local/app:named"}]
`))
	pr := waitPipelineRun(t, ns, "pr", prTimeout)
	run := customRuns(t, ns, "pr")["prepull"]
	if !pr.Status.GetCondition("Succeeded").IsTrue() || result(run, v1alpha1.ResultDesired) != "2" || result(run, v1alpha1.ResultSucceeded) != "2" {
		t.Fatalf("PipelineRun %+v, results %+v", pr.Status.GetCondition("Succeeded"), run.Status.Results)
	}
	if j := jobs(t, ns)[0]; j.Spec.Parallelism.IntValue() != 1 {
		t.Errorf("parallelism %v, want the policy's 1", j.Spec.Parallelism)
	}
}

func TestEmbeddedTaskSpecByNodeNames(t *testing.T) {
	ns := namespace(t)
	create(t, ns, pipelineRun("pr", `
      - name: prepull
        taskSpec:
          apiVersion: custom.kruise.dev/v1alpha1
          kind: ImagePrePull
          spec:
            nodeSelector: {names: [web-a1, batch-b1]}
            imagePullPolicy: Always
        params: [{name: image, value: "$(params.image)"}]
`, "  params: [{name: image, value: \"registry.local/app:embedded\"}]\n"))
	pr := waitPipelineRun(t, ns, "pr", prTimeout)
	run := customRuns(t, ns, "pr")["prepull"]
	if !pr.Status.GetCondition("Succeeded").IsTrue() || result(run, v1alpha1.ResultSucceeded) != "2" {
		t.Fatalf("PipelineRun %+v, results %+v", pr.Status.GetCondition("Succeeded"), run.Status.Results)
	}
	j := jobs(t, ns)[0]
	if j.Spec.Image != "registry.local/app:embedded" || fmt.Sprint(j.Spec.Selector.Names) != "[web-a1 batch-b1]" {
		t.Errorf("job spec %+v", j.Spec)
	}
}

// Results feed a later task's param and a when expression.
func TestResultsDownstream(t *testing.T) {
	ns := namespace(t)
	create(t, ns, pipelineRun("pr", `
      - name: prepull
        taskRef: {apiVersion: custom.kruise.dev/v1alpha1, kind: ImagePrePull}
        params:
          - {name: image, value: "registry.local/flaky-app:v1"}
          - {name: nodeSelector, value: "node-type=web"}
          - {name: successThreshold, value: "2"}
      - name: retry-elsewhere
        when:
          - {input: "$(tasks.prepull.results.failed)", operator: notin, values: ["0"]}
        taskRef: {apiVersion: custom.kruise.dev/v1alpha1, kind: ImagePrePull}
        params:
          - {name: image, value: "registry.local/app:v1"}
          - {name: nodeSelector, value: "node-type=web"}
          - {name: successThreshold, value: "$(tasks.prepull.results.succeeded)"}
      - name: skipped
        when:
          - {input: "$(tasks.prepull.results.failedNodes)", operator: in, values: [""]}
        taskRef: {apiVersion: custom.kruise.dev/v1alpha1, kind: ImagePrePull}
        params: [{name: image, value: "registry.local/app:v1"}]
`))
	pr := waitPipelineRun(t, ns, "pr", prTimeout)
	if !pr.Status.GetCondition("Succeeded").IsTrue() {
		t.Fatalf("PipelineRun %+v", pr.Status.GetCondition("Succeeded"))
	}
	runs := customRuns(t, ns, "pr")
	first := runs["prepull"]
	if result(first, v1alpha1.ResultFailedNodes) != "web-b1" || result(first, v1alpha1.ResultSucceeded) != "2" {
		t.Errorf("prepull results %+v", first.Status.Results)
	}
	second := runs["retry-elsewhere"]
	if second == nil {
		t.Fatal("retry-elsewhere did not run")
	}
	if p := second.Spec.GetParam("successThreshold"); p == nil || p.Value.StringVal != "2" {
		t.Errorf("successThreshold param = %+v, want the first task's succeeded result", p)
	}
	if _, ran := runs["skipped"]; ran {
		t.Error("the when expression on failedNodes did not skip the task")
	}
}

func TestPodSelector(t *testing.T) {
	ns := namespace(t)
	for i, node := range []string{"web-a2", "batch-b1", "batch-b1"} {
		_, err := c.Kube.CoreV1().Pods(ns).Create(context.Background(), &corev1.Pod{
			ObjectMeta: metav1.ObjectMeta{Name: fmt.Sprintf("web-%d", i), Labels: map[string]string{"app": "shop"}},
			Spec:       corev1.PodSpec{NodeName: node, Containers: []corev1.Container{{Name: "c", Image: "registry.local/shop:v1"}}},
		}, metav1.CreateOptions{})
		if err != nil {
			t.Fatal(err)
		}
	}
	create(t, ns, pipelineRun("pr", `
      - name: prepull
        taskRef: {apiVersion: custom.kruise.dev/v1alpha1, kind: ImagePrePull}
        params:
          - {name: image, value: "registry.local/shop:v2"}
          - {name: podSelector, value: "app=shop"}
`))
	pr := waitPipelineRun(t, ns, "pr", prTimeout)
	run := customRuns(t, ns, "pr")["prepull"]
	if !pr.Status.GetCondition("Succeeded").IsTrue() || result(run, v1alpha1.ResultDesired) != "2" {
		t.Fatalf("PipelineRun %+v, results %+v", pr.Status.GetCondition("Succeeded"), run.Status.Results)
	}
}

func TestFailures(t *testing.T) {
	for _, tc := range []struct {
		name, params string
		succeed      bool
		reason       string
		want         []string
	}{
		{"threshold met", `[{name: image, value: "registry.local/flaky-x:v1"}, {name: nodeSelector, value: "node-type=web"}, {name: successThreshold, value: "60%"}]`,
			true, "Succeeded", []string{"2/3 nodes have registry.local/flaky-x:v1 (1 failed)", "web-b1", "not found"}},
		{"threshold missed", `[{name: image, value: "registry.local/flaky-x:v1"}, {name: nodeSelector, value: "node-type=web"}]`,
			false, v1alpha1.ReasonThresholdNotMet.String(), []string{"successThreshold 100% needs 3", `web-b1 (registry.local/flaky-x:v1): Failed to pull image reference "registry.local/flaky-x:v1"`, "not found"}},
		{"no node matches", `[{name: image, value: "registry.local/app:v1"}, {name: nodeSelector, value: "node-type=gpu"}]`,
			false, v1alpha1.ReasonNoNodes.String(), []string{"no node matched node selector node-type=gpu"}},
		{"missing everywhere", `[{name: image, value: "registry.local/app:missing-tag"}, {name: nodeNames, value: [web-a1]}]`,
			false, v1alpha1.ReasonThresholdNotMet.String(), []string{"0/1 nodes", "web-a1"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ns := namespace(t)
			create(t, ns, pipelineRun("pr", `
      - name: prepull
        taskRef: {apiVersion: custom.kruise.dev/v1alpha1, kind: ImagePrePull}
        params: `+tc.params+"\n"))
			pr := waitPipelineRun(t, ns, "pr", prTimeout)
			run := customRuns(t, ns, "pr")["prepull"]
			if pr.Status.GetCondition("Succeeded").IsTrue() != tc.succeed || cond(run).Reason != tc.reason {
				t.Fatalf("PipelineRun %+v; CustomRun %+v", pr.Status.GetCondition("Succeeded"), cond(run))
			}
			contains(t, "message", cond(run).Message, tc.want...)
		})
	}
}

func TestBadParamsFailAtOnce(t *testing.T) {
	ns := namespace(t)
	create(t, ns, pipelineRun("pr", `
      - name: prepull
        taskRef: {apiVersion: custom.kruise.dev/v1alpha1, kind: ImagePrePull}
        params:
          - {name: image, value: "registry.local/app@sha256:0000000000000000000000000000000000000000000000000000000000000000"}
          - {name: parallelism, value: "0"}
`))
	pr := waitPipelineRun(t, ns, "pr", prTimeout)
	run := customRuns(t, ns, "pr")["prepull"]
	if pr.Status.GetCondition("Succeeded").IsTrue() || cond(run).Reason != v1alpha1.ReasonInvalidParams.String() {
		t.Fatalf("CustomRun %+v", cond(run))
	}
	contains(t, "message", cond(run).Message, "params.image", "a digest alone cannot be pre-pulled", "params.parallelism")
	if n := len(jobs(t, ns)); n != 0 {
		t.Errorf("%d ImagePullJobs for bad params", n)
	}
}

// A megabyte of bad input ends the run with a short message: a message that
// repeated it would make a status the API server refuses to store, and the
// run would never end.
func TestHugeBadParamEnds(t *testing.T) {
	ns := namespace(t)
	run := &v1beta1.CustomRun{
		ObjectMeta: metav1.ObjectMeta{Name: "huge", Namespace: ns},
		Spec: v1beta1.CustomRunSpec{
			CustomRef: &v1beta1.TaskRef{APIVersion: "custom.kruise.dev/v1alpha1", Kind: "ImagePrePull"},
			Params: v1beta1.Params{{Name: "image",
				Value: *v1beta1.NewStructuredValues("Registry/" + strings.Repeat("x", 1<<20))}},
		},
	}
	if _, err := c.Tekton.TektonV1beta1().CustomRuns(ns).Create(context.Background(), run, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	got := waitCustomRun(t, ns, "huge", time.Minute, "done", func(r *v1beta1.CustomRun) bool { return r.IsDone() })
	if cond(got).Reason != v1alpha1.ReasonInvalidParams.String() {
		t.Fatalf("CustomRun %.500v", cond(got))
	}
	contains(t, "message", cond(got).Message, "params.image", "not an image reference")
	if n := len(cond(got).Message); n > 4096 {
		t.Errorf("the message is %d bytes long", n)
	}
}
