#!/usr/bin/env bash
# Builds the local cluster's programs from pinned sources, once each, into
# $TOOLS/<name>-<version>/, and prints nothing but errors. $TOOLS defaults to
# the user's cache ($XDG_CACHE_HOME or ~/.cache, /imageprepull/tools), outside
# the clone: a second clone on the same machine builds nothing again. Usage: hack/build-tools.sh [name ...] (default: all).
# A fresh machine needs only Go: every source comes through the module proxy.
set -o errexit -o nounset -o pipefail

root=$(cd "$(dirname "$0")/.." && pwd)
TOOLS=${TOOLS:-${XDG_CACHE_HOME:-$HOME/.cache}/imageprepull/tools}
mkdir -p "$TOOLS"

modversion() { (cd "$root/hack/tools/$1" && go list -m -f '{{.Version}}' "$2"); }

# build NAME VERSION COMMAND...: runs COMMAND with $out set, unless the tool exists.
build() {
  local name=$1 version=$2; shift 2
  local dir="$TOOLS/$name-$version"
  [ -x "$dir/$name" ] && return 0
  echo "building $name $version (once; cached in $dir)" >&2
  mkdir -p "$dir.tmp"
  out="$dir.tmp/$name" "$@"
  rm -rf "$dir" && mv "$dir.tmp" "$dir"
}

k8s() {
  local v; v=$(modversion kubernetes k8s.io/kubernetes)
  local minor=${v#v1.}; minor=${minor%%.*}
  # Without a version, the server says v0.0.0-master and Knative's sharedmain refuses it.
  local ldflags="-s -w -X k8s.io/component-base/version.gitVersion=$v -X k8s.io/component-base/version.gitMajor=1 -X k8s.io/component-base/version.gitMinor=$minor -X k8s.io/client-go/pkg/version.gitVersion=$v"
  build kube-apiserver "$v" bash -c "cd '$root/hack/tools/kubernetes' && go build -trimpath -ldflags '$ldflags' -o \"\$out\" k8s.io/kubernetes/cmd/kube-apiserver"
  build kubectl "$v" bash -c "cd '$root/hack/tools/kubernetes' && go build -trimpath -ldflags '$ldflags' -o \"\$out\" k8s.io/kubernetes/cmd/kubectl"
  # The rest of the control plane: garbage collection, workload controllers,
  # the node lifecycle, and the scheduler that binds the pods they make.
  build kube-controller-manager "$v" bash -c "cd '$root/hack/tools/kubernetes' && go build -trimpath -ldflags '$ldflags' -o \"\$out\" k8s.io/kubernetes/cmd/kube-controller-manager"
  build kube-scheduler "$v" bash -c "cd '$root/hack/tools/kubernetes' && go build -trimpath -ldflags '$ldflags' -o \"\$out\" k8s.io/kubernetes/cmd/kube-scheduler"
}

# The real node's kubelet, which starts pods from what kruise-daemon pulled
# into its containerd: only where the real node can run (Linux, root).
kubelet() {
  [ "$(uname -s)" = Linux ] && [ "$(id -u)" = 0 ] || return 0
  local v; v=$(modversion kubernetes k8s.io/kubernetes)
  local minor=${v#v1.}; minor=${minor%%.*}
  local ldflags="-s -w -X k8s.io/component-base/version.gitVersion=$v -X k8s.io/component-base/version.gitMajor=1 -X k8s.io/component-base/version.gitMinor=$minor"
  build kubelet "$v" bash -c "cd '$root/hack/tools/kubernetes' && go build -trimpath -ldflags '$ldflags' -o \"\$out\" k8s.io/kubernetes/cmd/kubelet"
}

etcd() {
  local v; v=$(modversion kubernetes go.etcd.io/etcd/server/v3)
  build etcd "$v" bash -c "cd '$root/hack/tools/kubernetes' && go build -trimpath -ldflags '-s -w' -o \"\$out\" go.etcd.io/etcd/server/v3"
}

tekton() {
  local v; v=$(modversion tekton github.com/tektoncd/pipeline)
  build tekton-controller "$v" bash -c "cd '$root/hack/tools/tekton' && go build -trimpath -ldflags '-s -w' -o \"\$out\" github.com/tektoncd/pipeline/cmd/controller"
}

# Tekton's admission webhook: defaulting, validation and v1beta1<->v1 conversion.
tekton-webhook() {
  local v; v=$(modversion tekton github.com/tektoncd/pipeline)
  build tekton-webhook "$v" bash -c "cd '$root/hack/tools/tekton' && go build -trimpath -ldflags '-s -w' -o \"\$out\" github.com/tektoncd/pipeline/cmd/webhook"
}

tkn() {
  local v; v=$(modversion tkn github.com/tektoncd/cli)
  build tkn "$v" bash -c "cd '$root/hack/tools/tkn' && go build -trimpath -ldflags '-s -w -X github.com/tektoncd/cli/pkg/cmd/version.clientVersion=$v' -o \"\$out\" github.com/tektoncd/cli/cmd/tkn"
}

# OpenKruise's release the local cluster runs (manager, kruise-daemon, CRDs):
# its current line by default, or KRUISE_VERSION; the previous line is tested
# too (make e2e-kruise-previous). Only releases that verify against the
# checksum database: v1.9.0 does not here.
KRUISE_DEFAULT_VERSION=v1.9.1
KRUISE_PREVIOUS_VERSION=v1.8.0
KRUISE_VERSION=${KRUISE_VERSION:-$KRUISE_DEFAULT_VERSION}

# OpenKruise's go.mod has replace directives, so it builds from its own module
# directory (a writable copy of the module cache's).
kruise_build() {
  local name=$1 pkg=$2 v=$KRUISE_VERSION
  build "$name" "$v" bash -c '
    src=$(cd "'"$root"'" && go mod download -json github.com/openkruise/kruise@'"$v"' | sed -n "s/^\t\"Dir\": \"\(.*\)\",$/\1/p")
    tmp=$(mktemp -d); trap "chmod -R u+w $tmp; rm -rf $tmp" EXIT
    cp -r "$src/." "$tmp" && chmod -R u+w "$tmp"
    cd "$tmp" && go build -trimpath -ldflags "-s -w" -o "$out" '"$pkg"
}
kruise() { kruise_build kruise-manager .; }
# kruise-daemon, for the real node: the same release as the manager.
kruise-daemon() { kruise_build kruise-daemon ./cmd/daemon; }

# crictl, which removes the real node's pods through the CRI when it stops.
crictl() {
  [ "$(uname -s)" = Linux ] && [ "$(id -u)" = 0 ] || return 0
  local v=${CRICTL_VERSION:-v1.34.0}
  build crictl "$v" bash -c "GOBIN=\$(dirname \"\$out\") go install sigs.k8s.io/cri-tools/cmd/crictl@$v"
}

ko() {
  local v=${KO_VERSION:-v0.19.1}
  build ko "$v" bash -c "GOBIN=\$(dirname \"\$out\") go install github.com/google/ko@$v"
}

# --path NAME: where a tool is, for scripts and the Makefile (Kruise's, of
# KRUISE_VERSION). --kruise-version: the release the cluster runs;
# --kruise-previous-version: the previous release line, tested too.
if [ "${1:-}" = "--path" ]; then
  shift
  for name in "$@"; do
    case $name in
      kruise-manager|kruise-daemon) ls -d "$TOOLS/$name-$KRUISE_VERSION/$name" 2>/dev/null || true ;;
      *) ls -d "$TOOLS/$name"-*/"$name" 2>/dev/null | sort -V | tail -1 ;;
    esac
  done
  exit 0
fi
if [ "${1:-}" = "--kruise-version" ]; then
  echo "$KRUISE_VERSION"
  exit 0
fi
if [ "${1:-}" = "--kruise-previous-version" ]; then
  echo "$KRUISE_PREVIOUS_VERSION"
  exit 0
fi

for t in "${@:-etcd k8s kubelet crictl tekton tekton-webhook kruise tkn ko}"; do
  for one in $t; do "$one"; done
done
