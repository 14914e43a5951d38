package imageprepull

import (
	"encoding/json"
	"testing"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/utils/ptr"

	"github.com/imageprepull/imageprepull/pkg/apis/custom/v1alpha1"
)

// Whoever may write CustomRuns' status can write anything into the pin: a
// pin that does not decode, or lacks what the run's steps rely on, ends
// the run with a reason that says so. Nothing panics, no job is made, and
// the run's spec is not resolved afresh in its place.
func TestAnUnreadablePinEndsTheRun(t *testing.T) {
	for _, tc := range []struct {
		name, raw, want string
	}{
		{"not JSON", `{"authorized":`, "status.extraFields does not decode"},
		{"of the wrong shape", `{"authorized":5}`, "status.extraFields does not decode"},
		{"empty", `{}`, "status.extraFields.authorized is missing"},
		{"without a spec", `{"authorized":{"inputs":"x","retries":0,"serviceAccountName":"default"}}`, "authorized.spec is missing"},
		{"without its defaults", `{"authorized":{"inputs":"x","retries":0,"serviceAccountName":"default","spec":{"images":["a:v1"]}}}`,
			"authorized.spec lacks a defaulted field"},
		{"without an image", `{"authorized":{"inputs":"x","retries":0,"serviceAccountName":"default","spec":{"parallelism":1,"pullTimeoutSeconds":1,"backoffLimit":0,"successThreshold":"100%","wait":true}}}`,
			"authorized holds no image"},
		{"a workload without its target", `{"authorized":{"inputs":"x","retries":0,"serviceAccountName":"default","spec":{"workload":"deployment/web","workloadImages":true,"parallelism":1,"pullTimeoutSeconds":1,"backoffLimit":0,"successThreshold":"100%","wait":true}}}`,
			"target is missing for workload deployment/web"},
		{"an invalid image", `{"authorized":{"inputs":"x","retries":0,"serviceAccountName":"default","spec":{"images":["Not An Image"],"parallelism":1,"pullTimeoutSeconds":1,"backoffLimit":0,"successThreshold":"100%","wait":true}}}`,
			"authorized.spec: invalid value: Not An Image: images[0]"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			e := newEnv(t)
			e.create(newRun("run", str("image", app)))
			if _, err := e.reconcileOnce("run"); err != nil { // started and pinned
				t.Fatal(err)
			}
			run := e.get("run")
			run.Status.ExtraFields.Raw = []byte(tc.raw)
			if _, err := e.tekton.TektonV1beta1().CustomRuns(ns).UpdateStatus(e.ctx, run, metav1.UpdateOptions{}); err != nil {
				t.Fatal(err)
			}
			e.failsAtOnce("run", v1alpha1.ReasonInvalidRunState, tc.want)
			if n := len(e.jobList()); n != 0 {
				t.Errorf("%d jobs made for a run whose pin is unreadable", n)
			}
		})
	}
}

// The API server returns extraFields with its keys sorted; the reconciler's
// own encoding must be byte for byte the same, or each reconcile sees a
// changed status and writes it again.
func TestExtraFieldsEncodeAsTheAPIServerReturnsThem(t *testing.T) {
	extra := pin{
		Authorized: &authorized{edits: edits{Inputs: "in"}, Retries: 1, ServiceAccount: "sa", Spec: &v1alpha1.ImagePrePullSpec{
			Images: []string{app}, Workload: "deployment/web", Parallelism: ptr.To[int32](3), PullSecrets: []string{"regcred"},
		}},
		Target: &target{Workload: "deployment.apps/web", Nodes: []string{"n1"}, Images: []string{app}, Matched: "nodes running: 1"},
	}
	run := newRun("run")
	if err := (&attempt{run: run, pin: &extra}).write(); err != nil {
		t.Fatal(err)
	}
	ours := run.Status.ExtraFields.Raw
	var generic map[string]any
	if err := json.Unmarshal(ours, &generic); err != nil {
		t.Fatal(err)
	}
	sorted, err := json.Marshal(generic) // maps encode with sorted keys, as the API server's objects do
	if err != nil {
		t.Fatal(err)
	}
	if string(ours) != string(sorted) {
		t.Errorf("extraFields encode as\n%s\nthe API server returns\n%s", ours, sorted)
	}
	var back pin
	if err := run.Status.DecodeExtraFields(&back); err != nil || back.Authorized.Spec.Workload != "deployment/web" || back.Target.Nodes[0] != "n1" {
		t.Errorf("decoded %+v, %v", back, err)
	}
}
