//go:build e2e

package e2e

import (
	"context"
	"slices"
	"strings"
	"testing"
	"time"

	pipelinev1 "github.com/tektoncd/pipeline/pkg/apis/pipeline/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/wait"
	"k8s.io/utils/ptr"
	"knative.dev/pkg/apis"

	"github.com/imageprepull/imageprepull/test/cluster"
)

// The seed's pipeline whole (examples/local-demo, what make demo runs): its
// build task tests, builds and pushes the demo app inside a pod on the real
// node, the pre-pull takes the tag and the digest the build reported, and
// the deploy task rolls out the digest the pre-pull checked on the node,
// whose pod starts without pulling. Run inside TestRealNode, which starts
// the node.
func testTheSeedPipelineWhole(t *testing.T) {
	ctx := context.Background()
	ns := namespace(t)
	branch, sha := "hello_world", "e2e"+strings.ReplaceAll(time.Now().Format("150405.000"), ".", "")
	pr, err := c.PrepareLocalDemo(ctx, cluster.LocalDemo{
		Namespace: ns, Branch: branch, ShortSHA: sha,
		// The helloworld policy selects node-type=web, which here are
		// simulated nodes; the real node is the one that runs the rollout.
		Policy: func(doc string) string {
			return strings.Replace(doc, "node-type: web", "kubernetes.io/hostname: "+cluster.RealNodeName, 1)
		},
	})
	if err != nil {
		t.Fatal(err)
	}
	if pr, err = c.Tekton.TektonV1().PipelineRuns(ns).Create(ctx, pr, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	done := waitPipelineRun(t, ns, pr.Name, 10*time.Minute)
	build, deploy := waitTaskRun(t, ns, pr.Name, "build-push"), waitTaskRun(t, ns, pr.Name, "deploy")
	if cond := done.Status.GetCondition("Succeeded"); !cond.IsTrue() {
		t.Fatalf("PipelineRun: %+v\nbuild-push: %+v\ndeploy: %+v", cond, build.Status.GetCondition("Succeeded"), deploy.Status.GetCondition("Succeeded"))
	}
	results := map[string]string{}
	for _, tr := range []string{build.Name, deploy.Name} {
		got, err := c.Tekton.TektonV1().TaskRuns(ns).Get(ctx, tr, metav1.GetOptions{})
		if err != nil {
			t.Fatal(err)
		}
		for _, r := range got.Status.Results {
			results[r.Name] = r.Value.StringVal
		}
	}
	// What the build pushed is what the registry holds under the seed's tag.
	repo := c.Registry + "/demo/hello-world"
	tagged := repo + ":" + branch + "-" + sha
	pushed, err := c.Registries.Digest(ctx, tagged)
	if err != nil {
		t.Fatalf("the build's push of %s: %v", tagged, err)
	}
	if results["IMAGE_URL"] != tagged || results["IMAGE_DIGEST"] != pushed {
		t.Errorf("the build's results %s@%s, want %s@%s as the registry holds it", results["IMAGE_URL"], results["IMAGE_DIGEST"], tagged, pushed)
	}
	run := customRuns(t, ns, pr.Name)["prepull"]
	pinned := repo + "@" + pushed
	if got := result(run, "digests"); got != pinned || result(run, "succeeded") != "1" {
		t.Errorf("the pre-pull's digests %q and succeeded %q, want %s on 1 node; its condition %+v", got, result(run, "succeeded"), pinned, cond(run))
	}
	// The deploy task consumed the pre-pull's result: its pod runs that image.
	if want := cluster.RealNodeName + "=" + pinned; strings.TrimSpace(results["pods"]) != want {
		t.Errorf("the deploy task's pods %q, want %q", results["pods"], want)
	}
	pods, err := c.Kube.CoreV1().Pods(ns).List(ctx, metav1.ListOptions{LabelSelector: "app=helloworld,pod-template-hash"})
	if err != nil || len(pods.Items) != 1 {
		t.Fatalf("the rollout's pods: %v (%d)", err, len(pods.Items))
	}
	startedFromThePrePull(t, &pods.Items[0], pinned)
	// Its build ran on the real node, from the images made here.
	for _, tr := range []string{build.Status.PodName, deploy.Status.PodName} {
		pod, err := c.Kube.CoreV1().Pods(ns).Get(ctx, tr, metav1.GetOptions{})
		if err != nil {
			t.Fatal(err)
		}
		if pod.Spec.NodeName != cluster.RealNodeName {
			t.Errorf("pod %s ran on %q, want %s", pod.Name, pod.Spec.NodeName, cluster.RealNodeName)
		}
		for _, ct := range pod.Spec.Containers {
			if !strings.HasPrefix(ct.Image, c.Registry+"/steps/") {
				t.Errorf("pod %s's step %s ran %s, want an image of %s/steps", pod.Name, ct.Name, ct.Image, c.Registry)
			}
		}
	}
}

// The seed's own kubectl Task (examples/local-demo/kubectl-task), which make
// bench runs whole beside the ImagePrePull pipeline: its pod, on the real
// node, seds the ConfigMap's template and applies the job with the
// kubeconfig Secret it mounts, then ends with nothing to say about the pull;
// the job pulls onto the node afterwards. The image is pushed here: the
// build is the pipeline case's above. Run inside TestRealNode.
func testTheSeedsKubectlTask(t *testing.T) {
	ctx := context.Background()
	ns := namespace(t)
	branch, sha := "hello_world", "k"+strings.ReplaceAll(time.Now().Format("150405.000"), ".", "")
	pr, err := c.PrepareLocalDemo(ctx, cluster.LocalDemo{Namespace: ns, Branch: branch, ShortSHA: sha, KubectlTask: true})
	if err != nil {
		t.Fatal(err)
	}
	tagged := c.Registry + "/demo/hello-world:" + branch + "-" + sha
	if err := c.Registries.PushVariant(ctx, c.BaseImage, tagged, map[string]string{"kubectl-task": sha}); err != nil {
		t.Fatal(err)
	}
	// The pipeline's params the Task takes, and its pod template (the real node).
	tr := &pipelinev1.TaskRun{
		ObjectMeta: metav1.ObjectMeta{Name: "predownload", Namespace: ns},
		Spec: pipelinev1.TaskRunSpec{
			TaskRef:     &pipelinev1.TaskRef{Name: "helloworld-image-predownload"},
			PodTemplate: pr.Spec.TaskRunTemplate.PodTemplate,
		},
	}
	for _, p := range pr.Spec.Params {
		if slices.Contains([]string{"branch", "short_sha", "docker_repo", "app_name", "kubectl_image"}, p.Name) {
			tr.Spec.Params = append(tr.Spec.Params, p)
		}
	}
	if _, err := c.Tekton.TektonV1().TaskRuns(ns).Create(ctx, tr, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	if err := wait.PollUntilContextTimeout(ctx, 200*time.Millisecond, prTimeout, true, func(ctx context.Context) (bool, error) {
		tr, err = c.Tekton.TektonV1().TaskRuns(ns).Get(ctx, "predownload", metav1.GetOptions{})
		return err == nil && !tr.Status.GetCondition(apis.ConditionSucceeded).IsUnknown(), nil
	}); err != nil {
		t.Fatalf("the kubectl Task's TaskRun did not finish: %v", err)
	}
	if cond := tr.Status.GetCondition(apis.ConditionSucceeded); !cond.IsTrue() {
		t.Fatalf("the kubectl Task: %s: %s", cond.Reason, cond.Message)
	}
	if len(tr.Status.Results) != 0 {
		t.Errorf("the kubectl Task reported results %+v; as the seed writes it, it has none", tr.Status.Results)
	}
	pod, err := c.Kube.CoreV1().Pods(ns).Get(ctx, tr.Status.PodName, metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	mountsKubeconfig := false
	for _, v := range pod.Spec.Volumes {
		mountsKubeconfig = mountsKubeconfig || (v.Secret != nil && v.Secret.SecretName == "kubeconfig")
	}
	if pod.Spec.NodeName != cluster.RealNodeName || !mountsKubeconfig {
		t.Errorf("the kubectl Task's pod ran on %q mounting %+v; want %s, with the kubeconfig Secret", pod.Spec.NodeName, pod.Spec.Volumes, cluster.RealNodeName)
	}
	// The job the sed filled in, as the seed's template has it.
	name := "helloworld-" + sha
	job, err := c.Kruise.AppsV1alpha1().ImagePullJobs(ns).Get(ctx, name, metav1.GetOptions{})
	if err != nil {
		t.Fatalf("the job the kubectl Task applied: %v", err)
	}
	s := job.Spec
	if s.Image != tagged || s.Parallelism == nil || s.Parallelism.IntValue() != 10 || s.Selector == nil || !slices.Equal(s.Selector.Names, []string{cluster.RealNodeName}) ||
		s.CompletionPolicy.Type != "Always" || ptr.Deref(s.CompletionPolicy.ActiveDeadlineSeconds, 0) != 1200 || ptr.Deref(s.CompletionPolicy.TTLSecondsAfterFinished, 0) != 300 ||
		s.PullPolicy == nil || ptr.Deref(s.PullPolicy.BackoffLimit, 0) != 3 || ptr.Deref(s.PullPolicy.TimeoutSeconds, 0) != 300 {
		t.Errorf("job %s: %+v, want the seed's template with image %s", name, s, tagged)
	}
	// The pull happens all the same, after the Task: only Kruise knows how it went.
	if err := wait.PollUntilContextTimeout(ctx, 200*time.Millisecond, prTimeout, true, func(ctx context.Context) (bool, error) {
		job, err = c.Kruise.AppsV1alpha1().ImagePullJobs(ns).Get(ctx, name, metav1.GetOptions{})
		return err == nil && job.Status.CompletionTime != nil, nil
	}); err != nil || job.Status.Succeeded != 1 {
		t.Fatalf("job %s: %v; status %+v", name, err, job.Status)
	}
	if has, err := c.RealNode.Has(ctx, tagged); err != nil || !has {
		t.Errorf("the real node's containerd has %s: %v, %v", tagged, has, err)
	}
}
