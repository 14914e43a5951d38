package v1alpha1

import (
	"context"
	"fmt"
	"regexp"
	"strings"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/intstr"
	"k8s.io/apimachinery/pkg/util/validation"
	"knative.dev/pkg/apis"

	"github.com/imageprepull/imageprepull/pkg/image"
)

// Bounds shared with the CRD's OpenAPI schema (config/300-imageprepull.yaml).
const (
	MaxImages             = 32
	MaxNodeNames          = 5000
	MaxPullSecrets        = 16
	MaxParallelism        = 10000
	MaxPullTimeoutSeconds = 86400
	MaxBackoffLimit       = 100
	MaxTTLSeconds         = 31536000
)

// Bounds in bytes on what a run names. A run's params stay in its spec, the
// pin copies them into its status, and its failedNodes result may list the
// same nodes again: the whole object must stay well inside the 1.5 MiB
// etcd stores, or the status write that starts or ends the run fails.
// Every image's ImagePullJob lists every named node, so the node names
// times the images bound what one run writes into ImagePullJobs (etcd,
// OpenKruise's manager and this controller hold them all).
const (
	// MaxNodeNameBytes bounds the node names of one run, summed.
	MaxNodeNameBytes = 256 << 10
	// MaxJobNodeNameBytes bounds the node names times the images.
	MaxJobNodeNameBytes = 1 << 20
	// MaxSelectorBytes bounds a label selector's keys, operators and values.
	MaxSelectorBytes = 8 << 10
)

// Pull policies kruise-daemon knows.
const (
	PullAlways       = "Always"
	PullIfNotPresent = "IfNotPresent"
)

var percentRE = regexp.MustCompile(`^(100|[1-9]?[0-9])%$`)

// Validate checks an ImagePrePull object; its name is not part of the checks.
func (p *ImagePrePull) Validate(ctx context.Context) *apis.FieldError {
	return p.Spec.Validate(ctx).ViaField("spec")
}

// Validate checks every field and the rules between them. It does not require
// images: a policy may leave them to the CustomRun's params.
func (s *ImagePrePullSpec) Validate(context.Context) (errs *apis.FieldError) {
	errs = ValidateImages(s.Images).ViaField("images")
	if s.NodeSelector != nil {
		errs = errs.Also(s.NodeSelector.Validate().ViaField("nodeSelector"))
		errs = errs.Also(ValidateJobsNodeNames(len(s.Images), s.NodeSelector.Names, "nodeSelector.names"))
	}
	if s.PodSelector != nil {
		errs = errs.Also(ValidatePodSelector(s.PodSelector).ViaField("podSelector"))
	}
	if s.NodeSelector != nil && s.PodSelector != nil {
		errs = errs.Also(apis.ErrMultipleOneOf("nodeSelector", "podSelector"))
	}
	errs = errs.Also(s.validateWorkload())
	errs = errs.Also(ValidateInt32Range(s.Parallelism, 1, MaxParallelism, "parallelism"))
	errs = errs.Also(ValidateInt32Range(s.PullTimeoutSeconds, 1, MaxPullTimeoutSeconds, "pullTimeoutSeconds"))
	errs = errs.Also(ValidateInt32Range(s.BackoffLimit, 0, MaxBackoffLimit, "backoffLimit"))
	errs = errs.Also(ValidateInt32Range(s.TTLSecondsAfterFinished, 0, MaxTTLSeconds, "ttlSecondsAfterFinished"))
	errs = errs.Also(ValidatePullSecrets(s.PullSecrets).ViaField("pullSecrets"))
	errs = errs.Also(ValidatePullPolicy(s.ImagePullPolicy).ViaField("imagePullPolicy"))
	if s.SuccessThreshold != nil {
		errs = errs.Also(ValidateThreshold(*s.SuccessThreshold).ViaField("successThreshold"))
	}
	return errs
}

// Validate checks that the selector names nodes or labels, never both.
func (n *NodeSelector) Validate() (errs *apis.FieldError) {
	errs = ValidateNodeNames(n.Names).ViaField("names")
	errs = errs.Also(ValidateLabelSelector(&n.LabelSelector))
	if len(n.Names) > 0 && (len(n.MatchLabels) > 0 || len(n.MatchExpressions) > 0) {
		errs = errs.Also(&apis.FieldError{
			Message: "names and label selectors are mutually exclusive",
			Paths:   []string{"names", "matchLabels", "matchExpressions"},
			Details: "Kruise selects nodes either by name or by labels",
		})
	}
	return errs
}

// ValidateNodeNames checks a list of node names.
func ValidateNodeNames(names []string) (errs *apis.FieldError) {
	for i, name := range names {
		if msgs := validation.IsDNS1123Subdomain(name); len(msgs) > 0 {
			errs = errs.Also(invalidItem(name, apis.CurrentField, i, "not a node name: "+strings.Join(msgs, "; ")))
		}
	}
	if len(names) > MaxNodeNames {
		errs = errs.Also(apis.ErrOutOfBoundsValue(len(names), 0, MaxNodeNames, apis.CurrentField))
	}
	if n := nameBytes(names); n > MaxNodeNameBytes {
		errs = errs.Also(&apis.FieldError{
			Message: fmt.Sprintf("%d bytes of node names, more than the %d one run may name", n, MaxNodeNameBytes),
			Paths:   []string{apis.CurrentField},
			Details: "the run's status and every ImagePullJob keep them all; pick many nodes with nodeSelector instead",
		})
	}
	return errs.Also(validateDistinct(names))
}

func nameBytes(names []string) (n int) {
	for _, name := range names {
		n += len(name)
	}
	return n
}

// ValidateJobsNodeNames checks the node names that the run's ImagePullJobs
// would hold together, one job an image: field names the node names.
func ValidateJobsNodeNames(images int, names []string, field string) *apis.FieldError {
	if n := images * nameBytes(names); n > MaxJobNodeNameBytes {
		return &apis.FieldError{
			Message: fmt.Sprintf("%d images times %d bytes of node names is %d bytes of ImagePullJobs, more than the %d one run may make",
				images, nameBytes(names), n, MaxJobNodeNameBytes),
			Paths:   []string{field},
			Details: "each image's ImagePullJob lists every node: name fewer nodes or images, or pick the nodes with nodeSelector",
		}
	}
	return nil
}

// IsEmpty is true when the selector names nothing, which means every node.
func (n *NodeSelector) IsEmpty() bool {
	return n == nil || (len(n.Names) == 0 && len(n.MatchLabels) == 0 && len(n.MatchExpressions) == 0)
}

// ValidateImages checks each image and that none is listed twice.
func ValidateImages(images []string) (errs *apis.FieldError) {
	for i, img := range images {
		errs = errs.Also(ValidateImage(img).ViaIndex(i))
	}
	if len(images) > MaxImages {
		errs = errs.Also(apis.ErrOutOfBoundsValue(len(images), 0, MaxImages, apis.CurrentField))
	}
	return errs.Also(validateDistinct(images))
}

// ValidateImage accepts what kruise-daemon can pull: a reference that Kruise's
// own parser (docker/distribution's) accepts, with a tag, since the daemon
// pulls tags only (openkruise/kruise#2534), and optionally the digest that
// tag must name (repository:tag@sha256:...).
func ValidateImage(s string) *apis.FieldError {
	if s == "" {
		return apis.ErrMissingField(apis.CurrentField)
	}
	ref, err := image.Parse(s)
	if err != nil {
		return apis.ErrInvalidValue(shown(s), apis.CurrentField, "not an image reference: "+shown(err.Error()))
	}
	if ref.Digest() != "" && ref.Tag() == "" {
		return apis.ErrInvalidValue(shown(s), apis.CurrentField,
			"a digest alone cannot be pre-pulled: kruise-daemon pulls by tag (openkruise/kruise#2534); "+
				"give the tag the digest was pushed as, repository:tag@sha256:..., or the tag in param image and the digest in param digest")
	}
	return nil
}

// ValidateDigest checks a manifest digest as a build task hands it over
// (IMAGE_DIGEST): sha256:<64 hex digits>.
func ValidateDigest(d string) *apis.FieldError {
	if !digestRE.MatchString(d) {
		return apis.ErrInvalidValue(shown(d), apis.CurrentField, "must be a manifest digest, sha256: and 64 hex digits")
	}
	return nil
}

var digestRE = regexp.MustCompile(`^sha256:[a-f0-9]{64}$`)

// ValidateLabelSelector checks what metav1 checks when a selector is used,
// and its size.
func ValidateLabelSelector(sel *metav1.LabelSelector) *apis.FieldError {
	if n := selectorBytes(sel); n > MaxSelectorBytes {
		return &apis.FieldError{
			Message: fmt.Sprintf("a label selector of %d bytes, more than the %d a run may give", n, MaxSelectorBytes),
			Paths:   []string{apis.CurrentField},
		}
	}
	if _, err := metav1.LabelSelectorAsSelector(sel); err != nil {
		return apis.ErrInvalidValue(shown(metav1.FormatLabelSelector(sel)), apis.CurrentField, shown(err.Error()))
	}
	return nil
}

// selectorBytes is the size of a selector's keys, operators and values.
func selectorBytes(sel *metav1.LabelSelector) (n int) {
	for k, v := range sel.MatchLabels {
		n += len(k) + len(v)
	}
	for _, e := range sel.MatchExpressions {
		n += len(e.Key) + len(e.Operator) + nameBytes(e.Values)
	}
	return n
}

// ValidatePodSelector refuses the empty selector: it would pick the nodes of
// every pod in the namespace, and Kruise 1.8 mishandles empty selectors
// (openkruise/kruise#2286). Every node is said by leaving selectors unset.
func ValidatePodSelector(sel *metav1.LabelSelector) *apis.FieldError {
	if len(sel.MatchLabels) == 0 && len(sel.MatchExpressions) == 0 {
		return &apis.FieldError{
			Message: "empty pod selector",
			Paths:   []string{apis.CurrentField},
			Details: "give matchLabels or matchExpressions; to target every node, set no selector at all",
		}
	}
	return ValidateLabelSelector(sel)
}

// ValidatePullSecrets accepts Secret names, which cannot point at another namespace.
func ValidatePullSecrets(names []string) (errs *apis.FieldError) {
	for i, name := range names {
		if msgs := validation.IsDNS1123Subdomain(name); len(msgs) > 0 {
			errs = errs.Also(invalidItem(name, apis.CurrentField, i,
				"must be the name of a Secret in the CustomRun's own namespace: "+strings.Join(msgs, "; ")))
		}
	}
	if len(names) > MaxPullSecrets {
		errs = errs.Also(apis.ErrOutOfBoundsValue(len(names), 0, MaxPullSecrets, apis.CurrentField))
	}
	return errs.Also(validateDistinct(names))
}

// ValidatePullPolicy accepts the policies kruise-daemon knows, or none.
func ValidatePullPolicy(policy string) *apis.FieldError {
	switch policy {
	case "", PullAlways, PullIfNotPresent:
		return nil
	}
	return apis.ErrInvalidValue(shown(policy), apis.CurrentField, "must be Always or IfNotPresent")
}

// ValidateThreshold accepts a node count of 0 or more, or a whole percentage from 0% to 100%.
func ValidateThreshold(t intstr.IntOrString) *apis.FieldError {
	if t.Type == intstr.Int {
		if t.IntVal < 0 {
			return apis.ErrInvalidValue(t.IntVal, apis.CurrentField, "a node count must not be negative")
		}
		return nil
	}
	if !percentRE.MatchString(t.StrVal) {
		return apis.ErrInvalidValue(shown(t.StrVal), apis.CurrentField, `must be a node count such as 3 or a percentage from "0%" to "100%"`)
	}
	return nil
}

// ValidateInt32Range checks an optional number against its bounds.
func ValidateInt32Range(v *int32, lo, hi int32, field string) *apis.FieldError {
	if v == nil || (*v >= lo && *v <= hi) {
		return nil
	}
	return apis.ErrOutOfBoundsValue(*v, lo, hi, field)
}

func invalidItem(value, field string, index int, details string) *apis.FieldError {
	fe := apis.ErrInvalidArrayValue(shown(value), field, index)
	fe.Details = details
	return fe
}

func validateDistinct(values []string) (errs *apis.FieldError) {
	seen := make(map[string]bool, len(values))
	for i, v := range values {
		if seen[v] {
			errs = errs.Also(&apis.FieldError{Message: "duplicate value " + fmt.Sprintf("%q", shown(v)), Paths: []string{fmt.Sprintf("[%d]", i)}})
		}
		seen[v] = true
	}
	return errs
}

// validateWorkload checks workload, nodes and workloadImages, and that
// workload is the only way the spec names nodes.
func (s *ImagePrePullSpec) validateWorkload() (errs *apis.FieldError) {
	errs = ValidateNodes(s.Nodes).ViaField("nodes")
	if s.Workload == "" {
		if s.Nodes != "" {
			errs = errs.Also(&apis.FieldError{Message: "nodes needs workload", Paths: []string{"nodes"}, Details: "nodes says which nodes of the workload pull"})
		}
		if s.WorkloadImages != nil && *s.WorkloadImages {
			errs = errs.Also(&apis.FieldError{Message: "workloadImages needs workload", Paths: []string{"workloadImages"}})
		}
		return errs
	}
	if _, fe := ParseWorkload(s.Workload); fe != nil {
		errs = errs.Also(fe.ViaField("workload"))
	}
	if s.NodeSelector != nil {
		errs = errs.Also(apis.ErrMultipleOneOf("workload", "nodeSelector"))
	}
	if s.PodSelector != nil {
		errs = errs.Also(apis.ErrMultipleOneOf("workload", "podSelector"))
	}
	return errs
}
