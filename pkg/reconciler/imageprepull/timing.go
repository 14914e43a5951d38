package imageprepull

import (
	"math"
	"time"

	"github.com/tektoncd/pipeline/pkg/apis/pipeline/v1beta1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/utils/ptr"
)

// startTime is now, to the second, as the API server keeps a time: the
// reconcile that starts an attempt then times it (its requeue, the jobs'
// activeDeadlineSeconds) from the start that every later reconcile reads,
// not from one up to a second later.
func (r *Reconciler) startTime() *metav1.Time {
	return &metav1.Time{Time: r.clock.Now().Truncate(time.Second)}
}

// deadlineGrace is how long after the run's timeout OpenKruise stops its
// jobs itself (activeDeadlineSeconds). The run's timeout is the controller's
// to enforce: at it, the run reads where each node stood (queued, pulling)
// and deletes the jobs. With the job's deadline at the same second, OpenKruise
// often ended the job first, and the run reported its unfinished nodes as
// failed ("job exceeds activeDeadlineSeconds"). The deadline stays a backstop
// for a controller that is not running when the run times out.
const deadlineGrace = 10

// secondsLeft is the run's remaining time, in seconds rounded up (at least
// one), or nil when it has no timeout.
func (r *Reconciler) secondsLeft(run *v1beta1.CustomRun) *int64 {
	timeout := run.GetTimeout()
	if timeout <= 0 {
		return nil
	}
	left := timeout - r.clock.Since(run.Status.StartTime.Time)
	return ptr.To(max(int64(math.Ceil(left.Seconds())), 1))
}

// wholeTimeout is the run's timeout in seconds, as secondsLeft gives it at
// the attempt's start: the most a job of the attempt may be given.
func wholeTimeout(run *v1beta1.CustomRun) *int64 {
	if run.GetTimeout() <= 0 {
		return nil
	}
	return ptr.To(max(int64(math.Ceil(run.GetTimeout().Seconds())), 1))
}

// jobDeadline is a job's activeDeadlineSeconds: deadlineGrace after the run's
// timeout, or none when the run has no timeout.
func jobDeadline(left *int64) *int64 {
	if left == nil {
		return nil
	}
	return ptr.To(*left + deadlineGrace)
}

// pullTimeout is a node's time for one pull, never more than the run has
// left: a pull cannot usefully outlive the run, and Kruise rejects a job
// whose activeDeadlineSeconds is below it.
func pullTimeout(seconds int32, left *int64) *int32 {
	if left != nil && *left < int64(seconds) {
		return ptr.To(int32(*left))
	}
	return ptr.To(seconds)
}

// requeueBefore is how long to wait before checking the run's timeout again.
func (r *Reconciler) requeueBefore(run *v1beta1.CustomRun) time.Duration {
	if run.GetTimeout() <= 0 {
		return 0
	}
	return max(run.GetTimeout()-r.clock.Since(run.Status.StartTime.Time), time.Second)
}
