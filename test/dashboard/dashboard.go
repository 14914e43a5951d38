// Package dashboard reads the Grafana dashboard docs/dashboard ships and
// evaluates its queries with a real Prometheus: the e2e suite checks that
// every query has data after known runs, and the bench draws each panel from
// the results (SVG, for docs/metrics.md: not a Grafana screenshot).
package dashboard

import (
	"context"
	"encoding/json"
	"fmt"
	"math"
	"os"
	"regexp"
	"sort"
	"strings"
	"time"

	"github.com/prometheus/client_golang/api"
	promv1 "github.com/prometheus/client_golang/api/prometheus/v1"
	"github.com/prometheus/common/model"
)

// Path is the dashboard's file, from the repository's root.
const Path = "docs/dashboard/imageprepull.json"

// Dashboard is the part of Grafana's dashboard model this package reads.
type Dashboard struct {
	Title  string  `json:"title"`
	Panels []Panel `json:"panels"`
}

// Panel is one panel of the dashboard.
type Panel struct {
	ID          int    `json:"id"`
	Type        string `json:"type"`
	Title       string `json:"title"`
	FieldConfig struct {
		Defaults struct {
			Unit   string `json:"unit"`
			Custom struct {
				DrawStyle string `json:"drawStyle"`
			} `json:"custom"`
		} `json:"defaults"`
	} `json:"fieldConfig"`
	Targets []Target `json:"targets"`
}

// Target is one query of a panel.
type Target struct {
	RefID        string `json:"refId"`
	Expr         string `json:"expr"`
	LegendFormat string `json:"legendFormat"`
}

// Load reads a dashboard file.
func Load(path string) (*Dashboard, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	var d Dashboard
	if err := json.Unmarshal(b, &d); err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	if len(d.Panels) == 0 {
		return nil, fmt.Errorf("%s: no panels", path)
	}
	return &d, nil
}

var variableRE = regexp.MustCompile(`\$\{?\w+\}?`)

// Query is the target's expression as Grafana sends it to Prometheus, with
// its interval variables set to rateInterval. Any other variable is an
// error: the dashboard needs none but its data source.
func (t Target) Query(rateInterval time.Duration) (string, error) {
	q := t.Expr
	for _, v := range []string{"$__rate_interval", "$__interval", "${__rate_interval}", "${__interval}"} {
		q = strings.ReplaceAll(q, v, model.Duration(rateInterval).String())
	}
	if v := variableRE.FindString(q); v != "" {
		return "", fmt.Errorf("query %s uses %s, which the dashboard does not define", t.RefID, v)
	}
	return q, nil
}

// Series is one line of a panel: its legend and its points.
type Series struct {
	Legend string
	Points []model.SamplePair
}

// Result is a panel's queries evaluated over a time range.
type Result struct {
	Panel      Panel
	Start, End time.Time
	Step       time.Duration
	Series     []Series
	// Empty lists the targets (refId: expression) that returned no data,
	// or zeros only: after known runs, either is a broken query.
	Empty []string
}

// Evaluate runs every query of every panel over [start, end] as Grafana's
// range queries do, each step a point.
func Evaluate(ctx context.Context, prometheusURL string, d *Dashboard, start, end time.Time, step, rateInterval time.Duration) ([]Result, error) {
	client, err := api.NewClient(api.Config{Address: prometheusURL})
	if err != nil {
		return nil, err
	}
	prom := promv1.NewAPI(client)
	var out []Result
	for _, p := range d.Panels {
		r := Result{Panel: p, Start: start, End: end, Step: step}
		for _, t := range p.Targets {
			q, err := t.Query(rateInterval)
			if err != nil {
				return nil, fmt.Errorf("panel %q: %w", p.Title, err)
			}
			v, _, err := prom.QueryRange(ctx, q, promv1.Range{Start: start, End: end, Step: step})
			if err != nil {
				return nil, fmt.Errorf("panel %q, query %s (%s): %w", p.Title, t.RefID, q, err)
			}
			matrix, _ := v.(model.Matrix)
			nonZero := false
			for _, s := range matrix {
				points := finite(s.Values)
				if len(points) == 0 {
					continue
				}
				for _, p := range points {
					nonZero = nonZero || p.Value != 0
				}
				r.Series = append(r.Series, Series{Legend: legend(t, s.Metric), Points: points})
			}
			if !nonZero {
				r.Empty = append(r.Empty, t.RefID+": "+q)
			}
		}
		sort.SliceStable(r.Series, func(i, j int) bool { return r.Series[i].Legend < r.Series[j].Legend })
		out = append(out, r)
	}
	return out, nil
}

// finite drops the NaN points histogram_quantile gives where no run ended.
func finite(points []model.SamplePair) []model.SamplePair {
	var out []model.SamplePair
	for _, p := range points {
		if v := float64(p.Value); !math.IsNaN(v) && !math.IsInf(v, 0) {
			out = append(out, p)
		}
	}
	return out
}

var legendRE = regexp.MustCompile(`\{\{\s*(\w+)\s*\}\}`)

// legend renders a legendFormat as Grafana does: {{label}} is the series'
// label value; no format, the series' labels.
func legend(t Target, m model.Metric) string {
	if t.LegendFormat == "" {
		return m.String()
	}
	return legendRE.ReplaceAllStringFunc(t.LegendFormat, func(s string) string {
		return string(m[model.LabelName(legendRE.FindStringSubmatch(s)[1])])
	})
}
