// Package image is an image reference as this controller reads it, parsed
// once with the parser OpenKruise and the kubelet use (docker/distribution's
// reference package): validation, the platform's allowed-images, a
// workload's images and the key a NodeImage files an image under all read
// the same Ref.
package image

import (
	"strings"

	"github.com/docker/distribution/reference"
)

// Ref is a parsed image reference. The zero Ref is not a reference.
type Ref struct {
	given string
	named reference.Named
}

// Parse reads an image reference as kruise-daemon and the kubelet do: a
// name without a registry is Docker Hub's (nginx is docker.io/library/nginx).
func Parse(s string) (Ref, error) {
	named, err := reference.ParseNormalizedNamed(s)
	if err != nil {
		return Ref{}, err
	}
	return Ref{given: s, named: named}, nil
}

// String is the reference as it was given.
func (r Ref) String() string { return r.given }

// Repository is the full repository name, its registry host in lower case,
// as DNS reads it: docker.io/library/nginx, ghcr.io/acme/app.
func (r Ref) Repository() string {
	return strings.ToLower(reference.Domain(r.named)) + "/" + reference.Path(r.named)
}

// Tag is the reference's tag, "" when it has none.
func (r Ref) Tag() string {
	if t, ok := r.named.(reference.Tagged); ok {
		return t.Tag()
	}
	return ""
}

// Digest is the reference's digest (sha256:...), "" when it has none.
func (r Ref) Digest() string {
	if d, ok := r.named.(reference.Digested); ok {
		return d.Digest().String()
	}
	return ""
}

// Pulled is the reference without its digest, as given: what kruise-daemon
// pulls (it pulls by tag, openkruise/kruise#2534) and an ImagePullJob names.
func (r Ref) Pulled() string {
	s, _, _ := strings.Cut(r.given, "@")
	return s
}

// Pinned is the repository by the reference's digest (repo@sha256:...), as a
// rollout names the image; "" without a digest.
func (r Ref) Pinned() string {
	if r.Digest() == "" {
		return ""
	}
	return reference.FamiliarName(r.named) + "@" + r.Digest()
}

// WithDefaultTag is the reference with :latest where it has neither a tag
// nor a digest, as the kubelet pulls it.
func (r Ref) WithDefaultTag() Ref {
	if r.Tag() != "" || r.Digest() != "" {
		return r
	}
	named := reference.TagNameOnly(r.named)
	return Ref{given: named.String(), named: named}
}

// NodeImageKey is where OpenKruise files the image in a NodeImage: its
// familiar repository name (nginx, 127.0.0.1:5000/app) and its tag, latest
// when none is given. kruise-daemon's daemonutil.NormalizeImageRefToNameTag
// reads references the same way.
func (r Ref) NodeImageKey() (name, tag string) {
	named := reference.TagNameOnly(r.named)
	if t, ok := named.(reference.Tagged); ok {
		tag = t.Tag()
	}
	return reference.FamiliarName(named), tag
}
