# -*- coding: utf-8 -*-
# Copyright: dbops.admin contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Private to dbops.admin: Mysql engine, indexes area (mixed into the MysqlEngine class).

Idempotence compares the definition read from information_schema.statistics (columns,
prefix lengths, order, uniqueness, index type) with the requested one, both rendered
the same way as a CREATE INDEX text.
"""

from __future__ import annotations

import re

from ansible_collections.dbops.admin.plugins.module_utils._engines.postgresql_indexes import check_sql_fragment
from ansible_collections.dbops.admin.plugins.module_utils._errors import DbError

MYSQL_INDEX_TYPES = ('btree', 'hash', 'fulltext', 'spatial')
# types whose key part length is counted in characters/bytes up to the column's own length
_SIZED_STRING_TYPES = ('char', 'varchar', 'binary', 'varbinary')
# types a BTREE key part can only index with a prefix length (the server would silently pick one)
_PREFIX_ONLY_TYPES = ('tinytext', 'text', 'mediumtext', 'longtext', 'tinyblob', 'blob', 'mediumblob', 'longblob')
_TEXT_TYPES = ('char', 'varchar', 'tinytext', 'text', 'mediumtext', 'longtext')
_GEOMETRY_TYPES = ('geometry', 'point', 'linestring', 'polygon', 'multipoint', 'multilinestring', 'multipolygon',
                   'geometrycollection')
_PART = re.compile(r'^(?P<col>.+?)(?:\s*\(\s*(?P<len>\d+)\s*\))?(?:\s+(?P<dir>ASC|DESC))?$', re.IGNORECASE | re.DOTALL)
_EXPR_DIR = re.compile(r'^(?P<expr>\(.*\))(?:\s+(?P<dir>ASC|DESC))?$', re.IGNORECASE | re.DOTALL)


def parse_mysql_index_part(item, table_columns):
    """One key part: ``col``, ``col(10)``, ``col DESC`` or, on MySQL 8, ``(expression) [DESC]``.

    ``table_columns`` maps lower-case names to the table's own spelling (MySQL column names
    are case-insensitive).
    """
    text = item.strip()
    if text.lower() in table_columns:
        return {'column': table_columns[text.lower()], 'length': None, 'order': 'ASC'}
    if text.startswith('('):
        match = _EXPR_DIR.match(text)
        if not match:
            raise DbError('use index part', repr(item), 'an expression must be in parentheses, optionally followed by ASC or DESC')
        return {'expression': check_sql_fragment(match.group('expr'), 'index expression'),
                'order': (match.group('dir') or 'ASC').upper()}
    match = _PART.match(text)
    if match and match.group('col').lower() in table_columns:
        return {'column': table_columns[match.group('col').lower()],
                'length': int(match.group('len')) if match.group('len') else None,
                'order': (match.group('dir') or 'ASC').upper()}
    raise DbError('use index part', repr(item), 'the table has no such column')


def render_mysql_parts(parts, index_kind, quote_ident):
    rendered = []
    for part in parts:
        if 'expression' in part:
            text = part['expression']
        else:
            text = quote_ident(part['column'])
            if part.get('length'):
                text += '(%d)' % part['length']
        if index_kind not in ('FULLTEXT', 'SPATIAL') and part.get('order') == 'DESC':
            text += ' DESC'
        rendered.append(text)
    return '(%s)' % ', '.join(rendered)


def _kind_word(definition):
    if definition['type'] in ('FULLTEXT', 'SPATIAL'):
        return definition['type'] + ' '
    return 'UNIQUE ' if definition['unique'] else ''


def build_mysql_create_index(definition, quote_ident):
    """CREATE INDEX text; also the canonical text both sides are compared by."""
    sql = 'CREATE %sINDEX %s ON %s.%s %s' % (
        _kind_word(definition), quote_ident(definition['name']), quote_ident(definition['schema']),
        quote_ident(definition['table']), render_mysql_parts(definition['parts'], definition['type'], quote_ident))
    if definition['type'] in ('BTREE', 'HASH'):
        sql += ' USING %s' % definition['type']
    return sql


def build_mysql_replace_index(definition, quote_ident, flavor='mariadb'):
    """One ALTER TABLE that drops and adds the index: atomic, the table is never without it."""
    sql = 'ALTER TABLE %s.%s DROP INDEX %s, ADD %sINDEX %s %s' % (
        quote_ident(definition['schema']), quote_ident(definition['table']), quote_ident(definition['name']),
        _kind_word(definition), quote_ident(definition['name']),
        render_mysql_parts(definition['parts'], definition['type'], quote_ident))
    if definition['type'] in ('BTREE', 'HASH'):
        sql += ' USING %s' % definition['type']
    return sql + visibility_clause(definition, flavor)


def visibility_clause(definition, flavor):
    """The index option that keeps an index unused by the optimizer: MariaDB IGNORED, MySQL 8 INVISIBLE."""
    if definition.get('visible', True) is not False:
        return ''
    return ' IGNORED' if flavor == 'mariadb' else ' INVISIBLE'


def build_mysql_set_visibility(definition, visible, quote_ident, flavor='mariadb'):
    if flavor == 'mariadb':
        word = 'NOT IGNORED' if visible else 'IGNORED'
    else:
        word = 'VISIBLE' if visible else 'INVISIBLE'
    return 'ALTER TABLE %s.%s ALTER INDEX %s %s' % (quote_ident(definition['schema']), quote_ident(definition['table']),
                                                    quote_ident(definition['name']), word)


def _normalize_expression(text):
    return re.sub(r'[\s`]+', '', text or '').lower().strip('()')


def comparable_parts(parts):
    out = []
    for part in parts:
        if 'expression' in part:
            out.append(('expr', _normalize_expression(part['expression']), part.get('order')))
        else:
            out.append(('col', part['column'].lower(), part.get('length'), part.get('order')))
    return out


class MysqlIndexes:
    """indexes methods of the Mysql engine; self is the connected engine."""

    def index_default_schema(self):
        schema = self.fetch_value('SELECT DATABASE()')
        if not schema:
            raise DbError('choose the database', None, 'give schema (the database) or login_db')
        return schema

    def index_get(self, schema, name, table=None):
        if table is None:
            tables = [r['t'] for r in self.fetch_all(
                """SELECT DISTINCT table_name AS t FROM information_schema.statistics
                    WHERE table_schema = %s AND index_name = %s""", (schema, name))]
            if not tables:
                return None
            if len(tables) > 1:
                raise DbError('find index', '%s.%s' % (schema, name),
                              'tables %s each have an index of that name; give table' % ', '.join(sorted(tables)))
            table = tables[0]
        expression = ', expression AS expression' if self.flavor == 'mysql' and self.version_num >= 80013 else ''
        if self.index_has_visibility():
            expression += (", ignored = 'NO' AS visible" if self.flavor == 'mariadb'
                           else ", is_visible = 'YES' AS visible")
        rows = self.fetch_all(
            """SELECT table_name AS tbl, non_unique AS non_unique, column_name AS column_name, sub_part AS sub_part,
                      collation AS collation, index_type AS index_type%s
                 FROM information_schema.statistics
                WHERE table_schema = %%s AND table_name = %%s AND index_name = %%s
                ORDER BY seq_in_index""" % expression, (schema, table, name))
        if not rows:
            return None
        parts = []
        for row in rows:
            if row.get('expression'):
                parts.append({'expression': '(%s)' % row['expression'],
                              'order': 'DESC' if row['collation'] == 'D' else 'ASC'})
            else:
                # the server lists a SPATIAL key part with a sub_part (32 on MariaDB) nobody can ask for
                length = row['sub_part'] if row['index_type'] != 'SPATIAL' else None
                parts.append({'column': row['column_name'],
                              'length': int(length) if length is not None else None,
                              'order': 'DESC' if row['collation'] == 'D' else 'ASC'})
        current = {'schema': schema, 'name': name, 'table': rows[0]['tbl'], 'unique': int(rows[0]['non_unique']) == 0,
                   'type': rows[0]['index_type'], 'parts': parts, 'valid': True, 'tablespace': None,
                   'primary': name == 'PRIMARY', 'visible': rows[0].get('visible') in (None, 1, '1')}
        current['definition'] = build_mysql_create_index(current, self.quote_ident)
        size = self.fetch_value(
            """SELECT stat_value * @@innodb_page_size FROM mysql.innodb_index_stats
                WHERE database_name = %s AND table_name = %s AND index_name = %s AND stat_name = 'size'""",
            (schema, current['table'], name))
        current['size_bytes'] = int(size) if size is not None else None
        return current

    def index_has_visibility(self):
        """MariaDB 10.6+ IGNORED indexes, MySQL 8 INVISIBLE ones."""
        return self.version_num >= (100600 if self.flavor == 'mariadb' else 80000)

    def index_check_visibility(self, name, visible, current):
        if visible is None:
            return
        if not self.index_has_visibility():
            raise DbError('set visibility of index', name, 'visible needs MariaDB 10.6 (IGNORED indexes) or MySQL 8.0 '
                          '(INVISIBLE indexes); this server has none: leave visible out')
        if visible is False and current is not None and current.get('primary'):
            raise DbError('set visibility of index', name, 'a primary key cannot be ignored/invisible')

    def index_prepare(self, params):
        name = params['name']
        for option in ('where', 'include', 'storage_params', 'tablespace'):
            if params.get(option):
                raise DbError('create index', name, 'option %s is PostgreSQL only; MySQL/MariaDB indexes have no %s'
                              % (option, option.replace('_', ' ')))
        index_type = (params.get('type') or '').lower() or None
        if index_type and index_type not in MYSQL_INDEX_TYPES:
            raise DbError('create index', name, 'type %s is not a MySQL/MariaDB index type; choose %s'
                          % (index_type, ', '.join(MYSQL_INDEX_TYPES)))
        table = self.fetch_one(
            """SELECT table_name AS tbl, engine AS engine FROM information_schema.tables
                WHERE table_schema = %s AND table_name = %s
                  AND table_type IN ('BASE TABLE', 'SYSTEM VERSIONED')""",
            (params['schema'], params['table']))
        if table is None:
            raise DbError('create index', name, 'table %s.%s does not exist' % (params['schema'], params['table']))
        if index_type == 'hash' and (table['engine'] or '').lower() == 'innodb':
            raise DbError('create index', name, 'InnoDB has no HASH indexes (it would silently build a BTREE); '
                          'use type btree')
        column_rows = self.fetch_all(
            """SELECT column_name AS c, data_type AS t, character_maximum_length AS len
                 FROM information_schema.columns
                WHERE table_schema = %s AND table_name = %s""", (params['schema'], params['table']))
        columns = {r['c'].lower(): r['c'] for r in column_rows}
        column_types = {r['c'].lower(): (str(r['t']).lower(), r['len']) for r in column_rows}
        parts = []
        for item in params['columns']:
            try:
                part = parse_mysql_index_part(item, columns)
            except DbError as exc:
                raise DbError('create index', name, 'column %r: %s' % (item, exc.detail)) from None
            if 'expression' in part and (self.flavor == 'mariadb' or self.version_num < 80013):
                raise DbError('create index', name, 'functional key parts like %s need MySQL 8.0.13 or later; '
                              'on MariaDB index a virtual generated column instead' % item)
            if 'column' in part:
                part = self._index_check_part(name, item, part, column_types[part['column'].lower()], index_type)
            parts.append(part)
        if params.get('unique') and index_type in ('fulltext', 'spatial'):
            raise DbError('create index', name, 'a %s index cannot be unique' % index_type)
        return {'schema': params['schema'], 'name': name, 'table': table['tbl'], 'parts': parts,
                'type': index_type.upper() if index_type else None, 'unique': bool(params.get('unique')),
                'tablespace': None, 'engine': (table['engine'] or '').upper(), 'visible': params.get('visible')}

    @staticmethod
    def _index_check_part(name, item, part, column_type, index_type):
        """Refuse what the server would refuse or silently change, so the definition read back equals
        the requested one: a prefix length on a non-string column, longer than the column or in a
        FULLTEXT/SPATIAL index; a prefix as long as the column is no prefix at all (the server drops it)."""
        data_type, max_length = column_type
        length = part.get('length')
        if length is not None:
            if length < 1:
                raise DbError('create index', name, 'column %r: a prefix length must be at least 1' % item)
            if index_type in ('fulltext', 'spatial'):
                raise DbError('create index', name, 'column %r: a %s index takes whole columns, no prefix length'
                              % (item, index_type))
            if data_type not in _SIZED_STRING_TYPES + _PREFIX_ONLY_TYPES:
                raise DbError('create index', name, 'column %r: a prefix length needs a string column, %s is %s'
                              % (item, part['column'], data_type))
            if data_type in _SIZED_STRING_TYPES and max_length is not None:
                if length > int(max_length):
                    raise DbError('create index', name, 'column %r: the prefix is longer than the column (%s(%s))'
                                  % (item, data_type, max_length))
                if length == int(max_length):
                    part = dict(part, length=None)  # the whole column: the server stores no prefix
        if index_type in ('fulltext', 'spatial') and part.get('order') == 'DESC':
            raise DbError('create index', name, 'column %r: a %s index has no order (ASC/DESC)' % (item, index_type))
        if index_type == 'spatial' and data_type not in _GEOMETRY_TYPES:
            raise DbError('create index', name, 'column %r: a spatial index needs a geometry column, %s is %s'
                          % (item, part['column'], data_type))
        if index_type == 'fulltext' and data_type not in _TEXT_TYPES:
            raise DbError('create index', name, 'column %r: a fulltext index needs a text column, %s is %s'
                          % (item, part['column'], data_type))
        part['data_type'] = data_type
        return part

    def _index_effective(self, desired, current):
        """The desired definition with the server's default type filled in."""
        effective = dict(desired)
        if effective['type'] is None:
            if current and current['type'] in ('BTREE', 'HASH'):
                effective['type'] = current['type']
            else:
                # the server's default: HASH for MEMORY tables, BTREE for the others
                effective['type'] = 'HASH' if effective.get('engine') in ('MEMORY', 'HEAP') else 'BTREE'
        if effective['type'] == 'BTREE':
            for part in effective['parts']:
                if part.get('length') is None and part.get('data_type') in _PREFIX_ONLY_TYPES + _GEOMETRY_TYPES:
                    # the server would pick a prefix itself (or refuse a unique key): ask for one
                    raise DbError('create index', desired['name'],
                                  'column %s is %s: a %s index needs a prefix length, for example %s(191)'
                                  % (part['column'], part['data_type'], effective['type'], part['column']))
        if effective.get('visible') is None:
            # not asked: a rebuilt index keeps its visibility (an IGNORED/INVISIBLE index stays unused)
            effective['visible'] = current.get('visible', True) if current else True
        effective['definition'] = build_mysql_create_index(effective, self.quote_ident)
        return effective

    def index_finalize(self, desired, current):
        return self._index_effective(desired, current)

    def index_same_definition(self, desired, current):
        return (desired['type'] == current['type'] and desired['unique'] == current['unique']
                and desired['table'].lower() == current['table'].lower()
                and comparable_parts(desired['parts']) == comparable_parts(current['parts']))

    def index_same_tablespace(self, desired, current):
        return True

    def _index_refuse_primary(self, current, what):
        if current and current.get('primary'):
            raise DbError(what, '%s.%s' % (current['schema'], current['table']),
                          'PRIMARY is the primary key; change it with ALTER TABLE')

    def index_visible(self, index):
        """Whether the optimizer uses the index (None where the server has no such notion)."""
        return index.get('visible', True) if self.index_has_visibility() else None

    def index_set_visibility(self, current, visible):
        self.execute(build_mysql_set_visibility(current, visible, self.quote_ident, self.flavor),
                     operation='set visibility of index %s on %s.%s'
                     % (current['name'], current['schema'], current['table']))

    def index_create(self, desired, concurrently):
        # InnoDB builds secondary indexes online (ALGORITHM=INPLACE) by itself
        self.execute(build_mysql_create_index(desired, self.quote_ident) + visibility_clause(desired, self.flavor),
                     operation='create index %s on %s.%s' % (desired['name'], desired['schema'], desired['table']))

    def index_drop(self, current, concurrently):
        self._index_refuse_primary(current, 'drop index')
        self.execute('DROP INDEX %s ON %s.%s' % (self.quote_ident(current['name']), self.quote_ident(current['schema']),
                                                 self.quote_ident(current['table'])),
                     operation='drop index %s on %s.%s' % (current['name'], current['schema'], current['table']))

    def index_replace(self, desired, current, concurrently):
        self._index_refuse_primary(current, 'rebuild index')
        self.execute(build_mysql_replace_index(desired, self.quote_ident, self.flavor),
                     operation='rebuild index %s on %s.%s' % (desired['name'], desired['schema'], desired['table']))

    def index_repair(self, desired, current, concurrently):
        self.index_replace(desired, current, concurrently)

    def index_set_tablespace(self, desired):
        raise DbError('move index', desired['name'], 'MySQL/MariaDB indexes live with their table')

    def index_reindex(self, current, concurrently):
        """InnoDB rebuilds an index only with its table: ALTER TABLE ... FORCE (online)."""
        self.execute('ALTER TABLE %s.%s FORCE' % (self.quote_ident(current['schema']), self.quote_ident(current['table'])),
                     operation='rebuild table %s.%s' % (current['schema'], current['table']))

    def index_rebuild_method(self, concurrently):
        return 'ALTER TABLE ... FORCE'

    def index_summary(self, index):
        if index is None:
            return {}
        out = {key: index.get(key) for key in ('schema', 'name', 'table', 'definition', 'valid', 'size_bytes',
                                               'unique', 'tablespace')}
        out['type'] = (index.get('type') or 'btree').lower()
        if self.index_has_visibility():
            out['visible'] = index.get('visible', True) is not False
        return out
