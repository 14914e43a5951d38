package imageprepull

import (
	"fmt"
	"unicode/utf8"
)

// failure ends the run with a reason, where any other error only retries the
// reconcile: bad input and refusals are failures, a lost connection is not.
type failure struct {
	reason  string
	message string
}

func (f *failure) Error() string { return f.reason + ": " + f.message }

func failed(reason, format string, args ...any) error {
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
