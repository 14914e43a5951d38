package v1alpha1

import (
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/intstr"
)

// +genclient
// +genclient:noStatus
// +k8s:deepcopy-gen:interfaces=k8s.io/apimachinery/pkg/runtime.Object

// ImagePrePull is a reusable pre-pull policy. A Tekton taskRef that names one
// runs it; the CustomRun's params override its fields.
type ImagePrePull struct {
	metav1.TypeMeta   `json:",inline"`
	metav1.ObjectMeta `json:"metadata,omitempty"`

	Spec ImagePrePullSpec `json:"spec"`
}

// ImagePrePullSpec says which images to pre-pull onto which nodes, and when
// the pre-pull counts as done.
type ImagePrePullSpec struct {
	// Images are the references to pull, each with a tag (digests are not
	// supported by kruise-daemon).
	// +optional
	Images []string `json:"images,omitempty"`

	// NodeSelector picks the nodes by name or by labels. Unset (and no
	// PodSelector) means every node.
	// +optional
	NodeSelector *NodeSelector `json:"nodeSelector,omitempty"`

	// PodSelector picks the nodes where the matching pods of the run's
	// namespace are scheduled. Exclusive with NodeSelector.
	// +optional
	PodSelector *metav1.LabelSelector `json:"podSelector,omitempty"`

	// Workload picks the nodes of a workload of the run's namespace, as
	// kubectl names it: KIND[.GROUP]/NAME (deployment/web,
	// cloneset.apps.kruise.io/web). Exclusive with NodeSelector and
	// PodSelector. The nodes are resolved once, at the run's start.
	// +optional
	Workload string `json:"workload,omitempty"`

	// Nodes says which nodes of Workload pull: running (the default: where
	// its pods are scheduled now) or eligible (every Ready node its pod
	// template could be scheduled on, where a rollout's new pods may land).
	// +optional
	Nodes string `json:"nodes,omitempty"`

	// WorkloadImages adds every image of Workload's pod template, init
	// containers included; an image of Images replaces the template's image
	// of the same repository.
	// +optional
	WorkloadImages *bool `json:"workloadImages,omitempty"`

	// Parallelism is how many nodes pull at once, per image.
	// +optional
	Parallelism *int32 `json:"parallelism,omitempty"`

	// PullTimeoutSeconds bounds one pull attempt on one node.
	// +optional
	PullTimeoutSeconds *int32 `json:"pullTimeoutSeconds,omitempty"`

	// BackoffLimit is how many times a node retries a failed pull.
	// +optional
	BackoffLimit *int32 `json:"backoffLimit,omitempty"`

	// PullSecrets name dockerconfigjson Secrets in the run's namespace.
	// +optional
	PullSecrets []string `json:"pullSecrets,omitempty"`

	// ImagePullPolicy is Always or IfNotPresent.
	// +optional
	ImagePullPolicy string `json:"imagePullPolicy,omitempty"`

	// SuccessThreshold is how many of the matched nodes must end up with
	// every image: a count (3) or a percentage ("90%"). Defaults to "100%".
	// +optional
	SuccessThreshold *intstr.IntOrString `json:"successThreshold,omitempty"`

	// Wait, when false, finishes the run as soon as the ImagePullJobs exist,
	// as the kubectl Task this replaces did. Defaults to true.
	// +optional
	Wait *bool `json:"wait,omitempty"`

	// TTLSecondsAfterFinished is handed to the ImagePullJobs once the run's
	// end is stored, and Kruise deletes them that long after they completed.
	// Unset keeps them as long as the CustomRun that owns them.
	// +optional
	TTLSecondsAfterFinished *int32 `json:"ttlSecondsAfterFinished,omitempty"`
}

// NodeSelector is a query over nodes: names, or labels, never both.
type NodeSelector struct {
	// Names of the nodes.
	// +optional
	Names []string `json:"names,omitempty"`

	// MatchLabels and MatchExpressions over node labels.
	// +optional
	metav1.LabelSelector `json:",inline"`
}

// +k8s:deepcopy-gen:interfaces=k8s.io/apimachinery/pkg/runtime.Object

// ImagePrePullList is a list of ImagePrePull.
type ImagePrePullList struct {
	metav1.TypeMeta `json:",inline"`
	metav1.ListMeta `json:"metadata,omitempty"`

	Items []ImagePrePull `json:"items"`
}
