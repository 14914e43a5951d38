package imageprepull

import (
	"errors"
	"fmt"
	"net/http"
	"testing"

	kruisev1alpha1 "github.com/openkruise/kruise-api/apps/v1alpha1"
	"github.com/tektoncd/pipeline/pkg/apis/pipeline/v1beta1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	clientgotesting "k8s.io/client-go/testing"
	"k8s.io/utils/ptr"
	"knative.dev/pkg/kmeta"

	"github.com/imageprepull/imageprepull/pkg/apis/custom/v1alpha1"
	imagepkg "github.com/imageprepull/imageprepull/pkg/image"
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
	// The jobs exist (a first controller made them from the stored pin) and
	// this controller's informer starts afresh: it finds them, makes no
	// second one, and the run goes on.
	e := newEnv(t)
	e.create(newRun("run", str("image", app)))
	e.mustReconcile("run")
	first := e.jobList()[0]

	e.restartJobInformer()
	run, err := e.reconcile("run")
	if ok, _ := isRequeue(err); !ok {
		t.Fatalf("reconcile while the new informer syncs: %v, want a requeue", err)
	}
	run = e.mustReconcile("run")
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

func TestJobDeletedWhileRunningFailsTheRun(t *testing.T) {
	e := newEnv(t)
	e.create(newRun("run", str("image", app)))
	e.mustReconcile("run")
	job := e.jobList()[0]
	name := job.Name
	if err := e.kruise.AppsV1alpha1().ImagePullJobs(ns).Delete(e.ctx, name, metav1.DeleteOptions{}); err != nil {
		t.Fatal(err)
	}
	e.waitFor("the informer to tell the deletion", func() bool { return e.r.deleted.seen(&job) })
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

func TestSeveralImagesOneJobEach(t *testing.T) {
	e := newEnv(t)
	e.create(newRun("run", str("image", app), arr("images", "nginx:1.27", "redis:7")))
	e.mustReconcile("run")

	jobs := e.jobList()
	images := map[string]string{}
	for _, j := range jobs {
		images[j.Spec.Image] = j.Name
	}
	if len(jobs) != 3 || images[app] == "" || images["nginx:1.27"] == "" || images["redis:7"] == "" {
		t.Fatalf("jobs = %v, want one per image", images)
	}

	e.setJobStatus(images[app], completed(3, 3))
	e.setJobStatus(images["nginx:1.27"], pulling(3, 1, 0))
	e.setJobStatus(images["redis:7"], completed(3, 2, "node-2"))
	run := e.mustReconcile("run")
	want := fmt.Sprintf("3/3 nodes have %s; 1/3 nodes have nginx:1.27; 2/3 nodes have redis:7 (1 failed)", app)
	if c := condition(run); !c.IsUnknown() || c.Message != want {
		t.Errorf("condition = %+v, want Running %q", c, want)
	}

	e.setJobStatus(images["nginx:1.27"], completed(3, 2, "node-3"))
	run = e.mustReconcile("run")
	// node-2 misses redis, node-3 misses nginx: only node-1 has every image.
	if result(run, v1alpha1.ResultSucceeded) != "1" || result(run, v1alpha1.ResultFailed) != "2" || result(run, v1alpha1.ResultDesired) != "3" {
		t.Errorf("results = %+v", run.Status.Results)
	}
	if got := list(t, result(run, v1alpha1.ResultFailedNodes)); fmt.Sprint(got) != "[node-2 node-3]" {
		t.Errorf("failedNodes = %v", got)
	}
	if got := list(t, result(run, v1alpha1.ResultImagePullJobs)); len(got) != 3 {
		t.Errorf("imagePullJobs = %v", got)
	}
	if condition(run).IsTrue() {
		t.Errorf("1 of 3 nodes with the default 100%% threshold succeeded: %+v", condition(run))
	}
}

func TestJobOfSomethingElseIsNotAdopted(t *testing.T) {
	e := newEnv(t)
	run := newRun("run", str("image", app))
	e.create(run)
	foreign := &kruisev1alpha1.ImagePullJob{ObjectMeta: metav1.ObjectMeta{
		Name: JobName(run.Name, run.UID, app, 0), Namespace: ns, Labels: map[string]string{LabelManagedBy: ManagedBy},
	}}
	if _, err := e.kruise.AppsV1alpha1().ImagePullJobs(ns).Create(e.ctx, foreign, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	got := e.mustReconcile("run")
	if c := condition(got); !c.IsFalse() || c.Reason != v1alpha1.ReasonImagePullJobConflict.String() {
		t.Errorf("condition = %+v, want False/%s", c, v1alpha1.ReasonImagePullJobConflict)
	}
}

// foreignJob is a job made by someone else under the name the run gives
// its job of image for attempt, with the run as its controller and our
// labels: all a name-and-owner check would look at.
func (e *env) foreignJob(runName, image string, attempt int, change func(*kruisev1alpha1.ImagePullJob)) *kruisev1alpha1.ImagePullJob {
	e.t.Helper()
	run := e.get(runName)
	ref, err := imagepkg.Parse(image)
	if err != nil {
		e.t.Fatal(err)
	}
	job := e.r.newJob(run, &v1alpha1.ImagePrePullSpec{
		Parallelism: ptr.To[int32](10), PullTimeoutSeconds: ptr.To[int32](600), BackoffLimit: ptr.To[int32](3), ImagePullPolicy: "IfNotPresent",
	}, ref, attempt)
	job.OwnerReferences = []metav1.OwnerReference{*kmeta.NewControllerRef(run)}
	change(job)
	made, err := e.kruise.AppsV1alpha1().ImagePullJobs(ns).Create(e.ctx, job, metav1.CreateOptions{})
	if err != nil {
		e.t.Fatal(err)
	}
	return made
}

// A job made ahead under the next attempt's name, of another image onto
// another node, does not turn a failing run into a success: it is not the
// run's, the run fails naming what differs, and the job is left as it is.
func TestAJobMadeAheadUnderTheNextAttemptsNameIsNotTheRuns(t *testing.T) {
	for _, tc := range []struct {
		name   string
		change func(*kruisev1alpha1.ImagePullJob)
		want   string
	}{
		{"another image", func(j *kruisev1alpha1.ImagePullJob) {
			j.Spec.Image = "reg.local/evil/x:v1"
			j.Spec.Selector = &kruisev1alpha1.ImagePullJobNodeSelector{Names: []string{"node-9"}}
		}, "it pulls reg.local/evil/x:v1, which attempt 1 of the run does not"},
		{"the run's image onto another node", func(j *kruisev1alpha1.ImagePullJob) {
			j.Spec.Selector = &kruisev1alpha1.ImagePullJobNodeSelector{Names: []string{"node-9"}}
		}, "its selector (nodes) differs"},
		{"another pull Secret", func(j *kruisev1alpha1.ImagePullJob) {
			j.Spec.Selector = &kruisev1alpha1.ImagePullJobNodeSelector{Names: []string{"node-1"}}
			j.Spec.PullSecrets = []string{"theirs"}
		}, "its pullSecrets differs"},
		{"a sandbox config", func(j *kruisev1alpha1.ImagePullJob) {
			j.Spec.Selector = &kruisev1alpha1.ImagePullJobNodeSelector{Names: []string{"node-1"}}
			j.Spec.SandboxConfig = &kruisev1alpha1.SandboxConfig{}
		}, "its sandboxConfig differs"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			e := newEnv(t)
			e.create(newRun("run", str("image", app), arr("nodeNames", "node-1"), retries(1)))
			e.mustReconcile("run")
			foreign := e.foreignJob("run", app, 1, tc.change)
			e.setJobStatus(foreign.Name, completed(1, 1))
			e.setJobStatus(JobName("run", "uid-run", app, 0), completed(1, 0, "node-1"))
			e.kruise.ClearActions()
			run := e.mustReconcile("run") // attempt 0 fails; attempt 1 finds the job made ahead
			c := condition(run)
			if !c.IsFalse() || c.Reason != v1alpha1.ReasonImagePullJobConflict.String() {
				t.Fatalf("condition = %+v, want False/%s", c, v1alpha1.ReasonImagePullJobConflict)
			}
			contains(t, "message", c.Message, foreign.Name, tc.want, "it is left as it is")
			if result(run, v1alpha1.ResultSucceeded) == "1" {
				t.Errorf("the run reports the foreign job's node as having the image")
			}
			for _, a := range e.kruise.Actions() {
				if a.GetResource().Resource == "imagepulljobs" && (a.GetVerb() == "patch" || a.GetVerb() == "delete" || a.GetVerb() == "update") {
					t.Errorf("the controller touched a job: %s %v", a.GetVerb(), a)
				}
			}
			if got := e.get("run"); len(got.Status.RetriesStatus) != 1 {
				t.Errorf("%d attempts ended, want the first", len(got.Status.RetriesStatus))
			}
		})
	}
}

// A job under the run's name that it did not make is neither deleted when
// the run is cancelled nor handed the run's TTL when it ends.
func TestAForeignJobIsNeverDeletedOrPatched(t *testing.T) {
	e := newEnv(t)
	e.create(newRun("run", arr("images", app, "nginx:1.27"), embeddedTTL(30)))
	if _, err := e.reconcileOnce("run"); err != nil { // started and pinned, no job yet
		t.Fatal(err)
	}
	foreign := e.foreignJob("run", "nginx:1.27", 0, func(j *kruisev1alpha1.ImagePullJob) { j.Spec.PullSecrets = []string{"theirs"} })
	e.failsAtOnce("run", v1alpha1.ReasonImagePullJobConflict, "its pullSecrets differs")
	e.mustReconcile("run") // the end, seen
	for _, j := range e.jobList() {
		if j.Name == foreign.Name && j.Spec.CompletionPolicy.TTLSecondsAfterFinished != nil {
			t.Errorf("the foreign job was handed the run's TTL")
		}
	}

	e.create(newRun("other", str("image", app)))
	e.mustReconcile("other")
	theirs := e.foreignJob("other", "nginx:1.27", 0, func(j *kruisev1alpha1.ImagePullJob) {})
	e.edit("other", func(r *v1beta1.CustomRun) { r.Spec.Status = v1beta1.CustomRunSpecStatusCancelled })
	e.mustReconcile("other")
	names := map[string]bool{}
	for _, j := range e.jobList() {
		names[j.Name] = true
	}
	if !names[theirs.Name] || !names[foreign.Name] {
		t.Errorf("a foreign job was deleted: jobs left %v", names)
	}
	if names[JobName("other", "uid-other", app, 0)] {
		t.Errorf("the cancelled run's own job is left")
	}
}
