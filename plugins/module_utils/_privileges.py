# -*- coding: utf-8 -*-
# Copyright: dbops.admin contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Private to dbops.admin: the engine-independent rules of privileges.

A privilege list from the module (``{on, database, schema, objects, privs, grant_option}``)
becomes a map ``target -> {privilege: grant_option}`` where a target is the tuple
``(on, database, schema, object)``; ``plan_privileges()`` compares it with what the
account holds and says what to grant and revoke. Engines render the SQL.
"""

from __future__ import annotations

import re

from ansible_collections.dbops.admin.plugins.module_utils._errors import DbError

SCOPES = ('global', 'database', 'schema', 'table', 'all_tables', 'sequence', 'function')

# Privileges PostgreSQL knows per object kind ('default_tables' = default privileges for future tables).
PG_PRIVILEGES = {
    'database': ('CONNECT', 'CREATE', 'TEMPORARY'),
    'schema': ('USAGE', 'CREATE'),
    'table': ('SELECT', 'INSERT', 'UPDATE', 'DELETE', 'TRUNCATE', 'REFERENCES', 'TRIGGER'),
    'sequence': ('USAGE', 'SELECT', 'UPDATE'),
    'function': ('EXECUTE',),
}
PG_PRIVILEGES['all_tables'] = PG_PRIVILEGES['table']
PG_PRIVILEGES['default_tables'] = PG_PRIVILEGES['table']
PG_ALIASES = {'TEMP': 'TEMPORARY', 'ALL PRIVILEGES': 'ALL'}

# MySQL-family privileges that ALL means at the database (db.*) and table level.
MYSQL_DATABASE_ALL = ('SELECT', 'INSERT', 'UPDATE', 'DELETE', 'CREATE', 'DROP', 'REFERENCES', 'INDEX',
                      'ALTER', 'CREATE TEMPORARY TABLES', 'LOCK TABLES', 'EXECUTE', 'CREATE VIEW',
                      'SHOW VIEW', 'CREATE ROUTINE', 'ALTER ROUTINE', 'EVENT', 'TRIGGER')
MYSQL_TABLE_ALL = ('SELECT', 'INSERT', 'UPDATE', 'DELETE', 'CREATE', 'DROP', 'REFERENCES', 'INDEX',
                   'ALTER', 'CREATE VIEW', 'SHOW VIEW', 'TRIGGER')
MYSQL_SCOPES = ('global', 'database', 'table')
MYSQL_DATABASE_CHARS = 64  # mysql.db.Db: a database name, or a db-level grant's pattern with its escapes
# A privilege name is a keyword in the statement: only words of letters and underscores.
PRIVILEGE_RE = re.compile(r'^[A-Z][A-Z_]*( [A-Z][A-Z_]*)*$')
GRANT_OPTION = 'GRANT OPTION'


def _words(priv):
    return ' '.join(str(priv).upper().split())


def normalize_privileges(entries, engine_name, all_privileges=None, default_schema='public'):
    """Validate the module's privilege list; returns {target: {privilege: grant_option}}.

    ``all_privileges`` (MySQL family) maps a scope to what ALL means on that server.
    Raises DbError naming the entry when a combination is not supported.
    """
    desired = {}
    for index, entry in enumerate(entries or []):
        where = 'privileges[%d] (on: %s)' % (index, entry.get('on'))
        scope = entry.get('on')
        if scope not in SCOPES:
            raise DbError('use', where, 'on must be one of %s' % ', '.join(SCOPES))
        privs = [_words(p) for p in (entry.get('privs') or [])]
        for priv in privs:
            if not PRIVILEGE_RE.match(priv):
                raise DbError('use', where, 'privilege %r is not a privilege name' % priv)
        grant_option = bool(entry.get('grant_option'))
        database, schema, objects = entry.get('database'), entry.get('schema'), entry.get('objects')
        if engine_name == 'postgresql':
            if entry.get('wildcard'):
                raise DbError('use', where, 'wildcard applies to MySQL/MariaDB database patterns only; PostgreSQL '
                              'grants name each database')
            targets, privs = _pg_targets(scope, database, schema, objects, privs, where, default_schema)
            values = dict((p, grant_option) for p in privs)
        else:
            targets, privs = _mysql_targets(scope, database, schema, objects, privs, where,
                                            all_privileges or {}, wildcard=bool(entry.get('wildcard')))
            values = dict((p, False) for p in privs)
            if grant_option:
                values[GRANT_OPTION] = False
        for target in targets:
            current = desired.setdefault(target, {})
            for priv, option in values.items():
                current[priv] = current.get(priv, False) or option
    return desired


def _pg_targets(scope, database, schema, objects, privs, where, default_schema):
    if scope == 'global':
        raise DbError('use', where, 'PostgreSQL has no global privileges: use the role attributes '
                      '(superuser, createdb, createrole, replication, bypassrls) or on: database')
    allowed = PG_PRIVILEGES[scope]
    expanded = []
    for priv in privs:
        priv = PG_ALIASES.get(priv, priv)
        if priv == 'ALL':
            expanded.extend(allowed)
        elif priv not in allowed:
            raise DbError('use', where, 'privilege %s does not apply to a %s on PostgreSQL (valid: %s, ALL)'
                          % (priv, scope.replace('_', ' '), ', '.join(allowed)))
        else:
            expanded.append(priv)
    privs = list(dict.fromkeys(expanded))
    if scope == 'database':
        if not database:
            raise DbError('use', where, 'database is required')
        if schema or objects:
            raise DbError('use', where, 'schema and objects do not apply to on: database')
        return [('database', database, None, None)], privs
    if not database:
        raise DbError('use', where, 'database is required (the database holding the schema)')
    if scope == 'schema':
        if objects:
            raise DbError('use', where, 'objects do not apply to on: schema; name it with schema')
        if not schema:
            raise DbError('use', where, 'schema is required')
        return [('schema', database, schema, None)], privs
    schema = schema or default_schema
    if scope == 'all_tables':
        if objects:
            raise DbError('use', where, 'objects do not apply to on: all_tables')
        return [('all_tables', database, schema, None)], privs
    if not objects:
        raise DbError('use', where, 'objects (the %s names) are required' % scope)
    return [(scope, database, schema, obj) for obj in objects], privs


def check_database_pattern(pattern, where):
    """A MySQL/MariaDB database pattern as GRANT takes it and mysql.db stores it (``app\\_%``)."""
    if len(pattern) > MYSQL_DATABASE_CHARS:
        raise DbError('use', where, 'the database pattern %r is %d characters; MySQL/MariaDB store at most %d '
                      '(escapes included)' % (pattern, len(pattern), MYSQL_DATABASE_CHARS))
    trailing = len(pattern) - len(pattern.rstrip('\\'))
    if trailing % 2:
        raise DbError('use', where, 'the database pattern %r ends with a lone backslash: write \\\\ for a '
                      'backslash, \\_ and \\%% for a literal _ and %%' % pattern)


def _mysql_targets(scope, database, schema, objects, privs, where, all_privileges, wildcard=False):
    if scope not in MYSQL_SCOPES:
        hint = {'schema': 'on MySQL/MariaDB a schema is a database: use on: database',
                'all_tables': 'on MySQL/MariaDB on: database (db.*) covers every table, present and future',
                'sequence': 'grant on the sequence as on: table',
                'function': 'function privileges are not managed on MySQL/MariaDB by this module yet'}[scope]
        raise DbError('use', where, 'on: %s is PostgreSQL-only; %s' % (scope, hint))
    if schema:
        raise DbError('use', where, 'schema does not apply on MySQL/MariaDB; use database')
    expanded = []
    for priv in privs:
        if priv in ('ALL', 'ALL PRIVILEGES'):
            expanded.extend(all_privileges.get(scope, ()))
        elif priv == 'USAGE':
            continue  # "no privileges" in MySQL: nothing to hold
        elif priv == GRANT_OPTION:
            raise DbError('use', where, 'use grant_option: true instead of the GRANT OPTION privilege')
        else:
            expanded.append(priv)
    privs = list(dict.fromkeys(expanded))
    if scope == 'global':
        if database or objects:
            raise DbError('use', where, 'database and objects do not apply to on: global (*.*)')
        return [('global', None, None, None)], privs
    if not database:
        raise DbError('use', where, 'database is required')
    if wildcard:
        if scope != 'database':
            raise DbError('use', where, 'wildcard applies to on: database (a db-level grant on a pattern) only')
        if objects:
            raise DbError('use', where, 'objects do not apply to on: database (db.*); use on: table')
        check_database_pattern(database, where)
        return [('database_pattern', database, None, None)], privs
    if scope == 'database':
        if objects:
            raise DbError('use', where, 'objects do not apply to on: database (db.*); use on: table')
        return [('database', database, None, None)], privs
    if not objects:
        raise DbError('use', where, 'objects (the table names) are required')
    return [('table', database, None, obj) for obj in objects], privs


def plan_privileges(desired, held, exclusive, exclusive_targets=None):
    """Compare what is wanted with what is held.

    ``desired`` and ``held`` map target -> {privilege: grant_option}. Returns a list of
    ``(action, target, privileges)`` with action one of ``grant``, ``grant_with_option``,
    ``revoke``, ``revoke_grant_option``; revokes only under ``exclusive`` and only on the
    targets named (``exclusive_targets``, default: the desired targets).
    """
    plan = []
    for target in sorted(desired, key=_sort_key):
        want = desired[target]
        have = held.get(target, {})
        plain = [p for p, option in want.items() if not option and p not in have]
        with_option = [p for p, option in want.items() if option and not have.get(p, False)]
        if plain:
            plan.append(('grant', target, plain))
        if with_option:
            plan.append(('grant_with_option', target, with_option))
        if exclusive:
            drop_option = [p for p, option in want.items() if not option and have.get(p) is True]
            if drop_option:
                plan.append(('revoke_grant_option', target, drop_option))
    if exclusive:
        targets = exclusive_targets if exclusive_targets is not None else desired.keys()
        for target in sorted(targets, key=_sort_key):
            want = desired.get(target, {})
            extra = [p for p in held.get(target, {}) if p not in want]
            if extra:
                plan.append(('revoke', target, sorted(extra)))
    return plan


def _sort_key(target):
    return tuple('' if part is None else str(part) for part in target)


def describe_target(target):
    """A target as a DBA reads it: 'table app.public.orders', 'database app', 'global'."""
    scope, database, schema, obj = target
    parts = [p for p in (database, schema, obj) if p is not None]
    if not parts:
        return scope
    return '%s %s' % (scope.replace('_', ' '), '.'.join(parts))


def held_as_dict(held):
    """{target description: sorted privileges (privilege+ when grantable)} for results and diffs."""
    out = {}
    for target in sorted(held, key=_sort_key):
        privs = held[target]
        if privs:
            out[describe_target(target)] = sorted(p + ('+' if option else '') for p, option in privs.items())
    return out
