package kruise

import (
	"fmt"
	"strings"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
)

// Refusal is an answer from the API server or Kruise's webhook that trying
// again will not change: the run fails with Reason and Message.
type Refusal struct {
	Reason  string
	Message string
}

func (r *Refusal) Error() string { return r.Message }

// Reasons a Refusal carries.
const (
	ReasonNotInstalled = "KruiseNotInstalled"
	// ReasonVersionUnsupported: ImagePullJobs are served, but not in v1alpha1.
	ReasonVersionUnsupported = "KruiseVersionUnsupported"
	ReasonGateDisabled       = "KruiseFeatureGateDisabled"
	ReasonForbidden          = "ImagePullJobForbidden"
	ReasonRejected           = "ImagePullJobRejected"
)

// ClassifyCreateError turns an error from creating an ImagePullJob into a
// *Refusal when retrying cannot help, and returns it unchanged otherwise (an
// unreachable webhook, a timeout, a conflict: all worth another try). A
// NotFound (ImagePullJobs not served) is Served's to explain.
func ClassifyCreateError(err error) error {
	msg := err.Error()
	switch {
	case apierrors.IsForbidden(err) && strings.Contains(msg, "feature-gate"):
		// Kruise's validating webhook answers 403 "feature-gate X is not enabled".
		return &Refusal{Reason: ReasonGateDisabled, Message: fmt.Sprintf(
			"OpenKruise refused the ImagePullJob (%s): start kruise-manager with --feature-gates=ImagePullJobGate=true "+
				"(Helm: --set featureGates=ImagePullJobGate=true)", msg)}
	case apierrors.IsForbidden(err):
		return &Refusal{Reason: ReasonForbidden, Message: fmt.Sprintf(
			"the controller may not create ImagePullJobs here (%s): apply the ClusterRole in config/ again", msg)}
	case apierrors.IsBadRequest(err) || apierrors.IsInvalid(err):
		return &Refusal{Reason: ReasonRejected, Message: "OpenKruise rejected the ImagePullJob: " + msg}
	}
	return err
}
