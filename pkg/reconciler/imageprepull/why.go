package imageprepull

import (
	"context"
	"fmt"
	"strings"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"knative.dev/pkg/logging"
)

// maxExplained bounds the NodeImages read to explain a failure: a message
// names the first few failed nodes; failedNodes lists them all.
const maxExplained = 5

// whyFailed says, for the first failed nodes, why each failed: the message
// kruise-daemon left in the node's NodeImage tag status, or the job's own
// message (such as "job exceeds activeDeadlineSeconds") when there is none.
// It runs once per failed attempt, never while pulls are in progress.
func (r *Reconciler) whyFailed(ctx context.Context, p progress) string {
	var lines []string
	more := 0
	for _, job := range p.jobs {
		name, tag := nodeImageKey(job.Spec.Image)
		for _, node := range job.Status.FailedNodes {
			if len(lines) == maxExplained {
				more++
				continue
			}
			why := job.Status.Message
			ni, err := r.kruise.AppsV1alpha1().NodeImages().Get(ctx, node, metav1.GetOptions{})
			if err != nil {
				logging.FromContext(ctx).Debugw("NodeImage unreadable", "node", node, "error", err)
			} else {
				for _, t := range ni.Status.ImageStatuses[name].Tags {
					if t.Tag == tag && t.Message != "" {
						why = t.Message
					}
				}
			}
			lines = append(lines, fmt.Sprintf("%s (%s): %s", node, job.Spec.Image, why))
		}
	}
	if more > 0 {
		lines = append(lines, fmt.Sprintf("and %d more", more))
	}
	return strings.Join(lines, "; ")
}
