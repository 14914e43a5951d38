package imageprepull

import (
	"fmt"
	"testing"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/intstr"
	"k8s.io/utils/ptr"

	"github.com/imageprepull/imageprepull/pkg/apis/custom/v1alpha1"
)

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

func TestNamedPolicyIsUsedAsWritten(t *testing.T) {
	e := newEnv(t, withPolicy(policy("web", webNodes)))
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

func TestParamsOverrideNamedPolicy(t *testing.T) {
	e := newEnv(t, withPolicy(policy("web", webNodes)))
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

func TestSuccessThreshold(t *testing.T) {
	for _, tc := range []struct {
		threshold string
		desired   int32
		failed    []string
		succeed   bool
	}{
		{"100%", 10, nil, true},
		{"100%", 10, []string{"n1"}, false},
		{"90%", 10, []string{"n1"}, true},
		{"90%", 10, []string{"n1", "n2"}, false},
		{"90%", 5, []string{"n1"}, false}, // 90% of 5 rounds up to 5
		{"0%", 3, []string{"n1", "n2", "n3"}, true},
		{"3", 10, []string{"n1", "n2", "n3", "n4", "n5", "n6", "n7"}, true},
		{"3", 10, []string{"n1", "n2", "n3", "n4", "n5", "n6", "n7", "n8"}, false},
		{"5", 3, nil, false}, // more than the matched nodes can never be met
	} {
		t.Run(fmt.Sprintf("%s of %d with %d failed", tc.threshold, tc.desired, len(tc.failed)), func(t *testing.T) {
			e := newEnv(t)
			e.create(newRun("run", str("image", app), str("successThreshold", tc.threshold)))
			e.mustReconcile("run")
			e.setJobStatus(e.jobList()[0].Name, completed(tc.desired, tc.desired-int32(len(tc.failed)), tc.failed...))
			run := e.mustReconcile("run")
			if got := condition(run).IsTrue(); got != tc.succeed {
				t.Errorf("succeeded = %v, want %v: %+v", got, tc.succeed, condition(run))
			}
			if !tc.succeed && condition(run).Reason != v1alpha1.ReasonThresholdNotMet.String() {
				t.Errorf("reason = %s", condition(run).Reason)
			}
		})
	}
}

func TestRequired(t *testing.T) {
	for _, tc := range []struct {
		t       intstr.IntOrString
		desired int32
		want    int32
	}{
		{intstr.FromString("100%"), 7, 7},
		{intstr.FromString("50%"), 7, 4},
		{intstr.FromString("1%"), 1000, 10},
		{intstr.FromString("1%"), 1, 1},
		{intstr.FromString("0%"), 9, 0},
		{intstr.FromInt32(2), 9, 2},
	} {
		got, err := required(tc.t, tc.desired)
		if err != nil || got != tc.want {
			t.Errorf("required(%s, %d) = %d, %v; want %d", tc.t.String(), tc.desired, got, err, tc.want)
		}
	}
}
