package imageprepull

import (
	"context"
	"fmt"
	"time"

	authorizationv1 "k8s.io/api/authorization/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/cache"
	"k8s.io/client-go/kubernetes"

	"github.com/imageprepull/imageprepull/pkg/apis/custom"
	"github.com/imageprepull/imageprepull/pkg/apis/custom/v1alpha1"
	"github.com/imageprepull/imageprepull/pkg/config"
)

// How long a decision about a ServiceAccount is kept: a revoked binding takes
// effect within allowedFor, a new one within deniedFor.
const (
	allowedFor = 30 * time.Second
	deniedFor  = 5 * time.Second
)

// RunnerRole is the ClusterRole in config/ that a namespace binds to the
// ServiceAccounts whose runs may pre-pull.
const RunnerRole = "imageprepull-runner"

// The permission a run's ServiceAccount must hold for its runs to pre-pull:
// create on prepulls.custom.kruise.dev, a resource no API server serves,
// which exists only to be asked about (as cert-manager asks for approve on
// its signers). It grants nothing else. Asking instead whether the
// ServiceAccount may create ImagePullJobs, as this controller once did,
// made the runner role hand that very power to every pod that runs as the
// ServiceAccount, and so to every Task step of its pipelines: an
// ImagePullJob made directly goes around allowed-images, the node limits
// and the pull-Secret checks.
const (
	RunnerVerb     = "create"
	RunnerGroup    = custom.GroupName
	RunnerResource = "prepulls"
)

// authorizer asks the API server whether a run's ServiceAccount may have the
// controller pre-pull for it: without this, anyone who may create a
// CustomRun (Tekton grants it to every namespace editor) could make every
// node pull any image with any pull Secret of the namespace, through the
// controller's own permissions. It only asks; the platform's own checks are
// admit's.
type authorizer struct {
	kube      kubernetes.Interface
	decisions *cache.LRUExpireCache
}

func newAuthorizer(kube kubernetes.Interface, clock cache.Clock) *authorizer {
	return &authorizer{kube: kube, decisions: cache.NewLRUExpireCacheWithClock(4096, clock)}
}

// access is one thing a run's ServiceAccount must be allowed.
type access struct {
	namespace, serviceAccount, verb, group, resource, name string
}

// authorize asks whether the run's ServiceAccount may have the controller
// pre-pull for it in the run's namespace (RunnerVerb on RunnerResource),
// get each of its pull Secrets, and get its workload (if any). A refusal is a failure naming
// what is missing; an API error is returned to be retried, never taken for
// a refusal.
func (a *authorizer) authorize(ctx context.Context, policy *config.Policy, namespace, sa string, pullSecrets []string, workload string) error {
	if !policy.Authorize {
		return nil
	}
	wants := []access{{namespace, sa, RunnerVerb, RunnerGroup, RunnerResource, ""}}
	for _, s := range pullSecrets {
		wants = append(wants, access{namespace, sa, "get", "", "secrets", s})
	}
	if ref, fe := v1alpha1.ParseWorkload(workload); workload != "" && fe == nil {
		// The controller reads the workload for the run: the run's
		// ServiceAccount must be allowed to read it itself.
		wants = append(wants, access{namespace, sa, "get", ref.Group, ref.Resource, ref.Name})
	}
	for _, w := range wants {
		allowed, err := a.allowed(ctx, w)
		if err != nil {
			return err
		}
		if !allowed {
			return failed(v1alpha1.ReasonNotAuthorized, "%s", w.refusal())
		}
	}
	return nil
}

func (a *authorizer) allowed(ctx context.Context, w access) (bool, error) {
	if d, ok := a.decisions.Get(w); ok {
		return d.(bool), nil
	}
	review, err := a.kube.AuthorizationV1().SubjectAccessReviews().Create(ctx, &authorizationv1.SubjectAccessReview{
		Spec: authorizationv1.SubjectAccessReviewSpec{
			// As the API server sees the ServiceAccount (k8s.io/apiserver's
			// serviceaccount.MakeUsername and MakeGroupNames): its groups
			// too, or bindings to them would be missed.
			User:   "system:serviceaccount:" + w.namespace + ":" + w.serviceAccount,
			Groups: []string{"system:serviceaccounts", "system:serviceaccounts:" + w.namespace, "system:authenticated"},
			ResourceAttributes: &authorizationv1.ResourceAttributes{
				Namespace: w.namespace, Verb: w.verb, Group: w.group, Resource: w.resource, Name: w.name,
			},
		},
	}, metav1.CreateOptions{})
	if err != nil {
		return false, fmt.Errorf("asking whether ServiceAccount %s/%s may %s %s: %w", w.namespace, w.serviceAccount, w.verb, w.resource, err)
	}
	ttl := deniedFor
	if review.Status.Allowed {
		ttl = allowedFor
	}
	a.decisions.Add(w, review.Status.Allowed, ttl)
	return review.Status.Allowed, nil
}

// refusal says what is missing and how to grant it.
func (w access) refusal() string {
	subject := fmt.Sprintf("ServiceAccount %s/%s", w.namespace, w.serviceAccount)
	if w.resource == "secrets" {
		// One Role a ServiceAccount and Secret: the command works again for
		// the ServiceAccount's next Secret, where a shared name would exist.
		grant := w.serviceAccount + "-secret-" + w.name
		return fmt.Sprintf("%s may not get Secret %q (named in pullSecrets) in namespace %s: let it read the Secret: "+
			"kubectl -n %s create role %s --verb=get --resource=secrets --resource-name=%s && "+
			"kubectl -n %s create rolebinding %s --role=%s --serviceaccount=%s:%s",
			subject, w.name, w.namespace, w.namespace, grant, w.name, w.namespace, grant, grant, w.namespace, w.serviceAccount)
	}
	if w.verb == "get" {
		return fmt.Sprintf("%s may not get %s.%s %q (the run's workload) in namespace %s: let it read the workload: "+
			"kubectl -n %s create role %s-workload-read --verb=get --resource=%s.%s --resource-name=%s && "+
			"kubectl -n %s create rolebinding %s-workload-read --role=%s-workload-read --serviceaccount=%s:%s",
			subject, w.resource, w.group, w.name, w.namespace, w.namespace, w.serviceAccount, w.resource, w.group, w.name,
			w.namespace, w.serviceAccount, w.serviceAccount, w.namespace, w.serviceAccount)
	}
	return fmt.Sprintf("%s may not pre-pull in namespace %s (%s %s.%s): bind the ClusterRole %s to it: "+
		"kubectl -n %s create rolebinding %s --clusterrole=%s --serviceaccount=%s:%s",
		subject, w.namespace, RunnerVerb, RunnerResource, RunnerGroup, RunnerRole, w.namespace, RunnerRole, RunnerRole, w.namespace, w.serviceAccount)
}
