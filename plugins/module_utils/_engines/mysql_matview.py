# -*- coding: utf-8 -*-
# Copyright: dbops.admin contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Private to dbops.admin: Mysql engine, matview area (mixed into the MysqlEngine class).

MySQL and MariaDB have no materialized views: one is emulated by a table built from the
query under ``<name>__new`` and swapped in atomically with ``RENAME TABLE``. The table's
COMMENT records that it is ours, the SHA-256 of the normalised query and the query itself.
"""

from __future__ import annotations

import hashlib
import re

from ansible_collections.dbops.admin.plugins.module_utils._engines.postgresql_matview import clean_query
from ansible_collections.dbops.admin.plugins.module_utils._errors import DbError, driver_message

COMMENT_MARK = 'dbops.admin matview'
COMMENT_LIMIT = 2048
UNIQUE_INDEX = 'dbops_unique'
# ' nodata' marks a table built empty (with_data false): it is filled when with_data is true again
_COMMENT = re.compile(r'^dbops\.admin matview sha256=(?P<hash>[0-9a-f]{64})(?P<nodata> nodata)?; query=(?P<query>.*)$',
                      re.DOTALL)


def normalize_query(query):
    """The query with runs of whitespace made one space: what idempotence compares."""
    return ' '.join(clean_query(query).split())


def query_hash(query):
    return hashlib.sha256(normalize_query(query).encode('utf-8')).hexdigest()


def build_comment(query, with_data=True):
    """The table COMMENT: marker, hash, whether it was built empty, and as much of the query as fits
    in 2048 characters."""
    return ('%s sha256=%s%s; query=%s' % (COMMENT_MARK, query_hash(query), '' if with_data else ' nodata',
                                          normalize_query(query)))[:COMMENT_LIMIT]


def parse_comment(comment):
    """(hash, query or None when it was cut, populated) from a COMMENT we wrote, or None."""
    match = _COMMENT.match(comment or '')
    if not match:
        return None
    stored = match.group('query')
    complete = hashlib.sha256(stored.encode('utf-8')).hexdigest() == match.group('hash')
    return match.group('hash'), stored if complete else None, not match.group('nodata')


def build_mysql_rebuild(schema, name, query, unique_columns, exists, quote_ident, quote_literal, with_data=True):
    """The statements that build ``<name>__new`` and swap it in (RENAME TABLE is atomic)."""
    target = '%s.%s' % (quote_ident(schema), quote_ident(name))
    new = '%s.%s' % (quote_ident(schema), quote_ident(name + '__new'))
    old = '%s.%s' % (quote_ident(schema), quote_ident(name + '__old'))
    select = query if with_data else 'SELECT * FROM (%s) AS dbops_q LIMIT 0' % query
    statements = [
        'DROP TABLE IF EXISTS %s' % new,
        'DROP TABLE IF EXISTS %s' % old,
        'CREATE TABLE %s COMMENT = %s AS %s' % (new, quote_literal(build_comment(query, with_data)), select),
    ]
    if unique_columns:
        statements.append('ALTER TABLE %s ADD UNIQUE KEY %s (%s)' % (
            new, quote_ident(UNIQUE_INDEX), ', '.join(quote_ident(c) for c in unique_columns)))
    if exists:
        statements.append('RENAME TABLE %s TO %s, %s TO %s' % (target, old, new, target))
        statements.append('DROP TABLE %s' % old)
    else:
        statements.append('RENAME TABLE %s TO %s' % (new, target))
    return statements


class MysqlMatview:
    """matview methods of the Mysql engine; self is the connected engine."""

    def matview_default_schema(self):
        schema = self.fetch_value('SELECT DATABASE()')
        if not schema:
            raise DbError('choose the database', None, 'give schema (the database) or login_db')
        return schema

    def matview_get(self, schema, name):
        self.fresh_table_statistics()
        row = self.fetch_one(
            """SELECT table_type AS table_type, table_comment AS table_comment, table_rows AS table_rows,
                      data_length + index_length AS size_bytes
                 FROM information_schema.tables WHERE table_schema = %s AND table_name = %s""", (schema, name))
        if row is None:
            return None
        parsed = parse_comment(row['table_comment']) if row['table_type'] == 'BASE TABLE' else None
        if parsed is None:
            raise DbError('manage materialized view', '%s.%s' % (schema, name),
                          'a table or view of that name exists and was not created by dbops.admin as a '
                          'materialized view; drop or rename it first')
        unique = [r['c'] for r in self.fetch_all(
            """SELECT column_name AS c FROM information_schema.statistics
                WHERE table_schema = %s AND table_name = %s AND index_name = %s ORDER BY seq_in_index""",
            (schema, name, UNIQUE_INDEX))]
        return {'schema': schema, 'name': name, 'hash': parsed[0], 'query': parsed[1],
                'definition': parsed[1], 'populated': parsed[2], 'rows': int(row['table_rows'] or 0),
                'size_bytes': int(row['size_bytes'] or 0),
                'unique_indexes': [{'name': UNIQUE_INDEX, 'columns': unique}] if unique else []}

    def matview_prepare(self, schema, name, query, unique_columns):
        query = clean_query(query)
        if self.fetch_value('SELECT 1 FROM information_schema.schemata WHERE schema_name = %s', (schema,)) is None:
            raise DbError('create materialized view', '%s.%s' % (schema, name), 'database %s does not exist' % schema)
        for suffix in ('__new', '__old'):
            self.quote_ident(name + suffix)  # refuses names too long for the swap tables
        try:
            with self._cursor() as cur:
                # validates the query without reading it (and without writing: also in check mode)
                cur.execute('SELECT * FROM (%s) AS dbops_q LIMIT 0' % query)
                columns = [d[0] for d in cur.description or []]
        except self.driver_errors as exc:
            detail = self.mask(driver_message(exc))
            if exc.args and exc.args[0] == 1046:  # ER_NO_DB_ERROR: an unqualified table and no login_db
                detail += ('; the query names a table without its database and the connection has none: qualify '
                           'the tables (database.table) or give login_db')
            raise DbError('create materialized view', '%s.%s' % (schema, name), detail) from None
        lower = {c.lower(): c for c in columns}
        if len(set(c.lower() for c in unique_columns or [])) != len(unique_columns or []):
            raise DbError('create materialized view', '%s.%s' % (schema, name),
                          'unique_columns names a column twice: %s' % ', '.join(unique_columns))
        for column in unique_columns or []:
            if column.lower() not in lower:
                raise DbError('create materialized view', '%s.%s' % (schema, name),
                              'unique column %s is not a column of the query (columns: %s)' % (column, ', '.join(columns)))
        return {'schema': schema, 'name': name, 'query': query, 'definition': normalize_query(query),
                'hash': query_hash(query), 'columns': columns, 'unique_columns': list(unique_columns or [])}

    def matview_same_definition(self, desired, current):
        return desired['hash'] == current['hash']

    def matview_has_unique(self, desired, current):
        if not desired.get('unique_columns'):
            return True
        existing = [ix['columns'] for ix in current.get('unique_indexes') or []]
        return any([c.lower() for c in cols] == [c.lower() for c in desired['unique_columns']] for cols in existing)

    def _matview_rebuild(self, desired, exists, with_data=True):
        operation = 'build materialized view table %s.%s' % (desired['schema'], desired['name'])
        for suffix in ('__new', '__old'):
            comment = self.fetch_value(
                'SELECT table_comment FROM information_schema.tables WHERE table_schema = %s AND table_name = %s',
                (desired['schema'], desired['name'] + suffix))
            if comment is not None and parse_comment(comment) is None:
                raise DbError(operation, None, 'table %s%s exists and is not a dbops.admin work table; '
                              'rename it first' % (desired['name'], suffix))
        statements = build_mysql_rebuild(desired['schema'], desired['name'], desired['query'],
                                         desired['unique_columns'], exists, self.quote_ident, self.quote_literal,
                                         with_data)
        try:
            for sql in statements:
                self.execute(sql, operation=operation)
        except DbError:
            try:
                self.execute('DROP TABLE IF EXISTS %s' % self.quote_qualified(desired['schema'], desired['name'] + '__new'))
            except DbError:
                pass
            raise

    def matview_create(self, desired, with_data=True):
        self._matview_rebuild(desired, exists=False, with_data=with_data)

    def matview_replace(self, desired, current, with_data=True):
        self._matview_rebuild(desired, exists=True, with_data=with_data)

    def matview_add_unique(self, desired, current):
        self._matview_rebuild(desired, exists=True)

    def matview_unique_index_name(self, name):
        return UNIQUE_INDEX

    def matview_refresh(self, current, concurrently=None, with_data=True, desired=None):
        """Rebuild and swap: readers see the old rows until the atomic RENAME TABLE."""
        if desired is None:
            if not current.get('query'):
                raise DbError('refresh materialized view', '%s.%s' % (current['schema'], current['name']),
                              'its query was too long to be kept in the table comment; give query')
            desired = {'schema': current['schema'], 'name': current['name'], 'query': current['query'],
                       'unique_columns': (current.get('unique_indexes') or [{}])[0].get('columns', [])}
        self._matview_rebuild(desired, exists=True, with_data=with_data)

    def matview_drop(self, current):
        self.execute('DROP TABLE %s' % self.quote_qualified(current['schema'], current['name']),
                     operation='drop materialized view table %s.%s' % (current['schema'], current['name']))

    def matview_summary(self, matview):
        if not matview:
            return {}
        return {'schema': matview['schema'], 'name': matview['name'], 'definition': matview.get('definition'),
                'populated': matview.get('populated', True), 'size_bytes': matview.get('size_bytes'),
                'unique_indexes': matview.get('unique_indexes', []), 'emulated': True,
                'rows': matview.get('rows')}
