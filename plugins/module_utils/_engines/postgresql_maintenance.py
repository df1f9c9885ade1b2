# -*- coding: utf-8 -*-
# Copyright: dbops.admin contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Private to dbops.admin: Postgres engine, maintenance area (mixed into the PostgresEngine class).

Statistics and upkeep per table (ANALYZE, VACUUM, REINDEX) with the staleness test and
the before/after timestamps read from pg_stat_user_tables.
"""

from __future__ import annotations

import datetime

from ansible_collections.dbops.admin.plugins.module_utils._errors import DbError

PG_MAINTENANCE_ACTIONS = ('analyze', 'vacuum', 'vacuum_analyze', 'vacuum_full', 'reindex')
_PG_HINTS = {
    'optimize': 'optimize is a MySQL/MariaDB action; on PostgreSQL use vacuum_full (rewrites the table) '
                'or vacuum_analyze',
    'histogram': 'histogram is a MySQL/MariaDB action; PostgreSQL builds histograms with analyze '
                 '(raise the detail with ALTER TABLE ... ALTER COLUMN ... SET STATISTICS)',
}


def jsonable(value):
    """Timestamps as ISO 8601 text, so results are plain JSON."""
    if isinstance(value, (datetime.datetime, datetime.date)):
        return value.isoformat()
    return value


def is_stale(modified, rows, ratio, min_rows):
    """Stale when the modified rows reach both the absolute and the relative threshold; a table
    without a single modified row never is (thresholds of 0 must not make every run a change)."""
    modified = max(int(modified or 0), 0)
    rows = max(float(rows or 0), 0.0)
    return modified > 0 and modified >= min_rows and modified >= ratio * rows


def split_table_name(item, default_schema):
    """``schema.table`` or ``table``; a table whose own name has a dot is given as ``schema.table``."""
    if '.' in item:
        schema, table = item.split('.', 1)
        if schema and table:
            return schema, table
    return default_schema, item


def build_pg_maintenance(action, qualified, concurrently=True, version_num=150000):
    """The statement of one action on one (already quoted) table."""
    if action == 'analyze':
        return 'ANALYZE %s' % qualified
    if action == 'vacuum':
        return 'VACUUM %s' % qualified
    if action == 'vacuum_analyze':
        return 'VACUUM (ANALYZE) %s' % qualified
    if action == 'vacuum_full':
        return 'VACUUM (FULL) %s' % qualified
    if action == 'reindex':
        if concurrently and version_num >= 120000:
            return 'REINDEX TABLE CONCURRENTLY %s' % qualified
        return 'REINDEX TABLE %s' % qualified
    raise DbError('run %s' % action, 'on PostgreSQL', _PG_HINTS.get(action, 'unknown action'))


class PostgresMaintenance:
    """maintenance methods of the Postgres engine; self is the connected engine."""

    _MAINTENANCE_STATS = """
        SELECT n.nspname AS schema, c.relname AS "table", c.relkind::text AS kind,
               GREATEST(c.reltuples, 0)::bigint AS reltuples,
               COALESCE(s.n_live_tup, 0) AS n_live_tup, COALESCE(s.n_dead_tup, 0) AS n_dead_tup,
               COALESCE(s.n_mod_since_analyze, 0) AS n_mod_since_analyze,
               s.last_analyze, s.last_autoanalyze, s.last_vacuum, s.last_autovacuum,
               COALESCE(s.analyze_count, 0) AS analyze_count, COALESCE(s.vacuum_count, 0) AS vacuum_count,
               pg_total_relation_size(c.oid) AS size_bytes,
               pg_has_role(c.relowner, 'USAGE') AS is_owner,
               pg_has_role((SELECT datdba FROM pg_database WHERE datname = current_database()), 'USAGE')
                 AS is_database_owner
          FROM pg_class c
          JOIN pg_namespace n ON n.oid = c.relnamespace
          LEFT JOIN pg_stat_user_tables s ON s.relid = c.oid
         WHERE c.relkind IN ('r', 'm', 'p')
           AND n.nspname NOT IN ('pg_catalog', 'information_schema')
           AND n.nspname !~ '^pg_(toast|temp_)'"""

    def maintenance_check_action(self, action):
        if action not in PG_MAINTENANCE_ACTIONS:
            raise DbError('run %s' % action, 'on PostgreSQL', _PG_HINTS.get(action, 'unknown action'))

    # a database or schema scope takes the partitions themselves: an action on a partitioned table
    # recurses into every partition, so taking the parent as well would do the work twice
    _NOT_PARTITIONED = " AND c.relkind <> 'p'"

    def maintenance_tables(self, schema=None, tables=None):
        """The tables in scope with their statistics; a missing table or schema is an error.
        A partitioned table named in ``tables`` is taken (the action recurses into its partitions)."""
        if tables:
            default_schema = schema or self.fetch_value('SELECT current_schema()') or 'public'
            found, missing = [], []
            for item in tables:
                wanted_schema, wanted_table = split_table_name(item, default_schema)
                row = self.fetch_one(self._MAINTENANCE_STATS + ' AND n.nspname = %s AND c.relname = %s',
                                     (wanted_schema, wanted_table))
                if row is None and '.' in item:
                    row = self.fetch_one(self._MAINTENANCE_STATS + ' AND n.nspname = %s AND c.relname = %s',
                                         (default_schema, item))
                if row is None:
                    missing.append('%s.%s' % (wanted_schema, wanted_table))
                elif row not in found:
                    found.append(row)
            if missing:
                raise DbError('maintain', ', '.join(missing), 'no such table')
            return found
        if schema:
            if self.fetch_value('SELECT 1 FROM pg_namespace WHERE nspname = %s', (schema,)) is None:
                raise DbError('maintain', 'schema %s' % schema, 'no such schema')
            return self.fetch_all(self._MAINTENANCE_STATS + self._NOT_PARTITIONED + ' AND n.nspname = %s ORDER BY 1, 2',
                                  (schema,))
        return self.fetch_all(self._MAINTENANCE_STATS + self._NOT_PARTITIONED + ' ORDER BY 1, 2')

    def maintenance_permitted(self, table, action):
        """Whether the server would do the action: VACUUM and ANALYZE of a table the user may not
        maintain only print a warning and skip it, REINDEX TABLE needs the table's owner."""
        if table.get('is_owner'):
            return True
        return action != 'reindex' and bool(table.get('is_database_owner'))

    def maintenance_table_stats(self, table):
        row = self.fetch_one(self._MAINTENANCE_STATS + ' AND n.nspname = %s AND c.relname = %s',
                             (table['schema'], table['table']))
        return self.maintenance_view(row)

    def maintenance_view(self, row):
        """The timestamps and counters a DBA compares before and after."""
        if row is None:
            return None
        keys = ('last_analyze', 'last_autoanalyze', 'last_vacuum', 'last_autovacuum', 'analyze_count',
                'vacuum_count', 'n_mod_since_analyze', 'n_dead_tup', 'n_live_tup', 'size_bytes')
        return {key: jsonable(row.get(key)) for key in keys}

    def maintenance_modified(self, table, action):
        """Rows modified since the last ANALYZE (dead rows for VACUUM actions) and the table size."""
        if action in ('vacuum', 'vacuum_full'):
            modified = table['n_dead_tup']
        elif action == 'vacuum_analyze':
            modified = max(table['n_dead_tup'], table['n_mod_since_analyze'])
        else:
            modified = table['n_mod_since_analyze']
        rows = max(table['reltuples'], table['n_live_tup'])
        return int(modified), int(rows)

    def maintenance_is_stale(self, table, action, ratio, min_rows):
        modified, rows = self.maintenance_modified(table, action)
        return is_stale(modified, rows, ratio, min_rows)

    def maintenance_statement(self, action, table, options):
        qualified = self.quote_qualified(table['schema'], table['table'])
        return build_pg_maintenance(action, qualified, options.get('concurrently', True), self.version_num)

    def maintenance_run(self, action, table, options):
        """Run one action on one table (recorded; skipped in check mode). Returns the server's
        warnings and notices: VACUUM, ANALYZE and REINDEX skip what they cannot do (an invalid index
        with REINDEX CONCURRENTLY, say) with only a warning."""
        notices = getattr(getattr(self, 'conn', None), 'notices', None)
        seen = len(notices) if isinstance(notices, list) else None
        if seen:
            del notices[:]  # psycopg2 keeps only the last 50: start from an empty list
            seen = 0
        self.execute(self.maintenance_statement(action, table, options),
                     operation='%s %s.%s' % (action.replace('_', ' '), table['schema'], table['table']))
        if seen is None:
            return []
        return [self.mask(' '.join(str(n).split())) for n in notices[seen:]]
