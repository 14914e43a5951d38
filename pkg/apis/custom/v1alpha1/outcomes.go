package v1alpha1

import (
	pipelinev1beta1 "github.com/tektoncd/pipeline/pkg/apis/pipeline/v1beta1"
)

// This file is what an ImagePrePull CustomRun shows when it ends: the
// reasons of its Succeeded condition, its results and its Events, each
// documented beside it. The tables of docs/ are made from the docs below
// (go run ./hack/readme), and the reconciler tests check that every reason
// a run ends with is one of them.

// Reason is why a run ended, besides Tekton's own CustomRunReasons
// (Succeeded, CustomRunCancelled, CustomRunTimedOut), which runs end with
// too. It is the reason of the Succeeded condition and of the Event that
// tells the end.
type Reason string

func (r Reason) String() string { return string(r) }

// Reasons a run ends with. ReasonDocs says what each means to a user.
const (
	ReasonThresholdNotMet           Reason = "ThresholdNotMet"
	ReasonNoNodes                   Reason = "NoNodesMatched"
	ReasonInvalidParams             Reason = "InvalidParams"
	ReasonInvalidSpec               Reason = "InvalidSpec"
	ReasonNotFound                  Reason = "ImagePrePullNotFound"
	ReasonWorkloadNotFound          Reason = "WorkloadNotFound"
	ReasonNotAuthorized             Reason = "ServiceAccountNotAuthorized"
	ReasonImageNotAllowed           Reason = "ImageNotAllowed"
	ReasonKruiseNotInstalled        Reason = "KruiseNotInstalled"
	ReasonKruiseVersionUnsupported  Reason = "KruiseVersionUnsupported"
	ReasonKruiseFeatureGateDisabled Reason = "KruiseFeatureGateDisabled"
	ReasonImagePullJobForbidden     Reason = "ImagePullJobForbidden"
	ReasonImagePullJobRejected      Reason = "ImagePullJobRejected"
	ReasonImagePullJobDeleted       Reason = "ImagePullJobDeleted"
	ReasonImagePullJobConflict      Reason = "ImagePullJobConflict"
	ReasonLimitExceeded             Reason = "LimitExceeded"
	ReasonInvalidRunState           Reason = "InvalidRunState"
	ReasonRegistryUnreadable        Reason = "RegistryUnreadable"
)

// Doc documents one name a run shows: a reason, a result or an event.
// +k8s:deepcopy-gen=false
type Doc struct {
	Name, Meaning string
}

// ReasonDocs documents every reason a run can end with, Tekton's included,
// in docs/results.md's order.
var ReasonDocs = []Doc{
	{pipelinev1beta1.CustomRunReasonSuccessful.String(), "every job completed and successThreshold is met, or wait is false and the jobs exist"},
	{ReasonThresholdNotMet.String(), "too few nodes got every image; the message names the failed nodes and kruise-daemon's reason, or, for an image given with a digest, the image a node has instead (the tag named another image when it pulled) or that its pull could no longer be checked, and, when a registry refused a pull, what to check in pullSecrets"},
	{ReasonNoNodes.String(), "the selector matched no node, or the workload has no node by the rule asked for (the message counts what each rule left out)"},
	{pipelinev1beta1.CustomRunReasonCancelled.String(), "the run, or its PipelineRun, was cancelled or the PipelineRun timed out; the jobs are deleted"},
	{pipelinev1beta1.CustomRunReasonTimedOut.String(), "the run's own timeout passed; the message says where the pulls stood and, for the first few nodes not done, whether each was queued behind other pulls (kruise-daemon v1.9), pulling or not reported; the jobs are deleted"},
	{ReasonInvalidParams.String(), "a param is unknown, of the wrong type, or has a bad value; the message names it"},
	{ReasonInvalidSpec.String(), "the ImagePrePull or the embedded taskSpec has a bad field; the message names it"},
	{ReasonNotFound.String(), "the ImagePrePull named by taskRef does not exist in the run's namespace"},
	{ReasonWorkloadNotFound.String(), "the workload does not exist in the run's namespace, or its kind is not served (OpenKruise's kinds without OpenKruise)"},
	{ReasonNotAuthorized.String(), "the run's ServiceAccount may not pre-pull in its namespace (create prepulls.custom.kruise.dev, which the ClusterRole imageprepull-runner grants), or not get a Secret in pullSecrets or its workload, at the run's start or before a retry's jobs; the message says what to bind; nothing more is created"},
	{ReasonImageNotAllowed.String(), "the platform's policy (config-imageprepull allowed-images) does not allow an image; the message names it and the patterns"},
	{ReasonLimitExceeded.String(), "the run asks for more than the platform's limits allow (config-imageprepull max-nodes-per-run, max-retries, max-parallelism, allow-all-nodes); the message names the limit and what the run asked; nodes are counted before any job (named, a workload's, a selector's from the Node list), and once more as OpenKruise counts them (nodes that joined since: the run ends and its jobs are deleted)"},
	{ReasonKruiseNotInstalled.String(), "the API server does not serve ImagePullJobs: install OpenKruise"},
	{ReasonKruiseVersionUnsupported.String(), "the API server serves ImagePullJobs, but not in apps.kruise.io/v1alpha1 (a future OpenKruise); the message names the versions it serves"},
	{ReasonKruiseFeatureGateDisabled.String(), "OpenKruise's webhook refuses ImagePullJobs: enable the ImagePullJobGate feature gate"},
	{ReasonImagePullJobForbidden.String(), "RBAC forbids the controller to create ImagePullJobs: apply config/ again"},
	{ReasonImagePullJobRejected.String(), "OpenKruise's webhook rejected the ImagePullJob; the message says why"},
	{ReasonImagePullJobDeleted.String(), "a job of a running run was deleted by someone else (the run fails, the job is not made again)"},
	{ReasonImagePullJobConflict.String(), "a job under the name the run gives its job of an image exists and is not exactly what the run makes (another image, other nodes, pull Secrets, owner...); the message says what differs; the job is left as it is"},
	{ReasonRegistryUnreadable.String(), "an image was given with a digest, and the controller could not read from its registry what that digest is on the nodes' platforms, to check each node; the message names the registry and the error, and says which pull Secret to name"},
	{ReasonInvalidRunState.String(), "the run's status.extraFields, where the controller keeps what the run was authorized for, does not decode or lacks what it must hold (written by someone else): the run ends; start a new one"},
}

// IsDocumentedReason says whether reason is one a run may end with, or
// Tekton's Started or Running while it runs.
func IsDocumentedReason(reason string) bool {
	if reason == pipelinev1beta1.CustomRunReasonStarted.String() || reason == pipelinev1beta1.CustomRunReasonRunning.String() {
		return true
	}
	for _, d := range ReasonDocs {
		if d.Name == reason {
			return true
		}
	}
	return false
}

// Result names, declared by the custom task for later tasks.
const (
	ResultDesired       = "desired"
	ResultSucceeded     = "succeeded"
	ResultFailed        = "failed"
	ResultFailedNodes   = "failedNodes"
	ResultImagePullJobs = "imagePullJobs"
	ResultDigests       = "digests"
	ResultImageIDs      = "imageIDs"
)

// ResultDoc documents a result and how a later task uses it.
// +k8s:deepcopy-gen=false
type ResultDoc struct {
	Doc
	// Use says what the string a later task receives holds and where it
	// fits: every result reaches params, when expressions and pipeline
	// results as a string, whatever its value.
	Use string
}

// ResultDocs documents every result, in the order a run lists them.
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
	{Doc{ResultDigests, "one entry an image, in the order of the run's images: repository@sha256:... for an image given with a digest (each node was checked to have exactly that image), empty for one without"},
		`what a later task deploys: a Deployment's image, pinned to what the nodes have`},
	{Doc{ResultImageIDs, "one entry an image, in that order: the image ID (the digest of the image's config, as the container runtime reports it) that every node that pulled the image reports, empty where they differ or none reports one"},
		`which image the nodes hold under the tag, without a digest given: compare it between runs; it is no manifest digest to deploy by`},
}

// EventDocs documents the Events on the CustomRun: one when it ends, and
// one when it is edited after its start.
var EventDocs = []Doc{
	{"Warning EditIgnored", "the run's params, serviceAccountName, retries, taskSpec or named ImagePrePull changed after it started: it keeps what it was authorized for at its start (told once per edit)"},
	{"Normal " + pipelinev1beta1.CustomRunReasonSuccessful.String(), "the run succeeded; the message is the run's"},
	{"Warning <reason>", "the run failed, with the reason and message of its Succeeded condition"},
}
