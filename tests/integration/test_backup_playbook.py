# -*- coding: utf-8 -*-
"""playbooks/backup.yml (the backup runbook role) through ansible-playbook against the session servers."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import tempfile

from modrun import REPO, collections_root
import yaml
from test_daily_playbook import write_inventory


def run_backup(inventory, repos, tags=None, extra_args=()):
    env = dict(os.environ, ANSIBLE_COLLECTIONS_PATH=collections_root(), ANSIBLE_SHOW_CUSTOM_STATS='true',
               ANSIBLE_NOCOLOR='1', ANSIBLE_FORCE_COLOR='0')
    playbook = os.path.join(os.path.dirname(sys.executable), 'ansible-playbook')
    argv = [playbook, '-i', inventory, os.path.join(REPO, 'playbooks', 'backup.yml'),
            '-e', json.dumps({'runbook_backup_repo': repos + '/{{ inventory_hostname }}'})]
    if tags:
        argv += ['--tags', tags]
    argv += list(extra_args)
    return subprocess.run(argv, capture_output=True, text=True, env=env, cwd=REPO, timeout=900, check=False)


def recap(output):
    """{host: {ok, changed, failed, ...}} from the PLAY RECAP."""
    found = {}
    for host, counts in re.findall(r'^(\S+)\s+:\s+(ok=.*)$', output, re.M):
        found[host] = dict((k, int(v)) for k, v in re.findall(r'(\w+)=(\d+)', counts))
    return found


def test_backup_runbook_takes_prunes_and_drills_then_is_idempotent(pg_server, mariadb_server, tmp_path):
    inventory = write_inventory(tmp_path / 'inventory.yml', pg_server, mariadb_server)
    mariadb_server.sql('CREATE DATABASE IF NOT EXISTS runbook_shop')
    mariadb_server.sql('CREATE TABLE IF NOT EXISTS orders (id INT PRIMARY KEY, total DECIMAL(10,2))', 'runbook_shop')
    mariadb_server.sql('INSERT IGNORE INTO orders VALUES (1, 9.50), (2, 12.00)', 'runbook_shop')
    workdir = tempfile.mkdtemp(prefix='dbops-runbook-')
    os.chmod(workdir, 0o755)
    repos = os.path.join(workdir, 'repos')
    try:
        first = run_backup(inventory, repos)
        output = first.stdout + first.stderr
        assert first.returncode == 0, output[-5000:]
        assert pg_server.password not in output and mariadb_server.password not in output
        counts = recap(output)
        assert counts['pg-test']['failed'] == 0 and counts['mariadb-test']['failed'] == 0, counts
        assert 'dbops_backup' in output                      # set_stats published
        for host in ('pg-test', 'mariadb-test'):
            ids = sorted(n for n in os.listdir(os.path.join(repos, host)) if n[0].isdigit())
            manifests = [json.load(open(os.path.join(repos, host, i, 'manifest.json'))) for i in ids]
            kinds = sorted((m['method'], m['type']) for m in manifests)
            assert ('logical', 'full') in kinds and ('physical', 'full') in kinds, (host, kinds)
            assert all(m['verified'] for m in manifests)
        # both drills passed on both hosts
        for host in ('pg-test', 'mariadb-test'):
            summary = re.search(r'ok: \[%s\] => \{\s*"__runbook_backup_summary": (\{.*?\n    \})' % host, output, re.S)
            summary = json.loads(summary.group(1))
            assert summary['drill_logical'] == 'passed' and summary['drill_physical'] == 'passed', summary
            assert summary['logical_taken'] is True and summary['physical_taken'] is True, summary
        # the same schedule again: nothing new to take, nothing changed
        second = run_backup(inventory, repos)
        output = second.stdout + second.stderr
        assert second.returncode == 0, output[-5000:]
        counts = recap(output)
        assert counts['pg-test']['changed'] == 0 and counts['mariadb-test']['changed'] == 0, (counts, output[-5000:])
        # one schedule alone (the log backups): runs only its step
        log_only = run_backup(inventory, repos, tags='log')
        assert log_only.returncode == 0 and 'Logical full backup' not in log_only.stdout
    finally:
        subprocess.run(['rm', '-rf', workdir], check=False)


def test_check_mode_of_a_first_run_changes_nothing_and_does_not_fail(pg_server, tmp_path):
    """--check --diff on a host whose repository does not exist yet: the drills have nothing to verify."""
    hosts = {'pg-test': {'ansible_connection': 'local', 'ansible_python_interpreter': sys.executable,
                         'dbops_engine': 'postgresql', 'dbops_login_host': '127.0.0.1',
                         'dbops_login_port': pg_server.port, 'dbops_login_user': pg_server.superuser,
                         'dbops_login_password': pg_server.password}}
    inventory = tmp_path / 'inventory.yml'
    inventory.write_text(yaml.safe_dump({'all': {'hosts': hosts}}))
    repos = str(tmp_path / 'repos')
    proc = run_backup(str(inventory), repos, extra_args=['--check', '--diff'])
    output = proc.stdout + proc.stderr
    assert proc.returncode == 0, output[-5000:]
    assert not os.path.exists(repos)                      # check mode wrote nothing
    summary = re.search(r'ok: \[pg-test\] => \{\s*"__runbook_backup_summary": (\{.*?\n    \})', output, re.S)
    summary = json.loads(summary.group(1))
    # nothing taken, nothing drilled: the backups to drill do not exist until the real run
    assert summary['drill_logical'] == 'skipped' and summary['drill_physical'] == 'skipped', summary
    assert summary['logical_taken'] is False and summary['physical_taken'] is False, summary


def test_a_failed_drill_is_in_the_summary_the_other_drill_runs_and_the_run_fails(mariadb_server, tmp_path):
    """The drill is the runbook's proof: a failed one is published (AWX), and still fails the host."""
    mariadb_server.sql('CREATE DATABASE IF NOT EXISTS drill_shop')
    mariadb_server.sql('CREATE TABLE IF NOT EXISTS items (id INT PRIMARY KEY)', 'drill_shop')
    mariadb_server.sql('INSERT IGNORE INTO items VALUES (1), (2), (3)', 'drill_shop')
    hosts = {'mariadb-test': {'ansible_connection': 'local', 'ansible_python_interpreter': sys.executable,
                              'dbops_engine': 'mariadb', 'dbops_login_host': '127.0.0.1',
                              'dbops_login_port': mariadb_server.port, 'dbops_login_user': 'root',
                              'dbops_login_password': mariadb_server.password}}
    inventory = tmp_path / 'inventory.yml'
    inventory.write_text(yaml.safe_dump({'all': {'hosts': hosts}}))
    workdir = tempfile.mkdtemp(prefix='dbops-runbook-')
    os.chmod(workdir, 0o755)
    repos = os.path.join(workdir, 'repos')
    try:
        first = run_backup(str(inventory), repos, tags='logical,physical')
        assert first.returncode == 0, (first.stdout + first.stderr)[-5000:]
        repo = os.path.join(repos, 'mariadb-test')
        # the logical backup's manifest now promises a row the dump does not hold: its drill must fail
        for name in os.listdir(repo):
            path = os.path.join(repo, name, 'manifest.json')
            if not os.path.exists(path):
                continue
            with open(path) as handle:
                manifest = json.load(handle)
            if manifest['method'] != 'logical':
                continue
            for dump in manifest['details']['dumps']:
                for table in dump.get('tables') or []:
                    if dump['database'] == 'drill_shop' and table['name'] == 'items':
                        table['rows'] += 1
            with open(path, 'w') as handle:
                json.dump(manifest, handle)
        drill = run_backup(str(inventory), repos, tags='drill')
        output = drill.stdout + drill.stderr
        assert drill.returncode != 0, output[-5000:]
        assert mariadb_server.password not in output
        assert recap(output)['mariadb-test']['failed'] == 1, output[-3000:]
        summary = re.search(r'ok: \[mariadb-test\] => \{\s*"__runbook_backup_summary": (\{.*?\n    \})', output, re.S)
        assert summary, output[-5000:]
        summary = json.loads(summary.group(1))
        assert summary['drill_logical'] == 'failed', summary
        assert 'drill_shop.items: 3 rows restored, 4 in the backup snapshot' in summary['drill_logical_error'], summary
        assert summary['drill_physical'] == 'passed' and summary['drill_physical_error'] is None, summary
        stats = re.search(r'RUN: (\{.*\})\s*$', output, re.M)
        assert stats, output[-3000:]
        assert json.loads(stats.group(1))['dbops_backup']['mariadb-test']['drill_logical'] == 'failed'
        assert 'restore drill failed' in output
    finally:
        subprocess.run(['rm', '-rf', workdir], check=False)
