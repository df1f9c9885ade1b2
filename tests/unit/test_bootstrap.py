# -*- coding: utf-8 -*-
"""scripts/bootstrap.sh on a fresh machine, with dpkg-query and id stubbed: which packages it insists on."""

from __future__ import annotations

import os
import stat
import subprocess

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def _stub(directory, name, body):
    path = os.path.join(directory, name)
    with open(path, 'w') as handle:
        handle.write('#!/bin/sh\n' + body + '\n')
    os.chmod(path, os.stat(path).st_mode | stat.S_IXUSR)


def test_fresh_debian_without_venv_support_names_the_packages_it_needs(tmp_path):
    """On a fresh Debian 12 nothing is installed and python3 cannot make a virtualenv (python3-venv is only
    suggested): as a non-root user the script stops at once and names every package, the venv ones included."""
    stubs = tmp_path / 'bin'
    stubs.mkdir()
    _stub(str(stubs), 'dpkg-query', 'exit 1')       # no package is installed
    _stub(str(stubs), 'id', 'echo 1000')            # not root: the script lists what is missing and stops
    env = dict(os.environ, PATH='%s:/usr/bin:/bin' % stubs, DBOPS_VENV=str(tmp_path / 'venv'))
    proc = subprocess.run(['bash', os.path.join(REPO, 'scripts', 'bootstrap.sh')], capture_output=True,
                          text=True, env=env, timeout=60, check=False)
    assert proc.returncode == 1, proc.stdout + proc.stderr
    missing = proc.stderr.split('missing system packages:', 1)[1].split('(')[0].split()
    assert 'python3' in missing and 'python3-venv' in missing, proc.stderr
    assert not (tmp_path / 'venv').exists()
