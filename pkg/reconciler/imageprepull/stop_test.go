package imageprepull

import (
	"strings"
	"testing"
	"time"

	kruisev1alpha1 "github.com/openkruise/kruise-api/apps/v1alpha1"
	"github.com/tektoncd/pipeline/pkg/apis/pipeline/v1beta1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"knative.dev/pkg/apis"
)

// A run times out, and is cancelled, even when its jobs cannot be listed: it
// says what it could not read, and deletes its own jobs, found by name.
func TestStopsWithoutAJobInformer(t *testing.T) {
	for _, tc := range []struct {
		name   string
		stop   func(e *env)
		reason string
	}{
		{"timeout", func(e *env) { e.clock.Step(time.Hour + time.Second) }, v1beta1.CustomRunReasonTimedOut.String()},
		{"cancel", func(e *env) {
			e.edit("run", func(r *v1beta1.CustomRun) { r.Spec.Status = v1beta1.CustomRunSpecStatusCancelled })
		}, v1beta1.CustomRunReasonCancelled.String()},
	} {
		t.Run(tc.name, func(t *testing.T) {
			e := newEnv(t)
			e.create(newRun("run", str("image", app)))
			e.mustReconcile("run")
			e.neverSyncs()
			tc.stop(e)
			run, err := e.reconcile("run")
			if err != nil {
				t.Fatalf("reconcile: %v", err)
			}
			c := condition(run)
			if !c.IsFalse() || c.Reason != tc.reason {
				t.Fatalf("condition = %+v, want False/%s", c, tc.reason)
			}
			contains(t, "message", c.Message, "its ImagePullJobs could not be listed", "forbidden", "deleted the 1 of this attempt found by name")
			if n := len(e.jobList()); n != 0 {
				t.Errorf("%d jobs left", n)
			}
		})
	}
}

func TestCancelDeletesJobs(t *testing.T) {
	e := newEnv(t)
	e.create(newRun("run", arr("images", "nginx:1.27", "redis:7")))
	e.mustReconcile("run")
	e.setJobStatus(e.jobList()[0].Name, pulling(5, 1, 0))

	run := e.get("run")
	run.Spec.Status = v1beta1.CustomRunSpecStatusCancelled
	run.Spec.StatusMessage = v1beta1.CustomRunCancelledByPipelineMsg
	if _, err := e.tekton.TektonV1beta1().CustomRuns(ns).Update(e.ctx, run, metav1.UpdateOptions{}); err != nil {
		t.Fatal(err)
	}
	run = e.mustReconcile("run")
	c := condition(run)
	if !c.IsFalse() || c.Reason != v1beta1.CustomRunReasonCancelled.String() || c.Message != string(v1beta1.CustomRunCancelledByPipelineMsg) {
		t.Errorf("condition = %+v, want False/CustomRunCancelled with the spec's message", c)
	}
	if n := countActions(e.kruise.Actions(), "delete", "imagepulljobs"); n != 2 {
		t.Errorf("%d deletes, want 2", n)
	}
	if n := len(e.jobList()); n != 0 {
		t.Errorf("%d jobs left", n)
	}
}

// The cancelling side's message is kept as written, even with a % in it.
func TestCancelMessageIsKeptAsWritten(t *testing.T) {
	e := newEnv(t)
	const msg = "stopped by release-bot at 50% rollout"
	e.create(newRun("run", str("image", app), func(r *v1beta1.CustomRun) {
		r.Spec.Status = v1beta1.CustomRunSpecStatusCancelled
		r.Spec.StatusMessage = msg
	}))
	if c := condition(e.mustReconcile("run")); c.Message != msg {
		t.Errorf("message = %q, want %q", c.Message, msg)
	}
}

func TestTimeoutDeletesJobsAndFails(t *testing.T) {
	e := newEnv(t)
	e.create(newRun("run", str("image", app), timeout(10*time.Minute), str("pullTimeoutSeconds", "60")))
	e.mustReconcile("run")
	if got := *e.jobList()[0].Spec.CompletionPolicy.ActiveDeadlineSeconds; got != 600+deadlineGrace {
		t.Errorf("activeDeadlineSeconds = %d, want the 600 s left and the grace", got)
	}
	e.clock.Step(10*time.Minute + time.Second)
	run := e.mustReconcile("run")
	c := condition(run)
	if !c.IsFalse() || c.Reason != v1beta1.CustomRunReasonTimedOut.String() {
		t.Fatalf("condition = %+v, want False/CustomRunTimedOut", c)
	}
	contains(t, "message", c.Message, "timed out after 10m0s")
	if n := len(e.jobList()); n != 0 {
		t.Errorf("%d jobs left after the timeout", n)
	}
}

// A timed-out run says where each unfinished node stood, from the NodeImages
// of the nodes its job asked: queued behind other pulls (kruise-daemon v1.9's
// Waiting), pulling, or not reported; nodes done, and tags other jobs asked
// for, are left out.
func TestTimeoutSaysWhereEachNodeStood(t *testing.T) {
	e := newEnv(t)
	e.create(newRun("run", str("image", app), timeout(10*time.Minute)))
	e.mustReconcile("run")
	job, err := e.kruise.AppsV1alpha1().ImagePullJobs(ns).Get(e.ctx, e.jobList()[0].Name, metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	job.UID = "job-uid"
	if _, err := e.kruise.AppsV1alpha1().ImagePullJobs(ns).Update(e.ctx, job, metav1.UpdateOptions{}); err != nil {
		t.Fatal(err)
	}
	e.setJobStatus(job.Name, pulling(4, 1, 0))
	name, tag := nodeImageKey(app)
	started := metav1.NewTime(time.Date(2026, 11, 26, 14, 3, 4, 0, time.UTC))
	for node, st := range map[string]*kruisev1alpha1.ImageTagStatus{
		"node-a": {Tag: tag, Version: 2, Phase: kruisev1alpha1.ImagePhaseWaiting},
		"node-b": {Tag: tag, Version: 2, Phase: kruisev1alpha1.ImagePhasePulling, StartTime: &started, Progress: 40},
		"node-c": {Tag: tag, Version: 2, Phase: kruisev1alpha1.ImagePhaseSucceeded},
		"node-d": {Tag: tag, Version: 2, Phase: kruisev1alpha1.ImagePhaseWaiting},
		"node-e": nil,
	} {
		owner := types.UID("job-uid")
		if node == "node-d" {
			owner = "another-job"
		}
		ni := &kruisev1alpha1.NodeImage{ObjectMeta: metav1.ObjectMeta{Name: node}, Spec: kruisev1alpha1.NodeImageSpec{
			Images: map[string]kruisev1alpha1.ImageSpec{name: {Tags: []kruisev1alpha1.ImageTagSpec{
				{Tag: tag, Version: 2, OwnerReferences: []corev1.ObjectReference{{UID: owner}}}}}},
		}}
		if st != nil {
			ni.Status.ImageStatuses = map[string]kruisev1alpha1.ImageStatus{name: {Tags: []kruisev1alpha1.ImageTagStatus{*st}}}
		}
		if _, err := e.kruise.AppsV1alpha1().NodeImages().Create(e.ctx, ni, metav1.CreateOptions{}); err != nil {
			t.Fatal(err)
		}
	}
	e.syncJobs()
	e.clock.Step(10*time.Minute + time.Second)
	run := e.mustReconcile("run")
	c := condition(run)
	if !c.IsFalse() || c.Reason != v1beta1.CustomRunReasonTimedOut.String() {
		t.Fatalf("condition = %+v, want False/CustomRunTimedOut", c)
	}
	contains(t, "message", c.Message, "timed out after 10m0s; 1/4 nodes have "+app+"; 3 node(s) had not finished: ",
		"node-a ("+app+"): queued, never started: every kruise-daemon pull worker on the node was busy (--max-workers-for-pull-image)",
		"node-b ("+app+"): still pulling since 14:03:04Z (40%)",
		"node-e ("+app+"): not started: kruise-daemon has not reported it")
	if strings.Contains(c.Message, "node-c") || strings.Contains(c.Message, "node-d") {
		t.Errorf("message names a node that finished or another job's tag: %s", c.Message)
	}
	if n := len(e.jobList()); n != 0 {
		t.Errorf("%d jobs left after the timeout", n)
	}
}

// queuedOn is a node whose kruise-daemon reports app's tag Waiting: queued
// behind other pulls (v1.9).
func queuedOn(node string) *kruisev1alpha1.NodeImage {
	name, tag := nodeImageKey(app)
	return &kruisev1alpha1.NodeImage{
		ObjectMeta: metav1.ObjectMeta{Name: node},
		Spec:       kruisev1alpha1.NodeImageSpec{Images: map[string]kruisev1alpha1.ImageSpec{name: {Tags: []kruisev1alpha1.ImageTagSpec{{Tag: tag}}}}},
		Status: kruisev1alpha1.NodeImageStatus{ImageStatuses: map[string]kruisev1alpha1.ImageStatus{
			name: {Tags: []kruisev1alpha1.ImageTagStatus{{Tag: tag, Phase: kruisev1alpha1.ImagePhaseWaiting}}},
		}},
	}
}

// The run times out just after Kruise ended its job at the same deadline:
// the queued node, now counted failed, is still named as queued.
func TestTimeoutAfterKruisesDeadlineNamesQueuedNodes(t *testing.T) {
	e := newEnv(t, withNodeImage(queuedOn("node-3")))
	e.create(newRun("run", str("image", app), timeout(time.Minute)))
	e.mustReconcile("run")
	st := completed(1, 0, "node-3")
	st.Message = "job exceeds activeDeadlineSeconds"
	e.setJobStatus(e.jobList()[0].Name, st)
	e.syncJobs()
	e.clock.Step(time.Minute + time.Second)
	c := condition(e.mustReconcile("run"))
	if c.Reason != v1beta1.CustomRunReasonTimedOut.String() {
		t.Fatalf("condition = %+v", c)
	}
	contains(t, "message", c.Message, "timed out after 1m0s; 0/1 nodes have "+app+" (1 failed); failed: node-3 ("+app+
		"): job exceeds activeDeadlineSeconds: queued, never started")
}

func TestTimeoutRetries(t *testing.T) {
	e := newEnv(t)
	e.create(newRun("run", str("image", app), timeout(5*time.Minute), retries(1)))
	e.mustReconcile("run")
	first := e.jobList()[0].Name

	e.clock.Step(6 * time.Minute)
	run := e.mustReconcile("run")
	if len(run.Status.RetriesStatus) != 1 || run.Status.RetriesStatus[0].GetCondition(apis.ConditionSucceeded).Reason != v1beta1.CustomRunReasonTimedOut.String() {
		t.Fatalf("retriesStatus = %+v, want the timed-out attempt", run.Status.RetriesStatus)
	}
	if c := condition(run); !c.IsUnknown() {
		t.Fatalf("condition = %+v, want the run going on", c)
	}
	if !run.Status.StartTime.Time.Equal(e.clock.Now()) {
		t.Errorf("startTime = %v, want the new attempt's", run.Status.StartTime)
	}

	run = e.mustReconcile("run")
	jobs := e.jobList()
	if len(jobs) != 1 || jobs[0].Name == first || jobs[0].Labels[LabelAttempt] != "1" {
		t.Fatalf("jobs = %v, want only the second attempt's", jobs)
	}

	e.clock.Step(6 * time.Minute)
	run = e.mustReconcile("run")
	c := condition(run)
	if !c.IsFalse() || c.Reason != v1beta1.CustomRunReasonTimedOut.String() || len(run.Status.RetriesStatus) != 1 {
		t.Errorf("condition = %+v with %d retries, want CustomRunTimedOut after 1 retry", c, len(run.Status.RetriesStatus))
	}
}
