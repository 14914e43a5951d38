package imageprepull

import (
	"fmt"
	"testing"

	"github.com/imageprepull/imageprepull/pkg/apis/custom/v1alpha1"
)

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

// Retries keep each attempt's outcome but not its failed nodes listed
// whole: the run's status stays bounded however many attempts it makes.
func TestRetriesDoNotMultiplyFailedNodes(t *testing.T) {
	e := newEnv(t)
	e.create(newRun("run", str("image", app), retries(1)))
	e.mustReconcile("run")
	e.setJobStatus(e.jobList()[0].Name, completed(2, 1, "node-2"))
	run := e.mustReconcile("run")
	if len(run.Status.RetriesStatus) != 1 {
		t.Fatalf("retries: %d", len(run.Status.RetriesStatus))
	}
	prior := run.Status.RetriesStatus[0]
	for _, r := range prior.Results {
		if r.Name == v1alpha1.ResultFailedNodes {
			t.Errorf("a retry's status keeps failedNodes %q", r.Value)
		}
	}
	if len(prior.ExtraFields.Raw) != 0 {
		t.Errorf("a retry's status keeps the extra fields: %s", prior.ExtraFields.Raw)
	}
	contains(t, "the ended attempt's message", prior.GetCondition("Succeeded").Message, "node-2")
}

func TestSuccessThreshold(t *testing.T) {
	for _, tc := range []struct {
		threshold string
		desired   int32
		failed    []string
		succeed   bool
	}{
		{"100%", 10, nil, true},
		{"100%", 10, []string{"n1"}, false},
		{"90%", 10, []string{"n1"}, true},
		{"90%", 10, []string{"n1", "n2"}, false},
		{"90%", 5, []string{"n1"}, false}, // 90% of 5 rounds up to 5
		{"0%", 3, []string{"n1", "n2", "n3"}, true},
		{"3", 10, []string{"n1", "n2", "n3", "n4", "n5", "n6", "n7"}, true},
		{"3", 10, []string{"n1", "n2", "n3", "n4", "n5", "n6", "n7", "n8"}, false},
		{"5", 3, nil, false}, // more than the matched nodes can never be met
	} {
		t.Run(fmt.Sprintf("%s of %d with %d failed", tc.threshold, tc.desired, len(tc.failed)), func(t *testing.T) {
			e := newEnv(t)
			e.create(newRun("run", str("image", app), str("successThreshold", tc.threshold)))
			e.mustReconcile("run")
			e.setJobStatus(e.jobList()[0].Name, completed(tc.desired, tc.desired-int32(len(tc.failed)), tc.failed...))
			run := e.mustReconcile("run")
			if got := condition(run).IsTrue(); got != tc.succeed {
				t.Errorf("succeeded = %v, want %v: %+v", got, tc.succeed, condition(run))
			}
			if !tc.succeed && condition(run).Reason != v1alpha1.ReasonThresholdNotMet.String() {
				t.Errorf("reason = %s", condition(run).Reason)
			}
		})
	}
}
