package imageprepull

import (
	"context"
	"strings"

	"github.com/imageprepull/imageprepull/pkg/apis/custom/v1alpha1"
	"github.com/imageprepull/imageprepull/pkg/config"
	"github.com/imageprepull/imageprepull/pkg/image"
)

// admit checks what a run would do against the platform's policy
// (config-imageprepull): every image allowed, no more retries or
// parallelism than the platform allows, and the nodes it would reach,
// counted before any job: named nodes and a workload's by their names, a
// selector's from the Node list, every node when it names none. retries is
// what the run asks (0 where it was checked already). A refusal is a
// failure naming the key and what the run asked.
func (r *Reconciler) admit(ctx context.Context, policy *config.Policy, namespace string, spec *v1alpha1.ImagePrePullSpec, retries int) error {
	for _, s := range spec.Images {
		ref, err := image.Parse(s)
		if err != nil || !policy.Allows(ref) {
			return failed(v1alpha1.ReasonImageNotAllowed, "image %q is not allowed here: %s %s allows only %s",
				s, config.PolicyConfigName, config.KeyAllowedImages, strings.Join(policy.AllowedImages, ", "))
		}
	}
	if retries > int(policy.MaxRetries) {
		return failed(v1alpha1.ReasonLimitExceeded, "retries: %d is more than %s %s allows (%d)",
			retries, config.PolicyConfigName, config.KeyMaxRetries, policy.MaxRetries)
	}
	if spec.Parallelism != nil && *spec.Parallelism > policy.MaxParallelism {
		return failed(v1alpha1.ReasonLimitExceeded, "parallelism: %d is more than %s %s allows (%d)",
			*spec.Parallelism, config.PolicyConfigName, config.KeyMaxParallelism, policy.MaxParallelism)
	}
	if spec.Workload != "" && (spec.NodeSelector == nil || len(spec.NodeSelector.Names) == 0) {
		return nil // its nodes are admitted once resolved
	}
	reach, err := r.countNodes(ctx, namespace, spec.NodeSelector, spec.PodSelector, !policy.AllowAllNodes)
	if err != nil {
		return err
	}
	if reach.all && !policy.AllowAllNodes {
		return failed(v1alpha1.ReasonLimitExceeded, "the run targets every node, which %s %s does not allow (%s): "+
			"give nodeNames, or a nodeSelector, podSelector or workload that leaves nodes out", config.PolicyConfigName, config.KeyAllowAllNodes, reach.how)
	}
	return withinNodeLimit(policy, reach.nodes, reach.how)
}

// withinNodeLimit checks a count of target nodes against max-nodes-per-run.
func withinNodeLimit(policy *config.Policy, nodes int, how string) error {
	if max := policy.MaxNodesPerRun; nodes > int(max) {
		return failed(v1alpha1.ReasonLimitExceeded, "the run targets %d nodes, more than %s %s allows (%d); counted: %s",
			nodes, config.PolicyConfigName, config.KeyMaxNodesPerRun, max, how)
	}
	return nil
}

// readmit checks a retry's pin again, with the policy and bindings in force
// now, before the retry's first job: a binding removed, or an image the
// platform no longer allows, fails the run instead of retrying. The first
// attempt was checked when its pin was resolved, moments before.
func (r *Reconciler) readmit(ctx context.Context, policy *config.Policy, a *attempt) error {
	if jobs, err := r.attemptJobs(ctx, a.run, a.number()); err == nil && len(jobs) > 0 {
		return nil // made after the check
	}
	if err := r.admit(ctx, policy, a.run.Namespace, a.spec, 0); err != nil {
		return err
	}
	return r.auth.authorize(ctx, policy, a.run.Namespace, a.pin.Authorized.ServiceAccount, a.spec.PullSecrets, a.spec.Workload)
}
