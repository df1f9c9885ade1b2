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
        template = self.get_database(params.get('template') or 'template1') or {}
        state = {'owner': params.get('owner') or self.fetch_value('SELECT current_user'),
                 'encoding': self.normalize_encoding(params['encoding']) if params.get('encoding')
                 else template.get('encoding'),
                 'conn_limit': params['conn_limit'] if params.get('conn_limit') is not None else -1}
        for key in ('lc_collate', 'lc_ctype'):
            state[key] = params.get(key) or template.get(key)
        return state

    def normalize_encoding(self, encoding):
        value = self.fetch_value('SELECT pg_catalog.pg_encoding_to_char(pg_catalog.pg_char_to_encoding(%s))',
                                 (encoding,))
        if not value:
            raise DbError('use encoding', repr(encoding), 'PostgreSQL does not know this encoding')
        return value

    def check_owner(self, owner):
        if owner and not self.fetch_value('SELECT 1 FROM pg_catalog.pg_roles WHERE rolname = %s', (owner,)):
            raise DbError('make %s the owner' % owner, None, 'role %s does not exist' % owner)

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
            statements.append('DROP DATABASE %s' % db)
            return [('state', 'present', 'absent')], statements
        encoding = self.normalize_encoding(params['encoding']) if params.get('encoding') else None
        if current is None:
            words = []
            if params.get('owner'):
                words.append('OWNER %s' % self.quote_ident(params['owner']))
            if params.get('template'):
                words.append('TEMPLATE %s' % self.quote_ident(params['template']))
            if encoding:
                words.append('ENCODING %s' % self.quote_literal(encoding))
            if params.get('lc_collate'):
                words.append('LC_COLLATE %s' % self.quote_literal(params['lc_collate']))
            if params.get('lc_ctype'):
                words.append('LC_CTYPE %s' % self.quote_literal(params['lc_ctype']))
            if params.get('conn_limit') is not None:
                words.append('CONNECTION LIMIT %d' % int(params['conn_limit']))
            changes = [('state', 'absent', 'present')]
            for key in ('owner', 'encoding', 'lc_collate', 'lc_ctype', 'conn_limit'):
                if params.get(key) is not None:
                    changes.append((key, None, encoding if key == 'encoding' else params[key]))
            return changes, ['CREATE DATABASE %s' % db + (' ' + ' '.join(words) if words else '')]
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

    def extension_statements(self, names, installed):
        return ['CREATE EXTENSION IF NOT EXISTS %s' % self.quote_ident(n) for n in names if n not in installed]

    def run_init_sql(self, sql):
        """Run a script in this database as one transaction (one statement for the driver)."""
        with self.transaction():
            self.execute(sql, operation='apply init_sql')
