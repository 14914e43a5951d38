//go:build e2e

package e2e

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/tektoncd/pipeline/pkg/apis/pipeline/v1beta1"
	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/wait"
	"sigs.k8s.io/yaml"

	"github.com/imageprepull/imageprepull/test/cluster"
	"github.com/imageprepull/imageprepull/test/simulator"
)

// make release writes a release.yaml with a multi-platform image pinned by
// digest, and SBOMs; `kubectl apply -f release.yaml` alone (no ko, no source
// tree) upgrades the running controller while runs are in flight, and none
// of them is lost or doubled; the seed pipeline then runs through the
// released controller.
func TestReleaseUpgradesWithRunsInFlight(t *testing.T) {
	ctx := context.Background()
	const version = "v0.0.0-e2e.1"
	dist := t.TempDir()
	releasePath, err := c.Release(ctx, version, dist)
	if err != nil {
		t.Fatal(err)
	}
	image := releaseImage(t, releasePath)
	if !strings.HasPrefix(image, c.Registry+"/imageprepull/") || !strings.Contains(image, ":"+version+"@sha256:") {
		t.Fatalf("release.yaml's image %q is not the version's tag pinned by digest in the local registry", image)
	}
	platforms, err := cluster.ImagePlatforms(ctx, image)
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"linux/amd64", "linux/arm64"} {
		if !slices.Contains(platforms, want) {
			t.Errorf("the released image has platforms %v, want %s among them", platforms, want)
		}
	}
	checkSBOMs(t, filepath.Join(dist, "sbom"))

	// Runs in flight: each pulls for 15 s on a node of its own kind.
	ns := namespace(t)
	node := "upgrade-" + ns[strings.LastIndex(ns, "-")+1:]
	if err := c.Nodes.Add(ctx, cluster.Node{Name: node, Annotations: map[string]string{simulator.AnnotationPullMillis: "15000"}}); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := c.Kube.CoreV1().Nodes().Delete(ctx, node, metav1.DeleteOptions{}); err != nil {
			t.Error(err)
		}
	})
	const inFlight = 10
	for i := range inFlight {
		create(t, ns, pipelineRun(fmt.Sprintf("pr-%d", i), `
      - name: prepull
        taskRef: {apiVersion: custom.kruise.dev/v1alpha1, kind: ImagePrePull}
        params: [{name: image, value: "registry.local/app:upgrade-`+fmt.Sprint(i)+`"}, {name: nodeNames, value: [`+node+`]}]
`))
	}
	waitJobs(t, ns, inFlight)

	// What a user does with the release: the file alone.
	applied := filepath.Join(t.TempDir(), "release.yaml")
	b, err := os.ReadFile(releasePath)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(applied, b, 0o644); err != nil {
		t.Fatal(err)
	}
	released.yaml, released.image = b, image
	if _, err := c.Kubectl(ctx, "apply", "-f", applied); err != nil {
		t.Fatal(err)
	}
	dep, err := c.Kube.AppsV1().Deployments(cluster.Namespace).Get(ctx, "imageprepull-controller", metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if got := dep.Spec.Template.Spec.Containers[0].Image; got != image {
		t.Fatalf("after kubectl apply -f release.yaml the Deployment runs %q, want %q", got, image)
	}
	for _, r := range customRunsIn(t, ns) {
		if r.IsDone() {
			t.Fatalf("run %s ended before the upgrade (%+v): the test proves nothing of runs in flight", r.Name, cond(r))
		}
	}
	if err := c.Upgrade(ctx, image); err != nil {
		t.Fatal(err)
	}

	for i := range inFlight {
		waitPipelineRun(t, ns, fmt.Sprintf("pr-%d", i), prTimeout)
	}
	runs := customRunsIn(t, ns)
	if len(runs) != inFlight {
		t.Fatalf("%d CustomRuns, want %d", len(runs), inFlight)
	}
	perRun := map[string]int{}
	for _, job := range jobs(t, ns) {
		for _, ref := range job.OwnerReferences {
			perRun[ref.Name]++
		}
	}
	ends := endEvents(t, ns, inFlight)
	for _, r := range runs {
		if !r.IsSuccessful() || len(r.Status.RetriesStatus) > 0 {
			t.Errorf("run %s: %+v, retries %d; want it Successful at its first attempt", r.Name, cond(r), len(r.Status.RetriesStatus))
		}
		if perRun[r.Name] != 1 {
			t.Errorf("run %s has %d ImagePullJobs, want 1", r.Name, perRun[r.Name])
		}
		if ends[r.Name] != 1 {
			t.Errorf("run %s: %d Events of its end, want 1", r.Name, ends[r.Name])
		}
	}

	// The seed pipeline, through the released controller.
	t.Run("seed pipeline", func(t *testing.T) {
		ns := namespace(t)
		ex := examples["seed pipeline"]
		pr := ex.create(t, ns, customTasksOnly)
		done := waitPipelineRun(t, ns, pr, prTimeout)
		checkOutcome(t, done, customRuns(t, ns, pr)["prepull"], nil, true)
	})
}

// released is the release TestReleaseUpgradesWithRunsInFlight made and
// installed, for the tests after it (empty where it did not run).
var released struct {
	yaml  []byte
	image string
}

// releaseImage is the controller image release.yaml's Deployment runs.
func releaseImage(t *testing.T, path string) string {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if strings.Contains(string(b), "ko://") {
		t.Fatal("release.yaml still has a ko:// reference")
	}
	for _, doc := range strings.Split(string(b), "\n---") {
		var dep appsv1.Deployment
		if err := yaml.Unmarshal([]byte(doc), &dep); err != nil || dep.Kind != "Deployment" {
			continue
		}
		return dep.Spec.Template.Spec.Containers[0].Image
	}
	t.Fatal("release.yaml has no Deployment")
	return ""
}

// checkSBOMs checks that ko wrote SPDX documents.
func checkSBOMs(t *testing.T, dir string) {
	t.Helper()
	files, err := filepath.Glob(filepath.Join(dir, "*"))
	if err != nil || len(files) == 0 {
		t.Fatalf("no SBOM in %s (%v)", dir, err)
	}
	for _, f := range files {
		b, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		var doc struct {
			SPDXVersion string `json:"spdxVersion"`
			Packages    []any  `json:"packages"`
		}
		if err := json.Unmarshal(b, &doc); err != nil || !strings.HasPrefix(doc.SPDXVersion, "SPDX-") || len(doc.Packages) == 0 {
			t.Errorf("%s is not an SPDX document with packages (%v)", filepath.Base(f), err)
		}
	}
	t.Logf("SBOMs: %d files in %s", len(files), dir)
}

// customRunsIn are the namespace's CustomRuns.
func customRunsIn(t *testing.T, ns string) []*v1beta1.CustomRun {
	t.Helper()
	l, err := c.Tekton.TektonV1beta1().CustomRuns(ns).List(context.Background(), metav1.ListOptions{})
	if err != nil {
		t.Fatal(err)
	}
	out := make([]*v1beta1.CustomRun, len(l.Items))
	for i := range l.Items {
		out[i] = &l.Items[i]
	}
	return out
}

// endEvents counts, by CustomRun, the Events of its end (a run's one Event;
// a repeat of the same Event shows in its count), once n runs have one:
// Events are sent a moment after the status write.
func endEvents(t *testing.T, ns string, n int) map[string]int {
	t.Helper()
	var out map[string]int
	err := wait.PollUntilContextTimeout(context.Background(), 200*time.Millisecond, 30*time.Second, true, func(ctx context.Context) (bool, error) {
		l, err := c.Kube.CoreV1().Events(ns).List(ctx, metav1.ListOptions{FieldSelector: "involvedObject.kind=CustomRun"})
		if err != nil {
			return false, err
		}
		out = map[string]int{}
		for _, e := range l.Items {
			if e.Type == corev1.EventTypeNormal && e.Reason == v1beta1.CustomRunReasonSuccessful.String() {
				out[e.InvolvedObject.Name] += int(max(e.Count, 1))
			}
		}
		return len(out) == n, nil
	})
	if err != nil {
		t.Errorf("Events of %d runs' ends, want %d: %v", len(out), n, err)
	}
	return out
}
