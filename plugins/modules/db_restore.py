#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: dbops.admin contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r'''
module: db_restore
short_description: Restore backups from a dbops.admin repository, to a point in time, and run restore drills
description:
  - Restores a backup taken by M(dbops.admin.db_backup). Every file of the backup (and every archived WAL segment
    the backup lists) is checked against its sha256 first; encrypted backups are decrypted into a scratch directory
    next to the repository, never inside it.
  - Logical backups are restored into a database of the server given by the connection options (its original
    name, or O(target_database)). The restore goes into a new database that replaces the old one only when it has
    succeeded, so a failed restore never harms an existing database.
  - Physical backups are restored into a new data directory O(data_dir) and started there on 127.0.0.1 at
    O(login_port) (alias C(port)); no connection to the source is needed, it may be down. With O(target_time) or
    O(target_position) the archived WAL is replayed up to that point and the server is promoted.
  - A repeated identical restore is unchanged; the target records what it holds (logical backups, PostgreSQL in the
    database setting C(dbops.restored_from) (a login that is not superuser, in a last line of the database comment),
    MariaDB in a last line of the database comment; the restored database keeps the comment of its source.
    Physical backups in a file in the data directory, C(dbops_restore.json) on PostgreSQL, C(dbops-restore.json) on
    MariaDB/MySQL).
  - O(state=verified) is the restore drill. It restores into a scratch database (logical) or a scratch instance on a
    free port (physical), check it (checksums, pg_verifybackup, pg_amcheck, row counts per table), report
    RV(rto_seconds), then remove the scratch copy.
version_added: 0.1.0
author: dbops.admin maintainers (@dbops-admin)
extends_documentation_fragment:
  - dbops.admin.connection
  - dbops.admin.attributes
options:
  engine:
    description:
      - The database engine to talk to.
      - Defaults to the engine recorded in the backup's manifest.
    type: str
    required: false
    choices: [postgresql, mysql, mariadb]
    aliases: [db_engine]
  repo:
    description: Repository directory.
    type: path
    required: true
  backup_id:
    description:
      - Backup to restore. V(latest) is the newest completed backup (matching O(method) and O(engine) when given, as a
        repository may hold backups of both engines).
      - With O(target_time) and V(latest), the newest physical full backup (or pgBackRest backup) that ended before
        O(target_time).
    type: str
    default: latest
  method:
    description: Restrict V(latest) to backups of this method.
    type: str
    choices: [logical, physical, pgbackrest]
  target_time:
    description: Point in time to recover to (ISO 8601; a time without zone is UTC). Physical backups only.
    type: str
  target_position:
    description:
      - Position to recover to. Physical backups only.
      - PostgreSQL takes an LSN, as a dict with key C(lsn) or as the string C(0/3000060).
      - MariaDB takes a dict with keys C(binlog_file) and C(binlog_pos) or the string C(mysql-bin.000003:1234); or a
        GTID position, as a dict with key C(gtid) or as the string C(0-1-100).
      - MySQL 8 takes the same binary log positions, or a GTID set, as a dict with key C(gtid) or as the string
        C(3e11fa47-71ca-11e1-9e33-c80aa9429562:1-123) - the transactions of the set are replayed (C(mysqlbinlog
        --include-gtids)) into the restored instance, which runs with C(gtid_mode=ON); the backup must have recorded
        a GTID set.
      - A malformed string fails naming the accepted forms, before anything is written.
    type: raw
  target_database:
    description: Logical restore into this database name (the backup must hold one database, or choose one with O(databases)).
    type: str
  databases:
    description: Logical restore of only these databases of the backup (refused with a physical backup, which restores
      the whole server, and for a database the backup does not hold).
    type: list
    elements: str
  data_dir:
    description:
      - Physical restore into this new data directory (must be empty or missing unless O(force)). Refused with a logical
        backup.
      - Never the backup repository, a directory holding it or inside it; never a running server's data directory; the
        server's OS user must be able to reach it.
    type: path
  force:
    description: Replace an existing non-empty database or data directory. A running server's data directory is never replaced.
    type: bool
    default: false
  roles:
    description:
      - Logical restores. What to do when the roles (PostgreSQL) or accounts (MariaDB/MySQL) the backup's objects
        belong or are granted to do not exist on the target server. The backup records them when it is taken.
      - V(require) fails before anything changes and names them.
      - V(create) creates the missing ones first, as they were when the backup was taken (PostgreSQL from the
        backup's C(pg_dumpall --globals-only) script, with attributes, password, settings and memberships; MariaDB/MySQL
        from C(SHOW CREATE USER) and C(SHOW GRANTS) saved with the backup). Existing roles and accounts are never
        changed. The login needs the right to create roles (CREATEROLE, or superuser for superuser roles) or accounts.
        With O(target_database), the privileges the created roles and accounts held on the backed-up database are given
        on the restored one.
      - V(skip) restores anyway. PostgreSQL restores without owners and privileges (C(pg_restore --no-owner
        --no-privileges)); the login owns everything. MariaDB/MySQL keeps the definers as recorded; views, routines,
        triggers and events with a missing definer fail when they run.
    type: str
    choices: [require, create, skip]
    default: require
  encryption_key:
    description: Passphrase of an encrypted backup. A wrong key fails before anything is restored. Given for a backup
      that is not encrypted (nor any backup of its chain), it is not used and a warning says so.
    type: str
  jobs:
    description:
      - Parallel jobs for pg_restore (MariaDB/MySQL - parallel loading sessions), 1 or more.
      - More jobs than the server's free connections allow run as many as fit, with a warning.
    type: int
    default: 1
  state:
    description:
      - V(present) restores. V(verified) runs the restore drill and leaves nothing behind.
    type: str
    choices: [present, verified]
    default: present
  os_user:
    description: OS user the tools and a restored server run as when the module runs as root (default V(postgres) / V(mysql)).
    type: str
  bin_dir:
    description: Directory of the database tools.
    type: path
notes:
  - O(engine) defaults to the engine recorded in the backup's manifest.
  - For a physical restore O(login_port) is the port of the new instance; for a drill the connection options name
    the source server whose row counts the restored tables are compared with (when it is reachable).
requirements:
  - cryptography (only for encrypted backups)
'''

EXAMPLES = r'''
- name: Restore last night's logical backup of shop into shop_yesterday
  dbops.admin.db_restore:
    engine: postgresql
    login_host: 127.0.0.1
    login_user: postgres
    login_password: "{{ vault_pg_password }}"
    repo: /srv/backup/pg
    method: logical
    databases: [shop]
    target_database: shop_yesterday

- name: Point-in-time recovery into a new instance on port 5499
  dbops.admin.db_restore:
    repo: /srv/backup/pg
    target_time: "2026-11-27T06:59:00Z"
    data_dir: /srv/pg/restored
    port: 5499

- name: Monthly restore drill of the latest physical backup
  dbops.admin.db_restore:
    engine: postgresql
    repo: /srv/backup/pg
    method: physical
    state: verified
'''

RETURN = r'''
backup_id:
  description: The backup restored (or drilled).
  returned: always
  type: str
rows_restored:
  description: Rows in the restored tables.
  returned: when restored or drilled
  type: int
tables:
  description: Tables checked, each with C(database), C(name), C(rows) (and, in a drill, C(expected_rows) or C(source_rows)).
  returned: when restored or drilled
  type: list
  elements: dict
leftovers:
  description:
    - What killed runs left beside the repository (decrypted scratch copies, half-deleted backups) and this run removed
      when it took the repository lock (or found and kept, with the reason), each with C(path), C(kind), C(status),
      C(reason).
  returned: always
  type: list
  elements: dict
roles_created:
  description: Roles (PostgreSQL) or accounts (MariaDB/MySQL, C(user@host)) created because O(roles=create) (in check
    mode, that would be).
  returned: logical restores that restore something (not when the target already holds this restore)
  type: list
  elements: str
duration_seconds:
  description: Wall time of the run.
  returned: always
  type: float
recovered_to:
  description:
    - The point the restored instance was recovered to (last replayed commit time, or the backup's end).
    - In check mode of a MariaDB/MySQL point-in-time restore, predicted from the archived binary logs (what the real
      run will report), never the target when the archive does not reach it.
  returned: physical restores and drills
  type: str
target_reached:
  description:
    - MariaDB/MySQL point-in-time restores - false when the archived binary logs end before O(target_time) (the
      instance holds everything up to the end of the archive, and a warning says so), true when the target was reached.
    - In check mode, predicted from the archived binary logs (a warning says when the target would not be reached).
  returned: MariaDB/MySQL physical restores and restore drills with a target, and their check mode
  type: bool
external_tablespaces:
  description:
    - MariaDB physical restores and drills of a backup holding tables created with C(DATA DIRECTORY) (their
      tablespace lived outside the source's data directory, named by a C(<db>/<table>.isl) file). Such a tablespace is
      restored under C(<data_dir>.external/<db>/<table>.ibd), never to the source's path, and a warning names it. Each
      entry has C(database), C(table), C(from) (the source's file) and C(to) (the restored file).
    - In check mode, from what the backup recorded when it was taken (backups taken before that record none).
  returned: physical restores and drills of such a backup, and their check mode
  type: list
  elements: dict
rto_seconds:
  description: Time from start until the restored copy was usable (the recovery time a real incident would take).
  returned: state=verified
  type: float
result:
  description: C(passed) or C(failed) for a drill.
  returned: state=verified
  type: str
problems:
  description: What the drill found wrong.
  returned: state=verified
  type: list
  elements: str
data_dir:
  description: Data directory of the restored instance.
  returned: physical restores
  type: str
port:
  description: Port of the restored instance.
  returned: physical restores
  type: int
commands:
  description: Tool command lines run, secrets masked.
  returned: always
  type: list
  elements: str
queries:
  description: Statements executed (or, in check mode, that would be), secrets masked.
  returned: always
  type: list
  elements: str
msg:
  description: What was done or would be.
  returned: always
  type: str
'''

import datetime  # noqa: E402
import json  # noqa: E402
import os  # noqa: E402
import shutil  # noqa: E402
import time  # noqa: E402

from ansible.module_utils.basic import AnsibleModule  # noqa: E402
from ansible.module_utils.common.validation import check_type_dict  # noqa: E402
from ansible_collections.dbops.admin.plugins.module_utils import _backup_catalog as catalog  # noqa: E402
from ansible_collections.dbops.admin.plugins.module_utils import _backup_crypto as crypto  # noqa: E402
from ansible_collections.dbops.admin.plugins.module_utils import _restore_comment as restore_comment  # noqa: E402
from ansible_collections.dbops.admin.plugins.module_utils._connection import (  # noqa: E402
    connect_params, connection_argument_spec, normalize_engine, run_module)
from ansible_collections.dbops.admin.plugins.module_utils._errors import DbError  # noqa: E402

CONNECTION_KEYS = ('login_host', 'login_port', 'login_user', 'login_password', 'login_unix_socket', 'ssl_mode',
                   'connect_timeout', 'login_db')


def _free_port():
    import socket
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(('127.0.0.1', 0))
        return sock.getsockname()[1]


def _damaged_note(candidates):
    """Why backups that would have qualified were passed over: a state=verified run found them damaged."""
    damaged = [m for m in candidates if catalog.is_damaged(m)]
    if not damaged:
        return ''
    return '; %s found damaged by verification (%s): repair the repository and run db_backup state=verified on %s, ' \
        'or choose it with backup_id' % (', '.join(m['id'] for m in damaged),
                                         '; '.join(damaged[-1].get('verify_problems') or []),
                                         'it' if len(damaged) == 1 else 'them')


def select_backup(module, repo):
    p = module.params
    # with engine given, latest is the newest backup of that engine (a repository may hold both engines' backups)
    engine = normalize_engine(p['engine']) if p['engine'] else None
    if p['target_time'] and p['backup_id'] in (None, '', 'latest'):
        target = catalog.parse_time(p['target_time'])
        # a base to replay from: a physical full (our WAL archive) or any pgBackRest set (its own archive)
        candidates = [m for m in repo.manifests()
                      if ((m.get('method') == 'physical' and m.get('type') == 'full') or m.get('method') == 'pgbackrest')
                      and (p['method'] is None or m.get('method') == p['method'])
                      and (engine is None or m.get('engine') == engine)
                      and catalog.parse_time(m.get('stop_time') or m['finished_at']) <= target]
        bases = [m for m in candidates if not catalog.is_damaged(m)]
        if not bases:
            raise DbError('restore to', p['target_time'], 'no physical backup in %s ended before that time (target_time '
                          'replays a physical backup to a point in time; a logical dump holds one moment only)%s'
                          % (repo.path, _damaged_note(candidates)))
        return bases[-1]
    if p['target_position'] and p['backup_id'] in (None, '', 'latest') and p['method'] != 'logical':
        # the newest physical backup (full, incremental or differential, or a pgBackRest set) that
        # does not end after the position: a replay only goes forward from a backup's end
        candidates = [m for m in repo.manifests()
                      if m.get('method') in ('physical', 'pgbackrest') and m.get('type') != 'log'
                      and (p['method'] is None or m.get('method') == p['method'])
                      and (engine is None or m.get('engine') == engine)
                      and not catalog.engine_backend(m['engine']).target_before(m.get('stop_position'),
                                                                                p['target_position'])]
        bases = [m for m in candidates if not catalog.is_damaged(m)]
        if not bases:
            raise DbError('restore to', json.dumps(p['target_position'], sort_keys=True),
                          'no physical backup in %s ends before that position%s' % (repo.path, _damaged_note(candidates)))
        return bases[-1]
    return repo.get(p['backup_id'] or 'latest', method=p['method'], engine=engine)


def _log_backups(repo, manifest):
    """The log backups of the repository (of the engine of manifest): a PostgreSQL recovery to a time after
    the last commit in the archive ends at the one that covers that time."""
    return [m for m in repo.manifests() if m.get('type') == 'log' and m.get('engine') == manifest.get('engine')]


def _marker(module, manifest):
    p = module.params
    marker = {'backup_id': manifest['id'], 'target_time': p['target_time'], 'target_position': p['target_position']}
    if manifest.get('method') == 'logical' and p['roles'] == 'skip':
        # restored without owners and privileges (PostgreSQL) / without the accounts: not what another roles mode
        # gives, so a later restore with roles=require or create is not "already held"
        marker['roles'] = 'skip'
    return marker


class Runner:
    def __init__(self, module):
        self.module = module
        self.p = module.params
        self.engine = None
        self.commands = []
        self.started = time.time()
        self.repo = None
        self.diff_state = None   # (before, after) of what the restore targets, for --diff
        self.login_db = None     # the database connected to instead of the default one (see connect)

    def connect(self, engine_name, login_db=None):
        """The engine connected to the server (once). ``login_db``: the database to connect to when login_db
        was not given (a restore that replaces the default login database connects elsewhere)."""
        if self.engine is None:
            if login_db and not self.p.get('login_db'):
                self.login_db = login_db
            params = dict(self.p, engine=self.p['engine'] or engine_name)
            if self.login_db:
                params['login_db'] = self.login_db
            self.engine = connect_params(params, check_mode=self.module.check_mode)
            if self.p['encryption_key']:
                self.engine.add_secret(self.p['encryption_key'])
        return self.engine

    def connection(self):
        conn = {k: self.p.get(k) for k in CONNECTION_KEYS}
        if self.login_db:
            conn['login_db'] = self.login_db
        return conn

    def check_copy(self, repo, chain):
        """Checksums of every backup in the chain and the key of every encrypted one: what the real run refuses
        before it restores anything, and check mode with it (it said "would restore" a damaged copy)."""
        problems = []
        for manifest in chain:
            problems += repo.verify_files(manifest)
        if problems:
            raise DbError('restore backup', chain[-1]['id'], 'the repository copy is damaged: %s' % '; '.join(problems))
        for manifest in chain:
            if manifest.get('encryption'):
                crypto.key_for(manifest['encryption'], self.p['encryption_key'], manifest['id'])

    def prepare(self, repo, chain):
        """Checksums of every backup in the chain; plaintext copies (decrypted when needed)."""
        self.check_copy(repo, chain)
        scratch = repo.scratch('restore')
        items = []
        for manifest in chain:
            key = crypto.key_for(manifest['encryption'], self.p['encryption_key'], manifest['id']) \
                if manifest.get('encryption') else None
            items.append({'manifest': manifest, 'path': repo.plain_copy(manifest, key, scratch)})
        return scratch, items

    def result(self, **kwargs):
        kwargs.setdefault('commands', self.commands)
        if self.module._diff and self.diff_state is not None:
            before, after = self.diff_state
            if not kwargs.get('changed'):
                after = before
            kwargs['diff'] = {'before': before, 'after': after}
        kwargs['duration_seconds'] = round(time.time() - self.started, 3)
        kwargs['queries'] = self.engine.queries if self.engine is not None else []
        # what killed runs left beside the repository, removed when this run took the lock
        swept = list(getattr(self.repo, 'swept', None) or [])
        kwargs['leftovers'] = swept
        gone = [e for e in swept if e.get('status') == 'removed']
        kept = [e for e in swept if e.get('status') != 'removed']
        if gone:
            self.module.warn('removed what killed runs left behind: %s' % '; '.join(
                '%s (%s)' % (e['path'], e.get('reason')) for e in gone))
        if kept:
            self.module.warn('left behind by killed runs and kept: %s' % '; '.join(
                '%s (%s)' % (e['path'], e.get('reason')) for e in kept))
        return kwargs

    # -- logical
    def logical(self, repo, manifest):
        p = self.p
        if p['data_dir']:
            raise DbError('restore logical backup', manifest['id'], 'data_dir is for physical backups (a new instance); '
                          'a logical backup is restored into databases of the server you connect to (target_database): '
                          'drop data_dir, or choose a physical backup (method=physical)')
        # a database listed twice (a backup taken with it given twice in databases) is one database
        dumps = list(dict.fromkeys([d['database'] for d in (manifest.get('details') or {}).get('dumps') or []]
                                   or manifest.get('databases') or []))
        replaced = [p['target_database']] if p['target_database'] else (p['databases'] or dumps)
        # PostgreSQL: a backup of all databases holds postgres, the default login database, which a session
        # connected to it cannot replace: without login_db the module connects to template1 instead
        engine = self.connect(manifest['engine'], login_db='template1' if manifest.get('engine') == 'postgresql'
                              and 'postgres' in replaced and not os.environ.get('PGDATABASE') else None)
        catalog.fit_jobs(self.module, engine)
        marker = _marker(self.module, manifest)
        unknown = [d for d in p['databases'] or [] if dumps and d not in dumps]
        if unknown:
            raise DbError('restore', ', '.join(unknown), 'not in backup %s (it holds %s)' % (manifest['id'], ', '.join(dumps)))
        selected = p['databases'] or dumps
        targets = [p['target_database']] if p['target_database'] else selected
        if p['target_database'] and len(selected) != 1:
            raise DbError('restore backup', manifest['id'], 'target_database needs exactly one database: the backup '
                          'holds %s; choose one with databases' % ', '.join(dumps))
        sources = dict(zip(targets, selected)) if len(targets) == len(selected) else {}
        for name in targets:
            # a name the server would truncate (PostgreSQL: 63 bytes) is refused before it is looked up: the
            # server compares the truncated name, so it found the restore marker of another database
            engine.quote_ident(name)
        holder = getattr(engine, 'restore_marker', None)
        self.diff_state = (
            {'databases': dict((t, _held_view(holder(t) if holder else None)) for t in targets)},
            {'databases': dict((t, _held_view(dict(marker, source_database=sources.get(t)))) for t in targets)})
        if holder is not None and all(_same(holder(t), marker, sources.get(t)) for t in targets):
            return self.result(changed=False, backup_id=manifest['id'], rows_restored=0, tables=[],
                               msg='%s already %s backup %s' % (', '.join(targets), 'holds' if len(targets) == 1 else 'hold',
                                                                manifest['id']))
        # the roles/accounts the objects need: a missing one fails here (roles=require), before any change
        wanted = [d for d in (manifest.get('details') or {}).get('dumps') or []
                  if not p['databases'] or d.get('database') in p['databases']]
        roles = engine.roles_to_create(wanted, p['roles']) if hasattr(engine, 'roles_to_create') else []

        def run_restore():
            scratch, items = self.prepare(repo, [manifest])
            try:
                # check mode: the engine records the statements and command lines and runs none of them
                return engine.restore_logical({
                    'manifest': manifest, 'path': items[0]['path'], 'target_database': p['target_database'],
                    'force': p['force'], 'jobs': p['jobs'], 'databases': p['databases'],
                    'connection': self.connection(), 'bin_dir': p['bin_dir'], 'os_user': repo.os_user,
                    'marker': marker, 'scratch_dir': scratch, 'roles': p['roles']})
            finally:
                shutil.rmtree(scratch, ignore_errors=True)
        if self.module.check_mode:
            # the refusals of the real run (an existing database without force), before any change
            for name in targets:
                engine.check_restore_target(name, {'force': p['force'], 'connection': self.connection(),
                                                   'bin_dir': p['bin_dir'], 'os_user': repo.os_user})
            self.commands += run_restore().get('commands') or []
            return self.result(changed=True, backup_id=manifest['id'], rows_restored=0, tables=[], roles_created=roles,
                               msg='would restore %s from backup %s%s' % (
                                   ', '.join(targets), manifest['id'],
                                   ', creating %s' % ', '.join(roles) if roles else ''))
        with repo.lock():
            out = run_restore()
        self.commands += out.get('commands') or []
        for warning in out.get('warnings') or []:
            self.module.warn(warning)
        created = out.get('roles_created') or []
        return self.result(changed=True, backup_id=manifest['id'], rows_restored=out['rows_restored'],
                           tables=out['tables'], roles_created=created,
                           msg='restored %s from backup %s (%d rows)%s' % (
                               ', '.join(targets), manifest['id'], out['rows_restored'],
                               '; created %s' % ', '.join(created) if created else ''))

    # -- physical
    def physical(self, repo, manifest):
        p = self.p
        if p['databases']:
            raise DbError('restore physical backup', manifest['id'], 'a physical backup restores the whole server into '
                          'a new instance: drop databases, or choose a logical backup (method=logical) to restore '
                          'some databases')
        if not p['data_dir'] or not p['login_port']:
            raise DbError('restore physical backup', manifest['id'], 'give data_dir and port for the new instance')
        backend = catalog.engine_backend(manifest['engine'])
        marker = _marker(self.module, manifest)
        data_dir = os.path.abspath(p['data_dir'])
        path_checker = getattr(backend, 'check_tool_path', None)
        if path_checker is not None:
            path_checker(data_dir, 'data directory')
        _check_apart(data_dir, repo.path)
        _check_reachable(data_dir, repo.os_user)
        tools_checker = getattr(backend, 'check_restore_tools', None)
        if tools_checker is not None:
            # a missing tool (pgbackrest), a pgBackRest set expired by hand: refused before anything is written
            tools_checker(manifest, repo.path, repo.os_user)
        held = backend.read_restore_marker(data_dir) if hasattr(backend, 'read_restore_marker') else None
        self.diff_state = (
            {'data_dir': data_dir, 'holds': _held_view(held), 'running': bool(backend.instance_running(data_dir))},
            {'data_dir': data_dir, 'holds': _held_view(marker), 'running': True, 'port': int(p['login_port'])})
        if held is not None and _same(held, marker):
            running = backend.instance_running(data_dir)
            set_to = backend.instance_port(data_dir)
            if running and set_to is not None and set_to != int(p['login_port']):
                raise DbError('restore into', data_dir, 'it already holds backup %s, running on port %d, not %s: '
                              'ask for port %d, or stop that server (the next run starts it on port %s)'
                              % (manifest['id'], set_to, p['login_port'], set_to, p['login_port']))
            if not running:
                catalog.check_port_free(p['login_port'], data_dir)
            held_extra = {'target_reached': held['target_reached']} if held.get('target_reached') is not None else {}
            if held.get('target_reached') is False:
                self.module.warn('%s holds backup %s recovered only to the end of the archive as it was then (%s), not '
                                 'to %s: to replay what the archive holds now, stop it and restore again with force'
                                 % (data_dir, manifest['id'], held.get('recovered_to'),
                                    p['target_time'] or p['target_position']))
            if running or self.module.check_mode:
                return self.result(changed=not running, backup_id=manifest['id'], data_dir=data_dir,
                                   port=p['login_port'], recovered_to=_held_recovered_to(held, manifest), **held_extra,
                                   msg='%s already holds backup %s%s' % (data_dir, manifest['id'],
                                                                         '' if running else '; would start it'))
            if set_to is not None and set_to != int(p['login_port']):
                backend.set_instance_port(data_dir, p['login_port'])
                self.commands.append('set port %s for the restored instance in %s' % (p['login_port'], data_dir))
            backend.start_instance(data_dir, repo.os_user, p['bin_dir'],
                                   (manifest.get('details') or {}).get('major_version'), self.commands)
            return self.result(changed=True, backup_id=manifest['id'], data_dir=data_dir, port=p['login_port'],
                               recovered_to=_held_recovered_to(held, manifest), **held_extra,
                               msg='started the restored instance in %s' % data_dir)
        predicted = None
        if self.module.check_mode:
            # the refusals of the real run, before it would change anything
            # the backup the replay starts from: the last full/incremental/differential of the chain (a
            # pgBackRest set: itself), as the real restore reads it
            start = ([m for m in repo.chain(manifest) if m.get('type') != 'log'] or [manifest])[-1]
            time_checker = getattr(backend, 'check_target_time', None)
            if time_checker is not None and p['target_time']:
                time_checker(start, p['target_time'])
            checker = getattr(backend, 'check_target_position', None)
            if checker is not None:
                checker(p['target_position'])
                if p['target_position']:
                    if backend.target_before(start.get('stop_position'), p['target_position']):
                        raise DbError('restore to', json.dumps(p['target_position'], sort_keys=True),
                                      'backup %s ends after that position: restore an older backup' % start['id'])
            replay_check = getattr(backend, 'check_replay', None)
            if replay_check is not None and manifest.get('method') != 'pgbackrest':
                # the archived binary logs the real run replays: missing or damaged ones, or a target the
                # archive does not reach, refuse it; else what the replay will reach, read from the archive
                chain = repo.chain(manifest)
                predicted = replay_check({'chain': [{'manifest': m} for m in chain if m.get('type') != 'log'] or
                                          [{'manifest': chain[0]}], 'target_time': p['target_time'],
                                          'target_position': p['target_position'], 'log_dir': repo.log_dir,
                                          'last': manifest, 'bin_dir': p['bin_dir']})
        if os.path.exists(data_dir) and not os.path.isdir(data_dir):
            raise DbError('restore into', data_dir, 'it exists and is not a directory')
        if os.path.isdir(data_dir) and os.listdir(data_dir):
            if backend.instance_running(data_dir):
                raise DbError('restore into', data_dir, 'a server is running on that data directory: stop it first')
            if not p['force']:
                raise DbError('restore into', data_dir,
                              'the directory is not empty: set force to replace its contents')
        catalog.check_port_free(p['login_port'], data_dir)
        if self.module.check_mode:
            chain = repo.chain(manifest)
            self.check_copy(repo, chain)
            # tables created with DATA DIRECTORY, as the backup recorded them: remapped into <data_dir>.external,
            # refused as the real run refuses when that directory is in the way
            planner = getattr(backend, 'external_plan', None)
            external = planner([m for m in chain if m.get('type') != 'log'] or chain[:1], data_dir, p['force']) \
                if planner is not None else None
            extra = {'external_tablespaces': external} if external else {}
            recovered = ' recovered to %s' % p['target_time'] if p['target_time'] and predicted is None else ''
            if predicted:
                # predicted from the archived binary logs, as the real run will report them
                extra['recovered_to'] = predicted.get('recovered_to')
                if predicted.get('target_reached') is not None:
                    extra['target_reached'] = predicted['target_reached']
                if predicted.get('target_reached') is False:
                    self.module.warn('the archive ends before %s: %s would be restored to the end of the archive (%s)'
                                     % (p['target_time'] or p['target_position'], data_dir, predicted.get('recovered_to')))
                    recovered = ' recovered to the end of the archive (%s), not to %s' % (
                        predicted.get('recovered_to'), p['target_time'] or p['target_position'])
                elif predicted.get('recovered_to'):
                    recovered = ' recovered to %s' % predicted['recovered_to']
            return self.result(changed=True, backup_id=manifest['id'], data_dir=data_dir, port=p['login_port'],
                               msg='would restore backup %s into %s and start it on port %s%s%s' % (
                                   manifest['id'], data_dir, p['login_port'], recovered,
                                   '; %d tablespaces created with DATA DIRECTORY would go to %s.external' % (
                                       len(external), data_dir) if external else ''), **extra)
        with repo.lock():
            chain = repo.chain(manifest)
            scratch, items = self.prepare(repo, chain)
            try:
                out = catalog.backend_call(manifest['engine'], 'restore_physical', {
                    'chain': [i for i in items if i['manifest'].get('type') != 'log'] or items[:1],
                    'log_chain': [i for i in items if i['manifest'].get('type') == 'log'],
                    'data_dir': data_dir, 'port': p['login_port'], 'os_user': repo.os_user, 'bin_dir': p['bin_dir'],
                    'target_time': p['target_time'], 'target_position': p['target_position'],
                    'log_dir': repo.log_dir, 'force': p['force'], 'repo': repo.path, 'marker': marker,
                    'last': manifest, 'log_backups': _log_backups(repo, manifest)})
            finally:
                shutil.rmtree(scratch, ignore_errors=True)
        self.commands += out.get('commands') or []
        for warning in out.get('warnings') or []:
            self.module.warn(warning)
        if out.get('target_reached') is False:
            self.module.warn('the archive ends before %s: %s was restored to the end of the archive (%s)' % (
                p['target_time'] or p['target_position'], data_dir, out.get('recovered_to')))
        extra = {'target_reached': out['target_reached']} if out.get('target_reached') is not None else {}
        if out.get('external_tablespaces'):
            extra['external_tablespaces'] = out['external_tablespaces']
        return self.result(changed=True, backup_id=manifest['id'], data_dir=out['data_dir'], port=out['port'],
                           recovered_to=out.get('recovered_to'), **extra,
                           msg='restored backup %s into %s, running on port %s' % (manifest['id'], data_dir, out['port']))

    # -- drill
    def drill(self, repo, manifest):
        if self.p['roles'] == 'create':
            raise DbError('run a restore drill with', 'roles=create', 'a drill leaves nothing behind and creates no '
                          'roles or accounts: use roles=require (the default) or roles=skip')
        if manifest.get('method') == 'logical':
            held = [d['database'] for d in (manifest.get('details') or {}).get('dumps') or []]
            unknown = sorted(set(self.p['databases'] or []) - set(held))
            if unknown and held:
                raise DbError('run a restore drill of', ', '.join(unknown), 'not in backup %s (it holds %s)' % (
                    manifest['id'], ', '.join(held)))
        if self.module.check_mode:
            self.check_copy(repo, [manifest] if manifest.get('method') == 'logical' else repo.chain(manifest))
            extra = {}
            replay_check = getattr(catalog.engine_backend(manifest['engine']), 'check_replay', None)
            if replay_check is not None and manifest.get('method') == 'physical':
                # the replay the drill runs: refused as the real drill refuses it, else what it would reach
                chain = repo.chain(manifest)
                predicted = replay_check({'chain': [{'manifest': m} for m in chain if m.get('type') != 'log'] or
                                          [{'manifest': chain[0]}], 'target_time': self.p['target_time'],
                                          'target_position': self.p['target_position'], 'log_dir': repo.log_dir,
                                          'last': manifest, 'bin_dir': self.p['bin_dir']})
                if predicted and predicted.get('target_reached') is not None:
                    extra['target_reached'] = predicted['target_reached']
                    extra['recovered_to'] = predicted.get('recovered_to')
                if predicted and predicted.get('target_reached') is False:
                    self.module.warn('the archive ends before %s: the drill would recover backup %s only to the end of '
                                     'the archive (%s)' % (self.p['target_time'] or self.p['target_position'],
                                                           manifest['id'], predicted.get('recovered_to')))
            return self.result(changed=False, backup_id=manifest['id'], result='skipped', **extra,
                               msg='would run a restore drill of backup %s' % manifest['id'])
        if manifest.get('method') == 'logical':
            return self.drill_logical(repo, manifest)
        return self.drill_physical(repo, manifest)

    def drill_logical(self, repo, manifest):
        engine = self.connect(manifest['engine'])
        dumps = (manifest.get('details') or {}).get('dumps') or []
        unknown = sorted(set(self.p['databases'] or []) - set(d['database'] for d in dumps))
        if unknown:
            raise DbError('run a restore drill of', ', '.join(unknown), 'not in backup %s (it holds %s)' % (
                manifest['id'], ', '.join(d['database'] for d in dumps)))
        selected = [d for d in dumps if not self.p['databases'] or d['database'] in self.p['databases']]
        selected = [d for i, d in enumerate(selected) if d['database'] not in [x['database'] for x in selected[:i]]]
        problems, tables, total = [], [], 0
        rto = None
        if hasattr(engine, 'keep_out_of_binlog'):
            engine.keep_out_of_binlog()   # the scratch copy is not replicated nor archived (MariaDB/MySQL)
        with repo.lock():
            t0 = time.time()
            scratch, items = self.prepare(repo, [manifest])
            created = []
            try:
                for index, dump in enumerate(selected):
                    scratch_db = 'dbops_drill_%d_%d' % (os.getpid(), index)
                    created.append(scratch_db)
                    out = engine.restore_logical({
                        'manifest': manifest, 'path': items[0]['path'], 'target_database': scratch_db, 'force': False,
                        'jobs': self.p['jobs'], 'databases': [dump['database']], 'connection': self.connection(),
                        'bin_dir': self.p['bin_dir'], 'os_user': repo.os_user, 'marker': {'drill': manifest['id']},
                        'scratch_dir': scratch, 'roles': self.p['roles']})
                    self.commands += out.get('commands') or []
                    expected = {t['name']: t['rows'] for t in dump.get('tables') or []}
                    for table in out['tables']:
                        entry = {'database': dump['database'], 'name': table['name'], 'rows': table['rows']}
                        if dump.get('tables') is not None:
                            entry['expected_rows'] = expected.get(table['name'])
                            if entry['expected_rows'] != table['rows']:
                                problems.append('%s.%s: %s rows restored, %s in the backup snapshot' % (
                                    dump['database'], table['name'], table['rows'], entry['expected_rows']))
                        tables.append(entry)
                        total += table['rows']
                    missing = set(expected) - set(t['name'] for t in out['tables'])
                    problems += ['%s.%s: table missing after restore' % (dump['database'], n) for n in sorted(missing)]
                rto = round(time.time() - t0, 3)
                if hasattr(engine, 'check_database'):
                    for scratch_db in created:
                        problems += engine.check_database({'bin_dir': self.p['bin_dir'], 'os_user': repo.os_user,
                                                           'connection': self.connection(),
                                                           'commands': self.commands}, scratch_db)
            finally:
                for scratch_db in created:
                    try:
                        engine.execute('DROP DATABASE IF EXISTS %s' % engine.quote_ident(scratch_db))
                    except DbError:
                        pass
                shutil.rmtree(scratch, ignore_errors=True)
        return self._drill_result(manifest, problems, tables, total, rto, None)

    def drill_physical(self, repo, manifest):
        backend = catalog.engine_backend(manifest['engine'])
        details = (repo.chain(manifest)[0].get('details') or {})
        problems, tables, external = [], [], []
        with repo.lock():
            t0 = time.time()
            chain = repo.chain(manifest)
            scratch, items = self.prepare(repo, chain)
            data_dir = os.path.join(scratch, 'instance')
            port = _free_port()
            try:
                # a pgBackRest set is checked with the sets it references: the newest pgBackRest set of the chain
                newest_set = ([i for i in items if i['manifest'].get('method') == 'pgbackrest'] or [None])[-1]
                for item in items:
                    if (item['manifest'].get('type') == 'full' and item['manifest'].get('method') != 'pgbackrest') \
                            or item is newest_set:
                        problems += catalog.backend_call(manifest['engine'], 'verify_physical', item['manifest'],
                                                         item['path'], scratch, log_dir=repo.log_dir,
                                                         os_user=repo.os_user, bin_dir=self.p['bin_dir'])
                if problems:
                    raise DbError('restore-drill backup', manifest['id'], '; '.join(problems))
                out = catalog.backend_call(manifest['engine'], 'restore_physical', {
                    'chain': [i for i in items if i['manifest'].get('type') != 'log'],
                    'data_dir': data_dir, 'port': port, 'os_user': repo.os_user, 'bin_dir': self.p['bin_dir'],
                    'target_time': self.p['target_time'], 'target_position': self.p['target_position'],
                    'log_dir': repo.log_dir, 'force': False, 'repo': repo.path, 'hba_local_trust': True,
                    'marker': {'drill': manifest['id']}, 'last': manifest, 'log_backups': _log_backups(repo, manifest)})
                self.commands += out.get('commands') or []
                external = out.get('external_tablespaces') or []
                for entry in external:
                    self.module.warn('%s.%s was created with DATA DIRECTORY (%s): a restore puts its tablespace in '
                                     '<data_dir>.external' % (entry['database'], entry['table'], entry['from']))
                rto = round(time.time() - t0, 3)
                check = catalog.backend_call(manifest['engine'], 'drill_check', {
                    'bin_dir': self.p['bin_dir'], 'major': details.get('major_version'), 'os_user': repo.os_user,
                    'socket_dir': out.get('socket_dir'), 'port': port,
                    'superuser': details.get('bootstrap_superuser') or 'postgres'})
                self.commands += check.get('commands') or []
                problems += check['problems']
                tables = check['tables']
                self._compare_source(manifest, tables)
                recovered_to = out.get('recovered_to')
                reached = out.get('target_reached')
            finally:
                if hasattr(backend, 'stop_instance'):
                    backend.stop_instance(data_dir, repo.os_user, self.p['bin_dir'], details.get('major_version'),
                                          'immediate')
                shutil.rmtree(scratch, ignore_errors=True)
                shutil.rmtree(catalog.short_socket_dir(data_dir), ignore_errors=True)
        result = self._drill_result(manifest, problems, tables, sum(t['rows'] for t in tables), rto, recovered_to)
        if external:
            result['external_tablespaces'] = external
        if reached is not None:
            result['target_reached'] = reached
        if reached is False:
            # the drill restored what the archive holds: never said to be the target
            target = self.p['target_time'] or self.p['target_position']
            self.module.warn('the archive ends before %s: the drill recovered backup %s only to the end of the archive '
                             '(%s), not to the target; take a log backup (db_backup type=log) to reach it'
                             % (target, manifest['id'], recovered_to))
            result['msg'] += '; target %s NOT reached: recovered only to the end of the archive (%s)' % (
                target, recovered_to)
        return result

    def _compare_source(self, manifest, tables):
        """Row counts of the live source, for information (it has moved on since the backup)."""
        if not (self.p['login_host'] or self.p['login_unix_socket'] or self.p['login_port']):
            return
        by_db = {}
        for table in tables:
            by_db.setdefault(table['database'], []).append(table)
        for database, entries in by_db.items():
            try:
                engine = connect_params(dict(self.p, engine=self.p['engine'] or manifest['engine']), database=database)
            except DbError:
                continue
            try:
                counts = {r['name']: int(r['rows']) for r in engine.table_row_counts()}
            except DbError:
                counts = {}
            finally:
                engine.close()
            for table in entries:
                table['source_rows'] = counts.get(table['name'])

    def _drill_result(self, manifest, problems, tables, total, rto, recovered_to):
        outcome = 'failed' if problems else 'passed'
        result = self.result(changed=False, backup_id=manifest['id'], rto_seconds=rto, rows_restored=total,
                             tables=tables, result=outcome, problems=problems, recovered_to=recovered_to,
                             msg='restore drill of %s %s: %d tables, %d rows, RTO %ss%s' % (
                                 manifest['id'], outcome, len(tables), total, rto,
                                 ('; ' + '; '.join(problems)) if problems else ''))
        if problems:
            raise DbError('pass the restore drill of', manifest['id'], '; '.join(problems))
        return result


def _check_apart(data_dir, repo_path):
    """A restore empties data_dir (force): never the repository, a directory holding it, or a
    directory inside it, nor one of the scratch directories beside it."""
    real = os.path.realpath(data_dir)
    repo_real = os.path.realpath(repo_path)

    def within(child, parent):
        return child == parent or child.startswith(parent.rstrip(os.sep) + os.sep)

    if within(repo_real, real) or within(real, repo_real):
        raise DbError('restore into', data_dir, 'it is, holds or lies inside the backup repository %s: choose a '
                      'data_dir outside it' % repo_path)
    if os.path.basename(real).startswith(catalog.SCRATCH) or \
            os.path.basename(os.path.dirname(real)).startswith(catalog.SCRATCH):
        raise DbError('restore into', data_dir, 'it is a scratch directory of dbops.admin: choose another data_dir')


def _check_reachable(data_dir, os_user):
    """Before anything is read or written: this run can write where data_dir goes, and the OS user
    the restored server runs as can reach it (every directory above it lets that user through)."""
    import pwd
    import stat
    existing = data_dir
    while not os.path.exists(existing):
        existing = os.path.dirname(existing)
    if not os.access(existing, os.W_OK):
        raise DbError('restore into', data_dir, 'cannot write into %s (a read-only file system, or no permission)'
                      % existing)
    if not os_user or os.geteuid() != 0:
        return
    try:
        pw = pwd.getpwnam(os_user)
    except KeyError:
        return
    groups = set(os.getgrouplist(os_user, pw.pw_gid))
    path = os.sep
    for part in [x for x in os.path.dirname(data_dir).split(os.sep) if x]:
        path = os.path.join(path, part)
        try:
            st = os.stat(path)
        except OSError:
            break   # made by this run, open to the server's user
        if not stat.S_ISDIR(st.st_mode):
            raise DbError('restore into', data_dir, '%s is not a directory' % path)
        if st.st_uid == pw.pw_uid:
            allowed = st.st_mode & stat.S_IXUSR
        elif st.st_gid in groups:
            allowed = st.st_mode & stat.S_IXGRP
        else:
            allowed = st.st_mode & stat.S_IXOTH
        if not allowed:
            raise DbError('restore into', data_dir, 'the server would run as OS user %s, which cannot enter %s (mode %s, '
                          'owner %s): choose a data_dir that user can reach' % (
                              os_user, path, oct(stat.S_IMODE(st.st_mode)), _owner_name(st.st_uid)))


def _owner_name(uid):
    import pwd
    try:
        return pwd.getpwuid(uid).pw_name
    except KeyError:
        return str(uid)


def _held_view(marker):
    """What a restore marker says a target holds, for --diff (None: no restore of ours)."""
    if not marker:
        return None
    return dict((k, marker.get(k)) for k in ('backup_id', 'target_time', 'target_position', 'source_database', 'roles')
                if marker.get(k) is not None)


def _held_recovered_to(held, manifest):
    """recovered_to of a restore found already done: as its marker recorded it (a marker written before it did
    so: the target, else the backup's end, as that restore reported it without a replayed commit)."""
    return held.get('recovered_to') or held.get('target_time') or manifest.get('stop_time') \
        or manifest.get('finished_at')


def _same(held, marker, source=None):
    """Does the target hold this restore? The same backup, target and, where the target records
    it, the same source database."""
    if not held:
        return False
    if set(held) == {'sha256'}:
        # the short marker of a database comment too long for the full one (MariaDB)
        return restore_comment.matches(held, dict(marker, source_database=source))
    if source is not None and held.get('source_database') not in (None, source):
        return False
    if held.get('roles') != marker.get('roles'):
        return False   # restored with roles=skip, asked with owners (or the other way round)
    return all(held.get(k) == v for k, v in marker.items())


def restore(module):
    p = module.params
    os_user = p['os_user']
    catalog.check_os_user(os_user)   # before anything is read or written
    repo = catalog.Repository(p['repo'], os_user)
    if not repo.exists():
        raise DbError('open backup repository', repo.path, 'it is a file, not a directory: give the repository '
                      'directory as repo' if os.path.lexists(repo.path) else 'no such directory')
    if p['login_port'] is not None and not 1 <= p['login_port'] <= 65535:
        # the port of a new instance (physical restore) or of the server (logical): never 0 or past 65535
        raise DbError('use port', str(p['login_port']), 'a TCP port is a number from 1 to 65535')
    if p['target_time']:
        # one spelling of the instant (UTC, Z): the engines and the restore markers see the same text
        moment = catalog.parse_time(p['target_time']).astimezone(datetime.timezone.utc)
        if moment > datetime.datetime.now(datetime.timezone.utc):
            raise DbError('restore to', p['target_time'], 'the time is in the future: no archive reaches it yet')
        p['target_time'] = moment.isoformat().replace('+00:00', 'Z')
    if p['jobs'] < 1:
        raise DbError('restore with jobs', str(p['jobs']), 'give 1 or more parallel jobs')
    if isinstance(p['target_position'], str) and ('=' in p['target_position']
                                                  or p['target_position'].lstrip().startswith('{')):
        # key=value pairs or JSON, as the option read them when it took only a dict (lsn=0/3000060)
        try:
            p['target_position'] = check_type_dict(p['target_position'])
        except TypeError as exc:
            raise DbError('restore to target_position', p['target_position'], str(exc)) from None
    manifest = select_backup(module, repo)
    if p['engine'] and normalize_engine(p['engine']) != manifest.get('engine'):
        raise DbError('restore backup', manifest['id'], 'it is a %s backup, not %s' % (manifest.get('engine'), p['engine']))
    if isinstance(p['target_position'], str) and manifest.get('method') != 'logical':
        # the string form ('0/3000060'; 'mysql-bin.000003:1234' or '0-1-100') as the engine's dict form: the
        # restore marker and the engine see one spelling, the same as the dict given directly
        p['target_position'] = catalog.engine_backend(manifest['engine']).check_target_position(p['target_position'])
    if repo.os_user is None:
        repo.os_user = catalog.default_os_user(manifest.get('engine'))
    if manifest.get('encryption') and not p['encryption_key']:
        raise DbError('restore backup', manifest['id'], 'the backup is encrypted: give encryption_key')
    if manifest.get('encryption'):
        crypto.key_for(manifest['encryption'], p['encryption_key'], manifest['id'])
    elif p['encryption_key'] and not any(m.get('encryption') for m in repo.chain(manifest)):
        # not an error (a play may pass its key to every restore), but not silent: the backup meant may be another
        module.warn('backup %s is not encrypted: encryption_key was not used' % manifest['id'])
    runner = Runner(module)
    runner.repo = repo
    try:
        if p['state'] == 'verified':
            return runner.drill(repo, manifest)
        if manifest.get('method') == 'logical':
            if p['target_time'] or p['target_position']:
                raise DbError('restore logical backup', manifest['id'], 'to a point in time: logical dumps hold one '
                              'moment only; use a physical backup and the log archive')
            return runner.logical(repo, manifest)
        return runner.physical(repo, manifest)
    finally:
        if runner.engine is not None:
            runner.engine.close()


def main():
    argument_spec = connection_argument_spec(engine_required=False)
    argument_spec.update(
        repo=dict(type='path', required=True),
        backup_id=dict(type='str', default='latest'),
        method=dict(type='str', choices=['logical', 'physical', 'pgbackrest']),
        target_time=dict(type='str'),
        target_position=dict(type='raw'),
        target_database=dict(type='str'),
        databases=dict(type='list', elements='str'),
        data_dir=dict(type='path'),
        force=dict(type='bool', default=False),
        encryption_key=dict(type='str', no_log=True),
        jobs=dict(type='int', default=1),
        roles=dict(type='str', choices=['require', 'create', 'skip'], default='require'),
        state=dict(type='str', choices=['present', 'verified'], default='present'),
        os_user=dict(type='str'),
        bin_dir=dict(type='path'),
    )
    module = AnsibleModule(argument_spec, supports_check_mode=True,
                           mutually_exclusive=[('target_time', 'target_position'),
                                               ('target_database', 'data_dir')])
    if module.params['databases']:
        module.params['databases'] = list(dict.fromkeys(module.params['databases']))
    run_module(module, lambda _engine: restore(module), connect_first=False)


if __name__ == '__main__':
    main()
