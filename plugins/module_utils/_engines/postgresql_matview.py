# -*- coding: utf-8 -*-
# Copyright: dbops.admin contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Private to dbops.admin: Postgres engine, matview area (mixed into the PostgresEngine class).

The requested query is compared with the existing materialized view by the server's own
words: a temporary view of the query is created in a transaction that is always rolled
back and its ``pg_get_viewdef()`` is compared with the materialized view's.
"""

from __future__ import annotations

from ansible_collections.dbops.admin.plugins.module_utils._engines.postgresql_indexes import RELKIND_WORDS, check_sql_fragment
from ansible_collections.dbops.admin.plugins.module_utils._errors import DbError, driver_message

_PROBE = 'dbops_matview_probe'
# the COMMENT that marks <name>_dbops_new as the work copy a replace builds (and may drop when left behind)
WORK_COPY_MARK = 'dbops.admin work copy of %s.%s'


def clean_query(query):
    """The query as one SQL fragment, without trailing semicolons."""
    text = (query or '').strip()
    while text.endswith(';'):
        text = text[:-1].rstrip()
    return check_sql_fragment(text, 'materialized view query')


def fit_name(base, suffix, limit=63):
    """``base + suffix`` shortened to the identifier limit (bytes on PostgreSQL)."""
    while len((base + suffix).encode('utf-8')) > limit:
        base = base[:-1]
    return base + suffix


def build_pg_create_matview(qualified, query, with_data=True):
    return 'CREATE MATERIALIZED VIEW %s AS %s WITH %sDATA' % (qualified, query, '' if with_data else 'NO ')


def build_pg_refresh(qualified, concurrently=False, with_data=True):
    if not with_data:
        return 'REFRESH MATERIALIZED VIEW %s WITH NO DATA' % qualified
    return 'REFRESH MATERIALIZED VIEW %s%s' % ('CONCURRENTLY ' if concurrently else '', qualified)


class PostgresMatview:
    """matview methods of the Postgres engine; self is the connected engine."""

    def matview_default_schema(self):
        return self.fetch_value('SELECT current_schema()') or 'public'

    def matview_get(self, schema, name):
        row = self.fetch_one(
            """SELECT c.oid, c.relkind::text AS kind, c.relispopulated AS populated,
                      pg_total_relation_size(c.oid) AS size_bytes, obj_description(c.oid, 'pg_class') AS comment
                 FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
                WHERE n.nspname = %s AND c.relname = %s""", (schema, name))
        if row is None:
            return None
        if row['kind'] != 'm':
            # tables, views, indexes, sequences and types share one namespace with materialized views
            raise DbError('manage materialized view', '%s.%s' % (schema, name),
                          '%s of that name exists and is not a materialized view'
                          % RELKIND_WORDS.get(row['kind'], 'a table or view'))
        row['definition'] = self.fetch_value('SELECT pg_get_viewdef(%s::oid)', (row['oid'],))
        row['schema'], row['name'] = schema, name
        row['size_bytes'] = int(row['size_bytes'] or 0)
        row['unique_indexes'] = self._matview_unique_indexes(row['oid'])
        return row

    def _matview_unique_indexes(self, oid):
        """Unique, valid, non-partial indexes on plain columns: what REFRESH CONCURRENTLY can use."""
        rows = self.fetch_all(
            """SELECT ic.relname AS name,
                      ARRAY(SELECT a.attname FROM unnest(i.indkey) WITH ORDINALITY AS k(attnum, ord)
                              JOIN pg_attribute a ON a.attrelid = i.indrelid AND a.attnum = k.attnum
                             ORDER BY k.ord) AS columns
                 FROM pg_index i JOIN pg_class ic ON ic.oid = i.indexrelid
                WHERE i.indrelid = %s AND i.indisunique AND i.indisvalid AND i.indpred IS NULL
                  AND i.indexprs IS NULL
                ORDER BY ic.relname""", (oid,))
        return [{'name': r['name'], 'columns': list(r['columns'])} for r in rows]

    def matview_prepare(self, schema, name, query, unique_columns):
        """Validate the query on the server (rolled back) and return the desired dict."""
        query = clean_query(query)
        if self.fetch_value('SELECT 1 FROM pg_namespace WHERE nspname = %s', (schema,)) is None:
            raise DbError('create materialized view', '%s.%s' % (schema, name), 'schema %s does not exist' % schema)
        self._begin()
        try:
            with self._cursor() as cur:
                cur.execute('CREATE TEMPORARY VIEW %s AS %s' % (_PROBE, query))
                cur.execute("""SELECT pg_get_viewdef(c.oid),
                                      ARRAY(SELECT attname FROM pg_attribute
                                             WHERE attrelid = c.oid AND attnum > 0 ORDER BY attnum)
                                 FROM pg_class c
                                WHERE c.relnamespace = pg_my_temp_schema() AND c.relname = %s""", (_PROBE,))
                definition, columns = cur.fetchone()
        except self.driver_errors as exc:
            raise DbError('create materialized view', '%s.%s' % (schema, name), self.mask(driver_message(exc))) from None
        finally:
            self._rollback()
        for column in unique_columns or []:
            if column not in columns:
                raise DbError('create materialized view', '%s.%s' % (schema, name),
                              'unique column %s is not a column of the query (columns: %s)'
                              % (column, ', '.join(columns)))
        return {'schema': schema, 'name': name, 'query': query, 'definition': definition,
                'columns': list(columns), 'unique_columns': list(unique_columns or [])}

    def matview_same_definition(self, desired, current):
        return desired['definition'] == current['definition']

    def matview_has_unique(self, desired, current):
        if not desired.get('unique_columns'):
            return True
        return any(ix['columns'] == desired['unique_columns'] for ix in current.get('unique_indexes') or [])

    # ---- writes (recorded by execute(), skipped in check mode) -------------------------
    def _matview_unique_sql(self, schema, index_name, table_name, columns):
        return 'CREATE UNIQUE INDEX %s ON %s (%s)' % (
            self.quote_ident(index_name), self.quote_qualified(schema, table_name),
            ', '.join(self.quote_ident(c) for c in columns))

    def matview_unique_index_name(self, name):
        return fit_name(name, '_unique')

    def matview_create(self, desired, with_data=True):
        operation = 'create materialized view %s.%s' % (desired['schema'], desired['name'])
        with self.transaction():
            self.execute(build_pg_create_matview(self.quote_qualified(desired['schema'], desired['name']),
                                                 desired['query'], with_data), operation=operation)
            if desired['unique_columns']:
                self.execute(self._matview_unique_sql(desired['schema'], self.matview_unique_index_name(desired['name']),
                                                      desired['name'], desired['unique_columns']), operation=operation)

    def matview_replace(self, desired, current, with_data=True):
        """Build the new one beside the old, then swap in one short transaction."""
        schema, name = desired['schema'], desired['name']
        dependents = [r['name'] for r in self.fetch_all(
            """SELECT DISTINCT quote_ident(dn.nspname) || '.' || quote_ident(dc.relname) AS name
                 FROM pg_depend d
                 JOIN pg_rewrite r ON r.oid = d.objid AND d.classid = 'pg_rewrite'::regclass
                 JOIN pg_class dc ON dc.oid = r.ev_class
                 JOIN pg_namespace dn ON dn.oid = dc.relnamespace
                WHERE d.refclassid = 'pg_class'::regclass AND d.refobjid = %s AND dc.oid <> %s
                ORDER BY 1""", (current['oid'], current['oid']))]
        if dependents:
            # the swap drops the old view: refuse before building anything (also in check mode)
            raise DbError('replace materialized view', '%s.%s' % (schema, name),
                          'other objects depend on it (%s); drop or change them first' % ', '.join(dependents))
        temp = fit_name(name, '_dbops_new')
        temp_index = fit_name(name, '_dbops_new_unique')
        operation = 'replace materialized view %s.%s' % (schema, name)
        mark = WORK_COPY_MARK % (schema, name)
        if self._matview_leftover_work_copy(schema, name, temp, temp_index if desired['unique_columns'] else None):
            self.execute('DROP MATERIALIZED VIEW IF EXISTS %s' % self.quote_qualified(schema, temp),
                         operation=operation)
        with self.transaction():
            # created and marked as ours at once: only a marked copy is ever dropped as a leftover
            self.execute(build_pg_create_matview(self.quote_qualified(schema, temp), desired['query'], with_data),
                         operation=operation)
            self.execute('COMMENT ON MATERIALIZED VIEW %s IS %s' % (self.quote_qualified(schema, temp),
                                                                    self.quote_literal(mark)), operation=operation)
        try:
            if desired['unique_columns']:
                self.execute(self._matview_unique_sql(schema, temp_index, temp, desired['unique_columns']),
                             operation=operation)
            with self.transaction():
                self.execute('DROP MATERIALIZED VIEW %s' % self.quote_qualified(schema, name), operation=operation)
                rename = 'ALTER MATERIALIZED VIEW %s RENAME TO %s' % (
                    self.quote_qualified(schema, temp), self.quote_ident(name))
                self.execute(rename, operation=operation)
                if desired['unique_columns']:
                    self.execute('ALTER INDEX %s RENAME TO %s' % (
                        self.quote_qualified(schema, temp_index),
                        self.quote_ident(self.matview_unique_index_name(name))), operation=operation)
                # the renamed copy keeps its mark: give it the old view's comment (or none) instead
                self.execute('COMMENT ON MATERIALIZED VIEW %s IS %s' % (
                    self.quote_qualified(schema, name), self.quote_literal(current.get('comment'))),
                    operation=operation)
        except DbError:
            try:
                self.execute('DROP MATERIALIZED VIEW IF EXISTS %s' % self.quote_qualified(schema, temp))
            except DbError:
                pass
            raise

    def _matview_leftover_work_copy(self, schema, name, temp, temp_index=None):
        """Whether ``temp`` is a work copy of this view left behind by an interrupted replace (to drop).

        Only a materialized view carrying our COMMENT mark counts as ours; any other relation of that
        name (or of ``temp_index``, the name its unique index is built under, unless that index is on
        our work copy) is refused before anything changes, also in check mode.
        """
        mark = WORK_COPY_MARK % (schema, name)
        rows = self.fetch_all(
            """SELECT c.relname AS name, c.relkind::text AS kind, obj_description(c.oid, 'pg_class') AS comment,
                      tc.relname AS "table"
                 FROM pg_class c
                 JOIN pg_namespace n ON n.oid = c.relnamespace
                 LEFT JOIN pg_index i ON i.indexrelid = c.oid
                 LEFT JOIN pg_class tc ON tc.oid = i.indrelid
                WHERE n.nspname = %s AND c.relname IN (%s, %s)""", (schema, temp, temp_index or temp))
        found = {row['name']: row for row in rows}
        work = found.get(temp)
        ours = work is not None and work['kind'] == 'm' and work['comment'] == mark
        for relname in (temp, temp_index):
            row = found.get(relname)
            if row is None or (relname == temp and ours) or (relname == temp_index and ours and row['table'] == temp):
                continue
            what = RELKIND_WORDS.get(row['kind'], 'a relation')
            raise DbError('replace materialized view', '%s.%s' % (schema, name),
                          '%s named %s.%s exists and is not %sa dbops.admin work copy of this view (a materialized '
                          'view commented %s); rename or drop it first'
                          % (what, schema, relname, 'the unique index of ' if relname == temp_index else '',
                             self.quote_literal(mark)))
        return ours

    def matview_add_unique(self, desired, current):
        index_name = self.matview_unique_index_name(desired['name'])
        operation = 'create the unique index of materialized view %s.%s' % (desired['schema'], desired['name'])
        with self.transaction():
            if any(ix['name'] == index_name for ix in current.get('unique_indexes') or []):
                self.execute('DROP INDEX %s' % self.quote_qualified(desired['schema'], index_name), operation=operation)
            self.execute(self._matview_unique_sql(desired['schema'], index_name, desired['name'],
                                                  desired['unique_columns']), operation=operation)

    def matview_refresh(self, current, concurrently=None, with_data=True, desired=None):
        """REFRESH, CONCURRENTLY when asked (or, by default, when it can: populated and a unique index)."""
        qualified = self.quote_qualified(current['schema'], current['name'])
        has_unique = bool(current.get('unique_indexes')) or bool(desired and desired.get('unique_columns'))
        if concurrently and not has_unique:
            raise DbError('refresh materialized view concurrently', '%s.%s' % (current['schema'], current['name']),
                          'it needs a unique index on plain columns; give unique_columns')
        if concurrently is None:
            concurrently = has_unique
        if not current.get('populated', True):
            concurrently = False  # PostgreSQL refuses CONCURRENTLY on a view that was never populated
        self.execute(build_pg_refresh(qualified, concurrently and with_data, with_data),
                     operation='refresh materialized view %s.%s' % (current['schema'], current['name']))

    def matview_drop(self, current):
        self.execute('DROP MATERIALIZED VIEW %s' % self.quote_qualified(current['schema'], current['name']),
                     operation='drop materialized view %s.%s' % (current['schema'], current['name']))

    def matview_summary(self, matview):
        if not matview:
            return {}
        return {'schema': matview['schema'], 'name': matview['name'], 'definition': matview.get('definition'),
                'populated': matview.get('populated', True), 'size_bytes': matview.get('size_bytes'),
                'unique_indexes': matview.get('unique_indexes', []), 'emulated': False}
