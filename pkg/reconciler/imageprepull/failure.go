package imageprepull

import (
	"errors"
	"fmt"
	"unicode/utf8"

	apierrors "k8s.io/apimachinery/pkg/api/errors"

	"github.com/imageprepull/imageprepull/pkg/apis/custom/v1alpha1"
	"github.com/imageprepull/imageprepull/pkg/kruise"
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

// notServed explains a NotFound from creating an ImagePullJob: the resource
// is gone since the informer started.
func (r *Reconciler) notServed() error {
	err := kruise.Served(r.kruise)
	if err == nil {
		return errors.New("creating an ImagePullJob: the API server answered NotFound, though it serves them")
	}
	return notServedFailure(err)
}

// notServedFailure fails the run when ImagePullJobs are not served in
// v1alpha1 (not installed, or served in other versions only); other errors
// pass, to be retried.
func notServedFailure(err error) error {
	switch {
	case errors.Is(err, kruise.ErrNotInstalled):
		return failed(v1alpha1.ReasonKruiseNotInstalled, "%s", err.Error())
	case errors.As(err, new(*kruise.UnsupportedVersionError)):
		return failed(v1alpha1.ReasonKruiseVersionUnsupported, "%s", err.Error())
	}
	return err
}

// refusedCreate fails the run for an answer to creating its job that
// another try will not change, with what to do about it; other errors (an
// unreachable webhook, a timeout, a conflict) pass, to be retried. A
// NotFound (ImagePullJobs not served) is notServed's to explain.
func refusedCreate(err error) error {
	msg := err.Error()
	switch {
	case kruise.IsFeatureGateRefusal(err):
		return failed(v1alpha1.ReasonKruiseFeatureGateDisabled, "OpenKruise refused the ImagePullJob (%s): start kruise-manager "+
			"with --feature-gates=ImagePullJobGate=true (Helm: --set featureGates=ImagePullJobGate=true)", msg)
	case apierrors.IsForbidden(err):
		return failed(v1alpha1.ReasonImagePullJobForbidden, "the controller may not create ImagePullJobs here (%s): "+
			"apply the ClusterRole in config/ again", msg)
	case apierrors.IsBadRequest(err) || apierrors.IsInvalid(err):
		return failed(v1alpha1.ReasonImagePullJobRejected, "OpenKruise rejected the ImagePullJob: %s", msg)
	}
	return err
}
