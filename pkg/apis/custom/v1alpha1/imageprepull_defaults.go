package v1alpha1

import (
	"context"

	"k8s.io/apimachinery/pkg/util/intstr"
	"k8s.io/utils/ptr"
)

// Defaults, written out on every ImagePullJob so that a run never depends on
// whatever the installed Kruise version defaults to.
const (
	// DefaultParallelism is the seed pipeline's value; Kruise's own default of
	// 1 pulls onto one node at a time.
	DefaultParallelism int32 = 10
	// DefaultPullTimeoutSeconds and DefaultBackoffLimit are Kruise's webhook defaults.
	DefaultPullTimeoutSeconds int32 = 600
	DefaultBackoffLimit       int32 = 3
	// DefaultImagePullPolicy is kruise-daemon's default.
	DefaultImagePullPolicy = PullIfNotPresent
)

// DefaultSuccessThreshold requires every matched node to have every image.
var DefaultSuccessThreshold = intstr.FromString("100%")

// SetDefaults fills every optional field that has a default. Selectors and
// TTL stay unset: unset has a meaning of its own (all nodes, no TTL).
func (s *ImagePrePullSpec) SetDefaults(context.Context) {
	if s.Parallelism == nil {
		s.Parallelism = ptr.To(DefaultParallelism)
	}
	if s.PullTimeoutSeconds == nil {
		s.PullTimeoutSeconds = ptr.To(DefaultPullTimeoutSeconds)
	}
	if s.BackoffLimit == nil {
		s.BackoffLimit = ptr.To(DefaultBackoffLimit)
	}
	if s.ImagePullPolicy == "" {
		s.ImagePullPolicy = DefaultImagePullPolicy
	}
	if s.Workload != "" && s.Nodes == "" {
		s.Nodes = NodesRunning
	}
	if s.SuccessThreshold == nil {
		t := DefaultSuccessThreshold
		s.SuccessThreshold = &t
	}
	if s.Wait == nil {
		s.Wait = ptr.To(true)
	}
	if s.NodeSelector.IsEmpty() {
		// openkruise/kruise#2286: an empty selector leaves a job Active forever.
		// Empty means every node, which nil says to Kruise safely.
		s.NodeSelector = nil
	}
}
