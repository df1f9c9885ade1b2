# -*- coding: utf-8 -*-
# Copyright: dbops.admin contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Private to dbops.admin: the backup repository (engine-independent part of db_backup/db_restore).

REPOSITORY LAYOUT
-----------------
::

    <repo>/.lock                   fcntl lock + pid of the run holding it
    <repo>/<id>/manifest.json      one completed backup (written last, fsynced, published by rename)
    <repo>/<id>/data/...           its files (ciphertext when encrypted; same relative names)
    <repo>/.incoming-<id>/         a run in progress; left behind by a killed run = reported failed
    <repo>/.deleting-<id>/         a backup being deleted (left by a killed delete: removed by the next locked run)
    <parent>/.dbops-scratch-<label>-<pid>/   private scratch beside the repository (plaintext of an encrypted
                                   backup, decrypted copies); left by a killed run: removed by the next locked run
    <repo>/logs/                   continuous archive: PostgreSQL WAL segments / MariaDB binlogs
    <repo>/pgbackrest/             pgBackRest's own repository (method pgbackrest)

Ids are ``YYYYMMDDTHHMMSSZ-<type>[-N]`` (UTC; listings order them with id_sort_key). ``latest`` is derived from completed
manifests only, never from a directory name.

ENGINE CONTRACT (what _engines/postgresql_backup.py and _engines/mysql_backup.py implement)
-------------------------------------------------------------------------------------------
Methods of the connected engine object (mixins PostgresBackup / MysqlBackup):

``engine.backup_methods()`` -> ``{'logical': [types], 'physical': [types], 'pgbackrest': [types]}``
    what this server supports (types among full, incremental, differential, log); the module
    fails clearly for anything else. Omit a method (or give []) when unsupported.

``engine.backup_create(request)`` -> dict. ``request`` keys:
    method: logical|physical|pgbackrest; type: full|incremental|differential|log;
    databases: [names] or None (= all); compression: zstd|gzip|lz4|none; compression_level: int|None;
    jobs: int; dest: an EMPTY directory (owned by os_user) to write the backup files into;
    base: None or {'manifest': dict, 'path': plain (decrypted) dir of the base backup} (incremental:
    the parent; differential: the last full; log: the last log backup or physical full, with path None:
    a log backup uses the base's positions only, nothing is decrypted; an encrypted MariaDB/MySQL
    physical base: only its meta/ is decrypted, mariadb-backup reads only its checkpoints); repo: repository root; log_dir: <repo>/logs
    (continuous WAL / binlog archive, for type log); bin_dir: str|None; os_user: str|None;
    connection: dict of the module's connection options (login_host, login_port, login_user,
    login_password, login_unix_socket, ...) so that tools can be run against the same server
    (pass the password in the environment, never on a command line);
    verify: bool (the module's verify option; the engine may verify its own output, e.g. pg_verifybackup);
    backup_id: the id this backup will get.
  Returns {start_position: dict, stop_position: dict (PostgreSQL {lsn, timeline, wal_file};
    MariaDB {binlog_file, binlog_pos, gtid}), start_time, stop_time (ISO 8601 UTC),
    databases: [...], server_version: str, commands: [command lines, secrets masked],
    details: dict}. Optional keys: ``verified`` (bool: the engine verified its output),
    ``verified_checksums`` ({relative path: sha256} the engine has just verified, reused instead
    of hashing again), ``synced`` (bool: every file and directory under dest was made durable after
    its last write, so publication does not fsync them again), ``log_files`` ([paths relative to repo] the archive files this log backup
    covers: the catalog hashes them into the manifest), ``restart_required`` (bool),
    ``published`` (False: nothing to publish, e.g. archiving just switched on), ``changed``,
    ``external_bytes`` (bytes this backup added outside its directory, e.g. in pgBackRest's repository).
  Writes only under dest (and log_dir for log). Raises DbError on failure. Compression is done by
  the engine with its tools (details must say how, for restore).

``engine.restore_logical(request)`` -> {rows_restored: int, tables: [{name, rows}], commands: [...]}
    request = {manifest, path (plain dir), target_database (None = original names), force: bool,
    jobs: int, databases: [names from the backup] or None (all), connection, bin_dir, os_user,
    marker: dict (what to record in the target so a repeated restore is unchanged),
    scratch_dir: a private directory (owned by os_user) for decompressed copies}.
    Restoring into an existing non-empty database without force raises DbError before changing
    anything.
``engine.restore_marker(database)`` -> the marker dict recorded by restore_logical, or None (optional).
``engine.logical_verify(manifest, path, bin_dir, os_user)`` -> [problems] (optional): tool-level check
    that a logical backup is readable (pg_restore -l).

Module-level functions in the engine file (no connection: the source server may be down):
``restore_physical(request)`` -> {data_dir, port, recovered_to, commands}; request = {chain:
    [{'manifest', 'path'}, ...] full first, data_dir, port, os_user, bin_dir, target_time (ISO 8601
    or None), target_position (dict or None), log_dir, force, repo, marker, last (the manifest asked
    for: may be a log backup), log_chain (log backups of the chain), hba_local_trust (drill: scratch
    instance reachable over its socket only)}; leaves a running server listening on
    127.0.0.1:port (restored, recovered to the target, promoted). Extra keys returned: socket_dir.
``verify_physical(manifest, path, scratch_dir, log_dir=None, bin_dir=None, os_user=None)`` -> list of
    problems ([] = fine), each naming the file.
``verify_logical(manifest, path, bin_dir=None, os_user=None)`` -> problems (used with verify=true).
``read_restore_marker(data_dir)``, ``instance_running(data_dir)``, ``start_instance(data_dir, os_user,
    bin_dir, major, commands)``: idempotence of physical restores.
``stop_instance(data_dir, os_user, bin_dir)`` (optional): stop a server started by restore_physical.
``drill_check(request)`` (optional): checks of a scratch instance for the restore drill.

THE CATALOG (this file) does: layout, ids, manifest.json, sha256 of every file, atomic
publication, the lock, encryption (via _backup_crypto), retention, max_age, failed runs.
"""

from __future__ import annotations

import contextlib
import datetime
import errno
import fcntl
import hashlib
import json
import os
import pwd
import re
import shutil

from ansible_collections.dbops.admin.plugins.module_utils import _backup_crypto as crypto
from ansible_collections.dbops.admin.plugins.module_utils._errors import DbError

MANIFEST = 'manifest.json'
DATA = 'data'
LOGS = 'logs'
INCOMING = '.incoming-'
DELETING = '.deleting-'
SCRATCH = '.dbops-scratch-'
OWNER = '.dbops-owner'     # in a scratch directory: {pid, start_ticks} of the process that made it
LOCK = '.lock'
RUN_INFO = 'run.json'
FORMAT_VERSION = 1
TYPES = ('full', 'incremental', 'differential', 'log')
METHODS = ('logical', 'physical', 'pgbackrest')
_ID_RE = re.compile(r'^\d{8}T\d{6}Z-(full|incremental|differential|log)(-\d+)?$')


def id_sort_key(backup_id):
    """Sort key of backup ids in the order they were made: a second's first id ``<time>-<type>``, then its
    counter suffixes ``-2``, ``-3``, ... ``-10`` compared as numbers (as strings ``-10`` came before ``-2``).
    Listings sort with it; ``latest`` and retention follow the completion order (completion_key)."""
    text = str(backup_id or '')
    match = _ID_RE.match(text)
    if not match or not match.group(2):
        return (text, 1)
    return (text[:-len(match.group(2))], int(match.group(2)[1:]))


def is_backup_id(text):
    """Is text shaped like the id of a backup (not a path, a run directory or a typo)?"""
    return bool(isinstance(text, str) and _ID_RE.match(text))


_SCRATCH_RE = re.compile(r'^\.dbops-scratch-([a-z]+)-(\d+)$')


# ---- time --------------------------------------------------------------------------------
def utcnow():
    return datetime.datetime.now(datetime.timezone.utc)


def iso(moment):
    return moment.astimezone(datetime.timezone.utc).isoformat(timespec='seconds').replace('+00:00', 'Z')


def parse_time(text):
    """ISO 8601 to an aware datetime; a naive time is taken as UTC."""
    if isinstance(text, datetime.datetime):
        moment = text
    else:
        value = str(text).strip().replace(' ', 'T', 1)
        if value.endswith('Z') or value.endswith('z'):
            value = value[:-1] + '+00:00'
        try:
            moment = datetime.datetime.fromisoformat(value)
        except ValueError:
            raise DbError('read time', repr(text), 'use ISO 8601, e.g. 2026-01-31T23:59:00Z') from None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=datetime.timezone.utc)
    return moment


_DURATION_RE = re.compile(r'^\s*(\d+(?:\.\d+)?)\s*([smhdw]?)\s*$')
_DURATION_PART_RE = re.compile(r'\s*(\d+(?:\.\d+)?)\s*([smhdw])')
_ISO_DURATION_RE = re.compile(r'^p(?:(\d+(?:\.\d+)?)w)?(?:(\d+(?:\.\d+)?)d)?'
                              r'(?:t(?:(\d+(?:\.\d+)?)h)?(?:(\d+(?:\.\d+)?)m)?(?:(\d+(?:\.\d+)?)s)?)?$')
_UNITS = {'': 1, 's': 1, 'm': 60, 'h': 3600, 'd': 86400, 'w': 604800}


def parse_duration(value):
    """'90' / '90s' / '30m' / '23h' / '7d' / '2w', a sum of them ('1h30m', '1d 12h') or an ISO 8601 duration
    in weeks, days, hours, minutes and seconds ('PT20H', 'P1DT12H', 'P2W') -> seconds."""
    if value is None:
        return None
    if isinstance(value, (int, float)):
        return float(value)
    text = str(value).strip().lower()
    match = _DURATION_RE.match(text)
    if match:
        return float(match.group(1)) * _UNITS[match.group(2)]
    iso = _ISO_DURATION_RE.match(text)
    if iso and text not in ('p', 'pt') and not text.endswith('t') and any(iso.groups()):
        return sum(float(n) * u for n, u in zip(iso.groups(), (604800, 86400, 3600, 60, 1)) if n)
    parts = _DURATION_PART_RE.findall(text)
    if parts and ''.join('%s%s' % part for part in parts) == re.sub(r'\s+', '', text):
        return sum(float(n) * _UNITS[u] for n, u in parts)
    raise DbError('read duration', repr(value), 'use seconds or a number with s, m, h, d or w (23h, 1h30m), or an '
                  'ISO 8601 duration (PT23H)')


# ---- files -------------------------------------------------------------------------------
def sha256_file(path, bufsize=1024 * 1024):
    digest = hashlib.sha256()
    with open(path, 'rb') as f:
        while True:
            block = f.read(bufsize)
            if not block:
                break
            digest.update(block)
    return digest.hexdigest()


def walk_files(root):
    """Relative paths of every regular file under root, sorted."""
    found = []
    for dirpath, dirnames, filenames in os.walk(root):
        dirnames.sort()
        for name in filenames:
            full = os.path.join(dirpath, name)
            if os.path.isfile(full) and not os.path.islink(full):
                found.append(os.path.relpath(full, root))
    return sorted(found)


def walk_dirs(root):
    """Relative paths of every directory under root (not root itself, not symbolic links), sorted.

    Recorded in the manifest (``dirs``): a directory empty at backup time (PostgreSQL's pg_notify,
    pg_replslot, ...) holds no file, so the file list alone would lose it."""
    found = []
    for dirpath, dirnames, _filenames in os.walk(root):
        dirnames.sort()
        for name in dirnames:
            full = os.path.join(dirpath, name)
            if not os.path.islink(full):
                found.append(os.path.relpath(full, root))
    return sorted(found)


def fsync_path(path):
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def hash_and_sync(root, rels, known=None, sync=True):
    """{rel: sha256} of files under root (a digest in ``known`` is taken as it is), each file
    fsynced after it is read when ``sync``. Several files at a time, largest first: sha256 runs
    outside the interpreter lock and an fsync waits for the disk, so both cores and the disk are
    busy together (one file after another left a physical backup waiting on each in turn)."""
    import concurrent.futures
    known = known or {}
    order = sorted(rels, key=lambda rel: -os.path.getsize(os.path.join(root, rel)))

    def one(rel):
        full = os.path.join(root, rel)
        digest = known.get(rel) or sha256_file(full)
        if sync:
            fsync_path(full)
        return rel, digest

    workers = max(2, min(8, (os.cpu_count() or 2) * 2))
    with concurrent.futures.ThreadPoolExecutor(max_workers=workers) as pool:
        return dict(pool.map(one, order))


def chown_tree(path, user):
    """Give a tree to the OS user the database tools run as (only when we are root)."""
    if not user or os.geteuid() != 0:
        return
    pw = pwd.getpwnam(user)
    for dirpath, dirnames, filenames in os.walk(path):
        os.chown(dirpath, pw.pw_uid, pw.pw_gid)
        for name in dirnames + filenames:
            os.lchown(os.path.join(dirpath, name), pw.pw_uid, pw.pw_gid)


def write_json_atomic(path, data):
    tmp = path + '.tmp'
    with open(tmp, 'w') as f:
        json.dump(data, f, indent=2, sort_keys=True)
        f.write('\n')
        f.flush()
        os.fsync(f.fileno())
    os.rename(tmp, path)
    fsync_path(os.path.dirname(path))


def dir_size(path):
    total = 0
    for rel in walk_files(path):
        total += os.path.getsize(os.path.join(path, rel))
    return total


def process_working_in(path):
    """(pid, program name) of a running process whose working directory is path, or None. A
    database server changes into its data directory: this finds a server on a data directory
    whose pid file is kept elsewhere (Debian: /run/mysqld)."""
    try:
        real = os.path.realpath(path)
        names = os.listdir('/proc')
    except OSError:
        return None
    for name in names:
        if not name.isdigit() or int(name) == os.getpid():
            continue
        try:
            if os.readlink('/proc/%s/cwd' % name) != real:
                continue
            with open('/proc/%s/comm' % name) as f:
                return int(name), f.read().strip()
        except OSError:
            continue
    return None


# sockaddr_un holds 108 bytes with the final NUL
MAX_SOCKET_PATH = 107


def short_socket_dir(data_dir):
    """The short socket directory socket_dir_for uses for data_dir when the data directory is too deep."""
    import tempfile
    return os.path.join(tempfile.gettempdir(), 'dbops-sock-' +
                        hashlib.sha256(os.path.abspath(data_dir).encode()).hexdigest()[:16])


def socket_dir_for(data_dir, socket_name, os_user=None, create=False):
    """The directory of a restored instance's Unix socket: its data directory, or, when the socket
    path would be longer than a Unix socket path may be, a short directory named after the data
    directory (always the same one) in the system's temporary directory, made (create=True) private
    to the OS user the server runs as."""
    data_dir = os.path.abspath(data_dir)
    if len(os.path.join(data_dir, socket_name)) <= MAX_SOCKET_PATH:
        return data_dir
    short = short_socket_dir(data_dir)
    if create:
        os.makedirs(short, mode=0o700, exist_ok=True)
        if os_user and os.geteuid() == 0:
            pw = pwd.getpwnam(os_user)
            os.chown(short, pw.pw_uid, pw.pw_gid)
        os.chmod(short, 0o700)
    return short


def port_in_use(port, host='127.0.0.1'):
    """True when something on this host listens on (or holds) that TCP port."""
    import socket
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        # as a server binds: connections of a stopped server in TIME_WAIT do not count, a listener does
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((host, int(port)))
        except OSError:
            return True
    return False


def check_port_free(port, data_dir):
    """Refuse, before anything changes, to restore an instance onto a port already taken."""
    if port_in_use(port):
        raise DbError('restore into', data_dir, 'port %s is already in use on this host (another server listens '
                      'on it): choose a free port' % port)


def _pid_alive(pid):
    try:
        os.kill(int(pid), 0)
    except (OSError, ValueError, TypeError) as exc:
        return getattr(exc, 'errno', None) == errno.EPERM
    return True


def _process_info(pid):
    """(state, start time in clock ticks since boot) of a process from /proc, or (None, None)."""
    try:
        with open('/proc/%d/stat' % int(pid)) as f:
            fields = f.read().rsplit(')', 1)[1].split()
        return fields[0], int(fields[19])
    except (OSError, ValueError, IndexError):
        return None, None


# the tools a run starts that write into the repository or its scratch directories
_TOOL_NAMES = ('pg_basebackup', 'pgbackrest', 'pg_dump', 'pg_dumpall', 'pg_restore', 'pg_verifybackup',
               'mariadb-backup', 'mariabackup', 'xtrabackup', 'mbstream', 'xbstream', 'mariadb-dump', 'mysqldump',
               'mariadb', 'mysql', 'zstd', 'gzip', 'lz4', 'tar', 'psql')
_SERVER_NAMES = ('postgres', 'postmaster', 'mariadbd', 'mysqld')


def _proc_fields(pid):
    """(program name, parent pid, argv) of a process from /proc, or None."""
    try:
        with open('/proc/%d/stat' % pid) as f:
            stat = f.read()
        with open('/proc/%d/cmdline' % pid, 'rb') as f:
            argv = [a.decode('utf-8', 'replace') for a in f.read().split(b'\0') if a]
    except OSError:
        return None
    try:
        name = stat[stat.index('(') + 1:stat.rindex(')')]
        ppid = int(stat.rsplit(')', 1)[1].split()[1])
    except (ValueError, IndexError):
        return None
    return name, ppid, argv


def orphan_tools(paths):
    """Backup tools (pg_basebackup, pgbackrest, mariadb-backup, zstd, ...) still running with one of
    paths in their command line, left by a killed run: not started by a database server (its
    archive_command runs pgbackrest archive-push or cp into the repository), not this process or
    one of its ancestors. -> [(pid, name)]."""
    try:
        pids = [int(n) for n in os.listdir('/proc') if n.isdigit()]
    except OSError:
        return []
    mine = set()
    pid = os.getpid()
    while pid > 1 and pid not in mine:
        mine.add(pid)
        fields = _proc_fields(pid)
        pid = fields[1] if fields else 1
    found = []
    prefixes = [p.rstrip(os.sep) + os.sep for p in paths]
    for pid in pids:
        if pid in mine:
            continue
        fields = _proc_fields(pid)
        if not fields or fields[0] not in _TOOL_NAMES:
            continue
        line = ' '.join(fields[2])
        if not any(prefix in line or line.endswith(prefix.rstrip(os.sep)) for prefix in prefixes):
            continue
        parent, seen = fields[1], 0
        served = False
        while parent > 1 and seen < 64:
            up = _proc_fields(parent)
            if up is None:
                break
            if up[0] in _SERVER_NAMES:
                served = True
                break
            parent, seen = up[1], seen + 1
        if not served:
            found.append((pid, fields[0]))
    return found


def stop_processes(pids, grace=5.0):
    """SIGTERM, then SIGKILL after grace seconds for what still runs."""
    import signal
    import time
    for pid in pids:
        with contextlib.suppress(OSError):
            os.kill(pid, signal.SIGTERM)
    deadline = time.time() + grace
    while time.time() < deadline and any(_pid_alive(p) and _process_info(p)[0] not in (None, 'Z') for p in pids):
        time.sleep(0.1)
    for pid in pids:
        if _pid_alive(pid) and _process_info(pid)[0] not in (None, 'Z'):
            with contextlib.suppress(OSError):
                os.kill(pid, signal.SIGKILL)


def _boot_time():
    try:
        with open('/proc/stat') as f:
            return next(int(line.split()[1]) for line in f if line.startswith('btime '))
    except (OSError, ValueError, IndexError, StopIteration):
        return None


def owner_gone(pid, mtime, start_ticks=None):
    """Whether the process that created a directory named after ``pid`` is gone: no such process (or only its
    zombie), or the pid now belongs to another process - its start differs from ``start_ticks`` (recorded by
    ``Repository.scratch``), or, with nothing recorded, it started after the directory was last changed
    (``mtime``: a directory of a live process is changed after that process started)."""
    if not _pid_alive(pid):
        return True
    state, ticks = _process_info(pid)
    if state in ('Z', 'X'):
        return True
    if ticks is None:
        return False
    if start_ticks is not None:
        return int(start_ticks) != ticks
    boot = _boot_time()
    # 2 s of slack: the boot time in /proc/stat is in whole seconds
    return boot is not None and mtime < boot + ticks / float(os.sysconf('SC_CLK_TCK')) - 2


_SERVER_PID_FILES = ('postmaster.pid', 'mysqld.pid')


def _server_running_in(path):
    """The pid of a database server still running on a data directory under path (a killed drill's scratch
    instance), or None."""
    for dirpath, _dirnames, filenames in os.walk(path):
        for name in _SERVER_PID_FILES:
            if name in filenames:
                try:
                    with open(os.path.join(dirpath, name)) as f:
                        pid = int(f.readline().strip() or 0)
                except (OSError, ValueError):
                    continue
                if pid and _pid_alive(pid):
                    return pid
    return None


# ---- retention (pure) ----------------------------------------------------------------------
def is_damaged(manifest):
    """A backup known bad: a ``state: verified`` run found problems (``verified: false`` with
    ``verify_problems``). A backup that was simply never verified (``verify: false``) is not damaged:
    nothing says it is bad."""
    return manifest.get('verified') is False and bool(manifest.get('verify_problems'))


def retention_group(manifest):
    """What a full backup stands for in retention: its engine and method and, for a logical dump,
    which databases it holds (every database, or that list): a dump of one database never counts
    as a full of the others, so it never pushes out the last backup that holds them."""
    method = manifest.get('method') or ''
    scope = ''
    if method == 'logical':
        scope = '*' if manifest.get('all_databases') else ','.join(sorted(manifest.get('databases') or []))
    return '%s/%s/%s' % (manifest.get('engine') or '', method, scope)


def completion_key(manifest):
    """Sort key of completed backups, oldest first: ``finished_at`` (whole seconds), then ``finished_ns`` (the
    nanosecond clock at the end of the run, recorded since runs finishing in the same second were ordered by id,
    that is by their start second and type: a log backup finishing in the second a full started was taken for
    one built on that full), then the id."""
    return (manifest.get('finished_at') or '', manifest.get('finished_ns') or 0, id_sort_key(manifest.get('id')))


def retention_plan(manifests, full=None, days=None, now=None):
    """Which completed backups to keep and which to delete.

    Keeps the ``full`` newest valid full backups of each method (logical, physical, pgbackrest are
    counted apart: a nightly logical dump never pushes the physical fulls a point-in-time
    restore needs out of the count; logical dumps of different sets of databases too, see
    retention_group) with everything built on them, everything younger than
    ``days``, the whole parent chain of anything kept, and never leaves a method without its
    newest valid full. A damaged full (``is_damaged``: a verification found problems) is not
    restorable: it never counts towards the ``full`` to keep, so it never pushes a valid one out;
    it goes like any backup outside the policy, but only while a valid full of its method is kept.
    A method whose fulls are all damaged keeps all of them (there is nothing better to restore
    from). Returns (keep_ids, delete_ids), both sorted.
    """
    now = now or utcnow()
    by_id = {m['id']: m for m in manifests}
    completed = [m for m in manifests if m.get('status') == 'completed']
    keep = set()

    def root_of(m):
        seen = set()
        while m is not None and m.get('type') != 'full' and m.get('parent_id') and m['id'] not in seen:
            seen.add(m['id'])
            m = by_id.get(m['parent_id'])
        return m

    if full is None and days is None:
        return sorted(by_id, key=id_sort_key), []
    fulls = sorted((m for m in completed if m.get('type') == 'full'),
                   key=completion_key, reverse=True)
    kept_roots = set()
    methods = sorted({retention_group(m) for m in fulls})

    def valid_fulls(method):
        return [f for f in fulls if retention_group(f) == method and not is_damaged(f)]

    if full is not None:
        for method in methods:
            kept_roots |= {m['id'] for m in valid_fulls(method)[:max(int(full), 0)]}
    cutoff = None
    if days is not None:
        try:
            cutoff = now - datetime.timedelta(days=float(days))
        except OverflowError:
            # days: inf, 1e9...: older than any date a backup can carry, so every backup is young enough
            cutoff = datetime.datetime.min.replace(tzinfo=now.tzinfo)
    for m in completed:
        root = root_of(m)
        if root is not None and root['id'] in kept_roots:
            keep.add(m['id'])
        if cutoff is not None and m.get('finished_at'):
            if parse_time(m['finished_at']) >= cutoff:
                keep.add(m['id'])
    # a restorable backup of each method must remain: its newest valid full (and, below, its chain);
    # with no valid full at all, every full of the method stays
    for method in methods:
        valid = valid_fulls(method)
        if not valid:
            keep |= {f['id'] for f in fulls if retention_group(f) == method}
        elif not any(f['id'] in keep for f in valid):
            keep.add(valid[0]['id'])
    # parent chains of everything kept
    for backup_id in list(keep):
        m = by_id.get(backup_id)
        seen = set()
        while m is not None and m.get('parent_id') and m['id'] not in seen:
            seen.add(m['id'])
            parent = by_id.get(m['parent_id'])
            if parent is None:
                break
            keep.add(parent['id'])
            m = parent
    delete = sorted((i for i in by_id if i not in keep), key=id_sort_key)
    return sorted(keep, key=id_sort_key), delete


# ---- pgBackRest sets (pure) -------------------------------------------------------------------
def pgbackrest_label(manifest):
    """The pgBackRest set label a catalog entry stands for (None: not a pgBackRest backup)."""
    if manifest.get('method') != 'pgbackrest':
        return None
    return (manifest.get('details') or {}).get('label') or None


def pgbackrest_dependents(sets, label):
    """Labels of the pgBackRest sets built on ``label`` (its prior, or a set they reference), oldest first.

    ``sets``: {label: set as ``pgbackrest info --output=json`` lists it}."""
    return [other for other, s in sets.items()
            if other != label and (s.get('prior') == label or label in (s.get('reference') or []))]


def pgbackrest_expire_refusal(sets, label, catalog_ids=None, extra_full=False):
    """Why ``pgbackrest expire --set=<label>`` must not run now, or None.

    Sets built on it would go with it (pgBackRest expires them too): they are deleted first. pgBackRest
    keeps at least one full set: the only full set goes only after another full is taken (``extra_full``:
    the run takes one before). ``catalog_ids``: {label: catalog id} to name the dependents by."""
    catalog_ids = catalog_ids or {}
    dependents = pgbackrest_dependents(sets, label)
    if dependents:
        named = ['%s (pgBackRest set %s)' % (catalog_ids[d], d) if d in catalog_ids
                 else 'pgBackRest set %s (not in the catalog: expire it with pgbackrest expire --set=%s)' % (d, d)
                 for d in dependents]
        return 'backups %s build on its pgBackRest set %s: delete them first' % (', '.join(named), label)
    if (sets.get(label) or {}).get('type') == 'full' and not extra_full and not any(
            s.get('type') == 'full' for other, s in sets.items() if other != label):
        return ('its pgBackRest set %s is the only full set, and pgBackRest keeps at least one: take another '
                'pgbackrest full backup first' % label)
    return None


def pgbackrest_parent(manifests, details):
    """The catalog entry a new pgBackRest incremental/differential builds on, from pgBackRest's own record.

    ``details``: the new backup's details (``prior``: the set pgBackRest built it on; ``reference``: the
    sets it takes files from). Returns (catalog id or None, the prior label when the catalog does not list
    it): then the newest referenced set the catalog lists stands in."""
    by_label = {pgbackrest_label(m): m['id'] for m in manifests if pgbackrest_label(m)}
    prior = details.get('prior')
    if not prior:
        return None, None
    if prior in by_label:
        return by_label[prior], None
    for label in reversed(details.get('reference') or []):
        if label in by_label:
            return by_label[label], prior
    return None, prior


# ---- the repository ------------------------------------------------------------------------
PRUNED_MARKER = '.pruned.json'


def read_pruned_marker(log_dir):
    """{'last': the newest archived log name retention removed} from logs/.pruned.json, or {}."""
    try:
        with open(os.path.join(log_dir, PRUNED_MARKER)) as f:
            data = json.load(f)
        return data if isinstance(data, dict) else {}
    except (OSError, ValueError):
        return {}


ANY = object()   # fresh_backup: this part of the request is not checked


def covers_databases(manifest, databases):
    """Whether a backup holds the databases asked for (None: all of them).

    A physical (or pgBackRest) backup holds the whole instance. A logical one covers a list when it
    holds every name of it; it covers "all databases" only when it was itself taken of all databases
    (``all_databases`` in the manifest: a backup of [a, b] is not a backup of all, even when a and b
    were all there was, since a database created later would be missing)."""
    if manifest.get('method') != 'logical':
        return True
    if databases is None:
        return manifest.get('all_databases') is True
    return set(databases) <= set(manifest.get('databases') or [])


def _opens(manifest, encryption_key):
    record = manifest.get('encryption')
    if not encryption_key:
        return not record
    if not record:
        return False
    try:
        crypto.key_for(record, encryption_key, manifest.get('id', ''))
    except DbError:
        return False
    return True


def _read_only_fs(path):
    """True when ``path`` lies on a file system mounted read-only."""
    try:
        return bool(os.statvfs(path).f_flag & os.ST_RDONLY)
    except OSError:
        return False


def _unwritable(path):
    """Why the existing directory ``path`` cannot be written to, in a few words."""
    if _read_only_fs(path):
        return 'it is on a read-only file system'
    return 'no permission to write into it'


class Repository:
    """A backup repository directory."""

    def __init__(self, path, os_user=None):
        if path is None or not str(path).strip():
            # abspath('') is the current directory: a backup would land wherever the module happens to run
            raise DbError('use backup repository', repr(path if path is not None else ''),
                          'the path is empty: give the repository directory as repo')
        self.path = os.path.abspath(path)
        self.os_user = os_user
        self._lock_fd = None
        self.swept = []     # leftovers of killed runs removed (or found but kept) when this run took the lock

    # -- paths
    def backup_dir(self, backup_id):
        return os.path.join(self.path, backup_id)

    def data_dir(self, backup_id):
        return os.path.join(self.path, backup_id, DATA)

    @property
    def log_dir(self):
        return os.path.join(self.path, LOGS)

    def exists(self):
        return os.path.isdir(self.path)

    def foreign(self):
        """A directory holding files, none of them a repository's (backups, logs/, pgbackrest/, the
        lock, runs): not a repository, so nothing is written into it."""
        try:
            names = os.listdir(self.path)
        except OSError:
            return False
        return bool(names) and not any(_ID_RE.match(n) or n in (LOGS, 'pgbackrest', LOCK) or n.startswith(INCOMING)
                                       for n in names)

    def check_path(self):
        """Fail clearly, before anything is written, when the repository path cannot be a repository:
        it (or the first existing directory above it) is not a directory, or we may not create it there."""
        if os.path.lexists(self.path) and not os.path.isdir(self.path):
            raise DbError('use backup repository', self.path,
                          'it is a file, not a directory: give a directory (existing or to be created) as repo')
        if os.path.isdir(self.path):
            if not os.access(self.path, os.W_OK | os.X_OK):
                raise DbError('use backup repository', self.path, '%s: give a directory on a local writable '
                              'filesystem as repo' % _unwritable(self.path))
            return
        parent = os.path.dirname(self.path)
        while not os.path.lexists(parent):
            parent = os.path.dirname(parent)
        if not os.path.isdir(parent):
            raise DbError('create backup repository', self.path,
                          '%s is a file, not a directory: give a repo path under a directory' % parent)
        if not os.access(parent, os.W_OK | os.X_OK):
            if _read_only_fs(parent):
                raise DbError('create backup repository', self.path, '%s is on a read-only file system: give a '
                              'directory on a local writable filesystem as repo' % parent)
            raise DbError('create backup repository', self.path,
                          'no permission to create it in %s: create the directory first (writable by the '
                          'database tools\' OS user) or give a writable path' % parent)

    def ensure(self):
        """Create the repository (and logs/) owned by the tools' OS user."""
        self.check_path()
        try:
            if not os.path.isdir(self.path):
                os.makedirs(self.path, mode=0o750)
                chown_tree(self.path, self.os_user)
            if not os.path.isdir(self.log_dir):
                os.makedirs(self.log_dir, mode=0o750)
                chown_tree(self.log_dir, self.os_user)
        except OSError as exc:
            raise DbError('create backup repository', self.path,
                          '%s (%s): give a directory on a local writable filesystem as repo, or create it first'
                          % (exc.strerror or exc, exc.filename or self.path)) from None

    # -- lock
    @contextlib.contextmanager
    def lock(self):
        """Exclusive lock of the repository; a concurrent run is refused naming the holder."""
        self.ensure()
        path = os.path.join(self.path, LOCK)
        try:
            fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o640)
        except OSError as exc:
            raise DbError('lock backup repository', self.path, 'cannot write %s (%s): make the repository writable by '
                          'the user running the module' % (path, exc.strerror or exc)) from None
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            try:
                holder = os.pread(fd, 64, 0).decode('ascii', 'replace').strip() or 'unknown'
            finally:
                os.close(fd)
            raise DbError('lock backup repository', self.path,
                          'another backup or restore is running on it (lock %s held by pid %s)' % (path, holder)) from None
        os.ftruncate(fd, 0)
        os.pwrite(fd, ('%d\n' % os.getpid()).encode('ascii'), 0)
        self._lock_fd = fd
        try:
            try:
                self.swept.extend(self.sweep_leftovers())
            except OSError:
                pass   # a leftover that cannot be looked at is no reason to fail the run
            yield self
        finally:
            self._lock_fd = None
            try:
                os.ftruncate(fd, 0)
            finally:
                os.close(fd)  # closing releases the flock

    # -- leftovers of killed runs
    def leftovers(self):
        """Directories killed runs left behind, besides their ``.incoming-*`` (see failed_runs).

        ``.deleting-<id>`` in the repository: a delete killed after its rename (deletes run under the lock,
        so while we hold it any is stale). ``.dbops-scratch-<label>-<pid>`` beside the repository: the
        plaintext of an encrypted backup, or a decrypted copy for a restore, drill or verification, of a
        process that is gone (or whose pid now belongs to a process started after the directory was last
        changed). Scratch directories of live processes (another repository's run, a check-mode
        verification) are not listed. Returns [{path, kind, pid, status: stale|kept, reason}].
        """
        found = []
        if self.exists():
            for name in sorted(os.listdir(self.path)):
                full = os.path.join(self.path, name)
                if name.startswith(DELETING) and os.path.isdir(full) and not os.path.islink(full):
                    found.append({'path': full, 'kind': 'deleting', 'pid': None, 'status': 'stale',
                                  'reason': 'a delete of backup %s was killed half way' % name[len(DELETING):]})
        parent = os.path.dirname(self.path)
        try:
            names = sorted(os.listdir(parent))
        except OSError:
            names = []
        for name in names:
            match = _SCRATCH_RE.match(name)
            full = os.path.join(parent, name)
            if not match or os.path.islink(full) or not os.path.isdir(full):
                continue
            pid = int(match.group(2))
            try:
                mtime = os.lstat(full).st_mtime
            except OSError:
                continue
            try:
                with open(os.path.join(full, OWNER)) as f:
                    owner = json.load(f)
                start_ticks = owner.get('start_ticks') if owner.get('pid') == pid else None
            except (OSError, ValueError, AttributeError):
                start_ticks = None
            if not owner_gone(pid, mtime, start_ticks):
                continue
            entry = {'path': full, 'kind': 'scratch', 'pid': pid, 'status': 'stale',
                     'reason': 'scratch copy (%s) of process %d, which is gone' % (match.group(1), pid)}
            server = _server_running_in(full)
            if server:
                entry.update(status='kept', reason='a database server (pid %d) started by the killed run of process '
                             '%d still runs on a data directory in it: stop that server, the next run removes it'
                             % (server, pid))
            found.append(entry)
        return found

    def sweep_leftovers(self):
        """Remove what ``leftovers()`` finds stale (called with the lock held). Returns the entries, status
        ``removed`` (or ``kept`` with the reason). First, backup tools a killed run left running on this
        repository (no run of ours can be live while we hold the lock) are stopped: they would go on
        writing into what is about to be removed, or finish a pgBackRest set the catalog never lists."""
        out = []
        entries = self.leftovers()
        # the repository (no run of ours is live on it while we hold its lock) and the scratch
        # directories of processes that are gone; never a live run's scratch of another repository
        orphans = orphan_tools([self.path] + [e['path'] for e in entries
                                              if e['kind'] == 'scratch' and e['status'] == 'stale'])
        if orphans:
            stop_processes([pid for pid, _name in orphans])
            for pid, name in orphans:
                out.append({'path': self.path, 'kind': 'process', 'pid': pid, 'status': 'removed',
                            'reason': '%s (pid %d) of a killed run was still working on the repository: stopped'
                            % (name, pid)})
        for entry in entries:
            if entry['status'] == 'stale':
                try:
                    shutil.rmtree(entry['path'])
                    entry['status'] = 'removed'
                except OSError as exc:
                    entry.update(status='kept', reason='%s; could not remove it: %s' % (
                        entry['reason'], exc.strerror or exc))
            out.append(entry)
        return out

    # -- listing
    def _read_manifest(self, backup_id):
        path = os.path.join(self.path, backup_id, MANIFEST)
        try:
            with open(path) as f:
                return json.load(f)
        except (OSError, ValueError):
            return None

    def unreadable_backups(self):
        """Published backup directories whose manifest cannot be read (damaged or half-edited by hand)."""
        if not self.exists():
            return []
        return sorted((name for name in os.listdir(self.path)
                       if not name.startswith('.') and _ID_RE.match(name)
                       and os.path.isdir(os.path.join(self.path, name)) and not self._read_manifest(name)),
                      key=id_sort_key)

    def manifests(self):
        """Completed backups (published manifests), oldest first."""
        if not self.exists():
            return []
        found = []
        for name in sorted(os.listdir(self.path)):
            if name.startswith('.') or not _ID_RE.match(name):
                continue
            manifest = self._read_manifest(name)
            if manifest and manifest.get('id') == name:
                found.append(manifest)
        found.sort(key=completion_key)
        return found

    def failed_runs(self):
        """Runs that never published: stale .incoming-* directories (killed or failed)."""
        if not self.exists():
            return []
        runs = []
        for name in sorted(os.listdir(self.path), key=lambda n: id_sort_key(n[len(INCOMING):])):
            if not name.startswith(INCOMING):
                continue
            info = {}
            try:
                with open(os.path.join(self.path, name, RUN_INFO)) as f:
                    info = json.load(f)
            except (OSError, ValueError):
                pass
            pid = info.get('pid')
            running = bool(pid) and pid != os.getpid() and _pid_alive(pid) and self._lock_fd is None
            runs.append({'id': name[len(INCOMING):], 'path': os.path.join(self.path, name),
                         'status': 'running' if running else 'failed', 'pid': pid,
                         'started_at': info.get('started_at'), 'type': info.get('type'),
                         'method': info.get('method'), 'error': info.get('error')})
        return runs

    def get(self, backup_id='latest', **filters):
        """One completed backup by id, or the latest matching the filters."""
        if backup_id in (None, '', 'latest'):
            candidates = [m for m in self.manifests()
                          if all(filters.get(k) is None or m.get(k) == v for k, v in filters.items())]
            if not candidates:
                raise DbError('find a backup in', self.path, 'the repository holds no completed backup'
                              + (' matching %s' % ', '.join('%s=%s' % kv for kv in sorted(filters.items())
                                                             if kv[1] is not None) if any(filters.values()) else ''))
            return candidates[-1]
        if not _ID_RE.match(backup_id):
            raise DbError('find backup', backup_id, 'not a backup id of this repository')
        manifest = self._read_manifest(backup_id)
        if manifest is None:
            failed = [r for r in self.failed_runs() if r['id'] == backup_id]
            if failed:
                raise DbError('use backup', backup_id, 'that run never completed (status %s)' % failed[0]['status'])
            raise DbError('find backup', backup_id, 'no such backup in %s' % self.path)
        return manifest

    def chain(self, manifest):
        """The manifests a restore needs, full first (incremental: all parents)."""
        chain = [manifest]
        seen = {manifest['id']}
        current = manifest
        while current.get('type') != 'full' and current.get('parent_id'):
            parent = self._read_manifest(current['parent_id'])
            if parent is None:
                raise DbError('restore backup', manifest['id'],
                              'its parent backup %s is missing from the repository' % current['parent_id'])
            if parent['id'] in seen:
                raise DbError('restore backup', manifest['id'], 'the parent chain loops')
            seen.add(parent['id'])
            chain.insert(0, parent)
            current = parent
        if chain[0].get('type') != 'full':
            raise DbError('restore backup', manifest['id'], 'no full backup at the root of its chain')
        return chain

    def dependents(self, backup_id):
        return [m['id'] for m in self.manifests() if m.get('parent_id') == backup_id]

    def fresh_backup(self, max_age_seconds, now=None, databases=ANY, label=None, encryption_key=ANY, **filters):
        """The newest verified completed backup matching the filters younger than max_age that covers the request.

        ``filters``: manifest keys that must be equal (engine, method, type). ``databases`` (logical backups
        only; physical ones hold every database): the names asked for, which the backup must hold, or
        None for all databases, which only a backup taken of all databases covers. ``label``: when given,
        the backup must carry it. ``encryption_key``: None asks for an unencrypted backup; a passphrase asks
        for an encrypted backup that this passphrase opens. ``ANY`` (the default) skips a check.
        """
        now = now or utcnow()
        for manifest in reversed(self.manifests()):
            if not all(v is None or manifest.get(k) == v for k, v in filters.items()):
                continue
            if not manifest.get('verified') or not manifest.get('finished_at'):
                continue
            age = (now - parse_time(manifest['finished_at'])).total_seconds()
            if age >= max_age_seconds:
                continue
            if databases is not ANY and not covers_databases(manifest, databases):
                continue
            if label is not None and manifest.get('label') != label:
                continue
            if encryption_key is not ANY and not _opens(manifest, encryption_key):
                continue
            return manifest
        return None

    # -- writing
    def new_id(self, backup_type, now=None):
        base = '%s-%s' % ((now or utcnow()).strftime('%Y%m%dT%H%M%SZ'), backup_type)
        candidate, n = base, 1
        while (os.path.exists(self.backup_dir(candidate))
               or os.path.exists(os.path.join(self.path, INCOMING + candidate))):
            n += 1
            candidate = '%s-%d' % (base, n)
        return candidate

    def begin(self, backup_id, info):
        """Create <repo>/.incoming-<id>/data (owned by the tools' OS user); returns the incoming dir."""
        incoming = os.path.join(self.path, INCOMING + backup_id)
        os.makedirs(os.path.join(incoming, DATA), mode=0o750)
        run = dict(info, pid=os.getpid(), started_at=iso(utcnow()))
        write_json_atomic(os.path.join(incoming, RUN_INFO), run)
        chown_tree(incoming, self.os_user)
        return incoming

    def mark_failed(self, incoming, error):
        """Record why a run failed; the directory stays (reported failed, never latest)."""
        path = os.path.join(incoming, RUN_INFO)
        try:
            with open(path) as f:
                info = json.load(f)
        except (OSError, ValueError):
            info = {}
        info['error'] = str(error)[:2000]
        info['pid'] = None
        try:
            write_json_atomic(path, info)
        except OSError:
            pass

    def encrypt_data(self, incoming, key, source=None):
        """Ciphertext of every file under source (default: data/ itself, replaced in place) into data/, and
        every directory of source (empty ones included) recreated there."""
        data = os.path.join(incoming, DATA)
        source = source or data
        for rel in walk_dirs(source):   # empty ones too: publish records every directory
            os.makedirs(os.path.join(data, rel), exist_ok=True)
        for rel in walk_files(source):
            plain = os.path.join(source, rel)
            target = os.path.join(data, rel)
            os.makedirs(os.path.dirname(target), exist_ok=True)
            tmp = target + '.dbops-enc'
            crypto.encrypt_file(plain, tmp, key)
            os.rename(tmp, target)
            if source != data:
                os.unlink(plain)

    def publish(self, incoming, manifest, known_checksums=None, synced=False):
        """Hash every file, record every directory, write manifest.json, fsync, rename into place. Returns the manifest.

        ``synced``: the engine has already made every file and directory under data/ durable (it
        fsynced them, or syncfs'd their filesystem, after the last write): they are not fsynced again.
        """
        data = os.path.join(incoming, DATA)
        known = known_checksums or {}
        rels = walk_files(data)
        digests = hash_and_sync(data, rels, {} if manifest.get('encryption') else known, sync=not synced)
        files = [{'path': rel, 'size': os.path.getsize(os.path.join(data, rel)), 'sha256': digests[rel]} for rel in rels]
        manifest = dict(manifest)
        manifest['files'] = files
        manifest['dirs'] = walk_dirs(data)
        manifest['size_bytes'] = sum(f['size'] for f in files) + sum(
            f['size'] for f in manifest.get('log_files') or []) + int(manifest.get('external_bytes') or 0)
        manifest['status'] = 'completed'
        manifest['format_version'] = FORMAT_VERSION
        if not synced:
            for rel in [''] + list(manifest['dirs']):
                fsync_path(os.path.join(data, rel) if rel else data)
        write_json_atomic(os.path.join(incoming, MANIFEST), manifest)
        try:
            os.unlink(os.path.join(incoming, RUN_INFO))
        except OSError:
            pass
        final = self.backup_dir(manifest['id'])
        os.rename(incoming, final)
        fsync_path(self.path)
        return manifest

    def hash_log_files(self, rel_paths):
        digests = hash_and_sync(self.path, rel_paths, sync=False)
        return [{'path': rel, 'size': os.path.getsize(os.path.join(self.path, rel)), 'sha256': digests[rel]}
                for rel in rel_paths]

    def update_manifest(self, manifest):
        write_json_atomic(os.path.join(self.backup_dir(manifest['id']), MANIFEST), manifest)

    def delete(self, backup_id):
        path = self.backup_dir(backup_id)
        # unpublish first (rename to a dot dir) so a half-deleted backup is never listed; a delete killed after
        # the rename leaves .deleting-<id>, which the next run that takes the lock removes (sweep_leftovers)
        trash = os.path.join(self.path, DELETING + backup_id)
        os.rename(path, trash)
        fsync_path(self.path)
        shutil.rmtree(trash)

    def pruned_logs(self):
        """The newest archived log name retention has removed ({'last': name}, or {})."""
        return read_pruned_marker(self.log_dir)

    def delete_logs(self, rel_paths):
        """Remove archived log files (paths relative to the repository, all under logs/).

        The newest name removed is remembered in logs/.pruned.json: an engine whose server still holds
        older logs (MariaDB's binary logs) must not archive them again, even when the archive is empty.
        """
        if rel_paths:
            last = max(os.path.basename(rel) for rel in rel_paths)
            last = max(last, self.pruned_logs().get('last') or '')
            write_json_atomic(os.path.join(self.log_dir, PRUNED_MARKER), {'last': last})
        for rel in rel_paths:
            full = os.path.normpath(os.path.join(self.path, rel))
            if os.path.dirname(full) != self.log_dir:
                raise DbError('delete archived log', rel, 'not a file of %s' % self.log_dir)
            try:
                os.unlink(full)
            except FileNotFoundError:
                pass
        if rel_paths:
            fsync_path(self.log_dir)

    def remove_failed_run(self, run):
        shutil.rmtree(run['path'], ignore_errors=True)

    # -- verification and reading
    def verify_files(self, manifest):
        """Sizes and sha256 of every file, and every recorded directory, against the manifest; problems name
        the file or directory."""
        problems = []
        data = self.data_dir(manifest['id'])
        listed = set()
        for entry in manifest.get('files') or []:
            listed.add(entry['path'])
            full = os.path.join(data, entry['path'])
            shown = os.path.join(manifest['id'], DATA, entry['path'])
            if not os.path.isfile(full):
                problems.append('%s: file missing' % shown)
                continue
            size = os.path.getsize(full)
            if size != entry['size']:
                problems.append('%s: size %d, manifest says %d' % (shown, size, entry['size']))
                continue
            if sha256_file(full) != entry['sha256']:
                problems.append('%s: sha256 checksum mismatch' % shown)
        # directories (manifests written before they were recorded have no 'dirs': nothing to check)
        for rel in manifest.get('dirs') or []:
            if not os.path.isdir(os.path.join(data, rel)):
                problems.append('%s: directory missing' % os.path.join(manifest['id'], DATA, rel))
        if os.path.isdir(data):
            for rel in walk_files(data):
                if rel not in listed:
                    problems.append('%s: file not in the manifest' % os.path.join(manifest['id'], DATA, rel))
        for entry in manifest.get('log_files') or []:
            full = os.path.join(self.path, entry['path'])
            if not os.path.isfile(full):
                problems.append('%s: archived log file missing' % entry['path'])
            elif os.path.getsize(full) != entry['size'] or sha256_file(full) != entry['sha256']:
                problems.append('%s: archived log file checksum mismatch' % entry['path'])
        return problems

    def plain_copy(self, manifest, key, scratch_dir, only=None):
        """A directory holding the backup's plaintext files: the data dir itself when not
        encrypted, else a decrypted copy under scratch_dir (owned by the tools' OS user) with every
        directory the manifest records (empty ones too).

        ``only``: relative directory names (e.g. ``['meta']``): decrypt just the files under them."""
        data = self.data_dir(manifest['id'])
        if not manifest.get('encryption'):
            return data
        dest = os.path.join(scratch_dir, manifest['id'])
        os.makedirs(dest, mode=0o700, exist_ok=True)
        prefixes = tuple(p.rstrip('/') + '/' for p in only) if only else None
        dirs = list(manifest['dirs']) if 'dirs' in manifest else _legacy_dirs(manifest)
        for rel in dirs:
            if prefixes is None or (rel + '/').startswith(prefixes):
                os.makedirs(os.path.join(dest, rel), exist_ok=True)
        for entry in manifest.get('files') or []:
            if prefixes is not None and not entry['path'].startswith(prefixes):
                continue
            target = os.path.join(dest, entry['path'])
            os.makedirs(os.path.dirname(target), exist_ok=True)
            crypto.decrypt_file(os.path.join(data, entry['path']), target, key,
                                name=os.path.join(manifest['id'], DATA, entry['path']))
        chown_tree(scratch_dir, self.os_user)
        return dest

    def scratch(self, label):
        """A private scratch directory next to the repository (not inside it: never published)."""
        parent = os.path.dirname(self.path)
        path = os.path.join(parent, SCRATCH + '%s-%d' % (label, os.getpid()))
        if os.path.exists(path):
            shutil.rmtree(path)
        os.makedirs(path, mode=0o700)
        # who owns it (pid and process start): a later run tells a dead owner from a reused pid exactly
        ticks = _process_info(os.getpid())[1]
        if ticks is not None:
            with open(os.path.join(path, OWNER), 'w') as f:
                json.dump({'pid': os.getpid(), 'start_ticks': ticks}, f)
        chown_tree(path, self.os_user)
        return path


# The directories of a PostgreSQL data directory that may be empty (PostgreSQL 13-17). Encrypted plain-format
# physical backups published before manifests recorded their directories lost them; a decrypted copy of one gets
# them back (a directory the server version does not use is ignored by it).
_PG_DATA_DIRS = ('base', 'global', 'pg_commit_ts', 'pg_dynshmem', 'pg_logical', 'pg_logical/mappings',
                 'pg_logical/snapshots', 'pg_multixact', 'pg_multixact/members', 'pg_multixact/offsets', 'pg_notify',
                 'pg_replslot', 'pg_serial', 'pg_snapshots', 'pg_stat', 'pg_stat_tmp', 'pg_subtrans', 'pg_tblspc',
                 'pg_twophase', 'pg_wal', 'pg_wal/archive_status', 'pg_xact')


def _legacy_dirs(manifest):
    """Directories to recreate in a decrypted copy of a backup whose manifest has no ``dirs`` (written before
    they were recorded): for a plain-format PostgreSQL physical backup, the data directory's own."""
    if (manifest.get('engine') == 'postgresql' and manifest.get('method') == 'physical'
            and (manifest.get('details') or {}).get('format') == 'plain'):
        return ['base'] + ['base/' + d for d in _PG_DATA_DIRS]
    return []


def backup_summary(manifest, repo_path):
    """The ``backup`` return value of db_backup."""
    duration = None
    if manifest.get('started_at') and manifest.get('finished_at'):
        duration = round((parse_time(manifest['finished_at']) - parse_time(manifest['started_at'])).total_seconds(), 3)
    size = manifest.get('size_bytes') or 0
    return {
        'id': manifest['id'], 'type': manifest.get('type'), 'method': manifest.get('method'),
        'engine': manifest.get('engine'), 'flavor': manifest.get('flavor'),
        'parent_id': manifest.get('parent_id'), 'started_at': manifest.get('started_at'),
        'finished_at': manifest.get('finished_at'), 'duration_seconds': manifest.get('duration_seconds', duration),
        'size_bytes': size, 'size_gb': round(size / 1024.0 ** 3, 3),
        'path': os.path.join(repo_path, manifest['id']), 'start_position': manifest.get('start_position'),
        'stop_position': manifest.get('stop_position'), 'status': manifest.get('status'),
        'verified': bool(manifest.get('verified')), 'label': manifest.get('label'),
        'databases': manifest.get('databases'), 'compression': manifest.get('compression'),
        'encrypted': bool(manifest.get('encryption')),
    }


def engine_backend(engine_name):
    """The engine's backup file (module-level restore_physical, verify_physical, ...)."""
    if engine_name == 'postgresql':
        from ansible_collections.dbops.admin.plugins.module_utils._engines import postgresql_backup as backend
    else:
        from ansible_collections.dbops.admin.plugins.module_utils._engines import mysql_backup as backend
    return backend


def fit_jobs(module, engine):
    """jobs beyond what the server's free connections allow would fail half way (too many clients): run with as
    many as fit, and say so (check mode the same)."""
    p = module.params
    if not p.get('jobs') or p['jobs'] <= 1 or not hasattr(engine, 'parallel_slots'):
        return
    slots = engine.parallel_slots()
    if slots is not None and p['jobs'] > slots:
        module.warn('jobs %d: the server has connections for %d parallel jobs (max_connections less the sessions '
                    'open): running with jobs %d' % (p['jobs'], slots, slots))
        p['jobs'] = slots


def backend_call(engine_name, function, *args, **kwargs):
    backend = engine_backend(engine_name)
    func = getattr(backend, function, None)
    if func is None:
        raise DbError('run %s for' % function.replace('_', ' '), engine_name, 'not implemented for this engine yet')
    return func(*args, **kwargs)


def prunable_logs(repo, kept):
    """Archived log files (``logs/<name>``) that no kept backup can use, by each engine's own rule.

    The engine's backup file decides from the kept manifests (``prunable_logs(log_dir, manifests)``);
    a file any kept log backup lists is never offered, whatever the engine says.
    """
    if not os.path.isdir(repo.log_dir) or repo.unreadable_backups():
        return []   # a backup whose manifest cannot be read may need any of them
    listed = {entry.get('path') for m in kept for entry in (m.get('log_files') or []) if isinstance(entry, dict)}
    found = set()
    for engine_name in sorted({m.get('engine') for m in kept if m.get('engine')}):
        func = getattr(engine_backend(engine_name), 'prunable_logs', None)
        if func is None:
            continue
        for name in func(repo.log_dir, [m for m in kept if m.get('engine') == engine_name]):
            rel = '%s/%s' % (LOGS, name)
            if rel not in listed:
                found.add(rel)
    return sorted(found)


def check_os_user(name):
    """DbError unless ``name`` (os_user) is a user of this machine: refused before anything is written (a user that
    does not exist left a half-written, root-owned repository behind)."""
    if not name:
        return
    import pwd
    try:
        pwd.getpwnam(name)
    except KeyError:
        raise DbError('run the backup tools as', name, 'no such OS user on this machine: give an existing user as '
                      'os_user (the database server\'s own, such as postgres or mysql), or leave os_user unset') from None


def default_os_user(engine_name):
    """The OS user the database tools run as: the server's own user when we are root."""
    if os.geteuid() != 0:
        return None
    return {'postgresql': 'postgres', 'mysql': 'mysql'}.get(engine_name)
