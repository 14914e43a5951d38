package imageprepull

import (
	"strings"
	"testing"

	"github.com/tektoncd/pipeline/pkg/apis/pipeline/v1beta1"

	"github.com/imageprepull/imageprepull/pkg/apis/custom/v1alpha1"
)

// A megabyte of bad input must not make a megabyte of status: the API server
// would refuse the write, and the run would never end.
func TestHugeBadInputGetsASmallMessage(t *testing.T) {
	mib := strings.Repeat("x", 1<<20)
	for _, tc := range []struct {
		name   string
		run    *v1beta1.CustomRun
		reason v1alpha1.Reason
		want   []string
	}{
		{"a megabyte-long image", newRun("r", str("image", "Registry/"+mib)), v1alpha1.ReasonInvalidParams,
			[]string{"params.image", "not an image reference", "bytes in all"}},
		{"a megabyte-long node selector", newRun("r", str("image", app), str("nodeSelector", "zone in ("+mib)), v1alpha1.ReasonInvalidParams,
			[]string{"params.nodeSelector", "not a label selector"}},
		{"an embedded spec with a megabyte-long unknown field", newRun("r", embedded(`{"images":["a:1"],"`+mib+`":1}`)),
			v1alpha1.ReasonInvalidSpec, []string{"taskSpec.spec", "unknown field", "bytes cut"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			e := newEnv(t)
			e.create(tc.run)
			run := e.failsAtOnce("r", tc.reason, tc.want...)
			if n := len(condition(run).Message); n > maxMessage {
				t.Errorf("the message is %d bytes long", n)
			}
		})
	}
}
