package imageprepull

import (
	"fmt"

	kruisev1alpha1 "github.com/openkruise/kruise-api/apps/v1alpha1"
	"k8s.io/apimachinery/pkg/api/equality"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/imageprepull/imageprepull/pkg/kruise"
)

// notOurs says how a job under one of the run's names differs from the job
// the run makes for that image and attempt; "" when it is the run's own. A
// job's name is predictable (the run's name, a hash of its UID and image,
// the attempt), and whoever may create ImagePullJobs in the namespace can
// make one under a name the run has yet to use: taken as the run's, a job
// of another image or other nodes would end the run with what that job
// says. So a job is the run's only if it is exactly what the run would
// make: image, nodes, pull Secrets, parallelism, pull policy, completion
// policy, owner and labels. Two fields follow the clock when the job is
// made (activeDeadlineSeconds and pullPolicy.timeoutSeconds, from the run's
// time left) and may be anything up to what the attempt's start gives: a
// shorter deadline only ends the job sooner. TTL is either unset or the
// run's own (handed on at its end). job has been through kruise.Shrink.
func (r *Reconciler) notOurs(a *attempt, job *kruisev1alpha1.ImagePullJob) string {
	number := attemptOf(job)
	ref, ok := a.imageOf(job)
	if number < 0 || !ok {
		return fmt.Sprintf("its name is not one the run gives a job of attempt %d", number)
	}
	want := r.newJob(a.run, a.spec, ref, number)
	if job.Spec.Image != want.Spec.Image {
		return fmt.Sprintf("it pulls %s, which attempt %d of the run does not", job.Spec.Image, number)
	}
	if owner := metav1.GetControllerOf(job); owner == nil || owner.UID != a.run.UID {
		return "it is not controlled by this CustomRun"
	}
	for k, v := range ourLabels(a.run.Name, number) {
		if job.Labels[k] != v {
			return fmt.Sprintf("its label %s is %q, not %q", k, job.Labels[k], v)
		}
	}
	got := job.Spec.DeepCopy()
	wantSpec := kruise.Shrink(want).Spec
	ttl := a.spec.TTLSecondsAfterFinished
	if t := got.CompletionPolicy.TTLSecondsAfterFinished; t == nil || (ttl != nil && *t == *ttl) {
		got.CompletionPolicy.TTLSecondsAfterFinished = nil
	}
	most := wholeTimeout(a.run)
	if d := got.CompletionPolicy.ActiveDeadlineSeconds; d != nil && most != nil && *d >= 1 && *d <= *jobDeadline(most) {
		got.CompletionPolicy.ActiveDeadlineSeconds = wantSpec.CompletionPolicy.ActiveDeadlineSeconds
	}
	if p := got.PullPolicy; p != nil && p.TimeoutSeconds != nil && *p.TimeoutSeconds >= 1 &&
		*p.TimeoutSeconds <= *pullTimeout(a.spec, most) {
		p.TimeoutSeconds = wantSpec.PullPolicy.TimeoutSeconds
	}
	for _, f := range []struct {
		name      string
		got, want any
	}{
		{"selector (nodes)", got.Selector, wantSpec.Selector},
		{"podSelector", got.PodSelector, wantSpec.PodSelector},
		{"pullSecrets", got.PullSecrets, wantSpec.PullSecrets},
		{"parallelism", got.Parallelism, wantSpec.Parallelism},
		{"pullPolicy", got.PullPolicy, wantSpec.PullPolicy},
		{"completionPolicy", got.CompletionPolicy, wantSpec.CompletionPolicy},
		{"sandboxConfig", got.SandboxConfig, wantSpec.SandboxConfig},
		{"imagePullPolicy", got.ImagePullPolicy, wantSpec.ImagePullPolicy},
	} {
		if !equality.Semantic.DeepEqual(f.got, f.want) {
			return "its " + f.name + " differs"
		}
	}
	return ""
}
