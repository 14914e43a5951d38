//go:build e2e

package e2e

import (
	"context"
	"encoding/json"
	"fmt"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	kruisev1alpha1 "github.com/openkruise/kruise-api/apps/v1alpha1"
	"github.com/tektoncd/pipeline/pkg/apis/pipeline/v1beta1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/apimachinery/pkg/util/wait"

	"github.com/imageprepull/imageprepull/pkg/apis/custom/v1alpha1"
	"github.com/imageprepull/imageprepull/test/cluster"
	"github.com/imageprepull/imageprepull/test/simulator"
)

func prepullOnce(t *testing.T, ns, image string) *v1beta1.CustomRun {
	t.Helper()
	create(t, ns, pipelineRun("pr", `
      - name: prepull
        taskRef: {apiVersion: custom.kruise.dev/v1alpha1, kind: ImagePrePull}
        params: [{name: image, value: "`+image+`"}, {name: nodeSelector, value: "node-type=web"}]
`))
	waitPipelineRun(t, ns, "pr", prTimeout)
	return customRuns(t, ns, "pr")["prepull"]
}

func TestKruiseFeatureGateOff(t *testing.T) {
	ctx := context.Background()
	if err := c.OpenKruise.StartManager(ctx, "ImagePullJobGate=false"); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := c.OpenKruise.StartManager(ctx, "ImagePullJobGate=true"); err != nil {
			t.Fatal(err)
		}
	})
	ns := namespace(t)
	run := prepullOnce(t, ns, "registry.local/app:gate")
	if cond(run).Reason != v1alpha1.ReasonKruiseFeatureGateDisabled.String() {
		t.Fatalf("CustomRun %+v", cond(run))
	}
	contains(t, "message", cond(run).Message, "feature-gate ImagePullJobGate is not enabled", "--feature-gates=ImagePullJobGate=true")
	if !c.Controllers.Running() {
		t.Fatal("the controller died")
	}
}

// Kruise's ImagePullJob CRD is absent when the controller starts, and is
// installed later: runs fail with the install hint meanwhile, the
// controller keeps running, and runs work once the CRD is there, without a
// restart.
func TestKruiseCRDAbsent(t *testing.T) {
	ctx := context.Background()
	crd := filepath.Join(kruiseDir(t), "config", "crd", "bases", "apps.kruise.io_imagepulljobs.yaml")
	if _, err := c.Kubectl(ctx, "delete", "-f", crd, "--wait=true", "--timeout=2m"); err != nil {
		t.Fatal(err)
	}
	restored := false
	restore := func() {
		if restored {
			return
		}
		restored = true
		if _, err := c.Kubectl(ctx, "apply", "--server-side", "-f", crd); err != nil {
			t.Fatal(err)
		}
		if _, err := c.Kubectl(ctx, "wait", "--for=condition=Established", "crd/imagepulljobs.apps.kruise.io"); err != nil {
			t.Fatal(err)
		}
		// Kruise's manager watches ImagePullJobs too: restart it on the new CRD.
		if err := c.OpenKruise.StartManager(ctx, "ImagePullJobGate=true"); err != nil {
			t.Fatal(err)
		}
	}
	t.Cleanup(restore)
	if err := c.Controllers.Restart(ctx); err != nil {
		t.Fatal(err)
	}

	run := prepullOnce(t, namespace(t), "registry.local/app:nocrd")
	if cond(run).Reason != v1alpha1.ReasonKruiseNotInstalled.String() {
		t.Fatalf("CustomRun %+v", cond(run))
	}
	contains(t, "message", cond(run).Message, "install OpenKruise", "ImagePullJobGate")
	if !c.Controllers.Running() {
		t.Fatal("the controller died without Kruise's CRD")
	}

	restore()
	ns := namespace(t)
	err := wait.PollUntilContextTimeout(ctx, time.Second, 2*time.Minute, true, func(ctx context.Context) (bool, error) {
		// The controller's ImagePullJob watch recovers on its own; a run tells when.
		name := "pr-" + strings.ReplaceAll(time.Now().Format("150405.000"), ".", "")
		create(t, ns, strings.Replace(pipelineRun(name, `
      - name: prepull
        taskRef: {apiVersion: custom.kruise.dev/v1alpha1, kind: ImagePrePull}
        params: [{name: image, value: "registry.local/app:crd-back"}, {name: nodeSelector, value: "node-type=web"}]
`), "pipeline: 10m", "pipeline: 1m", 1))
		pr := waitPipelineRun(t, ns, name, prTimeout)
		return pr.Status.GetCondition("Succeeded").IsTrue(), nil
	})
	if err != nil {
		t.Fatalf("no run succeeded after Kruise's CRD came back: %v", err)
	}
}

func kruiseDir(t *testing.T) string {
	t.Helper()
	out, err := exec.Command("go", "mod", "download", "-json", "github.com/openkruise/kruise@"+c.KruiseVersion).Output()
	if err != nil {
		t.Fatal(err)
	}
	var m struct{ Dir string }
	if err := json.Unmarshal(out, &m); err != nil {
		t.Fatal(err)
	}
	return m.Dir
}

// What users see: tkn customrun list and describe on a running, a
// succeeded, a failed and a cancelled ImagePrePull show the reason, a message
// that reads at a glance, and every result.
func TestTkn(t *testing.T) {
	results := []string{"desired", "succeeded", "failed", "failedNodes", "imagePullJobs"}

	ns := namespace(t)
	failed := prepullOnce(t, ns, "registry.local/flaky-tkn:v1")
	out := tkn(t, ns, "customrun", "describe", failed.Name)
	contains(t, "tkn describe (failed)", out, append(results, "Failed(ThresholdNotMet)", "2/3 nodes have registry.local/flaky-tkn:v1 (1 failed)",
		"successThreshold 100% needs 3", "web-b1 (registry.local/flaky-tkn:v1): Failed to pull image", "not found")...)
	if !regexp.MustCompile(`(?m)^ failedNodes +web-b1$`).MatchString(out) {
		t.Errorf("tkn describe does not show the failedNodes result as web-b1")
	}

	ns = namespace(t)
	succeeded := prepullOnce(t, ns, "registry.local/app:tkn")
	out = tkn(t, ns, "customrun", "describe", succeeded.Name)
	contains(t, "tkn describe (succeeded)", out, append(results, "Succeeded", "image", "registry.local/app:tkn")...)
	contains(t, "tkn list", tkn(t, ns, "customrun", "list"), succeeded.Name, "Succeeded")

	ns = namespace(t)
	create(t, ns, pipelineRun("pr", `
      - name: prepull
        taskRef: {apiVersion: custom.kruise.dev/v1alpha1, kind: ImagePrePull}
        params: [{name: image, value: "registry.local/slow-tkn:v1"}, {name: nodeNames, value: [web-a1, web-a2]}]
`))
	waitJobs(t, ns, 1)
	running := waitCustomRun(t, ns, "pr-prepull", time.Minute, "running", func(r *v1beta1.CustomRun) bool {
		return r.HasStarted() && strings.Contains(cond(r).Message, "no node has finished pulling registry.local/slow-tkn:v1 yet")
	})
	// tkn v0.46 prints a CustomRun's message only once it failed
	// (pkg/cmd/customrun/describe.go, hasFailed); while running, the progress
	// message is in the status, which waitCustomRun read above.
	out = tkn(t, ns, "customrun", "describe", running.Name)
	contains(t, "tkn describe (running)", out, "Running", "registry.local/slow-tkn:v1")
	contains(t, "tkn list (running)", tkn(t, ns, "customrun", "list"), running.Name, "Running")
	if _, err := c.Tekton.TektonV1().PipelineRuns(ns).Patch(context.Background(), "pr", types.MergePatchType,
		[]byte(`{"spec":{"status":"Cancelled"}}`), metav1.PatchOptions{}); err != nil {
		t.Fatal(err)
	}
	waitCustomRun(t, ns, running.Name, time.Minute, "cancelled", func(r *v1beta1.CustomRun) bool { return r.IsDone() })
	out = tkn(t, ns, "customrun", "describe", running.Name)
	contains(t, "tkn describe (cancelled)", out, "Failed(CustomRunCancelled)", string(v1beta1.CustomRunCancelledByPipelineMsg))
}

// A Kruise that serves ImagePullJobs in v1beta1 only (a future release; v1.9
// serves v1alpha1 and v1beta1, and stores v1beta1) gets a clear answer, not
// "install OpenKruise". OpenKruise v1.9's CRD has both versions, so the test
// stops serving v1alpha1 in it; v1.8's has only v1alpha1, which the API server
// will not drop while objects are stored in it: this case needs v1.9.
func TestKruiseV19ServingOnlyV1beta1(t *testing.T) {
	ctx := context.Background()
	if !strings.HasPrefix(c.KruiseVersion, "v1.9.") {
		t.Fatalf("this case needs OpenKruise v1.9's CRDs, the cluster runs %s: run it with KRUISE_VERSION=v1.9.1", c.KruiseVersion)
	}
	serve := func(served bool) {
		t.Helper()
		patch := fmt.Sprintf(`[{"op":"test","path":"/spec/versions/0/name","value":"v1alpha1"},{"op":"replace","path":"/spec/versions/0/served","value":%v}]`, served)
		if _, err := c.Kubectl(ctx, "patch", "crd", "imagepulljobs.apps.kruise.io", "--type=json", "-p", patch); err != nil {
			t.Fatal(err)
		}
	}
	serve(false)
	restored := false
	t.Cleanup(func() {
		if !restored {
			serve(true)
		}
	})
	var ns string
	err := wait.PollUntilContextTimeout(ctx, time.Second, time.Minute, true, func(ctx context.Context) (bool, error) {
		// Discovery follows the CRD within moments; a run tells when.
		ns = namespace(t)
		run := prepullOnce(t, ns, "registry.local/app:v1beta1-only")
		if cond(run).Reason != v1alpha1.ReasonKruiseVersionUnsupported.String() {
			t.Logf("CustomRun %s: %s %s", run.Name, cond(run).Reason, cond(run).Message)
			return false, nil
		}
		contains(t, "message", cond(run).Message, "in v1beta1 only, not in v1alpha1", "OpenKruise v1.8 and v1.9 serve both")
		return true, nil
	})
	if err != nil {
		t.Fatalf("no run ended KruiseVersionUnsupported: %v", err)
	}
	// Listed through v1beta1: v1alpha1 is not served now.
	if out, err := c.Kubectl(ctx, "get", "imagepulljobs.v1beta1.apps.kruise.io", "-n", ns, "-o", "name"); err != nil || strings.TrimSpace(out) != "" {
		t.Errorf("ImagePullJobs of the refused run: %q, %v", out, err)
	}

	serve(true)
	restored = true
	err = wait.PollUntilContextTimeout(ctx, time.Second, 2*time.Minute, true, func(ctx context.Context) (bool, error) {
		run := prepullOnce(t, namespace(t), "registry.local/app:v1alpha1-back")
		return cond(run).IsTrue(), nil
	})
	if err != nil {
		t.Fatalf("no run succeeded once v1alpha1 was served again: %v", err)
	}
}

// kruise-daemon v1.9 runs at most --max-workers-for-pull-image pulls at a
// time on a node and reports the others Waiting; the time a pull waits
// counts against the run's. A run whose pull was still queued behind
// another on its node when it timed out says so, naming the node.
func TestQueuedPullTimingOutIsReportedAsQueued(t *testing.T) {
	ctx := context.Background()
	if !strings.HasPrefix(c.KruiseVersion, "v1.9.") {
		t.Fatalf("kruise-daemon %s has no worker limit; this case needs v1.9: run it with KRUISE_VERSION=v1.9.1", c.KruiseVersion)
	}
	ns := namespace(t)
	// Named after the namespace: a node of the same name deleted a moment
	// ago may still have its NodeImage going (go test -count).
	node := "one-worker-" + ns[strings.LastIndex(ns, "-")+1:]
	if err := c.Nodes.Add(ctx, cluster.Node{Name: node, Annotations: map[string]string{simulator.AnnotationMaxWorkers: "1"}}); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		// Other tests' runs without a selector would queue on this node.
		_, _ = c.Kubectl(ctx, "patch", "pipelinerun", "blocker", "-n", ns, "--type=merge", "-p", `{"spec":{"status":"Cancelled"}}`)
		if err := c.Kube.CoreV1().Nodes().Delete(ctx, node, metav1.DeleteOptions{}); err != nil {
			t.Error(err)
		}
	})
	// The node's one worker pulls a slow image...
	create(t, ns, pipelineRun("blocker", `
      - name: prepull
        taskRef: {apiVersion: custom.kruise.dev/v1alpha1, kind: ImagePrePull}
        params: [{name: image, value: "registry.local/slow-blocker:v1"}, {name: nodeNames, value: [`+node+`]}]
`))
	err := wait.PollUntilContextTimeout(ctx, 500*time.Millisecond, 2*time.Minute, true, func(ctx context.Context) (bool, error) {
		ni, err := c.Kruise.AppsV1alpha1().NodeImages().Get(ctx, node, metav1.GetOptions{})
		if err != nil {
			return false, nil
		}
		for _, tag := range ni.Status.ImageStatuses["registry.local/slow-blocker"].Tags {
			if tag.Phase == kruisev1alpha1.ImagePhasePulling {
				return true, nil
			}
		}
		return false, nil
	})
	if err != nil {
		t.Fatalf("the slow pull did not start on %s: %v", node, err)
	}
	// ...so the next one waits in the queue until its run times out.
	create(t, ns, pipelineRun("pr", `
      - name: prepull
        timeout: 20s
        taskRef: {apiVersion: custom.kruise.dev/v1alpha1, kind: ImagePrePull}
        params: [{name: image, value: "registry.local/app:queued"}, {name: nodeNames, value: [`+node+`]}]
`))
	waitPipelineRun(t, ns, "pr", prTimeout)
	run := customRuns(t, ns, "pr")["prepull"]
	if cond(run).Reason != v1beta1.CustomRunReasonTimedOut.String() {
		t.Fatalf("CustomRun %+v, want %s", cond(run), v1beta1.CustomRunReasonTimedOut)
	}
	t.Logf("message: %s", cond(run).Message)
	// The run's timeout comes before Kruise's deadline for the job (a grace
	// later): the node is named as queued, not as failed.
	contains(t, "message", cond(run).Message, "timed out after 20s", "0/1 nodes have registry.local/app:queued;",
		"1 node(s) had not finished: "+node+" (registry.local/app:queued): queued, never started: every kruise-daemon pull worker on the node was busy (--max-workers-for-pull-image)")
	if fn := result(run, v1alpha1.ResultFailedNodes); strings.Contains(cond(run).Message, "failed") || (fn != "" && fn != "<unset>") {
		t.Errorf("a node that never started is reported as failed: %q, failedNodes %q", cond(run).Message, result(run, v1alpha1.ResultFailedNodes))
	}
}
