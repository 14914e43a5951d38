package imageprepull

import "fmt"

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
