package imageprepull

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"

	"github.com/tektoncd/pipeline/pkg/apis/pipeline/v1beta1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"knative.dev/pkg/controller"
	kreconciler "knative.dev/pkg/reconciler"

	"github.com/imageprepull/imageprepull/pkg/apis/custom/v1alpha1"
	"github.com/imageprepull/imageprepull/pkg/config"
	"github.com/imageprepull/imageprepull/pkg/image"
)

// pin is what a run was authorized for at its start, kept in its
// status.extraFields: every later reconcile and every retry act on it,
// never on the run's spec read again. Tekton's webhook lets anyone who may
// edit the namespace's CustomRuns (and ImagePrePulls) change a run's params
// after it started, and what the controller does for a run was checked for
// what the run asked at its start; Tekton's TaskRuns keep the taskSpec they
// started with the same way. The pin is stored (the write that starts the
// run) before the run's first job is made.
type pin struct {
	Authorized *authorized `json:"authorized,omitempty"`
	// Target is what spec.workload resolved to at the run's start.
	Target *target `json:"target,omitempty"`
}

// authorized is the spec a run resolved at its start, with the
// ServiceAccount and retries it was authorized with.
type authorized struct {
	edits
	Retries        int                        `json:"retries"`
	ServiceAccount string                     `json:"serviceAccountName"`
	Spec           *v1alpha1.ImagePrePullSpec `json:"spec"`
}

// edits are what tells an edit of a run since its start (tellEdit).
type edits struct {
	// Inputs is a digest of what the spec was resolved from (inputs): a run
	// whose inputs differ was edited.
	Inputs string `json:"inputs"`
	// IgnoredEdit is the digest of the last edit told as ignored, so that
	// an edit is told once.
	IgnoredEdit string `json:"ignoredEdit,omitempty"`
}

// start begins a run: it resolves what the run asks, checks it against the
// platform's policy (admit) and its ServiceAccount's permissions
// (authorize), resolves its workload, and pins the result in the run's
// status with the run's start time. No job is made yet: the write that
// stores the pin is acted on once stored (runEvents), so that a job is only
// ever made from a stored pin, and a failed write leaves no job of a spec
// nobody can read back. Bad input and refusals end the run with nothing
// made, naming the field; any other error leaves the status as it was, to
// be tried again (a started run always has its pin). No Event for the
// start: startTime and the Running condition tell it, and at a thousand
// runs an Event each is a thousand requests. The run's one Event is its end.
func (r *Reconciler) start(ctx context.Context, policy *config.Policy, a *attempt) kreconciler.Event {
	p, err := r.resolvePin(ctx, policy, a.run)
	var spec *v1alpha1.ImagePrePullSpec
	var images []image.Ref
	if err == nil {
		if spec, images, err = p.check(); err != nil {
			err = fmt.Errorf("the pin resolved for run %s/%s: %w", a.run.Namespace, a.run.Name, err)
		}
	}
	if err != nil {
		if !errors.As(err, new(*failure)) {
			// Not started: no start time, no pin; the condition says why.
			a.run.Status.MarkCustomRunRunning(v1beta1.CustomRunReasonStarted.String(), "waiting to start: %s", bounded(err.Error()))
		}
		return r.failOrRetry(a, err)
	}
	a.run.Status.InitializeConditions()
	a.run.Status.StartTime = r.startTime()
	a.pin, a.spec, a.images = p, spec, images
	// What follow says once the jobs exist and no node has finished: making
	// them is then no status write.
	a.run.Status.MarkCustomRunRunning(v1beta1.CustomRunReasonRunning.String(), "%s", unstarted(images, p).progressMessage())
	return nil
}

// resolvePin resolves the pin of a run's start: its spec, admitted and
// authorized, and its workload's target.
func (r *Reconciler) resolvePin(ctx context.Context, policy *config.Policy, run *v1beta1.CustomRun) (*pin, error) {
	inputs := r.inputs(run)
	spec, err := r.resolveSpec(ctx, policy, run)
	if err != nil {
		return nil, err
	}
	sa := run.Spec.ServiceAccountName
	if sa == "" {
		sa = "default" // what Tekton's webhook fills in; empty only where it was bypassed
	}
	p := &pin{Authorized: &authorized{edits: edits{Inputs: inputs}, Retries: run.Spec.Retries, ServiceAccount: sa, Spec: spec}}
	if err := r.admit(ctx, policy, run.Namespace, spec, run.Spec.Retries); err != nil {
		return nil, err
	}
	// Before the workload is read for the run: its ServiceAccount must be
	// allowed to read it itself.
	if err := r.auth.authorize(ctx, policy, run.Namespace, sa, spec.PullSecrets, spec.Workload); err != nil {
		return nil, err
	}
	if spec.Workload != "" {
		if p.Target, err = r.resolveWorkload(ctx, run, spec); err != nil {
			return nil, err
		}
		// The workload's images and nodes, admitted as any run's.
		if err := r.admit(ctx, policy, run.Namespace, p.spec(), run.Spec.Retries); err != nil {
			return nil, err
		}
	}
	return p, nil
}

// resolveSpec gives the one spec the three ways of calling ImagePrePull
// mean: the named ImagePrePull, the embedded taskSpec or nothing, then the
// params over it, then the platform's defaults and the API's.
func (r *Reconciler) resolveSpec(ctx context.Context, policy *config.Policy, run *v1beta1.CustomRun) (*v1alpha1.ImagePrePullSpec, error) {
	base, err := r.baseSpec(run)
	if err != nil {
		return nil, err
	}
	spec, fe := v1alpha1.ResolveSpec(ctx, base, run.Spec.Params, policy.Defaults)
	if fe != nil {
		return nil, failed(v1alpha1.ReasonInvalidParams, "%v", fe)
	}
	return spec, nil
}

func (r *Reconciler) baseSpec(run *v1beta1.CustomRun) (*v1alpha1.ImagePrePullSpec, error) {
	switch wayOf(run) {
	case byEmbeddedSpec:
		spec, err := v1alpha1.DecodeSpec(run.Spec.CustomSpec.Spec.Raw)
		if err != nil {
			return nil, failed(v1alpha1.ReasonInvalidSpec, "taskSpec.spec: %v", err)
		}
		if fe := spec.Validate(context.Background()); fe != nil {
			return nil, failed(v1alpha1.ReasonInvalidSpec, "%v", fe.ViaField("taskSpec.spec"))
		}
		return spec, nil
	case byName:
		name := run.Spec.CustomRef.Name
		named, err := r.prePulls.ImagePrePulls(run.Namespace).Get(name)
		if apierrors.IsNotFound(err) {
			return nil, failed(v1alpha1.ReasonNotFound, "taskRef.name: ImagePrePull %q not found in namespace %q", name, run.Namespace)
		}
		if err != nil {
			return nil, fmt.Errorf("reading ImagePrePull %s/%s: %w", run.Namespace, name, err)
		}
		// The API server's CEL rules checked it already; an object from before
		// a rule existed is checked here too.
		spec := named.Spec.DeepCopy()
		if fe := spec.Validate(context.Background()); fe != nil {
			return nil, failed(v1alpha1.ReasonInvalidSpec, "ImagePrePull %q: %v", name, fe.ViaField("spec"))
		}
		return spec, nil
	}
	return &v1alpha1.ImagePrePullSpec{}, nil
}

// way is how a run calls the task: with params alone, with an embedded
// taskSpec, or by naming an ImagePrePull.
type way int

const (
	byParams way = iota
	byEmbeddedSpec
	byName
)

func wayOf(run *v1beta1.CustomRun) way {
	switch {
	case run.Spec.CustomSpec != nil:
		return byEmbeddedSpec
	case run.Spec.CustomRef != nil && run.Spec.CustomRef.Name != "":
		return byName
	}
	return byParams
}

// spec is what the run acts on: the authorized spec, onto the workload's
// resolved nodes and images when it names one.
func (p *pin) spec() *v1alpha1.ImagePrePullSpec {
	spec := p.Authorized.Spec.DeepCopy()
	if p.Target != nil {
		p.Target.applyTo(spec)
	}
	return spec
}

// check says what is missing from a pin or wrong in it, else gives the spec
// the steps act on and its images parsed, once: for the pin a run's start
// resolves, and for the pin each later reconcile reads back. The controller
// writes nothing else.
func (p *pin) check() (*v1alpha1.ImagePrePullSpec, []image.Ref, error) {
	a := p.Authorized
	switch {
	case a == nil:
		return nil, nil, fmt.Errorf("authorized is missing: the run started without what it was authorized for")
	case a.Spec == nil:
		return nil, nil, fmt.Errorf("authorized.spec is missing")
	case a.ServiceAccount == "":
		return nil, nil, fmt.Errorf("authorized.serviceAccountName is missing")
	case a.Retries < 0:
		return nil, nil, fmt.Errorf("authorized.retries is %d", a.Retries)
	case a.Spec.Parallelism == nil || a.Spec.PullTimeoutSeconds == nil || a.Spec.BackoffLimit == nil ||
		a.Spec.SuccessThreshold == nil || a.Spec.Wait == nil:
		return nil, nil, fmt.Errorf("authorized.spec lacks a defaulted field (parallelism, pullTimeoutSeconds, backoffLimit, successThreshold, wait)")
	case a.Spec.Workload != "" && p.Target == nil:
		return nil, nil, fmt.Errorf("target is missing for workload %s", a.Spec.Workload)
	case a.Spec.Workload == "" && p.Target != nil:
		return nil, nil, fmt.Errorf("target is set for a run without a workload")
	}
	if fe := a.Spec.Validate(context.Background()); fe != nil {
		return nil, nil, fmt.Errorf("authorized.spec: %v", fe)
	}
	spec := p.spec()
	if len(spec.Images) == 0 {
		return nil, nil, fmt.Errorf("authorized holds no image")
	}
	if p.Target != nil {
		if len(p.Target.Nodes) == 0 {
			return nil, nil, fmt.Errorf("target holds no node")
		}
		if fe := v1alpha1.ValidateImages(spec.Images); fe != nil {
			return nil, nil, fmt.Errorf("target.images: %v", fe)
		}
		if fe := v1alpha1.ValidateNodeNames(spec.NodeSelector.Names); fe != nil {
			return nil, nil, fmt.Errorf("target.nodes: %v", fe)
		}
	}
	images := make([]image.Ref, len(spec.Images))
	for i, s := range spec.Images {
		ref, err := image.Parse(s)
		if err != nil {
			return nil, nil, fmt.Errorf("images[%d]: %v", i, err)
		}
		images[i] = ref
	}
	return spec, images, nil
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
	switch wayOf(run) {
	case byEmbeddedSpec:
		in.Embedded = run.Spec.CustomSpec.Spec.Raw
	case byName:
		in.Named = run.Spec.CustomRef.Name
		if p, err := r.prePulls.ImagePrePulls(run.Namespace).Get(in.Named); err == nil {
			in.NamedSpec = &p.Spec
		}
	}
	raw, _ := json.Marshal(in) // plain data: it always encodes
	sum := sha256.Sum256(raw)
	return hex.EncodeToString(sum[:16])
}

// tellEdit tells, once per edit, that a run edited after its start keeps
// what it was authorized for (e, the pin's).
func (r *Reconciler) tellEdit(ctx context.Context, run *v1beta1.CustomRun, e *edits) {
	now := r.inputs(run)
	if now == e.Inputs || now == e.IgnoredEdit {
		return
	}
	e.IgnoredEdit = now
	controller.GetEventRecorder(ctx).Eventf(run, corev1.EventTypeWarning, eventEditIgnored, "%s", editIgnored(run))
}

// eventEditIgnored is the reason of the Warning Event that tells a run was
// edited after its start.
const eventEditIgnored = "EditIgnored"

func editIgnored(run *v1beta1.CustomRun) string {
	what := "its params, serviceAccountName or retries"
	switch wayOf(run) {
	case byEmbeddedSpec:
		what = "its params, taskSpec, serviceAccountName or retries"
	case byName:
		what = fmt.Sprintf("its params, serviceAccountName, retries or ImagePrePull %s", run.Spec.CustomRef.Name)
	}
	return fmt.Sprintf("%s changed after the run started: the run keeps the images, nodes, pull Secrets and ServiceAccount it was authorized for at its start; start a new run to use the change", what)
}
