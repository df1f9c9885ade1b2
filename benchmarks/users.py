#!/usr/bin/env python
# -*- coding: utf-8 -*-
"""Benchmark: 200 accounts with db_user (batch) against community modules in a loop.

Converges 200 accounts (password, membership of one group role, SELECT on one table) on
throw-away PostgreSQL and MariaDB servers, first run then an unchanged re-run, with:

- dbops.admin.db_user, one task with ``users:`` (batch mode);
- community.postgresql.postgresql_user + postgresql_privs in a loop, postgresql_membership
  for the group (it takes the list of members); community.mysql.mysql_user in a loop (with
  ``priv``) and mysql_role for the group members.

Then a single-account task with each. Prints every time and the ratios. Not part of make test.

    python3 benchmarks/users.py [--accounts 200] [--engines postgresql,mariadb]

The community collections come from the ``ansible`` package, installed into a venv of its
own under benchmarks/.work/ (created on the first run); the main venv is not touched.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(HERE)
WORK = os.path.join(HERE, '.work')
VENV = os.path.join(WORK, 'venv')
sys.path.insert(0, os.path.join(REPO, 'tests', 'integration'))

from servers import MariadbServer, PostgresServer  # noqa: E402


def ensure_venv():
    python = os.path.join(VENV, 'bin', 'python')
    if not os.path.exists(os.path.join(VENV, 'bin', 'ansible-playbook')):
        os.makedirs(WORK, exist_ok=True)
        subprocess.run([sys.executable, '-m', 'venv', VENV], check=True)
        subprocess.run([python, '-m', 'pip', 'install', '-q', 'ansible', 'psycopg2-binary', 'PyMySQL'], check=True)
    return python


def collections_path():
    root = os.path.join(REPO, '.build', 'collections')
    link = os.path.join(root, 'ansible_collections', 'dbops', 'admin')
    if not os.path.exists(link):
        os.makedirs(os.path.dirname(link), exist_ok=True)
        os.symlink(REPO, link)
    return root


def run_playbook(python, workdir, name, play):
    """Run one playbook; returns (seconds, changed count, failed count)."""
    path = os.path.join(workdir, name + '.json')
    with open(path, 'w') as handle:
        json.dump([play], handle)  # JSON is YAML
    env = dict(os.environ)
    # our collection first, then the collections bundled with the ansible package
    env['ANSIBLE_COLLECTIONS_PATH'] = collections_path()
    env['ANSIBLE_PYTHON_INTERPRETER'] = python
    env['ANSIBLE_LOCALHOST_WARNING'] = 'false'
    env['ANSIBLE_INVENTORY_UNPARSED_WARNING'] = 'false'
    env['ANSIBLE_NOCOLOR'] = '1'
    env['ANSIBLE_STDOUT_CALLBACK'] = 'ansible.builtin.default'
    env['ANSIBLE_DISPLAY_OK_HOSTS'] = 'false'
    env['ANSIBLE_DISPLAY_SKIPPED_HOSTS'] = 'false'
    env['ANSIBLE_PIPELINING'] = 'true'
    start = time.monotonic()
    proc = subprocess.run([os.path.join(VENV, 'bin', 'ansible-playbook'), '-i', 'localhost,', '-c', 'local', path],
                          capture_output=True, text=True, env=env, check=False)
    seconds = time.monotonic() - start
    recap = [line for line in proc.stdout.splitlines() if line.startswith('localhost')]
    if proc.returncode != 0:
        sys.stderr.write(proc.stdout[-4000:] + proc.stderr[-2000:])
        raise SystemExit('playbook %s failed' % name)
    changed = failed = 0
    if recap:
        fields = dict(part.split('=') for part in recap[-1].split(':', 1)[1].split())
        changed, failed = int(fields.get('changed', 0)), int(fields.get('failed', 0))
    return seconds, changed, failed


def play(tasks, python):
    return {'hosts': 'localhost', 'gather_facts': False, 'vars': {'ansible_python_interpreter': python},
            'tasks': tasks}


def accounts(prefix, count):
    return [{'name': '%s_%03d' % (prefix, i), 'password': 'Bench-Pw-%d' % i} for i in range(count)]


def pg_setup(server):
    server.psql('CREATE DATABASE bench')
    server.psql('CREATE TABLE t (a int)', database='bench')
    server.psql('CREATE ROLE bench_grp NOLOGIN')


def my_setup(server):
    server.sql('CREATE DATABASE bench')
    server.sql('CREATE TABLE bench.t (a int)')
    server.sql('CREATE ROLE bench_grp')


def dbops_tasks(server, users):
    conn = dict(server.conn)
    return [{'name': 'db_user batch', 'dbops.admin.db_user': dict(
        conn, users=users, member_of=['bench_grp'],
        privileges=[{'on': 'table', 'database': 'bench', 'objects': ['t'], 'privs': ['SELECT']}])}]


def community_tasks(server, users):
    if server.engine == 'postgresql':
        login = {'login_host': '127.0.0.1', 'port': server.port, 'login_user': server.superuser,
                 'login_password': server.password}
        return [
            {'name': 'postgresql_user loop', 'loop': users, 'no_log': False,
             'community.postgresql.postgresql_user': dict(login, name='{{ item.name }}',
                                                          password='{{ item.password }}')},
            {'name': 'postgresql_membership', 'community.postgresql.postgresql_membership': dict(
                login, groups=['bench_grp'], target_roles=[u['name'] for u in users])},
            {'name': 'postgresql_privs loop', 'loop': users, 'community.postgresql.postgresql_privs': dict(
                login, login_db='bench', roles='{{ item.name }}', type='table', objs='t', privs='SELECT')},
        ]
    login = {'login_host': '127.0.0.1', 'login_port': server.port, 'login_user': 'root',
             'login_password': server.password}
    return [
        {'name': 'mysql_user loop', 'loop': users, 'community.mysql.mysql_user': dict(
            login, name='{{ item.name }}', host='%', password='{{ item.password }}', priv='bench.t:SELECT')},
        {'name': 'mysql_role members', 'community.mysql.mysql_role': dict(
            login, name='bench_grp', members=['%s@%%' % u['name'] for u in users], append_members=True)},
    ]


def measure(python, workdir, server, count):
    label = 'PostgreSQL' if server.engine == 'postgresql' else 'MariaDB'
    ours = accounts('dbops', count)
    theirs = accounts('comm', count)
    rows = []
    for phase in ('first run', 'unchanged re-run'):
        d_time, d_changed, _ = run_playbook(python, workdir, 'dbops_%s' % server.engine, play(dbops_tasks(server, ours), python))
        c_time, c_changed, _ = run_playbook(python, workdir, 'comm_%s' % server.engine,
                                            play(community_tasks(server, theirs), python))
        rows.append((label, '%d accounts, %s' % (count, phase), d_time, d_changed, c_time, c_changed))
    single_ours = [{'name': 'dbops_single', 'password': 'Single-Pw-1'}]
    single_theirs = [{'name': 'comm_single', 'password': 'Single-Pw-1'}]
    for phase in ('first run', 'unchanged re-run'):
        d_time, d_changed, _ = run_playbook(python, workdir, 'dbops_single', play(dbops_tasks(server, single_ours), python))
        c_time, c_changed, _ = run_playbook(python, workdir, 'comm_single',
                                            play(community_tasks(server, single_theirs), python))
        rows.append((label, 'single account, %s' % phase, d_time, d_changed, c_time, c_changed))
    return rows


def verify(server, count):
    """Both tools really did the work: count accounts of each prefix in the catalog."""
    if server.engine == 'postgresql':
        out = server.psql("SELECT count(*) FILTER (WHERE rolname LIKE 'dbops\\_%'), "
                          "count(*) FILTER (WHERE rolname LIKE 'comm\\_%') FROM pg_roles")
        return tuple(int(x) for x in out.split('|'))
    rows = server.sql("SELECT SUM(User LIKE 'dbops\\_%'), SUM(User LIKE 'comm\\_%') FROM mysql.user")
    return tuple(int(x) for x in rows[0])


def main():
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('--accounts', type=int, default=200)
    parser.add_argument('--engines', default='postgresql,mariadb')
    args = parser.parse_args()
    python = ensure_venv()
    workdir = tempfile.mkdtemp(prefix='dbops-bench-')
    rows = []
    try:
        for engine in args.engines.split(','):
            server = (PostgresServer() if engine == 'postgresql' else MariadbServer()).init().start()
            try:
                (pg_setup if engine == 'postgresql' else my_setup)(server)
                rows += measure(python, workdir, server, args.accounts)
                print('%s catalog: dbops accounts=%d, community accounts=%d'
                      % ((engine,) + verify(server, args.accounts)))
            finally:
                server.destroy()
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
    print()
    print('%-11s %-34s %18s %22s %8s' % ('engine', 'case', 'db_user (changed)', 'community (changed)', 'ratio'))
    for label, case, d_time, d_changed, c_time, c_changed in rows:
        print('%-11s %-34s %10.2fs (%3d) %14.2fs (%3d) %7.1fx' % (label, case, d_time, d_changed, c_time, c_changed,
                                                                  c_time / d_time))
    print('(changed = tasks or loop items reported changed; ratio = community time / db_user time)')


if __name__ == '__main__':
    main()
