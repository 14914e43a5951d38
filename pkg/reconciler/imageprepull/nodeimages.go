package imageprepull

import (
	"context"
	"fmt"

	kruisev1alpha1 "github.com/openkruise/kruise-api/apps/v1alpha1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/imageprepull/imageprepull/pkg/apis/custom/v1alpha1"
)

// nodeImagePage is how many NodeImages one list request reads.
const nodeImagePage = 500

// eachNodeImage visits the NodeImages of the nodes a run's jobs may have
// reached (sel is the run's node selector, from its pin: the jobs in the
// informer keep only a digest of the names), until visit returns false: the
// named nodes' one by one (a few Gets), else a page at a time, with the
// run's node label selector where it has one (OpenKruise copies a Node's
// labels to its NodeImage). A page is let go before the next is read:
// NodeImages list every image a node has, and a cluster's thousands of them
// are not held at once.
func (r *Reconciler) eachNodeImage(ctx context.Context, sel *v1alpha1.NodeSelector, visit func(*kruisev1alpha1.NodeImage) bool) error {
	if sel != nil && len(sel.Names) > 0 && len(sel.Names) <= nodeImagePage {
		for _, n := range sel.Names {
			ni, err := r.kruise.AppsV1alpha1().NodeImages().Get(ctx, n, metav1.GetOptions{})
			switch {
			case apierrors.IsNotFound(err):
			case err != nil:
				return fmt.Errorf("reading the NodeImage of %s: %w", n, err)
			case !visit(ni):
				return nil
			}
		}
		return nil
	}
	opts := metav1.ListOptions{Limit: nodeImagePage}
	if sel != nil && len(sel.Names) == 0 {
		opts.LabelSelector = metav1.FormatLabelSelector(&sel.LabelSelector)
	}
	for {
		page, err := r.kruise.AppsV1alpha1().NodeImages().List(ctx, opts)
		if err != nil {
			return fmt.Errorf("listing NodeImages: %w", err)
		}
		for i := range page.Items {
			if !visit(&page.Items[i]) {
				return nil
			}
		}
		if opts.Continue = page.Continue; opts.Continue == "" {
			return nil
		}
	}
}
