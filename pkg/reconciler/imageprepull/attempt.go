package imageprepull

import (
	"encoding/json"

	kruisev1alpha1 "github.com/openkruise/kruise-api/apps/v1alpha1"
	"github.com/tektoncd/pipeline/pkg/apis/pipeline/v1beta1"

	"github.com/imageprepull/imageprepull/pkg/apis/custom/v1alpha1"
	"github.com/imageprepull/imageprepull/pkg/image"
)

// attempt is one reconcile's view of a run's current attempt: read from the
// run's status once (readAttempt), moved on by the steps, and written back
// once (write). The run's status holds the rest: its conditions, start time,
// results and earlier attempts.
type attempt struct {
	run *v1beta1.CustomRun
	// pin is what the run was authorized for at its start, nil until then;
	// spec is what the attempt acts on and images its images, parsed, both
	// from the pin (pin.check).
	pin    *pin
	spec   *v1alpha1.ImagePrePullSpec
	images []image.Ref
	// jobs are the attempt's ImagePullJobs, one an image, once ensured;
	// progress is what they say.
	jobs     []*kruisev1alpha1.ImagePullJob
	progress progress
	// classes counts the failed nodes' reasons by class, read to end the
	// run; the metrics count them once the end shows.
	classes map[string]int
}

// readAttempt reads the run's attempt from its status. A run that started
// has its pin: one that does not decode, or lacks what it must hold, is a
// failure (ReasonInvalidRunState), never taken for a run not started yet,
// which would resolve the run's spec, edits included, afresh. Whoever may
// update CustomRuns' status can write anything there.
func readAttempt(run *v1beta1.CustomRun) (*attempt, error) {
	a := &attempt{run: run}
	if !run.HasStarted() {
		return a, nil
	}
	p := &pin{}
	if err := run.Status.DecodeExtraFields(p); err != nil {
		return a, failed(v1alpha1.ReasonInvalidRunState, "status.extraFields does not decode: %v", err)
	}
	spec, images, err := p.check()
	if err != nil {
		return a, failed(v1alpha1.ReasonInvalidRunState, "status.extraFields.%v", err)
	}
	a.pin, a.spec, a.images = p, spec, images
	return a, nil
}

// write puts the pin into the run's status as the API server returns it:
// compact, with every object's keys sorted. Written in any other byte
// order, the status the reconciler computes would differ from the one it
// read, and every reconcile would write an unchanged status again.
func (a *attempt) write() error {
	if a.pin == nil {
		return nil
	}
	raw, err := json.Marshal(a.pin)
	if err != nil {
		return err
	}
	var generic any
	if err := json.Unmarshal(raw, &generic); err != nil {
		return err
	}
	if raw, err = json.Marshal(generic); err != nil {
		return err
	}
	a.run.Status.ExtraFields.Raw = raw
	return nil
}

// imageOf is the run's image a job of the run pulls, by its name (the name
// covers the image as the run gives it, digest included).
func (a *attempt) imageOf(job *kruisev1alpha1.ImagePullJob) (image.Ref, bool) {
	for _, ref := range a.images {
		if JobName(a.run.Name, a.run.UID, ref.String(), attemptOf(job)) == job.Name {
			return ref, true
		}
	}
	return image.Ref{}, false
}

// number is the attempt's number: 0 for the first, then one a retry.
func (a *attempt) number() int { return len(a.run.Status.RetriesStatus) }
