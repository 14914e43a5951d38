package cluster

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/fields"
	"k8s.io/apimachinery/pkg/util/intstr"
	"k8s.io/apimachinery/pkg/util/wait"
	"k8s.io/apimachinery/pkg/watch"
	"k8s.io/utils/ptr"
)

// Rollout is a pod of a Deployment rolled out onto a real node, and how
// long it took to start.
type Rollout struct {
	Pod *corev1.Pod
	// Start is from the pod's creation (the ReplicaSet controller's) to its
	// Ready: scheduling, the sandbox, the image (pulled or present), the
	// container's start and the first readiness probe that answered. Both
	// ends are when this process saw them through a watch.
	Start time.Duration
}

// RollOut creates a one-replica Deployment of image on the real node, as a
// user rolls out what a pipeline pushed (the pull policy left to its
// default), and waits for its pod to be Ready: the demo app answering its
// readiness probe over the pod network. The image must serve HTTP on 8080
// (examples/demo-app does).
func (c *Cluster) RollOut(ctx context.Context, ns, name, image string, within time.Duration) (Rollout, error) {
	pods, _, err := c.rollOut(ctx, ns, name, image, 1, OnRealNode, within)
	if len(pods) == 0 {
		return Rollout{}, err
	}
	return pods[0], err
}

// Spread is a Deployment rolled out over the real nodes, one pod on each.
type Spread struct {
	// Pods are its pods, in the order they were Ready.
	Pods []Rollout
	// Ready is from its first pod's creation to its last pod's Ready: how
	// long the rollout took to have every node serving.
	Ready time.Duration
}

// RollOutAcross is RollOut over n real nodes: a Deployment of n replicas
// that tolerate the real nodes' taint, one pod per node (a required
// anti-affinity on the hostname), as a rollout over a node pool spreads.
func (c *Cluster) RollOutAcross(ctx context.Context, ns, name, image string, n int, within time.Duration) (Spread, error) {
	place := func(spec *corev1.PodSpec) {
		OnRealNodes(spec)
		spec.Affinity = &corev1.Affinity{PodAntiAffinity: &corev1.PodAntiAffinity{
			RequiredDuringSchedulingIgnoredDuringExecution: []corev1.PodAffinityTerm{{
				LabelSelector: &metav1.LabelSelector{MatchLabels: map[string]string{"app": name}},
				TopologyKey:   corev1.LabelHostname,
			}},
		}}
	}
	pods, ready, err := c.rollOut(ctx, ns, name, image, n, place, within)
	return Spread{Pods: pods, Ready: ready}, err
}

// rollOut creates a Deployment of replicas pods of image placed by place,
// and waits until that many of its pods are Ready. It returns each, with its
// start, and the time from the first pod's creation to the last one's Ready.
func (c *Cluster) rollOut(ctx context.Context, ns, name, image string, replicas int, place func(*corev1.PodSpec), within time.Duration) ([]Rollout, time.Duration, error) {
	ctx, cancel := context.WithTimeout(ctx, within)
	defer cancel()
	labels := map[string]string{"app": name}
	w, err := c.Kube.CoreV1().Pods(ns).Watch(ctx, metav1.ListOptions{LabelSelector: "app=" + name})
	if err != nil {
		return nil, 0, err
	}
	defer w.Stop()
	tmpl := corev1.PodTemplateSpec{
		ObjectMeta: metav1.ObjectMeta{Labels: labels},
		Spec: corev1.PodSpec{Containers: []corev1.Container{{
			Name: "app", Image: image,
			ReadinessProbe: &corev1.Probe{ProbeHandler: corev1.ProbeHandler{HTTPGet: &corev1.HTTPGetAction{Path: "/", Port: intstr.FromInt32(8080)}}, PeriodSeconds: 1},
		}}},
	}
	place(&tmpl.Spec)
	if _, err := c.Kube.AppsV1().Deployments(ns).Create(ctx, &appsv1.Deployment{
		ObjectMeta: metav1.ObjectMeta{Name: name},
		Spec:       appsv1.DeploymentSpec{Replicas: ptr.To(int32(replicas)), Selector: &metav1.LabelSelector{MatchLabels: labels}, Template: tmpl},
	}, metav1.CreateOptions{}); err != nil {
		return nil, 0, err
	}
	var first time.Time
	created := map[string]time.Time{}
	var ready []Rollout
	done := map[string]bool{}
	var last *corev1.Pod
	for {
		select {
		case <-ctx.Done():
			return ready, 0, fmt.Errorf("Deployment %s/%s of %s: %d of %d pods Ready on the real nodes within %s; last pod seen: %s", ns, name, image, len(ready), replicas, within, describePod(last))
		case ev, ok := <-w.ResultChan():
			if !ok {
				return ready, 0, errors.New("the pod watch ended")
			}
			pod, isPod := ev.Object.(*corev1.Pod)
			if !isPod || ev.Type == watch.Deleted {
				continue
			}
			now := time.Now()
			if first.IsZero() {
				first = now
			}
			if _, seen := created[pod.Name]; !seen {
				created[pod.Name] = now
			}
			last = pod
			if podReady(pod) && !done[pod.Name] {
				done[pod.Name] = true
				ready = append(ready, Rollout{Pod: pod, Start: now.Sub(created[pod.Name])})
				if len(ready) == replicas {
					return ready, now.Sub(first), nil
				}
			}
		}
	}
}

func podReady(pod *corev1.Pod) bool {
	for _, cond := range pod.Status.Conditions {
		if cond.Type == corev1.PodReady && cond.Status == corev1.ConditionTrue {
			return true
		}
	}
	return false
}

func describePod(pod *corev1.Pod) string {
	if pod == nil {
		return "none"
	}
	return fmt.Sprintf("%s on %q, phase %s, container statuses %+v", pod.Name, pod.Spec.NodeName, pod.Status.Phase, pod.Status.ContainerStatuses)
}

// PodEvents lists a pod's events as "Reason: message", oldest first.
func (c *Cluster) PodEvents(ctx context.Context, pod *corev1.Pod) ([]string, error) {
	list, err := c.Kube.CoreV1().Events(pod.Namespace).List(ctx, metav1.ListOptions{
		FieldSelector: fields.SelectorFromSet(fields.Set{"involvedObject.kind": "Pod", "involvedObject.name": pod.Name}).String()})
	if err != nil {
		return nil, err
	}
	var out []string
	for _, e := range list.Items {
		out = append(out, e.Reason+": "+e.Message)
	}
	return out, nil
}

// StartEvents waits for the kubelet's events of a pod's start, which it
// posts a moment after the pod is Ready (its Pulled and Started), and
// returns the pod's events; what it has after 30 s, with an error, if they
// do not come.
func (c *Cluster) StartEvents(ctx context.Context, pod *corev1.Pod) ([]string, error) {
	var events []string
	err := wait.PollUntilContextTimeout(ctx, 200*time.Millisecond, 30*time.Second, true, func(ctx context.Context) (bool, error) {
		var err error
		if events, err = c.PodEvents(ctx, pod); err != nil {
			return false, nil
		}
		joined := "\n" + strings.Join(events, "\n")
		return strings.Contains(joined, "\nPulled: ") && strings.Contains(joined, "\nStarted: "), nil
	})
	if err != nil {
		return events, fmt.Errorf("pod %s: no Pulled and Started events from the kubelet: %w", pod.Name, err)
	}
	return events, nil
}
