# -*- coding: utf-8 -*-
# Copyright: dbops.admin contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Private to dbops.admin: Postgres engine, databases area (mixed into the PostgresEngine class)."""

from __future__ import annotations

from ansible_collections.dbops.admin.plugins.module_utils._errors import DbError

MYSQL_ONLY_DATABASE_OPTIONS = ('charset', 'collation')


def locale_key(name):
    """A locale name compared the way the C library reads it: the codeset's case and punctuation do not count.

    ``en_US.UTF-8`` and ``en_US.utf8`` (the spelling of ``locale -a``) are the same locale.
    """
    base, _sep, modifier = name.partition('@')
    language, dot, codeset = base.partition('.')
    if dot:
        codeset = ''.join(c for c in codeset.lower() if c.isalnum())
        if codeset.isdigit():
            codeset = 'iso' + codeset
    return language, codeset, modifier


class PostgresDatabases:
    """databases methods of the Postgres engine; self is the connected engine."""

    def check_database_options(self, params):
        used = [o for o in MYSQL_ONLY_DATABASE_OPTIONS if params.get(o) is not None]
        if used:
            raise DbError('manage database', params['name'], '%s apply to MySQL/MariaDB; on PostgreSQL use '
                          'encoding, lc_collate and lc_ctype' % ', '.join(used))
        if params.get('conn_limit') is not None and params['conn_limit'] < -1:
            raise DbError('manage database', params['name'], 'conn_limit is -1 (no limit), 0 (no connections) or a '
                          'number of connections, not %d' % params['conn_limit'])
        if params.get('conn_limit') is not None and params['conn_limit'] > self.max_connection_limit():
            raise DbError('manage database', params['name'], 'conn_limit is at most %d, not %d'
                          % (self.max_connection_limit(), params['conn_limit']))
        self.quote_ident(params['name'])

    def get_database(self, name):
        row = self.fetch_one(
            'SELECT datname, pg_catalog.pg_get_userbyid(datdba) AS owner, '
            'pg_catalog.pg_encoding_to_char(encoding) AS encoding, datcollate, datctype, datconnlimit '
            'FROM pg_catalog.pg_database WHERE datname = %s', (name,), operation='read database %s' % name)
        if row is None:
            return None
        return {'name': row['datname'], 'owner': row['owner'], 'encoding': row['encoding'],
                'lc_collate': row['datcollate'], 'lc_ctype': row['datctype'], 'conn_limit': row['datconnlimit']}

    def new_database_state(self, params):
        """The state CREATE DATABASE gives a database: what is asked, the rest from the template."""
        values = self._creation_values(params)
        state = {'owner': params.get('owner') or self.fetch_value('SELECT current_user'),
                 'encoding': values['encoding'],
                 'conn_limit': params['conn_limit'] if params.get('conn_limit') is not None else -1}
        for key in ('lc_collate', 'lc_ctype'):
            state[key] = values[key]
        return state

    def _creation_values(self, params):
        """{encoding, lc_collate, lc_ctype, given: [keys to name in CREATE DATABASE]} of a new database.

        Checked the way CREATE DATABASE checks them, before anything runs (so check mode fails where
        the real run would): the encoding must suit the locales, and a template other than template0
        must have the same encoding and the same locales, spelled the same (the server compares the
        names as strings). A locale given in another spelling of the template's own (C.utf8 for
        C.UTF-8) is left to the template, so the database is created and the next run is unchanged.
        """
        cache = self.__dict__.setdefault('_creation_cache', {})
        key = tuple(params.get(k) for k in ('name', 'template', 'encoding', 'lc_collate', 'lc_ctype'))
        if key in cache:
            return cache[key]
        name = params['name']
        template_name = params.get('template') or 'template1'
        template = self.get_database(template_name) or {}
        values = {'encoding': self.normalize_encoding(params['encoding']) if params.get('encoding')
                  else template.get('encoding'), 'given': []}
        if params.get('encoding'):
            values['given'].append('encoding')
        for option in ('lc_collate', 'lc_ctype'):
            wanted, have = params.get(option), template.get(option)
            if not wanted:
                values[option] = have
                continue
            if template_name != 'template0' and wanted != have and have is not None:
                if locale_key(wanted) != locale_key(have):
                    raise DbError('create database', name, '%s %s is incompatible with the %s of the template '
                                  'database %s (%s): give the template\'s %s, or template: template0'
                                  % (option, wanted, option, template_name, have, option))
                values[option] = have  # the same locale: the template's spelling, which the server accepts
                continue
            values[option] = wanted
            values['given'].append(option)
        if template_name != 'template0' and values['encoding'] != template.get('encoding') \
                and template.get('encoding') is not None:
            raise DbError('create database', name, 'encoding %s is incompatible with the encoding of the template '
                          'database %s (%s): give encoding %s, or template: template0'
                          % (values['encoding'], template_name, template['encoding'], template['encoding']))
        for option in ('lc_ctype', 'lc_collate'):
            needs = self._locale_encodings(values[option])
            if needs and values['encoding'] not in needs and values['encoding'] != 'SQL_ASCII':
                raise DbError('create database', name, 'encoding %s does not match locale %s (%s), which needs '
                              'encoding %s' % (values['encoding'], values[option], option, ' or '.join(sorted(needs))))
        cache[key] = values
        return values

    def _locale_encodings(self, locale):
        """The encodings a libc locale works with, as the server's pg_collation lists it; an empty set when it
        works with any (C, POSIX) or the server does not list the locale (then the server decides)."""
        if not locale:
            return set()
        rows = self.fetch_all("SELECT collcollate, collctype, pg_catalog.pg_encoding_to_char(collencoding) AS encoding, "
                              "collencoding FROM pg_catalog.pg_collation WHERE collprovider = 'c'")
        matching = [r for r in rows if r['collcollate'] == locale and r['collctype'] == locale]
        if not matching:
            matching = [r for r in rows if r['collcollate'] and r['collcollate'] == r['collctype']
                        and locale_key(r['collcollate']) == locale_key(locale)]
        if not matching or any(r['collencoding'] == -1 for r in matching):
            return set()
        return set(r['encoding'] for r in matching if r['encoding'])

    def normalize_encoding(self, encoding):
        value = self.fetch_value('SELECT pg_catalog.pg_encoding_to_char(pg_catalog.pg_char_to_encoding(%s))',
                                 (encoding,))
        if not value:
            raise DbError('use encoding', repr(encoding), 'PostgreSQL does not know this encoding')
        return value

    def check_owner(self, owner, current_owner=None):
        if owner and not self.fetch_value('SELECT 1 FROM pg_catalog.pg_roles WHERE rolname = %s', (owner,)):
            raise DbError('make %s the owner' % owner, None, 'role %s does not exist' % owner)
        if owner and owner != current_owner and not getattr(self, 'is_superuser', False) and not self.fetch_value(
                "SELECT pg_catalog.pg_has_role(current_user, %s, 'MEMBER')", (owner,)):
            # what CREATE / ALTER DATABASE require of a login that is not a superuser: said before anything runs
            raise DbError('make %s the owner' % owner, None, 'this login (%s) is neither a superuser nor a member of '
                          'role %s: grant it the role, or connect as a superuser'
                          % (self.fetch_value('SELECT current_user'), owner))

    def check_template(self, template):
        if template and not self.fetch_value('SELECT 1 FROM pg_catalog.pg_database WHERE datname = %s', (template,)):
            raise DbError('create the database from template %s' % template, None,
                          'database %s does not exist' % template)

    def missing_extensions(self, names):
        if not names:
            return []
        rows = self.fetch_all('SELECT name FROM pg_catalog.pg_available_extensions WHERE name = ANY(%s)',
                              (list(names),))
        found = set(r['name'] for r in rows)
        return [n for n in names if n not in found]

    def installed_extensions(self):
        return sorted(r['extname'] for r in self.fetch_all('SELECT extname FROM pg_catalog.pg_extension'))

    def template_allows_connections(self, template):
        return bool(self.fetch_value('SELECT datallowconn FROM pg_catalog.pg_database WHERE datname = %s',
                                     (template,)))

    def database_statements(self, params, current):
        """([(attribute, before, after)], [sql]) bringing the database to params (not extensions, not init)."""
        name = params['name']
        db = self.quote_ident(name)
        if params['state'] == 'absent':
            if current is None:
                return [], []
            statements = []
            if params.get('force'):
                if self.version_num >= 130000:
                    return [('state', 'present', 'absent')], ['DROP DATABASE %s WITH (FORCE)' % db]
                statements.append(
                    'SELECT pg_catalog.pg_terminate_backend(pid) FROM pg_catalog.pg_stat_activity '
                    'WHERE datname = %s AND pid <> pg_catalog.pg_backend_pid()' % self.quote_literal(name))
            else:
                # PostgreSQL refuses to drop a database in use: say so before anything runs (check mode too)
                # instead of promising the drop (autovacuum workers are stopped by the server itself)
                sessions = self.fetch_value(
                    "SELECT count(*) FROM pg_catalog.pg_stat_activity WHERE datname = %s "
                    "AND pid <> pg_catalog.pg_backend_pid() AND backend_type <> 'autovacuum worker'", (name,))
                if sessions:
                    raise DbError('drop database', name, 'other sessions are connected to it (%d): end them, or give '
                                  'force: true to terminate them' % sessions)
            statements.append('DROP DATABASE %s' % db)
            return [('state', 'present', 'absent')], statements
        if current is None:
            values = self._creation_values(params)
            words = []
            if params.get('owner'):
                words.append('OWNER %s' % self.quote_ident(params['owner']))
            if params.get('template'):
                words.append('TEMPLATE %s' % self.quote_ident(params['template']))
            if 'encoding' in values['given']:
                words.append('ENCODING %s' % self.quote_literal(values['encoding']))
            if 'lc_collate' in values['given']:
                words.append('LC_COLLATE %s' % self.quote_literal(values['lc_collate']))
            if 'lc_ctype' in values['given']:
                words.append('LC_CTYPE %s' % self.quote_literal(values['lc_ctype']))
            if params.get('conn_limit') is not None:
                words.append('CONNECTION LIMIT %d' % int(params['conn_limit']))
            changes = [('state', 'absent', 'present')]
            for key in ('owner', 'encoding', 'lc_collate', 'lc_ctype', 'conn_limit'):
                if params.get(key) is not None:
                    changes.append((key, None, values[key] if key in values else params[key]))
            return changes, ['CREATE DATABASE %s' % db + (' ' + ' '.join(words) if words else '')]
        encoding = self.normalize_encoding(params['encoding']) if params.get('encoding') else None
        fixed = []
        if encoding and encoding != current['encoding']:
            fixed.append('encoding %s to %s' % (current['encoding'], encoding))
        for key in ('lc_collate', 'lc_ctype'):
            if params.get(key) and locale_key(params[key]) != locale_key(current[key] or ''):
                fixed.append('%s %s to %s' % (key, current[key], params[key]))
        if fixed:
            raise DbError('change', '%s of database %s' % (', '.join(fixed), name),
                          'PostgreSQL fixes them when a database is created; dump it and restore it into a '
                          'new database created with the wanted values')
        changes, statements = [], []
        if params.get('owner') and params['owner'] != current['owner']:
            changes.append(('owner', current['owner'], params['owner']))
            statements.append('ALTER DATABASE %s OWNER TO %s' % (db, self.quote_ident(params['owner'])))
        if params.get('conn_limit') is not None and params['conn_limit'] != current['conn_limit']:
            changes.append(('conn_limit', current['conn_limit'], params['conn_limit']))
            statements.append('ALTER DATABASE %s CONNECTION LIMIT %d' % (db, int(params['conn_limit'])))
        return changes, statements

    def check_extension_requirements(self, names, installed):
        """Fail when an extension to create requires one that is neither installed nor created before it."""
        rows = self.fetch_all('SELECT e.name, v.requires FROM pg_catalog.pg_available_extensions e '
                              'JOIN pg_catalog.pg_available_extension_versions v '
                              'ON v.name = e.name AND v.version = e.default_version WHERE e.name = ANY(%s)',
                              (list(names),))
        requires = dict((r['name'], list(r['requires'] or [])) for r in rows)
        have = set(installed)
        for name in names:
            if name in have:
                continue
            missing = [r for r in requires.get(name, []) if r not in have]
            if missing:
                verb = 'is' if len(missing) == 1 else 'are'
                raise DbError('create extension', name, 'it requires %s, which %s not installed in the database: '
                              'list %s before %s in extensions' % (', '.join(missing), verb, ', '.join(missing), name))
            have.add(name)

    def extension_statements(self, names, installed):
        return ['CREATE EXTENSION IF NOT EXISTS %s' % self.quote_ident(n) for n in names if n not in installed]

    def run_init_sql(self, sql):
        """Run a script in this database as one transaction (one statement for the driver)."""
        with self.transaction():
            self.execute(sql, operation='apply init_sql')
