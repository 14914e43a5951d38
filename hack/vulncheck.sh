#!/usr/bin/env bash
# govulncheck without the network: the vulnerability database is built from
# the OSV files of a pinned golang.org/x/vulndb module (the Go module proxy is
# reachable where vuln.go.dev may not be), once, into the tools cache (hack/build-tools.sh's $TOOLS). Fails on
# any vulnerability the code reaches, except those in hack/vulncheck-accepted.txt.
set -o errexit -o nounset -o pipefail

root=$(cd "$(dirname "$0")/.." && pwd)
VULN_VERSION=v1.1.4
VULNDB_VERSION=v0.0.0-20261105234957-e22db6528018
db="${TOOLS:-${XDG_CACHE_HOME:-$HOME/.cache}/imageprepull/tools}/vulndb-$VULNDB_VERSION"
cd "$root"

if [ ! -f "$db/index/db.json" ]; then
  echo "building the vulnerability database from golang.org/x/vulndb@$VULNDB_VERSION (once)" >&2
  src=$(GOFLAGS=-mod=mod go mod download -json "golang.org/x/vulndb@$VULNDB_VERSION" | sed -n 's/^\t"Dir": "\(.*\)",$/\1/p')
  rm -rf "$db.tmp"
  (cd /tmp && GOFLAGS="-mod=mod -trimpath" go run "golang.org/x/vulndb/cmd/indexdb@$VULNDB_VERSION" -vulns "$src/data/osv" -out "$db.tmp")
  mv "$db.tmp" "$db"
fi

# -trimpath as the Makefile builds: the standard library these compile with is the controller's, compiled once.
out=$(GOFLAGS="-mod=mod -trimpath" go run "golang.org/x/vuln/cmd/govulncheck@$VULN_VERSION" -db "file://$db" ./... 2>&1) || true
found=$(grep -oE '^Vulnerability #[0-9]+: GO-[0-9]+-[0-9]+' <<<"$out" | awk '{print $3}' | sort -u)
accepted=$(grep -oE '^GO-[0-9]+-[0-9]+' hack/vulncheck-accepted.txt | sort -u)
new=$(comm -23 <(echo "$found") <(echo "$accepted") | grep . || true)
echo "govulncheck (database of $VULNDB_VERSION): reached: $(echo $found | wc -w), accepted: $(comm -12 <(echo "$found") <(echo "$accepted") | grep -c . || true)"
if [ -n "$new" ]; then
  echo "$out"
  echo "vulnerabilities the code reaches: $(echo $new)" >&2
  exit 1
fi
