# -*- coding: utf-8 -*-
"""db_backup on MariaDB: what builds on what - a log backup after an encrypted physical full needs no key,
an incremental on an encrypted base, and never a base that state=verified found damaged.

The PostgreSQL side (encrypted plain physical backups, log backups after them, leftovers of killed runs) is in
test_db_backup_options.py."""

from __future__ import annotations

import json
import os
import shutil

import modrun
import pytest
from test_db_backup_mariadb_engine import mariadb_workdir, own_mariadb


REPO_ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
pytestmark = [
    pytest.mark.skipif(shutil.which('mariadb-backup') is None, reason='mariadb-backup not installed'),
    pytest.mark.skipif(not os.path.isfile(os.path.join(REPO_ROOT, 'plugins', 'modules', 'db_restore.py')),
                       reason='db_restore not present'),
]
KEY = 'encrypted-test-key'


@pytest.fixture(scope='module')
def source():
    with own_mariadb() as server:
        server.sql('CREATE DATABASE d')
        server.sql('CREATE TABLE d.t (id INT PRIMARY KEY)')
        yield server


@pytest.fixture()
def work(source):
    source.sql('DELETE FROM d.t')
    with mariadb_workdir('dbops-bkenc-') as path:
        yield path


def add_rows(server, count):
    start = server.sql('SELECT COALESCE(MAX(id), 0) FROM t', 'd')[0][0]
    server.sql('INSERT INTO t SELECT seq FROM seq_%d_to_%d' % (start + 1, start + count), 'd')


def backup(server, repo, check=False, **kw):
    return modrun.run_module('db_backup', dict(server.conn, repo=repo, **kw), check=check)


def taken(server, repo, **kw):
    result = backup(server, repo, **kw)
    assert not result['failed'], result.get('msg') or result['_stderr'][-3000:]
    return result['backup']


def drill(server, repo, **kw):
    result = modrun.run_module('db_restore', dict(server.conn, repo=repo, state='verified', **kw))
    assert not result['failed'] and result['result'] == 'passed', result.get('msg') or result['_stderr'][-3000:]
    return result


def damage(repo, backup_id):
    """Flip a byte of the backup's stream, then let state=verified find it (verified false, verify_problems)."""
    with open(os.path.join(repo, backup_id, 'manifest.json')) as f:
        manifest = json.load(f)
    victim = max(manifest['files'], key=lambda f: f['size'])
    with open(os.path.join(repo, backup_id, 'data', victim['path']), 'r+b') as f:
        f.seek(victim['size'] // 2)
        byte = f.read(1)
        f.seek(-1, 1)
        f.write(bytes([byte[0] ^ 1]))
    res = modrun.run_module('db_backup', {'repo': repo, 'state': 'verified', 'backup_id': backup_id,
                                          'encryption_key': KEY})
    assert res['failed'] is True and 'checksum mismatch' in res['msg'], res


def incoming(repo):
    return [e for e in os.listdir(repo) if e.startswith('.incoming-')]


def test_log_and_incremental_after_an_encrypted_physical_full(source, work):
    repo = os.path.join(work, 'repo')
    add_rows(source, 1000)
    full = taken(source, repo, method='physical', compression='zstd', encryption_key=KEY)
    # a log backup reads only the full's positions: no key, nothing decrypted (and its own key is still refused)
    add_rows(source, 10)
    log = taken(source, repo, method='physical', type='log')
    assert log['parent_id'] == full['id']
    refused = backup(source, repo, method='physical', type='log', encryption_key=KEY)
    assert refused['failed'] is True and 'drop encryption_key for type=log' in refused['msg'], refused
    # an incremental on the encrypted full (only its meta/ is decrypted: mariadb-backup reads the checkpoints)
    add_rows(source, 500)
    # with a wrong key (or none): refused before anything is written, no failed run left behind
    for key in ('not-the-key-0123456789', None):
        wrong = backup(source, repo, method='physical', type='incremental', compression='zstd',
                       **({'encryption_key': key} if key else {}))
        assert wrong['failed'] is True and ('wrong encryption key' in wrong['msg'] or 'give encryption_key'
                                            in wrong['msg']), wrong
        assert incoming(repo) == []
    inc = taken(source, repo, method='physical', type='incremental', compression='zstd', encryption_key=KEY)
    assert inc['parent_id'] == full['id'] and inc['encrypted'] is True
    assert drill(source, repo, backup_id=inc['id'], encryption_key=KEY)['rows_restored'] == 1510
    assert incoming(repo) == [] and not [e for e in os.listdir(work) if e.startswith('.dbops-scratch-')]


def test_incremental_and_differential_never_build_on_a_damaged_backup(source, work):
    repo = os.path.join(work, 'repo')
    add_rows(source, 1000)
    full = taken(source, repo, method='physical', compression='zstd')
    add_rows(source, 1000)
    inc1 = taken(source, repo, method='physical', type='incremental', compression='zstd')
    damage(repo, inc1['id'])
    add_rows(source, 1000)
    # the chain is damaged at inc1: the new incremental builds on the full, before it, and says so
    dry = backup(source, repo, check=True, method='physical', type='incremental', compression='zstd')
    assert dry['failed'] is False and inc1['id'] in json.dumps(dry.get('warnings') or []), dry
    inc2 = backup(source, repo, method='physical', type='incremental', compression='zstd')
    assert inc2['failed'] is False and inc2['backup']['parent_id'] == full['id'], inc2.get('msg')
    assert inc1['id'] in json.dumps(inc2.get('warnings') or []), inc2
    assert drill(source, repo, backup_id=inc2['backup']['id'])['rows_restored'] == 3000
    # a damaged full: nothing builds on it (check mode refuses alike, and the real run leaves nothing behind)
    damage(repo, full['id'])
    for btype in ('incremental', 'differential'):
        for check in (True, False):
            res = backup(source, repo, check=check, method='physical', type=btype, compression='zstd')
            assert res['failed'] is True, res
            assert 'the chain is damaged at %s' % full['id'] in res['msg'] and 'take a full backup' in res['msg'], res
    assert incoming(repo) == []
    # a new full: the differential builds on it, the newest undamaged full
    add_rows(source, 1000)
    full2 = taken(source, repo, method='physical', compression='zstd')
    diff = taken(source, repo, method='physical', type='differential', compression='zstd')
    assert diff['parent_id'] == full2['id']
    damage(repo, full2['id'])
    refused = backup(source, repo, method='physical', type='differential', compression='zstd')
    assert refused['failed'] is True and 'the chain is damaged at %s' % full2['id'] in refused['msg'], refused
