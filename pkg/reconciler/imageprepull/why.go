package imageprepull

import (
	"context"
	"fmt"
	"regexp"
	"strings"

	kruisev1alpha1 "github.com/openkruise/kruise-api/apps/v1alpha1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"knative.dev/pkg/logging"

	"github.com/imageprepull/imageprepull/pkg/apis/custom/v1alpha1"
	"github.com/imageprepull/imageprepull/pkg/image"
)

// maxExplained bounds the NodeImages read to explain a failure: a message
// names the first few failed nodes; failedNodes lists them all.
const maxExplained = 5

// whyFailed says, for the first failed nodes, why each failed: the message
// kruise-daemon left in the node's NodeImage tag status, or the job's own
// message (such as "job exceeds activeDeadlineSeconds") when there is none.
// It runs once per failed attempt, never while pulls are in progress.
// It also returns how many failed nodes' reasons fall in each class, for
// the failed-nodes metric and the credentials hint; nodes past the first
// few are "unread".
func (r *Reconciler) whyFailed(ctx context.Context, p progress) (string, map[string]int) {
	classes := map[string]int{}
	var lines []string
	more := 0
	for _, job := range p.jobs {
		name, tag := nodeImageKey(job.Spec.Image)
		for _, node := range job.Status.FailedNodes {
			if len(lines) == maxExplained {
				more++
				classes[classUnread]++
				continue
			}
			why := job.Status.Message
			ni, err := r.kruise.AppsV1alpha1().NodeImages().Get(ctx, node, metav1.GetOptions{})
			if err != nil {
				logging.FromContext(ctx).Debugw("NodeImage unreadable", "node", node, "error", err)
			} else if st, found := tagStatus(ni, name, tag); found && st.Message != "" {
				why = st.Message
			} else if found && !finished(st.Phase) {
				// Still queued or pulling when the job's deadline came.
				why += ": " + describeUnfinished(st)
			}
			classes[failureClass(why)]++
			lines = append(lines, fmt.Sprintf("%s (%s): %s", node, job.Spec.Image, why))
		}
	}
	for _, node := range p.failedNodes {
		why, wrong := p.pulled.wrong[node]
		if !wrong {
			continue
		}
		classes[classWrongImage]++
		if len(lines) == maxExplained {
			more++
			continue
		}
		lines = append(lines, fmt.Sprintf("%s: %s", node, why))
	}
	if more > 0 {
		lines = append(lines, fmt.Sprintf("and %d more", more))
	}
	for _, job := range p.jobs {
		if n := p.pulled.unchecked[job.Name]; n > 0 {
			lines = append(lines, fmt.Sprintf("%d node(s) pulled %s, but their NodeImages no longer record which image they have "+
				"(OpenKruise removes the record a while after the job ends; the controller reads it when the job completes): "+
				"not counted as having it", n, job.Spec.Image))
		}
	}
	return strings.Join(lines, "; "), classes
}

// credentialsHint follows the failed nodes of a run in which a registry
// refused a pull (their class is unauthorized) with what to check. OpenKruise
// v1.8 and v1.9 pull without a Secret named in pullSecrets that they cannot
// find (v1.9 logs a warning, v1.8 nothing): a misspelt Secret looks to the
// registry like no Secret at all.
func credentialsHint(namespace string, spec *v1alpha1.ImagePrePullSpec, classes map[string]int) string {
	switch {
	case classes[classUnauthorized] == 0:
		return ""
	case len(spec.PullSecrets) == 0:
		return "; a registry refused a pull (unauthorized): if it needs credentials, name a kubernetes.io/dockerconfigjson Secret in pullSecrets"
	}
	return fmt.Sprintf("; a registry refused a pull (unauthorized): check that pullSecrets %s exist in namespace %s and hold credentials for it "+
		"(OpenKruise pulls without a named Secret it cannot find)", strings.Join(spec.PullSecrets, ", "), namespace)
}

// nodeImageKey is where Kruise keeps an image in a NodeImage: its familiar
// repository name and its tag.
func nodeImageKey(s string) (name, tag string) {
	ref, _ := image.Parse(s) // images are validated before jobs exist
	return ref.NodeImageKey()
}

// The classes of kruise-daemon's reasons for a failed pull: the failed-nodes
// metric's class label, and what the credentials hint looks for; unread is
// for the nodes past the first few, whose NodeImages a run does not read.
const (
	classNotFound     = "not_found"
	classUnauthorized = "unauthorized"
	classTimeout      = "timeout"
	classOther        = "other"
	classUnread       = "unread"
	// classWrongImage: the node pulled, and has another image than the
	// run's digest names (checkPulls).
	classWrongImage = "wrong_image"
)

var failureClasses = []string{classNotFound, classUnauthorized, classTimeout, classOther, classUnread, classWrongImage}

// failureClass sorts kruise-daemon's message for a failed pull into a few
// classes (a label of low cardinality: never the node or the image).
func failureClass(msg string) string {
	m := strings.ToLower(msg)
	switch {
	case strings.Contains(m, "not found") || strings.Contains(m, "notfound"):
		return classNotFound
	case strings.Contains(m, "unauthorized") || strings.Contains(m, "forbidden") || strings.Contains(m, "denied") || refusedStatus.MatchString(m):
		return classUnauthorized
	case strings.Contains(m, "deadline") || strings.Contains(m, "timeout") || strings.Contains(m, "timed out"):
		return classTimeout
	}
	return classOther
}

// refusedStatus is a registry's 401 or 403 as containerd and Docker quote
// it ("unexpected status: 401", "status code 403"): not any 401 in the
// message, which ports and digests hold too.
var refusedStatus = regexp.MustCompile(`\bstatus(?: code)?:? 40[13]\b`)

// whyNotDone says, for jobs the run stops waiting for (it timed out), which
// nodes had not finished and where each stood: queued (kruise-daemon v1.9
// reports a pull Waiting until one of its --max-workers-for-pull-image
// workers takes it, and the queued time counts against the run's time),
// pulling, or not reported yet. Kruise's job status counts these nodes but
// does not name them, so the jobs' nodes' NodeImages are read until the
// first few are found: once per timed-out attempt, never while it runs.
func (r *Reconciler) whyNotDone(ctx context.Context, sel *v1alpha1.NodeSelector, jobs []*kruisev1alpha1.ImagePullJob) string {
	left := 0
	for _, job := range jobs {
		left += int(max(job.Status.Desired-job.Status.Succeeded-job.Status.Failed, 0))
	}
	if left == 0 {
		return ""
	}
	var lines []string
	err := r.eachNodeImage(ctx, sel, func(ni *kruisev1alpha1.NodeImage) bool {
		for _, job := range jobs {
			name, tag := nodeImageKey(job.Spec.Image)
			if !owns(ni, job, name, tag) || len(lines) == maxExplained {
				continue
			}
			st, found := tagStatus(ni, name, tag)
			switch {
			case !found:
				lines = append(lines, fmt.Sprintf("%s (%s): not started: kruise-daemon has not reported it", ni.Name, job.Spec.Image))
			case !finished(st.Phase):
				lines = append(lines, fmt.Sprintf("%s (%s): %s", ni.Name, job.Spec.Image, describeUnfinished(st)))
			}
		}
		return len(lines) < maxExplained
	})
	if err != nil {
		logging.FromContext(ctx).Debugw("NodeImages unreadable", "error", err)
	}
	msg := fmt.Sprintf("%d node(s) had not finished", left)
	if len(lines) == 0 {
		return msg
	}
	if more := left - len(lines); more > 0 {
		lines = append(lines, fmt.Sprintf("and %d more", more))
	}
	return msg + ": " + strings.Join(lines, "; ")
}

// describeUnfinished says where a pull stood that had not finished.
func describeUnfinished(st kruisev1alpha1.ImageTagStatus) string {
	if st.Phase == kruisev1alpha1.ImagePhaseWaiting {
		return "queued, never started: every kruise-daemon pull worker on the node was busy (--max-workers-for-pull-image)"
	}
	msg := "still pulling"
	if st.StartTime != nil {
		msg += " since " + st.StartTime.UTC().Format("15:04:05Z")
	}
	if st.Progress > 0 {
		msg += fmt.Sprintf(" (%d%%)", st.Progress)
	}
	return msg
}

func finished(phase kruisev1alpha1.ImagePullPhase) bool {
	return phase == kruisev1alpha1.ImagePhaseSucceeded || phase == kruisev1alpha1.ImagePhaseFailed
}

// owns says whether the node's spec asks for the job's tag on the job's behalf.
func owns(ni *kruisev1alpha1.NodeImage, job *kruisev1alpha1.ImagePullJob, name, tag string) bool {
	for _, t := range ni.Spec.Images[name].Tags {
		if t.Tag != tag {
			continue
		}
		for _, ref := range t.OwnerReferences {
			if ref.UID == job.UID {
				return true
			}
		}
	}
	return false
}

// tagStatus is what kruise-daemon last reported on the node for the version
// of the tag the spec asks for now; found is false when it reported nothing
// for that version yet.
func tagStatus(ni *kruisev1alpha1.NodeImage, name, tag string) (kruisev1alpha1.ImageTagStatus, bool) {
	version := int64(-1)
	for _, t := range ni.Spec.Images[name].Tags {
		if t.Tag == tag {
			version = t.Version
		}
	}
	for _, st := range ni.Status.ImageStatuses[name].Tags {
		if st.Tag == tag && (version < 0 || st.Version == version) {
			return st, true
		}
	}
	return kruisev1alpha1.ImageTagStatus{}, false
}
