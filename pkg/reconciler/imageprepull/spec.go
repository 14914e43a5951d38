package imageprepull

import (
	"context"
	"fmt"

	"github.com/tektoncd/pipeline/pkg/apis/pipeline/v1beta1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"

	"github.com/openkruise/imageprepull/pkg/apis/custom/v1alpha1"
	"github.com/openkruise/imageprepull/pkg/config"
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
