package v1alpha1

import (
	"bytes"
	"context"
	"errors"

	pipelinev1beta1 "github.com/tektoncd/pipeline/pkg/apis/pipeline/v1beta1"
	"knative.dev/pkg/apis"
	kjson "sigs.k8s.io/json"
)

// DecodeSpec reads an embedded taskSpec's spec strictly, as the API server
// reads an ImagePrePull: field names match exactly (encoding/json would
// take "imAges" for "images"), and an unknown or repeated field is an
// error, not a silently ignored setting. Empty is the empty spec.
func DecodeSpec(raw []byte) (*ImagePrePullSpec, error) {
	spec := &ImagePrePullSpec{}
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

// ResolveSpec gives the one spec a run means: base (a named ImagePrePull's
// spec, an embedded taskSpec's, or the empty spec) with the run's params
// over it, then the platform's defaults (nil for none), then the API's,
// checked as a whole. base is changed. The error names the field.
func ResolveSpec(ctx context.Context, base *ImagePrePullSpec, params pipelinev1beta1.Params, platformDefaults func(*ImagePrePullSpec)) (*ImagePrePullSpec, *apis.FieldError) {
	if fe := ApplyParams(base, params); fe != nil {
		return nil, fe
	}
	if len(base.Images) == 0 && (base.WorkloadImages == nil || !*base.WorkloadImages) {
		return nil, &apis.FieldError{Message: "no image to pull (give param image or images, spec.images, or workloadImages)", Paths: []string{"params.image"}}
	}
	if platformDefaults != nil {
		platformDefaults(base)
	}
	base.SetDefaults(ctx)
	// The parts were checked one by one; this catches what only the whole shows.
	if fe := base.Validate(ctx); fe != nil {
		return nil, fe
	}
	return base, nil
}
