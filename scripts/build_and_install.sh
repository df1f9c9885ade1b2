#!/usr/bin/env bash
# Build the collection tarball, install it into a scratch path and render every module's docs.
set -euo pipefail
repo=$(cd "$(dirname "$0")/.." && pwd)
venv=${DBOPS_VENV:-$repo/.venv}
work=$(mktemp -d /tmp/dbops-build.XXXXXX)
trap 'rm -rf "$work"' EXIT
cd "$repo"
"$venv/bin/ansible-galaxy" collection build --force --output-path "$work" . >/dev/null
tarball=$(ls "$work"/dbops-admin-*.tar.gz)
if tar -tzf "$tarball" | grep -E '(^|/)(\.venv|\.build|\.git|__pycache__|tests/output)/' >/dev/null; then
  echo "build_ignore leaks scratch files into $tarball" >&2
  exit 1
fi
"$venv/bin/ansible-galaxy" collection install --force -p "$work/installed" "$tarball" >/dev/null
for m in plugins/modules/*.py; do
  name=$(basename "$m" .py)
  ANSIBLE_COLLECTIONS_PATH="$work/installed" "$venv/bin/ansible-doc" "dbops.admin.$name" > "$work/doc.txt" \
    || { echo "ansible-doc failed for dbops.admin.$name" >&2; exit 1; }
  grep -q "dbops.admin.$name" "$work/doc.txt" || { echo "ansible-doc rendered nothing for $name" >&2; exit 1; }
done
echo "built and installed $(basename "$tarball"); $(ls plugins/modules/*.py 2>/dev/null | wc -l) modules render in ansible-doc"
