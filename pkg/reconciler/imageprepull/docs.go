package imageprepull

import (
	"github.com/tektoncd/pipeline/pkg/apis/pipeline/v1beta1"

	"github.com/openkruise/imageprepull/pkg/kruise"
)

// Doc is one documented name: a reason, a result or an event.
type Doc struct {
	Name, Meaning string
}

// ResultDoc documents a result and how a later task uses it.
type ResultDoc struct {
	Doc
	// Use says what the string a later task receives holds and where it
	// fits: every result reaches params, when expressions and pipeline
	// results as a string, whatever its value.
	Use string
}

// ResultDocs documents every result; README's table is made from it.
var ResultDocs = []ResultDoc{
	{Doc{ResultDesired, "nodes matched (the largest count over the images' jobs)"},
		`a count ("3"): a param, or another ImagePrePull's successThreshold`},
	{Doc{ResultSucceeded, "nodes that have every image"}, `a count, as desired`},
	{Doc{ResultFailed, "nodes that failed at least one image"},
		`a count; "0" when none did: a when expression (operator: notin, values: ["0"])`},
	{Doc{ResultFailedNodes, "those nodes, sorted and comma-separated (node-3,node-9); empty when none failed"},
		`a list in one string: a param of a later or finally task, split on commas there`},
	{Doc{ResultImagePullJobs, "the ImagePullJobs of the last attempt, comma-separated"},
		`a list in one string, as failedNodes`},
}

// ReasonDocs documents every reason the Succeeded condition can end with.
var ReasonDocs = []Doc{
	{v1beta1.CustomRunReasonSuccessful.String(), "every job completed and successThreshold is met, or wait is false and the jobs exist"},
	{ReasonThresholdNotMet, "too few nodes got every image; the message names the failed nodes and kruise-daemon's reason"},
	{ReasonNoNodes, "the selector matched no node"},
	{v1beta1.CustomRunReasonCancelled.String(), "the run, or its PipelineRun, was cancelled or the PipelineRun timed out; the jobs are deleted"},
	{v1beta1.CustomRunReasonTimedOut.String(), "the run's own timeout passed; the message says where the pulls stood and, for the first few nodes not done, whether each was queued behind other pulls (kruise-daemon v1.9), pulling or not reported; the jobs are deleted"},
	{ReasonInvalidParams, "a param is unknown, of the wrong type, or has a bad value; the message names it"},
	{ReasonInvalidSpec, "the ImagePrePull or the embedded taskSpec has a bad field; the message names it"},
	{ReasonNotFound, "the ImagePrePull named by taskRef does not exist in the run's namespace"},
	{ReasonNotAuthorized, "the run's ServiceAccount may not create ImagePullJobs in its namespace, or not get a Secret in pullSecrets; the message says what to bind; nothing is created"},
	{ReasonImageNotAllowed, "the platform's policy (config-imageprepull allowed-images) does not allow an image; the message names it and the patterns"},
	{kruise.ReasonNotInstalled, "the API server does not serve ImagePullJobs: install OpenKruise"},
	{kruise.ReasonVersionUnsupported, "the API server serves ImagePullJobs, but not in apps.kruise.io/v1alpha1 (a future OpenKruise); the message names the versions it serves"},
	{kruise.ReasonGateDisabled, "OpenKruise's webhook refuses ImagePullJobs: enable the ImagePullJobGate feature gate"},
	{kruise.ReasonForbidden, "RBAC forbids the controller to create ImagePullJobs: apply config/ again"},
	{kruise.ReasonRejected, "OpenKruise's webhook rejected the ImagePullJob; the message says why"},
	{ReasonJobDeleted, "a job of a running run was deleted by someone else (the run fails, the job is not made again)"},
	{ReasonJobConflict, "a job with the run's deterministic name exists and belongs to something else"},
}

// EventDocs documents the Events on the CustomRun.
var EventDocs = []Doc{
	{"Normal " + v1beta1.CustomRunReasonSuccessful.String(), "the run succeeded; the message is the run's"},
	{"Warning <reason>", "the run failed, with the reason and message of its Succeeded condition"},
}
