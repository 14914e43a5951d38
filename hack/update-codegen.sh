#!/usr/bin/env bash
# Regenerates deepcopy, clientset, listers, informers and Knative injection for
# custom.kruise.dev/v1alpha1. The generators are the `tool` entries of go.mod, so
# their versions move with the k8s.io and knative.dev modules the code uses.
set -o errexit -o nounset -o pipefail

cd "$(dirname "$0")/.."
MODULE=$(go list -m)
APIS=("${MODULE}/pkg/apis/custom/v1alpha1")
CLIENT="${MODULE}/pkg/client"
HEADER=hack/boilerplate/boilerplate.go.txt

rm -rf pkg/client/clientset pkg/client/listers pkg/client/informers pkg/client/injection

go tool deepcopy-gen --go-header-file "$HEADER" --output-file zz_generated.deepcopy.go "${APIS[@]}"

go tool client-gen --go-header-file "$HEADER" \
  --clientset-name versioned --input-base "" --input "$(IFS=,; echo "${APIS[*]}")" \
  --output-pkg "${CLIENT}/clientset" --output-dir pkg/client/clientset

go tool lister-gen --go-header-file "$HEADER" \
  --output-pkg "${CLIENT}/listers" --output-dir pkg/client/listers "${APIS[@]}"

go tool informer-gen --go-header-file "$HEADER" \
  --versioned-clientset-package "${CLIENT}/clientset/versioned" \
  --listers-package "${CLIENT}/listers" \
  --output-pkg "${CLIENT}/informers" --output-dir pkg/client/informers "${APIS[@]}"

go tool injection-gen --go-header-file "$HEADER" \
  --input-dirs "$(IFS=,; echo "${APIS[*]}")" \
  --versioned-clientset-package "${CLIENT}/clientset/versioned" \
  --external-versions-informers-package "${CLIENT}/informers/externalversions" \
  --listers-package "${CLIENT}/listers" \
  --output-package "${CLIENT}/injection" --output-dir pkg/client/injection

gofmt -s -w pkg/apis/custom/v1alpha1/zz_generated.deepcopy.go pkg/client
