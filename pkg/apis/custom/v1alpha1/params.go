package v1alpha1

import (
	"fmt"
	"strconv"
	"strings"

	pipelinev1beta1 "github.com/tektoncd/pipeline/pkg/apis/pipeline/v1beta1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/intstr"
	"k8s.io/utils/ptr"
	"knative.dev/pkg/apis"
)

// ParamSpec describes one CustomRun param: the table the docs are checked against.
// +k8s:deepcopy-gen=false
type ParamSpec struct {
	Name        string
	Type        pipelinev1beta1.ParamType
	Description string
	// apply sets the spec field from a given (non-empty) value and checks the
	// value with the field's own validator; errors are relative to the param.
	apply func(s *ImagePrePullSpec, v pipelinev1beta1.ParamValue) *apis.FieldError
}

// Params lists every param a CustomRun may pass. A param replaces the spec
// field it names; an empty string or empty array counts as not given, so that
// a pipeline can forward an optional param of its own.
var Params = []ParamSpec{{
	Name: "image", Type: pipelinev1beta1.ParamTypeString,
	Description: "An image to pull, repository:tag, or repository:tag@sha256:... to have the nodes pull that tag and be checked to have exactly that image. With images, both are pulled; either replaces spec.images.",
	apply: func(s *ImagePrePullSpec, v pipelinev1beta1.ParamValue) *apis.FieldError {
		s.Images = append([]string{v.StringVal}, s.Images...)
		return ValidateImage(v.StringVal)
	},
}, {
	Name: "images", Type: pipelinev1beta1.ParamTypeArray,
	Description: "Images to pull. With image, both are pulled; either replaces spec.images.",
	apply: func(s *ImagePrePullSpec, v pipelinev1beta1.ParamValue) *apis.FieldError {
		s.Images = append(s.Images, v.ArrayVal...)
		return ValidateImages(v.ArrayVal)
	},
}, {
	Name: "digest", Type: pipelinev1beta1.ParamTypeString,
	Description: "The manifest digest (sha256:...) that param image's tag must name, as a build task's IMAGE_DIGEST result gives it: the nodes pull the tag with imagePullPolicy Always, and each node is checked to have exactly that image.",
	apply: func(s *ImagePrePullSpec, v pipelinev1beta1.ParamValue) *apis.FieldError {
		if fe := ValidateDigest(v.StringVal); fe != nil {
			return fe
		}
		// image, first in this table, put its value first.
		name, pinned, _ := strings.Cut(s.Images[0], "@")
		if pinned != "" && pinned != v.StringVal {
			return apis.ErrInvalidValue(shown(v.StringVal), apis.CurrentField, "param image names another digest, "+shown(pinned))
		}
		s.Images[0] = name + "@" + v.StringVal
		return nil
	},
}, {
	Name: "nodeNames", Type: pipelinev1beta1.ParamTypeArray,
	Description: "Names of the nodes to pull onto. Replaces spec.nodeSelector and spec.podSelector.",
	apply: func(s *ImagePrePullSpec, v pipelinev1beta1.ParamValue) *apis.FieldError {
		s.NodeSelector = &NodeSelector{Names: v.ArrayVal}
		return ValidateNodeNames(v.ArrayVal)
	},
}, {
	Name: "nodeSelector", Type: pipelinev1beta1.ParamTypeString,
	Description: "Label selector over nodes, as kubectl -l takes it (node-type=web,zone in (a,b)). Replaces spec.nodeSelector and spec.podSelector.",
	apply: func(s *ImagePrePullSpec, v pipelinev1beta1.ParamValue) *apis.FieldError {
		sel, err := parseSelector(v.StringVal)
		if err != nil {
			return err
		}
		s.NodeSelector = &NodeSelector{LabelSelector: *sel}
		return nil
	},
}, {
	Name: "podSelector", Type: pipelinev1beta1.ParamTypeString,
	Description: "Label selector over the pods of the run's namespace; the nodes they run on pull. Replaces spec.nodeSelector and spec.podSelector.",
	apply: func(s *ImagePrePullSpec, v pipelinev1beta1.ParamValue) *apis.FieldError {
		sel, err := parseSelector(v.StringVal)
		if err != nil {
			return err
		}
		s.PodSelector = sel
		return ValidatePodSelector(sel)
	},
}, {
	Name: "workload", Type: pipelinev1beta1.ParamTypeString,
	Description: "A workload of the run's namespace, as kubectl names it: KIND[.GROUP]/NAME (deployment/web, cloneset.apps.kruise.io/web); its nodes pull (see nodes). Replaces spec.nodeSelector, spec.podSelector and spec.workload.",
	apply: func(s *ImagePrePullSpec, v pipelinev1beta1.ParamValue) *apis.FieldError {
		s.Workload = v.StringVal
		_, fe := ParseWorkload(v.StringVal)
		return fe
	},
}, {
	Name: "nodes", Type: pipelinev1beta1.ParamTypeString,
	Description: "Which nodes of the workload pull: running (default: where its pods are scheduled now) or eligible (every Ready node its pod template could be scheduled on: node selector, required node affinity, taints and tolerations).",
	apply: func(s *ImagePrePullSpec, v pipelinev1beta1.ParamValue) *apis.FieldError {
		s.Nodes = v.StringVal
		return ValidateNodes(v.StringVal)
	},
}, {
	Name: "workloadImages", Type: pipelinev1beta1.ParamTypeString,
	Description: `"true" adds every image of the workload's pod template (init containers and sidecars included); image and images replace the template's images of the same repository.`,
	apply:       boolParam(func(s *ImagePrePullSpec) **bool { return &s.WorkloadImages }),
}, {
	Name: "parallelism", Type: pipelinev1beta1.ParamTypeString,
	Description: fmt.Sprintf("How many nodes pull at once, per image (default %d).", DefaultParallelism),
	apply:       int32Param(1, MaxParallelism, func(s *ImagePrePullSpec) **int32 { return &s.Parallelism }),
}, {
	Name: "pullTimeoutSeconds", Type: pipelinev1beta1.ParamTypeString,
	Description: fmt.Sprintf("Timeout of one pull on one node, in seconds (default %d).", DefaultPullTimeoutSeconds),
	apply:       int32Param(1, MaxPullTimeoutSeconds, func(s *ImagePrePullSpec) **int32 { return &s.PullTimeoutSeconds }),
}, {
	Name: "backoffLimit", Type: pipelinev1beta1.ParamTypeString,
	Description: fmt.Sprintf("Retries of a failed pull on one node (default %d).", DefaultBackoffLimit),
	apply:       int32Param(0, MaxBackoffLimit, func(s *ImagePrePullSpec) **int32 { return &s.BackoffLimit }),
}, {
	Name: "pullSecrets", Type: pipelinev1beta1.ParamTypeArray,
	Description: "Names of kubernetes.io/dockerconfigjson Secrets in the run's namespace.",
	apply: func(s *ImagePrePullSpec, v pipelinev1beta1.ParamValue) *apis.FieldError {
		s.PullSecrets = v.ArrayVal
		return ValidatePullSecrets(v.ArrayVal)
	},
}, {
	Name: "imagePullPolicy", Type: pipelinev1beta1.ParamTypeString,
	Description: "Always or IfNotPresent (default IfNotPresent).",
	apply: func(s *ImagePrePullSpec, v pipelinev1beta1.ParamValue) *apis.FieldError {
		s.ImagePullPolicy = v.StringVal
		return ValidatePullPolicy(v.StringVal)
	},
}, {
	Name: "successThreshold", Type: pipelinev1beta1.ParamTypeString,
	Description: `How many matched nodes must end up with every image: a count (3) or a percentage ("90%"; default "100%").`,
	apply: func(s *ImagePrePullSpec, v pipelinev1beta1.ParamValue) *apis.FieldError {
		// intstr.Parse would wrap numbers past int32 around; parse them here.
		t := intstr.FromString(v.StringVal)
		if n, err := strconv.ParseInt(v.StringVal, 10, 32); err == nil {
			t = intstr.FromInt32(int32(n))
		}
		s.SuccessThreshold = &t
		return ValidateThreshold(t)
	},
}, {
	Name: "wait", Type: pipelinev1beta1.ParamTypeString,
	Description: `"false" finishes the run once the ImagePullJobs exist, without waiting for the pulls (default "true").`,
	apply:       boolParam(func(s *ImagePrePullSpec) **bool { return &s.Wait }),
}}

// ApplyParams overrides spec fields with the CustomRun's params. Errors name
// the param ("params.parallelism"), never a spec field the user did not write.
func ApplyParams(s *ImagePrePullSpec, params pipelinev1beta1.Params) (errs *apis.FieldError) {
	given := map[string]pipelinev1beta1.ParamValue{}
	for _, p := range params {
		spec := paramSpec(p.Name)
		field := "params." + shown(p.Name)
		switch {
		case spec == nil:
			errs = errs.Also(&apis.FieldError{
				Message: fmt.Sprintf("unknown param %q", shown(p.Name)), Paths: []string{field},
				Details: "known params: " + knownParams(),
			})
		case given[p.Name].Type != "":
			errs = errs.Also(&apis.FieldError{Message: fmt.Sprintf("param %q is given twice", shown(p.Name)), Paths: []string{field}})
		case p.Value.Type != spec.Type:
			errs = errs.Also(&apis.FieldError{
				Message: fmt.Sprintf("param %q must be of type %s, not %s", p.Name, spec.Type, p.Value.Type), Paths: []string{field},
			})
		default:
			given[p.Name] = p.Value
		}
	}
	if errs != nil {
		return errs
	}
	for name, v := range given {
		if v.StringVal == "" && len(v.ArrayVal) == 0 {
			delete(given, name) // not given
		}
	}

	var targets []string
	for _, name := range []string{"nodeNames", "nodeSelector", "podSelector", "workload"} {
		if _, ok := given[name]; ok {
			targets = append(targets, "params."+name)
		}
	}
	if len(targets) > 1 {
		return apis.ErrMultipleOneOf(targets...)
	}
	if len(targets) == 1 {
		s.NodeSelector, s.PodSelector = nil, nil
		if targets[0] != "params.workload" {
			// nodes and workloadImages are settings of the workload the
			// param replaces: kept, they would fail validation on spec
			// fields the run never wrote.
			s.Workload, s.Nodes, s.WorkloadImages = "", "", nil
			for _, name := range []string{"nodes", "workloadImages"} {
				if _, ok := given[name]; ok {
					errs = errs.Also(&apis.FieldError{
						Message: fmt.Sprintf("param %s needs param workload, which %s replaces", name, targets[0]),
						Paths:   []string{"params." + name},
					})
				}
			}
			if errs != nil {
				return errs
			}
		}
	}
	_, image := given["image"]
	_, images := given["images"]
	if _, digest := given["digest"]; digest && !image {
		return &apis.FieldError{Message: "param digest needs param image: it is the digest of that image's tag", Paths: []string{"params.digest"}}
	}
	if image || images {
		s.Images = nil
	}
	for _, spec := range Params { // in table order, so that image comes before images
		if v, ok := given[spec.Name]; ok {
			errs = errs.Also(spec.apply(s, v).ViaField("params." + spec.Name))
		}
	}
	if image && images {
		errs = errs.Also(validateDistinct(s.Images).ViaField("params.images"))
	}
	// What the jobs would hold together, named by the param that made it.
	if _, names := given["nodeNames"]; errs == nil && s.NodeSelector != nil && (names || image || images) {
		field := "params.images"
		switch {
		case names:
			field = "params.nodeNames"
		case image && !images:
			field = "params.image"
		}
		errs = ValidateJobsNodeNames(len(s.Images), s.NodeSelector.Names, field)
	}
	return errs
}

func parseSelector(s string) (*metav1.LabelSelector, *apis.FieldError) {
	sel, err := metav1.ParseToLabelSelector(s)
	if err != nil {
		return nil, apis.ErrInvalidValue(shown(s), apis.CurrentField, "not a label selector: "+shown(err.Error()))
	}
	return sel, ValidateLabelSelector(sel)
}

func int32Param(lo, hi int32, field func(*ImagePrePullSpec) **int32) func(*ImagePrePullSpec, pipelinev1beta1.ParamValue) *apis.FieldError {
	return func(s *ImagePrePullSpec, v pipelinev1beta1.ParamValue) *apis.FieldError {
		n, err := strconv.ParseInt(v.StringVal, 10, 32)
		if err != nil {
			return apis.ErrInvalidValue(shown(v.StringVal), apis.CurrentField, fmt.Sprintf("must be a whole number from %d to %d", lo, hi))
		}
		*field(s) = ptr.To(int32(n))
		return ValidateInt32Range(ptr.To(int32(n)), lo, hi, apis.CurrentField)
	}
}

func boolParam(field func(*ImagePrePullSpec) **bool) func(*ImagePrePullSpec, pipelinev1beta1.ParamValue) *apis.FieldError {
	return func(s *ImagePrePullSpec, v pipelinev1beta1.ParamValue) *apis.FieldError {
		if v.StringVal != "true" && v.StringVal != "false" {
			return apis.ErrInvalidValue(shown(v.StringVal), apis.CurrentField, `must be "true" or "false"`)
		}
		*field(s) = ptr.To(v.StringVal == "true")
		return nil
	}
}

func paramSpec(name string) *ParamSpec {
	for i := range Params {
		if Params[i].Name == name {
			return &Params[i]
		}
	}
	return nil
}

func knownParams() string {
	names := make([]string, len(Params))
	for i, p := range Params {
		names[i] = p.Name
	}
	return strings.Join(names, ", ")
}
