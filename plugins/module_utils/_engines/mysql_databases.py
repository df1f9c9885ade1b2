# -*- coding: utf-8 -*-
# Copyright: dbops.admin contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Private to dbops.admin: Mysql engine, databases area (mixed into the MysqlEngine class)."""

from __future__ import annotations

import re

from ansible_collections.dbops.admin.plugins.module_utils._errors import DbError

POSTGRES_ONLY_DATABASE_OPTIONS = ('owner', 'encoding', 'lc_collate', 'lc_ctype', 'template', 'conn_limit',
                                  'extensions')
CHARSET_RE = re.compile(r'^[A-Za-z0-9_]+$')


def split_sql(script):
    """Split a script into statements at ';' outside quotes and comments (no DELIMITER support)."""
    statements, current, i, n = [], [], 0, len(script)
    while i < n:
        ch = script[i]
        if ch in ('\'', '"', '`'):
            j = i + 1
            while j < n:
                if script[j] == '\\' and ch != '`':
                    j += 2
                    continue
                if script[j] == ch:
                    if j + 1 < n and script[j + 1] == ch:
                        j += 2
                        continue
                    break
                j += 1
            current.append(script[i:j + 1])
            i = j + 1
        elif script.startswith('--', i) and (i + 2 >= n or script[i + 2] in ' \t\r\n') or ch == '#':
            j = script.find('\n', i)
            i = n if j < 0 else j + 1
            current.append('\n')
        elif script.startswith('/*', i):
            j = script.find('*/', i + 2)
            i = n if j < 0 else j + 2
            current.append(' ')
        elif ch == ';':
            statements.append(''.join(current).strip())
            current = []
            i += 1
        else:
            current.append(ch)
            i += 1
    statements.append(''.join(current).strip())
    return [s for s in statements if s]


class MysqlDatabases:
    """databases methods of the Mysql engine; self is the connected engine."""

    def check_database_options(self, params):
        used = [o for o in POSTGRES_ONLY_DATABASE_OPTIONS if params.get(o) not in (None, [])]
        if used:
            raise DbError('manage database', params['name'], '%s apply to PostgreSQL only; on MySQL/MariaDB use '
                          'charset and collation' % ', '.join(used))
        for key in ('charset', 'collation'):
            if params.get(key) is not None and not CHARSET_RE.match(params[key]):
                raise DbError('use %s' % key, repr(params[key]), 'not a character set or collation name')
        self.quote_ident(params['name'])

    def get_database(self, name):
        row = self.fetch_one(
            'SELECT SCHEMA_NAME, DEFAULT_CHARACTER_SET_NAME, DEFAULT_COLLATION_NAME '
            'FROM information_schema.SCHEMATA WHERE SCHEMA_NAME = %s', (name,), operation='read database %s' % name)
        if row is None:
            return None
        return {'name': row['SCHEMA_NAME'], 'charset': row['DEFAULT_CHARACTER_SET_NAME'],
                'collation': row['DEFAULT_COLLATION_NAME']}

    def database_statements(self, params, current):
        name = params['name']
        db = self.quote_ident(name)
        if params['state'] == 'absent':
            if current is None:
                return [], []
            statements = []
            if params.get('force'):
                for row in self.fetch_all('SELECT ID FROM information_schema.PROCESSLIST WHERE DB = %s '
                                          'AND ID <> CONNECTION_ID()', (name,)):
                    statements.append('KILL CONNECTION %d' % int(row['ID']))
            statements.append('DROP DATABASE %s' % db)
            return [('state', 'present', 'absent')], statements
        wanted = dict(zip(('charset', 'collation'),
                          self.normalize_charset(params.get('charset'), params.get('collation'))))
        words = []
        if wanted['charset']:
            words.append('CHARACTER SET %s' % wanted['charset'])
        if wanted['collation']:
            words.append('COLLATE %s' % wanted['collation'])
        if current is None:
            changes = [('state', 'absent', 'present')]
            changes += [(k, None, wanted[k]) for k in ('charset', 'collation') if wanted[k]]
            return changes, ['CREATE DATABASE %s' % db + (' ' + ' '.join(words) if words else '')]
        changes = [(k, current[k], wanted[k]) for k in ('charset', 'collation')
                   if wanted[k] and wanted[k].lower() != (current[k] or '').lower()]
        if not changes:
            return [], []
        # what ALTER DATABASE makes of the words given: a character set alone brings its default collation,
        # a collation alone its character set (so check mode and --diff show both, as the real run ends)
        made = self._charset_and_collation(wanted['charset'], wanted['collation'])
        changes = [(k, current[k], made[k]) for k in ('charset', 'collation')
                   if (made[k] or '').lower() != (current[k] or '').lower()]
        # changes the default for new tables; existing tables keep theirs
        return changes, ['ALTER DATABASE %s %s' % (db, ' '.join(words))]

    def normalize_charset(self, charset, collation):
        """(charset, collation) as the server names them, checked together before anything runs.

        MariaDB 10.6+ and MySQL 8 store ``utf8`` as ``utf8mb3`` (``utf8_general_ci`` as
        ``utf8mb3_general_ci``): comparing the words given would report a change on every run.
        A name the server does not know, or a collation of another character set, fails here.
        """
        if not charset and not collation:
            return None, None
        row = self._charset_and_collation(charset, collation)
        return (row['charset'] if charset else None), (row['collation'] if collation else None)

    def _charset_and_collation(self, charset, collation):
        """{charset, collation} the server makes of the names given (the default collation when none is)."""
        value = "CONVERT('' USING %s)" % self.quote_ident(charset or self._charset_of_collation(collation))
        if collation:
            value += ' COLLATE %s' % self.quote_ident(collation)
        what = ' with '.join('%s %s' % pair for pair in (('character set', charset), ('collation', collation))
                             if pair[1])
        return self.fetch_one('SELECT CHARSET(v) AS charset, COLLATION(v) AS collation FROM (SELECT %s AS v) AS d'
                              % value, operation='use %s' % what)

    def _charset_of_collation(self, collation):
        """The character set a collation given alone goes with, as CREATE DATABASE ... COLLATE reads it."""
        row = self.fetch_one('SELECT CHARACTER_SET_NAME AS charset FROM information_schema.COLLATIONS '
                             'WHERE COLLATION_NAME = %s', (collation,), operation='look up collation %s' % collation)
        if row is not None and row['charset']:
            return row['charset']
        if row is not None:
            # MariaDB 10.10+ names collations of no one character set (uca1400_ai_ci): the server's character set
            return self.fetch_value('SELECT @@character_set_server', operation='read the server character set')
        # not listed under that name (utf8_general_ci, an alias of utf8mb3_general_ci): it starts with its set's name
        return collation.split('_')[0]

    def new_database_state(self, params):
        """The character set and collation CREATE DATABASE gives: those asked, else the server's defaults."""
        charset, collation = params.get('charset'), params.get('collation')
        if not charset and not collation:
            row = self.fetch_one('SELECT @@character_set_server AS charset, @@collation_server AS collation')
            return {'charset': row['charset'], 'collation': row['collation']}
        row = self._charset_and_collation(charset, collation)
        return {'charset': row['charset'], 'collation': row['collation']}

    def run_init_sql(self, sql):
        for statement in split_sql(sql):
            self.execute(statement, operation='apply init_sql')
