#!/usr/bin/env bash
# Fails when generated code differs from what hack/update-codegen.sh makes now.
# It generates into a copy of the tree, so the working tree is never touched.
set -o errexit -o nounset -o pipefail

cd "$(dirname "$0")/.."
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT

# Copy tracked and untracked-but-not-ignored files: what a commit would hold.
git ls-files -z --cached --others --exclude-standard | while IFS= read -r -d '' f; do
  if [ -e "$f" ] || [ -L "$f" ]; then cp -P --parents "$f" "$tmp"; fi
done
(cd "$tmp" && ./hack/update-codegen.sh)

if ! diff -ruN pkg "$tmp/pkg"; then
  echo "Generated code is stale: run ./hack/update-codegen.sh" >&2
  exit 1
fi
echo "Generated code is up to date."
