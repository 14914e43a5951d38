package imageprepull

import (
	"fmt"
	"strings"
	"testing"
	"time"

	kruisev1alpha1 "github.com/openkruise/kruise-api/apps/v1alpha1"
	"github.com/tektoncd/pipeline/pkg/apis/pipeline/v1beta1"
	"github.com/tektoncd/pipeline/pkg/reconciler/events/k8sevent"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/types"
	clientgotesting "k8s.io/client-go/testing"
	"k8s.io/utils/ptr"
	"knative.dev/pkg/apis"

	"github.com/imageprepull/imageprepull/pkg/apis/custom/v1alpha1"
)

const app = "registry.example.com/team/app:main-d92ae17"

func TestParamsOnlyRunCreatesOneJobAndSucceeds(t *testing.T) {
	e := newEnv(t)
	e.create(newRun("run", str("image", app), arr("nodeNames", "node-1", "node-2")))

	run := e.mustReconcile("run")
	if c := condition(run); !c.IsUnknown() || c.Reason != v1beta1.CustomRunReasonRunning.String() {
		t.Fatalf("condition = %+v, want Unknown/Running", c)
	}
	jobs := e.jobList()
	if len(jobs) != 1 {
		t.Fatalf("%d jobs, want 1", len(jobs))
	}
	job := jobs[0]
	if job.Spec.Image != app || job.Spec.CompletionPolicy.Type != kruisev1alpha1.Always {
		t.Errorf("job spec = %+v", job.Spec)
	}
	if got := job.Spec.Selector; got == nil || fmt.Sprint(got.Names) != "[node-1 node-2]" || len(got.MatchLabels) > 0 {
		t.Errorf("selector = %+v, want names node-1, node-2", got)
	}
	if got := job.Spec.Parallelism; got == nil || got.IntValue() != int(v1alpha1.DefaultParallelism) {
		t.Errorf("parallelism = %v, want %d set explicitly", got, v1alpha1.DefaultParallelism)
	}
	if got := job.Spec.PullPolicy; *got.TimeoutSeconds != 600 || *got.BackoffLimit != 3 {
		t.Errorf("pullPolicy = %+v", got)
	}
	if got := job.Spec.CompletionPolicy.ActiveDeadlineSeconds; got == nil || *got != 3600+deadlineGrace {
		t.Errorf("activeDeadlineSeconds = %v, want the run's 1h timeout and the grace", ptr.Deref(got, 0))
	}
	if !metav1.IsControlledBy(&job, run) {
		t.Errorf("job is not controlled by the run: %+v", job.OwnerReferences)
	}
	for k, want := range map[string]string{
		LabelManagedBy: ManagedBy, LabelCustomRun: "run", LabelAttempt: "0",
		"tekton.dev/pipelineRun": "build-1", "tekton.dev/pipelineTask": "prepull",
	} {
		if got := job.Labels[k]; got != want {
			t.Errorf("label %s = %q, want %q", k, got, want)
		}
	}

	e.setJobStatus(job.Name, pulling(2, 1, 0))
	run = e.mustReconcile("run")
	if got := condition(run).Message; got != "1/2 nodes have "+app {
		t.Errorf("running message = %q", got)
	}

	e.setJobStatus(job.Name, completed(2, 2))
	run = e.mustReconcile("run")
	if c := condition(run); !c.IsTrue() || c.Reason != v1beta1.CustomRunReasonSuccessful.String() {
		t.Fatalf("condition = %+v, want True/Succeeded", c)
	}
	if got := condition(run).Message; got != "2/2 nodes have "+app {
		t.Errorf("message = %q", got)
	}
	for name, want := range map[string]string{
		v1alpha1.ResultDesired: "2", v1alpha1.ResultSucceeded: "2", v1alpha1.ResultFailed: "0", v1alpha1.ResultFailedNodes: "",
		v1alpha1.ResultImagePullJobs: job.Name,
	} {
		if got := result(run, name); got != want {
			t.Errorf("result %s = %s, want %s", name, got, want)
		}
	}
	if run.Status.CompletionTime == nil {
		t.Error("completionTime not set")
	}
	if err := k8sevent.CheckEventsOrdered(t, e.recorder.Events, t.Name(), []string{"Normal Succeeded 2/2 nodes have " + app}); err != nil {
		t.Error(err)
	}
}

func TestCreationIsIdempotent(t *testing.T) {
	e := newEnv(t)
	e.create(newRun("run", arr("images", "nginx:1.27", "redis:7")))
	e.mustReconcile("run")
	e.mustReconcile("run")
	e.mustReconcile("run")
	if n := countActions(e.kruise.Actions(), "create", "imagepulljobs"); n != 2 {
		t.Errorf("%d creates, want one per image", n)
	}
	if got := condition(e.get("run")).Message; got != "no node has finished pulling nginx:1.27 yet; no node has finished pulling redis:7 yet" {
		t.Errorf("message = %q", got)
	}
}

func TestRestartedControllerAdoptsItsJobs(t *testing.T) {
	// The jobs exist (a first controller created them) but the run's status
	// never recorded it, and this controller's cache has not seen them yet.
	e := newEnv(t)
	e.create(newRun("run", str("image", app)))
	e.mustReconcile("run")
	first := e.jobList()[0]

	stale := e.get("run") // the job stays; the status that recorded it is lost
	stale.Status.ExtraFields.Raw = nil
	if _, err := e.tekton.TektonV1beta1().CustomRuns(ns).UpdateStatus(e.ctx, stale, metav1.UpdateOptions{}); err != nil {
		t.Fatal(err)
	}
	run := e.mustReconcile("run")
	if jobs := e.jobList(); len(jobs) != 1 || jobs[0].UID != first.UID {
		t.Errorf("jobs = %+v, want the first one only", jobs)
	}
	if condition(run).IsFalse() {
		t.Errorf("condition = %+v", condition(run))
	}
}

func TestAlreadyExistsUsesTheJob(t *testing.T) {
	// Another replica created the job a moment ago: the API has it, our cache
	// and our status do not, so the create answers AlreadyExists.
	e := newEnv(t)
	e.create(newRun("run", str("image", app)))
	e.kruise.PrependReactor("create", "imagepulljobs", func(action clientgotesting.Action) (bool, runtime.Object, error) {
		job := action.(clientgotesting.CreateAction).GetObject().(*kruisev1alpha1.ImagePullJob)
		if err := e.kruise.Tracker().Add(job); err != nil {
			return true, nil, err
		}
		return true, nil, apierrors.NewAlreadyExists(kruisev1alpha1.Resource("imagepulljobs"), job.Name)
	})
	run := e.mustReconcile("run")
	if c := condition(run); !c.IsUnknown() || c.Reason != v1beta1.CustomRunReasonRunning.String() {
		t.Errorf("condition = %+v, want the run going on with the existing job", c)
	}
	if n := len(e.jobList()); n != 1 {
		t.Errorf("%d jobs, want 1", n)
	}
}

func TestStatusIsWrittenOnlyWhenItChanges(t *testing.T) {
	e := newEnv(t)
	e.create(newRun("run", str("image", app)))
	e.mustReconcile("run")
	e.setJobStatus(e.jobList()[0].Name, pulling(10, 3, 1))
	e.mustReconcile("run")
	before := countActions(e.tekton.Actions(), "update", "customruns")
	e.mustReconcile("run")
	e.mustReconcile("run")
	if after := countActions(e.tekton.Actions(), "update", "customruns"); after != before {
		t.Errorf("%d status writes for reconciles that changed nothing", after-before)
	}
	if got := condition(e.get("run")).Message; got != "3/10 nodes have "+app+" (1 failed)" {
		t.Errorf("message = %q", got)
	}
}

func TestFinishedRunIsLeftAlone(t *testing.T) {
	e := newEnv(t)
	e.create(newRun("run", str("image", app)))
	e.mustReconcile("run")
	e.setJobStatus(e.jobList()[0].Name, completed(1, 1))
	e.mustReconcile("run")
	e.kruise.ClearActions()
	e.tekton.ClearActions()

	// Kruise's TTL deletes the job after the run finished: nothing to do.
	if err := e.kruise.AppsV1alpha1().ImagePullJobs(ns).Delete(e.ctx, e.jobList()[0].Name, metav1.DeleteOptions{}); err != nil {
		t.Fatal(err)
	}
	e.kruise.ClearActions()
	run := e.mustReconcile("run")
	writes := countActions(e.kruise.Actions(), "create", "imagepulljobs") + countActions(e.kruise.Actions(), "delete", "imagepulljobs")
	if !condition(run).IsTrue() || writes != 0 || countActions(e.tekton.Actions(), "update", "customruns") != 0 {
		t.Errorf("a finished run was touched: %+v, kruise %v", condition(run), e.kruise.Actions())
	}
}

func TestJobDeletedWhileRunningFailsTheRun(t *testing.T) {
	e := newEnv(t)
	e.create(newRun("run", str("image", app)))
	e.mustReconcile("run")
	name := e.jobList()[0].Name
	if err := e.kruise.AppsV1alpha1().ImagePullJobs(ns).Delete(e.ctx, name, metav1.DeleteOptions{}); err != nil {
		t.Fatal(err)
	}
	run := e.mustReconcile("run")
	c := condition(run)
	if !c.IsFalse() || c.Reason != v1alpha1.ReasonImagePullJobDeleted.String() {
		t.Fatalf("condition = %+v, want False/%s", c, v1alpha1.ReasonImagePullJobDeleted)
	}
	contains(t, "message", c.Message, name, app, "deleted")
	if n := len(e.jobList()); n != 0 {
		t.Errorf("the deleted job was created again: %d jobs", n)
	}
}

func TestJobOfSomethingElseIsNotAdopted(t *testing.T) {
	e := newEnv(t)
	run := newRun("run", str("image", app))
	e.create(run)
	foreign := &kruisev1alpha1.ImagePullJob{ObjectMeta: metav1.ObjectMeta{
		Name: jobName(run, app, 0), Namespace: ns, Labels: map[string]string{LabelManagedBy: ManagedBy},
	}}
	if _, err := e.kruise.AppsV1alpha1().ImagePullJobs(ns).Create(e.ctx, foreign, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	got := e.mustReconcile("run")
	if c := condition(got); !c.IsFalse() || c.Reason != v1alpha1.ReasonImagePullJobConflict.String() {
		t.Errorf("condition = %+v, want False/%s", c, v1alpha1.ReasonImagePullJobConflict)
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

func TestCancelBeforeStart(t *testing.T) {
	e := newEnv(t)
	e.create(newRun("run", str("image", app), func(r *v1beta1.CustomRun) { r.Spec.Status = v1beta1.CustomRunSpecStatusCancelled }))
	run := e.mustReconcile("run")
	if c := condition(run); !c.IsFalse() || c.Reason != v1beta1.CustomRunReasonCancelled.String() || c.Message != "CustomRun cancelled" {
		t.Errorf("condition = %+v", c)
	}
	if n := len(e.jobList()); n != 0 {
		t.Errorf("%d jobs for a cancelled run", n)
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

// A node still queued when Kruise ended the job at its deadline is named as
// queued, not only as "job exceeds activeDeadlineSeconds".
func TestJobDeadlineNamesQueuedNodes(t *testing.T) {
	e := newEnv(t, withNodeImage(queuedOn("node-3")))
	e.create(newRun("run", str("image", app)))
	e.mustReconcile("run")
	st := completed(2, 1, "node-3")
	st.Message = "job exceeds activeDeadlineSeconds"
	e.setJobStatus(e.jobList()[0].Name, st)
	c := condition(e.mustReconcile("run"))
	contains(t, "message", c.Message, "node-3 ("+app+"): job exceeds activeDeadlineSeconds: queued, never started")
}

// A run's jobs end shortly after the run would (deadlineGrace: the run's
// timeout is the controller's to enforce, Kruise's deadline is a backstop):
// a run with less time left than a pull may take pulls no longer than the
// time left (Kruise rejects a deadline below the pull timeout).
func TestJobsFollowTheRunsTimeout(t *testing.T) {
	for _, tc := range []struct {
		name          string
		timeout       time.Duration
		elapsed       time.Duration
		left, pullFor int64
	}{
		{"more time than a pull", time.Hour, 0, 3600, 300},
		{"less time than a pull", time.Minute, 0, 60, 60},
		{"a retry late in the run", 10 * time.Minute, 9*time.Minute + 30*time.Second, 30, 30},
	} {
		t.Run(tc.name, func(t *testing.T) {
			e := newEnv(t)
			e.create(newRun("run", str("image", app), timeout(tc.timeout), str("pullTimeoutSeconds", "300")))
			run := e.get("run")
			run.Status.InitializeConditions()
			run.Status.StartTime = &metav1.Time{Time: t0.Add(-tc.elapsed)}
			if _, err := e.tekton.TektonV1beta1().CustomRuns(ns).UpdateStatus(e.ctx, run, metav1.UpdateOptions{}); err != nil {
				t.Fatal(err)
			}
			e.mustReconcile("run")
			job := e.jobList()[0]
			if got := *job.Spec.CompletionPolicy.ActiveDeadlineSeconds; got != tc.left+deadlineGrace {
				t.Errorf("activeDeadlineSeconds = %d, want %d (the time left) and the grace", got, tc.left)
			}
			if got := *job.Spec.PullPolicy.TimeoutSeconds; int64(got) != tc.pullFor {
				t.Errorf("pullPolicy.timeoutSeconds = %d, want %d", got, tc.pullFor)
			}
		})
	}
}

func TestNoTimeoutNoDeadline(t *testing.T) {
	e := newEnv(t)
	e.create(newRun("run", str("image", app), timeout(0)))
	_, err := e.reconcile("run")
	if err != nil {
		t.Errorf("a run without timeout is requeued: %v", err)
	}
	if got := e.jobList()[0].Spec.CompletionPolicy.ActiveDeadlineSeconds; got != nil {
		t.Errorf("activeDeadlineSeconds = %d, want none", *got)
	}
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

func TestFailedPullsRetry(t *testing.T) {
	e := newEnv(t)
	e.create(newRun("run", str("image", app), retries(2)))
	for attempt := 0; attempt < 3; attempt++ {
		e.mustReconcile("run")
		var current string
		for _, j := range e.jobList() {
			if j.Labels[LabelAttempt] == fmt.Sprint(attempt) {
				current = j.Name
			}
		}
		if current == "" {
			t.Fatalf("attempt %d has no job", attempt)
		}
		e.setJobStatus(current, completed(2, 1, "node-2"))
		e.mustReconcile("run")
	}
	run := e.get("run")
	if c := condition(run); !c.IsFalse() || c.Reason != v1alpha1.ReasonThresholdNotMet.String() || len(run.Status.RetriesStatus) != 2 {
		t.Errorf("condition = %+v with %d retries, want ThresholdNotMet after 2 retries", c, len(run.Status.RetriesStatus))
	}
	if n := countActions(e.kruise.Actions(), "create", "imagepulljobs"); n != 3 {
		t.Errorf("%d creates, want one per attempt", n)
	}
}

func TestWaitFalseSucceedsOnceJobsExist(t *testing.T) {
	e := newEnv(t)
	e.create(newRun("run", str("image", app), str("wait", "false")))
	run := e.mustReconcile("run")
	c := condition(run)
	if !c.IsTrue() || len(e.jobList()) != 1 {
		t.Fatalf("condition = %+v, %d jobs", c, len(e.jobList()))
	}
	contains(t, "message", c.Message, "wait: false")
	if got := list(t, result(run, v1alpha1.ResultImagePullJobs)); len(got) != 1 {
		t.Errorf("imagePullJobs = %v", got)
	}
}

func TestNoNodeMatched(t *testing.T) {
	e := newEnv(t)
	e.create(newRun("run", str("image", app), str("nodeSelector", "node-type=gpu")))
	e.mustReconcile("run")
	e.setJobStatus(e.jobList()[0].Name, completed(0, 0))
	run := e.mustReconcile("run")
	c := condition(run)
	if !c.IsFalse() || c.Reason != v1alpha1.ReasonNoNodes.String() || c.Message != "no node matched node selector node-type=gpu" {
		t.Errorf("condition = %+v", c)
	}
	if result(run, v1alpha1.ResultDesired) != "0" {
		t.Errorf("results = %+v", run.Status.Results)
	}
}

func TestFailureNamesNodesAndWhy(t *testing.T) {
	name, tag := "registry.example.com/team/app", "main-d92ae17"
	ni := &kruisev1alpha1.NodeImage{
		ObjectMeta: metav1.ObjectMeta{Name: "node-3"},
		Status: kruisev1alpha1.NodeImageStatus{ImageStatuses: map[string]kruisev1alpha1.ImageStatus{
			name: {Tags: []kruisev1alpha1.ImageTagStatus{{Tag: tag, Phase: kruisev1alpha1.ImagePhaseFailed,
				Message: `Failed to pull image reference "registry.example.com/team/app:main-d92ae17": not found`}}},
		}},
	}
	e := newEnv(t, withNodeImage(ni))
	e.create(newRun("run", str("image", app)))
	e.mustReconcile("run")
	e.setJobStatus(e.jobList()[0].Name, completed(3, 1, "node-3", "node-9"))
	run := e.mustReconcile("run")
	c := condition(run)
	if !c.IsFalse() || c.Reason != v1alpha1.ReasonThresholdNotMet.String() {
		t.Fatalf("condition = %+v", c)
	}
	contains(t, "message", c.Message, "1/3 nodes have "+app+" (2 failed)", "successThreshold 100% needs 3",
		"node-3 ("+app+`): Failed to pull image reference "registry.example.com/team/app:main-d92ae17": not found`,
		"node-9 ("+app+"): job has completed")
	if got := list(t, result(run, v1alpha1.ResultFailedNodes)); fmt.Sprint(got) != "[node-3 node-9]" {
		t.Errorf("failedNodes = %v", got)
	}
	if err := k8sevent.CheckEventsOrdered(t, e.recorder.Events, t.Name(), []string{`^Warning ThresholdNotMet 1/3 nodes `}); err != nil {
		t.Error(err)
	}
}

// A registry's refusal is followed by what to check: OpenKruise pulls
// without a pull Secret it cannot find, so a misspelt one fails as none.
func TestRefusedPullSaysWhatToCheck(t *testing.T) {
	name, tag := "registry.example.com/team/app", "main-d92ae17"
	for _, c := range []struct {
		test, message string
		opts          []runOption
		want, notWant []string
	}{
		{"no pullSecrets", `failed to resolve reference: 401 Unauthorized`, nil,
			[]string{"; a registry refused a pull (unauthorized): if it needs credentials, name a kubernetes.io/dockerconfigjson Secret in pullSecrets"}, nil},
		{"pullSecrets named", `failed to resolve reference: 401 Unauthorized`, []runOption{arr("pullSecrets", "regcred", "other")},
			[]string{"; a registry refused a pull (unauthorized): check that pullSecrets regcred, other exist in namespace ci and hold credentials for it " +
				"(OpenKruise pulls without a named Secret it cannot find)"}, nil},
		{"not a refusal", `failed to resolve reference: not found`, []runOption{arr("pullSecrets", "regcred")},
			nil, []string{"refused"}},
	} {
		t.Run(c.test, func(t *testing.T) {
			ni := &kruisev1alpha1.NodeImage{
				ObjectMeta: metav1.ObjectMeta{Name: "node-3"},
				Status: kruisev1alpha1.NodeImageStatus{ImageStatuses: map[string]kruisev1alpha1.ImageStatus{
					name: {Tags: []kruisev1alpha1.ImageTagStatus{{Tag: tag, Phase: kruisev1alpha1.ImagePhaseFailed, Message: c.message}}},
				}},
			}
			e := newEnv(t, withNodeImage(ni))
			e.create(newRun("run", append([]runOption{str("image", app)}, c.opts...)...))
			e.mustReconcile("run")
			e.setJobStatus(e.jobList()[0].Name, completed(2, 1, "node-3"))
			msg := condition(e.mustReconcile("run")).Message
			contains(t, "message", msg, append([]string{"node-3 (" + app + "): " + c.message}, c.want...)...)
			for _, part := range c.notWant {
				if strings.Contains(msg, part) {
					t.Errorf("message %q contains %q", msg, part)
				}
			}
		})
	}
}

func TestDeletedRunLosesItsJobs(t *testing.T) {
	e := newEnv(t)
	e.create(newRun("run", arr("images", "nginx:1.27", "redis:7")))
	e.create(newRun("other", str("image", app)))
	e.mustReconcile("run")
	e.mustReconcile("other")
	if err := e.tekton.TektonV1beta1().CustomRuns(ns).Delete(e.ctx, "run", metav1.DeleteOptions{}); err != nil {
		t.Fatal(err)
	}
	if err := e.runs.Delete(newRun("run")); err != nil {
		t.Fatal(err)
	}
	e.syncJobs()
	if err := e.rec.Reconcile(e.ctx, ns+"/run"); err != nil {
		t.Fatal(err)
	}
	jobs := e.jobList()
	if len(jobs) != 1 || jobs[0].Labels[LabelCustomRun] != "other" {
		t.Errorf("jobs left: %v, want only the other run's", jobs)
	}
}

// OpenKruise starting a job, with no node finished, is no news worth a
// status write (each is decoded by every CustomRun watcher and makes
// Tekton's reconcile the PipelineRun), even where every change is written.
func TestKruiseStartingAJobIsNotAWrite(t *testing.T) {
	e := newEnv(t, withProgressEvery(0))
	e.create(newRun("run", str("image", app), arr("nodeNames", "node-1", "node-2", "node-3")))
	first := condition(e.mustReconcile("run")).Message
	if first != "no node has finished pulling "+app+" yet" {
		t.Fatalf("first message %q", first)
	}
	writes := countActions(e.tekton.Actions(), "update", "customruns")
	e.setJobStatus(e.jobList()[0].Name, pulling(3, 0, 0))
	if got := condition(e.mustReconcile("run")).Message; got != first {
		t.Fatalf("message once OpenKruise started = %q, want %q still", got, first)
	}
	if n := countActions(e.tekton.Actions(), "update", "customruns"); n != writes {
		t.Fatalf("%d status writes for OpenKruise's start alone, want none", n-writes)
	}
	e.setJobStatus(e.jobList()[0].Name, pulling(3, 1, 0))
	if got := condition(e.mustReconcile("run")).Message; got != "1/3 nodes have "+app {
		t.Fatalf("message once a node finished = %q", got)
	}
}

// Progress writes are coalesced: a node's report within the interval waits
// (the run is requeued for the rest of it), one after it is written, and
// the end of the run is never held.
func TestProgressWritesAreCoalesced(t *testing.T) {
	e := newEnv(t, withProgressEvery(10*time.Minute))
	e.create(newRun("run", str("image", app), arr("nodeNames", "node-1", "node-2", "node-3")))
	first := condition(e.mustReconcile("run")).Message
	contains(t, "first message", first, "no node has finished pulling "+app+" yet")
	job := e.jobList()[0]

	e.setJobStatus(job.Name, pulling(3, 1, 0))
	run, err := e.reconcile("run")
	if ok, after := isRequeue(err); !ok || after <= 9*time.Minute || after > 10*time.Minute {
		t.Fatalf("reconcile = %v, want a requeue for the rest of the 10m interval", err)
	}
	if got := condition(run).Message; got != first {
		t.Fatalf("message written within the interval: %q", got)
	}

	// The last progress write is older than the interval: write.
	run.Status.Conditions[0].LastTransitionTime = apis.VolatileTime{Inner: metav1.NewTime(time.Now().Add(-11 * time.Minute))}
	if _, err := e.tekton.TektonV1beta1().CustomRuns(ns).UpdateStatus(e.ctx, run, metav1.UpdateOptions{}); err != nil {
		t.Fatal(err)
	}
	if got := condition(e.mustReconcile("run")).Message; got != "1/3 nodes have "+app {
		t.Fatalf("message after the interval = %q", got)
	}

	// Done at once, however recent the last write.
	e.setJobStatus(job.Name, completed(3, 3))
	if c := condition(e.mustReconcile("run")); !c.IsTrue() || c.Message != "3/3 nodes have "+app {
		t.Fatalf("condition = %+v, want True at once", c)
	}
}
