//go:build e2e

package e2e

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"

	"github.com/imageprepull/imageprepull/test/cluster"
)

// rollOut rolls image out onto the real node (cluster.RollOut) and returns its Ready pod.
func rollOut(t *testing.T, ns, name, image string) *corev1.Pod {
	t.Helper()
	r, err := c.RollOut(context.Background(), ns, name, image, 2*time.Minute)
	if err != nil {
		t.Fatalf("%v\nevents:\n%s", err, strings.Join(podEvents(context.Background(), r.Pod), "\n"))
	}
	if r.Pod.Spec.NodeName != cluster.RealNodeName || r.Pod.Status.Phase != corev1.PodRunning {
		t.Fatalf("pod %s on %q, phase %s", r.Pod.Name, r.Pod.Spec.NodeName, r.Pod.Status.Phase)
	}
	return r.Pod
}

// demoApp builds examples/demo-app with ko and pushes it to the local
// registry as e2e/name under a tag of its own, as a pipeline's build does:
// the repository, the tagged image, and the digest the push printed
// ("@sha256:...").
func demoApp(t *testing.T, name string) (repo, tagged, digest string) {
	t.Helper()
	repo = c.Registry + "/e2e/" + name
	tag := fmt.Sprintf("v-%d", time.Now().UnixNano())
	ref, err := c.KoBuild(context.Background(), repo, tag, "./examples/demo-app")
	if err != nil {
		t.Fatal(err)
	}
	return repo, repo + ":" + tag, ref[strings.LastIndex(ref, "@"):]
}

// podEvents lists the pod's events as "Reason: message", oldest first.
func podEvents(ctx context.Context, pod *corev1.Pod) []string {
	if pod == nil {
		return nil
	}
	events, err := c.PodEvents(ctx, pod)
	if err != nil {
		return []string{err.Error()}
	}
	return events
}

// kubeletEvents returns the pod's events once the kubelet has posted those of its start.
func kubeletEvents(t *testing.T, pod *corev1.Pod) []string {
	t.Helper()
	events, err := c.StartEvents(context.Background(), pod)
	if err != nil {
		t.Fatalf("%v\n%s", err, strings.Join(events, "\n"))
	}
	return events
}

func hasEvent(events []string, prefix string) bool {
	for _, e := range events {
		if strings.HasPrefix(e, prefix) {
			return true
		}
	}
	return false
}

// startedFromThePrePull says whether the kubelet started the pod's
// container without pulling: "already present on machine", no Pulling.
func startedFromThePrePull(t *testing.T, pod *corev1.Pod, image string) {
	t.Helper()
	events := kubeletEvents(t, pod)
	t.Logf("kubelet events of %s:\n  %s", pod.Name, strings.Join(events, "\n  "))
	if hasEvent(events, "Pulling: ") || !hasEvent(events, fmt.Sprintf("Pulled: Container image %q already present on machine", image)) {
		t.Fatalf("pod %s of %s: want Pulled \"already present on machine\" and no Pulling, got:\n%s", pod.Name, image, strings.Join(events, "\n"))
	}
}

// pulledAtStart says the kubelet pulled the pod's image as it started it.
func pulledAtStart(t *testing.T, pod *corev1.Pod, image string) {
	t.Helper()
	events := kubeletEvents(t, pod)
	t.Logf("kubelet events of %s:\n  %s", pod.Name, strings.Join(events, "\n  "))
	if !hasEvent(events, fmt.Sprintf("Pulling: Pulling image %q", image)) || !hasEvent(events, fmt.Sprintf("Pulled: Successfully pulled image %q", image)) {
		t.Fatalf("pod %s of %s: want Pulling and Successfully pulled, got:\n%s", pod.Name, image, strings.Join(events, "\n"))
	}
}
