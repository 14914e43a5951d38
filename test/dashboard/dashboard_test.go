package dashboard

import (
	"bytes"
	"encoding/xml"
	"io"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/common/model"

	"github.com/imageprepull/imageprepull/pkg/reconciler/imageprepull"
)

// Every query of the shipped dashboard needs no variable but the interval,
// and every metric it reads is one the controller exports.
func TestShippedDashboardQueries(t *testing.T) {
	// What a scrape has: each documented name, and a histogram's series.
	exported := map[string]bool{}
	for _, m := range imageprepull.MetricDocs {
		exported[m.Name] = true
		if m.Type == "histogram" {
			for _, suffix := range []string{"_bucket", "_sum", "_count"} {
				exported[m.Name+suffix] = true
			}
		}
	}
	d, err := Load(filepath.Join("..", "..", Path))
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range d.Panels {
		if len(p.Targets) == 0 {
			t.Errorf("panel %q has no query", p.Title)
		}
		for _, target := range p.Targets {
			q, err := target.Query(15 * time.Second)
			if err != nil {
				t.Error(err)
				continue
			}
			names := metricRE.FindAllString(q, -1)
			if len(names) == 0 {
				t.Errorf("panel %q: %s reads none of the controller's metrics", p.Title, q)
			}
			for _, name := range names {
				if !exported[name] {
					t.Errorf("panel %q: %s reads %s, which the controller does not export (imageprepull.MetricDocs)", p.Title, q, name)
				}
			}
		}
	}
}

var metricRE = regexp.MustCompile(`imageprepull_[a-z_]+`)

func TestQueryRefusesAnUndefinedVariable(t *testing.T) {
	_, err := Target{RefID: "A", Expr: `sum(imageprepull_runs_in_flight{cluster="$cluster"})`}.Query(time.Minute)
	if err == nil || !strings.Contains(err.Error(), "$cluster") {
		t.Errorf("err = %v, want one naming $cluster", err)
	}
}

func TestLegendUsesTheSeriesLabels(t *testing.T) {
	m := model.Metric{"reason": "Succeeded", "otel_scope_name": "x"}
	if got := legend(Target{LegendFormat: "{{reason}}"}, m); got != "Succeeded" {
		t.Errorf("legend = %q", got)
	}
	if got := legend(Target{LegendFormat: "run p50"}, m); got != "run p50" {
		t.Errorf("legend = %q", got)
	}
}

// The drawing is well-formed SVG with the panel's title, each legend and
// the caption, for lines and for stacked bars.
func TestSVGIsWellFormed(t *testing.T) {
	t0 := time.Date(2026, 11, 26, 12, 0, 0, 0, time.UTC)
	points := func(vs ...float64) []model.SamplePair {
		var out []model.SamplePair
		for i, v := range vs {
			out = append(out, model.SamplePair{Timestamp: model.TimeFromUnixNano(t0.Add(time.Duration(i) * time.Second).UnixNano()), Value: model.SampleValue(v)})
		}
		return out
	}
	for _, style := range []string{"", "bars"} {
		r := Result{Start: t0, End: t0.Add(3 * time.Second),
			Series: []Series{{Legend: "Succeeded", Points: points(0, 2, 1, 0)}, {Legend: "ThresholdNotMet <&>", Points: points(1, 0, 1, 3)}}}
		r.Panel.Title = "Runs finished, by reason"
		r.Panel.FieldConfig.Defaults.Custom.DrawStyle = style
		svg := SVG(r, "not a Grafana screenshot")
		dec := xml.NewDecoder(bytes.NewReader(svg))
		for {
			if _, err := dec.Token(); err == io.EOF {
				break
			} else if err != nil {
				t.Fatalf("%s: %v\n%s", style, err, svg)
			}
		}
		for _, want := range []string{"Runs finished, by reason", "Succeeded", "ThresholdNotMet &lt;&amp;&gt;", "not a Grafana screenshot"} {
			if !bytes.Contains(svg, []byte(want)) {
				t.Errorf("%s: the drawing lacks %q", style, want)
			}
		}
	}
}
