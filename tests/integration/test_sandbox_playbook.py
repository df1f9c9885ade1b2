# -*- coding: utf-8 -*-
"""playbooks/sandbox.yml through ansible-playbook, on a free port in a directory of its own."""

from __future__ import annotations

import os
import re
import subprocess
import sys
import tempfile

import yaml
from modrun import REPO, collections_root
from servers import free_port


def run_sandbox(inventory, *args):
    env = dict(os.environ, ANSIBLE_COLLECTIONS_PATH=collections_root(), ANSIBLE_NOCOLOR='1', ANSIBLE_FORCE_COLOR='0')
    playbook = os.path.join(os.path.dirname(sys.executable), 'ansible-playbook')
    return subprocess.run([playbook, '-i', inventory, os.path.join(REPO, 'playbooks', 'sandbox.yml')] + list(args),
                          capture_output=True, text=True, env=env, cwd=REPO, timeout=600, check=False)


def recap(output):
    found = {}
    for host, counts in re.findall(r'^(\S+)\s+:\s+(ok=.*)$', output, re.M):
        found[host] = dict((k, int(v)) for k, v in re.findall(r'(\w+)=(\d+)', counts))
    return found


def test_check_mode_of_a_running_postgresql_sandbox_changes_nothing_and_does_not_fail(tmp_path):
    workdir = tempfile.mkdtemp(prefix='dbops-sandbox-')
    os.chmod(workdir, 0o755)
    port = free_port()
    inventory = tmp_path / 'inventory.yml'
    inventory.write_text(yaml.safe_dump({'sandbox': {'hosts': {'pg-sandbox': {
        'ansible_connection': 'local', 'ansible_python_interpreter': sys.executable,
        'dbops_engine': 'postgresql', 'dbops_login_port': port, 'dbops_login_password': 'Sandbox-Check-Pw-31',
        'dbops_sandbox_dir': workdir}}}}))
    try:
        up = run_sandbox(str(inventory))
        assert up.returncode == 0, (up.stdout + up.stderr)[-4000:]
        for extra in (['--check', '--diff'], []):
            again = run_sandbox(str(inventory), *extra)
            output = again.stdout + again.stderr
            assert again.returncode == 0, (extra, output[-4000:])
            assert recap(output)['pg-sandbox']['changed'] == 0, (extra, output[-4000:])
            assert 'Sandbox-Check-Pw-31' not in output
        # a sandbox that lost its sample database: check mode reads that, and says it would create it again
        argv = ['psql', '-X', '-q', '-h', os.path.join(workdir, 'postgresql'), '-p', str(port), '-U', 'postgres',
                '-d', 'postgres', '-c', 'DROP DATABASE shop']
        if os.geteuid() == 0:
            argv = ['runuser', '-u', 'postgres', '--'] + argv
        drop = subprocess.run(argv, capture_output=True, text=True, check=False)
        assert drop.returncode == 0, drop.stderr
        check = run_sandbox(str(inventory), '--check', '-v')
        output = check.stdout + check.stderr
        assert check.returncode == 0, output[-4000:]
        create = output.split('TASK [dbops.admin.sandbox : Create the sample database]', 1)[1].split('TASK [', 1)[0]
        assert 'Command would have run if not in check mode' in create, output[-4000:]
        assert recap(output)['pg-sandbox']['failed'] == 0
    finally:
        run_sandbox(str(inventory), '-e', 'sandbox_state=absent')
        subprocess.run(['rm', '-rf', workdir], check=False)
