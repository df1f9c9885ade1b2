# -*- coding: utf-8 -*-
"""db_instance for real: PostgreSQL 15 and MariaDB instances in temporary directories on free ports."""

from __future__ import annotations

import os
import pwd
import re
import shutil
import signal
import socket
import subprocess
import sys
import time

import pytest
from modrun import REPO, collections_root, run_module
from servers import free_port, make_workdir

PASSWORD = 'Inst-Test-Secret-43'
ENGINES = {
    'postgresql': {'user': 'postgres', 'settings': {'work_mem': '7MB'}, 'setting': ('work_mem', '7MB')},
    'mariadb': {'user': 'mysql', 'settings': {'max_connections': 77, 'innodb_buffer_pool_size': '32M'},
                'setting': ('max_connections', '77')},
}


def os_user(engine):
    return ENGINES[engine]['user'] if os.geteuid() == 0 else None


def alive(pid):
    """A live process (a zombie waiting for a parent that never reaps it is not one)."""
    try:
        with open('/proc/%d/stat' % pid) as handle:
            return handle.read().rsplit(')', 1)[1].split()[0] != 'Z'
    except (OSError, TypeError, IndexError):
        return False


def listening(port):
    try:
        with socket.create_connection(('127.0.0.1', port), timeout=1):
            return True
    except OSError:
        return False


def login_and_read(engine, port, setting):
    """A real login over TCP with the superuser password; returns the setting as the server reports it."""
    if engine == 'postgresql':
        import psycopg2
        conn = psycopg2.connect(host='127.0.0.1', port=port, user='postgres', password=PASSWORD,
                                dbname='postgres', connect_timeout=5)
        try:
            with conn.cursor() as cur:
                cur.execute('SHOW %s' % setting)
                return str(cur.fetchone()[0])
        finally:
            conn.close()
    import pymysql
    conn = pymysql.connect(host='127.0.0.1', port=port, user='root', password=PASSWORD, connect_timeout=5)
    try:
        with conn.cursor() as cur:
            cur.execute('SELECT @@%s' % setting)
            return str(cur.fetchone()[0])
    finally:
        conn.close()


@pytest.fixture
def workdir(request):
    engine = request.node.callspec.params['engine']
    path = make_workdir('dbops-inst-', ENGINES[engine]['user'] if os.geteuid() == 0 else pwd.getpwuid(os.geteuid()).pw_name)
    yield path
    # whatever happened, no server of ours survives the test
    for pidfile in ('data/postmaster.pid', 'data/mysqld.pid'):
        try:
            with open(os.path.join(path, pidfile)) as handle:
                pid = int(handle.readline())
            os.kill(pid, signal.SIGKILL if pidfile.endswith('mysqld.pid') else signal.SIGQUIT)
            time.sleep(0.5)
        except (OSError, ValueError):
            pass
    shutil.rmtree(path, ignore_errors=True)


def call(engine, data_dir, check=False, **kw):
    args = {'engine': engine, 'data_dir': data_dir}
    if os_user(engine):
        args['os_user'] = os_user(engine)
    args.update(kw)
    result = run_module('db_instance', args, check=check, diff=True)
    assert PASSWORD not in result['_stdout'] + result['_stderr']
    return result


@pytest.mark.parametrize('engine', ['postgresql', 'mariadb'])
def test_lifecycle(engine, workdir):
    data_dir = os.path.join(workdir, 'data')
    port = free_port()
    spec = ENGINES[engine]
    wanted = dict(port=port, superuser_password=PASSWORD, settings=spec['settings'])

    # check mode: a prediction, nothing on disk, nothing listening
    result = call(engine, data_dir, check=True, **wanted)
    assert not result['failed'], result['msg']
    assert result['changed'] and result['state'] == 'started' and result['actions'] == ['initialize', 'start']
    assert result['diff']['before']['state'] == 'absent' and result['diff']['after']['state'] == 'started'
    assert not os.path.exists(data_dir) and not listening(port)

    # started: initialized, running, and the superuser logs in with its password over TCP
    result = call(engine, data_dir, **wanted)
    assert not result['failed'], result['msg']
    assert result['changed'] and result['state'] == 'started'
    pid = result['pid']
    assert alive(pid) and listening(port)
    assert login_and_read(engine, port, spec['setting'][0]) == spec['setting'][1]
    assert result['version'] and result['port'] == port
    assert os.path.exists(result['socket'])

    # second run: nothing to do, same process
    result = call(engine, data_dir, **wanted)
    assert not result['failed'], result['msg']
    assert not result['changed'] and result['pid'] == pid and result['commands'] == []

    # reloaded keeps the process; restarted replaces it
    result = call(engine, data_dir, state='reloaded')
    assert result['changed'] and result['pid'] == pid and alive(pid)
    result = call(engine, data_dir, state='restarted')
    assert not result['failed'], result['msg']
    assert result['changed'] and result['pid'] != pid and alive(result['pid']) and not alive(pid)
    assert login_and_read(engine, port, spec['setting'][0]) == spec['setting'][1]
    pid = result['pid']

    # stopped, in check mode first
    result = call(engine, data_dir, check=True, state='stopped')
    assert result['changed'] and alive(pid)
    result = call(engine, data_dir, state='stopped')
    assert result['changed'] and result['state'] == 'stopped' and result['pid'] is None
    assert not alive(pid) and not listening(port)
    assert not call(engine, data_dir, state='stopped')['changed']

    # initialized on a stopped instance leaves it stopped; started brings it back with its data
    assert not call(engine, data_dir, state='initialized')['changed']
    result = call(engine, data_dir, state='started')
    assert result['changed'] and alive(result['pid'])
    assert login_and_read(engine, port, spec['setting'][0]) == spec['setting'][1]
    pid = result['pid']

    # absent without force stops but keeps the data
    result = call(engine, data_dir, state='absent')
    assert result['changed'] and result['state'] == 'stopped' and not alive(pid)
    assert 'kept' in str(result.get('warnings'))
    assert os.path.isdir(data_dir) and os.listdir(data_dir)
    assert not call(engine, data_dir, state='absent')['changed']

    # absent with force: check mode keeps everything, the real run removes the directory
    result = call(engine, data_dir, check=True, state='absent', force=True)
    assert result['changed'] and os.path.isdir(data_dir)
    result = call(engine, data_dir, state='absent', force=True)
    assert result['changed'] and result['state'] == 'absent' and not os.path.exists(data_dir)
    assert not call(engine, data_dir, state='absent', force=True)['changed']


@pytest.mark.parametrize('engine', ['postgresql', 'mariadb'])
def test_bad_input_changes_nothing(engine, workdir):
    # a directory with someone else's files is never initialized over, nor removed
    foreign = os.path.join(workdir, 'notes')
    os.mkdir(foreign)
    with open(os.path.join(foreign, 'payroll.csv'), 'w') as handle:
        handle.write('alice,100\n')
    for state, extra in (('started', {}), ('absent', {'force': True})):
        result = call(engine, foreign, state=state, port=free_port(), **extra)
        assert result['failed'] and 'not empty and holds no' in result['msg']
        assert os.listdir(foreign) == ['payroll.csv']

    # a port another process listens on
    with socket.socket() as busy:
        busy.bind(('127.0.0.1', 0))
        busy.listen(1)
        port = busy.getsockname()[1]
        data_dir = os.path.join(workdir, 'data')
        result = call(engine, data_dir, port=port, superuser_password=PASSWORD)
        assert result['failed'] and 'port %d' % port in result['msg'] and 'in use' in result['msg']
        assert not os.path.exists(data_dir)

    # a setting name that would smuggle a second line into the configuration
    result = call(engine, data_dir, port=free_port(), settings={'work_mem = 1\nfsync': 'off'})
    assert result['failed'] and 'not a valid setting name' in result['msg']
    assert not os.path.exists(data_dir)

    # a failing initialization (unknown server setting) leaves no half-made directory
    if engine == 'mariadb':
        result = call(engine, data_dir, port=free_port(), settings={'innodb_no_such_option': 1})
        assert result['failed'] and 'could not' in result['msg']
        assert not os.path.exists(data_dir)


# ---- the sandbox role: up twice (the second run changes nothing), then absent -----------------------------

def run_sandbox(inventory, sandbox_dir, *extra):
    argv = [os.path.join(os.path.dirname(sys.executable), 'ansible-playbook'), '-i', inventory,
            os.path.join(REPO, 'playbooks', 'sandbox.yml')] + list(extra)
    env = dict(os.environ, ANSIBLE_COLLECTIONS_PATH=collections_root(), DBOPS_SANDBOX_DIR=sandbox_dir,
               ANSIBLE_NOCOLOR='1', ANSIBLE_STDOUT_CALLBACK='default')
    proc = subprocess.run(argv, capture_output=True, text=True, env=env, cwd=REPO, timeout=900, check=False)
    recap = {m.group(1): {'ok': int(m.group(2)), 'changed': int(m.group(3)), 'failed': int(m.group(4))}
             for m in re.finditer(r'^(\S+)\s+: ok=(\d+)\s+changed=(\d+)\s+unreachable=\d+\s+failed=(\d+)',
                                  proc.stdout, re.M)}
    return proc, recap


def sandbox_counts(engine, port, password):
    if engine == 'postgresql':
        import psycopg2
        conn = psycopg2.connect(host='127.0.0.1', port=port, user='postgres', password=password, dbname='shop')
    else:
        import pymysql
        conn = pymysql.connect(host='127.0.0.1', port=port, user='root', password=password, database='shop')
    try:
        with conn.cursor() as cur:
            cur.execute('SELECT (SELECT count(*) FROM customers), (SELECT count(*) FROM products), '
                        '(SELECT count(*) FROM orders)')
            return tuple(int(v) for v in cur.fetchone())
    finally:
        conn.close()


def test_sandbox_role_is_idempotent_and_removable():
    sandbox_dir = os.path.join(make_workdir('dbops-sbx-', 'root' if os.geteuid() == 0 else
                                            pwd.getpwuid(os.geteuid()).pw_name), 'sandbox')
    ports = {'postgresql': free_port(), 'mariadb': free_port()}
    with open(os.path.join(REPO, 'playbooks', 'inventory', 'sandbox.yml')) as handle:
        text = handle.read()
    text = text.replace('dbops_login_port: 55432', 'dbops_login_port: %d' % ports['postgresql'])
    text = text.replace('dbops_login_port: 53306', 'dbops_login_port: %d' % ports['mariadb'])
    inventory = os.path.join(os.path.dirname(sandbox_dir), 'inventory.yml')
    with open(inventory, 'w') as handle:
        handle.write(text)
    try:
        proc, recap = run_sandbox(inventory, sandbox_dir)
        assert proc.returncode == 0, proc.stdout[-3000:]
        assert set(recap) == {'pg-sandbox', 'mariadb-sandbox'}
        assert all(host['changed'] > 0 for host in recap.values())
        passwords = {}
        for engine in ports:
            with open(os.path.join(sandbox_dir, engine + '.pw')) as handle:
                passwords[engine] = handle.read().strip()
            assert len(passwords[engine]) == 24
            assert oct(os.stat(os.path.join(sandbox_dir, engine + '.pw')).st_mode & 0o777) == '0o600'
            assert sandbox_counts(engine, ports[engine], passwords[engine]) == (1000, 200, 5000)

        proc, recap = run_sandbox(inventory, sandbox_dir, '-v')
        assert proc.returncode == 0, proc.stdout[-3000:]
        assert {host: r['changed'] for host, r in recap.items()} == {'pg-sandbox': 0, 'mariadb-sandbox': 0}
        assert not any(pw in proc.stdout + proc.stderr for pw in passwords.values())

        proc, recap = run_sandbox(inventory, sandbox_dir, '-e', 'sandbox_state=absent')
        assert proc.returncode == 0, proc.stdout[-3000:]
        for engine, port in ports.items():
            assert not os.path.exists(os.path.join(sandbox_dir, engine))
            assert not listening(port)
    finally:
        for engine in ports:
            run_module('db_instance', {'engine': engine, 'data_dir': os.path.join(sandbox_dir, engine),
                                       'state': 'absent', 'force': True})
        shutil.rmtree(os.path.dirname(sandbox_dir), ignore_errors=True)
