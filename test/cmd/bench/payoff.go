package main

import (
	"context"
	"fmt"
	"strings"
	"time"

	"github.com/tektoncd/pipeline/pkg/apis/pipeline/v1beta1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/wait"
	"knative.dev/pkg/apis"

	"github.com/imageprepull/imageprepull/test/cluster"
)

// payoffNamespace holds the payoff level's runs and rollouts.
const payoffNamespace = "bench-payoff"

// Payoff is what a rollout gains from the pre-pull, on the real node (a
// real kubelet and containerd) pulling through a bandwidth limit: for each
// of N images, the pre-pull's own duration and a rollout's pod start after
// it, beside the pod start of an image of the same size that was not
// pre-pulled.
type Payoff struct {
	Mbit      float64 `json:"bandwidthMbitPerSecond"`
	ImageMiB  int     `json:"imageMiB"`
	Layers    int     `json:"randomLayers"`
	BaseImage string  `json:"baseImage"`
	// Each rollout, in milliseconds.
	Rollouts []PayoffRollout `json:"rollouts"`
	// Medians (p50, nearest rank, as the bench's other figures), in
	// milliseconds, and cold/warm.
	PrePullMs float64 `json:"prePullMedianMs"`
	WarmMs    float64 `json:"warmStartMedianMs"`
	ColdMs    float64 `json:"coldStartMedianMs"`
	Ratio     float64 `json:"coldOverWarm"`
}

// PayoffRollout is one image's figures: the pre-pull (CustomRun created to
// Succeeded, as this process saw it), the pod start of the pre-pulled image
// (the floor: an image already present) and of one that was not (pulled at
// start), both from the pod's creation to its Ready; and the kubelet's own
// account of the cold pull.
type PayoffRollout struct {
	PrePullMs   float64 `json:"prePullMs"`
	WarmStartMs float64 `json:"warmStartMs"`
	ColdStartMs float64 `json:"coldStartMs"`
	ColdPulled  string  `json:"coldPulledEvent"`
}

// payoff runs the payoff level: n images of mib MiB (the demo app under
// layers random data), pulled through mbit Mbit/s.
func payoff(ctx context.Context, c *cluster.Cluster, n int, mbit float64, mib int, logf func(string, ...any)) (*Payoff, error) {
	if err := c.RealNode.Start(ctx); err != nil {
		return nil, err
	}
	defer func() {
		if err := c.RealNode.Remove(context.Background()); err != nil {
			logf("payoff: %v", err)
		}
	}()
	base, err := prePullsIn(ctx, c, payoffNamespace)
	if err != nil {
		return nil, err
	}
	// The sandbox image and the app's own layers, on the node before either
	// side is timed: both sides then pull only the random layers.
	if _, err := c.RollOut(ctx, payoffNamespace, "warm-up", base, 3*time.Minute); err != nil {
		return nil, err
	}
	if err := removeRollout(ctx, c, payoffNamespace, "warm-up"); err != nil {
		return nil, err
	}
	const layers = 4
	res := &Payoff{Mbit: mbit, ImageMiB: mib, Layers: layers, BaseImage: base}
	c.Registries.LimitBandwidth(mbit * 1e6)
	defer c.Registries.LimitBandwidth(0)
	for i := range n {
		warm := fmt.Sprintf("%s/bench/payoff:warm-%d", c.Registry, i)
		cold := fmt.Sprintf("%s/bench/payoff:cold-%d", c.Registry, i)
		for _, img := range []string{warm, cold} {
			if err := c.Registries.PushLarge(ctx, base, img, layers, int64(mib)<<20/layers); err != nil {
				return nil, err
			}
		}
		logf("payoff %d/%d: pre-pull %s, then roll it out; roll out %s, not pre-pulled", i+1, n, warm, cold)
		var r PayoffRollout
		pre, err := prePull(ctx, c, payoffNamespace, fmt.Sprintf("prepull-%d", i), warm,
			v1beta1.Param{Name: "nodeNames", Value: v1beta1.ParamValue{Type: v1beta1.ParamTypeArray, ArrayVal: []string{cluster.RealNodeName}}})
		if err != nil {
			return nil, err
		}
		r.PrePullMs = ms(pre)
		w, err := c.RollOut(ctx, payoffNamespace, fmt.Sprintf("warm-%d", i), warm, 10*time.Minute)
		if err != nil {
			return nil, err
		}
		if _, err := pulled(ctx, c, w.Pod, "already present on machine"); err != nil {
			return nil, err
		}
		r.WarmStartMs = ms(w.Start)
		k, err := c.RollOut(ctx, payoffNamespace, fmt.Sprintf("cold-%d", i), cold, 10*time.Minute)
		if err != nil {
			return nil, err
		}
		if r.ColdPulled, err = pulled(ctx, c, k.Pod, "Successfully pulled image"); err != nil {
			return nil, err
		}
		r.ColdStartMs = ms(k.Start)
		res.Rollouts = append(res.Rollouts, r)
		logf("payoff %d/%d: pre-pull %.1f s; pod start %.2f s pre-pulled, %.2f s not (%s)", i+1, n, r.PrePullMs/1000, r.WarmStartMs/1000, r.ColdStartMs/1000, r.ColdPulled)
		// Keep the node's disk to one pair of images at a time.
		for _, name := range []string{fmt.Sprintf("warm-%d", i), fmt.Sprintf("cold-%d", i)} {
			if err := removeRollout(ctx, c, payoffNamespace, name); err != nil {
				return nil, err
			}
		}
		for _, img := range []string{warm, cold} {
			if err := c.RealNode.RemoveImage(ctx, img); err != nil {
				return nil, err
			}
		}
	}
	res.PrePullMs = medianOf(res.Rollouts, func(r PayoffRollout) float64 { return r.PrePullMs })
	res.WarmMs = medianOf(res.Rollouts, func(r PayoffRollout) float64 { return r.WarmStartMs })
	res.ColdMs = medianOf(res.Rollouts, func(r PayoffRollout) float64 { return r.ColdStartMs })
	if res.WarmMs > 0 {
		res.Ratio = round(res.ColdMs/res.WarmMs, 1)
	}
	return res, nil
}

// prePull runs one ImagePrePull of image in ns, with params (the nodes it
// pre-pulls onto, say), as a pipeline task would, and returns how long it
// took from its creation to Succeeded.
func prePull(ctx context.Context, c *cluster.Cluster, ns, name, image string, params ...v1beta1.Param) (time.Duration, error) {
	start := time.Now()
	if _, err := c.Tekton.TektonV1beta1().CustomRuns(ns).Create(ctx, &v1beta1.CustomRun{
		ObjectMeta: metav1.ObjectMeta{Name: name},
		Spec: v1beta1.CustomRunSpec{
			CustomRef: &v1beta1.TaskRef{APIVersion: "custom.kruise.dev/v1alpha1", Kind: "ImagePrePull"},
			Params:    append(v1beta1.Params{{Name: "image", Value: *v1beta1.NewStructuredValues(image)}}, params...),
		},
	}, metav1.CreateOptions{}); err != nil {
		return 0, err
	}
	var done *apis.Condition
	err := wait.PollUntilContextTimeout(ctx, 50*time.Millisecond, 10*time.Minute, true, func(ctx context.Context) (bool, error) {
		run, err := c.Tekton.TektonV1beta1().CustomRuns(ns).Get(ctx, name, metav1.GetOptions{})
		if err != nil {
			return false, nil
		}
		done = run.Status.GetCondition(apis.ConditionSucceeded)
		return done != nil && !done.IsUnknown(), nil
	})
	took := time.Since(start)
	if err != nil {
		return 0, fmt.Errorf("pre-pull %s of %s: %w", name, image, err)
	}
	if !done.IsTrue() {
		return 0, fmt.Errorf("pre-pull %s of %s: %s: %s", name, image, done.Reason, done.Message)
	}
	return took, nil
}

// pulled waits for the kubelet's events of the pod's start and checks that
// its Pulled event says what the figure claims (the image present, or pulled).
func pulled(ctx context.Context, c *cluster.Cluster, pod *corev1.Pod, want string) (string, error) {
	events, err := c.StartEvents(ctx, pod)
	if err != nil {
		return "", err
	}
	var found string
	for _, e := range events {
		if after, ok := strings.CutPrefix(e, "Pulled: "); ok {
			found = after
		}
	}
	if !strings.Contains(found, want) {
		return "", fmt.Errorf("pod %s: the kubelet's Pulled event is %q, want %q (events: %s)", pod.Name, found, want, strings.Join(events, "; "))
	}
	return found, nil
}

// prePullsIn readies ns for a level's pre-pulls (its default ServiceAccount
// may run them) and builds the demo app the level's images are layered on.
func prePullsIn(ctx context.Context, c *cluster.Cluster, ns string) (base string, err error) {
	if err := makeNamespace(ctx, c, ns); err != nil {
		return "", err
	}
	if err := c.AllowPrePulls(ctx, ns, "default"); err != nil {
		return "", err
	}
	return c.KoBuild(ctx, c.Registry+"/bench/app", "base", "./examples/demo-app")
}

// makeNamespace creates ns and waits for its default ServiceAccount, which
// its pods run as.
func makeNamespace(ctx context.Context, c *cluster.Cluster, ns string) error {
	if _, err := c.Kube.CoreV1().Namespaces().Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: ns}}, metav1.CreateOptions{}); err != nil {
		return err
	}
	if err := wait.PollUntilContextTimeout(ctx, 100*time.Millisecond, time.Minute, true, func(ctx context.Context) (bool, error) {
		_, err := c.Kube.CoreV1().ServiceAccounts(ns).Get(ctx, "default", metav1.GetOptions{})
		return err == nil, nil
	}); err != nil {
		return fmt.Errorf("the default ServiceAccount of %s: %w", ns, err)
	}
	return nil
}

// removeRollout deletes the Deployment name of ns and waits until its pods
// (app=name, and the Deployment's pod-template-hash: a TaskRun's pod may carry
// the app label too) are gone.
func removeRollout(ctx context.Context, c *cluster.Cluster, ns, name string) error {
	if err := c.Kube.AppsV1().Deployments(ns).Delete(ctx, name, metav1.DeleteOptions{}); err != nil && !apierrors.IsNotFound(err) {
		return err
	}
	return wait.PollUntilContextTimeout(ctx, 200*time.Millisecond, 2*time.Minute, true, func(ctx context.Context) (bool, error) {
		pods, err := c.Kube.CoreV1().Pods(ns).List(ctx, metav1.ListOptions{LabelSelector: "app=" + name + ",pod-template-hash"})
		return err == nil && len(pods.Items) == 0, nil
	})
}
