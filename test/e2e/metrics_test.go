//go:build e2e

package e2e

import (
	"context"
	"path/filepath"
	"testing"
	"time"

	"github.com/tektoncd/pipeline/pkg/apis/pipeline/v1beta1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"

	"github.com/imageprepull/imageprepull/pkg/apis/custom/v1alpha1"
	"github.com/imageprepull/imageprepull/pkg/reconciler/imageprepull"
	"github.com/imageprepull/imageprepull/test/cluster"
	"github.com/imageprepull/imageprepull/test/dashboard"
)

// scrape reads the controller's /metrics and returns it parsed and as text.
func scrape(t *testing.T) (cluster.Metrics, string) {
	t.Helper()
	text, err := c.Controllers.Metrics(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	m, err := cluster.ParseMetrics(text)
	if err != nil {
		t.Fatalf("parsing /metrics: %v\n%s", err, text)
	}
	return m, text
}

// After a known set of runs (a success, a threshold failure, a cancel, a
// timeout), the controller's metrics, as Prometheus scrapes them, counted
// each end by its reason, observed each run's duration and Kruise's share,
// and classed the failed node; every metric docs/metrics.md lists is in the scrape.
func TestMetricsAfterKnownRuns(t *testing.T) {
	ctx := context.Background()
	const every = time.Second
	prometheus, err := c.Prometheus.Start(ctx, every)
	if err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	before, _ := scrape(t)
	ns := namespace(t)
	want := map[string]string{"ok": v1beta1.CustomRunReasonSuccessful.String(), "threshold": v1alpha1.ReasonThresholdNotMet.String(),
		"cancelled": v1beta1.CustomRunReasonCancelled.String(), "timeout": v1beta1.CustomRunReasonTimedOut.String()}
	// Twice: a histogram's series is born with its first observation, and
	// Prometheus's rate() counts from a series' second sample; the
	// dashboard's duration panels see the second round.
	for round := range 2 {
		suffix := ""
		if round > 0 {
			suffix = "-again"
			time.Sleep(3 * every) // the first round scraped
		}
		for _, run := range []struct{ name, image, timeout string }{
			{"ok", "registry.local/app:metrics", ""},
			{"threshold", "registry.local/flaky-metrics:v1", ""}, // web-b1 fails flaky- images
			{"cancelled", "registry.local/slow-metrics:v1", ""},
			{"timeout", "registry.local/slow-metrics:v2", "\n        timeout: 6s"},
		} {
			create(t, ns, pipelineRun(run.name+suffix, `
      - name: prepull`+run.timeout+`
        taskRef: {apiVersion: custom.kruise.dev/v1alpha1, kind: ImagePrePull}
        params: [{name: image, value: "`+run.image+`"}, {name: nodeSelector, value: node-type=web}]
`))
		}
		waitCustomRun(t, ns, "cancelled"+suffix+"-prepull", time.Minute, "started", func(r *v1beta1.CustomRun) bool { return r.HasStarted() })
		if _, err := c.Tekton.TektonV1().PipelineRuns(ns).Patch(ctx, "cancelled"+suffix, types.MergePatchType,
			[]byte(`{"spec":{"status":"Cancelled"}}`), metav1.PatchOptions{}); err != nil {
			t.Fatal(err)
		}
		for pr, reason := range want {
			run := waitCustomRun(t, ns, pr+suffix+"-prepull", prTimeout, "done", func(r *v1beta1.CustomRun) bool { return r.IsDone() })
			if cond(run).Reason != reason {
				t.Fatalf("%s: %s %s, want %s", pr+suffix, cond(run).Reason, cond(run).Message, reason)
			}
		}
	}

	var after cluster.Metrics
	var text string
	delta := func(name string, match map[string]string) float64 {
		return after.Sum(name, match) - before.Sum(name, match)
	}
	// Counted when the informer sees the ending write: a moment after the run is done.
	deadline := time.Now().Add(30 * time.Second)
	for {
		after, text = scrape(t)
		ok := delta("imageprepull_run_duration_seconds", nil) >= 8
		for _, reason := range want {
			ok = ok && delta("imageprepull_runs_finished_total", map[string]string{"reason": reason}) >= 2
		}
		if ok || time.Now().After(deadline) {
			break
		}
		time.Sleep(500 * time.Millisecond)
	}
	for _, reason := range want {
		if got := delta("imageprepull_runs_finished_total", map[string]string{"reason": reason}); got < 2 {
			t.Errorf("runs finished with %s went up by %v", reason, got)
		}
	}
	if got := delta("imageprepull_run_duration_seconds", nil); got < 8 {
		t.Errorf("run durations observed: %v more, want at least the 8 runs", got)
	}
	if got := delta("imageprepull_kruise_duration_seconds", nil); got < 4 {
		t.Errorf("Kruise's share observed: %v more, want at least the 4 runs whose jobs completed", got)
	}
	if got := delta("imageprepull_failed_nodes_total", map[string]string{"class": "not_found"}); got < 2 {
		t.Errorf("failed nodes of class not_found: %v more, want web-b1's, once a round", got)
	}
	for _, m := range imageprepull.MetricDocs {
		if after[m.Name] == nil {
			t.Errorf("docs/metrics.md lists %s, which the scrape does not have:\n%s", m.Name, text)
		}
	}

	// The dashboard docs/dashboard ships, every query of it evaluated by a
	// real Prometheus that scraped the controller through these runs: each
	// has data that is not all zeros.
	time.Sleep(3 * every) // the last scrape after the last end
	board, err := dashboard.Load(filepath.Join("..", "..", dashboard.Path))
	if err != nil {
		t.Fatal(err)
	}
	results, err := dashboard.Evaluate(ctx, prometheus, board, start, time.Now(), time.Second, 15*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	for _, r := range results {
		for _, q := range r.Empty {
			t.Errorf("dashboard panel %q: query %s returned nothing but zeros after the known runs", r.Panel.Title, q)
		}
	}
}
