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
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	clientgotesting "k8s.io/client-go/testing"
	"k8s.io/utils/ptr"

	"github.com/imageprepull/imageprepull/pkg/apis/custom/v1alpha1"
	"github.com/imageprepull/imageprepull/pkg/config"
)

// Every bad input fails the run at once, before anything is created, with a
// reason and a message that names the field.
func TestBadInputFailsAtOnce(t *testing.T) {
	obj := func(name string, value map[string]string) runOption {
		return func(r *v1beta1.CustomRun) {
			r.Spec.Params = append(r.Spec.Params, v1beta1.Param{Name: name,
				Value: v1beta1.ParamValue{Type: v1beta1.ParamTypeObject, ObjectVal: value}})
		}
	}
	badPrePull := prePull("bad", v1alpha1.ImagePrePullSpec{Images: []string{"nginx:1.27"}, Parallelism: ptr.To[int32](0)})
	for _, tc := range []struct {
		name   string
		run    *v1beta1.CustomRun
		reason v1alpha1.Reason
		want   []string // parts of the message
	}{
		{"no image", newRun("r"), v1alpha1.ReasonInvalidParams, []string{"no image to pull", "param image or images"}},
		{"empty image is not an image", newRun("r", str("image", "")), v1alpha1.ReasonInvalidParams, []string{"no image to pull"}},
		{"unparsable image", newRun("r", str("image", "registry/app:v1:v2")), v1alpha1.ReasonInvalidParams,
			[]string{"params.image", "not an image reference"}},
		{"uppercase image", newRun("r", str("image", "Registry/App:v1")), v1alpha1.ReasonInvalidParams,
			[]string{"params.image", "repository name must be lowercase"}},
		{"digest-only image", newRun("r", str("image", "nginx@sha256:0000000000000000000000000000000000000000000000000000000000000000")),
			v1alpha1.ReasonInvalidParams, []string{"params.image", "a digest alone cannot be pre-pulled: kruise-daemon pulls by tag (openkruise/kruise#2534)",
				"repository:tag@sha256:...", "param digest"}},
		{"a digest without image", newRun("r", arr("images", "nginx:1.27"), str("digest", "sha256:"+strings.Repeat("0", 64))),
			v1alpha1.ReasonInvalidParams, []string{"params.digest", "param digest needs param image"}},
		{"a digest that is not one", newRun("r", str("image", "nginx:1.27"), str("digest", "0000")),
			v1alpha1.ReasonInvalidParams, []string{"params.digest", "must be a manifest digest"}},
		{"two digests", newRun("r", str("image", "nginx:1.27@sha256:"+strings.Repeat("1", 64)), str("digest", "sha256:"+strings.Repeat("0", 64))),
			v1alpha1.ReasonInvalidParams, []string{"params.digest", "param image names another digest"}},
		{"duplicate images", newRun("r", str("image", "nginx:1.27"), arr("images", "nginx:1.27")), v1alpha1.ReasonInvalidParams,
			[]string{"params.images[1]", "duplicate"}},
		{"names and labels together", newRun("r", str("image", app), arr("nodeNames", "n1"), str("nodeSelector", "a=b")),
			v1alpha1.ReasonInvalidParams, []string{"expected exactly one, got both", "params.nodeNames", "params.nodeSelector"}},
		{"node and pod selectors together", newRun("r", str("image", app), str("nodeSelector", "a=b"), str("podSelector", "app=web")),
			v1alpha1.ReasonInvalidParams, []string{"params.nodeSelector", "params.podSelector"}},
		{"unknown param", newRun("r", str("image", app), str("imagePullSecret", "x")), v1alpha1.ReasonInvalidParams,
			[]string{`unknown param "imagePullSecret"`, "known params: image, images"}},
		{"param given twice", newRun("r", str("image", app), str("image", "nginx:1")), v1alpha1.ReasonInvalidParams,
			[]string{`param "image" is given twice`}},
		{"string for an array", newRun("r", str("images", app)), v1alpha1.ReasonInvalidParams,
			[]string{`param "images" must be of type array, not string`}},
		{"array for a string", newRun("r", arr("image", app)), v1alpha1.ReasonInvalidParams,
			[]string{`param "image" must be of type string, not array`}},
		{"object param", newRun("r", str("image", app), obj("parallelism", map[string]string{"a": "b"})), v1alpha1.ReasonInvalidParams,
			[]string{`param "parallelism" must be of type string, not object`}},
		{"malformed node selector", newRun("r", str("image", app), str("nodeSelector", "zone in (a")), v1alpha1.ReasonInvalidParams,
			[]string{"params.nodeSelector", "not a label selector"}},
		{"selector injection", newRun("r", str("image", app), str("nodeSelector", "a=b;kubectl delete ns x")), v1alpha1.ReasonInvalidParams,
			[]string{"params.nodeSelector"}},
		{"malformed pod selector", newRun("r", str("image", app), str("podSelector", "app notin x")), v1alpha1.ReasonInvalidParams,
			[]string{"params.podSelector"}},
		{"bad node name", newRun("r", str("image", app), arr("nodeNames", "Node_1")), v1alpha1.ReasonInvalidParams,
			[]string{"params.nodeNames[0]", "not a node name"}},
		{"threshold word", newRun("r", str("image", app), str("successThreshold", "most")), v1alpha1.ReasonInvalidParams,
			[]string{"params.successThreshold", "percentage"}},
		{"threshold over 100%", newRun("r", str("image", app), str("successThreshold", "101%")), v1alpha1.ReasonInvalidParams,
			[]string{"params.successThreshold"}},
		{"negative threshold", newRun("r", str("image", app), str("successThreshold", "-1")), v1alpha1.ReasonInvalidParams,
			[]string{"params.successThreshold", "must not be negative"}},
		{"threshold past int32", newRun("r", str("image", app), str("successThreshold", "99999999999")), v1alpha1.ReasonInvalidParams,
			[]string{"params.successThreshold"}},
		{"parallelism not a number", newRun("r", str("image", app), str("parallelism", "ten")), v1alpha1.ReasonInvalidParams,
			[]string{"params.parallelism", "whole number"}},
		{"parallelism zero", newRun("r", str("image", app), str("parallelism", "0")), v1alpha1.ReasonInvalidParams,
			[]string{"params.parallelism", "expected 1 <= 0 <= 10000"}},
		{"negative backoff", newRun("r", str("image", app), str("backoffLimit", "-3")), v1alpha1.ReasonInvalidParams,
			[]string{"params.backoffLimit"}},
		{"huge pull timeout", newRun("r", str("image", app), str("pullTimeoutSeconds", "99999999999999")), v1alpha1.ReasonInvalidParams,
			[]string{"params.pullTimeoutSeconds"}},
		{"bad pull policy", newRun("r", str("image", app), str("imagePullPolicy", "Never")), v1alpha1.ReasonInvalidParams,
			[]string{"params.imagePullPolicy", "Always or IfNotPresent"}},
		{"bad wait", newRun("r", str("image", app), str("wait", "yes")), v1alpha1.ReasonInvalidParams,
			[]string{"params.wait"}},
		{"secret in another namespace", newRun("r", str("image", app), arr("pullSecrets", "kube-system/regcred")), v1alpha1.ReasonInvalidParams,
			[]string{"params.pullSecrets[0]", "own namespace"}},
		{"named policy missing", newRun("r", ref("nope"), str("image", app)), v1alpha1.ReasonNotFound,
			[]string{"taskRef.name", `ImagePrePull "nope" not found in namespace "ci"`}},
		{"named policy invalid", newRun("r", ref("bad")), v1alpha1.ReasonInvalidSpec,
			[]string{`ImagePrePull "bad"`, "spec.parallelism"}},
		{"embedded unknown field", newRun("r", embedded(`{"images":["nginx:1"],"parralelism":3}`)), v1alpha1.ReasonInvalidSpec,
			[]string{"taskSpec.spec", `unknown field "parralelism"`}},
		{"embedded field in the wrong case", newRun("r", embedded(`{"Images":["nginx:1"]}`)), v1alpha1.ReasonInvalidSpec,
			[]string{"taskSpec.spec", `unknown field "Images"`}},
		{"embedded field twice", newRun("r", embedded(`{"images":["nginx:1"],"wait":true,"wait":false}`)), v1alpha1.ReasonInvalidSpec,
			[]string{"taskSpec.spec", `duplicate field "wait"`}},
		{"embedded wrong type", newRun("r", embedded(`{"images":"nginx:1"}`)), v1alpha1.ReasonInvalidSpec,
			[]string{"taskSpec.spec", "cannot unmarshal string"}},
		{"embedded names and labels", newRun("r", embedded(`{"images":["nginx:1"],"nodeSelector":{"names":["a"],"matchLabels":{"x":"y"}}}`)),
			v1alpha1.ReasonInvalidSpec, []string{"taskSpec.spec.nodeSelector.names", "mutually exclusive"}},
		{"embedded empty pod selector", newRun("r", embedded(`{"images":["nginx:1"],"podSelector":{}}`)),
			v1alpha1.ReasonInvalidSpec, []string{"taskSpec.spec.podSelector", "empty pod selector"}},
		{"embedded bad image", newRun("r", embedded(`{"images":["nginx:1","NGINX"]}`)),
			v1alpha1.ReasonInvalidSpec, []string{"taskSpec.spec.images[1]"}},
		{"10,000-character image", newRun("r", str("image", strings.Repeat("a", 10000)+":v1")), v1alpha1.ReasonInvalidParams,
			[]string{"params.image", "not an image reference"}},
		{"10,000-character node selector", newRun("r", str("image", app), str("nodeSelector", "k="+strings.Repeat("v", 10000))),
			v1alpha1.ReasonInvalidParams, []string{"params.nodeSelector"}},
		{"unicode image", newRun("r", str("image", "nginx:✓")), v1alpha1.ReasonInvalidParams, []string{"params.image"}},
		{"unicode node name", newRun("r", str("image", app), arr("nodeNames", "nöde-1")), v1alpha1.ReasonInvalidParams,
			[]string{"params.nodeNames[0]", "not a node name"}},
		{"JSON in the image", newRun("r", str("image", `{"image":"nginx:1"}`)), v1alpha1.ReasonInvalidParams, []string{"params.image"}},
		{"JSON in the node selector", newRun("r", str("image", app), str("nodeSelector", `{"a":"b"}`)), v1alpha1.ReasonInvalidParams,
			[]string{"params.nodeSelector"}},
		{"empty image in images", newRun("r", arr("images", "nginx:1", "")), v1alpha1.ReasonInvalidParams,
			[]string{"params.images[1]", "missing field"}},
		{"33 images", newRun("r", arr("images", manyImages(33)...)), v1alpha1.ReasonInvalidParams, []string{"params.images", "expected 0 <= 33 <= 32"}},
		{"duplicate node names", newRun("r", str("image", app), arr("nodeNames", "n1", "n1")), v1alpha1.ReasonInvalidParams,
			[]string{"params.nodeNames[1]", "duplicate"}},
		{"17 pull secrets", newRun("r", str("image", app), arr("pullSecrets", manyNames(17)...)), v1alpha1.ReasonInvalidParams,
			[]string{"params.pullSecrets", "expected 0 <= 17 <= 16"}},
		{"duplicate pull secrets", newRun("r", str("image", app), arr("pullSecrets", "a", "a")), v1alpha1.ReasonInvalidParams,
			[]string{"params.pullSecrets[1]", "duplicate"}},
		{"fractional percentage", newRun("r", str("image", app), str("successThreshold", "50.5%")), v1alpha1.ReasonInvalidParams,
			[]string{"params.successThreshold"}},
		{"threshold in exponent form", newRun("r", str("image", app), str("successThreshold", "1e3")), v1alpha1.ReasonInvalidParams,
			[]string{"params.successThreshold"}},
		{"fractional parallelism", newRun("r", str("image", app), str("parallelism", "1.5")), v1alpha1.ReasonInvalidParams,
			[]string{"params.parallelism", "whole number"}},
		{"hexadecimal parallelism", newRun("r", str("image", app), str("parallelism", "0x10")), v1alpha1.ReasonInvalidParams,
			[]string{"params.parallelism"}},
		{"padded number", newRun("r", str("image", app), str("parallelism", " 5")), v1alpha1.ReasonInvalidParams,
			[]string{"params.parallelism"}},
		{"zero pull timeout", newRun("r", str("image", app), str("pullTimeoutSeconds", "0")), v1alpha1.ReasonInvalidParams,
			[]string{"params.pullTimeoutSeconds"}},
		{"backoff over the bound", newRun("r", str("image", app), str("backoffLimit", "101")), v1alpha1.ReasonInvalidParams,
			[]string{"params.backoffLimit", "expected 0 <= 101 <= 100"}},
		{"wait in another case", newRun("r", str("image", app), str("wait", "True")), v1alpha1.ReasonInvalidParams, []string{"params.wait"}},
		{"pull policy in lower case", newRun("r", str("image", app), str("imagePullPolicy", "always")), v1alpha1.ReasonInvalidParams,
			[]string{"params.imagePullPolicy"}},
		{"image with a space", newRun("r", str("image", "nginx 1.27")), v1alpha1.ReasonInvalidParams, []string{"params.image"}},
		{"image with a scheme", newRun("r", str("image", "https://registry.example.com/app:v1")), v1alpha1.ReasonInvalidParams,
			[]string{"params.image"}},
		{"tag of 129 characters", newRun("r", str("image", "nginx:"+strings.Repeat("t", 129))), v1alpha1.ReasonInvalidParams,
			[]string{"params.image"}},
		{"param name in another case", newRun("r", str("Image", app)), v1alpha1.ReasonInvalidParams, []string{`unknown param "Image"`}},
		{"embedded number as string", newRun("r", embedded(`{"images":["nginx:1"],"parallelism":"3"}`)), v1alpha1.ReasonInvalidSpec,
			[]string{"taskSpec.spec", "cannot unmarshal string"}},
		{"embedded array as spec", newRun("r", embedded(`["nginx:1"]`)), v1alpha1.ReasonInvalidSpec,
			[]string{"taskSpec.spec", "cannot unmarshal array"}},
		{"embedded threshold as bool", newRun("r", embedded(`{"images":["nginx:1"],"successThreshold":true}`)), v1alpha1.ReasonInvalidSpec,
			[]string{"taskSpec.spec"}},
		{"embedded huge parallelism", newRun("r", embedded(`{"images":["nginx:1"],"parallelism":1000000000}`)), v1alpha1.ReasonInvalidSpec,
			[]string{"taskSpec.spec.parallelism"}},
		{"embedded parallelism past int32", newRun("r", embedded(`{"images":["nginx:1"],"parallelism":99999999999}`)), v1alpha1.ReasonInvalidSpec,
			[]string{"taskSpec.spec", "cannot unmarshal number"}},
		{"embedded negative ttl", newRun("r", embedded(`{"images":["nginx:1"],"ttlSecondsAfterFinished":-1}`)), v1alpha1.ReasonInvalidSpec,
			[]string{"taskSpec.spec.ttlSecondsAfterFinished"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			e := newEnv(t, withPrePull(badPrePull))
			e.create(tc.run)
			run := e.failsAtOnce("r", tc.reason, tc.want...)
			if n := countActions(e.kruise.Actions(), "create", "imagepulljobs"); n != 0 {
				t.Errorf("%d ImagePullJobs created for bad input", n)
			}
			if run.Status.CompletionTime == nil {
				t.Error("completionTime not set")
			}
		})
	}
}

func manyImages(n int) []string {
	out := make([]string, n)
	for i := range out {
		out[i] = fmt.Sprintf("registry.example.com/app-%d:v1", i)
	}
	return out
}

func manyNames(n int) []string {
	out := make([]string, n)
	for i := range out {
		out[i] = fmt.Sprintf("secret-%d", i)
	}
	return out
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
func TestEditedNamedImagePrePullIsIgnoredThroughRetries(t *testing.T) {
	e := newEnv(t, withPrePull(prePull("web", v1alpha1.ImagePrePullSpec{Images: []string{shopApp}, PullSecrets: []string{"shop-cred"}})))
	e.create(newRun("run", ref("web"), retries(1), serviceAccount("builder")))
	e.mustReconcile("run")

	edited := prePull("web", v1alpha1.ImagePrePullSpec{Images: []string{miner}, PullSecrets: []string{"admin-cred"}})
	if err := e.prePullIndexer().Update(edited); err != nil {
		t.Fatal(err)
	}
	e.setJobStatus(e.jobList()[0].Name, completed(2, 1, "node-2"))
	e.clock.Step(time.Minute) // past the reviews' cache: the retry asks again
	e.reviews = nil
	e.mustReconcile("run") // the attempt fails: a retry starts, and makes its jobs once stored
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
	e.clock.Step(time.Minute)
	e.reviews = nil
	e.mustReconcile("run") // the attempt fails, and the retry makes its jobs once stored
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

func TestNamedImagePrePullIsUsedAsWritten(t *testing.T) {
	e := newEnv(t, withPrePull(prePull("web", webNodes)))
	e.create(newRun("run", ref("web")))
	e.mustReconcile("run")

	jobs := e.jobList()
	if len(jobs) != 1 {
		t.Fatalf("%d jobs, want 1", len(jobs))
	}
	s := jobs[0].Spec
	if s.Image != "registry.example.com/team/base:v1" || s.Parallelism.IntValue() != 3 ||
		*s.PullPolicy.TimeoutSeconds != 120 || *s.PullPolicy.BackoffLimit != 1 ||
		fmt.Sprint(s.PullSecrets) != "[regcred]" || s.ImagePullPolicy != "Always" ||
		s.Selector.MatchLabels["node-type"] != "web" {
		t.Errorf("job spec does not follow the policy: %+v", s)
	}
	// ttlSecondsAfterFinished is handed on once the run is done with the job.
	if s.CompletionPolicy.TTLSecondsAfterFinished != nil {
		t.Errorf("ttlSecondsAfterFinished %d on a job the run still follows", *s.CompletionPolicy.TTLSecondsAfterFinished)
	}
	e.setJobStatus(jobs[0].Name, completed(2, 2))
	if c := condition(e.mustReconcile("run")); !c.IsTrue() {
		t.Fatalf("condition = %+v", c)
	}
	if ttl := e.jobList()[0].Spec.CompletionPolicy.TTLSecondsAfterFinished; ttl == nil || *ttl != 300 {
		t.Errorf("ttlSecondsAfterFinished = %v once the run ended, want 300", ttl)
	}
}

func TestParamsOverrideNamedImagePrePull(t *testing.T) {
	e := newEnv(t, withPrePull(prePull("web", webNodes)))
	e.create(newRun("run", ref("web"), str("image", app), str("parallelism", "7"),
		str("nodeSelector", "zone in (a,b),!spot")))
	e.mustReconcile("run")

	jobs := e.jobList()
	if len(jobs) != 1 || jobs[0].Spec.Image != app {
		t.Fatalf("jobs = %+v, want one for the param's image only", jobs)
	}
	s := jobs[0].Spec
	if s.Parallelism.IntValue() != 7 || *s.PullPolicy.TimeoutSeconds != 120 {
		t.Errorf("param and policy do not combine: %+v", s)
	}
	if got := metav1.FormatLabelSelector(&s.Selector.LabelSelector); got != "!spot,zone in (a,b)" {
		t.Errorf("selector = %s, want the param's, which replaces the policy's", got)
	}
}

func TestEmbeddedTaskSpec(t *testing.T) {
	e := newEnv(t)
	e.create(newRun("run", embedded(`{"images":["nginx:1.27"],"podSelector":{"matchLabels":{"app":"web"}},"successThreshold":"50%"}`)))
	run := e.mustReconcile("run")

	jobs := e.jobList()
	if len(jobs) != 1 || jobs[0].Spec.Image != "nginx:1.27" || jobs[0].Spec.PodSelector.MatchLabels["app"] != "web" || jobs[0].Spec.Selector != nil {
		t.Fatalf("jobs = %+v", jobs)
	}
	e.setJobStatus(jobs[0].Name, completed(4, 2, "node-3", "node-4"))
	run = e.mustReconcile("run")
	if !condition(run).IsTrue() {
		t.Errorf("2 of 4 nodes with a 50%% threshold: condition = %+v", condition(run))
	}
}

var webNodes = v1alpha1.ImagePrePullSpec{
	Images: []string{"registry.example.com/team/base:v1"},
	NodeSelector: &v1alpha1.NodeSelector{LabelSelector: metav1.LabelSelector{
		MatchLabels: map[string]string{"node-type": "web"},
	}},
	Parallelism:             ptr.To[int32](3),
	PullTimeoutSeconds:      ptr.To[int32](120),
	BackoffLimit:            ptr.To[int32](1),
	PullSecrets:             []string{"regcred"},
	ImagePullPolicy:         v1alpha1.PullAlways,
	TTLSecondsAfterFinished: ptr.To[int32](300),
}

func TestCancelBeforeStart(t *testing.T) {
	e := newEnv(t)
	e.create(newRun("run", str("image", app), func(r *v1beta1.CustomRun) { r.Spec.Status = v1beta1.CustomRunSpecStatusCancelled }))
	run := e.mustReconcile("run")
	if c := condition(run); !c.IsFalse() || c.Reason != v1beta1.CustomRunReasonCancelled.String() || c.Message != "CustomRun cancelled" {
		t.Errorf("condition = %+v", c)
	}
	if n := len(e.jobList()); n != 0 {
		t.Errorf("%d jobs for a cancelled run", n)
	}
}

// The pin is stored before the first job: the reconcile that starts a run
// makes none, and the next, once the pin is stored, makes them from it.
func TestThePinIsStoredBeforeTheFirstJob(t *testing.T) {
	e := newEnv(t)
	e.create(newRun("run", arr("images", app, "nginx:1.27")))
	run, err := e.reconcileOnce("run")
	if err != nil {
		t.Fatal(err)
	}
	if n := len(e.jobList()); n != 0 {
		t.Fatalf("%d jobs made by the reconcile that started the run", n)
	}
	if !run.HasStarted() || len(run.Status.ExtraFields.Raw) == 0 {
		t.Fatalf("the start and the pin were not stored: %+v", run.Status)
	}
	writes := countActions(e.tekton.Actions(), "update", "customruns")
	e.mustReconcile("run")
	if n := len(e.jobList()); n != 2 {
		t.Fatalf("%d jobs after the pin was stored, want 2", n)
	}
	if n := countActions(e.tekton.Actions(), "update", "customruns") - writes; n != 0 {
		t.Errorf("making the jobs wrote the status %d times, want none: the start said what follows", n)
	}
}

// A start that cannot be checked (the API server cannot answer a review) is
// no start: no start time, no pin, and the condition says what it waits for.
func TestAStartThatCannotBeCheckedIsNoStart(t *testing.T) {
	e := newEnv(t)
	e.kube.PrependReactor("create", "subjectaccessreviews", func(clientgotesting.Action) (bool, runtime.Object, error) {
		return true, nil, apierrors.NewServiceUnavailable("the API server is restarting")
	})
	e.create(newRun("run", str("image", app)))
	run, err := e.reconcile("run")
	if err == nil {
		t.Fatal("no error to retry")
	}
	c := condition(run)
	if run.HasStarted() || len(run.Status.ExtraFields.Raw) != 0 || !c.IsUnknown() || c.Reason != v1beta1.CustomRunReasonStarted.String() {
		t.Fatalf("status %+v, want no start time, no pin, Unknown/Started", run.Status)
	}
	contains(t, "message", c.Message, "waiting to start: ", "the API server is restarting")
}
