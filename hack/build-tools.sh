#!/usr/bin/env bash
# Builds the local cluster's programs from pinned sources, once each, into
# $TOOLS/<name>-<version>/, and prints nothing but errors. $TOOLS defaults to
# the user's cache ($XDG_CACHE_HOME or ~/.cache, /imageprepull/tools), outside
# the clone: a second clone on the same machine builds nothing again. Usage: hack/build-tools.sh [name ...] (default: all).
# A fresh machine needs only Go: every source comes through the module proxy.
set -o errexit -o nounset -o pipefail

root=$(cd "$(dirname "$0")/.." && pwd)
# The tools build with their own settings, whatever the caller's (the Makefile's CGO_ENABLED and
# GOFLAGS are for the controller's own graph): -trimpath and CGO_ENABLED=0, as the controller builds,
# each set where it is built.
unset GOFLAGS CGO_ENABLED
# Every tool compiles with the toolchain the controller ships with (go.mod's toolchain line, which the
# Makefile has the go command fetch), so that the standard library, and the modules two builds share
# at one version, compile once.
toolchain=$(sed -n 's/^toolchain //p' "$root/go.mod")
[ -z "$toolchain" ] || export GOTOOLCHAIN=$toolchain
TOOLS=${TOOLS:-${XDG_CACHE_HOME:-$HOME/.cache}/imageprepull/tools}
mkdir -p "$TOOLS"
# One build at a time across callers: CI builds OpenKruise's previous release beside the suites (.ci/run),
# and a caller that finds a tool missing while it is being built waits for that build, then finds it.
exec 9>"$TOOLS/.build.lock"

modversion() { (cd "$root/hack/tools/$1" && go list -m -f '{{.Version}}' "$2"); }

# build NAME VERSION COMMAND...: runs COMMAND with $out set, unless the tool exists.
build() {
  local name=$1 version=$2; shift 2
  local dir="$TOOLS/$name-$version"
  [ -x "$dir/$name" ] && return 0
  flock 9
  [ -x "$dir/$name" ] && { flock -u 9; return 0; }
  echo "building $name $version (once; cached in $dir)" >&2
  mkdir -p "$dir.tmp"
  out="$dir.tmp/$name" "$@"
  rm -rf "$dir" && mv "$dir.tmp" "$dir"
  flock -u 9
}

# build_batch VERSION DIR LDFLAGS NAME=PACKAGE...: builds the missing ones of the named tools in one go
# build in DIR, so that the module's packages load once and the links overlap with compiles; each
# goes to $TOOLS/NAME-VERSION/NAME, as build puts it.
build_batch() {
  local version=$1 dir=$2 ldflags=$3; shift 3
  local names=() pkgs=() pair
  missing() {
    names=() pkgs=()
    for pair in "$@"; do
      [ -x "$TOOLS/${pair%%=*}-$version/${pair%%=*}" ] && continue
      names+=("${pair%%=*}"); pkgs+=("${pair#*=}")
    done
    [ ${#names[@]} != 0 ]
  }
  missing "$@" || return 0
  flock 9
  missing "$@" || { flock -u 9; return 0; }
  echo "building ${names[*]} $version (once; cached in $TOOLS)" >&2
  local tmp; tmp=$(mktemp -d "$TOOLS/batch.XXXXXX")
  (cd "$dir" && go build -trimpath -ldflags "$ldflags" -o "$tmp/" "${pkgs[@]}")
  local i bin
  for i in "${!names[@]}"; do
    bin=$(basename "${pkgs[$i]}"); [ "$bin" = . ] && bin=$(basename "$(cd "$dir" && go list -f '{{.ImportPath}}' .)")
    mkdir -p "$TOOLS/${names[$i]}-$version.tmp" && mv "$tmp/$bin" "$TOOLS/${names[$i]}-$version.tmp/${names[$i]}"
    rm -rf "$TOOLS/${names[$i]}-$version" && mv "$TOOLS/${names[$i]}-$version.tmp" "$TOOLS/${names[$i]}-$version"
  done
  rm -rf "$tmp"
  flock -u 9
}

# The control plane (garbage collection, workload controllers, the node lifecycle, and the scheduler
# that binds the pods they make), kubectl, and, only where the real node can run (Linux, root), the
# real node's kubelet, which starts pods from what kruise-daemon pulled into its containerd. Built as
# the controller builds (CGO_ENABLED=0, -trimpath) from a module that requires what the two share at the
# main module's versions (hack/tools/kubernetes/go.mod says which), so that client-go, k8s.io/api and
# the rest compile once for both; static, as Kubernetes' own release builds are.
k8s() {
  local v; v=$(modversion kubernetes k8s.io/kubernetes)
  local minor=${v#v1.}; minor=${minor%%.*}
  # Without a version, the server says v0.0.0-master and Knative's sharedmain refuses it.
  local ldflags="-s -w -X k8s.io/component-base/version.gitVersion=$v -X k8s.io/component-base/version.gitMajor=1 -X k8s.io/component-base/version.gitMinor=$minor -X k8s.io/client-go/pkg/version.gitVersion=$v"
  local cmds=(kube-apiserver kubectl kube-controller-manager kube-scheduler) pairs=() c
  if [ "$(uname -s)" = Linux ] && [ "$(id -u)" = 0 ]; then cmds+=(kubelet); fi
  for c in "${cmds[@]}"; do pairs+=("$c=k8s.io/kubernetes/cmd/$c"); done
  CGO_ENABLED=0 build_batch "$v" "$root/hack/tools/kubernetes" "$ldflags" "${pairs[@]}"
}
kubelet() { k8s; }

etcd() {
  local v; v=$(modversion kubernetes go.etcd.io/etcd/server/v3)
  build etcd "$v" bash -c "cd '$root/hack/tools/kubernetes' && CGO_ENABLED=0 go build -trimpath -ldflags '-s -w' -o \"\$out\" go.etcd.io/etcd/server/v3"
}

# Tekton Pipelines' controller and admission webhook (defaulting, validation and v1beta1<->v1
# conversion), and the programs of the helper containers its TaskRun pods run (entrypoint, nop,
# workingdirinit, sidecarlogresults), static, which the local cluster puts into images as ko would. Built as ko builds Tekton's release images and the controller's (CGO_ENABLED=0,
# -trimpath), and hack/tools/tekton requires the modules the two share at the main module's versions,
# so the packages they share (Knative, Tekton's APIs, client-go...) compile once for both.
tekton() {
  local v; v=$(modversion tekton github.com/tektoncd/pipeline)
  CGO_ENABLED=0 build_batch "$v" "$root/hack/tools/tekton" "-s -w" \
    tekton-controller=github.com/tektoncd/pipeline/cmd/controller tekton-webhook=github.com/tektoncd/pipeline/cmd/webhook \
    tekton-entrypoint=github.com/tektoncd/pipeline/cmd/entrypoint tekton-nop=github.com/tektoncd/pipeline/cmd/nop \
    tekton-workingdirinit=github.com/tektoncd/pipeline/cmd/workingdirinit \
    tekton-sidecarlogresults=github.com/tektoncd/pipeline/cmd/sidecarlogresults
}
tekton-webhook() { tekton; }

# tkn, built as the controller builds (CGO_ENABLED=0, -trimpath) from a module that requires what the two
# share at the main module's versions where tkn allows it (Tekton's APIs, Knative; not client-go, which tkn
# needs newer), so that those packages compile once for both.
tkn() {
  local v; v=$(modversion tkn github.com/tektoncd/cli)
  build tkn "$v" bash -c "cd '$root/hack/tools/tkn' && CGO_ENABLED=0 go build -trimpath -ldflags '-s -w -X github.com/tektoncd/cli/pkg/cmd/version.clientVersion=$v' -o \"\$out\" github.com/tektoncd/cli/cmd/tkn"
}

# OpenKruise's release the local cluster runs (manager, kruise-daemon, CRDs):
# its current line by default, or KRUISE_VERSION; the previous line is tested
# too (make e2e-kruise-previous). Only releases that verify against the
# checksum database: v1.9.0 does not here.
KRUISE_DEFAULT_VERSION=v1.9.1
KRUISE_PREVIOUS_VERSION=v1.8.0
KRUISE_VERSION=${KRUISE_VERSION:-$KRUISE_DEFAULT_VERSION}

# OpenKruise's manager and, for the real node (Linux, root), kruise-daemon of the same release.
# OpenKruise's go.mod has replace directives, so they build from its own module directory (a
# writable copy of the module cache's).
kruise() {
  local v=$KRUISE_VERSION pairs=(kruise-manager=.)
  if [ "$(uname -s)" = Linux ] && [ "$(id -u)" = 0 ]; then pairs+=(kruise-daemon=./cmd/daemon); fi
  local missing=0 pair
  for pair in "${pairs[@]}"; do [ -x "$TOOLS/${pair%%=*}-$v/${pair%%=*}" ] || missing=1; done
  [ $missing = 1 ] || return 0
  (
    src=$(cd "$root" && go mod download -json "github.com/openkruise/kruise@$v" | sed -n 's/^\t"Dir": "\(.*\)",$/\1/p')
    tmp=$(mktemp -d); trap 'chmod -R u+w "$tmp"; rm -rf "$tmp"' EXIT
    cp -r "$src/." "$tmp" && chmod -R u+w "$tmp"
    # CGO_ENABLED=0 as OpenKruise's Dockerfile builds its release images, which also shares the standard
    # library's compile with the controller's.
    CGO_ENABLED=0 build_batch "$v" "$tmp" "-s -w" "${pairs[@]}"
  )
}
kruise-daemon() { kruise; }

# ko with CGO_ENABLED=0 as well, so that at least the standard library it compiles is the controller's.
ko() {
  local v=${KO_VERSION:-v0.19.1}
  build ko "$v" bash -c "GOBIN=\$(dirname \"\$out\") CGO_ENABLED=0 go install -trimpath github.com/google/ko@$v"
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

# One after another: two builds at once gained nothing on two cores (docs/development.md).
for one in "${@:-tekton etcd k8s kruise tkn ko}"; do
  for t in $one; do "$t"; done
done
