# -*- coding: utf-8 -*-
# Copyright: dbops.admin contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Private to dbops.admin: PostgreSQL engine, backup area (mixed into the PostgresEngine class).

The contract is written at the top of ``_backup_catalog.py``. Tools run as the PostgreSQL
OS user (``runuser``) with the password in ``PGPASSWORD``, never on a command line.

- logical: ``pg_dump -Fd -j N`` per database (+ ``pg_dumpall --globals-only``). PostgreSQL 15's
  pg_dump compresses only with gzip (``-Z 0-9``); zstd and lz4 are applied afterwards with the
  zstd / lz4 command line tools on the table data files (``toc.dat`` stays plain), and undone
  into a scratch directory before ``pg_restore``.
- physical full: ``pg_basebackup -X stream --no-sync`` (plain format without compression, tar +
  client-side compression otherwise; CRC32C manifest checksums computed by the server), checked with
  ``pg_verifybackup`` while our threads take the SHA-256 of every file and sync the tree (see
  GrowingFileHasher and hash_and_sync).
- log: continuous WAL archiving into ``<repo>/logs`` through ``archive_command``; a log backup
  forces a WAL switch and waits until the segment is archived.
"""

from __future__ import annotations

import contextlib
import datetime
import grp
import json
import os
import pwd
import re
import shlex
import shutil
import signal
import subprocess
import sys
import time

from ansible_collections.dbops.admin.plugins.module_utils._engines.postgresql_settings import LIST_SETTINGS, split_list_setting
from ansible_collections.dbops.admin.plugins.module_utils._errors import DbError, driver_message, mask_secrets
from ansible_collections.dbops.admin.plugins.module_utils import _restore_comment as restore_comment

RESTORE_MARKER_FILE = 'dbops_restore.json'
# the archived WAL a restore to the end of a log backup may read (links; removed after recovery)
STAGED_WAL_DIR = 'dbops_restore_wal'
WAL_NAME_RE = re.compile(r'^[0-9A-F]{24}$')
COUNT_SQL = (
    "SELECT quote_ident(table_schema) || '.' || quote_ident(table_name) AS name, "
    "(xpath('/row/c/text()', query_to_xml(format('SELECT count(*) AS c FROM %I.%I', "
    "table_schema, table_name), false, true, '')))[1]::text::bigint AS rows "
    "FROM information_schema.tables WHERE table_type = 'BASE TABLE' "
    "AND table_schema NOT IN ('pg_catalog', 'information_schema') ORDER BY 1"
)
# the same, leaving out the tables whose rows were counted by their own export (COPY's row count)
COUNT_SQL_EXCEPT = COUNT_SQL.replace('%I', '%%I').replace(
    'ORDER BY 1', "AND NOT quote_ident(table_schema) || '.' || quote_ident(table_name) = ANY(%s::text[]) ORDER BY 1")

# anything a user created in a database (what makes it "not empty": replacing it needs force):
# relations, functions, types, schemas other than public, extensions, large objects, event triggers
_USER_NS = ("n.nspname NOT IN ('pg_catalog', 'information_schema') AND n.nspname NOT LIKE 'pg_toast%%' "
            "AND n.nspname NOT LIKE 'pg_temp%%'")
USER_OBJECTS_SQL = (
    "SELECT (SELECT count(*) FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace WHERE " + _USER_NS + ") "
    "+ (SELECT count(*) FROM pg_proc p JOIN pg_namespace n ON n.oid = p.pronamespace WHERE " + _USER_NS + " "
    "AND NOT EXISTS (SELECT 1 FROM pg_depend d WHERE d.classid = 'pg_proc'::regclass AND d.objid = p.oid "
    "AND d.deptype = 'e')) "
    "+ (SELECT count(*) FROM pg_type t JOIN pg_namespace n ON n.oid = t.typnamespace WHERE " + _USER_NS + " "
    "AND t.typrelid = 0 AND t.typelem = 0 AND NOT EXISTS (SELECT 1 FROM pg_depend d WHERE "
    "d.classid = 'pg_type'::regclass AND d.objid = t.oid AND d.deptype = 'e')) "
    "+ (SELECT count(*) FROM pg_namespace n WHERE " + _USER_NS + " AND n.nspname <> 'public') "
    "+ (SELECT count(*) FROM pg_extension WHERE extname <> 'plpgsql') "
    "+ (SELECT count(*) FROM pg_largeobject_metadata) + (SELECT count(*) FROM pg_event_trigger)")
# the roles a database's objects need on the target: owners, grantees (ACLs, default privileges) and
# policy roles, from the shared dependency catalog (the bootstrap superuser is pinned: never listed)
ROLES_OF_DATABASE_SQL = (
    "SELECT DISTINCT r.rolname FROM pg_shdepend d JOIN pg_roles r ON r.oid = d.refobjid "
    "WHERE d.refclassid = 'pg_authid'::regclass AND d.deptype <> 't' "
    "AND (d.dbid = (SELECT oid FROM pg_database WHERE datname = %(db)s) OR (d.classid = 'pg_database'::regclass "
    "AND d.objid = (SELECT oid FROM pg_database WHERE datname = %(db)s))) "
    "UNION SELECT pg_get_userbyid(s.setrole) FROM pg_db_role_setting s WHERE s.setrole <> 0 "
    "AND s.setdatabase = (SELECT oid FROM pg_database WHERE datname = %(db)s) ORDER BY 1")
ROLE_MODES = ('require', 'create', 'skip')
# what pg_dump leaves out without --create: the database's owner, its privileges (NULL: the
# defaults) and its settings (ALTER DATABASE ... SET, ALTER ROLE ... IN DATABASE ... SET)
DATABASE_PROPERTIES_SQL = (
    "SELECT pg_get_userbyid(d.datdba) AS owner, d.datacl IS NULL AS default_acl, "
    "(SELECT coalesce(json_agg(json_build_object('grantee', CASE WHEN a.grantee = 0 THEN NULL "
    "ELSE pg_get_userbyid(a.grantee) END, 'privilege', a.privilege_type, 'grantable', a.is_grantable) "
    "ORDER BY a.grantee, a.privilege_type), '[]'::json) FROM aclexplode(d.datacl) a) AS acl, "
    "(SELECT coalesce(json_agg(json_build_object('role', CASE WHEN s.setrole = 0 THEN NULL "
    "ELSE pg_get_userbyid(s.setrole) END, 'config', s.setconfig) ORDER BY s.setrole), '[]'::json) "
    "FROM pg_db_role_setting s WHERE s.setdatabase = d.oid) AS settings, "
    "shobj_description(d.oid, 'pg_database') AS comment "
    "FROM pg_database d WHERE d.datname = %s")
# does anything in the database belong to the bootstrap superuser (oid 10, pinned: pg_shdepend never
# lists it)? pg_dump writes OWNER TO <its name> for such objects: a target whose bootstrap superuser
# has another name (a managed service) needs that role
BOOTSTRAP_OWNED_SQL = (
    "SELECT EXISTS (SELECT 1 FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace WHERE c.relowner = 10 "
    "AND " + _USER_NS + " AND NOT EXISTS (SELECT 1 FROM pg_depend d WHERE d.classid = 'pg_class'::regclass "
    "AND d.objid = c.oid AND d.deptype = 'e')) "
    "OR EXISTS (SELECT 1 FROM pg_proc p JOIN pg_namespace n ON n.oid = p.pronamespace WHERE p.proowner = 10 "
    "AND " + _USER_NS + " AND NOT EXISTS (SELECT 1 FROM pg_depend d WHERE d.classid = 'pg_proc'::regclass "
    "AND d.objid = p.oid AND d.deptype = 'e')) "
    "OR EXISTS (SELECT 1 FROM pg_namespace n WHERE n.nspowner = 10 AND " + _USER_NS + " AND n.nspname <> 'public' "
    "AND NOT EXISTS (SELECT 1 FROM pg_depend d WHERE d.classid = 'pg_namespace'::regclass AND d.objid = n.oid "
    "AND d.deptype = 'e')) "
    "OR EXISTS (SELECT 1 FROM pg_type t JOIN pg_namespace n ON n.oid = t.typnamespace WHERE t.typowner = 10 "
    "AND " + _USER_NS + " AND t.typrelid = 0 AND t.typelem = 0 AND NOT EXISTS (SELECT 1 FROM pg_depend d "
    "WHERE d.classid = 'pg_type'::regclass AND d.objid = t.oid AND d.deptype = 'e')) "
    "OR EXISTS (SELECT 1 FROM pg_largeobject_metadata WHERE lomowner = 10) AS owned")
_IDENT = r'(?:"(?:[^"]|"")+"|[A-Za-z_][A-Za-z0-9_$]*)'
_ROLE_STATEMENT_RE = re.compile(r'^(?:CREATE ROLE|ALTER ROLE|COMMENT ON ROLE)\s+(%s)(?:\s|;)' % _IDENT)
_MEMBERSHIP_RE = re.compile(r'^GRANT\s+(%s)\s+TO\s+(%s)(\s+WITH\s+ADMIN\s+OPTION)?(?:\s+GRANTED\s+BY\s+%s)?\s*;$'
                            % (_IDENT, _IDENT, _IDENT))


def _unquote_ident(text):
    if text.startswith('"'):
        return text[1:-1].replace('""', '"')
    return text.lower()


def sql_statements(text):
    """The statements of a pg_dumpall script, each whole (string literals and quoted names may
    hold ';' or newlines); ``--`` comment lines are left out."""
    statements, current, i, n = [], [], 0, len(text)
    quote = None
    while i < n:
        ch = text[i]
        if quote:
            current.append(ch)
            if ch == quote:
                if i + 1 < n and text[i + 1] == quote:
                    current.append(quote)
                    i += 1
                else:
                    quote = None
        elif ch in ('"', "'"):
            quote = ch
            current.append(ch)
        elif ch == '-' and text.startswith('--', i) and not ''.join(current).strip():
            end = text.find('\n', i)
            i = n if end < 0 else end
            continue
        elif ch == ';':
            current.append(ch)
            statements.append(''.join(current).strip())
            current = []
        else:
            current.append(ch)
        i += 1
    rest = ''.join(current).strip()
    if rest:
        statements.append(rest)
    return statements


def role_statements(globals_text, wanted, existing):
    """The statements of a pg_dumpall --globals-only script that recreate the roles in ``wanted``
    (CREATE ROLE, ALTER ROLE attributes, password and settings, COMMENT) and the memberships
    between them and the roles in ``existing``, without GRANTED BY (the grantor may not exist).

    -> (statements, roles of ``wanted`` the script does not define)."""
    wanted = set(wanted)
    after = wanted | set(existing)
    chosen, defined = [], set()
    for stmt in sql_statements(globals_text):
        match = _ROLE_STATEMENT_RE.match(stmt)
        if match:
            role = _unquote_ident(match.group(1))
            if role in wanted:
                chosen.append(stmt)
                if stmt.startswith('CREATE ROLE'):
                    defined.add(role)
            continue
        match = _MEMBERSHIP_RE.match(stmt)
        if match:
            group, member = _unquote_ident(match.group(1)), _unquote_ident(match.group(2))
            if (group in wanted or member in wanted) and group in after and member in after:
                chosen.append('GRANT %s TO %s%s;' % (match.group(1), match.group(2), match.group(3) or ''))
    return chosen, sorted(wanted - defined)


def password_literals(statement):
    """The password literals of a role statement (masked in the returned queries)."""
    return re.findall(r"PASSWORD\s+'((?:[^']|'')*)'", statement)


# ---- helpers shared by the mixin and the module-level functions ---------------------------------
def _now_iso():
    return datetime.datetime.now(datetime.timezone.utc).isoformat(timespec='seconds').replace('+00:00', 'Z')


def find_bin_dir(bin_dir=None, major=None):
    if bin_dir:
        return bin_dir
    if major:
        candidate = '/usr/lib/postgresql/%s/bin' % major
        if os.path.isdir(candidate):
            return candidate
    found = shutil.which('pg_dump')
    return os.path.dirname(found) if found else '/usr/bin'


def _as_user(argv, os_user):
    if os_user and os.geteuid() == 0:
        return ['runuser', '-u', os_user, '--'] + list(argv)
    return list(argv)


_PR_SET_PDEATHSIG = 1
_PRCTL = []


def _prctl():
    """libc's prctl, looked up once in the parent (never in a forked child: no import after fork), or None."""
    if not _PRCTL:
        prctl = None
        if sys.platform.startswith('linux'):
            try:
                import ctypes
                prctl = ctypes.CDLL(None, use_errno=True).prctl
            except (OSError, AttributeError):
                prctl = None
        _PRCTL.append(prctl)
    return _PRCTL[0]


def die_with_parent():
    """preexec_fn for a tool: it gets SIGTERM when this module's process dies (killed by a timeout, an operator, a
    lost connection), so a killed run leaves no pgbackrest/pg_basebackup behind still running and holding the
    repository's lock. runuser, which runs the tool as os_user, passes the SIGTERM on to it."""
    prctl = _prctl()
    parent = os.getpid()

    def preexec():
        if prctl is not None:
            prctl(_PR_SET_PDEATHSIG, int(signal.SIGTERM), 0, 0, 0)
        if os.getppid() != parent:   # the module died before prctl took effect
            os.kill(os.getpid(), signal.SIGTERM)
    return preexec


def show_command(argv, secrets=()):
    return mask_secrets(' '.join(shlex.quote(str(a)) for a in argv), secrets)


def run_tool(argv, operation, target=None, os_user=None, env=None, secrets=(), commands=None, timeout=None,
             check=True):
    """Run one tool (as os_user); its masked command line goes to commands. Returns CompletedProcess."""
    full_env = dict(os.environ)
    full_env.update(env or {})
    if commands is not None:
        commands.append(show_command(argv, secrets))
    try:
        # a tool prints names in the database's encoding (pg_restore -l of a LATIN1 dump): never a decode error
        proc = subprocess.run(_as_user(argv, os_user), capture_output=True, text=True, errors='replace',
                              env=full_env, cwd='/', timeout=timeout, check=False, preexec_fn=die_with_parent())
    except OSError as exc:
        raise DbError(operation, target, 'cannot run %s: %s' % (argv[0], exc)) from None
    except subprocess.TimeoutExpired:
        raise DbError(operation, target, '%s did not finish within %s seconds' % (os.path.basename(argv[0]), timeout)) from None
    if check and proc.returncode != 0:
        detail = (proc.stderr or proc.stdout or '').strip()
        raise DbError(operation, target, mask_secrets('%s failed (exit %d): %s' % (
            os.path.basename(argv[0]), proc.returncode, detail[-3000:]), secrets))
    return proc


def tool_env(connection):
    """libpq environment for the tools: the password never reaches a command line."""
    env = {}
    connection = connection or {}
    host = connection.get('login_unix_socket') or connection.get('login_host')
    if host:
        env['PGHOST'] = str(host)
    if connection.get('login_port'):
        env['PGPORT'] = str(connection['login_port'])
    if connection.get('login_user'):
        env['PGUSER'] = connection['login_user']
    if connection.get('login_password'):
        env['PGPASSWORD'] = connection['login_password']
    if connection.get('ssl_mode'):
        env['PGSSLMODE'] = connection['ssl_mode']
    env['PGAPPNAME'] = 'dbops.admin'
    env['PGCONNECT_TIMEOUT'] = str(connection.get('connect_timeout') or 10)
    return env


def parse_lsn(text):
    high, low = text.split('/')
    return (int(high, 16) << 32) + int(low, 16)


def format_lsn(value):
    return '%X/%X' % (value >> 32, value & 0xFFFFFFFF)


def wal_file_name(timeline, lsn, segment_size=16 * 1024 * 1024):
    segno = parse_lsn(lsn) // segment_size if isinstance(lsn, str) else lsn // segment_size
    per_id = 0x100000000 // segment_size
    return '%08X%08X%08X' % (int(timeline), segno // per_id, segno % per_id)


def next_wal_name(name, segment_size=16 * 1024 * 1024):
    per_id = 0x100000000 // segment_size
    tli, log, seg = int(name[0:8], 16), int(name[8:16], 16), int(name[16:24], 16)
    seg += 1
    if seg >= per_id:
        seg = 0
        log += 1
    return '%08X%08X%08X' % (tli, log, seg)


def _segno(name, segment_size):
    return int(name[8:16], 16) * (0x100000000 // segment_size) + int(name[16:24], 16)


def _segment_name(timeline, segno, segment_size):
    per_id = 0x100000000 // segment_size
    return '%08X%08X%08X' % (timeline, segno // per_id, segno % per_id)


def history_file_name(timeline):
    return '%08X.history' % timeline


def read_timeline_history(log_dir, timeline):
    """The ancestors of a timeline from its history file ``<TLI>.history`` ("parentTLI switchpoint-LSN
    reason" lines): [(parent timeline, LSN where it ended)], oldest first. [] for timeline 1, None when
    the file is missing or unreadable."""
    if timeline <= 1:
        return []
    try:
        with open(os.path.join(log_dir, history_file_name(timeline))) as f:
            text = f.read()
    except OSError:
        return None
    entries = []
    for line in text.splitlines():
        fields = line.split()
        if not fields or fields[0].startswith('#'):
            continue
        try:
            entries.append((int(fields[0]), parse_lsn(fields[1])))
        except (IndexError, ValueError):
            return None
    return entries


def timeline_path(log_dir, timeline, segment_size=16 * 1024 * 1024):
    """[(timeline, its first segment number)] from ``timeline`` back to timeline 1, newest first; None
    when its history file is missing. The segment a timeline was switched from in the middle belongs to
    the new timeline (the old one keeps it only as ``.partial``), as recovery reads it."""
    history = read_timeline_history(log_dir, timeline)
    if history is None:
        return None
    path, begin = [], 0
    for parent, switch in history:
        path.append((parent, begin))
        begin = switch // segment_size
    path.append((timeline, begin))
    return path[::-1]


def _timeline_at(path, segno):
    for timeline, begin in path:
        if segno >= begin:
            return timeline
    return path[-1][0]


def _newest_timeline(names, timeline):
    """The timeline recovery_target_timeline=latest follows from ``timeline``: the highest one whose
    history file is there, probing upwards as the server does."""
    while history_file_name(timeline + 1) in names:
        timeline += 1
    return timeline


def wal_needed(log_dir, first, segment_size=16 * 1024 * 1024, last=None):
    """The archived WAL recovery reads from segment ``first`` to segment ``last``: (needed, missing).

    ``needed`` lists the segment names in order, each on the timeline that holds it according to the
    history of last's timeline (the segments before a switch on the older timelines); ``missing`` the
    needed names not in log_dir, with the history file of last's timeline when it is missing (then the
    segments are not checked). Without ``last``: up to the newest archived segment on the newest
    timeline (recovery_target_timeline = latest)."""
    names = set(os.listdir(log_dir)) if os.path.isdir(log_dir) else set()
    first_tli = int(first[:8], 16)
    start = _segno(first, segment_size)
    timeline = int(last[:8], 16) if last else _newest_timeline(names, first_tli)
    path = timeline_path(log_dir, timeline, segment_size)
    if path is None:
        if timeline != first_tli:
            return [], [history_file_name(timeline)]
        path = [(timeline, 0)]   # a single timeline: its ancestors are not needed
    if last:
        end = _segno(last, segment_size)
    else:
        on_path = [_segno(n, segment_size) for n in names if WAL_NAME_RE.match(n)
                   and int(n[:8], 16) == _timeline_at(path, _segno(n, segment_size))]
        end = max([n for n in on_path if n >= start] or [start])
    needed = [_segment_name(_timeline_at(path, segno), segno, segment_size) for segno in range(start, end + 1)]
    return needed, [n for n in needed if n not in names]


# the transaction id the next write transaction gets: unchanged means no data was written since
NEXT_XID_SQL = 'SELECT txid_snapshot_xmax(txid_current_snapshot())::text'


def wal_gaps(log_dir, first, segment_size=16 * 1024 * 1024, last=None):
    """Archive files missing from log_dir for recovery from segment first to last (default: the newest
    archived one on the newest timeline), across timeline switches (see wal_needed)."""
    return wal_needed(log_dir, first, segment_size, last)[1]


def missing_wal_text(name):
    """How an error names a missing archive file."""
    return ('timeline history file %s' if name.endswith('.history') else 'WAL segment %s') % name


def _archive_command(log_dir):
    logs = shlex.quote(log_dir)
    # never overwrite an archived segment; an identical re-archive (after a crash) succeeds. The
    # segment is on disk (sync of the file, then of the directory after the rename) before the
    # command returns 0: PostgreSQL recycles the segment as soon as it does
    return ('test ! -f {d}/%f && cp %p {d}/%f.part && sync {d}/%f.part && mv {d}/%f.part {d}/%f && sync {d} '
            '|| cmp -s %p {d}/%f'.format(d=logs))


# failed attempts of the archiver, since a log backup switched WAL, after which it stops waiting: the
# archiver tries a segment 3 times in a row (a second apart), then only every minute
ARCHIVE_FAILURES_TOLERATED = 3
_SERVER_LOG_LEVEL_RE = re.compile(r'\b(?:LOG|DETAIL|HINT|WARNING|ERROR|FATAL|PANIC|STATEMENT|CONTEXT|INFO|NOTICE|DEBUG[1-5]?):  ')


def archive_failure_lines(text, limit=4):
    """From the tail of a server log: the last report of a failed archive_command, with the lines
    the command itself printed right before it (they carry no log prefix): ``cp: cannot create
    regular file '...': Permission denied``. [] when the tail holds none."""
    lines = text.splitlines()
    for idx in range(len(lines) - 1, -1, -1):
        if 'archive command failed' in lines[idx] or 'archive command was terminated' in lines[idx]:
            break
    else:
        return []
    own = []
    j = idx - 1
    while j >= 0 and len(own) < limit and lines[j].strip() and not _SERVER_LOG_LEVEL_RE.search(lines[j]):
        own.insert(0, lines[j].strip())
        j -= 1
    return own + [lines[idx].strip()]


def archive_directory_problems(log_dir, server_uid=None, segment_size=16 * 1024 * 1024):
    """What this host can see wrong with the archive directory: missing, not writable by the
    server's OS user (mode bits), not enough room for a segment. [] when nothing is seen."""
    try:
        st = os.stat(log_dir)
    except OSError as exc:
        return ['%s cannot be read here (%s)' % (log_dir, exc.strerror)]
    problems = []
    if server_uid is not None:
        try:
            account = pwd.getpwuid(server_uid)
            groups = set(g.gr_gid for g in grp.getgrall() if account.pw_name in g.gr_mem) | {account.pw_gid}
        except KeyError:
            groups = set()
        if server_uid == st.st_uid:
            writable = st.st_mode & 0o300 == 0o300
        elif st.st_gid in groups:
            writable = st.st_mode & 0o030 == 0o030
        else:
            writable = st.st_mode & 0o003 == 0o003
        if server_uid != 0 and not writable:
            problems.append("the server's OS user (uid %d) may not write into %s (owner uid %d, mode %04o): "
                            "permissions" % (server_uid, log_dir, st.st_uid, st.st_mode & 0o7777))
    try:
        fs = os.statvfs(log_dir)
        if fs.f_bavail * fs.f_frsize < segment_size:
            problems.append('the filesystem of %s has %d bytes free, less than one WAL segment'
                            % (log_dir, fs.f_bavail * fs.f_frsize))
    except OSError:
        pass
    return problems


def _legacy_archive_commands(log_dir):
    """archive_command values earlier versions of this collection set for log_dir: still ours
    (replaced by the current one without a restart), never "archiving goes elsewhere"."""
    logs = shlex.quote(log_dir)
    return ['test ! -f {d}/%f && cp %p {d}/%f.part && mv {d}/%f.part {d}/%f || cmp -s %p {d}/%f'.format(d=logs)]


def _refuse_foreign_archiving(settings, method, log_dir, repo=None):
    """DbError when archiving is on and archive_command sends the WAL elsewhere than this
    repository (``settings``: archive_mode and archive_command as the server has them)."""
    if method == 'pgbackrest':
        ours = [pgbackrest_archive_command(repo)]
        action, where = 'turn on pgBackRest archiving', None
        if pgbackrest_moved_from(settings['archive_command'], repo):
            return   # ours, for this repository before it was moved or renamed: replaced
        other = pgbackrest_command_config(settings['archive_command'])
        if other == pgbackrest_paths(repo)['conf']:
            return   # ours, written another way
        if settings['archive_mode'] != 'off' and other:
            raise DbError(action, where, 'archive_command is already set to %r: archiving goes elsewhere (into the '
                          'pgBackRest repository %s, which still exists); back up into that repository, or change '
                          'archive_command yourself' % (settings['archive_command'], os.path.dirname(os.path.dirname(other))))
    else:
        ours = [_archive_command(log_dir)] + _legacy_archive_commands(log_dir)
        action, where = 'turn on WAL archiving into', log_dir
    if settings['archive_mode'] != 'off' and settings['archive_command'] not in ['', '(disabled)'] + ours:
        raise DbError(action, where, 'archive_command is already set to %r: archiving goes elsewhere; '
                      'change it yourself or use that archive' % settings['archive_command'])


WAL_FILE_RE = re.compile(r'^([0-9A-F]{8})([0-9A-F]{16})(\.partial|\.[0-9A-F]{8}\.backup)?$')


def prunable_logs(log_dir, manifests):
    """Archived WAL files no kept backup can replay: older than the start of every kept physical full.

    Compared by position (log and segment number) whatever the timeline: recovery from a base backup
    never reads a segment before the one it starts in. Timeline history files always stay. No kept
    physical full backup, or one whose start is unknown: nothing goes.
    """
    starts = []
    for manifest in manifests:
        if manifest.get('method') != 'physical' or manifest.get('type') != 'full':
            continue
        match = WAL_FILE_RE.match((manifest.get('start_position') or {}).get('wal_file') or '')
        if not match or match.group(3):
            return []
        starts.append(match.group(2))
    if not starts or not os.path.isdir(log_dir):
        return []
    cutoff = min(starts)
    positions = ((name, WAL_FILE_RE.match(name)) for name in sorted(os.listdir(log_dir)))
    return [name for name, match in positions if match and match.group(2) < cutoff]


def read_backup_manifest(path):
    with open(path) as f:
        return json.load(f)


CHUNK_MIN_BYTES = 64 * 1024 * 1024
CHUNK_TABLES_SQL = (
    "SELECT n.nspname AS schema, c.relname AS table, "
    "quote_ident(n.nspname) || '.' || quote_ident(c.relname) AS qualified, pg_relation_size(c.oid) AS bytes, "
    "(SELECT string_agg(quote_ident(a.attname), ', ' ORDER BY a.attnum) FROM pg_attribute a "
    " WHERE a.attrelid = c.oid AND a.attnum > 0 AND NOT a.attisdropped AND a.attgenerated = '') AS columns, "
    "EXISTS (SELECT 1 FROM pg_inherits i WHERE i.inhparent = c.oid) AS has_children "
    "FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace "
    "WHERE c.relkind = 'r' AND c.relpersistence = 'p' "
    "AND n.nspname NOT IN ('pg_catalog', 'information_schema') AND n.nspname NOT LIKE 'pg_toast%%' "
    "AND pg_relation_size(c.oid) >= %s "
    # a table without a column COPY can name (none, or only generated ones) is left to pg_dump
    "AND EXISTS (SELECT 1 FROM pg_attribute a WHERE a.attrelid = c.oid AND a.attnum > 0 AND NOT a.attisdropped "
    "            AND a.attgenerated = '') "
    "AND NOT EXISTS (SELECT 1 FROM pg_depend d WHERE d.classid = 'pg_class'::regclass AND d.objid = c.oid "
    "                AND d.deptype = 'e') "
    "ORDER BY pg_relation_size(c.oid) DESC"
)


# the text form of the rows must not depend on the sessions' defaults; RLS must never filter silently
# how long a logical backup waits for a lock another session holds on a table (an open transaction after
# ALTER TABLE, LOCK TABLE, TRUNCATE...): pg_dump and the module's own sessions would otherwise wait for ever
LOCK_WAIT = '120s'
CHUNK_SETTINGS = ('SET datestyle = ISO', 'SET intervalstyle = postgres', 'SET extra_float_digits = 3',
                  'SET row_security = off', "SET lock_timeout = '%s'" % LOCK_WAIT)
CHUNK_SESSION = [arg for setting in CHUNK_SETTINGS for arg in ('-c', setting)]


# The compressor behind a COPY runs below the backend's priority: the backend fills the pipe at full speed
# and the compressor takes it in large reads instead of waking for every 4 kB the backend writes. On 2 cores
# with 2 backends and 2 compressors that took 15-20 % off the export (measured: benchmarks/backup.py).
NICE_COMPRESSOR = ['nice', '-n', '10']


def _chunk_threshold():
    """Tables of at least this many bytes are copied in ranges (DBOPS_BACKUP_CHUNK_MIN_BYTES overrides)."""
    return int(os.environ.get('DBOPS_BACKUP_CHUNK_MIN_BYTES') or CHUNK_MIN_BYTES)


def _server_program(compressor, path):
    """The shell command a server-side COPY ... TO PROGRAM writes one file with."""
    if compressor:
        return 'exec %s > %s' % (' '.join(shlex.quote(a) for a in NICE_COMPRESSOR + compressor), shlex.quote(path))
    return 'exec cat > %s' % shlex.quote(path)


def _compressor(compression, level):
    if compression == 'zstd':
        return ['zstd', '-q', '-c', '-%d' % (level if level is not None else 3)], '.zst'
    if compression == 'lz4':
        return ['lz4', '-q', '-c', '-%d' % (level if level is not None else 1)], '.lz4'
    return None, ''


def _decompressor(path):
    if path.endswith('.zst'):
        return ['zstd', '-q', '-d', '-c', path]
    if path.endswith('.lz4'):
        return ['lz4', '-q', '-d', '-c', path]
    return None


def _start_pipeline(stages, out_path=None, in_path=None):
    """stage | stage | ... (each (argv, os_user, env)), reading in_path / writing out_path."""
    import tempfile
    procs = []
    source = open(in_path, 'rb') if in_path else subprocess.DEVNULL
    sink = open(out_path, 'wb') if out_path else subprocess.DEVNULL
    previous = source
    try:
        for number, (argv, os_user, env) in enumerate(stages):
            last = number == len(stages) - 1
            err = tempfile.TemporaryFile()
            proc = subprocess.Popen(_as_user(argv, os_user), stdin=previous, stdout=sink if last else subprocess.PIPE,
                                    stderr=err, env=env, cwd='/', preexec_fn=die_with_parent())
            if number > 0:
                previous.close()
            previous = proc.stdout
            procs.append((proc, err, os.path.basename(argv[0])))
    finally:
        for handle in (source, sink):
            if hasattr(handle, 'close'):
                handle.close()
    return procs


def _finish_pipeline(procs):
    """Wait for every stage; returns None or what failed."""
    failed = []
    for proc, err, name in procs:
        proc.wait()
        if proc.returncode != 0:
            err.seek(0)
            failed.append('%s failed (exit %d): %s' % (name, proc.returncode,
                                                       err.read().decode('utf-8', 'replace').strip()[-1500:]))
        err.close()
    return '; '.join(failed) or None


def _decompress_argvs(src, dest, jobs=1):
    """The decompressor command lines _decompress_tree runs for a pg_dump directory."""
    zst = [os.path.join(src, n) for n in sorted(os.listdir(src)) if n.endswith('.zst')]
    lz4 = [os.path.join(src, n) for n in sorted(os.listdir(src)) if n.endswith('.lz4')]
    argvs = [['zstd', '-d', '-q', '-f', '-T%d' % max(jobs, 1), '--output-dir-flat', dest] + zst] if zst else []
    return argvs + [['lz4', '-d', '-q', '-f', full, os.path.join(dest, os.path.basename(full)[:-4])] for full in lz4]


def _decompress_tree(src, dest, os_user, commands, jobs=1, plan=False):
    """Copy a pg_dump directory, undoing zstd/lz4 compression of its files. ``plan``: only the
    command lines go to commands (check mode), nothing is read or written."""
    if plan:
        commands += [show_command(argv) for argv in _decompress_argvs(src, dest, jobs)]
        return dest
    os.makedirs(dest, exist_ok=True)
    for name in sorted(os.listdir(src)):
        if not name.endswith(('.zst', '.lz4')):
            shutil.copy2(os.path.join(src, name), os.path.join(dest, name))
    if os.geteuid() == 0 and os_user:
        import pwd
        pw = pwd.getpwnam(os_user)
        os.chown(dest, pw.pw_uid, pw.pw_gid)
        for name in os.listdir(dest):
            os.chown(os.path.join(dest, name), pw.pw_uid, pw.pw_gid)
    for argv in _decompress_argvs(src, dest, jobs):
        run_tool(argv, 'decompress backup files in', src, os_user=os_user, commands=commands)
    return dest


def _psql(bin_dir, os_user, socket_dir, port, user, database, sql, commands=None, operation='query the restored server'):
    argv = [os.path.join(bin_dir, 'psql'), '-X', '-q', '-A', '-t', '-F', '\t', '-v', 'ON_ERROR_STOP=1',
            '-h', socket_dir, '-p', str(port), '-U', user, '-d', database, '-c', sql]
    return run_tool(argv, operation, database, os_user=os_user, commands=commands).stdout


def _controldata_state(bin_dir, data_dir, os_user):
    proc = run_tool([os.path.join(bin_dir, 'pg_controldata'), '-D', data_dir], 'read control file of', data_dir,
                    os_user=os_user, check=False)
    match = re.search(r'Database cluster state:\s*(.+)', proc.stdout or '')
    return match.group(1).strip() if match else None


def _postmaster_alive(data_dir):
    """A server runs on data_dir: its postmaster.pid names a live process, or a process works in it."""
    from ansible_collections.dbops.admin.plugins.module_utils._backup_catalog import process_working_in
    pidfile = os.path.join(data_dir, 'postmaster.pid')
    try:
        with open(pidfile) as f:
            pid = int(f.readline().strip())
        os.kill(pid, 0)
        return True
    except (OSError, ValueError):
        return bool(os.path.isdir(data_dir) and process_working_in(data_dir))


def _tail(path, size=3000):
    try:
        with open(path, errors='replace') as f:
            return f.read()[-size:]
    except OSError:
        return ''


# ---- module-level functions: no connection (the source may be down) ------------------------------
def extract_base(path, details, target, os_user, bin_dir, commands):
    """Put the base backup's files into target (plain copy, or tar extraction)."""
    base = os.path.join(path, 'base')
    if details.get('format') == 'plain':
        shutil.copytree(base, target, dirs_exist_ok=True)
    else:
        os.makedirs(target, exist_ok=True)
        for name in sorted(os.listdir(base)):
            full = os.path.join(base, name)
            if name == 'backup_manifest':
                shutil.copy2(full, os.path.join(target, name))
                continue
            if not name.startswith(('base.tar', 'pg_wal.tar')):
                continue
            dest = target if name.startswith('base.tar') else os.path.join(target, 'pg_wal')
            os.makedirs(dest, exist_ok=True)
            argv = ['tar', '-x', '-f', full, '-C', dest]
            if name.endswith('.zst'):
                argv[1:1] = ['-I', 'zstd -d']
            elif name.endswith('.lz4'):
                argv[1:1] = ['-I', 'lz4 -d']
            elif name.endswith('.gz'):
                argv[1:1] = ['-z']
            run_tool(argv, 'extract base backup file', full, commands=commands)
    if os.geteuid() == 0 and os_user:
        import pwd
        pw = pwd.getpwnam(os_user)
        for dirpath, dirnames, filenames in os.walk(target):
            os.chown(dirpath, pw.pw_uid, pw.pw_gid)
            for name in dirnames + filenames:
                os.lchown(os.path.join(dirpath, name), pw.pw_uid, pw.pw_gid)
    os.chmod(target, 0o700)


def check_manifest_checksums(target, manifest_path, jobs=2, name=''):
    """SHA-256 of every file against pg_basebackup's backup_manifest, hashed by parallel threads.

    Returns (problems, {relative path: sha256}) or (None, None) when the manifest does not use SHA-256.
    """
    import concurrent.futures
    import hashlib
    files = read_backup_manifest(manifest_path).get('Files') or []
    if not files or any(f.get('Checksum-Algorithm') != 'SHA256' for f in files):
        return None, None

    def digest(entry):
        full = os.path.join(target, entry['Path'])
        h = hashlib.sha256()
        try:
            with open(full, 'rb') as f:
                while True:
                    block = f.read(4 * 1024 * 1024)
                    if not block:
                        break
                    h.update(block)
        except OSError as exc:
            return entry, None, str(exc)
        return entry, h.hexdigest(), None

    problems, sums = [], {}
    with concurrent.futures.ThreadPoolExecutor(max_workers=max(int(jobs), 2)) as pool:
        for entry, value, error in pool.map(digest, sorted(files, key=lambda e: -int(e.get('Size') or 0))):
            if error:
                problems.append('%s/base/%s: %s' % (name, entry['Path'], error))
            elif value != entry.get('Checksum'):
                problems.append('%s/base/%s: SHA-256 checksum mismatch against backup_manifest' % (name, entry['Path']))
            else:
                sums[os.path.join('base', entry['Path'])] = value
    return problems, sums


def _syncfs_reports_errors():
    """syncfs() reports writeback errors only from Linux 5.8 on; before, fsync every file."""
    if not sys.platform.startswith('linux'):
        return False
    match = re.match(r'(\d+)\.(\d+)', os.uname().release)
    return bool(match) and (int(match.group(1)), int(match.group(2))) >= (5, 8)


def sync_tree(root, files=None, dirs=None):
    """Make every file and directory under root durable: one syncfs() of its filesystem (what
    pg_basebackup's --sync-method=syncfs does on PostgreSQL 17; one call instead of an fsync per
    file), or an fsync of every file and directory where syncfs is not available or does not report
    writeback errors (Linux before 5.8)."""
    syncfs = None
    if _syncfs_reports_errors():
        try:
            import ctypes
            syncfs = ctypes.CDLL(None, use_errno=True).syncfs
        except (ImportError, OSError, AttributeError):
            syncfs = None
    if syncfs is not None:
        fd = os.open(root, os.O_RDONLY)
        try:
            if syncfs(fd) == 0:
                return 'syncfs'
        finally:
            os.close(fd)
    if files is None:
        files, dirs = [], []
        for dirpath, _dirnames, filenames in os.walk(root):
            dirs.append(dirpath)
            files += [os.path.join(dirpath, n) for n in filenames]
    for path in list(files) + list(dirs):
        if os.path.islink(path):
            continue
        fd = os.open(path, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)
    return 'fsync'


def hash_and_sync(root, jobs=2, sync=True, prefix='', known=None):
    """SHA-256 of every regular file under root by parallel threads while one more thread makes the
    tree durable (sync_tree): hashing is CPU work, syncing waits for the disk, so the two overlap (and
    overlap whatever else runs meanwhile, e.g. pg_verifybackup). Returns {prefix/rel: sha256}. ``known``:
    {prefix/rel: sha256 or a callable returning it or None} (GrowingFileHasher.finish: the rest of a
    file followed while it was written is hashed in the pool; None = hash the whole file).
    """
    import concurrent.futures
    import hashlib
    import mmap
    import threading
    files, dirs = [], []
    for dirpath, _dirnames, filenames in os.walk(root):
        dirs.append(dirpath)
        for name in filenames:
            full = os.path.join(dirpath, name)
            if os.path.isfile(full) and not os.path.islink(full):
                files.append((os.path.getsize(full), full))
    files.sort(reverse=True)  # largest first: the pool ends with small files, evenly
    known = dict(known or {})
    paths = [f for _s, f in files]
    sync_error = []

    def sync_all():
        try:
            sync_tree(root, paths, dirs)
        except OSError as exc:
            sync_error.append(exc)

    def digest(full):
        rest = known.get(os.path.join(prefix, os.path.relpath(full, root)))
        if rest is not None:
            value = rest() if callable(rest) else rest
            if value is not None:
                return full, value
        h = hashlib.sha256()
        with open(full, 'rb', buffering=0) as f:
            size = os.fstat(f.fileno()).st_size
            if size >= 1024 * 1024:
                # hashed straight from the page cache: no copy into a buffer
                with mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_READ) as view:
                    h.update(view)
            else:
                h.update(f.read())
        return full, h.hexdigest()

    syncer = None
    if sync:
        syncer = threading.Thread(target=sync_all, name='dbops-sync', daemon=True)
        syncer.start()
    sums = {}
    try:
        with concurrent.futures.ThreadPoolExecutor(max_workers=max(int(jobs), 1)) as pool:
            for full, value in pool.map(digest, paths):
                sums[os.path.join(prefix, os.path.relpath(full, root))] = value
    finally:
        if syncer is not None:
            syncer.join()
    if sync_error:
        raise sync_error[0]
    return sums


class GrowingFileHasher:
    """SHA-256 of the large files under root while pg_basebackup is still writing them.

    pg_basebackup (plain format) writes each data file once, front to back, and the kernel never
    shows a reader bytes beyond what a completed write() put there: hashing every file up to its
    current end, again and again, and once more after pg_basebackup has exited, gives the SHA-256
    of the whole file without reading it again afterwards (it is read from the page cache while the
    transfer runs). pg_wal/ (streamed WAL is padded then overwritten in place) is left out, as are
    small files: they are hashed afterwards. ``finish()`` (after the writer has exited) returns
    what is left to hash of each followed file (see finish); a file whose size or identity changed
    under it is hashed again from scratch.
    """

    MIN_SIZE = 4 * 1024 * 1024
    MAX_OPEN = 32       # files followed at once (pg_basebackup writes one at a time): the oldest is let go
    SMALL_CHECKS = 20   # a file still small after this many looks is left to the pass afterwards

    def __init__(self, root, rel_root):
        import threading
        self.root, self.rel_root = root, rel_root
        self.files = {}  # path -> [fd or None (let go), hash, offset, inode]
        self.open = []   # paths whose fd is open, oldest first
        self.small = {}  # path -> times seen below MIN_SIZE
        self.stopping = threading.Event()
        self.error = None
        self.thread = threading.Thread(target=self._run, name='dbops-hash-follow', daemon=True)
        self.writeback = None
        try:
            import ctypes
            func = ctypes.CDLL(None, use_errno=True).sync_file_range
            func.argtypes = [ctypes.c_int, ctypes.c_longlong, ctypes.c_longlong, ctypes.c_uint]
            self.writeback = func
        except (ImportError, OSError, AttributeError):
            pass

    def start(self):
        self.thread.start()
        return self

    def _scan(self):
        import hashlib
        top = os.path.join(self.root, 'base')
        for dirpath, _dirnames, filenames in os.walk(top):
            for name in filenames:
                full = os.path.join(dirpath, name)
                if full in self.files or self.small.get(full, 0) >= self.SMALL_CHECKS:
                    continue
                try:
                    st = os.lstat(full)
                    if st.st_size < self.MIN_SIZE or not os.path.isfile(full) or os.path.islink(full):
                        self.small[full] = self.small.get(full, 0) + 1
                        continue
                    fd = os.open(full, os.O_RDONLY)
                except OSError:
                    continue
                self.files[full] = [fd, hashlib.sha256(), 0, os.fstat(fd).st_ino]
                self.open.append(full)
                while len(self.open) > self.MAX_OPEN:
                    self._let_go(self.open.pop(0))

    def _let_go(self, full):
        entry = self.files[full]
        self._read(entry)
        os.close(entry[0])
        entry[0] = None  # finish() reopens it (same inode required) for whatever came after

    def _read(self, entry):
        moved = 0
        while not self.stopping.is_set():
            block = os.pread(entry[0], 8 * 1024 * 1024, entry[2])
            if not block:
                break
            entry[1].update(block)
            if self.writeback is not None:
                # start writing these pages to disk now: the final sync has less left to wait for
                self.writeback(entry[0], entry[2], len(block), 2)  # SYNC_FILE_RANGE_WRITE, asynchronous
            entry[2] += len(block)
            moved += len(block)
        return moved

    def _pump(self):
        return sum(self._read(self.files[full]) for full in self.open)

    def _run(self):
        import threading
        try:
            try:
                # spare CPU only: the transfer itself must never wait for this thread
                os.setpriority(os.PRIO_PROCESS, threading.get_native_id(), 19)
            except (AttributeError, OSError):
                pass
            while not self.stopping.is_set():
                self._scan()
                if not self._pump():
                    self.stopping.wait(0.05)
        except Exception as exc:  # pylint: disable=broad-except
            self.error = exc

    def finish(self):
        """Stop following (the writer has exited); returns {path relative to rel_root: callable} where
        each callable hashes the rest of its file and returns its SHA-256 (None when the file changed
        identity or size under us: then it must be hashed from scratch)."""
        self.stopping.set()
        self.thread.join()
        if self.error is not None:
            self.close()
            return {}
        return {os.path.relpath(full, self.rel_root): self._rest(full, entry) for full, entry in self.files.items()}

    def _rest(self, full, entry):
        def rest():
            fd, digest, offset, inode = entry
            own = fd is None
            try:
                if own:
                    fd = os.open(full, os.O_RDONLY)
                if os.fstat(fd).st_ino != inode:
                    return None
                while True:
                    block = os.pread(fd, 8 * 1024 * 1024, offset)
                    if not block:
                        break
                    digest.update(block)
                    offset += len(block)
                st = os.stat(full)
                if st.st_ino != inode or os.fstat(fd).st_size != offset or st.st_size != offset:
                    return None
                return digest.hexdigest()
            except OSError:
                return None
            finally:
                if own and fd is not None:
                    os.close(fd)
        return rest

    def close(self):
        self.stopping.set()
        if self.thread.is_alive():
            self.thread.join()
        for entry in self.files.values():
            if entry[0] is not None:
                try:
                    os.close(entry[0])
                except OSError:
                    pass
                entry[0] = None
        self.open = []


def _verifybackup_problems(proc_returncode, output, backup_id, name):
    problems = []
    if proc_returncode != 0:
        for line in output.splitlines():
            line = line.strip()
            if not line or 'backup successfully verified' in line:
                continue
            line = re.sub(r'^pg_verifybackup: (error: )?', '', line)
            problems.append('%s/base: %s' % (name, line))
        if not problems:
            problems.append('%s: pg_verifybackup failed (exit %d)' % (backup_id, proc_returncode))
    return problems


def verify_physical(manifest, path, scratch_dir, log_dir=None, bin_dir=None, os_user=None, jobs=2, checksums_out=None):
    """pg_verifybackup on a physical full backup (extracted first when stored as tar).

    pg_verifybackup checks the manifest, the file list and sizes, the checksum of every file and
    parses the WAL. Backups taken with SHA-256 manifest checksums (earlier versions) have those
    checked by parallel threads instead (pg_verifybackup hashes on one core) and, when they hold,
    handed back through checksums_out.
    """
    details = manifest.get('details') or {}
    if manifest.get('method') == 'pgbackrest':
        # the repository the set is in now: <repo>/<id>/data is path (the manifest's details.repo is where the
        # repository was when the backup was taken; it may have been moved since)
        here = os.path.dirname(os.path.dirname(os.path.abspath(path))) if path else None
        return verify_pgbackrest(manifest, os_user, here if here and os.path.isdir(pgbackrest_paths(here)['root'])
                                 else None)
    if manifest.get('type') != 'full' or manifest.get('method') != 'physical':
        return []
    bin_dir = find_bin_dir(bin_dir, details.get('major_version'))
    base = os.path.join(path, 'base')
    target = base
    if details.get('format') != 'plain':
        target = os.path.join(scratch_dir, 'verify-' + manifest['id'])
        extract_base(path, details, target, os_user, bin_dir, [])
    manifest_path = os.path.join(base, 'backup_manifest')
    name = '%s/data' % manifest['id']
    try:
        problems, sums = check_manifest_checksums(target, manifest_path, jobs, name)
        argv = [os.path.join(bin_dir, 'pg_verifybackup'), '-m', manifest_path]
        if problems is not None:
            argv.append('--skip-checksums')
        argv.append(target)
        proc = run_tool(argv, 'verify backup', manifest['id'], os_user=os_user, check=False)
    finally:
        if target != base:
            shutil.rmtree(target, ignore_errors=True)
    problems = list(problems or []) + _verifybackup_problems(proc.returncode, proc.stderr or proc.stdout,
                                                             manifest['id'], name)
    if not problems and sums and checksums_out is not None:
        checksums_out.update(sums)
    return problems


def verify_logical(manifest, path, bin_dir=None, os_user=None):
    """pg_restore -l on every dump of a logical backup: its table of contents must be readable."""
    problems = []
    bin_dir = find_bin_dir(bin_dir, (manifest.get('details') or {}).get('major_version'))
    for dump in (manifest.get('details') or {}).get('dumps') or []:
        proc = run_tool([os.path.join(bin_dir, 'pg_restore'), '-l', os.path.join(path, dump['dir'])],
                        'read dump of', dump['database'], os_user=os_user, check=False)
        if proc.returncode != 0:
            problems.append('%s/data/%s/toc.dat: %s' % (manifest['id'], dump['dir'], proc.stderr.strip()[-500:]))
    return problems


def read_restore_marker(data_dir):
    try:
        with open(os.path.join(data_dir, RESTORE_MARKER_FILE)) as f:
            return json.load(f)
    except (OSError, ValueError):
        return None


def instance_running(data_dir):
    return _postmaster_alive(data_dir)


def instance_port(data_dir):
    """The port a restored instance is set to start on (the last port line of postgresql.auto.conf,
    where the restore wrote it), or None."""
    port = None
    try:
        with open(os.path.join(data_dir, 'postgresql.auto.conf'), errors='replace') as f:
            for line in f:
                match = re.match(r"\s*port\s*=\s*'?(\d+)'?\s*(?:#.*)?$", line)
                if match:
                    port = int(match.group(1))
    except OSError:
        return None
    return port


def set_instance_port(data_dir, port):
    """Start a restored (stopped) instance on another port next time."""
    with open(os.path.join(data_dir, 'postgresql.auto.conf'), 'a') as f:
        f.write("# dbops.admin db_restore: another port\nport = '%d'\n" % int(port))


def stop_instance(data_dir, os_user=None, bin_dir=None, major=None, mode='fast'):
    bin_dir = find_bin_dir(bin_dir, major)
    if _postmaster_alive(data_dir):
        run_tool([os.path.join(bin_dir, 'pg_ctl'), '-D', data_dir, '-m', mode, '-w', '-t', '120', 'stop'],
                 'stop restored server in', data_dir, os_user=os_user, check=False)


def start_instance(data_dir, os_user=None, bin_dir=None, major=None, commands=None):
    from ansible_collections.dbops.admin.plugins.module_utils._backup_catalog import socket_dir_for
    bin_dir = find_bin_dir(bin_dir, major)
    port = instance_port(data_dir)
    if port:
        # a short socket directory in /tmp is gone after a reboot: made again
        socket_dir_for(data_dir, '.s.PGSQL.%d' % port, os_user, create=True)
    log = os.path.join(data_dir, 'dbops_restore_server.log')
    proc = run_tool([os.path.join(bin_dir, 'pg_ctl'), '-D', data_dir, '-l', log, '-w', '-t', '600', 'start'],
                    'start restored server in', data_dir, os_user=os_user, commands=commands, check=False)
    if proc.returncode != 0:
        raise DbError('start restored server in', data_dir, 'pg_ctl failed: %s' % _tail(log))


def conninfo_dbname(name):
    """-d of the libpq tools: a name holding '=' or a URI prefix would be read as a connection
    string; as ``dbname='...'`` it is always a database name."""
    return "dbname='%s'" % name.replace('\\', '\\\\').replace("'", "\\'")


def _utc_moment(text):
    """ISO 8601 (Z, an offset, or none = UTC) -> aware UTC datetime: the catalog's reading of a time."""
    from ansible_collections.dbops.admin.plugins.module_utils._backup_catalog import parse_time
    return parse_time(text).astimezone(datetime.timezone.utc)


def recovery_target_time(text):
    """The value of recovery_target_time for a target: explicit UTC, never read in the restored
    server's own time zone."""
    return _utc_moment(text).strftime('%Y-%m-%d %H:%M:%S.%f+00')


def _stage_wal(log_dir, stage, last, segment_size=16 * 1024 * 1024):
    """Links to the archived segments up to ``last`` on last's timeline history (and every timeline
    history file) in stage: recovery without a target then ends exactly at the end of that log backup."""
    os.makedirs(stage, exist_ok=True)
    path = timeline_path(log_dir, int(last[:8], 16), segment_size) or [(int(last[:8], 16), 0)]
    end = _segno(last, segment_size)
    for name in os.listdir(log_dir):
        if not name.endswith('.history'):
            if not WAL_NAME_RE.match(name):
                continue
            segno = _segno(name, segment_size)
            if segno > end or int(name[:8], 16) != _timeline_at(path, segno):
                continue
        os.symlink(os.path.join(log_dir, name), os.path.join(stage, name))


def _check_lsn(text):
    if not re.match(r'^[0-9A-Fa-f]{1,8}/[0-9A-Fa-f]{1,8}$', str(text)):
        raise DbError('restore to position', repr(text), "give target_position: {lsn: 'X/Y'} or 'X/Y' (hexadecimal, "
                      'as pg_current_wal_lsn() shows it, like 0/3000060)')
    return str(text).upper()


def check_target_position(position):
    """{lsn: 'X/Y'} normalised, None when empty; DbError naming the accepted form otherwise. The LSN
    alone ('0/3000060') is the same target."""
    if not position or (isinstance(position, str) and not position.strip()):
        return None
    if isinstance(position, str):
        return {'lsn': _check_lsn(position.strip())}
    if not isinstance(position, dict):
        raise DbError('restore to position', str(position), "PostgreSQL takes target_position: {lsn: 'X/Y'} or 'X/Y'")
    unknown = sorted(str(k) for k in position if k != 'lsn')
    if unknown:
        raise DbError('restore to position', ', '.join(unknown), "PostgreSQL takes target_position: {lsn: 'X/Y'} or 'X/Y'")
    return {'lsn': _check_lsn(position.get('lsn'))}


def target_before(stop_position, target_position):
    """True when target_position ({lsn}) lies before a backup's stop position (it cannot be reached
    from that backup: a physical backup is consistent only from its end), False when at or after
    it, None when either is unknown."""
    target = check_target_position(target_position)
    stop = (stop_position or {}).get('lsn')
    if not target or not stop:
        return None
    try:
        return parse_lsn(target['lsn']) < parse_lsn(stop)
    except (ValueError, AttributeError):
        return None


def check_tool_path(path, what):
    """DbError for a path PostgreSQL's tools cannot take: pg_ctl and pg_verifybackup (running pg_waldump) pass
    paths to a shell inside double quotes, so a path holding a double quote or a line break breaks their command
    (pg_ctl failed with an empty message after a whole restore; pg_verifybackup failed every physical backup)."""
    bad = [name for char, name in (('"', 'a double quote'), ('\n', 'a line break'), ('\r', 'a carriage return'))
           if char in str(path)]
    if bad:
        raise DbError('use %s' % what, path, "it holds %s, which PostgreSQL's tools (pg_ctl, pg_verifybackup) cannot "
                      'take in a path: choose another directory' % ' and '.join(bad))


def check_target_time(full_manifest, target_time):
    """DbError when target_time lies before the end of the physical backup the replay starts from (it is
    consistent only from its end). The real restore and check mode refuse alike (pgBackRest: its own check)."""
    if not target_time:
        return
    ended = full_manifest.get('stop_time') or full_manifest.get('finished_at')
    if ended and _utc_moment(target_time) < _utc_moment(ended):
        raise DbError('restore to', target_time, 'backup %s ended at %s: a physical backup is consistent only from '
                      'its end; choose an older backup or a later time' % (full_manifest['id'], ended))


def restore_physical(request):
    """Restore a physical chain into a new data directory, recover to the target, promote, start."""
    chain = request['chain']
    full = chain[0]
    details = full['manifest'].get('details') or {}
    major = details.get('major_version')
    bin_dir = find_bin_dir(request.get('bin_dir'), major)
    os_user = request.get('os_user')
    data_dir = os.path.abspath(request['data_dir'])
    port = int(request['port'])
    commands = []
    log_dir = request.get('log_dir')
    target_time = request.get('target_time')
    target_position = request.get('target_position') or {}
    last = request.get('last') or chain[-1]['manifest']

    # refuse before touching anything
    check_restore_tools(last, request.get('repo'), os_user)
    if os.path.isdir(data_dir) and os.listdir(data_dir):
        if _postmaster_alive(data_dir):
            raise DbError('restore into', data_dir, 'a server is running on that data directory: stop it first')
        if not request.get('force'):
            raise DbError('restore into', data_dir, 'the directory is not empty: set force to replace its contents')
    target_position = check_target_position(target_position) or {}
    # the backup the replay starts from: the full (log backups only add WAL), or the pgBackRest set restored
    consistent_from = last if last.get('method') == 'pgbackrest' else full['manifest']
    check_target_time(consistent_from, target_time)
    if target_position.get('lsn') and target_before(consistent_from.get('stop_position'), target_position):
        raise DbError('restore to', target_position['lsn'], 'backup %s ends at LSN %s: a physical backup is consistent '
                      'only from its end; choose an older backup or a later position'
                      % (consistent_from['id'], consistent_from['stop_position']['lsn']))
    need_archive = last.get('method') != 'pgbackrest' and bool(
        target_time or target_position.get('lsn') or last.get('type') == 'log')
    seg_size = int(details.get('wal_segment_size') or 16 * 1024 * 1024)
    if need_archive:
        if not log_dir or not os.path.isdir(log_dir):
            raise DbError('restore to a point in time from', full['manifest']['id'],
                          'no WAL archive in the repository (run db_backup type=log first)')
        first = (full['manifest'].get('start_position') or {}).get('wal_file')
        last_needed = (last.get('stop_position') or {}).get('wal_file') if last.get('type') == 'log' else None
        if first:
            missing = wal_gaps(log_dir, first, seg_size, last_needed)
            if missing:
                raise DbError('restore to a point in time from', full['manifest']['id'],
                              '%s is missing from the archive %s%s' % (
                                  missing_wal_text(os.path.join(log_dir, missing[0])), log_dir,
                                  ' (and %d more)' % (len(missing) - 1) if len(missing) > 1 else ''))

    # the directories this restore creates (data_dir and missing parents): removed again when it fails
    created = None
    if not os.path.lexists(data_dir):
        created = data_dir
        while not os.path.lexists(os.path.dirname(created)):
            created = os.path.dirname(created)
    try:
        return _restore_physical_in(request, data_dir, full, details, last, major, bin_dir, os_user, port, commands,
                                    log_dir, target_time, target_position, seg_size)
    except BaseException:
        if created is not None:
            with contextlib.suppress(Exception):
                if _postmaster_alive(data_dir):
                    stop_instance(data_dir, os_user, bin_dir, major, 'immediate')
            shutil.rmtree(created, ignore_errors=True)
        raise


def _restore_physical_in(request, data_dir, full, details, last, major, bin_dir, os_user, port, commands, log_dir,
                         target_time, target_position, seg_size):
    if os.path.isdir(data_dir):
        _empty_dir(data_dir)
    else:
        os.makedirs(data_dir, mode=0o700)

    def attempt(upto, to_time):
        try:
            return _restore_into(request, data_dir, full, details, upto, major, bin_dir, os_user, port, commands,
                                 log_dir, to_time, target_position)
        except BaseException:
            # nothing half-restored stays behind (the error carries the server log's tail): a retry needs no force
            with contextlib.suppress(Exception):
                if _postmaster_alive(data_dir):
                    stop_instance(data_dir, os_user, bin_dir, major, 'immediate')
            with contextlib.suppress(OSError):
                _empty_dir(data_dir)
            raise

    try:
        return attempt(last, target_time)
    except _ArchiveEndsBeforeTarget as exc:
        cover = _log_backup_covering(request, full['manifest'], target_time, seg_size) \
            if target_time and last.get('method') != 'pgbackrest' else None
        if cover is None:
            raise
        short = exc
    # recovery replayed the whole archive without meeting a commit after target_time, and a log backup
    # ending at or after target_time holds every change up to it: nothing was committed between the last
    # commit and the target, so the state at the target is the state at the end of that log backup
    commands.append('# no commit after %s in the WAL archive: recovering to the end of log backup %s, which '
                    'covers it' % (target_time, cover['id']))
    out = attempt(cover, None)
    if out.get('last_commit') and _utc_moment(out['last_commit']) > _utc_moment(target_time):
        with contextlib.suppress(Exception):
            stop_instance(data_dir, os_user, bin_dir, major, 'immediate')
        with contextlib.suppress(OSError):
            _empty_dir(data_dir)
        raise short
    out['recovered_to'] = out.get('last_commit') or target_time
    marker_path = os.path.join(data_dir, RESTORE_MARKER_FILE)
    with open(marker_path) as f:
        marker = json.load(f)
    marker['recovered_to'] = out['recovered_to']
    with open(marker_path, 'w') as f:
        json.dump(marker, f, sort_keys=True)
    return out


class _ArchiveEndsBeforeTarget(DbError):
    """Recovery reached the end of the archived WAL without meeting the target."""


def _log_backup_covering(request, full_manifest, target_time, seg_size):
    """The first physical log backup (of request['log_backups']) that ends at or after target_time, taken
    after full_manifest, whose WAL from the full on is all in the archive; None without one."""
    log_dir = request.get('log_dir')
    if not log_dir or not os.path.isdir(log_dir):
        return None
    target = _utc_moment(target_time)
    full_end = _utc_moment(full_manifest.get('stop_time') or full_manifest.get('finished_at'))
    first = (full_manifest.get('start_position') or {}).get('wal_file')
    for manifest in sorted(request.get('log_backups') or [],
                           key=lambda m: _utc_moment(m.get('stop_time') or m.get('finished_at'))):
        stop_file = (manifest.get('stop_position') or {}).get('wal_file')
        ended = manifest.get('stop_time') or manifest.get('finished_at')
        if manifest.get('type') != 'log' or manifest.get('method') != 'physical' or not stop_file or not ended \
                or not first or manifest.get('engine') not in (None, 'postgresql'):
            continue
        if manifest.get('verified') is False and manifest.get('verify_problems'):
            continue   # found damaged by verification
        if _utc_moment(ended) < target or _utc_moment(ended) < full_end or stop_file < first:
            continue
        if wal_gaps(log_dir, first, seg_size, stop_file):
            return None
        return manifest
    return None


def _empty_dir(path):
    for name in os.listdir(path):
        full_path = os.path.join(path, name)
        if os.path.isdir(full_path) and not os.path.islink(full_path):
            shutil.rmtree(full_path)
        else:
            os.unlink(full_path)


def _restore_into(request, data_dir, full, details, last, major, bin_dir, os_user, port, commands, log_dir,
                  target_time, target_position):
    if last.get('method') == 'pgbackrest':
        if os_user and os.geteuid() == 0:
            import pwd
            pw = pwd.getpwnam(os_user)
            os.chown(data_dir, pw.pw_uid, pw.pw_gid)
        os.chmod(data_dir, 0o700)
        _restore_pgbackrest(request, last, data_dir, os_user, commands)
    else:
        extract_base(full['path'], details, data_dir, os_user, bin_dir, commands)
    from ansible_collections.dbops.admin.plugins.module_utils._backup_catalog import socket_dir_for
    # the data directory, unless the socket path would be too long for a Unix socket
    socket_dir = socket_dir_for(data_dir, '.s.PGSQL.%d' % int(port), os_user, create=True)
    for stale in ('backup_manifest', 'standby.signal', 'postmaster.pid', RESTORE_MARKER_FILE,
                  'dbops_restore_server.log', STAGED_WAL_DIR):
        try:
            os.unlink(os.path.join(data_dir, stale))
        except OSError:
            pass
    settings = {
        'port': str(port),
        'listen_addresses': "'127.0.0.1'",
        'unix_socket_directories': "'%s'" % socket_dir.replace("'", "''"),
        'archive_mode': "'off'",
        'archive_command': "''",
        'recovery_target_action': "'promote'",
    }
    if last.get('method') == 'pgbackrest':
        for key in ('archive_mode', 'archive_command', 'recovery_target_action'):
            settings.pop(key)
        # pgBackRest's own restore_command is not shell-quoted: replaced by one that is
        _replace_restore_command(data_dir)
        settings['restore_command'] = "'%s'" % pgbackrest_restore_command(request['repo'], data_dir).replace("'", "''")
    elif log_dir and os.path.isdir(log_dir):
        source = log_dir
        to_end_of_log = not target_time and not target_position.get('lsn') and last.get('type') == 'log' and \
            (last.get('stop_position') or {}).get('wal_file')
        if to_end_of_log:
            # to the end of the log backup: recovery sees the segments up to its last one, no
            # further, and ends there (its stop LSN is the start of the next, unarchived segment)
            source = os.path.join(data_dir, STAGED_WAL_DIR)
            stop_file = last['stop_position']['wal_file']
            _stage_wal(log_dir, source, stop_file, int(details.get('wal_segment_size') or 16 * 1024 * 1024))
            # along the log backup's own timeline, even when the archive holds a later one
            settings['recovery_target_timeline'] = "'%d'" % int(stop_file[:8], 16)
        settings['restore_command'] = "'%s'" % ('cp %s/%%f %%p' % shlex.quote(source)).replace("'", "''")
    if last.get('method') == 'pgbackrest':
        pass  # pgBackRest wrote restore_command and the recovery target
    elif target_time:
        settings['recovery_target_time'] = "'%s'" % recovery_target_time(target_time)
    elif target_position.get('lsn'):
        settings['recovery_target_lsn'] = "'%s'" % target_position['lsn']
    elif last.get('type') == 'log':
        pass  # every staged segment is replayed, then the server is promoted
    else:
        settings['recovery_target'] = "'immediate'"
    with open(os.path.join(data_dir, 'postgresql.auto.conf'), 'a') as f:
        f.write('\n# dbops.admin restore of %s\n' % request.get('marker', {}).get('backup_id', full['manifest']['id']))
        for key, value in settings.items():
            f.write('%s = %s\n' % (key, value))
    if request.get('hba_local_trust'):
        with open(os.path.join(data_dir, 'pg_hba.conf'), 'w') as f:
            f.write('local all all trust\n')
    open(os.path.join(data_dir, 'recovery.signal'), 'w').close()
    if os.geteuid() == 0 and os_user:
        import pwd
        pw = pwd.getpwnam(os_user)
        for name in ('postgresql.auto.conf', 'recovery.signal', 'pg_hba.conf'):
            os.chown(os.path.join(data_dir, name), pw.pw_uid, pw.pw_gid)
        os.chown(data_dir, pw.pw_uid, pw.pw_gid)

    started = time.time()
    log = os.path.join(data_dir, 'dbops_restore_server.log')

    def short_archive(detail):
        # the server gave up: the archived WAL does not reach the target
        if 'recovery ended before configured recovery target was reached' in detail:
            wanted = re.findall(r"([0-9A-F]{24})': No such file", detail)
            if last.get('method') == 'pgbackrest':
                # pgBackRest archives each segment as it is closed: a new pgBackRest backup closes the current one
                return DbError('recover to', target_time or target_position.get('lsn'), "pgBackRest's WAL archive "
                               'ends before the target: take a new pgBackRest backup after it (it archives the WAL '
                               'written so far), or choose an earlier target; nothing was restored (%s)' % detail[-600:])
            return _ArchiveEndsBeforeTarget(
                'recover to', target_time or target_position.get('lsn'), 'the WAL archive ends before the target%s: '
                'take a log backup (type=log) after it, or choose an earlier target; nothing was restored (%s)' % (
                    ' (WAL segment %s is not in %s)' % (wanted[-1], log_dir) if wanted else '', detail[-600:]))
        if 'before consistent recovery point' in detail:
            return DbError('recover to', target_time or target_position.get('lsn'), 'the target lies before the end of '
                           'backup %s: a physical backup is consistent only from its end; choose an older backup or a '
                           'later target; nothing was restored' % last.get('id'))
        return None

    try:
        start_instance(data_dir, os_user, bin_dir, major, commands)
    except DbError as exc:
        raise short_archive(_tail(log) + str(exc)) or exc from None
    deadline = time.time() + float(request.get('timeout') or 3600)
    while True:
        state = _controldata_state(bin_dir, data_dir, os_user)
        if state == 'in production':
            break
        if not _postmaster_alive(data_dir):
            tail = _tail(log)
            raise short_archive(tail) or DbError('recover restored server in', data_dir,
                                                 'the server stopped during recovery: %s' % tail)
        if time.time() > deadline:
            stop_instance(data_dir, os_user, bin_dir, major, 'immediate')
            raise DbError('recover restored server in', data_dir, 'recovery did not finish in time: %s' % _tail(log))
        time.sleep(0.3)
    shutil.rmtree(os.path.join(data_dir, STAGED_WAL_DIR), ignore_errors=True)
    text = _tail(log, 200000)
    recovered_to = None
    # the last commit replayed (not the one recovery stopped before)
    for pattern in (r'last completed transaction was at log time (\S+ \S+)',):
        found = re.findall(pattern, text)
        if found:
            recovered_to = found[-1]
            break
    if recovered_to:
        try:
            moment = datetime.datetime.fromisoformat(recovered_to.replace(' ', 'T') + (
                '' if re.search(r'[+-]\d\d(:?\d\d)?$', recovered_to) else '+00:00'))
            recovered_to = moment.astimezone(datetime.timezone.utc).isoformat().replace('+00:00', 'Z')
        except ValueError:
            pass
    reached = recovered_to or target_time or last.get('stop_time') or last.get('finished_at')
    # what a repeated identical restore returns (it finds this marker and restores nothing)
    marker = dict(request.get('marker') or {}, restored_at=_now_iso(), recovered_to=reached)
    with open(os.path.join(data_dir, RESTORE_MARKER_FILE), 'w') as f:
        json.dump(marker, f, sort_keys=True)
    return {'data_dir': data_dir, 'port': port, 'recovered_to': reached,
            'commands': commands, 'recovery_seconds': round(time.time() - started, 3),
            'socket_dir': socket_dir, 'last_commit': recovered_to}


def drill_check(request):
    """Row counts per table and pg_amcheck on a scratch instance started by restore_physical."""
    bin_dir = find_bin_dir(request.get('bin_dir'), request.get('major'))
    os_user = request.get('os_user')
    sock, port, user = request['socket_dir'], request['port'], request['superuser']
    commands = []
    out = _psql(bin_dir, os_user, sock, port, user, 'postgres',
                'SELECT datname FROM pg_database WHERE datallowconn AND NOT datistemplate ORDER BY 1',
                commands)
    tables = []
    for db in [d for d in out.splitlines() if d]:
        rows = _psql(bin_dir, os_user, sock, port, user, db, COUNT_SQL, commands)
        for line in rows.splitlines():
            if '\t' in line:
                name, count = line.rsplit('\t', 1)
                tables.append({'database': db, 'name': name, 'rows': int(count)})
    problems = []
    proc = run_tool([os.path.join(bin_dir, 'pg_amcheck'), '-h', sock, '-p', str(port), '-U', user, '--all',
                     '--install-missing'], 'check restored server with pg_amcheck', None, os_user=os_user,
                    commands=commands, check=False)
    if proc.returncode != 0:
        problems.append('pg_amcheck: %s' % (proc.stdout + proc.stderr).strip()[-2000:])
    return {'tables': tables, 'problems': problems, 'commands': commands}


# ---- pgBackRest ------------------------------------------------------------------------------
PGBACKREST_STANZA = 'dbops'
PGBACKREST_TYPES = {'full': 'full', 'incremental': 'incr', 'differential': 'diff'}


def pgbackrest_paths(repo):
    root = os.path.join(repo, 'pgbackrest')
    return {'root': root, 'conf': os.path.join(root, 'pgbackrest.conf'), 'lock': os.path.join(root, 'lock'),
            'log': os.path.join(root, 'log'), 'spool': os.path.join(root, 'spool')}


# the commands that take --lock-path on the command line (pgBackRest refuses it for verify and check)
_PGBR_LOCKING = ('backup', 'expire', 'stanza-create', 'restore', 'info', 'archive-get', 'archive-push')


PGBACKREST_MISSING = 'pgbackrest is not installed (not found on PATH): install the pgbackrest package (apt install pgbackrest)'


def require_pgbackrest(action, target=None):
    """DbError naming the package when the pgbackrest program is not on PATH."""
    if not shutil.which('pgbackrest'):
        raise DbError(action, target, PGBACKREST_MISSING)


def check_restore_tools(manifest, repo=None, os_user=None):
    """What a restore of ``manifest`` needs, checked before anything is written (check mode too): the pgbackrest
    program and, with ``repo``, the entry's pgBackRest set still in pgBackRest's repository (not expired by hand)."""
    if (manifest or {}).get('method') != 'pgbackrest':
        return
    require_pgbackrest('restore pgBackRest backup', manifest.get('id'))
    label = (manifest.get('details') or {}).get('label')
    if not repo or not label or not os.path.isfile(pgbackrest_paths(repo)['conf']):
        return
    proc = run_tool(pgbackrest_argv(repo, 'info', '--output=json', '--log-level-file=off'),
                    'read pgBackRest repository', repo, os_user=os_user, check=False)
    try:
        data = json.loads(proc.stdout or '[]')
    except ValueError:
        data = None
    if proc.returncode != 0 or data is None:
        return   # the restore itself says what is wrong with the repository
    labels = [s.get('label') for s in ((data[0].get('backup') if data else None) or [])]
    if label not in labels:
        raise DbError('restore pgBackRest backup', manifest.get('id'), 'its pgBackRest set %s is no longer in the '
                      'repository %s (expired with pgbackrest expire by hand?): choose another backup, or delete this '
                      'entry (state=absent); nothing was changed' % (label, repo))


def pgbackrest_access_problems(repo, os_user=None):
    """The directories of the pgBackRest repository (<repo>/pgbackrest) that the OS user running pgbackrest - the
    server's archive-push too - cannot enter, read or write, the stanza configuration it cannot read, and the
    repository (or, not there yet, its nearest existing parent) when it cannot pass through it (the module creates
    what is missing for that user). Returns a list of paths (empty: fine)."""
    paths = pgbackrest_paths(repo)
    root = paths['root']
    wanted = [root, os.path.join(root, 'backup'), os.path.join(root, 'backup', PGBACKREST_STANZA),
              os.path.join(root, 'archive'), os.path.join(root, 'archive', PGBACKREST_STANZA),
              paths['lock'], paths['log'], paths['spool']]
    dirs = [d for d in wanted if os.path.isdir(d)]
    # the repository itself (our catalog) need only let that user through to pgbackrest/
    existing = os.path.abspath(repo)
    while not os.path.exists(existing):
        existing = os.path.dirname(existing)
    through = [existing]
    files = [paths['conf']] if os.path.isfile(paths['conf']) else []
    if os_user and os.geteuid() == 0:
        # one shell as that user: d:<dir> must be readable, writable, enterable; x:<dir> enterable; r:<file> readable
        script = ('for a; do p=${a#?:}; case $a in d:*) test -r "$p" -a -w "$p" -a -x "$p" || echo "$p";; '
                  'x:*) test -x "$p" || echo "$p";; r:*) test -r "$p" || echo "$p";; esac; done')
        argv = ['sh', '-c', script, 'sh'] + ['d:' + d for d in dirs] + ['x:' + d for d in through] \
            + ['r:' + f for f in files]
        proc = subprocess.run(_as_user(argv, os_user), capture_output=True, text=True, cwd='/', check=False)
        if proc.returncode != 0:
            return [os.path.abspath(repo)]
        return [line for line in proc.stdout.splitlines() if line]
    bad = [d for d in dirs if not os.access(d, os.R_OK | os.W_OK | os.X_OK)]
    bad += [d for d in through if not os.access(d, os.X_OK)]
    bad += [f for f in files if not os.access(f, os.R_OK)]
    return bad


def pgbackrest_stanza_system_id(repo):
    """The system identifier of the cluster the stanza in the repository was created for (its backup.info, else
    archive.info), None without a stanza."""
    root = pgbackrest_paths(repo)['root']
    for rel in (('backup', PGBACKREST_STANZA, 'backup.info'), ('archive', PGBACKREST_STANZA, 'archive.info')):
        for suffix in ('', '.copy'):
            try:
                with open(os.path.join(root, *rel) + suffix) as f:
                    text = f.read()
            except OSError:
                continue
            section = re.search(r'^\[db\]\n(.*?)(?:^\[|\Z)', text, re.M | re.S)
            found = re.search(r'^db-system-id=(\d+)$', section.group(1) if section else '', re.M)
            if found:
                return found.group(1)
    return None


def pgbackrest_config_pg_path(repo):
    """The data directory (pg1-path) the stanza configuration in the repository names, None without one."""
    try:
        with open(pgbackrest_paths(repo)['conf']) as f:
            for line in f:
                if line.startswith('pg1-path='):
                    return line.strip()[len('pg1-path='):]
    except OSError:
        return None
    return None


def pgbackrest_foreign_stanza(repo, system_id, data_directory):
    """Why the stanza in the repository belongs to another cluster than the server (``system_id``, its
    ``data_directory``), or None. Another system identifier; or a stanza configured for another data directory
    that still holds a cluster (a copy of this one: same identifier, its own WAL - two clusters must not share one
    stanza). A data directory that is gone is this cluster, moved."""
    theirs = pgbackrest_stanza_system_id(repo)
    if theirs and system_id and str(system_id) != theirs:
        return ('the pgBackRest stanza in %s belongs to another cluster (system identifier %s; this server\'s is %s): '
                'back this server up into another repository' % (repo, theirs, system_id))
    configured = pgbackrest_config_pg_path(repo)
    if theirs and configured and data_directory and os.path.realpath(configured) != os.path.realpath(data_directory) \
            and os.path.isfile(os.path.join(configured, 'PG_VERSION')):
        return ('the pgBackRest stanza in %s belongs to the cluster in %s (this server runs from %s; a copy of the same '
                'cluster shares its system identifier, and two clusters must not share one stanza): back this server up '
                'into another repository' % (repo, configured, data_directory))
    return None


def pgbackrest_argv(repo, command, *options):
    """pgbackrest <command> on the repository at ``repo``. The repository's own paths are given on the command line
    too (they win over the configuration file): a repository moved or renamed after pgBackRest backups were taken,
    whose configuration still names the old place, is read and written where it is now, never at the old path."""
    paths = pgbackrest_paths(repo)
    here = ['--repo1-path=%s' % paths['root'], '--log-path=%s' % paths['log']]
    if command in _PGBR_LOCKING:
        here.append('--lock-path=%s' % paths['lock'])
    return ['pgbackrest', '--config=%s' % paths['conf'], '--stanza=%s' % PGBACKREST_STANZA] + here \
        + list(options) + [command]


def pgbackrest_command_config(command):
    """The configuration file a pgBackRest ``archive-push`` archive_command of this collection names (its
    ``--config``), or None when the command is not one of ours (another tool, another stanza, other options)."""
    try:
        # as the shell sees it: PostgreSQL turns %% into % (and %p into the segment's path)
        words = shlex.split(re.sub(r'%(.)', lambda m: '%' if m.group(1) == '%' else m.group(0), command or ''))
    except ValueError:
        return None
    if len(words) != 5 or words[0] != 'pgbackrest' or not words[1].startswith('--config=') \
            or words[2] != '--stanza=%s' % PGBACKREST_STANZA or words[3:] != ['archive-push', '%p']:
        return None
    conf = words[1][len('--config='):]
    if os.path.basename(conf) != 'pgbackrest.conf' or os.path.basename(os.path.dirname(conf)) != 'pgbackrest':
        return None
    return conf


def pgbackrest_moved_from(command, repo):
    """The repository an archive_command of ours pushes into when that repository is gone from its place (moved or
    renamed: its configuration file no longer exists), and it is not ``repo``; None otherwise. Archiving into it
    fails anyway: the command is replaced by the one for ``repo`` (a repository that still exists is another
    repository: refused, see _refuse_foreign_archiving)."""
    conf = pgbackrest_command_config(command)
    if conf is None or conf == pgbackrest_paths(repo)['conf'] or os.path.exists(conf):
        return None
    return os.path.dirname(os.path.dirname(conf))


def pgbackrest_config_repo(repo):
    """The repository path (repo1-path) the stanza configuration under ``repo`` names, None without one."""
    try:
        with open(pgbackrest_paths(repo)['conf']) as f:
            for line in f:
                if line.startswith('repo1-path='):
                    return line.strip()[len('repo1-path='):]
    except OSError:
        return None
    return None


def write_pgbackrest_config(repo, os_user, pg, compression='zstd', level=None, jobs=1):
    """The stanza configuration lives in the repository (pgBackRest's own repo under <repo>/pgbackrest)."""
    paths = pgbackrest_paths(repo)
    for key in ('root', 'lock', 'log', 'spool'):
        os.makedirs(paths[key], mode=0o750, exist_ok=True)
    compress = {'zstd': 'zst', 'gzip': 'gz', 'lz4': 'lz4', 'none': 'none'}[compression or 'zstd']
    lines = ['[global]', 'repo1-path=%s' % paths['root'], 'lock-path=%s' % paths['lock'],
             'log-path=%s' % paths['log'], 'spool-path=%s' % paths['spool'], 'log-level-console=warn',
             'log-level-file=info', 'start-fast=y', 'compress-type=%s' % compress, 'process-max=%d' % max(jobs, 1),
             # our catalog decides retention; pgBackRest must not expire sets the catalog still lists (this also
             # keeps the automatic expire after each backup off the WAL archive: retention prunes it with
             # pgbackrest_expire_archive once the catalog's sets are gone)
             'repo1-retention-full=9999999', 'repo1-retention-full-type=count']
    if level is not None:
        lines.append('compress-level=%d' % level)
    lines += ['', '[%s]' % PGBACKREST_STANZA, 'pg1-path=%s' % pg['data_directory'], 'pg1-port=%s' % pg['port'],
              'pg1-socket-path=%s' % pg['socket_dir']]
    if pg.get('user'):
        lines.append('pg1-user=%s' % pg['user'])
    with open(paths['conf'], 'w') as f:
        f.write('\n'.join(lines) + '\n')
    if os.geteuid() == 0 and os_user:
        import pwd
        pw = pwd.getpwnam(os_user)
        for dirpath, dirnames, filenames in os.walk(paths['root']):
            os.chown(dirpath, pw.pw_uid, pw.pw_gid)
            for name in dirnames + filenames:
                os.lchown(os.path.join(dirpath, name), pw.pw_uid, pw.pw_gid)
    return paths


def _shell_word(text):
    """One shell word of an archive_command/restore_command: shell-quoted, and a % doubled (PostgreSQL replaces %p,
    %f, %r in the command: a path holding "%p" would be mangled)."""
    return shlex.quote(str(text)).replace('%', '%%')


def pgbackrest_archive_command(repo):
    paths = pgbackrest_paths(repo)
    return 'pgbackrest --config=%s --stanza=%s archive-push %%p' % (_shell_word(paths['conf']), PGBACKREST_STANZA)


def pgbackrest_info(repo, os_user, commands=None):
    proc = run_tool(pgbackrest_argv(repo, 'info', '--output=json'), 'read pgBackRest repository', repo,
                    os_user=os_user, commands=commands)
    data = json.loads(proc.stdout or '[]')
    return data[0] if data else {}


def pgbackrest_expire(repo, label, os_user=None, commands=None):
    """Remove one pgBackRest set from its repository (``pgbackrest expire --set=<label>``; pgBackRest also removes
    every set built on it, so the caller deletes those first). Raises DbError with pgBackRest's refusal."""
    run_tool(pgbackrest_argv(repo, 'expire', '--set=%s' % label), 'expire pgBackRest backup set', label,
             os_user=os_user, commands=commands)


_PGBR_EXPIRE_RANGE_RE = re.compile(r'\brepo1: (\S+) remove archive, start = ([0-9A-F]{16,24}), stop = ([0-9A-F]{16,24})')
_PGBR_EXPIRE_PATH_RE = re.compile(r'\brepo1: remove archive path (\S+)')
_PGBR_EXPIRE_HISTORY_RE = re.compile(r'\brepo1: (\S+) remove history file ([0-9A-F]{8}\.history)')
_PGBR_EXPIRE_KEPT_RE = re.compile(
    r'\brepo1: (\S+) archive retention on backup ([^,\s]+), start = ([0-9A-F]{24}), stop = ([0-9A-F]{24})')


def pgbackrest_archive_files(repo):
    """Every file of pgBackRest's WAL archive (segments, ``.backup`` and ``.history`` files under
    ``pgbackrest/archive/<stanza>/<archive id>/``), as sorted paths relative to ``repo``."""
    root = os.path.join(pgbackrest_paths(repo)['root'], 'archive', PGBACKREST_STANZA)
    found = []
    if not os.path.isdir(root):
        return found
    for archive_id in sorted(os.listdir(root)):
        top = os.path.join(root, archive_id)
        if not _PGBR_ARCHIVE_ID_RE.match(archive_id) or not os.path.isdir(top):
            continue   # archive.info and its copy stay
        for dirpath, _dirnames, filenames in os.walk(top):
            found += [os.path.relpath(os.path.join(dirpath, name), repo) for name in filenames]
    return sorted(found)


def pgbackrest_archive_retention(sets, gone=()):
    """The ``--repo1-retention-archive`` (type full) that keeps exactly the WAL of the sets in ``sets`` that are
    not in ``gone``: the number of full sets from the oldest full that stays to the newest. pgBackRest then keeps
    all WAL from that full's archive start on (every set still there is that full or newer, so each one restores,
    to any point in time up to the newest archived segment) and removes what is older. None: no full set stays.

    ``sets``: {label: set} oldest first (``pgbackrest info``); ``gone``: labels about to be expired (check mode,
    where the catalog's deletions did not happen)."""
    fulls = [label for label, s in sets.items() if s.get('type') == 'full']
    kept = [label for label in fulls if label not in set(gone)]
    if not kept:
        return None
    return len(fulls) - fulls.index(kept[0])


def pgbackrest_expire_archive_argv(repo, keep_fulls, dry_run=False):
    """``pgbackrest expire`` that only prunes the WAL archive: no set goes (repo1-retention-full stays
    9999999), WAL older than the archive start of the ``keep_fulls``-th newest full set goes."""
    options = ['--repo1-retention-archive=%d' % keep_fulls, '--repo1-retention-archive-type=full',
               '--log-level-console=detail']
    if dry_run:
        options += ['--dry-run', '--log-level-file=off']
    return pgbackrest_argv(repo, 'expire', *options)


def pgbackrest_expired_archive(output, files, repo, gone=()):
    """The files of ``files`` (pgbackrest_archive_files) that the archive expiry logged in ``output`` removes.

    pgBackRest logs ranges (``repo1: 15-1 remove archive, start = <wal>, stop = <wal>``; a whole major directory
    as its 16-character name), whole archive ids (``remove archive path <path>``) and history files.
    ``gone``: labels of sets expired before the real expiry (a dry run in check mode still sees them): the WAL
    range the dry run kept only to make such an older set consistent (``archive retention on backup <label>,
    start = ..., stop = ...``) goes too."""
    ranges, paths, histories = [], [], set()
    for line in (output or '').splitlines():
        match = _PGBR_EXPIRE_RANGE_RE.search(line)
        if match:
            ranges.append(match.groups())
            continue
        match = _PGBR_EXPIRE_KEPT_RE.search(line)
        if match:
            if match.group(2) in gone:
                ranges.append((match.group(1), match.group(3), match.group(4)))
            continue
        match = _PGBR_EXPIRE_PATH_RE.search(line)
        if match:
            paths.append(os.path.relpath(match.group(1), repo) + os.sep)
            continue
        match = _PGBR_EXPIRE_HISTORY_RE.search(line)
        if match:
            histories.add(match.groups())
    gone = []
    for rel in files:
        parts = rel.split(os.sep)   # pgbackrest/archive/<stanza>/<archive id>/[<major dir>/]<file>
        if any(rel.startswith(path) for path in paths):
            gone.append(rel)
        elif len(parts) == 5 and (parts[3], parts[4]) in histories:
            gone.append(rel)
        elif len(parts) == 6 and any(parts[3] == archive_id and parts[5][:len(start)] >= start
                                     and parts[5][:len(stop)] <= stop for archive_id, start, stop in ranges):
            gone.append(rel)
    return gone


# what ``pgbackrest verify --output=text`` prints and logs (2.45: the exit code is 0 even with ``status: error``;
# the damaged files are only named in the log, at level info, the contiguous WAL ranges at level detail)
_PGBR_FILE_RE = re.compile(r"\b(file missing|invalid checksum|invalid size|invalid result)\s+'([^']+)'")
_PGBR_RANGE_RE = re.compile(r'archiveId:\s*([^,\s]+),\s*wal start:\s*([0-9A-F]{24}),\s*wal stop:\s*([0-9A-F]{24})')
_PGBR_BACKUP_RE = re.compile(r'^\s*backup:\s*([^,\s]+),\s*status:\s*([^,]+?)\s*(?:,(.*))?$')
_PGBR_COUNTS_RE = re.compile(r'^\s*((?:missing|checksum invalid|size invalid|other):\s*\d+(?:,\s*|\s*$))+$')
_PGBR_ARCHIVE_ID_RE = re.compile(r'^\d+(\.\d+)?-\d+$')
_PGBR_LOG_RE = re.compile(r'\b(WARN|ERROR)(?::\s*\[\d+\])?:\s*(.*)$')
# the lines parse_pgbackrest_verify collects, first match wins: (pattern, list in its result, the item of a match)
_PGBR_COLLECTED = ((_PGBR_FILE_RE, 'files', lambda found: found.groups()),
                   (_PGBR_RANGE_RE, 'ranges', lambda found: found.groups()),
                   (_PGBR_LOG_RE, 'messages', lambda found: found.group(2).strip()))


def _pgbr_collected(line):
    """(list, item) of a line parse_pgbackrest_verify collects (a damaged file, a WAL range, a WARN/ERROR), or None."""
    for pattern, key, item in _PGBR_COLLECTED:
        found = pattern.search(line)
        if found:
            return key, item(found)
    return None


def parse_pgbackrest_verify(text):
    """What ``pgbackrest verify --output=text --verbose`` said (result on stdout, log lines on stderr or mixed in).

    Returns {'backups': {label: {'status', 'counts'}}, 'files': [(reason, path in the stanza)],
    'ranges': [(archive_id, first, last)], 'messages': [WARN/ERROR log lines], 'status': 'ok'|'error'|None}.
    """
    out = {'backups': {}, 'files': [], 'ranges': [], 'messages': [], 'status': None}
    current = None
    for line in (text or '').splitlines():
        collected = _pgbr_collected(line)
        if collected:
            key, item = collected
            if item not in out[key]:
                out[key].append(item)
            current = None
            continue
        found = re.search(r'(?:^|\s)status:\s*(ok|error)\s*$', line)
        if found and 'backup:' not in line:
            out['status'] = 'error' if 'error' in (out['status'], found.group(1)) else 'ok'
            continue
        found = _PGBR_BACKUP_RE.match(line)
        if found:
            current = out['backups'].setdefault(found.group(1), {'status': found.group(2), 'counts': {}})
            continue
        if current is not None and _PGBR_COUNTS_RE.match(line):
            for name, value in re.findall(r'(missing|checksum invalid|size invalid|other):\s*(\d+)', line):
                current['counts'][name] = max(current['counts'].get(name, 0), int(value))
        current = None
    return out


def pgbackrest_verify_problems(returncode, stdout, stderr, label, backup_id=None, references=(), wal_first=None,
                               wal_last=None, segment_size=16 * 1024 * 1024):
    """The problems of one pgBackRest set in the output of ``pgbackrest verify`` (empty: the set is sound).

    Only the set ``label`` counts: its files (in its own directory and in the sets it references) and the WAL
    from ``wal_first`` to ``wal_last`` that makes it consistent; pgBackRest 2.45 ignores ``--set`` and checks
    the whole stanza, so damage elsewhere in the repository is left out. A non-zero exit is a failure too.
    """
    name = '%s (pgBackRest set %s)' % (backup_id, label) if backup_id else 'pgBackRest set %s' % label
    root = 'pgbackrest/backup/%s' % PGBACKREST_STANZA
    archive_root = 'pgbackrest/archive/%s' % PGBACKREST_STANZA
    parsed = parse_pgbackrest_verify('%s\n%s' % (stdout or '', stderr or ''))
    problems = []
    sets = {label} | set(r for r in (references or ()) if r)
    backup_files = [(reason, path) for reason, path in parsed['files']
                    if not _PGBR_ARCHIVE_ID_RE.match(path.split('/', 1)[0])]
    ours = [(reason, path) for reason, path in backup_files if path.split('/', 1)[0] in sets]
    result = parsed['backups'].get(label)
    if result is not None and result['status'] != 'valid' and not ours:
        ours = backup_files   # a set referenced that we did not know of: the files pgBackRest named
    for reason, path in ours:
        problems.append('%s/%s: %s' % (root, path, reason))
    if result is not None and result['status'] != 'valid':
        counts = ', '.join('%s: %d' % (k, v) for k, v in sorted(result['counts'].items()) if v)
        problems.append('%s: pgBackRest verify says %s%s' % (name, result['status'], ' (%s)' % counts if counts else ''))
    for reason, path in parsed['files']:
        segment = os.path.basename(path)[:24]
        if not _PGBR_ARCHIVE_ID_RE.match(path.split('/', 1)[0]) or not WAL_NAME_RE.match(segment):
            continue
        if not wal_first or not wal_last or (segment[:8] == wal_first[:8] and wal_first <= segment <= wal_last):
            problems.append('%s/%s: %s (WAL segment %s, needed by %s)' % (archive_root, path, reason, segment, name))
    if wal_first and wal_last and parsed['ranges']:
        missing, current, guard = [], wal_first, 0
        while current <= wal_last and guard < 100000:
            if not any(first[:8] == current[:8] and first <= current <= last for _, first, last in parsed['ranges']):
                missing.append(current)
            current = next_wal_name(current, segment_size)
            guard += 1
        if missing:
            problems.append('%s: WAL segment %s missing from pgBackRest\'s archive %s%s' % (
                name, missing[0], archive_root, ' (and %d more)' % (len(missing) - 1) if len(missing) > 1 else ''))
    for message in parsed['messages']:
        if label in message and not any(message in p for p in problems):
            problems.append('%s: %s' % (name, message))
    if returncode != 0:
        output = ('%s\n%s' % (stdout or '', stderr or '')).splitlines()
        errors = [m for m in parsed['messages'] if m] or [line.strip() for line in output if line.strip()][-3:]
        problems.append('%s: pgbackrest verify failed (exit %d)%s' % (
            name, returncode, ': ' + '; '.join(errors)[-1500:] if errors else ''))
    elif result is None and not problems:
        problems.append('%s: pgbackrest verify did not report on the set%s' % (
            name, ': ' + (stdout or stderr or '').strip()[-500:] if (stdout or stderr or '').strip() else ''))
    return problems


def verify_pgbackrest(manifest, os_user=None, repo=None, commands=None):
    """``pgbackrest verify`` of the set of one catalog entry (see pgbackrest_verify_problems). Returns problems."""
    details = manifest.get('details') or {}
    repo = repo or details.get('repo')
    label = details.get('label')
    if not label:
        return ['%s: no pgBackRest label in the manifest' % manifest['id']]
    # --set: pgBackRest 2.45 accepts it on verify but still checks the whole stanza ("for internal use only"),
    # later releases check that set and the WAL it needs; the log names each damaged file (info) and the
    # contiguous WAL ranges (detail): on stderr, the result on stdout
    options = ['--set=%s' % label, '--output=text', '--verbose', '--log-level-console=off',
               '--log-level-stderr=detail', '--no-log-timestamp']
    argv = pgbackrest_argv(repo, 'verify', *options)
    proc = run_tool(argv, 'verify pgBackRest backup', label, os_user=os_user, commands=commands, check=False)
    if proc.returncode != 0 and re.search(r"option '?set'? (is )?not (valid|allowed)", proc.stdout + proc.stderr):
        argv = pgbackrest_argv(repo, 'verify', *options[1:])   # a release without verify --set
        proc = run_tool(argv, 'verify pgBackRest backup', label, os_user=os_user, commands=commands, check=False)
    return pgbackrest_verify_problems(
        proc.returncode, proc.stdout, proc.stderr, label, manifest.get('id'),
        list(details.get('reference') or []) + ([details['prior']] if details.get('prior') else []),
        (manifest.get('start_position') or {}).get('wal_file'), (manifest.get('stop_position') or {}).get('wal_file'),
        int(details.get('wal_segment_size') or 16 * 1024 * 1024))


def pgbackrest_restore_command(repo, data_dir):
    """restore_command for a cluster restored from the pgBackRest repository at ``repo``: every path shell-quoted
    (pgBackRest 2.45 writes its own unquoted, so a path with a space or a quote breaks recovery or even the
    configuration file's syntax)."""
    argv = pgbackrest_argv(repo, 'archive-get', '--pg1-path=%s' % data_dir)
    return ' '.join(_shell_word(a) for a in argv) + ' %f "%p"'


def _replace_restore_command(data_dir):
    """Drop the restore_command lines pgBackRest wrote into postgresql.auto.conf (ours is appended after)."""
    conf = os.path.join(data_dir, 'postgresql.auto.conf')
    with open(conf) as f:
        lines = f.readlines()
    kept = [line for line in lines if not re.match(r'\s*restore_command\s*=', line)]
    with open(conf, 'w') as f:
        f.writelines(kept)


def _restore_pgbackrest(request, last, data_dir, os_user, commands):
    details = last.get('details') or {}
    repo = request['repo']
    options = ['--set=%s' % details['label'], '--pg1-path=%s' % data_dir, '--archive-mode=off']
    target_time = request.get('target_time')
    target_position = request.get('target_position') or {}
    if target_time:
        options += ['--type=time', '--target=%s' % recovery_target_time(target_time), '--target-action=promote']
    elif target_position.get('lsn'):
        options += ['--type=lsn', '--target=%s' % target_position['lsn'], '--target-action=promote']
    else:
        options += ['--type=immediate', '--target-action=promote']
    run_tool(pgbackrest_argv(repo, 'restore', *options), 'restore pgBackRest backup', details['label'],
             os_user=os_user, commands=commands)


# ---- the mixin ---------------------------------------------------------------------------
class PostgresBackup:
    """backup methods of the Postgres engine; self is the connected engine."""

    def backup_methods(self):
        pgbackrest = ['full', 'incremental', 'differential'] if shutil.which('pgbackrest') else []
        return {'logical': ['full'], 'physical': ['full', 'log'], 'pgbackrest': pgbackrest}

    def unsupported_reason(self, method, btype):
        """Why backup_methods() does not offer this method/type, in DBA words (None: nothing to add)."""
        if method == 'pgbackrest' and not shutil.which('pgbackrest'):
            return PGBACKREST_MISSING
        return None

    def check_pgbackrest(self, repo, os_user=None):
        """What a pgBackRest backup refuses before it writes anything (check mode refuses the same): no pgbackrest
        program, an archive_command that sends the WAL elsewhere, a repository its OS user cannot enter or write."""
        require_pgbackrest('take a pgBackRest backup into', repo)
        self.check_archiving('pgbackrest', None, repo)
        foreign = pgbackrest_foreign_stanza(repo, *self._cluster_identity())
        if foreign:
            raise DbError('take a pgBackRest backup into', repo, foreign + '; nothing was changed')
        bad = pgbackrest_access_problems(repo, os_user)
        if bad:
            who = 'the OS user %s' % os_user if os_user else 'this user'
            raise DbError('use the pgBackRest repository', repo, '%s (who runs pgbackrest, and the server\'s '
                          'archive-push) cannot enter, read or write %s: permissions; give the repository to that user '
                          '(chown -R %s %s) or choose another repository; nothing was changed' % (
                              who, ', '.join(bad), os_user or '<user>', shlex.quote(repo)))

    def _cluster_identity(self):
        """(system identifier, data directory) of the server; None for what this login may not read."""
        try:
            row = self.fetch_one('SELECT system_identifier::text AS id FROM pg_control_system()')
            system_id = row['id']
        except DbError:
            self._rollback()
            system_id = None
        try:
            data_directory = self.fetch_one("SELECT current_setting('data_directory') AS d")['d']
        except DbError:
            self._rollback()
            data_directory = None
        return system_id, data_directory

    def backup_bin_dir(self, bin_dir=None):
        return find_bin_dir(bin_dir, (self.version or '').split('.')[0])

    # -- helpers
    def _tool_env(self, request, database=None):
        env = tool_env(request.get('connection'))
        if database:
            env['PGDATABASE'] = database
        return env

    def _tool_secrets(self, request):
        return [(request.get('connection') or {}).get('login_password')] + list(self._secrets)

    def _position(self):
        row = self.fetch_one(
            "SELECT CASE WHEN pg_is_in_recovery() THEN pg_last_wal_replay_lsn() ELSE pg_current_wal_lsn() END::text AS lsn, "
            "(SELECT timeline_id FROM pg_control_checkpoint()) AS timeline")
        seg = self.wal_segment_size()
        return {'lsn': row['lsn'], 'timeline': row['timeline'], 'wal_file': wal_file_name(row['timeline'], row['lsn'], seg)}

    def wal_segment_size(self):
        return int(self.fetch_value("SELECT setting::bigint FROM pg_settings WHERE name = 'wal_segment_size'"))

    def _bootstrap_superuser(self):
        return self.fetch_value('SELECT rolname FROM pg_roles WHERE oid = 10')

    def _connect_db(self, request, database):
        from ansible_collections.dbops.admin.plugins.module_utils._connection import connect_params
        return connect_params(dict(request.get('connection') or {}, engine='postgresql'), database=database)

    # -- create
    def backup_create(self, request):
        method, btype = request['method'], request['type']
        if method == 'logical' and btype == 'full':
            return self._backup_logical(request)
        if method == 'physical' and btype == 'full':
            return self._backup_basebackup(request)
        if method == 'physical' and btype == 'log':
            return self._backup_wal(request)
        if method == 'pgbackrest' and btype in PGBACKREST_TYPES:
            return self._backup_pgbackrest(request)
        raise DbError('create backup', '%s %s' % (method, btype), 'not supported on PostgreSQL %s' % self.version)

    def parallel_slots(self):
        """How many parallel jobs the server's free connections allow: pg_dump -j N (and pg_restore -j N) opens
        N + 1 sessions, pg_dumpall --globals-only one more, beside this session. None when unknown."""
        try:
            free = self.fetch_value(
                "SELECT current_setting('max_connections')::int"
                " - CASE WHEN (SELECT rolsuper FROM pg_roles WHERE rolname = current_user) THEN 0"
                " ELSE current_setting('superuser_reserved_connections')::int END"
                " - (SELECT count(*) FROM pg_stat_activity WHERE backend_type = 'client backend')",
                operation='read the free connections')
        except DbError:
            return None
        return None if free is None else max(int(free) - 2, 1)

    def check_backup_databases(self, wanted):
        """The databases a logical backup can dump (every one that accepts connections, templates
        excluded); DbError naming those of ``wanted`` that are not among them."""
        existing = [r['datname'] for r in self.fetch_all(
            'SELECT datname FROM pg_database WHERE datallowconn AND NOT datistemplate ORDER BY datname')]
        unknown = [d for d in wanted or [] if d not in existing]
        if unknown:
            raise DbError('back up database', ', '.join(unknown), 'no such database (this server has %s)'
                          % ', '.join(existing))
        return existing

    def _backup_logical(self, request):
        bin_dir = self.backup_bin_dir(request.get('bin_dir'))
        os_user = request.get('os_user')
        secrets = self._tool_secrets(request)
        commands = []
        all_dbs = self.check_backup_databases(request.get('databases'))
        wanted = request.get('databases') or all_dbs
        compression = request.get('compression') or 'none'
        level = request.get('compression_level')
        jobs = max(int(request.get('jobs') or 1), 1)
        start_time = _now_iso()
        start = self._position()
        # roles and tablespaces (pg_dumpall --globals-only) dumped meanwhile, by its own process
        argv = [os.path.join(bin_dir, 'pg_dumpall'), '--globals-only', '-f', os.path.join(request['dest'], 'globals.sql')]
        if not getattr(self, 'is_superuser', False):
            argv.append('--no-role-passwords')
        commands.append(show_command(argv, secrets))
        try:
            globals_proc = subprocess.Popen(_as_user(argv, os_user), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                                            env=dict(os.environ, **self._tool_env(request, 'postgres')), cwd='/')
        except OSError:
            globals_proc = None
        try:
            dumps = self._dump_databases(request, wanted, bin_dir, os_user, secrets, commands, compression, level, jobs)
        except BaseException:
            if globals_proc is not None:
                globals_proc.kill()
                globals_proc.wait()
            raise
        globals_file = None
        if globals_proc is not None:
            globals_proc.communicate()
            if globals_proc.returncode == 0:
                globals_file = 'globals.sql'
        stop = self._position()
        return {
            'start_position': start, 'stop_position': stop, 'start_time': start_time, 'stop_time': _now_iso(),
            'databases': wanted, 'server_version': self.version, 'commands': commands,
            'details': {'format': 'pg_dump directory', 'dumps': dumps, 'globals': globals_file,
                        # pg_dumpall --no-role-passwords (a login that cannot read pg_authid)
                        'globals_passwords': bool(globals_file) and bool(getattr(self, 'is_superuser', False)),
                        'compression_tool': {'gzip': 'pg_dump', 'zstd': 'zstd', 'lz4': 'lz4'}.get(compression),
                        'major_version': (self.version or '').split('.')[0],
                        'bootstrap_superuser': self._bootstrap_superuser()},
        }

    def _dump_databases(self, request, wanted, bin_dir, os_user, secrets, commands, compression, level, jobs):
        """pg_dump -Fd of each database (large tables in parallel chunks); returns the dumps' details."""
        dumps = []
        # encoding and locale of each database: a restore into a new database recreates them
        props = dict((r['datname'], r) for r in self.fetch_all(
            'SELECT datname, pg_encoding_to_char(encoding) AS encoding, datcollate AS collate, datctype AS ctype '
            'FROM pg_database'))
        for index, database in enumerate(wanted):
            dirname = 'db-%03d' % (index + 1)
            dest = os.path.join(request['dest'], dirname)
            argv = [os.path.join(bin_dir, 'pg_dump'), '-Fd', '-j', str(jobs), '--lock-wait-timeout=' + LOCK_WAIT, '-f', dest]
            argv += ['-Z', str(level if level is not None else 6)] if compression == 'gzip' else ['-Z', '0']
            tables = None
            chunked = []
            conn_engine = None
            env = dict(os.environ, **self._tool_env(request, database))
            split = jobs > 1 and compression in ('zstd', 'lz4', 'none')
            exported = {}
            proc = None
            try:
                if request.get('verify', True) or split:
                    # one exported snapshot for pg_dump, the table chunks and the row counts
                    conn_engine = self._connect_db(request, database)
                    conn = conn_engine.conn
                    conn.autocommit = False
                    conn.set_session(isolation_level='REPEATABLE READ', readonly=True)
                    with conn.cursor() as cur:
                        cur.execute("SET lock_timeout = '%s'" % LOCK_WAIT)
                        cur.execute('SELECT pg_export_snapshot()')
                        snapshot = cur.fetchone()[0]
                    argv += ['--snapshot', snapshot]
                server_side = False
                if split:
                    candidates = self._chunk_candidates(conn_engine)
                    if candidates['tables']:
                        os.makedirs(os.path.join(dest + '-chunks'), exist_ok=True)
                        self._chown(dest + '-chunks', os_user)
                        server_side = self._server_side_export(request, database, dest + '-chunks', compression,
                                                               level, commands)
                    # server-side: twice as many ranges as sessions, so a session that finishes early takes the
                    # next range and no core idles while the last range of a table is still being copied
                    chunked = self._plan_chunks(candidates, jobs * 2 if server_side else jobs, compression, dirname)
                    for table in chunked:
                        argv += ['--exclude-table-data', '"%s"."%s"' % (table['schema'].replace('"', '""'),
                                                                        table['table'].replace('"', '""'))]
                    if any(not t['qualified'].isascii() for t in chunked) and chunked[0]['encoding'] != 'UTF8':
                        # pg_dump matches the patterns in its client encoding (the database's by default) but
                        # they are UTF-8 here: a name they missed would be dumped twice (pg_dump and the chunks)
                        argv += ['--encoding', 'UTF8']
                    if chunked and self._rest_is_small(conn_engine, chunked):
                        argv[argv.index('-j') + 1] = '1'   # pg_dump only has small tables left
                commands.append(show_command(argv, secrets) + '  # PGDATABASE=%s' % database)
                proc = subprocess.Popen(_as_user(argv, os_user), stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                        env=env, cwd='/', text=True)
                pipelines = []
                failures = []
                if server_side:
                    # the server writes the chunks itself (COPY ... TO PROGRAM), one session per job, all on the
                    # snapshot: no client process in between, and the row counts come with the COPY
                    exported, failures = self._export_chunks_server(request, database, snapshot, chunked, jobs,
                                                                    compression, level, commands, conn_engine)
                    # COPY counts ONLY the table's own rows; the drill counts a parent with its inheritance
                    # children, so such a parent is counted like every other table
                    exported = dict((t['qualified'], exported[t['qualified']]) for t in chunked
                                    if not t['has_children'])
                elif chunked:
                    for table in chunked:
                        for chunk in table['chunks']:
                            psql = ([os.path.join(bin_dir, 'psql'), '-X', '-q', '-v', 'ON_ERROR_STOP=1'] + CHUNK_SESSION
                                    + ['-c', 'BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY',
                                       '-c', "SET TRANSACTION SNAPSHOT '%s'" % snapshot,
                                       '-c', chunk['copy'], '-c', 'COMMIT'])
                            comp, _ext = _compressor(compression, level)
                            commands.append(show_command(psql) + (' | ' + show_command(NICE_COMPRESSOR + comp) if comp else '')
                                            + ' > ' + chunk['file'])
                            pipelines.append(_start_pipeline(
                                # the statement is UTF-8 (names may not be ASCII); the rows are in the database's
                                # encoding, as the server-side COPY writes them (ENCODING in the statement)
                                [(psql, os_user, dict(env, PGCLIENTENCODING='UTF8'))]
                                + ([(NICE_COMPRESSOR + comp, None, None)] if comp else []),
                                out_path=os.path.join(request['dest'], chunk['file'])))
                if conn_engine is not None and request.get('verify', True):
                    counted = set(exported)
                    with conn_engine.conn.cursor() as cur:
                        cur.execute(COUNT_SQL_EXCEPT, (sorted(counted),))
                        tables = [{'name': name, 'rows': int(rows)} for name, rows in cur.fetchall()]
                    tables = sorted(tables + [{'name': name, 'rows': rows} for name, rows in exported.items()],
                                    key=lambda t: t['name'])
                # while pg_dump runs, on the snapshot's session when there is one
                roles = self._roles_of_database(request, database, conn_engine)
                _out, err = proc.communicate()
                failures += [_finish_pipeline(p) for p in pipelines]
                if proc.returncode != 0:
                    raise DbError('dump database', database, mask_secrets('pg_dump failed (exit %d): %s' % (
                        proc.returncode, err.strip()[-3000:]), secrets))
                failures = [f for f in failures if f]
                if failures:
                    raise DbError('dump table data of', database, mask_secrets('; '.join(failures), secrets))
            except Exception as exc:
                if proc is not None and proc.poll() is None:
                    proc.kill()   # no pg_dump left behind holding its snapshot and locks
                    proc.communicate()
                if 'lock timeout' in str(exc) or ('statement timeout' in str(exc) and 'LOCK TABLE' in str(exc)):
                    raise DbError('dump database', database, 'another session holds a lock on one of its tables (an '
                                  'open transaction after ALTER TABLE, LOCK TABLE, TRUNCATE...) and did not release '
                                  'it within %s: end that session or its transaction (pg_locks, pg_stat_activity) '
                                  'and run again; nothing was published' % LOCK_WAIT) from None
                raise
            finally:
                if conn_engine is not None:
                    conn_engine._rollback()  # pylint: disable=protected-access
                    conn_engine.close()
            files = sorted(n for n in os.listdir(dest) if n.endswith('.dat') and n != 'toc.dat')
            if files and compression == 'zstd':
                run_tool(['zstd', '-q', '--rm', '-%d' % (level if level is not None else 3), '-T%d' % jobs]
                         + [os.path.join(dest, n) for n in files], 'compress dump of', database, os_user=os_user,
                         commands=commands)
            elif files and compression == 'lz4':
                run_tool(['lz4', '-q', '--rm', '-m', '-%d' % (level if level is not None else 1)]
                         + [os.path.join(dest, n) for n in files], 'compress dump of', database, os_user=os_user,
                         commands=commands)
            prop = props.get(database) or {}
            dumps.append({'database': database, 'dir': dirname, 'tables': tables, 'encoding': prop.get('encoding'),
                          'collate': prop.get('collate'), 'ctype': prop.get('ctype'),
                          # the roles its objects belong or are granted to (checked before a restore)
                          'roles': roles,
                          'properties': self.fetch_one(DATABASE_PROPERTIES_SQL, (database,)),
                          'chunked': [{'table': t['qualified'], 'columns': t['columns'], 'encoding': t['encoding'],
                                       'files': [c['file'] for c in t['chunks']],
                                       'exported_by': 'server' if server_side else 'psql'} for t in chunked]})
        return dumps

    def _chown(self, path, os_user):
        if os_user and os.geteuid() == 0:
            import pwd
            pw = pwd.getpwnam(os_user)
            os.chown(path, pw.pw_uid, pw.pw_gid)

    def _chunk_candidates(self, conn_engine):
        """The tables large enough to copy in ranges, with the block size and the database's encoding."""
        return {'tables': conn_engine.fetch_all(CHUNK_TABLES_SQL, (_chunk_threshold(),)),
                'block': int(conn_engine.fetch_value("SELECT current_setting('block_size')::int")),
                'encoding': conn_engine.fetch_value('SELECT pg_encoding_to_char(encoding) FROM pg_database '
                                                    'WHERE datname = current_database()')}

    def _plan_chunks(self, candidates, jobs, compression, dirname):
        """The candidate tables' data split in ``jobs`` ctid ranges each, copied by parallel sessions of one snapshot.

        pg_dump cannot split one table between its -j workers; a database dominated by one big
        table would dump on one core. The ranges cover every page (the last one is open-ended).
        """
        block, encoding = candidates['block'], candidates['encoding']
        _comp, ext = _compressor(compression, None)
        plan = []
        for number, row in enumerate(candidates['tables']):
            pages = max(int(row['bytes']) // block, 1)
            count = max(min(jobs, pages), 1)
            bounds = [pages * i // count for i in range(count)] + [None]
            chunks = []
            for i in range(count):
                where = "ctid >= '(%d,0)'::tid" % bounds[i]
                if bounds[i + 1] is not None:
                    where += " AND ctid < '(%d,0)'::tid" % bounds[i + 1]
                chunks.append({'file': '%s-chunks/t%03d-c%03d.copy%s' % (dirname, number + 1, i + 1, ext),
                               'select': 'SELECT %s FROM ONLY %s WHERE %s' % (row['columns'], row['qualified'], where),
                               'copy': 'COPY (SELECT %s FROM ONLY %s WHERE %s) TO STDOUT (ENCODING %s)' % (
                                   row['columns'], row['qualified'], where, self.quote_literal(encoding))})
            plan.append({'schema': row['schema'], 'table': row['table'], 'qualified': row['qualified'],
                         'columns': row['columns'], 'chunks': chunks, 'encoding': encoding,
                         'has_children': bool(row['has_children'])})
        return plan

    def _rest_is_small(self, conn_engine, chunked):
        """True when the tables pg_dump still copies (not chunked) hold less than one chunk's worth."""
        rest = conn_engine.fetch_value(
            "SELECT coalesce(sum(pg_relation_size(c.oid)), 0) FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace "
            "WHERE c.relkind IN ('r', 'm') AND n.nspname NOT IN ('pg_catalog', 'information_schema') "
            "AND n.nspname NOT LIKE 'pg_toast%%' AND NOT quote_ident(n.nspname) || '.' || quote_ident(c.relname) "
            "= ANY(%s::text[])", ([t['qualified'] for t in chunked],))
        return int(rest or 0) < _chunk_threshold()

    def _server_side_export(self, request, database, chunk_dir, compression, level, commands):
        """Can the server write the chunks into chunk_dir itself (COPY ... TO PROGRAM)?

        Needs the right to run server programs (superuser or pg_execute_server_program) and the server on this
        host, writing into this directory with the compressor on its PATH. Proved, not assumed: the server
        writes a random token through the compressor into chunk_dir and we read it back here. Anything else
        (a remote server, a login without the right, no compressor) keeps the client-side export.
        """
        if os.environ.get('DBOPS_BACKUP_SERVER_SIDE_COPY', '1') == '0':
            return False
        import secrets as _secrets
        token = 'dbops-probe-' + _secrets.token_hex(16)
        comp, ext = _compressor(compression, level)
        probe = os.path.join(chunk_dir, '.probe%s' % ext)
        program = _server_program(comp, probe)
        try:
            engine = self._connect_db(request, database)
        except DbError:
            return False
        try:
            engine.conn.autocommit = True
            allowed = engine.fetch_value(
                "SELECT rolsuper OR pg_has_role(current_user, 'pg_execute_server_program', 'USAGE') "
                "FROM pg_roles WHERE rolname = current_user")
            if not allowed:
                return False
            with engine.conn.cursor() as cur:
                cur.execute('COPY (SELECT %s) TO PROGRAM %s' % (self.quote_literal(token), self.quote_literal(program)))
        except Exception:  # pylint: disable=broad-except
            return False
        finally:
            engine.close()
        try:
            if not os.path.exists(probe):
                return False
            decomp = _decompressor(probe)
            try:
                if decomp:
                    text = subprocess.run(decomp, capture_output=True, check=False).stdout
                else:
                    with open(probe, 'rb') as f:
                        text = f.read()
            except OSError:
                text = b''     # written, but not readable by us: the files would not be either
            ok = text == (token + '\n').encode('ascii')
        finally:
            try:
                os.unlink(probe)
            except OSError:
                pass
        if ok:
            commands.append('COPY (SELECT <token>) TO PROGRAM %s  # the server writes here: chunks exported by it'
                            % self.quote_literal(program))
        return ok

    def _export_chunks_server(self, request, database, snapshot, chunked, jobs, compression, level, commands,
                              conn_engine):
        """Every chunk written by the server, ``jobs`` sessions at a time, all on the exported snapshot.

        Returns ({table: rows exported}, [failures]).
        """
        import threading
        comp, _ext = _compressor(compression, level)
        work = []
        for table in chunked:
            for chunk in table['chunks']:
                program = _server_program(comp, os.path.join(request['dest'], chunk['file']))
                sql = 'COPY (%s) TO PROGRAM %s (ENCODING %s)' % (
                    chunk['select'], self.quote_literal(program), self.quote_literal(table['encoding']))
                commands.append(sql)
                work.append((table['qualified'], sql))
        rows = dict((t['qualified'], 0) for t in chunked)
        failures = []
        lock = threading.Lock()

        def worker():
            engine, name = None, database
            try:
                while True:
                    with lock:
                        if not work or failures:
                            return
                        name, sql = work.pop(0)
                    if engine is None:
                        engine = self._connect_db(request, database)
                        engine.conn.autocommit = False
                        engine.conn.set_session(isolation_level='REPEATABLE READ', readonly=True)
                        with engine.conn.cursor() as cur:
                            cur.execute('SET TRANSACTION SNAPSHOT %s', (snapshot,))
                            for statement in CHUNK_SETTINGS:
                                cur.execute(statement)
                    with engine.conn.cursor() as cur:
                        cur.execute(sql)
                        count = cur.rowcount
                    with lock:
                        rows[name] += int(count)
            except Exception as exc:  # pylint: disable=broad-except
                with lock:
                    failures.append('%s: %s' % (name, str(exc) if isinstance(exc, DbError) else driver_message(exc)))
            finally:
                if engine is not None:
                    engine._rollback()  # pylint: disable=protected-access
                    engine.close()

        threads = [threading.Thread(target=worker, daemon=True) for _ in range(max(1, min(jobs, len(work))))]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        return rows, failures

    def _backup_basebackup(self, request):
        bin_dir = self.backup_bin_dir(request.get('bin_dir'))
        os_user = request.get('os_user')
        secrets = self._tool_secrets(request)
        commands = []
        compression = request.get('compression') or 'none'
        level = request.get('compression_level')
        base = os.path.join(request['dest'], 'base')
        # CRC32C manifest checksums, as the bare tool: the server computes them while it sends, pg_verifybackup
        # checks every file as written against them (end to end), and our own SHA-256 of every file is taken
        # from the files as written, in the same pass that fsyncs them (--no-sync: we sync, overlapped)
        argv = [os.path.join(bin_dir, 'pg_basebackup'), '-D', base, '-X', 'stream', '-c', 'fast',
                '--manifest-checksums=CRC32C', '--no-sync', '-l', 'dbops.admin %s' % request.get('backup_id', '')]
        if compression == 'none':
            argv += ['-Fp']
            fmt = 'plain'
        else:
            argv += ['-Ft', '--compress=client-%s%s' % (compression, ':%d' % level if level is not None else '')]
            fmt = 'tar'
        start_time = _now_iso()
        seg = self.wal_segment_size()
        follower = GrowingFileHasher(base, request['dest']).start() if fmt == 'plain' else None
        try:
            run_tool(argv, 'take base backup of', 'the server', os_user=os_user,
                     env=self._tool_env(request, 'postgres'), secrets=secrets, commands=commands)
        except BaseException:
            if follower is not None:
                follower.close()
            raise
        try:
            return self._finish_basebackup(request, follower, base, fmt, bin_dir, os_user, commands, seg, start_time,
                                           compression)
        finally:
            if follower is not None:
                follower.close()

    def _finish_basebackup(self, request, follower, base, fmt, bin_dir, os_user, commands, seg, start_time,
                           compression):
        early = follower.finish() if follower is not None else {}
        jobs = max(int(request.get('jobs') or 2), 2)
        verify = request.get('verify', True)
        # durable where it is published; a plaintext scratch copy (encrypted run) is not worth syncing
        sync = os.path.commonpath([os.path.abspath(request['dest']), os.path.abspath(request['repo'])]) \
            == os.path.abspath(request['repo']) if request.get('repo') else True
        manifest = read_backup_manifest(os.path.join(base, 'backup_manifest'))
        ranges = manifest.get('WAL-Ranges') or [{}]
        tli = ranges[0].get('Timeline', 1)
        start_lsn, stop_lsn = ranges[0].get('Start-LSN'), ranges[-1].get('End-LSN')
        result = {
            'start_position': {'lsn': start_lsn, 'timeline': tli, 'wal_file': wal_file_name(tli, start_lsn, seg)},
            'stop_position': {'lsn': stop_lsn, 'timeline': ranges[-1].get('Timeline', tli),
                              'wal_file': wal_file_name(ranges[-1].get('Timeline', tli), stop_lsn, seg)},
            'start_time': start_time, 'stop_time': _now_iso(), 'databases': [
                r['datname'] for r in self.fetch_all(
                    'SELECT datname FROM pg_database WHERE NOT datistemplate ORDER BY datname')],
            'server_version': self.version, 'commands': commands,
            'details': {'format': fmt, 'compression': compression, 'wal_segment_size': seg,
                        'major_version': (self.version or '').split('.')[0],
                        'bootstrap_superuser': self._bootstrap_superuser(),
                        'tool': 'pg_basebackup', 'manifest_checksums': 'CRC32C'},
        }
        name = '%s/data' % request.get('backup_id', '')
        if verify and fmt == 'plain':
            # pg_verifybackup (manifest, file list, sizes, CRC32C of every file, WAL) runs while our threads
            # hash and fsync the same files: two cores, one pass each, from the page cache
            import tempfile
            verify_argv = [os.path.join(bin_dir, 'pg_verifybackup'), '-m', os.path.join(base, 'backup_manifest'), base]
            commands.append(show_command(verify_argv) + '  # while SHA-256 + fsync of every file run in threads')
            out = tempfile.TemporaryFile()
            try:
                proc = subprocess.Popen(_as_user(verify_argv, os_user), stdout=out, stderr=subprocess.STDOUT, cwd='/')
            except OSError as exc:
                out.close()
                raise DbError('verify base backup', request.get('backup_id'), 'cannot run pg_verifybackup: %s' % exc) from None
            try:
                sums = hash_and_sync(request['dest'], jobs, sync, known=early)
            except BaseException:
                proc.kill()
                raise
            finally:
                proc.wait()
                out.seek(0)
                text = out.read().decode('utf-8', 'replace')
                out.close()
            problems = _verifybackup_problems(proc.returncode, text, request.get('backup_id'), name)
            if problems:
                raise DbError('verify base backup', request.get('backup_id'), '; '.join(problems))
            result['verified'] = True
        else:
            sums = hash_and_sync(request['dest'], jobs, sync, known=early)
            if verify:
                fake = {'id': request.get('backup_id', ''), 'type': 'full', 'method': 'physical',
                        'details': result['details']}
                problems = verify_physical(fake, request['dest'], os.path.dirname(request['dest']),
                                           bin_dir=bin_dir, os_user=os_user, jobs=jobs)
                commands.append(show_command([os.path.join(bin_dir, 'pg_verifybackup'), base])
                                + '  # on the extracted tar files')
                if problems:
                    raise DbError('verify base backup', request.get('backup_id'), '; '.join(problems))
                result['verified'] = True
        result['verified_checksums'] = sums
        result['synced'] = sync
        return result

    def _backup_pgbackrest(self, request):
        repo, os_user = request['repo'], request.get('os_user')
        commands = []
        pg = self.fetch_one("SELECT current_setting('data_directory') AS data_directory, "
                            "current_setting('port') AS port, "
                            "split_part(current_setting('unix_socket_directories'), ',', 1) AS socket_dir, "
                            "current_user AS user, current_setting('archive_mode') AS archive_mode, "
                            "current_setting('archive_command') AS archive_command, "
                            "current_setting('wal_level') AS wal_level")
        if not pg['socket_dir']:
            raise DbError('configure pgBackRest for', 'the server', 'pgBackRest needs the local Unix socket')
        self.check_pgbackrest(repo, os_user)   # before anything is written
        warnings = []
        stale = pgbackrest_config_repo(repo)
        if stale and stale != pgbackrest_paths(repo)['root']:
            warnings.append('the pgBackRest stanza configuration in %s named the repository path %s (the repository '
                            'was moved or renamed): rewritten for %s' % (repo, stale, pgbackrest_paths(repo)['root']))
        moved = pgbackrest_moved_from(self._effective_command(pg)['archive_command'], repo)
        if moved:
            warnings.append('archive_command pushed the WAL into %s, which is gone (the repository was moved or '
                            'renamed): it now pushes into %s' % (moved, repo))
        paths = write_pgbackrest_config(repo, os_user, dict(pg, socket_dir=pg['socket_dir'].strip()),
                                        request.get('compression'), request.get('compression_level'),
                                        int(request.get('jobs') or 1))
        desired = pgbackrest_archive_command(repo)
        pg = self._effective_command(pg)
        if pg['archive_command'] != desired:
            _refuse_foreign_archiving(pg, 'pgbackrest', None, repo)
            self.execute('ALTER SYSTEM SET archive_command = %s' % self.quote_literal(desired))
        restart = pg['archive_mode'] == 'off' or pg['wal_level'] == 'minimal'
        changes = self._archiving_changes(pg)
        for statement in changes:
            self.execute(statement)
        if pg['archive_command'] != desired or changes:
            self.execute('SELECT pg_reload_conf()')
        if restart:
            changed = bool(changes) or pg['archive_command'] != desired
            return {'published': False, 'restart_required': True, 'changed': changed, 'commands': commands,
                    'warnings': warnings,
                    'details': {'archiving': '%s for pgBackRest; restart the server to turn archive_mode on' % (
                        'configured' if changed else 'configured by an earlier run')}}
        env = self._tool_env(request, 'postgres')
        secrets = self._tool_secrets(request)
        if not os.path.exists(os.path.join(paths['root'], 'backup', PGBACKREST_STANZA, 'backup.info')):
            run_tool(pgbackrest_argv(repo, 'stanza-create'), 'create pgBackRest stanza in', repo, os_user=os_user,
                     env=env, secrets=secrets, commands=commands)
        start_time = _now_iso()
        run_tool(pgbackrest_argv(repo, 'backup', '--type=%s' % PGBACKREST_TYPES[request['type']]),
                 'take pgBackRest %s backup' % request['type'], None, os_user=os_user, env=env, secrets=secrets,
                 commands=commands)
        info = pgbackrest_info(repo, os_user, commands)
        backups = info.get('backup') or []
        if not backups:
            raise DbError('read pgBackRest result', repo, 'no backup listed after the run')
        last = backups[-1]
        with open(os.path.join(request['dest'], 'pgbackrest-backup.json'), 'w') as f:
            json.dump(last, f, indent=2, sort_keys=True)
        seg = self.wal_segment_size()
        lsn = last.get('lsn') or {}
        archive = last.get('archive') or {}
        tli = int(archive['start'][:8], 16) if archive.get('start') else 1
        result = {
            'start_position': {'lsn': lsn.get('start'), 'timeline': tli, 'wal_file': archive.get('start')},
            'stop_position': {'lsn': lsn.get('stop'), 'timeline': tli, 'wal_file': archive.get('stop')},
            'start_time': start_time, 'stop_time': _now_iso(), 'databases': [
                r['datname'] for r in self.fetch_all('SELECT datname FROM pg_database WHERE NOT datistemplate ORDER BY 1')],
            'server_version': self.version, 'commands': commands, 'warnings': warnings,
            'external_bytes': ((last.get('info') or {}).get('repository') or {}).get('delta') or 0,
            'details': {'tool': 'pgBackRest', 'label': last.get('label'), 'pgbackrest_type': last.get('type'),
                        'prior': last.get('prior'), 'reference': last.get('reference'),
                        'size': (last.get('info') or {}).get('size'), 'delta': (last.get('info') or {}).get('delta'),
                        'repository_size': ((last.get('info') or {}).get('repository') or {}).get('size'),
                        'repository_delta': ((last.get('info') or {}).get('repository') or {}).get('delta'),
                        'repo': repo, 'stanza': PGBACKREST_STANZA, 'wal_segment_size': seg,
                        'major_version': (self.version or '').split('.')[0],
                        'bootstrap_superuser': self._bootstrap_superuser()},
        }
        if request.get('verify', True):
            problems = verify_pgbackrest({'id': request.get('backup_id'), 'details': result['details'],
                                          'start_position': result['start_position'],
                                          'stop_position': result['stop_position']}, os_user, repo, commands)
            if problems:
                raise DbError('verify pgBackRest backup', last.get('label'), '; '.join(problems))
            result['verified'] = True
        return result

    def archive_status(self, log_dir):
        """Is continuous archiving into log_dir on? Returns what would have to change."""
        row = self.fetch_one("SELECT current_setting('wal_level') AS wal_level, "
                             "current_setting('archive_mode') AS archive_mode, "
                             "current_setting('archive_command') AS archive_command")
        desired = _archive_command(log_dir)
        restart_needed = row['archive_mode'] == 'off' or row['wal_level'] == 'minimal'
        row = self._effective_command(row)
        return {'wal_level': row['wal_level'], 'archive_mode': row['archive_mode'],
                'archive_command': row['archive_command'], 'desired_command': desired,
                'command_ok': row['archive_command'] == desired,
                'restart_needed': restart_needed,
                # configured by an earlier run, waiting for the restart: nothing left to change
                'configured': restart_needed and row['archive_command'] == desired
                and not self._archiving_changes(row)}

    def _effective_command(self, row):
        """row with archive_command as set: while archive_mode is off the server shows it as
        '(disabled)'; the configuration files tell what it is set to."""
        if row['archive_command'] != '(disabled)':
            return row
        return dict(row, archive_command=self._pending_settings().get('archive_command', '(disabled)'))

    def _pending_settings(self):
        """archive_mode and wal_level as the configuration files set them (applied at the next
        restart); {} when this login may not read pg_file_settings."""
        try:
            # a value waiting for a restart is listed with an error ("could not be applied") and
            # pending_restart in pg_settings; an invalid one only with the error
            rows = self.fetch_all("SELECT f.name, f.setting FROM pg_file_settings f JOIN pg_settings s USING (name) "
                                  "WHERE f.name IN ('archive_mode', 'wal_level', 'archive_command') "
                                  "AND (f.error IS NULL OR s.pending_restart) ORDER BY f.seqno")
        except DbError:
            self._rollback()
            return {}
        return dict((r['name'], r['setting']) for r in rows)

    def _archiving_changes(self, current):
        """The ALTER SYSTEM statements archiving still needs for archive_mode and wal_level: none
        for a value already set in the configuration files and waiting for a restart."""
        pending = self._pending_settings() if (current['archive_mode'] == 'off'
                                               or current['wal_level'] == 'minimal') else {}
        changes = []
        if current['archive_mode'] == 'off' and pending.get('archive_mode') not in ('on', 'always'):
            changes.append("ALTER SYSTEM SET archive_mode = 'on'")
        if current['wal_level'] == 'minimal' and pending.get('wal_level') not in ('replica', 'logical'):
            changes.append("ALTER SYSTEM SET wal_level = 'replica'")
        return changes

    def archiving_statements(self, method, log_dir, repo):
        """The statements a log (``physical``) or pgBackRest run executes to turn archiving into this repository
        on, as _backup_wal / _backup_pgbackrest issue them: what check mode shows in ``queries``. [] when
        archiving is set up already (or set by an earlier run and waiting for the restart)."""
        row = self.fetch_one("SELECT current_setting('wal_level') AS wal_level, "
                             "current_setting('archive_mode') AS archive_mode, "
                             "current_setting('archive_command') AS archive_command")
        desired = pgbackrest_archive_command(repo) if method == 'pgbackrest' else _archive_command(log_dir)
        row = self._effective_command(row)
        statements = []
        if row['archive_command'] != desired:
            statements.append('ALTER SYSTEM SET archive_command = %s' % self.quote_literal(desired))
        statements += self._archiving_changes(row)
        if statements:
            statements.append('SELECT pg_reload_conf()')
        return statements

    def check_archiving(self, method, log_dir, repo):
        """What the real run refuses before it changes anything (check mode tells the same): an
        archive_command that sends the WAL elsewhere while archiving is on."""
        row = self.fetch_one("SELECT current_setting('archive_mode') AS archive_mode, "
                             "current_setting('archive_command') AS archive_command")
        _refuse_foreign_archiving(row, method, log_dir, repo)

    def nothing_new_since(self, base_manifest):
        """True when no WAL was written since the log backup a new one builds on (the insert
        position is still where that one switched to): it would archive nothing."""
        stop = (base_manifest or {}).get('stop_position') or {}
        if (base_manifest or {}).get('type') != 'log' or stop.get('next_xid') is None:
            return False
        # no transaction was given a transaction id since (WAL the server writes on its own, like
        # standby snapshots after each switch, changes no data a restore could miss)
        try:
            return str(self.fetch_value(NEXT_XID_SQL)) == str(stop['next_xid'])
        except DbError:
            return False

    def _backup_wal(self, request):
        log_dir = request['log_dir']
        status = self.archive_status(log_dir)
        commands = []
        if not status['command_ok']:
            _refuse_foreign_archiving(status, 'physical', log_dir)
            self.execute('ALTER SYSTEM SET archive_command = %s' % self.quote_literal(status['desired_command']))
        restart = status['restart_needed']
        changes = self._archiving_changes(status)
        for statement in changes:
            self.execute(statement)
        if not status['command_ok'] or changes:
            self.execute('SELECT pg_reload_conf()')
        if restart:
            changed = bool(changes) or not status['command_ok']
            return {'published': False, 'restart_required': True, 'changed': changed, 'commands': commands,
                    'details': {'archiving': '%s; restart the server to turn archive_mode on' % (
                        'configured' if changed else 'configured by an earlier run')}}
        seg = self.wal_segment_size()
        start_time = _now_iso()
        base = request.get('base') or {}
        base_manifest = base.get('manifest') or {}
        if base_manifest.get('type') == 'log':
            after = (base_manifest.get('stop_position') or {}).get('wal_file')
            first = next_wal_name(after, seg) if after else None
        else:
            first = (base_manifest.get('start_position') or {}).get('wal_file')
        next_xid = self.fetch_value(NEXT_XID_SQL)
        # pg_switch_wal returns the end of the segment it closed, or, when nothing was written
        # since the last switch, the start of the segment in use: the byte before it is in the
        # last complete segment either way (the current insert position is not: right after a
        # switch it lies past the new segment's page header)
        # the archiver's failures so far: only those after the switch are about the segments waited for
        before = self.fetch_one('SELECT failed_count, clock_timestamp() AS now FROM pg_stat_archiver')
        self.queries.append('SELECT pg_switch_wal()')
        end = self.fetch_value('SELECT pg_switch_wal()::text', operation='switch to a new WAL segment')
        # the timeline WAL is written on now: the checkpoint's lags behind a promotion until the
        # end-of-recovery checkpoint is done
        switched = self.fetch_one('SELECT lsn::text AS lsn, pg_walfile_name(lsn) AS wal_file '
                                  'FROM pg_current_wal_lsn() AS lsn')
        switched['timeline'] = int(switched['wal_file'][:8], 16)
        lsn = parse_lsn(end)
        last = wal_file_name(switched['timeline'], max(lsn - 1, 0), seg)
        deadline = time.time() + float(request.get('archive_timeout') or 120)
        polled = 0
        while not os.path.exists(os.path.join(log_dir, last)):
            if time.time() - polled >= 1:
                polled = time.time()
                failure = self._archive_failure(log_dir, last, before, seg)
                if failure:
                    raise DbError('archive WAL into', log_dir, failure)
            if time.time() > deadline:
                row = self.fetch_one('SELECT last_failed_wal, failed_count, last_archived_wal FROM pg_stat_archiver')
                detail = 'segment %s was not archived in time (last archived %s, failed %s times, last failed %s)' % (
                    last, row['last_archived_wal'], row['failed_count'], row['last_failed_wal'])
                raise DbError('archive WAL into', log_dir, detail)
            time.sleep(0.2)
        names = sorted(n for n in os.listdir(log_dir) if WAL_NAME_RE.match(n) or n.endswith('.history'))
        if first:
            # across a timeline switch: the segments on the timelines last's history goes through
            segments, missing = wal_needed(log_dir, first, seg, last)
            if missing:
                raise DbError('archive WAL into', log_dir, '%s is missing from the archive'
                              % missing_wal_text(os.path.join(log_dir, missing[0])))
        else:
            segments = [n for n in names if WAL_NAME_RE.match(n) and n <= last]
        histories = [n for n in names if n.endswith('.history')]
        return {
            'start_position': {'wal_file': segments[0] if segments else last},
            'stop_position': {'lsn': format_lsn(lsn), 'timeline': switched['timeline'], 'wal_file': last,
                              'next_xid': str(next_xid)},
            'start_time': start_time, 'stop_time': _now_iso(), 'databases': [], 'server_version': self.version,
            'commands': commands, 'log_files': ['logs/' + n for n in segments + histories],
            'details': {'wal_segment_size': seg, 'segments': len(segments),
                        'major_version': (self.version or '').split('.')[0]},
        }

    def _archive_failure(self, log_dir, last, before, segment_size):
        """Why the archiver does not get the WAL up to ``last`` into log_dir, once it has failed
        ARCHIVE_FAILURES_TOLERATED times since the log backup switched WAL (``before``: the failure
        count and the server's clock then) on a file not archived yet; None while it has not."""
        row = self.fetch_one('SELECT failed_count, last_failed_wal, last_failed_time, '
                             'last_failed_time >= %s AS recent FROM pg_stat_archiver', (before['now'],))
        if (not row or not row['recent'] or not row['last_failed_wal']
                or row['failed_count'] - before['failed_count'] < ARCHIVE_FAILURES_TOLERATED
                or os.path.exists(os.path.join(log_dir, row['last_failed_wal']))):
            return None
        command = self.fetch_value("SELECT current_setting('archive_command')")
        data_dir = self._setting_or_none('data_directory')
        parts = ['the archiver failed %d times to archive %s since this run switched WAL (last at %s)%s' % (
            row['failed_count'] - before['failed_count'], row['last_failed_wal'], row['last_failed_time'],
            '' if row['last_failed_wal'] == last else ', so %s cannot be archived either' % last)]
        said = archive_failure_lines(_tail(self._server_log_path(data_dir), 65536)) if data_dir else []
        if said:
            parts.append('the server log says: %s' % ' / '.join(said))
        server_uid = None
        if data_dir:
            try:
                server_uid = os.stat(data_dir).st_uid
            except OSError:
                pass
        parts += archive_directory_problems(log_dir, server_uid, segment_size)
        parts.append('archive_command is %r' % command)
        parts.append("fix what keeps it from writing into %s (the server's OS user needs write permission there, "
                     "the filesystem needs free space, no immutable attribute or read-only mount); the server "
                     "retries by itself, then run the log backup again" % log_dir)
        return '; '.join(parts)

    def _setting_or_none(self, name):
        try:
            return self.fetch_value('SELECT current_setting(%s)', (name,))
        except DbError:
            self._rollback()
            return None

    def _server_log_path(self, data_dir):
        """The file the server logs into, when this host can read it: pg_current_logfile() with the
        logging collector, else where the postmaster's stderr goes (pg_ctl -l) when it runs here."""
        try:
            current = self.fetch_value('SELECT pg_current_logfile()')
        except DbError:
            self._rollback()
            current = None
        if current:
            return os.path.join(data_dir, current)
        try:
            with open(os.path.join(data_dir, 'postmaster.pid')) as f:
                pid = int(f.readline().strip())
            # the postmaster works in its data directory: a pid of another host's server is not ours
            if os.path.realpath('/proc/%d/cwd' % pid) != os.path.realpath(data_dir):
                return ''
            path = os.readlink('/proc/%d/fd/2' % pid)
        except (OSError, ValueError):
            return ''
        return path if os.path.isfile(path) else ''

    # -- logical restore
    def restore_marker(self, database):
        """The marker restore_logical recorded: the database setting dbops.restored_from, else the
        trailer of the database comment (a restore by a login that is not superuser, or by an older
        release, which wrote the whole comment), or None."""
        row = self.fetch_one(
            "SELECT shobj_description(d.oid, 'pg_database') AS comment, (SELECT s.setconfig FROM pg_db_role_setting s "
            "WHERE s.setdatabase = d.oid AND s.setrole = 0) AS config FROM pg_database d WHERE d.datname = %s",
            (database,))
        if not row:
            return None
        for item in row.get('config') or []:
            key, _sep, value = item.partition('=')
            if key == restore_comment.SETTING:
                return restore_comment.decode(value)
        return restore_comment.split(row.get('comment'))[1]

    def _record_restore(self, name, marker, props):
        """The restored database keeps the source's comment (backups that recorded it; without a trailer
        of an earlier restore) and records the marker: in the setting dbops.restored_from when the login
        is superuser (PostgreSQL 15 lets only superusers set a placeholder setting on a database), else
        in a trailer of the comment."""
        quoted = self.quote_ident(name)
        comment = restore_comment.strip((props or {}).get('comment')) or ''
        if getattr(self, 'is_superuser', False):
            if comment:
                self.execute('COMMENT ON DATABASE %s IS %s' % (quoted, self.quote_literal(comment)),
                             operation='restore the comment of database %s' % name)
            value = self.quote_literal(restore_comment.encode(marker))
            self.execute('ALTER DATABASE %s SET %s TO %s' % (quoted, restore_comment.SETTING, value),
                         operation='record the restore in database %s' % name)
        else:
            text, _warning = restore_comment.append(comment, marker)
            self.execute('COMMENT ON DATABASE %s IS %s' % (quoted, self.quote_literal(text)),
                         operation='record the restore in database %s' % name)

    def _database_is_empty(self, request, database):
        engine = self._connect_db(request, database)
        try:
            return not engine.fetch_value(USER_OBJECTS_SQL)
        finally:
            engine.close()

    def _roles_of_database(self, request, database, engine=None):
        """The roles a database's objects belong or are granted to, with the bootstrap superuser
        when it owns some of them (asked in the database: on ``engine`` when the dump has a session
        there, else on a connection of its own)."""
        roles = [r['rolname'] for r in self.fetch_all(ROLES_OF_DATABASE_SQL, {'db': database})]
        own = engine is None
        if own:
            engine = self._connect_db(request, database)
        try:
            if engine.fetch_value(BOOTSTRAP_OWNED_SQL):
                roles = sorted(set(roles) | {self._bootstrap_superuser()})
        finally:
            if own:
                engine.close()
        return roles

    def _apply_database_properties(self, name, props, roles_mode):
        """The restored database gets the owner, privileges and settings the source had (with
        roles=skip: only the settings that name no role). A role missing here is left out."""
        if not props:
            return
        # check mode: the roles the restore would have created by now count as there
        present = set(self._role_names()) | set(getattr(self, '_planned_roles', None) or [])
        quoted = self.quote_ident(name)
        statements = []
        if roles_mode != 'skip':
            if props.get('owner') in present:
                statements.append('ALTER DATABASE %s OWNER TO %s' % (quoted, self.quote_ident(props['owner'])))
            if not props.get('default_acl'):
                statements.append('REVOKE ALL ON DATABASE %s FROM PUBLIC' % quoted)
                for item in props.get('acl') or []:
                    grantee = item.get('grantee')
                    if grantee is not None and grantee not in present:
                        continue
                    statements.append('GRANT %s ON DATABASE %s TO %s%s' % (
                        item['privilege'], quoted, 'PUBLIC' if grantee is None else self.quote_ident(grantee),
                        ' WITH GRANT OPTION' if item.get('grantable') and grantee is not None else ''))
        for entry in props.get('settings') or []:
            role = entry.get('role')
            if role is not None and (roles_mode == 'skip' or role not in present):
                continue
            target = ('ALTER ROLE %s IN DATABASE %s' % (self.quote_ident(role), quoted)) if role else \
                'ALTER DATABASE %s' % quoted
            for item in entry.get('config') or []:
                key, _sep, value = item.partition('=')
                if not re.match(r'^[A-Za-z_][A-Za-z0-9_.]*$', key) or key == restore_comment.SETTING:
                    continue   # the restore marker of a restore the source came from: this restore records its own
                statements.append('%s SET %s TO %s' % (target, key, self._setting_value(key, value)))
        for stmt in statements:
            self.execute(stmt, operation='restore the owner, privileges and settings of database %s' % name)

    def _setting_value(self, key, value):
        """A setting's value as ALTER ... SET takes it: one literal per element of a list setting."""
        if key.lower() in LIST_SETTINGS:
            return ', '.join(self.quote_literal(item) for item in split_list_setting(value)) or "''"
        return self.quote_literal(value)

    def _work_database_name(self, name):
        """A database name no one uses (at most 63 bytes): the restore builds it, then it replaces ``name``."""
        prefix = name.encode('utf-8')[:30].decode('utf-8', 'ignore')
        for attempt in range(100):
            work = '%s_dbops_restore_%d_%d' % (prefix, os.getpid(), attempt)
            if not self.fetch_value('SELECT 1 FROM pg_database WHERE datname = %s', (work,)):
                return work
        raise DbError('restore into database', name, 'no free name for the work database')

    def _create_like_source(self, name, dump):
        """CREATE DATABASE with the dumped database's encoding and locale (backups that recorded them).

        A locale this server does not have: the same encoding with the C locale (any encoding works with
        it), returning a warning; an encoding it cannot take fails naming it. Older backups: server defaults.
        """
        quoted = self.quote_ident(name)
        encoding = dump.get('encoding')
        if not encoding:
            self.execute('CREATE DATABASE %s TEMPLATE template0' % quoted)
            return None
        try:
            self.execute('CREATE DATABASE %s TEMPLATE template0 ENCODING %s LC_COLLATE %s LC_CTYPE %s' % (
                quoted, self.quote_literal(encoding), self.quote_literal(dump.get('collate') or 'C'),
                self.quote_literal(dump.get('ctype') or 'C')))
        except DbError as exc:
            if dump.get('collate') in (None, 'C') and dump.get('ctype') in (None, 'C'):
                raise
            self.execute('CREATE DATABASE %s TEMPLATE template0 ENCODING %s LC_COLLATE %s LC_CTYPE %s' % (
                quoted, self.quote_literal(encoding), self.quote_literal('C'), self.quote_literal('C')))
            return ('restoring %s: the backed-up database\'s locale %s/%s is not usable here (%s); created with '
                    'encoding %s and the C locale' % (name, dump.get('collate'), dump.get('ctype'), exc, encoding))
        return None

    def check_restore_target(self, name, request):
        """Refuse (DbError) a logical restore into name that would fail or replace data without force;
        True when the database exists. Also what check mode reports."""
        self.quote_ident(name)
        exists = bool(self.fetch_value('SELECT 1 FROM pg_database WHERE datname = %s', (name,)))
        if exists and name == self.database:
            raise DbError('restore into database', name, 'it is the database this session is connected to; '
                          'connect with login_db to another database')
        if exists and not request.get('force') and not self._database_is_empty(request, name):
            raise DbError('restore into database', name, 'it exists and is not empty: set force to replace it')
        return exists

    def restore_logical(self, request):
        manifest = request['manifest']
        details = manifest.get('details') or {}
        # the first dump of each database: a backup taken with a name given twice in databases dumped it twice
        dumps = [d for i, d in enumerate(details.get('dumps') or [])
                 if d['database'] not in [x['database'] for x in (details.get('dumps') or [])[:i]]]
        wanted = request.get('databases')
        if wanted:
            unknown = [d for d in wanted if d not in [x['database'] for x in dumps]]
            if unknown:
                raise DbError('restore database', ', '.join(unknown), 'not in backup %s' % manifest['id'])
            dumps = [d for d in dumps if d['database'] in wanted]
        target = request.get('target_database')
        if target and len(dumps) != 1:
            raise DbError('restore backup', manifest['id'], 'target_database needs exactly one database: the backup '
                          'holds %s; choose one with databases' % ', '.join(d['database'] for d in dumps))
        plan = []
        for dump in dumps:
            name = target or dump['database']
            plan.append((dump, name, self.check_restore_target(name, request)))
        commands = []
        roles_created = self.restore_roles([dump for dump, _name, _exists in plan], request, details, commands)
        self._planned_roles = roles_created if self.check_mode else []
        bin_dir = self.backup_bin_dir(request.get('bin_dir'))
        os_user = request.get('os_user')
        secrets = self._tool_secrets(request)
        result_tables = []
        warnings = []
        if roles_created and details.get('globals_passwords') is False:
            warnings.append('roles %s were created without passwords: the backup was taken by a login that cannot '
                            'read them (pg_dumpall --no-role-passwords); set their passwords before they log in'
                            % ', '.join(roles_created))
        if roles_created:
            mighty = [r['rolname'] for r in self.fetch_all(
                'SELECT rolname FROM pg_roles WHERE rolname = ANY(%(names)s) AND (rolsuper OR rolcreaterole OR '
                'rolbypassrls OR rolreplication) ORDER BY 1', {'names': list(roles_created)})]
            if mighty:
                warnings.append('roles %s were created as recorded with SUPERUSER, CREATEROLE, BYPASSRLS or REPLICATION '
                                'on this server: check that they should hold it here' % ', '.join(mighty))
        total = 0
        try:
            for dump, name, exists in plan:
                src = os.path.join(request['path'], dump['dir'])
                scratch = None
                if details.get('compression_tool') in ('zstd', 'lz4'):
                    scratch = os.path.join(request['scratch_dir'], 'plain-' + dump['dir'])
                    _decompress_tree(src, scratch, os_user, commands, int(request.get('jobs') or 1), plan=self.check_mode)
                    src = scratch
                # restore into a new database, then swap: a failure never harms the existing one
                work = self._work_database_name(name) if exists else name
                warning = self._create_like_source(work, dump)
                if warning:
                    warnings.append(warning)
                try:
                    jobs = max(int(request.get('jobs') or 1), 1)
                    base = [os.path.join(bin_dir, 'pg_restore'), '-j', str(jobs), '--exit-on-error', '-d', conninfo_dbname(work)]
                    if request.get('roles') == 'skip':
                        # owned by the login, no GRANTs: the backup's roles need not exist here
                        base[1:1] = ['--no-owner', '--no-privileges']
                    env = tool_env(request.get('connection'))

                    def restore(argv, name=name, env=env):
                        if self.check_mode:   # check mode: the command line the real run runs, nothing run
                            commands.append(show_command(argv, secrets))
                        else:
                            run_tool(argv, 'restore database', name, os_user=os_user, env=env, secrets=secrets,
                                     commands=commands)
                    if dump.get('chunked'):
                        # schema, the other tables' data, the chunked tables' data, then indexes and constraints
                        for section in ('pre-data', 'data'):
                            restore(base + ['--section=%s' % section, src])
                        self._load_chunks(dump, request['path'], work, bin_dir, os_user, env, commands, jobs, secrets)
                        restore(base + ['--section=post-data', src])
                    else:
                        restore(base + [src])
                except DbError:
                    self.execute('DROP DATABASE IF EXISTS %s' % self.quote_ident(work))
                    raise
                finally:
                    if scratch:
                        shutil.rmtree(scratch, ignore_errors=True)
                if work != name:
                    self.execute('DROP DATABASE %s WITH (FORCE)' % self.quote_ident(name))
                    self.execute('ALTER DATABASE %s RENAME TO %s' % (self.quote_ident(work), self.quote_ident(name)))
                self._apply_database_properties(name, dump.get('properties'), request.get('roles') or 'require')
                self._record_restore(name, dict(request.get('marker') or {}, source_database=dump['database']),
                                     dump.get('properties'))
                if self.check_mode:
                    continue   # nothing was restored to count
                engine = self._connect_db(request, name)
                try:
                    counts = engine.fetch_all(COUNT_SQL)
                finally:
                    engine.close()
                for row in counts:
                    result_tables.append({'database': name, 'name': row['name'], 'rows': int(row['rows'])})
                    total += int(row['rows'])
        except BaseException:
            # nothing restored: the roles created for it go again (one that owns something stays)
            for role in reversed(roles_created):
                with contextlib.suppress(DbError):
                    self.execute('DROP ROLE IF EXISTS %s' % self.quote_ident(role))
            raise
        return {'rows_restored': total, 'tables': result_tables, 'commands': commands, 'warnings': warnings,
                'databases': [name for _d, name, _e in plan], 'roles_created': roles_created}

    def roles_to_create(self, dumps, mode=None):
        """The roles a restore of these dumps would create (roles=create); fails when roles are
        missing and mode is require (the default); nothing with roles=skip. Changes nothing."""
        mode = mode or 'require'
        if mode not in ROLE_MODES:
            raise DbError('restore with roles', repr(mode), 'choose one of %s' % ', '.join(ROLE_MODES))
        missing = self.missing_roles(dumps) if mode != 'skip' else []
        if missing and mode == 'require':
            raise DbError('restore database', ', '.join(d['database'] for d in dumps),
                          'objects in the backup belong or are granted to roles that do not exist here: %s. Create '
                          'them first, or set roles=create (created from the roles saved with the backup) or '
                          'roles=skip (restored without owners and privileges, owned by the login)'
                          % ', '.join(missing))
        return missing

    def missing_roles(self, dumps):
        """The roles the dumps' objects belong or are granted to that do not exist here (dumps
        taken before the roles were recorded list none)."""
        needed = sorted(set(role for dump in dumps for role in dump.get('roles') or []))
        if not needed:
            return []
        present = set(r['rolname'] for r in self.fetch_all('SELECT rolname FROM pg_roles WHERE rolname = ANY(%s)',
                                                           (needed,)))
        return [role for role in needed if role not in present]

    def restore_roles(self, dumps, request, details, commands):
        """Before anything is restored: with roles=require, fail when roles the objects need are
        missing; with roles=create, create them from the backup's pg_dumpall --globals-only
        script (one transaction). Returns the roles created."""
        missing = self.roles_to_create(dumps, request.get('roles'))
        if not missing:
            return []
        names = ', '.join(missing)
        globals_path = os.path.join(request['path'], details.get('globals') or 'globals.sql')
        if not details.get('globals') or not os.path.isfile(globals_path):
            raise DbError('create roles', names, 'the backup holds no roles (pg_dumpall --globals-only failed when it '
                          'was taken): create them first or restore with roles=skip')
        with open(globals_path, encoding='utf-8', errors='surrogateescape') as f:
            statements, undefined = role_statements(f.read(), missing, self._role_names())
        if undefined:
            raise DbError('create roles', ', '.join(undefined), 'the roles saved with the backup do not define them: '
                          'create them first or restore with roles=skip')
        for stmt in statements:
            for secret in password_literals(stmt):
                self.add_secret(secret)
        with self.transaction():
            for stmt in statements:
                self.execute(stmt, operation='create the roles the backup needs (%s)' % names)
        commands.append('created roles %s from %s' % (names, os.path.basename(globals_path)))
        return missing

    def _role_names(self):
        return [r['rolname'] for r in self.fetch_all('SELECT rolname FROM pg_roles')]

    def _load_chunks(self, dump, path, database, bin_dir, os_user, env, commands, jobs, secrets):
        env = dict(os.environ, **env)
        env['PGDATABASE'] = database
        tasks = []
        for table in dump.get('chunked') or []:
            for rel in table['files']:
                # the statement is UTF-8 (names may not be ASCII), the file in the source database's encoding
                copy = 'COPY %s (%s) FROM STDIN (ENCODING %s)' % (
                    table['table'], table['columns'], self.quote_literal(table.get('encoding') or 'UTF8'))
                psql = [os.path.join(bin_dir, 'psql'), '-X', '-q', '-v', 'ON_ERROR_STOP=1'] + CHUNK_SESSION + ['-c', copy]
                tasks.append((os.path.join(path, rel), psql, dict(env, PGCLIENTENCODING='UTF8')))
        # at most ``jobs`` loads at a time, the next one starting as soon as one ends (not in waves)
        running, failures = [], []
        pending = list(tasks)
        while pending or running:
            while pending and len(running) < jobs and not failures:
                full, psql, task_env = pending.pop(0)
                decomp = _decompressor(full)
                commands.append((show_command(decomp) + ' | ' if decomp else '') + show_command(psql)
                                + ('' if decomp else ' < ' + full))
                if self.check_mode:
                    continue   # check mode: the command lines only
                if decomp:
                    running.append(_start_pipeline([(decomp, None, None), (psql, os_user, task_env)]))
                else:
                    running.append(_start_pipeline([(psql, os_user, task_env)], in_path=full))
            if not running:   # failures, or check mode (nothing started)
                break
            finished = None
            while finished is None:
                finished = next((r for r in running if all(proc.poll() is not None for proc, _e, _n in r)), None)
                if finished is None:
                    time.sleep(0.02)
            running.remove(finished)
            failure = _finish_pipeline(finished)
            if failure:
                failures.append(failure)
        if failures:
            raise DbError('load table data into', database, mask_secrets('; '.join(failures), secrets))

    def logical_verify(self, manifest, path, bin_dir=None, os_user=None):
        return verify_logical(manifest, path, self.backup_bin_dir(bin_dir), os_user)

    def check_database(self, request, database):
        """pg_amcheck on one database (the restore drill); returns problems."""
        bin_dir = self.backup_bin_dir(request.get('bin_dir'))
        proc = run_tool([os.path.join(bin_dir, 'pg_amcheck'), '--install-missing', '-d', database],
                        'check database', database, os_user=request.get('os_user'),
                        env=tool_env(request.get('connection')), secrets=self._tool_secrets(request),
                        commands=request.get('commands'), check=False)
        if proc.returncode != 0:
            return ['pg_amcheck %s: %s' % (database, (proc.stdout + proc.stderr).strip()[-2000:])]
        return []

    def table_row_counts(self, database=None, request=None):
        if database and database != self.database:
            engine = self._connect_db(request or {}, database)
            try:
                return engine.fetch_all(COUNT_SQL)
            finally:
                engine.close()
        return self.fetch_all(COUNT_SQL)
