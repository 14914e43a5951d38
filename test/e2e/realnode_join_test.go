//go:build e2e

package e2e

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/imageprepull/imageprepull/pkg/apis/custom/v1alpha1"
	"github.com/imageprepull/imageprepull/test/cluster"
)

// A node that joins the pool after the pre-pull, as an autoscaler adds one:
// the run counted the nodes there were when its job ran and is done; the
// new node's NodeImage never names the image, so kruise-daemon does not pull
// it there, and the rollout's pod on it pulls the image as it starts, while
// the pod on the node that was there starts from the pre-pull
// (docs/usage.md, "Nodes that join later").
func testANodeThatJoinsAfterThePrePull(t *testing.T) {
	ctx := context.Background()
	ns := namespace(t)
	repo, image, _ := demoApp(t, "joined")
	// The pool by its label, as users name theirs; only the first real node has it yet.
	create(t, ns, pipelineRun("pr", fmt.Sprintf(`
      - name: prepull
        taskRef: {apiVersion: custom.kruise.dev/v1alpha1, kind: ImagePrePull}
        params: [{name: image, value: %q}, {name: nodeSelector, value: "%s=true"}]
`, image, cluster.RealNodeLabel)))
	waitPipelineRun(t, ns, "pr", prTimeout)
	run := customRuns(t, ns, "pr")["prepull"]
	if !cond(run).IsTrue() || result(run, v1alpha1.ResultDesired) != "1" || result(run, v1alpha1.ResultSucceeded) != "1" {
		t.Fatalf("pre-pull over the pool of one: %+v, results %+v", cond(run), run.Status.Results)
	}

	joiner := c.RealNodes(2)[1]
	t.Cleanup(func() {
		if err := joiner.Remove(ctx); err != nil {
			t.Error(err)
		}
	})
	if err := joiner.Start(ctx); err != nil {
		t.Fatal(err)
	}
	// The pool has two nodes now; the job that served the run is done with it.
	has, err := joiner.Has(ctx, image)
	if err != nil || has {
		t.Fatalf("the node that joined has %s: %v (%v), want not", image, has, err)
	}
	ni, err := c.Kruise.AppsV1alpha1().NodeImages().Get(ctx, joiner.Name(), metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	for name := range ni.Spec.Images {
		if name == repo || strings.HasSuffix(repo, "/"+name) {
			t.Fatalf("NodeImage %s names %s: %+v, want no pull of it there", ni.Name, name, ni.Spec.Images[name])
		}
	}
	if again := customRuns(t, ns, "pr")["prepull"]; result(again, v1alpha1.ResultDesired) != "1" {
		t.Fatalf("the finished run's results changed: %+v", again.Status.Results)
	}

	spread, err := c.RollOutAcross(ctx, ns, "web", image, 2, 3*time.Minute)
	if err != nil {
		t.Fatal(err)
	}
	byNode := map[string]bool{}
	for _, r := range spread.Pods {
		byNode[r.Pod.Spec.NodeName] = true
		switch r.Pod.Spec.NodeName {
		case cluster.RealNodeName:
			startedFromThePrePull(t, r.Pod, image)
		case joiner.Name():
			pulledAtStart(t, r.Pod, image)
		}
	}
	if !byNode[cluster.RealNodeName] || !byNode[joiner.Name()] {
		t.Fatalf("pods on %v, want one on %s and one on %s", byNode, cluster.RealNodeName, joiner.Name())
	}
}
