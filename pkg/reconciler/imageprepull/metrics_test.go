package imageprepull

import (
	"context"
	"testing"

	kruisev1alpha1 "github.com/openkruise/kruise-api/apps/v1alpha1"
	"github.com/tektoncd/pipeline/pkg/apis/pipeline/v1beta1"
	"go.opentelemetry.io/otel"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/metric/noop"
	sdkmetric "go.opentelemetry.io/otel/sdk/metric"
	"go.opentelemetry.io/otel/sdk/metric/metricdata"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/runtime"
	clientgotesting "k8s.io/client-go/testing"

	"github.com/imageprepull/imageprepull/pkg/apis/custom/v1alpha1"
)

var attributeEncoder = attribute.DefaultEncoder()

// withMetrics gives the controller a meter provider the test reads.
func withMetrics(t *testing.T) *sdkmetric.ManualReader {
	reader := sdkmetric.NewManualReader()
	otel.SetMeterProvider(sdkmetric.NewMeterProvider(sdkmetric.WithReader(reader)))
	t.Cleanup(func() { otel.SetMeterProvider(noop.NewMeterProvider()) })
	return reader
}

// sums are the counters' values by metric name and attribute set, and the
// histograms' counts.
func sums(t *testing.T, reader *sdkmetric.ManualReader) map[string]int64 {
	t.Helper()
	var rm metricdata.ResourceMetrics
	if err := reader.Collect(context.Background(), &rm); err != nil {
		t.Fatal(err)
	}
	out := map[string]int64{}
	for _, sm := range rm.ScopeMetrics {
		for _, m := range sm.Metrics {
			switch data := m.Data.(type) {
			case metricdata.Sum[int64]:
				for _, dp := range data.DataPoints {
					out[m.Name+" "+dp.Attributes.Encoded(attributeEncoder)] += dp.Value
				}
			case metricdata.Histogram[float64]:
				for _, dp := range data.DataPoints {
					out[m.Name+" "+dp.Attributes.Encoded(attributeEncoder)] += int64(dp.Count)
				}
			case metricdata.Gauge[int64]:
				for _, dp := range data.DataPoints {
					out[m.Name] = dp.Value
				}
			}
		}
	}
	return out
}

// A run's end is counted once the status write that ended it has landed:
// a write refused with 409 counts nothing, the write that lands counts
// once, and seeing that write again counts nothing more.
func TestRunEndIsCountedOnceItsWriteLanded(t *testing.T) {
	reader := withMetrics(t)
	e := newEnv(t)
	e.create(newRun("run", str("image", app), arr("nodeNames", "node-1", "node-2", "node-3")))
	e.mustReconcile("run")
	e.setJobStatus(e.jobList()[0].Name, completed(3, 2, "node-3"))
	e.kruise.PrependReactor("get", "nodeimages", func(clientgotesting.Action) (bool, runtime.Object, error) {
		return true, nil, apierrors.NewNotFound(kruisev1alpha1.Resource("nodeimages"), "node-3")
	})
	// Every try of the reconcile's write is refused (the generated reconciler
	// retries a conflict a few times, reading the run again).
	refuse := true
	e.tekton.PrependReactor("update", "customruns", func(a clientgotesting.Action) (bool, runtime.Object, error) {
		if a.GetSubresource() == "status" && refuse {
			return true, nil, apierrors.NewConflict(v1beta1.Resource("customruns"), "run", nil)
		}
		return false, nil, nil
	})
	before := e.get("run")
	if _, err := e.reconcile("run"); err == nil {
		t.Fatal("the ending status write met no conflict")
	}
	if after := e.get("run"); after.IsDone() {
		t.Fatal("the run is done though its write was refused")
	}
	got := sums(t, reader)
	for k, v := range got {
		if v != 0 && k != "imageprepull_runs_in_flight" && k != "imageprepull_imagepulljobs_active" {
			t.Errorf("%s = %d before the end landed", k, v)
		}
	}

	refuse = false
	done := e.mustReconcile("run")
	if !done.IsDone() {
		t.Fatalf("condition %+v", condition(done))
	}
	handler := e.r.ends.eventHandler()
	handler.OnUpdate(before, done)
	handler.OnUpdate(done, done) // the same write seen again (a resync)
	got = sums(t, reader)
	if n := got["imageprepull_runs_finished reason=ThresholdNotMet"]; n != 1 {
		t.Errorf("runs finished %v, want one ThresholdNotMet", got)
	}
	if n := got["imageprepull_run_duration reason=ThresholdNotMet"]; n != 1 {
		t.Errorf("run duration observations %v, want one", got)
	}
	if n := got["imageprepull_failed_nodes class=other"]; n != 1 {
		t.Errorf("failed nodes %v, want node-3 as other (its NodeImage unread: the job's message)", got)
	}
}

// A started controller exports every reason's and every class's counter at
// zero: Prometheus's increase() counts from a series' second sample, so a
// series born at 1 would hide the first run of its reason on a dashboard.
func TestCountersStartAtZero(t *testing.T) {
	reader := withMetrics(t)
	newEnv(t)
	got := sums(t, reader)
	for _, d := range v1alpha1.ReasonDocs {
		if v, ok := got["imageprepull_runs_finished reason="+d.Name]; !ok || v != 0 {
			t.Errorf("runs finished with %s: %d (exported: %v), want 0", d.Name, v, ok)
		}
	}
	for _, class := range failureClasses {
		if v, ok := got["imageprepull_failed_nodes class="+class]; !ok || v != 0 {
			t.Errorf("failed nodes of class %s: %d (exported: %v), want 0", class, v, ok)
		}
	}
}
