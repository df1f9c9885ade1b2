# -*- coding: utf-8 -*-
"""The repository catalog: publication, latest, failed runs, lock, retention, max_age, checksums."""

from __future__ import annotations

import datetime
import json
import os
import subprocess
import sys

import pytest

from ansible_collections.dbops.admin.plugins.module_utils import _backup_catalog as catalog
from ansible_collections.dbops.admin.plugins.module_utils import _backup_crypto as crypto
from ansible_collections.dbops.admin.plugins.module_utils._errors import DbError

NOW = datetime.datetime(2026, 11, 27, 12, 0, tzinfo=datetime.timezone.utc)


def _m(backup_id, btype='full', parent=None, days_ago=0.0, status='completed', verified=True, method='physical'):
    finished = NOW - datetime.timedelta(days=days_ago)
    return {'id': backup_id, 'type': btype, 'parent_id': parent, 'status': status, 'verified': verified,
            'method': method, 'engine': 'postgresql', 'finished_at': catalog.iso(finished),
            'started_at': catalog.iso(finished - datetime.timedelta(minutes=5))}


def _publish(repo, btype='full', payload=b'hello', parent=None, method='logical', verified=True, when=None, **extra):
    backup_id = repo.new_id(btype, now=when)
    incoming = repo.begin(backup_id, {'type': btype})
    with open(os.path.join(incoming, 'data', 'file.dat'), 'wb') as f:
        f.write(payload)
    os.makedirs(os.path.join(incoming, 'data', 'sub'))
    with open(os.path.join(incoming, 'data', 'sub', 'b.dat'), 'wb') as f:
        f.write(payload * 2)
    manifest = {'id': backup_id, 'engine': 'postgresql', 'method': method, 'type': btype, 'parent_id': parent,
                'started_at': catalog.iso(when or catalog.utcnow()),
                'finished_at': catalog.iso(when or catalog.utcnow()), 'verified': verified}
    manifest.update(extra)
    return repo.publish(incoming, manifest)


# ---- durations and times ----------------------------------------------------------------------
@pytest.mark.parametrize('text, seconds', [('90', 90), ('90s', 90), ('30m', 1800), ('23h', 82800), ('7d', 604800),
                                           ('2w', 1209600), (45, 45),
                                           # sums and ISO 8601 durations (they used to be refused)
                                           ('1h30m', 5400), ('1d 12h', 129600), ('PT20H', 72000), ('P1D', 86400),
                                           ('P1DT12H', 129600), ('pt1.5h', 5400), ('P2W', 1209600)])
def test_parse_duration(text, seconds):
    assert catalog.parse_duration(text) == seconds


@pytest.mark.parametrize('bad', ['ten', '5y', '-3h', '', 'P', 'PT', 'P1DT', '1h30', '1h-30m', '20hours'])
def test_parse_duration_refuses_garbage(bad):
    with pytest.raises(DbError):
        catalog.parse_duration(bad)


def test_parse_time_naive_is_utc_and_z_accepted():
    assert catalog.parse_time('2026-01-31T23:59:00') == catalog.parse_time('2026-01-31T23:59:00Z')
    assert catalog.parse_time('2026-02-01T00:59:00+01:00') == catalog.parse_time('2026-01-31T23:59:00Z')
    with pytest.raises(DbError):
        catalog.parse_time('yesterday')


# ---- publication --------------------------------------------------------------------------------
def test_publish_hashes_every_file_and_becomes_latest(tmp_path):
    repo = catalog.Repository(str(tmp_path / 'repo'))
    repo.ensure()
    first = _publish(repo, payload=b'one', when=NOW - datetime.timedelta(hours=2))
    second = _publish(repo, payload=b'two', when=NOW - datetime.timedelta(hours=1))
    assert repo.get('latest')['id'] == second['id']
    paths = {f['path']: f for f in second['files']}
    assert set(paths) == {'file.dat', os.path.join('sub', 'b.dat')}
    assert paths['file.dat']['sha256'] == catalog.hashlib.sha256(b'two').hexdigest()
    assert second['size_bytes'] == 3 + 6
    assert not [e for e in os.listdir(repo.path) if e.startswith('.incoming')]
    assert repo.verify_files(first) == []
    with open(os.path.join(repo.path, second['id'], 'manifest.json')) as f:
        assert json.load(f)['status'] == 'completed'


def test_incomplete_run_is_failed_and_never_latest(tmp_path):
    repo = catalog.Repository(str(tmp_path / 'repo'))
    repo.ensure()
    good = _publish(repo, when=NOW - datetime.timedelta(hours=1))
    backup_id = repo.new_id('full', now=NOW)
    incoming = repo.begin(backup_id, {'type': 'full'})
    # a killed run: its pid is gone
    info_path = os.path.join(incoming, 'run.json')
    with open(info_path) as f:
        info = json.load(f)
    proc = subprocess.run([sys.executable, '-c', 'import os; print(os.getpid())'], capture_output=True, text=True)
    info['pid'] = int(proc.stdout)
    with open(info_path, 'w') as f:
        json.dump(info, f)
    with open(os.path.join(incoming, 'data', 'half.dat'), 'wb') as f:
        f.write(b'partial')
    assert repo.get('latest')['id'] == good['id']
    runs = repo.failed_runs()
    assert [(r['id'], r['status']) for r in runs] == [(backup_id, 'failed')]
    with pytest.raises(DbError) as info_err:
        repo.get(backup_id)
    assert 'never completed' in str(info_err.value)


def test_verify_files_names_flipped_missing_and_extra_files(tmp_path):
    repo = catalog.Repository(str(tmp_path / 'repo'))
    repo.ensure()
    manifest = _publish(repo, payload=b'x' * 100)
    data = repo.data_dir(manifest['id'])
    with open(os.path.join(data, 'file.dat'), 'r+b') as f:
        f.seek(10)
        f.write(b'y')
    os.unlink(os.path.join(data, 'sub', 'b.dat'))
    with open(os.path.join(data, 'intruder'), 'w') as f:
        f.write('?')
    problems = repo.verify_files(manifest)
    text = '\n'.join(problems)
    assert 'file.dat: sha256 checksum mismatch' in text
    assert os.path.join('sub', 'b.dat') + ': file missing' in text
    assert 'intruder: file not in the manifest' in text


def test_encrypted_publication_and_plain_copy(tmp_path, monkeypatch):
    monkeypatch.setattr(crypto, 'SCRYPT_N', 2 ** 10)
    repo = catalog.Repository(str(tmp_path / 'repo'))
    repo.ensure()
    backup_id = repo.new_id('full')
    incoming = repo.begin(backup_id, {})
    with open(os.path.join(incoming, 'data', 'dump.dat'), 'wb') as f:
        f.write(b'SECRET ROW ' * 1000)
    record, key = crypto.encryption_record('pw')
    repo.encrypt_data(incoming, key)
    manifest = repo.publish(incoming, {'id': backup_id, 'type': 'full', 'encryption': record,
                                       'finished_at': catalog.iso(NOW)})
    with open(os.path.join(repo.data_dir(backup_id), 'dump.dat'), 'rb') as f:
        assert b'SECRET ROW' not in f.read()
    assert repo.verify_files(manifest) == []  # checksums are of the ciphertext: verifiable without the key
    scratch = repo.scratch('t')
    plain = repo.plain_copy(manifest, crypto.key_for(record, 'pw'), scratch)
    with open(os.path.join(plain, 'dump.dat'), 'rb') as f:
        assert f.read() == b'SECRET ROW ' * 1000
    assert not plain.startswith(repo.path + os.sep)


# ---- lock --------------------------------------------------------------------------------------
def test_lock_refuses_a_second_holder_naming_its_pid(tmp_path):
    repo = catalog.Repository(str(tmp_path / 'repo'))
    code = ('import sys, time\nsys.path[:0] = %r\n'
            'from ansible_collections.dbops.admin.plugins.module_utils._backup_catalog import Repository\n'
            'with Repository(sys.argv[1]).lock():\n    print("held", flush=True)\n    time.sleep(30)\n' % sys.path)
    holder = subprocess.Popen([sys.executable, '-c', code, repo.path], stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == 'held'
        with pytest.raises(DbError) as info:
            with repo.lock():
                pass
        assert 'pid %d' % holder.pid in str(info.value)
    finally:
        holder.kill()
        holder.wait()
    with repo.lock():  # released when the holder dies
        pass


# ---- retention ---------------------------------------------------------------------------------
def test_retention_keeps_n_fulls_with_their_incrementals():
    manifests = [_m('F1', days_ago=10), _m('I1', 'incremental', 'F1', 9), _m('F2', days_ago=5),
                 _m('I2', 'incremental', 'F2', 4), _m('I3', 'incremental', 'I2', 3), _m('F3', days_ago=1)]
    keep, delete = catalog.retention_plan(manifests, full=2, now=NOW)
    assert keep == ['F2', 'F3', 'I2', 'I3']
    assert delete == ['F1', 'I1']


def test_retention_keeps_parent_chain_of_a_young_incremental():
    manifests = [_m('F1', days_ago=20), _m('I1', 'incremental', 'F1', 15), _m('I2', 'incremental', 'I1', 1)]
    keep, delete = catalog.retention_plan(manifests, days=7, now=NOW)
    assert keep == ['F1', 'I1', 'I2'] and delete == []


def test_retention_never_deletes_the_only_valid_backup():
    manifests = [_m('F1', days_ago=100), _m('L1', 'log', 'F1', 99)]
    keep, delete = catalog.retention_plan(manifests, full=0, days=1, now=NOW)
    assert 'F1' in keep and delete == ['L1']


def test_retention_by_days_and_no_policy_keeps_all():
    manifests = [_m('F1', days_ago=30), _m('F2', days_ago=2), _m('F3', days_ago=0.5)]
    assert catalog.retention_plan(manifests, days=7, now=NOW) == (['F2', 'F3'], ['F1'])
    assert catalog.retention_plan(manifests, now=NOW) == (['F1', 'F2', 'F3'], [])


def test_retention_days_beyond_the_calendar_keeps_everything():
    """``days: inf`` or ``days: 1e9`` (keep for ever) reach before year 1: every backup is young enough, no crash."""
    manifests = [_m('F1', days_ago=30), _m('I1', 'incremental', 'F1', 29), _m('F2', days_ago=2)]
    for days in (float('inf'), 1e9, 1e6):
        assert catalog.retention_plan(manifests, days=days, now=NOW) == (['F1', 'F2', 'I1'], [])
        assert catalog.retention_plan(manifests, full=1, days=days, now=NOW) == (['F1', 'F2', 'I1'], [])


def test_retention_ignores_failed_fulls_when_counting():
    manifests = [_m('F1', days_ago=3), _m('F2', days_ago=2, status='failed'), _m('F3', days_ago=1, status='failed')]
    keep, _delete = catalog.retention_plan(manifests, full=1, now=NOW)
    assert 'F1' in keep


def _damaged(manifest):
    """What ``state: verified`` records when it finds a backup damaged."""
    return dict(manifest, verified=False, verify_problems=['%s/data/base.tar: sha256 checksum mismatch' % manifest['id']])


def test_retention_damaged_newest_full_does_not_push_out_the_valid_ones():
    """The QA case: newest full damaged, two older valid fulls, ``full: 1`` keeps a valid full."""
    manifests = [_m('F1', days_ago=3), _m('F2', days_ago=2), _damaged(_m('F3', days_ago=1))]
    keep, delete = catalog.retention_plan(manifests, full=1, now=NOW)
    assert keep == ['F2'] and delete == ['F1', 'F3']
    keep, delete = catalog.retention_plan(manifests, full=2, now=NOW)
    assert keep == ['F1', 'F2'] and delete == ['F3']
    # full: 0 / days only: the newest valid full stays, not the damaged one
    assert catalog.retention_plan(manifests, full=0, now=NOW) == (['F2'], ['F1', 'F3'])
    assert catalog.retention_plan(manifests, days=0.5, now=NOW) == (['F2'], ['F1', 'F3'])


def test_retention_damaged_full_kept_by_days_and_its_chain_not_counted():
    manifests = [_m('F1', days_ago=3), _damaged(_m('F2', days_ago=1)), _m('I2', 'incremental', 'F2', 0.5)]
    # young enough for days: kept (with its parent), and F1 still kept as the valid full
    assert catalog.retention_plan(manifests, full=1, days=2, now=NOW) == (['F1', 'F2', 'I2'], [])
    # outside the policy: the damaged full and what is built on it go, the valid full stays
    assert catalog.retention_plan(manifests, full=1, now=NOW) == (['F1'], ['F2', 'I2'])


def test_retention_keeps_every_full_when_none_is_valid():
    manifests = [_damaged(_m('F1', days_ago=3)), _damaged(_m('F2', days_ago=2)), _m('p1', days_ago=5, method='logical')]
    keep, delete = catalog.retention_plan(manifests, full=1, now=NOW)
    assert keep == ['F1', 'F2', 'p1'] and delete == []


def test_retention_unverified_is_not_damaged():
    """``verify: false`` backups were never checked: nothing says they are bad, they count as fulls."""
    manifests = [_m('F1', days_ago=3), _m('F2', days_ago=2, verified=False)]
    assert catalog.retention_plan(manifests, full=1, now=NOW) == (['F2'], ['F1'])
    assert not catalog.is_damaged(manifests[1]) and catalog.is_damaged(_damaged(manifests[0]))


# ---- the repository path -----------------------------------------------------------------------
def test_repository_path_that_is_a_file_is_refused_clearly(tmp_path):
    afile = tmp_path / 'afile'
    afile.write_text('x')
    for path in (afile, afile / 'repo'):
        repo = catalog.Repository(str(path))
        with pytest.raises(DbError) as info:
            repo.ensure()
        assert '%s is a file, not a directory' % afile in str(info.value) or 'it is a file' in str(info.value)
        assert 'Errno' not in str(info.value)
    assert afile.read_text() == 'x' and sorted(os.listdir(tmp_path)) == ['afile']


def test_repository_that_cannot_be_created_is_refused_clearly(tmp_path):
    repo = catalog.Repository('/proc/dbops-no-such-repo')
    with pytest.raises(DbError) as info:
        repo.ensure()
    assert str(info.value).startswith('could not create backup repository /proc/dbops-no-such-repo: ')
    assert 'give a directory' in str(info.value)
    if os.geteuid() != 0:
        locked = tmp_path / 'locked'
        locked.mkdir(mode=0o555)
        with pytest.raises(DbError) as info:
            catalog.Repository(str(locked / 'repo')).check_path()
        assert 'no permission to create it in %s' % locked in str(info.value)


def test_repository_path_empty_is_refused_not_the_current_directory(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    for path in ('', '  ', None):
        with pytest.raises(DbError) as info:
            catalog.Repository(path)
        assert 'the path is empty: give the repository directory as repo' in str(info.value)
    assert os.listdir(tmp_path) == []


def test_repository_on_a_read_only_file_system_is_refused_by_check_path(tmp_path, monkeypatch):
    """An existing repository directory that cannot be written (read-only mount) fails check_path, which check
    mode runs too: it used to pass, so check mode said "would take" and the real run failed creating logs/."""
    repo_dir = tmp_path / 'repo'
    repo_dir.mkdir()
    real_access, real_statvfs = os.access, os.statvfs

    class _Ro:
        def __init__(self, st):
            self.st = st

        def __getattr__(self, name):
            return getattr(self.st, name)

        @property
        def f_flag(self):
            return self.st.f_flag | os.ST_RDONLY

    def access(path, mode, *a, **k):
        if str(path).startswith(str(tmp_path)) and mode & os.W_OK:
            return False
        return real_access(path, mode, *a, **k)

    def statvfs(path):
        st = real_statvfs(path)
        return _Ro(st) if str(path).startswith(str(tmp_path)) else st

    monkeypatch.setattr(catalog.os, 'access', access)
    monkeypatch.setattr(catalog.os, 'statvfs', statvfs)
    with pytest.raises(DbError) as info:
        catalog.Repository(str(repo_dir)).check_path()
    assert str(info.value) == ('could not use backup repository %s: it is on a read-only file system: give a '
                               'directory on a local writable filesystem as repo' % repo_dir)
    with pytest.raises(DbError) as info:
        catalog.Repository(str(repo_dir / 'sub' / 'repo')).check_path()
    assert '%s is on a read-only file system' % repo_dir in str(info.value)
    assert os.listdir(repo_dir) == []


# ---- max_age -----------------------------------------------------------------------------------
def test_fresh_backup_needs_verified_matching_and_young(tmp_path):
    repo = catalog.Repository(str(tmp_path / 'repo'))
    repo.ensure()
    _publish(repo, when=NOW - datetime.timedelta(hours=5))
    unverified = _publish(repo, when=NOW - datetime.timedelta(hours=1), verified=False)
    assert unverified['verified'] is False
    fresh = repo.fresh_backup(6 * 3600, now=NOW, method='logical', type='full')
    assert fresh is not None and fresh['id'] != unverified['id']
    assert repo.fresh_backup(4 * 3600, now=NOW, method='logical', type='full') is None
    assert repo.fresh_backup(6 * 3600, now=NOW, method='physical', type='full') is None


def test_fresh_backup_must_cover_the_databases_asked_for(tmp_path):
    """The QA case: a fresh backup of [a] does not make a backup of [b] (or of all databases) unnecessary."""
    repo = catalog.Repository(str(tmp_path / 'repo'))
    repo.ensure()
    of_a = _publish(repo, when=NOW - datetime.timedelta(hours=1), databases=['a'], all_databases=False)
    assert repo.fresh_backup(6 * 3600, now=NOW, method='logical', type='full', databases=['b']) is None
    assert repo.fresh_backup(6 * 3600, now=NOW, method='logical', type='full', databases=None) is None
    assert repo.fresh_backup(6 * 3600, now=NOW, method='logical', type='full', databases=['a'])['id'] == of_a['id']
    # a backup of all databases covers any list of databases it holds, and "all"
    of_all = _publish(repo, when=NOW - datetime.timedelta(minutes=30), databases=['a', 'b'], all_databases=True)
    for asked in (['b'], ['a', 'b'], None):
        assert repo.fresh_backup(6 * 3600, now=NOW, method='logical', type='full', databases=asked)['id'] == of_all['id']
    assert repo.fresh_backup(6 * 3600, now=NOW, method='logical', type='full', databases=['c']) is None
    # physical backups hold the whole instance
    assert catalog.covers_databases({'method': 'physical', 'databases': []}, ['b'])
    # a manifest written before all_databases was recorded is not taken for a backup of all
    assert not catalog.covers_databases({'method': 'logical', 'databases': ['a', 'b']}, None)


def test_fresh_backup_label_and_encryption_must_match(tmp_path):
    repo = catalog.Repository(str(tmp_path / 'repo'))
    repo.ensure()
    plain = _publish(repo, when=NOW - datetime.timedelta(hours=1), databases=['a'], label='nightly')
    kw = dict(now=NOW, method='logical', type='full', databases=['a'])
    assert repo.fresh_backup(6 * 3600, label='nightly', encryption_key=None, **kw)['id'] == plain['id']
    assert repo.fresh_backup(6 * 3600, label='pre-upgrade', **kw) is None
    assert repo.fresh_backup(6 * 3600, encryption_key='secret', **kw) is None
    if crypto.HAS_CRYPTOGRAPHY:
        record, _key = crypto.encryption_record('secret')
        sealed = _publish(repo, when=NOW - datetime.timedelta(minutes=30), databases=['a'], encryption=record)
        assert repo.fresh_backup(6 * 3600, encryption_key='secret', **kw)['id'] == sealed['id']
        assert repo.fresh_backup(6 * 3600, encryption_key='other', **kw) is None
        assert repo.fresh_backup(6 * 3600, encryption_key=None, **kw)['id'] == plain['id']


def test_chain_walks_to_the_full_and_reports_missing_parent(tmp_path):
    repo = catalog.Repository(str(tmp_path / 'repo'))
    repo.ensure()
    full = _publish(repo, when=NOW - datetime.timedelta(hours=3))
    inc = _publish(repo, 'incremental', parent=full['id'], when=NOW - datetime.timedelta(hours=2))
    inc2 = _publish(repo, 'incremental', parent=inc['id'], when=NOW - datetime.timedelta(hours=1))
    assert [m['id'] for m in repo.chain(inc2)] == [full['id'], inc['id'], inc2['id']]
    assert repo.dependents(full['id']) == [inc['id']]
    repo.delete(inc['id'])
    with pytest.raises(DbError) as info:
        repo.chain(inc2)
    assert inc['id'] in str(info.value) and 'missing' in str(info.value)


def test_backup_summary_sizes():
    summary = catalog.backup_summary(dict(_m('F1'), size_bytes=3 * 1024 ** 3), '/r')
    assert summary['size_gb'] == 3.0 and summary['path'] == '/r/F1' and summary['duration_seconds'] == 300.0


def _publish_encrypted(repo, plain_dir, password='pw'):
    """A full backup of repo: plain_dir encrypted into it (the plaintext removed), published."""
    backup_id = repo.new_id('full')
    incoming = repo.begin(backup_id, {})
    record, key = crypto.encryption_record(password)
    repo.encrypt_data(incoming, key, source=str(plain_dir))
    manifest = repo.publish(incoming, {'id': backup_id, 'type': 'full', 'encryption': record,
                                       'finished_at': catalog.iso(NOW)})
    return manifest, record


def test_encrypt_from_a_plaintext_directory_outside_the_repository(tmp_path, monkeypatch):
    monkeypatch.setattr(crypto, 'SCRYPT_N', 2 ** 10)
    repo = catalog.Repository(str(tmp_path / 'repo'))
    repo.ensure()
    plain_dir = tmp_path / 'plain'
    (plain_dir / 'db-001').mkdir(parents=True)
    (plain_dir / 'db-001' / 'toc.dat').write_bytes(b'TOC SECRET')
    manifest, _record = _publish_encrypted(repo, plain_dir)
    assert [f['path'] for f in manifest['files']] == [os.path.join('db-001', 'toc.dat')]
    assert not (plain_dir / 'db-001' / 'toc.dat').exists(), 'plaintext left behind'
    stored = os.path.join(repo.data_dir(manifest['id']), 'db-001', 'toc.dat')
    with open(stored, 'rb') as f:
        assert b'TOC SECRET' not in f.read()


# ---- hashing while pg_basebackup writes (engine side, pure file work) ----------------------------
def test_publish_synced_skips_the_fsync_of_data_but_hashes_unknown_files(tmp_path, monkeypatch):
    repo = catalog.Repository(str(tmp_path / 'repo'))
    repo.ensure()
    backup_id = repo.new_id('full')
    incoming = repo.begin(backup_id, {'type': 'full'})
    with open(os.path.join(incoming, 'data', 'a.dat'), 'wb') as f:
        f.write(b'abc')
    synced = []
    real_fsync = catalog.fsync_path
    monkeypatch.setattr(catalog, 'fsync_path', lambda path: (synced.append(path), real_fsync(path)))
    data = os.path.join(incoming, 'data')
    manifest = repo.publish(incoming, {'id': backup_id, 'engine': 'postgresql', 'method': 'physical',
                                       'type': 'full'}, synced=True)
    # nothing under data/ is fsynced again (only the manifest's directory and the repository)
    assert synced and not [p for p in synced if p == data or p.startswith(data + os.sep)], synced
    assert manifest['files'] == [{'path': 'a.dat', 'size': 3, 'sha256': catalog.hashlib.sha256(b'abc').hexdigest()}]
    assert repo.verify_files(manifest) == []


def test_publish_not_synced_fsyncs_every_file_and_directory_of_data(tmp_path, monkeypatch):
    repo = catalog.Repository(str(tmp_path / 'repo'))
    repo.ensure()
    backup_id = repo.new_id('full')
    incoming = repo.begin(backup_id, {'type': 'full'})
    data = os.path.join(incoming, 'data')
    os.makedirs(os.path.join(data, 'sub', 'empty'))
    for rel in ('a.dat', os.path.join('sub', 'b.dat')):
        with open(os.path.join(data, rel), 'wb') as f:
            f.write(b'x' * 10)
    synced = []
    real_fsync = catalog.fsync_path
    monkeypatch.setattr(catalog, 'fsync_path', lambda path: (synced.append(path), real_fsync(path)))
    repo.publish(incoming, {'id': backup_id, 'engine': 'postgresql', 'method': 'physical', 'type': 'full'})
    rels = ('a.dat', 'sub', os.path.join('sub', 'b.dat'), os.path.join('sub', 'empty'))
    expected = [data] + [os.path.join(data, rel) for rel in rels]
    assert sorted(p for p in synced if p == data or p.startswith(data + os.sep)) == sorted(expected)


def test_growing_file_hasher_follows_appends_and_rehashes_a_replaced_file(tmp_path):
    import hashlib
    import threading
    import time
    from ansible_collections.dbops.admin.plugins.module_utils._engines import postgresql_backup as pgb
    dest = tmp_path / 'dest'
    rel_dir = dest / 'base' / 'base' / '5'
    rel_dir.mkdir(parents=True)
    big = os.urandom(3 * 1024 * 1024)
    follower = pgb.GrowingFileHasher(str(dest / 'base'), str(dest))
    follower.MIN_SIZE = 1024 * 1024
    follower.MAX_OPEN = 1  # every earlier file is let go (closed) and reopened by finish()
    follower.start()

    def writer():
        with open(rel_dir / '16384', 'wb') as f:  # written front to back in pieces, as pg_basebackup does
            for start in range(0, len(big), 256 * 1024):
                f.write(big[start:start + 256 * 1024])
                f.flush()
                time.sleep(0.01)
        with open(rel_dir / '16390', 'wb') as f:
            f.write(b'a' * (2 * 1024 * 1024))
        time.sleep(0.2)
        os.unlink(rel_dir / '16390')  # replaced under the follower: must be hashed again from scratch
        with open(rel_dir / '16390', 'wb') as f:
            f.write(b'b' * (2 * 1024 * 1024))
        with open(rel_dir / '16400', 'wb') as f:
            f.write(b'c' * (2 * 1024 * 1024))
        time.sleep(0.2)
        with open(dest / 'base' / 'small', 'wb') as f:
            f.write(b'tiny')

    thread = threading.Thread(target=writer)
    thread.start()
    thread.join()
    rests = follower.finish()
    try:
        assert os.path.join('base', 'base', '5', '16384') in rests and len(follower.open) == 1
        sums = pgb.hash_and_sync(str(dest), jobs=2, sync=True, known=rests)
    finally:
        follower.close()
    expected = {
        os.path.join('base', 'base', '5', '16384'): hashlib.sha256(big).hexdigest(),
        os.path.join('base', 'base', '5', '16390'): hashlib.sha256(b'b' * (2 * 1024 * 1024)).hexdigest(),
        os.path.join('base', 'base', '5', '16400'): hashlib.sha256(b'c' * (2 * 1024 * 1024)).hexdigest(),
        os.path.join('base', 'small'): hashlib.sha256(b'tiny').hexdigest(),
    }
    assert sums == expected


# ---- pruning the WAL archive --------------------------------------------------------------------
def _wal_repo(tmp_path, names):
    repo = catalog.Repository(str(tmp_path / 'repo'))
    os.makedirs(repo.log_dir)
    for name in names:
        (tmp_path / 'repo' / 'logs' / name).write_bytes(b'x')
    return repo


def _full_at(backup_id, wal_file, method='physical'):
    m = _m(backup_id, method=method)
    m['start_position'] = {'wal_file': wal_file}
    return m


def test_prunable_wal_by_position_across_timelines(tmp_path):
    names = ['000000010000000000000003', '000000010000000000000004', '000000010000000000000004.00000028.backup',
             '000000010000000000000005.partial', '000000020000000000000005', '000000020000000000000006',
             '00000002.history', '000000010000000000000006.part']
    repo = _wal_repo(tmp_path, names)
    kept = [_full_at('b2', '000000020000000000000006'), _full_at('b1', '000000010000000000000005')]
    assert catalog.prunable_logs(repo, kept) == [
        'logs/000000010000000000000003', 'logs/000000010000000000000004', 'logs/000000010000000000000004.00000028.backup']


def test_prunable_wal_keeps_everything_without_a_kept_physical_full(tmp_path):
    repo = _wal_repo(tmp_path, ['000000010000000000000003', '000000010000000000000009'])
    assert catalog.prunable_logs(repo, [_full_at('l1', '000000010000000000000009', method='logical')]) == []
    assert catalog.prunable_logs(repo, []) == []
    # a physical full whose start is unknown: nothing is provably unused
    assert catalog.prunable_logs(repo, [_full_at('p1', '000000010000000000000009'), _full_at('p0', '')]) == []


def test_prunable_wal_never_offers_a_file_a_kept_log_backup_lists(tmp_path):
    repo = _wal_repo(tmp_path, ['000000010000000000000003', '000000010000000000000004', '000000010000000000000009'])
    log = _m('l1', btype='log', parent='p1')
    log['log_files'] = [{'path': 'logs/000000010000000000000004', 'size': 1, 'sha256': 'x'}]
    kept = [_full_at('p1', '000000010000000000000009'), log]
    assert catalog.prunable_logs(repo, kept) == ['logs/000000010000000000000003']
    repo.delete_logs(['logs/000000010000000000000003'])
    assert sorted(n for n in os.listdir(repo.log_dir) if not n.startswith('.')) == [
        '000000010000000000000004', '000000010000000000000009']
    assert repo.pruned_logs() == {'last': '000000010000000000000003'}
    with pytest.raises(DbError):
        repo.delete_logs(['logs/../manifest.json'])


def _my(backup_id, binlog_file, method='physical', btype='full'):
    m = _m(backup_id, btype=btype, method=method)
    m['engine'] = 'mysql'
    m['start_position'] = {'binlog_file': binlog_file, 'binlog_pos': 4} if binlog_file else {}
    return m


def test_prunable_binlogs_before_every_kept_start(tmp_path):
    repo = _wal_repo(tmp_path, ['mysql-bin.000007', 'mysql-bin.000008', 'mysql-bin.000009', 'mysql-bin.000010',
                                'other-bin.000001'])
    kept = [_my('p2', 'mysql-bin.000010'), _my('i2', 'mysql-bin.000010', btype='incremental'),
            _my('l1', 'mysql-bin.000009', method='logical')]
    assert catalog.prunable_logs(repo, kept) == ['logs/mysql-bin.000007', 'logs/mysql-bin.000008']


def test_prunable_binlogs_nothing_when_not_provable(tmp_path):
    repo = _wal_repo(tmp_path, ['mysql-bin.000007', 'mysql-bin.000010'])
    # no physical full kept
    assert catalog.prunable_logs(repo, [_my('l1', 'mysql-bin.000010', method='logical')]) == []
    # a kept physical backup without a binary log position
    assert catalog.prunable_logs(repo, [_my('p2', 'mysql-bin.000010'), _my('p1', None)]) == []
    # log_bin renamed between kept backups
    assert catalog.prunable_logs(repo, [_my('p2', 'mysql-bin.000010'), _my('p1', 'db1-bin.000003')]) == []
    # a logical backup taken with binary logging off does not hold the archive back
    assert catalog.prunable_logs(repo, [_my('p2', 'mysql-bin.000010'), _my('l0', None, method='logical')]) == \
        ['logs/mysql-bin.000007']


def test_retention_counts_full_backups_per_method():
    """A nightly logical dump does not push the physical fulls (and their WAL) out of ``full: 1``."""
    manifests = [_m('p1', days_ago=9), _m('w1', 'log', parent='p1', days_ago=8), _m('p2', days_ago=5),
                 _m('w2', 'log', parent='p2', days_ago=4), _m('l1', method='logical', days_ago=2),
                 _m('l2', method='logical', days_ago=1)]
    keep, delete = catalog.retention_plan(manifests, full=1, now=NOW)
    assert keep == ['l2', 'p2', 'w2'] and delete == ['l1', 'p1', 'w1']
    # days only, everything older: the newest full of each method stays
    keep, delete = catalog.retention_plan(manifests, days=0.5, now=NOW)
    assert keep == ['l2', 'p2'] and delete == ['l1', 'p1', 'w1', 'w2']


def test_prunable_logs_nothing_while_a_manifest_is_unreadable(tmp_path):
    repo = _wal_repo(tmp_path, ['000000010000000000000003', '000000010000000000000009'])
    kept = [_full_at('p1', '000000010000000000000009')]
    assert catalog.prunable_logs(repo, kept) == ['logs/000000010000000000000003']
    broken = tmp_path / 'repo' / '20261120T010203Z-full'
    broken.mkdir()
    (broken / 'manifest.json').write_text('{"id": "20261120T0102')
    assert repo.unreadable_backups() == ['20261120T010203Z-full']
    assert catalog.prunable_logs(repo, kept) == []


# ---- pgBackRest sets ---------------------------------------------------------------------------------
def _set(label, btype, prior=None, reference=None):
    return label, {'label': label, 'type': btype, 'prior': prior, 'reference': reference}


def _pgbr(backup_id, label, btype='full', parent=None, days_ago=0.0):
    m = _m(backup_id, btype, parent=parent, days_ago=days_ago, method='pgbackrest')
    m['details'] = {'label': label}
    return m


SETS = dict([_set('F', 'full'), _set('F_I1', 'incr', 'F', ['F']), _set('F_I2', 'incr', 'F_I1', ['F', 'F_I1']),
             _set('F_D', 'diff', 'F', ['F'])])


def test_pgbackrest_label_only_for_pgbackrest_entries():
    assert catalog.pgbackrest_label(_pgbr('a-full', 'F')) == 'F'
    assert catalog.pgbackrest_label(dict(_m('b-full'), details={'label': 'F'})) is None
    assert catalog.pgbackrest_label(_m('c-full', method='pgbackrest')) is None


def test_pgbackrest_dependents_by_prior_and_reference():
    assert catalog.pgbackrest_dependents(SETS, 'F') == ['F_I1', 'F_I2', 'F_D']
    assert catalog.pgbackrest_dependents(SETS, 'F_I1') == ['F_I2']
    assert catalog.pgbackrest_dependents(SETS, 'F_I2') == []


def test_pgbackrest_expire_refusal():
    # dependents are named by their catalog entry, or as a set the catalog does not list
    problem = catalog.pgbackrest_expire_refusal(SETS, 'F_I1', {'F_I2': 'x-incremental'})
    assert 'x-incremental (pgBackRest set F_I2)' in problem and 'delete them first' in problem
    problem = catalog.pgbackrest_expire_refusal(SETS, 'F_I1')
    assert 'pgBackRest set F_I2 (not in the catalog' in problem
    assert catalog.pgbackrest_expire_refusal(SETS, 'F_I2') is None
    # pgBackRest keeps at least one full set
    only = dict([_set('F', 'full')])
    assert 'only full set' in catalog.pgbackrest_expire_refusal(only, 'F')
    assert catalog.pgbackrest_expire_refusal(only, 'F', extra_full=True) is None
    assert catalog.pgbackrest_expire_refusal(dict([_set('F', 'full'), _set('G', 'full')]), 'F') is None


def test_pgbackrest_parent_from_pgbackrests_prior():
    manifests = [_pgbr('1-full', 'F', days_ago=3), _pgbr('2-incremental', 'F_I1', 'incremental', '1-full', 2)]
    assert catalog.pgbackrest_parent(manifests, {'prior': 'F_I1', 'reference': ['F', 'F_I1']}) == ('2-incremental', None)
    assert catalog.pgbackrest_parent(manifests, {'prior': 'F', 'reference': ['F']}) == ('1-full', None)
    # a prior set the catalog does not list: the newest referenced set it lists stands in, and the prior is named
    assert catalog.pgbackrest_parent(manifests, {'prior': 'F_I9', 'reference': ['F', 'F_I1', 'F_I9']}) == \
        ('2-incremental', 'F_I9')
    assert catalog.pgbackrest_parent(manifests, {'prior': 'G', 'reference': ['G']}) == (None, 'G')
    assert catalog.pgbackrest_parent(manifests, {}) == (None, None)


def test_retention_plan_with_the_backup_check_mode_would_take():
    """Check mode adds the backup it would take: the old full goes exactly as after the real run."""
    manifests = [_m('old-full', days_ago=1)]
    taking = _m('new-full')
    assert catalog.retention_plan(manifests, full=1, now=NOW)[1] == []
    assert catalog.retention_plan(manifests + [taking], full=1, now=NOW)[1] == ['old-full']


# ---- directories (empty ones included) -----------------------------------------------------------
def _encrypted_with_dirs(repo, tmp_path, monkeypatch):
    """An encrypted backup whose plaintext holds empty directories (like pg_notify in a PostgreSQL data dir)."""
    monkeypatch.setattr(crypto, 'SCRYPT_N', 2 ** 10)
    plain_dir = tmp_path / 'plain'
    (plain_dir / 'base' / 'global').mkdir(parents=True)
    (plain_dir / 'base' / 'global' / 'pg_control').write_bytes(b'CONTROL')
    (plain_dir / 'base' / 'pg_notify').mkdir()
    (plain_dir / 'base' / 'pg_logical' / 'snapshots').mkdir(parents=True)
    (plain_dir / 'meta').mkdir()
    (plain_dir / 'meta' / 'xtrabackup_checkpoints').write_bytes(b'to_lsn = 42\n')
    manifest, record = _publish_encrypted(repo, plain_dir)
    return manifest, crypto.key_for(record, 'pw')


def test_empty_directories_survive_encryption_and_decryption(tmp_path, monkeypatch):
    repo = catalog.Repository(str(tmp_path / 'repo'))
    repo.ensure()
    manifest, key = _encrypted_with_dirs(repo, tmp_path, monkeypatch)
    assert manifest['dirs'] == ['base', os.path.join('base', 'global'), os.path.join('base', 'pg_logical'),
                                os.path.join('base', 'pg_logical', 'snapshots'), os.path.join('base', 'pg_notify'),
                                'meta']
    assert os.path.isdir(os.path.join(repo.data_dir(manifest['id']), 'base', 'pg_notify'))
    assert repo.verify_files(manifest) == []
    plain = repo.plain_copy(manifest, key, repo.scratch('t'))
    assert os.path.isdir(os.path.join(plain, 'base', 'pg_notify'))
    assert os.path.isdir(os.path.join(plain, 'base', 'pg_logical', 'snapshots'))
    with open(os.path.join(plain, 'base', 'global', 'pg_control'), 'rb') as f:
        assert f.read() == b'CONTROL'


def test_plain_copy_of_only_some_directories(tmp_path, monkeypatch):
    repo = catalog.Repository(str(tmp_path / 'repo'))
    repo.ensure()
    manifest, key = _encrypted_with_dirs(repo, tmp_path, monkeypatch)
    plain = repo.plain_copy(manifest, key, repo.scratch('t'), only=['meta'])
    assert sorted(os.listdir(plain)) == ['meta']
    with open(os.path.join(plain, 'meta', 'xtrabackup_checkpoints'), 'rb') as f:
        assert f.read() == b'to_lsn = 42\n'


def test_verify_files_names_a_missing_directory(tmp_path):
    repo = catalog.Repository(str(tmp_path / 'repo'))
    repo.ensure()
    backup_id = repo.new_id('full')
    incoming = repo.begin(backup_id, {})
    os.makedirs(os.path.join(incoming, 'data', 'base', 'pg_notify'))
    with open(os.path.join(incoming, 'data', 'base', 'PG_VERSION'), 'w') as f:
        f.write('15\n')
    manifest = repo.publish(incoming, {'id': backup_id, 'type': 'full', 'finished_at': catalog.iso(NOW)})
    assert os.path.join('base', 'pg_notify') in manifest['dirs']
    assert repo.verify_files(manifest) == []
    os.rmdir(os.path.join(repo.data_dir(backup_id), 'base', 'pg_notify'))
    assert repo.verify_files(manifest) == [
        '%s: directory missing' % os.path.join(backup_id, 'data', 'base', 'pg_notify')]


def test_manifest_without_dirs_stays_readable(tmp_path, monkeypatch):
    """Manifests written before directories were recorded: verified on their files, decrypted as before; a plain
    PostgreSQL physical backup gets the data directory's own (possibly empty) directories back."""
    repo = catalog.Repository(str(tmp_path / 'repo'))
    repo.ensure()
    manifest, key = _encrypted_with_dirs(repo, tmp_path, monkeypatch)
    del manifest['dirs']
    repo.update_manifest(manifest)
    os.rmdir(os.path.join(repo.data_dir(manifest['id']), 'base', 'pg_notify'))
    assert repo.verify_files(manifest) == []
    plain = repo.plain_copy(manifest, key, repo.scratch('a'))
    assert not os.path.exists(os.path.join(plain, 'base', 'pg_notify'))   # nothing says it was there
    assert os.path.isfile(os.path.join(plain, 'base', 'global', 'pg_control'))
    legacy = dict(manifest, engine='postgresql', method='physical', details={'format': 'plain'})
    plain = repo.plain_copy(legacy, key, repo.scratch('b'))
    for name in ('pg_notify', 'pg_replslot', 'pg_tblspc', 'pg_serial', 'pg_snapshots', 'pg_twophase'):
        assert os.path.isdir(os.path.join(plain, 'base', name)), name


# ---- leftovers of killed runs ----------------------------------------------------------------------
def _dead_pid():
    proc = subprocess.Popen([sys.executable, '-c', 'pass'])
    proc.wait()
    return proc.pid


def _scratch_dir(tmp_path, label, pid, age=0):
    path = tmp_path / ('.dbops-scratch-%s-%d' % (label, pid))
    (path / 'data').mkdir(parents=True)
    (path / 'data' / 'secret.dat').write_bytes(b'PLAINTEXT')
    if age:
        then = os.path.getmtime(path) - age
        os.utime(path, (then, then))
    return path


def test_lock_removes_what_killed_runs_left_and_reports_it(tmp_path):
    repo = catalog.Repository(str(tmp_path / 'repo'))
    repo.ensure()
    dead = _dead_pid()
    killed_backup = _scratch_dir(tmp_path, 'plain', dead)
    reused = _scratch_dir(tmp_path, 'restore', os.getpid(), age=3600)    # our pid, but older than we are
    live = _scratch_dir(tmp_path, 'verify', os.getppid())                 # a live process's own scratch
    half_deleted = tmp_path / 'repo' / '.deleting-20261127T120000Z-full'
    (half_deleted / 'data').mkdir(parents=True)
    found = repo.leftovers()
    assert sorted(e['path'] for e in found) == sorted(str(p) for p in (killed_backup, reused, half_deleted))
    assert all(e['status'] == 'stale' for e in found) and killed_backup.exists()
    with repo.lock():
        pass
    assert not killed_backup.exists() and not reused.exists() and not half_deleted.exists()
    assert live.exists()
    swept = {e['path']: e for e in repo.swept}
    assert swept[str(killed_backup)]['status'] == 'removed' and swept[str(killed_backup)]['pid'] == dead
    assert swept[str(killed_backup)]['kind'] == 'scratch'
    assert swept[str(half_deleted)]['kind'] == 'deleting' and '20261127T120000Z-full' in swept[str(half_deleted)]['reason']
    assert repo.leftovers() == []


def test_leftover_scratch_with_a_running_server_is_kept(tmp_path):
    repo = catalog.Repository(str(tmp_path / 'repo'))
    repo.ensure()
    drill = _scratch_dir(tmp_path, 'restore', _dead_pid())
    (drill / 'instance').mkdir()
    (drill / 'instance' / 'postmaster.pid').write_text('%d\n/x\n' % os.getppid())
    with repo.lock():
        pass
    assert drill.exists()
    assert [e['status'] for e in repo.swept] == ['kept'] and 'still runs' in repo.swept[0]['reason']


def test_owner_gone_checks_the_start_of_a_live_pid():
    now = datetime.datetime.now().timestamp()
    assert catalog.owner_gone(_dead_pid(), now)
    assert not catalog.owner_gone(os.getpid(), now)
    assert catalog.owner_gone(os.getpid(), now - 10 ** 7)   # older than this process: its pid was reused


def test_scratch_records_its_owner_so_a_reused_pid_is_told_apart(tmp_path):
    repo = catalog.Repository(str(tmp_path / 'repo'))
    repo.ensure()
    mine = repo.scratch('verify')
    with open(os.path.join(mine, catalog.OWNER)) as f:
        owner = json.load(f)
    assert owner['pid'] == os.getpid() and owner['start_ticks']
    assert repo.leftovers() == []                       # ours, alive: never listed
    # the same pid recorded with another process start: the pid was reused, the directory is stale
    with open(os.path.join(mine, catalog.OWNER), 'w') as f:
        json.dump({'pid': os.getpid(), 'start_ticks': owner['start_ticks'] - 1}, f)
    assert [e['path'] for e in repo.leftovers()] == [mine]


def test_wal_archive_command_is_durable_idempotent_and_never_overwrites(tmp_path):
    """The archive_command run as PostgreSQL runs it (%p, %f substituted, through sh): the segment is
    synced and renamed into place; the same segment again succeeds; another one under that name fails."""
    from ansible_collections.dbops.admin.plugins.module_utils._engines import postgresql_backup as pgb
    archive = tmp_path / "it's logs"
    archive.mkdir()
    wal = tmp_path / 'pg_wal'
    wal.mkdir()
    segment = wal / '000000010000000000000003'
    segment.write_bytes(b'a' * 4096)
    command = pgb._archive_command(str(archive))
    assert 'sync ' in command

    def run(path, name):
        line = command.replace('%p', str(path)).replace('%f', name)
        return subprocess.run(['/bin/sh', '-c', line], capture_output=True).returncode

    assert run(segment, segment.name) == 0
    assert (archive / segment.name).read_bytes() == b'a' * 4096 and sorted(p.name for p in archive.iterdir()) == \
        [segment.name]
    assert run(segment, segment.name) == 0
    segment.write_bytes(b'b' * 4096)
    assert run(segment, segment.name) != 0
    assert (archive / segment.name).read_bytes() == b'a' * 4096
    # what an earlier version set is still recognised as this archive's command
    legacy = pgb._legacy_archive_commands(str(archive))
    assert legacy and command not in legacy and all(str(archive).replace("'", "'\"'\"'") in c for c in legacy)


def test_a_directory_of_other_files_is_not_a_repository(tmp_path):
    repo = catalog.Repository(str(tmp_path))
    assert repo.foreign() is False              # empty: a new repository
    (tmp_path / 'notes.txt').write_text('x')
    assert repo.foreign() is True
    (tmp_path / 'logs').mkdir()
    assert repo.foreign() is False


def test_sweep_stops_backup_tools_a_killed_run_left_on_the_repository(tmp_path):
    """A tool of a killed run still working in the repository (here zstd waiting on a pipe, its
    output in a run directory) is stopped and reported; the same tool on another path is left alone."""
    import shutil as _shutil
    import time
    if not _shutil.which('zstd') or not os.path.isdir('/proc'):
        pytest.skip('needs zstd and /proc')
    repo_dir = tmp_path / 'repo'
    (repo_dir / '.incoming-20261127T000000Z-full' / 'data').mkdir(parents=True)
    other = tmp_path / 'elsewhere'
    other.mkdir()
    procs = []
    for out in (repo_dir / '.incoming-20261127T000000Z-full' / 'data' / 'f.zst', other / 'f.zst'):
        fifo = str(out) + '.in'
        os.mkfifo(fifo)
        procs.append(subprocess.Popen(['zstd', '-q', '-f', '-o', str(out), fifo]))
    time.sleep(0.3)
    try:
        repo = catalog.Repository(str(repo_dir))
        swept = [e for e in repo.sweep_leftovers() if e['kind'] == 'process']
        assert [(e['pid'], e['status']) for e in swept] == [(procs[0].pid, 'removed')]
        assert 'zstd' in swept[0]['reason']
        assert procs[0].wait(timeout=10) is not None
        assert procs[1].poll() is None
    finally:
        for proc in procs:
            proc.kill()
            proc.wait()


def test_retention_counts_a_dump_of_some_databases_apart_from_a_dump_of_all():
    """A logical dump of one database is no full of the others: full=1 keeps the newest dump of every
    database next to the newer dump of shop alone (and the physical full)."""
    every = dict(_m('A', method='logical', days_ago=3), all_databases=True, databases=['postgres', 'shop'])
    older = dict(_m('A0', method='logical', days_ago=4), all_databases=True, databases=['postgres', 'shop'])
    shop = dict(_m('S', method='logical', days_ago=2), all_databases=False, databases=['shop'])
    shop0 = dict(_m('S0', method='logical', days_ago=2.5), all_databases=False, databases=['shop'])
    phys = _m('P', days_ago=1)
    keep, delete = catalog.retention_plan([older, every, shop0, shop, phys], full=1, now=NOW)
    assert keep == ['A', 'P', 'S'] and delete == ['A0', 'S0']


# ---- completion order within one second ---------------------------------------------------------
def test_backups_finishing_in_the_same_second_keep_their_run_order(tmp_path):
    """A log backup that finished in the second a (fast) physical full started and finished: by id the full came
    first ('...16Z-full' < '...16Z-log'), so the next log backup was built on the older log instead of the full."""
    from types import SimpleNamespace
    from ansible_collections.dbops.admin.plugins.modules import db_backup

    repo = catalog.Repository(str(tmp_path / 'repo'))
    repo.ensure()
    second = datetime.datetime(2026, 11, 27, 12, 0, 16, tzinfo=datetime.timezone.utc)
    old_full = _publish(repo, 'full', method='physical', when=second - datetime.timedelta(minutes=5), finished_ns=1)
    log = _publish(repo, 'log', method='physical', when=second, parent=old_full['id'], finished_ns=10)
    full = _publish(repo, 'full', method='physical', when=second, finished_ns=20)
    assert log['id'] > full['id'] and log['finished_at'] == full['finished_at']
    assert [m['id'] for m in repo.manifests()] == [old_full['id'], log['id'], full['id']]
    assert repo.get('latest')['id'] == full['id']
    base = db_backup._base_for(repo, SimpleNamespace(name='postgresql'), 'physical', 'log')
    assert base['id'] == full['id']


def test_ids_with_a_counter_suffix_list_numerically_and_latest_follows_completion(tmp_path):
    """Eleven backups started in one second: ids ``<second>-full``, ``-2`` ... ``-11``. Listings put ``-10``
    after ``-9`` (as strings it came before ``-2``); latest and retention follow the completion order."""
    repo = catalog.Repository(str(tmp_path / 'repo'))
    repo.ensure()
    ids = [_publish(repo, when=NOW, finished_ns=n)['id'] for n in range(1, 12)]
    assert ids[1].endswith('-full-2') and ids[-1].endswith('-full-11')
    assert sorted(reversed(ids), key=catalog.id_sort_key) == ids
    assert [m['id'] for m in repo.manifests()] == ids
    assert repo.get('latest')['id'] == ids[-1]
    keep, delete = catalog.retention_plan(repo.manifests(), full=3, now=NOW)
    assert keep == ids[-3:] and delete == ids[:-3]
    # completion, not the id, decides: -10 finished after -11, so it is latest and the newest kept
    manifests = [dict(m, finished_ns=100) if m['id'] == ids[9] else m for m in repo.manifests()]
    assert sorted(manifests, key=catalog.completion_key)[-1]['id'] == ids[9]
    keep, _delete = catalog.retention_plan(manifests, full=1, now=NOW)
    assert keep == [ids[9]]
    # runs that never published list in the same order
    for n in (2, 10, 3):
        repo.begin(ids[0] + '-%d' % (n + 20), {'type': 'full'})
    assert [r['id'][len(ids[0]):] for r in repo.failed_runs()] == ['-22', '-23', '-30']
