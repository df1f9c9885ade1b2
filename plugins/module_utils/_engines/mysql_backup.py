# -*- coding: utf-8 -*-
# Copyright: dbops.admin contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Private to dbops.admin: MariaDB/MySQL engine, backup area.

``MysqlBackup`` is mixed into ``MysqlEngine`` (``self`` is the connected engine):
``backup_methods()``, ``backup_create(request)``, ``restore_logical(request)``.
``restore_physical(request)``, ``verify_physical(manifest, path, scratch_dir)`` and
``stop_instance(data_dir)`` are module-level functions: they need no connection (the
source server may be down).

Layout written under ``dest`` (the catalog owns everything around it):

- logical: ``dump-index.json`` and, when the server can write files this host reads (FILE
  privilege, secure_file_priv, a server on this host), per database ``<db>.schema.sql``,
  one ``<db>.<table>.tsv`` per table (written by the server with SELECT ... INTO OUTFILE into
  a private directory, then compressed into the backup) and ``<db>.triggers.sql`` /
  ``<db>.objects.sql``; restored with LOAD DATA [LOCAL]. Otherwise (or with a BIT/spatial
  column, a sequence or a system-versioned table) one ``<database>.sql`` per database from
  mariadb-dump. Every export session and mariadb-dump process opens its consistent snapshot
  while this engine holds FLUSH TABLES WITH READ LOCK, so every file of one backup shows the
  same instant, and the binary log position read under that lock is the position of the
  whole backup.
- physical: ``meta/`` (``xtrabackup_checkpoints`` / ``xtrabackup_info``, always plain) and
  either ``data/`` (compression ``none``: the unprepared mariadb-backup directory) or
  ``backup.mbstream.<ext>`` (the mbstream of the backup, compressed).
- log: ``binlogs.json`` listing the closed binary logs copied into ``log_dir`` by this run.

Passwords reach the client programs only through a 0600 option file in a private
temporary directory that is removed afterwards; never on a command line.
"""

from __future__ import annotations

import collections
import concurrent.futures
import contextlib
import datetime
import errno
import fcntl
import hashlib
import json
import os
import pwd
import re
import shlex
import shutil
import signal
import socket
import ssl
import struct
import subprocess
import tempfile
import threading
import time

from ansible_collections.dbops.admin.plugins.module_utils._errors import DbError, mask_secrets
from ansible_collections.dbops.admin.plugins.module_utils import _backup_lock_wait as lock_wait
from ansible_collections.dbops.admin.plugins.module_utils import _mysql_gtid as mysql_gtid
from ansible_collections.dbops.admin.plugins.module_utils import _restore_comment as restore_comment

SYSTEM_DATABASES = ('information_schema', 'performance_schema', 'sys', 'mysql')
INDEX_FILE = 'dump-index.json'
# the accounts a logical backup's objects need (definers, privilege holders) as they were when it
# was taken: SHOW CREATE USER and SHOW GRANTS of each, recreated by a restore with roles=create
ACCOUNTS_FILE = 'accounts.json'
ROLE_MODES = ('require', 'create', 'skip')
DEFINERS_SQL = (
    "SELECT DEFINER AS d FROM information_schema.VIEWS WHERE TABLE_SCHEMA = %s "
    "UNION SELECT DEFINER FROM information_schema.ROUTINES WHERE ROUTINE_SCHEMA = %s "
    "UNION SELECT DEFINER FROM information_schema.TRIGGERS WHERE TRIGGER_SCHEMA = %s "
    "UNION SELECT DEFINER FROM information_schema.EVENTS WHERE EVENT_SCHEMA = %s")
PRIVILEGE_TABLES = ('db', 'tables_priv', 'columns_priv', 'procs_priv')
BINLOG_INDEX_FILE = 'binlogs.json'
# the databases a restore into an existing database loads into before replacing it
WORK_DB_PREFIX = 'dbops_restore_'
MARKER_FILE = 'dbops-restore.json'
STREAM_NAME = 'backup.mbstream'
CHUNK = 1024 * 1024
MAX_PACKET = '1073741824'

COMPRESSORS = {
    'zstd': {'ext': '.zst', 'tools': ['zstd'], 'package': 'zstd', 'levels': (1, 19),
             'compress': ['-q', '-c'], 'decompress': ['-q', '-d', '-c']},
    'gzip': {'ext': '.gz', 'tools': ['pigz', 'gzip'], 'package': 'gzip (or pigz)', 'levels': (1, 9),
             'compress': ['-c'], 'decompress': ['-d', '-c']},
    'lz4': {'ext': '.lz4', 'tools': ['lz4'], 'package': 'lz4', 'levels': (1, 12),
            'compress': ['-q', '-c'], 'decompress': ['-q', '-d', '-c']},
    'none': {'ext': '', 'tools': [], 'package': None, 'levels': None, 'compress': None, 'decompress': None},
}

# program names per flavour, first found wins
TOOLS = {
    'mariadb': {
        'dump': ['mariadb-dump', 'mysqldump'],
        'client': ['mariadb', 'mysql'],
        'backup': ['mariadb-backup', 'mariabackup'],
        'stream': ['mbstream'],
        'binlog': ['mariadb-binlog', 'mysqlbinlog'],
        'server': ['mariadbd', 'mysqld'],
        'checksum': ['innochecksum'],
    },
    'mysql': {
        'dump': ['mysqldump'],
        'client': ['mysql'],
        'backup': ['xtrabackup'],
        'stream': ['xbstream'],
        'binlog': ['mysqlbinlog'],
        'server': ['mysqld'],
        'checksum': ['innochecksum'],
    },
}
PACKAGES = {
    'mariadb': {'backup': 'mariadb-backup', 'stream': 'mariadb-backup', 'server': 'mariadb-server',
                'checksum': 'mariadb-server'},
    'mysql': {'backup': 'percona-xtrabackup-80', 'stream': 'percona-xtrabackup-80', 'server': 'mysql-server',
              'checksum': 'mysql-server'},
}
SEARCH_DIRS = ('/usr/local/bin', '/usr/bin', '/usr/sbin', '/usr/local/sbin', '/usr/local/mysql/bin')
CHECKPOINT_FILES = ('mariadb_backup_checkpoints', 'xtrabackup_checkpoints')
INFO_FILES = ('mariadb_backup_info', 'xtrabackup_info')
BINLOG_INFO_FILES = ('mariadb_backup_binlog_info', 'xtrabackup_binlog_info')


# ---- small helpers ---------------------------------------------------------------------------
def utc_now():
    return datetime.datetime.now(datetime.timezone.utc)


def iso(moment):
    return moment.astimezone(datetime.timezone.utc).strftime('%Y-%m-%dT%H:%M:%S.%fZ') if moment else None


# seconds mariadb-backup / xtrabackup waits for sessions in LOCK TABLES before it starts (--ftwrl-wait-timeout), and
# a logical backup for FLUSH TABLES WITH READ LOCK: DBOPS_BACKUP_LOCK_WAIT_SECONDS overrides (_backup_lock_wait)
BACKUP_LOCK_WAIT = lock_wait.DEFAULT
# seconds a forced logical restore waits for other sessions' locks on the database it replaces
SWAP_LOCK_WAIT = 30


def parse_time(text):
    """ISO 8601 (``Z`` or an offset; naive means UTC) -> aware UTC datetime."""
    if isinstance(text, datetime.datetime):
        moment = text
    else:
        value = str(text).strip()
        if value.endswith('Z') or value.endswith('z'):
            value = value[:-1] + '+00:00'
        try:
            moment = datetime.datetime.fromisoformat(value.replace(' ', 'T', 1) if 'T' not in value else value)
        except ValueError:
            raise DbError('use target time', repr(text), 'expected ISO 8601, for example 2024-05-01T12:30:00Z') from None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=datetime.timezone.utc)
    return moment.astimezone(datetime.timezone.utc)


def binlog_datetime(moment):
    """The --stop-datetime value for mariadb-binlog run with TZ=UTC.

    Binary log events carry whole seconds; mariadb-binlog stops at the first event whose
    time is >= this value. The target is truncated to the second, so no event logged
    after the target is ever replayed (events in the same second before it are not either).
    """
    return moment.astimezone(datetime.timezone.utc).strftime('%Y-%m-%d %H:%M:%S')


def command_line(argv, secrets=()):
    return mask_secrets(' '.join(shlex.quote(str(a)) for a in argv), secrets)


def find_tool(names, bin_dir=None, package=None):
    """The first of ``names`` found in bin_dir, PATH or the usual directories."""
    for name in names:
        if bin_dir:
            candidate = os.path.join(bin_dir, name)
            if os.access(candidate, os.X_OK):
                return candidate
        found = shutil.which(name)
        if found:
            return found
        for directory in SEARCH_DIRS:
            candidate = os.path.join(directory, name)
            if os.access(candidate, os.X_OK):
                return candidate
    raise DbError('find', ' or '.join(names),
                  'the program is not installed%s' % (' (install %s)' % package if package else ''))


def tool(flavor, role, bin_dir=None):
    flavor = 'mysql' if flavor == 'mysql' else 'mariadb'
    return find_tool(TOOLS[flavor][role], bin_dir, PACKAGES[flavor].get(role, 'the %s client programs' % flavor))


def compression_spec(name):
    try:
        return COMPRESSORS[name or 'none']
    except KeyError:
        raise DbError('use compression', repr(name), 'choose zstd, gzip, lz4 or none') from None


def compressor_argv(name, level=None, bin_dir=None):
    """argv that compresses stdin to stdout, or None for ``none``; fails clearly if missing."""
    spec = compression_spec(name)
    if spec['compress'] is None:
        return None
    program = find_tool(spec['tools'], bin_dir, spec['package'])
    argv = [program] + list(spec['compress'])
    if level is not None:
        low, high = spec['levels']
        if not low <= int(level) <= high:
            raise DbError('use compression level', str(level), '%s accepts %d to %d' % (name, low, high))
        argv.append('-%d' % int(level))
    return argv


def _level(compression, level):
    """zstd defaults to level 1 here: dumps and streams are CPU-bound, and on table data -1 is
    markedly faster than the CLI's default -3 for about the same size."""
    if level is None and compression == 'zstd':
        return 1
    return level


def decompressor_argv(name, bin_dir=None):
    spec = compression_spec(name)
    if spec['decompress'] is None:
        return None
    program = find_tool(spec['tools'], bin_dir, spec['package'])
    return [program] + list(spec['decompress'])


def compression_of(filename):
    for name, spec in COMPRESSORS.items():
        if spec['ext'] and filename.endswith(spec['ext']):
            return name
    return 'none'


def safe_filename(name):
    """A file name for a database or table name (names may hold any character but NUL).

    Other names are hex-encoded; a long one (64 characters of 2-4 UTF-8 bytes make up to 512 hex
    digits) is cut to a prefix and a digest of the whole name, so that <database>.<table>.tsv.zst
    stays far below the 255 bytes a file name may have."""
    if re.match(r'^[A-Za-z0-9_$-]{1,64}$', name) and not name.startswith('-'):
        return name
    encoded = name.encode('utf-8').hex()
    if len(encoded) > 80:
        encoded = encoded[:60] + '-' + hashlib.sha256(name.encode('utf-8')).hexdigest()[:20]
    return 'db-' + encoded


def sha256_file(path):
    digest = hashlib.sha256()
    with open(path, 'rb') as f:
        for block in iter(lambda: f.read(CHUNK), b''):
            digest.update(block)
    return digest.hexdigest()


def _option_value(value):
    text = str(value)
    return '"' + text.replace('\\', '\\\\').replace('"', '\\"') + '"'


def _sweep_option_files():
    """Remove option files left by runs that were killed (SIGKILL skips every cleanup)."""
    base = tempfile.gettempdir()
    try:
        names = os.listdir(base)
    except OSError:
        return
    for name in names:
        match = re.match(r'^dbops-cnf-(\d+)-', name)
        if not match:
            continue
        path = os.path.join(base, name)
        try:
            if os.lstat(path).st_uid != os.geteuid():
                continue
            os.kill(int(match.group(1)), 0)
        except ProcessLookupError:
            shutil.rmtree(path, ignore_errors=True)
        except OSError:
            continue


def _sweep_outfile_dirs(base):
    """Remove the table-data directories of runs that were killed (they may hold a whole table)."""
    try:
        names = os.listdir(base)
    except OSError:
        return
    for name in names:
        match = re.match(r'^dbops-tsv-(\d+)-', name)
        if not match:
            continue
        try:
            os.kill(int(match.group(1)), 0)
        except ProcessLookupError:
            path = os.path.join(base, name)
            if os.geteuid() == 0 or os.lstat(path).st_uid == os.geteuid():
                shutil.rmtree(path, ignore_errors=True)
        except OSError:
            continue


@contextlib.contextmanager
def client_option_file(options, groups=('client',)):
    """A 0600 option file in a private directory, removed afterwards. Yields its path."""
    _sweep_option_files()
    tmpdir = tempfile.mkdtemp(prefix='dbops-cnf-%d-' % os.getpid())
    path = os.path.join(tmpdir, 'client.cnf')
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, 'w') as f:
            for group in groups:
                f.write('[%s]\n' % group)
                for key, value in options.items():
                    if value is not None and value != '':
                        f.write('%s=%s\n' % (key, _option_value(value)))
        yield path
    finally:
        shutil.rmtree(tmpdir, ignore_errors=True)


def run_checked(argv, operation, target, secrets=(), **kwargs):
    """Run a program; DbError with its own words (masked) when it fails."""
    try:
        proc = subprocess.run(argv, capture_output=True, check=False, **kwargs)
    except OSError as exc:
        raise DbError(operation, target, 'cannot run %s: %s' % (argv[0], exc)) from None
    if proc.returncode != 0:
        raise DbError(operation, target, mask_secrets(
            _failure_detail(proc.returncode, _tail(proc.stderr) or _tail(proc.stdout)), secrets))
    return proc


def _failure_detail(returncode, detail):
    """What a failed program said; led by the signal when one killed it (its last lines say
    nothing of that), e.g. ``killed by signal 9 (SIGKILL)``."""
    if returncode is not None and returncode < 0:
        number = -returncode
        try:
            killed = 'killed by signal %d (%s)' % (number, signal.Signals(number).name)
        except ValueError:
            killed = 'killed by signal %d' % number
        return '\n'.join(x for x in (killed, detail) if x)
    return detail or 'exit code %s' % returncode


def _tail(data, limit=1500):
    if data is None:
        return ''
    if isinstance(data, bytes):
        data = data.decode('utf-8', 'replace')
    lines = [line for line in data.strip().splitlines() if line.strip()]
    # whole words: a file name such as sys/statements_with_errors_or_warnings.frm is no error
    errors = [line for line in lines if re.search(r'\b(error|fail|fatal|corrupt|cannot|can\'t)', line, re.I)]
    text = '\n'.join((errors or lines)[-8:])
    return text[-limit:]


def _read_file_tail(fh):
    fh.seek(0)
    return _tail(fh.read())


def read_key_values(path):
    """``key = value`` lines (xtrabackup_checkpoints, xtrabackup_info, backup-my.cnf)."""
    values = {}
    with open(path, encoding='utf-8', errors='replace') as f:
        for line in f:
            if '=' in line and not line.lstrip().startswith(('#', '[')):
                key, value = line.split('=', 1)
                values[key.strip()] = value.strip()
    return values


def _first_existing(directory, names):
    for name in names:
        candidate = os.path.join(directory, name)
        if os.path.isfile(candidate):
            return candidate
    return None


def parse_binlog_info(info_values=None, binlog_info_text=None):
    """Binary log coordinates from xtrabackup_info (binlog_pos) or xtrabackup_binlog_info."""
    if info_values and info_values.get('binlog_pos'):
        text = info_values['binlog_pos']
        match = re.search(r"filename '([^']+)', position '?(\d+)'?(?:, GTID of the last change '([^']*)')?", text)
        if match:
            return {'binlog_file': match.group(1), 'binlog_pos': int(match.group(2)),
                    'gtid': match.group(3) or None}
    if binlog_info_text:
        parts = binlog_info_text.split()
        if len(parts) >= 2 and parts[1].isdigit():
            return {'binlog_file': parts[0], 'binlog_pos': int(parts[1]),
                    'gtid': ' '.join(parts[2:]) or None}
    return None


def binlog_number(name):
    match = re.match(r'^(.*)\.(\d+)$', name)
    return (match.group(1), int(match.group(2)), len(match.group(2))) if match else (None, None, None)


def archived_binlogs(log_dir, base):
    """{number: file name} of the archived binary logs of one base name."""
    found = {}
    if not log_dir or not os.path.isdir(log_dir):
        return found
    for name in os.listdir(log_dir):
        prefix, number, _width = binlog_number(name)
        if prefix == base and os.path.isfile(os.path.join(log_dir, name)):
            found[number] = name
    return found


def pruned_binlog(log_dir, base):
    """The number of the newest binary log of ``base`` retention removed from the archive (logs/.pruned.json)."""
    from ansible_collections.dbops.admin.plugins.module_utils._backup_catalog import read_pruned_marker
    prefix, number, _width = binlog_number(read_pruned_marker(log_dir).get('last') or '')
    return number if prefix == base else None


def prunable_logs(log_dir, manifests):
    """Archived binary logs no kept backup can replay from: numbered before the binary log that every
    kept backup (physical or logical) starts in.

    A replay after a restore starts at the restored backup's stop position, never before its start.
    Nothing goes when no physical full backup is kept, when a kept physical backup records no binary
    log position, or when the kept backups name different binary log bases (log_bin renamed).
    """
    firsts = []
    physical_full = False
    for manifest in manifests:
        if manifest.get('type') == 'log':
            continue
        if manifest.get('method') == 'physical' and manifest.get('type') == 'full':
            physical_full = True
        name = (manifest.get('start_position') or {}).get('binlog_file')
        if not name:
            if manifest.get('method') == 'physical':
                return []
            continue    # a logical backup taken with binary logging off replays nothing
        base, number, _width = binlog_number(name)
        if base is None:
            return []
        firsts.append((base, number))
    bases = {base for base, _number in firsts}
    if not physical_full or len(bases) != 1:
        return []
    base = bases.pop()
    cutoff = min(number for _base, number in firsts)
    return sorted(name for number, name in archived_binlogs(log_dir, base).items() if number < cutoff)


def _log_manifests(log_dir):
    """The manifests of the repository holding the binary log archive log_dir."""
    from ansible_collections.dbops.admin.plugins.module_utils._backup_catalog import Repository
    return Repository(os.path.dirname(os.path.abspath(log_dir))).manifests()


def archived_log_problems(log_dir, names):
    """Archived binary logs among ``names`` whose size or sha256 differs from what the log backup
    that archived them recorded (``log_files`` of the log backups in the repository holding
    ``log_dir``); each problem names the file. A file no log backup records is not judged here."""
    if not log_dir or not names:
        return []
    records = {}
    for manifest in _log_manifests(log_dir):
        for entry in manifest.get('log_files') or []:
            if isinstance(entry, dict) and entry.get('path'):
                records.setdefault(os.path.basename(entry['path']), []).append(entry)
    problems = []
    for name in names:
        full = os.path.join(log_dir, name)
        if name not in records or not os.path.isfile(full):
            continue
        size = os.path.getsize(full)
        if not any(int(e.get('size', -1)) == size for e in records[name]):
            problems.append('%s: size %d, the log backup recorded %s' % (name, size, records[name][-1].get('size')))
        elif sha256_file(full) not in {e.get('sha256') for e in records[name]}:
            problems.append('%s: sha256 differs from the log backup record' % name)
    return problems


def binlog_range(log_dir, start_file, end_file=None):
    """The archived binlog names from start_file to end_file (or the newest) and the missing ones."""
    base, first, width = binlog_number(start_file)
    if base is None:
        raise DbError('read binary log name', start_file, 'expected <base>.<number>')
    found = archived_binlogs(log_dir, base)
    last = binlog_number(end_file)[1] if end_file else (max(found) if found else first)
    names, missing = [], []
    for number in range(first, max(last, first) + 1):
        if number in found:
            names.append(found[number])
        else:
            missing.append('%s.%0*d' % (base, width, number))
    return names, missing


# ---- binary log files, read directly (event headers only) -------------------------------------
BINLOG_MAGIC = b'\xfebin'
EVENT_HEADER = struct.Struct('<IBIIIH')  # timestamp, type, server_id, event_length, next_position, flags
FORMAT_DESCRIPTION_EVENT = 15
GTID_EVENT = 162
GTID_LIST_EVENT = 163
START_ENCRYPTION_EVENT = 164


def binlog_events(path, start_pos=4):
    """(position, timestamp, type, gtid) of each event of a closed binary log from start_pos on (the
    format description at position 4 is always read); ``gtid`` is {domain: sequence} for a MariaDB GTID
    event (its own GTID) or GTID list event (the binary log state before it), else None.

    ValueError when the file cannot be read this way: not a binary log, a truncated event, or encrypted
    (encrypt_binlog): a caller then decides as if it knew nothing about the file."""
    with open(path, 'rb') as f:
        if f.read(4) != BINLOG_MAGIC:
            raise ValueError('%s: not a binary log' % path)
        size = os.fstat(f.fileno()).st_size
        pos = 4
        while pos < size:
            f.seek(pos)
            head = f.read(EVENT_HEADER.size)
            if len(head) < EVENT_HEADER.size:
                raise ValueError('%s: truncated event header at %d' % (path, pos))
            when, etype, _server_id, length, _next, _flags = EVENT_HEADER.unpack(head)
            if length < EVENT_HEADER.size or pos + length > size:
                raise ValueError('%s: event at %d runs past the end of the file' % (path, pos))
            if etype == START_ENCRYPTION_EVENT:
                raise ValueError('%s: encrypted binary log' % path)
            gtid = None
            if etype == GTID_EVENT and length >= EVENT_HEADER.size + 12:
                seq, domain = struct.unpack('<QI', f.read(12))
                gtid = {domain: seq}
            elif etype == GTID_LIST_EVENT and length >= EVENT_HEADER.size + 4:
                count = struct.unpack('<I', f.read(4))[0] & 0x0fffffff
                data = f.read(16 * count)
                if len(data) < 16 * count:
                    raise ValueError('%s: short GTID list at %d' % (path, pos))
                gtid = {}
                for index in range(count):
                    domain, _server, seq = struct.unpack_from('<IIQ', data, 16 * index)
                    gtid[domain] = max(gtid.get(domain, 0), seq)
            if pos >= start_pos or etype == FORMAT_DESCRIPTION_EVENT:
                yield pos, when, etype, gtid
            pos += length


def binlog_summary(path, start_pos=4):
    """{last_time, gtid_end} of a closed binary log read from start_pos: the newest event time (a datetime, UTC)
    and {domain: sequence} of the binary log state at its end (its GTID list merged with its GTIDs); None when
    the file cannot be read directly (see binlog_events)."""
    newest = None
    state = {}
    try:
        for _pos, when, _etype, gtid in binlog_events(path, start_pos):
            if when and (newest is None or when > newest):
                newest = when
            for domain, seq in (gtid or {}).items():
                state[domain] = max(state.get(domain, 0), seq)
    except (OSError, ValueError):
        return None
    return {'last_time': datetime.datetime.fromtimestamp(newest, datetime.timezone.utc) if newest else None,
            'gtid_end': state}


def replay_end_file(log_dir, start_file, start_pos, target_time=None, target_gtid=None):
    """The archived binary log a replay from start_file:start_pos to a target time or GTID stops in: the
    first whose events reach the target (mariadb-binlog stops at the first event at or after target_time,
    and after the transaction of the target GTID), so a binary log missing after it is not needed. None
    when that cannot be told before the end of the archive or before a binary log missing from it (the
    replay then needs every one)."""
    base, first, _width = binlog_number(start_file)
    found = archived_binlogs(log_dir, base) if base is not None else {}
    wanted = _gtid_sequences(target_gtid) if target_gtid else {}
    if not found or (target_time is None and not wanted):
        return None
    limit = target_time.replace(microsecond=0) if target_time is not None else None
    for number in range(first, max(found) + 1):
        if number not in found:
            return None
        summary = binlog_summary(os.path.join(log_dir, found[number]), start_pos if number == first else 4)
        if summary is None:
            continue
        if limit is not None and summary['last_time'] is not None and summary['last_time'] >= limit:
            return found[number]
        if wanted and all(seq <= summary['gtid_end'].get(domain, -1) for domain, seq in wanted.items()):
            return found[number]
    return None


# ---- argv builders (pure; unit-tested) ---------------------------------------------------------
def dump_argv(program, option_file, databases, flavor='mariadb', version_num=0, events=True, history=False):
    """mariadb-dump / mysqldump of some databases in one consistent snapshot (stdout).

    ``events=False``: without their events (written by ``events_sql`` instead, see ``events_need_own_dump``).
    ``history``: the databases hold system-versioned tables (see ``history_options``)."""
    argv = [program, '--defaults-file=' + option_file, '--single-transaction', '--quick',
            '--routines', '--triggers', '--events' if events else '--skip-events', '--hex-blob',
            '--default-character-set=utf8mb4', '--max-allowed-packet=' + MAX_PACKET, '--skip-dump-date']
    argv += history_options(flavor, version_num) if history else []
    if flavor == 'mysql':
        # the position is read under our global read lock; a GTID_PURGED line would make the
        # dump unrestorable next to existing data
        argv.append('--set-gtid-purged=OFF')
        if version_num >= 80000:
            argv.append('--column-statistics=0')
    argv += ['--databases'] + list(databases)
    return argv


# a ROW START column holding transaction ids: the table's history is transaction-precise
PRECISE_HISTORY = re.compile(r'\bbigint\b[^,\n]*\bGENERATED\s+ALWAYS\s+AS\s+ROW\s+START\b', re.IGNORECASE)


def history_options(flavor, version_num):
    """Dump options for system-versioned tables: their history rows too (MariaDB 10.11+; without it
    a dump holds the current rows only). A table with transaction-precise history cannot be dumped
    with its history (mariadb-dump refuses it): a dump holding one goes without --dump-history and
    the backup warns that those tables' history is not in it."""
    return ['--dump-history'] if flavor != 'mysql' and version_num >= 101100 else []


def _flavor_dump_options(flavor, version_num):
    if flavor != 'mysql':
        return []
    # the position is read under our global read lock; a GTID_PURGED line would make the
    # dump unrestorable next to existing data
    return ['--set-gtid-purged=OFF'] + (['--column-statistics=0'] if version_num >= 80000 else [])


def table_dump_argv(program, option_file, database, tables, flavor='mariadb', version_num=0, history=False):
    """Some base tables (with their triggers) of one database, in one snapshot (stdout).

    ``--skip-add-locks``: the parts of one database load in parallel; a part's ``LOCK TABLES t WRITE``
    around its rows fails ("Table 'child' was not locked") when another part creates a table with a
    foreign key to t meanwhile."""
    return ([program, '--defaults-file=' + option_file, '--single-transaction', '--quick', '--skip-routines',
             '--skip-events', '--triggers', '--hex-blob', '--default-character-set=utf8mb4', '--skip-add-locks',
             '--max-allowed-packet=' + MAX_PACKET, '--skip-dump-date']
            + _flavor_dump_options(flavor, version_num) + (history_options(flavor, version_num) if history else [])
            + ['--', database] + list(tables))


def objects_dump_argv(program, option_file, database, views, flavor='mariadb', version_num=0, events=True):
    """Views, routines and events of one database (loaded after its tables); ``events=False``: without
    the events (see ``events_need_own_dump``)."""
    argv = [program, '--defaults-file=' + option_file, '--single-transaction', '--no-data', '--skip-triggers',
            '--routines', '--events' if events else '--skip-events', '--default-character-set=utf8mb4',
            '--skip-dump-date']
    if not views:
        argv.append('--no-create-info')
    return argv + _flavor_dump_options(flavor, version_num) + ['--', database] + list(views)


# characters mysql_real_escape_string escapes: mariadb-dump --events selects the database by its
# escaped name (fetch_db_collation), so a database whose name holds one of them and has events
# fails the dump with "Unknown database"
_DUMP_ESCAPED_CHARS = ('\\', "'", '"', '\n', '\r', '\x00', '\x1a')


def events_need_own_dump(database):
    """True when mariadb-dump / mysqldump --events cannot dump the events of this database (its name
    holds a character the client library escapes); ``events_sql`` writes them instead."""
    return any(c in database for c in _DUMP_ESCAPED_CHARS)


def events_sql(rows, quote):
    """SQL recreating events from ``SHOW CREATE EVENT`` rows (dicts), as mariadb-dump writes them: each
    with its own sql_mode, time_zone and client character set, unqualified (created in the database
    the file is loaded into); ends with the line every dump file of a backup ends with."""
    out = ['-- events written by dbops.admin (mariadb-dump --events cannot select this database by name)', '']
    for row in rows:
        create = row['Create Event']
        delimiter = ';;'
        while delimiter in create:
            delimiter += ';'
        out += ['DELIMITER %s' % delimiter,
                'SET @saved_cs_client = @@character_set_client %s' % delimiter,
                'SET @saved_cs_results = @@character_set_results %s' % delimiter,
                'SET @saved_col_connection = @@collation_connection %s' % delimiter,
                'SET @saved_sql_mode = @@sql_mode %s' % delimiter,
                'SET @saved_time_zone = @@time_zone %s' % delimiter,
                'SET character_set_client = %s %s' % (_sql_string(row['character_set_client']), delimiter),
                'SET character_set_results = %s %s' % (_sql_string(row['character_set_client']), delimiter),
                'SET collation_connection = %s %s' % (_sql_string(row['collation_connection']), delimiter),
                'SET sql_mode = %s %s' % (_sql_string(row['sql_mode'] or ''), delimiter),
                'SET time_zone = %s %s' % (_sql_string(row['time_zone'] or 'SYSTEM'), delimiter),
                'DROP EVENT IF EXISTS %s %s' % (quote(row['Event']), delimiter),
                '%s %s' % (create, delimiter),
                'SET time_zone = @saved_time_zone %s' % delimiter,
                'SET sql_mode = @saved_sql_mode %s' % delimiter,
                'SET character_set_client = @saved_cs_client %s' % delimiter,
                'SET character_set_results = @saved_cs_results %s' % delimiter,
                'SET collation_connection = @saved_col_connection %s' % delimiter,
                'DELIMITER ;', '']
    out.append('-- Dump completed')
    return '\n'.join(out) + '\n'


def _write_dump_text(text, compress, path):
    """A small dump file written by the engine itself (compressed like the others), fsynced."""
    data = text.encode('utf-8')
    with open(path, 'wb') as out:
        if compress:
            proc = subprocess.run(compress, input=data, stdout=out, stderr=subprocess.PIPE, check=False)
            if proc.returncode != 0:
                raise DbError('write', os.path.basename(path), _tail(proc.stderr) or 'the compressor failed')
        else:
            out.write(data)
        out.flush()
        os.fsync(out.fileno())


def position_capture_option(flavor, version_num):
    """The dump option that writes the binary log position as a comment (single-process dumps)."""
    if flavor == 'mysql' and version_num >= 80026:
        return '--source-data=2'
    return '--master-data=2'


def binlog_status_sql(flavor, version_num):
    if flavor == 'mysql' and version_num >= 80200:
        return 'SHOW BINARY LOG STATUS'
    return 'SHOW MASTER STATUS'


def gtid_sql(flavor):
    return 'SELECT @@GLOBAL.gtid_executed' if flavor == 'mysql' else 'SELECT @@GLOBAL.gtid_binlog_pos'


def client_argv(program, option_file, database):
    return [program, '--defaults-file=' + option_file, '--database=' + database,
            '--max-allowed-packet=' + MAX_PACKET, '--default-character-set=utf8mb4']


@contextlib.contextmanager
def _explain_backup_lock_wait(engine=None):
    """A physical backup that gave up waiting for the backup lock says why, in DBA words, naming the
    sessions that held it up (read on ``engine``'s session)."""
    try:
        yield
    except DbError as exc:
        if _is_backup_lock_wait(str(exc)):
            seconds = lock_wait.lock_wait_seconds()
            if engine is not None:
                raise lock_wait.lock_wait_error(engine, exc.operation, exc.target, exc.detail, seconds) from None
            raise DbError(exc.operation, exc.target, '%s; another session holds tables in LOCK TABLES (or a long '
                          'statement runs) and did not end within %d seconds: end it (SHOW PROCESSLIST, KILL <id>) '
                          'and run again; nothing was published' % (exc.detail, seconds)) from None
        raise


def _is_backup_lock_wait(text):
    """Does a backup tool's error say it gave up waiting for the backup lock / global read lock?"""
    lowered = text.lower()
    return (('lock wait timeout' in lowered and ('BACKUP STAGE' in text or 'FLUSH TABLES' in text))
            or 'error on backup stage start' in lowered or 'unable to obtain lock' in lowered)


def physical_backup_argv(program, option_file, target_dir, meta_dir, datadir=None, jobs=1,
                         basedir=None, stream=False, flavor='mariadb'):
    """mariadb-backup / xtrabackup --backup; incremental when basedir is given."""
    argv = [program, '--defaults-file=' + option_file, '--backup', '--target-dir=' + target_dir,
            '--extra-lsndir=' + meta_dir, '--parallel=%d' % max(1, int(jobs or 1)),
            # a session in LOCK TABLES would keep BACKUP STAGE START (FTWRL on MySQL) waiting for ever
            '--ftwrl-wait-timeout=%d' % lock_wait.lock_wait_seconds()]
    if datadir:
        argv.append('--datadir=' + datadir)
    if basedir:
        argv.append('--incremental-basedir=' + basedir)
    if stream:
        argv.append('--stream=' + ('xbstream' if flavor == 'mysql' else 'mbstream'))
    return argv


def prepare_argv(program, target_dir, incremental_dir=None, flavor='mariadb', last=True):
    """--prepare of the full copy; with incremental_dir, apply one incremental to it."""
    cnf = os.path.join(target_dir, 'backup-my.cnf')
    argv = [program, '--defaults-file=' + cnf, '--prepare', '--target-dir=' + target_dir]
    if flavor == 'mysql' and not last:
        argv.append('--apply-log-only')  # xtrabackup: keep the redo open for the next incremental
    if incremental_dir:
        argv.append('--incremental-dir=' + incremental_dir)
    return argv


def move_back_argv(program, target_dir, data_dir):
    # the trailing / matters: mariadb-backup appends the backup's innodb_undo_directory (./) to the
    # data directory without a separator, which made an empty "<data_dir>." beside it
    return [program, '--defaults-file=' + os.path.join(target_dir, 'backup-my.cnf'), '--move-back',
            '--target-dir=' + target_dir, '--datadir=' + data_dir.rstrip('/') + '/']


def extract_argv(program, directory):
    return [program, '-x', '-C', directory]


def binlog_replay_argv(program, files, start_pos=None, stop_time=None, stop_position=None,
                       start_gtid=None):
    """mariadb-binlog / mysqlbinlog decoding the files for replay.

    Every event's checksum is verified (a flipped byte fails the decode instead of replaying wrong data);
    --start-position applies to the first file, --stop-position to the last one;
    --stop-datetime is read in the time zone of the process (run it with TZ=UTC).
    """
    argv = [program, '--no-defaults', '--verify-binlog-checksum']
    if start_gtid:
        argv.append('--start-position=%s' % start_gtid)
    elif start_pos is not None:
        argv.append('--start-position=%d' % int(start_pos))
    if stop_time is not None:
        argv.append('--stop-datetime=%s' % binlog_datetime(stop_time))
    if stop_position is not None and mysql_gtid.looks_like(stop_position):
        # MySQL 8: the transactions of a GTID set (those the restored instance holds are skipped by it)
        argv.extend(mysql_gtid.replay_options(stop_position))
    elif stop_position is not None:
        argv.append('--stop-position=%s' % stop_position)
    return argv + list(files)


# ---- tab-separated table data (server-side export, LOAD DATA) ----------------------------------
# SELECT ... INTO OUTFILE / LOAD DATA in one explicit format: bytes as stored (no character set
# conversion), tab between fields, newline after each row, backslash escapes (\t \n \\ \0) and
# \N for NULL. This round-trips every value a mariadb-dump INSERT does for the column types
# the TSV path accepts (see TSV_REFUSED_TYPES).
TSV_FORMAT = r"CHARACTER SET binary FIELDS TERMINATED BY '\t' ESCAPED BY '\\' LINES TERMINATED BY '\n'"
TSV_EXT = '.tsv'
# column types whose text form does not load back as the same value (BIT is written as raw
# bytes and read back as a number; spatial values are written in the internal format)
TSV_REFUSED_TYPES = ('bit', 'geometry', 'point', 'linestring', 'polygon', 'multipoint', 'multilinestring',
                     'multipolygon', 'geometrycollection', 'geomcollection')
# the session of a load: what the header of a mariadb-dump file sets
LOAD_SESSION_SQL = ("SET SESSION foreign_key_checks = 0, unique_checks = 0, "
                    "sql_mode = 'NO_AUTO_VALUE_ON_ZERO', time_zone = '+00:00'")
EXPORT_SESSION_SQL = "SET SESSION time_zone = '+00:00', sql_mode = ''"
# MariaDB: the binary log position a consistent snapshot was taken at (read inside the transaction)
BINLOG_SNAPSHOT_SQL = "SHOW SESSION STATUS LIKE 'Binlog_snapshot_%'"


def split_definer(text):
    """('user', 'host') of a DEFINER as information_schema shows it (user@host; a role has no host)."""
    text = text.decode('utf-8', 'replace') if isinstance(text, bytes) else str(text)
    if '@' not in text:
        return (text, '')
    user, host = text.rsplit('@', 1)
    return (user, host)


def _text(value):
    return value.decode('utf-8', 'replace') if isinstance(value, bytes) else str(value or '')


def account_literal(user, host, quote):
    """'user'@'host' (a role: its name alone) for GRANT ... TO."""
    return '%s@%s' % (quote(user), quote(host)) if host else quote(user)


def account_label(user, host):
    return '%s@%s' % (user, host) if host else user


def grant_database_pattern(name):
    """How mysql.db stores a grant on one database: _ and % escaped (they are wildcards there)."""
    return name.replace('\\', '\\\\').replace('_', '\\_').replace('%', '\\%')


def _find_outside_quotes(text, word, start=0):
    """Index of word in text outside `...` and '...' (or -1)."""
    quote = None
    i = start
    while i < len(text):
        ch = text[i]
        if quote:
            if ch == quote:
                if i + 1 < len(text) and text[i + 1] == quote:
                    i += 1
                else:
                    quote = None
            elif ch == '\\' and quote == "'":
                i += 1
        elif ch in '`\'':
            quote = ch
        elif text.startswith(word, i):
            return i
        i += 1
    return -1


_QUOTED_NAME = r"(?:`(?:[^`]|``)*`|'(?:[^'\\]|\\.|'')*'|[^\s@`']+)"


def _unquote_name(text):
    if text[:1] == '`':
        return text[1:-1].replace('``', '`')
    if text[:1] == "'":
        return text[1:-1].replace("''", "'").replace("\\'", "'")
    return text


def _grantee(text):
    """The account at the start of text and what follows it, stripped: ((user, host), rest) for `u`@`h`,
    ((role, ''), rest) for a role `r`; (None, None) when unreadable."""
    match = re.match(r'(%s)(?:@(%s))?' % (_QUOTED_NAME, _QUOTED_NAME), text)
    if not match:
        return None, None
    account = (_unquote_name(match.group(1)), _unquote_name(match.group(2)) if match.group(2) else '')
    return account, text[match.end():].strip()


# the object kinds a grant may name before its object (ON PROCEDURE `db`.`p`)
_OBJECT_KIND_RE = re.compile(r'\s*(?:(TABLE|PROCEDURE|FUNCTION|PACKAGE BODY|PACKAGE)\s+)?', re.I)
GrantParts = collections.namedtuple('GrantParts', 'privileges kind target target_at grantee rest')


def parse_grant(text):
    """A GRANT line of SHOW GRANTS split at its ON and TO (the first ones outside `...` and '...'); None when
    text does not start with GRANT. -> GrantParts:
      privileges: between GRANT and ON, stripped (a role grant, with no ON: the role, up to TO)
      kind: the object kind as written (TABLE, PROCEDURE, FUNCTION, PACKAGE, PACKAGE BODY), '' when none
      target: the object after ON and the kind, stripped (*.*, `db`.*, `db`.`t`); None with no ON
      target_at: where target starts in text (-1 with no ON)
      grantee: the account after TO, (user, host) or (role, ''); None with no TO or when unreadable
      rest: what follows the grantee, stripped (IDENTIFIED BY ..., WITH GRANT OPTION); None without a grantee
    """
    lead = len(text) - len(text.lstrip())
    if text[lead:lead + 6].upper() != 'GRANT ':
        return None
    on = _find_outside_quotes(text, ' ON ')
    to = _find_outside_quotes(text, ' TO ', on + 1 if on >= 0 else 0)
    end = to if to >= 0 else len(text)
    grantee, rest = _grantee(text[to + 4:].lstrip()) if to >= 0 else (None, None)
    if on < 0:
        return GrantParts(text[lead + 6:end].strip(), '', None, -1, grantee, rest)
    kind = _OBJECT_KIND_RE.match(text, on + 4, max(on + 4, end))
    return GrantParts(text[lead + 6:on].strip(), kind.group(1) or '', text[kind.end():end].strip(), kind.end(),
                      grantee, rest)


def partial_revoke_grantee(text):
    """The account of a MySQL 8 partial revoke line of SHOW GRANTS (``REVOKE INSERT ON `mysql`.* FROM
    `u`@`%``, partial_revokes=ON: a privilege held on *.* taken back on one database), else None."""
    text = text.strip().rstrip(';')
    if text[:7].upper() != 'REVOKE ':
        return None
    on = _find_outside_quotes(text, ' ON ')
    source = _find_outside_quotes(text, ' FROM ', on + 1) if on >= 0 else -1
    if source < 0 or not text[on + 4:source].strip().endswith('.*'):
        return None
    return _grantee(text[source + 6:].lstrip())[0]


def grant_phase(statement, user, host, roles):
    """When a SHOW GRANTS line of account user@host is replayed on a restore: 'now' (global and
    database privileges, MySQL 8 partial revokes, memberships in roles that exist), 'later' (tables,
    columns, routines: after the load) or 'skip' (a line about another account, a role that does not
    exist). ``roles`` holds MariaDB role names and MySQL 8 accounts as (user, host): on MySQL any
    account can be granted as a role (GRANT `r`@`%` TO ...)."""
    text = statement.strip().rstrip(';')
    if text.upper().startswith('SET DEFAULT ROLE'):
        match = re.match(r'SET DEFAULT ROLE\s+(%s)' % _QUOTED_NAME, text, re.I)
        role = _unquote_name(match.group(1)) if match else None
        return 'now' if role is not None and (role.upper() == 'NONE' or role in roles) else 'skip'
    if text[:7].upper() == 'REVOKE ':
        # replayed right after the grant on *.* it restricts (SHOW GRANTS lists it after the grants)
        return 'now' if partial_revoke_grantee(text) == (user, host) else 'skip'
    grant = parse_grant(text)
    if grant is None or grant.grantee != (user, host):
        return 'skip'
    if grant.target is None:
        # GRANT role TO account: only a role that exists (or was just created)
        role = _grantee(grant.privileges)[0]
        return 'now' if role and (role[0] in roles if not role[1] else role in roles) else 'skip'
    return 'now' if grant.target == '*' or grant.target.endswith('.*') else 'later'


def split_role_grant(statement):
    """A MySQL 8 SHOW GRANTS line granting several roles (GRANT `r1`@`%`,`r2`@`%` TO `u`@`%`) as one line
    per role, so that a role missing here leaves out only its own membership; other lines unchanged."""
    text = statement.strip().rstrip(';')
    grant = parse_grant(text)
    if grant is None or grant.target is not None or grant.grantee is None:
        return [statement]
    name = r'`(?:[^`]|``)*`@`(?:[^`]|``)*`'  # MySQL 8 prints a role as `role`@`host`
    if not re.fullmatch(r'%s(?:\s*,\s*%s)+' % (name, name), grant.privileges):
        return [statement]
    names = re.findall(name, grant.privileges)
    to = _find_outside_quotes(text, ' TO ')
    return ["GRANT %s%s" % (role, text[to:]) for role in names]


_DEFAULT_ROLES_RE = re.compile(r' DEFAULT ROLE ((?:%s)@(?:%s)(?:\s*,\s*(?:%s)@(?:%s))*)' % ((_QUOTED_NAME,) * 4))


def split_default_roles(create):
    """(the statement without it, [(role, host)]) for the DEFAULT ROLE clause of a MySQL 8 SHOW CREATE USER
    line: CREATE USER fails when a role it names does not exist yet, and ALTER USER ... DEFAULT ROLE
    when the role is not granted, so a restore sets the default roles after the memberships."""
    match = _DEFAULT_ROLES_RE.search(create)
    if not match or _find_outside_quotes(create, ' DEFAULT ROLE ') != match.start():
        return create, []
    roles = []
    for item in re.finditer(r'(%s)@(%s)' % (_QUOTED_NAME, _QUOTED_NAME), match.group(1)):
        roles.append((_unquote_name(item.group(1)), _unquote_name(item.group(2))))
    return create[:match.start()] + create[match.end():], roles


def grant_for_database(statement, renames, quote_ident):
    """A SHOW GRANTS line with its database renamed as the restore renames it (target_database):
    `src`.* and `src`.`t` become `target`.* and `target`.`t` (a database-level grant names the
    database as a pattern, _ and % escaped). Other lines come back unchanged."""
    text = statement.rstrip()
    grant = parse_grant(text)
    if not renames or grant is None or grant.target is None or grant.grantee is None:
        return statement
    match = re.match(r'(%s)\.(.*)$' % _QUOTED_NAME, grant.target)
    if not match:
        return statement
    name, rest = _unquote_name(match.group(1)), match.group(2)
    if rest == '*':
        found = [t for s, t in renames.items() if name in (s, grant_database_pattern(s))]
        new = quote_ident(grant_database_pattern(found[0])) if found else None
    else:
        new = quote_ident(renames[name]) if name in renames else None
    if new is None:
        return statement
    return text[:grant.target_at] + new + text[grant.target_at + len(match.group(1)):]


def global_admin_grant(statement):
    """Does a SHOW GRANTS line give privileges beyond USAGE on *.* (every database)?"""
    grant = parse_grant(statement.strip())
    if grant is None or grant.target is None or grant.kind:
        return False
    return grant.target.startswith('*.*') and grant.privileges.upper() != 'USAGE'


def account_secrets(statement):
    """The password hashes and authentication strings in a CREATE USER / GRANT statement."""
    quoted = re.findall(r"(?:PASSWORD|USING|AS)\s+'((?:[^'\\]|\\.|'')*)'", statement)
    return [m for m in quoted + re.findall(r'\bAS\s+(0x[0-9A-Fa-f]+)', statement) if m]


def binlog_snapshot(rows):
    """(file, position) from the rows of BINLOG_SNAPSHOT_SQL (dicts or tuples); None when empty."""
    values = {}
    for row in rows or ():
        name, value = (row.get('Variable_name'), row.get('Value')) if isinstance(row, dict) else (row[0], row[1])
        if isinstance(name, bytes):
            name = name.decode('utf-8', 'replace')
        if isinstance(value, bytes):
            value = value.decode('utf-8', 'replace')
        values[str(name).lower()] = value
    name, pos = values.get('binlog_snapshot_file'), values.get('binlog_snapshot_position')
    if not name or pos in (None, ''):
        return None
    return (str(name), int(pos))


def outfile_policy(flavor, secure_file_priv):
    """Where the server may write files for SELECT ... INTO OUTFILE.

    -> ('anywhere', None), ('inside', directory) or ('disabled', None). MariaDB: empty or NULL
    means no restriction. MySQL: NULL disables file export/import, empty means no restriction.
    """
    if secure_file_priv is None:
        return ('disabled', None) if flavor == 'mysql' else ('anywhere', None)
    if isinstance(secure_file_priv, bytes):
        secure_file_priv = secure_file_priv.decode('utf-8', 'replace')
    if secure_file_priv == '':
        return ('anywhere', None)
    if secure_file_priv.upper() == 'NULL':
        return ('disabled', None)
    return ('inside', secure_file_priv)


def is_generated_column(extra):
    """information_schema.COLUMNS.EXTRA of a generated (computed) column; MySQL's
    DEFAULT_GENERATED (an expression default) is a stored column."""
    return bool(re.search(r'\b(VIRTUAL|STORED|PERSISTENT)( GENERATED)?\b', str(extra or '').upper()))


def _sql_string(text):
    return "'" + str(text).replace('\\', '\\\\').replace("'", "''") + "'"


def export_sql(quote, database, table, columns, path):
    """SELECT the columns of one table into a tab-separated file written by the server."""
    return 'SELECT %s FROM %s.%s INTO OUTFILE %s %s' % (
        ', '.join(quote(c) for c in columns), quote(database), quote(table), _sql_string(path), TSV_FORMAT)


def load_sql(quote, table, columns, path, local=True):
    """LOAD DATA of one tab-separated file (LOCAL: read by the client) into a table."""
    return 'LOAD DATA %sINFILE %s INTO TABLE %s %s (%s)' % (
        'LOCAL ' if local else '', _sql_string(path), quote(table), TSV_FORMAT, ', '.join(quote(c) for c in columns))


def schema_dump_argv(program, option_file, database, tables, flavor='mariadb', version_num=0):
    """CREATE TABLE statements (no data, no triggers) of some tables, loaded before their data."""
    return ([program, '--defaults-file=' + option_file, '--single-transaction', '--no-data', '--skip-triggers',
             '--skip-routines', '--skip-events', '--default-character-set=utf8mb4', '--skip-dump-date']
            + _flavor_dump_options(flavor, version_num) + ['--', database] + list(tables))


def triggers_dump_argv(program, option_file, database, tables, flavor='mariadb', version_num=0):
    """The triggers of some tables only (loaded after the data, so loading fires none)."""
    return ([program, '--defaults-file=' + option_file, '--single-transaction', '--no-create-info', '--no-data',
             '--triggers', '--skip-routines', '--skip-events', '--default-character-set=utf8mb4',
             '--skip-dump-date'] + _flavor_dump_options(flavor, version_num) + ['--', database] + list(tables))


def integrity_test_argv(filename, bin_dir=None):
    """The compression tool's own integrity test of a compressed backup file (frame checksums,
    truncation), or None for a plain file."""
    unpack = decompressor_argv(compression_of(filename), bin_dir)
    if unpack is None:
        return None
    return [unpack[0], '-t'] + (['-q'] if compression_of(filename) != 'gzip' else []) + [filename]


def _run_integrity_test(path, bin_dir=None):
    """None when the compressed file reads back completely, else the problem (naming the file)."""
    argv = integrity_test_argv(path, bin_dir)
    if argv is None:
        return None
    proc = subprocess.run(argv, capture_output=True, check=False)
    if proc.returncode != 0:
        return '%s: cannot be decompressed (%s)' % (os.path.basename(path), _tail(proc.stderr or proc.stdout, 300))
    return None


def _copy_range(src_fd, dst_fd, offset, count):
    """Copy count bytes of src_fd from offset into dst_fd (a pipe) in the kernel when it can."""
    while count > 0:
        try:
            sent = os.sendfile(dst_fd, src_fd, offset, min(count, 8 * CHUNK))
        except OSError as exc:
            if exc.errno not in (errno.EINVAL, errno.ENOSYS):
                raise
            data = os.pread(src_fd, min(count, CHUNK), offset)
            view = memoryview(data)
            while view:
                view = view[os.write(dst_fd, view):]
            sent = len(data)
        if sent <= 0:
            raise OSError(errno.EIO, 'the file ended early')
        offset += sent
        count -= sent
    return offset


def _follow_compress(source, compress, out_path, finished, abort, poll=0.005):
    """Compress a file the server is still writing (SELECT ... INTO OUTFILE) into out_path as it
    grows, so compression runs while the server exports instead of after it.

    ``finished`` is set by the export session once its statement has returned (the file is
    complete: the rest up to its end is read), ``abort`` when the export failed. Returns
    (sha256 of what was written to out_path, bytes read from source); out_path is fsynced.
    Without a compressor the bytes are copied (and hashed) as they are.
    """
    fd = None
    while fd is None:
        done = finished.is_set()
        try:
            fd = os.open(source, os.O_RDONLY)
        except FileNotFoundError:
            if abort.is_set():
                raise DbError('export', os.path.basename(out_path), 'the export failed') from None
            if done:
                raise DbError('export', os.path.basename(out_path), 'the server wrote no file') from None
            time.sleep(poll)
    digest = hashlib.sha256()
    err = tempfile.TemporaryFile()
    proc = reader = None
    failure = []
    offset = 0
    try:
        with open(out_path, 'wb') as out:
            if compress:
                proc = subprocess.Popen(compress, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=err)
                with contextlib.suppress(Exception):
                    fcntl.fcntl(proc.stdin.fileno(), fcntl.F_SETPIPE_SZ, CHUNK)

                def drain():
                    try:
                        for block in iter(lambda: proc.stdout.read(CHUNK), b''):
                            digest.update(block)
                            out.write(block)
                    except Exception as exc:  # pylint: disable=broad-except
                        failure.append(exc)
                        with contextlib.suppress(OSError):
                            proc.kill()

                reader = threading.Thread(target=drain, daemon=True)
                reader.start()
            while True:
                if abort.is_set():
                    raise DbError('export', os.path.basename(out_path), 'the export failed')
                done = finished.is_set()  # before the size: a complete file is then read to its end
                size = os.fstat(fd).st_size
                if size > offset:
                    if proc is not None:
                        offset = _copy_range(fd, proc.stdin.fileno(), offset, size - offset)
                    else:
                        while offset < size:
                            block = os.pread(fd, min(CHUNK, size - offset), offset)
                            if not block:
                                raise OSError(errno.EIO, 'the file ended early')
                            digest.update(block)
                            out.write(block)
                            offset += len(block)
                elif done:
                    break
                else:
                    time.sleep(poll)
            if proc is not None:
                proc.stdin.close()
                reader.join()
                if failure:
                    raise failure[0]
                if proc.wait() != 0:
                    raise DbError('compress', os.path.basename(out_path),
                                  _failure_detail(proc.returncode, _read_file_tail(err)))
            out.flush()
            os.fsync(out.fileno())
    except BrokenPipeError:
        if proc is None:
            raise
        proc.wait()
        raise DbError('compress', os.path.basename(out_path),
                      _failure_detail(proc.returncode, _read_file_tail(err))) from None
    finally:
        if proc is not None and proc.poll() is None:
            with contextlib.suppress(OSError):
                proc.kill()
            proc.wait()
        if reader is not None:
            reader.join()
        os.close(fd)
        err.close()
    return digest.hexdigest(), offset


def _fsync_path(path):
    """fsync a file or a directory."""
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


# ---- the dump splitter -------------------------------------------------------------------------
class _Sink:
    """One output file, compressed through a child process or written plainly; append mode."""

    def __init__(self, path, argv):
        self.path = path
        self.fh = open(path, 'ab')
        self.err = tempfile.TemporaryFile()
        self.proc = None
        if argv:
            self.proc = subprocess.Popen(argv, stdin=subprocess.PIPE, stdout=self.fh, stderr=self.err)

    def write(self, data):
        if self.proc is not None:
            self.proc.stdin.write(data)
        else:
            self.fh.write(data)

    def close(self):
        try:
            if self.proc is not None:
                try:
                    self.proc.stdin.close()
                except OSError:
                    pass
                if self.proc.wait() != 0:
                    raise DbError('compress', os.path.basename(self.path), _read_file_tail(self.err))
            self.fh.flush()
            os.fsync(self.fh.fileno())
        finally:
            self.fh.close()
            self.err.close()


class DumpSplitter:
    """Cut one ``mariadb-dump --databases a b`` stream into one file per database.

    The stream header (SET NAMES, time zone, checks) opens every file; the
    ``CREATE DATABASE`` / ``USE`` lines that follow each ``-- Current Database:`` marker are
    dropped so a file restores into any database name. A database seen again (the views
    pass at the end of a dump) is appended to its file (a new compressed frame).
    """

    MARK = b'\n-- Current Database: '

    def __init__(self, files, compress_argv):
        self.files = files              # {database: absolute path}
        self.argv = compress_argv
        self.prefix = b''
        self.buf = b''
        self.current = None
        self.started = set()
        self.seen_marker = threading.Event()
        self.last_file = None
        self.end = b''

    def _emit(self, data):
        if not data:
            return
        if self.current is None:
            self.prefix += data
        else:
            self.current.write(data)

    def _switch(self, name):
        if name not in self.files:
            raise DbError('split the dump', name, 'the dump holds a database that was not asked for')
        if self.current is not None:
            self.current.close()
        self.current = _Sink(self.files[name], self.argv)
        if name not in self.started:
            self.started.add(name)
            self.current.write(self.prefix.lstrip(b'\n') + b'\n')
        self.seen_marker.set()

    @property
    def completed(self):
        return b'-- Dump completed' in self.end

    def feed(self, data):
        self.end = (self.end + data)[-256:]
        self.buf += data
        while True:
            i = self.buf.find(self.MARK)
            if i < 0:
                cut = len(self.buf) - len(self.MARK)
                if cut > 0:
                    self._emit(self.buf[:cut])
                    self.buf = self.buf[cut:]
                return
            j = self.buf.find(b'\nUSE ', i + 1)
            k = self.buf.find(b';\n', j + 1) if j >= 0 else -1
            if j < 0 or k < 0:
                if len(self.buf) - i > 65536:
                    raise DbError('split the dump', None, 'a database header without its USE line')
                self._emit(self.buf[:i])
                self.buf = self.buf[i:]
                return
            self._emit(self.buf[:i + 1])
            # the name from the USE statement: the comment line is cut at a line break in the name
            self._switch(_unquote_ident(self.buf[j + len(b'\nUSE '):k]))
            self.buf = self.buf[k + 2:]

    def close(self):
        self._emit(self.buf)
        self.buf = b''
        if self.current is not None:
            self.last_file = self.current.path
            self.current.close()
            self.current = None


class DumpStream:
    """The whole output of one mariadb-dump into one file (the per-table mode).

    ``seen_marker`` is set once the dump writes its first table: by then it has opened its
    snapshot (the header before it is written before the snapshot).
    """

    MARKS = (b'\n-- Table structure for table ', b'\n-- Dumping data for table ', b'\n-- Dumping routines',
             b'\n-- Dumping events')

    def __init__(self, path, compress_argv):
        self.sink = _Sink(path, compress_argv)
        self.path = path
        self.tail = b''
        self.seen_marker = threading.Event()
        self.last_file = path

    def feed(self, data):
        window = self.tail + data
        if not self.seen_marker.is_set() and any(m in window for m in self.MARKS):
            self.seen_marker.set()
        self.tail = window[-256:]
        self.sink.write(data)

    @property
    def completed(self):
        return b'-- Dump completed' in self.tail

    def close(self):
        self.sink.close()


def _unquote_ident(raw):
    text = raw.decode('utf-8', 'surrogateescape').strip()
    if text.startswith('`') and text.endswith('`') and len(text) >= 2:
        text = text[1:-1].replace('``', '`')
    return text


def _relay(proc, splitter, errors):
    try:
        for block in iter(lambda: proc.stdout.read(CHUNK), b''):
            splitter.feed(block)
        splitter.close()
    except BaseException as exc:  # pylint: disable=broad-except
        errors.append(exc)
        try:
            proc.kill()
        except OSError:
            pass
    finally:
        splitter.seen_marker.set()
        try:
            proc.stdout.close()
        except OSError:
            pass


def _start_relayed(argv, sink, errors, label):
    """Start a dump program whose output a thread relays into sink; returns (proc, err, thread, sink, label)."""
    err = tempfile.TemporaryFile()
    proc = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=err)
    thread = threading.Thread(target=_relay, args=(proc, sink, errors), daemon=True)
    thread.start()
    return proc, err, thread, sink, label


def _wait_for_snapshots(procs, timeout=600):
    """Every relayed dump has opened its snapshot once it writes its first database (or exits)."""
    deadline = time.time() + timeout
    for proc, _err, _thread, sink, _label in procs:
        while not sink.seen_marker.wait(0.05):
            if proc.poll() is not None or time.time() > deadline:
                break


def _kill_running(procs):
    """Kill the relayed dumps still running (after a failure)."""
    for proc, _err, _thread, _sink, _label in procs:
        if proc.poll() is None:
            with contextlib.suppress(OSError):
                proc.kill()


# ---- the engine mixin --------------------------------------------------------------------------
class MysqlBackup:
    """backup methods of the Mysql engine; self is the connected engine."""

    # connection options for the client programs, from the live connection
    def _tool_options(self):
        conn = self.conn
        password = conn.password
        if isinstance(password, bytes):
            # connect() hands PyMySQL the UTF-8 bytes of login_password (a password PyMySQL read from an
            # option file itself is latin-1)
            try:
                password = password.decode('utf-8')
            except UnicodeDecodeError:
                password = password.decode('latin1')
        options = {'user': conn.user if not isinstance(conn.user, bytes) else conn.user.decode('utf-8')}
        if password:
            options['password'] = password
            self.add_secret(password)
        if getattr(conn, 'unix_socket', None):
            options['socket'] = conn.unix_socket
        else:
            options['host'] = conn.host
            options['port'] = conn.port
            options['protocol'] = 'TCP'
        return options

    def _secret_list(self):
        return list(self._secrets)  # noqa - attribute of BaseEngine

    def _binlog_enabled(self):
        return str(self.fetch_value('SELECT @@GLOBAL.log_bin')) in ('1', 'ON')

    def binlog_position(self):
        """{binlog_file, binlog_pos, gtid}, or None when binary logging is off."""
        if not self._binlog_enabled():
            return None
        row = self.fetch_one(binlog_status_sql(self.flavor, self.version_num or 0),
                             operation='read the binary log position')
        if not row:
            return None
        gtid = self.fetch_value(gtid_sql(self.flavor))
        return {'binlog_file': row.get('File'), 'binlog_pos': int(row.get('Position')),
                'gtid': (gtid or '').replace('\n', '') or None}

    def nothing_new_since(self, base_manifest):
        """True when no transaction was written since the backup a log backup builds on (the same
        GTID position): a log backup would archive nothing a restore needs."""
        stop = (base_manifest or {}).get('stop_position') or {}
        current = self.binlog_position() or {}
        if not stop.get('gtid') or not current.get('gtid'):
            return False
        if self.flavor == 'mariadb':
            done, now = _gtid_sequences(stop['gtid']), _gtid_sequences(current['gtid'])
            return bool(done) and done == now
        return re.sub(r'\s+', '', stop['gtid']) == re.sub(r'\s+', '', current['gtid'])

    def backup_methods(self):
        """{'logical': [types], 'physical': [types]} this server and host support."""
        methods = {'logical': [], 'physical': []}
        log_ok = self._binlog_enabled()
        try:
            tool(self.flavor, 'dump')
            methods['logical'] = ['full'] + (['log'] if log_ok else [])
        except DbError:
            pass
        try:
            tool(self.flavor, 'backup')
            methods['physical'] = ['full', 'incremental', 'differential'] + (['log'] if log_ok else [])
        except DbError:
            pass
        return methods

    def unsupported_reason(self, method, btype):
        """Why backup_methods() does not offer this method/type, in DBA words (None: nothing to add)."""
        if btype == 'log' and not self._binlog_enabled():
            return ('binary logging is off on this server (log_bin): set log_bin and server_id and restart it to '
                    'archive binary logs')
        return None

    def backup_create(self, request):
        method = request.get('method') or 'logical'
        btype = request.get('type') or 'full'
        dest = request['dest']
        if not os.path.isdir(dest):
            raise DbError('write a backup into', dest, 'the directory does not exist')
        if btype == 'log':
            return self._backup_binlogs(request)
        if method == 'logical':
            if btype != 'full':
                raise DbError('take a logical %s backup' % btype, None,
                              'mariadb-dump backups are always full; use method physical for %s' % btype)
            result = self._backup_logical(request)
            self._record_accounts(dest, result)
            return result
        if method == 'physical':
            if btype in ('incremental', 'differential') and not request.get('base'):
                raise DbError('take a physical %s backup' % btype, None, 'it needs a base backup')
            return self._backup_physical(request)
        raise DbError('take a backup with method', repr(method), 'MariaDB/MySQL support logical and physical')

    # ---- logical ----------------------------------------------------------------------------
    def user_databases(self):
        rows = self.fetch_all('SELECT SCHEMA_NAME AS name FROM information_schema.SCHEMATA ORDER BY SCHEMA_NAME')
        return [r['name'] for r in rows if r['name'].lower() not in SYSTEM_DATABASES]

    def _database_sizes(self, names):
        rows = self.fetch_all('SELECT TABLE_SCHEMA AS db, COALESCE(SUM(DATA_LENGTH + INDEX_LENGTH), 0) AS size '
                              'FROM information_schema.TABLES GROUP BY TABLE_SCHEMA')
        sizes = {r['db']: int(r['size'] or 0) for r in rows}
        return {n: sizes.get(n, 0) for n in names}

    def _table_sizes(self, database):
        rows = self.fetch_all("SELECT TABLE_NAME AS t, COALESCE(DATA_LENGTH + INDEX_LENGTH, 0) AS size "
                              "FROM information_schema.TABLES WHERE TABLE_SCHEMA = %s AND TABLE_TYPE IN "
                              "('BASE TABLE', 'SYSTEM VERSIONED', 'SEQUENCE')", (database,))
        return {r['t']: int(r['size'] or 0) for r in rows}

    def _versioned(self, databases):
        """({database holding a system-versioned table}, {(database, table) whose history is
        transaction-precise}). Transaction-precise history (ROW START/END columns holding transaction
        ids, BIGINT UNSIGNED) is what mariadb-dump --dump-history refuses."""
        marks = ', '.join(['%s'] * len(databases))
        rows = self.fetch_all("SELECT TABLE_SCHEMA AS db, TABLE_NAME AS t FROM information_schema.TABLES WHERE "
                              "TABLE_SCHEMA IN (%s) AND TABLE_TYPE = 'SYSTEM VERSIONED'" % marks, tuple(databases))
        precise = set()
        for row in rows:
            create = self.fetch_one('SHOW CREATE TABLE %s.%s' % (self.quote_ident(_text(row['db'])),
                                                                 self.quote_ident(_text(row['t']))))
            text = _text(list(create.values())[1]) if create else ''
            if PRECISE_HISTORY.search(text):
                precise.add((_text(row['db']), _text(row['t'])))
        return {_text(r['db']) for r in rows}, precise

    def _has_events(self, database):
        return bool(self.fetch_all('SELECT EVENT_NAME AS n FROM information_schema.EVENTS WHERE EVENT_SCHEMA = %s '
                                   'LIMIT 1', (database,)))

    def _events_text(self, database):
        """The events of one database as SQL (``events_sql``), for a database mariadb-dump --events
        cannot select (``events_need_own_dump``). Read on this engine's connection, before any
        thread writes the file."""
        names = [r['n'] for r in self.fetch_all('SELECT EVENT_NAME AS n FROM information_schema.EVENTS '
                                                'WHERE EVENT_SCHEMA = %s ORDER BY EVENT_NAME', (database,))]
        rows = [self.fetch_one('SHOW CREATE EVENT %s.%s' % (self.quote_ident(database), self.quote_ident(name)))
                for name in names]
        return events_sql([r for r in rows if r], self.quote_ident)

    def _take_global_read_lock(self, conns=()):
        """FLUSH TABLES WITH READ LOCK, waiting at most DBOPS_BACKUP_LOCK_WAIT_SECONDS (default 120) for the
        statements and LOCK TABLES of other sessions; a timeout names those sessions (not the backup's own
        export sessions ``conns``)."""
        seconds = lock_wait.lock_wait_seconds()
        self.execute('SET SESSION lock_wait_timeout = %d' % seconds, operation='prepare the consistent snapshot')
        try:
            self.execute('FLUSH TABLES WITH READ LOCK', operation='take the global read lock for a consistent snapshot')
        except DbError as exc:
            if 'lock wait timeout' in str(exc).lower():
                own = [conn.thread_id() for conn in conns]
                raise lock_wait.lock_wait_error(self, exc.operation, exc.target, exc.detail, seconds, own) from None
            raise

    def _schema_info(self, name):
        # MariaDB has database comments (SCHEMA_COMMENT, 10.5+); MySQL 8 has none
        comment = ', SCHEMA_COMMENT AS comment' if self.flavor == 'mariadb' else ''
        return self.fetch_one('SELECT DEFAULT_CHARACTER_SET_NAME AS charset, DEFAULT_COLLATION_NAME AS collation%s '
                              'FROM information_schema.SCHEMATA WHERE SCHEMA_NAME = %%s' % comment, (name,))

    # ---- accounts the objects need (roles option of db_restore) ------------------------------
    def _accounts_of(self, database):
        """-> (sorted [(user, host)] the database's objects run as or are granted to, problem or None)."""
        accounts, problems = set(), []
        try:
            for row in self.fetch_all(DEFINERS_SQL, (database,) * 4):
                if row.get('d'):
                    accounts.add(split_definer(row['d']))
        except DbError as exc:
            problems.append('definers: %s' % exc)
        for table in PRIVILEGE_TABLES:
            try:
                rows = self.fetch_all('SELECT User AS u, Host AS h FROM mysql.%s WHERE Db = %%s OR Db = %%s' % table,
                                      (database, grant_database_pattern(database)))
            except DbError as exc:
                problems.append('mysql.%s: %s' % (table, exc))
                continue
            for row in rows:
                accounts.add((_text(row['u']), _text(row['h'])))
        accounts.discard(('', ''))
        return sorted(a for a in accounts if a[0]), '; '.join(problems) or None

    def _account_definition(self, user, host):
        """{user, host, role, create, grants} as SHOW CREATE USER / SHOW GRANTS print them."""
        role = False
        if self.flavor == 'mariadb' and host == '':
            role = str(self.fetch_value("SELECT is_role FROM mysql.user WHERE User = %s AND Host = ''",
                                        (user,)) or '').upper() == 'Y'
        members = []
        if role:
            create = 'CREATE ROLE %s' % self.quote_ident(user)
            grants = self.fetch_all('SHOW GRANTS FOR %s' % self.quote_ident(user))
            # who holds the role (SHOW GRANTS of a role does not say): granted again where they exist
            members = [[_text(m['u']), _text(m['h']), str(m['a'] or '').upper() == 'Y'] for m in self.fetch_all(
                'SELECT User AS u, Host AS h, Admin_option AS a FROM mysql.roles_mapping WHERE Role = %s', (user,))]
        else:
            if self.flavor == 'mysql':
                # MySQL 8: caching_sha2 hashes are binary; printed as 0x... they survive JSON and replay
                with contextlib.suppress(DbError):
                    self.execute('SET SESSION print_identified_with_as_hex = ON')
            create = next(iter(self.fetch_one('SHOW CREATE USER %s@%s', (user, host)).values()))
            grants = self.fetch_all('SHOW GRANTS FOR %s@%s', (user, host))
        text = [next(iter(g.values())) for g in grants]
        return {'user': user, 'host': host, 'role': role, 'members': members,
                'create': create.decode('utf-8', 'surrogateescape') if isinstance(create, bytes) else create,
                'grants': [g.decode('utf-8', 'surrogateescape') if isinstance(g, bytes) else g for g in text]}

    def _record_accounts(self, dest, result):
        """Each dump lists the accounts its objects need; their definitions go to ACCOUNTS_FILE
        (password hashes: inside the backup, encrypted with it). An account this login may not
        read is listed without a definition (roles=create then names it)."""
        details = result.setdefault('details', {})
        definitions, problems = {}, []
        for dump in details.get('dumps') or []:
            accounts, problem = self._accounts_of(dump['database'])
            dump['accounts'] = [list(a) for a in accounts]
            if problem:
                problems.append('%s: %s' % (dump['database'], problem))
            for user, host in accounts:
                if (user, host) in definitions:
                    continue
                try:
                    definitions[(user, host)] = self._account_definition(user, host)
                except (DbError, StopIteration, AttributeError) as exc:
                    problems.append('%s: %s' % (account_label(user, host), exc))
        if definitions:
            _write_json(os.path.join(dest, ACCOUNTS_FILE), {'accounts': list(definitions.values())})
            _fsync_path(dest)
            details['accounts_file'] = ACCOUNTS_FILE
        if problems:
            details['accounts_unreadable'] = self.mask('; '.join(problems))[:2000]

    def _existing_accounts(self, accounts):
        """The (user, host) of ``accounts`` that exist here; None when this login cannot tell."""
        found = set()
        try:
            for user, host in accounts:
                if self.fetch_value('SELECT COUNT(*) FROM mysql.user WHERE User = %s AND Host = %s', (user, host)):
                    found.add((user, host))
        except DbError:
            return None
        return found

    def roles_to_create(self, dumps, mode=None):
        """The accounts a restore of these dumps would create (roles=create, as user@host); fails
        when some are missing and mode is require (the default). Changes nothing."""
        mode = mode or 'require'
        if mode not in ROLE_MODES:
            raise DbError('restore with roles', repr(mode), 'choose one of %s' % ', '.join(ROLE_MODES))
        if mode == 'skip':
            return []
        needed = sorted(set(tuple(a) for dump in dumps for a in dump.get('accounts') or []))
        found = self._existing_accounts(needed) if needed else set()
        if found is None:
            return []  # mysql.user is not readable by this login: the restore goes on as before
        missing = [account_label(*a) for a in needed if a not in found]
        if missing and mode == 'require':
            raise DbError('restore database', ', '.join(d['database'] for d in dumps),
                          'objects in the backup run as or are granted to accounts that do not exist here: %s. '
                          'Create them first, or set roles=create (created as they were when the backup was taken) '
                          'or roles=skip (restored with the definers as recorded)' % ', '.join(missing))
        return missing

    def restore_accounts(self, dumps, request, path, commands, renames=None):
        """roles=create: the missing accounts, as recorded: roles first, then users, then their
        global and database grants and role memberships (with roles that exist). Grants on tables,
        columns and routines wait for the load (finish_accounts). A grant on a database restored
        under another name (renames: {source: target}) is given on the target. On a failure the
        accounts created here are dropped again (drop_accounts). -> {'labels': [user@host],
        'created': [...], 'later': [(label, statement)]}."""
        missing = self.roles_to_create(dumps, request.get('roles'))
        state = {'labels': missing, 'created': [], 'later': []}
        if not missing:
            return state
        source = os.path.join(path, ACCOUNTS_FILE)
        recorded = {}
        if os.path.isfile(source):
            with open(source, encoding='utf-8', errors='surrogateescape') as f:
                recorded = {account_label(a['user'], a['host']): a for a in json.load(f).get('accounts') or []}
        undefined = [m for m in missing if m not in recorded]
        if undefined:
            raise DbError('create accounts', ', '.join(undefined), 'the backup holds no definition of them (the login '
                          'that took it could not read them): create them first or restore with roles=skip')
        chosen = sorted((recorded[m] for m in missing), key=lambda a: not a['role'])
        for account in chosen:
            for stmt in [account['create']] + account['grants']:
                for secret in account_secrets(stmt):
                    self.add_secret(secret)
        granted = {}
        try:
            for account in chosen:
                label = account_label(account['user'], account['host'])
                self.execute(split_default_roles(account['create'])[0] if self.flavor != 'mariadb'
                             else account['create'], operation='create account %s' % label)
                state['created'].append(account)
            roles = self._existing_roles() | set(a['user'] for a in chosen if a['role'])
            if self.flavor != 'mariadb':
                roles |= set((a['user'], a['host']) for a in chosen)
            for account in chosen:
                label = account_label(account['user'], account['host'])
                lines = account['grants'] if self.flavor == 'mariadb' else \
                    [one for line in account['grants'] for one in split_role_grant(line)]
                for grant in lines:
                    grant = grant_for_database(grant, renames, self.quote_ident)
                    when = grant_phase(grant, account['user'], account['host'], roles)
                    if when == 'now':
                        self.execute(grant, operation='grant to %s' % label)
                        parsed = parse_grant(grant.strip())
                        if parsed is not None and parsed.target is None:
                            granted.setdefault(label, set()).add(_grantee(parsed.privileges)[0])
                    elif when == 'later':
                        state['later'].append((label, grant))
            for account in chosen if self.flavor != 'mariadb' else ():
                # MySQL 8: the DEFAULT ROLE clause of SHOW CREATE USER, now that its roles are granted
                label = account_label(account['user'], account['host'])
                defaults = [r for r in split_default_roles(account['create'])[1] if r in granted.get(label, ())]
                if defaults:
                    self.execute('ALTER USER %s DEFAULT ROLE %s' % (
                        account_literal(account['user'], account['host'], self.quote_literal),
                        ', '.join(account_literal(r, h, self.quote_literal) for r, h in defaults)),
                        operation='set the default roles of %s' % label)
            for account in chosen:
                members = [m for m in account.get('members') or [] if m[0]]
                present = self._existing_accounts([(m[0], m[1]) for m in members]) or set()
                for user, host, admin in members:
                    if (user, host) in present:
                        self.execute('GRANT %s TO %s%s' % (
                            self.quote_ident(account['user']),
                            account_literal(user, host, self.quote_literal), ' WITH ADMIN OPTION' if admin else ''),
                            operation='grant role %s' % account['user'])
        except DbError:
            self.drop_accounts(state)
            raise
        commands.append('created accounts %s from %s' % (', '.join(missing), ACCOUNTS_FILE))
        mighty = [account_label(a['user'], a['host']) for a in chosen if any(global_admin_grant(g) for g in a['grants'])]
        if mighty:
            state['warnings'] = ['accounts %s were created as recorded with privileges on *.* (every database of this '
                                 'server): check that they should hold them here' % ', '.join(mighty)]
        return state

    def finish_accounts(self, state, warnings):
        """The grants on tables, columns and routines of the created accounts, now that the objects
        exist; one that cannot be given (an object of another database) is a warning."""
        for label, grant in state.get('later') or []:
            try:
                self.execute(grant, operation='grant to %s' % label)
            except DbError as exc:
                warnings.append('account %s: %s (left out)' % (label, exc))

    def drop_accounts(self, state):
        for account in reversed(state.get('created') or []):
            with contextlib.suppress(DbError):
                if account['role']:
                    self.execute('DROP ROLE %s' % self.quote_ident(account['user']))
                else:
                    self.execute('DROP USER %s' % account_literal(account['user'], account['host'], self.quote_literal))
        state['created'] = []

    def _existing_roles(self):
        """MariaDB: the role names; MySQL 8: every account, as (user, host) (any account can be granted)."""
        try:
            if self.flavor != 'mariadb':
                return set((_text(r['u']), _text(r['h'])) for r in self.fetch_all(
                    'SELECT User AS u, Host AS h FROM mysql.user'))
            return set(_text(r['u']) for r in self.fetch_all("SELECT User AS u FROM mysql.user WHERE is_role = 'Y'"))
        except DbError:
            return set()

    def parallel_slots(self):
        """How many parallel jobs the server's free connections allow (one session per dump, load or
        mariadb-backup thread, and one to spare beside this session). None when unknown."""
        try:
            free = self.fetch_value('SELECT @@GLOBAL.max_connections - (SELECT COUNT(*) FROM information_schema.PROCESSLIST)',
                                    operation='read the free connections')
        except DbError:
            return None
        return None if free is None else max(int(free) - 2, 1)

    def check_backup_databases(self, wanted):
        """The user databases a logical backup can dump; DbError naming those of ``wanted`` that
        are not among them."""
        existing = self.user_databases()
        missing = [d for d in wanted or [] if d not in existing]
        if missing:
            raise DbError('back up', ', '.join(missing), 'no such database (this server has %s)'
                          % (', '.join(existing) or 'no user database'))
        return existing

    def _backup_logical(self, request):
        dest = request['dest']
        bin_dir = request.get('bin_dir')
        compression = request.get('compression') or 'none'
        compress = compressor_argv(compression, _level(compression, request.get('compression_level')), bin_dir)
        ext = compression_spec(compression)['ext']
        program = tool(self.flavor, 'dump', bin_dir)
        wanted = request.get('databases')
        existing = self.check_backup_databases(wanted)
        if wanted:
            databases = list(dict.fromkeys(wanted))
        else:
            databases = existing
        if not databases:
            raise DbError('take a logical backup', None, 'there is no user database to back up')
        jobs = max(1, int(request.get('jobs') or 1))
        # table data through tab-separated files written by the server when it can (much less
        # CPU than mariadb-dump formatting INSERTs, and LOAD DATA on restore); else mariadb-dump
        tables, tsv_unavailable = self._tsv_tables(databases)
        if tables is not None:
            largest = sorted((t[2] for name in databases for t in tables[name]), reverse=True)[:jobs]
            # each session holds up to three text files (exporting, waiting, being compressed)
            tmpdir, tsv_unavailable = self._outfile_dir(3 * sum(largest) + 64 * 1024 * 1024)
            if tmpdir:
                return self._backup_logical_tsv(request, databases, tables, tmpdir, program)
        sizes = self._database_sizes(databases)
        entries, files, stems = [], {}, {}
        used = set()
        for name in databases:
            fname = safe_filename(name)
            while fname in used:
                fname += '_'
            used.add(fname)
            stems[name] = fname
            info = self._schema_info(name) or {}
            entry = {'name': name, 'file': fname + '.sql' + ext, 'files': [fname + '.sql' + ext], 'post': [],
                     'charset': info.get('charset'), 'collation': info.get('collation'), 'comment': info.get('comment'),
                     'size_estimate': sizes[name]}
            entries.append(entry)
            files[name] = os.path.join(dest, entry['file'])
        # events mariadb-dump cannot select the database of: written by the engine into one more file
        own_events = {name for name in databases if events_need_own_dump(name) and self._has_events(name)}
        # system-versioned tables: dumped with their history rows (mariadb-dump --dump-history), except
        # by a dump holding a table with transaction-precise history, which mariadb-dump cannot dump
        versioned, precise = self._versioned(databases)
        warnings = []
        if precise:
            warnings.append('%s: transaction-precise system-versioned history cannot be dumped (mariadb-dump '
                            '--dump-history refuses it), so this logical backup holds the current rows of %s and '
                            'no history of the system-versioned tables dumped with %s; a physical backup keeps '
                            'it' % (', '.join('%s.%s' % t for t in sorted(precise)),
                                    'that table' if len(precise) == 1 else 'those tables',
                                    'it' if len(precise) == 1 else 'them'))
        # units: (argv builder, stream, label). Fewer databases than jobs: the tables of each
        # database are shared out over several dumps (one file each), views/routines/events
        # follow in one more file loaded last. Otherwise whole databases per dump.
        split = len(databases) < jobs
        units = []
        if split:
            tables = {name: self._table_sizes(name) for name in databases}
            shares = {name: 1 for name in databases}
            for _ in range(jobs - len(databases)):
                candidates = [n for n in databases if len(tables[n]) > shares[n]]
                if not candidates:
                    break
                best = max(candidates, key=lambda n: sizes[n] / shares[n])
                shares[best] += 1
            for entry in entries:
                name = entry['name']
                bins = [[] for _ in range(shares[name])]
                loads = [0] * shares[name]
                for table, size in sorted(tables[name].items(), key=lambda kv: -kv[1]):
                    slot = loads.index(min(loads))
                    bins[slot].append(table)
                    loads[slot] += size + 1
                entry['files'] = []
                for number, part in enumerate([b for b in bins if b], start=1):
                    fname = '%s.part%02d.sql%s' % (stems[name], number, ext)
                    entry['files'].append(fname)
                    units.append(('tables', name, part, os.path.join(dest, fname)))
                entry['post'] = ['%s.objects.sql%s' % (stems[name], ext)]
                entry['file'] = (entry['files'] or entry['post'])[0]
        else:
            groups = [[] for _ in range(min(jobs, len(databases)))]
            loads = [0] * len(groups)
            for name in sorted(databases, key=lambda n: -sizes[n]):
                slot = loads.index(min(loads))
                groups[slot].append(name)
                loads[slot] += sizes[name] + 1
            # a dump holding transaction-precise history goes without --dump-history: the databases of
            # such tables get a dump of their own, so the other versioned tables keep their history
            held = {db for db, _t in precise}
            groups = [part for group in groups for part in (
                ([n for n in group if n not in held], [n for n in group if n in held])
                if held & set(group) and (versioned - held) & set(group) else (group,))]
            units = [('databases', None, g, None) for g in groups if g]
            for group in groups:
                if own_events & set(group):
                    # one dump for the group runs --skip-events: the engine writes the events of all of them
                    own_events |= {name for name in group if self._has_events(name)}
        for entry in entries:
            if entry['name'] in own_events:
                entry['post'].append('%s.events.sql%s' % (stems[entry['name']], ext))
        start = utc_now()
        commands = []
        errors = []
        procs = []
        with client_option_file(self._tool_options(), groups=('client', 'mysqldump', 'mariadb-dump')) as cnf:
            locked = False
            try:
                self._take_global_read_lock()
                locked = True
                position = self.binlog_position()
                # our own snapshot at the same instant: the row counts the restore drill compares
                self.execute('START TRANSACTION WITH CONSISTENT SNAPSHOT', operation='open a consistent snapshot')
                for kind, name, group, path in units:
                    if kind == 'databases':
                        argv = dump_argv(program, cnf, group, self.flavor, self.version_num or 0,
                                         events=not own_events & set(group),
                                         history=bool(versioned & set(group))
                                         and not any(db in group for db, _t in precise))
                        splitter = DumpSplitter({n: files[n] for n in group}, compress)
                        label = group
                    else:
                        argv = table_dump_argv(program, cnf, name, group, self.flavor, self.version_num or 0,
                                               history=name in versioned
                                               and not any((name, t) in precise for t in group))
                        splitter = DumpStream(path, compress)
                        label = ['%s (%d tables)' % (name, len(group))]
                    commands.append(command_line(argv, self._secret_list()) + (
                        ' | ' + command_line(compress) if compress else ''))
                    procs.append(_start_relayed(argv, splitter, errors, label))
                _wait_for_snapshots(procs)
            except BaseException:
                _kill_running(procs)
                raise
            finally:
                if locked:
                    self.execute('UNLOCK TABLES', operation='release the global read lock')
            try:
                snapshot_rows = {name: self._count_rows(name) for name in databases}
            finally:
                self.execute('COMMIT', operation='close the consistent snapshot')
            failures = []
            stream_ends = []
            completed = {}
            for proc, err, thread, splitter, group in procs:
                rc = proc.wait()
                thread.join()
                if rc != 0:
                    failures.append('%s: %s' % (', '.join(group), self.mask(_read_file_tail(err))))
                elif splitter.last_file:
                    stream_ends.append(os.path.basename(splitter.last_file))
                    completed[os.path.basename(splitter.last_file)] = splitter.completed
                err.close()
            if split and not failures and not errors:
                # views, routines and events: metadata, loaded after every table file
                for entry in entries:
                    views = [r['t'] for r in self.fetch_all(
                        "SELECT TABLE_NAME AS t FROM information_schema.TABLES WHERE TABLE_SCHEMA = %s "
                        "AND TABLE_TYPE = 'VIEW' ORDER BY TABLE_NAME", (entry['name'],))]
                    argv = objects_dump_argv(program, cnf, entry['name'], views, self.flavor, self.version_num or 0,
                                             events=entry['name'] not in own_events)
                    commands.append(command_line(argv, self._secret_list()) + (
                        ' | ' + command_line(compress) if compress else ''))
                    path = os.path.join(dest, entry['post'][0])
                    try:
                        _pipe_out(argv, compress, path, 'dump views, routines and events of', entry['name'],
                                  self._secret_list())
                    except DbError as exc:
                        failures.append(self.mask(str(exc)))
                    stream_ends.append(entry['post'][0])
                    completed[entry['post'][0]] = True  # mariadb-dump exited 0 (checked by _pipe_out)
            if not failures and not errors:
                for entry in entries:
                    if entry['name'] in own_events:
                        fname = entry['post'][-1]
                        commands.append('SHOW CREATE EVENT of every event of %s > %s' % (
                            self.quote_ident(entry['name']), shlex.quote(os.path.join(dest, fname))))
                        try:
                            _write_dump_text(self._events_text(entry['name']), compress, os.path.join(dest, fname))
                        except DbError as exc:
                            failures.append(self.mask(str(exc)))
                        stream_ends.append(fname)
                        completed[fname] = True
        if errors:
            failures.extend(self.mask(str(e)) for e in errors)
        if failures:
            raise DbError('dump', ', '.join(databases), '; '.join(failures))
        for entry in entries:
            for fname in entry['files'] + entry['post']:
                if not os.path.exists(os.path.join(dest, fname)):
                    raise DbError('dump', entry['name'], 'the dump wrote nothing into %s' % fname)
        for entry in entries:
            entry['tables'] = snapshot_rows.get(entry['name'], [])
        index = {'format': 1, 'flavor': self.flavor, 'server_version': self.version_string if hasattr(
            self, 'version_string') else self.version, 'tool': os.path.basename(program),
            'compression': compression, 'position': position, 'databases': entries,
            'stream_ends': stream_ends, 'completed': completed}
        _write_json(os.path.join(dest, INDEX_FILE), index)
        _fsync_path(dest)
        stop = utc_now()
        return {'start_position': position or {}, 'stop_position': position or {},
                'start_time': iso(start), 'stop_time': iso(stop), 'databases': databases,
                'server_version': getattr(self, 'version_string', self.version), 'commands': commands,
                'synced': True,
                'details': {'flavor': self.flavor, 'layout': 'dump-per-database', 'index': INDEX_FILE,
                            'dumps': [{'database': e['name'], 'file': e['file'], 'files': e['files'],
                                       'post': e['post'], 'tables': e['tables']} for e in entries],
                            'files': {e['name']: e['file'] for e in entries}, 'compression': compression,
                            'processes': len(units), 'split_tables': split, 'consistent_snapshot': True,
                            'table_data': 'sql', 'tsv_unavailable': tsv_unavailable},
                'warnings': warnings}

    # ---- logical, tab-separated table data ----------------------------------------------------
    def _side_connection(self, local_infile=False):
        """Another connection with the same login (one per export or load thread); local_infile:
        it may send files for LOAD DATA LOCAL INFILE."""
        import pymysql  # the engine's driver
        conn = self.conn
        kwargs = {'user': conn.user, 'password': conn.password, 'autocommit': True, 'charset': 'utf8mb4',
                  'connect_timeout': 10}
        if local_infile:
            kwargs['local_infile'] = True
        if getattr(conn, 'unix_socket', None):
            kwargs['unix_socket'] = conn.unix_socket
        else:
            kwargs['host'] = conn.host
            kwargs['port'] = conn.port
        if isinstance(getattr(conn, '_sock', None), ssl.SSLSocket) and getattr(conn, 'ctx', None) is not None:
            kwargs['ssl'] = conn.ctx  # the engine's connection uses TLS: so does this one
        try:
            return pymysql.connect(**kwargs)
        except pymysql.Error as exc:
            raise DbError('open another connection to', describe(self), self.mask(str(exc))) from None

    def _outfile_dir(self, need_bytes=0):
        """(path, None): a private directory this server writes files into (SELECT ... INTO OUTFILE)
        and this host reads; or (None, reason) when that is not possible here.

        The server must run on this host, may write files (FILE privilege, secure_file_priv) and
        the directory must hold ``need_bytes``. It is owned by the server's OS user (the owner
        of its data directory), mode 0700; a probe file with a random token proves the round trip.
        """
        try:
            policy, inside = outfile_policy(self.flavor, self.fetch_value('SELECT @@GLOBAL.secure_file_priv'))
            datadir = self.fetch_value('SELECT @@GLOBAL.datadir')
        except DbError as exc:
            return None, str(exc)
        if policy == 'disabled':
            return None, 'secure_file_priv disables file export and import on the server'
        try:
            owner = os.stat(datadir).st_uid
        except (OSError, TypeError, ValueError):
            return None, 'the server data directory %s is not on this host' % datadir
        if os.geteuid() not in (0, owner):
            return None, 'the server runs as another OS user and this run is not root'
        base = inside or tempfile.gettempdir()
        try:
            stats = os.statvfs(base)
        except OSError as exc:
            return None, 'cannot use %s: %s' % (base, exc.strerror)
        free = stats.f_bavail * stats.f_frsize
        if free < need_bytes:
            return None, ('%s has %d MB free, the table data needs about %d MB'
                          % (base, free // 1000000, need_bytes // 1000000))
        _sweep_outfile_dirs(base)
        try:
            path = tempfile.mkdtemp(prefix='dbops-tsv-%d-' % os.getpid(), dir=base)
        except OSError as exc:
            return None, 'cannot create a directory in %s: %s' % (base, exc.strerror)
        try:
            if os.geteuid() != owner:
                os.chown(path, owner, -1)
            os.chmod(path, 0o700)
            token = os.urandom(16).hex()
            probe = os.path.join(path, 'probe.txt')
            conn = self._side_connection()
            try:
                with conn.cursor() as cur:
                    cur.execute('SELECT %s INTO OUTFILE %s' % (_sql_string(token), _sql_string(probe)))
            finally:
                conn.close()
            with open(probe) as f:
                seen = f.read().strip()
            os.unlink(probe)
            if seen != token:
                raise OSError('the probe file holds something else')
        except Exception as exc:  # pylint: disable=broad-except
            shutil.rmtree(path, ignore_errors=True)
            return None, 'the server cannot write a file this host reads (%s)' % self.mask(str(exc))
        return path, None

    def _tsv_tables(self, databases):
        """({database: [(table, [columns], size, transactional)]}, None), or (None, reason) when some
        table cannot go through tab-separated files (then mariadb-dump does the whole backup)."""
        marks = ', '.join(['%s'] * len(databases))
        tables = {name: [] for name in databases}
        kinds = {}
        for row in self.fetch_all('SELECT TABLE_SCHEMA AS db, TABLE_NAME AS t, TABLE_TYPE AS type, ENGINE AS engine, '
                                  'COALESCE(DATA_LENGTH, 0) + COALESCE(INDEX_LENGTH, 0) AS size '
                                  'FROM information_schema.TABLES WHERE TABLE_SCHEMA IN (%s)' % marks,
                                  tuple(databases)):
            if row['type'] == 'VIEW' or row['db'] not in tables:
                continue
            if row['type'] != 'BASE TABLE':
                return None, '%s.%s is a %s' % (row['db'], row['t'], str(row['type']).lower())
            kinds[(row['db'], row['t'])] = (int(row['size'] or 0), str(row['engine'] or '').lower() == 'innodb')
        columns = {}
        for row in self.fetch_all('SELECT TABLE_SCHEMA AS db, TABLE_NAME AS t, COLUMN_NAME AS c, DATA_TYPE AS type, '
                                  'EXTRA AS extra FROM information_schema.COLUMNS WHERE TABLE_SCHEMA IN (%s) '
                                  'ORDER BY TABLE_SCHEMA, TABLE_NAME, ORDINAL_POSITION' % marks, tuple(databases)):
            key = (row['db'], row['t'])
            if key not in kinds:
                continue
            if str(row['type']).lower() in TSV_REFUSED_TYPES:
                return None, '%s.%s has a %s column' % (row['db'], row['t'], str(row['type']).lower())
            if is_generated_column(row['extra']):
                continue  # computed by the server on load
            columns.setdefault(key, []).append(row['c'])
        for (db, table), (size, transactional) in sorted(kinds.items()):
            if not columns.get((db, table)):
                return None, '%s.%s has no stored column' % (db, table)
            tables[db].append((table, columns[(db, table)], size, transactional))
        return tables, None

    def _backup_logical_tsv(self, request, databases, tables, tmpdir, program):
        """Table data exported by the server (SELECT ... INTO OUTFILE, one consistent snapshot per
        export session opened under the global read lock), compressed into the backup; schema,
        triggers, views, routines and events by mariadb-dump. See the module docstring."""
        dest = request['dest']
        compression = request.get('compression') or 'none'
        compress = compressor_argv(compression, _level(compression, request.get('compression_level')),
                                   request.get('bin_dir'))
        ext = compression_spec(compression)['ext']
        jobs = max(1, int(request.get('jobs') or 1))
        entries, work, used = [], [], set()
        for name in databases:
            stem = safe_filename(name)
            while stem in used:
                stem += '_'
            used.add(stem)
            info = self._schema_info(name) or {}
            entry = {'name': name, 'charset': info.get('charset'), 'collation': info.get('collation'),
                     'comment': info.get('comment'),
                     'size_estimate': sum(t[2] for t in tables[name]), 'pre': [], 'files': [], 'post': [],
                     'data': {}, 'stem': stem}
            if tables[name]:
                entry['pre'] = ['%s.schema.sql%s' % (stem, ext)]
            table_stems = set()
            for table, columns, size, transactional in tables[name]:
                table_stem = safe_filename(table)
                while table_stem in table_stems:
                    table_stem += '_'
                table_stems.add(table_stem)
                fname = '%s.%s%s%s' % (stem, table_stem, TSV_EXT, ext)
                entry['files'].append(fname)
                entry['data'][fname] = {'table': table, 'columns': columns}
                work.append({'size': size, 'database': name, 'table': table, 'columns': columns, 'file': fname,
                             'transactional': transactional, 'tmp': os.path.join(tmpdir, '%d.tsv' % len(work))})
            entry['post'] = (['%s.triggers.sql%s' % (stem, ext)] if tables[name] else []) + [
                '%s.objects.sql%s' % (stem, ext)]
            # events mariadb-dump cannot select the database of: written by the engine
            entry['own_events'] = self._events_text(name) if events_need_own_dump(name) and self._has_events(name) \
                else None
            if entry['own_events']:
                entry['post'].append('%s.events.sql%s' % (stem, ext))
            entry['file'] = (entry['pre'] + entry['files'] + entry['post'])[0]
            entries.append(entry)
        work.sort(key=lambda w: -w['size'])
        sessions = max(1, min(jobs, len(work)))
        start = utc_now()
        commands, errors, conns, procs = [], [], [], []
        secrets = self._secret_list()
        # the views each objects dump names (read before the snapshot, like the tables)
        views = {entry['name']: [r['t'] for r in self.fetch_all(
            "SELECT TABLE_NAME AS t FROM information_schema.TABLES WHERE TABLE_SCHEMA = %s "
            "AND TABLE_TYPE = 'VIEW' ORDER BY TABLE_NAME", (entry['name'],))] for entry in entries}
        try:
            for _ in range(sessions):
                conn = self._side_connection()
                conns.append(conn)
                with conn.cursor() as cur:
                    cur.execute('SET SESSION TRANSACTION ISOLATION LEVEL REPEATABLE READ')
                    cur.execute(EXPORT_SESSION_SQL)
            with client_option_file(self._tool_options(), groups=('client', 'mysqldump', 'mariadb-dump')) as cnf:
                locked = False
                try:
                    self._take_global_read_lock(conns)
                    locked = True
                    position = self.binlog_position()
                    # MariaDB with a binary log names the position each snapshot was taken at: equal
                    # positions prove the sessions share one instant without counting every table again
                    by_position = self.flavor == 'mariadb' and bool(position and position.get('binlog_file'))
                    self.execute('START TRANSACTION WITH CONSISTENT SNAPSHOT', operation='open a consistent snapshot')
                    for conn in conns:
                        with conn.cursor() as cur:
                            cur.execute('START TRANSACTION WITH CONSISTENT SNAPSHOT')
                    commands.append('%d export sessions: SET SESSION TRANSACTION ISOLATION LEVEL REPEATABLE READ; '
                                    'START TRANSACTION WITH CONSISTENT SNAPSHOT (under the read lock)' % sessions)
                    for entry in entries:
                        if not entry['pre']:
                            continue
                        argv = schema_dump_argv(program, cnf, entry['name'], [t[0] for t in tables[entry['name']]],
                                                self.flavor, self.version_num or 0)
                        commands.append(command_line(argv, secrets) + (' | ' + command_line(compress)
                                                                       if compress else ''))
                        stream = DumpStream(os.path.join(dest, entry['pre'][0]), compress)
                        procs.append(_start_relayed(argv, stream, errors, entry['name']))
                    _wait_for_snapshots(procs)
                except BaseException:
                    _kill_running(procs)
                    raise
                finally:
                    if locked:
                        self.execute('UNLOCK TABLES', operation='release the global read lock')
                pending = list(work)
                lock = threading.Lock()
                verify = bool(request.get('verify'))

                def follow(item, finished, abort):
                    # compresses (and hashes) the table file while the server writes it; with
                    # verify, the tool's integrity test reads the stored file back right away
                    target = os.path.join(dest, item['file'])
                    try:
                        item['sha256'], item['bytes'] = _follow_compress(item['tmp'], compress, target, finished,
                                                                         abort)
                        if verify and compress:
                            problem = _run_integrity_test(target, request.get('bin_dir'))
                            if problem:
                                raise DbError('verify', item['file'], problem)
                            item['tested'] = os.path.getsize(target)
                    except Exception as exc:  # pylint: disable=broad-except
                        with lock:
                            if not abort.is_set():
                                errors.append(exc if isinstance(exc, DbError) else
                                              DbError('compress', item['file'], self.mask(str(exc))))
                    finally:
                        with contextlib.suppress(OSError):
                            os.unlink(item['tmp'])

                def export(conn, number):
                    # one table after another (largest first); the previous table's compression
                    # may still finish while the next one is exported: at most two files per session
                    previous = None
                    try:
                        while True:
                            with lock:
                                if errors or not pending:
                                    done = not errors
                                    break
                                item = pending.pop(0)
                            finished, abort = threading.Event(), threading.Event()
                            follower = threading.Thread(target=follow, args=(item, finished, abort), daemon=True)
                            follower.start()
                            try:
                                with conn.cursor() as cur:
                                    item['rows'] = int(cur.execute(export_sql(
                                        self.quote_ident, item['database'], item['table'], item['columns'],
                                        item['tmp'])))
                            except Exception as exc:  # pylint: disable=broad-except
                                abort.set()
                                follower.join()
                                with lock:
                                    errors.append(DbError('export', '%s.%s' % (item['database'], item['table']),
                                                          self.mask(str(exc))))
                                return
                            finished.set()
                            if previous is not None:
                                previous.join()
                            previous = follower
                        if done and by_position:
                            # still inside the session's transaction: the position of its snapshot
                            try:
                                with conn.cursor() as cur:
                                    cur.execute(BINLOG_SNAPSHOT_SQL)
                                    session_snapshots[number] = binlog_snapshot(cur.fetchall())
                            except Exception as exc:  # pylint: disable=broad-except
                                with lock:
                                    errors.append(DbError('read the snapshot position of export session', number,
                                                          self.mask(str(exc))))
                    finally:
                        if previous is not None:
                            previous.join()

                def post_dumps():
                    # triggers, views, routines and events (small): dumped while the tables export
                    for entry in entries:
                        names = [t[0] for t in tables[entry['name']]]
                        post = []
                        if names:
                            post.append(triggers_dump_argv(program, cnf, entry['name'], names, self.flavor,
                                                           self.version_num or 0))
                        post.append(objects_dump_argv(program, cnf, entry['name'], views[entry['name']],
                                                      self.flavor, self.version_num or 0,
                                                      events=not entry['own_events']))
                        for argv, fname in zip(post, entry['post']):
                            try:
                                _pipe_out(argv, compress, os.path.join(dest, fname),
                                          'dump triggers, views, routines and events of', entry['name'], secrets)
                            except DbError as exc:
                                post_failures.append(self.mask(str(exc)))
                        if entry['own_events']:
                            try:
                                _write_dump_text(entry['own_events'], compress, os.path.join(dest, entry['post'][-1]))
                            except DbError as exc:
                                post_failures.append(self.mask(str(exc)))

                for item in work:
                    commands.append('%s; %s < %s > %s' % (
                        export_sql(self.quote_ident, item['database'], item['table'], item['columns'], item['tmp']),
                        command_line(compress) if compress else 'cat', shlex.quote(item['tmp']),
                        shlex.quote(os.path.join(dest, item['file']))))
                for entry in entries:
                    names = [t[0] for t in tables[entry['name']]]
                    if names:
                        commands.append(command_line(triggers_dump_argv(
                            program, cnf, entry['name'], names, self.flavor, self.version_num or 0), secrets)
                            + (' | ' + command_line(compress) if compress else ''))
                    commands.append(command_line(objects_dump_argv(
                        program, cnf, entry['name'], views[entry['name']], self.flavor, self.version_num or 0,
                        events=not entry['own_events']), secrets) + (' | ' + command_line(compress) if compress else ''))
                    if entry['own_events']:
                        commands.append('SHOW CREATE EVENT of every event of %s > %s' % (
                            self.quote_ident(entry['name']), shlex.quote(os.path.join(dest, entry['post'][-1]))))
                post_failures = []
                session_snapshots = {}
                threads = [threading.Thread(target=export, args=(conn, number), daemon=True)
                           for number, conn in enumerate(conns, start=1)]
                threads.append(threading.Thread(target=post_dumps, daemon=True))
                for thread in threads:
                    thread.start()
                try:
                    if by_position:
                        own_snapshot = binlog_snapshot(self.fetch_all(BINLOG_SNAPSHOT_SQL))
                        snapshot_rows = None  # the exports' own row counts (below)
                    else:
                        # the exact row counts at the same instant, in this engine's own snapshot
                        snapshot_rows = {name: self._count_rows(name) for name in databases}
                except BaseException:
                    with lock:
                        pending.clear()  # the sessions stop after the table they are writing
                    raise
                finally:
                    for thread in threads:
                        thread.join()
                    self.execute('COMMIT', operation='close the consistent snapshot')
                failures = []
                completed = {}
                for proc, err, thread, stream, name in procs:
                    rc = proc.wait()
                    thread.join()
                    if rc != 0:
                        failures.append('%s: %s' % (name, self.mask(_read_file_tail(err))))
                    completed[os.path.basename(stream.path)] = stream.completed
                    err.close()
                failures.extend(post_failures)
                if by_position and not errors:
                    expected = (position['binlog_file'], int(position['binlog_pos']))
                    if own_snapshot != expected:
                        failures.append('the snapshot of the backup was taken at binary log position %s, the read '
                                        'lock at %s:%d: the position does not describe the snapshot'
                                        % ('%s:%d' % own_snapshot if own_snapshot else 'unknown', *expected))
                    for number in range(1, len(conns) + 1):
                        seen = session_snapshots.get(number)
                        if seen != own_snapshot:
                            failures.append('export session %d read a snapshot taken at binary log position %s, the '
                                            'backup at %s: the sessions did not share one instant'
                                            % (number, '%s:%d' % seen if seen else 'unknown',
                                               '%s:%d' % own_snapshot if own_snapshot else 'unknown'))
                for entry in entries:
                    for fname in entry['post']:
                        completed[fname] = True  # mariadb-dump exited 0 (checked by _pipe_out)
        finally:
            _kill_running(procs)
            for conn in conns:
                with contextlib.suppress(Exception):
                    conn.close()
            shutil.rmtree(tmpdir, ignore_errors=True)
        failures.extend(self.mask(str(e)) for e in errors)
        if failures:
            raise DbError('dump', ', '.join(databases), '; '.join(failures))
        exported = {item['file']: {'rows': item['rows'], 'bytes': item['bytes']} for item in work}
        checksums = {item['file']: item['sha256'] for item in work}
        tested = {item['file']: item['tested'] for item in work if 'tested' in item}
        if snapshot_rows is None:
            # every session exported in a snapshot at the backup's position: its rows are the counts
            snapshot_rows = {name: sorted(({'name': item['table'], 'rows': item['rows']} for item in work
                                           if item['database'] == name), key=lambda t: t['name'])
                             for name in databases}
        for entry in entries:
            counts = {t['name']: t['rows'] for t in snapshot_rows.get(entry['name'], [])}
            kinds = {t[0]: t[3] for t in tables[entry['name']]}
            for fname, meta in entry['data'].items():
                meta.update(exported[fname])
                completed[fname] = True
                # every export session and this engine's snapshot must show the same instant
                if kinds.get(meta['table']) and counts.get(meta['table']) != meta['rows']:
                    raise DbError('dump', '%s.%s' % (entry['name'], meta['table']),
                                  'the export wrote %d rows but the snapshot of the backup holds %s: the sessions '
                                  'did not share one instant' % (meta['rows'], counts.get(meta['table'])))
            entry['tables'] = snapshot_rows.get(entry['name'], [])
            del entry['stem']
            del entry['own_events']
        index = {'format': 2, 'layout': 'tsv', 'flavor': self.flavor,
                 'server_version': getattr(self, 'version_string', self.version), 'tool': os.path.basename(program),
                 'compression': compression, 'position': position, 'databases': entries,
                 'stream_ends': [f for e in entries for f in e['pre'] + e['post']], 'completed': completed}
        _write_json(os.path.join(dest, INDEX_FILE), index)
        _fsync_path(dest)
        stop = utc_now()
        return {'start_position': position or {}, 'stop_position': position or {},
                'start_time': iso(start), 'stop_time': iso(stop), 'databases': databases,
                'server_version': getattr(self, 'version_string', self.version), 'commands': commands,
                'verified_checksums': checksums, 'synced': True,
                # table files the integrity test already read back (verify_logical skips them once)
                'tested_files': tested,
                'details': {'flavor': self.flavor, 'layout': 'tsv-per-table', 'index': INDEX_FILE,
                            'dumps': [{'database': e['name'], 'file': e['file'], 'files': e['files'],
                                       'pre': e['pre'], 'post': e['post'], 'tables': e['tables']} for e in entries],
                            'files': {e['name']: e['file'] for e in entries}, 'compression': compression,
                            'processes': sessions, 'split_tables': len(databases) < sessions,
                            'consistent_snapshot': True, 'table_data': 'tsv',
                            'same_instant_check': ('binlog snapshot position of every session' if by_position
                                                   else 'exported rows = COUNT(*) in the backup snapshot')}}

    def restore_logical(self, request):
        path = request['path']
        index_path = os.path.join(path, INDEX_FILE)
        if not os.path.isfile(index_path):
            raise DbError('restore from', path, 'no %s: this is not a MariaDB/MySQL logical backup' % INDEX_FILE)
        with open(index_path) as f:
            index = json.load(f)
        entries = index['databases']
        wanted = request.get('databases')
        if wanted:
            unknown = [n for n in wanted if n not in [e['name'] for e in entries]]
            if unknown:
                raise DbError('restore', ', '.join(unknown), 'not in this backup (it holds %s)'
                              % ', '.join(e['name'] for e in entries))
            entries = [e for e in entries if e['name'] in wanted]
        target = request.get('target_database')
        force = bool(request.get('force'))
        if target:
            if len(entries) != 1:
                raise DbError('restore into', target, 'target_database needs a backup of exactly one database; '
                              'this one holds %s' % ', '.join(e['name'] for e in entries))
            plan = [(entries[0], target)]
        else:
            plan = [(e, e['name']) for e in entries]
        # every check before any change
        decompress = {}
        for entry, name in plan:
            self.quote_ident(name)
            for fname in _entry_files(entry):
                if not os.path.isfile(os.path.join(path, fname)):
                    raise DbError('restore', name, 'the backup file %s is missing' % fname)
                comp = compression_of(fname)
                decompress[comp] = decompressor_argv(comp)
        client = tool(self.flavor, 'client')
        load_dir = None
        if any(entry.get('data') for entry, _name in plan):
            # tab-separated table data: LOAD DATA LOCAL through the client when the server allows
            # it, else LOAD DATA by the server from a file in a directory it reads
            local = str(self.fetch_value('SELECT @@GLOBAL.local_infile')) in ('1', 'ON')
            if not local:
                biggest = max(meta.get('bytes', 0) for entry, _n in plan for meta in (entry.get('data') or {}).values())
                load_dir, why = self._outfile_dir(biggest * max(1, int(request.get('jobs') or 1)))
                if load_dir is None:
                    raise DbError('restore', ', '.join(name for _e, name in plan),
                                  'the backup holds tab-separated table data: loading it needs local_infile=ON on '
                                  'the server (SET GLOBAL local_infile = ON) or a server on this host that may read '
                                  'files (FILE privilege, secure_file_priv); here %s' % why)
        try:
            return self._restore_logical_files(request, plan, path, decompress, client, load_dir, force)
        finally:
            if load_dir:
                shutil.rmtree(load_dir, ignore_errors=True)

    def _restore_logical_files(self, request, plan, path, decompress, client, load_dir, force):
        """Load the plan; a database that exists is replaced only once everything loaded elsewhere.

        A target that does not exist is created by this run and loaded in place (dropped again when
        the load fails). An existing target (non-empty with force, or empty) is loaded into a new
        work database first; only when every file loaded and every table holds its rows is the
        target replaced (_swap_in). Any failure before that drops what this run created and leaves
        the target as it was.
        """
        existing = {}
        for _entry, name in plan:
            objects = self.check_restore_target(name, {'force': force})
            if objects is not None:
                existing[name] = objects
        # the swap re-creates the triggers and objects of the work database in the target
        dump_program = tool(self.flavor, 'dump') if existing else None
        commands = []
        created = []  # databases this run created: dropped again when it fails
        kept = []  # a work database holding the only restored copy after a failed swap
        loads = []  # (entry, target name, database loaded into)
        # the accounts the objects need: checked (roles=require) or created (roles=create) first
        sources = set(entry['name'] for entry, _name in plan)
        manifest_dumps = [d for d in ((request.get('manifest') or {}).get('details') or {}).get('dumps') or []
                          if d.get('database') in sources]
        roles_commands = []
        warnings = []
        renames = dict((entry['name'], name) for entry, name in plan if entry['name'] != name)
        accounts = self.restore_accounts(manifest_dumps, request, path, roles_commands, renames)
        warnings.extend(accounts.get('warnings') or [])
        done = False
        try:
            for entry, name in plan:
                clause = self._database_clause(entry)
                if name in existing:
                    loads.append((entry, name, self._create_work_database(name, clause, created, commands)))
                else:
                    sql = 'CREATE DATABASE %s%s' % (self.quote_ident(name), clause)
                    self.execute(sql, operation='create database %s' % name)
                    created.append(name)
                    commands.append(sql)
                    loads.append((entry, name, name))
            with client_option_file(self._tool_options(), groups=('client', 'mysql', 'mariadb')) as cnf:
                self._load_files(request, loads, path, decompress, client, load_dir, cnf, commands)
                # check mode: nothing was loaded to count
                tables, total = ([], 0) if self.check_mode else self._check_loaded(loads)
                for entry, name, work in loads:
                    if work != name:
                        self._swap_in(entry, name, work, bool(existing.get(name)), dump_program, client, cnf,
                                      created, kept, commands)
            self.finish_accounts(accounts, warnings)
            if request.get('marker') and self.flavor == 'mariadb':
                for entry, name in plan:
                    # the source database too: another database of the same backup is another restore
                    warning = self._write_marker(name, dict(request['marker'], source_database=entry['name']), entry)
                    if warning:
                        warnings.append('restoring %s: %s' % (name, warning))
            done = True
        finally:
            if not done:
                for name in reversed(created):
                    if name in kept:
                        continue
                    with contextlib.suppress(DbError):
                        self.execute('DROP DATABASE IF EXISTS %s' % self.quote_ident(name),
                                     operation='drop database %s' % name)
                self.drop_accounts(accounts)   # nothing restored: the accounts created for it go too
        return {'rows_restored': total, 'tables': tables, 'commands': roles_commands + commands,
                'databases': [name for _e, name in plan], 'roles_created': accounts['labels'],
                'warnings': warnings}

    @staticmethod
    def _database_clause(entry):
        clause = ''
        if entry.get('charset'):
            clause += ' CHARACTER SET %s' % entry['charset']
        if entry.get('collation'):
            clause += ' COLLATE %s' % entry['collation']
        return clause if re.match(r'^[ A-Za-z0-9_]*$', clause) else ''

    def _create_work_database(self, target, clause, created, commands):
        """A new database dbops_restore_<pid>_<random> created by this run (CREATE DATABASE fails
        on an existing name, so a database of someone else is never used or dropped)."""
        for _attempt in range(5):
            name = '%s%d_%s' % (WORK_DB_PREFIX, os.getpid(), os.urandom(4).hex())
            if self.fetch_value('SELECT COUNT(*) FROM information_schema.SCHEMATA WHERE SCHEMA_NAME = %s', (name,)):
                continue
            sql = 'CREATE DATABASE %s%s' % (self.quote_ident(name), clause)
            try:
                self.execute(sql, operation='create database %s' % name)
            except DbError as exc:
                if 'exists' in str(exc.detail):
                    continue
                raise DbError('restore into', target, 'a restore into an existing database loads into a new work '
                              'database first and replaces %s only when everything loaded; creating the work '
                              'database %s failed (the login needs CREATE and DROP on databases named '
                              '%s%%): %s' % (target, name, WORK_DB_PREFIX.replace('_', '\\_'), exc.detail)) from None
            created.append(name)
            commands.append(sql)
            return name
        raise DbError('restore into', target, 'could not find a free name for the work database')

    def _load_files(self, request, loads, path, decompress, client, load_dir, cnf, commands):
        """Schema files first (tab-separated layout), then the table files of every database in
        parallel, then triggers, views, routines and events; DbError naming every failure."""
        failures = []
        phases = [[(fname, name, entry) for entry, _t, name in loads for fname in entry.get('pre') or []],
                  [(fname, name, entry) for entry, _t, name in loads
                   for fname in (entry.get('files') or [entry['file']])],
                  [(fname, name, entry) for entry, _t, name in loads for fname in entry.get('post') or []]]
        work = []
        lock = threading.Lock()
        counter = [0]
        # one load session per thread and database, kept for all its table files: a client process
        # per table (start, connect, log in) cost ~25 ms a table, most of a restore of many tables
        sessions = {}

        def load_file(fname, name, entry):
            source = os.path.join(path, fname)
            unpack = decompress[compression_of(fname)]
            meta = (entry.get('data') or {}).get(fname)
            if meta is None:
                argv = client_argv(client, cnf, name)
                if getattr(self, '_quiet_binlog', False):
                    argv.append('--init-command=SET SESSION sql_log_bin = 0')
            else:
                key = (threading.get_ident(), name)
                if key not in sessions and not self.check_mode:
                    sessions[key] = self._load_session(name, local=load_dir is None)
                if load_dir is None:
                    return self._load_local(source, unpack, meta, sessions, key, lock, commands)
                return self._load_on_server(source, unpack, name, meta, load_dir, lock, counter, commands,
                                            sessions, key)
            with lock:
                commands.append((command_line(unpack) + ' ' + shlex.quote(source) + ' | ' if unpack else '')
                                + command_line(argv, self._secret_list())
                                + ('' if unpack else ' < ' + shlex.quote(source)))
            if not self.check_mode:   # check mode: the command lines only
                _pipe_into(source, unpack, argv)
            return None

        def worker():
            while True:
                with lock:
                    if not work or failures:
                        return
                    fname, name, entry = work.pop(0)
                try:
                    load_file(fname, name, entry)
                except DbError as exc:
                    with lock:
                        failures.append('%s: %s' % (name, self.mask(exc.detail or str(exc))))
                except Exception as exc:  # pylint: disable=broad-except
                    # never a thread that dies quietly and leaves its files unloaded
                    with lock:
                        failures.append('%s: %s: %s' % (name, type(exc).__name__, self.mask(str(exc))))

        try:
            for phase in phases:
                if failures or not phase:
                    continue
                work[:] = phase
                threads = [threading.Thread(target=worker, daemon=True)
                           for _ in range(max(1, min(int(request.get('jobs') or 1), len(phase))))]
                for thread in threads:
                    thread.start()
                for thread in threads:
                    thread.join()
        finally:
            for conn in sessions.values():
                with contextlib.suppress(Exception):
                    conn.close()
        if failures:
            raise DbError('restore', ', '.join(target for _e, target, _n in loads), '; '.join(failures))

    def _check_loaded(self, loads):
        """(tables, total rows) of the loaded databases, listed under their target names; every
        table must hold exactly the rows its file holds."""
        tables = []
        total = 0
        short = []
        for entry, target, name in loads:
            loaded = {meta['table']: meta.get('rows') for meta in (entry.get('data') or {}).values()}
            for row in self.fetch_all("SELECT TABLE_NAME AS t FROM information_schema.TABLES WHERE TABLE_SCHEMA = %s "
                                      "AND TABLE_TYPE IN ('BASE TABLE', 'SYSTEM VERSIONED') ORDER BY TABLE_NAME",
                                      (name,)):
                count = int(self.fetch_value('SELECT COUNT(*) FROM %s' % self.quote_qualified(name, row['t'])))
                tables.append({'database': target, 'name': row['t'], 'rows': count})
                total += count
                if loaded.get(row['t']) is not None and loaded[row['t']] != count:
                    short.append('%s.%s: %d rows after the load, the backup holds %d'
                                 % (target, row['t'], count, loaded[row['t']]))
        if short:
            # LOAD DATA LOCAL turns duplicate keys and bad values into warnings: never a silent loss
            raise DbError('restore', ', '.join(target for _e, target, _n in loads), '; '.join(short))
        return tables, total

    def _swap_in(self, entry, target, work, non_empty, dump_program, client, cnf, created, kept, commands):
        """Replace ``target`` by the fully loaded work database.

        MariaDB/MySQL have no RENAME DATABASE: RENAME TABLE moves base tables (and sequences)
        across databases, but not a table with triggers, and views, routines and events do not
        move. So the triggers and objects of the work database are dumped first (mariadb-dump,
        the same statements the load just ran, so the login may run them), its triggers dropped,
        and only then is the target emptied (non-empty: DROP and CREATE DATABASE, as the backup's
        character set), the tables moved in one RENAME TABLE (atomic) and the dumps loaded into
        the target. The work database is dropped at the end.
        """
        quote = self.quote_ident
        if self.check_mode:
            # nothing was loaded (the work database is empty): the base tables the backup holds move; its
            # triggers, views, routines and events, dumped from the loaded work database, are not known here
            moved = sorted(t['name'] for t in entry.get('tables') or [])
        else:
            moved = [r['t'] for r in self.fetch_all(
                "SELECT TABLE_NAME AS t FROM information_schema.TABLES WHERE TABLE_SCHEMA = %s AND TABLE_TYPE <> 'VIEW' "
                "ORDER BY TABLE_NAME", (work,))]
        views = [r['t'] for r in self.fetch_all(
            "SELECT TABLE_NAME AS t FROM information_schema.TABLES WHERE TABLE_SCHEMA = %s AND TABLE_TYPE = 'VIEW' "
            "ORDER BY TABLE_NAME", (work,))]
        triggers = [r['t'] for r in self.fetch_all(
            'SELECT TRIGGER_NAME AS t FROM information_schema.TRIGGERS WHERE TRIGGER_SCHEMA = %s', (work,))]
        others = int(self.fetch_value('SELECT (SELECT COUNT(*) FROM information_schema.ROUTINES WHERE ROUTINE_SCHEMA = '
                                      '%s) + (SELECT COUNT(*) FROM information_schema.EVENTS WHERE EVENT_SCHEMA = %s)',
                                      (work, work)) or 0)
        secrets = self._secret_list()
        tmp = tempfile.mkdtemp(prefix='dbops-swap-')
        try:
            dumps = []
            if triggers:
                dumps.append((triggers_dump_argv(dump_program, cnf, work, moved, self.flavor, self.version_num or 0),
                              os.path.join(tmp, 'triggers.sql')))
            if views or others:
                dumps.append((objects_dump_argv(dump_program, cnf, work, views, self.flavor, self.version_num or 0),
                              os.path.join(tmp, 'objects.sql')))
            for argv, out in dumps:
                commands.append(command_line(argv, secrets) + ' > ' + shlex.quote(out))
                _pipe_out(argv, None, out, 'dump the triggers, views, routines and events of', work, secrets)
            for name in triggers:
                sql = 'DROP TRIGGER %s' % self.quote_qualified(work, name)
                self.execute(sql, operation='drop trigger %s.%s' % (work, name))
                commands.append(sql)
            # from here on the target changes
            step = 'drop'
            try:
                if non_empty:
                    # a session holding a lock on one of its tables (an open transaction) would keep DROP DATABASE
                    # waiting for lock_wait_timeout (a day by default), and a DROP left queued after the run is
                    # killed would drop the database later: wait a bounded time, then fail leaving it as it was
                    sql = 'SET SESSION lock_wait_timeout = %d' % SWAP_LOCK_WAIT
                    self.execute(sql, operation='bound the wait for locks on %s' % target)
                    commands.append(sql)
                    sql = 'DROP DATABASE %s' % quote(target)
                    self.execute(sql, operation='drop database %s' % target)
                    commands.append(sql)
                    step = 'create'
                    sql = 'CREATE DATABASE %s%s' % (quote(target), self._database_clause(entry))
                    self.execute(sql, operation='create database %s' % target)
                    commands.append(sql)
                elif self._database_clause(entry):
                    sql = 'ALTER DATABASE %s%s' % (quote(target), self._database_clause(entry))
                    self.execute(sql, operation='set the character set of database %s' % target)
                    commands.append(sql)
                step = 'move'
                if moved:
                    sql = 'RENAME TABLE ' + ', '.join(
                        '%s TO %s' % (self.quote_qualified(work, t), self.quote_qualified(target, t)) for t in moved)
                    self.execute(sql, operation='move the restored tables into %s' % target)
                    commands.append(sql)
                step = 'objects'
                for _argv, out in dumps:
                    load = client_argv(client, cnf, target)
                    commands.append(command_line(load, secrets) + ' < ' + shlex.quote(out))
                    _pipe_into(out, None, load)
            except DbError as exc:
                if step == 'drop' and 'lock wait timeout' in str(exc).lower():
                    holders = self.fetch_all('SELECT ID AS id, USER AS user FROM information_schema.PROCESSLIST WHERE DB = %s '
                                             'AND ID <> CONNECTION_ID() ORDER BY ID', (target,))
                    raise DbError('replace database', target, 'other sessions hold locks on its tables (an open '
                                  'transaction%s) and did not release them within %d seconds: end them (COMMIT, or '
                                  'KILL <id>) and run again; %s is as it was' % (
                                      ': session %s' % ', '.join('%s (%s)' % (h['id'], h['user']) for h in holders)
                                      if holders else '', SWAP_LOCK_WAIT, target)) from None
                if step == 'drop':
                    raise  # the target is as it was; the work database is dropped
                if step in ('create', 'move'):
                    kept.append(work)
                    where = 'the restored tables are kept in database %s' % work
                else:
                    where = '%s holds the restored tables, but not all of its triggers, views, routines and ' \
                            'events' % target
                raise DbError('replace database', target, '%s; %s' % (self.mask(exc.detail or str(exc)), where)) \
                    from None
        finally:
            shutil.rmtree(tmp, ignore_errors=True)
        sql = 'DROP DATABASE %s' % quote(work)
        self.execute(sql, operation='drop the work database %s' % work)
        commands.append(sql)
        created.remove(work)

    def keep_out_of_binlog(self):
        """A restore drill's scratch databases stay out of the binary log (no replica receives them,
        no log backup archives them): sql_log_bin=0 on this session and on every load session and
        client of the restore. False when the login may not (SUPER / BINLOG ADMIN): then they are logged."""
        try:
            self.execute('SET SESSION sql_log_bin = 0', operation='keep the drill out of the binary log')
        except DbError:
            self._quiet_binlog = False
            return False
        self._quiet_binlog = True
        return True

    def _load_session(self, database, local):
        """A side connection in database with the load session settings (LOAD_SESSION_SQL)."""
        conn = self._side_connection(local_infile=local)
        try:
            with conn.cursor() as cur:
                cur.execute('USE %s' % self.quote_ident(database))
                cur.execute(LOAD_SESSION_SQL)
                if getattr(self, '_quiet_binlog', False):
                    cur.execute('SET SESSION sql_log_bin = 0')
        except Exception as exc:  # pylint: disable=broad-except
            with contextlib.suppress(Exception):
                conn.close()
            raise DbError('load into', database, self.mask(str(exc))) from None
        return conn

    def _load_local(self, source, unpack, meta, sessions, key, lock, commands):
        """LOAD DATA LOCAL INFILE of one table file through a kept load session: the decompressor's
        output is the file the driver sends (its pipe, /dev/fd/N), or the plain file itself."""
        proc = err = None
        if unpack and self.check_mode:
            path = '/dev/fd/N'   # check mode: the pipe the real run reads, nothing started
        elif unpack:
            err = tempfile.TemporaryFile()
            try:
                proc = subprocess.Popen(unpack + [source], stdout=subprocess.PIPE, stderr=err)
            except OSError as exc:
                err.close()
                raise DbError('run', unpack[0], str(exc)) from None
            path = '/dev/fd/%d' % proc.stdout.fileno()
        else:
            path = source
        statement = load_sql(self.quote_ident, meta['table'], meta['columns'], path)
        with lock:
            commands.append('%s%s' % ((command_line(unpack) + ' ' + shlex.quote(source) + ' | ') if unpack else '',
                                      statement))
        if self.check_mode:
            return None
        loaded = False
        try:
            try:
                self._load_statement(sessions, key, statement, source)
                loaded = True
            finally:
                if proc:
                    proc.stdout.close()   # a decompressor still writing stops (EPIPE)
                    if not loaded:
                        proc.kill()
                    proc.wait()
            if proc and proc.returncode != 0:
                raise DbError('read', os.path.basename(source), _failure_detail(proc.returncode, _read_file_tail(err)))
        finally:
            if err:
                err.close()
        return None

    def _load_statement(self, sessions, key, statement, source):
        """Run a LOAD DATA statement in the thread's load session; on a failure the session is
        closed (the next file opens another) and the error names the file."""
        try:
            with sessions[key].cursor() as cur:
                cur.execute(statement)
        except Exception as exc:  # pylint: disable=broad-except
            conn = sessions.pop(key)
            with contextlib.suppress(Exception):
                conn.close()
            raise DbError('load', os.path.basename(source), self.mask(str(exc))) from None

    def _load_on_server(self, source, unpack, database, meta, load_dir, lock, counter, commands, sessions, key):
        """LOAD DATA INFILE by the server from a decompressed copy in load_dir (no local_infile)."""
        with lock:
            counter[0] += 1
            copy = os.path.join(load_dir, 'load-%d.tsv' % counter[0])
        statement = load_sql(self.quote_ident, meta['table'], meta['columns'], copy, local=False)
        with lock:
            commands.append('%s > %s; %s; %s' % ((command_line(unpack) + ' ' + shlex.quote(source)) if unpack
                                                 else 'cat ' + shlex.quote(source), shlex.quote(copy),
                                                 LOAD_SESSION_SQL, statement))
        if self.check_mode:
            return None
        try:
            with open(copy, 'wb') as out:
                if unpack:
                    proc = subprocess.run(unpack + [source], stdout=out, stderr=subprocess.PIPE, check=False)
                    if proc.returncode != 0:
                        raise DbError('read', os.path.basename(source), _tail(proc.stderr))
                else:
                    with open(source, 'rb') as src:
                        shutil.copyfileobj(src, out, CHUNK)
            os.chmod(copy, 0o644)
            self._load_statement(sessions, key, statement, source)
        finally:
            with contextlib.suppress(OSError):
                os.unlink(copy)

    def _write_marker(self, name, marker, entry=None):
        """The restored database gets the source database's comment (backups that recorded it, else the
        comment it has) with the marker appended as a trailer (see _restore_comment); returns a warning
        when the comment had to be cut to make room for it."""
        comment = entry.get('comment') if entry is not None and 'comment' in entry else self._schema_comment(name)
        text, warning = restore_comment.append(comment, marker, restore_comment.MARIADB_COMMENT_LIMIT)
        self.execute('ALTER DATABASE %s COMMENT %s' % (self.quote_ident(name), self.quote_literal(text)),
                     operation='record the restore in database %s' % name)
        return warning

    def _schema_comment(self, database):
        """The comment of a database (MariaDB), or None."""
        if self.flavor != 'mariadb':
            return None
        try:
            return self.fetch_value('SELECT SCHEMA_COMMENT FROM information_schema.SCHEMATA WHERE SCHEMA_NAME = %s',
                                    (database,))
        except DbError:
            return None

    def restore_marker(self, database):
        """The marker restore_logical recorded in the trailer of the database comment (MariaDB), or None."""
        return restore_comment.split(self._schema_comment(database))[1]

    def logical_verify(self, manifest, path, bin_dir=None, os_user=None):
        """Problems of a logical backup: index, files present, every file decompresses completely."""
        return verify_logical(manifest, path, bin_dir)

    def _count_rows(self, database):
        """[{name, rows}] of every base table of a database (exact counts, in the current snapshot)."""
        out = []
        for row in self.fetch_all("SELECT TABLE_NAME AS t FROM information_schema.TABLES WHERE TABLE_SCHEMA = %s "
                                  "AND TABLE_TYPE IN ('BASE TABLE', 'SYSTEM VERSIONED') ORDER BY TABLE_NAME",
                                  (database,)):
            count = self.fetch_value('SELECT COUNT(*) FROM %s' % self.quote_qualified(database, row['t']),
                                     operation='count the rows of %s.%s' % (database, row['t']))
            out.append({'name': row['t'], 'rows': int(count)})
        return out

    def table_row_counts(self, database=None, request=None):
        """[{name, rows}] of the base tables of database (default: the connected one)."""
        database = database or self.fetch_value('SELECT DATABASE()')
        return self._count_rows(database) if database else []

    def check_database(self, request, database):
        """CHECK TABLE on every base table of a database (the restore drill); returns problems."""
        problems = []
        for row in self._count_rows(database):
            for res in self.fetch_all('CHECK TABLE %s' % self.quote_qualified(database, row['name']),
                                      operation='check table %s.%s' % (database, row['name'])):
                if res.get('Msg_type') in ('error', 'Error') or (
                        res.get('Msg_type') == 'status' and str(res.get('Msg_text')).upper() != 'OK'):
                    problems.append('%s.%s: CHECK TABLE: %s' % (database, row['name'], res.get('Msg_text')))
        return problems

    def check_restore_target(self, name, request):
        """Refuse (DbError) a logical restore into a database holding objects without force; the
        number of objects of an existing database, None when it does not exist. Also what check
        mode reports. A system database (mysql, sys, information_schema, performance_schema) is
        never a target, force or not: replacing mysql would drop every account of the server."""
        self.quote_ident(name)
        if name.lower() in SYSTEM_DATABASES:
            raise DbError('restore into', name, 'it is a system database of the server and is never replaced by a '
                          'logical restore (force does not change that): choose another target_database')
        if not self.fetch_value('SELECT COUNT(*) FROM information_schema.SCHEMATA WHERE SCHEMA_NAME = %s', (name,)):
            return None
        objects = self._object_count(name)
        if objects and not request.get('force'):
            raise DbError('restore into', name, 'the database exists and holds %d objects; set force to replace it'
                          % objects)
        return objects

    def _object_count(self, name):
        count = 0
        for sql in ('SELECT COUNT(*) FROM information_schema.TABLES WHERE TABLE_SCHEMA = %s',
                    'SELECT COUNT(*) FROM information_schema.ROUTINES WHERE ROUTINE_SCHEMA = %s',
                    'SELECT COUNT(*) FROM information_schema.EVENTS WHERE EVENT_SCHEMA = %s'):
            count += int(self.fetch_value(sql, (name,)) or 0)
        return count

    # ---- physical ---------------------------------------------------------------------------
    def _backup_physical(self, request):
        dest = request['dest']
        bin_dir = request.get('bin_dir')
        btype = request.get('type') or 'full'
        compression = request.get('compression') or 'none'
        compress = compressor_argv(compression, _level(compression, request.get('compression_level')), bin_dir)
        if compression == 'zstd':
            compress.append('-T0')  # one stream: let zstd use every core
        program = tool(self.flavor, 'backup', bin_dir)
        basedir = None
        base_lsn = None
        if btype in ('incremental', 'differential'):
            basedir = checkpoint_dir(request['base']['path'])
            base_lsn = read_key_values(_first_existing(basedir, CHECKPOINT_FILES)).get('to_lsn')
        datadir = self.fetch_value('SELECT @@GLOBAL.datadir')
        meta = os.path.join(dest, 'meta')
        os.makedirs(meta)
        start = utc_now()
        start_position = self.binlog_position() or {}
        commands = []
        with client_option_file(self._tool_options(),
                                groups=('client', 'mariadb-backup', 'xtrabackup')) as cnf:
            if compress is None:
                target = os.path.join(dest, 'data')
                argv = physical_backup_argv(program, cnf, target, meta, datadir, request.get('jobs'), basedir,
                                            stream=False, flavor=self.flavor)
                commands.append(command_line(argv, self._secret_list()))
                # each file is hashed, fsynced and page-checked while the tool copies the next ones
                follower = _CopyFollower(dest, target, tool(self.flavor, 'checksum', bin_dir)
                                         if request.get('verify') else None, hashes=request.get('checksums', True))
                with _explain_backup_lock_wait(self):
                    _run_following(argv, follower, 'take a physical backup with', os.path.basename(program),
                                   self._secret_list())
                layout = 'directory'
            else:
                # mariadb-backup's own scratch (stream mode) beside the run's data, not in /tmp: a run killed
                # half way leaves it inside its failed .incoming directory, which retention removes
                scratch = tempfile.mkdtemp(prefix='.xb-scratch-', dir=os.path.dirname(os.path.abspath(dest)))
                stream_file = os.path.join(dest, STREAM_NAME + compression_spec(compression)['ext'])
                argv = physical_backup_argv(program, cnf, scratch, meta, datadir, request.get('jobs'), basedir,
                                            stream=True, flavor=self.flavor)
                commands.append(command_line(argv, self._secret_list()) + ' | ' + command_line(compress)
                                + ' > ' + shlex.quote(stream_file))
                try:
                    with _explain_backup_lock_wait(self):
                        stream_sha = _pipe_out(argv, compress, stream_file, 'take a physical backup with',
                                               os.path.basename(program), self._secret_list())
                finally:
                    shutil.rmtree(scratch, ignore_errors=True)
                layout = 'stream'
        verified_checksums = {}
        synced = False
        verified = bool(request.get('verify'))
        if layout == 'stream':
            verified_checksums[os.path.basename(stream_file)] = stream_sha
            # mariadb-backup has checked every page checksum while copying; check that the
            # compressed stream reads back
            problems = _check_stored_stream(dest, compression, bin_dir) if verified else []
        else:
            verified_checksums, problems = follower.finish()
            synced = bool(request.get('checksums', True))
        if problems:
            raise DbError('verify the new physical backup', None, '; '.join(problems))
        stop = utc_now()
        checkpoints = read_key_values(_first_existing(meta, CHECKPOINT_FILES))
        info_file = _first_existing(meta, INFO_FILES)
        info = read_key_values(info_file) if info_file else {}
        binlog_info_text = None
        if layout == 'directory':
            bi = _first_existing(os.path.join(dest, 'data'), BINLOG_INFO_FILES)
            if bi:
                with open(bi) as f:
                    binlog_info_text = f.read().strip()
        stop_position = parse_binlog_info(info, binlog_info_text) or {}
        if base_lsn is not None and checkpoints.get('from_lsn') != base_lsn:
            raise DbError('take a physical %s backup' % btype, None,
                          'it starts at LSN %s but its base ends at %s' % (checkpoints.get('from_lsn'), base_lsn))
        start_position = dict(start_position, lsn=checkpoints.get('from_lsn'))
        stop_position = dict(stop_position, lsn=checkpoints.get('to_lsn'))
        # tables created with DATA DIRECTORY (a restore remaps them, check mode predicts it): the .isl files of
        # a full copy, else the server's list of tablespaces (a stream, an incremental's partial copy)
        if layout == 'directory' and btype == 'full':
            external = [dict((k, t[k]) for k in ('database', 'table', 'name', 'path'))
                        for t in external_tablespaces(os.path.join(dest, 'data'))]
        else:
            external = self._external_tablespaces(datadir)
        return {'start_position': start_position, 'stop_position': stop_position, 'verified': verified,
                'verified_checksums': verified_checksums, 'synced': synced,
                'start_time': iso(start), 'stop_time': iso(stop), 'databases': self.user_databases(),
                'server_version': getattr(self, 'version_string', self.version), 'commands': commands,
                'details': {'flavor': self.flavor, 'layout': layout, 'compression': compression,
                            'tool': os.path.basename(program),
                            'stream_file': (STREAM_NAME + compression_spec(compression)['ext'])
                            if layout == 'stream' else None,
                            'checkpoints': checkpoints, 'source_datadir': datadir,
                            'external_tablespaces': external,
                            'binlog_basename': self.fetch_value('SELECT @@GLOBAL.log_bin_basename')
                            if self._binlog_enabled() else None}}

    def _external_tablespaces(self, datadir):
        """The server's tablespaces kept outside its data directory (CREATE TABLE ... DATA DIRECTORY) that a
        restore remaps (MariaDB: by their .isl files); None when this login cannot read the list (the backup
        then records nothing). MySQL 8 keeps no .isl files and its restore remaps nothing: []."""
        if self.flavor != 'mariadb':
            return []
        try:
            return external_tablespaces_recorded(self.fetch_all(
                'SELECT NAME AS name, FILENAME AS path FROM information_schema.INNODB_SYS_TABLESPACES',
                operation='list the InnoDB tablespaces'), datadir)
        except DbError:
            return None

    # ---- binary log archive -------------------------------------------------------------------
    def _check_binlog_series(self, log_dir, binlog_dir, rows, request):
        """DbError when the server's binary logs (SHOW BINARY LOGS ``rows``) do not continue the archive in
        log_dir: RESET MASTER (or another server) restarted the numbering, so names the archive holds or
        pruned come again with other contents, and the GTID position went back. Read only."""
        names = [r['Log_name'] for r in rows]
        if not names or not log_dir:
            return
        base, current, _width = binlog_number(names[-1])
        if base is None:
            return
        archived = archived_binlogs(log_dir, base)
        pruned = pruned_binlog(log_dir, base)
        known = list(archived) + ([pruned] if pruned is not None else [])
        problem = None
        if known and current <= max(known):
            problem = ('the server writes %s, but the archive %s already holds (or pruned) binary logs up to number %d'
                       % (names[-1], log_dir, max(known)))
        for name in names:
            if problem:
                break
            number = binlog_number(name)[1]
            if number in archived and not _same_binlog_start(os.path.join(binlog_dir, name),
                                                             os.path.join(log_dir, archived[number])):
                problem = "the server's %s is not the archived file of that name (it starts differently)" % name
        base_manifest = (request.get('base') or {}).get('manifest') or {}
        done = _gtid_sequences((base_manifest.get('stop_position') or {}).get('gtid'))
        if not problem and done and self.flavor == 'mariadb':
            now = _gtid_sequences(self.fetch_value('SELECT @@GLOBAL.gtid_binlog_pos'))
            # only domains the server's binary logs hold now: a backup may record a domain replicated into
            # this server and not binary-logged here; RESET MASTER with nothing written since is found above
            if any(domain in now and now[domain] < seq for domain, seq in done.items()):
                problem = ('the GTID position went back from %s (backup %s) to %s'
                           % ((base_manifest.get('stop_position') or {}).get('gtid'), base_manifest.get('id'),
                              ','.join('%d-*-%d' % kv for kv in sorted(now.items())) or 'none'))
        if problem:
            raise DbError('take a log backup of', describe(self), '%s: the binary log numbering restarted (RESET MASTER, '
                          'or another server wrote these binary logs), and the new binary logs cannot continue this '
                          'archive; nothing was archived. Take a new full physical backup (db_backup method=physical '
                          'type=full) into a new repository and take the log backups there; the backups and the '
                          'archive in %s stay restorable up to the restart' % (problem, os.path.dirname(log_dir)))

    def _binlog_archive_source(self, request):
        """(the repository's binary log archive, the server's log_bin_basename) of a log backup; fails when
        binary logging is off or the server does not say where its binary logs are."""
        if not self._binlog_enabled():
            raise DbError('archive the binary logs of', describe(self),
                          'binary logging is off: set log_bin (and server_id) and restart the server')
        basename = self.fetch_value('SELECT @@GLOBAL.log_bin_basename')
        if not basename:
            raise DbError('archive the binary logs of', describe(self), 'the server does not report log_bin_basename')
        return request.get('log_dir') or os.path.join(request['repo'], 'logs'), basename

    def check_log_backup(self, request):
        """Check mode of a log backup: the refusals of the real run, read only (no FLUSH BINARY LOGS, nothing
        copied): binary logging off, a restarted binary log numbering, and binary logs the replay from the
        base backup needs that are neither archived nor on the server any more (the real run archives what is
        there, then fails naming them)."""
        log_dir, basename = self._binlog_archive_source(request)
        rows = self.fetch_all('SHOW BINARY LOGS', operation='list the binary logs')
        self._check_binlog_series(log_dir, os.path.dirname(basename), rows, request)
        names = [r['Log_name'] for r in rows]   # all closed once the real run has flushed
        if not names:
            return
        base, first_now, width = binlog_number(names[0])
        archived = archived_binlogs(log_dir, base)
        have = set(archived) | {binlog_number(n)[1] for n in names}
        wanted = set()
        if archived:
            wanted |= set(range(max(archived) + 1, first_now))
        base_manifest = (request.get('base') or {}).get('manifest') or {}
        from_file = (base_manifest.get('stop_position') or {}).get('binlog_file')
        if from_file and binlog_number(from_file)[0] == base:
            wanted |= set(range(binlog_number(from_file)[1], binlog_number(names[-1])[1] + 1))
        missing = ['%s.%0*d' % (base, width, n) for n in sorted(wanted - have)]
        if missing:
            raise DbError('take a log backup of', describe(self), 'binary log%s %s %s purged from the server before '
                          'being archived: no point-in-time restore from %s can cross the gap. The real run archives '
                          'the closed binary logs still on the server, then fails; take a new full physical backup '
                          '(db_backup method=physical type=full): log backups after it are restorable'
                          % ('s' if len(missing) > 1 else '', ', '.join(missing), 'were' if len(missing) > 1 else 'was',
                             ('backup %s' % base_manifest['id']) if base_manifest.get('id') else 'the archive'))

    def _backup_binlogs(self, request):
        log_dir, basename = self._binlog_archive_source(request)
        binlog_dir = os.path.dirname(basename)
        start = utc_now()
        # before anything is flushed or copied: binary logs of a restarted numbering never join the archive
        self._check_binlog_series(log_dir, binlog_dir, self.fetch_all('SHOW BINARY LOGS', operation='list the binary '
                                                                      'logs'), request)
        self.execute('FLUSH BINARY LOGS', operation='close the current binary log')
        position = self.binlog_position() or {}
        rows = self.fetch_all('SHOW BINARY LOGS', operation='list the binary logs')
        closed = [(r['Log_name'], int(r['File_size'])) for r in rows][:-1]
        os.makedirs(log_dir, exist_ok=True)
        base = binlog_number(closed[0][0])[0] if closed else None
        archived_before = archived_binlogs(log_dir, base) if base else {}
        copied, skipped = [], []
        oldest = min(archived_before) if archived_before else None
        pruned = pruned_binlog(log_dir, base)
        if pruned is not None:
            oldest = max(oldest or 0, pruned + 1)
        for name, size in closed:
            if oldest is not None and binlog_number(name)[1] < oldest:
                # archived before and pruned by retention since (the server may still hold it): copying it
                # again would undo the pruning
                continue
            src = os.path.join(binlog_dir, name)
            dst = os.path.join(log_dir, name)
            if os.path.exists(dst):
                if os.path.getsize(dst) == size:
                    skipped.append(name)
                    continue
                raise DbError('archive binary log', name, 'the archive %s already holds a different file of that '
                              'name (%d bytes, the server has %d); refusing to overwrite it'
                              % (log_dir, os.path.getsize(dst), size))
            digest = _copy_durably(src, dst)
            copied.append({'name': name, 'size': size, 'sha256': digest})
        missing = []
        if archived_before and closed:
            last_before = max(archived_before)
            first_now = binlog_number(closed[0][0])[1]
            if first_now > last_before + 1:
                width = binlog_number(closed[0][0])[2]
                missing = ['%s.%0*d' % (base, width, n) for n in range(last_before + 1, first_now)]
        # a replay from the backup this one builds on (the last full or log backup) needs every
        # binary log from the one that backup stopped in: one purged before it was archived is a
        # hole no point-in-time restore can cross
        base_manifest = (request.get('base') or {}).get('manifest') or {}
        from_file = (base_manifest.get('stop_position') or {}).get('binlog_file')
        if from_file and closed and binlog_number(from_file)[0] == base:
            _b, first_needed, width = binlog_number(from_file)
            have = archived_binlogs(log_dir, base)
            missing = sorted(set(missing) | set('%s.%0*d' % (base, width, n) for n in
                                                range(first_needed, binlog_number(closed[-1][0])[1] + 1)
                                                if n not in have))
        if missing:
            raise DbError('take a log backup of', describe(self), 'binary log%s %s %s purged from the server before '
                          '%s archived: no point-in-time restore from %s can cross the gap. The closed binary '
                          'logs still on the server were archived (%d new); take a new full physical backup '
                          '(db_backup method=physical type=full): log backups after it are restorable'
                          % ('s' if len(missing) > 1 else '', ', '.join(missing), 'were' if len(missing) > 1 else 'was',
                             'they were' if len(missing) > 1 else 'it was', ('backup %s' % base_manifest['id']) if base_manifest.get('id') else 'the archive',
                             len(copied)))
        _write_json(os.path.join(request['dest'], BINLOG_INDEX_FILE),
                    {'format': 1, 'log_dir': log_dir, 'files': copied, 'already_archived': skipped,
                     'missing': missing})
        stop = utc_now()
        stop_gtid = position.get('gtid')
        if self.flavor == 'mariadb' and closed:
            # the GTID position at the end of the last closed binary log, computed by the server from that file:
            # @@gtid_binlog_pos read after FLUSH BINARY LOGS also holds what was committed since, in the new binary
            # log this backup did not archive (a later log backup then found "nothing new" and never archived it)
            stop_gtid = self.fetch_value('SELECT BINLOG_GTID_POS(%s, %s)', (closed[-1][0], closed[-1][1]),
                                         operation='read the GTID position at the end of %s' % closed[-1][0]) or None
        if copied:
            start_pos = {'binlog_file': copied[0]['name'], 'binlog_pos': 4, 'gtid': None}
            stop_pos = {'binlog_file': copied[-1]['name'], 'binlog_pos': copied[-1]['size'], 'gtid': stop_gtid}
        else:
            start_pos = stop_pos = {'binlog_file': position.get('binlog_file'), 'binlog_pos': position.get('binlog_pos'),
                                    'gtid': stop_gtid}
        repo = request.get('repo')
        log_files = [os.path.relpath(os.path.join(log_dir, c['name']), repo) for c in copied] if repo else []
        return {'start_position': start_pos, 'stop_position': stop_pos, 'start_time': iso(start),
                'stop_time': iso(stop), 'databases': [], 'log_files': log_files,
                'server_version': getattr(self, 'version_string', self.version),
                'commands': ['FLUSH BINARY LOGS', 'copy %d closed binary log(s) from %s to %s'
                             % (len(copied), binlog_dir, log_dir)]
                + (["SELECT BINLOG_GTID_POS('%s', %d)" % closed[-1]] if self.flavor == 'mariadb' and closed else []),
                'details': {'flavor': self.flavor, 'layout': 'binlog-archive', 'log_dir': log_dir,
                            'files': copied, 'already_archived': skipped, 'missing': missing,
                            'binlog_basename': basename}}


def describe(engine):
    return '%s server %s:%s' % (engine.flavor, engine.host or 'localhost', engine.port)


def _write_json(path, data):
    tmp = path + '.tmp'
    with open(tmp, 'w') as f:
        json.dump(data, f, indent=2, sort_keys=True)
        f.flush()
        os.fsync(f.fileno())
    os.rename(tmp, path)


def _same_binlog_start(path_a, path_b, length=4096):
    """True when two binary logs begin with the same bytes (their format description and GTID list events
    carry the time the file was created and the GTID state then): the same file, maybe at different sizes.
    True when one cannot be read (no judgement)."""
    try:
        with open(path_a, 'rb') as a, open(path_b, 'rb') as b:
            head_a, head_b = a.read(length), b.read(length)
    except OSError:
        return True
    common = min(len(head_a), len(head_b))
    return head_a[:common] == head_b[:common]


def _copy_durably(src, dst):
    tmp = dst + '.partial'
    digest = hashlib.sha256()
    try:
        with open(src, 'rb') as fin, open(tmp, 'wb') as fout:
            for block in iter(lambda: fin.read(CHUNK), b''):
                digest.update(block)
                fout.write(block)
            fout.flush()
            os.fsync(fout.fileno())
        os.rename(tmp, dst)
    except OSError as exc:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise DbError('copy binary log', os.path.basename(src), str(exc)) from None
    return digest.hexdigest()


def _check_stored_stream(dest, compression, bin_dir=None):
    """Cheap read-back check of a compressed physical stream just written: the compression tool's
    own integrity test (frames, checksums, truncation). A directory backup is checked while it
    is copied (_CopyFollower)."""
    name = STREAM_NAME + compression_spec(compression)['ext']
    unpack = decompressor_argv(compression, bin_dir)
    test = [unpack[0], '-t', '-q'] if compression in ('zstd', 'lz4') else [unpack[0], '-t']
    proc = subprocess.run(test + [os.path.join(dest, name)], capture_output=True, check=False)
    if proc.returncode != 0:
        return ['%s: %s' % (name, _tail(proc.stderr or proc.stdout, 300))]
    return []


def _page_check(checker, path, label):
    """innochecksum of one tablespace: the problem, named by label, or None."""
    proc = subprocess.run([checker, path], capture_output=True, check=False)
    if proc.returncode != 0:
        return '%s: page checksum mismatch (innochecksum: %s)' % (label, _tail(proc.stderr or proc.stdout, 300))
    return None


COPY_LINE = re.compile(r'^\[(\d+)\] \S+ \S+ Copying (.*)$')  # mariadb-backup: "[01] date time Copying a to b"
DONE_LINE = re.compile(r'^\[(\d+)\] \S+ \S+\s+\.\.\.done\s*$')  # then "[01] date time         ...done"
XB_DONE_LINE = re.compile(r'\[Xtrabackup\] Done: Copying (.*)$')  # xtrabackup 8: "... Done: Copying a to b"


def _start_writeback(path):
    """Ask the kernel to start writing a finished file to disk now, without waiting for it
    (sync_file_range SYNC_FILE_RANGE_WRITE): the disk writes it while the copy goes on, and the
    fsync before publication, which is still what makes the file durable, finds little left to
    do. A no-op where the call does not exist."""
    if not _SYNC_FILE_RANGE:
        try:
            import ctypes
            func = ctypes.CDLL(None, use_errno=True).sync_file_range
            func.argtypes = (ctypes.c_int, ctypes.c_int64, ctypes.c_int64, ctypes.c_uint)
        except (OSError, AttributeError):
            func = None
        _SYNC_FILE_RANGE.append(func)
    if _SYNC_FILE_RANGE[0] is None:
        return
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:
        return  # removed since (DDL during the backup): finish() sees what is there
    try:
        _SYNC_FILE_RANGE[0](fd, 0, 0, 2)  # SYNC_FILE_RANGE_WRITE; an error only loses the head start
    finally:
        os.close(fd)


_SYNC_FILE_RANGE = []  # [the C function, or None where there is none] once looked up


def _file_state(path):
    st = os.stat(path)
    return (st.st_size, st.st_mtime_ns, st.st_ctime_ns, st.st_ino)


class _CopyFollower:
    """Hashes and (with verify) innochecksums each file of a physical copy as soon as the tool
    reports it copied, while the copy goes on: the checksums and the read-back check of a backup
    then cost the time of its last files, not a second pass over all of it.

    Nothing rests on the log's wording: ``finish`` walks every file under ``root`` and does the
    work again for any file not seen, or changed (size, mtime, ctime or inode) since it was seen.
    Each finished file's write to disk is started right after its check (without waiting for it),
    so the disk writes while the copy goes on; files are fsynced at the end, all together (fsyncs
    during the copy slowed the copy down more than they saved), and that fsync finds little left."""

    def __init__(self, root, target, checker=None, hashes=True):
        self.root = root
        self.target = os.path.abspath(target)
        self.checker = checker
        self.hashes = hashes
        self.seen = {}  # rel -> (state before the work, sha256 or None, problem or None)
        self.pending = {}  # thread tag -> destination being copied
        self.lock = threading.Lock()
        self.pool = concurrent.futures.ThreadPoolExecutor(max_workers=max(1, os.cpu_count() or 1))
        self.futures = []

    def _destination(self, text):
        cut = text.rfind(' to ' + self.target + os.sep)
        return os.path.normpath(text[cut + 4:]) if cut >= 0 else None

    def line(self, text):
        """One stderr line of the backup tool."""
        match = XB_DONE_LINE.search(text)
        path = None
        if match:
            path = self._destination(match.group(1))
        else:
            match = COPY_LINE.match(text)
            if match:
                path = self._destination(match.group(2))
                if path:
                    self.pending[match.group(1)] = path
                return
            match = DONE_LINE.match(text)
            if match:
                path = self.pending.pop(match.group(1), None)
        if path:
            self.futures.append(self.pool.submit(self._one, path))

    def _one(self, path):
        try:
            state = _file_state(path)
        except OSError:
            return  # renamed or removed since (DDL during the backup): finish() sees what is there
        try:
            digest = sha256_file(path) if self.hashes else None
        except FileNotFoundError:
            return  # removed right after the stat: the same
        problem = None
        if self.checker and _is_tablespace(os.path.basename(path)):
            problem = _page_check(self.checker, path, os.path.relpath(path, os.path.dirname(self.target)))
        if self.hashes:
            _start_writeback(path)
        with self.lock:
            self.seen[os.path.relpath(path, self.root)] = (state, digest, problem)

    def finish(self):
        """After the tool exited 0: ({rel: sha256} of every file under root, problems). With
        ``hashes`` every file and directory under root is durable when it returns."""
        try:
            for future in self.futures:
                future.result()
            again, present = [], []
            for dirpath, _dirs, files in os.walk(self.root):
                for name in files:
                    full = os.path.join(dirpath, name)
                    if os.path.islink(full):
                        continue
                    rel = os.path.relpath(full, self.root)
                    present.append(rel)
                    known = self.seen.get(rel)
                    if known is None or known[0] != _file_state(full):
                        again.append(full)
            list(self.pool.map(self._one, sorted(again, key=lambda f: -os.path.getsize(f))))
            if self.hashes:
                list(self.pool.map(_fsync_path, [os.path.join(self.root, rel) for rel in present]))
                for dirpath, _dirs, _files in sorted(os.walk(self.root), key=lambda w: -len(w[0])):
                    _fsync_path(dirpath)
        finally:
            self.pool.shutdown()
        seen = [(rel, self.seen.get(rel) or (None, None, None)) for rel in present]
        checksums = {rel: work[1] for rel, work in seen if work[1]}
        problems = sorted(work[2] for _rel, work in seen if work[2])
        return checksums, problems

    def abort(self):
        self.pool.shutdown(wait=True, cancel_futures=True)


def _is_tablespace(name):
    # ibdata* is left to --prepare: its doublewrite buffer pages hold copies of other pages and
    # fail innochecksum in any healthy backup
    return name.endswith(('.ibd', '.new')) or bool(re.match(r'^undo\d+$', name))


def _run_following(argv, follower, operation, target, secrets=()):
    """Run the backup tool, feeding its stderr lines to the follower as they come; DbError with
    the tool's own words (masked) when it fails."""
    tail = []
    try:
        proc = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    except OSError as exc:
        raise DbError(operation, target, 'cannot run %s: %s' % (argv[0], exc)) from None
    try:
        for raw in proc.stderr:
            text = raw.decode('utf-8', 'replace').rstrip('\n')
            tail.append(text)
            del tail[:-200]
            follower.line(text)
        rc = proc.wait()
    except BaseException:
        with contextlib.suppress(OSError):
            proc.kill()
        proc.wait()
        follower.abort()
        raise
    finally:
        proc.stderr.close()
    if rc != 0:
        follower.abort()
        raise DbError(operation, target, mask_secrets(_failure_detail(rc, _tail('\n'.join(tail))), secrets))


def _pipe_into(source, unpack, argv):
    """``unpack < source | argv`` (or ``argv < source``); DbError on any failure."""
    err1 = tempfile.TemporaryFile()
    err2 = tempfile.TemporaryFile()
    with open(source, 'rb') as src:
        first = None
        try:
            if unpack:
                first = subprocess.Popen(unpack, stdin=src, stdout=subprocess.PIPE, stderr=err1)
                second = subprocess.Popen(argv, stdin=first.stdout, stdout=subprocess.DEVNULL, stderr=err2)
                first.stdout.close()
            else:
                second = subprocess.Popen(argv, stdin=src, stdout=subprocess.DEVNULL, stderr=err2)
            rc2 = second.wait()
            rc1 = first.wait() if first else 0
        except OSError as exc:
            raise DbError('run', argv[0], str(exc)) from None
    try:
        # a load that failed stops reading and leaves the decompressor writing into a closed pipe
        # (SIGPIPE): the load's own error is the one to name
        if rc1 != 0 and not (rc2 != 0 and rc1 == -signal.SIGPIPE):
            raise DbError('read', os.path.basename(source), _failure_detail(rc1, _read_file_tail(err1)))
        if rc2 != 0:
            raise DbError('load', os.path.basename(source), _failure_detail(rc2, _read_file_tail(err2)))
    finally:
        err1.close()
        err2.close()


def _pipe_out(argv, compress, out_path, operation, target, secrets):
    """``argv | compress > out_path``, fsynced; returns the sha256 of what was written."""
    err1 = tempfile.TemporaryFile()
    err2 = tempfile.TemporaryFile()
    digest = hashlib.sha256()
    try:
        with open(out_path, 'wb') as out:
            first = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=err1)
            second = None
            if compress:
                second = subprocess.Popen(compress, stdin=first.stdout, stdout=subprocess.PIPE, stderr=err2)
                first.stdout.close()
            reader = second.stdout if second else first.stdout
            while True:
                block = reader.read(CHUNK)
                if not block:
                    break
                digest.update(block)
                out.write(block)
            reader.close()
            rc2 = second.wait() if second else 0
            rc1 = first.wait()
            out.flush()
            os.fsync(out.fileno())
        # a compressor that died first leaves the tool writing into a closed pipe: name the compressor
        if rc1 != 0 and not (rc2 != 0 and rc1 == -signal.SIGPIPE):
            raise DbError(operation, target, mask_secrets(_failure_detail(rc1, _read_file_tail(err1)), secrets))
        if rc2 != 0:
            raise DbError('compress', os.path.basename(out_path), _failure_detail(rc2, _read_file_tail(err2)))
    except OSError as exc:
        raise DbError(operation, target, str(exc)) from None
    finally:
        err1.close()
        err2.close()
    return digest.hexdigest()


# ---- physical restore / verification (no connection) -------------------------------------------
def checkpoint_dir(path):
    """The directory holding the checkpoints file of a physical backup."""
    for sub in ('meta', 'data', ''):
        directory = os.path.join(path, sub) if sub else path
        if _first_existing(directory, CHECKPOINT_FILES):
            return directory
    raise DbError('use base backup', path, 'it holds no xtrabackup_checkpoints: not a physical backup')


def _flavor_of(manifest):
    details = manifest.get('details') or {}
    if details.get('flavor'):
        return details['flavor']
    return 'mariadb' if 'mariadb' in str(manifest.get('server_version', '')).lower() else 'mysql'


def _layout_of(path, manifest):
    details = manifest.get('details') or {}
    if os.path.isdir(os.path.join(path, 'data')):
        return 'directory', None
    stream = details.get('stream_file')
    if not stream:
        for name in sorted(os.listdir(path)):
            if name.startswith(STREAM_NAME):
                stream = name
    if stream and os.path.isfile(os.path.join(path, stream)):
        return 'stream', stream
    raise DbError('read physical backup', path, 'neither data/ nor %s* is there' % STREAM_NAME)


def materialize(manifest, path, target, bin_dir=None):
    """Copy (directory layout) or unpack (stream layout) one physical backup into target."""
    flavor = _flavor_of(manifest)
    layout, stream = _layout_of(path, manifest)
    commands = []
    if layout == 'directory':
        shutil.copytree(os.path.join(path, 'data'), target, symlinks=True)
        commands.append('cp -a %s %s' % (shlex.quote(os.path.join(path, 'data')), shlex.quote(target)))
        return commands
    os.makedirs(target)
    source = os.path.join(path, stream)
    unpack = decompressor_argv(compression_of(stream), bin_dir)
    extract = extract_argv(tool(flavor, 'stream', bin_dir), target)
    commands.append((command_line(unpack) + ' ' + shlex.quote(source) + ' | ' if unpack else '')
                    + command_line(extract) + ('' if unpack else ' < ' + shlex.quote(source)))
    try:
        _pipe_into(source, unpack, extract)
    except DbError as exc:
        raise DbError('unpack', stream, exc.detail) from None
    return commands


def _check_target_dir(data_dir, force):
    if os.path.exists(data_dir):
        if not os.path.isdir(data_dir):
            raise DbError('restore into', data_dir, 'it exists and is not a directory')
        entries = os.listdir(data_dir)
        if entries:
            pid = _running_pid(data_dir)
            if pid:
                raise DbError('restore into', data_dir, 'a server (pid %d) is running on it; stop it first' % pid)
            if not force:
                raise DbError('restore into', data_dir, 'the directory is not empty (%d entries); set force to '
                              'replace its contents' % len(entries))


# ---- tablespaces outside the data directory (CREATE TABLE ... DATA DIRECTORY) -----------------
# InnoDB keeps such a table's .ibd in the directory given and a <db>/<table>.isl in the data
# directory holding its absolute path; mariadb-backup copies the .ibd into the backup beside the .isl
# and --move-back moves it to the path the .isl names: the SOURCE server's file. A restore rewrites
# the .isl files of its prepared copy first, so that those tablespaces land in a directory of its own
# beside the new data directory, and the source's files are never touched.
EXTERNAL_SUFFIX = '.external'
EXTERNAL_MARK = '.dbops-external.json'


def external_root(data_dir):
    """The directory a restore into data_dir puts the tablespaces that lived outside the source's
    data directory in: ``<data_dir>.external`` (``<db>/<table>.ibd`` below it)."""
    return os.path.abspath(data_dir).rstrip('/') + EXTERNAL_SUFFIX


def _decode_filename(name):
    """A database or table name from its file name (``@002d`` is ``-``; the two-character codes of
    letters such as ``@0p`` for ``é`` stay: the restored server reads them, check_external_tables)."""
    return re.sub(r'@([0-9a-fA-F]{4})', lambda m: chr(int(m.group(1), 16)), name)


def _read_isl(path):
    with open(path, 'rb') as f:
        return f.read().decode('utf-8', 'replace').strip()


def external_tablespaces(directory):
    """The tablespaces of a (prepared) physical backup copy that lived outside the source's data
    directory: one ``<db>/<table>.isl`` each. Each entry: ``isl`` (relative path), ``name``
    (InnoDB's name, ``<db>/<table>``), ``database``, ``table`` (the table of a partition), ``path``
    (the external .ibd the .isl names)."""
    found = []
    for root, dirs, files in os.walk(directory):
        dirs.sort()
        for name in sorted(files):
            if not name.endswith('.isl'):
                continue
            rel = os.path.relpath(os.path.join(root, name), directory)
            found.append(dict(_external_entry(rel[:-len('.isl')], _read_isl(os.path.join(root, name))), isl=rel))
    return found


def _external_entry(stem, path):
    """{name, database, table, path} of the tablespace InnoDB names ``stem`` (``<db>/<table>``, a
    partition's ``<db>/<table>#P#<part>``), kept at ``path``."""
    table = re.split(r'#[Ss]?[Pp]#', os.path.basename(stem))[0]
    return {'name': stem, 'database': _decode_filename(os.path.dirname(stem)), 'table': _decode_filename(table),
            'path': path}


def external_tablespaces_recorded(rows, datadir):
    """The external tablespaces among InnoDB's tablespaces ``rows`` ({name, path}, from
    information_schema): a table's tablespace whose file lies outside ``datadir``."""
    found = []
    for row in rows:
        name, path = row.get('name') or '', row.get('path') or ''
        if '/' not in name or not os.path.isabs(path) or _within(path, datadir):
            continue   # a system or general tablespace, or a file of the data directory (./db/t.ibd)
        found.append(_external_entry(name, path))
    return sorted(found, key=lambda t: t['name'])


def external_plan(chain, data_dir, force):
    """What a physical restore of ``chain`` (its backups' manifests, log backups left out) into data_dir
    does with the tables created with DATA DIRECTORY, from what the newest backup recorded when it was
    taken: [{database, table, from, to}] (to: under ``<data_dir>.external``), after refusing as the real
    run refuses (check_external_root) when that directory is in the way. None when the backup recorded
    nothing (taken before they were recorded): only the real run, after prepare, sees them."""
    recorded = ((chain[-1] if chain else {}).get('details') or {}).get('external_tablespaces')
    if recorded is None:
        return None
    check_external_root(data_dir, force, recorded)
    root = external_root(data_dir)
    return [{'database': t['database'], 'table': t['table'], 'from': t['path'],
             'to': os.path.join(root, t['name'] + '.ibd')} for t in recorded]


def _within(child, parent):
    child, parent = os.path.normpath(child), os.path.normpath(parent)
    return child == parent or child.startswith(parent.rstrip(os.sep) + os.sep)


def check_external_root(data_dir, force, found):
    """Refuse (DbError, before anything changes) when the external tablespaces ``found`` cannot go to
    ``<data_dir>.external``: it is a link or a file, or it holds files that are not those of an earlier
    restore into data_dir (marked by EXTERNAL_MARK), or are and force is not set. True when it is
    such an earlier restore's directory and force replaces it (with data_dir)."""
    root = external_root(data_dir)
    ours = os.path.isdir(root) and not os.path.islink(root) and os.path.isfile(os.path.join(root, EXTERNAL_MARK))
    if not found:
        return bool(ours and force)
    names = ', '.join('%s.%s (%s)' % (t['database'], t['table'], t['path']) for t in found)
    if os.path.islink(root) or (os.path.exists(root) and not os.path.isdir(root)):
        raise DbError('restore the tablespaces kept outside the data directory into', root, 'it exists and is not '
                      'a directory: move it away (tables with DATA DIRECTORY in the backup: %s)' % names)
    entries = os.listdir(root) if os.path.isdir(root) else []
    if entries and not ours:
        raise DbError('restore the tablespaces kept outside the data directory into', root,
                      'it is not empty (%d entries) and no earlier restore into %s made it: move them away (tables '
                      'with DATA DIRECTORY in the backup: %s)' % (len(entries), data_dir, names))
    if entries and not force:
        raise DbError('restore the tablespaces kept outside the data directory into', root,
                      'it holds the tablespaces of an earlier restore into %s: set force to replace them' % data_dir)
    return bool(entries)


def remap_external_tablespaces(directory, data_dir, found):
    """Rewrite the .isl files of the prepared copy in directory (never the repository's backup) so
    that --move-back puts each external tablespace under ``<data_dir>.external``. Returns the
    mapping (``from`` -> ``to`` added to each entry of ``found``); DbError when an .isl still
    points elsewhere afterwards."""
    root = external_root(data_dir)
    mapping = []
    for table in found:
        new = os.path.join(root, table['name'] + '.ibd')
        isl = os.path.join(directory, table['isl'])
        with open(isl + '.tmp', 'w') as f:
            f.write(new)  # InnoDB writes the path alone, without a newline
        shutil.copymode(isl, isl + '.tmp')
        os.replace(isl + '.tmp', isl)
        mapping.append({'database': table['database'], 'table': table['table'], 'name': table['name'],
                        'from': table['path'], 'to': new})
    stray = [t for t in external_tablespaces(directory) if not _within(t['path'], root)]
    if stray:
        raise DbError('restore', ', '.join('%s.%s' % (t['database'], t['table']) for t in stray),
                      'the prepared copy still names tablespaces outside %s: %s' % (
                          root, ', '.join(t['path'] for t in stray)))
    return mapping


def _make_external_root(data_dir, replace):
    root = external_root(data_dir)
    if replace:
        shutil.rmtree(root)
    os.makedirs(root, exist_ok=True)
    _write_json(os.path.join(root, EXTERNAL_MARK), {'data_dir': os.path.abspath(data_dir)})
    os.chmod(root, 0o750)
    return root


def _scratch_connection(socket_path):
    """A connection to an instance this module restored and started socket-only, without grant
    tables (no password): a drill's scratch instance, or a restore checked before it is handed over."""
    import pymysql  # the driver the engine uses; only needed here
    return pymysql.connect(unix_socket=socket_path, user='root', password='', autocommit=True, connect_timeout=10,
                           charset='utf8mb4')


def check_external_tables(socket_path, mapping):
    """Problems of the remapped tables in the instance answering on socket_path without a password:
    each must open (SELECT), pass CHECK TABLE and be open from its new path. The entries' database
    and table names are set to the server's reading of their file names (``caf@0p`` is ``café``)."""
    import pymysql  # the driver the engine uses; only needed here
    from ansible_collections.dbops.admin.plugins.module_utils._engines.mysql import quote_ident
    problems = []
    try:
        conn = _scratch_connection(socket_path)
    except pymysql.Error as exc:
        return ['%s: cannot connect to the restored instance: %s' % (socket_path, exc)]
    try:
        with conn.cursor() as cur:
            done = set()
            for entry in mapping:
                label = '%s.%s' % (entry['database'], entry['table'])
                try:
                    database, stem = entry['name'].rsplit('/', 1)
                    if stem.startswith('#sql'):
                        continue  # left by an interrupted ALTER TABLE: no table to open, only moved aside
                    cur.execute('SELECT CONVERT(CONVERT(%s USING binary) USING filename), '
                                'CONVERT(CONVERT(%s USING binary) USING filename)',
                                (database, re.split(r'#[Ss]?[Pp]#', stem)[0]))
                    entry['database'], entry['table'] = cur.fetchone()
                    label = '%s.%s' % (entry['database'], entry['table'])
                    qualified = '%s.%s' % (quote_ident(entry['database']), quote_ident(entry['table']))
                    if label not in done:
                        done.add(label)
                        cur.execute('SELECT 1 FROM %s LIMIT 1' % qualified)
                        cur.fetchall()
                        cur.execute('CHECK TABLE ' + qualified)
                        for _tbl, _op, msg_type, msg_text in cur.fetchall():
                            if msg_type.lower() == 'error' or (msg_type.lower() == 'status' and msg_text.upper() != 'OK'):
                                problems.append('%s: CHECK TABLE: %s' % (label, msg_text))
                    cur.execute('SELECT FILENAME FROM information_schema.INNODB_SYS_TABLESPACES WHERE NAME = %s',
                                (entry['name'],))
                    row = cur.fetchone()
                    if row is None or os.path.normpath(row[0]) != os.path.normpath(entry['to']):
                        problems.append('%s: the server opened %s, not %s' % (
                            label, row[0] if row else 'no tablespace', entry['to']))
                except pymysql.Error as exc:
                    problems.append('%s: %s' % (label, exc))
    finally:
        conn.close()
    return problems


def _running_pid(data_dir):
    """The pid of a server running on data_dir: from a pid file in it, or a process working in it
    (a server whose pid file is kept elsewhere, like /run/mysqld); None when there is none."""
    from ansible_collections.dbops.admin.plugins.module_utils._backup_catalog import process_working_in
    for name in os.listdir(data_dir):
        if name.endswith('.pid'):
            try:
                with open(os.path.join(data_dir, name)) as f:
                    pid = int(f.read().strip() or 0)
                os.kill(pid, 0)
                return pid
            except (OSError, ValueError):
                continue
    found = process_working_in(data_dir)
    return found[0] if found else None


def _check_chain(chain):
    if not chain:
        raise DbError('restore', None, 'the backup chain is empty')
    first = chain[0]['manifest']
    if first.get('type', 'full') != 'full':
        raise DbError('restore', first.get('id'), 'a chain starts with a full backup, not %s' % first.get('type'))
    full_to = ((first.get('stop_position') or {}).get('lsn'))
    prev_to = full_to
    for link in chain[1:]:
        man = link['manifest']
        from_lsn = (man.get('start_position') or {}).get('lsn')
        expected = full_to if man.get('type') == 'differential' else prev_to
        if from_lsn is not None and expected is not None and str(from_lsn) != str(expected):
            raise DbError('restore', man.get('id'), '%s backup starts at LSN %s but the chain is at LSN %s'
                          % (man.get('type'), from_lsn, expected))
        prev_to = (man.get('stop_position') or {}).get('lsn')


def _os_ids(os_user):
    if os.geteuid() != 0 or not os_user:
        return None
    try:
        pw = pwd.getpwnam(os_user)
    except KeyError:
        raise DbError('restore as OS user', os_user, 'no such user') from None
    return pw.pw_uid, pw.pw_gid


def _chown_tree(path, ids):
    if ids is None:
        return
    os.chown(path, *ids)
    for root, dirs, files in os.walk(path):
        for name in dirs + files:
            os.lchown(os.path.join(root, name), *ids)


def instance_files(data_dir, os_user=None, create=False):
    """The option file, socket, pid file and error log of a restored instance. The socket is in
    data_dir unless that path is too long for a Unix socket (then in a short directory of its own,
    made with create=True)."""
    from ansible_collections.dbops.admin.plugins.module_utils._backup_catalog import socket_dir_for
    data_dir = os.path.abspath(data_dir)
    sock_dir = socket_dir_for(data_dir, 'mysqld.sock', os_user, create)
    return {'cnf': data_dir.rstrip('/') + '.cnf', 'socket': os.path.join(sock_dir, 'mysqld.sock'),
            'pid': os.path.join(data_dir, 'mysqld.pid'), 'log': os.path.join(data_dir, 'restore-error.log')}


def write_instance_cnf(data_dir, port, backup_cnf=None, flavor='mariadb', gtid=False):
    """The option file of a restored instance (next to data_dir); innodb_* taken from the backup.

    ``gtid``: the backup recorded a MySQL 8 GTID set (the source ran with gtid_mode ON): the restored
    instance runs with GTIDs too, or replaying the source's binary logs (SET @@SESSION.GTID_NEXT=
    'uuid:n') fails with ER_CANT_SET_GTID_NEXT_TO_GTID_WHEN_GTID_MODE_IS_OFF (1781)."""
    files = instance_files(data_dir)
    options = {}
    if backup_cnf and os.path.isfile(backup_cnf):
        for key, value in read_key_values(backup_cnf).items():
            if key.startswith('innodb_') and key not in ('innodb_checksum_algorithm',):
                options[key] = value
    options.update({'datadir': os.path.abspath(data_dir), 'port': str(int(port)), 'bind-address': '127.0.0.1',
                    'socket': files['socket'], 'pid-file': files['pid'], 'log-error': files['log'],
                    'skip-name-resolve': '', 'skip-slave-start': '' if flavor != 'mysql' else None})
    if flavor == 'mysql':
        options.pop('skip-slave-start')
        options['skip-replica-start'] = ''
        if gtid:
            options.update({'gtid-mode': 'ON', 'enforce-gtid-consistency': 'ON'})
    with open(files['cnf'], 'w') as f:
        f.write('# written by dbops.admin db_restore\n[mysqld]\n')
        for key, value in options.items():
            f.write('%s = %s\n' % (key, value) if value != '' else '%s\n' % key)
    os.chmod(files['cnf'], 0o644)
    return files


def start_instance(data_dir, os_user=None, bin_dir=None, major=None, commands=None, flavor=None, extra=(),
                   timeout=300):
    """Start the server of a restored data_dir with its own option file; wait until it answers.

    Returns the command line (also appended to ``commands`` when a list is given); ``major`` is
    accepted for the common backend signature and unused.
    """
    line = _start_instance(data_dir, os_user, bin_dir, flavor or 'mariadb', extra, timeout)
    if isinstance(commands, list):
        commands.append(line)
    return line


def instance_running(data_dir):
    return bool(os.path.isdir(data_dir) and _running_pid(data_dir))


def instance_port(data_dir):
    """The port a restored instance is set to start on (its option file), or None."""
    cnf = instance_files(data_dir)['cnf']
    try:
        return int(read_key_values(cnf).get('port'))
    except (OSError, TypeError, ValueError):
        return None


def set_instance_port(data_dir, port):
    """Start a restored (stopped) instance on another port next time."""
    cnf = instance_files(data_dir)['cnf']
    with open(cnf) as f:
        lines = f.read().splitlines()
    lines = [('port = %d' % int(port)) if re.match(r'\s*port\s*=', line) else line for line in lines]
    with open(cnf + '.tmp', 'w') as f:
        f.write('\n'.join(lines) + '\n')
    os.chmod(cnf + '.tmp', 0o644)
    os.replace(cnf + '.tmp', cnf)


def read_restore_marker(data_dir):
    """The marker restore_physical recorded in data_dir (backup id, target, recovered_to), or None."""
    return restored_marker(data_dir)


def _start_instance(data_dir, os_user, bin_dir, flavor, extra, timeout):
    files = instance_files(data_dir, os_user, create=True)
    argv = [tool(flavor, 'server', bin_dir), '--defaults-file=' + files['cnf']] + list(extra)
    if os.geteuid() == 0 and os_user:
        argv = ['runuser', '-u', os_user, '--'] + argv
    proc = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, stdin=subprocess.DEVNULL,
                            start_new_session=True, close_fds=True)
    deadline = time.time() + timeout
    while time.time() < deadline:
        if proc.poll() is not None:
            raise DbError('start the restored server in', data_dir, _log_tail(files['log']) or
                          'it exited with code %d' % proc.returncode)
        if os.path.exists(files['socket']) and _socket_answers(files['socket']):
            return command_line(argv)
        time.sleep(0.2)
    proc.kill()
    raise DbError('start the restored server in', data_dir, 'it did not answer within %d s: %s'
                  % (timeout, _log_tail(files['log'])))


def _socket_answers(path):
    try:
        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
            sock.settimeout(2)
            sock.connect(path)
            return bool(sock.recv(4))
    except OSError:
        return False


def _log_tail(path):
    try:
        with open(path, errors='replace') as f:
            return _tail(f.read()[-20000:])
    except OSError:
        return ''


def stop_instance(data_dir, os_user=None, bin_dir=None, major=None, mode='fast', timeout=300):
    """Stop the server running on data_dir (SIGTERM to the pid in its pid file). True if one ran.

    mode ``immediate`` kills it (scratch instances of a drill); anything else shuts it down cleanly.
    """
    pid_file = instance_files(data_dir)['pid']
    try:
        with open(pid_file) as f:
            pid = int(f.read().strip())
    except (OSError, ValueError):
        return False
    try:
        os.kill(pid, signal.SIGKILL if mode == 'immediate' else signal.SIGTERM)
    except OSError:
        return False
    deadline = time.time() + timeout
    while time.time() < deadline:
        try:
            done, _status = os.waitpid(pid, os.WNOHANG)
            if done == pid:
                return True
        except ChildProcessError:
            pass
        try:
            os.kill(pid, 0)
        except OSError:
            return True
        time.sleep(0.2)
    os.kill(pid, signal.SIGKILL)
    return True


def _last_event_time(sql_text_path):
    """The time of the last event in decoded binlog output (mariadb-binlog run with TZ=UTC)."""
    last = None
    pattern = re.compile(rb'^#(\d{6})\s+(\d{1,2}):(\d{2}):(\d{2})\s+server id')
    with open(sql_text_path, 'rb') as f:
        for line in f:
            if line.startswith(b'#'):
                match = pattern.match(line)
                if match:
                    last = match
    if last is None:
        return None
    day = last.group(1).decode()
    return datetime.datetime(2000 + int(day[:2]), int(day[2:4]), int(day[4:6]), int(last.group(2)),
                             int(last.group(3)), int(last.group(4)), tzinfo=datetime.timezone.utc)


TARGET_POSITION_HELP = ('target_position accepts {binlog_file: <name>, binlog_pos: <number>} or the string '
                        '<name>:<number> (stop in that archived binary log at that position, like '
                        'mysql-bin.000042:1234) or {gtid: <domain-server-sequence>} or that GTID alone (stop at '
                        'that GTID, like 0-1-100, MariaDB 10.8 or later) or, MySQL 8, {gtid: <GTID set>} or that set '
                        'alone (replay the transactions of the set, like 3e11fa47-71ca-11e1-9e33-c80aa9429562:1-123)')
_BINLOG_POSITION_RE = re.compile(r'^\s*([^:\s]+)\s*:\s*(\S+)\s*$')
GTID_RE = re.compile(r'^\s*\d+-\d+-\d+(\s*,\s*\d+-\d+-\d+)*\s*$')


def check_target_position(position):
    """The target_position of a binary log replay, normalized; DbError naming the accepted keys otherwise.

    {binlog_file, binlog_pos} or {gtid}: other keys (an LSN is PostgreSQL's), a file without a position,
    a position without a file or both forms at once would replay something else than asked for.
    """
    if position is None or position == {} or (isinstance(position, str) and not position.strip()):
        return None
    if isinstance(position, str):
        # the string forms: '<binlog_file>:<binlog_pos>' or a GTID position, checked as their dict forms
        if GTID_RE.match(position) or mysql_gtid.looks_like(position):
            return check_target_position({'gtid': position})
        match = _BINLOG_POSITION_RE.match(position)
        if match:
            return check_target_position({'binlog_file': match.group(1), 'binlog_pos': match.group(2)})
        raise DbError('recover to target_position', position, 'neither <binlog_file>:<binlog_pos> (like '
                      'mysql-bin.000042:1234) nor a MariaDB GTID position (like 0-1-42) nor a MySQL GTID set; '
                      + TARGET_POSITION_HELP)
    if not isinstance(position, dict):
        raise DbError('recover to target_position', str(position), 'not a dictionary; ' + TARGET_POSITION_HELP)
    label = ', '.join('%s=%s' % (k, position[k]) for k in sorted(position, key=str))
    unknown = sorted(str(k) for k in position if k not in ('binlog_file', 'binlog_pos', 'gtid'))
    if unknown:
        raise DbError('recover to target_position', label, 'unknown key %s; %s' % (', '.join(unknown), TARGET_POSITION_HELP))
    given = {k: v for k, v in position.items() if v is not None and str(v).strip() != ''}
    if 'gtid' in given:
        if len(given) > 1:
            raise DbError('recover to target_position', label, 'give either gtid or binlog_file and binlog_pos, '
                          'not both; ' + TARGET_POSITION_HELP)
        if mysql_gtid.looks_like(given['gtid']):
            try:
                return {'gtid': mysql_gtid.normalize(given['gtid'])}
            except DbError as exc:
                raise DbError(exc.operation, exc.target, '%s; %s' % (exc.detail, TARGET_POSITION_HELP)) from None
        if not GTID_RE.match(str(given['gtid'])):
            raise DbError('recover to target_position', label, 'gtid %r is not a MariaDB GTID position (like 0-1-42, '
                          'several separated by commas) nor a MySQL GTID set (like '
                          '3e11fa47-71ca-11e1-9e33-c80aa9429562:1-123); %s' % (given['gtid'], TARGET_POSITION_HELP))
        return {'gtid': re.sub(r'\s+', '', str(given['gtid']))}
    if set(given) != {'binlog_file', 'binlog_pos'}:
        missing = sorted({'binlog_file', 'binlog_pos'} - set(given))
        raise DbError('recover to target_position', label or '{}', '%s missing; %s' % (' and '.join(missing),
                                                                                       TARGET_POSITION_HELP))
    name = str(given['binlog_file'])
    if binlog_number(name)[0] is None or '/' in name or name.startswith('.'):
        raise DbError('recover to target_position', label, 'binlog_file %r is not a binary log name (like '
                      'mysql-bin.000042); %s' % (name, TARGET_POSITION_HELP))
    pos = given['binlog_pos']
    if isinstance(pos, bool) or not str(pos).strip().isdigit() or int(str(pos).strip()) < 4:
        raise DbError('recover to target_position', label, 'binlog_pos %r is not a position in a binary log (a '
                      'number, 4 or more); %s' % (pos, TARGET_POSITION_HELP))
    return {'binlog_file': name, 'binlog_pos': int(str(pos).strip())}


def _gtid_sequences(text):
    """{domain: sequence} of a MariaDB GTID position ('0-1-42,1-2-7')."""
    found = {}
    for part in re.split(r'[,\s]+', str(text or '').strip()):
        match = re.match(r'^(\d+)-\d+-(\d+)$', part)
        if match:
            found[int(match.group(1))] = max(found.get(int(match.group(1)), 0), int(match.group(2)))
    return found


def target_before(stop_position, target_position):
    """True when target_position lies before a backup's stop position (the replay can only go
    forward from there), False when at or after it, None when it cannot be told. A binlog_file of
    another series than the backup's is a DbError."""
    target = check_target_position(target_position)
    stop = stop_position or {}
    if not target:
        return None
    if target.get('gtid') and mysql_gtid.looks_like(target['gtid']):
        return mysql_gtid.target_before(stop.get('gtid'), target['gtid'])
    if target.get('gtid'):
        done = _gtid_sequences(stop.get('gtid'))
        wanted = _gtid_sequences(target['gtid'])
        if not done or not wanted:
            return None
        # a domain the backup already holds past the target cannot be undone
        return any(seq < done.get(domain, 0) for domain, seq in wanted.items())
    if not stop.get('binlog_file'):
        return None
    base, number, _width = binlog_number(target['binlog_file'])
    stop_base, stop_number, _w = binlog_number(stop['binlog_file'])
    if stop_base is None:
        return None
    if base is None or os.path.basename(base) != os.path.basename(stop_base):
        raise DbError('recover to target_position', target['binlog_file'], 'not one of the binary logs of the backed-up '
                      'server (they are named %s.NNNNNN)' % os.path.basename(stop_base))
    return (number, int(target['binlog_pos'])) < (stop_number, int(stop.get('binlog_pos') or 4))


def target_unreachable(log_dir, target_position):
    """Why the binary log archive in log_dir cannot reach target_position (a message), or None.

    A position past the end of the archive (a binlog_file not archived yet, a binlog_pos past the
    end of its archived file, a GTID beyond the newest log backup's or in a domain the archive does
    not hold) would replay everything there is, or nothing at all (mariadb-binlog stops at once
    on a GTID of an unknown domain), and still look like a restore to that position."""
    target = check_target_position(target_position)
    if not target or not log_dir:
        return None
    if target.get('binlog_file'):
        base, number, _width = binlog_number(target['binlog_file'])
        found = archived_binlogs(log_dir, base)
        if not found:
            return None
        newest = max(found)
        if number > newest:
            return ('the archive %s ends with %s: %s is not in it (take a log backup with db_backup type=log first)'
                    % (log_dir, found[newest], target['binlog_file']))
        if number in found:
            size = os.path.getsize(os.path.join(log_dir, found[number]))
            if target['binlog_pos'] > size:
                return ('binlog_pos %d is past the end of %s (%d bytes in the archive%s)'
                        % (target['binlog_pos'], found[number], size,
                           '; take a log backup with db_backup type=log first' if number == newest else ''))
        return None
    logs = [m for m in _log_manifests(log_dir) if m.get('type') == 'log' and (m.get('stop_position') or {}).get('gtid')]
    if not logs:
        return None
    end = logs[-1]['stop_position']['gtid']
    if mysql_gtid.looks_like(target['gtid']):
        return mysql_gtid.unreachable(end, target['gtid'], log_dir, logs[-1].get('id'))
    reached = _gtid_sequences(end)
    beyond = ['%d-*-%d' % (domain, seq) for domain, seq in sorted(_gtid_sequences(target['gtid']).items())
              if seq > reached.get(domain, -1)]
    if beyond:
        return ('the archive %s ends at GTID %s (log backup %s): %s is past it (a domain the server never logged, or '
                'not archived yet: take a log backup with db_backup type=log first)'
                % (log_dir, end, logs[-1].get('id'), ', '.join(beyond)))
    return None


def replay_plan(chain, log_dir, target_time=None, target_position=None, until=None):
    """(files, start_pos, stop_position) of the binlog replay after a restored chain.

    ``until``: without a target, the stop_position of the log backup being restored: the replay
    ends where that log backup ended (the end of the last binary log it archived).
    """
    target_position = check_target_position(target_position)
    stop = chain[-1]['manifest'].get('stop_position') or {}
    if not stop.get('binlog_file'):
        raise DbError('recover to a point in time', None,
                      'the backup records no binary log position (binary logging was off when it was taken)')
    finished = chain[-1]['manifest'].get('stop_time') or chain[-1]['manifest'].get('finished_at')
    if target_time is not None and finished and target_time < parse_time(finished).replace(microsecond=0):
        raise DbError('recover to', iso(target_time), 'the backup %s ends at %s, after the target: restore an '
                      'older backup' % (chain[-1]['manifest'].get('id') or '', finished))
    if target_position and target_position.get('gtid'):
        mysql_gtid.check_backup(chain[-1]['manifest'], target_position['gtid'])
    if target_position and target_before(stop, target_position):
        where = ('GTID %s' % stop['gtid']) if target_position.get('gtid') else \
            ('%s:%s' % (stop['binlog_file'], stop.get('binlog_pos')))
        raise DbError('recover to', ', '.join('%s=%s' % kv for kv in sorted(target_position.items())),
                      'the backup %s ends at %s, after the target: restore an older backup'
                      % (chain[-1]['manifest'].get('id') or '', where))
    end_file = None
    stop_arg = None
    unreachable = target_unreachable(log_dir, target_position)
    if unreachable:
        raise DbError('recover to', ', '.join('%s=%s' % kv for kv in sorted(target_position.items())), unreachable)
    if target_position:
        if target_position.get('binlog_file'):
            end_file = target_position['binlog_file']
            stop_arg = str(target_position['binlog_pos'])
        else:
            stop_arg = target_position['gtid']
    elif until is not None and target_time is None:
        end_file = until.get('binlog_file')
        if not end_file or binlog_number(end_file)[0] is None:
            raise DbError('replay the log backup', None, 'it records no binary log stop position')
        base, number, width = binlog_number(end_file)
        if number in archived_binlogs(log_dir, base):
            stop_arg = str(int(until.get('binlog_pos') or 4))
        else:
            # a log backup that archived nothing new ends at the start of the server's new binary
            # log: everything before it is in the previous (closed, archived) one
            end_file = '%s.%0*d' % (base, width, number - 1)
    if end_file is None and (target_time is not None or (target_position or {}).get('gtid')):
        # only the binary logs up to the one the replay stops in: one missing after it is no hole for this target
        end_file = replay_end_file(log_dir, stop['binlog_file'], int(stop.get('binlog_pos') or 4), target_time,
                                   (target_position or {}).get('gtid'))
    files, missing = binlog_range(log_dir, stop['binlog_file'], end_file)
    if missing:
        raise DbError('recover to a point in time', None, 'binary log %s is missing from the archive %s'
                      % (', '.join(missing), log_dir))
    if not files:
        raise DbError('recover to a point in time', None, 'the archive %s holds no binary log from %s on: run '
                      'db_backup type=log first' % (log_dir, stop['binlog_file']))
    damaged = archived_log_problems(log_dir, files)
    if damaged:
        raise DbError('recover to a point in time', None, 'the binary log archive %s is damaged: %s'
                      % (log_dir, '; '.join(damaged)))
    return files, int(stop.get('binlog_pos') or 4), stop_arg


def _replay_request(request):
    """(target_time, target_position, log_dir, until) of a restore_physical request: ``until`` is the
    stop position of the log backup restored without a target (its binary logs replayed to its end)."""
    target_time = parse_time(request['target_time']) if request.get('target_time') else None
    target_position = check_target_position(request.get('target_position'))
    log_dir = request.get('log_dir') or (os.path.join(request['repo'], 'logs') if request.get('repo') else None)
    last = request.get('last') or {}
    until = None
    if not (target_time or target_position) and last.get('type') == 'log':
        until = last.get('stop_position') or {}
    return target_time, target_position, log_dir, until


def check_replay(request):
    """restore_physical's refusals of its binary log replay (a binary log missing from the archive or
    differing from its log backup's sha256, a target the archive does not reach, a binary log that does not
    decode), raised without reading the backup or writing anything: what check mode reports; then the
    replay's predicted {target_reached, recovered_to} (None without a replay). ``chain``: [{'manifest'}]."""
    target_time, target_position, log_dir, until = _replay_request(request)
    if target_time or target_position or until is not None:
        files, start_pos, stop_arg = replay_plan(request['chain'], log_dir, target_time, target_position, until)
        # the decode the real run starts with (checksums verified), its output thrown away
        flavor = _flavor_of(request['chain'][0]['manifest'])
        decode = binlog_replay_argv(tool(flavor, 'binlog', request.get('bin_dir')),
                                    [os.path.join(log_dir, n) for n in files], start_pos,
                                    stop_time=target_time, stop_position=stop_arg)
        proc = subprocess.run(decode, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, check=False,
                              env=dict(os.environ, TZ='UTC'))
        if proc.returncode != 0:
            raise DbError('decode the binary logs', ', '.join(files), _tail(proc.stderr))
        return predict_replay(log_dir, files, start_pos, target_time, stop_arg,
                              gtid=bool((target_position or {}).get('gtid')),
                              bin_dir=request.get('bin_dir'), flavor=flavor)
    return None


def predict_replay(log_dir, files, start_pos, target_time=None, stop_arg=None, gtid=False, bin_dir=None,
                   flavor='mariadb'):
    """What the replay of replay_plan's (files, start_pos, stop_arg) will report, read from the archived
    binary logs without decoding them: {target_reached, recovered_to}, as restore_physical computes them
    (a time target is reached when an event at or after it is archived; recovered_to is then the target,
    else the time of the last archived event; a position target: the time of the last event before it).
    target_reached None and recovered_to None when a file cannot be read directly (an encrypted binary log)
    and the decoder cannot tell either."""
    limit = target_time.replace(microsecond=0) if target_time is not None else None
    limit_ts = limit.timestamp() if limit is not None else None
    remaining = set(_gtid_sequences(stop_arg).items()) if gtid and stop_arg else set()
    stop_pos = int(stop_arg) if stop_arg is not None and not gtid else None
    newest = None
    try:
        for index, name in enumerate(files):
            last_file = index == len(files) - 1
            for pos, when, etype, event_gtid in binlog_events(os.path.join(log_dir, name),
                                                              start_pos if index == 0 else 4):
                if last_file and stop_pos is not None and pos >= stop_pos:
                    break
                if limit_ts is not None and when >= limit_ts:
                    return {'target_reached': True, 'recovered_to': iso(target_time)}
                if when and (newest is None or when > newest):
                    newest = when
                if etype == GTID_EVENT and event_gtid:
                    remaining -= set(event_gtid.items())
                    if gtid and not remaining:
                        return {'target_reached': True,
                                'recovered_to': iso(datetime.datetime.fromtimestamp(when, datetime.timezone.utc))}
    except (OSError, ValueError):
        if limit is None:
            return {'target_reached': True, 'recovered_to': None}   # as the real run reports a replay without a time
        end_time = _archive_end_time(tool(flavor, 'binlog', bin_dir), os.path.join(log_dir, files[-1]))
        if end_time is None:
            return {'target_reached': None, 'recovered_to': None}
        reached = end_time >= limit
        return {'target_reached': reached, 'recovered_to': iso(target_time) if reached else iso(end_time)}
    last = iso(datetime.datetime.fromtimestamp(newest, datetime.timezone.utc)) if newest else None
    if limit is not None:
        return {'target_reached': False, 'recovered_to': last}
    return {'target_reached': True, 'recovered_to': last}


def restore_physical(request):
    """Prepare a chain of physical backups into data_dir, start it, replay binlogs to a target."""
    chain = request['chain']
    data_dir = os.path.abspath(request['data_dir'])
    port = int(request['port'])
    force = bool(request.get('force'))
    bin_dir = request.get('bin_dir')
    os_user = request.get('os_user') or ('mysql' if os.geteuid() == 0 else None)
    target_time, target_position, log_dir, until = _replay_request(request)
    flavor = _flavor_of(chain[0]['manifest'] if chain else {})
    _check_chain(chain)
    _check_target_dir(data_dir, force)
    ids = _os_ids(os_user)
    program = tool(flavor, 'backup', bin_dir)
    replay = None
    if target_time or target_position or until is not None:
        replay = replay_plan(chain, log_dir, target_time, target_position, until)
        binlog_tool = tool(flavor, 'binlog', bin_dir)
        client = tool(flavor, 'client', bin_dir)
    tool(flavor, 'server', bin_dir)
    parent = os.path.dirname(data_dir)
    os.makedirs(parent, exist_ok=True)
    work = tempfile.mkdtemp(prefix='.dbops-restore-', dir=parent)
    commands = []
    recovered_to = chain[-1]['manifest'].get('stop_time')
    reached = None
    try:
        if replay:
            # decoded (every event's checksum verified) before anything is prepared or written into data_dir:
            # a damaged or unreadable binary log fails the restore with data_dir untouched
            names, start_pos, stop_arg = replay
            sql_path = os.path.join(work, 'replay.sql')
            decode = binlog_replay_argv(binlog_tool, [os.path.join(log_dir, n) for n in names], start_pos,
                                        stop_time=target_time, stop_position=stop_arg)
            commands.append('TZ=UTC ' + command_line(decode) + ' > ' + shlex.quote(sql_path))
            with open(sql_path, 'wb') as out:
                out.write(b'FLUSH PRIVILEGES;\n')  # load the grant tables; this session keeps its rights
                out.flush()
                proc = subprocess.run(decode, stdout=out, stderr=subprocess.PIPE, check=False,
                                      env=dict(os.environ, TZ='UTC'))
            if proc.returncode != 0:
                raise DbError('decode the binary logs', ', '.join(names), '%s (nothing was written into %s)'
                              % (_tail(proc.stderr), data_dir))
        full = os.path.join(work, 'full')
        commands += materialize(chain[0]['manifest'], chain[0]['path'], full, bin_dir)
        last = len(chain) == 1
        argv = prepare_argv(program, full, flavor=flavor, last=last)
        commands.append(command_line(argv))
        run_checked(argv, 'prepare the full backup', chain[0]['manifest'].get('id') or chain[0]['path'])
        for number, link in enumerate(chain[1:], start=1):
            inc = os.path.join(work, 'inc%d' % number)
            commands += materialize(link['manifest'], link['path'], inc, bin_dir)
            argv = prepare_argv(program, full, inc, flavor=flavor, last=number == len(chain) - 1)
            commands.append(command_line(argv))
            run_checked(argv, 'apply the %s backup' % link['manifest'].get('type', 'incremental'),
                        link['manifest'].get('id') or link['path'])
            shutil.rmtree(inc, ignore_errors=True)
        # tables created with DATA DIRECTORY: their .isl files name the source's files; before anything
        # outside this run's work directory changes, point them into <data_dir>.external
        found = external_tablespaces(full)
        replace_external = check_external_root(data_dir, force, found)
        mapping = remap_external_tablespaces(full, data_dir, found) if found else []
        for entry in mapping:
            commands.append('rewrite %s: %s -> %s' % (entry['name'] + '.isl', entry['from'], entry['to']))
        if os.path.isdir(data_dir):
            for name in os.listdir(data_dir):  # force was checked above
                victim = os.path.join(data_dir, name)
                if os.path.isdir(victim) and not os.path.islink(victim):
                    shutil.rmtree(victim)
                else:
                    os.unlink(victim)
        else:
            os.makedirs(data_dir)
        if mapping:
            _make_external_root(data_dir, replace_external)
        elif replace_external:
            shutil.rmtree(external_root(data_dir))  # an earlier restore's, replaced with data_dir (force)
        backup_cnf = os.path.join(work, 'backup-my.cnf')
        shutil.copy(os.path.join(full, 'backup-my.cnf'), backup_cnf)
        argv = move_back_argv(program, full, data_dir)
        argv[1] = '--defaults-file=' + backup_cnf
        commands.append(command_line(argv))
        run_checked(argv, 'copy the prepared backup into', data_dir)
        files = write_instance_cnf(data_dir, port, backup_cnf, flavor,
                                   gtid=any((link['manifest'].get('stop_position') or {}).get('gtid') for link in chain))
        os.chmod(data_dir, 0o750)
        _chown_tree(data_dir, ids)
        if mapping:
            _chown_tree(external_root(data_dir), ids)
        local_only = ['--skip-grant-tables', '--skip-networking']
        if replay:
            # --skip-symbolic-links: a replayed CREATE TABLE ... DATA DIRECTORY / INDEX DIRECTORY names the
            # source's directories; the server ignores it (with a warning) and creates the table in data_dir
            commands.append(start_instance(data_dir, os_user, bin_dir, flavor=flavor,
                                           extra=local_only + ['--skip-symbolic-links']))
            if mapping:  # before the replay: its FLUSH PRIVILEGES makes the socket ask for passwords
                _verify_remapped(data_dir, files['socket'], mapping, commands)
            last_time = _last_event_time(sql_path)
            load = [client, '--no-defaults', '--socket=' + files['socket'], '--user=root', '--binary-mode',
                    '--max-allowed-packet=' + MAX_PACKET]
            commands.append(command_line(load) + ' < ' + shlex.quote(sql_path))
            try:
                _pipe_into(sql_path, None, load)
            except DbError as exc:
                stop_instance(data_dir)
                raise DbError('replay the binary logs into', data_dir, exc.detail) from None
            stop_instance(data_dir)
            if target_time is not None:
                end_time = _archive_end_time(binlog_tool, os.path.join(log_dir, names[-1]))
                reached = end_time is not None and end_time >= target_time.replace(microsecond=0)
                recovered_to = iso(target_time) if reached else iso(last_time or end_time)
            else:
                reached = True
                recovered_to = iso(last_time) if last_time else recovered_to
        if mapping and not replay and not request.get('hba_local_trust'):
            commands.append(start_instance(data_dir, os_user, bin_dir, flavor=flavor, extra=local_only))
            _verify_remapped(data_dir, files['socket'], mapping, commands)
            stop_instance(data_dir)
        # a drill instance (hba_local_trust) answers only on its socket, without passwords
        commands.append(start_instance(data_dir, os_user, bin_dir, flavor=flavor,
                                       extra=local_only if request.get('hba_local_trust') else []))
        if mapping and not replay and request.get('hba_local_trust'):
            _verify_remapped(data_dir, files['socket'], mapping, commands)
        if request.get('marker') is not None:
            # target_reached too: a later run finding this restore held reports it, never the target as reached
            _write_json(os.path.join(data_dir, MARKER_FILE), dict(request['marker'], recovered_to=recovered_to,
                                                                  **({'target_reached': reached}
                                                                     if reached is not None else {})))
    finally:
        shutil.rmtree(work, ignore_errors=True)
    files = instance_files(data_dir)
    return {'data_dir': data_dir, 'port': port, 'socket': files['socket'], 'socket_dir': os.path.dirname(files['socket']),
            'option_file': files['cnf'],
            'recovered_to': recovered_to, 'target_reached': reached, 'commands': commands,
            'binlogs_replayed': replay[0] if replay else [],
            'external_tablespaces': [dict((k, e[k]) for k in ('database', 'table', 'from', 'to')) for e in mapping],
            'warnings': ['%s.%s was created with DATA DIRECTORY: its tablespace %s was restored to %s (the source\'s '
                         'file is left alone)' % (e['database'], e['table'], e['from'], e['to']) for e in mapping]}


def _verify_remapped(data_dir, socket_path, mapping, commands):
    """The restored instance (socket only, no passwords) opens the remapped tables from their new
    paths; else it is stopped and the restore fails naming them."""
    commands.append('mariadb --socket=%s  # SELECT, CHECK TABLE and the tablespace path of %s' % (
        shlex.quote(socket_path), ', '.join(sorted(set('%s.%s' % (e['database'], e['table']) for e in mapping)))))
    problems = check_external_tables(socket_path, mapping)
    if problems:
        stop_instance(data_dir)
        raise DbError('open the tables restored outside the data directory in', data_dir, '; '.join(problems))


def _archive_end_time(binlog_tool, path):
    """Time of the last event of the newest archived binlog (its closing rotate)."""
    with tempfile.NamedTemporaryFile(prefix='dbops-binlog-') as tmp:
        proc = subprocess.run([binlog_tool, '--no-defaults', path], stdout=tmp, stderr=subprocess.DEVNULL,
                              check=False, env=dict(os.environ, TZ='UTC'))
        if proc.returncode != 0:
            return None
        tmp.flush()
        return _last_event_time(tmp.name)


def _expected_files(manifest):
    files = manifest.get('files') or []
    if isinstance(files, dict):
        return [(name, (meta or {}).get('sha256'), (meta or {}).get('size')) for name, meta in files.items()]
    out = []
    for item in files:
        if isinstance(item, dict):
            out.append((item.get('path') or item.get('name'), item.get('sha256'), item.get('size')))
    return out


def verify_physical(manifest, path, scratch_dir, log_dir=None, bin_dir=None, os_user=None):
    """Problems of one physical (or log) backup, each naming a file; [] when it restores.

    Checks the recorded sha256 of every file still present, unpacks and prepares a copy in
    scratch_dir (a full backup; an incremental is unpacked and its checkpoints checked),
    runs innochecksum on the prepared tablespaces, and checks that the binary log archive
    has no hole from the backup's stop position to its newest file.
    """
    problems = []
    flavor = _flavor_of(manifest)
    # an encrypted backup's manifest records the ciphertext (checked by the catalog before it
    # was decrypted into path): the plaintext copy differs in size and hash by design
    for rel, digest, size in [] if manifest.get('encryption') else _expected_files(manifest):
        if not rel:
            continue
        full = os.path.join(path, rel)
        if not os.path.isfile(full):
            continue
        if size is not None and os.path.getsize(full) != int(size):
            problems.append('%s: size %d, the manifest records %s' % (rel, os.path.getsize(full), size))
        elif digest and sha256_file(full) != digest:
            problems.append('%s: sha256 differs from the manifest' % rel)
    if log_dir is None:
        log_dir = guess_log_dir(path)
    if manifest.get('type') == 'log':
        problems += _verify_log_backup(path, log_dir, bin_dir, flavor)
        return problems
    work = tempfile.mkdtemp(prefix='verify-', dir=scratch_dir)
    try:
        target = os.path.join(work, 'copy')
        try:
            materialize(manifest, path, target, bin_dir)
        except DbError as exc:
            problems.append(str(exc))
            return problems
        if not _first_existing(target, CHECKPOINT_FILES):
            problems.append('%s: no xtrabackup_checkpoints in the backup' % path)
            return problems
        # mariadb-backup copies only pages whose checksum is right: every page of the
        # unprepared copy must still pass innochecksum (redo applied later could hide a flip)
        checker = tool(flavor, 'checksum', bin_dir)
        for rel in _tablespaces(target):
            problem = _page_check(checker, os.path.join(target, rel), _backup_name(manifest, path, rel))
            if problem:
                problems.append(problem)
        if manifest.get('type', 'full') == 'full' and not problems:
            program = tool(flavor, 'backup', bin_dir)
            proc = subprocess.run(prepare_argv(program, target, flavor=flavor), capture_output=True, check=False)
            if proc.returncode != 0:
                problems.append('%s: mariadb-backup --prepare failed: %s' % (path, _tail(proc.stderr)))
    finally:
        shutil.rmtree(work, ignore_errors=True)
    stop = manifest.get('stop_position') or {}
    if stop.get('binlog_file') and log_dir:
        base = binlog_number(stop['binlog_file'])[0]
        archived = archived_binlogs(log_dir, base)
        if archived and max(archived) >= binlog_number(stop['binlog_file'])[1]:
            names, missing = binlog_range(log_dir, stop['binlog_file'])
            problems += ['%s: binary log missing from the archive %s (needed for point-in-time recovery '
                         'from this backup)' % (name, log_dir) for name in missing]
            problems += ['%s (needed for point-in-time recovery from this backup)' % problem
                         for problem in archived_log_problems(log_dir, names)]
    return problems


def _backup_name(manifest, path, rel):
    """Where a tablespace of the unpacked copy is stored in the backup."""
    details = manifest.get('details') or {}
    if details.get('layout') == 'stream' or not os.path.isdir(os.path.join(path, 'data')):
        return '%s (in %s)' % (rel, details.get('stream_file') or STREAM_NAME)
    return os.path.join('data', rel)


def _tablespaces(directory):
    found = []
    for root, _dirs, files in os.walk(directory):
        for name in files:
            if _is_tablespace(name):
                found.append(os.path.relpath(os.path.join(root, name), directory))
    return sorted(found)


def _verify_log_backup(path, log_dir, bin_dir, flavor):
    problems = []
    index = os.path.join(path, BINLOG_INDEX_FILE)
    if not os.path.isfile(index):
        return ['%s: missing from the log backup' % BINLOG_INDEX_FILE]
    with open(index) as f:
        data = json.load(f)
    log_dir = log_dir or data.get('log_dir')
    for item in data.get('files', []):
        full = os.path.join(log_dir or '', item['name'])
        if not os.path.isfile(full):
            problems.append('%s: binary log missing from the archive %s' % (item['name'], log_dir))
        elif sha256_file(full) != item['sha256']:
            problems.append('%s: sha256 differs from the log backup record' % item['name'])
    for name in data.get('missing', []):
        problems.append('%s: binary log was purged from the server before it was archived' % name)
    return problems


def guess_log_dir(path):
    """<repo>/logs for a backup at <repo>/<id>/data (or <repo>/<id>)."""
    here = os.path.abspath(path)
    for up in (os.path.dirname(os.path.dirname(here)), os.path.dirname(here)):
        candidate = os.path.join(up, 'logs')
        if os.path.isdir(candidate):
            return candidate
    return None


def restored_marker(data_dir):
    """The marker restore_physical recorded in data_dir, or None."""
    try:
        with open(os.path.join(data_dir, MARKER_FILE)) as f:
            return json.load(f)
    except (OSError, ValueError):
        return None


def _entry_files(entry):
    return list(entry.get('pre') or []) + list(entry.get('files') or [entry['file']]) + list(entry.get('post') or [])


def verify_logical(manifest, path, bin_dir=None, os_user=None):
    """Problems of a logical backup (each naming a file); [] when every dump file reads completely."""
    problems = []
    index_path = os.path.join(path, INDEX_FILE)
    if not os.path.isfile(index_path):
        return ['%s: missing from the backup' % INDEX_FILE]
    try:
        with open(index_path) as f:
            index = json.load(f)
    except ValueError as exc:
        return ['%s: unreadable (%s)' % (INDEX_FILE, exc)]
    # compressed files: the tool's own integrity test (frame checksums, truncation) in C,
    # without piping the SQL through Python, several at once; plain files: their last bytes.
    # ``tested_files`` ({file: size}, only in the result of the run that just wrote the backup,
    # never in a stored manifest) names table files that run already tested after writing them.
    tested = (manifest or {}).get('tested_files') or {}
    tails = {}
    tests = []
    data = {}
    for entry in index.get('databases', []):
        data.update(entry.get('data') or {})
        for fname in _entry_files(entry):
            source = os.path.join(path, fname)
            if not os.path.isfile(source):
                problems.append('%s: dump of database %s is missing' % (fname, entry['name']))
                continue
            if fname in tested and os.path.getsize(source) == tested[fname]:
                continue  # tested by the backup run that wrote it, right after writing it
            unpack = decompressor_argv(compression_of(fname), bin_dir)
            if unpack is None:
                if fname in data:
                    if os.path.getsize(source) != data[fname].get('bytes'):
                        problems.append('%s: %d bytes, the export wrote %s (truncated or changed)'
                                        % (fname, os.path.getsize(source), data[fname].get('bytes')))
                    continue
                with open(source, 'rb') as f:
                    f.seek(max(0, os.path.getsize(source) - 4096))
                    tails[fname] = f.read()
                continue
            tests.append(source)

    def test(source):
        return _run_integrity_test(source, bin_dir)

    if tests:
        with concurrent.futures.ThreadPoolExecutor(max_workers=max(1, min(4, os.cpu_count() or 1))) as pool:
            problems.extend(p for p in pool.map(test, tests) if p)
    if not problems:
        ends = index.get('stream_ends')
        if ends is None and index.get('databases'):
            ends = [_entry_files(index['databases'][-1])[-1]]
        completed = index.get('completed') or {}
        for fname in list(ends or []) + [f for f in data if f not in tails]:
            if fname in tails:
                ok = b'-- Dump completed' in tails[fname]
            else:
                ok = completed.get(fname, False)
            if not ok:
                problems.append('%s: the dump is truncated (no "Dump completed" line)' % fname
                                if fname not in data else '%s: the export did not complete' % fname)
    return problems


def drill_check(request):
    """Row counts and CHECK TABLE of every user table of a scratch instance (restore drill).

    The instance was started by restore_physical with ``hba_local_trust``: it listens only on
    its socket (``socket_dir``/mysqld.sock) and asks no password.
    """
    import pymysql  # the driver the engine uses; only needed here
    from ansible_collections.dbops.admin.plugins.module_utils._engines.mysql import quote_ident
    sock = os.path.join(request['socket_dir'], 'mysqld.sock')
    commands = ['mariadb --socket=%s  # CHECK TABLE and COUNT(*) of every user table' % shlex.quote(sock)]
    tables, problems = [], []
    try:
        conn = _scratch_connection(sock)
    except pymysql.Error as exc:
        return {'tables': [], 'problems': ['%s: cannot connect to the restored instance: %s' % (sock, exc)],
                'commands': commands}
    try:
        with conn.cursor() as cur:
            cur.execute("SELECT TABLE_SCHEMA, TABLE_NAME FROM information_schema.TABLES WHERE TABLE_TYPE IN "
                        "('BASE TABLE', 'SYSTEM VERSIONED') AND TABLE_SCHEMA NOT IN ('mysql', 'sys', 'information_schema', "
                        "'performance_schema') ORDER BY 1, 2")
            names = cur.fetchall()
            for database, table in names:
                qualified = '%s.%s' % (quote_ident(database), quote_ident(table))
                cur.execute('SELECT COUNT(*) FROM ' + qualified)
                rows = int(cur.fetchone()[0])
                tables.append({'database': database, 'name': table, 'rows': rows})
                cur.execute('CHECK TABLE ' + qualified)
                for _tbl, _op, msg_type, msg_text in cur.fetchall():
                    if msg_type.lower() == 'error' or (msg_type.lower() == 'status' and msg_text.upper() != 'OK'):
                        problems.append('%s.%s: CHECK TABLE: %s' % (database, table, msg_text))
    except pymysql.Error as exc:
        problems.append('%s: %s' % (sock, exc))
    finally:
        conn.close()
    return {'tables': tables, 'problems': problems, 'commands': commands}
