package imageprepull

import (
	"bytes"
	"context"
	"errors"
	"fmt"

	"github.com/tektoncd/pipeline/pkg/apis/pipeline/v1beta1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	kjson "sigs.k8s.io/json"

	"github.com/openkruise/imageprepull/pkg/apis/custom/v1alpha1"
	"github.com/openkruise/imageprepull/pkg/config"
)

// resolveSpec gives the one spec the three ways of calling ImagePrePull mean:
// the named policy, the embedded taskSpec or nothing, then the params over it,
// then the defaults. Bad input is a failure naming the field.
func (r *Reconciler) resolveSpec(ctx context.Context, run *v1beta1.CustomRun) (*v1alpha1.ImagePrePullSpec, error) {
	spec, err := r.baseSpec(run)
	if err != nil {
		return nil, err
	}
	if fe := v1alpha1.ApplyParams(spec, run.Spec.Params); fe != nil {
		return nil, failed(ReasonInvalidParams, "%v", fe)
	}
	if len(spec.Images) == 0 {
		return nil, failed(ReasonInvalidParams, "no image to pull: give param image or images, or spec.images")
	}
	config.FromContext(ctx).Defaults(spec)
	spec.SetDefaults(ctx)
	// The parts were checked one by one; this catches what only the whole shows.
	if fe := spec.Validate(ctx); fe != nil {
		return nil, failed(ReasonInvalidParams, "%v", fe)
	}
	return spec, nil
}

func (r *Reconciler) baseSpec(run *v1beta1.CustomRun) (*v1alpha1.ImagePrePullSpec, error) {
	switch {
	case run.Spec.CustomSpec != nil:
		spec, err := decodeEmbedded(run.Spec.CustomSpec.Spec.Raw)
		if err != nil {
			return nil, failed(ReasonInvalidSpec, "taskSpec.spec: %v", err)
		}
		if fe := spec.Validate(context.Background()); fe != nil {
			return nil, failed(ReasonInvalidSpec, "%v", fe.ViaField("taskSpec.spec"))
		}
		return spec, nil
	case run.Spec.CustomRef != nil && run.Spec.CustomRef.Name != "":
		name := run.Spec.CustomRef.Name
		policy, err := r.policies.ImagePrePulls(run.Namespace).Get(name)
		if apierrors.IsNotFound(err) {
			return nil, failed(ReasonNotFound, "taskRef.name: ImagePrePull %q not found in namespace %q", name, run.Namespace)
		}
		if err != nil {
			return nil, fmt.Errorf("reading ImagePrePull %s/%s: %w", run.Namespace, name, err)
		}
		// The API server's CEL rules checked it already; an object from before
		// a rule existed is checked here too.
		spec := policy.Spec.DeepCopy()
		if fe := spec.Validate(context.Background()); fe != nil {
			return nil, failed(ReasonInvalidSpec, "ImagePrePull %q: %v", name, fe.ViaField("spec"))
		}
		return spec, nil
	}
	return &v1alpha1.ImagePrePullSpec{}, nil
}

// decodeEmbedded reads a taskSpec's spec strictly, as the API server reads
// an ImagePrePull: field names match exactly (encoding/json would take
// "imAges" for "images"), and an unknown or repeated field is an error, not
// a silently ignored setting.
func decodeEmbedded(raw []byte) (*v1alpha1.ImagePrePullSpec, error) {
	spec := &v1alpha1.ImagePrePullSpec{}
	if len(bytes.TrimSpace(raw)) == 0 {
		return spec, nil
	}
	strict, err := kjson.UnmarshalStrict(raw, spec)
	if err != nil {
		return nil, err
	}
	if len(strict) > 0 {
		return nil, errors.Join(strict...)
	}
	return spec, nil
}
