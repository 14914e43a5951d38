package main

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"time"

	pipelinev1 "github.com/tektoncd/pipeline/pkg/apis/pipeline/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/wait"
	"knative.dev/pkg/apis"

	"github.com/imageprepull/imageprepull/test/cluster"
)

// The two ways the seed's pipeline can pre-pull: examples/local-demo's
// ImagePrePull, and the seed's own kubectl Task (examples/local-demo/kubectl-task).
const (
	wayImagePrePull = "ImagePrePull"
	wayKubectlTask  = "kubectl Task"
)

// Pipelines is the seed's pipeline run whole both ways on the real node, on
// the same images and link: build, test and push the demo app on a base of
// random layers new to the node (as large as the payoff level's images),
// pre-pull it, roll it out. Times come from the API's timestamps (TaskRuns,
// CustomRuns, ImagePullJobs, the pod's Ready condition): whole seconds.
type Pipelines struct {
	Mbit     float64           `json:"bandwidthMbitPerSecond"`
	ImageMiB int               `json:"imageMiB"`
	Runs     []PipelineFigures `json:"runs"`
	// Medians are each way's medians over its runs.
	Medians map[string]PipelineMedians `json:"medians"`
}

// PipelineFigures are one PipelineRun's.
type PipelineFigures struct {
	Way         string `json:"way"`
	PipelineRun string `json:"pipelineRun"`
	// PushToReady is from the build task done (the image pushed) to the
	// rollout's pod Ready: what the pipeline adds between a push and the
	// new version serving.
	PushToReady float64 `json:"pushToRolloutReadySeconds"`
	// PrePull is the pre-pull task's own duration: the CustomRun's, or the
	// kubectl Task's TaskRun, which ends once the job is applied.
	PrePull float64 `json:"prePullTaskSeconds"`
	// JobDone is from the push to the ImagePullJob's completion: when the
	// node held the image, whether or not the pipeline waited for it.
	JobDone float64 `json:"imagePullJobDoneAfterPushSeconds"`
	// RolloutStart is the rollout pod's creation to its Ready: how long the
	// new version was starting.
	RolloutStart float64 `json:"rolloutPodStartSeconds"`
	// Pods are the pods the PipelineRun started (its TaskRuns').
	Pods int `json:"taskRunPods"`
	// Secrets are the Secrets those pods mount: what the pipeline's
	// namespace must hold.
	Secrets []string `json:"secretsMounted"`
	// Pulled is the kubelet's Pulled event of the rollout's pod.
	Pulled      string `json:"rolloutPodPulledEvent"`
	FromPrePull bool   `json:"rolloutPodStartedFromThePrePull"`
}

// PipelineMedians are a way's medians (nearest rank), in seconds.
type PipelineMedians struct {
	PushToReady  float64 `json:"pushToRolloutReadySeconds"`
	PrePull      float64 `json:"prePullTaskSeconds"`
	JobDone      float64 `json:"imagePullJobDoneAfterPushSeconds"`
	RolloutStart float64 `json:"rolloutPodStartSeconds"`
	// FromPrePull counts the runs whose rollout pod found the image present.
	FromPrePull int `json:"rolloutPodsStartedFromThePrePull"`
	Runs        int `json:"runs"`
}

// pipelinesLevel runs n PipelineRuns each way, alternating which goes first.
func pipelinesLevel(ctx context.Context, c *cluster.Cluster, n int, mbit float64, mib int, logf func(string, ...any)) (*Pipelines, error) {
	if err := c.RealNode.Start(ctx); err != nil {
		return nil, err
	}
	defer func() {
		if err := c.RealNode.Remove(context.Background()); err != nil {
			logf("pipelines: %v", err)
		}
	}()
	templates := map[string]*pipelinev1.PipelineRun{}
	for _, way := range []string{wayImagePrePull, wayKubectlTask} {
		pr, err := preparePipelines(ctx, c, way)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", way, err)
		}
		templates[way] = pr
	}
	// The step images on the node before anything is timed: both ways run
	// the same ones, and neither should pay for them.
	images, err := c.PushStepImages(ctx)
	if err != nil {
		return nil, err
	}
	for _, img := range []string{images.Builder, images.Kubectl} {
		if err := c.RealNode.Pull(ctx, img); err != nil {
			return nil, err
		}
	}
	c.Registries.LimitBandwidth(mbit * 1e6)
	defer c.Registries.LimitBandwidth(0)
	res := &Pipelines{Mbit: mbit, ImageMiB: mib, Medians: map[string]PipelineMedians{}}
	const layers = 4
	for i := range n {
		ways := []string{wayImagePrePull, wayKubectlTask}
		if i%2 == 1 {
			slices.Reverse(ways)
		}
		for _, way := range ways {
			base := fmt.Sprintf("%s/bench/pipelines-base:%s-%d", c.Registry, strings.ToLower(strings.Fields(way)[0]), i)
			if err := c.Registries.PushLarge(ctx, c.BaseImage, base, layers, int64(mib)<<20/layers); err != nil {
				return nil, err
			}
			f, err := runPipeline(ctx, c, way, templates[way], base, i)
			if err != nil {
				return nil, fmt.Errorf("%s, run %d: %w", way, i+1, err)
			}
			logf("pipelines %d/%d, %s: push to rollout Ready %.0f s (pre-pull task %.0f s, job done %.0f s after the push), rollout pod start %.0f s, %d pods, Secrets %v; %s",
				i+1, n, way, f.PushToReady, f.PrePull, f.JobDone, f.RolloutStart, f.Pods, f.Secrets, f.Pulled)
			res.Runs = append(res.Runs, f)
		}
	}
	for _, way := range []string{wayImagePrePull, wayKubectlTask} {
		var runs []PipelineFigures
		for _, f := range res.Runs {
			if f.Way == way {
				runs = append(runs, f)
			}
		}
		m := PipelineMedians{Runs: len(runs),
			PushToReady:  medianOf(runs, func(f PipelineFigures) float64 { return f.PushToReady }),
			PrePull:      medianOf(runs, func(f PipelineFigures) float64 { return f.PrePull }),
			JobDone:      medianOf(runs, func(f PipelineFigures) float64 { return f.JobDone }),
			RolloutStart: medianOf(runs, func(f PipelineFigures) float64 { return f.RolloutStart }),
		}
		for _, f := range runs {
			if f.FromPrePull {
				m.FromPrePull++
			}
		}
		res.Medians[way] = m
	}
	return res, nil
}

// pipelinesNamespace is where a way's PipelineRuns run.
func pipelinesNamespace(way string) string {
	if way == wayKubectlTask {
		return "bench-pipelines-kubectl"
	}
	return "bench-pipelines-prepull"
}

// preparePipelines makes a way's namespace and what its PipelineRun needs,
// and returns that PipelineRun to fill in and create.
func preparePipelines(ctx context.Context, c *cluster.Cluster, way string) (*pipelinev1.PipelineRun, error) {
	ns := pipelinesNamespace(way)
	if err := makeNamespace(ctx, c, ns); err != nil {
		return nil, err
	}
	if way == wayImagePrePull {
		if err := c.AllowPrePulls(ctx, ns, "default"); err != nil {
			return nil, err
		}
	}
	return c.PrepareLocalDemo(ctx, cluster.LocalDemo{
		Namespace: ns, KubectlTask: way == wayKubectlTask, Branch: "hello_world", ShortSHA: "set-per-run",
		// The helloworld policy selects node-type=web; here the real node is
		// the one that runs the rollout, as the kubectl Task's job names it.
		Policy: func(doc string) string {
			return strings.Replace(doc, "node-type: web", "kubernetes.io/hostname: "+cluster.RealNodeName, 1)
		},
	})
}

// runPipeline runs one PipelineRun of way's template on base, reads its
// figures, then removes its rollout and the image from the node.
func runPipeline(ctx context.Context, c *cluster.Cluster, way string, template *pipelinev1.PipelineRun, base string, i int) (PipelineFigures, error) {
	ns := template.Namespace
	f := PipelineFigures{Way: way}
	pr := template.DeepCopy()
	sha := fmt.Sprintf("b%d%s", i, time.Now().Format("150405"))
	for j, p := range pr.Spec.Params {
		switch p.Name {
		case "short_sha":
			pr.Spec.Params[j].Value = *pipelinev1.NewStructuredValues(sha)
		case "base_image":
			pr.Spec.Params[j].Value = *pipelinev1.NewStructuredValues(base)
		}
	}
	pr, err := c.Tekton.TektonV1().PipelineRuns(ns).Create(ctx, pr, metav1.CreateOptions{})
	if err != nil {
		return f, err
	}
	f.PipelineRun = pr.Name
	if err := wait.PollUntilContextTimeout(ctx, time.Second, 20*time.Minute, true, func(ctx context.Context) (bool, error) {
		if pr, err = c.Tekton.TektonV1().PipelineRuns(ns).Get(ctx, f.PipelineRun, metav1.GetOptions{}); err != nil {
			return false, nil
		}
		done := pr.Status.GetCondition(apis.ConditionSucceeded)
		return done != nil && !done.IsUnknown(), nil
	}); err != nil {
		return f, fmt.Errorf("PipelineRun %s: %w", f.PipelineRun, err)
	}
	byRun := metav1.ListOptions{LabelSelector: "tekton.dev/pipelineRun=" + pr.Name}
	if done := pr.Status.GetCondition(apis.ConditionSucceeded); !done.IsTrue() {
		return f, fmt.Errorf("PipelineRun %s: %s: %s; its tasks: %s", f.PipelineRun, done.Reason, done.Message, tasksSaid(ctx, c, ns, byRun))
	}
	trs, err := c.Tekton.TektonV1().TaskRuns(ns).List(ctx, byRun)
	if err != nil {
		return f, err
	}
	var pushed time.Time
	var image, digest string
	for _, tr := range trs.Items {
		switch tr.Labels["tekton.dev/pipelineTask"] {
		case "build-push":
			pushed = tr.Status.CompletionTime.Time
			for _, r := range tr.Status.Results {
				switch r.Name {
				case "IMAGE_URL":
					image = r.Value.StringVal
				case "IMAGE_DIGEST":
					digest = r.Value.StringVal
				}
			}
		case "predownload":
			f.PrePull = tr.Status.CompletionTime.Sub(tr.Status.StartTime.Time).Seconds()
		}
	}
	colon := strings.LastIndex(image, ":")
	tagged := colon > strings.LastIndex(image, "/")
	if pushed.IsZero() || !tagged || digest == "" {
		return f, fmt.Errorf("PipelineRun %s: no build-push TaskRun done with IMAGE_URL and IMAGE_DIGEST (%q, %q)", pr.Name, image, digest)
	}
	if way == wayImagePrePull {
		runs, err := c.Tekton.TektonV1beta1().CustomRuns(ns).List(ctx, byRun)
		if err != nil || len(runs.Items) != 1 {
			return f, fmt.Errorf("PipelineRun %s's CustomRun: %v (%d)", pr.Name, err, len(runs.Items))
		}
		st := runs.Items[0].Status
		f.PrePull = st.CompletionTime.Sub(st.StartTime.Time).Seconds()
	}
	jobs, err := c.Kruise.AppsV1alpha1().ImagePullJobs(ns).List(ctx, metav1.ListOptions{})
	if err != nil {
		return f, err
	}
	// The run's job is the one made after its push (an earlier run's was made
	// minutes before); the API's times are whole seconds.
	var made []string
	for _, j := range jobs.Items {
		if j.CreationTimestamp.Time.Before(pushed.Add(-time.Second)) {
			continue
		}
		made = append(made, j.Name+" of "+j.Spec.Image)
		if j.Status.CompletionTime != nil {
			f.JobDone = j.Status.CompletionTime.Sub(pushed).Seconds()
		}
	}
	if len(made) != 1 || f.JobDone == 0 {
		return f, fmt.Errorf("PipelineRun %s: want one ImagePullJob of %s made after its push and completed, got %v", pr.Name, image, made)
	}
	pods, err := c.Kube.CoreV1().Pods(ns).List(ctx, byRun)
	if err != nil {
		return f, err
	}
	f.Pods = len(pods.Items)
	f.Secrets = []string{}
	for _, p := range pods.Items {
		for _, v := range p.Spec.Volumes {
			if v.Secret != nil && !slices.Contains(f.Secrets, v.Secret.SecretName) {
				f.Secrets = append(f.Secrets, v.Secret.SecretName)
			}
		}
	}
	rollout, err := c.Kube.CoreV1().Pods(ns).List(ctx, metav1.ListOptions{LabelSelector: "app=helloworld,pod-template-hash"})
	if err != nil || len(rollout.Items) != 1 {
		return f, fmt.Errorf("PipelineRun %s's rollout pods: %v (%d, want 1)", pr.Name, err, len(rollout.Items))
	}
	pod := &rollout.Items[0]
	for _, cond := range pod.Status.Conditions {
		if cond.Type == corev1.PodReady && cond.Status == corev1.ConditionTrue {
			f.PushToReady = cond.LastTransitionTime.Sub(pushed).Seconds()
			f.RolloutStart = cond.LastTransitionTime.Sub(pod.CreationTimestamp.Time).Seconds()
		}
	}
	events, err := c.StartEvents(ctx, pod)
	if err != nil {
		return f, err
	}
	for _, e := range events {
		if after, ok := strings.CutPrefix(e, "Pulled: "); ok {
			f.Pulled = after
		}
	}
	f.FromPrePull = strings.Contains(f.Pulled, "already present on machine")
	// The next run pulls everything anew: its base is new, and this image
	// leaves the node.
	if err := removeRollout(ctx, c, ns, "helloworld"); err != nil {
		return f, fmt.Errorf("the rollout of %s did not go: %w", pr.Name, err)
	}
	return f, c.RealNode.RemoveImage(ctx, image[:colon]+"@"+digest)
}

// tasksSaid is what each of a PipelineRun's TaskRuns and CustomRuns says.
func tasksSaid(ctx context.Context, c *cluster.Cluster, ns string, byRun metav1.ListOptions) string {
	var said []string
	if trs, err := c.Tekton.TektonV1().TaskRuns(ns).List(ctx, byRun); err == nil {
		for _, tr := range trs.Items {
			if cond := tr.Status.GetCondition(apis.ConditionSucceeded); cond != nil {
				said = append(said, fmt.Sprintf("%s: %s: %s", tr.Labels["tekton.dev/pipelineTask"], cond.Reason, cond.Message))
			}
		}
	}
	if runs, err := c.Tekton.TektonV1beta1().CustomRuns(ns).List(ctx, byRun); err == nil {
		for _, r := range runs.Items {
			if cond := r.Status.GetCondition(apis.ConditionSucceeded); cond != nil {
				said = append(said, fmt.Sprintf("%s: %s: %s", r.Labels["tekton.dev/pipelineTask"], cond.Reason, cond.Message))
			}
		}
	}
	return strings.Join(said, "; ")
}
