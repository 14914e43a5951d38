package imageprepull

import (
	"strings"
	"testing"

	"github.com/imageprepull/imageprepull/pkg/apis/custom/v1alpha1"
)

// A run's results are the documented ones, in docs/results.md's order.
func TestResultsAreTheDocumentedOnes(t *testing.T) {
	var got []string
	for _, r := range summarize(nil).results() {
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
