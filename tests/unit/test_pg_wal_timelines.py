# -*- coding: utf-8 -*-
"""The WAL archive check across timeline switches (failover / promote): which segments recovery
reads from which timeline, from synthetic archive listings."""

from __future__ import annotations

import os

from ansible_collections.dbops.admin.plugins.module_utils._engines import postgresql_backup as pgb

# timeline 2 branched from timeline 1 in the middle of segment 4: the archive holds timeline 1's
# segment 4 only as .partial, timeline 2's segment 4 holds its first part and the rest
SWITCHED = ['000000010000000000000002', '000000010000000000000003', '000000010000000000000004.partial',
            '00000002.history', '000000020000000000000004', '000000020000000000000005',
            '000000020000000000000006']
HISTORY_2 = '1\t0/4000090\tno recovery target specified\n'


def _archive(tmp_path, names, histories=None):
    log_dir = tmp_path / 'logs'
    log_dir.mkdir()
    histories = dict({'00000002.history': HISTORY_2}, **(histories or {}))
    for name in names:
        (log_dir / name).write_text(histories.get(name, 'x'))
    return str(log_dir)


def _without(names, *gone):
    return [n for n in names if n not in gone]


def test_switch_with_partial_and_history_is_complete(tmp_path):
    log_dir = _archive(tmp_path, SWITCHED)
    needed, missing = pgb.wal_needed(log_dir, '000000010000000000000002', last='000000020000000000000006')
    assert missing == []
    assert needed == ['000000010000000000000002', '000000010000000000000003', '000000020000000000000004',
                      '000000020000000000000005', '000000020000000000000006']
    # a log backup after one that ended before the switch: first is the next name on the old timeline
    assert pgb.wal_gaps(log_dir, '000000010000000000000004', last='000000020000000000000006') == []
    # both ends on the new timeline, and up to the newest archived segment of the newest timeline
    assert pgb.wal_gaps(log_dir, '000000020000000000000005', last='000000020000000000000006') == []
    assert pgb.wal_needed(log_dir, '000000010000000000000002')[0][-1] == '000000020000000000000006'
    # a backup that ended before the switch still reads the old timeline only
    assert pgb.wal_gaps(log_dir, '000000010000000000000002', last='000000010000000000000003') == []


def test_real_gap_on_one_timeline_and_before_the_switch_is_named(tmp_path):
    (tmp_path / 'one').mkdir()
    names = ['000000010000000000000002', '000000010000000000000003', '000000010000000000000004']
    log_dir = _archive(tmp_path / 'one', names)
    assert pgb.wal_gaps(log_dir, names[0], last=names[-1]) == []
    assert pgb.wal_gaps(log_dir, names[0]) == []
    assert pgb.wal_gaps(log_dir, names[0], last='000000010000000000000005') == ['000000010000000000000005']
    os.unlink(os.path.join(log_dir, names[1]))
    assert pgb.wal_gaps(log_dir, names[0], last=names[-1]) == [names[1]]
    assert pgb.wal_gaps(log_dir, names[0]) == [names[1]]

    # the same gap before a switch to timeline 2
    log_dir = _archive(tmp_path, _without(SWITCHED, '000000010000000000000003'))
    assert pgb.wal_gaps(log_dir, '000000010000000000000002', last='000000020000000000000006') == \
        ['000000010000000000000003']
    assert pgb.wal_gaps(log_dir, '000000010000000000000002') == ['000000010000000000000003']


def test_real_gap_after_the_switch_is_named(tmp_path):
    log_dir = _archive(tmp_path, _without(SWITCHED, '000000020000000000000005'))
    assert pgb.wal_gaps(log_dir, '000000010000000000000002', last='000000020000000000000006') == \
        ['000000020000000000000005']
    assert pgb.wal_gaps(log_dir, '000000010000000000000002') == ['000000020000000000000005']


def test_switch_segment_on_the_new_timeline_is_needed_despite_the_partial(tmp_path):
    log_dir = _archive(tmp_path, _without(SWITCHED, '000000020000000000000004'))
    assert pgb.wal_gaps(log_dir, '000000010000000000000002', last='000000020000000000000006') == \
        ['000000020000000000000004']


def test_missing_history_file_is_reported(tmp_path):
    log_dir = _archive(tmp_path, _without(SWITCHED, '00000002.history'))
    assert pgb.wal_gaps(log_dir, '000000010000000000000002', last='000000020000000000000006') == \
        ['00000002.history']
    assert pgb.missing_wal_text('00000002.history') == 'timeline history file 00000002.history'
    # not needed when the whole range lies on one timeline
    assert pgb.wal_gaps(log_dir, '000000020000000000000004', last='000000020000000000000006') == []


def test_switch_at_a_segment_boundary_and_two_switches(tmp_path):
    names = ['000000010000000000000003', '000000010000000000000004', '00000002.history',
             '000000020000000000000005', '000000020000000000000006.partial', '00000003.history',
             '000000030000000000000006', '000000030000000000000007']
    log_dir = _archive(tmp_path, names, {
        '00000002.history': '1\t0/5000000\tbefore 2026-01-01\n',
        '00000003.history': '1\t0/5000000\tbefore 2026-01-01\n\n2\t0/6000148\tno recovery target specified\n'})
    needed, missing = pgb.wal_needed(log_dir, '000000010000000000000003', last='000000030000000000000007')
    assert missing == []
    assert needed == ['000000010000000000000003', '000000010000000000000004', '000000020000000000000005',
                      '000000030000000000000006', '000000030000000000000007']


def test_staged_wal_follows_the_history_of_the_last_segment(tmp_path):
    # timeline 1 went on after the branch point (an abandoned branch): recovery to timeline 2 must not see it
    log_dir = _archive(tmp_path, SWITCHED + ['000000010000000000000005'])
    stage = str(tmp_path / 'stage')
    pgb._stage_wal(log_dir, stage, '000000020000000000000005')
    assert sorted(os.listdir(stage)) == ['000000010000000000000002', '000000010000000000000003', '00000002.history',
                                         '000000020000000000000004', '000000020000000000000005']


def test_archive_failure_lines_take_the_commands_own_error_from_the_server_log():
    log = ("2026-11-28 00:55:10.010 UTC [1] LOG:  checkpoint complete\n"
           "cp: cannot create regular file '/srv/repo/logs/000000010000000000000002.part': Permission denied\n"
           "2026-11-28 00:55:12.070 UTC [14] LOG:  archive command failed with exit code 1\n"
           "2026-11-28 00:55:12.070 UTC [14] DETAIL:  The failed archive command was: test ! -f ...\n"
           "cp: cannot create regular file '/srv/repo/logs/000000010000000000000002.part': No space left on device\n"
           "2026-11-28 00:55:13.070 UTC [14] LOG:  archive command failed with exit code 1\n"
           "2026-11-28 00:55:13.070 UTC [14] DETAIL:  The failed archive command was: test ! -f ...\n"
           "2026-11-28 00:55:13.071 UTC [14] WARNING:  archiving write-ahead log file ... failed too many times\n")
    said = pgb.archive_failure_lines(log)
    assert said[0].endswith('No space left on device') and 'archive command failed' in said[-1]
    assert len(said) == 2
    assert pgb.archive_failure_lines('LOG:  database system is ready to accept connections\n') == []


def test_archive_directory_problems_name_mode_bits_and_a_missing_directory(tmp_path):
    logs = tmp_path / 'logs'
    logs.mkdir()
    os.chmod(str(logs), 0o555)
    problems = pgb.archive_directory_problems(str(logs), server_uid=os.stat(str(logs)).st_uid or 12345)
    assert problems and 'mode 0555' in problems[0]
    os.chmod(str(logs), 0o755)
    assert pgb.archive_directory_problems(str(logs), server_uid=os.stat(str(logs)).st_uid or None) == []
    assert 'cannot be read' in pgb.archive_directory_problems(str(tmp_path / 'gone'))[0]


def test_target_position_takes_the_lsn_alone_and_refuses_malformed_strings():
    assert pgb.check_target_position('0/3000060') == pgb.check_target_position({'lsn': '0/3000060'}) == {
        'lsn': '0/3000060'}
    assert pgb.check_target_position(' 1a/ff ') == {'lsn': '1A/FF'}
    assert pgb.check_target_position('') is None
    for bad in ('0/', '3000060', 'mysql-bin.000003:1234', '0-1-100', "0/1'; x", '0/123456789'):
        try:
            pgb.check_target_position(bad)
        except pgb.DbError as exc:
            assert 'hexadecimal' in str(exc) and "'X/Y'" in str(exc), str(exc)
        else:
            raise AssertionError('%r was accepted' % bad)
    assert pgb.target_before({'lsn': '0/3000000'}, '0/2000000') is True
