package cluster

import (
	"context"
	"fmt"
	"math/rand/v2"
	"sync"
	"time"

	coordinationv1 "k8s.io/api/coordination/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
	"k8s.io/utils/ptr"
)

// A kubelet's node lease: it holds the lease for leaseDuration and renews it
// well before; kube-controller-manager's node lifecycle controller marks a
// node whose lease it has not seen renewed for --node-monitor-grace-period
// (50 s) NotReady and taints it unreachable. The kubelet renews every 10 s;
// here every 20 s, half the load on the two shared cores at 2,000 nodes, and
// still 2.5 renewals within the grace period.
const (
	leaseDuration = 40 * time.Second
	leaseRenew    = 20 * time.Second
	// statusReport is how often a kubelet posts an unchanged node status
	// (its nodeStatusReportFrequency).
	statusReport = 5 * time.Minute
)

// heartbeats keep the nodes without a kubelet alive, as kwok does: each
// node's Lease renewed and its Ready condition refreshed, so that the node
// lifecycle controller sees them as a cluster sees healthy nodes, and a test
// can make one go NotReady the way clusters see it (Stop).
type heartbeats struct {
	kube    kubernetes.Interface
	ctx     context.Context
	stopAll context.CancelFunc
	log     func(string, ...any)

	mu    sync.Mutex
	nodes map[string]context.CancelFunc
}

func newHeartbeats(kube kubernetes.Interface, log func(string, ...any)) *heartbeats {
	ctx, stopAll := context.WithCancel(context.Background())
	return &heartbeats{kube: kube, ctx: ctx, stopAll: stopAll, log: log, nodes: map[string]context.CancelFunc{}}
}

// start renews node's lease until the cluster stops or stop(node).
func (h *heartbeats) start(node string) error {
	h.mu.Lock()
	defer h.mu.Unlock()
	if _, ok := h.nodes[node]; ok {
		return nil
	}
	if err := h.renew(h.ctx, node); err != nil {
		return err
	}
	ctx, cancel := context.WithCancel(h.ctx)
	h.nodes[node] = cancel
	go h.loop(ctx, node)
	return nil
}

// stop stops renewing node's lease: its kubelet has gone.
func (h *heartbeats) stop(node string) {
	h.mu.Lock()
	defer h.mu.Unlock()
	if cancel, ok := h.nodes[node]; ok {
		cancel()
		delete(h.nodes, node)
	}
}

func (h *heartbeats) loop(ctx context.Context, node string) {
	// Spread the renewals of nodes made together over the interval.
	next := time.Duration(rand.Int64N(int64(leaseRenew)))
	lastStatus := time.Now()
	for {
		select {
		case <-ctx.Done():
			return
		case <-time.After(next):
		}
		next = leaseRenew
		err := h.renew(ctx, node)
		if apierrors.IsNotFound(err) {
			h.stop(node) // the Node is gone: so is its kubelet
			return
		}
		if err != nil && ctx.Err() == nil {
			h.log("renewing the lease of node %s: %v", node, err)
			next = time.Second
		}
		if time.Since(lastStatus) >= statusReport {
			if err := h.reportReady(ctx, node); err != nil && ctx.Err() == nil {
				h.log("reporting node %s Ready: %v", node, err)
			} else {
				lastStatus = time.Now()
			}
		}
	}
}

// renew renews the node's Lease in kube-node-lease, making it if missing,
// as the kubelet does.
func (h *heartbeats) renew(ctx context.Context, node string) error {
	leases := h.kube.CoordinationV1().Leases(corev1.NamespaceNodeLease)
	now := metav1.NewMicroTime(time.Now())
	lease, err := leases.Get(ctx, node, metav1.GetOptions{})
	if apierrors.IsNotFound(err) {
		n, err := h.kube.CoreV1().Nodes().Get(ctx, node, metav1.GetOptions{})
		if err != nil {
			return err
		}
		_, err = leases.Create(ctx, &coordinationv1.Lease{
			ObjectMeta: metav1.ObjectMeta{Name: node, OwnerReferences: []metav1.OwnerReference{{
				APIVersion: "v1", Kind: "Node", Name: node, UID: n.UID,
			}}},
			Spec: coordinationv1.LeaseSpec{HolderIdentity: ptr.To(node),
				LeaseDurationSeconds: ptr.To(int32(leaseDuration.Seconds())), RenewTime: &now},
		}, metav1.CreateOptions{})
		return err
	}
	if err != nil {
		return err
	}
	lease.Spec.RenewTime = &now
	_, err = leases.Update(ctx, lease, metav1.UpdateOptions{})
	return err
}

// reportReady posts the node's Ready condition with a fresh heartbeat, as a
// kubelet posts its status: the transition time moves only when the node
// was not Ready (it comes back after stop).
func (h *heartbeats) reportReady(ctx context.Context, name string) error {
	node, err := h.kube.CoreV1().Nodes().Get(ctx, name, metav1.GetOptions{})
	if err != nil {
		return err
	}
	now := metav1.Now()
	ready := corev1.NodeCondition{Type: corev1.NodeReady, Status: corev1.ConditionTrue, Reason: "KubeletReady",
		Message: "kubelet is posting ready status", LastHeartbeatTime: now, LastTransitionTime: now}
	found := false
	for i, c := range node.Status.Conditions {
		if c.Type == corev1.NodeReady {
			if c.Status == corev1.ConditionTrue {
				ready.LastTransitionTime = c.LastTransitionTime
			}
			node.Status.Conditions[i], found = ready, true
		}
	}
	if !found {
		node.Status.Conditions = append(node.Status.Conditions, ready)
	}
	if _, err := h.kube.CoreV1().Nodes().UpdateStatus(ctx, node, metav1.UpdateOptions{}); err != nil {
		return fmt.Errorf("node %s: %w", name, err)
	}
	return nil
}
