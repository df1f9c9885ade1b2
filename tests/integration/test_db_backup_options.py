# -*- coding: utf-8 -*-
"""db_backup option handling against a real throw-away PostgreSQL server.

max_age only counts a fresh backup of what is asked for; retention with a damaged newest full;
a bad repository path or a bad option value fails clearly before anything is written; encrypted plain
physical backups keep their empty directories; log backups after an encrypted full need no key;
leftovers of killed runs are removed by the next run that takes the lock.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import time

import pytest

from modrun import collections_root, run_module
from servers import PostgresServer, free_port, make_workdir, pg_bindir

PG_USER = 'postgres'


@pytest.fixture(scope='module')
def server():
    srv = PostgresServer().init().start()
    srv.psql('CREATE DATABASE a')
    srv.psql('CREATE DATABASE b')
    srv.psql("CREATE TABLE t (v text); INSERT INTO t VALUES ('in a')", 'a')
    srv.psql('CREATE TABLE u (v int); INSERT INTO u VALUES (1)', 'b')
    yield srv
    srv.destroy()


@pytest.fixture
def workdir():
    path = make_workdir('dbops-bkopt-', PG_USER if os.geteuid() == 0 else None)
    yield path
    shutil.rmtree(path, ignore_errors=True)


def backup(server, repo, check=False, diff=False, **kwargs):
    args = dict(server.conn, repo=repo)
    args.update(kwargs)
    return run_module('db_backup', args, check=check, diff=diff)


def entries(repo):
    """Everything in the repository (None when it does not exist)."""
    return sorted(os.listdir(repo)) if os.path.isdir(repo) else None


def backups(repo):
    return sorted(e for e in os.listdir(repo) if not e.startswith('.') and e != 'logs')


def manifest_of(repo, backup_id):
    with open(os.path.join(repo, backup_id, 'manifest.json')) as f:
        return json.load(f)


# ---- max_age -------------------------------------------------------------------------------------
def test_max_age_counts_only_a_backup_of_the_databases_asked_for(server, workdir):
    repo = os.path.join(workdir, 'repo')
    of_a = backup(server, repo, databases=['a'], max_age='1h')
    assert of_a['failed'] is False and of_a['changed'] is True, of_a
    # a fresh backup of [a] does not stand for one of [b]: check mode says it would take one, the real run takes it
    dry = backup(server, repo, check=True, databases=['b'], max_age='1h')
    assert dry['failed'] is False and dry['changed'] is True and dry['up_to_date'] is False, dry
    of_b = backup(server, repo, databases=['b'], max_age='1h')
    assert of_b['failed'] is False and of_b['changed'] is True and of_b['up_to_date'] is False, of_b
    assert of_b['backup']['databases'] == ['b']
    again = backup(server, repo, databases=['b'], max_age='1h')
    assert again['changed'] is False and again['up_to_date'] is True and again['backup']['id'] == of_b['backup']['id']
    assert 'skipped' not in again   # Ansible would show the task as skipped
    # all databases: neither [a] nor [b] is a backup of all
    everything = backup(server, repo, max_age='1h')
    assert everything['failed'] is False and everything['changed'] is True, everything
    assert manifest_of(repo, everything['backup']['id'])['all_databases'] is True
    assert {'a', 'b'} <= set(everything['backup']['databases'])
    again = backup(server, repo, max_age='1h')
    assert again['changed'] is False and again['backup']['id'] == everything['backup']['id'], again
    # ... and the backup of all covers a list of databases it holds
    again = backup(server, repo, databases=['a', 'b'], max_age='1h')
    assert again['changed'] is False and again['backup']['id'] == everything['backup']['id'], again
    # another label is another backup
    labelled = backup(server, repo, databases=['b'], max_age='1h', label='pre-upgrade')
    assert labelled['changed'] is True and labelled['up_to_date'] is False, labelled
    assert len(backups(repo)) == 4


# ---- retention -----------------------------------------------------------------------------------
def test_retention_with_a_damaged_newest_full_keeps_a_valid_full(server, workdir):
    repo = os.path.join(workdir, 'repo')
    ids = []
    for _ in range(3):
        res = backup(server, repo, databases=['b'], compression='none')
        assert res['failed'] is False, res
        ids.append(res['backup']['id'])
        time.sleep(1.1)
    manifest = manifest_of(repo, ids[-1])
    victim = os.path.join(repo, ids[-1], 'data', manifest['files'][0]['path'])
    with open(victim, 'r+b') as f:
        first = f.read(1)
        f.seek(0)
        f.write(bytes([first[0] ^ 0xFF]))
    verified = run_module('db_backup', {'repo': repo, 'state': 'verified', 'backup_id': ids[-1]})
    assert verified['failed'] is True and 'checksum' in verified['msg'], verified
    manifest = manifest_of(repo, ids[-1])
    assert manifest['verified'] is False and manifest['verify_problems'], manifest

    dry = run_module('db_backup', {'repo': repo, 'state': 'absent', 'retention': {'full': 1}}, check=True)
    assert dry['failed'] is False, dry
    assert dry['deleted'] == [ids[0], ids[2]] and dry['damaged'] == [ids[2]], dry
    assert ids[2] in json.dumps(dry.get('warnings') or []), dry   # 2.19: structured warning events
    assert backups(repo) == ids, 'check mode deleted something'
    res = run_module('db_backup', {'repo': repo, 'state': 'absent', 'retention': {'full': 1}})
    assert res['failed'] is False and res['deleted'] == [ids[0], ids[2]], res
    assert backups(repo) == [ids[1]]
    again = run_module('db_backup', {'repo': repo, 'state': 'verified', 'backup_id': ids[1]})
    assert again['failed'] is False, again


@pytest.mark.parametrize('retention, words', [({'full': -1}, 'retention full -1'), ({'days': -5}, 'retention days -5')])
def test_retention_negative_values_refused(server, workdir, retention, words):
    repo = os.path.join(workdir, 'repo')
    first = backup(server, repo, databases=['b'])
    assert first['failed'] is False, first
    before = entries(repo)
    for check in (True, False):
        res = run_module('db_backup', {'repo': repo, 'state': 'absent', 'retention': retention}, check=check)
        assert res['failed'] is True and words in res['msg'] and '0 or more' in res['msg'], res
        assert entries(repo) == before
    res = backup(server, repo, databases=['b'], retention=retention)
    assert res['failed'] is True and words in res['msg'], res
    assert entries(repo) == before


def test_a_database_given_twice_is_dumped_once_and_restores(server, workdir):
    """databases: [b, b] dumped b twice; the backup was published verified but no restore with target_database
    (nor a drill) could choose between the two copies."""
    repo = os.path.join(workdir, 'repo')
    res = backup(server, repo, databases=['b', 'b'])
    assert res['failed'] is False, res
    man = manifest_of(repo, res['backup']['id'])
    assert man['databases'] == ['b'] and [d['database'] for d in man['details']['dumps']] == ['b'], man
    again = backup(server, repo, databases=['b', 'b'], max_age='1h')
    assert again['failed'] is False and again['changed'] is False, again
    res = run_module('db_restore', dict(server.conn, repo=repo, databases=['b', 'b'], target_database='b_twice'))
    assert res['failed'] is False and res['rows_restored'] == 1, res
    assert server.psql('SELECT v FROM u', 'b_twice') == '1'
    res = run_module('db_restore', dict(server.conn, repo=repo, state='verified'))
    assert res['failed'] is False and res['result'] == 'passed' and res['rows_restored'] == 1, res
    server.psql('DROP DATABASE b_twice')


def test_a_target_database_name_the_server_would_truncate_is_refused_not_already_held(server, workdir):
    """PostgreSQL compares a 64-byte name truncated to 63: the restore marker of the 63-byte database was found
    and a forced restore into the 64-byte name reported "already holds", changed=false, restoring nothing."""
    repo = os.path.join(workdir, 'repo')
    assert backup(server, repo, databases=['b'])['failed'] is False
    kept = 'k' * 63
    res = run_module('db_restore', dict(server.conn, repo=repo, target_database=kept))
    assert res['failed'] is False and res['changed'] is True, res
    for check in (True, False):
        res = run_module('db_restore', dict(server.conn, repo=repo, target_database=kept + 'x', force=True), check=check)
        assert res['failed'] is True and 'limited to 63 bytes' in res['msg'], res
    server.psql('DROP DATABASE "%s"' % kept)


def test_a_backup_of_all_databases_restores_with_the_default_login_database(workdir):
    """A backup of all databases holds postgres, the default login database: the default restore (no login_db)
    failed with "it is the database this session is connected to", even into a fresh server (a disaster recovery)."""
    source, target = PostgresServer().init().start(), PostgresServer().init().start()
    try:
        source.psql('CREATE DATABASE app')
        source.psql('CREATE TABLE t (v int); INSERT INTO t SELECT generate_series(1, 5)', 'app')
        source.psql('CREATE TABLE in_postgres (v int); INSERT INTO in_postgres VALUES (7)')
        repo = os.path.join(workdir, 'repo')
        assert backup(source, repo)['failed'] is False
        for check in (True, False):
            res = run_module('db_restore', dict(target.conn, repo=repo), check=check)
            assert res['failed'] is False and res['changed'] is True, res
        assert target.psql('SELECT sum(v) FROM t', 'app') == '15'
        assert target.psql('SELECT v FROM in_postgres') == '7'
        again = run_module('db_restore', dict(target.conn, repo=repo))
        assert again['failed'] is False and again['changed'] is False, again
        # an explicit login_db is kept: the clear refusal stays
        res = run_module('db_restore', dict(source.conn, repo=repo, databases=['postgres'], force=True,
                                            login_db='postgres'))
        assert res['failed'] is True and 'connect with login_db to another database' in res['msg'], res
    finally:
        source.destroy()
        target.destroy()


# ---- a bad repository path -----------------------------------------------------------------------
def test_repo_that_is_a_file_fails_clearly(server, workdir):
    afile = os.path.join(workdir, 'afile')
    with open(afile, 'w') as f:
        f.write('x')
    for check in (True, False):
        res = backup(server, afile, check=check, databases=['b'])
        assert res['failed'] is True, res
        assert res['msg'] == ('could not use backup repository %s: it is a file, not a directory: give a directory '
                              '(existing or to be created) as repo' % afile), res
    under = os.path.join(afile, 'repo')
    res = backup(server, under, databases=['b'])
    assert res['failed'] is True and '%s is a file, not a directory' % afile in res['msg'], res
    for state in ('verified', 'absent'):
        res = run_module('db_backup', {'repo': afile, 'state': state, 'retention': {'full': 1}})
        assert res['failed'] is True and 'it is a file, not a directory' in res['msg'], res
    with open(afile) as f:
        assert f.read() == 'x'
    assert sorted(os.listdir(workdir)) == ['afile']


def test_repo_that_cannot_be_created_fails_clearly(server):
    res = backup(server, '/proc/dbops-no-repo', databases=['b'])
    assert res['failed'] is True, res
    assert res['msg'].startswith('could not create backup repository /proc/dbops-no-repo: '), res
    assert 'unexpected error' not in res['msg'] and 'give a directory' in res['msg'], res


def test_empty_repo_is_refused_and_nothing_lands_in_the_working_directory(server, workdir):
    """repo: '' (an empty variable) used to mean the module's working directory: backups were written there."""
    cwd = os.path.join(workdir, 'cwd')
    os.mkdir(cwd)
    here = os.getcwd()
    os.chdir(cwd)
    try:
        for check in (True, False):
            res = backup(server, '', check=check, databases=['b'])
            assert res['failed'] is True, res
            assert res['msg'] == "could not use backup repository '': the path is empty: give the repository directory as repo"
        res = run_module('db_restore', dict(server.conn, repo='', target_database='x'))
        assert res['failed'] is True and 'the path is empty' in res['msg'], res
        res = run_module('db_backup', {'repo': '', 'state': 'absent', 'retention': {'full': 1}})
        assert res['failed'] is True and 'the path is empty' in res['msg'], res
    finally:
        os.chdir(here)
    assert os.listdir(cwd) == []


def test_repo_on_a_read_only_file_system_fails_in_check_mode_too(server, workdir):
    """check mode said "would take" for an existing repository on a read-only mount; the real run then failed."""
    if os.geteuid() != 0:
        pytest.skip('mounting a read-only file system needs root')
    mnt = os.path.join(workdir, 'ro')
    os.mkdir(mnt)
    if subprocess.run(['mount', '-t', 'tmpfs', '-o', 'ro', 'tmpfs', mnt], capture_output=True, check=False).returncode:
        pytest.skip('cannot mount a tmpfs here')
    try:
        for check in (True, False):
            res = backup(server, mnt, check=check, databases=['b'])
            assert res['failed'] is True, res
            assert res['msg'] == ('could not use backup repository %s: it is on a read-only file system: give a directory '
                                  'on a local writable filesystem as repo' % mnt), res
            res = backup(server, os.path.join(mnt, 'repo'), check=check, databases=['b'])
            assert res['failed'] is True and '%s is on a read-only file system' % mnt in res['msg'], res
        res = run_module('db_backup', {'repo': mnt, 'state': 'absent', 'retention': {'full': 1}}, check=True)
        assert res['failed'] is True and 'read-only file system' in res['msg'], res
    finally:
        subprocess.run(['umount', mnt], capture_output=True, check=False)


def test_a_double_quote_in_a_physical_repo_or_data_dir_is_refused_before_anything_is_written(server, workdir):
    """pg_verifybackup runs pg_waldump through a shell with the path in double quotes, and so does pg_ctl: every
    physical backup into such a repository failed verification, and a restore into such a data_dir failed after
    the whole restore with "pg_ctl failed: " and nothing else. A space or a single quote is fine."""
    quoted = os.path.join(workdir, 'it\'s "q"')
    for check in (True, False):
        res = backup(server, quoted, check=check, method='physical')
        assert res['failed'] is True and 'it holds a double quote' in res['msg'], res
    assert not os.path.exists(quoted)
    repo = os.path.join(workdir, "it's fine")
    good = backup(server, repo, method='physical')
    assert good['failed'] is False, good
    target = os.path.join(workdir, 'data "x"')
    for check in (True, False):
        res = run_module('db_restore', {'repo': repo, 'data_dir': target, 'port': free_port()}, check=check)
        assert res['failed'] is True and 'could not use data directory %s: it holds a double quote' % target in res['msg']
    assert not os.path.exists(target)


# ---- option values -------------------------------------------------------------------------------
@pytest.mark.parametrize('options, words', [
    ({'compression': 'zstd', 'compression_level': 99}, 'zstd accepts levels 1 to 19'),
    ({'compression': 'zstd', 'compression_level': -7}, 'zstd accepts levels 1 to 19'),
    ({'compression_level': 0}, 'zstd accepts levels 1 to 19'),   # logical: zstd by default
    ({'compression': 'gzip', 'compression_level': 42}, 'gzip accepts levels 1 to 9'),
    ({'compression': 'lz4', 'compression_level': 13}, 'lz4 accepts levels 1 to 12'),
    ({'compression': 'none', 'compression_level': 3}, 'compression is none'),
    ({'method': 'physical', 'compression_level': 3}, 'compression is none (the default for method physical)'),
    ({'jobs': 0}, 'could not use jobs 0: give 1 or more'),
    ({'jobs': -3}, 'could not use jobs -3: give 1 or more'),
    ({'max_age': '-1h'}, 'use seconds or a number with'),
    # an empty vault variable used to give a plaintext backup
    ({'encryption_key': ''}, 'could not use encryption_key: it is empty'),
    ({'encryption_key': '  '}, 'could not use encryption_key: it is empty'),
])
def test_bad_option_values_fail_before_anything_is_written(server, workdir, options, words):
    fresh_repo = os.path.join(workdir, 'new-repo')
    for check in (True, False):
        res = backup(server, fresh_repo, check=check, **dict({'databases': ['b']} if options.get('method') in
                                                             (None, 'logical') else {}, **options))
        assert res['failed'] is True and words in res['msg'], res
        assert not os.path.exists(fresh_repo), 'the repository was created'
    # an existing repository: no run started (no .incoming-*), nothing else changed
    repo = os.path.join(workdir, 'repo')
    good = backup(server, repo, databases=['b'])
    assert good['failed'] is False, good
    before = entries(repo)
    res = backup(server, repo, **dict({'databases': ['b']} if options.get('method') in (None, 'logical') else {},
                                      **options))
    assert res['failed'] is True and words in res['msg'], res
    assert entries(repo) == before


@pytest.mark.parametrize('compression, level', [('zstd', 1), ('zstd', 19), ('gzip', 9), ('lz4', 12)])
def test_compression_levels_at_the_limits_work(server, workdir, compression, level):
    repo = os.path.join(workdir, 'repo')
    res = backup(server, repo, databases=['b'], compression=compression, compression_level=level)
    assert res['failed'] is False and res['changed'] is True, res
    assert manifest_of(repo, res['backup']['id'])['compression_level'] == level


# ---- check mode tells the truth, --diff ----------------------------------------------------------
def test_check_mode_retention_counts_the_backup_it_would_take(server, workdir):
    repo = os.path.join(workdir, 'repo')
    first = backup(server, repo, method='physical')
    assert first['failed'] is False, first
    old = first['backup']['id']
    before = entries(repo)
    dry = backup(server, repo, check=True, diff=True, method='physical', retention={'full': 1})
    assert dry['failed'] is False and dry['changed'] is True, dry
    assert dry['deleted'] == [old], dry
    assert dry['diff']['before']['backups'] == [old], dry
    would = dry['diff']['after']['backups']
    assert len(would) == 1 and would[0].endswith('-full') and would[0] != old, dry
    assert entries(repo) == before, 'check mode changed the repository'
    real = backup(server, repo, diff=True, method='physical', retention={'full': 1})
    assert real['failed'] is False and real['deleted'] == dry['deleted'], real
    assert real['diff'] == {'before': {'backups': [old], 'failed_runs': []},
                            'after': {'backups': [real['backup']['id']], 'failed_runs': []}}, real
    assert backups(repo) == [real['backup']['id']]


def test_check_mode_retention_keeps_the_fresh_backup_that_skips_the_run(server, workdir):
    repo = os.path.join(workdir, 'repo')
    of_b = backup(server, repo, databases=['b'])
    assert of_b['failed'] is False, of_b
    time.sleep(1.1)
    of_a = backup(server, repo, databases=['a'])
    assert of_a['failed'] is False, of_a
    before = entries(repo)
    args = dict(databases=['b'], max_age='1h', retention={'full': 1})
    # of_b is not the newest logical full, but it is the fresh backup this run stands on: never deleted
    dry = backup(server, repo, check=True, diff=True, **args)
    assert dry['failed'] is False and dry['up_to_date'] is True and dry['deleted'] == [], dry
    assert dry['changed'] is False and dry['diff']['before'] == dry['diff']['after'], dry
    assert entries(repo) == before
    real = backup(server, repo, **args)
    assert real['failed'] is False and real['up_to_date'] is True and real['deleted'] == [], real
    assert real['backup']['id'] == of_b['backup']['id'] and real['changed'] is False, real


@pytest.mark.skipif(not shutil.which('pgbackrest'), reason='pgbackrest not installed')
def test_incremental_without_a_full_refused_alike_and_leaves_nothing(server, workdir):
    fresh_repo = os.path.join(workdir, 'new-repo')
    for check in (True, False):
        res = backup(server, fresh_repo, check=check, method='pgbackrest', type='incremental')
        assert res['failed'] is True, res
        assert 'there is no full pgbackrest backup to build on' in res['msg'], res
        assert not os.path.exists(fresh_repo), (check, entries(fresh_repo))
    # an existing repository holding only a logical backup: refused alike, nothing added
    repo = os.path.join(workdir, 'repo')
    good = backup(server, repo, databases=['b'])
    assert good['failed'] is False, good
    before = entries(repo)
    for check in (True, False):
        res = backup(server, repo, check=check, method='pgbackrest', type='differential')
        assert res['failed'] is True and 'no full pgbackrest backup' in res['msg'], res
        assert entries(repo) == before


def test_diff_of_verified_and_absent(server, workdir):
    repo = os.path.join(workdir, 'repo')
    ids = []
    for _ in range(2):
        res = backup(server, repo, databases=['b'], verify=False)
        assert res['failed'] is False, res
        ids.append(res['backup']['id'])
        time.sleep(1.1)
    for check in (True, False):
        res = run_module('db_backup', {'repo': repo, 'state': 'verified', 'backup_id': ids[0]}, check=check, diff=True)
        assert res['failed'] is False and res['changed'] is True, res
        assert res['diff'] == {'before': {'backup': ids[0], 'verified': False, 'verify_problems': []},
                               'after': {'backup': ids[0], 'verified': True, 'verify_problems': []}}, res
    res = run_module('db_backup', {'repo': repo, 'state': 'verified', 'backup_id': ids[0]}, diff=True)
    assert res['changed'] is False and res['diff']['before'] == res['diff']['after'], res
    for check in (True, False):
        res = run_module('db_backup', {'repo': repo, 'state': 'absent', 'backup_id': ids[0]}, check=check, diff=True)
        assert res['failed'] is False and res['changed'] is True and res['deleted'] == [ids[0]], res
        assert res['diff'] == {'before': {'backups': ids, 'failed_runs': []},
                               'after': {'backups': [ids[1]], 'failed_runs': []}}, res
    res = run_module('db_backup', {'repo': repo, 'state': 'absent', 'retention': {'full': 1}}, check=True, diff=True)
    assert res['changed'] is False and res['diff']['before'] == res['diff']['after'] == {
        'backups': [ids[1]], 'failed_runs': []}, res
    # deleting it again is unchanged; something that is not a backup id is an error
    res = run_module('db_backup', {'repo': repo, 'state': 'absent', 'backup_id': ids[0]})
    assert res['failed'] is False and res['changed'] is False and res['deleted'] == [], res
    for bad in ('nonsense', '.incoming-%s' % ids[1], '../%s' % ids[1]):
        res = run_module('db_backup', {'repo': repo, 'state': 'absent', 'backup_id': bad})
        assert res['failed'] is True and 'not a backup id' in res['msg'], res
    assert ids[1] in os.listdir(repo)
    # a directory of other files is not a repository: refused, nothing written into it
    other = os.path.join(os.path.dirname(repo), 'not-a-repo')
    os.makedirs(other)
    with open(os.path.join(other, 'notes.txt'), 'w') as f:
        f.write('x')
    res = run_module('db_backup', {'repo': other, 'state': 'absent', 'retention': {'full': 1}})
    assert res['failed'] is True and 'not a backup repository' in res['msg'], res
    assert os.listdir(other) == ['notes.txt']


# ---- pgBackRest: deleting an entry expires its set -----------------------------------------------
def pgbackrest_labels(repo):
    """pgBackRest's own sets: {label: prior}."""
    conf = os.path.join(repo, 'pgbackrest', 'pgbackrest.conf')
    argv = ['pgbackrest', '--config=%s' % conf, '--stanza=dbops', '--output=json', 'info']
    if os.geteuid() == 0:
        argv = ['runuser', '-u', PG_USER, '--'] + argv
    out = subprocess.run(argv, capture_output=True, text=True, check=True).stdout
    return {s['label']: s.get('prior') for s in json.loads(out)[0].get('backup') or []}


def files_of(path):
    """Every file under path with its size and mtime."""
    out = {}
    for root, _dirs, files in os.walk(path):
        for name in files:
            st = os.lstat(os.path.join(root, name))
            out[os.path.relpath(os.path.join(root, name), path)] = (st.st_size, st.st_mtime_ns)
    return out


def label_of(repo, backup_id):
    return manifest_of(repo, backup_id)['details']['label']


@pytest.mark.skipif(not shutil.which('pgbackrest'), reason='pgbackrest not installed')
def test_pgbackrest_absent_expires_the_set_and_parents_follow_pgbackrest(workdir):
    srv = PostgresServer(settings={'wal_level': 'replica', 'archive_mode': 'on', 'archive_timeout': '0'}).init().start()
    try:
        srv.psql('CREATE TABLE t (v int); INSERT INTO t VALUES (1)')
        repo = os.path.join(workdir, 'repo')

        def take(btype, **kwargs):
            srv.psql('INSERT INTO t SELECT max(v) + 1 FROM t')
            res = backup(srv, repo, method='pgbackrest', type=btype, **kwargs)
            assert res['failed'] is False, res
            return res

        full = take('full')['backup']['id']
        # the only full set: pgBackRest keeps it, so the catalog does too
        for check in (True, False):
            res = run_module('db_backup', {'repo': repo, 'state': 'absent', 'backup_id': full}, check=check)
            assert res['failed'] is True and 'only full set' in res['msg'], res
        assert os.path.isdir(os.path.join(repo, full)) and label_of(repo, full) in pgbackrest_labels(repo)
        inc1 = take('incremental')['backup']['id']
        inc2 = take('incremental')['backup']['id']
        assert manifest_of(repo, inc2)['parent_id'] == inc1
        # refused while a backup builds on it: in the catalog and in pgBackRest
        for check in (True, False):
            res = run_module('db_backup', {'repo': repo, 'state': 'absent', 'backup_id': inc1}, check=check)
            assert res['failed'] is True and inc2 in res['msg'] and 'delete them first' in res['msg'], res
        assert label_of(repo, inc1) in pgbackrest_labels(repo)

        label2 = label_of(repo, inc2)
        pgbr_dir = os.path.join(repo, 'pgbackrest', 'backup', 'dbops', label2)
        untouched = files_of(repo)
        dry = run_module('db_backup', {'repo': repo, 'state': 'absent', 'backup_id': inc2}, check=True, diff=True)
        assert files_of(repo) == untouched, 'check mode wrote into the repository'
        assert dry['failed'] is False and dry['deleted'] == [inc2], dry
        assert dry['diff']['after']['backups'] == [full, inc1], dry
        assert label2 in pgbackrest_labels(repo) and os.path.isdir(pgbr_dir) and os.path.isdir(os.path.join(repo, inc2))
        res = run_module('db_backup', {'repo': repo, 'state': 'absent', 'backup_id': inc2})
        assert res['failed'] is False and res['deleted'] == [inc2], res
        assert any('expire' in c and '--set=%s' % label2 in c for c in res['commands']), res['commands']
        assert label2 not in pgbackrest_labels(repo) and not os.path.exists(pgbr_dir), 'the pgBackRest set stayed'
        assert not os.path.exists(os.path.join(repo, inc2))

        # the next incremental builds on what pgBackRest builds it on
        inc3 = take('incremental')['backup']['id']
        assert manifest_of(repo, inc3)['details']['prior'] == label_of(repo, inc1)
        assert manifest_of(repo, inc3)['parent_id'] == inc1

        # a set the catalog no longer lists (an entry removed by an older version) still holds its prior
        shutil.rmtree(os.path.join(repo, inc3))
        label3 = [lb for lb, prior in pgbackrest_labels(repo).items() if prior == label_of(repo, inc1)][0]
        for check in (True, False):
            res = run_module('db_backup', {'repo': repo, 'state': 'absent', 'backup_id': inc1}, check=check)
            assert res['failed'] is True and 'pgBackRest set %s (not in the catalog' % label3 in res['msg'], res
        # pgBackRest would build the next incremental on that set: refused (never recorded with inc1 as a wrong
        # parent), check mode alike, nothing written
        labels = pgbackrest_labels(repo)
        for check in (True, False):
            res = backup(srv, repo, check=check, method='pgbackrest', type='incremental')
            assert res['failed'] is True and label3 in res['msg'] and 'does not list' in res['msg'], res['msg']
        assert pgbackrest_labels(repo) == labels
        assert [b for b in backups(repo) if b != 'pgbackrest'] == [full, inc1], backups(repo)

        # retention with a second full: check mode counts the full it would take, the real run matches it;
        # the orphan set builds on inc1's set: inc1 and full stay, with a warning
        dry = backup(srv, repo, check=True, method='pgbackrest', type='full', retention={'full': 1})
        assert dry['failed'] is False and dry['deleted'] == [], dry
        assert 'pgBackRest set %s' % label3 in json.dumps(dry.get('warnings') or []), dry
        real = take('full', retention={'full': 1})
        assert real['deleted'] == dry['deleted'], real
        assert 'pgBackRest set %s' % label3 in json.dumps(real.get('warnings') or []), real
        # once the orphan set is expired by hand, retention lets the old chain go, full first in check mode too
        conf = os.path.join(repo, 'pgbackrest', 'pgbackrest.conf')
        argv = ['pgbackrest', '--config=%s' % conf, '--stanza=dbops', '--set=%s' % label3, 'expire']
        subprocess.run((['runuser', '-u', PG_USER, '--'] if os.geteuid() == 0 else []) + argv, check=True)
        for check in (True, False):
            res = run_module('db_backup', {'repo': repo, 'state': 'absent', 'retention': {'full': 1}}, check=check)
            assert res['failed'] is False and res['deleted'] == [full, inc1], res
        assert set(pgbackrest_labels(repo)) == {label_of(repo, real['backup']['id'])}
        assert [b for b in backups(repo) if b != 'pgbackrest'] == [real['backup']['id']]
    finally:
        srv.destroy()


# ---- encrypted physical backups, empty directories, leftovers of killed runs ----------------------
KEY = 'options-test-key'
ARCHIVING = {'wal_level': 'replica', 'archive_mode': 'on', 'archive_timeout': '0'}


@pytest.fixture(scope='module')
def archiving():
    srv = PostgresServer(settings=ARCHIVING).init().start()
    srv.psql('CREATE DATABASE shop')
    srv.psql('CREATE TABLE t AS SELECT g FROM generate_series(1, 1000) g', 'shop')
    yield srv
    srv.destroy()


def stop_restored(data_dir):
    argv = [os.path.join(pg_bindir(), 'pg_ctl'), '-D', data_dir, '-m', 'immediate', '-w', 'stop']
    subprocess.run((['runuser', '-u', PG_USER, '--'] if os.geteuid() == 0 else []) + argv,
                   capture_output=True, check=False)


def test_encrypted_plain_physical_backup_restores_and_log_backups_follow_without_key(archiving, workdir):
    repo = os.path.join(workdir, 'repo')
    assert backup(archiving, repo, method='physical', type='log')['failed'] is False
    full = backup(archiving, repo, method='physical', encryption_key=KEY)   # compression none: plain format
    assert full['failed'] is False and full['backup']['encrypted'] is True, full
    stored = manifest_of(repo, full['backup']['id'])
    assert os.path.join('base', 'pg_notify') in stored['dirs'], stored['dirs']
    assert os.path.isdir(os.path.join(repo, full['backup']['id'], 'data', 'base', 'pg_notify'))
    verified = run_module('db_backup', {'repo': repo, 'state': 'verified', 'encryption_key': KEY})
    assert verified['failed'] is False, verified
    data_dir = os.path.join(workdir, 'restored')
    try:
        restored = run_module('db_restore', {'repo': repo, 'data_dir': data_dir, 'port': free_port(),
                                             'encryption_key': KEY})
        assert restored['failed'] is False, restored.get('msg')
        assert os.path.isdir(os.path.join(data_dir, 'pg_notify'))
    finally:
        stop_restored(data_dir)
    drill = run_module('db_restore', dict(archiving.conn, repo=repo, state='verified', encryption_key=KEY))
    assert drill['failed'] is False and drill['result'] == 'passed' and drill['rows_restored'] == 1000, drill.get('msg')
    # a log backup after the encrypted full reads only its positions: no key needed, and its own key still refused
    log = backup(archiving, repo, method='physical', type='log')
    assert log['failed'] is False and log['backup']['parent_id'] == full['backup']['id'], log.get('msg')
    refused = backup(archiving, repo, method='physical', type='log', encryption_key=KEY)
    assert refused['failed'] is True and 'drop encryption_key for type=log' in refused['msg'], refused
    assert not [e for e in os.listdir(repo) if e.startswith('.incoming-')]
    assert not [e for e in os.listdir(workdir) if e.startswith('.dbops-scratch-')]


def test_a_missing_directory_of_a_plain_physical_backup_fails_verification_and_restore(archiving, workdir):
    repo = os.path.join(workdir, 'repo')
    full = backup(archiving, repo, method='physical')
    assert full['failed'] is False, full
    backup_id = full['backup']['id']
    os.rmdir(os.path.join(repo, backup_id, 'data', 'base', 'pg_notify'))
    missing = os.path.join(backup_id, 'data', 'base', 'pg_notify') + ': directory missing'
    verified = run_module('db_backup', {'repo': repo, 'state': 'verified'})
    assert verified['failed'] is True and missing in verified['msg'], verified
    assert manifest_of(repo, backup_id)['verify_problems'] == [missing]
    data_dir = os.path.join(workdir, 'restored')
    restored = run_module('db_restore', {'repo': repo, 'data_dir': data_dir, 'port': free_port()})
    assert restored['failed'] is True and missing in restored['msg'], restored
    assert not os.path.exists(data_dir) or not os.listdir(data_dir)


KILLER = '''
import os, shutil, signal
_at = os.environ.get('DBOPS_TEST_KILL_AT')
_rename, _rmtree = os.rename, shutil.rmtree
def rename(src, dst, *a, **k):
    if _at == 'encrypt' and str(src).endswith('.dbops-enc'):
        os.kill(os.getpid(), signal.SIGKILL)
    out = _rename(src, dst, *a, **k)
    if _at == 'delete' and os.path.basename(str(dst)).startswith('.deleting-'):
        os.kill(os.getpid(), signal.SIGKILL)
    return out
def rmtree(path, *a, **k):
    if _at == 'cleanup' and os.path.basename(str(path)).startswith('.dbops-scratch-restore-'):
        os.kill(os.getpid(), signal.SIGKILL)
    return _rmtree(path, *a, **k)
os.rename, shutil.rmtree = rename, rmtree
'''


def test_leftovers_of_killed_runs_are_removed_by_the_next_run_and_reported(archiving, workdir):
    inject = os.path.join(workdir, 'inject')
    os.makedirs(inject)
    with open(os.path.join(inject, 'sitecustomize.py'), 'w') as f:
        f.write(KILLER)

    def killed(name, args, moment):
        env = {'PYTHONPATH': inject + os.pathsep + collections_root(), 'DBOPS_TEST_KILL_AT': moment}
        res = run_module(name, args, env=env)
        assert res['_rc'] == -9, res
        return res

    repo = os.path.join(workdir, 'repo')
    dump = backup(archiving, repo, databases=['shop'], encryption_key=KEY)
    full = backup(archiving, repo, method='physical', encryption_key=KEY)
    assert dump['failed'] is False and full['failed'] is False
    verify = {'repo': repo, 'state': 'verified', 'backup_id': dump['backup']['id'], 'encryption_key': KEY}

    def swept(expected):
        """Check mode names what the next locked run removes; that run removes it and reports it."""
        dry = run_module('db_backup', verify, check=True)
        assert dry['failed'] is False and dry['changed'] is True, dry
        assert [(e['path'], e['status']) for e in dry['leftovers']] == [(expected, 'stale')], dry['leftovers']
        assert os.path.exists(expected)
        res = run_module('db_backup', verify)
        assert res['failed'] is False and res['changed'] is True, res
        assert [(e['path'], e['status']) for e in res['leftovers']] == [(expected, 'removed')], res['leftovers']
        assert expected in json.dumps(res.get('warnings') or []), res
        assert not os.path.exists(expected)
        again = run_module('db_backup', verify)
        assert again['changed'] is False and again['leftovers'] == [], again

    def scratch_dirs():
        return sorted(os.path.join(workdir, e) for e in os.listdir(workdir) if e.startswith('.dbops-scratch-'))

    # an encrypted backup killed while encrypting: its plaintext stays beside the repository
    killed('db_backup', dict(archiving.conn, repo=repo, method='physical', encryption_key=KEY), 'encrypt')
    plain = scratch_dirs()
    assert len(plain) == 1 and os.path.basename(plain[0]).startswith('.dbops-scratch-plain-'), plain
    swept(plain[0])
    # a delete killed after its rename
    killed('db_backup', {'repo': repo, 'state': 'absent', 'backup_id': full['backup']['id']}, 'delete')
    deleting = os.path.join(repo, '.deleting-' + full['backup']['id'])
    swept(deleting)
    # a restore killed before it removed its decrypted copy: the next restore (its lock) removes it too
    killed('db_restore', dict(archiving.conn, repo=repo, backup_id=dump['backup']['id'], target_database='copy',
                              encryption_key=KEY), 'cleanup')
    decrypted = scratch_dirs()
    assert len(decrypted) == 1 and os.path.basename(decrypted[0]).startswith('.dbops-scratch-restore-'), decrypted
    swept(decrypted[0])
    killed('db_restore', dict(archiving.conn, repo=repo, backup_id=dump['backup']['id'], target_database='copy2',
                              encryption_key=KEY), 'cleanup')
    res = run_module('db_restore', dict(archiving.conn, repo=repo, backup_id=dump['backup']['id'],
                                        target_database='copy3', encryption_key=KEY))
    assert res['failed'] is False and scratch_dirs() == [], res
    # the killed backup's .incoming is a failed run, as before, and retention removes it
    res = backup(archiving, repo, method='physical', encryption_key=KEY, retention={'full': 5})
    assert res['failed'] is False and [r['status'] for r in res['failed_runs']] == [], res
    assert not [e for e in os.listdir(repo) if e.startswith(('.incoming-', '.deleting-'))]


def test_options_that_do_not_apply_and_unknown_databases_are_refused_in_check_mode_too(server, workdir):
    """databases with a physical backup or state=absent, data_dir with a logical restore, databases with
    a physical restore, a database the server or the backup does not have: refused with what to fix,
    in check mode as in the real run, nothing written."""
    server.psql('CREATE DATABASE opt_a')
    repo = os.path.join(workdir, 'repo')
    physical = backup(server, repo, method='physical')
    assert physical['failed'] is False, physical['msg']
    logical = backup(server, repo, databases=['opt_a'])
    assert logical['failed'] is False, logical['msg']
    held = sorted(os.listdir(repo))
    for check in (True, False):
        res = backup(server, repo, check=check, method='physical', databases=['opt_a'])
        assert res['failed'] and 'drop databases' in res['msg'], res['msg']
        res = run_module('db_backup', {'repo': repo, 'state': 'absent', 'backup_id': logical['backup']['id'],
                                       'databases': ['opt_a']}, check=check)
        assert res['failed'] and 'drop databases' in res['msg'], res['msg']
        res = backup(server, repo, check=check, databases=['opt_a', 'no_such_db'])
        assert res['failed'] and 'no_such_db' in res['msg'] and 'no such database' in res['msg'], res['msg']
        res = run_module('db_restore', dict(server.conn, repo=repo, data_dir=os.path.join(workdir, 'x'),
                                            target_database='opt_b'), check=check)
        assert res['failed'], res
        res = run_module('db_restore', dict(server.conn, repo=repo, data_dir=os.path.join(workdir, 'x')), check=check)
        assert res['failed'] and 'data_dir is for physical backups' in res['msg'], res['msg']
        for state in ('present', 'verified'):
            res = run_module('db_restore', dict(server.conn, repo=repo, state=state, databases=['nope'],
                                                target_database='opt_c'), check=check)
            assert res['failed'] and 'nope' in res['msg'] and 'not in backup' in res['msg'], res['msg']
        res = run_module('db_restore', dict(repo=repo, backup_id=physical['backup']['id'], databases=['opt_a'],
                                            data_dir=os.path.join(workdir, 'x'), port=free_port()), check=check)
        assert res['failed'] and 'drop databases' in res['msg'], res['msg']
    assert sorted(os.listdir(repo)) == held and not os.path.exists(os.path.join(workdir, 'x'))
    assert server.psql("SELECT count(*) FROM pg_database WHERE datname IN ('opt_b', 'opt_c')") == '0'


@pytest.mark.parametrize('port', [0, -1, 65536, 70000])
def test_a_physical_restore_port_outside_1_to_65535_is_refused_clearly(server, workdir, port):
    """The port of the new instance is checked like login_port: 0 is not "the default", 70000 not a bind() error."""
    repo = os.path.join(workdir, 'repo')
    full = backup(server, repo, method='physical', type='full')
    assert full['failed'] is False, full.get('msg')
    data_dir = os.path.join(workdir, 'restored')
    for check in (True, False):
        res = run_module('db_restore', {'repo': repo, 'data_dir': data_dir, 'port': port}, check=check)
        assert res['failed'] is True, res
        assert res['msg'] == 'could not use port %d: a TCP port is a number from 1 to 65535' % port, res['msg']
        assert not os.path.exists(data_dir)


def test_jobs_beyond_the_free_connections_run_with_the_jobs_that_fit(server, workdir):
    """jobs 1000 (pg_dump -j 1000, pg_restore -j 1000) failed half way with "too many clients already" while check
    mode said it would take the backup: both now run with as many jobs as the free connections allow, and warn."""
    repo = os.path.join(workdir, 'repo')
    dry = backup(server, repo, check=True, databases=['a'], jobs=1000)
    assert dry['failed'] is False and dry['changed'] is True, dry
    assert 'jobs 1000: the server has connections for' in json.dumps(dry.get('warnings') or []), dry
    taken = backup(server, repo, databases=['a'], jobs=1000)
    assert taken['failed'] is False and taken['changed'] is True, taken.get('msg')
    assert 'jobs 1000: the server has connections for' in json.dumps(taken.get('warnings') or []), taken
    assert not [e for e in os.listdir(repo) if e.startswith('.incoming-')]
    restored = run_module('db_restore', dict(server.conn, repo=repo, target_database='a_jobs', jobs=1000))
    assert restored['failed'] is False and restored['changed'] is True, restored.get('msg')
    assert server.psql('SELECT v FROM t', 'a_jobs') == 'in a'
    server.psql('DROP DATABASE a_jobs')


def test_an_encryption_key_for_a_plaintext_backup_is_not_used_silently(server, workdir):
    repo = os.path.join(workdir, 'repo')
    plain = backup(server, repo, databases=['a'])
    assert plain['failed'] is False and plain['backup']['encrypted'] is False, plain
    for check in (True, False):
        res = run_module('db_restore', dict(server.conn, repo=repo, target_database='a_plain', encryption_key='s3cret'),
                         check=check)
        assert res['failed'] is False and res['changed'] is True, res.get('msg')
        assert 'is not encrypted: encryption_key was not used' in json.dumps(res.get('warnings') or []), res
    assert server.psql('SELECT v FROM t', 'a_plain') == 'in a'
    server.psql('DROP DATABASE a_plain')
