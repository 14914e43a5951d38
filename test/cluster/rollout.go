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

// Rollout is one Deployment rolled out onto the real node, and how long its
// pod took to start.
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
	ctx, cancel := context.WithTimeout(ctx, within)
	defer cancel()
	labels := map[string]string{"app": name}
	w, err := c.Kube.CoreV1().Pods(ns).Watch(ctx, metav1.ListOptions{LabelSelector: "app=" + name})
	if err != nil {
		return Rollout{}, err
	}
	defer w.Stop()
	tmpl := corev1.PodTemplateSpec{
		ObjectMeta: metav1.ObjectMeta{Labels: labels},
		Spec: corev1.PodSpec{Containers: []corev1.Container{{
			Name: "app", Image: image,
			ReadinessProbe: &corev1.Probe{ProbeHandler: corev1.ProbeHandler{HTTPGet: &corev1.HTTPGetAction{Path: "/", Port: intstr.FromInt32(8080)}}, PeriodSeconds: 1},
		}}},
	}
	OnRealNode(&tmpl.Spec)
	if _, err := c.Kube.AppsV1().Deployments(ns).Create(ctx, &appsv1.Deployment{
		ObjectMeta: metav1.ObjectMeta{Name: name},
		Spec:       appsv1.DeploymentSpec{Replicas: ptr.To[int32](1), Selector: &metav1.LabelSelector{MatchLabels: labels}, Template: tmpl},
	}, metav1.CreateOptions{}); err != nil {
		return Rollout{}, err
	}
	var created time.Time
	var last *corev1.Pod
	for {
		select {
		case <-ctx.Done():
			return Rollout{Pod: last}, fmt.Errorf("Deployment %s/%s of %s: no Ready pod on %s within %s; last pod: %s", ns, name, image, RealNodeName, within, describePod(last))
		case ev, ok := <-w.ResultChan():
			if !ok {
				return Rollout{Pod: last}, errors.New("the pod watch ended")
			}
			pod, isPod := ev.Object.(*corev1.Pod)
			if !isPod || ev.Type == watch.Deleted {
				continue
			}
			if created.IsZero() {
				created = time.Now()
			}
			last = pod
			if podReady(pod) {
				return Rollout{Pod: pod, Start: time.Since(created)}, nil
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
