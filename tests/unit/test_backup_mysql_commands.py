# -*- coding: utf-8 -*-
"""Command building of the MariaDB/MySQL backup engine, without a server.

The MySQL 8 paths (mysqldump, xtrabackup, xbstream, mysqlbinlog) are driven through
fake programs in a bin_dir that record their arguments.
"""

from __future__ import annotations

import datetime
import json
import os
import re
import stat
import textwrap

import pytest

from ansible_collections.dbops.admin.plugins.module_utils._engines import mysql_backup as mb
from ansible_collections.dbops.admin.plugins.module_utils._engines import mysql
from ansible_collections.dbops.admin.plugins.module_utils._errors import DbError

PASSWORD = 'S3cret"pa\\ss'


# ---- option file ------------------------------------------------------------------------------
def test_option_file_is_private_quoted_and_removed():
    with mb.client_option_file({'user': 'root', 'password': PASSWORD, 'port': 3307},
                               groups=('client', 'mariadb-backup')) as path:
        assert stat.S_IMODE(os.stat(path).st_mode) == 0o600
        assert stat.S_IMODE(os.stat(os.path.dirname(path)).st_mode) == 0o700
        with open(path) as f:
            text = f.read()
        assert '[client]' in text and '[mariadb-backup]' in text
        assert 'password="S3cret\\"pa\\\\ss"' in text
    assert not os.path.exists(path) and not os.path.exists(os.path.dirname(path))


def test_option_files_of_killed_runs_are_swept(tmp_path, monkeypatch):
    import subprocess
    monkeypatch.setattr(mb.tempfile, 'gettempdir', lambda: str(tmp_path))
    monkeypatch.setattr(mb.tempfile, 'tempdir', str(tmp_path))
    dead = subprocess.Popen(['true'])
    dead.wait()
    stale = tmp_path / ('dbops-cnf-%d-abc' % dead.pid)
    stale.mkdir()
    (stale / 'client.cnf').write_text('[client]\npassword="x"\n')
    live = tmp_path / ('dbops-cnf-%d-def' % os.getpid())
    live.mkdir()
    with mb.client_option_file({'user': 'u'}) as path:
        assert path.startswith(str(tmp_path / ('dbops-cnf-%d-' % os.getpid())))
    assert not stale.exists() and live.exists()


# ---- argv builders ----------------------------------------------------------------------------
def test_dump_argv_mariadb_and_mysql8():
    argv = mb.dump_argv('/usr/bin/mariadb-dump', '/tmp/x/client.cnf', ['a', 'b'], 'mariadb', 101106)
    assert argv[1] == '--defaults-file=/tmp/x/client.cnf'  # must come first
    for opt in ('--single-transaction', '--routines', '--triggers', '--events', '--quick', '--hex-blob'):
        assert opt in argv
    assert argv[-3:] == ['--databases', 'a', 'b']
    assert not any(a.startswith(('--password', '-p')) for a in argv)
    assert '--set-gtid-purged=OFF' not in argv
    my = mb.dump_argv('/usr/bin/mysqldump', '/tmp/x/client.cnf', ['a'], 'mysql', 80036)
    assert '--set-gtid-purged=OFF' in my and '--column-statistics=0' in my


def test_table_and_objects_dump_argv():
    argv = mb.table_dump_argv('/usr/bin/mariadb-dump', '/p/c.cnf', 'shop', ['-odd', 'b'])
    assert argv[1] == '--defaults-file=/p/c.cnf'
    assert argv[-4:] == ['--', 'shop', '-odd', 'b']  # names after -- are never options
    assert '--skip-routines' in argv and '--skip-events' in argv and '--triggers' in argv
    assert '--skip-add-locks' in argv   # parts load in parallel: no LOCK TABLES around their rows
    with_views = mb.objects_dump_argv('/usr/bin/mariadb-dump', '/p/c.cnf', 'shop', ['v1'])
    assert '--no-data' in with_views and '--no-create-info' not in with_views and with_views[-3:] == ['--', 'shop', 'v1']
    no_views = mb.objects_dump_argv('/usr/bin/mysqldump', '/p/c.cnf', 'shop', [], 'mysql', 80036)
    assert '--no-create-info' in no_views and '--routines' in no_views and '--set-gtid-purged=OFF' in no_views


def test_events_of_a_database_mariadb_dump_cannot_select_are_written_by_the_engine():
    # mariadb-dump --events selects the database by its escaped name: these names fail it
    for name in ('quo\'te', 'd"q', 'back\\slash', 'nl\nx'):
        assert mb.events_need_own_dump(name), name
    for name in ('my db', 'we`ird', 'UpperDB', '\u00fcn\u00ef\u20acode', 'semi;col -- x'):
        assert not mb.events_need_own_dump(name), name
    assert '--skip-events' in mb.dump_argv('/usr/bin/mariadb-dump', '/p/c.cnf', ['a'], events=False)
    argv = mb.objects_dump_argv('/usr/bin/mariadb-dump', '/p/c.cnf', "q'", [], events=False)
    assert '--skip-events' in argv and '--events' not in argv
    text = mb.events_sql([{'Event': 'ev`1', 'sql_mode': 'ANSI_QUOTES', 'time_zone': '+02:00',
                           'Create Event': "CREATE DEFINER=`a`@`%` EVENT `ev``1` ON SCHEDULE EVERY 1 DAY DO "
                                           "BEGIN SELECT 1;; END",
                           'character_set_client': 'utf8mb4', 'collation_connection': 'utf8mb4_general_ci'}],
                         mysql.quote_ident)
    assert 'DELIMITER ;;;\n' in text and 'DROP EVENT IF EXISTS `ev``1` ;;;' in text
    assert "SET sql_mode = 'ANSI_QUOTES' ;;;" in text and "SET time_zone = '+02:00' ;;;" in text
    assert text.rstrip().endswith('-- Dump completed')


def test_history_of_system_versioned_tables_is_dumped_on_mariadb_10_11():
    assert '--dump-history' in mb.dump_argv('/usr/bin/mariadb-dump', '/p/c.cnf', ['a'], 'mariadb', 101106, history=True)
    assert '--dump-history' not in mb.dump_argv('/usr/bin/mariadb-dump', '/p/c.cnf', ['a'], 'mariadb', 101106)
    argv = mb.table_dump_argv('/usr/bin/mariadb-dump', '/p/c.cnf', 'shop', ['t'], 'mariadb', 101106, history=True)
    assert '--dump-history' in argv and argv[-3:] == ['--', 'shop', 't']
    assert mb.history_options('mysql', 80036) == [] and mb.history_options('mariadb', 100611) == []


def test_position_capture_and_status_statements_by_flavor():
    assert mb.position_capture_option('mysql', 80036) == '--source-data=2'
    assert mb.position_capture_option('mysql', 80025) == '--master-data=2'
    assert mb.position_capture_option('mariadb', 101106) == '--master-data=2'
    assert mb.binlog_status_sql('mysql', 80400) == 'SHOW BINARY LOG STATUS'
    assert mb.binlog_status_sql('mysql', 80036) == 'SHOW MASTER STATUS'
    assert mb.binlog_status_sql('mariadb', 101106) == 'SHOW MASTER STATUS'
    assert 'gtid_executed' in mb.gtid_sql('mysql') and 'gtid_binlog_pos' in mb.gtid_sql('mariadb')


def test_physical_backup_argv_full_incremental_stream():
    full = mb.physical_backup_argv('/usr/bin/mariadb-backup', '/p/c.cnf', '/r/data', '/r/meta', '/var/lib/mysql/', 4)
    assert full[:3] == ['/usr/bin/mariadb-backup', '--defaults-file=/p/c.cnf', '--backup']
    assert '--parallel=4' in full and '--datadir=/var/lib/mysql/' in full
    assert not any(a.startswith('--incremental-basedir') for a in full)
    inc = mb.physical_backup_argv('/usr/bin/mariadb-backup', '/p/c.cnf', '/r/data', '/r/meta', None, 1,
                                  basedir='/repo/base/data/meta', stream=True)
    assert '--incremental-basedir=/repo/base/data/meta' in inc and '--stream=mbstream' in inc
    xb = mb.physical_backup_argv('/usr/bin/xtrabackup', '/p/c.cnf', '/t', '/m', None, 2, stream=True, flavor='mysql')
    assert '--stream=xbstream' in xb


def test_prepare_argv_and_incremental_apply():
    argv = mb.prepare_argv('/usr/bin/mariadb-backup', '/w/full')
    assert argv == ['/usr/bin/mariadb-backup', '--defaults-file=/w/full/backup-my.cnf', '--prepare',
                    '--target-dir=/w/full']
    inc = mb.prepare_argv('/usr/bin/mariadb-backup', '/w/full', '/w/inc1', last=False)
    assert inc[-1] == '--incremental-dir=/w/inc1' and '--apply-log-only' not in inc
    xb = mb.prepare_argv('/usr/bin/xtrabackup', '/w/full', '/w/inc1', flavor='mysql', last=False)
    assert '--apply-log-only' in xb
    xb_last = mb.prepare_argv('/usr/bin/xtrabackup', '/w/full', '/w/inc2', flavor='mysql', last=True)
    assert '--apply-log-only' not in xb_last


def test_compressors_levels_and_missing_tool(monkeypatch):
    assert mb.compressor_argv('none') is None
    argv = mb.compressor_argv('zstd', 3)
    assert os.path.basename(argv[0]) == 'zstd' and argv[-1] == '-3'
    assert mb.decompressor_argv('gzip')[1:] == ['-d', '-c']
    with pytest.raises(DbError, match='zstd accepts 1 to 19'):
        mb.compressor_argv('zstd', 25)
    with pytest.raises(DbError, match='choose zstd'):
        mb.compressor_argv('brotli')
    monkeypatch.setattr(mb.shutil, 'which', lambda name: None)
    monkeypatch.setattr(mb, 'SEARCH_DIRS', ())
    with pytest.raises(DbError, match=r'install lz4'):
        mb.compressor_argv('lz4')
    assert mb.compression_of('a.sql.zst') == 'zstd' and mb.compression_of('a.sql') == 'none'
    # zstd defaults to level 1 (CPU-bound dumps); an explicit level wins
    assert mb._level('zstd', None) == 1 and mb._level('zstd', 7) == 7 and mb._level('gzip', None) is None


def test_safe_filename():
    assert mb.safe_filename('shop_1') == 'shop_1'
    odd = mb.safe_filename('we/ird db')
    assert '/' not in odd and ' ' not in odd and bytes.fromhex(odd[3:]).decode() == 'we/ird db'
    # 64 characters of 2-byte UTF-8 were 259 characters: no file system takes <db>.<table>.tsv.zst of two
    longest = [mb.safe_filename(c * 64) for c in ('\u00fc', '\u20ac', '\U0001F600', ' ')]
    assert all(len(n) <= 84 for n in longest) and len(set(longest)) == 4
    assert mb.safe_filename('\u00fc' * 64) != mb.safe_filename('\u00fc' * 63 + 'a')
    assert len(('%s.%s.tsv.zst.dbops-enc' % (longest[0], longest[1])).encode()) < 255


# ---- binary log replay ------------------------------------------------------------------------
def test_binlog_replay_argv_ranges_and_utc():
    target = mb.parse_time('2024-05-01T14:30:05.900+02:00')
    argv = mb.binlog_replay_argv('/usr/bin/mariadb-binlog', ['/l/b.000003', '/l/b.000004'], start_pos=1234,
                                 stop_time=target)
    assert argv == ['/usr/bin/mariadb-binlog', '--no-defaults', '--verify-binlog-checksum', '--start-position=1234',
                    '--stop-datetime=2024-05-01 12:30:05', '/l/b.000003', '/l/b.000004']
    by_pos = mb.binlog_replay_argv('/usr/bin/mysqlbinlog', ['/l/b.000003'], start_pos=4, stop_position='999')
    assert by_pos[-2:] == ['--stop-position=999', '/l/b.000003']
    naive = mb.parse_time('2024-05-01 12:00:00')
    assert naive.tzinfo is not None and naive.hour == 12
    with pytest.raises(DbError, match='ISO 8601'):
        mb.parse_time('yesterday')


def _archive(tmp_path, numbers, base='mysql-bin'):
    log_dir = tmp_path / 'logs'
    log_dir.mkdir()
    for n in numbers:
        (log_dir / ('%s.%06d' % (base, n))).write_bytes(b'\xfebin' + b'\0' * 4092)
    return str(log_dir)


def test_binlog_range_reports_holes(tmp_path):
    log_dir = _archive(tmp_path, [1, 2, 3, 5, 6])
    names, missing = mb.binlog_range(log_dir, 'mysql-bin.000002')
    assert names == ['mysql-bin.000002', 'mysql-bin.000003', 'mysql-bin.000005', 'mysql-bin.000006']
    assert missing == ['mysql-bin.000004']
    names, missing = mb.binlog_range(log_dir, 'mysql-bin.000005', 'mysql-bin.000005')
    assert names == ['mysql-bin.000005'] and missing == []


def _chain(stop_file='mysql-bin.000002', pos=500):
    return [{'manifest': {'type': 'full', 'stop_position': {'binlog_file': stop_file, 'binlog_pos': pos,
                                                            'lsn': '100'}}, 'path': '/x'}]


def test_replay_plan_positions_gtid_and_missing(tmp_path):
    log_dir = _archive(tmp_path, [2, 3, 4])
    files, start, stop = mb.replay_plan(_chain(), log_dir, target_time=mb.parse_time('2024-01-01T00:00:00Z'))
    assert files == ['mysql-bin.000002', 'mysql-bin.000003', 'mysql-bin.000004'] and start == 500 and stop is None
    files, start, stop = mb.replay_plan(_chain(), log_dir, target_position={'binlog_file': 'mysql-bin.000003',
                                                                            'binlog_pos': 777})
    assert files == ['mysql-bin.000002', 'mysql-bin.000003'] and stop == '777'
    files, start, stop = mb.replay_plan(_chain(), log_dir, target_position={'gtid': '0-1-42'})
    assert stop == '0-1-42'
    # positions the archive does not reach
    with pytest.raises(DbError, match=r'binlog_pos 5000 is past the end of mysql-bin\.000003 \(4096 bytes'):
        mb.replay_plan(_chain(), log_dir, target_position={'binlog_file': 'mysql-bin.000003', 'binlog_pos': 5000})
    with pytest.raises(DbError, match=r'ends with mysql-bin\.000004: mysql-bin\.000009 is not in it'):
        mb.replay_plan(_chain(), log_dir, target_position={'binlog_file': 'mysql-bin.000009', 'binlog_pos': 4})
    with pytest.raises(DbError, match=r'mysql-bin\.000001 is missing'):
        mb.replay_plan(_chain('mysql-bin.000001'), log_dir, target_time=mb.parse_time('2024-01-01T00:00:00Z'))
    late = _chain()
    late[0]['manifest']['stop_time'] = '2024-06-01T00:00:00Z'
    with pytest.raises(DbError, match='after the target'):
        mb.replay_plan(late, log_dir, target_time=mb.parse_time('2024-05-31T23:00:00Z'))
    with pytest.raises(DbError, match='binary logging was off'):
        mb.replay_plan([{'manifest': {'stop_position': {}}, 'path': '/x'}], log_dir)


def test_replay_plan_until_the_end_of_a_log_backup(tmp_path):
    """Restoring a log backup without a target replays the archive to where that log backup ended."""
    log_dir = _archive(tmp_path, [2, 3, 4, 5])
    files, start, stop = mb.replay_plan(_chain(), log_dir, until={'binlog_file': 'mysql-bin.000004', 'binlog_pos': 9000})
    assert files == ['mysql-bin.000002', 'mysql-bin.000003', 'mysql-bin.000004'] and start == 500 and stop == '9000'
    # a log backup that archived nothing new ends at the start of the server's next (unarchived) binary log
    files, start, stop = mb.replay_plan(_chain(), log_dir, until={'binlog_file': 'mysql-bin.000006', 'binlog_pos': 385})
    assert files == ['mysql-bin.000002', 'mysql-bin.000003', 'mysql-bin.000004', 'mysql-bin.000005'] and stop is None
    # a target wins over the end of the log backup
    files, start, stop = mb.replay_plan(_chain(), log_dir, target_time=mb.parse_time('2024-01-01T00:00:00Z'),
                                        until={'binlog_file': 'mysql-bin.000003', 'binlog_pos': 9000})
    assert files[-1] == 'mysql-bin.000005' and stop is None
    with pytest.raises(DbError, match='records no binary log stop position'):
        mb.replay_plan(_chain(), log_dir, until={})


@pytest.mark.parametrize('position, words', [
    ({'lsn': '0/0'}, 'unknown key lsn'),
    ({'binlog_pos': 1499}, 'binlog_file missing'),
    ({'binlog_file': 'mysql-bin.000002'}, 'binlog_pos missing'),
    ({'binlog_file': 'mysql-bin.000002', 'binlog_pos': 12, 'gtid': '0-1-5'}, 'not both'),
    ({'binlog_file': '../etc/passwd.1', 'binlog_pos': 12}, 'not a binary log name'),
    ({'binlog_file': 'mysql-bin.000002', 'binlog_pos': 'end'}, 'not a position'),
    ({'binlog_file': 'mysql-bin.000002', 'binlog_pos': 2}, 'not a position'),
    ({'gtid': '3E11FA47-71CA-11E1-9E33-C80AA9429562:23-5'}, 'N-M needs N <= M'),
    ({'gtid': '3E11FA47-71CA-11E1-9E33-C80AA9429562'}, 'not a MariaDB GTID position'),
    ('3E11FA47-71CA-11E1-9E33-C80AA9429562:', 'a colon with no interval after it'),
    ('3E11FA47-71CA-11E1-9E33-C80AA9429562:1-5:tag', 'names no transactions'),
    ('3E11FA47-71CA-11E1-9E33-C80AA9429562:1-5:x-y', "'x-y' after 3e11fa47-71ca-11e1-9e33-c80aa9429562 is neither"),
    ('3E11FA47-71CA-11E1-9E33-C80AA9429562:1-5,,', 'empty part between commas'),
    ('3E11FA47-71CA-11E1-9E33-C80AA9429562:0-5', 'transaction numbers run from 1'),
    (['mysql-bin.000002', 77], 'not a dictionary'),
    # the string forms, malformed
    ('mysql-bin.000002:end', 'not a position'),
    ('mysql-bin.000002:2', 'not a position'),
    ('mysql-bin:77', 'not a binary log name'),
    ('../etc/passwd.1:77', 'not a binary log name'),
    ('0/3000060', 'neither <binlog_file>:<binlog_pos>'),
    ('0-1', 'neither <binlog_file>:<binlog_pos>'),
    ('mysql-bin.000002:77:1', 'not a position'),
])
def test_target_position_is_checked_before_anything(tmp_path, position, words):
    with pytest.raises(DbError) as err:
        mb.check_target_position(position)
    assert words in str(err.value)
    assert 'binlog_file' in str(err.value) and 'gtid' in str(err.value)  # says what is accepted
    # restore_physical refuses it before the data directory is created
    data_dir = str(tmp_path / 'data')
    with pytest.raises(DbError, match=re.escape(words)):
        mb.restore_physical({'chain': [], 'data_dir': data_dir, 'port': 3399, 'target_position': position})
    assert not os.path.exists(data_dir)


def test_target_position_accepted_forms():
    assert mb.check_target_position(None) is None and mb.check_target_position({}) is None
    assert mb.check_target_position({'binlog_file': 'mysql-bin.000002', 'binlog_pos': '777'}) == {
        'binlog_file': 'mysql-bin.000002', 'binlog_pos': 777}
    assert mb.check_target_position({'gtid': '0-1-42, 1-1-7', 'binlog_file': None}) == {'gtid': '0-1-42,1-1-7'}
    # the string forms: the same targets as their dicts
    assert mb.check_target_position('mysql-bin.000002:777') == {'binlog_file': 'mysql-bin.000002', 'binlog_pos': 777}
    assert mb.check_target_position(' mysql-bin.000002 : 777 ') == {'binlog_file': 'mysql-bin.000002', 'binlog_pos': 777}
    assert mb.check_target_position('0-1-100') == {'gtid': '0-1-100'}
    assert mb.check_target_position('0-1-42, 1-1-7') == {'gtid': '0-1-42,1-1-7'}
    assert mb.check_target_position('') is None and mb.check_target_position('  ') is None


def test_chain_lsn_checks():
    full = {'type': 'full', 'stop_position': {'lsn': '100'}}
    inc1 = {'type': 'incremental', 'start_position': {'lsn': '100'}, 'stop_position': {'lsn': '200'}}
    inc2 = {'type': 'incremental', 'start_position': {'lsn': '200'}, 'stop_position': {'lsn': '300'}}
    diff = {'type': 'differential', 'start_position': {'lsn': '100'}, 'stop_position': {'lsn': '400'}}
    mb._check_chain([{'manifest': full}, {'manifest': inc1}, {'manifest': inc2}])
    mb._check_chain([{'manifest': full}, {'manifest': diff}])
    with pytest.raises(DbError, match='LSN 200 but the chain is at LSN 100'):
        mb._check_chain([{'manifest': full}, {'manifest': inc2}])
    with pytest.raises(DbError, match='starts with a full'):
        mb._check_chain([{'manifest': inc1}])


# ---- the dump splitter ------------------------------------------------------------------------
DUMP = textwrap.dedent('''\
    -- MariaDB dump 10.19
    /*!40101 SET NAMES utf8mb4 */;
    /*!40103 SET TIME_ZONE='+00:00' */;

    --
    -- Current Database: `shop`
    --

    CREATE DATABASE /*!32312 IF NOT EXISTS*/ `shop` /*!40100 DEFAULT CHARACTER SET utf8mb4 */;

    USE `shop`;
    INSERT INTO `t` VALUES (1,'USE `x`;\\n-- Current'),(2,'b');

    --
    -- Current Database: `we``ird`
    --

    CREATE DATABASE /*!32312 IF NOT EXISTS*/ `we``ird`;

    USE `we``ird`;
    INSERT INTO `u` VALUES (3);

    --
    -- Current Database: `shop`
    --

    USE `shop`;
    CREATE VIEW `v` AS select 1;
    -- Dump completed
    ''').encode()


@pytest.mark.parametrize('chunk', [1, 7, 64, 100000])
def test_dump_splitter_one_file_per_database(tmp_path, chunk):
    files = {'shop': str(tmp_path / 'shop.sql'), 'we`ird': str(tmp_path / 'weird.sql')}
    splitter = mb.DumpSplitter(files, None)
    for i in range(0, len(DUMP), chunk):
        splitter.feed(DUMP[i:i + chunk])
    splitter.close()
    shop = (tmp_path / 'shop.sql').read_text()
    weird = (tmp_path / 'weird.sql').read_text()
    for text in (shop, weird):
        assert text.startswith('-- MariaDB dump') and "SET TIME_ZONE='+00:00'" in text
        assert 'CREATE DATABASE' not in text and '\nUSE ' not in text
    assert "INSERT INTO `t` VALUES (1,'USE `x`;\\n-- Current'),(2,'b');" in shop
    assert 'CREATE VIEW `v`' in shop and 'INSERT INTO `u`' not in shop
    assert 'INSERT INTO `u` VALUES (3);' in weird and 'INSERT INTO `t`' not in weird
    assert shop.count('SET NAMES') == 1


def test_dump_splitter_takes_a_name_with_a_line_break_from_its_use_statement(tmp_path):
    # mariadb-dump cuts the comment at the line break ("-- Current Database: `nl" / "-- x`"): the
    # name read from the comment was "`nl" ("the dump holds a database that was not asked for")
    dump = ('-- MariaDB dump\n/*!40101 SET NAMES utf8mb4 */;\n\n--\n-- Current Database: `nl\n-- x`\n--\n\n'
            'CREATE DATABASE /*!32312 IF NOT EXISTS*/ `nl\nx`;\n\nUSE `nl\nx`;\nINSERT INTO `t` VALUES (1);\n'
            '-- Dump completed\n').encode()
    splitter = mb.DumpSplitter({'nl\nx': str(tmp_path / 'nl.sql')}, None)
    splitter.feed(dump)
    splitter.close()
    text = (tmp_path / 'nl.sql').read_text()
    assert 'INSERT INTO `t` VALUES (1);' in text and 'USE ' not in text and 'CREATE DATABASE' not in text


def test_dump_splitter_refuses_an_unknown_database(tmp_path):
    splitter = mb.DumpSplitter({'shop': str(tmp_path / 'shop.sql')}, None)
    with pytest.raises(DbError, match='not asked for'):
        splitter.feed(DUMP)


# ---- MySQL 8 through fake programs ------------------------------------------------------------
FAKE_DUMP = '''#!/bin/sh
echo "$0 $*" >> "%(log)s"
for a in "$@"; do case "$a" in --defaults-file=*) cp "${a#--defaults-file=}" "%(log)s.cnf";; esac; done
printf -- '-- MySQL dump\\n/*!40101 SET NAMES utf8mb4 */;\\n'
for db in "$@"; do
  case "$db" in -*) continue;; esac
  printf -- '\\n--\\n-- Current Database: `%%s`\\n--\\n\\nCREATE DATABASE `%%s`;\\n\\nUSE `%%s`;\\nINSERT INTO t VALUES (1);\\n' "$db" "$db" "$db"
done
printf -- '-- Dump completed\\n'
'''

FAKE_XTRABACKUP = '''#!/bin/sh
echo "$0 $*" >> "%(log)s"
for a in "$@"; do
  case "$a" in
    --extra-lsndir=*) d="${a#--extra-lsndir=}";;
    --incremental-basedir=*) inc=1;;
  esac
done
mkdir -p "$d"
if [ -n "$inc" ]; then from=5000; else from=0; fi
printf 'backup_type = full-backuped\\nfrom_lsn = %%s\\nto_lsn = 9000\\nlast_lsn = 9100\\n' $from > "$d/xtrabackup_checkpoints"
printf "binlog_pos = filename 'binlog.000007', position '157', GTID of the last change 'uuid:1-42'\\n" > "$d/xtrabackup_info"
printf 'streamdata'
'''


class FakeConn:
    user = 'backup'
    password = PASSWORD.encode('latin1')
    host = '127.0.0.1'
    port = 3306
    unix_socket = None


class FakeMysql8(mb.MysqlBackup):
    """Just enough of a connected MySQL 8.4 engine for backup_create."""

    flavor = 'mysql'
    version = '8.4.0'
    version_num = 80400
    version_string = '8.4.0'
    host = '127.0.0.1'
    port = 3306
    check_mode = False   # set by the engine's constructor, which the fake does not run

    def __init__(self):
        self.conn = FakeConn()
        self._secrets = set()
        self.queries = []

    def add_secret(self, value):
        self._secrets.add(value)

    def mask(self, text):
        return mb.mask_secrets(text, self._secrets)

    def quote_ident(self, name):
        return '`%s`' % name.replace('`', '``')

    def execute(self, sql, params=None, operation=None, autocommit=False):
        self.queries.append(sql)

    def fetch_all(self, sql, params=None, operation=None):
        self.queries.append(sql)
        if 'SCHEMATA ORDER BY' in sql:
            return [{'name': n} for n in ('app', 'mysql', 'sys', 'reporting')]
        if 'GROUP BY TABLE_SCHEMA' in sql:
            return [{'db': 'app', 'size': 10}, {'db': 'reporting', 'size': 5}]
        if sql.startswith('SHOW BINARY LOG STATUS') or sql.startswith('SHOW MASTER STATUS'):
            return [{'File': 'binlog.000007', 'Position': 157}]
        if 'DEFAULT_CHARACTER_SET_NAME' in sql:
            return [{'charset': 'utf8mb4', 'collation': 'utf8mb4_0900_ai_ci'}]
        return []

    def fetch_one(self, sql, params=None, operation=None):
        rows = self.fetch_all(sql, params, operation)
        return rows[0] if rows else None

    def fetch_value(self, sql, params=None, operation=None):
        self.queries.append(sql)
        if 'log_bin_basename' in sql:
            return '/var/lib/mysql/binlog'
        if 'log_bin' in sql:
            return 1
        if 'gtid_executed' in sql:
            return 'uuid:1-42'
        if 'datadir' in sql:
            return '/var/lib/mysql/'
        return None


def _fake_bin(tmp_path):
    bin_dir = tmp_path / 'bin'
    bin_dir.mkdir()
    log = str(tmp_path / 'argv.log')
    for name, body in (('mysqldump', FAKE_DUMP), ('xtrabackup', FAKE_XTRABACKUP)):
        path = bin_dir / name
        path.write_text(body % {'log': log})
        path.chmod(0o755)
    return str(bin_dir), log


def test_mysql8_logical_backup_through_fake_mysqldump(tmp_path):
    bin_dir, log = _fake_bin(tmp_path)
    dest = tmp_path / 'dest'
    dest.mkdir()
    engine = FakeMysql8()
    result = engine.backup_create({'method': 'logical', 'type': 'full', 'databases': None, 'compression': 'none',
                                   'jobs': 2, 'dest': str(dest), 'base': None, 'repo': str(tmp_path),
                                   'bin_dir': bin_dir})
    argv_lines = open(log).read().splitlines()
    assert len(argv_lines) == 2  # one mysqldump per job
    for line in argv_lines:
        assert PASSWORD not in line and '--set-gtid-purged=OFF' in line and '--single-transaction' in line
    assert open(log + '.cnf').read().count('password=') >= 1  # the password went through the file
    assert 'SHOW BINARY LOG STATUS' in engine.queries  # MySQL 8.4 wording
    assert engine.queries.index('FLUSH TABLES WITH READ LOCK') < engine.queries.index('UNLOCK TABLES')
    assert result['stop_position'] == {'binlog_file': 'binlog.000007', 'binlog_pos': 157, 'gtid': 'uuid:1-42'}
    assert sorted(result['databases']) == ['app', 'reporting']
    assert (dest / 'app.sql').read_text().count('INSERT INTO t VALUES (1);') == 1
    index = json.loads((dest / mb.INDEX_FILE).read_text())
    assert [e['file'] for e in index['databases']] == ['app.sql', 'reporting.sql']
    assert all(PASSWORD not in c for c in result['commands'])


def test_mysql8_physical_incremental_through_fake_xtrabackup(tmp_path):
    bin_dir, log = _fake_bin(tmp_path)
    base = tmp_path / 'base'
    (base / 'meta').mkdir(parents=True)
    (base / 'meta' / 'xtrabackup_checkpoints').write_text('backup_type = full-backuped\nfrom_lsn = 0\nto_lsn = 5000\n')
    dest = tmp_path / 'inc'
    dest.mkdir()
    engine = FakeMysql8()
    result = engine.backup_create({'method': 'physical', 'type': 'incremental', 'compression': 'zstd',
                                   'jobs': 3, 'dest': str(dest), 'repo': str(tmp_path), 'bin_dir': bin_dir,
                                   'base': {'manifest': {}, 'path': str(base)}})
    line = open(log).read().strip()
    assert PASSWORD not in line
    assert '--incremental-basedir=%s' % (base / 'meta') in line
    assert '--stream=xbstream' in line and '--parallel=3' in line
    assert any(c.endswith('zstd -q -c -1 -T0 > %s' % (dest / 'backup.mbstream.zst')) for c in result['commands'])
    assert result['start_position']['lsn'] == '5000' and result['stop_position']['lsn'] == '9000'
    assert result['stop_position']['binlog_file'] == 'binlog.000007'
    assert result['stop_position']['gtid'] == 'uuid:1-42'
    assert (dest / 'backup.mbstream.zst').stat().st_size > 0
    # a base that does not end where the incremental starts is refused
    (base / 'meta' / 'xtrabackup_checkpoints').write_text('from_lsn = 0\nto_lsn = 4000\n')
    dest2 = tmp_path / 'inc2'
    dest2.mkdir()
    with pytest.raises(DbError, match='base ends at 4000'):
        engine.backup_create({'method': 'physical', 'type': 'incremental', 'compression': 'none', 'jobs': 1,
                              'dest': str(dest2), 'repo': str(tmp_path), 'bin_dir': bin_dir,
                              'base': {'manifest': {}, 'path': str(base)}})


def test_logical_incremental_is_refused_clearly(tmp_path):
    engine = FakeMysql8()
    with pytest.raises(DbError, match='always full'):
        engine.backup_create({'method': 'logical', 'type': 'incremental', 'dest': str(tmp_path)})


def test_binlog_info_parsing():
    info = {'binlog_pos': "filename 'mysql-bin.000003', position '385', GTID of the last change '0-1-3'"}
    assert mb.parse_binlog_info(info) == {'binlog_file': 'mysql-bin.000003', 'binlog_pos': 385, 'gtid': '0-1-3'}
    assert mb.parse_binlog_info(None, 'binlog.000002\t1570\tuuid:1-5') == {
        'binlog_file': 'binlog.000002', 'binlog_pos': 1570, 'gtid': 'uuid:1-5'}
    assert mb.parse_binlog_info({}, None) is None


def test_last_event_time_from_decoded_binlog(tmp_path):
    text = tmp_path / 'x.sql'
    text.write_bytes(b'# at 4\n#240501 12:30:05 server id 1  end_log_pos 256\n'
                     b'#240501 12:31:59 server id 1  end_log_pos 300 Xid\n')
    assert mb._last_event_time(str(text)) == datetime.datetime(2024, 5, 1, 12, 31, 59,
                                                               tzinfo=datetime.timezone.utc)


# ---- tab-separated table data (SELECT ... INTO OUTFILE / LOAD DATA) ----------------------------
def test_outfile_policy_mariadb_and_mysql():
    assert mb.outfile_policy('mariadb', None) == ('anywhere', None)  # MariaDB: unset = no restriction
    assert mb.outfile_policy('mariadb', '') == ('anywhere', None)
    assert mb.outfile_policy('mariadb', '/var/lib/mysql-files/') == ('inside', '/var/lib/mysql-files/')
    assert mb.outfile_policy('mysql', None) == ('disabled', None)  # MySQL: NULL disables export/import
    assert mb.outfile_policy('mysql', 'NULL') == ('disabled', None)
    assert mb.outfile_policy('mysql', '') == ('anywhere', None)
    assert mb.outfile_policy('mysql', b'/var/lib/mysql-files/') == ('inside', '/var/lib/mysql-files/')


def test_generated_columns_are_left_to_the_server():
    for extra in ('VIRTUAL GENERATED', 'STORED GENERATED', 'PERSISTENT GENERATED', 'virtual generated'):
        assert mb.is_generated_column(extra), extra
    # MySQL 8 expression defaults, invisible and auto-increment columns hold stored values
    for extra in ('', None, 'DEFAULT_GENERATED', 'DEFAULT_GENERATED on update CURRENT_TIMESTAMP', 'INVISIBLE',
                  'auto_increment'):
        assert not mb.is_generated_column(extra), extra


def quote(name):
    return '`%s`' % name.replace('`', '``')


def test_export_and_load_statements_share_one_exact_format():
    sql = mb.export_sql(quote, 'sh`op', 't', ['id', 'we`ird'], "/d/it's.tsv")
    assert sql.startswith('SELECT `id`, `we``ird` FROM `sh``op`.`t` INTO OUTFILE ')
    assert "'/d/it''s.tsv'" in sql
    fmt = r"CHARACTER SET binary FIELDS TERMINATED BY '\t' ESCAPED BY '\\' LINES TERMINATED BY '\n'"
    assert sql.endswith(fmt)
    local = mb.load_sql(quote, 't', ['id', 'we`ird'], '/dev/stdin')
    assert local == "LOAD DATA LOCAL INFILE '/dev/stdin' INTO TABLE `t` %s (`id`, `we``ird`)" % fmt
    server = mb.load_sql(quote, 't', ['id'], '/x/load-1.tsv', local=False)
    assert server.startswith("LOAD DATA INFILE '/x/load-1.tsv' INTO TABLE `t` ")
    # a load runs like the header of a dump file: no FK/unique checks, keep 0 in AUTO_INCREMENT, UTC
    for part in ('foreign_key_checks = 0', "NO_AUTO_VALUE_ON_ZERO", "time_zone = '+00:00'"):
        assert part in mb.LOAD_SESSION_SQL
    assert "time_zone = '+00:00'" in mb.EXPORT_SESSION_SQL


def test_schema_and_trigger_dump_argv_mariadb_and_mysql8():
    schema = mb.schema_dump_argv('/usr/bin/mariadb-dump', '/p/c.cnf', 'shop', ['-t1', 't2'])
    assert schema[1] == '--defaults-file=/p/c.cnf' and schema[-4:] == ['--', 'shop', '-t1', 't2']
    assert '--no-data' in schema and '--skip-triggers' in schema and '--single-transaction' in schema
    trig = mb.triggers_dump_argv('/usr/bin/mysqldump', '/p/c.cnf', 'shop', ['t1'], 'mysql', 80036)
    # triggers only: never a CREATE/DROP TABLE that would replace the loaded data
    assert '--no-create-info' in trig and '--no-data' in trig and '--triggers' in trig
    assert '--set-gtid-purged=OFF' in trig and '--column-statistics=0' in trig


class FakeSide:
    """A side connection of the fake server: INTO OUTFILE writes the file like a local server."""

    def __init__(self, log, rows):
        self.log = log
        self.rows = rows
        self.own = []   # this session's statements (the shared log interleaves the sessions' threads)

    def cursor(self):
        return self

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        return False

    def execute(self, sql):
        self.log.append(('side', sql))
        self.own.append(sql)
        local = re.match(r"LOAD DATA LOCAL INFILE '([^']+)'", sql)
        if local:
            # the driver sends the file the statement names (a decompressor's pipe)
            with open(local.group(1), 'rb') as f:
                self.local_loaded = getattr(self, 'local_loaded', []) + [(sql, f.read())]
            return 0
        match = re.search(r"INTO OUTFILE '([^']+)'", sql)
        if not match:
            return 0
        if 'probe' in match.group(1):
            token = re.search(r"^SELECT '([0-9a-f]+)'", sql).group(1)
            with open(match.group(1), 'w') as f:
                f.write(token + '\n')
            return 1
        with open(match.group(1), 'wb') as f:
            f.write(b''.join(b'%d\tv\\\tx\t\\N\n' % i for i in range(self.rows)))
        return self.rows

    def fetchall(self):
        sql = self.own[-1] if self.own else None
        if sql == mb.BINLOG_SNAPSHOT_SQL:
            position = self.snapshots.pop(0) if getattr(self, 'snapshots', None) else ('binlog.000007', 157)
            return (('Binlog_snapshot_file', position[0]), ('Binlog_snapshot_position', str(position[1])))
        return ()

    def close(self):
        pass


class FakeMysql8Tsv(FakeMysql8):
    """MySQL 8.4 on this host with secure_file_priv set: the tab-separated path."""

    def __init__(self, tmp_path, rows=3, counted=3):
        super().__init__()
        self.secure = tmp_path / 'mysql-files'
        self.secure.mkdir()
        self.datadir = tmp_path / 'datadir'
        self.datadir.mkdir()
        self.rows = rows
        self.counted = counted
        self.log = []

    def execute(self, sql, params=None, operation=None, autocommit=False):
        super().execute(sql, params, operation, autocommit)
        self.log.append(('main', sql))

    def _side_connection(self, local_infile=False):
        side = FakeSide(self.log, self.rows)
        side.local_infile = local_infile
        self.sides = getattr(self, 'sides', []) + [side]
        return side

    def quote_qualified(self, schema, name):
        return '%s.%s' % (self.quote_ident(schema), self.quote_ident(name))

    def fetch_all(self, sql, params=None, operation=None):
        if 'FROM information_schema.TABLES WHERE TABLE_SCHEMA IN' in sql:
            return [{'db': 'app', 't': 'orders', 'type': 'BASE TABLE', 'engine': 'InnoDB', 'size': 100},
                    {'db': 'app', 't': 'v_orders', 'type': 'VIEW', 'engine': None, 'size': None},
                    {'db': 'reporting', 't': 'daily', 'type': 'BASE TABLE', 'engine': 'InnoDB', 'size': 50}]
        if 'FROM information_schema.COLUMNS' in sql:
            return [{'db': 'app', 't': 'orders', 'c': 'id', 'type': 'int', 'extra': 'auto_increment'},
                    {'db': 'app', 't': 'orders', 'c': 'note', 'type': 'varchar', 'extra': 'INVISIBLE'},
                    {'db': 'app', 't': 'orders', 'c': 'total', 'type': 'decimal', 'extra': 'STORED GENERATED'},
                    {'db': 'app', 't': 'orders', 'c': 'made', 'type': 'timestamp', 'extra': 'DEFAULT_GENERATED'},
                    {'db': 'reporting', 't': 'daily', 'c': 'day', 'type': 'date', 'extra': ''}]
        if "TABLE_TYPE IN ('BASE TABLE', 'SYSTEM VERSIONED') ORDER BY TABLE_NAME" in sql:
            return [{'t': 'daily'}] if params == ('reporting',) else [{'t': 'orders'}]
        return super().fetch_all(sql, params, operation)

    def fetch_value(self, sql, params=None, operation=None):
        if 'secure_file_priv' in sql:
            return str(self.secure)
        if 'datadir' in sql:
            return str(self.datadir)
        if sql.startswith('SELECT COUNT(*) FROM `'):
            return self.counted
        return super().fetch_value(sql, params, operation)


def test_mysql8_logical_backup_exports_tab_separated_data(tmp_path):
    import hashlib
    bin_dir, log = _fake_bin(tmp_path)
    dest = tmp_path / 'dest'
    dest.mkdir()
    engine = FakeMysql8Tsv(tmp_path)
    result = engine.backup_create({'method': 'logical', 'type': 'full', 'databases': None, 'compression': 'zstd',
                                   'jobs': 2, 'dest': str(dest), 'base': None, 'repo': str(tmp_path),
                                   'bin_dir': bin_dir})
    details = result['details']
    assert details['table_data'] == 'tsv' and details['processes'] == 2
    order = [sql for _who, sql in engine.log]
    lock, unlock = order.index('FLUSH TABLES WITH READ LOCK'), order.index('UNLOCK TABLES')
    # both export sessions opened their snapshot while the read lock was held
    snaps = [i for i, (who, sql) in enumerate(engine.log)
             if who == 'side' and sql == 'START TRANSACTION WITH CONSISTENT SNAPSHOT']
    assert len(snaps) == 2 and all(lock < i < unlock for i in snaps)
    assert all(i < lock for i, (who, sql) in enumerate(engine.log) if who == 'side' and 'REPEATABLE READ' in sql)
    exports = [sql for who, sql in engine.log if who == 'side' and 'INTO OUTFILE' in sql and 'probe' not in sql]
    assert len(exports) == 2 and all(i > unlock for i, (w, s) in enumerate(engine.log) if s in exports)
    orders = [sql for sql in exports if '`orders`' in sql][0]
    # explicit columns: the invisible and expression-default ones kept, the generated one left out
    assert orders.startswith('SELECT `id`, `note`, `made` FROM `app`.`orders` INTO OUTFILE ')
    assert ("'%s/dbops-tsv-" % engine.secure) in orders  # inside secure_file_priv
    assert os.listdir(engine.secure) == []  # the exported text files are gone
    assert 'SHOW BINARY LOG STATUS' in engine.queries
    assert result['stop_position'] == {'binlog_file': 'binlog.000007', 'binlog_pos': 157, 'gtid': 'uuid:1-42'}
    names = sorted(os.listdir(dest))
    assert names == sorted([mb.INDEX_FILE, 'app.orders.tsv.zst', 'app.schema.sql.zst', 'app.triggers.sql.zst',
                            'app.objects.sql.zst', 'reporting.daily.tsv.zst', 'reporting.schema.sql.zst',
                            'reporting.triggers.sql.zst', 'reporting.objects.sql.zst'])
    for name, digest in result['verified_checksums'].items():
        assert hashlib.sha256((dest / name).read_bytes()).hexdigest() == digest
    assert set(result['verified_checksums']) == {'app.orders.tsv.zst', 'reporting.daily.tsv.zst'}
    assert result['synced'] is True
    index = json.loads((dest / mb.INDEX_FILE).read_text())
    app = index['databases'][0]
    assert app['pre'] == ['app.schema.sql.zst'] and app['post'] == ['app.triggers.sql.zst', 'app.objects.sql.zst']
    assert app['data']['app.orders.tsv.zst'] == {'table': 'orders', 'columns': ['id', 'note', 'made'], 'rows': 3,
                                                 'bytes': len(b'0\tv\\\tx\t\\N\n') * 3}
    dumps = [line for line in open(log).read().splitlines()]
    assert any('--no-data --skip-triggers' in line and line.endswith('-- app orders') for line in dumps)
    assert any('--no-create-info --no-data --triggers' in line for line in dumps)
    assert all(PASSWORD not in line for line in dumps) and all(PASSWORD not in c for c in result['commands'])
    assert mb.verify_logical({}, str(dest)) == []
    # a truncated compressed table file is named by verification
    victim = dest / 'reporting.daily.tsv.zst'
    victim.write_bytes(victim.read_bytes()[:-3])
    assert any(p.startswith('reporting.daily.tsv.zst') for p in mb.verify_logical({}, str(dest)))


def test_tsv_export_that_disagrees_with_the_snapshot_fails(tmp_path):
    bin_dir, _log = _fake_bin(tmp_path)
    dest = tmp_path / 'dest'
    dest.mkdir()
    engine = FakeMysql8Tsv(tmp_path, rows=3, counted=4)
    with pytest.raises(DbError, match='did not share one instant'):
        engine.backup_create({'method': 'logical', 'type': 'full', 'databases': ['app'], 'compression': 'none',
                              'jobs': 1, 'dest': str(dest), 'base': None, 'repo': str(tmp_path), 'bin_dir': bin_dir})


def test_tsv_plain_file_of_another_size_fails_verification(tmp_path):
    bin_dir, _log = _fake_bin(tmp_path)
    dest = tmp_path / 'dest'
    dest.mkdir()
    engine = FakeMysql8Tsv(tmp_path)
    engine.backup_create({'method': 'logical', 'type': 'full', 'databases': ['app'], 'compression': 'none',
                          'jobs': 1, 'dest': str(dest), 'base': None, 'repo': str(tmp_path), 'bin_dir': bin_dir})
    assert mb.verify_logical({}, str(dest)) == []
    with open(dest / 'app.orders.tsv', 'ab') as f:
        f.truncate(5)
    assert any(p.startswith('app.orders.tsv: 5 bytes') for p in mb.verify_logical({}, str(dest)))


@pytest.mark.parametrize('secure, reason', [(None, 'secure_file_priv disables'), ('elsewhere', 'not on this host')])
def test_mysql8_without_file_export_falls_back_to_mysqldump(tmp_path, secure, reason):
    bin_dir, log = _fake_bin(tmp_path)
    dest = tmp_path / 'dest'
    dest.mkdir()
    engine = FakeMysql8Tsv(tmp_path)
    if secure is None:
        engine.secure = None
        engine.fetch_value = lambda sql, params=None, operation=None: (
            None if 'secure_file_priv' in sql else FakeMysql8Tsv.fetch_value(engine, sql, params, operation))
    else:
        engine.datadir = tmp_path / 'not-here'  # a server on another host
    result = engine.backup_create({'method': 'logical', 'type': 'full', 'databases': None, 'compression': 'none',
                                   'jobs': 2, 'dest': str(dest), 'base': None, 'repo': str(tmp_path),
                                   'bin_dir': bin_dir})
    assert result['details']['table_data'] == 'sql' and reason in result['details']['tsv_unavailable']
    assert not [sql for who, sql in engine.log if 'INTO OUTFILE' in sql]
    assert sorted(os.listdir(dest)) == sorted(['app.sql', 'reporting.sql', mb.INDEX_FILE])
    assert len(open(log).read().splitlines()) == 2  # one mysqldump per job, as before


def test_tables_that_tsv_cannot_carry_send_the_backup_through_mysqldump(tmp_path):
    engine = FakeMysql8Tsv(tmp_path)
    base = engine.fetch_all
    for kind in ('bit', 'geometry', 'sequence'):
        def fetch_all(sql, params=None, operation=None, kind=kind):
            rows = base(sql, params, operation)
            if 'COLUMNS' in sql and kind != 'sequence':
                rows = rows + [{'db': 'app', 't': 'orders', 'c': 'flag', 'type': kind, 'extra': ''}]
            if 'TABLES WHERE TABLE_SCHEMA IN' in sql and kind == 'sequence':
                rows = rows + [{'db': 'app', 't': 's1', 'type': 'SEQUENCE', 'engine': 'InnoDB', 'size': 1}]
            return rows
        engine.fetch_all = fetch_all
        tables, reason = engine._tsv_tables(['app', 'reporting'])
        assert tables is None and kind in reason


def test_table_data_directories_of_killed_runs_are_swept(tmp_path):
    import subprocess
    dead = subprocess.Popen(['true'])
    dead.wait()
    stale = tmp_path / ('dbops-tsv-%d-abc' % dead.pid)
    stale.mkdir()
    (stale / '0.tsv').write_text('1\tsecret\n')
    live = tmp_path / ('dbops-tsv-%d-def' % os.getpid())
    live.mkdir()
    other = tmp_path / 'dbops-tsvx'
    other.mkdir()
    mb._sweep_outfile_dirs(str(tmp_path))
    assert not stale.exists() and live.exists() and other.exists()


@pytest.mark.parametrize('local_infile', ['1', '0'])
def test_mysql8_restore_of_tab_separated_data(tmp_path, monkeypatch, local_infile):
    """LOAD DATA LOCAL through the client when the server allows it, else the server loads a
    decompressed copy in a directory it reads (MySQL's default local_infile=OFF)."""
    bin_dir, log = _fake_bin(tmp_path)
    client = os.path.join(bin_dir, 'mysql')
    with open(client, 'w') as f:
        f.write('#!/bin/sh\nprintf "%%s\\n" "$0 $*" >> "%s.client"\ncat > /dev/null\n' % log)
    os.chmod(client, 0o755)
    dest = tmp_path / 'dest'
    dest.mkdir()
    engine = FakeMysql8Tsv(tmp_path)
    engine.backup_create({'method': 'logical', 'type': 'full', 'databases': ['app'], 'compression': 'zstd',
                          'jobs': 2, 'dest': str(dest), 'base': None, 'repo': str(tmp_path), 'bin_dir': bin_dir})
    real_tool = mb.tool
    monkeypatch.setattr(mb, 'tool', lambda flavor, role, bin_dir_=None: client if role == 'client'
                        else real_tool(flavor, role, bin_dir_))
    loaded = []
    real_side = FakeSide.execute

    def side_execute(self, sql):
        match = re.match(r"LOAD DATA INFILE '([^']+)'", sql)
        if match:
            with open(match.group(1), 'rb') as f:
                loaded.append((sql, f.read()))
        return real_side(self, sql)

    monkeypatch.setattr(FakeSide, 'execute', side_execute)
    base_value = engine.fetch_value

    def fetch_value(sql, params=None, operation=None):
        if 'local_infile' in sql:
            return local_infile
        if 'FROM information_schema.SCHEMATA' in sql:
            return 0
        return base_value(sql, params, operation)

    engine.fetch_value = fetch_value
    out = engine.restore_logical({'manifest': {}, 'path': str(dest), 'target_database': 'app_copy',
                                  'force': False, 'jobs': 2})
    assert out['rows_restored'] == 3
    calls = open(log + '.client').read().splitlines()
    assert all(PASSWORD not in c for c in calls + out['commands'])
    # the schema first, the triggers and objects last, each through the client; the table data
    # through a load session (a side connection in the target database)
    assert len(calls) == 3 and not [c for c in calls if '--local-infile=1' in c]
    sessions = [side for side in engine.sides if mb.LOAD_SESSION_SQL in side.own]
    assert len(sessions) == 1 and sessions[0].own[:2] == ['USE `app_copy`', mb.LOAD_SESSION_SQL]
    if local_infile == '1':
        assert sessions[0].local_infile is True and not loaded
        (sql, data), = sessions[0].local_loaded
        assert re.match(r"LOAD DATA LOCAL INFILE '/dev/fd/\d+' INTO TABLE `orders` ", sql)
        assert data == b''.join(b'%d\tv\\\tx\t\\N\n' % i for i in range(3))
        assert any('zstd' in c and 'LOAD DATA LOCAL' in c for c in out['commands'])
    else:
        assert sessions[0].local_infile is False
        assert not [c for c in calls if '--local-infile=1' in c]
        assert len(loaded) == 1
        sql, data = loaded[0]
        assert sql.startswith("LOAD DATA INFILE '%s/dbops-tsv-" % engine.secure)
        assert sql.endswith('(`id`, `note`, `made`)') and data == b''.join(b'%d\tv\\\tx\t\\N\n' % i for i in range(3))
        assert [s for _w, s in engine.log if s == mb.LOAD_SESSION_SQL]
        assert os.listdir(engine.secure) == []  # the decompressed copy and its directory are gone
    # a table that comes back short is an error, never a silent loss
    engine.counted = 2
    with pytest.raises(DbError, match='2 rows after the load, the backup holds 3'):
        engine.restore_logical({'manifest': {}, 'path': str(dest), 'target_database': 'app_copy2',
                                'force': False, 'jobs': 1})


# ---- table files compressed while the server writes them --------------------------------------
def _grow(path, chunks, finished, pause=0.002):
    """Append chunks to path one by one (like the server's SELECT ... INTO OUTFILE), then finish."""
    import time
    with open(path, 'wb') as f:
        for chunk in chunks:
            f.write(chunk)
            f.flush()
            time.sleep(pause)
    finished.set()


@pytest.mark.parametrize('compression', ['zstd', 'none'])
def test_follow_compress_reads_a_file_while_it_grows(tmp_path, compression):
    import hashlib
    import subprocess
    import threading
    if compression != 'none' and not mb.find_tool(['zstd']):
        pytest.skip('zstd not installed')
    chunks = [os.urandom(1000) + (b'%06d\t\\N\n' % i) * 5000 for i in range(40)]
    source, out = str(tmp_path / '1.tsv'), str(tmp_path / ('t.tsv' + mb.compression_spec(compression)['ext']))
    finished, abort = threading.Event(), threading.Event()
    writer = threading.Thread(target=_grow, args=(source, chunks, finished))
    # the follower starts before the server has even created the file
    follower_result = []
    follower = threading.Thread(target=lambda: follower_result.append(mb._follow_compress(
        source, mb.compressor_argv(compression), out, finished, abort)))
    follower.start()
    writer.start()
    writer.join()
    follower.join()
    digest, size = follower_result[0]
    assert size == sum(len(c) for c in chunks)
    with open(out, 'rb') as f:
        stored = f.read()
    assert digest == hashlib.sha256(stored).hexdigest()
    plain = subprocess.run(['zstd', '-d', '-c', out], capture_output=True, check=True).stdout \
        if compression == 'zstd' else stored
    assert plain == b''.join(chunks)
    assert mb._run_integrity_test(out) is None


def test_follow_compress_stops_when_the_export_fails(tmp_path):
    import threading
    source = tmp_path / '1.tsv'
    source.write_bytes(b'1\ta\n' * 1000)
    finished, abort = threading.Event(), threading.Event()
    abort.set()
    with pytest.raises(DbError, match='the export failed'):
        mb._follow_compress(str(source), mb.compressor_argv('zstd'), str(tmp_path / 'o.zst'), finished, abort)
    # the export failed before the server created its file
    with pytest.raises(DbError, match='the export failed'):
        mb._follow_compress(str(tmp_path / 'none.tsv'), None, str(tmp_path / 'o2'), finished, abort)
    # a statement that returned without a file is an error too, never an empty table
    done = threading.Event()
    done.set()
    with pytest.raises(DbError, match='wrote no file'):
        mb._follow_compress(str(tmp_path / 'none.tsv'), None, str(tmp_path / 'o3'), done, threading.Event())


def test_table_files_are_tested_once_by_the_run_that_wrote_them(tmp_path):
    """With verify, every compressed table file passes the integrity test right after it is
    written; verification of that run's result does not test them again, a stored manifest
    (no tested_files) tests everything, and a file changed since is still named."""
    bin_dir, _log = _fake_bin(tmp_path)
    dest = tmp_path / 'dest'
    dest.mkdir()
    engine = FakeMysql8Tsv(tmp_path)
    result = engine.backup_create({'method': 'logical', 'type': 'full', 'databases': None, 'compression': 'zstd',
                                   'jobs': 2, 'dest': str(dest), 'base': None, 'repo': str(tmp_path),
                                   'bin_dir': bin_dir, 'verify': True})
    tested = result['tested_files']
    assert set(tested) == {'app.orders.tsv.zst', 'reporting.daily.tsv.zst'}
    assert all(os.path.getsize(dest / name) == size for name, size in tested.items())
    assert mb.verify_logical(result, str(dest)) == []
    victim = dest / 'reporting.daily.tsv.zst'
    victim.write_bytes(victim.read_bytes()[:-3])
    assert any(p.startswith('reporting.daily.tsv.zst') for p in mb.verify_logical(result, str(dest)))
    assert any(p.startswith('reporting.daily.tsv.zst') for p in mb.verify_logical({}, str(dest)))
    # without verify nothing is tested during the run
    dest2 = tmp_path / 'dest2'
    dest2.mkdir()
    result = engine.backup_create({'method': 'logical', 'type': 'full', 'databases': ['app'], 'compression': 'zstd',
                                   'jobs': 1, 'dest': str(dest2), 'base': None, 'repo': str(tmp_path),
                                   'bin_dir': bin_dir})
    assert result['tested_files'] == {}


class FakeMariadbTsv(FakeMysql8Tsv):
    """MariaDB on this host: its snapshots name their binary log position."""

    flavor = 'mariadb'
    version = '10.11.6'
    version_num = 101106
    version_string = '10.11.6-MariaDB'

    def __init__(self, tmp_path, snapshots=None, log_bin=1):
        super().__init__(tmp_path)
        self.snapshots = list(snapshots or [])
        self.log_bin = log_bin

    def _side_connection(self, local_infile=False):
        side = FakeSide(self.log, self.rows)
        side.snapshots = self.snapshots
        self.sides = getattr(self, 'sides', []) + [side]
        return side

    def fetch_all(self, sql, params=None, operation=None):
        if sql == mb.BINLOG_SNAPSHOT_SQL:
            return [{'Variable_name': 'Binlog_snapshot_file', 'Value': 'binlog.000007'},
                    {'Variable_name': 'Binlog_snapshot_position', 'Value': '157'}]
        return super().fetch_all(sql, params, operation)

    def fetch_value(self, sql, params=None, operation=None):
        if sql == 'SELECT @@GLOBAL.log_bin':
            return self.log_bin
        if sql.startswith('SELECT COUNT(*)'):
            self.queries.append(sql)
        return super().fetch_value(sql, params, operation)


def _mariadb_run(tmp_path, **kw):
    bin_dir, _log = _fake_bin(tmp_path)
    os.symlink(os.path.join(bin_dir, 'mysqldump'), os.path.join(bin_dir, 'mariadb-dump'))
    dest = tmp_path / 'dest'
    dest.mkdir()
    engine = FakeMariadbTsv(tmp_path, **kw)
    request = {'method': 'logical', 'type': 'full', 'databases': None, 'compression': 'zstd', 'jobs': 2,
               'dest': str(dest), 'base': None, 'repo': str(tmp_path), 'bin_dir': bin_dir}
    return engine, request


def test_mariadb_sessions_at_the_backup_position_need_no_row_count_pass(tmp_path):
    """Every export session's snapshot is at the binary log position read under the lock: the
    exports' row counts are the counts of the backup, no COUNT(*) of every table."""
    engine, request = _mariadb_run(tmp_path)
    result = engine.backup_create(request)
    assert not [q for q in engine.queries if q.startswith('SELECT COUNT(*)')]
    side = [sql for who, sql in engine.log if who == 'side']
    assert side.count(mb.BINLOG_SNAPSHOT_SQL) == 2
    # each export session reads it after its own exports, inside its transaction (it never commits)
    # (one session may have exported both tables: the other still reads its snapshot's position)
    sessions = [s.own for s in engine.sides if mb.BINLOG_SNAPSHOT_SQL in s.own]
    assert len(sessions) == 2
    assert sum(1 for own in sessions for q in own if 'INTO OUTFILE' in q and 'probe' not in q) == 2
    for own in sessions:
        assert own.count(mb.BINLOG_SNAPSHOT_SQL) == 1
        assert own.index(mb.BINLOG_SNAPSHOT_SQL) > max([j for j, q in enumerate(own) if 'INTO OUTFILE' in q] or [-1])
    assert 'COMMIT' not in side
    dumps = {d['database']: d['tables'] for d in result['details']['dumps']}
    assert dumps == {'app': [{'name': 'orders', 'rows': 3}], 'reporting': [{'name': 'daily', 'rows': 3}]}
    assert 'binlog snapshot' in result['details']['same_instant_check']


def test_mariadb_session_at_another_position_fails(tmp_path):
    engine, request = _mariadb_run(tmp_path, snapshots=[('binlog.000007', 157), ('binlog.000007', 4242)])
    with pytest.raises(DbError, match=r'export session \d read a snapshot taken at binary log position '
                                      r'binlog.000007:4242, the backup at binlog.000007:157: the sessions did not '
                                      r'share one instant'):
        engine.backup_create(request)


def test_mariadb_without_binary_log_counts_rows_in_the_snapshot(tmp_path):
    engine, request = _mariadb_run(tmp_path, log_bin=0)
    result = engine.backup_create(request)
    assert [q for q in engine.queries if q.startswith('SELECT COUNT(*)')]
    assert mb.BINLOG_SNAPSHOT_SQL not in [sql for _who, sql in engine.log]
    assert 'COUNT(*)' in result['details']['same_instant_check']
    engine.counted = 4
    dest2 = tmp_path / 'dest2'
    dest2.mkdir()
    with pytest.raises(DbError, match='did not share one instant'):
        engine.backup_create(dict(request, dest=str(dest2)))


def test_binlog_snapshot_rows():
    assert mb.binlog_snapshot([{'Variable_name': 'Binlog_snapshot_file', 'Value': 'b.000001'},
                               {'Variable_name': 'Binlog_snapshot_position', 'Value': '42'}]) == ('b.000001', 42)
    assert mb.binlog_snapshot(((b'Binlog_snapshot_file', b'b.000002'), (b'Binlog_snapshot_position', b'7'))) == \
        ('b.000002', 7)
    assert mb.binlog_snapshot([('Binlog_snapshot_file', ''), ('Binlog_snapshot_position', '0')]) is None
    assert mb.binlog_snapshot([]) is None


# ---- a tool killed by a signal ------------------------------------------------------------------
KILLED_TOOL = '''#!/bin/sh
echo "[00] Copying ./big/b.ibd" >&2
kill -%s $$
'''


def test_run_checked_names_the_signal_that_killed_the_tool(tmp_path):
    prog = tmp_path / 'killed-tool'
    prog.write_text(KILLED_TOOL % 'KILL')
    prog.chmod(0o755)
    with pytest.raises(DbError) as err:
        mb.run_checked([str(prog)], 'prepare the full backup', 'b1')
    text = str(err.value)
    assert 'killed by signal 9 (SIGKILL)' in text and 'Copying ./big/b.ibd' in text
    # a plain failure keeps its own words, or its exit code
    prog.write_text('#!/bin/sh\nexit 3\n')
    with pytest.raises(DbError) as err:
        mb.run_checked([str(prog)], 'prepare the full backup', 'b1')
    assert 'exit code 3' in str(err.value) and 'killed' not in str(err.value)


def test_pipe_out_names_the_signal_that_killed_the_tool_or_the_compressor(tmp_path):
    prog = tmp_path / 'killed-tool'
    prog.write_text(KILLED_TOOL % 'TERM')
    prog.chmod(0o755)
    out = str(tmp_path / 'out.sql')
    with pytest.raises(DbError) as err:
        mb._pipe_out([str(prog)], None, out, 'dump the database', 'db1', [PASSWORD])
    assert 'killed by signal 15 (SIGTERM)' in str(err.value) and 'Copying ./big/b.ibd' in str(err.value)
    # the compressor killed: named, also when the dump then died writing into the closed pipe (SIGPIPE)
    for dump in (['echo', 'data'], ['yes']):
        with pytest.raises(DbError) as err:
            mb._pipe_out(dump, ['sh', '-c', 'kill -KILL $$'], out, 'dump the database', 'db1', [])
        assert 'could not compress out.sql: killed by signal 9 (SIGKILL)' in str(err.value)


def test_failure_detail_of_an_unknown_signal_and_an_exit_code():
    assert mb._failure_detail(-200, '') == 'killed by signal 200'
    assert mb._failure_detail(-6, 'last line') == 'killed by signal 6 (SIGABRT)\nlast line'
    assert mb._failure_detail(2, '') == 'exit code 2'
    assert mb._failure_detail(2, 'it said') == 'it said'


def test_pipe_into_names_the_loader_when_it_failed_and_the_decompressor_then_got_sigpipe(tmp_path):
    """A load that fails stops reading: the decompressor still writing into the pipe dies of SIGPIPE.
    The load's own error is the one reported (it was 'could not read x.sql.gz: exit code -13', which
    blamed the backup file and hid the server's message); a loader killed by a signal is named so."""
    import gzip
    source = str(tmp_path / 'x.sql.gz')
    with gzip.open(source, 'wb', compresslevel=1) as f:
        f.write(b'INSERT INTO t VALUES (1);\n' * 400000)
    failing = ['sh', '-c', 'head -c 10 >/dev/null; echo "ERROR 1064 (42000) at line 1: syntax" >&2; exit 1']
    with pytest.raises(DbError) as err:
        mb._pipe_into(source, ['gzip', '-dc'], failing)
    assert 'could not load x.sql.gz' in str(err.value) and 'ERROR 1064' in str(err.value), str(err.value)
    with pytest.raises(DbError) as err:
        mb._pipe_into(source, ['gzip', '-dc'], ['sh', '-c', 'head -c 10 >/dev/null; kill -KILL $$'])
    assert 'could not load x.sql.gz: killed by signal 9 (SIGKILL)' in str(err.value), str(err.value)
    # the decompressor failing on a damaged file is still what is reported
    with open(source, 'r+b') as f:
        f.seek(2000)
        f.write(b'\xff' * 64)
    with pytest.raises(DbError) as err:
        mb._pipe_into(source, ['gzip', '-dc'], ['sh', '-c', 'cat >/dev/null'])
    assert 'could not read x.sql.gz' in str(err.value), str(err.value)


@pytest.mark.parametrize('flavor, gtid, expected', [
    ('mysql', True, ['skip-replica-start', 'gtid-mode = ON', 'enforce-gtid-consistency = ON']),
    ('mysql', False, ['skip-replica-start']),
    ('mariadb', True, ['skip-slave-start']),
])
def test_restored_instance_runs_with_gtids_when_the_mysql8_backup_had_them(tmp_path, flavor, gtid, expected):
    # a MySQL 8 source with gtid_mode ON writes SET @@SESSION.GTID_NEXT='uuid:n' before each replayed
    # transaction: a restored server with gtid_mode OFF refuses it (error 1781)
    files = mb.write_instance_cnf(str(tmp_path / 'data'), 3307, None, flavor, gtid=gtid)
    with open(files['cnf']) as handle:
        lines = handle.read().splitlines()
    chosen = [line for line in lines if re.match(r'(skip-(replica|slave)-start|gtid-mode|enforce-gtid)', line)]
    assert chosen == expected
