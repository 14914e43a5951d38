package imageprepull

import (
	"context"
	"time"

	kruisev1alpha1 "github.com/openkruise/kruise-api/apps/v1alpha1"
	"github.com/tektoncd/pipeline/pkg/apis/pipeline/v1beta1"
	tektonlisters "github.com/tektoncd/pipeline/pkg/client/listers/pipeline/v1beta1"
	tkncontroller "github.com/tektoncd/pipeline/pkg/controller"
	"go.opentelemetry.io/otel"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/metric"
	"k8s.io/apimachinery/pkg/labels"
	"knative.dev/pkg/apis"

	"github.com/imageprepull/imageprepull/pkg/apis/custom/v1alpha1"
	"github.com/imageprepull/imageprepull/pkg/kruise"
)

// meterName is the OpenTelemetry scope of the controller's metrics.
const meterName = "github.com/imageprepull/imageprepull"

// MetricDoc documents one metric as Prometheus scrapes it.
type MetricDoc struct {
	Name, Type, Labels, Meaning string
}

// instrument is one metric of the controller, as it is made: its
// OpenTelemetry name and unit, from which Knative's Prometheus exporter
// makes the name scraped (the unit's suffix, then _total for a counter).
type instrument struct {
	name, kind, unit, labels, meaning string
}

func (i instrument) scraped() string {
	n := i.name
	if i.unit == "s" {
		n += "_seconds"
	}
	if i.kind == "counter" {
		n += "_total"
	}
	return n
}

var (
	runsFinished = instrument{"imageprepull_runs_finished", "counter", "", "reason",
		"runs ended, counted once the status write that ended them landed, by the reason of their Succeeded condition"}
	runDuration = instrument{"imageprepull_run_duration", "histogram", "s", "reason",
		"from a run's start (its first attempt's) to its end"}
	kruiseDuration = instrument{"imageprepull_kruise_duration", "histogram", "s", "",
		"the run's wait on OpenKruise: from its last attempt's first ImagePullJob created to its last job complete"}
	failedNodes = instrument{"imageprepull_failed_nodes", "counter", "", "class",
		"nodes that failed a pull in an ended run, by the class of kruise-daemon's reason: not_found, unauthorized, timeout, other; unread for failed nodes past the first five, whose NodeImages a run does not read; wrong_image for a node that has another image than the run's digest names"}
	runsInFlight = instrument{"imageprepull_runs_in_flight", "gauge", "", "",
		"ImagePrePull runs started and not ended (each replica reports the cluster's count)"}
	jobsActive = instrument{"imageprepull_imagepulljobs_active", "gauge", "", "",
		"ImagePullJobs this controller owns that are not complete (each replica reports the cluster's count)"}
)

// MetricDocs documents every metric of this controller; docs/metrics.md's
// table is made from it, and e2e checks it against a real scrape.
var MetricDocs = func() []MetricDoc {
	var docs []MetricDoc
	for _, i := range []instrument{runsFinished, runDuration, kruiseDuration, failedNodes, runsInFlight, jobsActive} {
		docs = append(docs, MetricDoc{i.scraped(), i.kind, i.labels, i.meaning})
	}
	return docs
}()

// ending is what a reconcile that ended a run records, counted once the
// informer shows the status write that ended it (endWrites): a write that
// fails counts nothing, and the reconcile that ends the run again records
// anew.
type ending struct {
	reason   string
	duration time.Duration
	// kruise is the wait on OpenKruise, when the run's jobs completed
	// (zero: within the second Kubernetes timestamps resolve).
	kruise      time.Duration
	kruiseKnown bool
	classes     map[string]int
}

// runMetrics records the metrics of MetricDocs.
type runMetrics struct {
	finished    metric.Int64Counter
	duration    metric.Float64Histogram
	kruise      metric.Float64Histogram
	failedNodes metric.Int64Counter
}

// Buckets for durations: a pre-pull takes seconds to tens of minutes.
var durationBuckets = []float64{1, 2, 5, 10, 30, 60, 120, 300, 600, 1200, 1800, 3600, 7200}

func newRunMetrics(runs tektonlisters.CustomRunLister, jobs *kruise.JobInformer) (*runMetrics, error) {
	meter := otel.GetMeterProvider().Meter(meterName)
	m := &runMetrics{}
	var err error
	if m.finished, err = meter.Int64Counter(runsFinished.name, metric.WithDescription(runsFinished.meaning)); err != nil {
		return nil, err
	}
	if m.duration, err = meter.Float64Histogram(runDuration.name, metric.WithUnit(runDuration.unit),
		metric.WithDescription(runDuration.meaning), metric.WithExplicitBucketBoundaries(durationBuckets...)); err != nil {
		return nil, err
	}
	if m.kruise, err = meter.Float64Histogram(kruiseDuration.name, metric.WithUnit(kruiseDuration.unit),
		metric.WithDescription(kruiseDuration.meaning), metric.WithExplicitBucketBoundaries(durationBuckets...)); err != nil {
		return nil, err
	}
	if m.failedNodes, err = meter.Int64Counter(failedNodes.name, metric.WithDescription(failedNodes.meaning)); err != nil {
		return nil, err
	}
	// Every counter's series exists from the start, at zero: Prometheus's
	// increase() and rate() count from a series' second sample, so a series
	// born at 1 would hide the first run of its reason after each start.
	for _, d := range v1alpha1.ReasonDocs {
		m.finished.Add(context.Background(), 0, metric.WithAttributes(attribute.String("reason", d.Name)))
	}
	for _, class := range failureClasses {
		m.failedNodes.Add(context.Background(), 0, metric.WithAttributes(attribute.String("class", class)))
	}
	inFlight, err := meter.Int64ObservableGauge(runsInFlight.name, metric.WithDescription(runsInFlight.meaning))
	if err != nil {
		return nil, err
	}
	active, err := meter.Int64ObservableGauge(jobsActive.name, metric.WithDescription(jobsActive.meaning))
	if err != nil {
		return nil, err
	}
	ours := tkncontroller.FilterCustomRunRef(v1alpha1.APIVersion, v1alpha1.Kind)
	_, err = meter.RegisterCallback(func(ctx context.Context, o metric.Observer) error {
		all, err := runs.List(labels.Everything())
		if err != nil {
			return err
		}
		n := int64(0)
		for _, run := range all {
			if ours(run) && run.HasStarted() && !run.IsDone() {
				n++
			}
		}
		o.ObserveInt64(inFlight, n)
		if lister, err := jobs.Lister(ctx); err == nil {
			list, err := lister.List(labels.Everything())
			if err != nil {
				return err
			}
			n = 0
			for _, job := range list {
				if job.Status.CompletionTime == nil {
					n++
				}
			}
			o.ObserveInt64(active, n)
		}
		return nil
	}, inFlight, active)
	return m, err
}

// newEnding is what ends run, from the jobs of its last attempt.
func newEnding(run *v1beta1.CustomRun, jobs []*kruisev1alpha1.ImagePullJob, classes map[string]int, now time.Time) ending {
	e := ending{classes: classes}
	if c := run.Status.GetCondition(apis.ConditionSucceeded); c != nil {
		e.reason = c.Reason
	}
	start := run.Status.StartTime
	if len(run.Status.RetriesStatus) > 0 && run.Status.RetriesStatus[0].StartTime != nil {
		start = run.Status.RetriesStatus[0].StartTime
	}
	if start != nil {
		e.duration = now.Sub(start.Time)
	}
	var first, last time.Time
	for _, job := range jobs {
		if first.IsZero() || job.CreationTimestamp.Time.Before(first) {
			first = job.CreationTimestamp.Time
		}
		if job.Status.CompletionTime != nil && job.Status.CompletionTime.Time.After(last) {
			last = job.Status.CompletionTime.Time
		}
	}
	if !first.IsZero() && !last.IsZero() {
		e.kruise, e.kruiseKnown = max(last.Sub(first), 0), true
	}
	return e
}

func (m *runMetrics) record(e ending) {
	ctx := context.Background()
	reason := metric.WithAttributes(attribute.String("reason", e.reason))
	m.finished.Add(ctx, 1, reason)
	m.duration.Record(ctx, e.duration.Seconds(), reason)
	if e.kruiseKnown {
		m.kruise.Record(ctx, e.kruise.Seconds())
	}
	for class, n := range e.classes {
		m.failedNodes.Add(ctx, int64(n), metric.WithAttributes(attribute.String("class", class)))
	}
}
