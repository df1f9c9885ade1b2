# -*- coding: utf-8 -*-
# Copyright: dbops.admin contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Private to dbops.admin: Mysql engine, users area (mixed into the MysqlEngine class).

Accounts (``'user'@'host'``) and roles on MariaDB and MySQL 8. Passwords are hashed here
(mysql_native_password, caching_sha2_password with the account's own salt) and sent as
hashes; the other authentication methods of a MariaDB account are kept.
"""

from __future__ import annotations

import json
import re

from ansible_collections.dbops.admin.plugins.module_utils._engines._base import Secret
from ansible_collections.dbops.admin.plugins.module_utils._errors import DbError
from ansible_collections.dbops.admin.plugins.module_utils._passwords import (
    caching_sha2_hash,
    caching_sha2_matches,
    decode_hex_hash,
    is_mariadb_ed25519_hash,
    is_mysql_native_hash,
    mysql_native_hash,
    parse_caching_sha2,
)
from ansible_collections.dbops.admin.plugins.module_utils._privileges import (
    GRANT_OPTION,
    MYSQL_DATABASE_ALL,
    MYSQL_DATABASE_CHARS,
    MYSQL_TABLE_ALL,
)

NATIVE = 'mysql_native_password'
ED25519 = 'ed25519'
CACHING_SHA2 = 'caching_sha2_password'
PLUGIN_RE = re.compile(r'^[a-z0-9_]+$')
# authentication plugins that take no stored password (the OS user, Kerberos, PAM decide)
PASSWORDLESS_PLUGINS = ('unix_socket', 'auth_socket', 'named_pipe', 'gssapi', 'pam', 'auth_pam',
                        'authentication_pam', 'auth_gssapi')
MAX_HOST_CHARS = 255  # MariaDB 10.11 and MySQL 8.0.17+
MAX_OBJECT_CHARS = 64  # database and table names
POSTGRES_ONLY_OPTIONS = ('superuser', 'createdb', 'createrole', 'replication', 'bypassrls', 'inherit', 'expires')


def escape_database_pattern(name):
    """A database name as a literal in a db-level GRANT, where _ and % are wildcards."""
    return name.replace('\\', '\\\\').replace('_', '\\_').replace('%', '\\%')


def unescape_database_pattern(text):
    return re.sub(r'\\(.)', r'\1', text)


def _passwordless_warning(label, plugins, mariadb=True):
    how = 'drop the account and create it with a password to replace it'
    if mariadb:
        how = ('run ALTER USER ... IDENTIFIED VIA %s OR mysql_native_password USING PASSWORD(...) to allow password '
               'logins too, or %s' % (' OR '.join(plugins), how))
    return ('account %s authenticates with %s, which uses no password: the password given is not used and the '
            'account is left as it is (%s)' % (label, ' or '.join(plugins), how))


def grantee_string(user, host):
    """The GRANTEE column of information_schema privilege tables (not escaped by the server)."""
    return "'%s'@'%s'" % (user, host)


def mariadb_auth_methods(priv):
    """[(plugin, authentication_string)] of a mysql.global_priv Priv document, in order."""
    doc = json.loads(priv) if isinstance(priv, str) else (priv or {})
    top = (doc.get('plugin') or NATIVE, doc.get('authentication_string') or '')
    if 'auth_or' not in doc:
        return [top]
    methods = []
    for entry in doc['auth_or']:
        if not entry:
            methods.append(top)
        else:
            methods.append((entry.get('plugin') or NATIVE, entry.get('authentication_string') or ''))
    return methods


class MysqlUsers:
    """users methods of the Mysql engine; self is the connected engine."""

    # ---- naming --------------------------------------------------------------------
    def user_key(self, spec):
        if spec.get('login') is False and self.flavor == 'mariadb':
            return (spec['name'], '')
        # the server stores host names in lower case ('DB1.example.com', '2001:DB8::1' are found lowered)
        return (spec['name'], spec.get('host').lower() if spec.get('host') is not None else '%')

    def user_name_limit(self):
        """(characters, server) a user or role name may have: MariaDB 128 (10.11), MySQL 8 32."""
        if self.flavor == 'mariadb':
            return 128, 'MariaDB'
        return 32, 'MySQL 8'

    def check_account_name(self, name, host=None, what='user'):
        """Refuse a user/role name or host the server would refuse, saying the limit and the engine."""
        limit, server = self.user_name_limit()
        if not isinstance(name, str) or name == '':
            raise DbError('manage %s' % what, repr(name), 'a %s name must be a non-empty string' % what)
        if len(name) > limit:
            raise DbError('manage %s' % what, name, 'the %s name is %d characters; %s allows at most %d'
                          % (what, len(name), server, limit))
        if host is not None and len(host) > MAX_HOST_CHARS:
            raise DbError('manage %s' % what, '%s@%s' % (name, host), 'the host is %d characters; %s allows at most %d'
                          % (len(host), server, MAX_HOST_CHARS))

    def quote_account_part(self, text):
        """A user, role or host name quoted (their limits are not the 64 characters of other identifiers)."""
        if '\x00' in text:
            raise DbError('use identifier', repr(text), 'an account name cannot contain a NUL character')
        if text == '':
            return "''"
        return '`' + text.replace('`', '``') + '`'

    def account(self, key):
        name, host = key
        self.check_account_name(name, host or None, 'role' if host == '' else 'user')
        if host == '':
            return self.quote_account_part(name)
        return '%s@%s' % (self.quote_account_part(name), self.quote_account_part(host))

    def check_user_options(self, spec):
        used = [o for o in POSTGRES_ONLY_OPTIONS if spec.get(o) is not None and o != 'expires']
        problems = []
        if used:
            problems.append('%s: PostgreSQL role attributes; on MySQL/MariaDB grant privileges instead (on: global)'
                            % ', '.join(used))
        if spec.get('expires') is not None:
            problems.append('expires: PostgreSQL VALID UNTIL; a MySQL/MariaDB account has no expiry date (its '
                            'password expiry, PASSWORD EXPIRE, is not managed by this module): leave expires out')
        if problems:
            raise DbError('manage account', spec['name'], '; '.join(problems))
        if spec['name'] in ('PUBLIC', 'public'):
            raise DbError('manage', 'PUBLIC', 'MySQL/MariaDB have no PUBLIC pseudo-role')
        if spec.get('login') is False and spec.get('host') is not None and self.flavor == 'mariadb':
            raise DbError('manage role', spec['name'], 'MariaDB roles have no host')
        if spec.get('login') is False and (spec.get('password') is not None or spec.get('password_hash') is not None):
            raise DbError('manage role', spec['name'], 'a role (login: false) has no password')
        self.check_account_name(spec['name'], spec.get('host'), 'role' if spec.get('login') is False else 'user')
        if spec.get('host') is not None:
            self.quote_account_part(spec['host'])
        for role in spec.get('member_of') or []:
            self.check_account_name(role, None, 'role')
        for index, priv in enumerate(spec.get('privileges') or []):
            if not isinstance(priv, dict):
                continue
            names = [('database', priv.get('database'))] + [('table', o) for o in priv.get('objects') or []]
            for what, text in names:
                if isinstance(text, str) and len(text) > MAX_OBJECT_CHARS:
                    raise DbError('use', 'privileges[%d] (on: %s)' % (index, priv.get('on')),
                                  'the %s name %r is %d characters; %s allows at most %d'
                                  % (what, text, len(text), self.user_name_limit()[1], MAX_OBJECT_CHARS))
        if spec.get('connection_limit') is not None and spec['connection_limit'] < -1:
            raise DbError('manage account', spec['name'], 'connection_limit is 0 (or -1) for no limit or a number of '
                          'connections, not %d' % spec['connection_limit'])

    # ---- reading --------------------------------------------------------------------
    def get_users(self, keys):
        names = sorted(set(k[0] for k in keys))
        if not names:
            return {}
        out = {}
        if self.flavor == 'mariadb':
            rows = self.fetch_all('SELECT User, Host, Priv FROM mysql.global_priv WHERE User IN %s', (names,),
                                  operation='read accounts (SELECT on mysql.global_priv is needed)')
            for row in rows:
                doc = json.loads(row['Priv'] or '{}')
                is_role = bool(doc.get('is_role'))
                out[(row['User'], row['Host'])] = {
                    'name': row['User'], 'host': row['Host'], 'login': not is_role,
                    'connection_limit': int(doc.get('max_user_connections', 0) or 0),
                    'member_of': [], '_auth': [] if is_role else mariadb_auth_methods(doc)}
            members = self.fetch_all('SELECT User, Host, Role FROM mysql.roles_mapping WHERE User IN %s',
                                     (names,), operation='read role memberships')
        else:
            rows = self.fetch_all(
                'SELECT User, Host, plugin, authentication_string, max_user_connections, account_locked '
                'FROM mysql.user WHERE User IN %s', (names,),
                operation='read accounts (SELECT on mysql.user is needed)')
            for row in rows:
                auth = row['authentication_string'] or ''
                if isinstance(auth, (bytes, bytearray)):
                    auth = bytes(auth).decode('latin-1')
                is_role = row['account_locked'] == 'Y' and auth == ''
                out[(row['User'], row['Host'])] = {
                    'name': row['User'], 'host': row['Host'], 'login': not is_role,
                    'connection_limit': int(row['max_user_connections'] or 0),
                    'member_of': [], '_auth': [(row['plugin'], auth)]}
            members = self.fetch_all(
                'SELECT TO_USER AS User, TO_HOST AS Host, FROM_USER AS Role FROM mysql.role_edges '
                'WHERE TO_USER IN %s', (names,), operation='read role memberships')
        for row in members:
            key = (row['User'], row['Host'])
            if key in out:
                out[key]['member_of'].append(row['Role'])
        for state in out.values():
            state['member_of'].sort()
        return dict((k, v) for k, v in out.items() if k in set(keys))

    def new_user_state(self, spec, key):
        """The state of an account or role CREATE USER / CREATE ROLE makes, before the options given change it."""
        return {'host': key[1], 'login': spec.get('login') is not False, 'connection_limit': 0, 'member_of': []}

    def existing_roles(self, names):
        names = sorted(set(names))
        if not names:
            return set()
        if self.flavor == 'mariadb':
            rows = self.fetch_all("SELECT User FROM mysql.user WHERE is_role = 'Y' AND User IN %s", (names,))
        else:
            rows = self.fetch_all("SELECT User FROM mysql.user WHERE Host = '%%' AND User IN %s", (names,))
        return set(r['User'] for r in rows)

    def _role_ref(self, role):
        if self.flavor == 'mariadb':
            return self.quote_account_part(role)
        return '%s@%s' % (self.quote_account_part(role), self.quote_account_part('%'))

    # ---- passwords -------------------------------------------------------------------
    def _new_auth_clause(self, spec, current, warnings):
        """(clause with %s placeholders, params, what) or (None, None, None) when unchanged."""
        password, password_hash = spec.get('password'), spec.get('password_hash')
        if password is None and password_hash is None:
            return None, None, None
        label = '%s@%s' % (spec['name'], self.user_key(spec)[1])
        if password_hash is not None:
            try:
                password_hash = decode_hex_hash(password_hash)
            except ValueError as exc:
                raise DbError('set password of', label, str(exc)) from None
            self.add_secret(password_hash)
        if password_hash is not None and is_mysql_native_hash(password_hash.upper()):
            # the server's own hashes are upper case; one written in lower case is the same hash
            password_hash = password_hash.upper()
        if password_hash is not None and self.flavor == 'mariadb':
            if parse_caching_sha2(password_hash) is not None:
                raise DbError('set password of', label, 'MariaDB has no caching_sha2_password')
            if not (is_mysql_native_hash(password_hash) or is_mariadb_ed25519_hash(password_hash)):
                raise DbError('set password of', label, "password_hash must be a mysql_native_password hash "
                              "('*' and 40 hex digits) or an ed25519 one (43 base64 characters), as text or as "
                              "a 0x hex literal")
        elif password_hash is not None and not (is_mysql_native_hash(password_hash)
                                                or parse_caching_sha2(password_hash) is not None):
            raise DbError('set password of', label, "password_hash must be a mysql_native_password hash "
                          "('*' and 40 hex digits) or a caching_sha2_password string ($A$005$... of 70 bytes), as "
                          "text or as a 0x hex literal (as SHOW CREATE USER prints it with "
                          "print_identified_with_as_hex)")
        if current is not None and spec.get('update_password') == 'on_create':
            return None, None, None
        methods = list(current['_auth']) if current else []
        if self.flavor == 'mariadb':
            return self._mariadb_auth_clause(label, password, password_hash, methods, current, warnings)
        return self._mysql8_auth_clause(label, password, password_hash, methods, current, warnings)

    def _mariadb_auth_clause(self, label, password, password_hash, methods, current, warnings):
        new_hash = password_hash if password_hash is not None else (
            mysql_native_hash(password) if password else '')
        use = ED25519 if password_hash is not None and is_mariadb_ed25519_hash(password_hash) else NATIVE
        if use == ED25519:
            self._require_plugin(label, ED25519, 'auth_ed25519')
        native = [m for m in methods if m[0] == NATIVE]
        replaced = (NATIVE,)
        if current is not None and password_hash is not None:
            # a stored hash is compared as it is: the same plugin with the same hash is unchanged, any other
            # password method (mysql_native_password, ed25519) is replaced by the one given
            if any(m == (use, new_hash) for m in methods):
                return None, None, None
            replaced = (NATIVE, ED25519)
            native = [m for m in methods if m[0] in replaced]
        elif current is not None:
            if native and native[0][1] == new_hash:
                return None, None, None
        if current is not None:
            unverifiable = [m[0] for m in methods if m[0] not in (NATIVE,) + PASSWORDLESS_PLUGINS]
            if not native and unverifiable:
                warnings.append('account %s: its password uses %s, which cannot be compared here, so the '
                                'password is set only when the account is created' % (label, unverifiable[0]))
                return None, None, None
            if not native and not new_hash:
                return None, None, None  # no password to remove (only unix_socket and the like)
            if not native:
                # adding a password method would let the account log in over TCP with a password: never silently
                warnings.append(_passwordless_warning(label, [m[0] for m in methods]))
                return None, None, None
        # the password methods are replaced; the others (unix_socket, ...) kept
        kept = [m for m in methods if m[0] not in replaced] if current is not None else []
        parts, params = [], []
        for plugin, auth in kept:
            if not PLUGIN_RE.match(plugin):
                raise DbError('keep authentication of', label, 'unexpected plugin name %r' % plugin)
            if auth:
                parts.append('%s USING %%s' % plugin)
                params.append(Secret(auth))
                self.add_secret(auth)
            else:
                parts.append(plugin)
        if new_hash:
            parts.append('%s USING %%s' % use)
            params.append(Secret(new_hash))
            self.add_secret(new_hash)
        elif not parts:
            parts.append('%s USING %%s' % NATIVE)
            params.append('')
        return 'IDENTIFIED VIA ' + ' OR '.join(parts), params, 'set'

    def _require_plugin(self, label, plugin, soname):
        """Fail before anything changes when an authentication plugin is not loaded."""
        status = self.fetch_value('SELECT PLUGIN_STATUS FROM information_schema.PLUGINS WHERE PLUGIN_NAME = %s',
                                  (plugin,), operation='read the authentication plugins')
        if str(status or '').upper() != 'ACTIVE':
            raise DbError('set password of', label, 'password_hash is an %s hash and the %s plugin is not loaded on '
                          "this server: INSTALL SONAME '%s' first (or plugin_load_add = %s in the server's options)"
                          % (plugin, plugin, soname, soname))

    def native_password_loaded(self):
        """Whether this MySQL server can authenticate with mysql_native_password: built in up to 8.3, not
        loaded by default in 8.4 (--mysql-native-password=ON loads it), removed in 9.0."""
        if self.version_num < 80400:
            return True
        if not hasattr(self, '_native_password_loaded'):
            try:
                status = self.fetch_value("SELECT PLUGIN_STATUS FROM information_schema.PLUGINS "
                                          "WHERE PLUGIN_NAME = 'mysql_native_password'")
                self._native_password_loaded = str(status or '').upper() == 'ACTIVE'
            except DbError:
                self._native_password_loaded = True  # cannot tell: let the server decide
        return self._native_password_loaded

    def _mysql8_auth_clause(self, label, password, password_hash, methods, current, warnings):
        plugin, stored = methods[0] if methods else (None, '')
        if current is not None and plugin in PASSWORDLESS_PLUGINS:
            # replacing auth_socket by a password plugin would end the account's socket logins: never silently
            if password or password_hash is not None:
                warnings.append(_passwordless_warning(label, [plugin], mariadb=False))
            return None, None, None
        if password_hash is not None and is_mysql_native_hash(password_hash) and not self.native_password_loaded():
            raise DbError('set password of', label, 'password_hash is a mysql_native_password hash and this server '
                          'does not load mysql_native_password (MySQL 8.4 and later by default): give password or '
                          'a caching_sha2_password string')
        if password is not None and current is not None and plugin == NATIVE and not self.native_password_loaded():
            # an account left on mysql_native_password by an upgrade cannot log in: give it a working password
            warnings.append('account %s used mysql_native_password, which this server does not load: its password '
                            'is set as a caching_sha2_password one' % label)
            value = caching_sha2_hash(password).decode('latin-1') if password else ''
            self.add_secret(value)
            return 'IDENTIFIED WITH %s AS %%s' % CACHING_SHA2, [Secret(value)], 'set'
        if password_hash is not None:
            use = NATIVE if is_mysql_native_hash(password_hash) else CACHING_SHA2
            if current is not None and plugin == use and stored == password_hash:
                return None, None, None
            value = password_hash
        elif current is not None and plugin == CACHING_SHA2:
            matches = caching_sha2_matches(password, stored) if stored else (password == '')
            if matches:
                return None, None, None
            if matches is None:
                warnings.append('account %s: its caching_sha2_password string cannot be read, so the password '
                                'is set only when the account is created' % label)
                return None, None, None
            use, value = CACHING_SHA2, caching_sha2_hash(password).decode('latin-1') if password else ''
        elif current is not None and plugin == NATIVE:
            value = mysql_native_hash(password) if password else ''
            if stored == value:
                return None, None, None
            use = NATIVE
        elif current is not None and plugin is not None:
            warnings.append('account %s: its password uses %s, which cannot be compared here, so the password '
                            'is set only when the account is created' % (label, plugin))
            return None, None, None
        else:
            use, value = CACHING_SHA2, caching_sha2_hash(password).decode('latin-1') if password else ''
        self.add_secret(value)
        return 'IDENTIFIED WITH %s AS %%s' % use, [Secret(value)], 'set'

    # ---- statements -------------------------------------------------------------------
    def plan_role(self, spec, current, warnings):
        key = self.user_key(spec)
        account = self.account(key)
        role = spec.get('login') is False
        if spec['state'] == 'absent':
            if current is None:
                return [], []
            what = 'ROLE' if not current['login'] else 'USER'
            target = self.quote_account_part(key[0]) if (what == 'ROLE' and self.flavor == 'mariadb') else account
            return [('state', 'present', 'absent')], [('DROP %s %s' % (what, target), None)]
        if current is not None and spec.get('login') is not None and bool(current['login']) != bool(spec['login']):
            raise DbError('change', '%s@%s' % key, 'an account cannot become a role or a role an account: '
                          'drop it first (state: absent)')
        changes = []
        clause, params, what = (None, None, None) if role else self._new_auth_clause(spec, current, warnings)
        limit = spec.get('connection_limit')
        if limit == -1:
            limit = 0  # no limit, as on PostgreSQL (MAX_USER_CONNECTIONS -1 would refuse every connection)
        with_limit = None
        if limit is not None and not role and (current is None or current['connection_limit'] != limit):
            with_limit = ' WITH MAX_USER_CONNECTIONS %d' % int(limit)
            changes.append(('connection_limit', current['connection_limit'] if current else None, limit))
        if current is None:
            changes.insert(0, ('state', 'absent', 'present'))
            if role:
                return changes, [('CREATE ROLE %s' % account, None)]
            if what:
                changes.append(('password', 'none', 'set'))
            sql = 'CREATE USER %s' % (account.replace('%', '%%') if params else account)
            if clause:
                sql += ' ' + clause
            return changes, [(sql + (with_limit or ''), params or None)]
        if not clause and not with_limit:
            return changes, []
        if what:
            changes.append(('password', 'set', 'changed'))
        sql = 'ALTER USER %s' % (account.replace('%', '%%') if params else account)
        if clause:
            sql += ' ' + clause
        return changes, [(sql + (with_limit or ''), params or None)]

    def plan_memberships(self, spec, current, known_roles):
        wanted = spec.get('member_of')
        if spec['state'] == 'absent' or (wanted is None and not spec.get('member_of_exclusive')):
            return [], []
        key = self.user_key(spec)
        wanted = list(dict.fromkeys(wanted or []))
        have = list(current['member_of']) if current else []
        missing = [r for r in wanted if r not in have]
        unknown = [r for r in missing if r not in known_roles]
        if unknown:
            raise DbError('grant role', ', '.join(unknown), 'role does not exist (to %s@%s)' % key)
        extra = [r for r in have if r not in wanted] if spec.get('member_of_exclusive') else []
        account = self.account(key)
        statements = [('GRANT %s TO %s' % (self._role_ref(r), account), None) for r in missing]
        statements += [('REVOKE %s FROM %s' % (self._role_ref(r), account), None) for r in extra]
        if not statements:
            return [], []
        return [('member_of', sorted(have), sorted(set(have) - set(extra) | set(missing)))], statements

    # ---- privileges -------------------------------------------------------------------
    def all_privileges(self):
        """What ALL means per scope on this server (global: what the login account holds)."""
        if hasattr(self, '_all_privileges'):
            return self._all_privileges
        me = self.fetch_value('SELECT CURRENT_USER()') or ''
        user, _sep, host = me.rpartition('@')
        rows = self.fetch_all('SELECT PRIVILEGE_TYPE FROM information_schema.USER_PRIVILEGES WHERE GRANTEE = %s',
                              (grantee_string(user, host),))
        extra = ('DELETE HISTORY',) if self.flavor == 'mariadb' else ()
        self._all_privileges = {
            'global': tuple(r['PRIVILEGE_TYPE'] for r in rows if r['PRIVILEGE_TYPE'] != 'USAGE'),
            'database': MYSQL_DATABASE_ALL + extra,
            'table': MYSQL_TABLE_ALL + extra,
        }
        return self._all_privileges

    def read_privileges(self, keys, targets):
        """held {(key, target): {priv: False}} for accounts keys; 'GRANT OPTION' is a privilege here."""
        by_grantee = dict((grantee_string(*k), k) for k in keys)
        scopes = set(t[0] for t in targets)
        held = {}

        def add(grantee, target, priv, grantable):
            key = by_grantee.get(grantee)
            if key is None or priv == 'USAGE':
                return
            privs = held.setdefault((key, target), {})
            privs[priv] = False
            if grantable == 'YES':
                privs[GRANT_OPTION] = False

        if 'global' in scopes:
            for row in self.fetch_all('SELECT GRANTEE, PRIVILEGE_TYPE, IS_GRANTABLE FROM information_schema.USER_PRIVILEGES',
                                      operation='read global privileges'):
                add(row['GRANTEE'], ('global', None, None, None), row['PRIVILEGE_TYPE'], row['IS_GRANTABLE'])
            for key in keys:
                if key[1] == '':  # MariaDB roles are missing from USER_PRIVILEGES
                    self._read_role_global(key, held)
        if 'database' in scopes or 'database_pattern' in scopes:
            # mysql.db keeps a db-level grant's database as a pattern: a name is stored escaped (app\\_db), a
            # pattern as written (app\\_%, app%); both are compared with what is stored, exactly (the
            # information_schema comparison ignores case)
            literal = set(escape_database_pattern(t[1]) for t in targets if t[0] == 'database')
            patterns = set(t[1] for t in targets if t[0] == 'database_pattern')
            # a name with _ granted unescaped (GRANT ... ON app_one.*) is a pattern matching the database too:
            # read as such, so the caller can say it is there (see unmanaged_patterns)
            patterns |= set(t[1] for t in targets if t[0] == 'database' and escape_database_pattern(t[1]) != t[1])
            for row in self.fetch_all(
                    'SELECT GRANTEE, TABLE_SCHEMA, PRIVILEGE_TYPE, IS_GRANTABLE FROM information_schema.SCHEMA_PRIVILEGES '
                    'WHERE TABLE_SCHEMA IN %s', (sorted(literal | patterns),), operation='read database privileges'):
                stored = row['TABLE_SCHEMA']
                if stored in literal:
                    target = ('database', unescape_database_pattern(stored), None, None)
                    add(row['GRANTEE'], target, row['PRIVILEGE_TYPE'], row['IS_GRANTABLE'])
                if stored in patterns:
                    add(row['GRANTEE'], ('database_pattern', stored, None, None), row['PRIVILEGE_TYPE'],
                        row['IS_GRANTABLE'])
        if 'table' in scopes:
            databases = sorted(set(t[1] for t in targets if t[0] == 'table'))
            for row in self.fetch_all(
                    'SELECT GRANTEE, TABLE_SCHEMA, TABLE_NAME, PRIVILEGE_TYPE, IS_GRANTABLE '
                    'FROM information_schema.TABLE_PRIVILEGES WHERE TABLE_SCHEMA IN %s', (databases,),
                    operation='read table privileges'):
                target = ('table', row['TABLE_SCHEMA'], None, row['TABLE_NAME'])
                add(row['GRANTEE'], target, row['PRIVILEGE_TYPE'], row['IS_GRANTABLE'])
        return held

    @staticmethod
    def unmanaged_patterns(key, desired, held):
        """Warnings for a database named literally that the account also reaches through the same name
        granted unescaped (a pattern: _ is a wildcard), which the literal entry does not manage."""
        warnings = []
        for target in sorted(t for t in desired if t[0] == 'database'):
            pattern = ('database_pattern', target[1], None, None)
            if pattern not in desired and held.get((key, pattern)):
                warnings.append(
                    'account %s@%s also holds %s on the pattern `%s`.* (granted without escaping _ or %%, so it '
                    'matches database %s and others): an entry for database %s does not manage it, even with '
                    "privileges_exclusive; manage it with {'on': database, database: '%s', wildcard: true}"
                    % (key[0], key[1], ', '.join(sorted(held[(key, pattern)])), target[1], target[1], target[1],
                       target[1].replace("'", "''")))
        return warnings

    def _read_role_global(self, key, held):
        try:
            rows = self.fetch_all('SHOW GRANTS FOR %s' % self.quote_account_part(key[0]), operation='read role grants')
        except DbError:
            return  # the role does not exist yet: it holds nothing
        for row in rows:
            line = next(iter(row.values()))
            match = re.match(r'^GRANT (.+?) ON \*\.\* TO ', line)
            if not match:
                continue
            privs = held.setdefault((key, ('global', None, None, None)), {})
            words = match.group(1)
            names = self.all_privileges()['global'] if words == 'ALL PRIVILEGES' else words.split(', ')
            for priv in names:
                if priv != 'USAGE':
                    privs[priv] = False
            if line.rstrip().endswith('WITH GRANT OPTION'):
                privs[GRANT_OPTION] = False

    def missing_objects(self, targets):
        """Databases and tables named in targets that do not exist, as DBA words."""
        missing = []
        # a pattern (wildcard: true) may match no database yet
        databases = sorted(set(t[1] for t in targets if t[1] is not None and t[0] != 'database_pattern'))
        if databases:
            found = set(r['SCHEMA_NAME'] for r in self.fetch_all(
                'SELECT SCHEMA_NAME FROM information_schema.SCHEMATA WHERE SCHEMA_NAME IN %s', (databases,)))
            missing += ['database %s' % d for d in databases if d not in found]
        tables = sorted(set((t[1], t[3]) for t in targets if t[0] == 'table'))
        if tables:
            found = set((r['TABLE_SCHEMA'], r['TABLE_NAME']) for r in self.fetch_all(
                'SELECT TABLE_SCHEMA, TABLE_NAME FROM information_schema.TABLES WHERE TABLE_SCHEMA IN %s',
                (sorted(set(t[0] for t in tables)),)))
            missing += ['table %s.%s' % t for t in tables if t not in found]
        return missing

    def privilege_statement(self, action, target, privs, key):
        scope, database, _schema, obj = target
        if scope == 'global':
            on = '*.*'
        elif scope == 'database':
            escaped = escape_database_pattern(database)
            if len(escaped) > MYSQL_DATABASE_CHARS:
                raise DbError('grant privileges on database', database, 'a db-level grant stores the name with _ and %% '
                              'escaped (%d characters here) and MySQL/MariaDB store at most %d: grant on its tables '
                              '(on: table) or use a shorter pattern (wildcard: true)'
                              % (len(escaped), MYSQL_DATABASE_CHARS))
            on = '%s.*' % self.quote_ident(escaped)
        elif scope == 'database_pattern':
            on = '%s.*' % self.quote_ident(database)  # as written: _ and % are wildcards
        else:
            on = '%s.%s' % (self.quote_ident(database), self.quote_ident(obj))
        account = self.account(key)
        plain = [p for p in privs if p != GRANT_OPTION]
        if action == 'grant':
            option = GRANT_OPTION in privs
            return 'GRANT %s ON %s TO %s%s' % (', '.join(plain) or 'USAGE', on, account,
                                               ' WITH GRANT OPTION' if option else '')
        return 'REVOKE %s ON %s FROM %s' % (', '.join(privs), on, account)
