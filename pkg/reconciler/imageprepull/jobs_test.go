package imageprepull

import (
	"testing"
	"time"

	kruisev1alpha1 "github.com/openkruise/kruise-api/apps/v1alpha1"
	"github.com/tektoncd/pipeline/pkg/apis/pipeline/v1beta1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/types"
	clientgotesting "k8s.io/client-go/testing"

	"github.com/imageprepull/imageprepull/pkg/kruise"
)

// A controller restarted while the API server is unsteady cannot start its
// ImagePullJob informer (discovery fails). A run cancelled, timed out or
// deleted meanwhile must keep its jobs' deletion pending, not end as if
// Kruise were absent and leave the jobs behind.
func TestJobsAreDeletedOnceDiscoveryWorksAgain(t *testing.T) {
	for _, tc := range []struct {
		name string
		end  func(e *env)
		// done reports whether the run ended; nil for a deleted run.
		done func(e *env) bool
	}{
		{"cancelled", func(e *env) {
			run := e.get("run")
			run.Spec.Status = v1beta1.CustomRunSpecStatusCancelled
			if _, err := e.tekton.TektonV1beta1().CustomRuns(ns).Update(e.ctx, run, metav1.UpdateOptions{}); err != nil {
				t.Fatal(err)
			}
		}, func(e *env) bool { return condition(e.get("run")).IsFalse() }},
		{"timed out", func(e *env) { e.clock.Step(2 * time.Hour) },
			func(e *env) bool { return condition(e.get("run")).IsFalse() }},
		{"deleted", func(e *env) {
			if err := e.tekton.TektonV1beta1().CustomRuns(ns).Delete(e.ctx, "run", metav1.DeleteOptions{}); err != nil {
				t.Fatal(err)
			}
			if err := e.runs.Delete(newRun("run")); err != nil {
				t.Fatal(err)
			}
		}, nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			e := newEnv(t)
			e.create(newRun("run", str("image", app)))
			e.mustReconcile("run")
			if len(e.jobList()) != 1 {
				t.Fatalf("jobs = %v, want one", e.jobList())
			}

			unsteady := true
			e.kruise.PrependReactor("get", "resource", func(clientgotesting.Action) (bool, runtime.Object, error) {
				if unsteady {
					return true, nil, apierrors.NewServiceUnavailable("etcd is restarting")
				}
				return false, nil, nil
			})
			e.restartJobInformer()
			tc.end(e)
			reconcile := func() error {
				if tc.done == nil {
					return e.rec.Reconcile(e.ctx, ns+"/run")
				}
				_, err := e.reconcile("run")
				return err
			}

			if err := reconcile(); err == nil {
				t.Fatal("reconcile succeeded while discovery fails, want an error to retry")
			}
			if tc.done != nil && tc.done(e) {
				t.Errorf("condition = %+v: the run ended with its job not deleted", condition(e.get("run")))
			}
			if n := len(e.jobList()); n != 1 {
				t.Fatalf("%d jobs, want the job kept until it can be deleted", n)
			}

			unsteady = false
			e.waitFor("the informer to start and the jobs to go", func() bool {
				err := reconcile()
				if ok, _ := isRequeue(err); err != nil && !ok && !kruise.IsStarting(err) {
					t.Fatalf("reconcile: %v", err)
				}
				return len(e.jobList()) == 0
			})
			if tc.done != nil && !tc.done(e) {
				t.Errorf("condition = %+v, want the run ended", condition(e.get("run")))
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

// A gone run's jobs are deleted at once only where the garbage collector
// deletes them anyway: their one owner is the run, and they bear our labels.
func TestObserveDeletionDeletesOnlyWhatTheCollectorWould(t *testing.T) {
	e := newEnv(t)
	e.create(newRun("run", str("image", app)))
	e.mustReconcile("run")
	own := e.jobList()[0]
	twoOwners := e.foreignJob("run", "nginx:1.27", 0, func(j *kruisev1alpha1.ImagePullJob) {
		j.OwnerReferences = append(j.OwnerReferences, metav1.OwnerReference{APIVersion: "v1", Kind: "ConfigMap", Name: "keep", UID: "uid-cm"})
	})
	unlabelled := e.foreignJob("run", "redis:7", 0, func(j *kruisev1alpha1.ImagePullJob) { j.Labels = map[string]string{LabelCustomRun: "run"} })
	e.syncJobs()
	if err := e.r.ObserveDeletion(e.ctx, types.NamespacedName{Namespace: ns, Name: "run"}); err != nil {
		t.Fatal(err)
	}
	names := map[string]bool{}
	for _, j := range e.jobList() {
		names[j.Name] = true
	}
	if names[own.Name] || !names[twoOwners.Name] || !names[unlabelled.Name] {
		t.Errorf("jobs left %v: want the run's own deleted, %s and %s kept", names, twoOwners.Name, unlabelled.Name)
	}
}
