//go:build e2e

package e2e

import (
	"context"
	"fmt"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/tektoncd/pipeline/pkg/apis/pipeline/v1beta1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/imageprepull/imageprepull/pkg/apis/custom/v1alpha1"
	"github.com/imageprepull/imageprepull/test/cluster"
)

// realNodePrePull runs one pre-pull on the real node alone; params are YAML
// flow items.
type realNodePrePull func(t *testing.T, ns string, params ...string) *v1beta1.CustomRun

// A tag pushed again, on the real node (kubelet, containerd, kruise-daemon):
// by tag alone the node keeps the image it had (OpenKruise's IfNotPresent)
// and the run says which; with the new push's digest the node pulls it and
// is checked against it; a digest the tag no longer names fails naming both;
// a rollout by the digest then starts from the pre-pulled image. The image
// ID the node reports is the digest of the image's config, which the
// controller reads from the registry: containerd's CRI image ID.
func testATagPushedAgain(t *testing.T, prepull realNodePrePull) {
	ctx := context.Background()
	repo, tagged, _ := demoApp(t, "moving")
	digestA, idA := pushed(t, tagged)
	run := prepull(t, namespace(t), `{name: image, value: "`+tagged+`"}`)
	if !cond(run).IsTrue() || result(run, v1alpha1.ResultImageIDs) != idA {
		t.Fatalf("pre-pull of image A: %+v, imageIDs %q, want %s (its config digest)", cond(run), result(run, v1alpha1.ResultImageIDs), idA)
	}

	// Image B under the same tag.
	if err := c.Registries.PushVariant(ctx, tagged, tagged, map[string]string{"build.txt": "B"}); err != nil {
		t.Fatal(err)
	}
	digestB, idB := pushed(t, tagged)
	if digestB == digestA || idB == idA {
		t.Fatalf("the second push did not make another image: %s %s", digestA, digestB)
	}

	// (a) By tag alone the node still has A: the run succeeds, and says so.
	run = prepull(t, namespace(t), `{name: image, value: "`+tagged+`"}`)
	if !cond(run).IsTrue() || result(run, v1alpha1.ResultImageIDs) != idA {
		t.Fatalf("by tag after the push: %+v, imageIDs %q, want A's %s (IfNotPresent keeps it)", cond(run), result(run, v1alpha1.ResultImageIDs), idA)
	}

	// (b) With B's digest the node pulls B, and is checked against it.
	run = prepull(t, namespace(t), `{name: image, value: "`+tagged+`"}`, `{name: digest, value: "`+digestB+`"}`)
	if !cond(run).IsTrue() || result(run, v1alpha1.ResultImageIDs) != idB || result(run, v1alpha1.ResultDigests) != repo+"@"+digestB {
		t.Fatalf("with B's digest: %+v, imageIDs %q (want %s), digests %q", cond(run), result(run, v1alpha1.ResultImageIDs), idB, result(run, v1alpha1.ResultDigests))
	}

	// (c) A's digest, which the tag no longer names: the node pulls the
	// tag, has B, and the run fails naming both.
	run = prepull(t, namespace(t), `{name: image, value: "`+tagged+`@`+digestA+`"}`, `{name: backoffLimit, value: "0"}`)
	t.Logf("with A's digest: %s", cond(run).Message)
	if cond(run).IsTrue() || cond(run).Reason != v1alpha1.ReasonThresholdNotMet.String() || result(run, v1alpha1.ResultFailedNodes) != cluster.RealNodeName {
		t.Fatalf("with a digest the tag no longer names: %+v, failedNodes %q", cond(run), result(run, v1alpha1.ResultFailedNodes))
	}
	contains(t, "message", cond(run).Message, cluster.RealNodeName+": has image "+idB+", not "+idA, repo+"@"+digestA)

	// (d) A rollout by B's digest starts from the pre-pulled image.
	pinned := repo + "@" + digestB
	startedFromThePrePull(t, rollOut(t, namespace(t), "by-digest", pinned), pinned)
}

// pushed is the manifest digest ref names now and the image ID a node of
// this machine's platform gets from it.
func pushed(t *testing.T, ref string) (digest, id string) {
	t.Helper()
	digest, err := c.Registries.Digest(context.Background(), ref)
	if err != nil {
		t.Fatal(err)
	}
	id, ok := c.Registries.ImageID(context.Background(), ref, "linux", runtime.GOARCH)
	if !ok {
		t.Fatalf("no image ID for %s", ref)
	}
	return digest, id
}

// A multi-platform index: each node is checked against its own platform's
// image, the real node against linux/amd64's (this machine's), a simulated
// arm64 node against linux/arm64's.
func testAnIndexIsCheckedPerPlatform(t *testing.T) {
	ctx := context.Background()
	ns := namespace(t)
	arm := "arm-" + ns[strings.LastIndex(ns, "-")+1:]
	if err := c.Nodes.Add(ctx, cluster.Node{Name: arm, Labels: map[string]string{corev1.LabelArchStable: "arm64"}}); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = c.Kube.CoreV1().Nodes().Delete(ctx, arm, metav1.DeleteOptions{}) })
	img := fmt.Sprintf("%s/e2e/multi:v-%d", c.Registry, time.Now().UnixNano())
	digest, err := c.Registries.PushIndex(ctx, img, map[string]string{"hello.txt": "multi"})
	if err != nil {
		t.Fatal(err)
	}
	create(t, ns, pipelineRun("pr", fmt.Sprintf(`
      - name: prepull
        taskRef: {apiVersion: custom.kruise.dev/v1alpha1, kind: ImagePrePull}
        params: [{name: image, value: "%s"}, {name: digest, value: "%s"}, {name: nodeNames, value: [%s, %s]}]
`, img, digest, cluster.RealNodeName, arm)))
	waitPipelineRun(t, ns, "pr", prTimeout)
	run := customRuns(t, ns, "pr")["prepull"]
	if !cond(run).IsTrue() {
		t.Fatalf("CustomRun %+v", cond(run))
	}
	contains(t, "message", cond(run).Message, "2/2 nodes have "+img)
	for node, arch := range map[string]string{cluster.RealNodeName: runtime.GOARCH, arm: "arm64"} {
		want, ok := c.Registries.ImageID(ctx, img, "linux", arch)
		if !ok {
			t.Fatalf("no image ID for %s on %s", img, arch)
		}
		ni, err := c.Kruise.AppsV1alpha1().NodeImages().Get(ctx, node, metav1.GetOptions{})
		if err != nil {
			t.Fatal(err)
		}
		name, tag, _ := strings.Cut(img[len(c.Registry)+1:], ":")
		var got string
		for _, st := range ni.Status.ImageStatuses[c.Registry+"/"+name].Tags {
			if st.Tag == tag {
				got = st.ImageID
			}
		}
		if !strings.HasSuffix(got, "@"+want) {
			t.Errorf("%s (%s) reports %q, want %s", node, arch, got, want)
		}
	}
	if got := result(run, v1alpha1.ResultImageIDs); got != "" {
		t.Errorf("imageIDs = %q for nodes of two platforms, want empty (they hold different images)", got)
	}
}
