# -*- coding: utf-8 -*-
# Copyright: dbops.admin contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Private to dbops.admin: Mysql engine, maintenance area (mixed into the MysqlEngine class).

ANALYZE/OPTIMIZE TABLE report failures as result rows, not as errors, so those rows are
read and an ``error`` row becomes a DbError. Staleness uses InnoDB's in-memory counter of
rows modified since the last statistics recalculation (MODIFIED_COUNTER).
"""

from __future__ import annotations

from ansible_collections.dbops.admin.plugins.module_utils._engines.postgresql_maintenance import (
    is_stale,
    jsonable,
    split_table_name,
)
from ansible_collections.dbops.admin.plugins.module_utils._errors import DbError

MYSQL_MAINTENANCE_ACTIONS = ('analyze', 'optimize', 'reindex', 'histogram')
_MYSQL_HINTS = {
    'vacuum': 'vacuum is a PostgreSQL action; on MySQL/MariaDB use optimize (rebuilds the table and its statistics)',
    'vacuum_analyze': 'vacuum_analyze is a PostgreSQL action; on MySQL/MariaDB use optimize or analyze',
    'vacuum_full': 'vacuum_full is a PostgreSQL action; on MySQL/MariaDB use optimize',
}
# column types MySQL 8 cannot build a histogram for
_NO_HISTOGRAM_TYPES = ('json', 'geometry', 'point', 'linestring', 'polygon', 'multipoint', 'multilinestring',
                       'multipolygon', 'geometrycollection')


def innodb_internal_name(schema, table):
    """InnoDB's ``db/table`` name: characters other than ASCII letters, digits and ``_`` are
    written as ``@xxxx`` (exact for ASCII; other characters may be spelt differently)."""
    def encode(text):
        return ''.join(c if (c.isascii() and (c.isalnum() or c == '_')) else '@%04x' % ord(c) for c in text)
    return '%s/%s' % (encode(schema), encode(table))


def build_mysql_maintenance(action, qualified, flavor, quote_ident, columns=None, buckets=100):
    """The statement of one action on one (already quoted) table."""
    if action == 'analyze':
        return 'ANALYZE TABLE %s' % qualified
    if action == 'optimize':
        return 'OPTIMIZE TABLE %s' % qualified
    if action == 'reindex':
        return 'ALTER TABLE %s FORCE' % qualified
    if action == 'histogram':
        if flavor == 'mariadb':
            if columns:
                return 'ANALYZE TABLE %s PERSISTENT FOR COLUMNS (%s) INDEXES ALL' % (
                    qualified, ', '.join(quote_ident(c) for c in columns))
            return 'ANALYZE TABLE %s PERSISTENT FOR ALL' % qualified
        if not columns:
            raise DbError('build histograms on', qualified, 'the table has no column a histogram can be built on')
        return 'ANALYZE TABLE %s UPDATE HISTOGRAM ON %s WITH %d BUCKETS' % (
            qualified, ', '.join(quote_ident(c) for c in columns), int(buckets))
    raise DbError('run %s' % action, 'on MySQL/MariaDB', _MYSQL_HINTS.get(action, 'unknown action'))


def admin_errors(rows):
    """Messages of the ``error`` rows ANALYZE/OPTIMIZE TABLE return instead of raising."""
    return [str(r.get('Msg_text')) for r in rows if str(r.get('Msg_type', '')).lower() == 'error']


def admin_warnings(rows):
    return [str(r.get('Msg_text')) for r in rows if str(r.get('Msg_type', '')).lower() in ('warning', 'note')]


class MysqlMaintenance:
    """maintenance methods of the Mysql engine; self is the connected engine."""

    def maintenance_check_action(self, action):
        if action not in MYSQL_MAINTENANCE_ACTIONS:
            raise DbError('run %s' % action, 'on MySQL/MariaDB', _MYSQL_HINTS.get(action, 'unknown action'))

    def _maintenance_schema(self, schema):
        schema = schema or self.fetch_value('SELECT DATABASE()')
        if not schema:
            raise DbError('choose the database', None, 'give schema, database or login_db')
        return schema

    def maintenance_tables(self, schema=None, tables=None):
        schema = self._maintenance_schema(schema)
        self.fresh_table_statistics()  # update_time, table_rows and sizes as they are now
        query = """SELECT table_schema AS `schema`, table_name AS `table`, engine AS engine, table_rows AS table_rows,
                          update_time AS update_time, create_time AS create_time,
                          data_length + index_length AS size_bytes
                     FROM information_schema.tables
                    WHERE table_type IN ('BASE TABLE', 'SYSTEM VERSIONED') AND table_schema = %s"""
        if tables:
            found, missing = [], []
            for item in tables:
                wanted_schema, wanted_table = split_table_name(item, schema)
                row = self.fetch_one(query + ' AND table_name = %s', (wanted_schema, wanted_table))
                if row is None and '.' in item:
                    row = self.fetch_one(query + ' AND table_name = %s', (schema, item))
                if row is None:
                    missing.append('%s.%s' % (wanted_schema, wanted_table))
                elif row not in found:
                    found.append(row)
            if missing:
                raise DbError('maintain', ', '.join(missing), 'no such table')
            rows = found
        else:
            if self.fetch_value('SELECT 1 FROM information_schema.schemata WHERE schema_name = %s', (schema,)) is None:
                raise DbError('maintain', 'database %s' % schema, 'no such database')
            rows = self.fetch_all(query + ' ORDER BY table_name', (schema,))
        return [self._maintenance_enrich(row) for row in rows]

    def _maintenance_enrich(self, row):
        stats_table = 'INNODB_SYS_TABLESTATS' if self.flavor == 'mariadb' else 'INNODB_TABLESTATS'
        counter = self.fetch_one('SELECT num_rows AS num_rows, modified_counter AS modified_counter '
                                 'FROM information_schema.%s WHERE name = %%s'
                                 % stats_table, (innodb_internal_name(row['schema'], row['table']),))
        row['modified_rows'] = int(counter['modified_counter']) if counter else 0
        row['rows'] = int(counter['num_rows']) if counter else int(row.get('table_rows') or 0)
        row['last_analyze'] = self.fetch_value(
            'SELECT last_update FROM mysql.innodb_table_stats WHERE database_name = %s AND table_name = %s',
            (row['schema'], row['table']))
        if self.flavor == 'mariadb':
            row['histogram_columns'] = int(self.fetch_value(
                """SELECT COUNT(*) FROM mysql.column_stats
                    WHERE db_name = %s AND table_name = %s AND histogram IS NOT NULL""",
                (row['schema'], row['table'])) or 0)
            row['persistent_stats'] = self.fetch_value(
                'SELECT 1 FROM mysql.table_stats WHERE db_name = %s AND table_name = %s',
                (row['schema'], row['table'])) is not None
        else:
            row['histogram_columns'] = int(self.fetch_value(
                """SELECT COUNT(*) FROM information_schema.column_statistics
                    WHERE schema_name = %s AND table_name = %s""", (row['schema'], row['table'])) or 0)
            row['persistent_stats'] = row['histogram_columns'] > 0
        return row

    def maintenance_permitted(self, table, action):
        return True  # a missing privilege is an error the server reports

    def maintenance_table_stats(self, table):
        rows = self.maintenance_tables(table['schema'], ['%s.%s' % (table['schema'], table['table'])])
        return self.maintenance_view(rows[0] if rows else None)

    def maintenance_view(self, row):
        if row is None:
            return None
        keys = ('last_analyze', 'update_time', 'create_time', 'modified_rows', 'rows', 'size_bytes',
                'histogram_columns')
        return {key: jsonable(row.get(key)) for key in keys}

    def maintenance_modified(self, table, action):
        return int(table['modified_rows']), int(table['rows'])

    def maintenance_is_stale(self, table, action, ratio, min_rows):
        modified, rows = self.maintenance_modified(table, action)
        if action == 'histogram' and not table.get('persistent_stats') and rows >= min_rows:
            return True  # never had persistent statistics / histograms
        return is_stale(modified, rows, ratio, min_rows)

    def _maintenance_histogram_columns(self, table):
        """MySQL 8: every column a histogram can be built on (not JSON/spatial, not alone in a unique index)."""
        columns = self.fetch_all(
            """SELECT column_name AS c, data_type AS t FROM information_schema.columns
                WHERE table_schema = %s AND table_name = %s ORDER BY ordinal_position""",
            (table['schema'], table['table']))
        single_unique = set(r['c'] for r in self.fetch_all(
            """SELECT MIN(column_name) AS c FROM information_schema.statistics
                WHERE table_schema = %s AND table_name = %s AND non_unique = 0
                GROUP BY index_name HAVING COUNT(*) = 1""", (table['schema'], table['table'])))
        return [r['c'] for r in columns if str(r['t']).lower() not in _NO_HISTOGRAM_TYPES and r['c'] not in single_unique]

    def maintenance_statement(self, action, table, options):
        qualified = self.quote_qualified(table['schema'], table['table'])
        columns = options.get('columns')
        if action == 'histogram' and columns:
            # the server answers an unknown column with a bare "Invalid argument" (MariaDB)
            existing = {r['c'].lower(): r['c'] for r in self.fetch_all(
                """SELECT column_name AS c FROM information_schema.columns
                    WHERE table_schema = %s AND table_name = %s""", (table['schema'], table['table']))}
            missing = [c for c in columns if c.lower() not in existing]
            if missing:
                raise DbError('build histograms on', '%s.%s' % (table['schema'], table['table']),
                              'no such column: %s' % ', '.join(missing))
            columns = [existing[c.lower()] for c in columns]
        if action == 'histogram' and self.flavor != 'mariadb' and not columns:
            columns = self._maintenance_histogram_columns(table)
        return build_mysql_maintenance(action, qualified, self.flavor, self.quote_ident, columns,
                                       options.get('buckets') or 100)

    def maintenance_run(self, action, table, options):
        """Run one action; recorded like execute() and skipped in check mode. Returns warnings."""
        sql = self.maintenance_statement(action, table, options)
        operation = '%s %s.%s' % (action, table['schema'], table['table'])
        if action == 'reindex':
            self.execute(sql, operation=operation)
            return []
        # ANALYZE/OPTIMIZE TABLE answer with result rows, so they are read rather than executed
        self.queries.append(self.render(sql))
        if self.check_mode:
            return []
        rows = self.fetch_all(sql, operation=operation)
        errors = admin_errors(rows)
        if errors:
            raise DbError(operation, None, '; '.join(errors))
        return admin_warnings(rows)
