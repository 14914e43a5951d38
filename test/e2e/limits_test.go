//go:build e2e

package e2e

import (
	"context"
	"encoding/json"
	"fmt"
	"testing"
	"time"

	"github.com/tektoncd/pipeline/pkg/apis/pipeline/v1beta1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/imageprepull/imageprepull/pkg/apis/custom/v1alpha1"
)

// The largest run validation accepts, through the real API server and etcd:
// 5,000 node names of 52 bytes (256 KiB less a little) and four images
// (1 MiB of node names across its jobs). Its status writes succeed: it
// starts with its pin stored, makes its jobs, and ends (none of those nodes
// exists) within its timeout, its end stored. A byte more a name is
// refused at once, naming the param and the limit.
func TestLargestRunIsStored(t *testing.T) {
	ns := namespace(t)
	ctx := context.Background()
	names := make([]string, v1alpha1.MaxNodeNames)
	for i := range names {
		names[i] = fmt.Sprintf("node-%047d", i) // 52 bytes
	}
	images := []string{"registry.local/big:a", "registry.local/big:b", "registry.local/big:c", "registry.local/big:d"}
	start := func(name string, names []string) {
		t.Helper()
		_, err := c.Tekton.TektonV1beta1().CustomRuns(ns).Create(ctx, &v1beta1.CustomRun{
			ObjectMeta: metav1.ObjectMeta{Name: name},
			Spec: v1beta1.CustomRunSpec{
				CustomRef: &v1beta1.TaskRef{APIVersion: v1alpha1.APIVersion, Kind: v1alpha1.Kind},
				Timeout:   &metav1.Duration{Duration: 30 * time.Second},
				Params: v1beta1.Params{
					{Name: "images", Value: v1beta1.ParamValue{Type: v1beta1.ParamTypeArray, ArrayVal: images}},
					{Name: "nodeNames", Value: v1beta1.ParamValue{Type: v1beta1.ParamTypeArray, ArrayVal: names}},
				},
			},
		}, metav1.CreateOptions{})
		if err != nil {
			t.Fatal(err)
		}
	}
	start("largest", names)
	run := waitCustomRun(t, ns, "largest", 2*time.Minute, "done", func(r *v1beta1.CustomRun) bool { return r.IsDone() })
	if r := cond(run).Reason; r != v1alpha1.ReasonNoNodes.String() && r != v1beta1.CustomRunReasonTimedOut.String() {
		t.Errorf("the largest run ended %s: %s", r, cond(run).Message)
	}
	if !run.HasStarted() || len(run.Status.ExtraFields.Raw) < 5000*52 {
		t.Errorf("the run's start and pin (%d bytes) are not stored", len(run.Status.ExtraFields.Raw))
	}
	if n := len(jobs(t, ns)); n != len(images) {
		t.Errorf("%d ImagePullJobs, want one per image", n)
	}
	raw, _ := json.Marshal(run)
	t.Logf("the largest run: %d bytes as stored (etcd's limit is 1.5 MiB); its jobs %d bytes of node names each", len(raw), 5000*52)

	over := make([]string, len(names))
	for i, n := range names {
		over[i] = n + "x" // 53 bytes
	}
	start("over", over)
	run = waitCustomRun(t, ns, "over", time.Minute, "done", func(r *v1beta1.CustomRun) bool { return r.IsDone() })
	if cond(run).Reason != v1alpha1.ReasonInvalidParams.String() {
		t.Fatalf("one name longer: %+v, want InvalidParams", cond(run))
	}
	contains(t, "message", cond(run).Message, "265000 bytes of node names, more than the 262144 one run may name", "params.nodeNames")
}

// Under allow-all-nodes: "false", a selector that matches every node is
// every node: refused before any job, with and without waiting; one that
// leaves a node out pre-pulls.
func TestASelectorOfEveryNodeIsRefusedUnderAllowAllNodesFalse(t *testing.T) {
	ns := namespace(t)
	setPolicy(t, map[string]string{"allow-all-nodes": "false"})
	// The controller sees the change through its watch, moments later: a run
	// that names no node is refused once it has.
	for i := 0; ; i++ {
		name := fmt.Sprintf("probe-%d", i)
		_, err := c.Tekton.TektonV1beta1().CustomRuns(ns).Create(context.Background(), &v1beta1.CustomRun{
			ObjectMeta: metav1.ObjectMeta{Name: name},
			Spec: v1beta1.CustomRunSpec{CustomRef: &v1beta1.TaskRef{APIVersion: v1alpha1.APIVersion, Kind: v1alpha1.Kind},
				Params: v1beta1.Params{{Name: "image", Value: *v1beta1.NewStructuredValues("registry.local/app:probe")}}},
		}, metav1.CreateOptions{})
		if err != nil {
			t.Fatal(err)
		}
		run := waitCustomRun(t, ns, name, time.Minute, "done", func(r *v1beta1.CustomRun) bool { return r.IsDone() })
		if cond(run).Reason == v1alpha1.ReasonLimitExceeded.String() {
			break
		}
		if i == 50 {
			t.Fatalf("no run naming no node was refused: the policy change did not take effect")
		}
		time.Sleep(200 * time.Millisecond)
	}
	probes := len(jobs(t, ns))
	for _, wait := range []string{"true", "false"} {
		name := "every-node-wait-" + wait
		create(t, ns, pipelineRun(name, `
      - name: prepull
        taskRef: {apiVersion: custom.kruise.dev/v1alpha1, kind: ImagePrePull}
        params: [{name: image, value: "registry.local/app:v1"}, {name: nodeSelector, value: "node-type in (web,batch)"}, {name: wait, value: "`+wait+`"}]
`))
		waitPipelineRun(t, ns, name, prTimeout)
		run := customRuns(t, ns, name)["prepull"]
		if cond(run).Reason != v1alpha1.ReasonLimitExceeded.String() {
			t.Fatalf("wait %s: %+v, want LimitExceeded", wait, cond(run))
		}
		contains(t, "message", cond(run).Message, "the run targets every node, which config-imageprepull allow-all-nodes does not allow",
			"node selector node-type in (batch,web) matches 4 of 4")
	}
	if n := len(jobs(t, ns)); n != probes {
		t.Fatalf("%d ImagePullJobs for refused runs", n-probes)
	}
	if run := prepullOnce(t, ns, "registry.local/app:v1"); !cond(run).IsTrue() || result(run, "desired") != "3" {
		t.Errorf("a selector of 3 of the 4 nodes: %+v, desired %s", cond(run), result(run, "desired"))
	}
}
