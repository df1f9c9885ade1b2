#!/usr/bin/env bash
# ansible-test sanity on a private copy of the collection (ansible-test needs the
# ansible_collections/<ns>/<name> layout; a copy lets several runs proceed at once).
set -euo pipefail
repo=$(cd "$(dirname "$0")/.." && pwd)
venv=${DBOPS_VENV:-$repo/.venv}
work=$(mktemp -d /tmp/dbops-sanity.XXXXXX)
trap 'rm -rf "$work"' EXIT
dest="$work/ansible_collections/dbops/admin"
mkdir -p "$dest"
cd "$repo"
# tracked files plus new files not ignored: what would be committed
git ls-files -co --exclude-standard -z | rsync -a --from0 --files-from=- ./ "$dest/"
cd "$dest"
git init -q && git add -A >/dev/null 2>&1 || true
tests=${SANITY_TESTS:-"--skip-test pslint --skip-test shellcheck --skip-test pylint"}
PATH="$venv/bin:$PATH" ansible-test sanity --local --python "$("$venv/bin/python" -c 'import sys; print("%d.%d" % sys.version_info[:2])')" $tests "$@"
