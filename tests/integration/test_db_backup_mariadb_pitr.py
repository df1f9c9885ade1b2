# -*- coding: utf-8 -*-
"""MariaDB point-in-time restores and binary log archives: holes after the target, targets the archive
does not reach, check mode predictions, log backup positions, restarted binlog numbering."""

from __future__ import annotations

import datetime
import json
import os
import shutil
import time

import modrun
import pytest
from servers import free_port
from test_db_backup_mariadb_engine import Restored, mariadb_workdir, own_mariadb

from ansible_collections.dbops.admin.plugins.module_utils._engines import mysql_backup as mb

REPO_ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
pytestmark = [
    pytest.mark.skipif(shutil.which('mariadb-backup') is None, reason='mariadb-backup not installed'),
]


@pytest.fixture(scope='module')
def source():
    with own_mariadb() as server:
        yield server


@pytest.fixture()
def work():
    with mariadb_workdir('dbops-bkp-') as path:
        yield path


def backup(server, repo, check=False, **kw):
    result = modrun.run_module('db_backup', dict(server.conn, repo=repo, **kw), check=check)
    assert not result['failed'], result.get('msg') or result['_stderr'][-3000:]
    return result


def restore(server, repo, check=False, **kw):
    return modrun.run_module('db_restore', dict(server.conn, repo=repo, **kw), check=check)


def now_text():
    return datetime.datetime.now(datetime.timezone.utc).strftime('%Y-%m-%dT%H:%M:%S.%fZ')


def marks(password, out, database):
    restored = Restored({'port': out['port'], 'data_dir': out['data_dir']}, password)
    return [r[0] for r in restored.sql('SELECT tag FROM marks ORDER BY tag', database)]


def log_files(log):
    with open(os.path.join(log['backup']['path'], 'manifest.json')) as f:
        return [os.path.basename(e['path']) for e in json.load(f)['log_files']]


def test_pitr_before_a_later_hole_in_the_archive(source, work):
    """A binary log missing from the archive after the target is not needed by a replay that stops
    before it (target_time, GTID target, check mode alike); a target after the hole is refused naming
    the missing binary log, before data_dir is created."""
    source.sql('CREATE DATABASE mhole')
    source.sql('CREATE TABLE marks (tag VARCHAR(5) PRIMARY KEY)', 'mhole')
    repo = os.path.join(work, 'repo')
    backup(source, repo, method='physical', type='full', compression='zstd')
    source.sql("INSERT INTO marks VALUES ('A')", 'mhole')
    gtid_a = source.sql('SELECT @@gtid_binlog_pos')[0][0]
    time.sleep(1.2)
    target = now_text()
    time.sleep(1.2)
    source.sql("INSERT INTO marks VALUES ('B')", 'mhole')
    log1 = backup(source, repo, method='physical', type='log')
    source.sql("INSERT INTO marks VALUES ('C')", 'mhole')
    log2 = backup(source, repo, method='physical', type='log')
    time.sleep(1.2)
    after_c = now_text()
    time.sleep(1.2)
    source.sql("INSERT INTO marks VALUES ('D')", 'mhole')
    backup(source, repo, method='physical', type='log')
    hole = log_files(log2)[-1]   # holds C: after the target, before D
    assert hole not in log_files(log1)
    os.unlink(os.path.join(repo, 'logs', hole))

    for n, target_kw in enumerate(({'target_time': target}, {'target_position': {'gtid': gtid_a}})):
        data_dir, port = os.path.join(work, 'r%d' % n, 'data'), free_port()
        preview = restore(source, repo, check=True, data_dir=data_dir, login_port=port, **target_kw)
        assert not preview['failed'] and preview['changed'], (target_kw, preview.get('msg'))
        assert not os.path.exists(data_dir)
        out = restore(source, repo, data_dir=data_dir, login_port=port, **target_kw)
        assert not out['failed'], (target_kw, out.get('msg'))
        assert out['target_reached'] is True
        assert marks(source.password, out, 'mhole') == ['A']
        mb.stop_instance(data_dir)

    data_dir = os.path.join(work, 'after', 'data')
    for check in (True, False):
        refused = restore(source, repo, check=check, data_dir=data_dir, login_port=free_port(), target_time=after_c)
        assert refused['failed'] and hole in refused['msg'] and 'missing' in refused['msg'], (check, refused.get('msg'))
        assert not os.path.exists(data_dir)
    source.sql('DROP DATABASE mhole')


def reach_setup(source, work, database):
    """A full backup, A, (inside), B, C, a log backup; then 'beyond', a time after every archived event."""
    source.sql('CREATE DATABASE %s' % database)
    source.sql('CREATE TABLE marks (tag VARCHAR(5) PRIMARY KEY)', database)
    repo = os.path.join(work, 'repo')
    backup(source, repo, method='physical', type='full', compression='zstd')
    source.sql("INSERT INTO marks VALUES ('A')", database)
    time.sleep(1.2)
    inside = now_text()
    time.sleep(1.2)
    source.sql("INSERT INTO marks VALUES ('B')", database)
    pos_b = source.sql('SHOW MASTER STATUS')[0]
    source.sql("INSERT INTO marks VALUES ('C')", database)
    backup(source, repo, method='physical', type='log')
    time.sleep(2.2)
    return repo, inside, pos_b, now_text()


def test_check_mode_of_a_point_in_time_restore_predicts_what_the_real_run_reports(source, work):
    """Check mode of a point-in-time restore reports target_reached and recovered_to as the real run does
    (read from the archive: it returned neither, and its message claimed the target); a target_time after
    the last archived event is target_reached false in both, with a warning, never the target as
    recovered_to."""
    repo, inside, pos_b, beyond = reach_setup(source, work, 'mreach')
    for n, kw in enumerate(({'target_time': inside}, {'target_time': beyond},
                            {'target_position': {'binlog_file': pos_b[0], 'binlog_pos': int(pos_b[1])}})):
        data_dir, port = os.path.join(work, 'c%d' % n, 'data'), free_port()
        preview = restore(source, repo, check=True, data_dir=data_dir, login_port=port, **kw)
        assert not preview['failed'], (kw, preview.get('msg'))
        assert not os.path.exists(data_dir)
        out = restore(source, repo, data_dir=data_dir, login_port=port, **kw)
        assert not out['failed'], (kw, out.get('msg'))
        assert preview['target_reached'] == out['target_reached'], (kw, preview, out['target_reached'])
        assert preview['recovered_to'][:19] == out['recovered_to'][:19], (kw, preview['recovered_to'],
                                                                          out['recovered_to'])
        if n == 1:
            assert out['target_reached'] is False
            assert mb.parse_time(out['recovered_to']) < mb.parse_time(beyond)
            for result in (preview, out):
                assert any('archive ends before' in str(w) for w in result.get('warnings') or []), result
            assert beyond not in preview['msg'].replace('not to ' + beyond, ''), preview['msg']
            assert marks(source.password, out, 'mreach') == ['A', 'B', 'C']
        else:
            assert out['target_reached'] is True
            assert marks(source.password, out, 'mreach') == (['A'] if n == 0 else ['A', 'B'])
        mb.stop_instance(data_dir)
    source.sql('DROP DATABASE mreach')


def test_restore_drill_to_a_target_the_archive_does_not_reach_says_so(source, work):
    """A restore drill with a target_time after the last archived event returned recovered_to (the end of the
    archive) with no target_reached and a plain 'passed' message; it now says target_reached false, warns and
    its message says the target was not reached. A target inside the archive is target_reached true."""
    repo, inside, _pos_b, beyond = reach_setup(source, work, 'mdrillreach')
    # check mode predicts it (it said only 'would run a restore drill'), and refuses what the real drill refuses
    preview = restore(source, repo, check=True, state='verified', target_time=beyond)
    assert not preview['failed'] and preview['target_reached'] is False, preview
    assert any('archive ends before' in str(w) for w in preview.get('warnings') or []), preview
    for check in (True, False):
        past = restore(source, repo, check=check, state='verified',
                       target_position={'binlog_file': 'mysql-bin.000777', 'binlog_pos': 4})
        assert past['failed'] and 'mysql-bin.000777 is not in it' in past['msg'], (check, past.get('msg'))
    drill = restore(source, repo, state='verified', target_time=beyond)
    assert not drill['failed'], drill.get('msg')
    assert drill['target_reached'] is False and 'NOT reached' in drill['msg'], drill
    assert mb.parse_time(drill['recovered_to']) < mb.parse_time(beyond)
    assert any('archive ends before' in str(w) for w in drill.get('warnings') or []), drill
    assert {t['name']: t['rows'] for t in drill['tables'] if t['database'] == 'mdrillreach'} == {'marks': 3}
    assert drill['recovered_to'][:19] == preview['recovered_to'][:19]
    drill = restore(source, repo, state='verified', target_time=inside)
    assert not drill['failed'] and drill['target_reached'] is True, drill.get('msg')
    assert 'NOT reached' not in drill['msg']
    assert restore(source, repo, check=True, state='verified', target_time=inside)['target_reached'] is True
    assert {t['name']: t['rows'] for t in drill['tables'] if t['database'] == 'mdrillreach'} == {'marks': 1}
    source.sql('DROP DATABASE mdrillreach')


def test_log_backup_records_the_gtid_position_of_the_end_of_its_last_binary_log(source, work):
    """A transaction committed between FLUSH BINARY LOGS and the log backup's read of the position is in the
    server's new binary log, not archived: the log backup's stop GTID is BINLOG_GTID_POS of the end of the
    last binary log it archived (it was @@gtid_binlog_pos read afterwards, so it claimed that transaction and
    the next log backup said nothing new had been written, leaving it unarchived)."""
    from test_db_backup_mariadb_engine import engine_of, request

    source.sql('CREATE DATABASE mstopgtid')
    source.sql('CREATE TABLE marks (tag VARCHAR(5) PRIMARY KEY)', 'mstopgtid')
    source.sql("INSERT INTO marks VALUES ('A')", 'mstopgtid')
    gtid_a = source.sql('SELECT @@gtid_binlog_pos')[0][0]
    engine = engine_of(source)
    original = engine.execute

    def execute(sql, *args, **kwargs):
        out = original(sql, *args, **kwargs)
        if sql == 'FLUSH BINARY LOGS':
            source.sql("INSERT INTO marks VALUES ('B')", 'mstopgtid')
        return out

    engine.execute = execute
    try:
        log = engine.backup_create(request(os.path.join(work, 'log1'), work, method='physical', type='log'))
        engine.execute = original
        gtid_b = source.sql('SELECT @@gtid_binlog_pos')[0][0]
        assert gtid_b != gtid_a
        assert log['stop_position']['gtid'] == gtid_a, (log['stop_position'], gtid_a, gtid_b)
        last = log['details']['files'][-1]['name']
        assert log['stop_position']['binlog_file'] == last
        # the next log backup has something new to archive: B
        assert engine.nothing_new_since({'stop_position': log['stop_position']}) is False
    finally:
        engine.execute = original
        engine.close()
    source.sql('DROP DATABASE mstopgtid')


@pytest.mark.parametrize('damage', ['flip', 'truncate'])
def test_a_damaged_binary_log_fails_the_restore_before_data_dir_is_written(source, work, damage):
    """An archived binary log no log backup record can judge (here: an archive outside a catalog) with a flipped
    byte inside an event, or cut short: the replay decoded it after data_dir was filled and the server started
    (a flipped byte even replayed silently: the checksums were not verified). It is now decoded, every event's
    checksum verified, before anything is written: the restore fails naming it and data_dir does not exist."""
    from test_db_backup_mariadb_engine import engine_of, manifest_of, request
    from test_db_backup_mariadb_engine import restore as engine_restore

    from ansible_collections.dbops.admin.plugins.module_utils._errors import DbError

    database = 'mdamaged_' + damage
    source.sql('CREATE DATABASE %s' % database)
    source.sql('CREATE TABLE marks (tag VARCHAR(5) PRIMARY KEY, note TEXT)', database)
    engine = engine_of(source)
    try:
        full_dir = os.path.join(work, 'full')
        full = manifest_of(engine.backup_create(request(full_dir, work, method='physical')), 'full')
        for tag in 'ABCDEFGH':
            source.sql("INSERT INTO marks VALUES ('%s', REPEAT('payload', 40))" % tag, database)
        log = engine.backup_create(request(os.path.join(work, 'log'), work, method='physical', type='log'))
    finally:
        engine.close()
    log_dir = os.path.join(work, 'logs')
    victim = os.path.join(log_dir, log['details']['files'][-1]['name'])
    with open(victim, 'rb') as f:
        data = bytearray(f.read())
    if damage == 'flip':
        at = data.rfind(b'payloadpayload')
        assert at > 0
        data[at + 3] ^= 0x01
    else:
        data = data[:data.rfind(b'payloadpayload')]
    with open(victim, 'wb') as f:
        f.write(data)
    target = {'gtid': log['stop_position']['gtid']}
    # check mode's look at the replay fails the same way
    with pytest.raises(DbError, match='decode the binary logs.*%s' % os.path.basename(victim).replace('.', r'\.')):
        mb.check_replay({'chain': [{'manifest': full}], 'target_position': target, 'log_dir': log_dir, 'last': full})
    with pytest.raises(DbError, match='decode the binary logs.*%s' % os.path.basename(victim).replace('.', r'\.')):
        engine_restore([{'manifest': full, 'path': full_dir}], work, 'r-damaged',
                       target_position={'gtid': log['stop_position']['gtid']}, log_dir=log_dir)
    assert not os.path.exists(os.path.join(work, 'r-damaged'))
    assert not [n for n in os.listdir(work) if n.startswith('.dbops-restore-')]
    source.sql('DROP DATABASE %s' % database)


def _archive_state(log_dir):
    return {n: (os.path.getsize(os.path.join(log_dir, n)), mb.sha256_file(os.path.join(log_dir, n)))
            for n in sorted(os.listdir(log_dir))}


def _log_entries(repo):
    found = []
    for name in sorted(os.listdir(repo)):
        path = os.path.join(repo, name, 'manifest.json')
        if os.path.isfile(path):
            with open(path) as f:
                manifest = json.load(f)
            if manifest.get('type') == 'log':
                found.append(manifest['id'])
    return found


@pytest.mark.parametrize('flushes,purge', [(0, False), (4, False), (5, True)])
def test_log_backup_after_reset_master_refuses_to_mix_the_binary_log_series(work, flushes, purge):
    """RESET MASTER restarts the binary log numbering (and the GTID state): the server's new mysql-bin.000001...
    are not the archived ones. A log backup (check mode too) refuses, telling to take a new full backup, and
    writes nothing into the archive; it skipped a same-size file, refused one of another size as "a different
    file" without saying why, or (numbering past the archive's end) appended the new series to the old one."""
    with own_mariadb() as server:
        server.sql('CREATE DATABASE mreset')
        server.sql('CREATE TABLE marks (tag VARCHAR(5) PRIMARY KEY)', 'mreset')
        repo = os.path.join(work, 'repo')
        backup(server, repo, method='physical', type='full', compression='zstd')
        server.sql("INSERT INTO marks VALUES ('A')", 'mreset')
        server.sql('FLUSH BINARY LOGS')
        server.sql("INSERT INTO marks VALUES ('B')", 'mreset')
        backup(server, repo, method='physical', type='log')
        log_dir = os.path.join(repo, 'logs')
        archived = _archive_state(log_dir)
        logs = _log_entries(repo)
        server.sql('RESET MASTER')
        server.sql("INSERT INTO marks VALUES ('C')", 'mreset')
        for _ in range(flushes):
            server.sql('FLUSH BINARY LOGS')
            server.sql("INSERT INTO marks VALUES ('D%d')" % _, 'mreset')
        if purge:
            # the new series' numbers now run past the archive's, and none of its names the archive holds is left
            # on the server: only the GTID position (gone back) tells
            current = server.sql('SHOW MASTER STATUS')[0][0]
            deadline = time.time() + 10
            while True:
                server.sql("PURGE BINARY LOGS TO '%s'" % current)
                names = [r[0] for r in server.sql('SHOW BINARY LOGS')]
                if not set(names) & set(archived) or time.time() > deadline:
                    break
                time.sleep(0.3)
            assert not set(names) & set(archived) and mb.binlog_number(current)[1] > max(
                mb.binlog_number(n)[1] for n in archived)
        for check in (True, False):
            refused = modrun.run_module('db_backup', dict(server.conn, repo=repo, method='physical', type='log'),
                                        check=check)
            assert refused['failed'], (check, refused.get('msg'))
            assert 'RESET MASTER' in refused['msg'] and 'new full' in refused['msg'], (check, refused['msg'])
            assert _archive_state(log_dir) == archived and _log_entries(repo) == logs


def test_check_mode_of_a_log_backup_the_real_run_refuses_claims_nothing(work):
    """Binary logs purged from the server before they were archived: the real log backup fails (and applies no
    retention). Its check mode said it would take the log backup and listed the backups and archived binary
    logs retention would then delete; it now fails the same way, naming the missing binary log, and changes
    nothing."""
    with own_mariadb() as server:
        server.sql('CREATE DATABASE mcheckhole')
        server.sql('CREATE TABLE t (id INT PRIMARY KEY)', 'mcheckhole')
        repo = os.path.join(work, 'repo')
        backup(server, repo, method='physical', type='full', compression='zstd')
        server.sql('INSERT INTO t VALUES (0)', 'mcheckhole')
        backup(server, repo, method='physical', type='log')
        backup(server, repo, method='physical', type='full', compression='zstd')
        gone = server.sql('SHOW MASTER STATUS')[0][0]   # not archived yet
        server.sql('INSERT INTO t VALUES (1)', 'mcheckhole')
        server.sql('FLUSH BINARY LOGS')
        server.sql('INSERT INTO t VALUES (2)', 'mcheckhole')
        server.sql('FLUSH BINARY LOGS')
        current = server.sql('SHOW MASTER STATUS')[0][0]
        deadline = time.time() + 10
        while True:
            server.sql("PURGE BINARY LOGS TO '%s'" % current)
            if gone not in [r[0] for r in server.sql('SHOW BINARY LOGS')] or time.time() > deadline:
                break
            time.sleep(0.3)
        assert gone not in [r[0] for r in server.sql('SHOW BINARY LOGS')]
        before = (sorted(os.listdir(repo)), _archive_state(os.path.join(repo, 'logs')))
        args = dict(server.conn, repo=repo, method='physical', type='log', retention={'full': 1})
        preview = modrun.run_module('db_backup', args, check=True)
        assert preview['failed'] and gone in preview['msg'] and 'purged' in preview['msg'], preview.get('msg')
        assert not preview.get('deleted') and not preview.get('deleted_logs')
        assert (sorted(os.listdir(repo)), _archive_state(os.path.join(repo, 'logs'))) == before
        real = modrun.run_module('db_backup', args)
        assert real['failed'] and gone in real['msg'] and 'purged' in real['msg'], real.get('msg')
        assert not real.get('deleted')


def test_series_check_passes_a_continuing_archive_and_a_domain_not_logged_here(source, work):
    """The RESET MASTER refusal never fires on an archive the server continues, nor on a base backup GTID position
    naming a domain this server's binary logs do not hold (replicated in, not logged here); a domain it holds at
    a lower sequence than the base recorded is the restart."""
    from test_db_backup_mariadb_engine import engine_of, request

    from ansible_collections.dbops.admin.plugins.module_utils._errors import DbError

    source.sql('CREATE DATABASE IF NOT EXISTS mseries')
    source.sql('CREATE TABLE IF NOT EXISTS t (id INT PRIMARY KEY)', 'mseries')
    source.sql('INSERT INTO t VALUES (1)', 'mseries')
    engine = engine_of(source)
    try:
        log = engine.backup_create(request(os.path.join(work, 'log1'), work, method='physical', type='log'))
        source.sql('INSERT INTO t VALUES (2)', 'mseries')
        domain, server_id, seq = (int(x) for x in source.sql('SELECT @@gtid_binlog_pos')[0][0].split(',')[0].split('-'))
        rows = engine.fetch_all('SHOW BINARY LOGS')
        binlog_dir = os.path.dirname(engine.fetch_value('SELECT @@GLOBAL.log_bin_basename'))
        log_dir = os.path.join(work, 'logs')
        for gtid in (log['stop_position']['gtid'], '%d-%d-%d,%d-9-500' % (domain, server_id, seq, domain + 9)):
            engine._check_binlog_series(log_dir, binlog_dir, rows, {'base': {'manifest': {
                'id': 'base', 'stop_position': {'gtid': gtid}}}})
        with pytest.raises(DbError, match='RESET MASTER.*new full'):
            engine._check_binlog_series(log_dir, binlog_dir, rows, {'base': {'manifest': {
                'id': 'base', 'stop_position': {'gtid': '%d-%d-%d' % (domain, server_id, seq + 50)}}}})
    finally:
        engine.close()
    source.sql('DROP DATABASE mseries')


def test_a_held_restore_that_did_not_reach_its_target_still_says_so(source, work):
    """The same restore again (nothing to do: the data directory holds it) returned changed false with the old
    recovered_to and no target_reached, as if the target had been reached; it now returns the held restore's
    target_reached false and warns, running or stopped (check mode too)."""
    repo, _inside, _pos_b, beyond = reach_setup(source, work, 'mheldreach')
    data_dir, port = os.path.join(work, 'held', 'data'), free_port()
    first = restore(source, repo, data_dir=data_dir, login_port=port, target_time=beyond)
    assert not first['failed'] and first['target_reached'] is False, first.get('msg')
    for stopped in (False, True):
        if stopped:
            mb.stop_instance(data_dir)
        for check in (True, False):
            again = restore(source, repo, check=check, data_dir=data_dir, login_port=port, target_time=beyond)
            assert not again['failed'], again.get('msg')
            assert again['changed'] is (stopped and True), (stopped, check, again['changed'])
            assert again['target_reached'] is False and again['recovered_to'] == first['recovered_to'], again
            assert any('end of the archive' in str(w) for w in again.get('warnings') or []), again
    mb.stop_instance(data_dir)
    source.sql('DROP DATABASE mheldreach')
