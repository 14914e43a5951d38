package cluster

import (
	"context"
	"fmt"
	"runtime"
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

// SimulatedNodes are Node objects without a kubelet: kept alive as kubelets
// would keep them (heartbeats.go: their Leases renewed, their Ready status
// refreshed, as kwok does), each with the NodeImage OpenKruise's nodeimage
// controller makes for it, which the pull simulator (test/simulator) answers
// for as kruise-daemon would.
type SimulatedNodes struct {
	api    *api
	kruise *OpenKruise
	log    func(string, ...any)
	// initial are the nodes Start makes; cfg configures the simulator.
	initial []Node
	cfg     simulator.Config

	beats   *heartbeats
	sim     *simulator.Simulator
	stopSim context.CancelFunc
}

// Start creates the nodes and starts the pull simulator.
func (s *SimulatedNodes) Start(ctx context.Context) error {
	s.beats = newHeartbeats(s.api.kube, s.log)
	for _, n := range s.initial {
		if err := s.Add(ctx, n); err != nil {
			return err
		}
	}
	simCtx, cancel := context.WithCancel(context.Background())
	s.stopSim = cancel
	dyn, err := dynamic.NewForConfig(s.api.config)
	if err != nil {
		return err
	}
	cfg := s.cfg
	cfg.Kruise = s.kruise.Version
	s.sim = simulator.New(s.api.kube, s.api.kruise, dyn, cfg)
	return s.sim.Start(simCtx)
}

// Stop stops the simulator and every node's heartbeats.
func (s *SimulatedNodes) Stop() {
	if s.stopSim != nil {
		s.stopSim()
	}
	if s.beats != nil {
		s.beats.stopAll()
	}
}

// Simulator is the running pull simulator.
func (s *SimulatedNodes) Simulator() *simulator.Simulator { return s.sim }

// StopHeartbeats stops a node's heartbeats, as when its kubelet dies: within
// kube-controller-manager's grace period (50 s) the node lifecycle controller
// marks it NotReady (Unknown) and taints it node.kubernetes.io/unreachable.
func (s *SimulatedNodes) StopHeartbeats(node string) { s.beats.stop(node) }

// StartHeartbeats starts a node's heartbeats again and reports it Ready, as a
// kubelet that comes back does.
func (s *SimulatedNodes) StartHeartbeats(ctx context.Context, node string) error {
	if err := s.beats.start(node); err != nil {
		return err
	}
	return s.beats.reportReady(ctx, node)
}

// Add creates one simulated node, Ready, and waits for its NodeImage. Its
// platform labels say linux on this machine's architecture, as a kubelet's
// would, unless n's labels say otherwise.
func (s *SimulatedNodes) Add(ctx context.Context, n Node) error {
	labels := map[string]string{simulator.LabelSimulated: "true", corev1.LabelHostname: n.Name,
		corev1.LabelOSStable: "linux", corev1.LabelArchStable: runtime.GOARCH}
	for k, v := range n.Labels {
		labels[k] = v
	}
	node, err := s.api.kube.CoreV1().Nodes().Create(ctx, &corev1.Node{
		ObjectMeta: metav1.ObjectMeta{Name: n.Name, Labels: labels, Annotations: n.Annotations},
	}, metav1.CreateOptions{})
	if err != nil {
		return fmt.Errorf("creating node %s: %w", n.Name, err)
	}
	if err := s.markReady(ctx, node); err != nil {
		return err
	}
	return until(ctx, time.Minute, "the NodeImage of "+n.Name, s.kruise.manager, func(ctx context.Context) error {
		_, err := s.api.kruise.AppsV1alpha1().NodeImages().Get(ctx, n.Name, metav1.GetOptions{})
		return err
	})
}

// markReady does for a node without a kubelet what its kubelet and the node
// lifecycle controller would: report it Ready (for a while: Kruise makes a
// NodeImage only for such a node), then lift the not-ready NoSchedule taint
// that the API server's TaintNodesByCondition admission put on it at
// creation, so that the scheduler's rules (nodes: eligible) see it as a
// real cluster's Ready node.
func (s *SimulatedNodes) markReady(ctx context.Context, node *corev1.Node) error {
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
		updated, err := s.api.kube.CoreV1().Nodes().UpdateStatus(ctx, node, metav1.UpdateOptions{})
		if err == nil {
			node = updated
		} else if latest, getErr := s.api.kube.CoreV1().Nodes().Get(ctx, node.Name, metav1.GetOptions{}); apierrors.IsConflict(err) && getErr == nil {
			node = latest
		}
		return err
	})
	if err != nil {
		return fmt.Errorf("marking node %s Ready: %w", node.Name, err)
	}
	// Its kubelet's heartbeats, from now on.
	if err := s.beats.start(node.Name); err != nil {
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
		_, err := s.api.kube.CoreV1().Nodes().Update(ctx, node, metav1.UpdateOptions{})
		if apierrors.IsConflict(err) {
			if latest, getErr := s.api.kube.CoreV1().Nodes().Get(ctx, node.Name, metav1.GetOptions{}); getErr == nil {
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
