#!/usr/bin/env bash
# make release VERSION=vX.Y.Z: builds the controller for every platform in PLATFORMS with ko, pushes one
# multi-platform image tagged VERSION to KO_DOCKER_REPO, and writes into dist/VERSION/:
#   release.yaml   config/ with the image pinned by digest (CRD, RBAC, ConfigMaps, Deployment): what users apply
#   sbom/          the SPDX SBOMs ko synthesizes, one per platform's image and one for the index
#   image-refs     the image reference release.yaml names
# With KO_DOCKER_REPO unset and the local cluster up (make cluster-up), it pushes to the local registry, on
# its base image. Arguments are handed to ko resolve (e2e passes --insecure-registry for its own registry).
set -euo pipefail
cd "$(dirname "$0")/.."

version=${VERSION:-}
if ! [[ $version =~ ^v(0|[1-9][0-9]*)\.(0|[1-9][0-9]*)\.(0|[1-9][0-9]*)(-[0-9A-Za-z.-]+)?$ ]]; then
	echo "release: VERSION=$version is not a version tag: give one as vMAJOR.MINOR.PATCH[-PRERELEASE], e.g. make release VERSION=v0.1.0" >&2
	exit 2
fi
platforms=${PLATFORMS:-linux/amd64,linux/arm64}
ko=$(./hack/build-tools.sh --path ko)
./hack/build-tools.sh ko >/dev/null

# ko refuses --platform beside a GOARCH (which the local cluster's own builds set).
unset GOARCH
flags=()
if [ -z "${KO_DOCKER_REPO:-}" ]; then
	if [ ! -f .local/ready ]; then
		echo "release: set KO_DOCKER_REPO to the repository to push the image to (or start the local cluster: make cluster-up)" >&2
		exit 2
	fi
	KO_DOCKER_REPO=$(cat .local/registry)/imageprepull
	KO_DEFAULTBASEIMAGE=$(cat .local/base-image)
	export KO_DOCKER_REPO KO_DEFAULTBASEIMAGE
	flags+=(--insecure-registry)
fi

out=${RELEASE_DIR:-dist/$version}
rm -rf "$out"
mkdir -p "$out/sbom"
"$ko" resolve "${flags[@]}" "$@" --platform="$platforms" --tags="$version" --sbom=spdx --sbom-dir="$out/sbom" \
	--image-refs="$out/image-refs" -f config/ >"$out/release.yaml"
echo "release: $out/release.yaml ($(cat "$out/image-refs"), $platforms); SBOMs in $out/sbom"
