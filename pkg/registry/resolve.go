// Package registry reads from an image's registry what a node's container
// runtime will report for it: the image ID of a manifest digest on each
// platform, which is the digest of the image's config (containerd's and
// CRI-O's image ID; kruise-daemon records it in a NodeImage's status). It
// reads with go-containerregistry, as ko does.
package registry

import (
	"context"
	"fmt"
	"sync"
	"time"

	"github.com/google/go-containerregistry/pkg/authn"
	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"k8s.io/utils/lru"

	"github.com/imageprepull/imageprepull/pkg/image"
)

// Platform is an OS and an architecture, as Nodes label them
// (kubernetes.io/os, kubernetes.io/arch).
type Platform struct {
	OS, Architecture string
}

func (p Platform) String() string { return p.OS + "/" + p.Architecture }

// ImageIDs are the image IDs of one manifest digest, by platform: one a
// platform for an image index (more where it holds variants of an
// architecture, arm/v6 and arm/v7, say: a node's labels do not tell its
// variant, and its runtime picks one), one for AnyPlatform for a single
// image.
type ImageIDs map[Platform][]string

// AnyPlatform keys a single image's ID: every node that pulls it has that.
var AnyPlatform = Platform{}

// For is what a node of platform p holds of the digest.
func (ids ImageIDs) For(p Platform) []string {
	if any, ok := ids[AnyPlatform]; ok {
		return any
	}
	return ids[p]
}

// Resolver reads image IDs from registries and keeps them by repository and
// digest: a digest names the same content forever, so what one run's Secrets
// read serves every run that names that digest (each run's nodes still pull
// with its own Secrets; this only tells what the digest is).
type Resolver struct {
	mu    sync.Mutex
	cache *lru.Cache
}

// UserAgent names the controller to registries (go-containerregistry adds
// its own name after it): their logs tell its reads from the nodes' pulls.
const UserAgent = "imageprepull-controller"

// readTimeout bounds one digest's reads: a registry that does not answer
// holds a reconcile no longer than this.
const readTimeout = 30 * time.Second

// NewResolver keeps the image IDs of up to size digests.
func NewResolver(size int) *Resolver {
	return &Resolver{cache: lru.New(size)}
}

// ImageIDs reads the image IDs of ref's digest (ref must have one) with the
// credentials keychain holds for its registry (anonymous where it holds
// none). An error says which registry could not be read and why.
func (r *Resolver) ImageIDs(ctx context.Context, ref image.Ref, keychain authn.Keychain) (ImageIDs, error) {
	key := ref.Repository() + "@" + ref.Digest()
	r.mu.Lock()
	ids, ok := r.cache.Get(key)
	r.mu.Unlock()
	if ok {
		return ids.(ImageIDs), nil
	}
	d, err := name.NewDigest(key)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", key, err)
	}
	ctx, cancel := context.WithTimeout(ctx, readTimeout)
	defer cancel()
	opts := []remote.Option{remote.WithContext(ctx), remote.WithAuthFromKeychain(keychain), remote.WithUserAgent(UserAgent)}
	desc, err := remote.Get(d, opts...)
	if err != nil {
		return nil, fmt.Errorf("reading %s from registry %s: %w", key, d.RegistryStr(), err)
	}
	out := ImageIDs{}
	if desc.MediaType.IsIndex() {
		index, err := desc.ImageIndex()
		if err != nil {
			return nil, fmt.Errorf("reading the index %s: %w", key, err)
		}
		manifest, err := index.IndexManifest()
		if err != nil {
			return nil, fmt.Errorf("reading the index %s: %w", key, err)
		}
		for _, m := range manifest.Manifests {
			if m.Platform == nil || !m.MediaType.IsImage() {
				continue // attestations and SBOMs of some builders: no platform to run
			}
			img, err := index.Image(m.Digest)
			if err != nil {
				return nil, fmt.Errorf("reading %s's image for %s: %w", key, m.Platform, err)
			}
			config, err := configOf(img)
			if err != nil {
				return nil, fmt.Errorf("reading %s's image for %s: %w", key, m.Platform, err)
			}
			p := Platform{m.Platform.OS, m.Platform.Architecture}
			out[p] = append(out[p], config)
		}
	} else {
		// One image, whatever its platform: a node that pulled it has it
		// (containerd refuses one of another platform, so that node fails
		// its pull). Its manifest names its config: no more to read.
		img, err := desc.Image()
		if err != nil {
			return nil, fmt.Errorf("reading the image %s: %w", key, err)
		}
		config, err := configOf(img)
		if err != nil {
			return nil, fmt.Errorf("reading the image %s: %w", key, err)
		}
		out[AnyPlatform] = []string{config}
	}
	r.mu.Lock()
	r.cache.Add(key, out)
	r.mu.Unlock()
	return out, nil
}

// configOf is the digest of an image's config as its manifest names it: the
// config itself is not fetched (go-containerregistry's ConfigName would,
// to hash it).
func configOf(img v1.Image) (string, error) {
	m, err := img.Manifest()
	if err != nil {
		return "", err
	}
	return m.Config.Digest.String(), nil
}
