package imageprepull

import (
	"testing"

	kruisev1alpha1 "github.com/openkruise/kruise-api/apps/v1alpha1"
	"github.com/tektoncd/pipeline/pkg/apis/pipeline/v1beta1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/utils/ptr"
	"knative.dev/pkg/kmeta"

	"github.com/imageprepull/imageprepull/pkg/apis/custom/v1alpha1"
	imagepkg "github.com/imageprepull/imageprepull/pkg/image"
)

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
