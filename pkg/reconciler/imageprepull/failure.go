package imageprepull

import (
	"fmt"
	"unicode/utf8"

	"github.com/imageprepull/imageprepull/pkg/apis/custom/v1alpha1"
)

// failure ends the run with a reason, where any other error only retries the
// reconcile: bad input and refusals are failures, a lost connection is not.
// It is the one way a step says "this run fails": what an answer from
// Kubernetes or OpenKruise means for a run is decided here, in the
// reconciler, not in the clients.
type failure struct {
	reason  v1alpha1.Reason
	message string
}

func (f *failure) Error() string { return f.reason.String() + ": " + f.message }

func failed(reason v1alpha1.Reason, format string, args ...any) error {
	return &failure{reason: reason, message: fmt.Sprintf(format, args...)}
}

// maxMessage bounds a failed run's message. The API package shortens the
// values it repeats; what else may repeat user input (the JSON decoder's
// errors name the unknown fields of an embedded spec, say) is bounded here,
// so that the status always fits in what the API server stores. The start
// and the end are kept: a field error names its field at the end.
const maxMessage = 4096

func bounded(msg string) string {
	if len(msg) <= maxMessage {
		return msg
	}
	// 64 bytes are left for the marker between them.
	head, tail := maxMessage*3/4-64, maxMessage/4
	for head > 0 && !utf8.RuneStart(msg[head]) {
		head--
	}
	from := len(msg) - tail
	for from < len(msg) && !utf8.RuneStart(msg[from]) {
		from++
	}
	return fmt.Sprintf("%s… (%d bytes cut) …%s", msg[:head], from-head, msg[from:])
}
