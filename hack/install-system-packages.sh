#!/usr/bin/env bash
# Installs, from the system's packages, what the local cluster and its tests
# run that the project does not build itself, when missing and the machine
# can: Linux, root, apt. Each argument is one of:
#   containerd  the real node's containerd (with ctr); without it the cluster
#               has simulated nodes only
#   runc, containernetworking-plugins
#               what the real node's kubelet starts pods with (the OCI
#               runtime, and the CNI bridge in /usr/lib/cni); without them
#               the cluster has simulated nodes only
#   prometheus  Debian's Prometheus, which scrapes the controller to evaluate
#               docs/dashboard's queries (e2e, bench); without it those fail
#               and say so
#   busybox-static
#               the shell of the image Tekton's pods run their scripts with
#               (a static busybox, no image from outside); without it no
#               TaskRun pod can start on the real node
# Elsewhere it says why in one line and succeeds. No package's service is
# started: the cluster runs its own, with its own config and ports.
set -o errexit -o nounset -o pipefail

commands() {
  case "$1" in
    containerd) echo containerd ctr ;;
    runc) echo runc ;;
    containernetworking-plugins) echo /usr/lib/cni/bridge ;;
    prometheus) echo prometheus ;;
    busybox-static) echo /bin/busybox ;;
    *) echo "unknown package $1" >&2; exit 2 ;;
  esac
}
without() {
  case "$1" in
    containerd|runc|containernetworking-plugins) echo "the local cluster will have simulated nodes only" ;;
    prometheus) echo "the dashboard's queries cannot be evaluated (e2e TestMetricsAfterKnownRuns fails)" ;;
    busybox-static) echo "no TaskRun pod can start on the real node (Tekton's shell image is made from it)" ;;
  esac
}
missing() { for c in $(commands "$1"); do command -v "$c" >/dev/null || [ -x "$c" ] || return 0; done; return 1; }

wanted=()
for pkg in "$@"; do missing "$pkg" && wanted+=("$pkg"); done
[ "${#wanted[@]}" -gt 0 ] || exit 0
skip() { for pkg in "${wanted[@]}"; do echo "$pkg: $1; $(without "$pkg")" >&2; done; exit 0; }
[ "$(uname -s)" = Linux ] || skip "these packages need Linux"
[ "$(id -u)" = 0 ] || skip "installing system packages needs root"
command -v apt-get >/dev/null || skip "no apt-get here: install them with your package manager"

echo "installing ${wanted[*]} from the system's packages (once)" >&2
export DEBIAN_FRONTEND=noninteractive
# A policy that forbids starting services, for the length of the install only.
policy=/usr/sbin/policy-rc.d
made_policy=
if [ ! -e "$policy" ]; then printf '#!/bin/sh\nexit 101\n' > "$policy" && chmod +x "$policy" && made_policy=1; fi
trap '[ -n "$made_policy" ] && rm -f "$policy"' EXIT
install() { apt-get install -y -qq --no-install-recommends "${wanted[@]}" >/dev/null 2>&1; }
install || { apt-get update -qq >/dev/null && install; }
for pkg in "${wanted[@]}"; do
  missing "$pkg" && echo "$pkg: the package did not install $(commands "$pkg"); $(without "$pkg")" >&2
done
exit 0
