package imageprepull

import (
	"context"
	"fmt"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/client-go/tools/pager"

	"github.com/imageprepull/imageprepull/pkg/apis/custom/v1alpha1"
)

// nodePage is how many Nodes or Pods one list request reads: a large
// cluster's whole list at once would be the controller's peak memory.
const nodePage = 500

// reach is how many nodes a run would pull onto, counted before its jobs
// exist: OpenKruise starts pulling on up to parallelism nodes the moment a
// job is made, so a count it reports afterwards comes too late to refuse.
type reach struct {
	nodes int
	// all says the run reaches every node of the cluster.
	all bool
	// how says where the count comes from, for a refusal's message.
	how string
}

// countNodes counts the nodes a run's node and pod selectors reach as
// OpenKruise picks them: named nodes by name, a node selector's from the
// Node list (the API server filters it), a pod selector's where the
// namespace's active pods it matches are scheduled, every node without
// either. withTotal also counts every node, to tell a selector that
// matches them all.
func (r *Reconciler) countNodes(ctx context.Context, namespace string, nodes *v1alpha1.NodeSelector, pods *metav1.LabelSelector, withTotal bool) (reach, error) {
	switch {
	case nodes != nil && len(nodes.Names) > 0:
		return reach{nodes: len(nodes.Names), how: "the nodes named"}, nil
	case nodes != nil:
		sel := metav1.FormatLabelSelector(&nodes.LabelSelector)
		n, err := r.nodes(ctx, sel)
		if err != nil {
			return reach{}, err
		}
		return r.ofAll(ctx, n, "node selector "+sel, withTotal)
	case pods != nil:
		n, err := r.podNodes(ctx, namespace, metav1.FormatLabelSelector(pods))
		if err != nil {
			return reach{}, err
		}
		return r.ofAll(ctx, n, "pod selector "+metav1.FormatLabelSelector(pods), withTotal)
	}
	n, err := r.nodes(ctx, "")
	if err != nil {
		return reach{}, err
	}
	return reach{nodes: n, all: true, how: "no nodeNames, nodeSelector, podSelector or workload"}, nil
}

// ofAll makes a reach of n nodes a selector matched, every node when it
// matched them all (withTotal; a cluster without nodes has no "all").
func (r *Reconciler) ofAll(ctx context.Context, n int, how string, withTotal bool) (reach, error) {
	out := reach{nodes: n, how: fmt.Sprintf("%s matches %d", how, n)}
	if !withTotal {
		return out, nil
	}
	total, err := r.nodes(ctx, "")
	if err != nil {
		return reach{}, err
	}
	out.all = n > 0 && n >= total
	out.how = fmt.Sprintf("%s matches %d of %d", how, n, total)
	return out, nil
}

// countedFor is how long a count of nodes is reused: runs of one selector
// come in bursts (a pipeline's matrix, many pipelines after one push), and a
// count a few seconds old is as good for a limit as a new one; OpenKruise's
// own count is checked once the jobs exist (ensure).
const countedFor = 10 * time.Second

// nodes counts the Nodes a label selector matches ("" for every node).
func (r *Reconciler) nodes(ctx context.Context, selector string) (int, error) {
	key := "nodes " + selector
	if n, ok := r.counts.Get(key); ok {
		return n.(int), nil
	}
	n, err := r.listNodes(ctx, selector)
	if err == nil {
		r.counts.Add(key, n, countedFor)
	}
	return n, err
}

func (r *Reconciler) listNodes(ctx context.Context, selector string) (int, error) {
	n := 0
	list := pager.New(func(ctx context.Context, opts metav1.ListOptions) (runtime.Object, error) {
		return r.kube.CoreV1().Nodes().List(ctx, opts)
	})
	list.PageSize = nodePage
	err := list.EachListItem(ctx, metav1.ListOptions{LabelSelector: selector}, func(runtime.Object) error {
		n++
		return nil
	})
	if err != nil {
		return 0, fmt.Errorf("counting the nodes of %q: %w", selector, err)
	}
	return n, nil
}

// podNodes counts the nodes where the active pods of namespace that
// selector matches are scheduled, as OpenKruise finds a podSelector's nodes
// (imagejob.GetNodeImagesForJob).
func (r *Reconciler) podNodes(ctx context.Context, namespace, selector string) (int, error) {
	key := "pods " + namespace + " " + selector
	if n, ok := r.counts.Get(key); ok {
		return n.(int), nil
	}
	nodes := map[string]bool{}
	list := pager.New(func(ctx context.Context, opts metav1.ListOptions) (runtime.Object, error) {
		return r.kube.CoreV1().Pods(namespace).List(ctx, opts)
	})
	list.PageSize = nodePage
	err := list.EachListItem(ctx, metav1.ListOptions{LabelSelector: selector}, func(obj runtime.Object) error {
		pod, ok := obj.(*corev1.Pod)
		if ok && pod.Spec.NodeName != "" && pod.DeletionTimestamp == nil &&
			pod.Status.Phase != corev1.PodSucceeded && pod.Status.Phase != corev1.PodFailed {
			nodes[pod.Spec.NodeName] = true
		}
		return nil
	})
	if err != nil {
		return 0, fmt.Errorf("counting the nodes of the pods %q of namespace %s: %w", selector, namespace, err)
	}
	r.counts.Add(key, len(nodes), countedFor)
	return len(nodes), nil
}
