package kruise

import (
	"strings"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
)

// IsFeatureGateRefusal says whether err is OpenKruise's validating webhook
// refusing an object because its feature gate is off: it answers 403
// "feature-gate ImagePullJobGate is not enabled" (pkg/webhook in Kruise).
func IsFeatureGateRefusal(err error) bool {
	return apierrors.IsForbidden(err) && strings.Contains(err.Error(), "feature-gate")
}
