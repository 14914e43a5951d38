package imageprepull

import (
	"context"

	"github.com/imageprepull/imageprepull/pkg/apis/custom/v1alpha1"
	"github.com/imageprepull/imageprepull/pkg/config"
)

// withinLimits checks a spec against the platform's limits on where one
// run may pull: every node only where allow-all-nodes says so, and no more
// named nodes than max-nodes-per-run. Nodes a selector matches are counted
// by OpenKruise, once it starts the jobs (withinNodeLimit).
func (r *Reconciler) withinLimits(ctx context.Context, spec *v1alpha1.ImagePrePullSpec) error {
	policy := config.FromContext(ctx)
	if !policy.AllowAllNodes && spec.NodeSelector == nil && spec.PodSelector == nil && spec.Workload == "" {
		return failed(v1alpha1.ReasonLimitExceeded, "the run targets every node, which %s %s does not allow: "+
			"give nodeNames, nodeSelector, podSelector or workload", config.PolicyConfigName, config.KeyAllowAllNodes)
	}
	if spec.NodeSelector != nil {
		return r.withinNodeLimit(ctx, int32(len(spec.NodeSelector.Names)))
	}
	return nil
}

// withinNodeLimit checks a count of target nodes against max-nodes-per-run.
func (r *Reconciler) withinNodeLimit(ctx context.Context, nodes int32) error {
	if max := config.FromContext(ctx).MaxNodesPerRun; nodes > max {
		return failed(v1alpha1.ReasonLimitExceeded, "the run targets %d nodes, more than %s %s allows (%d)",
			nodes, config.PolicyConfigName, config.KeyMaxNodesPerRun, max)
	}
	return nil
}
