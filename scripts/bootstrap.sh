#!/usr/bin/env bash
# Installs what the tests and the demo need on a fresh Debian 12 machine: system packages,
# a virtualenv with test-requirements.txt, and the collection link ansible finds.
set -euo pipefail
repo=$(cd "$(dirname "$0")/.." && pwd)
cd "$repo"

# python3-venv: Debian's python3 only suggests it, and without it "python3 -m venv" fails (no ensurepip).
packages=(python3 python3-venv postgresql-15 postgresql-client-15 postgresql-contrib mariadb-server mariadb-client mariadb-backup
          postgresql-15-pgaudit postgresql-15-hypopg pgbackrest sysbench rsync zstd lz4)
missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
  if [ "$(id -u)" -ne 0 ]; then
    echo "missing system packages: ${missing[*]} (run as root or install them)" >&2
    exit 1
  fi
  echo "installing system packages: ${missing[*]}"
  # Package scripts must not start the machine's default instances: hold services back during this
  # install only (a policy-rc.d left behind would keep every later install's services stopped), and
  # leave one that is already there as it is.
  policy=${DBOPS_POLICY_RC_D:-/usr/sbin/policy-rc.d}
  if [ ! -e "$policy" ]; then
    printf '#!/bin/sh\nexit 101\n' > "$policy" && chmod +x "$policy"
    trap 'rm -f "$policy"' EXIT
  fi
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}" >/dev/null
  if [ -n "$(trap -p EXIT)" ]; then
    rm -f "$policy"
    trap - EXIT
  fi
fi

venv=${DBOPS_VENV:-$repo/.venv}
stamp="$venv/.requirements.sha"
want=$(sha256sum test-requirements.txt | cut -d' ' -f1)
if [ ! -x "$venv/bin/python" ] || [ "$(cat "$stamp" 2>/dev/null)" != "$want" ]; then
  python3 -m venv "$venv"
  "$venv/bin/pip" install -q --disable-pip-version-check -r test-requirements.txt
  echo "$want" > "$stamp"
fi

# ansible finds the collection through this link (the repository root is the collection root).
mkdir -p .build/collections/ansible_collections/dbops
ln -sfn "$repo" .build/collections/ansible_collections/dbops/admin

# ansible-test sanity bootstraps pip from a host we cannot reach: give it a cached stand-in
# that uses ensurepip and the machine's own pip configuration.
pyver=$("$venv/bin/python" -c 'import sys; print("%d.%d" % sys.version_info[:2])')
cache="$HOME/.ansible/test/cache"
mkdir -p "$cache"
reqs=$("$venv/bin/python" -c 'import ansible_test, os; print(os.path.join(os.path.dirname(ansible_test.__file__), "_internal", "python_requirements.py"))')
for pipver in $(grep -o "pip='[0-9.]*'" "$reqs" | tr -d "pip='" | sort -u); do
  f="$cache/get_pip_${pipver//./_}.py"
  [ -f "$f" ] || cat > "$f" <<PY
# Stand-in for get-pip.py: ensurepip, then the requested pip from the configured index.
import os, subprocess, sys
subprocess.check_call([sys.executable, '-m', 'ensurepip', '--default-pip'])
env = dict(os.environ)
if env.get('PIP_CONFIG_FILE') == '/dev/null':
    del env['PIP_CONFIG_FILE']
args = [a for a in sys.argv[1:] if not a.startswith('--')] or ['pip==${pipver}']
subprocess.check_call([sys.executable, '-m', 'pip', 'install', '--disable-pip-version-check'] + args, env=env)
PY
done
echo "bootstrap ok: venv $venv, python $pyver"
