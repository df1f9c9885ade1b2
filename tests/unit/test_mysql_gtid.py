# -*- coding: utf-8 -*-
"""MySQL 8 GTID sets as db_restore target_position: parsed strictly, compared with what the backup and the
archive hold, and replayed with mysqlbinlog --include-gtids into an instance running with gtid_mode ON.

(No MySQL 8 server here: the replay is checked on its command lines and option file.)"""

from __future__ import annotations

import os
import re

import pytest

from ansible_collections.dbops.admin.plugins.module_utils import _mysql_gtid as gt
from ansible_collections.dbops.admin.plugins.module_utils._engines import mysql_backup as mb
from ansible_collections.dbops.admin.plugins.module_utils._errors import DbError

U1 = '3e11fa47-71ca-11e1-9e33-c80aa9429562'
U2 = '4f22ab58-82db-22f2-af44-d91bb0530673'


def test_parse_and_canonical_text():
    assert gt.normalize('%s:1-123' % U1.upper()) == '%s:1-123' % U1
    assert gt.normalize(' %s:5:1-3:4 , %s:7' % (U2, U1)) == '%s:7,%s:1-5' % (U1, U2)
    assert gt.normalize('%s:1-10:20-30' % U1) == '%s:1-10:20-30' % U1
    assert gt.normalize(U1.replace('-', '') + ':1-2') == '%s:1-2' % U1
    # MySQL 8.3+ tags: the intervals after a tag are that tag's
    assert gt.parse('%s:1-5:blue:1-3' % U1) == {(U1, ''): [(1, 5)], (U1, 'blue'): [(1, 3)]}
    # gtid_executed as the server prints it (a newline after each comma)
    assert gt.normalize('%s:1-5,\n%s:1-9' % (U1, U2)) == '%s:1-5,%s:1-9' % (U1, U2)


@pytest.mark.parametrize('value, words', [
    ('%s:5-3' % U1, 'N-M needs N <= M'),
    ('%s:0' % U1, 'transaction numbers run from 1'),
    ('%s:1-%d' % (U1, 2 ** 63), 'transaction numbers run from 1'),
    ('%s:' % U1, 'a colon with no interval'),
    ('%s:1-5:x-y' % U1, 'neither an interval'),
    ('%s:1-5,' % U1, 'empty part between commas'),
    ('%s:1-5,0-1-5' % U1, "'0-1-5' is not a server uuid"),
    ('%s:1-5:tag' % U1, 'names no transactions'),
])
def test_bad_sets_say_what_is_wrong(value, words):
    with pytest.raises(DbError) as err:
        gt.parse(value)
    assert words in str(err.value)
    # through check_target_position: the accepted forms follow
    with pytest.raises(DbError) as err:
        mb.check_target_position({'gtid': value})
    assert words in str(err.value) and 'MySQL 8, {gtid: <GTID set>}' in str(err.value)


def test_looks_like():
    assert gt.looks_like('%s:1-5' % U1) and gt.looks_like(' %s:7,%s:1' % (U1, U2))
    assert not gt.looks_like('0-1-100') and not gt.looks_like('mysql-bin.000002:77') and not gt.looks_like(U1)
    assert not gt.looks_like(None) and not gt.looks_like({'gtid': 'x'})


def test_check_target_position_accepts_the_set_as_string_and_dict():
    want = {'gtid': '%s:1-123' % U1}
    assert mb.check_target_position('%s:1-123' % U1.upper()) == want
    assert mb.check_target_position({'gtid': ' %s:1-100:101-123 ' % U1}) == want
    # MariaDB's forms are unchanged
    assert mb.check_target_position('0-1-100') == {'gtid': '0-1-100'}
    assert mb.check_target_position('mysql-bin.000002:777') == {'binlog_file': 'mysql-bin.000002', 'binlog_pos': 777}


def test_subtract_and_target_before():
    a = gt.parse('%s:1-100,%s:1-5' % (U1, U2))
    assert gt.text(gt.subtract(a, gt.parse('%s:1-49:51-100' % U1))) == '%s:50,%s:1-5' % (U1, U2)
    # the backup holds U1 up to 100: a target up to 123 is after it, up to 50 before it
    assert gt.target_before('%s:1-100' % U1, '%s:1-123' % U1) is False
    assert gt.target_before('%s:1-100' % U1, '%s:1-50' % U1) is True
    # a transaction the target leaves out but the backup holds cannot be undone
    assert gt.target_before('%s:1-100' % U1, '%s:1-49:51-123' % U1) is True
    # servers the target does not name do not count
    assert gt.target_before('%s:1-100,%s:1-9' % (U1, U2), '%s:1-123' % U1) is False
    # the backup recorded no GTID set (gtid_mode OFF, or MariaDB): cannot tell
    assert gt.target_before(None, '%s:1-5' % U1) is None and gt.target_before('0-1-5', '%s:1-5' % U1) is None
    assert mb.target_before({'binlog_file': 'binlog.000002', 'binlog_pos': 4, 'gtid': '%s:1-100' % U1},
                            '%s:1-50' % U1) is True


def _mysql_chain(gtid='%s:1-100' % U1, flavor='mysql'):
    return [{'manifest': {'id': 'full1', 'type': 'full', 'server_version': '8.0.36',
                          'details': {'flavor': flavor},
                          'stop_position': {'binlog_file': 'binlog.000002', 'binlog_pos': 500, 'gtid': gtid}},
             'path': '/x'}]


def _archive(tmp_path, numbers, base='binlog'):
    log_dir = tmp_path / 'logs'
    log_dir.mkdir()
    for n in numbers:
        (log_dir / ('%s.%06d' % (base, n))).write_bytes(b'\xfebin' + b'\0' * 4092)
    return str(log_dir)


def test_replay_plan_and_mysqlbinlog_options(tmp_path):
    log_dir = _archive(tmp_path, [2, 3, 4])
    target = mb.check_target_position('%s:1-123' % U1)
    files, start, stop = mb.replay_plan(_mysql_chain(), log_dir, target_position=target)
    assert files == ['binlog.000002', 'binlog.000003', 'binlog.000004'] and start == 500
    argv = mb.binlog_replay_argv('/usr/bin/mysqlbinlog', files, start, stop_position=stop)
    assert '--include-gtids=%s:1-123' % U1 in argv
    assert not [a for a in argv if a.startswith('--stop-position') or a.startswith('--exclude-gtids')]
    assert argv.count('--start-position=500') == 1
    # the MariaDB GTID form still stops with --stop-position
    assert '--stop-position=0-1-42' in mb.binlog_replay_argv('/usr/bin/mariadb-binlog', files, 4, stop_position='0-1-42')


def test_replay_plan_refusals(tmp_path):
    log_dir = _archive(tmp_path, [2, 3])
    with pytest.raises(DbError, match='backup full1 ends at GTID .* after the target'):
        mb.replay_plan(_mysql_chain(), log_dir, target_position={'gtid': '%s:1-50' % U1})
    with pytest.raises(DbError, match='records no GTID set .*gtid_mode OFF'):
        mb.replay_plan(_mysql_chain(gtid=None), log_dir, target_position={'gtid': '%s:1-123' % U1})
    with pytest.raises(DbError, match='the backup is of MariaDB'):
        mb.replay_plan(_mysql_chain(gtid='0-1-5', flavor='mariadb'), log_dir, target_position={'gtid': '%s:1' % U1})
    with pytest.raises(DbError, match='a MariaDB GTID position, but the backup is of MySQL'):
        mb.replay_plan(_mysql_chain(), log_dir, target_position={'gtid': '0-1-42'})


def test_a_set_past_the_archive_is_refused(tmp_path, monkeypatch):
    log_dir = _archive(tmp_path, [2, 3])
    logs = [{'id': 'log1', 'type': 'log', 'stop_position': {'binlog_file': 'binlog.000003', 'gtid': '%s:1-110' % U1}}]
    monkeypatch.setattr(mb, '_log_manifests', lambda d: logs)
    assert mb.target_unreachable(log_dir, '%s:1-105' % U1) is None
    why = mb.target_unreachable(log_dir, '%s:1-123,%s:1' % (U1, U2))
    assert 'ends at GTID set %s:1-110 (log backup log1)' % U1 in why
    assert '%s:111-123,%s:1 is not in it' % (U1, U2) in why
    with pytest.raises(DbError, match='is not in it'):
        mb.replay_plan(_mysql_chain(), log_dir, target_position={'gtid': '%s:1-123' % U1})


def test_restore_physical_replays_the_set_into_an_instance_with_gtid_mode_on(tmp_path, monkeypatch):
    """The whole MySQL 8 restore to a GTID set, its tools faked: mysqlbinlog gets --include-gtids, the
    restored instance's option file turns gtid_mode ON once, the marker records the set."""
    log_dir = _archive(tmp_path, [2, 3])
    ran, decoded, loaded = [], [], []

    def fake_materialize(manifest, path, target, bin_dir=None):
        os.makedirs(target)
        with open(os.path.join(target, 'backup-my.cnf'), 'w') as f:
            f.write('[mysqld]\ninnodb_page_size=16384\n')
        return []

    class Proc:
        returncode = 0
        stderr = b''

    def fake_run(argv, stdout=None, **kw):
        decoded.append(argv)
        stdout.write(b'SET @@SESSION.GTID_NEXT= \'%s:101\';\n' % U1.encode())
        return Proc()

    monkeypatch.setattr(mb, 'materialize', fake_materialize)
    monkeypatch.setattr(mb, 'tool', lambda flavor, role, bin_dir=None: '/usr/bin/' + role)
    monkeypatch.setattr(mb, 'run_checked', lambda argv, *a, **k: ran.append(argv))
    monkeypatch.setattr(mb, '_os_ids', lambda user: None)
    monkeypatch.setattr(mb, '_chown_tree', lambda path, ids: None)
    monkeypatch.setattr(mb, 'start_instance', lambda *a, **k: 'start')
    monkeypatch.setattr(mb, 'stop_instance', lambda *a, **k: None)
    monkeypatch.setattr(mb, '_pipe_into', lambda source, unpack, argv: loaded.append(argv))
    monkeypatch.setattr(mb.subprocess, 'run', fake_run)
    data_dir = str(tmp_path / 'restored')
    out = mb.restore_physical({'chain': _mysql_chain(), 'data_dir': data_dir, 'port': 3399, 'os_user': None,
                               'log_dir': log_dir, 'target_position': '%s:1-123' % U1,
                               'marker': {'backup_id': 'full1', 'target_position': {'gtid': '%s:1-123' % U1}}})
    assert len(decoded) == 1 and '--include-gtids=%s:1-123' % U1 in decoded[0]
    assert out['binlogs_replayed'] == ['binlog.000002', 'binlog.000003'] and out['target_reached'] is True
    with open(out['option_file']) as f:
        lines = [line.strip() for line in f]
    assert lines.count('gtid-mode = ON') == 1 and lines.count('enforce-gtid-consistency = ON') == 1
    assert not [line for line in lines if re.match(r'gtid[-_]mode', line) and line != 'gtid-mode = ON']
    assert mb.read_restore_marker(data_dir)['target_position'] == {'gtid': '%s:1-123' % U1}
