package imageprepull

import (
	"context"
	"fmt"
	"maps"
	"slices"
	"sort"
	"strings"

	"github.com/tektoncd/pipeline/pkg/apis/pipeline/v1beta1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/client-go/tools/pager"

	"github.com/imageprepull/imageprepull/pkg/apis/custom/v1alpha1"
	"github.com/imageprepull/imageprepull/pkg/image"
)

// target is what spec.workload resolved to when the run started. It is kept
// in the run's status (extraFields), so that every later reconcile, every
// retry and a restarted controller pull the same images onto the same
// nodes, whatever the workload does meanwhile.
//
// extraFields.encode writes it as the API server returns it.
type target struct {
	Images []string `json:"images"`
	// Matched says how the nodes were chosen, for the run's message.
	Matched  string   `json:"matched"`
	Nodes    []string `json:"nodes"`
	Workload string   `json:"workload"`
}

// applyTo makes spec pull the target's images onto the target's nodes.
func (t *target) applyTo(spec *v1alpha1.ImagePrePullSpec) {
	spec.Images = t.Images
	spec.NodeSelector = &v1alpha1.NodeSelector{Names: t.Nodes}
}

// workload is what a run needs of a workload object.
type workload struct {
	selector *metav1.LabelSelector
	template corev1.PodTemplateSpec
}

// resolveWorkload reads spec.workload and resolves its nodes (spec.nodes)
// and images (spec.workloadImages). A workload that is missing, not served
// or has no node is a failure naming it.
func (r *Reconciler) resolveWorkload(ctx context.Context, run *v1beta1.CustomRun, spec *v1alpha1.ImagePrePullSpec) (*target, error) {
	ref, fe := v1alpha1.ParseWorkload(spec.Workload)
	if fe != nil {
		return nil, failed(v1alpha1.ReasonInvalidParams, "%v", fe.ViaField("workload"))
	}
	w, err := r.getWorkload(ctx, run.Namespace, ref)
	switch {
	case apierrors.IsNotFound(err) && isMissingResource(err):
		return nil, failed(v1alpha1.ReasonWorkloadNotFound, "workload %s: the API server does not serve %s.%s/%s (is OpenKruise installed?)",
			ref, ref.Resource, ref.Group, ref.Version)
	case apierrors.IsNotFound(err):
		return nil, failed(v1alpha1.ReasonWorkloadNotFound, "workload %s not found in namespace %s", ref, run.Namespace)
	case err != nil:
		return nil, fmt.Errorf("reading workload %s/%s: %w", run.Namespace, ref, err)
	}
	t := &target{Workload: ref.String()}
	if t.Images, err = workloadImages(spec, &w.template.Spec); err != nil {
		return nil, err
	}
	switch spec.Nodes {
	case v1alpha1.NodesEligible:
		t.Nodes, t.Matched, err = r.eligibleNodes(ctx, ref, &w.template.Spec)
	default:
		t.Nodes, t.Matched, err = r.runningNodes(ctx, run.Namespace, ref, w.selector)
	}
	if err != nil {
		return nil, err
	}
	if len(t.Nodes) == 0 {
		return nil, failed(v1alpha1.ReasonNoNodes, "no node matched workload %s: %s", ref, t.Matched)
	}
	if len(t.Nodes) > v1alpha1.MaxNodeNames {
		return nil, failed(v1alpha1.ReasonInvalidParams, "workload %s: %s, more than the %d node names an ImagePullJob takes here; "+
			"pick its nodes with param nodeSelector instead", ref, t.Matched, v1alpha1.MaxNodeNames)
	}
	return t, nil
}

// getWorkload reads a workload through v1alpha1.WorkloadKinds' resource for
// its kind: every kind has spec.selector and spec.template.
func (r *Reconciler) getWorkload(ctx context.Context, ns string, ref v1alpha1.WorkloadRef) (*workload, error) {
	u, err := r.dynamic.Resource(ref.GroupVersionResource).Namespace(ns).Get(ctx, ref.Name, metav1.GetOptions{})
	if err != nil {
		return nil, err
	}
	var w struct {
		Spec struct {
			Selector *metav1.LabelSelector  `json:"selector"`
			Template corev1.PodTemplateSpec `json:"template"`
		} `json:"spec"`
	}
	if err := runtime.DefaultUnstructuredConverter.FromUnstructured(u.UnstructuredContent(), &w); err != nil {
		return nil, fmt.Errorf("reading workload %s/%s: %w", ns, ref, err)
	}
	return &workload{w.Spec.Selector, w.Spec.Template}, nil
}

// isMissingResource tells a 404 for a resource the API server does not
// serve from one for an object that does not exist, which names the object.
func isMissingResource(err error) bool {
	status, ok := err.(apierrors.APIStatus)
	return ok && (status.Status().Details == nil || status.Status().Details.Name == "")
}

// runningNodes are the nodes the workload's pods are scheduled on now,
// found through its own selector, as kubectl finds them.
func (r *Reconciler) runningNodes(ctx context.Context, ns string, ref v1alpha1.WorkloadRef, sel *metav1.LabelSelector) ([]string, string, error) {
	selector, err := metav1.LabelSelectorAsSelector(sel)
	if err != nil || selector.Empty() {
		return nil, "", failed(v1alpha1.ReasonInvalidParams, "workload %s has no usable selector (%v)", ref, err)
	}
	pods, err := r.kube.CoreV1().Pods(ns).List(ctx, metav1.ListOptions{LabelSelector: selector.String()})
	if err != nil {
		return nil, "", fmt.Errorf("listing the pods of workload %s/%s: %w", ns, ref, err)
	}
	nodes := map[string]bool{}
	running := 0
	for _, p := range pods.Items {
		if p.Spec.NodeName == "" || p.DeletionTimestamp != nil || p.Status.Phase == corev1.PodSucceeded || p.Status.Phase == corev1.PodFailed {
			continue
		}
		running++
		nodes[p.Spec.NodeName] = true
	}
	names := slices.Sorted(maps.Keys(nodes))
	return names, fmt.Sprintf("nodes running: %d, where %d of its %d pods are scheduled", len(names), running, len(pods.Items)), nil
}

// eligibleNodes are the nodes the workload's pod template could be scheduled
// on. Nodes are read a page at a time (client-go's pager, nodePage a page):
// the whole list of a large cluster at once would be the controller's peak
// memory.
func (r *Reconciler) eligibleNodes(ctx context.Context, ref v1alpha1.WorkloadRef, spec *corev1.PodSpec) ([]string, string, error) {
	var names []string
	left := map[string]int{}
	total := 0
	nodes := pager.New(func(ctx context.Context, opts metav1.ListOptions) (runtime.Object, error) {
		return r.kube.CoreV1().Nodes().List(ctx, opts)
	})
	nodes.PageSize = nodePage
	err := nodes.EachListItem(ctx, metav1.ListOptions{}, func(obj runtime.Object) error {
		node, ok := obj.(*corev1.Node)
		if !ok {
			return fmt.Errorf("listing nodes: got a %T", obj)
		}
		total++
		if ok, why := eligible(node, spec, ref.DaemonSet); ok {
			names = append(names, node.Name)
		} else {
			left[why]++
		}
		return nil
	})
	if err != nil {
		return nil, "", fmt.Errorf("listing nodes for workload %s: %w", ref, err)
	}
	sort.Strings(names)
	msg := fmt.Sprintf("nodes eligible: %d of %d", len(names), total)
	var out []string
	for _, why := range []string{notReady, cordoned, notMatched, taintUntolerated} {
		if left[why] > 0 {
			out = append(out, fmt.Sprintf("%d %s", left[why], why))
		}
	}
	if len(out) > 0 {
		msg += " (left out: " + strings.Join(out, ", ") + ")"
	}
	return names, msg, nil
}

// workloadImages are the images the run pulls: with spec.workloadImages,
// every image of the pod template (init containers, sidecars included),
// those whose repository an image of spec.images names replaced by it,
// then the rest of spec.images; else spec.images alone.
func workloadImages(spec *v1alpha1.ImagePrePullSpec, pod *corev1.PodSpec) ([]string, error) {
	if spec.WorkloadImages == nil || !*spec.WorkloadImages {
		return spec.Images, nil
	}
	given := map[string]string{}
	for _, s := range spec.Images {
		if ref, err := image.Parse(s); err == nil {
			given[ref.Repository()] = s
		}
	}
	var out []string
	used := map[string]bool{}
	containers := append(append([]corev1.Container(nil), pod.InitContainers...), pod.Containers...)
	for _, c := range containers {
		ref, err := image.Parse(c.Image)
		if err != nil {
			return nil, failed(v1alpha1.ReasonInvalidParams, "workload container %s: image %q: %v", c.Name, c.Image, err)
		}
		s := c.Image
		if g, ok := given[ref.Repository()]; ok {
			s = g
			used[ref.Repository()] = true
		} else if ref.Tag() == "" {
			if ref.Digest() != "" {
				return nil, failed(v1alpha1.ReasonInvalidParams, "workload container %s: image %q is pinned by digest, which kruise-daemon cannot pull; "+
					"give it with a tag in param images", c.Name, c.Image)
			}
			s = ref.WithDefaultTag().String() // as the kubelet pulls it: :latest
		}
		if !slices.Contains(out, s) {
			out = append(out, s)
		}
	}
	for _, s := range spec.Images {
		if ref, err := image.Parse(s); err == nil && !used[ref.Repository()] && !slices.Contains(out, s) {
			out = append(out, s)
		}
	}
	for _, s := range out {
		if fe := v1alpha1.ValidateImage(s); fe != nil {
			return nil, failed(v1alpha1.ReasonInvalidParams, "workload images: %v", fe)
		}
	}
	return out, nil
}
