# -*- coding: utf-8 -*-
"""Run a dbops.admin module for real, the way Ansible does, and return its JSON result."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def collections_root():
    """A directory holding ansible_collections/dbops/admin -> this repository."""
    root = os.environ.get('DBOPS_COLLECTIONS_ROOT') or os.path.join(REPO, '.build', 'collections')
    link = os.path.join(root, 'ansible_collections', 'dbops', 'admin')
    if not os.path.exists(link):
        os.makedirs(os.path.dirname(link), exist_ok=True)
        try:
            os.symlink(REPO, link)
        except FileExistsError:
            pass
    return root


def run_module(name, args, check=False, diff=False, env=None, timeout=600):
    """Run plugins/modules/<name>.py with args; returns the parsed result dict.

    The result always has ``failed`` (bool) and ``_stdout``/``_stderr`` for debugging.
    """
    payload = dict(args)
    payload['_ansible_check_mode'] = check
    payload['_ansible_diff'] = diff
    with tempfile.NamedTemporaryFile('w', suffix='.json', delete=False) as f:
        json.dump({'ANSIBLE_MODULE_ARGS': payload}, f)
        argsfile = f.name
    run_env = dict(os.environ)
    run_env['PYTHONPATH'] = collections_root() + os.pathsep + run_env.get('PYTHONPATH', '')
    run_env.update(env or {})
    module = os.path.join(REPO, 'plugins', 'modules', name + '.py')
    try:
        proc = subprocess.run([sys.executable, module, argsfile], capture_output=True, text=True,
                              env=run_env, timeout=timeout, check=False)
    finally:
        os.unlink(argsfile)
    try:
        result = json.loads(proc.stdout.strip().splitlines()[-1]) if proc.stdout.strip() else {}
    except (ValueError, IndexError):
        result = {'failed': True, 'msg': 'module printed no JSON'}
    result.setdefault('failed', False)
    result['_stdout'] = proc.stdout
    result['_stderr'] = proc.stderr
    result['_rc'] = proc.returncode
    return result
