package simulator

import (
	"context"
	"fmt"
	"sync"
	"testing"
	"time"

	kruisev1alpha1 "github.com/openkruise/kruise-api/apps/v1alpha1"
	kruisefake "github.com/openkruise/kruise-api/client/clientset/versioned/fake"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/util/wait"
	dynamicfake "k8s.io/client-go/dynamic/fake"
	kubefake "k8s.io/client-go/kubernetes/fake"
	k8stesting "k8s.io/client-go/testing"
)

// v1beta1Writes is a dynamic client that takes NodeImage status writes
// through v1beta1 into the typed fake's store, as the API server keeps one
// object whichever version wrote it, and records what was written.
func v1beta1Writes(t *testing.T, kruise *kruisefake.Clientset) (*dynamicfake.FakeDynamicClient, func() []*unstructured.Unstructured) {
	var mu sync.Mutex
	var writes []*unstructured.Unstructured
	dyn := dynamicfake.NewSimpleDynamicClientWithCustomListKinds(runtime.NewScheme(),
		map[schema.GroupVersionResource]string{nodeImagesV1beta1: "NodeImageList"})
	dyn.PrependReactor("*", "*", func(action k8stesting.Action) (bool, runtime.Object, error) {
		update, ok := action.(k8stesting.UpdateAction)
		if !ok || action.GetResource() != nodeImagesV1beta1 || action.GetSubresource() != "status" {
			t.Errorf("%s %v/%s: kruise-daemon v1.9 only updates v1beta1 nodeimages/status", action.GetVerb(), action.GetResource(), action.GetSubresource())
			return true, nil, fmt.Errorf("unexpected request")
		}
		u := update.GetObject().(*unstructured.Unstructured)
		var ni kruisev1alpha1.NodeImage
		if err := runtime.DefaultUnstructuredConverter.FromUnstructured(u.Object, &ni); err != nil {
			return true, nil, err
		}
		if err := kruise.Tracker().Update(kruisev1alpha1.SchemeGroupVersion.WithResource("nodeimages"), &ni, ""); err != nil {
			return true, nil, err
		}
		mu.Lock()
		writes = append(writes, u.DeepCopy())
		mu.Unlock()
		return true, u, nil
	})
	return dyn, func() []*unstructured.Unstructured {
		mu.Lock()
		defer mu.Unlock()
		return append([]*unstructured.Unstructured(nil), writes...)
	}
}

// kruise-daemon v1.9 reports a tag Waiting before a worker takes it, runs at
// most --max-workers-for-pull-image pulls at a time on a node (here 1, from
// the node's annotation), and writes through v1beta1 with status.waiting.
func TestSimulatorAnswersLikeKruiseDaemonV19(t *testing.T) {
	t.Setenv("KUBE_FEATURE_WatchListClient", "false") // fake clients send no bookmarks
	kube := kubefake.NewSimpleClientset(node("n", true, map[string]string{AnnotationMaxWorkers: "1"}))
	kruise := kruisefake.NewSimpleClientset(nodeImage("n",
		kruisev1alpha1.ImageTagSpec{Tag: "v1"}, kruisev1alpha1.ImageTagSpec{Tag: "v2"}, kruisev1alpha1.ImageTagSpec{Tag: "v3"}))
	dyn, writes := v1beta1Writes(t, kruise)
	cfg := Config{Kruise: "v1.9.1"}
	cfg.PullTime.Min, cfg.PullTime.Max = 300*time.Millisecond, 300*time.Millisecond+1
	sim := New(kube, kruise, dyn, cfg)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	if err := sim.Start(ctx); err != nil {
		t.Fatal(err)
	}
	err := wait.PollUntilContextTimeout(ctx, 10*time.Millisecond, 20*time.Second, true, func(ctx context.Context) (bool, error) {
		ni, err := kruise.AppsV1alpha1().NodeImages().Get(ctx, "n", metav1.GetOptions{})
		return err == nil && ni.Status.Succeeded == 3, nil
	})
	if err != nil {
		t.Fatalf("the three pulls were not all reported; writes: %v", writes())
	}

	sawWaiting := false
	for _, w := range writes() {
		if w.GetAPIVersion() != "apps.kruise.io/v1beta1" {
			t.Errorf("status written as %s", w.GetAPIVersion())
		}
		tags, _, _ := unstructured.NestedSlice(w.Object, "status", "imageStatuses", "registry.local/app", "tags")
		var waiting, pulling int64
		for _, tag := range tags {
			tag := tag.(map[string]any)
			switch tag["phase"] {
			case string(kruisev1alpha1.ImagePhaseWaiting):
				waiting++
				if tag["startTime"] != nil {
					t.Errorf("a Waiting tag has a startTime: %v", tag)
				}
			case string(kruisev1alpha1.ImagePhasePulling):
				pulling++
			}
		}
		if got, _, _ := unstructured.NestedInt64(w.Object, "status", "waiting"); got != waiting {
			t.Errorf("status.waiting = %d, the tags say %d: %v", got, waiting, tags)
		}
		if got, _, _ := unstructured.NestedInt64(w.Object, "status", "pulling"); got != pulling || pulling > 1 {
			t.Errorf("status.pulling = %d, %d tags Pulling, with one worker: %v", got, pulling, tags)
		}
		sawWaiting = sawWaiting || waiting > 0
	}
	if !sawWaiting {
		t.Errorf("no write reported a queued pull Waiting: %v", writes())
	}
}

// kruise-daemon v1.8 has no worker limit: asking for one is a mistake in
// the test, not something to ignore.
func TestSimulatorRefusesAWorkerLimitOnV18(t *testing.T) {
	sim := New(kubefake.NewSimpleClientset(), kruisefake.NewSimpleClientset(), nil, Config{Kruise: "v1.8.0", MaxWorkers: 1})
	if err := sim.Start(context.Background()); err == nil {
		t.Fatal("Start accepted MaxWorkers for kruise-daemon v1.8.0")
	}
}
