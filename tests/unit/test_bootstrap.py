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


def _run_as_root_with_everything_missing(tmp_path, policy):
    """bootstrap.sh as root on a machine missing every package; apt-get is a stub that notes whether the
    policy-rc.d was in place while it ran, and sha256sum fails so that the script stops after apt."""
    stubs = tmp_path / 'bin'
    stubs.mkdir(exist_ok=True)
    log = tmp_path / 'apt.log'
    _stub(str(stubs), 'dpkg-query', 'exit 1')
    _stub(str(stubs), 'id', 'echo 0')
    _stub(str(stubs), 'apt-get', 'echo "$* policy=$(cat "%s" 2>/dev/null | tail -1)" >> "%s"' % (policy, log))
    _stub(str(stubs), 'sha256sum', 'exit 3')
    env = dict(os.environ, PATH='%s:/usr/bin:/bin' % stubs, DBOPS_VENV=str(tmp_path / 'venv'),
               DBOPS_POLICY_RC_D=str(policy))
    proc = subprocess.run(['bash', os.path.join(REPO, 'scripts', 'bootstrap.sh')], capture_output=True,
                          text=True, env=env, timeout=60, check=False)
    return proc, log.read_text() if log.exists() else ''


def test_services_are_held_back_during_the_install_only(tmp_path):
    """The policy-rc.d that keeps apt from starting the default instances stayed in place for good, so
    every later apt-get install on the machine left its services stopped."""
    policy = tmp_path / 'policy-rc.d'
    proc, log = _run_as_root_with_everything_missing(tmp_path, policy)
    assert 'install' in log and 'python3-venv' in log, proc.stdout + proc.stderr
    assert 'install -y -qq' in log and 'policy=exit 101' in log.split('install -y -qq', 1)[1]
    assert not policy.exists()


def test_an_existing_policy_rc_d_is_kept(tmp_path):
    policy = tmp_path / 'policy-rc.d'
    policy.write_text('#!/bin/sh\n# the admin\'s own\nexit 0\n')
    proc, log = _run_as_root_with_everything_missing(tmp_path, policy)
    assert 'install -y -qq' in log, proc.stdout + proc.stderr
    assert policy.read_text() == '#!/bin/sh\n# the admin\'s own\nexit 0\n'
