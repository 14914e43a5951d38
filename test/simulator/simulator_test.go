package simulator

import (
	"context"
	"fmt"
	"math"
	"regexp"
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
	cfg := Config{FailImages: regexp.MustCompile(`:never$`)}
	cfg.PullTime.Min, cfg.PullTime.Max = time.Millisecond, 5*time.Millisecond
	sim := New(kube, kruise, cfg)
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
	sim := New(kube, kruise, Config{})
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
