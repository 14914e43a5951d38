package simulator

import (
	"context"
	"fmt"
	"math"
	"regexp"
	"sync"
	"testing"
	"time"

	kruisev1alpha1 "github.com/openkruise/kruise-api/apps/v1alpha1"
	kruisefake "github.com/openkruise/kruise-api/client/clientset/versioned/fake"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/wait"
	kubefake "k8s.io/client-go/kubernetes/fake"
)

func node(name string, simulated bool, annotations map[string]string) *corev1.Node {
	n := &corev1.Node{ObjectMeta: metav1.ObjectMeta{Name: name, Annotations: annotations, Labels: map[string]string{}}}
	if simulated {
		n.Labels[LabelSimulated] = "true"
	}
	return n
}

func nodeImage(name string, tags ...kruisev1alpha1.ImageTagSpec) *kruisev1alpha1.NodeImage {
	return &kruisev1alpha1.NodeImage{
		ObjectMeta: metav1.ObjectMeta{Name: name},
		Spec:       kruisev1alpha1.NodeImageSpec{Images: map[string]kruisev1alpha1.ImageSpec{"registry.local/app": {Tags: tags}}},
	}
}

func TestSimulatorAnswersLikeKruiseDaemon(t *testing.T) {
	t.Setenv("KUBE_FEATURE_WatchListClient", "false") // fake clients send no bookmarks
	kube := kubefake.NewSimpleClientset(
		node("ok", true, nil),
		node("bad", true, map[string]string{AnnotationFail: `:v2$`}),
		node("real", false, nil),
	)
	kruise := kruisefake.NewSimpleClientset(
		nodeImage("ok", kruisev1alpha1.ImageTagSpec{Tag: "v1", Version: 2}, kruisev1alpha1.ImageTagSpec{Tag: "v2"}),
		nodeImage("bad", kruisev1alpha1.ImageTagSpec{Tag: "v2", Version: 1}),
		nodeImage("real", kruisev1alpha1.ImageTagSpec{Tag: "v1"}),
	)
	cfg := Config{Kruise: "v1.8.0", FailImages: regexp.MustCompile(`:never$`)}
	cfg.PullTime.Min, cfg.PullTime.Max = time.Millisecond, 5*time.Millisecond
	sim := New(kube, kruise, nil, cfg)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	if err := sim.Start(ctx); err != nil {
		t.Fatal(err)
	}
	get := func(name string) *kruisev1alpha1.NodeImage {
		ni, err := kruise.AppsV1alpha1().NodeImages().Get(ctx, name, metav1.GetOptions{})
		if err != nil {
			t.Fatal(err)
		}
		return ni
	}
	err := wait.PollUntilContextTimeout(ctx, 5*time.Millisecond, 10*time.Second, true, func(context.Context) (bool, error) {
		return get("ok").Status.Succeeded == 2 && get("bad").Status.Failed == 1, nil
	})
	if err != nil {
		t.Fatalf("ok: %+v; bad: %+v", get("ok").Status, get("bad").Status)
	}
	ok := get("ok").Status
	if ok.Desired != 2 || ok.Pulling != 0 || ok.Failed != 0 {
		t.Errorf("ok counters %+v", ok)
	}
	for _, st := range ok.ImageStatuses["registry.local/app"].Tags {
		if st.Phase != kruisev1alpha1.ImagePhaseSucceeded || st.ImageID == "" || st.CompletionTime == nil || st.Progress != 100 {
			t.Errorf("ok tag %+v", st)
		}
		if st.Tag == "v1" && st.Version != 2 {
			t.Errorf("tag v1 status has version %d, want the spec's 2", st.Version)
		}
	}
	bad := get("bad").Status.ImageStatuses["registry.local/app"].Tags[0]
	if bad.Phase != kruisev1alpha1.ImagePhaseFailed || bad.Message != NotFoundMessage("registry.local/app:v2") || bad.Version != 1 {
		t.Errorf("bad tag %+v", bad)
	}
	if st := get("real").Status; len(st.ImageStatuses) != 0 {
		t.Errorf("the simulator wrote the status of a real node: %+v", st)
	}
	if n := sim.Pulls(); n != 3 {
		t.Errorf("%d pulls, want 3", n)
	}
}

// Like kruise-daemon, the simulator writes a node's whole status at a time,
// rate limited: forty pulls finishing together make a handful of writes,
// not forty.
func TestSimulatorCoalescesStatusWrites(t *testing.T) {
	t.Setenv("KUBE_FEATURE_WatchListClient", "false")
	var tags []kruisev1alpha1.ImageTagSpec
	for i := range 40 {
		tags = append(tags, kruisev1alpha1.ImageTagSpec{Tag: fmt.Sprintf("v%d", i)})
	}
	kube := kubefake.NewSimpleClientset(node("n", true, nil))
	kruise := kruisefake.NewSimpleClientset(nodeImage("n", tags...))
	sim := New(kube, kruise, nil, Config{Kruise: "v1.8.0"})
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	start := time.Now()
	if err := sim.Start(ctx); err != nil {
		t.Fatal(err)
	}
	err := wait.PollUntilContextTimeout(ctx, 5*time.Millisecond, 10*time.Second, true, func(ctx context.Context) (bool, error) {
		ni, err := kruise.AppsV1alpha1().NodeImages().Get(ctx, "n", metav1.GetOptions{})
		return err == nil && ni.Status.Succeeded == 40 && ni.Status.Desired == 40, nil
	})
	if err != nil {
		t.Fatal("the 40 pulls were not all reported")
	}
	allowed := statusUpdateBurst + int(math.Ceil(time.Since(start).Seconds()*statusUpdateQPS))
	if w := sim.StatusWrites(); w < 1 || w > allowed {
		t.Errorf("%d status writes for 40 pulls; kruise-daemon's limiter allows %d in that time", w, allowed)
	}
}

// A tag that leaves the spec (its jobs deleted) and comes back is pulled
// again, as kruise-daemon's new worker for it would: Kruise adds it back at
// version 0 once the status no longer lists it, and waits for a status of
// that version.
func TestSimulatorPullsATagAddedAgain(t *testing.T) {
	t.Setenv("KUBE_FEATURE_WatchListClient", "false") // fake clients send no bookmarks
	kube := kubefake.NewSimpleClientset(node("n", true, nil))
	first := metav1.NewTime(time.Date(2026, 11, 26, 12, 0, 0, 0, time.UTC))
	kruise := kruisefake.NewSimpleClientset(nodeImage("n", kruisev1alpha1.ImageTagSpec{Tag: "v1", Version: 0, CreatedAt: &first}))
	cfg := Config{Kruise: "v1.8.0"}
	cfg.PullTime.Min, cfg.PullTime.Max = time.Millisecond, 2*time.Millisecond
	sim := New(kube, kruise, nil, cfg)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	if err := sim.Start(ctx); err != nil {
		t.Fatal(err)
	}
	status := func() (kruisev1alpha1.NodeImageStatus, *kruisev1alpha1.NodeImage) {
		ni, err := kruise.AppsV1alpha1().NodeImages().Get(ctx, "n", metav1.GetOptions{})
		if err != nil {
			t.Fatal(err)
		}
		return ni.Status, ni
	}
	setSpec := func(tags ...kruisev1alpha1.ImageTagSpec) {
		_, ni := status()
		ni.Spec = nodeImage("n", tags...).Spec
		if len(tags) == 0 {
			ni.Spec.Images = nil
		}
		if _, err := kruise.AppsV1alpha1().NodeImages().Update(ctx, ni, metav1.UpdateOptions{}); err != nil {
			t.Fatal(err)
		}
	}
	waitFor := func(what string, cond func(kruisev1alpha1.NodeImageStatus) bool) {
		t.Helper()
		if err := wait.PollUntilContextTimeout(ctx, 5*time.Millisecond, 10*time.Second, true, func(context.Context) (bool, error) {
			st, _ := status()
			return cond(st), nil
		}); err != nil {
			st, _ := status()
			t.Fatalf("%s: status %+v", what, st)
		}
	}
	succeededAt := func(version int64) func(kruisev1alpha1.NodeImageStatus) bool {
		return func(st kruisev1alpha1.NodeImageStatus) bool {
			tags := st.ImageStatuses["registry.local/app"].Tags
			return len(tags) == 1 && tags[0].Version == version && tags[0].Phase == kruisev1alpha1.ImagePhaseSucceeded
		}
	}

	// Pulled at version 0, then again at 4 (more jobs joined it), as in e2e.
	waitFor("the first pull", succeededAt(0))
	later := metav1.NewTime(first.Add(time.Second))
	setSpec(kruisev1alpha1.ImageTagSpec{Tag: "v1", Version: 4, CreatedAt: &later})
	waitFor("the pull at version 4", succeededAt(4))
	setSpec()
	waitFor("the tag dropped from the status", func(st kruisev1alpha1.NodeImageStatus) bool { return len(st.ImageStatuses) == 0 })
	again := metav1.NewTime(first.Add(time.Minute))
	setSpec(kruisev1alpha1.ImageTagSpec{Tag: "v1", Version: 0, CreatedAt: &again})
	waitFor("the tag pulled again at version 0", succeededAt(0))
	if n := sim.Pulls(); n != 3 {
		t.Errorf("%d pulls, want 3", n)
	}
}

// A node keeps the images it pulled: under IfNotPresent a tag it holds is
// not pulled again and keeps the image it had, though the registry's tag
// now names another (what kruise-daemon's doPullImage does); Always pulls
// the tag's image now. The status reports name@ID, as kruise-daemon writes
// it, with the ID for the node's platform.
func TestSimulatorKeepsAnImageUnderIfNotPresent(t *testing.T) {
	t.Setenv("KUBE_FEATURE_WatchListClient", "false")
	n := node("n", true, nil)
	n.Labels[corev1.LabelOSStable], n.Labels[corev1.LabelArchStable] = "linux", "arm64"
	kube := kubefake.NewSimpleClientset(n)
	kruise := kruisefake.NewSimpleClientset(nodeImage("n", kruisev1alpha1.ImageTagSpec{Tag: "v1", Version: 1, ImagePullPolicy: kruisev1alpha1.PullIfNotPresent}))
	var mu sync.Mutex
	pushed := "sha256:aaaa"
	cfg := Config{Kruise: "v1.8.0", ImageID: func(_ context.Context, image, os, arch string) (string, bool) {
		mu.Lock()
		defer mu.Unlock()
		return pushed + "-" + os + "/" + arch, image == "registry.local/app:v1"
	}}
	sim := New(kube, kruise, nil, cfg)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	if err := sim.Start(ctx); err != nil {
		t.Fatal(err)
	}
	pulledAt := func(version int64, policy kruisev1alpha1.ImagePullPolicy) string {
		t.Helper()
		if version > 1 {
			ni, err := kruise.AppsV1alpha1().NodeImages().Get(ctx, "n", metav1.GetOptions{})
			if err != nil {
				t.Fatal(err)
			}
			ni.Spec = nodeImage("n", kruisev1alpha1.ImageTagSpec{Tag: "v1", Version: version, ImagePullPolicy: policy}).Spec
			if _, err := kruise.AppsV1alpha1().NodeImages().Update(ctx, ni, metav1.UpdateOptions{}); err != nil {
				t.Fatal(err)
			}
		}
		var id string
		if err := wait.PollUntilContextTimeout(ctx, 5*time.Millisecond, 10*time.Second, true, func(ctx context.Context) (bool, error) {
			ni, err := kruise.AppsV1alpha1().NodeImages().Get(ctx, "n", metav1.GetOptions{})
			if err != nil {
				return false, err
			}
			for _, st := range ni.Status.ImageStatuses["registry.local/app"].Tags {
				if st.Version == version && st.Phase == kruisev1alpha1.ImagePhaseSucceeded {
					id = st.ImageID
					return true, nil
				}
			}
			return false, nil
		}); err != nil {
			t.Fatalf("version %d not pulled: %v", version, err)
		}
		return id
	}
	if got := pulledAt(1, ""); got != "registry.local/app@sha256:aaaa-linux/arm64" {
		t.Fatalf("first pull reports %q", got)
	}
	mu.Lock()
	pushed = "sha256:bbbb" // the tag pushed again
	mu.Unlock()
	if got := pulledAt(2, kruisev1alpha1.PullIfNotPresent); got != "registry.local/app@sha256:aaaa-linux/arm64" {
		t.Errorf("IfNotPresent on a node holding the tag reports %q, want the image it had", got)
	}
	if got := pulledAt(3, kruisev1alpha1.PullAlways); got != "registry.local/app@sha256:bbbb-linux/arm64" {
		t.Errorf("Always reports %q, want the tag's image now", got)
	}
	if n := sim.Pulls(); n != 3 {
		t.Errorf("%d pulls, want 3", n)
	}

	// A node told it cannot pull the image no longer holds it either.
	n.Annotations = map[string]string{AnnotationFail: "app"}
	if _, err := kube.CoreV1().Nodes().Update(ctx, n, metav1.UpdateOptions{}); err != nil {
		t.Fatal(err)
	}
	if err := wait.PollUntilContextTimeout(ctx, 5*time.Millisecond, 10*time.Second, true, func(context.Context) (bool, error) {
		seen, err := sim.nodes.Get("n")
		return err == nil && seen.Annotations[AnnotationFail] != "", nil
	}); err != nil {
		t.Fatal("the simulator never saw the node's annotation")
	}
	if err := wait.PollUntilContextTimeout(ctx, 5*time.Millisecond, 10*time.Second, true, func(ctx context.Context) (bool, error) {
		ni, err := kruise.AppsV1alpha1().NodeImages().Get(ctx, "n", metav1.GetOptions{})
		if err != nil {
			return false, err
		}
		if ni.Spec.Images["registry.local/app"].Tags[0].Version < 4 {
			ni.Spec = nodeImage("n", kruisev1alpha1.ImageTagSpec{Tag: "v1", Version: 4, ImagePullPolicy: kruisev1alpha1.PullIfNotPresent}).Spec
			_, err := kruise.AppsV1alpha1().NodeImages().Update(ctx, ni, metav1.UpdateOptions{})
			return false, err
		}
		for _, st := range ni.Status.ImageStatuses["registry.local/app"].Tags {
			if st.Version == 4 {
				return st.Phase == kruisev1alpha1.ImagePhaseFailed, nil
			}
		}
		return false, nil
	}); err != nil {
		t.Errorf("IfNotPresent on a node annotated %s did not fail: %v", AnnotationFail, err)
	}
}
