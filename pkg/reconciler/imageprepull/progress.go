package imageprepull

import (
	"fmt"
	"slices"
	"sort"
	"strconv"
	"strings"

	kruisev1alpha1 "github.com/openkruise/kruise-api/apps/v1alpha1"
	"github.com/tektoncd/pipeline/pkg/apis/pipeline/v1beta1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/intstr"

	"github.com/imageprepull/imageprepull/pkg/apis/custom/v1alpha1"
	"github.com/imageprepull/imageprepull/pkg/image"
)

// progress is what the attempt's jobs say, counted in nodes over all images.
type progress struct {
	jobs []*kruisev1alpha1.ImagePullJob
	// desired is the number of matched nodes (the largest of the jobs').
	desired int32
	// succeeded counts nodes that have every image. Kruise reports counts,
	// not which nodes succeeded; for complete jobs it is desired minus the
	// nodes that failed any image, bounded by every job's own count.
	succeeded int32
	// failedNodes failed at least one image.
	failedNodes []string
	complete    bool
	// target, when the run names a workload, says how its nodes were chosen.
	target *target
	// editIgnored: the run was edited after its start, and keeps its pin.
	editIgnored bool
	// pulled is what the nodes reported of the images, once checked
	// (checkPulls): its wrong nodes count as failed.
	pulled pulled
	// pinned are the run's images given with a digest, as repository@digest,
	// one an image ("" for one without).
	pinned []string
}

// summarize reads the jobs of an attempt of a run pinned as p, whose images
// are images (the attempt's, parsed once from the pin).
func summarize(jobs []*kruisev1alpha1.ImagePullJob, p *pin, images []image.Ref) progress {
	pr := progress{jobs: jobs, complete: true}
	if p != nil {
		pr.target, pr.editIgnored = p.Target, p.Authorized != nil && p.Authorized.IgnoredEdit != ""
	}
	for _, ref := range images {
		pr.pinned = append(pr.pinned, ref.Pinned())
	}
	failed := map[string]bool{}
	pr.succeeded = -1
	for _, job := range jobs {
		s := job.Status
		pr.desired = max(pr.desired, s.Desired)
		if pr.succeeded < 0 || s.Succeeded < pr.succeeded {
			pr.succeeded = s.Succeeded
		}
		for _, n := range s.FailedNodes {
			failed[n] = true
		}
		// Kruise sets completionTime once every node succeeded or failed
		// (nodes still pulling at activeDeadlineSeconds count as failed).
		pr.complete = pr.complete && s.CompletionTime != nil
	}
	for n := range failed {
		pr.failedNodes = append(pr.failedNodes, n)
	}
	sort.Strings(pr.failedNodes)
	pr.succeeded = max(0, min(pr.succeeded, pr.desired-int32(len(pr.failedNodes))))
	return pr
}

// withPulled counts the nodes checkPulls found with another image than the
// run's digest names as failed, and those it could not check as not having
// it.
func (p progress) withPulled(c pulled) progress {
	p.pulled = c
	for node := range c.wrong {
		if !slices.Contains(p.failedNodes, node) {
			p.failedNodes = append(p.failedNodes, node)
		}
	}
	sort.Strings(p.failedNodes)
	unchecked := 0
	for _, n := range c.unchecked {
		unchecked += n
	}
	p.succeeded = max(0, min(p.succeeded, p.desired-int32(len(p.failedNodes)+unchecked)))
	return p
}

// unstarted is what an attempt's jobs say before any exists: the same
// running message as once they exist and no node has reported, so that
// making them is no status write.
func unstarted(images []image.Ref, p *pin) progress {
	jobs := make([]*kruisev1alpha1.ImagePullJob, len(images))
	for i, ref := range images {
		jobs[i] = &kruisev1alpha1.ImagePullJob{Spec: kruisev1alpha1.ImagePullJobSpec{Image: ref.Pulled()}}
	}
	pr := summarize(jobs, p, images)
	pr.complete = false
	return pr
}

// required is how many nodes must succeed: a count, or a percentage of the
// matched nodes rounded up (90% of 5 nodes is 5).
func required(threshold intstr.IntOrString, desired int32) (int32, error) {
	n, err := intstr.GetScaledValueFromIntOrPercent(&threshold, int(desired), true)
	return int32(n), err
}

// message reads at a glance: "3/10 nodes have registry/app:v1 (1 failed)",
// one part per image. It is the message a run ends with.
func (p progress) message() string { return p.render(false) }

// progressMessage is a running run's message: as message, but an image no
// node has finished yet reads the same before and after OpenKruise started
// its job ("no node has finished pulling registry/app:v1 yet"). So the
// write of a run's start is not followed by one that only says OpenKruise
// started: each status write of a run is decoded by every controller that
// watches CustomRuns, and makes Tekton's reconcile the PipelineRun. How
// many nodes matched shows once the first finishes.
func (p progress) progressMessage() string { return p.render(true) }

func (p progress) render(running bool) string {
	parts := make([]string, 0, len(p.jobs))
	for _, job := range p.jobs {
		s := job.Status
		switch {
		case running && s.Succeeded+s.Failed == 0:
			parts = append(parts, "no node has finished pulling "+job.Spec.Image+" yet")
			continue
		case s.StartTime == nil:
			parts = append(parts, "OpenKruise has not started pulling "+job.Spec.Image)
			continue
		}
		wrong, unchecked := int32(p.pulled.byJob[job.Name]), int32(p.pulled.unchecked[job.Name])
		part := fmt.Sprintf("%d/%d nodes have %s", max(s.Succeeded-wrong-unchecked, 0), s.Desired, job.Spec.Image)
		if s.Failed+wrong > 0 {
			part += fmt.Sprintf(" (%d failed)", s.Failed+wrong)
		}
		if unchecked > 0 {
			part += fmt.Sprintf(" (%d not checked)", unchecked)
		}
		if n := p.pulled.differing[job.Name]; n > 0 {
			part += fmt.Sprintf(" (the nodes hold %d different images under the tag: give its digest to have each checked)", n)
		}
		parts = append(parts, part)
	}
	if p.target != nil {
		parts = append(parts, "workload "+p.target.Workload+": "+p.target.Matched)
	}
	if p.editIgnored {
		parts = append(parts, "edited after its start: the run keeps what it was authorized for")
	}
	return strings.Join(parts, "; ")
}

func (p progress) jobNames() []string {
	names := make([]string, len(p.jobs))
	for i, job := range p.jobs {
		names[i] = job.Name
	}
	return names
}

// results are strings, as CustomRun results are. Lists are comma-separated
// (node and job names hold no comma): Tekton hands a later task a result
// that parses as a non-empty JSON array as an array and anything else as a
// string, so a JSON list would change type with its value ("[]" a string,
// ["n1"] an array) and break the later task's declared param type.
func (p progress) results() []v1beta1.CustomRunResult {
	return []v1beta1.CustomRunResult{
		{Name: v1alpha1.ResultDesired, Value: strconv.Itoa(int(p.desired))},
		{Name: v1alpha1.ResultSucceeded, Value: strconv.Itoa(int(p.succeeded))},
		{Name: v1alpha1.ResultFailed, Value: strconv.Itoa(len(p.failedNodes))},
		{Name: v1alpha1.ResultFailedNodes, Value: strings.Join(p.failedNodes, ",")},
		{Name: v1alpha1.ResultImagePullJobs, Value: strings.Join(p.jobNames(), ",")},
		{Name: v1alpha1.ResultDigests, Value: strings.Join(p.pinned, ",")},
		{Name: v1alpha1.ResultImageIDs, Value: strings.Join(p.pulled.imageIDs, ",")},
	}
}

// describeTargets names the nodes a spec targets, for "no node matched ...".
func describeTargets(spec *v1alpha1.ImagePrePullSpec) string {
	switch {
	case spec.PodSelector != nil:
		return "pod selector " + metav1.FormatLabelSelector(spec.PodSelector) + " (pods scheduled to a node, in the run's namespace)"
	case spec.NodeSelector != nil && len(spec.NodeSelector.Names) > 0:
		return "node names " + strings.Join(spec.NodeSelector.Names, ", ")
	case spec.NodeSelector != nil:
		return "node selector " + metav1.FormatLabelSelector(&spec.NodeSelector.LabelSelector)
	}
	return "any node: the cluster has no Ready node with a NodeImage"
}
