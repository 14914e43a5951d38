package imageprepull

import (
	"context"
	"fmt"

	"github.com/tektoncd/pipeline/pkg/apis/pipeline/v1beta1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"

	"github.com/imageprepull/imageprepull/pkg/apis/custom/v1alpha1"
	"github.com/imageprepull/imageprepull/pkg/config"
)

// resolveSpec gives the one spec the three ways of calling ImagePrePull mean:
// the named policy, the embedded taskSpec or nothing, then the params over it,
// then the defaults. Bad input is a failure naming the field.
func (r *Reconciler) resolveSpec(ctx context.Context, run *v1beta1.CustomRun) (*v1alpha1.ImagePrePullSpec, error) {
	base, err := r.baseSpec(run)
	if err != nil {
		return nil, err
	}
	spec, fe := v1alpha1.ResolveSpec(ctx, base, run.Spec.Params, config.FromContext(ctx).Defaults)
	if fe != nil {
		return nil, failed(v1alpha1.ReasonInvalidParams, "%v", fe)
	}
	return spec, nil
}

func (r *Reconciler) baseSpec(run *v1beta1.CustomRun) (*v1alpha1.ImagePrePullSpec, error) {
	switch {
	case run.Spec.CustomSpec != nil:
		spec, err := v1alpha1.DecodeSpec(run.Spec.CustomSpec.Spec.Raw)
		if err != nil {
			return nil, failed(v1alpha1.ReasonInvalidSpec, "taskSpec.spec: %v", err)
		}
		if fe := spec.Validate(context.Background()); fe != nil {
			return nil, failed(v1alpha1.ReasonInvalidSpec, "%v", fe.ViaField("taskSpec.spec"))
		}
		return spec, nil
	case run.Spec.CustomRef != nil && run.Spec.CustomRef.Name != "":
		name := run.Spec.CustomRef.Name
		policy, err := r.policies.ImagePrePulls(run.Namespace).Get(name)
		if apierrors.IsNotFound(err) {
			return nil, failed(v1alpha1.ReasonNotFound, "taskRef.name: ImagePrePull %q not found in namespace %q", name, run.Namespace)
		}
		if err != nil {
			return nil, fmt.Errorf("reading ImagePrePull %s/%s: %w", run.Namespace, name, err)
		}
		// The API server's CEL rules checked it already; an object from before
		// a rule existed is checked here too.
		spec := policy.Spec.DeepCopy()
		if fe := spec.Validate(context.Background()); fe != nil {
			return nil, failed(v1alpha1.ReasonInvalidSpec, "ImagePrePull %q: %v", name, fe.ViaField("spec"))
		}
		return spec, nil
	}
	return &v1alpha1.ImagePrePullSpec{}, nil
}

// resolve gives what the current attempt acts on. At the run's first
// reconcile: the spec resolved from the run, authorized (the platform's
// image policy and limits, the ServiceAccount's reviews), the workload's
// target resolved, and all of it pinned in extra. Later, the pinned spec
// only, authorized again, with the policy and bindings in force, before
// each attempt's first job; an edit of the run meanwhile is reported and
// ignored.
func (r *Reconciler) resolve(ctx context.Context, run *v1beta1.CustomRun, extra *extraFields) (*v1alpha1.ImagePrePullSpec, error) {
	if extra.Authorized != nil {
		r.reportEdit(ctx, run, extra.Authorized)
		spec := extra.spec()
		if len(extra.ImagePullJobs) == 0 {
			if err := r.authorizeAttempt(ctx, run.Namespace, extra.Authorized.ServiceAccount, spec); err != nil {
				return nil, err
			}
		}
		return spec, nil
	}
	inputs := r.inputs(run)
	spec, err := r.resolveSpec(ctx, run)
	if err != nil {
		return nil, err
	}
	if max := int(config.FromContext(ctx).MaxRetries); run.Spec.Retries > max {
		return nil, failed(v1alpha1.ReasonLimitExceeded, "retries: %d is more than %s %s allows (%d)",
			run.Spec.Retries, config.PolicyConfigName, config.KeyMaxRetries, max)
	}
	sa := run.Spec.ServiceAccountName
	if sa == "" {
		sa = "default" // what Tekton's webhook fills in; empty only where it was bypassed
	}
	// Before the workload is read for the run: its ServiceAccount must be
	// allowed to read it itself.
	if err := r.authorizeAttempt(ctx, run.Namespace, sa, spec); err != nil {
		return nil, err
	}
	if spec.Workload != "" && extra.Target == nil {
		t, err := r.resolveWorkload(ctx, run, spec)
		if err != nil {
			return nil, err
		}
		extra.Target = t
	}
	extra.Authorized = &authorized{Inputs: inputs, Retries: run.Spec.Retries, ServiceAccount: sa, Spec: spec}
	acted := extra.spec()
	if extra.Target != nil {
		// The workload's images and nodes, checked as any run's.
		if err := r.auth.allowImages(ctx, acted.Images); err != nil {
			return nil, err
		}
		if err := r.withinLimits(ctx, acted); err != nil {
			return nil, err
		}
	}
	return acted, nil
}

// authorizeAttempt checks what an attempt is about to do against the
// platform's policy (allowed-images, the limits) and the run's
// ServiceAccount's permissions.
func (r *Reconciler) authorizeAttempt(ctx context.Context, namespace, serviceAccount string, spec *v1alpha1.ImagePrePullSpec) error {
	if err := r.auth.allowImages(ctx, spec.Images); err != nil {
		return err
	}
	if err := r.withinLimits(ctx, spec); err != nil {
		return err
	}
	return r.auth.authorize(ctx, namespace, serviceAccount, spec)
}
