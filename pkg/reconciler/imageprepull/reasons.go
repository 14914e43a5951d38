package imageprepull

// Reasons of the CustomRun's Succeeded condition and of the Events on it,
// besides Tekton's own (Started, Running, Succeeded, CustomRunCancelled,
// CustomRunTimedOut) and kruise.Reason*. The docs list them all.
const (
	// ReasonInvalidParams: a param is unknown, of the wrong type, or has a bad value.
	ReasonInvalidParams = "InvalidParams"
	// ReasonInvalidSpec: the ImagePrePull or embedded taskSpec has a bad field.
	ReasonInvalidSpec = "InvalidSpec"
	// ReasonNotFound: the ImagePrePull named by taskRef does not exist.
	ReasonNotFound = "ImagePrePullNotFound"
	// ReasonNoNodes: no node matched the selector.
	ReasonNoNodes = "NoNodesMatched"
	// ReasonThresholdNotMet: fewer nodes than successThreshold got every image.
	ReasonThresholdNotMet = "ThresholdNotMet"
	// ReasonJobDeleted: an ImagePullJob of a running run was deleted by someone else.
	ReasonJobDeleted = "ImagePullJobDeleted"
	// ReasonJobConflict: an ImagePullJob with our name belongs to something else.
	ReasonJobConflict = "ImagePullJobConflict"
	// ReasonNotAuthorized: the run's ServiceAccount may not create ImagePullJobs
	// in its namespace, or not read a pull Secret it names.
	ReasonNotAuthorized = "ServiceAccountNotAuthorized"
	// ReasonImageNotAllowed: the platform's policy does not allow the image.
	ReasonImageNotAllowed = "ImageNotAllowed"
)
