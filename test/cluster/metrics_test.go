package cluster

import "testing"

func TestMetricsSum(t *testing.T) {
	m, err := ParseMetrics(`# HELP runs_total Runs.
# TYPE runs_total counter
runs_total{reason="Succeeded",pod="a"} 3
runs_total{reason="Failed",pod="a"} 2
runs_total{reason="Succeeded",pod="b"} 4
# HELP duration_seconds Durations.
# TYPE duration_seconds histogram
duration_seconds_bucket{reason="Succeeded",le="1"} 1
duration_seconds_bucket{reason="Succeeded",le="+Inf"} 5
duration_seconds_sum{reason="Succeeded"} 9.5
duration_seconds_count{reason="Succeeded"} 5
# HELP in_flight Runs going.
# TYPE in_flight gauge
in_flight 7
`)
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		name  string
		match map[string]string
		want  float64
	}{
		{"runs_total", nil, 9},
		{"runs_total", map[string]string{"reason": "Succeeded"}, 7},
		{"runs_total", map[string]string{"reason": "Succeeded", "pod": "b"}, 4},
		{"runs_total", map[string]string{"reason": "TimedOut"}, 0},
		{"runs_total", map[string]string{"zone": "a"}, 0},
		{"duration_seconds", nil, 5},
		{"in_flight", nil, 7},
		{"absent", nil, 0},
	} {
		if got := m.Sum(c.name, c.match); got != c.want {
			t.Errorf("Sum(%s, %v) = %v, want %v", c.name, c.match, got, c.want)
		}
	}
	if _, err := ParseMetrics("runs_total{reason=\"x\" 3\n"); err == nil {
		t.Error("a malformed line parsed")
	}
}
