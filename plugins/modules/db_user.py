#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: dbops.admin contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r'''
module: db_user
short_description: Manage users and roles, their attributes, memberships and privileges
description:
  - Creates, changes and drops one PostgreSQL role or MySQL/MariaDB account (or role), or a batch of them
    with O(users), converged over one connection (one transaction on PostgreSQL for the roles, their
    memberships and database privileges).
  - Passwords are hashed on the client and only the hash is sent, so the plaintext never reaches the server's
    log. PostgreSQL gets a SCRAM-SHA-256 verifier; MariaDB a mysql_native_password hash (the account's other
    authentication methods, such as unix_socket, are kept); MySQL 8 a caching_sha2_password string.
  - An existing MySQL/MariaDB account authenticated only without a password (unix_socket, auth_socket,
    gssapi, pam) is left as it is when a password is given, with a warning that the password is not used.
  - Whether a password changed is decided by checking it against the stored hash (with its salt and
    iterations). Where the stored hash cannot be read, the password is set only when the account is created,
    with a warning that says why.
  - O(privileges) converge exactly with O(privileges_exclusive), memberships with O(member_of_exclusive).
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
  login_host:
    description:
      - Host name or address of the server (see the connection options). In this module it has no alias
        V(host), because O(host) is the account's host.
    type: str
    aliases: []
  login_user:
    description:
      - User to connect as (see the connection options). In this module it has no alias V(login), because
        O(login) says whether the account can log in.
    type: str
    aliases: []
  name:
    description:
      - Name of the role or account. On PostgreSQL V(PUBLIC) means every role, for privileges only (for example
        to revoke CONNECT on a database from PUBLIC).
      - Mutually exclusive with O(users).
    type: str
    aliases: [user, role]
  users:
    description:
      - A batch of accounts, each a dictionary with the same keys as the top-level options (C(name)
        is required), checked and converted the same way. A key left out takes the top-level option's value.
      - The C(password) and C(password_hash) of every entry are secrets like the top-level ones, never logged or
        returned (also not when the task fails on its arguments).
      - The suboptions mean what the top-level options of the same name mean.
    type: list
    elements: dict
    suboptions:
      name:
        description: Name of the role or account.
        type: str
        required: true
        aliases: [user, role]
      state:
        description: Whether the role or account exists (the top-level O(state) when left out).
        type: str
        choices: [present, absent]
      password:
        description: Password of the account (see O(password)).
        type: str
      password_hash:
        description: A pre-computed hash (see O(password_hash)).
        type: str
      update_password:
        description: See O(update_password).
        type: str
        choices: [always, on_create]
      host:
        description: Host part of a MySQL/MariaDB account (see O(host)).
        type: str
      login:
        description: See O(login).
        type: bool
      superuser:
        description: See O(superuser).
        type: bool
      createdb:
        description: See O(createdb).
        type: bool
      createrole:
        description: See O(createrole).
        type: bool
      replication:
        description: See O(replication).
        type: bool
      bypassrls:
        description: See O(bypassrls).
        type: bool
      inherit:
        description: See O(inherit).
        type: bool
      connection_limit:
        description: See O(connection_limit).
        type: int
      expires:
        description: See O(expires).
        type: str
      member_of:
        description: See O(member_of).
        type: list
        elements: str
      member_of_exclusive:
        description: See O(member_of_exclusive) (the top-level value when left out).
        type: bool
      privileges:
        description: See O(privileges).
        type: list
        elements: dict
        suboptions:
          'on':
            description: The scope (see O(privileges[].on)).
            type: str
            required: true
            choices: [global, database, schema, table, all_tables, sequence, function]
          database:
            description: The database (see O(privileges[].database)).
            type: str
          schema:
            description: PostgreSQL schema (see O(privileges[].schema)).
            type: str
          objects:
            description: Names of tables, sequences or functions (see O(privileges[].objects)).
            type: list
            elements: str
          privs:
            description: Privilege names (see O(privileges[].privs)).
            type: list
            elements: str
            required: true
          grant_option:
            description: Whether the privileges are held WITH GRANT OPTION.
            type: bool
            default: false
          wildcard:
            description: Whether O(users[].privileges[].database) is a MySQL/MariaDB pattern (see O(privileges[].wildcard)).
            type: bool
            default: false
      privileges_exclusive:
        description: See O(privileges_exclusive) (the top-level value when left out).
        type: bool
  state:
    description: Whether the role or account exists.
    type: str
    choices: [present, absent]
    default: present
  password:
    description:
      - Password of the account. Hashed on the client; never logged or returned.
      - An empty string removes the password.
    type: str
  password_hash:
    description:
      - A pre-computed hash to store as is, instead of O(password). A SCRAM-SHA-256 verifier (or md5 hash)
        on PostgreSQL; a mysql_native_password hash (C(*) and 40 hex digits, either case) on MySQL and MariaDB,
        an ed25519 hash (43 base64 characters, the C(ed25519) plugin loaded) on MariaDB, a caching_sha2_password
        string on MySQL 8.
      - On MySQL/MariaDB the hash may also be written as a C(0x) hex literal of its bytes, as C(SHOW CREATE USER)
        prints it with C(print_identified_with_as_hex) or C(mysqldump --hex-blob) exports it; it is compared with
        the stored hash after decoding, so a second run is unchanged. A malformed hash fails before anything
        changes.
    type: str
  update_password:
    description:
      - V(always) changes the password when it differs from the stored one; V(on_create) sets it only when the
        account is created.
    type: str
    choices: [always, on_create]
    default: always
  host:
    description:
      - Host part of a MySQL/MariaDB account (V(%) when not given). Not valid on PostgreSQL.
    type: str
  login:
    description:
      - V(false) makes a role that cannot log in (PostgreSQL NOLOGIN role, MySQL/MariaDB C(CREATE ROLE)).
      - Not given, a new PostgreSQL role can log in and an existing one keeps its setting.
    type: bool
  superuser:
    description: PostgreSQL SUPERUSER attribute. Not given, left as it is.
    type: bool
  createdb:
    description: PostgreSQL CREATEDB attribute.
    type: bool
  createrole:
    description: PostgreSQL CREATEROLE attribute.
    type: bool
  replication:
    description: PostgreSQL REPLICATION attribute.
    type: bool
  bypassrls:
    description: PostgreSQL BYPASSRLS attribute.
    type: bool
  inherit:
    description: PostgreSQL INHERIT attribute.
    type: bool
  connection_limit:
    description:
      - Maximum concurrent connections (PostgreSQL CONNECTION LIMIT, MySQL MAX_USER_CONNECTIONS).
      - V(-1) is no limit on every engine (stored as V(0) on MySQL/MariaDB, where V(0) is no limit too).
        On PostgreSQL V(0) allows no connection at all.
      - Below V(-1), or above what the server takes (V(2147483647) on PostgreSQL and MariaDB), fails before
        anything changes.
    type: int
  expires:
    description:
      - PostgreSQL VALID UNTIL, an absolute timestamp (V(2030-12-31), V(2030-12-31 23:59:59),
        V(2030-12-31T23:59:59+02:00); without a time zone, the server's) or V(infinity) (never expires).
      - A relative time (V(now), V(tomorrow), V(+30d), V(in 30 days)) fails before anything changes, because it would
        mean another time on every run. Compute the date in the play instead.
      - Fails on MySQL/MariaDB, whose accounts have no expiry date.
    type: str
  member_of:
    description: Roles the account is a member of (granted when missing).
    type: list
    elements: str
  member_of_exclusive:
    description: Revoke memberships not listed in O(member_of).
    type: bool
    default: false
  privileges:
    description:
      - Privileges the account holds. Each entry names a scope and the privileges on it.
    type: list
    elements: dict
    suboptions:
      'on':
        description:
          - V(global) (MySQL C(*.*)), V(database) (PostgreSQL database, MySQL C(db.*)), V(schema), V(table),
            V(all_tables) (every table of a schema and, on PostgreSQL, the default privileges for future tables
            created by the login user), V(sequence), V(function).
          - A scope the engine does not have fails with a message saying what to use instead.
        type: str
        required: true
        choices: [global, database, schema, table, all_tables, sequence, function]
      database:
        description: The database (PostgreSQL, also the database holding a schema's objects; MySQL the C(db) of C(db.*)).
        type: str
      schema:
        description: PostgreSQL schema (V(public) when not given for tables, sequences and functions).
        type: str
      objects:
        description:
          - Names of tables, sequences or functions. A function is written with its argument types, as in
            C(add(integer, integer)), when its name is overloaded.
        type: list
        elements: str
      privs:
        description:
          - Privilege names, such as V(SELECT), V(CONNECT), V(USAGE) or V(ALL).
          - An empty list with O(privileges_exclusive) revokes everything on the scope.
        type: list
        elements: str
        required: true
      grant_option:
        description: Whether the privileges are held WITH GRANT OPTION.
        type: bool
        default: false
      wildcard:
        description:
          - MySQL/MariaDB, O(privileges[].on=database) only. V(true) makes O(privileges[].database) a pattern,
            written as C(GRANT ... ON `pattern`.*) takes it and C(mysql.db) stores it, where C(%) and C(_) are
            wildcards and C(\_), C(\%) a literal C(_), C(%) (for example V(app\\_%) for every database whose
            name starts with C(app_)). It is compared with the stored pattern exactly, so a second run is unchanged,
            and O(privileges_exclusive) touches that pattern only, never the databases it matches.
          - V(false) (the default) takes the name literally, with C(_) and C(%) escaped, never a wildcard.
          - Fails on PostgreSQL, and on a pattern longer than 64 characters (escapes included).
        type: bool
        default: false
  privileges_exclusive:
    description:
      - Revoke what the account holds on the scopes named in O(privileges) beyond what is listed (least privilege
        as a converged state). The revocations are shown in the diff. Default privileges are touched only for
        tables, and only for the privileges held beyond the list.
    type: bool
    default: false
notes:
  - On PostgreSQL, reading stored verifiers needs superuser (pg_authid). On MySQL/MariaDB, reading accounts needs
    SELECT on the C(mysql) schema.
  - On MariaDB and MySQL 8 a role granted with O(member_of) is active after C(SET ROLE) or C(SET DEFAULT ROLE)
    (MySQL 8 also with C(activate_all_roles_on_login=ON)); until then the account does not use its privileges.
'''

EXAMPLES = r'''
- name: An application account with a password and read access
  dbops.admin.db_user:
    engine: postgresql
    name: app_reader
    password: "{{ vault_app_reader_password }}"
    member_of: [readers]
    privileges:
      - {'on': database, database: app, privs: [CONNECT]}
      - {'on': schema, database: app, schema: public, privs: [USAGE]}
      - {'on': all_tables, database: app, schema: public, privs: [SELECT]}
    privileges_exclusive: true

- name: Nobody but the listed roles may connect to app
  dbops.admin.db_user:
    engine: postgresql
    name: PUBLIC
    privileges:
      - {'on': database, database: app, privs: []}
    privileges_exclusive: true

- name: Hundreds of MariaDB accounts in one task
  dbops.admin.db_user:
    engine: mariadb
    host: '10.0.%'
    users: "{{ app_accounts }}"   # [{name: ..., password: ..., privileges: [...]}, ...]
'''

RETURN = r'''
queries:
  description: Statements executed (or, in check mode, that would be), secrets masked.
  returned: always
  type: list
  elements: str
user:
  description: The converged state of the account (single-account form).
  returned: when O(name) is given
  type: dict
  sample: {name: app, state: present, login: true, member_of: [readers], privileges: {database app: [CONNECT]}}
users:
  description: Per-account results of a batch, each with C(name), C(host), C(changed), C(changes) and the converged state.
  returned: when O(users) is given
  type: list
  elements: dict
'''

import copy  # noqa: E402

from ansible.module_utils.basic import AnsibleModule  # noqa: E402
from ansible_collections.dbops.admin.plugins.module_utils._connection import (  # noqa: E402
    connect_params, connection_argument_spec, run_module)
from ansible_collections.dbops.admin.plugins.module_utils._diff import DifferenceTracker  # noqa: E402
from ansible_collections.dbops.admin.plugins.module_utils._errors import DbError  # noqa: E402
from ansible_collections.dbops.admin.plugins.module_utils._privileges import (  # noqa: E402
    held_as_dict, normalize_privileges, plan_privileges)

USER_OPTIONS = ('name', 'state', 'password', 'password_hash', 'update_password', 'host', 'login', 'superuser',
                'createdb', 'createrole', 'replication', 'bypassrls', 'inherit', 'connection_limit', 'expires',
                'member_of', 'member_of_exclusive', 'privileges', 'privileges_exclusive')
SHOWN = ('login', 'superuser', 'createdb', 'createrole', 'replication', 'bypassrls', 'inherit',
         'connection_limit', 'expires', 'member_of')


def user_specs(params):
    """One dict per account; batch entries take the top-level value for keys they leave out."""
    if params.get('users') is None:
        return [dict((k, params.get(k)) for k in USER_OPTIONS)], False
    specs = []
    for index, entry in enumerate(params['users']):
        if not isinstance(entry, dict) or not entry.get('name'):
            raise DbError('use', 'users[%d]' % index, 'every entry needs a name')
        unknown = sorted(set(entry) - set(USER_OPTIONS))
        if unknown:
            raise DbError('use', 'users[%d] (%s)' % (index, entry['name']), 'unknown keys: %s' % ', '.join(unknown))
        spec = dict((k, params.get(k)) for k in USER_OPTIONS if k != 'name')
        spec.update(entry)
        spec['state'] = spec.get('state') or 'present'
        spec['update_password'] = spec.get('update_password') or 'always'
        if spec['state'] not in ('present', 'absent') or spec['update_password'] not in ('always', 'on_create'):
            raise DbError('use', 'users[%d] (%s)' % (index, entry['name']),
                          'state is present or absent; update_password is always or on_create')
        if spec.get('password') is not None and spec.get('password_hash') is not None:
            raise DbError('use', 'users[%d] (%s)' % (index, entry['name']), 'password and password_hash are exclusive')
        for priv in spec.get('privileges') or []:
            if not isinstance(priv, dict) or 'on' not in priv:
                raise DbError('use', 'users[%d] (%s)' % (index, entry['name']), 'every privilege needs on')
        specs.append(spec)
    return specs, True


def shown_state(engine, spec, current):
    if current is None:
        if engine.name == 'postgresql' and spec['name'] in ('PUBLIC', 'public'):
            # every role, always there (it has no row of its own): only its privileges change
            return {'name': spec['name'], 'state': 'present'}
        return {'name': spec['name'], 'state': 'absent'}
    state = {'name': spec['name'], 'state': 'present'}
    if engine.name == 'mysql':
        state['host'] = current['host']
    for key in SHOWN:
        if key in current:
            state[key] = copy.deepcopy(current[key])
    return state


class UserWork:
    """One account being converged: its spec, before/after state and statements."""

    def __init__(self, engine, spec):
        self.spec = spec
        self.key = engine.user_key(spec)
        self.tracker = DifferenceTracker()
        self.before = None
        self.after = None
        self.desired_privileges = {}


def converge(module, engine):
    specs, batch = user_specs(module.params)
    warnings = []
    work = []
    seen = set()
    for spec in specs:
        engine.check_user_options(spec)
        limit = spec.get('connection_limit')
        if limit is not None and limit > engine.max_connection_limit():
            # the server would refuse it with a syntax error, after check mode had promised the change
            raise DbError('manage', spec['name'], 'connection_limit is at most %d on this server, not %d'
                          % (engine.max_connection_limit(), limit))
        item = UserWork(engine, spec)
        if item.key in seen:
            raise DbError('use', '%s' % spec['name'], 'the account is listed twice')
        seen.add(item.key)
        item.desired_privileges = normalize_privileges(
            spec.get('privileges'), engine.name,
            all_privileges=engine.all_privileges() if engine.name == 'mysql' and spec.get('privileges') else None)
        work.append(item)

    lookup = [w.key for w in work]
    if engine.flavor == 'mariadb':
        # a MariaDB role has no host: an entry without login/host may name an existing role
        lookup += [(w.key[0], '') for w in work if _may_name_role(w.spec)]
    current = engine.get_users(lookup)
    for item in work:
        role_key = (item.key[0], '')
        if engine.flavor == 'mariadb' and item.key not in current and role_key in current \
                and _may_name_role(item.spec):
            item.key = role_key
            item.spec['login'] = False
    created = set(w.spec['name'] for w in work if w.spec['state'] == 'present' and w.spec.get('login') is False)
    if engine.name == 'postgresql':
        created = set(w.spec['name'] for w in work if w.spec['state'] == 'present')
    referenced = set(r for w in work for r in (w.spec.get('member_of') or []))
    known = engine.existing_roles(referenced) | created

    main_statements = []
    drop_statements = []  # PostgreSQL: DROP ROLE runs last (see below)
    for item in work:
        before = current.get(item.key)
        item.before = shown_state(engine, item.spec, before)
        changes, statements = engine.plan_role(item.spec, before, warnings)
        mchanges, mstatements = engine.plan_memberships(item.spec, before, known)
        for name, old, new in changes + mchanges:
            item.tracker.add(name, old, new)
        after = copy.deepcopy(item.before)
        if item.spec['state'] == 'absent':
            after = {'name': item.spec['name'], 'state': 'absent'}
        else:
            after['state'] = 'present'
            if before is None:
                # what the server gives a new account, so check mode predicts the whole state
                after.update(engine.new_user_state(item.spec, item.key))
            for name, old, new in changes + mchanges:
                if name == 'password':
                    # never the secret: set / none / changed, so --diff shows a password change
                    item.before['password'], after['password'] = old, new
                elif name != 'state':
                    after[name] = new
        item.after = after
        if engine.name == 'postgresql' and item.spec['state'] == 'absent':
            drop_statements.extend(statements)
        else:
            main_statements.extend(statements)
        item.member_statements = mstatements

    if engine.name == 'postgresql':
        groups = pg_privileges(module, engine, work)
    else:
        groups = mysql_privileges(engine, work, warnings)

    drops = {}
    if engine.name == 'postgresql':
        dropped = [w.spec['name'] for w in work if w.spec['state'] == 'absent' and current.get(w.key)]
        # read now: a role owning objects fails before anything changes
        drops = engine.privileges_to_drop(dropped)
    # roles first (memberships may name roles of the same batch), then memberships, then privileges
    with engine.transaction():
        engine.execute_all(main_statements, operation='change roles')
        for item in work:
            engine.execute_all(item.member_statements, operation='change memberships of %s' % item.spec['name'])
        for target_engine, statements in groups:
            if target_engine is engine:
                engine.execute_all(statements, operation='change privileges')
    for target_engine, statements in groups:
        if target_engine is not engine and statements:
            with target_engine.transaction():
                target_engine.execute_all(statements, operation='change privileges in database %s'
                                          % target_engine.database)
    for target_engine, _statements in groups:
        if target_engine is not engine:
            target_engine.close()
    if drop_statements:
        # last, once everything else of the batch is done (a failing entry leaves them untouched):
        # privileges held in other databases block DROP ROLE, so they are revoked there first
        for database, statements in sorted(drops.items(), key=lambda kv: kv[0] or ''):
            if database in (None, engine.database):
                continue
            target = _database_engine(module, engine, database)
            try:
                with target.transaction():
                    target.execute_all(statements, operation='revoke the privileges of dropped roles')
            finally:
                target.close()
        with engine.transaction():
            engine.execute_all(drops.get(None, []) + (drops.get(engine.database, []) if engine.database else []),
                               operation='revoke the privileges of dropped roles')
            engine.execute_all(drop_statements, operation='drop roles')

    if not module.check_mode and any(item.tracker.changed for item in work):
        # report what the catalog now says, not what we predicted
        now = engine.get_users([w.key for w in work])
        for item in work:
            if item.spec['state'] == 'present' and item.key in now:
                fresh = shown_state(engine, item.spec, now[item.key])
                for key in ('privileges', 'password'):
                    if key in item.after:
                        fresh[key] = item.after[key]
                item.after = fresh
    results = []
    for item in work:
        entry = {'name': item.spec['name'], 'changed': item.tracker.changed,
                 'changes': dict((d['name'], {'before': d['before'], 'after': d['after']})
                                 for d in item.tracker.differences)}
        if engine.name == 'mysql':
            entry['host'] = item.key[1]
        entry.update(item.after)
        results.append(entry)
    changed = any(item.tracker.changed for item in work)
    result = {'changed': changed}
    for warning in warnings:
        module.warn(warning)
    if batch:
        result['users'] = results
    else:
        result['user'] = results[0]
    if module._diff:
        changed_items = [w for w in work if w.tracker.changed] if batch else work
        if batch:
            result['diff'] = {'before': dict((_label(w), w.before) for w in changed_items),
                              'after': dict((_label(w), w.after) for w in changed_items)}
        else:
            result['diff'] = {'before': work[0].before, 'after': work[0].after}
    return result


def _may_name_role(spec):
    """Whether a MariaDB entry may mean an existing role: no host, no login, nothing only an account has."""
    return all(spec.get(option) is None for option in
               ('host', 'login', 'password', 'password_hash', 'connection_limit'))


def _label(item):
    return item.key[0] if item.key[1] is None else '%s@%s' % item.key


def _apply_plan(held, plan):
    after = dict((t, dict(p)) for t, p in held.items())
    for action, target, privs in plan:
        current = after.setdefault(target, {})
        for priv in privs:
            if action == 'grant':
                current.setdefault(priv, False)
            elif action == 'grant_with_option':
                current[priv] = True
            elif action == 'revoke_grant_option':
                if priv in current:
                    current[priv] = False
            else:
                current.pop(priv, None)
    return after


def _record_privileges(item, held, plan, targets):
    shown_before = held_as_dict(dict((t, held.get(t, {})) for t in targets))
    shown_after = held_as_dict(dict((t, v) for t, v in _apply_plan(dict((t, held.get(t, {})) for t in targets),
                                                                   plan).items()))
    item.tracker.add('privileges', shown_before, shown_after)
    if item.spec['state'] == 'present':
        item.before['privileges'] = shown_before
        item.after['privileges'] = shown_after


def _database_engine(module, engine, database):
    """An engine connected to another database, recording into the same queries list."""
    sub = connect_params(module.params, database=database, check_mode=module.check_mode)
    sub.queries = engine.queries
    sub._secrets = engine._secrets  # pylint: disable=protected-access
    return sub


def pg_privileges(module, engine, work):
    """Read, plan and render privileges, per database; returns [(engine, statements)]."""
    active = [w for w in work if w.spec['state'] == 'present' and w.desired_privileges]
    if not active:
        return []
    roles = set(w.spec['name'] for w in active)
    roles |= set('PUBLIC' for w in active if w.spec['name'] in ('PUBLIC', 'public'))
    by_db = {}
    for item in active:
        for target in item.desired_privileges:
            if target[0] != 'database':
                by_db.setdefault(target[1], []).append(target)
    databases = set(t[1] for w in active for t in w.desired_privileges if t[0] == 'database')
    held, owners = {}, {}
    if databases:
        found_held, found_owners = engine.read_database_privileges(roles, databases)
        missing = sorted(databases - set(t[1] for t in found_owners))
        if missing:
            raise DbError('grant privileges on database', ', '.join(missing), 'database does not exist')
        held.update(found_held)
        owners.update(found_owners)
    engines = {None: engine}
    tables, signatures = {}, {}
    for database in sorted(by_db):
        targets = by_db[database]
        if database == engine.database:
            sub = engine
        else:
            sub = _database_engine(module, engine, database)
        engines[database] = sub
        schemas = set(t[2] for t in targets)
        functions = set((t[2], t[3]) for t in targets if t[0] == 'function')
        d_held, d_owners, d_tables, d_sigs = sub.read_object_privileges(roles, database, schemas, functions)
        held.update(d_held)
        owners.update(d_owners)
        signatures.update(d_sigs)
        for schema, names in d_tables.items():
            tables[(database, schema)] = names
        for target in targets:
            if target[0] in ('schema', 'all_tables') and ('schema', database, target[2], None) not in owners:
                raise DbError('grant privileges on schema', '%s in database %s' % (target[2], database),
                              'schema does not exist')
            if target[0] in ('table', 'sequence') and target not in owners:
                raise DbError('grant privileges on %s' % target[0], '%s.%s in database %s'
                              % (target[2], target[3], database), '%s does not exist' % target[0])
    statements_by_db = {}
    for item in active:
        name = 'PUBLIC' if item.spec['name'] in ('PUBLIC', 'public') else item.spec['name']
        desired = {}
        for target, privs in item.desired_privileges.items():
            if target[0] == 'all_tables':
                for table in sorted(tables.get((target[1], target[2]), ())):
                    expanded = ('table', target[1], target[2], table)
                    desired.setdefault(expanded, {}).update(privs)
                desired.setdefault(('default_tables', target[1], target[2], None), {}).update(privs)
            else:
                desired.setdefault(target, {}).update(privs)
        # the owner of an object holds every privilege on it: nothing to grant or revoke
        desired = dict((t, p) for t, p in desired.items() if owners.get(t) != name)
        mine = dict((t, held.get((name, t), {})) for t in desired)
        plan = plan_privileges(desired, mine, item.spec.get('privileges_exclusive'))
        _record_privileges(item, mine, plan, list(desired))
        for action, target, privs in plan:
            database = None if target[0] == 'database' else target[1]
            statements_by_db.setdefault(database, []).extend(
                engines[database].privilege_statements(action, target, privs, name, signatures))
    return [(engines[db], statements_by_db.get(db, [])) for db in engines]


def mysql_privileges(engine, work, warnings):
    active = [w for w in work if w.spec['state'] == 'present' and w.desired_privileges]
    if not active:
        return []
    targets = set(t for w in active for t in w.desired_privileges)
    missing = engine.missing_objects(targets)
    if missing:
        raise DbError('grant privileges on', ', '.join(missing), 'it does not exist')
    held = engine.read_privileges([w.key for w in active], targets)
    statements = []
    for item in active:
        mine = dict((t, held.get((item.key, t), {})) for t in item.desired_privileges)
        warnings.extend(engine.unmanaged_patterns(item.key, item.desired_privileges, held))
        plan = plan_privileges(item.desired_privileges, mine, item.spec.get('privileges_exclusive'))
        _record_privileges(item, mine, plan, list(item.desired_privileges))
        for action, target, privs in plan:
            statements.append(engine.privilege_statement(action, target, privs, item.key))
    return [(engine, statements)]


def main():
    privilege_spec = dict(
        on=dict(type='str', required=True,
                choices=['global', 'database', 'schema', 'table', 'all_tables', 'sequence', 'function']),
        database=dict(type='str'),
        schema=dict(type='str'),
        objects=dict(type='list', elements='str'),
        privs=dict(type='list', elements='str', required=True),
        grant_option=dict(type='bool', default=False),
        wildcard=dict(type='bool', default=False),
    )
    argument_spec = connection_argument_spec()
    argument_spec.update(
        name=dict(type='str', aliases=['user', 'role']),
        users=dict(type='list', elements='dict'),
        state=dict(type='str', default='present', choices=['present', 'absent']),
        password=dict(type='str', no_log=True),
        password_hash=dict(type='str', no_log=True),
        update_password=dict(type='str', default='always', choices=['always', 'on_create'], no_log=False),
        host=dict(type='str'),
        login=dict(type='bool'),
        superuser=dict(type='bool'),
        createdb=dict(type='bool'),
        createrole=dict(type='bool'),
        replication=dict(type='bool'),
        bypassrls=dict(type='bool'),
        inherit=dict(type='bool'),
        connection_limit=dict(type='int'),
        expires=dict(type='str'),
        member_of=dict(type='list', elements='str'),
        member_of_exclusive=dict(type='bool', default=False),
        privileges=dict(type='list', elements='dict', options=privilege_spec),
        privileges_exclusive=dict(type='bool', default=False),
    )
    # the connection option login_host has the alias host; db_user's host is the account's host
    argument_spec['login_host'] = dict(type='str')
    argument_spec['login_user'] = dict(type='str')
    argument_spec['users']['options'] = batch_entry_spec(argument_spec)
    module = AnsibleModule(
        argument_spec, supports_check_mode=True,
        required_one_of=[('name', 'users')],
        mutually_exclusive=[('name', 'users'), ('password', 'password_hash')],
    )
    if module.params.get('users'):
        module.params['users'] = given_keys(module.params['users'])
    run_module(module, lambda engine: converge(module, engine))


def batch_entry_spec(argument_spec):
    """The argument spec of one ``users`` entry: the top-level options without their defaults.

    Given to AnsibleModule as the suboptions of ``users``, so the entries are checked and converted
    like the top-level options (a templated ``login: 'false'`` is false, ``connection_limit: '5'`` is 5)
    and, above all, their ``password`` and ``password_hash`` are no_log values before anything is logged
    or returned: the invocation log AnsibleModule writes while starting, and an argument error's
    ``invocation``. Without defaults, a key an entry leaves out is None and takes the top-level value.
    """
    spec = dict((k, dict((key, value) for key, value in argument_spec[k].items() if key != 'default'))
                for k in USER_OPTIONS)
    spec['name']['required'] = True
    return spec


def given_keys(entries):
    """The keys each batch entry gives (AnsibleModule sets the ones left out to None)."""
    return [dict((k, v) for k, v in entry.items() if k in USER_OPTIONS and v is not None)
            if isinstance(entry, dict) else entry for entry in entries]


if __name__ == '__main__':
    main()
