package imageprepull

import (
	"fmt"
	"strings"
	"testing"

	kruisev1alpha1 "github.com/openkruise/kruise-api/apps/v1alpha1"
	"github.com/tektoncd/pipeline/pkg/reconciler/events/k8sevent"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/imageprepull/imageprepull/pkg/apis/custom/v1alpha1"
)

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

// A node still queued when Kruise ended the job at its deadline is named as
// queued, not only as "job exceeds activeDeadlineSeconds".
func TestJobDeadlineNamesQueuedNodes(t *testing.T) {
	e := newEnv(t, withNodeImage(queuedOn("node-3")))
	e.create(newRun("run", str("image", app)))
	e.mustReconcile("run")
	st := completed(2, 1, "node-3")
	st.Message = "job exceeds activeDeadlineSeconds"
	e.setJobStatus(e.jobList()[0].Name, st)
	c := condition(e.mustReconcile("run"))
	contains(t, "message", c.Message, "node-3 ("+app+"): job exceeds activeDeadlineSeconds: queued, never started")
}

func TestFailureNamesNodesAndWhy(t *testing.T) {
	name, tag := "registry.example.com/team/app", "main-d92ae17"
	ni := &kruisev1alpha1.NodeImage{
		ObjectMeta: metav1.ObjectMeta{Name: "node-3"},
		Status: kruisev1alpha1.NodeImageStatus{ImageStatuses: map[string]kruisev1alpha1.ImageStatus{
			name: {Tags: []kruisev1alpha1.ImageTagStatus{{Tag: tag, Phase: kruisev1alpha1.ImagePhaseFailed,
				Message: `Failed to pull image reference "registry.example.com/team/app:main-d92ae17": not found`}}},
		}},
	}
	e := newEnv(t, withNodeImage(ni))
	e.create(newRun("run", str("image", app)))
	e.mustReconcile("run")
	e.setJobStatus(e.jobList()[0].Name, completed(3, 1, "node-3", "node-9"))
	run := e.mustReconcile("run")
	c := condition(run)
	if !c.IsFalse() || c.Reason != v1alpha1.ReasonThresholdNotMet.String() {
		t.Fatalf("condition = %+v", c)
	}
	contains(t, "message", c.Message, "1/3 nodes have "+app+" (2 failed)", "successThreshold 100% needs 3",
		"node-3 ("+app+`): Failed to pull image reference "registry.example.com/team/app:main-d92ae17": not found`,
		"node-9 ("+app+"): job has completed")
	if got := list(t, result(run, v1alpha1.ResultFailedNodes)); fmt.Sprint(got) != "[node-3 node-9]" {
		t.Errorf("failedNodes = %v", got)
	}
	if err := k8sevent.CheckEventsOrdered(t, e.recorder.Events, t.Name(), []string{`^Warning ThresholdNotMet 1/3 nodes `}); err != nil {
		t.Error(err)
	}
}

// A registry's refusal is followed by what to check: OpenKruise pulls
// without a pull Secret it cannot find, so a misspelt one fails as none.
func TestRefusedPullSaysWhatToCheck(t *testing.T) {
	name, tag := "registry.example.com/team/app", "main-d92ae17"
	for _, c := range []struct {
		test, message string
		opts          []runOption
		want, notWant []string
	}{
		{"no pullSecrets", `failed to resolve reference: 401 Unauthorized`, nil,
			[]string{"; a registry refused a pull (unauthorized): if it needs credentials, name a kubernetes.io/dockerconfigjson Secret in pullSecrets"}, nil},
		{"pullSecrets named", `failed to resolve reference: 401 Unauthorized`, []runOption{arr("pullSecrets", "regcred", "other")},
			[]string{"; a registry refused a pull (unauthorized): check that pullSecrets regcred, other exist in namespace ci and hold credentials for it " +
				"(OpenKruise pulls without a named Secret it cannot find)"}, nil},
		{"not a refusal", `failed to resolve reference: not found`, []runOption{arr("pullSecrets", "regcred")},
			nil, []string{"refused"}},
	} {
		t.Run(c.test, func(t *testing.T) {
			ni := &kruisev1alpha1.NodeImage{
				ObjectMeta: metav1.ObjectMeta{Name: "node-3"},
				Status: kruisev1alpha1.NodeImageStatus{ImageStatuses: map[string]kruisev1alpha1.ImageStatus{
					name: {Tags: []kruisev1alpha1.ImageTagStatus{{Tag: tag, Phase: kruisev1alpha1.ImagePhaseFailed, Message: c.message}}},
				}},
			}
			e := newEnv(t, withNodeImage(ni))
			e.create(newRun("run", append([]runOption{str("image", app)}, c.opts...)...))
			e.mustReconcile("run")
			e.setJobStatus(e.jobList()[0].Name, completed(2, 1, "node-3"))
			msg := condition(e.mustReconcile("run")).Message
			contains(t, "message", msg, append([]string{"node-3 (" + app + "): " + c.message}, c.want...)...)
			for _, part := range c.notWant {
				if strings.Contains(msg, part) {
					t.Errorf("message %q contains %q", msg, part)
				}
			}
		})
	}
}
