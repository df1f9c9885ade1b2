# -*- coding: utf-8 -*-
"""Retention prunes pgBackRest's WAL archive with pgBackRest's own archive retention (``expire
--repo1-retention-archive=N --repo1-retention-archive-type=full``): what it keeps and how its dry run is read."""

from __future__ import annotations

import os

from ansible_collections.dbops.admin.plugins.module_utils._engines import postgresql_backup as pb

F1, F1_I, F2, F3 = '20261127-151604F', '20261127-151604F_20261127-151606I', '20261127-151609F', '20261127-151614F'
SETS = {F1: {'type': 'full'}, F1_I: {'type': 'incr', 'prior': F1}, F2: {'type': 'full'}, F3: {'type': 'full'}}
ARCHIVE = 'pgbackrest/archive/dbops/15-1/0000000100000000/'


def seg(n, suffix='-0123abcd'):
    return ARCHIVE + '0000000100000000000000%02X%s' % (n, suffix)


FILES = sorted([seg(n) for n in range(1, 13)] + [seg(3, '.00000028.backup'), seg(7, '.00000028.backup'),
                                                 seg(11, '.00000028.backup'),
                                                 'pgbackrest/archive/dbops/15-1/00000002.history',
                                                 'pgbackrest/archive/dbops/14-1/0000000100000000/000000010000000000000001-ff'])

# pgBackRest 2.45, expire --dry-run --repo1-retention-archive=1 --repo1-retention-archive-type=full
# --log-level-console=detail with the three full sets still in the repository
DRY_RUN = '''\
2026-11-27 15:16:23.900 P00   INFO: [DRY-RUN] expire command begin 2.45: --dry-run --repo1-retention-archive=1
2026-11-27 15:16:23.901 P00   INFO: [DRY-RUN] repo1: remove archive path /r/pgbackrest/archive/dbops/14-1
2026-11-27 15:16:23.901 P00 DETAIL: [DRY-RUN] repo1: 15-1 archive retention on backup 20261127-151604F, \
start = 000000010000000000000003, stop = 000000010000000000000004
2026-11-27 15:16:23.901 P00 DETAIL: [DRY-RUN] repo1: 15-1 archive retention on backup 20261127-151609F, \
start = 000000010000000000000007, stop = 000000010000000000000008
2026-11-27 15:16:23.901 P00 DETAIL: [DRY-RUN] repo1: 15-1 archive retention on backup 20261127-151614F, \
start = 00000001000000000000000B
2026-11-27 15:16:23.901 P00   INFO: [DRY-RUN] repo1: 15-1 remove archive, start = 000000010000000000000001, \
stop = 000000010000000000000002
2026-11-27 15:16:23.901 P00   INFO: [DRY-RUN] repo1: 15-1 remove archive, start = 000000010000000000000005, \
stop = 000000010000000000000006
2026-11-27 15:16:23.901 P00   INFO: [DRY-RUN] repo1: 15-1 remove archive, start = 000000010000000000000009, \
stop = 00000001000000000000000A
2026-11-27 15:16:23.901 P00   INFO: [DRY-RUN] expire command end: completed successfully (3ms)
'''


def test_archive_retention_counts_the_full_sets_from_the_oldest_that_stays():
    assert pb.pgbackrest_archive_retention(SETS) == 3
    assert pb.pgbackrest_archive_retention(SETS, gone=[F1_I, F1]) == 2
    assert pb.pgbackrest_archive_retention(SETS, gone=[F1_I, F1, F2]) == 1
    # a full in the middle goes: the oldest full that stays still decides
    assert pb.pgbackrest_archive_retention(SETS, gone=[F2]) == 3
    assert pb.pgbackrest_archive_retention(SETS, gone=[F1, F1_I, F2, F3]) is None
    assert pb.pgbackrest_archive_retention({}) is None


def test_expire_argv_never_expires_a_set():
    argv = pb.pgbackrest_expire_archive_argv('/r', 2, dry_run=True)
    assert argv[-1] == 'expire' and '--repo1-retention-archive=2' in argv
    assert '--repo1-retention-archive-type=full' in argv and '--dry-run' in argv
    assert not any(a.startswith('--repo1-retention-full') or a.startswith('--set') for a in argv)
    assert '--dry-run' not in pb.pgbackrest_expire_archive_argv('/r', 2)


def test_dry_run_read_as_files():
    gone = pb.pgbackrest_expired_archive(DRY_RUN, FILES, '/r')
    assert gone == sorted([seg(n) for n in (1, 2, 5, 6, 9, 10)]
                          + ['pgbackrest/archive/dbops/14-1/0000000100000000/000000010000000000000001-ff'])
    # check mode: the older sets go before the real expiry, so the WAL kept only for them goes too
    planned = pb.pgbackrest_expired_archive(DRY_RUN, FILES, '/r', gone=[F1, F2])
    assert planned == sorted([f for f in FILES if f.startswith(ARCHIVE) and f[len(ARCHIVE):][:24] < '00000001000000000000000B']
                             + ['pgbackrest/archive/dbops/14-1/0000000100000000/000000010000000000000001-ff'])
    assert 'pgbackrest/archive/dbops/15-1/00000002.history' not in planned
    assert pb.pgbackrest_expired_archive('', FILES, '/r') == []


def test_whole_directory_and_history_file():
    out = ('P00   INFO: repo1: 15-1 remove archive, start = 0000000100000000, stop = 0000000100000000\n'
           'P00 DETAIL: repo1: 15-1 remove history file 00000002.history\n')
    files = FILES + ['pgbackrest/archive/dbops/15-1/0000000100000001/000000010000000100000000-aa']
    assert pb.pgbackrest_expired_archive(out, files, '/r') == sorted(
        [f for f in FILES if f.startswith(ARCHIVE)] + ['pgbackrest/archive/dbops/15-1/00000002.history'])


def test_archive_files_lists_wal_not_the_info_files(tmp_path):
    root = tmp_path / 'pgbackrest' / 'archive' / 'dbops'
    (root / '15-1' / '0000000100000000').mkdir(parents=True)
    for rel in ('archive.info', 'archive.info.copy', '15-1/00000002.history',
                '15-1/0000000100000000/000000010000000000000001-aa.zst'):
        (root / rel).write_text('x')
    assert pb.pgbackrest_archive_files(str(tmp_path)) == sorted([
        os.path.join('pgbackrest', 'archive', 'dbops', '15-1', '00000002.history'),
        os.path.join('pgbackrest', 'archive', 'dbops', '15-1', '0000000100000000', '000000010000000000000001-aa.zst')])
    assert pb.pgbackrest_archive_files(str(tmp_path / 'none')) == []
