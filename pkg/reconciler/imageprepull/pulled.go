package imageprepull

import (
	"context"
	"fmt"
	"slices"
	"strings"

	"github.com/google/go-containerregistry/pkg/authn"
	kauth "github.com/google/go-containerregistry/pkg/authn/kubernetes"
	kruisev1alpha1 "github.com/openkruise/kruise-api/apps/v1alpha1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/imageprepull/imageprepull/pkg/apis/custom/v1alpha1"
	"github.com/imageprepull/imageprepull/pkg/image"
	"github.com/imageprepull/imageprepull/pkg/registry"
)

// pulled is what the nodes that pulled an attempt's images report of them,
// read once its jobs are complete.
type pulled struct {
	// wrong are the nodes whose image is not the one a run's digest names,
	// with what they have; byJob counts them by job.
	wrong map[string]string
	byJob map[string]int
	// unchecked counts, by job of an image given with a digest, the nodes
	// OpenKruise counts as pulled whose NodeImage no longer records the
	// pull (OpenKruise removes the record a while after the job ends):
	// which image they have is not known, so they do not count as having
	// it.
	unchecked map[string]int
	// imageIDs are, by image in the run's order, the image ID every node
	// that pulled it reports, "" where they differ or none reports one.
	imageIDs []string
	// differing counts, by job of an image without a digest, the images
	// its nodes hold under the tag where they are not all the same one.
	differing map[string]int
}

// checkPulls reads what each node the attempt's jobs reached reports of the
// image it pulled (its NodeImage's status: the image ID kruise-daemon
// records, the digest of the image's config) and, for an image given with a
// digest, compares it with what that digest is for the node's platform, read
// from the registry with the run's pull Secrets. OpenKruise counts a tag a
// node already has as pulled (imagePullPolicy IfNotPresent), so a tag pushed
// again can leave a node with the old image; with a digest the job pulls
// Always, and this says which nodes do not have the image all the same.
func (r *Reconciler) checkPulls(ctx context.Context, a *attempt) (pulled, error) {
	out := pulled{wrong: map[string]string{}, byJob: map[string]int{}, unchecked: map[string]int{}, differing: map[string]int{}, imageIDs: make([]string, len(a.images))}
	wanted := map[string]registry.ImageIDs{} // by job name
	refs := map[string]image.Ref{}
	var keychain authn.Keychain
	for _, job := range a.jobs {
		ref, ok := a.imageOf(job)
		if !ok {
			continue
		}
		refs[job.Name] = ref
		if ref.Digest() == "" || job.Status.Succeeded == 0 {
			continue // nothing to check: the failed nodes say why
		}
		if keychain == nil {
			var err error
			if keychain, err = r.keychain(ctx, a); err != nil {
				return out, err
			}
		}
		ids, err := r.resolver.ImageIDs(ctx, ref, keychain)
		if err != nil {
			return out, failed(v1alpha1.ReasonRegistryUnreadable, "%v: the controller reads the registry to check what each node pulled, "+
				"with the run's pullSecrets (anonymously where none holds credentials for it): name a kubernetes.io/dockerconfigjson Secret "+
				"that can read %s in pullSecrets, and let the controller reach the registry", err, ref.Repository())
		}
		wanted[job.Name] = ids
	}
	reported := map[string]map[string]bool{} // by job: the image IDs reported
	seen := map[string]int32{}               // by job: the nodes that reported a pull
	err := r.eachNodeImage(ctx, a.spec.NodeSelector, func(ni *kruisev1alpha1.NodeImage) bool {
		for _, job := range a.jobs {
			name, tag := nodeImageKey(job.Spec.Image)
			if !owns(ni, job, name, tag) {
				continue
			}
			st, found := tagStatus(ni, name, tag)
			if !found || st.Phase != kruisev1alpha1.ImagePhaseSucceeded {
				continue // not pulled: OpenKruise counts it failed or not done
			}
			seen[job.Name]++
			_, id, _ := strings.Cut(st.ImageID, "@") // kruise-daemon writes name@id
			if reported[job.Name] == nil {
				reported[job.Name] = map[string]bool{}
			}
			reported[job.Name][id] = true
			want, checked := wanted[job.Name]
			if !checked {
				continue
			}
			if why := differs(ni, id, want, refs[job.Name]); why != "" {
				out.wrong[ni.Name] = why
				out.byJob[job.Name]++
			}
		}
		return true
	})
	if err != nil {
		return out, err
	}
	for _, job := range a.jobs {
		_, checked := wanted[job.Name]
		switch {
		case checked && job.Status.Succeeded > seen[job.Name]:
			out.unchecked[job.Name] = int(job.Status.Succeeded - seen[job.Name])
		case !checked && len(reported[job.Name]) > 1:
			out.differing[job.Name] = len(reported[job.Name])
		}
	}
	for i, ref := range a.images {
		for _, job := range a.jobs {
			if got, ok := refs[job.Name]; ok && got.String() == ref.String() && len(reported[job.Name]) == 1 {
				for id := range reported[job.Name] {
					out.imageIDs[i] = id
				}
			}
		}
	}
	return out, nil
}

// differs says how a node's image differs from the one its platform's
// image IDs name, "" when it is that image.
func differs(ni *kruisev1alpha1.NodeImage, id string, want registry.ImageIDs, ref image.Ref) string {
	p := registry.Platform{OS: ni.Labels[corev1.LabelOSStable], Architecture: ni.Labels[corev1.LabelArchStable]}
	ids := want.For(p)
	_, single := want[registry.AnyPlatform]
	switch {
	case !single && (p.OS == "" || p.Architecture == ""):
		return fmt.Sprintf("its platform is not known: its NodeImage lacks the %s and %s labels of its Node, which the kubelet sets", corev1.LabelOSStable, corev1.LabelArchStable)
	case len(ids) == 0:
		return fmt.Sprintf("%s has no image for %s, the node's platform", ref.Pinned(), p)
	case id == "":
		return "kruise-daemon reported no image ID for it"
	case !slices.Contains(ids, id):
		what := ref.Pinned()
		if !single {
			what += " for " + p.String()
		}
		return fmt.Sprintf("has image %s, not %s (what %s is): the tag named another image when the node pulled it (pushed again since the digest was taken?)", id, strings.Join(ids, " or "), what)
	}
	return ""
}

// keychain holds the credentials of the run's pull Secrets, for reading its
// images' registries as the nodes pull from them.
func (r *Reconciler) keychain(ctx context.Context, a *attempt) (authn.Keychain, error) {
	var secrets []corev1.Secret
	for _, name := range a.spec.PullSecrets {
		s, err := r.kube.CoreV1().Secrets(a.run.Namespace).Get(ctx, name, metav1.GetOptions{})
		switch {
		case apierrors.IsNotFound(err):
			// As OpenKruise does: a Secret it cannot find is not used.
		case err != nil:
			return nil, fmt.Errorf("reading pull Secret %s/%s: %w", a.run.Namespace, name, err)
		default:
			secrets = append(secrets, *s)
		}
	}
	return kauth.NewFromPullSecrets(ctx, secrets)
}
