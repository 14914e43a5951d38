package imageprepull

import (
	"testing"
	"time"

	"github.com/tektoncd/pipeline/pkg/apis/pipeline/v1beta1"
	authorizationv1 "k8s.io/api/authorization/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/runtime"
	clientgotesting "k8s.io/client-go/testing"

	"github.com/imageprepull/imageprepull/pkg/apis/custom/v1alpha1"
)

// The run acts as its ServiceAccount: the controller asks, as the API server
// would see that ServiceAccount, whether it may pre-pull in the run's
// namespace (create prepulls.custom.kruise.dev, a permission that grants
// nothing else) and get each pull Secret, and creates nothing otherwise.
func TestRunIsAuthorizedAsItsServiceAccount(t *testing.T) {
	e := newEnv(t)
	e.create(newRun("run", str("image", app), arr("pullSecrets", "regcred"), serviceAccount("builder")))
	if c := condition(e.mustReconcile("run")); c.IsFalse() {
		t.Fatalf("condition = %+v", c)
	}
	want := []authorizationv1.SubjectAccessReviewSpec{
		{User: "system:serviceaccount:ci:builder", Groups: []string{"system:serviceaccounts", "system:serviceaccounts:ci", "system:authenticated"},
			ResourceAttributes: &authorizationv1.ResourceAttributes{Namespace: ns, Verb: "create", Group: "custom.kruise.dev", Resource: "prepulls"}},
		{User: "system:serviceaccount:ci:builder", Groups: []string{"system:serviceaccounts", "system:serviceaccounts:ci", "system:authenticated"},
			ResourceAttributes: &authorizationv1.ResourceAttributes{Namespace: ns, Verb: "get", Resource: "secrets", Name: "regcred"}},
	}
	if len(e.reviews) != 2 || e.reviews[0].String() != want[0].String() || e.reviews[1].String() != want[1].String() {
		t.Errorf("reviews = %+v, want %+v", e.reviews, want)
	}
	// Authorized once: later reconciles of the same run ask nothing.
	e.setJobStatus(e.jobList()[0].Name, pulling(2, 1, 0))
	e.mustReconcile("run")
	if len(e.reviews) != 2 {
		t.Errorf("%d reviews after a second reconcile, want the first two only", len(e.reviews))
	}
}

func TestUnauthorizedRunFailsAndCreatesNothing(t *testing.T) {
	for _, tc := range []struct {
		name   string
		run    *v1beta1.CustomRun
		denied func(authorizationv1.SubjectAccessReviewSpec) bool
		want   []string
	}{
		{"no binding", newRun("run", str("image", app), serviceAccount("nobody")),
			func(authorizationv1.SubjectAccessReviewSpec) bool { return true },
			[]string{"ServiceAccount ci/nobody may not pre-pull in namespace ci (create prepulls.custom.kruise.dev)",
				"kubectl -n ci create rolebinding imageprepull-runner --clusterrole=imageprepull-runner --serviceaccount=ci:nobody"}},
		{"a pull Secret it may not read", newRun("run", str("image", app), arr("pullSecrets", "ok", "theirs"), serviceAccount("builder")),
			func(s authorizationv1.SubjectAccessReviewSpec) bool { return s.ResourceAttributes.Name == "theirs" },
			[]string{`ServiceAccount ci/builder may not get Secret "theirs" (named in pullSecrets) in namespace ci`,
				"kubectl -n ci create role builder-secret-theirs --verb=get --resource=secrets --resource-name=theirs && " +
					"kubectl -n ci create rolebinding builder-secret-theirs --role=builder-secret-theirs --serviceaccount=ci:builder"}},
		{"no ServiceAccount: default, as Tekton's webhook fills it", newRun("run", str("image", app)),
			func(authorizationv1.SubjectAccessReviewSpec) bool { return true },
			[]string{"ServiceAccount ci/default may not pre-pull"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			e := newEnv(t)
			e.deny = tc.denied
			e.create(tc.run)
			e.failsAtOnce("run", v1alpha1.ReasonNotAuthorized, tc.want...)
			if n := len(e.jobList()); n != 0 {
				t.Errorf("%d ImagePullJobs created for an unauthorized run", n)
			}
		})
	}
}

// An API server that cannot answer is not a refusal: the reconcile is retried.
func TestReviewErrorsAreRetried(t *testing.T) {
	e := newEnv(t)
	down := true
	e.kube.PrependReactor("create", "subjectaccessreviews", func(clientgotesting.Action) (bool, runtime.Object, error) {
		if down {
			return true, nil, apierrors.NewServiceUnavailable("the API server is restarting")
		}
		return false, nil, nil
	})
	e.create(newRun("run", str("image", app)))
	run, err := e.reconcile("run")
	if err == nil || condition(run).IsFalse() || len(e.jobList()) != 0 {
		t.Fatalf("err = %v, condition %+v, %d jobs: want an error to retry, the run going, no job", err, condition(run), len(e.jobList()))
	}
	down = false
	if c := condition(e.mustReconcile("run")); c.IsFalse() || len(e.jobList()) != 1 {
		t.Errorf("condition %+v with %d jobs after the API server answered", c, len(e.jobList()))
	}
}

// Decisions are kept a while, per ServiceAccount and what it may do: a
// thousand runs of one ServiceAccount do not make a thousand reviews, and a
// revoked binding takes effect once the decision expires.
func TestDecisionsAreCachedForAWhile(t *testing.T) {
	e := newEnv(t)
	for _, name := range []string{"a", "b", "c"} {
		e.create(newRun(name, str("image", app)))
		e.mustReconcile(name)
	}
	if len(e.reviews) != 1 {
		t.Fatalf("%d reviews for three runs of one ServiceAccount, want 1", len(e.reviews))
	}
	e.deny = func(authorizationv1.SubjectAccessReviewSpec) bool { return true } // the binding is removed
	e.create(newRun("d", str("image", app)))
	if c := condition(e.mustReconcile("d")); c.IsFalse() {
		t.Fatalf("a run within %s of the last allowed decision failed: %+v", allowedFor, c)
	}
	e.clock.Step(allowedFor + time.Second)
	e.create(newRun("e", str("image", app)))
	e.failsAtOnce("e", v1alpha1.ReasonNotAuthorized, "may not pre-pull")
}
