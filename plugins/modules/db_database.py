#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: dbops.admin contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r'''
module: db_database
short_description: Manage databases, their owner, encoding, extensions and one-time initial SQL
description:
  - Creates or drops a PostgreSQL or MySQL/MariaDB database and keeps its owner, connection limit, default
    character set and PostgreSQL extensions as asked.
  - O(init_sql) or O(init_sql_file) is applied once, right after the database is created and its O(extensions)
    installed; if the extensions or the script fail, the new database is dropped again, so the next run retries
    from the start.
  - The encoding and locale of an existing PostgreSQL database cannot change; asking for it fails with a message
    instead of pretending.
version_added: 0.1.0
author: dbops.admin maintainers (@dbops-admin)
extends_documentation_fragment:
  - dbops.admin.connection
  - dbops.admin.attributes
attributes:
  idempotent:
    description: A second run with the same arguments reports no change.
    support: full
options:
  name:
    description: Name of the database.
    type: str
    required: true
    aliases: [db]
  state:
    description: Whether the database exists.
    type: str
    choices: [present, absent]
    default: present
  owner:
    description: Owner role (PostgreSQL).
    type: str
  encoding:
    description: Character encoding (PostgreSQL), set at creation only.
    type: str
  lc_collate:
    description: Collation locale (PostgreSQL), set at creation only.
    type: str
  lc_ctype:
    description: Character classification locale (PostgreSQL), set at creation only.
    type: str
  template:
    description: Template database to copy (PostgreSQL), used at creation only.
    type: str
  charset:
    description:
      - Default character set (MySQL/MariaDB). Changing it on an existing database changes the default for new
        tables; existing tables keep theirs.
    type: str
  collation:
    description: Default collation (MySQL/MariaDB).
    type: str
  conn_limit:
    description:
      - Connection limit (PostgreSQL; V(-1) for none).
      - Below V(-1) or above V(2147483647) fails before anything changes.
    type: int
  extensions:
    description:
      - PostgreSQL extensions created in the database when missing, in this order (never dropped).
      - An extension requiring another that is neither installed nor listed before it fails before anything
        changes.
    type: list
    elements: str
  init_sql:
    description: SQL applied once, when the database is created, connected to the new database.
    type: str
  init_sql_file:
    description: A file of SQL applied once, when the database is created.
    type: path
  force:
    description: With O(state=absent), terminate the sessions connected to the database before dropping it.
    type: bool
    default: false
'''

EXAMPLES = r'''
- name: Application database with an owner, an extension and its schema
  dbops.admin.db_database:
    engine: postgresql
    name: app
    owner: app_owner
    encoding: UTF8
    extensions: [pg_trgm]
    init_sql_file: files/app_schema.sql

- name: MariaDB database in utf8mb4
  dbops.admin.db_database:
    engine: mariadb
    name: shop
    charset: utf8mb4
    collation: utf8mb4_unicode_ci

- name: Drop a database even with sessions connected
  dbops.admin.db_database:
    engine: postgresql
    name: scratch
    state: absent
    force: true
'''

RETURN = r'''
queries:
  description: Statements executed (or, in check mode, that would be), secrets masked.
  returned: always
  type: list
  elements: str
database:
  description: The converged state of the database.
  returned: always
  type: dict
  sample: {name: app, state: present, owner: app_owner, encoding: UTF8, extensions: [pg_trgm, plpgsql]}
init_sql_applied:
  description: Whether the initial SQL was applied in this run (or would be, in check mode).
  returned: always
  type: bool
'''

from ansible.module_utils.basic import AnsibleModule  # noqa: E402
from ansible_collections.dbops.admin.plugins.module_utils._connection import (  # noqa: E402
    connect_params, connection_argument_spec, run_module)
from ansible_collections.dbops.admin.plugins.module_utils._diff import DifferenceTracker  # noqa: E402
from ansible_collections.dbops.admin.plugins.module_utils._errors import DbError  # noqa: E402


def read_init_sql(params):
    if params.get('init_sql') is not None:
        return params['init_sql']
    if params.get('init_sql_file'):
        try:
            with open(params['init_sql_file'], encoding='utf-8') as handle:
                return handle.read()
        except (OSError, UnicodeDecodeError) as exc:
            raise DbError('read init_sql_file', params['init_sql_file'], str(exc)) from None
    return None


def _in_database(module, engine, name):
    """An engine connected to database name, recording into the same list of queries."""
    sub = connect_params(module.params, database=name, check_mode=module.check_mode)
    sub.queries = engine.queries
    sub._secrets = engine._secrets  # pylint: disable=protected-access
    return sub


def template_extensions(module, engine):
    """The extensions of the template a new database is copied from (read in check mode, where it is not created).

    A template that takes no connections (template0) cannot be read: it holds what initdb put there, the
    procedural language plpgsql.
    """
    template = module.params.get('template') or 'template1'
    if not engine.template_allows_connections(template):
        return ['plpgsql']
    sub = _in_database(module, engine, template)
    try:
        return sub.installed_extensions()
    finally:
        sub.close()


def database_extensions(module, engine, name, current):
    """The extensions the database has (a new one: its template's), read before anything runs."""
    if current is None:
        return template_extensions(module, engine)
    if engine.database == name:
        return engine.installed_extensions()
    sub = _in_database(module, engine, name)
    try:
        return sub.installed_extensions()
    finally:
        sub.close()


def converge(module, engine):
    params = module.params
    name = params['name']
    engine.check_database_options(params)
    init_sql = read_init_sql(params)
    tracker = DifferenceTracker()
    current = engine.get_database(name)
    if params['state'] == 'present' and engine.name == 'postgresql':
        engine.check_owner(params.get('owner'), current['owner'] if current else None)
        if current is None:
            engine.check_template(params.get('template'))
        missing = engine.missing_extensions(params.get('extensions') or [])
        if missing:
            raise DbError('create extension', ', '.join(missing), 'not available on this server')
    changes, statements = engine.database_statements(params, current)
    if params['state'] == 'present' and engine.name == 'postgresql' and params.get('extensions'):
        # an extension needing one that is neither installed nor listed before it (CREATE EXTENSION runs
        # without CASCADE) fails before anything runs, in check mode too
        engine.check_extension_requirements(list(dict.fromkeys(params['extensions'])),
                                            database_extensions(module, engine, name, current))
    for attribute, before, after in changes:
        tracker.add(attribute, before, after)
    engine.execute_all(statements, operation='%s database %s' % (
        'drop' if params['state'] == 'absent' else ('create' if current is None else 'change'), name))
    created = current is None and params['state'] == 'present'

    extensions_before = extensions_after = None
    init_applied = False
    if params['state'] == 'present' and (params.get('extensions') or (created and init_sql)):
        sub = None
        if not (created and module.check_mode):
            sub = engine if engine.name == 'postgresql' and engine.database == name else \
                _in_database(module, engine, name)
        try:
            try:
                # extensions first: the init_sql of a new database may use their types and functions
                if params.get('extensions'):
                    # a new database starts with its template's extensions (plpgsql at least): check mode
                    # reads them from the template, so it predicts the statements and state of the real run
                    installed = template_extensions(module, engine) if sub is None else sub.installed_extensions()
                    wanted = list(dict.fromkeys(params['extensions']))
                    todo = engine.extension_statements(wanted, installed)
                    # a database this run creates had none before
                    extensions_before = [] if created else sorted(installed)
                    extensions_after = sorted(set(installed) | set(wanted))
                    tracker.add('extensions', extensions_before, extensions_after)
                    if sub is None:
                        engine.queries.extend(todo)
                    else:
                        sub.execute_all(todo, operation='create extensions in database %s' % name)
                if created and init_sql:
                    init_applied = True
                    if sub is None:
                        # check mode: recorded (not run) statement by statement, as the real run sends them
                        engine.run_init_sql(init_sql)
                    else:
                        sub.run_init_sql(init_sql)
            except DbError:
                if created and sub is not None:
                    # a database created by this run is dropped again, so the next run starts over
                    if sub is not engine:
                        sub.close()
                        sub = None
                    engine.execute('DROP DATABASE %s' % engine.quote_ident(name),
                                   operation='drop database %s after setting it up failed' % name)
                raise
        finally:
            if sub is not None and sub is not engine:
                sub.close()
    if init_applied:
        tracker.action('apply init_sql')

    if params['state'] == 'absent':
        after = {'name': name, 'state': 'absent'}
    elif module.check_mode or not tracker.changed:
        after = dict(current or {}, name=name, state='present')
        if current is None:
            # what the server gives the new database, so check mode predicts its whole state
            after.update(engine.new_database_state(params))
        for attribute, _before, value in changes:
            if attribute != 'state':
                after[attribute] = value
    else:
        after = dict(engine.get_database(name) or {}, state='present')
    before = dict(current, state='present') if current else {'name': name, 'state': 'absent'}
    if extensions_before is not None:
        before['extensions'] = extensions_before
        after['extensions'] = extensions_after
    result = {'changed': tracker.changed, 'database': after, 'init_sql_applied': init_applied}
    if module._diff:
        result['diff'] = {'before': before, 'after': after}
    return result


def main():
    argument_spec = connection_argument_spec()
    argument_spec.update(
        name=dict(type='str', required=True, aliases=['db']),
        state=dict(type='str', default='present', choices=['present', 'absent']),
        owner=dict(type='str'),
        encoding=dict(type='str'),
        lc_collate=dict(type='str'),
        lc_ctype=dict(type='str'),
        template=dict(type='str'),
        charset=dict(type='str'),
        collation=dict(type='str'),
        conn_limit=dict(type='int'),
        extensions=dict(type='list', elements='str'),
        init_sql=dict(type='str'),
        init_sql_file=dict(type='path'),
        force=dict(type='bool', default=False),
    )
    module = AnsibleModule(argument_spec, supports_check_mode=True,
                           mutually_exclusive=[('init_sql', 'init_sql_file'), ('encoding', 'charset')])
    run_module(module, lambda engine: converge(module, engine))


if __name__ == '__main__':
    main()
