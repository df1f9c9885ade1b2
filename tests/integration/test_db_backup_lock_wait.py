# -*- coding: utf-8 -*-
"""A MariaDB backup kept waiting for its global lock gives up after DBOPS_BACKUP_LOCK_WAIT_SECONDS and names
the sessions that held it up (id, user, time, statement), publishing nothing.

Before: a logical backup waited 120 seconds for FLUSH TABLES WITH READ LOCK and failed with "Lock wait timeout
exceeded"; a physical one failed with "Error on BACKUP STAGE START query execution"; neither said which
session to end, and the wait could not be changed.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import threading
import time

import pytest

from modrun import run_module
from servers import make_workdir

WAIT = 4


@pytest.fixture
def workdir(mariadb_server):
    path = make_workdir('dbops-lockwait-', mariadb_server.user if os.geteuid() == 0 else None)
    yield path
    shutil.rmtree(path, ignore_errors=True)


@pytest.fixture
def shop(mariadb_server):
    mariadb_server.sql('DROP DATABASE IF EXISTS lw_shop')
    mariadb_server.sql('CREATE DATABASE lw_shop')
    mariadb_server.sql('CREATE TABLE lw_shop.t (id int PRIMARY KEY, v int) ENGINE=InnoDB')
    mariadb_server.sql('INSERT INTO lw_shop.t VALUES (1, 0)')
    yield mariadb_server
    mariadb_server.sql('DROP DATABASE IF EXISTS lw_shop')


class Blocker:
    """Another session that holds the backup up: a long UPDATE, or LOCK TABLES ... WRITE left idle."""

    def __init__(self, server, kind):
        self.conn = server.connect()
        with self.conn.cursor() as cur:
            cur.execute('SELECT CONNECTION_ID()')
            self.id = cur.fetchone()[0]
        self.kind = kind
        self.thread = None
        self.server = server

    def __enter__(self):
        if self.kind == 'update':
            def run():
                try:
                    with self.conn.cursor() as cur:
                        cur.execute('UPDATE lw_shop.t SET v = v + 0 * SLEEP(120)')
                except Exception:   # killed at the end of the test
                    pass
            self.thread = threading.Thread(target=run, daemon=True)
            self.thread.start()
            time.sleep(1)
        else:
            with self.conn.cursor() as cur:
                cur.execute('LOCK TABLES lw_shop.t WRITE')
        return self

    def __exit__(self, *exc):
        self.server.sql('KILL %d' % self.id)
        if self.thread:
            self.thread.join(30)
        try:
            self.conn.close()
        except Exception:
            pass


def _published(repo):
    if not os.path.isdir(repo):
        return []
    return [e for e in os.listdir(repo) if os.path.isfile(os.path.join(repo, e, 'manifest.json'))]


@pytest.mark.parametrize('method', ['logical', 'physical'])
@pytest.mark.parametrize('kind', ['update', 'lock_tables'])
def test_a_backup_kept_waiting_for_its_lock_names_the_sessions_holding_it(shop, workdir, method, kind):
    repo = os.path.join(workdir, 'repo')
    env = {'DBOPS_BACKUP_LOCK_WAIT_SECONDS': str(WAIT)}
    with Blocker(shop, kind) as blocker:
        started = time.time()
        res = run_module('db_backup', dict(shop.conn, repo=repo, method=method, databases=['lw_shop'])
                         if method == 'logical' else dict(shop.conn, repo=repo, method=method), env=env)
        took = time.time() - started
    assert res['failed'] is True, res
    msg = res['msg']
    assert took < WAIT + 60, (took, msg)
    assert 'waited %d seconds (DBOPS_BACKUP_LOCK_WAIT_SECONDS)' % WAIT in msg, msg
    assert 'session %d (root@' % blocker.id in msg, msg
    # only the session to blame: not the backup's own export sessions nor its own connection
    assert re.findall(r'session (\d+) \(', msg) == [str(blocker.id)], msg
    if kind == 'update':
        assert 'UPDATE lw_shop.t SET v = v + 0 * SLEEP(120)' in msg, msg
        assert 'KILL <id>' in msg
    else:
        assert 'LOCK TABLES' in msg and 'Idle sessions' in msg, msg
    assert shop.password not in json.dumps(res)
    assert _published(repo) == [], os.listdir(repo)
    # the session gone, the same backup goes through
    res = run_module('db_backup', dict(shop.conn, repo=repo, method=method, databases=['lw_shop'])
                     if method == 'logical' else dict(shop.conn, repo=repo, method=method), env=env)
    assert res['failed'] is False, res


@pytest.mark.parametrize('value', ['abc', '0', '-5', '1.5'])
def test_a_bad_lock_wait_setting_fails_before_anything_is_written(shop, workdir, value):
    repo = os.path.join(workdir, 'repo')
    for check in (True, False):
        res = run_module('db_backup', dict(shop.conn, repo=repo, databases=['lw_shop']), check=check,
                         env={'DBOPS_BACKUP_LOCK_WAIT_SECONDS': value})
        assert res['failed'] is True, res
        assert 'DBOPS_BACKUP_LOCK_WAIT_SECONDS' in res['msg'] and 'whole number of seconds' in res['msg'], res
        assert not os.path.exists(repo)
