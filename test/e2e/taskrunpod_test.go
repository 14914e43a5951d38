//go:build e2e

package e2e

import (
	"context"
	"fmt"
	"strings"
	"testing"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/imageprepull/imageprepull/test/cluster"
)

// A pipeline is proven when a later task has consumed the step's results:
// here the later task's pod runs on the real node (Tekton's own helper
// images from the local registry, the step's script in busybox's sh),
// reads the digest the pre-pull checked on the node and its node count, and
// hands them on as its own results. Run inside TestRealNode, which starts the
// node.
func testALaterTaskPodReadsTheResults(t *testing.T) {
	ctx := context.Background()
	ns := namespace(t)
	// The tag and the digest the push printed, as a build step hands them on.
	repo, tagged, digest := demoApp(t, "consumed")
	pushed, pinned := tagged+digest, repo+digest
	// The pod template a user aims a pipeline's pods at a node pool with.
	onRealNode := fmt.Sprintf(`  taskRunTemplate:
    podTemplate:
      nodeSelector: {kubernetes.io/hostname: %s}
      tolerations: [{key: %s, operator: Equal, value: "%s", effect: %s}]
`, cluster.RealNodeName, cluster.RealNodeTaint.Key, cluster.RealNodeTaint.Value, cluster.RealNodeTaint.Effect)
	create(t, ns, pipelineRun("pr", fmt.Sprintf(`
      - name: prepull
        taskRef: {apiVersion: custom.kruise.dev/v1alpha1, kind: ImagePrePull}
        params: [{name: nodeNames, value: [%s]}, {name: image, value: "%s"}]
      - name: deploy
        params:
          - {name: image, value: $(tasks.prepull.results.digests)}
          - {name: nodes, value: $(tasks.prepull.results.succeeded)}
        taskSpec:
          params: [{name: image}, {name: nodes}]
          results: [{name: deployed}, {name: nodes}]
          steps:
            - name: read
              image: %s
              env:
                - {name: IMAGE, value: $(params.image)}
                - {name: NODES, value: $(params.nodes)}
              script: |
                printf '%%s' "$IMAGE" > $(results.deployed.path)
                printf '%%s' "$NODES" > $(results.nodes.path)
`, cluster.RealNodeName, pushed, c.Pipelines.ShellImage), onRealNode))
	pr := waitPipelineRun(t, ns, "pr", prTimeout)
	run := customRuns(t, ns, "pr")["prepull"]
	if got := result(run, "digests"); got != pinned {
		t.Fatalf("the pre-pull's digests %q, want %q; its condition %+v", got, pinned, cond(run))
	}
	tr := waitTaskRun(t, ns, "pr", "deploy")
	if done := pr.Status.GetCondition("Succeeded"); !done.IsTrue() {
		pod, _ := c.Kube.CoreV1().Pods(ns).Get(ctx, tr.Status.PodName, metav1.GetOptions{})
		t.Fatalf("PipelineRun: %+v\nthe deploy TaskRun: %+v\nits pod: %+v", done, tr.Status.GetCondition("Succeeded"), pod.Status)
	}
	got := map[string]string{}
	for _, r := range tr.Status.Results {
		got[r.Name] = r.Value.StringVal
	}
	if got["deployed"] != pinned || got["nodes"] != "1" {
		t.Errorf("the deploy task's results %v, want deployed %s and nodes 1, as the pre-pull reported", got, pinned)
	}
	pod, err := c.Kube.CoreV1().Pods(ns).Get(ctx, tr.Status.PodName, metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if pod.Spec.NodeName != cluster.RealNodeName {
		t.Errorf("the deploy task's pod ran on %q, want %s", pod.Spec.NodeName, cluster.RealNodeName)
	}
	// Tekton's helper containers ran from the images made here.
	for _, ic := range pod.Spec.InitContainers {
		if !strings.HasPrefix(ic.Image, c.Registry+"/tekton/") {
			t.Errorf("init container %s ran %s, want an image of %s/tekton", ic.Name, ic.Image, c.Registry)
		}
	}
}
