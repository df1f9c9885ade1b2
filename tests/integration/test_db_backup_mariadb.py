# -*- coding: utf-8 -*-
"""db_backup and db_restore run for real (as Ansible runs them) on throw-away MariaDB servers."""

from __future__ import annotations

import datetime
import json
import os
import shutil
import subprocess
import time

import modrun
import pytest
from servers import free_port
from test_db_backup_mariadb_engine import Restored, fill, mariadb_workdir, own_mariadb, table_state

from ansible_collections.dbops.admin.plugins.module_utils._engines import mysql_backup as mb

REPO_ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
pytestmark = [
    pytest.mark.skipif(shutil.which('mariadb-backup') is None, reason='mariadb-backup not installed'),
    pytest.mark.skipif(not os.path.isfile(os.path.join(REPO_ROOT, 'plugins', 'modules', 'db_restore.py')),
                       reason='db_restore not present'),
]


@pytest.fixture(scope='module')
def source():
    with own_mariadb() as server:
        yield server


@pytest.fixture()
def work():
    with mariadb_workdir('dbops-bkm-') as path:
        yield path


def backup(server, repo, **kw):
    result = modrun.run_module('db_backup', dict(server.conn, repo=repo, **kw))
    assert not result['failed'], result.get('msg') or result['_stderr'][-3000:]
    return result


def restore(server, repo, check=False, diff=False, **kw):
    return modrun.run_module('db_restore', dict(server.conn, repo=repo, **kw), check=check, diff=diff)


def test_module_logical_backup_and_restore_identical(source, work):
    fill(source, 'mshop', 2000)
    fill(source, 'mother', 100)
    repo = os.path.join(work, 'repo')
    result = backup(source, repo, method='logical', compression='zstd', jobs=2)
    assert result['changed'] and result['backup']['verified'] is True
    assert source.password not in str(result)
    expected = table_state(source, 'mshop')
    source.sql('UPDATE t1 SET amount = 0', 'mshop')
    preview = restore(source, repo, check=True, diff=True, databases=['mshop'], target_database='mshop_restored')
    out = restore(source, repo, diff=True, databases=['mshop'], target_database='mshop_restored')
    assert not out['failed'], out.get('msg')
    assert out['changed'] is True
    # --diff: the target held nothing of ours, now it holds this backup (check mode says the same)
    holds = {'backup_id': out['backup_id'], 'source_database': 'mshop'}
    assert out['diff'] == preview['diff'] == {'before': {'databases': {'mshop_restored': None}},
                                              'after': {'databases': {'mshop_restored': holds}}}, out['diff']
    assert table_state(source, 'mshop_restored') == expected
    assert out['rows_restored'] == sum(v[0] for v in expected.values())
    # the same restore again: unchanged
    again = restore(source, repo, diff=True, databases=['mshop'], target_database='mshop_restored')
    assert not again['failed'] and again['changed'] is False
    assert again['diff']['before'] == again['diff']['after'] == {'databases': {'mshop_restored': holds}}
    # another database that exists and holds data: refused without force, untouched
    before = table_state(source, 'mother')
    refused = restore(source, repo, databases=['mshop'], target_database='mother')
    assert refused['failed'] and 'force' in refused['msg']
    # check mode tells the same
    refused = restore(source, repo, check=True, databases=['mshop'], target_database='mother')
    assert refused['failed'] and 'force' in refused['msg']
    assert table_state(source, 'mother') == before
    # the drill: scratch database, row counts against the backup snapshot, then removed; none of it
    # goes into the binary log (no replica receives the scratch copy, no log backup archives it)
    gtid = source.sql('SELECT @@gtid_binlog_pos')[0][0]
    drill = restore(source, repo, state='verified', databases=['mshop'])
    assert not drill['failed'], drill.get('msg')
    assert source.sql('SELECT @@gtid_binlog_pos')[0][0] == gtid
    assert drill['result'] == 'passed' and drill['rto_seconds'] is not None
    assert {t['name']: t['rows'] for t in drill['tables']} == {k: v[0] for k, v in expected.items()}
    assert all(t['expected_rows'] == t['rows'] for t in drill['tables'])
    assert not [r for r in source.sql('SHOW DATABASES') if r[0].startswith('dbops_drill')]


@pytest.mark.parametrize('layout', ['tsv', 'sql'])
def test_module_logical_events_of_a_database_named_with_quotes(source, work, layout):
    """mariadb-dump --events fails ("Unknown database") on a database whose name holds a quote or a
    backslash and has events: the engine writes those events itself, in both layouts."""
    name = 'o\'brien "%s" \\ db' % layout
    quoted = '`%s`' % name.replace('`', '``')
    source.sql('CREATE DATABASE %s' % quoted)
    conn = source.connect(name)
    try:
        with conn.cursor() as cur:
            cur.execute('CREATE TABLE t (id INT PRIMARY KEY, v VARCHAR(20)%s)' % (', b BIT(3)' if layout == 'sql' else ''))
            cur.execute("INSERT INTO t (id, v) VALUES (1, 'x'), (2, NULL)")
            cur.execute('CREATE PROCEDURE p() SELECT COUNT(*) FROM t')
            cur.execute("CREATE EVENT `e 1` ON SCHEDULE EVERY 1 HOUR DISABLE COMMENT 'it''s' DO DELETE FROM t WHERE id = 0")
    finally:
        conn.close()
    events = ("SELECT EVENT_NAME, EVENT_DEFINITION, STATUS, INTERVAL_VALUE, INTERVAL_FIELD, EVENT_COMMENT "
              "FROM information_schema.EVENTS WHERE EVENT_SCHEMA = '%s'")
    repo = os.path.join(work, 'repo')
    result = backup(source, repo, method='logical', databases=[name], jobs=2)
    with open(os.path.join(result['backup']['path'], 'manifest.json')) as f:
        assert json.load(f)['details']['table_data'] == layout
    out = restore(source, repo, databases=[name], target_database='mevents_' + layout)
    assert not out['failed'], out.get('msg')
    assert source.sql('SELECT id, v FROM mevents_%s.t ORDER BY id' % layout) == ((1, 'x'), (2, None))
    assert source.sql(events % ('mevents_' + layout)) == source.sql(events % name.replace('\\', '\\\\').replace("'", "''"))
    assert len(source.sql(events % ('mevents_' + layout))) == 1
    drill = restore(source, repo, state='verified')
    assert not drill['failed'] and drill['result'] == 'passed', drill.get('msg')


def test_module_logical_restore_never_replaces_a_system_database(source, work):
    """target_database mysql with force dropped the mysql schema (every account) and put the backup's
    tables there; sys was replaced the same way. System databases are refused, in check mode too."""
    fill(source, 'msysrest', 10)
    repo = os.path.join(work, 'repo')
    backup(source, repo, method='logical', databases=['msysrest'])
    users = source.sql('SELECT COUNT(*) FROM mysql.global_priv')
    # check mode first: without the refusal the real run below would drop this server's accounts
    for target in ('mysql', 'MySQL', 'sys', 'information_schema', 'performance_schema'):
        preview = restore(source, repo, check=True, target_database=target, force=True)
        assert preview['failed'] and 'system database' in preview['msg'], preview.get('msg')
    for target in ('mysql', 'sys'):
        refused = restore(source, repo, target_database=target, force=True)
        assert refused['failed'] and 'system database' in refused['msg'], refused.get('msg')
    assert source.sql('SELECT COUNT(*) FROM mysql.global_priv') == users
    assert source.sql("SELECT COUNT(*) FROM information_schema.TABLES WHERE TABLE_SCHEMA = 'mysql' "
                      "AND TABLE_NAME = 't1'") == ((0,),)


def test_module_logical_longest_unicode_names(source, work):
    """A 64-character database and table name of 2-byte UTF-8 characters: the backup failed with
    "unexpected error: [Errno 36] File name too long" (hex-encoded file names of 259 characters)."""
    database, table = '\u00fc' * 64, 'a table \u00df' + '\u00df' * 55
    source.sql('CREATE DATABASE `%s`' % database)
    source.sql('CREATE TABLE `%s` (id INT PRIMARY KEY, v VARCHAR(10))' % table, database)
    source.sql("INSERT INTO `%s` VALUES (1, 'x'), (2, NULL)" % table, database)
    repo = os.path.join(work, 'repo')
    try:
        backup(source, repo, method='logical', databases=[database], jobs=2)
        out = restore(source, repo, databases=[database], target_database='mlongnames')
        assert not out['failed'], out.get('msg')
        assert source.sql('SELECT id, v FROM mlongnames.`%s` ORDER BY id' % table) == ((1, 'x'), (2, None))
    finally:
        # mariadb-backup --move-back cannot copy such a table back (its file name is cut, "Destination file
        # exists"): the physical tests on this server must not see it
        source.sql('DROP DATABASE IF EXISTS `%s`' % database)
        source.sql('DROP DATABASE IF EXISTS mlongnames')


@pytest.mark.parametrize('jobs', [1, 2])
def test_module_logical_system_versioned_table_keeps_its_history(source, work, jobs):
    """A system-versioned table goes through mariadb-dump: with jobs 2 (the tables of one database shared
    out over several dumps) it was left out of the backup altogether (so was a sequence), and with jobs 1 only its current rows
    were dumped; restore and drill counted no rows of it. Now dumped with --dump-history, counted and
    checked like a base table."""
    database = 'mversioned%d' % jobs
    source.sql('CREATE DATABASE %s' % database)
    source.sql('CREATE TABLE t (id INT PRIMARY KEY, v INT) WITH SYSTEM VERSIONING', database)
    source.sql('CREATE TABLE plain (id INT PRIMARY KEY)', database)
    source.sql('INSERT INTO plain VALUES (1), (2)', database)
    source.sql('CREATE SEQUENCE seq START WITH 500', database)   # left out with t
    source.sql('INSERT INTO t VALUES (1, 1), (2, 2)', database)
    source.sql('UPDATE t SET v = v + 10', database)
    source.sql('DELETE FROM t WHERE id = 2', database)
    history = 'SELECT id, v, ROW_START, ROW_END FROM %s.t FOR SYSTEM_TIME ALL ORDER BY 1, 2, 3'
    expected = source.sql(history % database)
    assert len(expected) == 4
    repo = os.path.join(work, 'repo')
    backup(source, repo, method='logical', databases=[database], jobs=jobs)
    out = restore(source, repo, target_database=database + '_r')
    assert not out['failed'], out.get('msg')
    assert source.sql(history % (database + '_r')) == expected
    assert source.sql('SELECT NEXTVAL(%s_r.seq)' % database)[0][0] >= 500
    assert {t['name']: t['rows'] for t in out['tables']} == {'plain': 2, 't': 1}
    drill = restore(source, repo, state='verified')
    assert not drill['failed'], drill.get('msg')
    assert {t['name']: t['rows'] for t in drill['tables']} == {'plain': 2, 't': 1}


@pytest.mark.parametrize('jobs', [1, 2])
def test_module_logical_transaction_precise_history_backs_up_current_rows_with_a_warning(source, work, jobs):
    """mariadb-dump --dump-history refuses a table with transaction-precise history (ROW START/END
    holding transaction ids): the whole logical backup failed. The dump holding it now goes without
    history, with a warning naming the table; a timestamp-versioned table of another database keeps
    its history."""
    database, other = 'mprecise%d' % jobs, 'mstamped%d' % jobs
    source.sql('CREATE DATABASE %s' % database)
    source.sql('CREATE TABLE tp (id INT PRIMARY KEY, v INT, s BIGINT UNSIGNED GENERATED ALWAYS AS ROW START INVISIBLE, '
               'e BIGINT UNSIGNED GENERATED ALWAYS AS ROW END INVISIBLE, PERIOD FOR SYSTEM_TIME(s, e)) '
               'ENGINE=InnoDB WITH SYSTEM VERSIONING', database)
    source.sql('INSERT INTO tp (id, v) VALUES (1, 1), (2, 2)', database)
    source.sql('UPDATE tp SET v = v + 10', database)
    source.sql('CREATE DATABASE %s' % other)
    source.sql('CREATE TABLE ts (id INT PRIMARY KEY, v INT) WITH SYSTEM VERSIONING', other)
    source.sql('INSERT INTO ts VALUES (1, 1)', other)
    source.sql('UPDATE ts SET v = 5', other)
    repo = os.path.join(work, 'repo')
    result = backup(source, repo, method='logical', databases=[database, other], jobs=jobs)
    warnings = ' '.join(str(w) for w in result.get('warnings') or [])
    assert '%s.tp' % database in warnings and 'transaction-precise' in warnings
    assert other not in warnings
    out = restore(source, repo, databases=[database], target_database=database + '_r')
    assert not out['failed'], out.get('msg')
    assert source.sql('SELECT id, v FROM %s_r.tp ORDER BY id' % database) == ((1, 11), (2, 12))
    out = restore(source, repo, databases=[other], target_database=other + '_r')
    assert not out['failed'], out.get('msg')
    assert len(source.sql('SELECT id FROM %s_r.ts FOR SYSTEM_TIME ALL' % other)) == 2


def test_module_logical_backup_and_restore_with_a_non_ascii_password(source, work):
    """A login whose password holds a character outside latin-1 failed every module with "unexpected error:
    'latin-1' codec can't encode character"; the password now goes to the server and the tools as UTF-8."""
    password = 'p\u00fc\u20ac #"\\ \U0001F511'
    conn = source.connect()
    try:
        with conn.cursor() as cur:
            cur.execute("CREATE USER 'mbk'@'127.0.0.1' IDENTIFIED BY %s", (password,))
            cur.execute("GRANT ALL ON *.* TO 'mbk'@'127.0.0.1'")
    finally:
        conn.close()
    fill(source, 'mutf8pw', 5)
    login = dict(source.conn, login_user='mbk', login_password=password)
    repo = os.path.join(work, 'repo')
    result = modrun.run_module('db_backup', dict(login, repo=repo, method='logical', databases=['mutf8pw']))
    assert not result['failed'], result.get('msg')
    out = modrun.run_module('db_restore', dict(login, repo=repo, target_database='mutf8pw_r'))
    assert not out['failed'], out.get('msg')
    assert table_state(source, 'mutf8pw_r') == table_state(source, 'mutf8pw')
    assert password not in result['_stdout'] + out['_stdout'] + result['_stderr'] + out['_stderr']


def test_module_physical_chain_pitr_and_drill(source, work):
    fill(source, 'mpitr', 1000)
    source.sql('CREATE TABLE marks (tag VARCHAR(5) PRIMARY KEY)', 'mpitr')
    repo = os.path.join(work, 'repo')
    full = backup(source, repo, method='physical', type='full', compression='zstd')
    fill(source, 'mpitr', 200, start=5000)
    inc = backup(source, repo, method='physical', type='incremental', compression='zstd')
    assert inc['backup']['parent_id'] == full['backup']['id']
    state_inc = table_state(source, 'mpitr')
    fill(source, 'mpitr', 50, start=9000)
    diff = backup(source, repo, method='physical', type='differential', compression='none')
    assert diff['backup']['parent_id'] == full['backup']['id']
    state_diff = table_state(source, 'mpitr')
    source.sql("INSERT INTO marks VALUES ('A')", 'mpitr')
    time.sleep(1.3)
    target = datetime.datetime.now(datetime.timezone.utc).strftime('%Y-%m-%dT%H:%M:%S.%fZ')
    time.sleep(1.3)
    source.sql("INSERT INTO marks VALUES ('B')", 'mpitr')
    log = backup(source, repo, method='physical', type='log')
    assert log['backup']['type'] == 'log'

    # the incremental chain, restored into a new data directory
    port = free_port()
    out = restore(source, repo, backup_id=inc['backup']['id'], data_dir=os.path.join(work, 'inc', 'data'),
                  login_port=port)
    assert not out['failed'], out.get('msg')
    assert table_state(Restored({'port': port, 'data_dir': out['data_dir']}, source.password), 'mpitr') == state_inc
    mb.stop_instance(out['data_dir'])
    port = free_port()
    out = restore(source, repo, backup_id=diff['backup']['id'], data_dir=os.path.join(work, 'diff', 'data'),
                  login_port=port)
    assert not out['failed'], out.get('msg')
    assert table_state(Restored({'port': port, 'data_dir': out['data_dir']}, source.password), 'mpitr') == state_diff
    mb.stop_instance(out['data_dir'])

    # point in time: A present, B absent
    port = free_port()
    pitr_dir = os.path.join(work, 'pitr', 'data')
    out = restore(source, repo, diff=True, backup_id=log['backup']['id'], target_time=target, data_dir=pitr_dir,
                  login_port=port)
    assert not out['failed'], out.get('msg')
    assert out['diff'] == {'before': {'data_dir': pitr_dir, 'holds': None, 'running': False},
                           'after': {'data_dir': pitr_dir, 'running': True, 'port': port,
                                     'holds': {'backup_id': log['backup']['id'], 'target_time': target}}}, out['diff']
    restored = Restored({'port': port, 'data_dir': pitr_dir}, source.password)
    assert [r[0] for r in restored.sql('SELECT tag FROM marks', 'mpitr')] == ['A']
    assert out['recovered_to'].startswith(target[:19])
    # the same restore again is unchanged; into the (running, non-empty) directory nothing else happens
    again = restore(source, repo, backup_id=log['backup']['id'], target_time=target, data_dir=pitr_dir,
                    login_port=port)
    assert not again['failed'] and again['changed'] is False
    mb.stop_instance(pitr_dir)

    # the restore drill of the latest physical backup
    drill = restore(source, repo, backup_id=full['backup']['id'], state='verified')
    assert not drill['failed'], drill.get('msg')
    assert drill['result'] == 'passed' and drill['rto_seconds'] > 0
    assert {t['name'] for t in drill['tables'] if t['database'] == 'mpitr'} == {'t1', 't2', 'marks'}


def test_module_restore_of_a_log_backup_replays_to_its_end_and_bad_target_position_is_refused(source, work):
    """Without a target, restoring a log backup (latest, or an older one by id) replays the archived
    binary logs to the end of that log backup; so does its restore drill. A target_position the engine
    cannot honour is refused, naming the accepted keys, before the data directory is created."""
    source.sql('CREATE DATABASE mlogend')
    source.sql('CREATE TABLE marks (tag VARCHAR(5) PRIMARY KEY)', 'mlogend')
    repo = os.path.join(work, 'repo')
    full = backup(source, repo, method='physical', type='full', compression='zstd')
    source.sql("INSERT INTO marks VALUES ('A')", 'mlogend')
    log1 = backup(source, repo, method='physical', type='log')
    time.sleep(1.1)
    before_b = datetime.datetime.now(datetime.timezone.utc).replace(microsecond=0)
    source.sql("INSERT INTO marks VALUES ('B')", 'mlogend')
    log2 = backup(source, repo, method='physical', type='log')
    source.sql("INSERT INTO marks VALUES ('C')", 'mlogend')  # never archived

    def marks(out):
        restored = Restored({'port': out['port'], 'data_dir': out['data_dir']}, source.password)
        return [r[0] for r in restored.sql('SELECT tag FROM marks ORDER BY tag', 'mlogend')]

    port = free_port()
    out = restore(source, repo, data_dir=os.path.join(work, 'latest', 'data'), login_port=port)
    assert not out['failed'], out.get('msg')
    assert out['backup_id'] == log2['backup']['id']
    assert marks(out) == ['A', 'B']
    assert mb.parse_time(out['recovered_to']) >= before_b
    mb.stop_instance(out['data_dir'])
    port = free_port()
    out = restore(source, repo, backup_id=log1['backup']['id'], data_dir=os.path.join(work, 'log1', 'data'),
                  login_port=port)
    assert not out['failed'], out.get('msg')
    assert marks(out) == ['A']
    assert mb.parse_time(out['recovered_to']) < before_b + datetime.timedelta(seconds=1)
    mb.stop_instance(out['data_dir'])
    # the full backup itself: no replay
    port = free_port()
    out = restore(source, repo, backup_id=full['backup']['id'], data_dir=os.path.join(work, 'full', 'data'),
                  login_port=port)
    assert not out['failed'], out.get('msg')
    assert marks(out) == []
    mb.stop_instance(out['data_dir'])

    drill = restore(source, repo, state='verified')
    assert not drill['failed'], drill.get('msg')
    assert drill['backup_id'] == log2['backup']['id']
    assert {t['name']: t['rows'] for t in drill['tables'] if t['database'] == 'mlogend'} == {'marks': 2}

    for bad, words in (({'lsn': '0/0'}, 'unknown key lsn'), ({'binlog_pos': 4}, 'binlog_file missing'),
                       ({'binlog_file': 'mysql-bin.000001'}, 'binlog_pos missing')):
        data_dir = os.path.join(work, 'bad', 'data')
        refused = restore(source, repo, target_position=bad, data_dir=data_dir, login_port=free_port())
        assert refused['failed'] and words in refused['msg'], refused.get('msg')
        assert 'binlog_file' in refused['msg'] and 'gtid' in refused['msg']
        assert not os.path.exists(data_dir)


def test_module_target_position_past_the_archive_is_refused(source, work):
    """A GTID in a domain the server never logged made mariadb-binlog stop at once: the restore held the
    base backup only and said target_reached true; a GTID or binlog_pos past the archive's end replayed
    everything and said the same. Both are refused naming where the archive ends, before data_dir is
    created (check mode too)."""
    source.sql('CREATE DATABASE mpastend')
    source.sql('CREATE TABLE marks (tag VARCHAR(5) PRIMARY KEY)', 'mpastend')
    repo = os.path.join(work, 'repo')
    backup(source, repo, method='physical', type='full', compression='zstd')
    source.sql("INSERT INTO marks VALUES ('A')", 'mpastend')
    log = backup(source, repo, method='physical', type='log')
    end = log['backup']['stop_position']
    domain, server, seq = (int(x) for x in end['gtid'].split(',')[0].split('-'))
    data_dir = os.path.join(work, 'past', 'data')
    for target, words in (({'gtid': '%d-%d-%d' % (domain + 7, server, 1)}, 'ends at GTID'),
                          ({'gtid': '%d-%d-%d' % (domain, server, seq + 1000)}, 'ends at GTID'),
                          ({'binlog_file': end['binlog_file'], 'binlog_pos': int(end['binlog_pos']) + 100000},
                           'past the end of ' + end['binlog_file']),
                          ({'binlog_file': 'mysql-bin.000777', 'binlog_pos': 4}, 'mysql-bin.000777 is not in it')):
        for check in (True, False):
            refused = restore(source, repo, check=check, target_position=target, data_dir=data_dir,
                              login_port=free_port())
            assert refused['failed'] and words in refused['msg'], (target, check, refused.get('msg'))
            assert not os.path.exists(data_dir)


def test_module_physical_restore_refuses_targets_before_the_backup_and_taken_ports(source, work):
    """A target_position before the end of the chosen backup (a binlog position, a GTID, a file of
    another series) is refused before anything is written; with backup_id latest the newest backup
    ending before the position is used. A port already taken is refused before anything changes; a
    restored instance asked for on another port says so while it runs and moves there once stopped."""
    source.sql('CREATE DATABASE mpos')
    source.sql('CREATE TABLE marks (tag VARCHAR(5) PRIMARY KEY)', 'mpos')
    repo = os.path.join(work, 'repo')
    full = backup(source, repo, method='physical', type='full', compression='zstd')
    source.sql("INSERT INTO marks VALUES ('A')", 'mpos')
    after_a = source.sql("SHOW MASTER STATUS")[0]
    gtid_a = source.sql('SELECT @@gtid_binlog_pos')[0][0]
    source.sql("INSERT INTO marks VALUES ('B')", 'mpos')
    inc = backup(source, repo, method='physical', type='incremental', compression='zstd')
    source.sql("INSERT INTO marks VALUES ('C')", 'mpos')
    backup(source, repo, method='physical', type='log')
    data_dir = os.path.join(work, 'pos', 'data')
    at_a = {'binlog_file': after_a[0], 'binlog_pos': int(after_a[1])}
    for target in (at_a, {'gtid': gtid_a}):
        for check in (True, False):
            refused = restore(source, repo, check=check, backup_id=inc['backup']['id'], target_position=target,
                              data_dir=data_dir, login_port=free_port())
            assert refused['failed'] and 'restore an older backup' in refused['msg'], refused.get('msg')
            assert inc['backup']['id'] in refused['msg'] and not os.path.exists(data_dir)
    other = restore(source, repo, backup_id=inc['backup']['id'], data_dir=data_dir, login_port=free_port(),
                    target_position={'binlog_file': 'other-bin.000009', 'binlog_pos': 4})
    assert other['failed'] and 'other-bin.000009' in other['msg'] and 'mysql-bin' in other['msg']
    assert not os.path.exists(data_dir)

    # latest with a position: the newest backup that ends before it (the full), replayed to A
    port = free_port()
    out = restore(source, repo, target_position=at_a, data_dir=data_dir, login_port=port)
    assert not out['failed'], out.get('msg')
    assert out['backup_id'] == full['backup']['id']
    restored = Restored({'port': port, 'data_dir': data_dir}, source.password)
    assert [r[0] for r in restored.sql('SELECT tag FROM marks ORDER BY tag', 'mpos')] == ['A']

    # the same restore on another port: refused while the instance runs, nothing changes
    moved = free_port()
    busy = restore(source, repo, target_position=at_a, data_dir=data_dir, login_port=moved)
    assert busy['failed'] and 'running on port %d' % port in busy['msg'], busy.get('msg')
    assert restored.sql('SELECT @@port')[0][0] == port
    mb.stop_instance(data_dir)
    # stopped: a port another server holds is refused, a free one is where it starts
    taken = restore(source, repo, target_position=at_a, data_dir=data_dir, login_port=source.port)
    assert taken['failed'] and 'port %d is already in use' % source.port in taken['msg'], taken.get('msg')
    assert not mb.instance_running(data_dir)
    started = restore(source, repo, target_position=at_a, data_dir=data_dir, login_port=moved)
    assert not started['failed'] and started['changed'] and started['port'] == moved, started.get('msg')
    assert Restored({'port': moved, 'data_dir': data_dir}, source.password).sql('SELECT @@port')[0][0] == moved
    again = restore(source, repo, target_position=at_a, data_dir=data_dir, login_port=moved)
    assert not again['failed'] and again['changed'] is False
    mb.stop_instance(data_dir)

    # force never empties the repository, a directory holding it or one inside it
    held = sorted(os.listdir(repo))
    for inside in (repo, work, os.path.join(repo, 'logs'), os.path.join(repo, 'new')):
        for check in (True, False):
            refused = restore(source, repo, check=check, data_dir=inside, login_port=free_port(), force=True)
            assert refused['failed'] and 'backup repository' in refused['msg'], refused.get('msg')
    assert sorted(os.listdir(repo)) == held and not os.path.exists(os.path.join(repo, 'new'))
    # a data_dir the server's OS user could not reach: refused before anything is written
    if os.geteuid() == 0:
        locked = os.path.join(work, 'locked')
        os.makedirs(locked)
        os.chmod(locked, 0o700)
        for check in (True, False):
            refused = restore(source, repo, check=check, data_dir=os.path.join(locked, 'data'), login_port=free_port())
            assert refused['failed'] and 'mysql, which cannot enter %s' % locked in refused['msg'], refused.get('msg')
            assert os.listdir(locked) == []
    # a new instance onto a taken port: refused before the data directory is created
    fresh = os.path.join(work, 'fresh', 'data')
    for check in (True, False):
        taken = restore(source, repo, check=check, data_dir=fresh, login_port=source.port)
        assert taken['failed'] and 'already in use' in taken['msg'] and not os.path.exists(fresh)


def test_module_log_backup_across_purged_binary_logs_fails_until_a_new_full(source, work):
    """Binary logs purged before they were archived: the log backup fails naming them (it is never
    published as verified); the closed logs still there are archived; after a new full backup the
    log backups work again."""
    source.sql('CREATE DATABASE mgap')
    source.sql('CREATE TABLE t (id INT PRIMARY KEY)', 'mgap')
    repo = os.path.join(work, 'repo')
    backup(source, repo, method='physical', type='full', compression='zstd')
    source.sql('INSERT INTO t VALUES (0)', 'mgap')
    backup(source, repo, method='physical', type='log')
    gone = source.sql('SHOW MASTER STATUS')[0][0]   # not archived yet
    source.sql('INSERT INTO t VALUES (1)', 'mgap')
    source.sql('FLUSH BINARY LOGS')
    source.sql('INSERT INTO t VALUES (2)', 'mgap')
    source.sql('FLUSH BINARY LOGS')
    source.sql('FLUSH BINARY LOGS')
    current = source.sql('SHOW MASTER STATUS')[0][0]
    deadline = time.time() + 10
    while True:
        # the server keeps a binary log until its binlog checkpoint has passed it
        source.sql("PURGE BINARY LOGS TO '%s'" % current)
        if gone not in [r[0] for r in source.sql('SHOW BINARY LOGS')] or time.time() > deadline:
            break
        time.sleep(0.3)
    assert gone not in [r[0] for r in source.sql('SHOW BINARY LOGS')]
    failed = modrun.run_module('db_backup', dict(source.conn, repo=repo, method='physical', type='log'))
    assert failed['failed'] and gone in failed['msg'] and 'purged' in failed['msg'], failed.get('msg')
    assert 'new full physical backup' in failed['msg']
    assert [m for m in mb_manifests(repo) if m['type'] == 'log'] and \
        all(m['verified'] for m in mb_manifests(repo))
    again = modrun.run_module('db_backup', dict(source.conn, repo=repo, method='physical', type='log'))
    assert again['failed'] and gone in again['msg']
    backup(source, repo, method='physical', type='full', compression='zstd')
    source.sql('INSERT INTO t VALUES (3)', 'mgap')
    ok = backup(source, repo, method='physical', type='log')
    assert ok['backup']['verified'] is True
    drill = restore(source, repo, state='verified')
    assert not drill['failed'], drill.get('msg')


def test_module_log_backup_with_the_default_method_is_the_physical_log_archive(source, work):
    """type=log without method (method defaults to logical) archives the binary logs like method=physical:
    it was run, then verified as a logical dump ("dump-index.json: missing") and failed, leaving the copied
    binary logs unrecorded in logs/."""
    source.sql('CREATE DATABASE mlogdefault')
    source.sql('CREATE TABLE t (id INT PRIMARY KEY)', 'mlogdefault')
    repo = os.path.join(work, 'repo')
    full = backup(source, repo, method='physical', type='full', compression='zstd')
    source.sql('INSERT INTO t VALUES (1)', 'mlogdefault')
    preview = modrun.run_module('db_backup', dict(source.conn, repo=repo, type='log'), check=True)
    assert not preview['failed'] and preview['changed'], preview.get('msg')
    log = backup(source, repo, type='log')
    assert log['changed'] and log['backup']['type'] == 'log' and log['backup']['method'] == 'physical'
    assert log['backup']['verified'] is True and log['backup']['parent_id'] == full['backup']['id']
    # databases with type=log: the archive is the whole server's, refused as with method=physical (it was
    # taken as physical and databases silently ignored), in check mode too, and nothing is written
    entries = sorted(os.listdir(repo))
    for check in (True, False):
        refused = modrun.run_module('db_backup', dict(source.conn, repo=repo, type='log', databases=['mlogdefault']),
                                    check=check)
        assert refused['failed'] and 'log backup takes the whole server' in refused['msg'], refused.get('msg')
    assert sorted(os.listdir(repo)) == entries
    again = backup(source, repo, type='log', method='logical')
    assert again['changed'] is False
    verified = modrun.run_module('db_backup', dict(source.conn, repo=repo, state='verified'))
    assert not verified['failed'], verified.get('msg')
    drill = restore(source, repo, state='verified')
    assert not drill['failed'], drill.get('msg')
    assert {t['name']: t['rows'] for t in drill['tables'] if t['database'] == 'mlogdefault'} == {'t': 1}


def test_module_log_backup_with_nothing_written_since_is_unchanged(source, work):
    """A log backup when no transaction was written since the last one: unchanged, no new entry
    (check mode says the same); a write makes the next one take a backup again."""
    source.sql('CREATE DATABASE midle')
    source.sql('CREATE TABLE t (id INT PRIMARY KEY)', 'midle')
    repo = os.path.join(work, 'repo')
    backup(source, repo, method='physical', type='full', compression='zstd')
    source.sql('INSERT INTO t VALUES (0)', 'midle')
    first = backup(source, repo, method='physical', type='log')
    assert first['changed'] is True and first['backup']['type'] == 'log'
    files = [r[0] for r in source.sql('SHOW BINARY LOGS')]
    for check in (True, False):
        idle = modrun.run_module('db_backup', dict(source.conn, repo=repo, method='physical', type='log'), check=check)
        assert not idle['failed'] and idle['changed'] is False and idle['up_to_date'] is True, idle.get('msg')
        assert idle['backup']['id'] == first['backup']['id'] and 'nothing was written' in idle['msg']
    assert [r[0] for r in source.sql('SHOW BINARY LOGS')] == files   # not even a FLUSH BINARY LOGS
    assert len([m for m in mb_manifests(repo) if m['type'] == 'log']) == 1, (os.listdir(repo), mb_manifests(repo))
    source.sql('INSERT INTO t VALUES (1)', 'midle')
    second = backup(source, repo, method='physical', type='log')
    assert second['changed'] is True and second['backup']['id'] != first['backup']['id']


def mb_manifests(repo):
    found = []
    for name in sorted(os.listdir(repo)):
        path = os.path.join(repo, name, 'manifest.json')
        if os.path.isfile(path):
            with open(path) as f:
                found.append(json.load(f))
    return found


def test_module_verification_names_a_flipped_file(source, work):
    fill(source, 'mflip', 500)
    repo = os.path.join(work, 'repo')
    result = backup(source, repo, method='physical', compression='zstd')
    data = os.path.join(result['backup']['path'], 'data')
    ok = modrun.run_module('db_backup', dict(source.conn, repo=repo, state='verified'))
    assert not ok['failed'], ok.get('msg')
    victim = os.path.join(data, 'backup.mbstream.zst')
    with open(victim, 'r+b') as f:
        f.seek(os.path.getsize(victim) // 3)
        byte = f.read(1)
        f.seek(-1, 1)
        f.write(bytes([byte[0] ^ 0x01]))
    bad = modrun.run_module('db_backup', dict(source.conn, repo=repo, state='verified'))
    assert bad['failed'] and 'backup.mbstream.zst' in bad['msg']


def test_module_flipped_byte_in_an_archived_binary_log_fails_pitr_and_verification(source, work):
    """A point-in-time restore from a full backup (target_time, latest) reads archived binary logs
    no backup of its chain lists: each must still match the sha256 its log backup recorded, else
    the restore is refused naming the file before data_dir is created; the full backup's own
    verification and drill say the same (as for a missing binary log)."""
    source.sql('CREATE DATABASE mlogflip')
    source.sql('CREATE TABLE marks (tag VARCHAR(5) PRIMARY KEY)', 'mlogflip')
    repo = os.path.join(work, 'repo')
    full = backup(source, repo, method='physical', type='full', compression='zstd')
    source.sql("INSERT INTO marks VALUES ('A')", 'mlogflip')
    log = backup(source, repo, method='physical', type='log')
    with open(os.path.join(log['backup']['path'], 'manifest.json')) as f:
        victim = os.path.join(repo, json.load(f)['log_files'][-1]['path'])
    with open(victim, 'r+b') as f:
        f.seek(os.path.getsize(victim) // 2)
        byte = f.read(1)
        f.seek(-1, 1)
        f.write(bytes([byte[0] ^ 0x01]))
    name = os.path.basename(victim)
    time.sleep(1.1)  # the replay stops at the second before the target: A is in an earlier one
    target = datetime.datetime.now(datetime.timezone.utc).strftime('%Y-%m-%dT%H:%M:%SZ')
    data_dir = os.path.join(work, 'pitr', 'data')
    # check mode tells the same (it said 'would restore'), and so does a log backup restored to its end
    for check, kw in ((True, {'target_time': target}), (True, {'backup_id': log['backup']['id']}),
                      (False, {'target_time': target})):
        refused = restore(source, repo, check=check, data_dir=data_dir, login_port=free_port(), **kw)
        assert refused['failed'] and name in refused['msg'] and 'sha256' in refused['msg'], (check, refused.get('msg'))
        assert not os.path.exists(data_dir)
    drill = restore(source, repo, state='verified', backup_id=full['backup']['id'])
    assert drill['failed'] and name in drill['msg'], drill.get('msg')
    bad = modrun.run_module('db_backup', dict(source.conn, repo=repo, state='verified', backup_id=full['backup']['id']))
    assert bad['failed'] and name in bad['msg'], bad.get('msg')
    # the full is now marked damaged: a target_time restore says so instead of "no backup ended before"
    refused = restore(source, repo, target_time=target, data_dir=data_dir, login_port=free_port())
    assert refused['failed'] and full['backup']['id'] in refused['msg'] and 'damaged' in refused['msg'], refused.get('msg')
    assert name in refused['msg'] and not os.path.exists(data_dir)
    # repaired and verified again: the restore replays the archive
    with open(victim, 'r+b') as f:
        f.seek(os.path.getsize(victim) // 2)
        f.write(byte)
    fixed = modrun.run_module('db_backup', dict(source.conn, repo=repo, state='verified', backup_id=full['backup']['id']))
    assert not fixed['failed'], fixed.get('msg')
    out = restore(source, repo, target_time=target, data_dir=data_dir, login_port=free_port())
    assert not out['failed'], out.get('msg')
    restored = Restored({'port': out['port'], 'data_dir': out['data_dir']}, source.password)
    assert [r[0] for r in restored.sql('SELECT tag FROM marks', 'mlogflip')] == ['A']
    mb.stop_instance(out['data_dir'])


def test_module_backup_killed_half_way_leaves_latest_restorable(source, work):
    import json
    import signal
    import subprocess
    import sys
    import tempfile

    fill(source, 'mkill', 20000)
    repo = os.path.join(work, 'repo')
    good = backup(source, repo, method='physical', compression='zstd')
    expected = table_state(source, 'mkill')
    source.sql('DELETE FROM t2', 'mkill')
    # a second backup, killed with SIGKILL while mariadb-backup is writing
    args = dict(source.conn, repo=repo, method='physical', compression='zstd', _ansible_check_mode=False,
                _ansible_diff=False)
    with tempfile.NamedTemporaryFile('w', suffix='.json', delete=False) as f:
        json.dump({'ANSIBLE_MODULE_ARGS': args}, f)
    env = dict(os.environ, PYTHONPATH=modrun.collections_root() + os.pathsep + os.environ.get('PYTHONPATH', ''))
    proc = subprocess.Popen([sys.executable, os.path.join(REPO_ROOT, 'plugins', 'modules', 'db_backup.py'), f.name],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=env, start_new_session=True)
    try:
        deadline = time.time() + 60
        while time.time() < deadline:
            incoming = [n for n in os.listdir(repo) if n.startswith('.incoming-')] if os.path.isdir(repo) else []
            if incoming and os.path.exists(os.path.join(repo, incoming[0], 'data', 'meta')):
                break
            time.sleep(0.02)
        else:
            pytest.fail('the second backup never started writing')
        proc.send_signal(signal.SIGKILL)
        proc.wait()
    finally:
        os.unlink(f.name)
        time.sleep(0.5)
        try:
            os.killpg(proc.pid, signal.SIGKILL)  # the orphaned mariadb-backup / zstd of that run
        except OSError:
            pass
    manifests = sorted(n for n in os.listdir(repo) if not n.startswith('.') and n != 'logs')
    assert manifests == [good['backup']['id']]
    port = free_port()
    out = restore(source, repo, data_dir=os.path.join(work, 'after-kill', 'data'), login_port=port)
    assert not out['failed'], out.get('msg')
    assert out['backup_id'] == good['backup']['id']
    assert table_state(Restored({'port': port, 'data_dir': out['data_dir']}, source.password), 'mkill') == expected
    mb.stop_instance(out['data_dir'])
    # the next run works and reports the killed one as failed
    again = backup(source, repo, method='physical', compression='zstd')
    assert again['backup']['id'] != good['backup']['id']
    assert [r['status'] for r in again['failed_runs']] == ['failed']
    # the killed run's option file (it held the password) was swept by the next run
    assert not [n for n in os.listdir(tempfile.gettempdir()) if n.startswith('dbops-cnf-%d-' % proc.pid)]


def _accounts(server, *names):
    rows = server.sql("SELECT CONCAT(User, '@', Host) FROM mysql.user WHERE User IN (%s) ORDER BY 1"
                      % ', '.join("'%s'" % n for n in names))
    return [r[0] for r in rows]


def test_module_logical_restore_accounts_require_skip_create(source, work):
    """Definers and accounts holding privileges on the database: a missing one fails the restore
    before any change (roles=require), is left as recorded (skip), or comes back as it was (create,
    same password hash, grants, role and its members)."""
    names = ('acc_app', 'acc_rdr', 'acc_ro', 'acc_col', 'acc_tbl', 'acc_outer', 'acc_inner')
    for stmt in ["CREATE DATABASE accdb", "CREATE USER 'acc_app'@'%' IDENTIFIED BY 'app-pw-1'",
                 "CREATE USER 'acc_rdr'@'localhost' IDENTIFIED BY 'rdr-pw-2'", "CREATE ROLE acc_ro",
                 "GRANT SELECT ON accdb.* TO acc_ro", "GRANT acc_ro TO 'acc_rdr'@'localhost'",
                 "GRANT SELECT, INSERT ON accdb.* TO 'acc_app'@'%'", "GRANT PROCESS ON *.* TO 'acc_app'@'%'",
                 "CREATE TABLE accdb.t (id INT PRIMARY KEY, v VARCHAR(20))",
                 "INSERT INTO accdb.t VALUES (1, 'a'), (2, 'b'), (3, 'c')",
                 "CREATE DEFINER = 'acc_app'@'%' SQL SECURITY DEFINER VIEW accdb.v AS SELECT COUNT(*) AS n FROM accdb.t",
                 # grants on a column and a table (given after the load), a role holding a role the
                 # database does not need (not created: its membership is left out)
                 "CREATE USER 'acc_col'@'localhost'", "GRANT SELECT (id, v) ON accdb.t TO 'acc_col'@'localhost'",
                 "CREATE USER 'acc_tbl'@'10.0.%'", "GRANT SELECT ON accdb.t TO 'acc_tbl'@'10.0.%'",
                 "CREATE ROLE acc_inner", "CREATE ROLE acc_outer", "GRANT acc_inner TO acc_outer",
                 "GRANT SELECT ON accdb.* TO acc_outer"]:
        source.sql(stmt)
    repo = os.path.join(work, 'repo')
    key = 'accounts-key-0123456789'
    result = backup(source, repo, method='logical', databases=['accdb'], encryption_key=key)
    manifest = result['backup']['path'] + '/manifest.json'
    with open(manifest) as f:
        dump = json.load(f)['details']['dumps'][0]
    assert dump['accounts'] == [['acc_app', '%'], ['acc_col', 'localhost'], ['acc_outer', ''], ['acc_ro', ''],
                                ['acc_tbl', '10.0.%']]
    hashed = source.sql("SELECT authentication_string FROM mysql.user WHERE User = 'acc_app'")[0][0]
    found = subprocess.run(['grep', '-r', '-l', '-a', hashed, repo], capture_output=True, text=True)
    assert found.stdout == '', 'a password hash readable in %s' % found.stdout
    expected = table_state(source, 'accdb')
    for stmt in ["DROP DATABASE accdb", "DROP USER 'acc_app'@'%'", "DROP ROLE acc_ro", "DROP USER 'acc_col'@'localhost'",
                 "DROP USER 'acc_tbl'@'10.0.%'", "DROP ROLE acc_outer", "DROP ROLE acc_inner"]:
        source.sql(stmt)
    base = dict(encryption_key=key)

    refused = restore(source, repo, **base)
    assert refused['failed'] and 'acc_app@%, acc_col@localhost, acc_outer, acc_ro, acc_tbl@10.0.%' in refused['msg']
    assert 'roles=create' in refused['msg']
    assert not source.sql("SELECT 1 FROM information_schema.SCHEMATA WHERE SCHEMA_NAME = 'accdb'")

    preview = restore(source, repo, check=True, roles='create', **base)
    created_names = ['acc_app@%', 'acc_col@localhost', 'acc_outer', 'acc_ro', 'acc_tbl@10.0.%']
    assert not preview['failed'] and preview['changed'] and preview['roles_created'] == created_names
    assert _accounts(source, *names) == ['acc_rdr@localhost']

    created = restore(source, repo, roles='create', **base)
    assert not created['failed'], created.get('msg')
    assert created['roles_created'] == created_names
    # an account created with privileges on every database is pointed out
    assert 'accounts acc_app@% were created as recorded with privileges on *.*' in json.dumps(created['warnings'])
    assert table_state(source, 'accdb') == expected
    assert _accounts(source, *names) == ['acc_app@%', 'acc_col@localhost', 'acc_outer@', 'acc_rdr@localhost',
                                         'acc_ro@', 'acc_tbl@10.0.%']
    assert source.sql("SELECT Column_name FROM mysql.columns_priv WHERE User = 'acc_col' ORDER BY 1") == \
        (('id',), ('v',))
    assert source.sql("SELECT Table_priv FROM mysql.tables_priv WHERE User = 'acc_tbl'") == (('Select',),)
    assert source.sql("SELECT COUNT(*) FROM mysql.roles_mapping WHERE User = 'acc_outer'")[0][0] == 0
    assert source.sql("SELECT authentication_string FROM mysql.user WHERE User = 'acc_app'")[0][0] == hashed
    assert source.sql("SELECT COUNT(*) FROM mysql.roles_mapping WHERE Role = 'acc_ro' AND User = 'acc_rdr'")[0][0] == 1
    login = subprocess.run(['mariadb', '-h', '127.0.0.1', '-P', str(source.port), '-u', 'acc_app', '-papp-pw-1', '-N',
                            '-e', 'SELECT n FROM accdb.v'], capture_output=True, text=True)
    assert login.returncode == 0 and login.stdout.strip() == '3', login.stderr
    assert hashed not in json.dumps(created) and 'app-pw-1' not in json.dumps(created)

    again = restore(source, repo, roles='create', **base)
    assert not again['failed'] and again['changed'] is False

    source.sql('DROP DATABASE accdb')
    source.sql("DROP USER 'acc_app'@'%'")
    skipped = restore(source, repo, roles='skip', **base)
    assert not skipped['failed'] and skipped['roles_created'] == []
    assert table_state(source, 'accdb') == expected and 'acc_app@%' not in _accounts(source, *names)

    # restored under another name (a copy on a server without these accounts): the accounts
    # created get their grants on the database as restored, not on the name it had
    for stmt in ["DROP ROLE acc_ro", "DROP USER 'acc_col'@'localhost'", "DROP USER 'acc_tbl'@'10.0.%'",
                 "DROP ROLE acc_outer"]:
        source.sql(stmt)
    copied = restore(source, repo, roles='create', target_database='acc_copy', **base)
    assert not copied['failed'], copied.get('msg')
    assert copied['roles_created'] == created_names
    assert table_state(source, 'acc_copy') == expected
    assert source.sql("SELECT User, Db FROM mysql.db WHERE User IN ('acc_app', 'acc_outer', 'acc_ro') ORDER BY 1") == \
        (('acc_app', 'acc\\_copy'), ('acc_outer', 'acc\\_copy'), ('acc_ro', 'acc\\_copy'))
    assert source.sql("SELECT Db FROM mysql.tables_priv WHERE User = 'acc_tbl'") == (('acc_copy',),)
    assert source.sql("SELECT DISTINCT Db FROM mysql.columns_priv WHERE User = 'acc_col'") == (('acc_copy',),)
    login = subprocess.run(['mariadb', '-h', '127.0.0.1', '-P', str(source.port), '-u', 'acc_app', '-papp-pw-1', '-N',
                            '-e', 'SELECT n FROM acc_copy.v'], capture_output=True, text=True)
    assert login.returncode == 0 and login.stdout.strip() == '3', login.stderr
    for stmt in ["DROP DATABASE accdb", "DROP DATABASE acc_copy", "DROP USER 'acc_rdr'@'localhost'", "DROP ROLE acc_ro",
                 "DROP USER 'acc_app'@'%'", "DROP USER 'acc_col'@'localhost'", "DROP USER 'acc_tbl'@'10.0.%'",
                 "DROP ROLE acc_outer"]:
        source.sql(stmt)


def test_module_encrypted_physical_backup_verifies_drills_and_stays_in_retention(source, work):
    """The manifest of an encrypted backup records the ciphertext: the checks of the decrypted
    copy must not compare it with that (they failed every encrypted backup, and retention then
    deleted it as damaged)."""
    fill(source, 'menc', 300)
    repo = os.path.join(work, 'repo')
    key = 'physical-key-0123456789'
    full = backup(source, repo, method='physical', type='full', compression='zstd', encryption_key=key)
    fill(source, 'menc', 40, start=7000)
    inc = backup(source, repo, method='physical', type='incremental', compression='none', encryption_key=key)
    assert inc['backup']['parent_id'] == full['backup']['id']
    for backup_id in (full['backup']['id'], inc['backup']['id']):
        checked = modrun.run_module('db_backup', {'repo': repo, 'state': 'verified', 'backup_id': backup_id,
                                                  'encryption_key': key})
        assert not checked['failed'], checked.get('msg')
    drill = restore(source, repo, state='verified', encryption_key=key)
    assert not drill['failed'] and drill['result'] == 'passed', drill.get('msg')
    kept = backup(source, repo, method='physical', type='full', compression='zstd', encryption_key=key,
                  retention={'full': 1, 'days': 0})
    assert full['backup']['id'] in kept['deleted'] and inc['backup']['id'] in kept['deleted']
    assert kept['backup']['id'] not in kept['deleted']
    source.sql('DROP DATABASE menc')


def test_module_drill_and_restore_under_a_deep_path(source, work):
    """A repository and a data_dir so deep that a socket in the data directory would be longer than a
    Unix socket path may be: the instance's socket goes to a short directory of its own."""
    fill(source, 'mdeep', 100)
    deep = os.path.join(work, 'backups-of-the-production-cluster', 'eu-west-1-primary-and-replicas', 'nightly')
    os.makedirs(deep)
    repo = os.path.join(deep, 'repo')
    backup(source, repo, method='physical', compression='zstd')
    drill = restore(source, repo, state='verified')
    assert not drill['failed'] and drill['result'] == 'passed', drill.get('msg')
    data_dir = os.path.join(deep, 'restored-instance-data-directory')
    assert len(os.path.join(data_dir, 'mysqld.sock')) > 107
    port = free_port()
    out = restore(source, repo, data_dir=data_dir, login_port=port)
    assert not out['failed'], out.get('msg')
    socket_path = mb.read_key_values(mb.instance_files(data_dir)['cnf'])['socket']
    assert len(socket_path) <= 107 and os.path.exists(socket_path)
    assert Restored({'port': port, 'data_dir': data_dir}, source.password).sql('SELECT COUNT(*) FROM t1', 'mdeep') == \
        ((100,),)
    mb.stop_instance(data_dir)


def _files_state(directory):
    """{path: (sha256, mtime_ns)} of every file below directory."""
    state = {}
    for root, _dirs, files in os.walk(directory):
        for name in files:
            path = os.path.join(root, name)
            state[path] = (mb.sha256_file(path), os.stat(path).st_mtime_ns)
    return state


def test_module_physical_restore_of_tables_with_data_directory(source, work):
    """Tables created with DATA DIRECTORY (an .isl file names their tablespace): a restore on the
    same host, with the source running, puts them under <data_dir>.external, never at the source's
    files; so do the point-in-time replay and the drill. In the way: refused before anything changes."""
    ext = os.path.join(work, 'ext-src')
    os.makedirs(ext)
    shutil.chown(ext, 'mysql' if os.geteuid() == 0 else None, 'mysql' if os.geteuid() == 0 else None)
    source.sql('CREATE DATABASE mext')
    source.sql("CREATE TABLE t_ext (id INT PRIMARY KEY, v VARCHAR(20)) DATA DIRECTORY = '%s'" % ext, 'mext')
    source.sql("CREATE TABLE p_ext (id INT PRIMARY KEY) PARTITION BY RANGE (id) (PARTITION p0 VALUES LESS THAN (100) "
               "DATA DIRECTORY = '%s', PARTITION p1 VALUES LESS THAN MAXVALUE)" % ext, 'mext')
    source.sql('CREATE TABLE t_in (id INT PRIMARY KEY)', 'mext')
    source.sql("CREATE TABLE `caf\u00e9-1` (id INT) DATA DIRECTORY = '%s'" % ext, 'mext')   # file name caf@0p@002d1
    source.sql('INSERT INTO `caf\u00e9-1` VALUES (7)', 'mext')
    source.sql("INSERT INTO t_ext SELECT seq, CONCAT('v', seq) FROM seq_1_to_500", 'mext')
    source.sql('INSERT INTO p_ext SELECT seq FROM seq_1_to_300', 'mext')
    source.sql('INSERT INTO t_in SELECT seq FROM seq_1_to_50', 'mext')
    repo = os.path.join(work, 'repo')
    full = backup(source, repo, method='physical', compression='none')
    stored_isl = os.path.join(repo, full['backup']['id'], 'data', 'data', 'mext', 't_ext.isl')
    with open(stored_isl) as f:
        assert f.read().strip() == os.path.join(ext, 'mext', 't_ext.ibd')
    expected = table_state(source, 'mext')
    source_files = _files_state(ext)
    assert sorted(os.path.basename(p) for p in source_files) == ['caf@0p@002d1.ibd', 'p_ext#P#p0.ibd', 't_ext.ibd']

    port = free_port()
    data_dir = os.path.join(work, 'r1', 'data')
    out = restore(source, repo, data_dir=data_dir, login_port=port)
    assert not out['failed'], out.get('msg')
    root = data_dir + '.external'
    assert sorted((e['database'], e['table'], e['from'], e['to']) for e in out['external_tablespaces']) == [
        ('mext', 'caf\u00e9-1', os.path.join(ext, 'mext', 'caf@0p@002d1.ibd'),
         os.path.join(root, 'mext', 'caf@0p@002d1.ibd')),
        ('mext', 'p_ext', os.path.join(ext, 'mext', 'p_ext#P#p0.ibd'), os.path.join(root, 'mext', 'p_ext#P#p0.ibd')),
        ('mext', 't_ext', os.path.join(ext, 'mext', 't_ext.ibd'), os.path.join(root, 'mext', 't_ext.ibd'))]
    assert any('mext.t_ext was created with DATA DIRECTORY' in str(w) for w in out.get('warnings') or [])
    restored = Restored({'port': port, 'data_dir': data_dir}, source.password)
    assert table_state(restored, 'mext') == expected
    assert [r[3] for r in restored.sql('CHECK TABLE t_ext, p_ext', 'mext')] == ['OK', 'OK']
    assert root + '/' in restored.sql('SHOW CREATE TABLE t_ext', 'mext')[0][1]
    restored.sql("INSERT INTO t_ext VALUES (100000, 'restored')", 'mext')
    assert os.path.isfile(os.path.join(root, 'mext', 't_ext.ibd'))
    with open(os.path.join(data_dir, 'mext', 't_ext.isl')) as f:
        assert f.read().strip() == os.path.join(root, 'mext', 't_ext.ibd')
    # the source and its files, and the repository's backup, are untouched
    assert _files_state(ext) == source_files and table_state(source, 'mext') == expected
    with open(stored_isl) as f:
        assert f.read().strip() == os.path.join(ext, 'mext', 't_ext.ibd')
    mb.stop_instance(data_dir)

    # point in time: the replay runs on the remapped tables, and so does a table created with DATA
    # DIRECTORY after the backup (the replaying server ignores DATA DIRECTORY: it stays in data_dir)
    source.sql("INSERT INTO t_ext VALUES (501, 'after')", 'mext')
    source.sql("CREATE TABLE t_late (id INT) DATA DIRECTORY = '%s'" % ext, 'mext')
    source.sql('INSERT INTO t_late VALUES (1)', 'mext')
    source_files = _files_state(ext)
    log = backup(source, repo, method='physical', type='log')
    expected = table_state(source, 'mext')
    port = free_port()
    data_dir = os.path.join(work, 'r2', 'data')
    out = restore(source, repo, backup_id=log['backup']['id'], data_dir=data_dir, login_port=port)
    assert not out['failed'], out.get('msg')
    assert len(out['external_tablespaces']) == 3
    restored = Restored({'port': port, 'data_dir': data_dir}, source.password)
    assert table_state(restored, 'mext') == expected
    assert not os.path.exists(os.path.join(data_dir, 'mext', 't_late.isl'))
    assert _files_state(ext) == source_files
    mb.stop_instance(data_dir)

    # the drill restores into a scratch instance the same way, and removes it
    drill = restore(source, repo, backup_id=full['backup']['id'], state='verified')
    assert not drill['failed'] and drill['result'] == 'passed', drill.get('msg')
    assert sorted(e['table'] for e in drill['external_tablespaces']) == ['caf\u00e9-1', 'p_ext', 't_ext']
    assert {t['name']: t['rows'] for t in drill['tables'] if t['database'] == 'mext'} == {
        't_ext': 500, 'p_ext': 300, 't_in': 50, 'caf\u00e9-1': 1}
    assert not [n for n in os.listdir(work) if n.startswith('.dbops')]
    assert _files_state(ext) == source_files

    # <data_dir>.external holding someone else's files: refused before anything changes
    data_dir = os.path.join(work, 'r3', 'data')
    os.makedirs(data_dir + '.external')
    with open(os.path.join(data_dir + '.external', 'keep'), 'w') as f:
        f.write('keep')
    refused = restore(source, repo, backup_id=full['backup']['id'], data_dir=data_dir, login_port=free_port())
    assert refused['failed'] and 'mext.t_ext (%s)' % os.path.join(ext, 'mext', 't_ext.ibd') in refused['msg'], \
        refused.get('msg')
    assert not os.path.exists(data_dir) and os.listdir(data_dir + '.external') == ['keep']
    assert os.listdir(os.path.dirname(data_dir)) == ['data.external']
    # an earlier restore's directory is replaced with force (the instance stopped)
    first = os.path.join(work, 'r1', 'data')
    again = restore(source, repo, backup_id=log['backup']['id'], data_dir=first, login_port=free_port(), force=True)
    assert not again['failed'], again.get('msg')
    assert sorted(os.listdir(first + '.external')) == [mb.EXTERNAL_MARK, 'mext']
    mb.stop_instance(first)
    assert _files_state(ext) == source_files
    source.sql('DROP DATABASE mext')


def _plan_lines(lines):
    """Statements and command lines without what differs from run to run: the work database's name,
    temporary paths, the pipe's descriptor; sorted (parallel loads append in the order they start)."""
    import re
    out = []
    for line in lines:
        line = re.sub(r'dbops_restore_\d+_[0-9a-f]+', 'dbops_restore_<work>', line)
        line = re.sub(r'/dev/fd/\w+', '/dev/fd/<n>', line)
        line = re.sub(r'dbops-(cnf|swap)-[\w-]+', r'dbops-\1-<tmp>', line)
        out.append(line)
    return out


@pytest.mark.parametrize('jobs', [2, 1])
def test_module_logical_restore_check_mode_returns_what_the_real_run_runs(source, work, jobs):
    """Check mode of a logical restore over an existing database (loaded into a work database, then
    swapped in) returns the statements and command lines the real run then runs, secrets masked,
    and changes nothing."""
    db = 'mplan%d' % jobs
    fill(source, db, 300)
    repo = os.path.join(work, 'repo')
    backup(source, repo, method='logical', compression='zstd', jobs=jobs, databases=[db])
    source.sql('UPDATE t1 SET amount = 0', db)
    changed = table_state(source, db)
    schemas = source.sql('SHOW DATABASES')
    preview = restore(source, repo, check=True, force=True, jobs=jobs)
    assert not preview['failed'] and preview['changed'] is True, preview.get('msg')
    assert table_state(source, db) == changed and source.sql('SHOW DATABASES') == schemas
    assert any(q.startswith('CREATE DATABASE') for q in preview['queries']), preview['queries']
    assert any('RENAME TABLE' in q for q in preview['queries']), preview['queries']
    assert source.password not in json.dumps(preview)
    real = restore(source, repo, force=True, jobs=jobs)
    assert not real['failed'], real.get('msg')
    assert _plan_lines(preview['queries']) == _plan_lines(real['queries']), (preview['queries'], real['queries'])
    assert sorted(_plan_lines(preview['commands'])) == sorted(_plan_lines(real['commands'])), (
        preview['commands'], real['commands'])


@pytest.mark.parametrize('compression', ['none', 'zstd'])
def test_module_physical_restore_check_mode_predicts_the_data_directory_remap(source, work, compression):
    """A physical backup (directory layout: from its .isl files; stream: from the server's tablespace
    list) records its tables created with DATA DIRECTORY. Check mode of a restore reports their remap
    into <data_dir>.external and refuses, with the real run's message, when that directory is in the
    way; a backup without the record (taken before) is predicted as before."""
    db = 'mxplan_' + compression
    ext = os.path.join(work, 'ext-' + compression)
    os.makedirs(ext)
    shutil.chown(ext, 'mysql' if os.geteuid() == 0 else None, 'mysql' if os.geteuid() == 0 else None)
    source.sql('CREATE DATABASE %s' % db)
    source.sql("CREATE TABLE t_ext (id INT PRIMARY KEY) DATA DIRECTORY = '%s'" % ext, db)
    source.sql("CREATE TABLE p_ext (id INT PRIMARY KEY) PARTITION BY RANGE (id) (PARTITION p0 VALUES LESS THAN (100) "
               "DATA DIRECTORY = '%s', PARTITION p1 VALUES LESS THAN MAXVALUE)" % ext, db)
    source.sql('CREATE TABLE t_in (id INT PRIMARY KEY)', db)
    source.sql('INSERT INTO t_ext VALUES (1), (2)', db)
    try:
        repo = os.path.join(work, 'repo-' + compression)
        full = backup(source, repo, method='physical', compression=compression)
        with open(os.path.join(full['backup']['path'], 'manifest.json')) as f:
            recorded = json.load(f)['details']['external_tablespaces']
        assert sorted((t['database'], t['table'], t['path']) for t in recorded) == [
            (db, 'p_ext', os.path.join(ext, db, 'p_ext#P#p0.ibd')), (db, 't_ext', os.path.join(ext, db, 't_ext.ibd'))]

        # nothing in the way: check mode reports the remap the real run then does
        data_dir = os.path.join(work, 'ok-' + compression, 'data')
        port = free_port()
        preview = restore(source, repo, check=True, data_dir=data_dir, login_port=port)
        assert not preview['failed'] and preview['changed'], preview.get('msg')
        assert not os.path.exists(data_dir) and not os.path.exists(data_dir + '.external')
        out = restore(source, repo, data_dir=data_dir, login_port=port)
        assert not out['failed'], out.get('msg')
        mb.stop_instance(data_dir)

        def remap(result):
            return sorted((e['database'], e['table'], e['from'], e['to']) for e in result['external_tablespaces'])
        assert remap(preview) == remap(out) and len(remap(out)) == 2

        # <data_dir>.external in the way: check mode refuses with the real run's words
        data_dir = os.path.join(work, 'busy-' + compression, 'data')
        os.makedirs(data_dir + '.external')
        with open(os.path.join(data_dir + '.external', 'keep'), 'w') as f:
            f.write('keep')
        preview = restore(source, repo, check=True, data_dir=data_dir, login_port=free_port())
        refused = restore(source, repo, data_dir=data_dir, login_port=free_port())
        assert refused['failed'] and 'no earlier restore' in refused['msg'], refused.get('msg')
        assert preview['failed'] and preview['msg'] == refused['msg'], (preview.get('msg'), refused['msg'])
        assert os.listdir(data_dir + '.external') == ['keep'] and not os.path.exists(data_dir)

        # a backup taken before the record: check mode cannot tell, as before (the real run still refuses)
        manifest_path = os.path.join(full['backup']['path'], 'manifest.json')
        with open(manifest_path) as f:
            manifest = json.load(f)
        del manifest['details']['external_tablespaces']
        with open(manifest_path, 'w') as f:
            json.dump(manifest, f)
        preview = restore(source, repo, check=True, data_dir=data_dir, login_port=free_port())
        assert not preview['failed'] and 'external_tablespaces' not in preview, preview.get('msg')
    finally:
        source.sql('DROP DATABASE %s' % db)


def test_module_target_position_as_a_string(source, work):
    """target_position as 'binlog_file:binlog_pos' or as a GTID string restores to the same point as
    its dict (the same restore again with the dict is unchanged); a malformed string is refused naming
    the accepted forms, before the data directory is created (check mode too)."""
    source.sql('CREATE DATABASE mposstr')
    source.sql('CREATE TABLE marks (tag VARCHAR(5) PRIMARY KEY)', 'mposstr')
    repo = os.path.join(work, 'repo')
    backup(source, repo, method='physical', type='full', compression='zstd')
    source.sql("INSERT INTO marks VALUES ('A')", 'mposstr')
    binlog_file, binlog_pos = source.sql('SHOW MASTER STATUS')[0][:2]
    gtid = source.sql('SELECT @@gtid_binlog_pos')[0][0]
    source.sql("INSERT INTO marks VALUES ('B')", 'mposstr')
    backup(source, repo, method='physical', type='log')

    def marks(out):
        restored = Restored({'port': out['port'], 'data_dir': out['data_dir']}, source.password)
        return [r[0] for r in restored.sql('SELECT tag FROM marks ORDER BY tag', 'mposstr')]

    for text, as_dict, where in (('%s:%d' % (binlog_file, binlog_pos),
                                  {'binlog_file': binlog_file, 'binlog_pos': int(binlog_pos)}, 'pos'),
                                 (gtid, {'gtid': gtid}, 'gtid')):
        data_dir, port = os.path.join(work, where, 'data'), free_port()
        preview = restore(source, repo, check=True, target_position=text, data_dir=data_dir, login_port=port)
        assert not preview['failed'] and preview['changed'], preview.get('msg')
        out = restore(source, repo, target_position=text, data_dir=data_dir, login_port=port)
        assert not out['failed'], (text, out.get('msg'))
        assert marks(out) == ['A'], text
        again = restore(source, repo, target_position=as_dict, data_dir=data_dir, login_port=port)
        assert not again['failed'] and again['changed'] is False, (as_dict, again.get('msg'))
        mb.stop_instance(data_dir)

    data_dir = os.path.join(work, 'bad', 'data')
    for bad, words in (('%s:2' % binlog_file, 'not a position'), ('mysql-bin:77', 'not a binary log name'),
                       ('0/3000060', 'neither'), ('0-1', 'neither')):
        for check in (True, False):
            refused = restore(source, repo, check=check, target_position=bad, data_dir=data_dir,
                              login_port=free_port())
            assert refused['failed'] and words in refused['msg'], (bad, refused.get('msg'))
            assert 'mysql-bin.000042:1234' in refused['msg'] and '0-1-100' in refused['msg'], refused['msg']
            assert not os.path.exists(data_dir)
    source.sql('DROP DATABASE mposstr')


def test_module_physical_backup_with_more_jobs_than_free_connections(source, work):
    """mariadb-backup --parallel=1000 failed ("Too many connections") while check mode said it would take the
    backup: both now run with as many jobs as the server's free connections allow, and warn."""
    fill(source, 'mjobs', 50)
    repo = os.path.join(work, 'repo')
    dry = modrun.run_module('db_backup', dict(source.conn, repo=repo, method='physical', jobs=1000), check=True)
    assert dry['failed'] is False and dry['changed'] is True, dry.get('msg')
    assert 'jobs 1000: the server has connections for' in json.dumps(dry.get('warnings') or []), dry
    taken = backup(source, repo, method='physical', jobs=1000)
    assert taken['changed'] is True and taken['backup']['verified'] is True
    assert 'jobs 1000: the server has connections for' in json.dumps(taken.get('warnings') or []), taken


def test_module_forced_logical_restore_over_a_database_with_an_open_transaction(source, work):
    """A session with an open transaction on the target's tables kept DROP DATABASE waiting for lock_wait_timeout
    (a day): the run hung, and the DROP stayed queued after the run was killed. It now waits a bounded time and
    fails naming the session, with the database as it was and no work database left; once the transaction ends
    the same restore replaces it."""
    fill(source, 'mlocked', 100)
    repo = os.path.join(work, 'repo')
    backup(source, repo, method='logical', databases=['mlocked'])
    expected = table_state(source, 'mlocked')
    source.sql('INSERT INTO t1 (id, name, amount) VALUES (100001, %s, 1)' % "'after'", 'mlocked')
    changed = table_state(source, 'mlocked')
    conn = source.connect('mlocked')
    try:
        cur = conn.cursor()
        cur.execute('SET autocommit = 0')
        cur.execute('START TRANSACTION')
        cur.execute('SELECT COUNT(*) FROM t1')
        cur.fetchall()
        session = conn.thread_id()
        started = time.time()
        out = modrun.run_module('db_restore', dict(source.conn, repo=repo, databases=['mlocked'],
                                                   target_database='mlocked', force=True), timeout=150)
        assert time.time() - started < 120
        assert out['failed'] is True, out
        assert 'other sessions hold locks on its tables' in out['msg'] and str(session) in out['msg'], out['msg']
        assert not [r for r in source.sql('SHOW PROCESSLIST') if r[7] and 'DROP DATABASE' in r[7]]
    finally:
        conn.close()
    assert table_state(source, 'mlocked') == changed
    assert not [r for r in source.sql('SHOW DATABASES') if r[0].startswith('dbops_restore')]
    out = restore(source, repo, databases=['mlocked'], target_database='mlocked', force=True)
    assert out['failed'] is False and out['changed'] is True, out.get('msg')
    assert table_state(source, 'mlocked') == expected


def test_module_physical_backup_while_a_session_holds_lock_tables_fails_in_bounded_time(source, work):
    """A session in LOCK TABLES ... WRITE kept mariadb-backup waiting in BACKUP STAGE START for ever (the run hung
    with the repository locked). It now gives up after 2 minutes (--ftwrl-wait-timeout) saying why, publishes
    nothing, and the next run after the session ends takes the backup."""
    fill(source, 'mlockt', 50)
    repo = os.path.join(work, 'repo')
    conn = source.connect('mlockt')
    try:
        with conn.cursor() as cur:
            cur.execute('SELECT CONNECTION_ID()')
            holder = cur.fetchone()[0]
            cur.execute('LOCK TABLES t1 WRITE')
        started = time.time()
        out = modrun.run_module('db_backup', dict(source.conn, repo=repo, method='physical'), timeout=400)
        assert time.time() - started < 300
        assert out['failed'] is True, out
        # the message says why and names the idle session that holds the tables
        assert 'idle session holding tables in LOCK TABLES' in out['msg'], out['msg']
        assert 'session %d (' % holder in out['msg'], out['msg']
        assert not [r for r in source.sql('SHOW PROCESSLIST') if r[7] and 'BACKUP STAGE' in r[7]]
    finally:
        conn.close()
    assert not [e for e in os.listdir(repo) if not e.startswith('.') and e != 'logs']
    taken = backup(source, repo, method='physical')
    assert taken['changed'] is True and taken['backup']['verified'] is True


def test_module_latest_with_engine_given_is_the_newest_backup_of_that_engine(source, work):
    """A repository holding backups of both engines: latest with engine given was the newest backup of any engine,
    and the restore failed ("it is a mysql backup, not postgresql") although the repository held one of its own."""
    from servers import PostgresServer
    pg = PostgresServer().init().start()
    try:
        pg.psql('CREATE DATABASE pmixed')
        pg.psql("CREATE TABLE t (v text); INSERT INTO t VALUES ('pg row')", 'pmixed')
        repo = os.path.join(work, 'repo')
        pg_taken = modrun.run_module('db_backup', dict(pg.conn, repo=repo, databases=['pmixed']))
        assert pg_taken['failed'] is False, pg_taken.get('msg')
        fill(source, 'mmixed', 10)
        my_taken = backup(source, repo, method='logical', databases=['mmixed'])
        for check in (True, False):
            out = modrun.run_module('db_restore', dict(pg.conn, repo=repo, target_database='pmixed_copy'), check=check)
            assert out['failed'] is False and out['changed'] is True, out.get('msg')
            assert out['backup_id'] == pg_taken['backup']['id']
        assert pg.psql('SELECT v FROM t', 'pmixed_copy') == 'pg row'
        out = restore(source, repo, target_database='mmixed_copy')
        assert out['failed'] is False and out['backup_id'] == my_taken['backup']['id'], out.get('msg')
    finally:
        pg.destroy()
