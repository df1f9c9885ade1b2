#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: dbops.admin contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r'''
module: db_backup
short_description: Take, verify and prune backups of PostgreSQL and MySQL/MariaDB into a repository
description:
  - Takes logical or physical backups into a backup repository (a directory with one sub-directory and one
    C(manifest.json) per backup), verifies them, and applies retention.
  - A backup becomes visible (and C(latest)) only when its manifest is complete, fsynced and renamed into place;
    a killed or failed run is reported in RV(failed_runs) and never shadows a good backup.
  - Concurrent runs on the same repository are refused (a lock naming the holder's pid).
  - Check mode runs every read-only step of the real run and reports what it would do - the fresh backup
    O(max_age) finds, the base an incremental or differential needs (failing the same way when there is none),
    and what O(retention) would delete once the backup is taken (the backup it would take counts as the newest of
    its method). With C(--diff), every state returns the backup ids of the repository before and after (for
    O(state=verified), the verified flag).
  - "PostgreSQL: O(method=logical) runs C(pg_dump -Fd -j) per database plus C(pg_dumpall --globals-only);
    O(method=physical) O(type=full) runs C(pg_basebackup -X stream) and checks every file as written against
    the server's manifest checksums with C(pg_verifybackup); the SHA-256 of every file goes into the catalog;
    O(type=log) turns on continuous WAL archiving into C(<repo>/logs) (reporting
    RV(restart_required) when C(archive_mode) must change) and, once on, switches WAL and waits until every
    segment up to now is archived."
  - "MariaDB/MySQL: a backup waits at most 120 seconds for its global lock (C(FLUSH TABLES WITH READ LOCK),
    C(BACKUP STAGE START)) while other sessions run long statements or hold C(LOCK TABLES); the environment
    variable C(DBOPS_BACKUP_LOCK_WAIT_SECONDS) of the module sets the seconds. A timeout fails the run,
    naming those sessions (id, user, time, statement) so the one to blame can be ended."
  - See C(docs/backup.md) in the collection for the repository format and the RPO tiers.
version_added: 0.1.0
author: dbops.admin maintainers (@dbops-admin)
extends_documentation_fragment:
  - dbops.admin.connection
  - dbops.admin.attributes
options:
  engine:
    description:
      - The database engine to talk to.
      - Required with O(state=present); O(state=verified) and O(state=absent) read the engine from the manifest.
    type: str
    required: false
    choices: [postgresql, mysql, mariadb]
    aliases: [db_engine]
  repo:
    description:
      - Repository directory. Created when missing (owned by O(os_user)); a path that is a file, or that cannot be
        created, fails before anything is written.
    type: path
    required: true
  method:
    description:
      - V(logical) dumps (pg_dump, mariadb-dump), V(physical) file-level copies (pg_basebackup, mariadb-backup).
      - V(pgbackrest) drives pgBackRest on PostgreSQL; only offered when the engine reports support for it.
    type: str
    choices: [logical, physical, pgbackrest]
    default: logical
  type:
    description:
      - V(full), V(incremental) (from the previous backup), V(differential) (from the last full), or V(log)
        (the transaction log archive up to now).
      - V(log) is the same archive whatever O(method) says; with O(method=logical) (the default) it is taken and
        recorded as a V(physical) log backup, the archive physical point-in-time restores replay.
      - "MariaDB/MySQL V(log): binary logs purged from the server before they were archived, and a restarted binary
        log numbering (C(RESET MASTER): take a new full physical backup into a new repository) fail the run, in check
        mode too; the MariaDB stop GTID is C(BINLOG_GTID_POS) of the end of the last binary log archived."
      - What each engine and method supports is checked against the server; anything else fails clearly.
      - "A backup O(state=verified) found damaged is never built on. A V(differential) builds on the newest undamaged
        full. A V(incremental) whose chain holds a damaged backup builds on the backup before the first damaged
        one (so the new chain does not hold it), with a warning; it is refused (C(the chain is damaged at <id>: take
        a full backup)) when that is the full itself, and with O(method=pgbackrest), which picks its own base."
    type: str
    choices: [full, incremental, differential, log]
    default: full
  databases:
    description:
      - Databases to dump with O(method=logical). Default all (templates excluded).
      - Refused with another method (a physical backup holds the whole server) and with O(state=absent) or
        O(state=verified) (they work on whole backups); a database the server does not have is refused.
    type: list
    elements: str
  compression:
    description:
      - Compression. Defaults to V(zstd) for logical backups and V(none) for physical ones (a plain physical backup is
        verified by C(pg_verifybackup) in place; a compressed one is written as tar and extracted to be verified).
      - PostgreSQL 15's pg_dump compresses only with gzip; V(zstd) and V(lz4) are applied to the dump's data files
        with the C(zstd) / C(lz4) tools afterwards.
    type: str
    choices: [zstd, gzip, lz4, none]
  compression_level:
    description:
      - Compression level passed to the tool - V(zstd) 1 to 19, V(gzip) 1 to 9, V(lz4) 1 to 12.
      - Refused with O(compression=none) (the default for physical backups). Checked before anything is written.
    type: int
  jobs:
    description:
      - Parallel jobs (pg_dump -j, zstd -T, mariadb-backup --parallel), 1 or more.
      - More jobs than the server's free connections allow (C(max_connections) less the sessions open) run as many as
        fit, with a warning (check mode warns the same).
    type: int
    default: 1
  encryption_key:
    description:
      - Passphrase to encrypt the backup files with AES-256-GCM (key derived with scrypt and a per-backup salt).
      - An empty (or blank) passphrase is refused, never read as an unencrypted backup.
      - The key is never stored in the repository; only the salt and a key check value are. Without the key the
        backup cannot be restored.
      - Not available for O(type=log) (the WAL archive is written by the server itself). A log backup needs no key
        when the physical full it follows is encrypted - it reads only that backup's positions from its manifest.
      - An incremental or differential on an encrypted base needs the base's key (MariaDB/MySQL decrypt only the
        base's C(meta/), the checkpoints mariadb-backup reads).
    type: str
  verify:
    description:
      - Verify the new backup before publishing it (pg_verifybackup / pg_restore -l, row counts per table in the
        dump's snapshot for the restore drill) and mark it verified.
    type: bool
    default: true
  max_age:
    description:
      - Skip (unchanged) when a verified completed backup younger than this covers what the run asks for - the same
        engine, method and type; for O(method=logical) it holds every database of O(databases), and without
        O(databases) it was itself taken of all databases; with O(label) the same label; encrypted exactly when
        O(encryption_key) is given, with a key that passphrase opens.
      - Seconds, or a number with V(s), V(m), V(h), V(d) or V(w) (V(23h)), a sum of them (V(1h30m)), or an ISO 8601
        duration (V(PT23H), V(P1DT12H)). This makes a scheduled backup idempotent.
    type: str
  retention:
    description:
      - Prune after a backup (O(state=present)) or on its own (O(state=absent) without O(backup_id)).
      - Never deletes the newest valid full backup of a method nor the parent chain of a kept incremental or
        log backup, nor the backup the run took (or the fresh one that made it unchanged).
        Stale failed runs are removed too.
      - A V(pgbackrest) entry goes with its pgBackRest set (C(pgbackrest expire --set=<label>)); one pgBackRest
        will not let go (other sets build on it, or it is the only full set) is kept with a warning.
      - A backup that O(state=verified) found damaged (RV(damaged)) never counts as a kept full, so it never makes
        retention delete a valid one; it is deleted like any backup outside the policy only while a valid full of
        the same method is kept. A method without a valid full keeps all its fulls.
      - Then the archive in C(logs/) is pruned to what the kept backups can use (RV(deleted_logs)) - WAL
        segments (PostgreSQL) or binary logs (MariaDB/MySQL) older than the start of the oldest kept physical
        full backup. With no physical full backup kept, or while a backup's manifest cannot be read, the archive is
        left alone.
      - pgBackRest's own WAL archive (C(pgbackrest/archive/)) is pruned with pgBackRest's archive retention
        (C(pgbackrest expire --repo1-retention-archive=<full sets left> --repo1-retention-archive-type=full), after
        a C(--dry-run) that says what goes) - the WAL older than the archive start of the oldest pgBackRest full set
        left goes; no set is expired by it, and every set left restores, to any point in time after it.
    type: dict
    suboptions:
      full:
        description:
          - Keep this many newest valid full backups of each O(method) with everything built on them. 0 or more.
          - Methods are counted apart, so a nightly logical dump never pushes out the physical fulls (and the
            archived WAL or binary logs) a point-in-time restore needs.
        type: int
      days:
        description: Keep every backup younger than this many days. 0 or more.
        type: float
  label:
    description: Free text stored in the manifest.
    type: str
  state:
    description:
      - V(present) takes a backup. V(verified) re-checks an existing backup (O(backup_id), default the latest),
        checksums of every file, then the engine's own check. V(absent) deletes O(backup_id) (refused while other
        backups depend on it), or applies O(retention).
      - Deleting a V(pgbackrest) entry first expires its pgBackRest set (C(pgbackrest expire --set=<label>), freeing
        its space); refused, in check mode too, while other pgBackRest sets build on it or when it is the only full
        set pgBackRest holds.
    type: str
    choices: [present, verified, absent]
    default: present
  backup_id:
    description: The backup for O(state=verified) or O(state=absent); V(latest) is the newest completed one.
    type: str
  os_user:
    description:
      - OS user the database tools run as (through runuser) when the module runs as root. Defaults to V(postgres) or
        V(mysql); ignored when not root.
    type: str
  bin_dir:
    description: Directory of the database tools. Default the server's major version under C(/usr/lib/postgresql), else PATH.
    type: path
notes:
  - O(engine) is required for O(state=present) only.
  - The repository must be on a filesystem the tools' OS user can write.
requirements:
  - cryptography (only with O(encryption_key))
'''

EXAMPLES = r'''
- name: Nightly logical backup, none taken when a verified one is younger than 20 hours
  dbops.admin.db_backup:
    engine: postgresql
    login_host: 127.0.0.1
    login_user: postgres
    login_password: "{{ vault_pg_password }}"
    repo: /srv/backup/pg
    method: logical
    jobs: 2
    compression: zstd
    max_age: 20h
    retention: {full: 7, days: 14}

- name: Weekly physical full, encrypted
  dbops.admin.db_backup:
    engine: postgresql
    login_user: postgres
    login_password: "{{ vault_pg_password }}"
    repo: /srv/backup/pg
    method: physical
    type: full
    encryption_key: "{{ vault_backup_key }}"

- name: Continuous archiving (RPO < 1 min) and a log backup every few minutes
  dbops.admin.db_backup:
    engine: postgresql
    login_user: postgres
    login_password: "{{ vault_pg_password }}"
    repo: /srv/backup/pg
    method: physical
    type: log

- name: Re-verify the latest backup
  dbops.admin.db_backup:
    repo: /srv/backup/pg
    state: verified
'''

RETURN = r'''
backup:
  description: The backup taken (or the fresh one that made the run unchanged, or the one verified or deleted).
  returned: when there is one
  type: dict
  contains:
    id: {description: Backup id (sub-directory of the repository)., type: str}
    type: {description: 'full, incremental, differential or log.', type: str}
    method: {description: 'logical, physical or pgbackrest.', type: str}
    parent_id: {description: 'The backup this one builds on (pgBackRest: the entry of the set pgBackRest built it on).', type: str}
    started_at: {description: ISO 8601 UTC., type: str}
    finished_at: {description: ISO 8601 UTC., type: str}
    duration_seconds: {description: Wall time of the backup., type: float}
    size_bytes: {description: Bytes stored in the repository., type: int}
    size_gb: {description: The same in GiB., type: float}
    path: {description: Directory of the backup., type: str}
    start_position: {description: LSN/timeline/WAL file or binlog file/position/GTID at the start., type: dict}
    stop_position: {description: The same at the end (the point a restore of this backup reaches)., type: dict}
    status: {description: C(completed)., type: str}
    verified: {description: Whether the backup was verified., type: bool}
    engine: {description: 'postgresql or mysql.', type: str}
    flavor: {description: 'postgresql, mariadb or mysql.', type: str}
    label: {description: The O(label) given when it was taken., type: str}
    databases: {description: The databases a logical backup holds., type: list, elements: str}
    compression: {description: 'zstd, gzip, lz4 or none.', type: str}
    encrypted: {description: Whether it is encrypted (O(encryption_key))., type: bool}
  sample:
    id: 20261127T071500Z-full
    type: full
    method: logical
    size_bytes: 104857600
    verified: true
up_to_date:
  description:
    - True when O(max_age) found a fresh verified backup and nothing was taken.
    - Not called C(skipped), which Ansible reads as a skipped task (nothing shown as changed, not counted).
  returned: state=present
  type: bool
restart_required:
  description: The server must be restarted to turn archive_mode on (O(type=log)).
  returned: state=present
  type: bool
deleted:
  description: Backup ids deleted (by O(retention) or O(state=absent)).
  returned: always
  type: list
  elements: str
damaged:
  description:
    - Backups a verification (O(state=verified)) found damaged - manifest C(verified) false with its problems. They
      are not restorable and never count as kept fulls; a warning says which retention deleted and which it kept.
  returned: when O(retention) is applied
  type: list
  elements: str
deleted_logs:
  description:
    - Archived WAL segments (PostgreSQL) or binary logs (MariaDB/MySQL) removed from C(logs/) by O(retention),
      as paths relative to the repository (in check mode, what the real run would remove; nothing is removed).
    - Only files older than the start of every kept physical full backup (and, on MariaDB/MySQL, of every kept
      logical backup's binary log position) go; nothing goes when no physical full backup is kept.
    - Then the files pgBackRest's archive retention removed from its WAL archive
      (C(pgbackrest/archive/dbops/<archive id>/...)) - those older than the archive start of the oldest pgBackRest
      full set left. With C(--diff), all removed files are listed under C(archived_logs) (before; none after).
  returned: when O(retention) is applied
  type: list
  elements: str
failed_runs:
  description: Runs that never completed (killed or failed); never used as latest.
  returned: always
  type: list
  elements: dict
leftovers:
  description:
    - What killed runs left behind, found when this run took the repository lock and removed then (in check mode,
      what the real run would remove) - C(.dbops-scratch-<label>-<pid>) beside the repository (the plaintext of an
      encrypted backup, a decrypted copy for a restore, drill or verification) of a process that is gone, and
      C(.deleting-<id>) (a delete killed half way). A warning names them.
    - Each is a dict with C(path), C(kind) (V(scratch), V(deleting) or V(process), a backup tool the killed run left
      running on the repository, stopped), C(pid), C(status) (V(removed), V(stale) in check mode, or V(kept)) and
      C(reason); a scratch directory a database server started by the killed run still runs on is kept.
  returned: always
  type: list
  elements: dict
problems:
  description: What verification found (each names the file).
  returned: state=verified
  type: list
  elements: str
commands:
  description: Tool command lines run (or that would be), secrets masked.
  returned: always
  type: list
  elements: str
queries:
  description: Statements executed (or, in check mode, that would be), secrets masked.
  returned: always
  type: list
  elements: str
msg:
  description: What was done or, in check mode, what would be.
  returned: always
  type: str
'''

import json  # noqa: E402
import os  # noqa: E402
import shutil  # noqa: E402
import time  # noqa: E402

from ansible.module_utils.basic import AnsibleModule  # noqa: E402
from ansible_collections.dbops.admin.plugins.module_utils import _backup_catalog as catalog  # noqa: E402
from ansible_collections.dbops.admin.plugins.module_utils import _backup_lock_wait as lock_wait  # noqa: E402
from ansible_collections.dbops.admin.plugins.module_utils import _backup_crypto as crypto  # noqa: E402
from ansible_collections.dbops.admin.plugins.module_utils._connection import (  # noqa: E402
    connection_argument_spec, normalize_engine, run_module)
from ansible_collections.dbops.admin.plugins.module_utils._diff import DifferenceTracker  # noqa: E402
from ansible_collections.dbops.admin.plugins.module_utils._errors import DbError  # noqa: E402


# levels every engine's compressor accepts: the zstd CLI without --ultra stops at 19, gzip (pg_dump -Z, gzip, pigz)
# at 9, lz4 at 12; pg_basebackup and pgBackRest accept these too. 0 and negative levels are not passed on as such
# by the tools' command lines (zstd -7 is read as an option, gzip -0 stores), so they are refused.
COMPRESSION_LEVELS = {'zstd': (1, 19), 'gzip': (1, 9), 'lz4': (1, 12)}


def default_compression(method):
    return 'zstd' if method == 'logical' else 'none'


def check_options(p):
    """Refuse bad option values before anything is connected to, created or written. Raises DbError."""
    catalog.check_os_user(p['os_user'])
    if p['jobs'] is not None and p['jobs'] < 1:
        raise DbError('use jobs', str(p['jobs']), 'give 1 or more parallel jobs')
    if p['encryption_key'] is not None and not p['encryption_key'].strip() and p['state'] == 'present':
        # an empty vault variable must not turn an encrypted schedule into plaintext backups
        raise DbError('use', 'encryption_key', 'it is empty: give the passphrase, or drop encryption_key for an '
                      'unencrypted backup')
    retention = p['retention'] or {}
    if retention.get('full') is not None and retention['full'] < 0:
        raise DbError('use retention full', str(retention['full']),
                      'give the number of full backups to keep, 0 or more (0: only the newest valid full stays)')
    if retention.get('days') is not None and not retention['days'] >= 0:
        raise DbError('use retention days', str(retention['days']), 'give the age in days to keep, 0 or more')
    if p['max_age'] is not None:
        catalog.parse_duration(p['max_age'])
    # type=log archives the whole server's log whatever the method (create() takes it as physical)
    if p['databases'] and (p['state'] != 'present' or p['method'] != 'logical' or p['type'] == 'log'):
        taken = 'log backup' if p['type'] == 'log' else '%s backup' % p['method'] if p['method'] else 'backup'
        raise DbError('use databases', ', '.join(p['databases']), 'databases chooses what a logical backup dumps '
                      '(state=present, method=logical); a %s takes the whole server and state=%s works on whole '
                      'backups: drop databases' % (taken, p['state']))
    if p['state'] != 'present':
        return
    level = p['compression_level']
    if level is not None:
        compression = p['compression'] or default_compression(p['method'])
        if compression == 'none':
            raise DbError('use compression_level', str(level), 'compression is none%s: set compression to zstd, '
                          'gzip or lz4, or drop compression_level' % (
                              '' if p['compression'] else ' (the default for method %s)' % p['method']))
        low, high = COMPRESSION_LEVELS[compression]
        if not low <= level <= high:
            raise DbError('use compression_level', str(level), '%s accepts levels %d to %d' % (compression, low, high))
    catalog.Repository(p['repo']).check_path()


def _repo(module, engine_name):
    os_user = module.params['os_user'] or catalog.default_os_user(engine_name)
    return catalog.Repository(module.params['repo'], os_user)


def _pgbackrest_sets(repo, commands):
    """pgBackRest's own backup sets under <repo>/pgbackrest, {label: set} oldest first; None without a stanza.

    Read with ``pgbackrest info`` (nothing is written: no log file either)."""
    backend = catalog.engine_backend('postgresql')
    if not os.path.isfile(backend.pgbackrest_paths(repo.path)['conf']):
        return None
    proc = backend.run_tool(backend.pgbackrest_argv(repo.path, 'info', '--output=json', '--log-level-file=off'),
                            'read pgBackRest repository', repo.path, os_user=_pgbackrest_user(repo), commands=commands)
    try:
        data = json.loads(proc.stdout or '[]')
    except ValueError:
        raise DbError('read pgBackRest repository', repo.path, 'pgbackrest info printed no JSON') from None
    return {s['label']: s for s in ((data[0].get('backup') if data else None) or []) if s.get('label')}


def _pgbackrest_user(repo):
    return repo.os_user or catalog.default_os_user('postgresql')


def _delete_backups(module, repo, tracker, manifests, ids, commands, strict, extra_full=False):
    """Delete the catalog entries ``ids`` (check mode: say so), dependents first.

    A pgBackRest entry's set goes first with ``pgbackrest expire --set=<label>`` (the space is freed and no later
    incremental builds on it). A set pgBackRest would not let go - other sets built on it, or the only full set -
    fails the run when ``strict`` (a backup_id to delete), else keeps the entry with a warning (retention).
    ``extra_full``: a pgBackRest full this run takes before the deletions (check mode counts it).
    Returns the ids deleted, sorted."""
    by_id = {m['id']: m for m in manifests}
    order = [m['id'] for m in reversed(manifests) if m['id'] in ids]   # newest first: what builds on a backup goes first
    sets = None
    if any(catalog.pgbackrest_label(by_id[i]) for i in order):
        sets = _pgbackrest_sets(repo, commands)
    labels = {catalog.pgbackrest_label(m): m['id'] for m in manifests if catalog.pgbackrest_label(m)}
    deleted = []
    for backup_id in order:
        label = catalog.pgbackrest_label(by_id[backup_id])
        if label and sets is not None and label in sets:
            problem = catalog.pgbackrest_expire_refusal(sets, label, labels, extra_full=extra_full)
            if problem is None and not module.check_mode:
                try:
                    catalog.engine_backend('postgresql').pgbackrest_expire(repo.path, label, _pgbackrest_user(repo),
                                                                           commands)
                except DbError as exc:
                    problem = 'pgBackRest refused to expire its set %s: %s' % (label, exc)
            if problem:
                if strict:
                    raise DbError('delete backup', backup_id, problem)
                module.warn('retention kept backup %s: %s' % (backup_id, problem))
                continue
            del sets[label]
        tracker.action('delete backup %s' % backup_id)
        if not module.check_mode:
            repo.delete(backup_id)
        deleted.append(backup_id)
    return sorted(deleted, key=catalog.id_sort_key)


def _apply_retention(module, repo, tracker, commands, protect=(), taking=None):
    """Delete what retention lets go, then the archived WAL / binary logs no kept backup can use.

    ``taking``: in check mode, the manifest of the backup the run would take (counted as the newest backup of its
    method, never deleted), so that check mode reports what the real run deletes once it has taken it.
    Returns {deleted: backup ids, deleted_logs: archived log files, damaged: ids of damaged backups,
    _removed_runs: ids of failed runs removed}; {} without a retention policy."""
    retention = module.params['retention'] or {}
    if not retention or (retention.get('full') is None and retention.get('days') is None):
        return {}
    manifests = repo.manifests()
    planned = manifests + ([taking] if taking else [])
    _keep, delete = catalog.retention_plan(planned, retention.get('full'), retention.get('days'))
    protect = set(protect) | ({taking['id']} if taking else set())
    delete = [d for d in delete if d not in protect]
    damaged = [m['id'] for m in manifests if catalog.is_damaged(m)]
    extra_full = bool(taking) and taking.get('method') == 'pgbackrest' and taking.get('type') == 'full'
    deleted = _delete_backups(module, repo, tracker, manifests, delete, commands, strict=False, extra_full=extra_full)
    if damaged:
        gone = [d for d in damaged if d in deleted]
        kept = [d for d in damaged if d not in deleted]
        module.warn('backups found damaged by verification (not restorable, not counted as kept fulls): %s%s%s' % (
            ', '.join(damaged), '; deleted as a valid full of their method is kept: %s' % ', '.join(gone) if gone else '',
            '; kept (within days, or no valid full of their method): %s' % ', '.join(kept) if kept else ''))
    removed = []
    for run in repo.failed_runs():
        if run['status'] == 'failed':
            tracker.action('remove failed run %s' % run['id'])
            removed.append(run['id'])
            if not module.check_mode:
                repo.remove_failed_run(run)
    kept = [m for m in planned if m['id'] not in deleted]
    logs = catalog.prunable_logs(repo, kept)
    for name in logs:
        tracker.action('delete archived log %s' % name)
    if logs and not module.check_mode:
        repo.delete_logs(logs)
    gone = [catalog.pgbackrest_label(m) for m in manifests if m['id'] in deleted and catalog.pgbackrest_label(m)]
    logs = logs + _prune_pgbackrest_archive(module, repo, tracker, commands, gone, taking)
    return {'deleted': deleted, 'deleted_logs': logs, 'damaged': damaged, '_removed_runs': removed}


def _prune_pgbackrest_archive(module, repo, tracker, commands, gone, taking=None):
    """Prune pgBackRest's WAL archive to what its sets still need, with pgBackRest's own archive retention.

    The stanza keeps ``repo1-retention-full=9999999`` (the catalog decides which sets go), which also keeps
    pgBackRest from ever expiring WAL. Once the catalog's sets are expired, ``pgbackrest expire
    --repo1-retention-archive=<full sets> --repo1-retention-archive-type=full`` removes only the WAL older than
    the archive start of the oldest full set still there: no set goes, every set left restores, to any point in
    time from the oldest one on. A dry run first says what goes (check mode reports it and stops there; ``gone``:
    the labels the real run would have expired before); the real expiry runs only when something goes.
    Returns the removed files, paths relative to the repository."""
    backend = catalog.engine_backend('postgresql')
    if not os.path.isfile(backend.pgbackrest_paths(repo.path)['conf']):
        return []
    try:
        return _expire_pgbackrest_archive(module, repo, tracker, commands, gone, taking, backend)
    except DbError as exc:
        # the catalog's deletions stand; the next retention run prunes the archive
        module.warn('pgBackRest WAL archive not pruned: %s' % exc)
        return []


def _expire_pgbackrest_archive(module, repo, tracker, commands, gone, taking, backend):
    sets = _pgbackrest_sets(repo, commands) or {}
    files = backend.pgbackrest_archive_files(repo.path)
    keep = backend.pgbackrest_archive_retention(sets, gone if module.check_mode else ())
    os_user = _pgbackrest_user(repo)
    if keep is None:
        if not (module.check_mode and taking and taking.get('method') == 'pgbackrest' and taking.get('type') == 'full'):
            return []
        # check mode, the run's own full replaces the last full set: the real run keeps the WAL from its start on
        start = ((taking.get('start_position') or {}).get('wal_file') or '')[:24]
        planned = [rel for rel in files if start and len(rel.split(os.sep)) == 6 and os.path.basename(rel)[:24] < start]
    else:
        proc = backend.run_tool(backend.pgbackrest_expire_archive_argv(repo.path, keep, dry_run=True),
                                'plan pgBackRest WAL archive expiry in', repo.path, os_user=os_user, commands=commands)
        planned = backend.pgbackrest_expired_archive('%s\n%s' % (proc.stdout or '', proc.stderr or ''), files,
                                                     repo.path, gone if module.check_mode else ())
    if module.check_mode or not planned:
        removed = planned
    else:
        backend.run_tool(backend.pgbackrest_expire_archive_argv(repo.path, keep), 'expire pgBackRest WAL archive in',
                         repo.path, os_user=os_user, commands=commands)
        left = set(backend.pgbackrest_archive_files(repo.path))
        removed = [rel for rel in files if rel not in left]
    for rel in removed:
        tracker.action('delete archived log %s' % rel)
    return removed


def _base_for(repo, engine, method, btype, notes=None):
    """The backup a non-full backup builds on (None for full).

    A backup ``state: verified`` found damaged (catalog.is_damaged) is never built on: a differential builds on
    the newest undamaged full; an incremental on the newest backup of its method unless its chain (parent links
    down to the full) holds a damaged backup - then on the backup just before the first damaged one, so the new
    chain does not hold it (an incremental after a damaged one would make the damaged one part of its restore);
    refused when that is the full itself, or for pgBackRest, which picks its own prior set. ``notes``: a list to
    append warnings to (a damaged backup passed over)."""
    notes = notes if notes is not None else []
    manifests = [m for m in repo.manifests() if m.get('engine') == engine.name and m.get('method') == method]
    if btype == 'full':
        return None
    if btype == 'log':
        fulls = [m for m in repo.manifests() if m.get('engine') == engine.name and m.get('type') == 'full'
                 and m.get('method') == 'physical']
        good = [m for m in fulls if not catalog.is_damaged(m)]
        if fulls and good[-1:] != fulls[-1:]:
            notes.append('full backups %s were found damaged by verification: the log backup builds on %s'
                         % (', '.join(m['id'] for m in fulls if catalog.is_damaged(m)),
                            good[-1]['id'] if good else 'no full backup (take a new full physical backup)'))
        if not good:
            return None
        # the log backups taken after that full and before the next one (runs on a repository are serialized by
        # its lock: completion order is run order)
        key = catalog.completion_key
        later = [key(m) for m in fulls if key(m) > key(good[-1])]
        logs = [m for m in manifests if m.get('type') == 'log' and not catalog.is_damaged(m)
                and key(good[-1]) < key(m) and (not later or key(m) < later[0])]
        return logs[-1] if logs else good[-1]
    fulls = [m for m in manifests if m.get('type') == 'full']
    if not fulls:
        raise DbError('take %s backup into' % btype, repo.path, 'there is no full %s backup to build on' % method)
    action = 'take %s %s backup into' % (method, btype)
    if btype == 'differential':
        if method == 'pgbackrest' and catalog.is_damaged(fulls[-1]):
            # pgBackRest builds a differential on its newest full set, whatever the catalog says
            raise DbError(action, repo.path, 'the chain is damaged at %s (found damaged by verification, and '
                          'pgBackRest builds a differential on its newest full set): take a full backup' % fulls[-1]['id'])
        good = [m for m in fulls if not catalog.is_damaged(m)]
        if not good:
            raise DbError(action, repo.path, 'the chain is damaged at %s (every full %s backup was found damaged by '
                          'verification: %s): take a full backup' % (
                              fulls[-1]['id'], method, ', '.join(m['id'] for m in fulls)))
        if good[-1] is not fulls[-1]:
            notes.append('full backups %s were found damaged by verification: the differential builds on %s, the newest '
                         'undamaged full' % (', '.join(m['id'] for m in fulls[fulls.index(good[-1]) + 1:]), good[-1]['id']))
        return good[-1]
    tips = [m for m in manifests if m.get('type') in ('full', 'incremental', 'differential')]
    tip = tips[-1]
    try:
        chain = repo.chain(tip)
    except DbError as exc:
        raise DbError(action, repo.path, 'the chain of %s is broken (%s): take a full backup' % (tip['id'], exc)) from None
    bad = [i for i, m in enumerate(chain) if catalog.is_damaged(m)]
    if not bad:
        return tip
    first = chain[bad[0]]
    if bad[0] == 0 or method == 'pgbackrest':
        raise DbError(action, repo.path, 'the chain is damaged at %s (found damaged by verification%s): take a full '
                      'backup' % (first['id'], ', and pgBackRest builds an incremental on its newest set'
                                  if method == 'pgbackrest' and bad[0] else ''))
    base = chain[bad[0] - 1]
    notes.append('backup %s was found damaged by verification: the incremental builds on %s, the backup before it '
                 '(%s and what was built on it stay out of the new chain)' % (first['id'], base['id'], first['id']))
    return base


def _base_files(engine, base):
    """The parts of an encrypted base backup the engine reads for an incremental/differential (``only`` of
    plain_copy), None for all. mariadb-backup --incremental-basedir reads only the checkpoints file, which the
    base keeps in meta/: only meta/ is decrypted (when it holds the checkpoints)."""
    if engine.name != 'mysql' or base.get('method') != 'physical':
        return None
    meta = [f['path'] for f in base.get('files') or [] if f['path'].startswith('meta/')]
    if any(os.path.basename(path) in ('mariadb_backup_checkpoints', 'xtrabackup_checkpoints') for path in meta):
        return ['meta']
    return None


def _fresh_backup(module, repo, engine, max_age):
    """The verified backup younger than max_age that covers what this run asks for, or None.

    Same engine, method and type; a logical backup must hold the databases asked for (all databases: a backup
    taken of all databases); with a label, the same label; encrypted exactly when encryption_key is given, and
    then with a key this passphrase opens."""
    p = module.params
    return repo.fresh_backup(max_age, engine=engine.name, method=p['method'], type=p['type'],
                             databases=p['databases'] or None, label=p['label'], encryption_key=p['encryption_key'] or None)


def _nothing_new(engine, btype, base, repo):
    """The backup a log backup would follow (its base, or without a full the newest log backup)
    when nothing was written after it: the log backup would archive nothing. None otherwise."""
    if btype != 'log' or not hasattr(engine, 'nothing_new_since'):
        return None
    if base is None:
        logs = [m for m in repo.manifests() if m.get('engine') == engine.name and m.get('type') == 'log'
                and not catalog.is_damaged(m)]
        base = logs[-1] if logs else None
    return base if base is not None and engine.nothing_new_since(base) else None


def _retention_said(deleted, check_mode):
    """What retention deleted in a run that took no backup, for its message."""
    if not deleted:
        return ''
    return '; retention %s %s' % ('would delete' if check_mode else 'deleted', ', '.join(deleted))


def _nothing_new_msg(base, deleted=None, check_mode=False):
    return 'nothing was written since backup %s: no new log backup%s' % (
        base['id'], _retention_said(deleted, check_mode))


def _fresh_msg(fresh, deleted=None, check_mode=False):
    held = ''
    if fresh.get('method') == 'logical':
        held = ' of %s' % ('all databases' if fresh.get('all_databases') else ', '.join(fresh.get('databases') or []))
    return 'a verified %s %s backup%s (%s) is younger than max_age: no new backup%s' % (
        fresh.get('method'), fresh.get('type'), held, fresh['id'], _retention_said(deleted, check_mode))


def _up_to_date(module, repo, tracker, result, backup, message):
    """A run that takes no backup because ``backup`` serves (fresh under max_age, or nothing new since it):
    the result names it, retention runs with it protected, ``message(backup, deleted, check_mode)`` says so."""
    result.update(up_to_date=True, backup=catalog.backup_summary(backup, repo.path))
    result.update(_apply_retention(module, repo, tracker, result['commands'], protect=[backup['id']]))
    result['msg'] = message(backup, result.get('deleted'), module.check_mode)


def create(module, engine):
    p = module.params
    tracker = DifferenceTracker()
    repo = _repo(module, engine.name)
    method, btype = p['method'], p['type']
    if p['encryption_key']:
        engine.add_secret(p['encryption_key'])
    supported = engine.backup_methods()
    if btype == 'log' and method == 'logical' and 'log' in (supported.get('physical') or []):
        # one log archive per repository, the one physical point-in-time restores replay: type=log with
        # the default method is that archive (verified, chained and restored as a physical log backup)
        method = p['method'] = 'physical'
    if btype not in (supported.get(method) or []):
        offered = ', '.join('%s: %s' % (m, '/'.join(t)) for m, t in sorted(supported.items()) if t) or 'nothing'
        why = engine.unsupported_reason(method, btype) if hasattr(engine, 'unsupported_reason') else None
        raise DbError('take a %s %s backup of' % (method, btype), '%s %s' % (engine.flavor, engine.version),
                      'not supported here (supported: %s)%s' % (offered, ': ' + why if why else ''))
    if p['encryption_key'] and btype == 'log':
        raise DbError('encrypt', 'the log archive', 'the WAL/binlog archive is written by the server itself; '
                      'encrypt the repository filesystem instead, or drop encryption_key for type=log')
    if p['encryption_key'] and method == 'pgbackrest':
        raise DbError('encrypt', 'a pgBackRest backup', "pgBackRest writes its own repository; this module does not "
                      "wire pgBackRest's repo cipher yet: drop encryption_key or use method physical")
    if p['encryption_key'] and not crypto.HAS_CRYPTOGRAPHY:
        crypto.require_cryptography()
    compression = p['compression'] or default_compression(method)
    max_age = catalog.parse_duration(p['max_age']) if p['max_age'] else None
    result = {'changed': False, 'up_to_date': False, 'restart_required': False, 'deleted': [], 'commands': []}

    # read-only look-ups before anything is created: a run refused here (no full backup to build on) leaves
    # nothing behind, not even the repository, and check mode fails the same way
    if method == 'logical' and p['databases'] and hasattr(engine, 'check_backup_databases'):
        engine.check_backup_databases(p['databases'])   # before anything is written, and in check mode
    catalog.fit_jobs(module, engine)
    if engine.name == 'mysql':
        lock_wait.lock_wait_seconds()   # a bad DBOPS_BACKUP_LOCK_WAIT_SECONDS fails before anything is written
    if method == 'physical' and btype != 'log':
        # pg_verifybackup (and a drill's pg_ctl) cannot take some characters in the repository's path
        path_checker = getattr(catalog.engine_backend(engine.name), 'check_tool_path', None)
        if path_checker is not None:
            path_checker(repo.path, 'backup repository')
    fresh = _fresh_backup(module, repo, engine, max_age) if max_age and repo.exists() else None
    notes = []
    base = None if fresh else _base_for(repo, engine, method, btype, notes if module.check_mode else None)
    for note in notes:
        module.warn(note)
    if not fresh and method == 'pgbackrest' and hasattr(engine, 'check_pgbackrest'):
        # refused before anything is written (no repository, no failed run, archive_command untouched)
        engine.check_pgbackrest(repo.path, repo.os_user)
        if btype != 'full':
            _check_pgbackrest_base(repo, btype, result['commands'])
    elif not fresh and method == 'physical' and btype == 'log' and hasattr(engine, 'check_archiving'):
        engine.check_archiving(method, repo.log_dir, repo.path)
    if module.check_mode:
        before = _repo_state(repo)
        taking = None
        if fresh:
            _up_to_date(module, repo, tracker, result, fresh, _fresh_msg)
        else:
            restart = False
            status = {}
            if ((method == 'physical' and btype == 'log') or method == 'pgbackrest') \
                    and hasattr(engine, 'archive_status'):
                engine.check_archiving(method, repo.log_dir, repo.path)
                statements = None
                if hasattr(engine, 'archiving_statements'):
                    # recorded, not run (the engine is in check mode): the ALTER SYSTEM the real run issues
                    statements = engine.archiving_statements(method, repo.log_dir, repo.path)
                    for statement in statements:
                        engine.execute(statement)
                status = engine.archive_status(repo.log_dir)
                restart = bool(status['restart_needed'])
                result['restart_required'] = restart
                if method == 'pgbackrest':
                    # archive_status compares with the log archive's command; pgBackRest has its own: configured
                    # by an earlier run when nothing is left to change (the real run then reports changed=false)
                    status['configured'] = restart and statements is not None and not statements
            last = None if restart else _nothing_new(engine, btype, base, repo)
            if last is not None:
                _up_to_date(module, repo, tracker, result, last, _nothing_new_msg)
            elif restart and status.get('configured'):
                result['msg'] = ('archiving was configured by an earlier run: restart the server to turn archive_mode '
                                 'on before a backup is taken')
            elif restart:
                # the real run only configures archiving and publishes nothing (nor applies retention)
                tracker.action('configure archiving')
                result['msg'] = ('would configure archiving for a %s %s backup of %s %s; the server must then be '
                                 'restarted to turn archive_mode on before a backup is taken' % (
                                     method, btype, engine.flavor, engine.version))
            else:
                log_checker = getattr(engine, 'check_log_backup', None)
                if method == 'physical' and btype == 'log' and log_checker is not None:
                    # the real run's refusals (a restarted binary log numbering, binary logs purged before
                    # they were archived), read only: check mode never says it would take (nor prune) what the
                    # real run refuses
                    log_checker({'repo': repo.path, 'log_dir': repo.log_dir,
                                 'base': {'manifest': base, 'path': None} if base is not None else None})
                taking = _would_take(module, repo, engine, base)
                tracker.action('take %s %s backup' % (method, btype))
                result['msg'] = 'would take a %s %s backup of %s %s into %s%s' % (
                    method, btype, engine.flavor, engine.version, repo.path,
                    ' (encrypted)' if p['encryption_key'] else '')
                result.update(_apply_retention(module, repo, tracker, result['commands'], taking=taking))
        result['failed_runs'] = repo.failed_runs()
        after = {'backups': [i for i in before['backups'] if i not in result['deleted']] + (
            [taking['id']] if taking else []),
            'failed_runs': [i for i in before['failed_runs'] if i not in (result.get('_removed_runs') or [])]}
        return _finish(module, result, tracker, before, after, repo)

    with repo.lock():
        before = _repo_state(repo)
        if max_age:
            fresh = _fresh_backup(module, repo, engine, max_age)
            if fresh:
                _up_to_date(module, repo, tracker, result, fresh, _fresh_msg)
                result['failed_runs'] = repo.failed_runs()
                return _finish(module, result, tracker, before, _repo_state(repo), repo)
        notes = []
        base = _base_for(repo, engine, method, btype, notes)
        for note in notes:
            module.warn(note)
        last = _nothing_new(engine, btype, base, repo)
        if last is not None:
            _up_to_date(module, repo, tracker, result, last, _nothing_new_msg)
            result['failed_runs'] = repo.failed_runs()
            return _finish(module, result, tracker, before, _repo_state(repo), repo)
        # the base's key is checked before anything is written: a wrong key leaves no failed run behind
        base_key = crypto.key_for(base['encryption'], p['encryption_key'], base['id']) \
            if base is not None and btype != 'log' and base.get('encryption') else None
        started = time.time()
        started_at = catalog.iso(catalog.utcnow())
        backup_id = repo.new_id(btype)
        incoming = repo.begin(backup_id, {'type': btype, 'method': method, 'engine': engine.name})
        scratch = plain_scratch = None
        try:
            base_request = None
            if base is not None and btype == 'log':
                # a log backup reads only the base's positions: no key is needed, nothing is decrypted
                base_request = {'manifest': base, 'path': None}
            elif base is not None:
                key = base_key
                if key is not None:
                    scratch = repo.scratch('base')
                base_request = {'manifest': base, 'path': repo.plain_copy(base, key, scratch,
                                                                          only=_base_files(engine, base))}
            dest = os.path.join(incoming, catalog.DATA)
            if p['encryption_key']:
                # plaintext never lands in the repository, not even in a run that gets killed
                plain_scratch = repo.scratch('plain')
                dest = os.path.join(plain_scratch, catalog.DATA)
                os.makedirs(dest, mode=0o700)
                catalog.chown_tree(plain_scratch, repo.os_user)
            request = {
                'method': method, 'type': btype, 'databases': p['databases'], 'compression': compression,
                'compression_level': p['compression_level'], 'jobs': p['jobs'],
                'dest': dest, 'base': base_request, 'repo': repo.path,
                'log_dir': repo.log_dir, 'bin_dir': p['bin_dir'], 'os_user': repo.os_user,
                'connection': {k: p.get(k) for k in ('login_host', 'login_port', 'login_user', 'login_password',
                                                     'login_unix_socket', 'ssl_mode', 'connect_timeout')},
                'verify': p['verify'], 'backup_id': backup_id,
                # the catalog takes the engine's checksums of dest as they are (not of an encrypted backup's plaintext)
                'checksums': not p['encryption_key'],
            }
            out = engine.backup_create(request)
            result['commands'] = out.get('commands') or []
            for warning in out.get('warnings') or []:
                module.warn(warning)
            if out.get('published') is False:
                shutil.rmtree(incoming, ignore_errors=True)
                changed = out.get('changed', True) is not False
                if changed:
                    tracker.action('configure archiving')
                result.update(restart_required=bool(out.get('restart_required')), changed=changed,
                              msg=(out.get('details') or {}).get('archiving') or 'nothing published')
                result['failed_runs'] = repo.failed_runs()
                return _finish(module, result, tracker, before, _repo_state(repo), repo)
            problems = []
            verified = bool(out.get('verified'))
            if p['verify'] and method == 'logical':
                problems = catalog.backend_call(engine.name, 'verify_logical', {'id': backup_id, **out},
                                                request['dest'], p['bin_dir'], repo.os_user)
                verified = not problems
            if p['verify'] and method == 'physical' and btype == 'log':
                verified = True  # every archived segment is hashed below and the range was checked for gaps
            if problems:
                raise DbError('verify new backup', backup_id, '; '.join(problems))
            parent_id = base['id'] if base else None
            if method == 'pgbackrest' and btype != 'full':
                parent_id = _pgbackrest_parent(module, repo, out, parent_id)
            manifest = {
                'id': backup_id, 'engine': engine.name, 'flavor': engine.flavor, 'method': method, 'type': btype,
                'parent_id': parent_id, 'started_at': started_at,
                'finished_at': catalog.iso(catalog.utcnow()), 'finished_ns': time.time_ns(),
                'start_time': out.get('start_time'),
                'stop_time': out.get('stop_time'), 'start_position': out.get('start_position'),
                'stop_position': out.get('stop_position'), 'server_version': out.get('server_version'),
                'databases': out.get('databases'), 'all_databases': method != 'logical' or not p['databases'],
                'compression': compression,
                'compression_level': p['compression_level'], 'encryption': None, 'label': p['label'],
                'verified': bool(p['verify'] and verified), 'details': out.get('details') or {},
                'commands': result['commands'], 'external_bytes': out.get('external_bytes') or 0,
            }
            if out.get('log_files'):
                manifest['log_files'] = repo.hash_log_files(out['log_files'])
            if p['encryption_key']:
                record, key = crypto.encryption_record(p['encryption_key'])
                repo.encrypt_data(incoming, key, source=dest)
                manifest['encryption'] = record
            manifest['duration_seconds'] = round(time.time() - started, 3)
            # encrypted: the ciphertext was just written by encrypt_data, the engine synced only the plaintext
            published = repo.publish(incoming, manifest, out.get('verified_checksums'),
                                     synced=bool(out.get('synced')) and not p['encryption_key'])
        except BaseException as exc:
            repo.mark_failed(incoming, engine.mask(str(exc)))
            raise
        finally:
            for path in (scratch, plain_scratch):
                if path:
                    shutil.rmtree(path, ignore_errors=True)
        tracker.action('take %s %s backup %s' % (method, btype, backup_id))
        result['backup'] = catalog.backup_summary(published, repo.path)
        result['msg'] = 'took %s %s backup %s (%d bytes)' % (method, btype, backup_id, published['size_bytes'])
        result.update(_apply_retention(module, repo, tracker, result['commands'], protect=[backup_id]))
        result['failed_runs'] = repo.failed_runs()
        return _finish(module, result, tracker, before, _repo_state(repo), repo)


def _check_pgbackrest_base(repo, btype, commands):
    """Refuse a pgBackRest incremental/differential that pgBackRest would build on a set the catalog does not list
    (taken by hand with pgbackrest, or left by a failed run): recorded, it would name a wrong parent_id and its
    chain could not be restored or kept by retention. pgBackRest builds an incremental on its newest set and a
    differential on its newest full set."""
    sets = _pgbackrest_sets(repo, commands) or {}
    candidates = [label for label, s in sets.items() if btype == 'incremental' or s.get('type') == 'full']
    if not candidates:
        return
    base = candidates[-1]
    listed = set(catalog.pgbackrest_label(m) for m in repo.manifests() if catalog.pgbackrest_label(m))
    if base not in listed:
        raise DbError('take pgbackrest %s backup into' % btype, repo.path, 'pgBackRest would build it on its %sset %s, '
                      'which the catalog does not list (taken with pgbackrest by hand, or left by a failed run): its '
                      'parent would be wrong; take a full backup (method pgbackrest, type full), or remove that set '
                      '(pgbackrest expire --set=%s); nothing was changed' % (
                          'newest full ' if btype == 'differential' else 'newest ', base, base))


def _pgbackrest_parent(module, repo, out, fallback):
    """parent_id of a new pgBackRest incremental/differential: the catalog entry of the set pgBackRest built it on.
    A set the catalog does not list (one taken since _check_pgbackrest_base looked): refused, never recorded with
    another entry as its parent."""
    details = out.get('details') or {}
    parent_id, unknown = catalog.pgbackrest_parent(repo.manifests(), details)
    if unknown:
        raise DbError('record pgBackRest backup', details.get('label'), 'pgBackRest built it on its set %s, which the '
                      'catalog does not list (taken with pgbackrest by hand, or left by a failed run): not recorded, '
                      'its parent would be wrong; take a full backup (method pgbackrest, type full)' % unknown)
    return parent_id or fallback


def _repo_state(repo):
    """What --diff shows of a repository: its backup ids (oldest first) and failed runs."""
    return {'backups': [m['id'] for m in repo.manifests()],
            'failed_runs': [r['id'] for r in repo.failed_runs() if r['status'] == 'failed']}


def _finish(module, result, tracker, before, after, repo=None):
    result.pop('_removed_runs', None)
    if repo is not None:
        _report_leftovers(module, repo, result, tracker)
    result['changed'] = tracker.changed
    if module._diff:
        if result.get('deleted_logs'):
            # the archived WAL / binary logs retention removed (check mode: would remove)
            before, after = dict(before, archived_logs=list(result['deleted_logs'])), dict(after, archived_logs=[])
        result['diff'] = {'before': before, 'after': after}
    return result


def _report_leftovers(module, repo, result, tracker):
    """``leftovers``: what killed runs left beside the repository (decrypted scratch copies, half-deleted backups)
    that taking the lock removed - in check mode, what the real run would remove."""
    found = repo.leftovers() if module.check_mode else list(repo.swept)
    result['leftovers'] = found
    gone = [e for e in found if e['status'] in ('removed', 'stale')]
    kept = [e for e in found if e['status'] == 'kept']
    for entry in gone:
        tracker.action('remove leftover %s' % entry['path'])
    if gone:
        module.warn('%s what killed runs left behind: %s' % (
            'would remove' if module.check_mode else 'removed',
            '; '.join('%s (%s)' % (e['path'], e['reason']) for e in gone)))
    if kept:
        module.warn('left behind by killed runs and kept: %s' % '; '.join(
            '%s (%s)' % (e['path'], e['reason']) for e in kept))


def _would_take(module, repo, engine, base):
    """Check mode: the manifest of the backup the real run would take, as retention sees it (the newest
    backup of its method, valid, built on ``base``; started at the server's current log position)."""
    p = module.params
    position = None
    if p['retention']:
        position = _current_position(engine)
    now = catalog.iso(catalog.utcnow())
    return {'id': repo.new_id(p['type']), 'engine': engine.name, 'flavor': engine.flavor, 'method': p['method'],
            'type': p['type'], 'parent_id': base['id'] if base else None, 'status': 'completed',
            'started_at': now, 'finished_at': now, 'finished_ns': time.time_ns(), 'start_position': position,
            'stop_position': position,
            'verified': bool(p['verify']), 'label': p['label'], 'details': {}, 'size_bytes': 0,
            'all_databases': p['method'] != 'logical' or not p['databases'], 'databases': p['databases']}


def _current_position(engine):
    """The server's current WAL file / binary log position (read only), or None."""
    for name in ('binlog_position', '_position'):
        func = getattr(engine, name, None)
        if func is not None:
            try:
                return func()
            except DbError:
                return None
    return None


def verify_backup(module, repo, manifest):
    """Checksums of every file, then the engine's own check. Returns problems."""
    p = module.params
    problems = repo.verify_files(manifest)
    if problems:
        return problems
    key = crypto.key_for(manifest['encryption'], p['encryption_key'], manifest['id']) \
        if manifest.get('encryption') else None
    scratch = repo.scratch('verify')
    try:
        plain = repo.plain_copy(manifest, key, scratch)
        if manifest.get('method') == 'logical':
            problems += catalog.backend_call(manifest['engine'], 'verify_logical', manifest, plain, p['bin_dir'],
                                             repo.os_user)
        elif manifest.get('type') == 'log' and manifest['engine'] == 'postgresql':
            first = (manifest.get('start_position') or {}).get('wal_file')
            last = (manifest.get('stop_position') or {}).get('wal_file')
            if first and last:
                backend = catalog.engine_backend('postgresql')
                seg = int((manifest.get('details') or {}).get('wal_segment_size') or 16 * 1024 * 1024)
                problems += ['%s: %s missing from the archive' % (
                    os.path.join(catalog.LOGS, n), 'timeline history file' if n.endswith('.history') else 'WAL segment')
                    for n in backend.wal_gaps(repo.log_dir, first, seg, last)]
        else:
            problems += catalog.backend_call(manifest['engine'], 'verify_physical', manifest, plain, scratch,
                                             log_dir=repo.log_dir, os_user=repo.os_user, bin_dir=p['bin_dir'])
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
    return problems


def maintain(module):
    p = module.params
    tracker = DifferenceTracker()
    engine_name = normalize_engine(p['engine'])
    repo = _repo(module, engine_name)
    if not repo.exists():
        if os.path.lexists(repo.path):
            repo.check_path()   # names what is there instead
        raise DbError('open backup repository', repo.path, 'no such directory: give the directory db_backup wrote into')
    if repo.foreign():
        raise DbError('open backup repository', repo.path, 'it holds files but no backup, logs/ or pgbackrest/: not a '
                      'backup repository; give the directory db_backup wrote into')
    if module.check_mode:
        # the real run takes the lock (writes .lock, records the result): a repository it cannot write fails it
        repo.check_path()
    result = {'changed': False, 'deleted': [], 'commands': [], 'queries': []}
    if p['state'] == 'verified':
        manifest = repo.get(p['backup_id'] or 'latest')
        if repo.os_user is None:
            repo.os_user = catalog.default_os_user(manifest.get('engine'))
        before = {'backup': manifest['id'], 'verified': manifest.get('verified'),
                  'verify_problems': manifest.get('verify_problems') or []}
        with repo.lock() if not module.check_mode else _nolock():
            problems = verify_backup(module, repo, manifest)
            if problems:
                # recorded even for a backup never verified before: retention must know it is damaged
                if not module.check_mode and (manifest.get('verified') is not False
                                              or manifest.get('verify_problems') != problems):
                    manifest['verified'] = False
                    manifest['verify_problems'] = problems
                    repo.update_manifest(manifest)
                raise DbError('verify backup', manifest['id'], '; '.join(problems))
            if not manifest.get('verified') or manifest.get('verify_problems'):
                tracker.action('mark backup %s verified' % manifest['id'])
                if not module.check_mode:
                    manifest['verified'] = True
                    manifest.pop('verify_problems', None)
                    repo.update_manifest(manifest)
        result.update(backup=catalog.backup_summary(manifest, repo.path), problems=[],
                      msg='backup %s verified: every file matches its sha256 and the engine check passed' % manifest['id'])
        after = {'backup': manifest['id'], 'verified': True, 'verify_problems': []}
    else:
        with repo.lock() if not module.check_mode else _nolock():
            before = _repo_state(repo)
            if p['backup_id']:
                manifest = None
                if p['backup_id'] != 'latest' and not catalog.is_backup_id(p['backup_id']):
                    raise DbError('delete backup', p['backup_id'], 'not a backup id (like 20261127T020000Z-full); the '
                                  'repository lists its backups in db_info or under %s' % repo.path)
                try:
                    manifest = repo.get(p['backup_id'])
                except DbError:
                    if p['backup_id'] == 'latest':
                        raise
                if manifest is not None:
                    dependents = repo.dependents(manifest['id'])
                    if dependents:
                        # the whole chain that builds on it, newest first: the order to delete them in
                        chain, todo = [], list(dependents)
                        while todo:
                            child = todo.pop(0)
                            if child not in chain:
                                chain.append(child)
                                todo.extend(repo.dependents(child))
                        raise DbError('delete backup', manifest['id'], 'backups %s build on it: delete them first'
                                      % ', '.join(sorted(chain, key=catalog.id_sort_key, reverse=True)))
                    if repo.os_user is None:
                        repo.os_user = catalog.default_os_user(manifest.get('engine'))
                    # a pgBackRest entry: its set is expired first (refused as pgBackRest would refuse)
                    result['deleted'] = _delete_backups(module, repo, tracker, repo.manifests(), [manifest['id']],
                                                        result['commands'], strict=True)
                    result['backup'] = catalog.backup_summary(manifest, repo.path)
            elif p['retention']:
                result.update(_apply_retention(module, repo, tracker, result['commands']))
            else:
                raise DbError('delete backups from', repo.path, 'give backup_id or retention')
            if module.check_mode:
                after = {'backups': [i for i in before['backups'] if i not in result['deleted']],
                         'failed_runs': [i for i in before['failed_runs']
                                         if i not in (result.get('_removed_runs') or [])]}
            else:
                after = _repo_state(repo)
        result['msg'] = ('would delete' if module.check_mode else 'deleted') + ': %s' % (
            ', '.join(result['deleted']) or 'nothing')
        if result.get('deleted_logs'):
            result['msg'] += ' (and %d archived log files)' % len(result['deleted_logs'])
    result['failed_runs'] = repo.failed_runs()
    return _finish(module, result, tracker, before, after, repo)


class _nolock:
    def __enter__(self):
        return self

    def __exit__(self, *exc):
        return False


def main():
    argument_spec = connection_argument_spec(engine_required=False)
    argument_spec.update(
        repo=dict(type='path', required=True),
        method=dict(type='str', choices=['logical', 'physical', 'pgbackrest'], default='logical'),
        type=dict(type='str', choices=['full', 'incremental', 'differential', 'log'], default='full'),
        databases=dict(type='list', elements='str'),
        compression=dict(type='str', choices=['zstd', 'gzip', 'lz4', 'none']),
        compression_level=dict(type='int'),
        jobs=dict(type='int', default=1),
        encryption_key=dict(type='str', no_log=True),
        verify=dict(type='bool', default=True),
        max_age=dict(type='str'),
        retention=dict(type='dict', options=dict(full=dict(type='int'), days=dict(type='float'))),
        label=dict(type='str'),
        state=dict(type='str', choices=['present', 'verified', 'absent'], default='present'),
        backup_id=dict(type='str'),
        os_user=dict(type='str'),
        bin_dir=dict(type='path'),
    )
    module = AnsibleModule(argument_spec, supports_check_mode=True,
                           required_if=[('state', 'present', ['engine'])],
                           mutually_exclusive=[('backup_id', 'max_age')])
    if module.params['databases']:
        # a name given twice is one database: dumped twice, no restore could choose between the copies
        module.params['databases'] = list(dict.fromkeys(module.params['databases']))
    try:
        check_options(module.params)
    except DbError as exc:
        module.fail_json(msg=str(exc), changed=False)
    if module.params['state'] == 'present':
        run_module(module, lambda engine: create(module, engine))
    else:
        run_module(module, lambda engine: maintain(module), connect_first=False)


if __name__ == '__main__':
    main()
