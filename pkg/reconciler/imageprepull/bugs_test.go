package imageprepull

import (
	"strconv"
	"testing"
	"time"

	"github.com/tektoncd/pipeline/pkg/apis/pipeline/v1beta1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	clientgotesting "k8s.io/client-go/testing"
)

// expireJobs plays OpenKruise's TTL: it deletes every completed job whose
// ttlSecondsAfterFinished has passed by now.
func (e *env) expireJobs(now time.Time) {
	e.t.Helper()
	for _, j := range e.jobList() {
		ttl := j.Spec.CompletionPolicy.TTLSecondsAfterFinished
		if ttl == nil || j.Status.CompletionTime == nil || now.Before(j.Status.CompletionTime.Add(time.Duration(*ttl)*time.Second)) {
			continue
		}
		if err := e.kruise.AppsV1alpha1().ImagePullJobs(ns).Delete(e.ctx, j.Name, metav1.DeleteOptions{}); err != nil {
			e.t.Fatal(err)
		}
	}
}

// A job OpenKruise deletes by its TTL is not one deleted by someone else:
// with ttlSecondsAfterFinished: 0, an image whose pulls finished first must
// not fail the run while its other images still pull.
func TestTTLCannotBiteARunningRun(t *testing.T) {
	e := newEnv(t)
	e.create(newRun("run", arr("images", "nginx:1.27", "redis:7"), embeddedTTL(0)))
	e.mustReconcile("run")
	jobs := e.jobList()
	e.setJobStatus(jobs[0].Name, completed(2, 2))
	e.setJobStatus(jobs[1].Name, pulling(2, 1, 0))
	e.expireJobs(t0)
	if c := condition(e.mustReconcile("run")); c.IsFalse() {
		t.Fatalf("condition = %+v: the run failed while an image still pulled", c)
	}
	e.setJobStatus(jobs[1].Name, completed(2, 2))
	if c := condition(e.mustReconcile("run")); !c.IsTrue() {
		t.Fatalf("condition = %+v, want Succeeded", c)
	}
	// Done with them, the run hands the TTL on, and Kruise deletes them.
	e.expireJobs(t0)
	if n := len(e.jobList()); n != 0 {
		t.Errorf("%d jobs left after their TTL", n)
	}
}

func embeddedTTL(seconds int) runOption {
	return func(r *v1beta1.CustomRun) {
		params := r.Spec.Params
		embedded(`{"ttlSecondsAfterFinished":` + strconv.Itoa(seconds) + `}`)(r)
		r.Spec.Params = params
	}
}

// neverSyncs makes the ImagePullJob informer one that cannot sync, as after
// an RBAC edit that refuses the controller's list: a restarted controller's.
func (e *env) neverSyncs() {
	e.kruise.PrependReactor("list", "imagepulljobs", func(clientgotesting.Action) (bool, runtime.Object, error) {
		return true, nil, apierrors.NewForbidden(schema.GroupResource{Group: "apps.kruise.io", Resource: "imagepulljobs"}, "", nil)
	})
	e.restartJobInformer()
}

// A run times out, and is cancelled, even when its jobs cannot be read: it
// says what it could not read, and deletes the jobs it recorded by name.
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
			contains(t, "message", c.Message, "its ImagePullJobs could not be listed", "forbidden", "deleted the 1 this attempt recorded")
			if n := len(e.jobList()); n != 0 {
				t.Errorf("%d jobs left", n)
			}
		})
	}
}

// A registry's refusal is told by its status, not by any 401 or 403 in the
// message: ports and digests hold those digits too.
func TestFailureClassReadsStatusesNotDigits(t *testing.T) {
	for msg, want := range map[string]string{
		`failed to authorize: failed to fetch anonymous token: unexpected status: 401 Unauthorized`:  classUnauthorized,
		`pulling from host reg.local failed with status code 403`:                                    classUnauthorized,
		`pull access denied, repository does not exist or may require authorization`:                 classUnauthorized,
		`failed to do request: Head "http://127.0.0.1:4013/v2/app/manifests/v1": EOF`:                classOther,
		`failed to copy: httpReadSeeker: failed open: sha256:4031aa9c401b: connection reset by peer`: classOther,
		`rpc error: code = NotFound desc = failed to pull and unpack image "x:1": not found`:         classNotFound,
		`context deadline exceeded`: classTimeout,
	} {
		if got := failureClass(msg); got != want {
			t.Errorf("failureClass(%q) = %s, want %s", msg, got, want)
		}
	}
}

// Whatever enqueues it, a run of another custom task is left as it is.
func TestAnotherCustomTasksRunIsLeftAlone(t *testing.T) {
	e := newEnv(t)
	run := newRun("theirs", str("image", app), func(r *v1beta1.CustomRun) {
		r.Spec.CustomRef = &v1beta1.TaskRef{APIVersion: "example.dev/v1", Kind: "Wait"}
	})
	if event := e.r.ReconcileKind(e.ctx, run); event != nil {
		t.Errorf("event %v", event)
	}
	if run.Status.StartTime != nil || len(run.Status.Conditions) != 0 || len(e.jobList()) != 0 {
		t.Errorf("another task's run was touched: %+v", run.Status)
	}
}
