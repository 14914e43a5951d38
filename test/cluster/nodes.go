package cluster

import (
	"context"
	"fmt"
	"slices"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/dynamic"
	"k8s.io/client-go/util/retry"

	"github.com/imageprepull/imageprepull/test/simulator"
)

// createNodes creates Ready Node objects; Kruise's nodeimage controller gives
// each a NodeImage, which the pull simulator then answers for.
func (c *Cluster) createNodes(ctx context.Context) error {
	for _, n := range c.opts.Nodes {
		if err := c.AddNode(ctx, n); err != nil {
			return err
		}
	}
	return nil
}

// AddNode creates one simulated node and waits for its NodeImage.
func (c *Cluster) AddNode(ctx context.Context, n Node) error {
	labels := map[string]string{simulator.LabelSimulated: "true", corev1.LabelHostname: n.Name}
	for k, v := range n.Labels {
		labels[k] = v
	}
	node, err := c.Kube.CoreV1().Nodes().Create(ctx, &corev1.Node{
		ObjectMeta: metav1.ObjectMeta{Name: n.Name, Labels: labels, Annotations: n.Annotations},
	}, metav1.CreateOptions{})
	if err != nil {
		return fmt.Errorf("creating node %s: %w", n.Name, err)
	}
	if err := c.markReady(ctx, node); err != nil {
		return err
	}
	return until(ctx, time.Minute, "the NodeImage of "+n.Name, c.kruise, func(ctx context.Context) error {
		_, err := c.Kruise.AppsV1alpha1().NodeImages().Get(ctx, n.Name, metav1.GetOptions{})
		return err
	})
}

func (c *Cluster) startSimulator(ctx context.Context) error {
	simCtx, cancel := context.WithCancel(context.Background())
	c.stopSim = cancel
	dyn, err := dynamic.NewForConfig(c.Config)
	if err != nil {
		return err
	}
	cfg := c.opts.Simulator
	cfg.Kruise = c.KruiseVersion
	c.sim = simulator.New(c.Kube, c.Kruise, dyn, cfg)
	return c.sim.Start(simCtx)
}

// Simulator is the running pull simulator.
func (c *Cluster) Simulator() *simulator.Simulator { return c.sim }

// markReady does for a node without a kubelet what its kubelet and the node
// lifecycle controller would: report it Ready (for a while: Kruise makes a
// NodeImage only for such a node), then lift the not-ready NoSchedule taint
// that the API server's TaintNodesByCondition admission put on it at
// creation, so that the scheduler's rules (nodes: eligible) see it as a
// real cluster's Ready node.
func (c *Cluster) markReady(ctx context.Context, node *corev1.Node) error {
	since := metav1.NewTime(time.Now().Add(-time.Minute))
	err := retry.RetryOnConflict(retry.DefaultRetry, func() error {
		node.Status.Conditions = []corev1.NodeCondition{{
			Type: corev1.NodeReady, Status: corev1.ConditionTrue, Reason: "KubeletReady",
			LastHeartbeatTime: since, LastTransitionTime: since,
		}}
		// What a kubelet reports of a mid-sized machine, for the scheduler.
		node.Status.Capacity = corev1.ResourceList{corev1.ResourceCPU: resource.MustParse("8"),
			corev1.ResourceMemory: resource.MustParse("32Gi"), corev1.ResourcePods: resource.MustParse("110")}
		node.Status.Allocatable = node.Status.Capacity
		updated, err := c.Kube.CoreV1().Nodes().UpdateStatus(ctx, node, metav1.UpdateOptions{})
		if err == nil {
			node = updated
		} else if latest, getErr := c.Kube.CoreV1().Nodes().Get(ctx, node.Name, metav1.GetOptions{}); apierrors.IsConflict(err) && getErr == nil {
			node = latest
		}
		return err
	})
	if err != nil {
		return fmt.Errorf("marking node %s Ready: %w", node.Name, err)
	}
	// Its kubelet's heartbeats, from now on.
	if err := c.beats.start(node.Name); err != nil {
		return fmt.Errorf("the lease of node %s: %w", node.Name, err)
	}
	// kube-controller-manager writes the node too (its lifecycle and TTL
	// controllers, which may lift the taint first).
	err = retry.RetryOnConflict(retry.DefaultRetry, func() error {
		kept := slices.DeleteFunc(slices.Clone(node.Spec.Taints), func(t corev1.Taint) bool { return t.Key == corev1.TaintNodeNotReady })
		if len(kept) == len(node.Spec.Taints) {
			return nil
		}
		node.Spec.Taints = kept
		_, err := c.Kube.CoreV1().Nodes().Update(ctx, node, metav1.UpdateOptions{})
		if apierrors.IsConflict(err) {
			if latest, getErr := c.Kube.CoreV1().Nodes().Get(ctx, node.Name, metav1.GetOptions{}); getErr == nil {
				node = latest
			}
		}
		return err
	})
	if err != nil {
		return fmt.Errorf("lifting the not-ready taint of node %s: %w", node.Name, err)
	}
	return nil
}
