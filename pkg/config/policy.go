// Package config holds the platform's policy for pre-pulls: the ConfigMap
// config-imageprepull in the controller's namespace, read and watched as
// Tekton reads its own config maps (knative's configmap store), so that a
// change takes effect without a restart.
package config

import (
	"context"
	"fmt"
	"path"
	"strconv"
	"strings"

	"github.com/docker/distribution/reference"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/utils/ptr"
	"knative.dev/pkg/configmap"

	"github.com/openkruise/imageprepull/pkg/apis/custom/v1alpha1"
)

// PolicyConfigName is the policy's ConfigMap, in the controller's namespace.
const PolicyConfigName = "config-imageprepull"

// The policy's keys.
const (
	// KeyAuthorize turns the run-identity check on ("true", the default) or
	// off ("false": for clusters that restrict who may create CustomRuns).
	KeyAuthorize = "authorize-service-accounts"
	// KeyAllowedImages lists repository patterns, one a line or
	// comma-separated; empty allows any image.
	KeyAllowedImages = "allowed-images"
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
}

// DefaultPolicy is the policy of a ConfigMap with no keys.
func DefaultPolicy() *Policy {
	return &Policy{
		Authorize:          true,
		Parallelism:        v1alpha1.DefaultParallelism,
		PullTimeoutSeconds: v1alpha1.DefaultPullTimeoutSeconds,
		BackoffLimit:       v1alpha1.DefaultBackoffLimit,
	}
}

// NewPolicyFromConfigMap reads the policy; an error names the key and what
// is wrong with it.
func NewPolicyFromConfigMap(cm *corev1.ConfigMap) (*Policy, error) {
	p := DefaultPolicy()
	for k := range cm.Data {
		switch k {
		case KeyAuthorize, KeyAllowedImages, KeyParallelism, KeyPullTimeoutSeconds, KeyBackoffLimit, configmap.ExampleKey:
		default:
			// A misspelt key would otherwise be a policy silently not applied.
			return nil, fmt.Errorf("%s: unknown key %q (known: %s, %s, %s, %s, %s)", cm.Name, k,
				KeyAuthorize, KeyAllowedImages, KeyParallelism, KeyPullTimeoutSeconds, KeyBackoffLimit)
		}
	}
	if v, ok := cm.Data[KeyAuthorize]; ok {
		b, err := strconv.ParseBool(strings.TrimSpace(v))
		if err != nil {
			return nil, fmt.Errorf("%s %s: %q is not true or false", cm.Name, KeyAuthorize, v)
		}
		p.Authorize = b
	}
	for _, pat := range strings.FieldsFunc(cm.Data[KeyAllowedImages], func(r rune) bool { return r == ',' || r == '\n' }) {
		pat = strings.TrimSpace(pat)
		if pat == "" {
			continue
		}
		if _, err := path.Match(strings.TrimSuffix(pat, "/**"), ""); err != nil || strings.Contains(pat, "**") && !strings.HasSuffix(pat, "/**") {
			return nil, fmt.Errorf("%s %s: %q is not a pattern (path.Match's syntax, or REPOSITORY/** for everything under it)", cm.Name, KeyAllowedImages, pat)
		}
		p.AllowedImages = append(p.AllowedImages, pat)
	}
	for _, d := range []struct {
		key      string
		into     *int32
		min, max int32
	}{
		{KeyParallelism, &p.Parallelism, 1, v1alpha1.MaxParallelism},
		{KeyPullTimeoutSeconds, &p.PullTimeoutSeconds, 1, v1alpha1.MaxPullTimeoutSeconds},
		{KeyBackoffLimit, &p.BackoffLimit, 0, v1alpha1.MaxBackoffLimit},
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
	return p, nil
}

// Allows reports whether an image may be pre-pulled. A pattern is matched
// against the repository's full name as Kruise's parser reads it ("nginx:1"
// is docker.io/library/nginx) with path.Match, segment by segment
// ("registry.example.com/team/*"); REPOSITORY/** allows everything under it.
func (p *Policy) Allows(image string) bool {
	if len(p.AllowedImages) == 0 {
		return true
	}
	named, err := reference.ParseNormalizedNamed(image)
	if err != nil {
		return false
	}
	repo := named.Name()
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

// FromContext is the policy of the reconcile, or the default one.
func FromContext(ctx context.Context) *Policy {
	if p, ok := ctx.Value(policyKey{}).(*Policy); ok && p != nil {
		return p
	}
	return DefaultPolicy()
}
