#!/usr/bin/env bash
# Installs containerd (with ctr) from the system's packages for the local
# cluster's real node, when it is missing and the machine can run one:
# Linux, root, apt. Elsewhere it says why in one line and succeeds: the
# cluster then runs simulated nodes only. The package's service is never
# started: the cluster runs its own containerd with its own config.
set -o errexit -o nounset -o pipefail

if command -v containerd >/dev/null && command -v ctr >/dev/null; then exit 0; fi
skip() { echo "real node: $1; the local cluster will have simulated nodes only" >&2; exit 0; }
[ "$(uname -s)" = Linux ] || skip "containerd needs Linux"
[ "$(id -u)" = 0 ] || skip "installing and running containerd needs root"
command -v apt-get >/dev/null || skip "no apt-get here: install containerd with your package manager"

echo "installing containerd from the system's packages (once)" >&2
export DEBIAN_FRONTEND=noninteractive
# A policy that forbids starting services, for the length of the install only.
policy=/usr/sbin/policy-rc.d
made_policy=
if [ ! -e "$policy" ]; then printf '#!/bin/sh\nexit 101\n' > "$policy" && chmod +x "$policy" && made_policy=1; fi
trap '[ -n "$made_policy" ] && rm -f "$policy"' EXIT
apt-get install -y -qq containerd >/dev/null 2>&1 || { apt-get update -qq >/dev/null && apt-get install -y -qq containerd >/dev/null; }
command -v containerd >/dev/null && command -v ctr >/dev/null || skip "the containerd package did not install containerd and ctr"
