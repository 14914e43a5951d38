package imageprepull

import (
	"strings"
	"testing"

	"k8s.io/apimachinery/pkg/util/intstr"

	"github.com/imageprepull/imageprepull/pkg/apis/custom/v1alpha1"
)

// A run's results are the documented ones, in docs/results.md's order.
func TestResultsAreTheDocumentedOnes(t *testing.T) {
	var got []string
	for _, r := range summarize(nil, nil, nil).results() {
		got = append(got, r.Name)
	}
	var want []string
	for _, d := range v1alpha1.ResultDocs {
		want = append(want, d.Name)
	}
	if strings.Join(got, ",") != strings.Join(want, ",") {
		t.Errorf("results %v, documented %v", got, want)
	}
}

func TestRequired(t *testing.T) {
	for _, tc := range []struct {
		t       intstr.IntOrString
		desired int32
		want    int32
	}{
		{intstr.FromString("100%"), 7, 7},
		{intstr.FromString("50%"), 7, 4},
		{intstr.FromString("1%"), 1000, 10},
		{intstr.FromString("1%"), 1, 1},
		{intstr.FromString("0%"), 9, 0},
		{intstr.FromInt32(2), 9, 2},
	} {
		got, err := required(tc.t, tc.desired)
		if err != nil || got != tc.want {
			t.Errorf("required(%s, %d) = %d, %v; want %d", tc.t.String(), tc.desired, got, err, tc.want)
		}
	}
}
