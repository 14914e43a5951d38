//go:build e2e

package e2e

import (
	"context"
	"fmt"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/imageprepull/imageprepull/pkg/apis/custom/v1alpha1"
)

// A pipeline hands over the tag and, apart, the digest its build printed
// (IMAGE_URL and IMAGE_DIGEST): every node is checked against the digest,
// and the pipeline's result is the repository@digest a deploy pins.
func TestADigestIsCheckedOnEveryNodeAndHandedOn(t *testing.T) {
	ctx := context.Background()
	ns := namespace(t)
	img := fmt.Sprintf("%s/e2e/checked:v-%d", c.Registry, time.Now().UnixNano())
	if err := c.Registries.Push(ctx, img, map[string]string{"hello.txt": img}); err != nil {
		t.Fatal(err)
	}
	digest, id := pushed(t, img)
	create(t, ns, pipelineRun("pr", `
      - name: prepull
        taskRef: {apiVersion: custom.kruise.dev/v1alpha1, kind: ImagePrePull}
        params:
          - {name: image, value: "$(params.IMAGE_URL)"}
          - {name: digest, value: "$(params.IMAGE_DIGEST)"}
          - {name: nodeSelector, value: "node-type=web"}
    results: [{name: deploy, value: $(tasks.prepull.results.digests)}]
`, fmt.Sprintf("  params: [{name: IMAGE_URL, value: %q}, {name: IMAGE_DIGEST, value: %q}]\n", img, digest)))
	pr := waitPipelineRun(t, ns, "pr", prTimeout)
	run := customRuns(t, ns, "pr")["prepull"]
	if !pr.Status.GetCondition("Succeeded").IsTrue() {
		t.Fatalf("PipelineRun %+v; CustomRun %+v", pr.Status.GetCondition("Succeeded"), cond(run))
	}
	repo := img[:strings.LastIndex(img, ":")]
	if len(pr.Status.Results) != 1 || pr.Status.Results[0].Value.StringVal != repo+"@"+digest {
		t.Errorf("pipeline results %+v, want deploy %s@%s", pr.Status.Results, repo, digest)
	}
	contains(t, "message", cond(run).Message, "3/3 nodes have "+img)
	if got := result(run, v1alpha1.ResultImageIDs); got != id {
		t.Errorf("imageIDs = %q, want %s (linux/%s's config digest)", got, id, runtime.GOARCH)
	}
	if j := jobs(t, ns)[0]; j.Spec.Image != img || j.Spec.ImagePullPolicy != "Always" {
		t.Errorf("job pulls %s with %s, want the tag with Always", j.Spec.Image, j.Spec.ImagePullPolicy)
	}
}

// The nodes pull (through a mirror, say) from a registry the controller
// cannot reach: the run ends saying so, and what to grant, never a
// success it could not check.
func TestARegistryTheControllerCannotReachEndsTheRun(t *testing.T) {
	ns := namespace(t)
	img := "127.0.0.1:1/e2e/unreachable:v1"
	create(t, ns, pipelineRun("pr", `
      - name: prepull
        taskRef: {apiVersion: custom.kruise.dev/v1alpha1, kind: ImagePrePull}
        params:
          - {name: image, value: "`+img+`"}
          - {name: digest, value: "sha256:`+strings.Repeat("d", 64)+`"}
          - {name: nodeSelector, value: "node-type=web"}
`))
	pr := waitPipelineRun(t, ns, "pr", prTimeout)
	run := customRuns(t, ns, "pr")["prepull"]
	if pr.Status.GetCondition("Succeeded").IsTrue() || cond(run).Reason != v1alpha1.ReasonRegistryUnreadable.String() {
		t.Fatalf("PipelineRun %+v; CustomRun %+v, want %s", pr.Status.GetCondition("Succeeded"), cond(run), v1alpha1.ReasonRegistryUnreadable)
	}
	contains(t, "message", cond(run).Message, "from registry 127.0.0.1:1", "connection refused",
		"name a kubernetes.io/dockerconfigjson Secret that can read 127.0.0.1:1/e2e/unreachable in pullSecrets, and let the controller reach the registry")
}
