# -*- coding: utf-8 -*-
# Copyright: dbops.admin contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Private to dbops.admin: Postgres engine, users area (mixed into the PostgresEngine class).

Roles, attributes, passwords (SCRAM verifiers computed here, never the plaintext on the
wire), memberships and privileges. Reads are batched for many roles at once.
"""

from __future__ import annotations

import re

from ansible_collections.dbops.admin.plugins.module_utils._engines._base import Secret
from ansible_collections.dbops.admin.plugins.module_utils._errors import DbError
from ansible_collections.dbops.admin.plugins.module_utils._passwords import (
    SCRAM_DEFAULT_ITERATIONS,
    is_postgres_hash,
    postgres_password_matches,
    scram_sha256_verifier,
)

PUBLIC = 'PUBLIC'
# option -> (pg_authid column, keyword when true, keyword when false)
ROLE_FLAGS = (
    ('login', 'rolcanlogin', 'LOGIN', 'NOLOGIN'),
    ('superuser', 'rolsuper', 'SUPERUSER', 'NOSUPERUSER'),
    ('createdb', 'rolcreatedb', 'CREATEDB', 'NOCREATEDB'),
    ('createrole', 'rolcreaterole', 'CREATEROLE', 'NOCREATEROLE'),
    ('replication', 'rolreplication', 'REPLICATION', 'NOREPLICATION'),
    ('bypassrls', 'rolbypassrls', 'BYPASSRLS', 'NOBYPASSRLS'),
    ('inherit', 'rolinherit', 'INHERIT', 'NOINHERIT'),
)
TABLE_KINDS = ('r', 'v', 'm', 'f', 'p')
MYSQL_ONLY_OPTIONS = ('host',)
EXPIRES_FORMATS = ("expires takes an absolute timestamp, such as '2030-12-31', '2030-12-31 23:59:59' or "
                   "'2030-12-31T23:59:59+02:00' (without a time zone, the server's), or 'infinity' (never expires)")
# words PostgreSQL reads relative to now, and the shorthands people write for an interval
RELATIVE_EXPIRES_RE = re.compile(r'(?i)(\b(now|today|tomorrow|yesterday|ago|in|next|last)\b|^[+-]\s*\d|'
                                 r'\d\s*(d|w|m|y|h|days?|weeks?|months?|years?|hours?|minutes?|mins?)\s*$|interval)')
MAX_NAME_BYTES = 63  # NAMEDATALEN - 1: role, database, schema and table names


def is_public(name):
    return name in ('PUBLIC', 'public')


class PostgresUsers:
    """users methods of the Postgres engine; self is the connected engine."""

    # ---- reading ----------------------------------------------------------------
    def can_read_password_hashes(self):
        """Whether stored verifiers are readable (pg_authid needs superuser)."""
        if not hasattr(self, '_authid_readable'):
            self._authid_readable = bool(self.fetch_value(
                "SELECT has_table_privilege('pg_catalog.pg_authid', 'SELECT')"))
        return self._authid_readable

    def get_users(self, keys):
        """{(name, None): state} for the roles that exist among keys."""
        names = [k[0] for k in keys if not is_public(k[0])]
        if not names:
            return {}
        if self.can_read_password_hashes():
            source, password = 'pg_catalog.pg_authid', 'rolpassword'
        else:
            source, password = 'pg_catalog.pg_roles', 'NULL::text'
        rows = self.fetch_all(
            'SELECT rolname, rolcanlogin, rolsuper, rolcreatedb, rolcreaterole, rolreplication, '
            'rolbypassrls, rolinherit, rolconnlimit, rolvaliduntil::text AS valid_until, '
            '%s AS rolpassword FROM %s WHERE rolname = ANY(%%s)' % (password, source), (names,),
            operation='read roles')
        members = self.fetch_all(
            'SELECT m.rolname AS member, r.rolname AS role FROM pg_catalog.pg_auth_members am '
            'JOIN pg_catalog.pg_roles m ON m.oid = am.member JOIN pg_catalog.pg_roles r ON r.oid = am.roleid '
            'WHERE m.rolname = ANY(%s)', (names,), operation='read role memberships')
        out = {}
        for row in rows:
            state = {'name': row['rolname'], 'connection_limit': row['rolconnlimit'],
                     'expires': row['valid_until'], 'member_of': [],
                     '_password': row['rolpassword']}
            for option, column, _yes, _no in ROLE_FLAGS:
                state[option] = row[column]
            out[(row['rolname'], None)] = state
        for row in members:
            key = (row['member'], None)
            if key in out:
                out[key]['member_of'].append(row['role'])
        for state in out.values():
            state['member_of'].sort()
        return out

    def new_user_state(self, spec, key):
        """The attributes of a role CREATE ROLE makes, before the options given change them (none for
        PUBLIC, which is not created)."""
        if is_public(spec['name']):
            return {}
        state = dict((option, False) for option, _column, _yes, _no in ROLE_FLAGS)
        state.update(inherit=True, connection_limit=-1, expires=None, member_of=[])
        return state

    def existing_roles(self, names):
        names = [n for n in names if not is_public(n)]
        if not names:
            return set()
        rows = self.fetch_all('SELECT rolname FROM pg_catalog.pg_roles WHERE rolname = ANY(%s)', (names,))
        return set(r['rolname'] for r in rows)

    def normalize_expires(self, value):
        """The server's text form of a timestamp, so a re-run compares equal.

        A relative value (``now``, ``tomorrow``, ``+30d``, ``in 30 days``) is refused: it would mean another
        time on every run, so the role would change every time.
        """
        text = str(value).strip()
        if RELATIVE_EXPIRES_RE.search(text):
            raise DbError('use expires', repr(text), 'a relative time is not supported (it would change on every '
                          'run); %s' % EXPIRES_FORMATS)
        cache = self.__dict__.setdefault('_expires_cache', {})
        if text not in cache:
            try:
                cache[text] = self.fetch_value('SELECT %s::timestamptz::text', (text,),
                                               operation='read expires %r as a timestamp' % text)
            except DbError as exc:
                raise DbError('use expires', repr(text), '%s (%s)' % (EXPIRES_FORMATS, exc.detail)) from None
        return cache[text]

    def user_key(self, spec):
        return (spec['name'], None)

    def check_user_options(self, spec):
        names = [('role', spec['name']) if not is_public(spec['name']) else ('role', '')]
        names += [('role', r) for r in spec.get('member_of') or []]
        for priv in spec.get('privileges') or []:
            if isinstance(priv, dict):
                names += [('database', priv.get('database')), ('schema', priv.get('schema'))]
                if priv.get('on') in ('table', 'sequence'):
                    names += [(priv['on'], o) for o in priv.get('objects') or []]
        for what, text in names:
            if isinstance(text, str) and len(text.encode('utf-8')) > MAX_NAME_BYTES:
                raise DbError('manage role', spec['name'], 'the %s name %r is %d bytes; PostgreSQL allows at most %d '
                              '(a longer name would be truncated)' % (what, text, len(text.encode('utf-8')),
                                                                      MAX_NAME_BYTES))
        if spec.get('host') is not None:
            raise DbError('manage role', spec['name'], 'host applies to MySQL/MariaDB accounts only')
        if spec.get('connection_limit') is not None and spec['connection_limit'] < -1:
            raise DbError('manage role', spec['name'], 'connection_limit is -1 (no limit), 0 (no connections) or '
                          'a number of connections, not %d' % spec['connection_limit'])
        if is_public(spec['name']):
            used = [o for o in ('password', 'password_hash', 'login', 'superuser', 'createdb', 'createrole',
                                'replication', 'bypassrls', 'inherit', 'connection_limit', 'expires', 'member_of')
                    if spec.get(o) not in (None, [])]
            if used or spec['state'] == 'absent':
                raise DbError('manage', 'PUBLIC', 'PUBLIC is every role, not a role: only privileges apply '
                              '(not %s)' % (', '.join(used) or 'state: absent'))
            if any(isinstance(p, dict) and p.get('grant_option') for p in spec.get('privileges') or []):
                raise DbError('manage', 'PUBLIC', 'PostgreSQL gives grant options to roles only, not to PUBLIC: '
                              'drop grant_option')

    # ---- role statements ------------------------------------------------------------
    def _password_plan(self, spec, current, warnings):
        """(value to send or None, change description or None) for the role's password."""
        password, password_hash = spec.get('password'), spec.get('password_hash')
        if password is None and password_hash is None:
            return None, None
        name = spec['name']
        if password_hash is not None and not is_postgres_hash(password_hash):
            raise DbError('set password of role', name, 'password_hash must be a SCRAM-SHA-256 verifier '
                          '(SCRAM-SHA-256$<iterations>:<salt>$<StoredKey>:<ServerKey>) or an md5 hash')
        if current is not None and spec.get('update_password') == 'on_create':
            return None, None
        if current is not None:
            if not self.can_read_password_hashes():
                warnings.append('role %s: the stored password cannot be read (pg_authid needs superuser), '
                                'so the password is set only when the role is created' % name)
                return None, None
            stored = current.get('_password')
            if password_hash is not None:
                if stored == password_hash:
                    return None, None
            elif password == '':
                if stored is None:
                    return None, None
            elif stored is not None and postgres_password_matches(password, stored, name):
                return None, None
        if password_hash is not None:
            return password_hash, 'set'
        if password == '':
            return '', 'removed'
        return scram_sha256_verifier(password, iterations=self._scram_iterations()), 'set'

    def _scram_iterations(self):
        if self.version_num >= 160000:
            value = self.fetch_value("SELECT current_setting('scram_iterations', true)")
            if value and str(value).isdigit():
                return int(value)
        return SCRAM_DEFAULT_ITERATIONS

    def plan_role(self, spec, current, warnings):
        """([(attribute, before, after)], [(sql, params)]) bringing one role to spec."""
        name = spec['name']
        if is_public(name):
            return [], []
        role = self.quote_ident(name)
        if spec['state'] == 'absent':
            if current is None:
                return [], []
            return [('state', 'present', 'absent')], [('DROP ROLE %s' % role, None)]
        changes, options, params = [], [], []
        if current is None:
            if name.startswith('pg_') or name == 'none':
                raise DbError('create role', name, 'the name is reserved by PostgreSQL (pg_ names and none); '
                              'choose another')
            changes.append(('state', 'absent', 'present'))
        for option, _column, yes, no in ROLE_FLAGS:
            want = spec.get(option)
            if option == 'login' and want is None and current is None:
                want = True
            if want is None:
                continue
            have = current.get(option) if current else None
            if current is None or bool(have) != bool(want):
                options.append(yes if want else no)
                changes.append((option, have, bool(want)))
        limit = spec.get('connection_limit')
        if limit is not None and (current is None or current['connection_limit'] != limit):
            options.append('CONNECTION LIMIT %d' % int(limit))
            changes.append(('connection_limit', current['connection_limit'] if current else None, limit))
        if spec.get('expires') is not None:
            want = self.normalize_expires(spec['expires'])
            have = current.get('expires') if current else None
            if have != want:
                options.append('VALID UNTIL %s')
                params.append(want)
                changes.append(('expires', have, want))
        value, what = self._password_plan(spec, current, warnings)
        if what == 'removed':
            options.append('PASSWORD NULL')
            changes.append(('password', 'set', 'none'))
        elif what:
            self.add_secret(value)
            # the verifier goes before VALID UNTIL's parameter in the statement text
            options.insert(0, 'PASSWORD %s')
            params.insert(0, Secret(value))
            changes.append(('password', 'set' if current and current.get('_password') else 'none',
                            'changed' if current else 'set'))
        if params:
            role = role.replace('%', '%%')  # the driver formats the statement when it has parameters
        if current is None:
            sql = 'CREATE ROLE %s' % role + (' WITH ' + ' '.join(options) if options else '')
        elif options:
            sql = 'ALTER ROLE %s WITH %s' % (role, ' '.join(options))
        else:
            return changes, []
        return changes, [(sql, params or None)]

    def plan_memberships(self, spec, current, known_roles):
        """([(attribute, before, after)], [(sql, None)]) for member_of / member_of_exclusive."""
        wanted = spec.get('member_of')
        if spec['state'] == 'absent' or is_public(spec['name']) or (wanted is None and not spec.get('member_of_exclusive')):
            return [], []
        wanted = list(dict.fromkeys(wanted or []))
        have = list(current['member_of']) if current else []
        missing = [r for r in wanted if r not in have]
        unknown = [r for r in missing if r not in known_roles]
        if unknown:
            raise DbError('grant role', ', '.join(unknown), 'role does not exist (to %s)' % spec['name'])
        extra = [r for r in have if r not in wanted] if spec.get('member_of_exclusive') else []
        member = self.quote_ident(spec['name'])
        statements = [('GRANT %s TO %s' % (self.quote_ident(r), member), None) for r in missing]
        statements += [('REVOKE %s FROM %s' % (self.quote_ident(r), member), None) for r in extra]
        if not statements:
            return [], []
        after = sorted(set(have) - set(extra) | set(missing))
        return [('member_of', sorted(have), after)], statements

    def privileges_to_drop(self, names):
        """{database or None: [DROP OWNED BY ...]} revoking what roles about to be dropped hold.

        DROP OWNED BY only revokes when the role owns nothing, which is checked first: a role
        that owns objects is refused with a clear message instead of losing them.
        """
        if not names:
            return {}
        rows = self.fetch_all(
            "SELECT r.rolname, d.datname, s.deptype, s.dbid = 0 AS shared FROM pg_catalog.pg_shdepend s "
            "JOIN pg_catalog.pg_roles r ON r.oid = s.refobjid LEFT JOIN pg_catalog.pg_database d ON d.oid = s.dbid "
            "WHERE s.refclassid = 'pg_catalog.pg_authid'::regclass AND r.rolname = ANY(%s)",
            (list(names),), operation='read what the roles own and hold')
        owners = sorted(set('%s (in %s)' % (r['rolname'], r['datname'] or 'the cluster')
                            for r in rows if r['deptype'] == 'o'))
        if owners:
            raise DbError('drop role', ', '.join(owners), 'it owns objects: reassign them first '
                          '(REASSIGN OWNED BY ... TO ...) or drop them')
        out = {}
        for row in rows:
            if row['deptype'] in ('a', 'i'):
                database = None if row['shared'] else row['datname']
                stmt = 'DROP OWNED BY %s' % self.quote_ident(row['rolname'])
                if stmt not in out.setdefault(database, []):
                    out[database].append(stmt)
        return out

    # ---- privileges ----------------------------------------------------------------
    def _acl_rows(self, sql, params, roles):
        """Rows of an aclexplode query restricted to the grantees we manage."""
        return [r for r in self.fetch_all(sql, params, operation='read privileges') if r['grantee'] in roles]

    def read_database_privileges(self, roles, databases):
        """held {(role, target): {priv: grantable}}, owners {target: owner}, existing databases."""
        rows = self.fetch_all(
            "SELECT d.datname, pg_catalog.pg_get_userbyid(d.datdba) AS owner, "
            "CASE WHEN a.grantee = 0 THEN 'PUBLIC' ELSE pg_catalog.pg_get_userbyid(a.grantee) END AS grantee, "
            "pg_catalog.pg_get_userbyid(a.grantor) AS grantor, a.privilege_type, a.is_grantable "
            "FROM pg_catalog.pg_database d, "
            "LATERAL aclexplode(coalesce(d.datacl, acldefault('d', d.datdba))) a WHERE d.datname = ANY(%s)",
            (list(databases),), operation='read database privileges')
        held, owners = {}, {}
        for row in rows:
            target = ('database', row['datname'], None, None)
            owners[target] = row['owner']
            if row['grantee'] in roles and row['grantee'] != row['owner']:
                held.setdefault((row['grantee'], target), {})[row['privilege_type']] = row['is_grantable']
                self._note_grantor(target, row)
        return held, owners

    def read_object_privileges(self, roles, database, schemas, functions):
        """Privileges held in this (connected) database on schemas, relations, functions, defaults.

        Returns held, owners, the existing tables per schema, and function signatures
        ``{(schema, written name): rendered signature}``.
        """
        schemas = sorted(schemas)
        held, owners, tables = {}, {}, {}
        grantee = ("CASE WHEN a.grantee = 0 THEN 'PUBLIC' ELSE pg_catalog.pg_get_userbyid(a.grantee) END")

        def add(target, row):
            owners[target] = row.get('owner')
            if row.get('grantee') in roles and row['grantee'] != row.get('owner'):
                held.setdefault((row['grantee'], target), {})[row['privilege_type']] = row['is_grantable']
                self._note_grantor(target, row)

        for row in self.fetch_all(
                "SELECT n.nspname, pg_catalog.pg_get_userbyid(n.nspowner) AS owner, %s AS grantee, "
                "pg_catalog.pg_get_userbyid(a.grantor) AS grantor, a.privilege_type, a.is_grantable "
                "FROM pg_catalog.pg_namespace n, "
                "LATERAL aclexplode(coalesce(n.nspacl, acldefault('n', n.nspowner))) a "
                "WHERE n.nspname = ANY(%%s)" % grantee, (schemas,), operation='read schema privileges'):
            add(('schema', database, row['nspname'], None), row)
        for row in self.fetch_all(
                "SELECT n.nspname, c.relname, c.relkind, pg_catalog.pg_get_userbyid(c.relowner) AS owner, "
                "%s AS grantee, pg_catalog.pg_get_userbyid(a.grantor) AS grantor, a.privilege_type, "
                "a.is_grantable FROM pg_catalog.pg_class c JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace, "
                "LATERAL aclexplode(coalesce(c.relacl, acldefault("
                "CASE WHEN c.relkind = 'S' THEN 's' ELSE 'r' END::\"char\", c.relowner))) a "
                "WHERE n.nspname = ANY(%%s) AND c.relkind IN ('r', 'v', 'm', 'f', 'p', 'S')" % grantee,
                (schemas,), operation='read table privileges'):
            kind = 'sequence' if row['relkind'] == 'S' else 'table'
            if kind == 'table':
                tables.setdefault(row['nspname'], set()).add(row['relname'])
            add((kind, database, row['nspname'], row['relname']), row)
        for row in self.fetch_all(
                "SELECT n.nspname, %s AS grantee, a.privilege_type, a.is_grantable "
                "FROM pg_catalog.pg_default_acl d JOIN pg_catalog.pg_namespace n ON n.oid = d.defaclnamespace, "
                "LATERAL aclexplode(d.defaclacl) a WHERE d.defaclobjtype = 'r' AND n.nspname = ANY(%%s) "
                "AND d.defaclrole = (SELECT oid FROM pg_catalog.pg_roles WHERE rolname = current_user)" % grantee,
                (schemas,), operation='read default privileges'):
            add(('default_tables', database, row['nspname'], None), row)
        signatures = {}
        for schema, written in functions:
            oid = self._resolve_function(database, schema, written)
            row = self.fetch_one(
                "SELECT pg_catalog.pg_get_userbyid(p.proowner) AS owner, p.proname, p.prokind, "
                "pg_catalog.pg_get_function_identity_arguments(p.oid) AS args FROM pg_catalog.pg_proc p "
                "WHERE p.oid = %s", (oid,))
            signatures[(schema, written)] = '%s(%s)' % (self.quote_qualified(schema, row['proname']), row['args'])
            if row['prokind'] == 'p':
                # GRANT ... ON FUNCTION refuses a procedure ("is not a function")
                self.__dict__.setdefault('_procedures', set()).add((schema, written))
            target = ('function', database, schema, written)
            owners[target] = row['owner']
            for acl in self.fetch_all(
                    "SELECT %s AS grantee, pg_catalog.pg_get_userbyid(a.grantor) AS grantor, a.privilege_type, "
                    "a.is_grantable FROM pg_catalog.pg_proc p, "
                    "LATERAL aclexplode(coalesce(p.proacl, acldefault('f', p.proowner))) a WHERE p.oid = %%s"
                    % grantee, (oid,), operation='read function privileges'):
                acl['owner'] = row['owner']
                add(target, acl)
        return held, owners, tables, signatures

    def _note_grantor(self, target, row):
        """Remember who granted a privilege held, and who a plain REVOKE on the target revokes as."""
        if target[0] == 'default_tables':
            return  # the login user's own default privileges: its ALTER DEFAULT PRIVILEGES revokes them
        grantors = self.__dict__.setdefault('_grantors', {})
        grantors.setdefault((row['grantee'], target), {}).setdefault(row['privilege_type'], set()).add(row['grantor'])
        if self.is_superuser:
            revoker = row.get('owner')  # a superuser grants and revokes as the owner of the object
        else:
            if not hasattr(self, '_current_user'):
                self._current_user = self.fetch_value('SELECT current_user')
            revoker = self._current_user
        self.__dict__.setdefault('_revokers', {})[target] = revoker

    def privilege_statements(self, action, target, privs, role, signatures=None):
        """privilege_statement(); a revoke is also run as each other role that granted the privileges.

        A REVOKE takes back only what its grantor granted (a superuser revokes as the owner): a
        privilege another role passed on with its grant option stays until revoked as that role.
        """
        sql = self.privilege_statement(action, target, privs, role, signatures)
        if action not in ('revoke', 'revoke_grant_option'):
            return [sql]
        granted = self.__dict__.get('_grantors', {}).get((PUBLIC if is_public(role) else role, target), {})
        revoker = self.__dict__.get('_revokers', {}).get(target)
        plain, others = False, {}
        for priv in privs:
            for grantor in sorted(granted.get(priv) or [revoker]):
                if grantor == revoker:
                    plain = True
                else:
                    others.setdefault(grantor, []).append(priv)
        statements = [sql] if plain or not others else []
        for grantor in sorted(others):
            statements += ['SET ROLE %s' % self.quote_ident(grantor),
                           self.privilege_statement(action, target, others[grantor], role, signatures),
                           'RESET ROLE']
        return statements

    def _resolve_function(self, database, schema, written):
        what = 'function %s.%s in database %s' % (schema, written, database)
        if '(' in written:
            name, _sep, args = written.partition('(')
            text = '%s(%s' % (self.quote_qualified(schema, name.strip()), args)
            try:
                oid = self.fetch_value('SELECT to_regprocedure(%s)::oid', (text,), operation='find ' + what)
            except DbError:
                oid = None
            if oid is None:
                raise DbError('find', what, 'no such function (give the argument types as in f(integer, text))')
            return oid
        rows = self.fetch_all(
            'SELECT p.oid FROM pg_catalog.pg_proc p JOIN pg_catalog.pg_namespace n ON n.oid = p.pronamespace '
            'WHERE n.nspname = %s AND p.proname = %s', (schema, written), operation='find ' + what)
        if len(rows) != 1:
            raise DbError('find', what, 'no such function' if not rows else
                          'the name is overloaded: give the argument types, as in %s(integer)' % written)
        return rows[0]['oid']

    def privilege_statement(self, action, target, privs, role, signatures=None):
        """One GRANT / REVOKE / ALTER DEFAULT PRIVILEGES statement (privileges are validated keywords)."""
        scope, database, schema, obj = target
        grantee = PUBLIC if is_public(role) else self.quote_ident(role)
        plist = ', '.join(privs)
        if scope == 'database':
            on = 'DATABASE %s' % self.quote_ident(database)
        elif scope == 'schema':
            on = 'SCHEMA %s' % self.quote_ident(schema)
        elif scope in ('table', 'sequence'):
            on = '%s %s' % (scope.upper(), self.quote_qualified(schema, obj))
        elif scope == 'function':
            kind = 'PROCEDURE' if (schema, obj) in self.__dict__.get('_procedures', ()) else 'FUNCTION'
            on = '%s %s' % (kind, signatures[(schema, obj)])
        elif scope == 'default_tables':
            prefix = 'ALTER DEFAULT PRIVILEGES IN SCHEMA %s ' % self.quote_ident(schema)
            return prefix + self._grant_words(action, plist, 'TABLES', grantee)
        else:
            raise DbError('grant on', scope, 'not a PostgreSQL object kind')
        return self._grant_words(action, plist, on, grantee)

    @staticmethod
    def _grant_words(action, plist, on, grantee):
        if action == 'grant':
            return 'GRANT %s ON %s TO %s' % (plist, on, grantee)
        if action == 'grant_with_option':
            return 'GRANT %s ON %s TO %s WITH GRANT OPTION' % (plist, on, grantee)
        if action == 'revoke_grant_option':
            return 'REVOKE GRANT OPTION FOR %s ON %s FROM %s' % (plist, on, grantee)
        return 'REVOKE %s ON %s FROM %s' % (plist, on, grantee)
