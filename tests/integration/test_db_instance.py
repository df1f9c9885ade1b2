# -*- coding: utf-8 -*-
"""db_instance for real: PostgreSQL 15 and MariaDB instances in temporary directories on free ports."""

from __future__ import annotations

import os
import pwd
import shutil
import signal
import socket
import time

import pytest
from modrun import run_module
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
