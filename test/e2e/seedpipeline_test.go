//go:build e2e

package e2e

import (
	"context"
	"strings"
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

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
