# -*- coding: utf-8 -*-
"""The binary log event-header reader behind point-in-time replay ranges and check-mode predictions."""

from __future__ import annotations

import datetime
import struct

from ansible_collections.dbops.admin.plugins.module_utils._engines import mysql_backup as mb

T0 = 1700000000


def event(when, etype, body=b''):
    length = 19 + len(body)
    return struct.pack('<IBIIIH', when, etype, 1, length, 0, 0) + body


def gtid_event(when, domain, seq):
    return event(when, mb.GTID_EVENT, struct.pack('<QI', seq, domain) + b'\0' * 7)


def gtid_list(when, state):
    body = struct.pack('<I', len(state)) + b''.join(struct.pack('<IIQ', d, 1, s) for d, s in sorted(state.items()))
    return event(when, mb.GTID_LIST_EVENT, body)


def write_binlog(path, events):
    data = b'\xfebin' + b''.join(events)
    path.write_bytes(data)
    return len(data)


def archive(tmp_path, specs):
    """specs: {number: (first_time, last_time, start_state, [(domain, seq)...]) or 'encrypted'}."""
    log_dir = tmp_path / 'logs'
    log_dir.mkdir()
    for number, spec in specs.items():
        path = log_dir / ('mysql-bin.%06d' % number)
        if spec == 'encrypted':
            write_binlog(path, [event(T0, mb.FORMAT_DESCRIPTION_EVENT, b'\0' * 80),
                                event(T0, mb.START_ENCRYPTION_EVENT, b'\0' * 17)])
            continue
        first, last, state, gtids = spec
        events = [event(first, mb.FORMAT_DESCRIPTION_EVENT, b'\0' * 80), gtid_list(first, state)]
        events += [gtid_event(first + 1 + i, d, s) for i, (d, s) in enumerate(gtids)]
        events.append(event(last, 4, b'\0' * 8 + b'mysql-bin.%06d' % (number + 1)))  # rotate
        write_binlog(path, events)
    return str(log_dir)


def utc(ts):
    return datetime.datetime.fromtimestamp(ts, datetime.timezone.utc)


def test_binlog_summary_reads_times_and_the_gtid_state_at_the_end(tmp_path):
    log_dir = archive(tmp_path, {1: (T0, T0 + 10, {0: 5}, [(0, 6), (0, 7), (1, 2)])})
    summary = mb.binlog_summary(log_dir + '/mysql-bin.000001')
    assert summary == {'last_time': utc(T0 + 10), 'gtid_end': {0: 7, 1: 2}}
    (tmp_path / 'junk').write_bytes(b'not a binlog')
    assert mb.binlog_summary(str(tmp_path / 'junk')) is None
    cut = tmp_path / 'cut'
    cut.write_bytes((tmp_path / 'logs' / 'mysql-bin.000001').read_bytes()[:-5])
    assert mb.binlog_summary(str(cut)) is None


def test_replay_end_file_stops_at_the_binary_log_reaching_the_target(tmp_path):
    # 3 is missing: a hole after file 2
    log_dir = archive(tmp_path, {1: (T0, T0 + 10, {0: 1}, [(0, 2)]), 2: (T0 + 10, T0 + 20, {0: 2}, [(0, 3), (0, 4)]),
                                 4: (T0 + 30, T0 + 40, {0: 6}, [(0, 7)])})
    assert mb.replay_end_file(log_dir, 'mysql-bin.000001', 4, utc(T0 + 5)) == 'mysql-bin.000001'
    assert mb.replay_end_file(log_dir, 'mysql-bin.000001', 4, utc(T0 + 15)) == 'mysql-bin.000002'
    # past the hole: nothing to tell before it (the range then reports the hole)
    assert mb.replay_end_file(log_dir, 'mysql-bin.000001', 4, utc(T0 + 35)) is None
    assert mb.replay_end_file(log_dir, 'mysql-bin.000001', 4, target_gtid='0-1-4') == 'mysql-bin.000002'
    assert mb.replay_end_file(log_dir, 'mysql-bin.000001', 4, target_gtid='0-1-2') == 'mysql-bin.000001'
    assert mb.replay_end_file(log_dir, 'mysql-bin.000001', 4, target_gtid='0-1-7') is None
    assert mb.replay_end_file(log_dir, 'mysql-bin.000001', 4, target_gtid='5-1-1') is None
    names, missing = mb.binlog_range(log_dir, 'mysql-bin.000001',
                                     mb.replay_end_file(log_dir, 'mysql-bin.000001', 4, utc(T0 + 15)))
    assert names == ['mysql-bin.000001', 'mysql-bin.000002'] and missing == []


def test_an_encrypted_binary_log_is_never_taken_as_the_end(tmp_path):
    log_dir = archive(tmp_path, {1: 'encrypted', 2: (T0 + 10, T0 + 20, {0: 2}, [(0, 3)])})
    assert mb.binlog_summary(log_dir + '/mysql-bin.000001') is None
    assert mb.replay_end_file(log_dir, 'mysql-bin.000001', 4, utc(T0 - 100)) == 'mysql-bin.000002'


def test_predict_replay_matches_what_the_real_run_reports(tmp_path):
    log_dir = archive(tmp_path, {1: (T0, T0 + 10, {0: 1}, [(0, 2)]), 2: (T0 + 10, T0 + 20, {0: 2}, [(0, 3), (0, 4)])})
    files = ['mysql-bin.000001', 'mysql-bin.000002']
    reached = mb.predict_replay(log_dir, files, 4, utc(T0 + 15))
    assert reached == {'target_reached': True, 'recovered_to': mb.iso(utc(T0 + 15))}
    short = mb.predict_replay(log_dir, files, 4, utc(T0 + 25))
    assert short == {'target_reached': False, 'recovered_to': mb.iso(utc(T0 + 20))}
    by_gtid = mb.predict_replay(log_dir, files, 4, stop_arg='0-1-3', gtid=True)
    assert by_gtid['target_reached'] is True and by_gtid['recovered_to'] == mb.iso(utc(T0 + 11))


class _Mysql8Series(mb.MysqlBackup):
    """Enough of a MySQL 8 engine for the binary log series check (no MariaDB-only SQL may run)."""

    flavor = 'mysql'
    host = '127.0.0.1'
    port = 3306

    def __init__(self):
        pass

    def fetch_value(self, sql, params=None, operation=None):
        raise AssertionError('no query expected: %s' % sql)


def test_mysql8_log_backup_after_reset_master_is_refused_by_the_numbering(tmp_path):
    import pytest

    from ansible_collections.dbops.admin.plugins.module_utils._errors import DbError

    log_dir = archive(tmp_path, {1: (T0, T0 + 10, {}, []), 2: (T0 + 10, T0 + 20, {}, []), 3: (T0 + 20, T0 + 30, {}, [])})
    server = tmp_path / 'server'
    server.mkdir()
    for number in (3, 4):
        (server / ('mysql-bin.%06d' % number)).write_bytes((tmp_path / 'logs' / ('mysql-bin.%06d' % number)).read_bytes()
                                                           if number == 3 else b'\xfebin')
    engine = _Mysql8Series()
    continuing = [{'Log_name': 'mysql-bin.000003'}, {'Log_name': 'mysql-bin.000004'}]
    engine._check_binlog_series(log_dir, str(server), continuing, {})
    # RESET MASTER: the server writes mysql-bin.000001 again
    (server / 'mysql-bin.000001').write_bytes(b'\xfebin' + b'other')
    with pytest.raises(DbError, match='writes mysql-bin.000001.*RESET MASTER.*new full physical backup'):
        engine._check_binlog_series(log_dir, str(server), [{'Log_name': 'mysql-bin.000001'}], {})
    # the numbering past the archive's end, but a name the archive holds starts differently
    (server / 'mysql-bin.000003').write_bytes(b'\xfebin' + b'another series')
    with pytest.raises(DbError, match="server's mysql-bin.000003 is not the archived file"):
        engine._check_binlog_series(log_dir, str(server), continuing, {})
