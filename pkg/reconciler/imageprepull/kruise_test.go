package imageprepull

import (
	"errors"
	"github.com/imageprepull/imageprepull/pkg/apis/custom/v1alpha1"
	"net/http"
	"testing"
	"time"

	kruisev1alpha1 "github.com/openkruise/kruise-api/apps/v1alpha1"
	"github.com/tektoncd/pipeline/pkg/apis/pipeline/v1beta1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	clientgotesting "k8s.io/client-go/testing"

	"github.com/imageprepull/imageprepull/pkg/kruise"
)

// A Kruise that no longer serves v1alpha1 (a future release) gets its own
// answer, naming what it serves, instead of "install OpenKruise".
func TestKruiseServingOnlyV1beta1(t *testing.T) {
	e := newEnv(t, withoutKruise())
	e.kruise.Resources = []*metav1.APIResourceList{{GroupVersion: "apps.kruise.io/v1beta1",
		APIResources: []metav1.APIResource{{Name: "imagepulljobs", Namespaced: true}, {Name: "nodeimages"}}}}
	e.create(newRun("run", str("image", app)))
	e.failsAtOnce("run", v1alpha1.ReasonKruiseVersionUnsupported, "in v1beta1 only, not in v1alpha1", "OpenKruise v1.8 and v1.9 serve both")
}

func TestKruiseNotInstalled(t *testing.T) {
	e := newEnv(t, withoutKruise())
	e.create(newRun("run", str("image", app)))
	run := e.mustReconcile("run")
	c := condition(run)
	if !c.IsFalse() || c.Reason != v1alpha1.ReasonKruiseNotInstalled.String() {
		t.Fatalf("condition = %+v", c)
	}
	contains(t, "message", c.Message, "install OpenKruise", "ImagePullJobGate")

	// Kruise gets installed: the next run works, with no restart.
	e.kruise.Resources = []*metav1.APIResourceList{{
		GroupVersion: kruisev1alpha1.SchemeGroupVersion.String(),
		APIResources: []metav1.APIResource{{Name: "imagepulljobs", Namespaced: true}},
	}}
	e.create(newRun("later", str("image", app)))
	_, err := e.reconcile("later")
	if ok, _ := isRequeue(err); !ok {
		t.Fatalf("first reconcile after install: %v, want a requeue while the informer syncs", err)
	}
	e.waitFor("the informer to sync", func() bool { _, err := e.jobs.Lister(e.ctx); return err == nil })
	later := e.mustReconcile("later")
	if c := condition(later); !c.IsUnknown() || len(e.jobList()) != 1 {
		t.Errorf("condition = %+v with %d jobs, want running with one", c, len(e.jobList()))
	}
}

func TestKruiseRefusals(t *testing.T) {
	forbidden := func(msg string) error {
		return apierrors.NewForbidden(kruisev1alpha1.Resource("imagepulljobs"), "x", errors.New(msg))
	}
	for _, tc := range []struct {
		name   string
		err    error
		reason v1alpha1.Reason
		want   []string
		// served is what discovery says once the create fails (nil: unchanged).
		served []*metav1.APIResourceList
	}{
		{"feature gate off", forbidden(`admission webhook "vimagepulljob.kb.io" denied the request: feature-gate ImagePullJobGate is not enabled`),
			v1alpha1.ReasonKruiseFeatureGateDisabled, []string{"feature-gate ImagePullJobGate is not enabled", "--feature-gates=ImagePullJobGate=true"}, nil},
		{"RBAC", forbidden(`User "system:serviceaccount:x:y" cannot create resource "imagepulljobs"`),
			v1alpha1.ReasonImagePullJobForbidden, []string{"cannot create resource", "ClusterRole"}, nil},
		{"webhook validation", apierrors.NewBadRequest(`admission webhook denied the request: invalid image`),
			v1alpha1.ReasonImagePullJobRejected, []string{"invalid image"}, nil},
		{"CRD removed", apierrors.NewNotFound(kruisev1alpha1.Resource("imagepulljobs"), ""),
			v1alpha1.ReasonKruiseNotInstalled, []string{"install OpenKruise"}, []*metav1.APIResourceList{}},
		{"a Kruise that serves v1beta1 only", apierrors.NewNotFound(kruisev1alpha1.Resource("imagepulljobs"), ""),
			v1alpha1.ReasonKruiseVersionUnsupported, []string{"serves imagepulljobs.apps.kruise.io in v1beta1 only, not in v1alpha1"},
			[]*metav1.APIResourceList{{GroupVersion: "apps.kruise.io/v1beta1", APIResources: []metav1.APIResource{{Name: "imagepulljobs", Namespaced: true}}}}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			e := newEnv(t)
			e.kruise.PrependReactor("create", "imagepulljobs", func(clientgotesting.Action) (bool, runtime.Object, error) {
				if tc.served != nil {
					e.kruise.Resources = tc.served
				}
				return true, nil, tc.err
			})
			e.create(newRun("run", str("image", app)))
			e.failsAtOnce("run", tc.reason, tc.want...)
		})
	}
}

// Kruise's webhook down (manager restarting) is not a verdict: the reconcile
// is retried and the run goes on once the webhook answers.
func TestWebhookUnavailableIsRetried(t *testing.T) {
	e := newEnv(t)
	down := true
	e.kruise.PrependReactor("create", "imagepulljobs", func(clientgotesting.Action) (bool, runtime.Object, error) {
		if down {
			return true, nil, apierrors.NewGenericServerResponse(http.StatusInternalServerError, "create",
				kruisev1alpha1.Resource("imagepulljobs"), "x", `failed calling webhook "vimagepulljob.kb.io": connect: connection refused`, 0, true)
		}
		return false, nil, nil
	})
	e.create(newRun("run", str("image", app)))
	run, err := e.reconcile("run")
	if err == nil || condition(run).IsFalse() {
		t.Fatalf("err = %v, condition = %+v: want an error to retry and the run still going", err, condition(run))
	}
	down = false
	run = e.mustReconcile("run")
	if c := condition(run); !c.IsUnknown() || len(e.jobList()) != 1 {
		t.Errorf("condition = %+v with %d jobs", c, len(e.jobList()))
	}
}

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
