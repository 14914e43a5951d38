package imageprepull

import (
	"testing"
	"time"
)

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
			// Started and pinned; its jobs made tc.elapsed later.
			if _, err := e.reconcileOnce("run"); err != nil {
				t.Fatal(err)
			}
			e.clock.Step(tc.elapsed)
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
