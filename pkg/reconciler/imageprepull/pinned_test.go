package imageprepull

import (
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/tektoncd/pipeline/pkg/apis/pipeline/v1beta1"
	"github.com/tektoncd/pipeline/pkg/reconciler/events/k8sevent"
	authorizationv1 "k8s.io/api/authorization/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/imageprepull/imageprepull/pkg/apis/custom/v1alpha1"
	"github.com/imageprepull/imageprepull/pkg/config"
)

const (
	shopApp = "reg.local/shop/app:v1"
	miner   = "reg.local/evil/miner:v1"
)

// edit changes a stored run's spec as a user with the namespace's edit role
// may, through Tekton's webhook.
func (e *env) edit(name string, change func(*v1beta1.CustomRun)) {
	e.t.Helper()
	run := e.get(name)
	change(run)
	if _, err := e.tekton.TektonV1beta1().CustomRuns(ns).Update(e.ctx, run, metav1.UpdateOptions{}); err != nil {
		e.t.Fatal(err)
	}
}

func setParam(name string, value v1beta1.ParamValue) func(*v1beta1.CustomRun) {
	return func(run *v1beta1.CustomRun) {
		for i := range run.Spec.Params {
			if run.Spec.Params[i].Name == name {
				run.Spec.Params[i].Value = value
				return
			}
		}
		run.Spec.Params = append(run.Spec.Params, v1beta1.Param{Name: name, Value: value})
	}
}

func jobImages(e *env) []string {
	var images []string
	for _, j := range e.jobList() {
		images = append(images, j.Spec.Image)
	}
	slices.Sort(images)
	return images
}

// The defect of issue #24, as a user found it: a run of an allowed image,
// edited while its node pulls to an image the policy refuses, pulled the
// edited-in image and Succeeded.
func TestEditedParamsAreIgnored(t *testing.T) {
	e := newEnv(t)
	e.setPolicy(map[string]string{config.KeyAllowedImages: "reg.local/shop/**"})
	e.create(newRun("run", str("image", shopApp)))
	e.mustReconcile("run")
	e.setJobStatus(e.jobList()[0].Name, pulling(1, 0, 0))
	e.edit("run", setParam("image", *v1beta1.NewStructuredValues(miner)))

	run := e.mustReconcile("run")
	if got := jobImages(e); !slices.Equal(got, []string{shopApp}) {
		t.Errorf("jobs pull %v after the edit, want %s only", got, shopApp)
	}
	contains(t, "message", condition(run).Message, "edited after its start: the run keeps what it was authorized for")
	if err := k8sevent.CheckEventsOrdered(t, e.recorder.Events, t.Name(), []string{
		"Warning EditIgnored its params, serviceAccountName or retries changed after the run started: the run keeps the images, nodes, pull Secrets and ServiceAccount it was authorized for",
	}); err != nil {
		t.Error(err)
	}
	// Told once per edit.
	e.mustReconcile("run")
	if n := len(e.recorder.Events); n != 0 {
		t.Errorf("%d more events for the same edit: %v", n, <-e.recorder.Events)
	}
	e.setJobStatus(e.jobList()[0].Name, completed(1, 1))
	if c := condition(e.mustReconcile("run")); !c.IsTrue() || strings.Contains(c.Message, miner) {
		t.Errorf("condition = %+v, want the run of %s to succeed", c, shopApp)
	}
}

// Editing the named ImagePrePull changes no run already going: each keeps
// the images and pull Secrets it was authorized for, through its retries.
func TestEditedNamedPolicyIsIgnoredThroughRetries(t *testing.T) {
	e := newEnv(t, withPolicy(policy("web", v1alpha1.ImagePrePullSpec{Images: []string{shopApp}, PullSecrets: []string{"shop-cred"}})))
	e.create(newRun("run", ref("web"), retries(1), serviceAccount("builder")))
	e.mustReconcile("run")

	edited := policy("web", v1alpha1.ImagePrePullSpec{Images: []string{miner}, PullSecrets: []string{"admin-cred"}})
	if err := e.policyIndexer().Update(edited); err != nil {
		t.Fatal(err)
	}
	e.setJobStatus(e.jobList()[0].Name, completed(2, 1, "node-2"))
	e.mustReconcile("run")    // the attempt fails: a retry starts
	e.clock.Step(time.Minute) // past the reviews' cache: the retry asks again
	e.reviews = nil
	e.mustReconcile("run")
	jobs := e.jobList()
	if len(jobs) != 2 {
		t.Fatalf("%d jobs, want one per attempt", len(jobs))
	}
	for _, j := range jobs {
		if j.Spec.Image != shopApp || fmt.Sprint(j.Spec.PullSecrets) != "[shop-cred]" {
			t.Errorf("job %s pulls %s with %v, want %s with shop-cred as authorized", j.Name, j.Spec.Image, j.Spec.PullSecrets, shopApp)
		}
	}
	for _, r := range e.reviews {
		if r.ResourceAttributes.Name == "admin-cred" {
			t.Errorf("the retry asked about the edited-in Secret: %+v", r)
		}
	}
	if len(e.reviews) == 0 {
		t.Error("the retry was not authorized again")
	}
}

// The ServiceAccount and the workload a run was authorized with stay its
// own: an edit names neither a new identity nor new nodes.
func TestEditedServiceAccountAndWorkloadAreIgnored(t *testing.T) {
	e := newEnv(t)
	e.deployment("web", podSpec(app))
	e.deployment("other", podSpec(miner))
	e.pod("web-1", "node-a", webLabels, corev1.PodRunning)
	e.create(newRun("run", str("image", app), str("workload", "deployment/web"), str("workloadImages", "true"), serviceAccount("builder"), retries(1)))
	e.mustReconcile("run")
	e.edit("run", func(run *v1beta1.CustomRun) {
		run.Spec.ServiceAccountName = "admin"
		setParam("workload", *v1beta1.NewStructuredValues("deployment/other"))(run)
	})
	e.setJobStatus(e.jobList()[0].Name, completed(1, 0, "node-a"))
	e.mustReconcile("run")
	e.clock.Step(time.Minute)
	e.reviews = nil
	e.mustReconcile("run") // the retry
	if len(e.reviews) == 0 {
		t.Error("the retry was not authorized again")
	}
	for _, j := range e.jobList() {
		if j.Spec.Image != app || strings.Join(j.Spec.Selector.Names, ",") != "node-a" {
			t.Errorf("job %s pulls %s onto %v, want %s onto node-a", j.Name, j.Spec.Image, j.Spec.Selector.Names, app)
		}
	}
	for _, r := range e.reviews {
		if !strings.HasSuffix(r.User, ":builder") || r.ResourceAttributes.Name == "other" {
			t.Errorf("a review for what the edit named: %+v", r)
		}
	}
}

// Each attempt is authorized again before its jobs: a retry after the
// ServiceAccount's binding was removed creates nothing.
func TestRetryAfterRevocationFails(t *testing.T) {
	e := newEnv(t)
	e.create(newRun("run", str("image", app), retries(2), serviceAccount("builder")))
	e.mustReconcile("run")
	e.setJobStatus(e.jobList()[0].Name, completed(2, 1, "node-2"))
	e.deny = func(authorizationv1.SubjectAccessReviewSpec) bool { return true }
	e.clock.Step(allowedFor + time.Second)
	e.mustReconcile("run") // the attempt fails: a retry starts
	run, err := e.reconcile("run")
	if err != nil {
		t.Fatal(err)
	}
	if c := condition(run); !c.IsFalse() || c.Reason != v1alpha1.ReasonNotAuthorized.String() {
		t.Errorf("condition = %+v, want %s", c, v1alpha1.ReasonNotAuthorized)
	}
	if n := len(e.jobList()); n != 1 {
		t.Errorf("%d jobs, want the first attempt's only", n)
	}
}

// A policy the admin tightened applies to the next attempt of a run in flight.
func TestRetryMeetsTheTightenedPolicy(t *testing.T) {
	e := newEnv(t)
	e.create(newRun("run", str("image", app), retries(1)))
	e.mustReconcile("run")
	e.setJobStatus(e.jobList()[0].Name, completed(2, 1, "node-2"))
	e.setPolicy(map[string]string{config.KeyAllowedImages: "reg.local/shop/**"})
	e.mustReconcile("run")
	run := e.failsAtOnce("run", v1alpha1.ReasonImageNotAllowed, `image "`+app+`" is not allowed here`)
	if n := len(e.jobList()); n != 1 || len(run.Status.RetriesStatus) != 1 {
		t.Errorf("%d jobs, %d retries: want the first attempt's job only", n, len(run.Status.RetriesStatus))
	}
}

// retries edited up after the start do not buy more attempts.
func TestEditedRetriesAreIgnored(t *testing.T) {
	e := newEnv(t)
	e.create(newRun("run", str("image", app)))
	e.mustReconcile("run")
	e.edit("run", func(run *v1beta1.CustomRun) { run.Spec.Retries = 5 })
	e.setJobStatus(e.jobList()[0].Name, completed(2, 1, "node-2"))
	run := e.mustReconcile("run")
	if c := condition(run); !c.IsFalse() || len(run.Status.RetriesStatus) != 0 {
		t.Errorf("condition %+v after %d retries, want a failure with none", c, len(run.Status.RetriesStatus))
	}
}

func TestLimits(t *testing.T) {
	t.Run("max-retries", func(t *testing.T) {
		e := newEnv(t)
		e.setPolicy(map[string]string{config.KeyMaxRetries: "2"})
		e.create(newRun("run", str("image", app), retries(3)))
		e.failsAtOnce("run", v1alpha1.ReasonLimitExceeded, "retries: 3 is more than config-imageprepull max-retries allows (2)")
	})
	t.Run("max-retries tightened while a run retries", func(t *testing.T) {
		e := newEnv(t)
		e.create(newRun("run", str("image", app), retries(3)))
		e.mustReconcile("run")
		e.setPolicy(map[string]string{config.KeyMaxRetries: "0"})
		e.setJobStatus(e.jobList()[0].Name, completed(2, 1, "node-2"))
		run := e.mustReconcile("run")
		if c := condition(run); !c.IsFalse() || len(run.Status.RetriesStatus) != 0 {
			t.Errorf("condition %+v after %d retries, want a failure with none", c, len(run.Status.RetriesStatus))
		}
	})
	t.Run("allow-all-nodes", func(t *testing.T) {
		e := newEnv(t)
		e.setPolicy(map[string]string{config.KeyAllowAllNodes: "false"})
		e.create(newRun("run", str("image", app)))
		e.failsAtOnce("run", v1alpha1.ReasonLimitExceeded, "the run targets every node, which config-imageprepull allow-all-nodes does not allow")
		e.create(newRun("named", str("image", app), arr("nodeNames", "node-1")))
		if c := condition(e.mustReconcile("named")); c.IsFalse() {
			t.Errorf("a run naming its nodes: %+v", c)
		}
	})
	t.Run("max-nodes-per-run, names", func(t *testing.T) {
		e := newEnv(t)
		e.setPolicy(map[string]string{config.KeyMaxNodesPerRun: "2"})
		e.create(newRun("run", str("image", app), arr("nodeNames", "n1", "n2", "n3")))
		e.failsAtOnce("run", v1alpha1.ReasonLimitExceeded, "the run targets 3 nodes, more than config-imageprepull max-nodes-per-run allows (2)")
		if n := len(e.jobList()); n != 0 {
			t.Errorf("%d jobs", n)
		}
	})
	t.Run("max-nodes-per-run, counted by OpenKruise", func(t *testing.T) {
		e := newEnv(t)
		e.setPolicy(map[string]string{config.KeyMaxNodesPerRun: "2"})
		e.create(newRun("run", str("image", app), str("nodeSelector", "pool=web")))
		e.mustReconcile("run")
		e.setJobStatus(e.jobList()[0].Name, pulling(3, 0, 0))
		e.failsAtOnce("run", v1alpha1.ReasonLimitExceeded, "the run targets 3 nodes, more than config-imageprepull max-nodes-per-run allows (2)")
		if n := len(e.jobList()); n != 0 {
			t.Errorf("%d jobs left after the run exceeded the limit", n)
		}
	})
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
