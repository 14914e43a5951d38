package imageprepull

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"

	"github.com/tektoncd/pipeline/pkg/apis/pipeline/v1beta1"
	corev1 "k8s.io/api/core/v1"
	"knative.dev/pkg/controller"

	"github.com/imageprepull/imageprepull/pkg/apis/custom/v1alpha1"
)

// extraFields is kept in the run's status.extraFields.
type extraFields struct {
	// Authorized is what the run acts on, fixed when it was first
	// authorized.
	Authorized *authorized `json:"authorized,omitempty"`
	// ImagePullJobs were created by this attempt: one missing later was
	// deleted by someone else, not yet to be created.
	ImagePullJobs []string `json:"imagePullJobs,omitempty"`
	// Target is what spec.workload resolved to at the run's start; it is
	// kept through retries.
	Target *target `json:"target,omitempty"`
}

// authorized is the spec a run resolved at its start, with the
// ServiceAccount and retries it was authorized with. Every later reconcile
// and every retry act on it, never on the spec resolved again: Tekton's
// webhook lets anyone who may edit the namespace's CustomRuns (and
// ImagePrePulls) change a run's params after it started, and what the
// controller does for a run was checked for what the run asked at its
// start. Tekton's TaskRuns keep the taskSpec they started with the same way.
type authorized struct {
	// Inputs is a digest of what the spec was resolved from (digest): a run
	// whose inputs differ was edited.
	Inputs string `json:"inputs"`
	// IgnoredEdit is the digest of the last edit reported as ignored, so
	// that an edit is told once.
	IgnoredEdit    string                     `json:"ignoredEdit,omitempty"`
	Retries        int                        `json:"retries"`
	ServiceAccount string                     `json:"serviceAccountName"`
	Spec           *v1alpha1.ImagePrePullSpec `json:"spec"`
}

// spec is what the current attempt acts on: the authorized spec, onto the
// workload's resolved nodes and images when it names one.
func (e *extraFields) spec() *v1alpha1.ImagePrePullSpec {
	spec := e.Authorized.Spec.DeepCopy()
	if e.Target != nil {
		e.Target.applyTo(spec)
	}
	return spec
}

// encode writes the extra fields into the run's status as the API server
// returns them: compact, with every object's keys sorted. Written in any
// other byte order, the status the reconciler computes would differ from
// the one it read, and every reconcile would write an unchanged status
// again (the bench caught 12 writes where 4 do).
func (e *extraFields) encode(run *v1beta1.CustomRun) error {
	raw, err := json.Marshal(e)
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
	run.Status.ExtraFields.Raw = raw
	return nil
}

// inputs is a digest of everything a run's spec is resolved from: its
// params, its embedded spec or the named ImagePrePull's spec, its
// ServiceAccount and its retries.
func (r *Reconciler) inputs(run *v1beta1.CustomRun) string {
	in := struct {
		Params         v1beta1.Params             `json:"params,omitempty"`
		Embedded       []byte                     `json:"embedded,omitempty"`
		Named          string                     `json:"named,omitempty"`
		NamedSpec      *v1alpha1.ImagePrePullSpec `json:"namedSpec,omitempty"`
		ServiceAccount string                     `json:"serviceAccountName,omitempty"`
		Retries        int                        `json:"retries,omitempty"`
	}{Params: run.Spec.Params, ServiceAccount: run.Spec.ServiceAccountName, Retries: run.Spec.Retries}
	switch {
	case run.Spec.CustomSpec != nil:
		in.Embedded = run.Spec.CustomSpec.Spec.Raw
	case run.Spec.CustomRef != nil && run.Spec.CustomRef.Name != "":
		in.Named = run.Spec.CustomRef.Name
		if p, err := r.policies.ImagePrePulls(run.Namespace).Get(in.Named); err == nil {
			in.NamedSpec = &p.Spec
		}
	}
	raw, _ := json.Marshal(in) // plain data: it always encodes
	sum := sha256.Sum256(raw)
	return hex.EncodeToString(sum[:16])
}

// reportEdit tells, once per edit, that a run edited after its start keeps
// what it was authorized for.
func (r *Reconciler) reportEdit(ctx context.Context, run *v1beta1.CustomRun, a *authorized) {
	now := r.inputs(run)
	if now == a.Inputs || now == a.IgnoredEdit {
		return
	}
	a.IgnoredEdit = now
	controller.GetEventRecorder(ctx).Eventf(run, corev1.EventTypeWarning, EventEditIgnored, "%s", editIgnored(run))
}

// EventEditIgnored is the reason of the Warning Event that tells a run was
// edited after its start.
const EventEditIgnored = "EditIgnored"

func editIgnored(run *v1beta1.CustomRun) string {
	what := "its params, serviceAccountName or retries"
	switch {
	case run.Spec.CustomSpec != nil:
		what = "its params, taskSpec, serviceAccountName or retries"
	case run.Spec.CustomRef != nil && run.Spec.CustomRef.Name != "":
		what = fmt.Sprintf("its params, serviceAccountName, retries or ImagePrePull %s", run.Spec.CustomRef.Name)
	}
	return fmt.Sprintf("%s changed after the run started: the run keeps the images, nodes, pull Secrets and ServiceAccount it was authorized for at its start; start a new run to use the change", what)
}
