// Package config holds the platform's policy for pre-pulls: the ConfigMap
// config-imageprepull in the controller's namespace, read and watched as
// Tekton reads its own config maps (knative's configmap store), so that a
// change takes effect without a restart.
package config

import (
	"context"
	"errors"
	"fmt"
	"path"
	"slices"
	"strconv"
	"strings"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/utils/ptr"
	"knative.dev/pkg/configmap"

	"github.com/imageprepull/imageprepull/pkg/apis/custom/v1alpha1"
	"github.com/imageprepull/imageprepull/pkg/image"
)

// PolicyConfigName is the policy's ConfigMap, in the controller's namespace.
const PolicyConfigName = "config-imageprepull"

// The policy's keys.
const (
	// KeyAuthorize turns the run-identity check on ("true", the default) or
	// off ("false": for clusters that restrict who may create CustomRuns).
	KeyAuthorize = "authorize-service-accounts"
	// KeyAllowedImages lists repository patterns, one a line or
	// comma-separated. Absent, any image is allowed; present, it must hold
	// at least one pattern that can match.
	KeyAllowedImages = "allowed-images"
	// Limits on what one run may do.
	KeyMaxNodesPerRun = "max-nodes-per-run"
	KeyMaxRetries     = "max-retries"
	KeyAllowAllNodes  = "allow-all-nodes"
	KeyMaxParallelism = "max-parallelism"
	// Platform defaults, which an ImagePrePull's spec and params override.
	KeyParallelism        = "default-parallelism"
	KeyPullTimeoutSeconds = "default-pull-timeout-seconds"
	KeyBackoffLimit       = "default-backoff-limit"
)

// Policy is the platform's policy for every run.
type Policy struct {
	// Authorize makes each run's ServiceAccount prove it may create
	// ImagePullJobs and read its pull secrets before anything is created.
	Authorize bool
	// AllowedImages are repository patterns (see Allows); none allows any.
	AllowedImages []string
	// Defaults for fields a run leaves unset.
	Parallelism, PullTimeoutSeconds, BackoffLimit int32
	// MaxNodesPerRun bounds the nodes one run may target; it also bounds
	// what a run keeps in its status (node names, failed nodes).
	MaxNodesPerRun int32
	// MaxRetries bounds a run's spec.retries: each attempt keeps a status.
	MaxRetries int32
	// AllowAllNodes lets a run pull onto every node: one that names no
	// nodeNames, nodeSelector, podSelector or workload, or whose selector
	// matches every node.
	AllowAllNodes bool
	// MaxParallelism bounds how many nodes one run's job may send a pull to
	// at once: the load one run may put on a registry.
	MaxParallelism int32
}

// Defaults of the limits: every node of the largest cluster Kubernetes
// supports, and more retries than a pipeline needs.
const (
	DefaultMaxNodesPerRun = v1alpha1.MaxNodeNames
	DefaultMaxRetries     = 10
	// MaxRetriesLimit is the most max-retries may allow: each attempt's
	// status stays in the CustomRun.
	MaxRetriesLimit = 100
)

// DefaultPolicy is the policy of a ConfigMap with no keys.
func DefaultPolicy() *Policy {
	return &Policy{
		Authorize:          true,
		Parallelism:        v1alpha1.DefaultParallelism,
		PullTimeoutSeconds: v1alpha1.DefaultPullTimeoutSeconds,
		BackoffLimit:       v1alpha1.DefaultBackoffLimit,
		MaxNodesPerRun:     DefaultMaxNodesPerRun,
		MaxRetries:         DefaultMaxRetries,
		AllowAllNodes:      true,
		MaxParallelism:     v1alpha1.MaxParallelism,
	}
}

// knownKeys are the keys the policy reads, in the order errors list them.
var knownKeys = []string{KeyAuthorize, KeyAllowedImages, KeyParallelism, KeyPullTimeoutSeconds, KeyBackoffLimit,
	KeyMaxNodesPerRun, KeyMaxRetries, KeyAllowAllNodes, KeyMaxParallelism}

// NewPolicyFromConfigMap reads the policy; an error names the key and what
// is wrong with it.
func NewPolicyFromConfigMap(cm *corev1.ConfigMap) (*Policy, error) {
	p := DefaultPolicy()
	for k := range cm.Data {
		if k != configmap.ExampleKey && !slices.Contains(knownKeys, k) {
			// A misspelt key would otherwise be a policy silently not applied.
			return nil, fmt.Errorf("%s: unknown key %q (known: %s)", cm.Name, k, strings.Join(knownKeys, ", "))
		}
	}
	for _, b := range []struct {
		key  string
		into *bool
	}{{KeyAuthorize, &p.Authorize}, {KeyAllowAllNodes, &p.AllowAllNodes}} {
		v, ok := cm.Data[b.key]
		if !ok {
			continue
		}
		parsed, err := strconv.ParseBool(strings.TrimSpace(v))
		if err != nil {
			return nil, fmt.Errorf("%s %s: %q is not true or false", cm.Name, b.key, v)
		}
		*b.into = parsed
	}
	if v, ok := cm.Data[KeyAllowedImages]; ok {
		patterns, err := parseAllowedImages(v)
		if err != nil {
			return nil, fmt.Errorf("%s %s: %w", cm.Name, KeyAllowedImages, err)
		}
		p.AllowedImages = patterns
	}
	for _, d := range []struct {
		key      string
		into     *int32
		min, max int32
	}{
		{KeyParallelism, &p.Parallelism, 1, v1alpha1.MaxParallelism},
		{KeyPullTimeoutSeconds, &p.PullTimeoutSeconds, 1, v1alpha1.MaxPullTimeoutSeconds},
		{KeyBackoffLimit, &p.BackoffLimit, 0, v1alpha1.MaxBackoffLimit},
		{KeyMaxNodesPerRun, &p.MaxNodesPerRun, 1, v1alpha1.MaxNodeNames},
		{KeyMaxRetries, &p.MaxRetries, 0, MaxRetriesLimit},
		{KeyMaxParallelism, &p.MaxParallelism, 1, v1alpha1.MaxParallelism},
	} {
		v, ok := cm.Data[d.key]
		if !ok {
			continue
		}
		n, err := strconv.ParseInt(strings.TrimSpace(v), 10, 32)
		if err != nil || int32(n) < d.min || int32(n) > d.max {
			return nil, fmt.Errorf("%s %s: %q is not a whole number from %d to %d", cm.Name, d.key, v, d.min, d.max)
		}
		*d.into = int32(n)
	}
	if p.Parallelism > p.MaxParallelism {
		// Every run that leaves parallelism unset would be refused.
		return nil, fmt.Errorf("%s %s: %d is more than %s (%d)", cm.Name, KeyParallelism, p.Parallelism, KeyMaxParallelism, p.MaxParallelism)
	}
	return p, nil
}

// parseAllowedImages reads allowed-images. It fails closed: a value with
// no pattern, or a pattern that can match no repository, is an error, never
// "allow any image" or a policy that silently refuses everything.
func parseAllowedImages(v string) ([]string, error) {
	var patterns []string
	for _, pat := range strings.FieldsFunc(v, func(r rune) bool { return r == ',' || r == '\n' }) {
		pat = strings.TrimSpace(pat)
		if pat == "" {
			continue
		}
		if err := checkPattern(pat); err != nil {
			return nil, fmt.Errorf("%q %s", pat, err)
		}
		patterns = append(patterns, pat)
	}
	if len(patterns) == 0 {
		return nil, fmt.Errorf("%q holds no pattern; to allow any image, remove the key", v)
	}
	return patterns, nil
}

// checkPattern refuses a pattern that is not one, or that no repository
// name can match: Allows compares against the full name Kruise's parser
// gives (docker.io/library/nginx), whose first segment is a registry host.
func checkPattern(pat string) error {
	prefix, everything := strings.CutSuffix(pat, "/**")
	if _, err := path.Match(prefix, ""); err != nil || strings.Contains(prefix, "**") {
		return errors.New("is not a pattern (path.Match's syntax, or REPOSITORY/** for everything under it)")
	}
	if everything && (prefix == "" || strings.ContainsAny(prefix, `*?[\`)) {
		return errors.New("can match nothing: before /** stands a repository prefix without wildcards (ghcr.io/acme/**)")
	}
	host, _, _ := strings.Cut(prefix, "/")
	if host != strings.ToLower(host) {
		// Allows compares hosts in lower case, as DNS does.
		return fmt.Errorf("can match nothing: registry hosts are matched in lower case (%s)", strings.ToLower(host)+strings.TrimPrefix(pat, host))
	}
	if !strings.ContainsAny(host, `*?[\`) && !strings.ContainsAny(host, ".:") && host != "localhost" {
		full := "docker.io/library/" + prefix
		if ref, err := image.Parse(prefix); err == nil {
			full = ref.Repository()
		}
		return fmt.Errorf("can match nothing: patterns match full repository names, which start with a registry host (%s)", full)
	}
	switch {
	case everything:
		// What stands before /** must be a prefix of full names as the
		// parser gives them: index.docker.io/library/** would match nothing,
		// every such image being docker.io/library/...
		ref, err := image.Parse(prefix + "/x/y") // two segments: docker.io/x alone would be docker.io/library/x
		if err != nil {
			return fmt.Errorf("can match nothing: %s is not a repository prefix (%v)", prefix, err)
		}
		if full := strings.TrimSuffix(ref.Repository(), "/x/y"); full != prefix {
			return fmt.Errorf("can match nothing: the repositories under it are named %s/...; write %s/**", full, full)
		}
	case !strings.ContainsAny(prefix, `*?[\`):
		ref, err := image.Parse(prefix)
		if err != nil {
			return fmt.Errorf("can match nothing: %s is not a repository name (%v)", prefix, err)
		}
		if ref.Repository() != prefix {
			return fmt.Errorf("can match nothing: the repository's full name is %s", ref.Repository())
		}
	}
	return nil
}

// Allows reports whether an image may be pre-pulled. A pattern is matched
// against the repository's full name as Kruise's parser reads it ("nginx:1"
// is docker.io/library/nginx, a registry host in lower case) with
// path.Match, segment by segment ("registry.example.com/team/*");
// REPOSITORY/** allows everything under it.
func (p *Policy) Allows(ref image.Ref) bool {
	if len(p.AllowedImages) == 0 {
		return true
	}
	repo := ref.Repository()
	for _, pat := range p.AllowedImages {
		if prefix, ok := strings.CutSuffix(pat, "/**"); ok {
			if strings.HasPrefix(repo, prefix+"/") {
				return true
			}
			continue
		}
		if ok, _ := path.Match(pat, repo); ok {
			return true
		}
	}
	return false
}

// Defaults fills the spec's fields that the run left unset with the
// platform's defaults, before the built-in ones.
func (p *Policy) Defaults(spec *v1alpha1.ImagePrePullSpec) {
	if spec.Parallelism == nil {
		spec.Parallelism = ptr.To(p.Parallelism)
	}
	if spec.PullTimeoutSeconds == nil {
		spec.PullTimeoutSeconds = ptr.To(p.PullTimeoutSeconds)
	}
	if spec.BackoffLimit == nil {
		spec.BackoffLimit = ptr.To(p.BackoffLimit)
	}
}

type policyKey struct{}

// Store keeps the policy from its ConfigMap and hands it to each reconcile.
type Store struct {
	*configmap.UntypedStore
}

// NewStore makes a Store; WatchConfigs starts it. A policy that fails to
// load at start stops the process (knative's store does so, as for Tekton's
// config maps); one that fails later is logged and the last good one stays.
func NewStore(logger configmap.Logger) *Store {
	return &Store{configmap.NewUntypedStore("imageprepull", logger,
		configmap.Constructors{PolicyConfigName: NewPolicyFromConfigMap})}
}

// ToContext puts the current policy into ctx (the generated reconciler calls it).
func (s *Store) ToContext(ctx context.Context) context.Context {
	p, _ := s.UntypedLoad(PolicyConfigName).(*Policy)
	return context.WithValue(ctx, policyKey{}, p)
}

// ErrNotLoaded says a reconcile has no policy: its Store was not given
// the ConfigMap. Knative's store stops the process when the ConfigMap
// cannot be read at start, so only a wiring fault leads here.
var ErrNotLoaded = errors.New(PolicyConfigName + " is not loaded: nothing is done for a run without the platform's policy")

// FromContext is the policy of the reconcile. Without one it fails closed:
// ErrNotLoaded, never the defaults, which allow any image on every node.
func FromContext(ctx context.Context) (*Policy, error) {
	if p, ok := ctx.Value(policyKey{}).(*Policy); ok && p != nil {
		return p, nil
	}
	return nil, ErrNotLoaded
}
