# -*- coding: utf-8 -*-
"""Reading ``pgbackrest verify``: real output of pgBackRest 2.45 (tests/unit/files/pgbackrest-2.45-verify).

pgBackRest 2.45 exits 0 even when it prints ``status: error``: the verdict comes from the output.
"""

from __future__ import annotations

import os
import subprocess

import pytest

from ansible_collections.dbops.admin.plugins.module_utils._engines import postgresql_backup as pb

FILES = os.path.join(os.path.dirname(os.path.abspath(__file__)), 'files', 'pgbackrest-2.45-verify')
FULL = '20261127-150808F'
INCR = '20261127-150808F_20261127-150819I'
# the WAL each set needs (pgbackrest info: archive start / stop)
FULL_WAL = ('000000010000000000000002', '000000010000000000000002')
INCR_WAL = ('000000010000000000000003', '000000010000000000000004')


def captured(case):
    def read(ext):
        with open(os.path.join(FILES, '%s.%s' % (case, ext))) as f:
            return f.read()
    return int(read('rc').strip()), read('stdout'), read('stderr')


def problems(case, label=FULL, wal=FULL_WAL, references=(), backup_id='20261127T150807Z-full'):
    rc, out, err = captured(case)
    return pb.pgbackrest_verify_problems(rc, out, err, label, backup_id, references, wal[0], wal[1])


def test_good_repository_has_no_problems():
    assert problems('good') == []
    assert problems('good', INCR, INCR_WAL, [FULL]) == []
    parsed = pb.parse_pgbackrest_verify(''.join(captured('good')[1:]))
    assert parsed['status'] == 'ok'
    assert parsed['backups'][FULL] == {'status': 'valid', 'counts': {'missing': 0, 'checksum invalid': 0,
                                                                     'size invalid': 0, 'other': 0}}
    assert parsed['ranges'] == [('15-1', '000000010000000000000001', '000000010000000000000004')]
    assert parsed['files'] == []


def test_flipped_byte_names_the_file_and_the_set():
    found = problems('damaged_file')
    assert found[0] == 'pgbackrest/backup/dbops/%s/pg_data/base/5/1259: invalid checksum' % FULL
    assert any(FULL in p and 'invalid' in p and 'checksum invalid: 1' in p for p in found[1:]), found
    # the incremental references the full: the damaged file is its problem too
    incr = problems('damaged_file', INCR, INCR_WAL, [FULL], 'incr-id')
    assert 'pgbackrest/backup/dbops/%s/pg_data/base/5/1259: invalid checksum' % FULL in incr
    assert any(p.startswith('incr-id (pgBackRest set %s)' % INCR) for p in incr), incr


def test_missing_file_is_named():
    found = problems('missing_file')
    assert found[0] == 'pgbackrest/backup/dbops/%s/pg_data/base/5/1247: file missing' % FULL
    assert any('missing: 1' in p for p in found)


def test_missing_wal_fails_only_the_set_that_needs_it():
    # pgBackRest 2.45 says "status: ok" here: only the WAL ranges it logs show the hole
    found = problems('missing_wal', INCR, INCR_WAL, [FULL])
    assert len(found) == 1 and 'WAL segment 000000010000000000000003 missing' in found[0], found
    assert INCR in found[0]
    assert problems('missing_wal') == []   # the full needs only ...02


def test_damaged_wal_fails_only_the_set_that_needs_it():
    found = problems('damaged_wal', INCR, INCR_WAL, [FULL])
    assert len(found) == 1, found
    assert found[0].startswith('pgbackrest/archive/dbops/15-1/0000000100000000/000000010000000000000004-')
    assert 'invalid checksum' in found[0]
    assert problems('damaged_wal') == []


def test_output_of_the_old_command_still_fails():
    # no file names (console log level warn), results only: the status decides
    found = problems('damaged_verbose')
    assert len(found) == 1 and 'says invalid' in found[0] and 'checksum invalid: 1' in found[0], found
    # log lines with timestamps mixed into stdout
    mixed = problems('damaged_info')
    assert mixed[0] == 'pgbackrest/backup/dbops/%s/pg_data/base/5/1259: invalid checksum' % FULL


def test_set_not_reported_and_non_zero_exit_fail():
    found = problems('nostanza')
    assert len(found) == 1 and 'did not report on the set' in found[0] and 'No usable backup.info' in found[0]
    found = problems('rc32')
    assert len(found) == 1 and 'exit 32' in found[0] and "'json' is not allowed" in found[0], found
    # a non-zero exit fails even when the output looks clean (another pgBackRest release)
    rc, out, err = captured('good')
    assert pb.pgbackrest_verify_problems(1, out, err, FULL)


def test_damage_in_another_set_is_not_this_sets_problem():
    rc, out, err = captured('damaged_file')
    other = out.replace(FULL, '20261127-150000F').replace(INCR, '20261127-150000F_20261127-150001I')
    err = err.replace(FULL, '20261127-150000F')
    good_out = captured('good')[1]
    out = other.rstrip('\n') + '\n' + '\n'.join(line for line in good_out.splitlines() if 'backup:' in line
                                                or line.startswith('    '))
    # FULL itself valid; the damaged file belongs to an unrelated set
    assert pb.pgbackrest_verify_problems(rc, out, err, FULL, 'x', (), *FULL_WAL) == []


@pytest.mark.parametrize('case,bad', [('good', False), ('damaged_file', True)])
def test_verify_pgbackrest_runs_verify_for_the_set(monkeypatch, case, bad):
    rc, out, err = captured(case)
    calls = []

    def fake_run_tool(argv, *args, **kwargs):
        calls.append(argv)
        return subprocess.CompletedProcess(argv, rc, out, err)

    monkeypatch.setattr(pb, 'run_tool', fake_run_tool)
    manifest = {'id': 'bk', 'method': 'pgbackrest', 'type': 'full',
                'start_position': {'wal_file': FULL_WAL[0]}, 'stop_position': {'wal_file': FULL_WAL[1]},
                'details': {'label': FULL, 'repo': '/srv/repo', 'wal_segment_size': 16 * 1024 * 1024}}
    found = pb.verify_pgbackrest(manifest, 'postgres')
    assert len(calls) == 1 and '--set=%s' % FULL in calls[0] and calls[0][-1] == 'verify'
    assert bool(found) is bad, found
    if bad:
        assert 'pgbackrest/backup/dbops/%s/pg_data/base/5/1259: invalid checksum' % FULL in found


def test_release_without_verify_set_is_asked_again_without_it(monkeypatch):
    rc, out, err = captured('good')
    calls = []

    def fake_run_tool(argv, *args, **kwargs):
        calls.append(argv)
        if any(a.startswith('--set=') for a in argv):
            return subprocess.CompletedProcess(argv, 31, '', "ERROR: [031]: option 'set' not valid for command 'verify'\n")
        return subprocess.CompletedProcess(argv, rc, out, err)

    monkeypatch.setattr(pb, 'run_tool', fake_run_tool)
    manifest = {'id': 'bk', 'start_position': {'wal_file': FULL_WAL[0]}, 'stop_position': {'wal_file': FULL_WAL[1]},
                'details': {'label': FULL, 'repo': '/srv/repo'}}
    assert pb.verify_pgbackrest(manifest) == []
    assert len(calls) == 2 and not any(a.startswith('--set=') for a in calls[1])
