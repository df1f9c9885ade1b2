# -*- coding: utf-8 -*-
"""db_backup retention prunes the binary log archive of a MariaDB repository to what kept backups can use."""

from __future__ import annotations

import json
import os
import shutil

import modrun
import pytest
from test_db_backup_mariadb import backup
from test_db_backup_mariadb_engine import mariadb_workdir, own_mariadb

from ansible_collections.dbops.admin.plugins.module_utils._engines import mysql_backup as mb

pytestmark = pytest.mark.skipif(shutil.which('mariadb-backup') is None, reason='mariadb-backup not installed')


@pytest.fixture()
def source():
    """A server of its own per test (test_db_backup_mariadb shares one per module)."""
    with own_mariadb() as server:
        yield server


@pytest.fixture()
def work():
    with mariadb_workdir('dbops-bkr-') as path:
        yield path


def test_retention_prunes_binlog_archive_to_kept_fulls(source, work):
    repo = os.path.join(work, 'repo')
    source.sql('CREATE DATABASE keepme')
    source.sql('CREATE TABLE t (id INT PRIMARY KEY, note VARCHAR(20))', 'keepme')
    first = backup(source, repo, method='physical', type='full', compression='zstd')
    for n in range(3):
        source.sql("INSERT INTO t VALUES (%d, 'round-%d')" % (n, n), 'keepme')
        source.sql('FLUSH BINARY LOGS')
        backup(source, repo, method='physical', type='log')
    second = backup(source, repo, method='physical', type='full', compression='zstd')
    source.sql("INSERT INTO t VALUES (99, 'after')", 'keepme')
    last_log = backup(source, repo, method='physical', type='log')
    logs = os.path.join(repo, 'logs')
    before = sorted(n for n in os.listdir(logs) if not n.startswith('.'))
    with open(os.path.join(repo, second['backup']['id'], 'manifest.json')) as f:
        start = json.load(f)['start_position']['binlog_file']
    base, cutoff, _width = mb.binlog_number(start)
    older = sorted(n for n in before if mb.binlog_number(n)[0] == base and mb.binlog_number(n)[1] < cutoff)
    assert older, (before, start)

    dry = modrun.run_module('db_backup', {'repo': repo, 'state': 'absent', 'retention': {'full': 1}}, check=True)
    assert not dry['failed'] and dry['changed'] is True, dry
    assert dry['deleted_logs'] == ['logs/' + n for n in older], dry
    assert sorted(n for n in os.listdir(logs) if not n.startswith('.')) == before, 'check mode deleted archived binary logs'

    res = modrun.run_module('db_backup', {'repo': repo, 'state': 'absent', 'retention': {'full': 1}})
    assert not res['failed'], res
    assert first['backup']['id'] in res['deleted'] and second['backup']['id'] not in res['deleted']
    assert res['deleted_logs'] == dry['deleted_logs']
    after = sorted(n for n in os.listdir(logs) if not n.startswith('.'))
    assert after == [n for n in before if n not in older]
    assert all(mb.binlog_number(n)[1] >= cutoff for n in after if mb.binlog_number(n)[0] == base)
    # what is kept still verifies, and a rerun prunes nothing more
    verified = modrun.run_module('db_backup', {'repo': repo, 'state': 'verified',
                                               'backup_id': last_log['backup']['id']})
    assert not verified['failed'], verified
    again = modrun.run_module('db_backup', {'repo': repo, 'state': 'absent', 'retention': {'full': 1}})
    assert not again['failed'] and again['changed'] is False and again['deleted_logs'] == [], again


def full_then_logs(source, repo, database, logs):
    """A database with one table, a physical full backup, then ``logs`` log backups each after an insert."""
    source.sql('CREATE DATABASE %s' % database)
    source.sql('CREATE TABLE t (id INT PRIMARY KEY)', database)
    backup(source, repo, method='physical', type='full', compression='zstd')
    for n in range(logs):
        source.sql('INSERT INTO t VALUES (%d)' % n, database)
        backup(source, repo, method='physical', type='log')


def test_log_backup_after_pruning_does_not_archive_the_pruned_binlogs_again(source, work):
    """The server still holds the binary logs retention pruned from the archive: the next log backup leaves them."""
    repo = os.path.join(work, 'repo')
    full_then_logs(source, repo, 'again', 3)
    backup(source, repo, method='physical', type='full', compression='zstd')
    source.sql('INSERT INTO t VALUES (10)', 'again')
    backup(source, repo, method='physical', type='log')
    pruned = modrun.run_module('db_backup', {'repo': repo, 'state': 'absent', 'retention': {'full': 1}})
    assert not pruned['failed'] and pruned['deleted_logs'], pruned
    logs = os.path.join(repo, 'logs')
    left = sorted(os.listdir(logs))

    source.sql('INSERT INTO t VALUES (11)', 'again')
    log = backup(source, repo, method='physical', type='log')
    now = sorted(os.listdir(logs))
    assert not set(now) & {os.path.basename(p) for p in pruned['deleted_logs']}, now
    assert set(left) <= set(now)
    with open(os.path.join(repo, log['backup']['id'], 'manifest.json')) as f:
        listed = [e['path'] for e in json.load(f)['log_files']]
    assert listed and not set(listed) & set(pruned['deleted_logs']), listed
    again = modrun.run_module('db_backup', {'repo': repo, 'state': 'absent', 'retention': {'full': 1}})
    assert not again['failed'] and again['deleted_logs'] == [], again


def test_log_backup_after_the_archive_was_pruned_empty(source, work):
    """Retention right after a full, no log backup since: the archive ends up empty, and the next log
    backup still leaves the binary logs retention removed (logs/.pruned.json remembers the newest)."""
    repo = os.path.join(work, 'repo')
    full_then_logs(source, repo, 'emptied', 2)
    source.sql('FLUSH BINARY LOGS')
    backup(source, repo, method='physical', type='full', compression='zstd')
    pruned = modrun.run_module('db_backup', {'repo': repo, 'state': 'absent', 'retention': {'full': 1}})
    assert not pruned['failed'] and pruned['deleted_logs'], pruned
    logs = os.path.join(repo, 'logs')
    assert [n for n in os.listdir(logs) if not n.startswith('.')] == [], os.listdir(logs)
    source.sql('INSERT INTO t VALUES (10)', 'emptied')
    backup(source, repo, method='physical', type='log')
    now = {n for n in os.listdir(logs) if not n.startswith('.')}
    assert now and not now & {os.path.basename(p) for p in pruned['deleted_logs']}, (now, pruned['deleted_logs'])
