# -*- coding: utf-8 -*-
# Copyright: dbops.admin contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Private to dbops.admin: PostgreSQL engine, advisor area (mixed into the PostgresEngine class).

EXPLAIN, hypothetical indexes (HypoPG), index hygiene from the catalog and workload reading
from pg_stat_statements. The advisor runs inside one transaction that is always rolled
back: EXPLAIN ANALYZE of a write and a temporary CREATE EXTENSION hypopg leave nothing
behind. Every query runs under a savepoint so one failing query never spoils the others.
"""

from __future__ import annotations

import contextlib
import json
import math

from ansible_collections.dbops.admin.plugins.module_utils._errors import DbError, driver_message

SYSTEM_SCHEMAS = ('pg_catalog', 'information_schema')
LARGE_TABLE_ROWS = 100000
MISESTIMATE_FACTOR = 10.0
PGSTATINDEX_MAX_BYTES = 1 << 30   # pgstatindex reads the whole index: bigger ones are estimated
SCAN_NODES = ('Seq Scan', 'Index Scan', 'Index Only Scan', 'Bitmap Heap Scan', 'Tid Scan', 'Tid Range Scan',
              'Sample Scan')


class PostgresAdvisor:
    """advisor methods of the Postgres engine; self is the connected engine."""

    # ---- session -------------------------------------------------------------------------
    @contextlib.contextmanager
    def advisor_session(self, use_hypopg=True, timeout_seconds=None):
        """One transaction for the whole analysis, rolled back at the end.

        Yields a dict {hypopg: bool, hypopg_created: bool, hypopg_note}. HypoPG is used when
        installed in the database, or created inside this transaction when the server has it
        and the login may create it (then it disappears with the rollback).
        """
        state = {'hypopg': False, 'hypopg_created': False, 'hypopg_note': None}
        self.conn.autocommit = False
        self._advisor_stmt = 0
        try:
            if timeout_seconds:
                self._adv_fetch("SELECT set_config('statement_timeout', %s, true)",
                                ('%ds' % int(timeout_seconds),), keep=True)
            if use_hypopg:
                installed = self.fetch_value("SELECT extversion FROM pg_extension WHERE extname = 'hypopg'")
                if installed:
                    state['hypopg'] = True
                else:
                    available = self.fetch_value(
                        "SELECT default_version FROM pg_available_extensions WHERE name = 'hypopg'")
                    if not available:
                        state['hypopg_note'] = 'the hypopg extension is not installed on the server'
                    else:
                        try:
                            self._adv_fetch('CREATE EXTENSION IF NOT EXISTS hypopg', fetch=False, keep=True)
                            state['hypopg'] = True
                            state['hypopg_created'] = True
                        except DbError as exc:
                            state['hypopg_note'] = 'hypopg could not be created: %s' % exc.detail
            yield state
        finally:
            try:
                self.conn.rollback()
            finally:
                self.conn.autocommit = True

    def _adv_all(self, sql, params=None):
        """A catalog read: under a savepoint inside the advisor's transaction, so that a failure
        cannot abort the transaction for the queries still to analyze."""
        if self.conn.autocommit:
            return self.fetch_all(sql, params)
        return self._adv_fetch(sql, params, operation='read the catalog')

    def _adv_one(self, sql, params=None):
        rows = self._adv_all(sql, params)
        return rows[0] if rows else None

    def _adv_value(self, sql, params=None):
        row = self._adv_one(sql, params)
        return next(iter(row.values())) if row else None

    def _adv_fetch(self, sql, params=None, fetch=True, keep=False, operation='analyze'):
        """Run one statement under a savepoint; rolled back unless keep (hypothetical indexes
        survive a rollback: they live in the backend, not in the catalog)."""
        cur = self.conn.cursor()
        try:
            cur.execute('SAVEPOINT dbops_advisor')
            try:
                cur.execute(sql, params)
                rows = cur.fetchall() if fetch and cur.description is not None else []
                cols = [d[0] for d in cur.description] if fetch and cur.description is not None else []
            except self.driver_errors as exc:
                cur.execute('ROLLBACK TO SAVEPOINT dbops_advisor')
                raise DbError(operation, 'the query' if operation == 'analyze' else None,
                              self.mask(driver_message(exc))) from None
            cur.execute(('RELEASE' if keep else 'ROLLBACK TO') + ' SAVEPOINT dbops_advisor')
            return [dict(zip(cols, row)) for row in rows]
        finally:
            cur.close()

    # ---- EXPLAIN ---------------------------------------------------------------------------
    def advisor_explain(self, sql, analyze=False, generic=False):
        """The JSON plan of one statement (ANALYZE runs it; everything is rolled back).

        generic: the statement has $n parameters (pg_stat_statements): it is PREPAREd and its
        generic plan explained, which does not depend on the parameter values.
        """
        options = 'ANALYZE, BUFFERS, FORMAT JSON' if analyze else 'FORMAT JSON'
        if not generic:
            rows = self._adv_fetch('EXPLAIN (%s) %s' % (options, sql))  # no parameters: % is not special
            return _plan_of(rows)
        self._advisor_stmt += 1
        name = 'dbops_advisor_%d' % self._advisor_stmt
        cur = self.conn.cursor()
        prepared = False
        try:
            cur.execute('SAVEPOINT dbops_advisor')
            try:
                cur.execute("SELECT set_config('plan_cache_mode', 'force_generic_plan', true)")
                cur.execute('PREPARE %s AS %s' % (name, sql))
                prepared = True
                cur.execute('SELECT cardinality(parameter_types) FROM pg_prepared_statements WHERE name = %s',
                            (name,))
                nparams = cur.fetchone()[0] or 0
                args = '(%s)' % ', '.join(['NULL'] * nparams) if nparams else ''
                cur.execute('EXPLAIN (FORMAT JSON) EXECUTE %s%s' % (name, args))
                rows = [{'plan': cur.fetchone()[0]}]
            except self.driver_errors as exc:
                cur.execute('ROLLBACK TO SAVEPOINT dbops_advisor')
                message = driver_message(exc)
                if getattr(exc, 'pgcode', None) == '42601':   # syntax error
                    message += (' (a statement with parameters is explained through PREPARE, which needs $1, $2 ... '
                                'placeholders, not ? or %s, and the constants the syntax wants written out, such as '
                                "DATE '2024-01-01', INTERVAL '1 day' or the field of EXTRACT(YEAR FROM ...), which "
                                'pg_stat_statements replaces with $n too; give this statement with its values in '
                                'queries)')
                raise DbError('analyze', 'the query', self.mask(message)) from None
            cur.execute('ROLLBACK TO SAVEPOINT dbops_advisor')
            return _plan_of(rows)
        finally:
            # a PREPARE that failed left nothing to deallocate (and a failing DEALLOCATE would abort
            # the advisor's transaction for every query still to analyze)
            if prepared:
                cur.execute('DEALLOCATE %s' % name)
            cur.close()

    def advisor_plan_summary(self, raw, analyze=False, table_rows=None):
        """{operation, rows_examined, total_cost, nodes, ...} and plan warnings from a JSON plan."""
        return summarize_plan(raw, analyze=analyze, table_rows=table_rows or {})

    # ---- catalog ---------------------------------------------------------------------------
    def advisor_resolve_tables(self, keys):
        """{(schema, name) as written: {schema, name, oid, system, rows, pages}} (None when missing)."""
        out = {}
        for key in keys:
            schema, name = key
            qualified = self.quote_qualified(schema, name) if schema else self.quote_ident(name)
            row = self._adv_one(
                "SELECT c.oid, n.nspname AS schema, c.relname AS name, c.relkind, "
                "c.reltuples::float8 AS rows, c.relpages AS pages FROM pg_class c "
                "JOIN pg_namespace n ON n.oid = c.relnamespace WHERE c.oid = to_regclass(%s)",
                (qualified,))
            if row is None:
                out[key] = None
                continue
            row['system'] = row['schema'] in SYSTEM_SCHEMAS or row['schema'].startswith('pg_toast')
            row['rows'] = max(float(row['rows'] or 0), 0.0)
            out[key] = row
        return out

    def advisor_columns(self, oids):
        """{oid: {column: type}} for the given tables."""
        if not oids:
            return {}
        rows = self._adv_all(
            "SELECT attrelid AS oid, attname, format_type(atttypid, atttypmod) AS type FROM pg_attribute "
            "WHERE attrelid = ANY(%s) AND attnum > 0 AND NOT attisdropped", (list(oids),))
        out = {}
        for row in rows:
            out.setdefault(row['oid'], {})[row['attname']] = row['type']
        return out

    def advisor_indexes(self, oids=None):
        """Indexes of the given tables (all user tables when None) with their definition parts."""
        where = "n.nspname NOT IN ('pg_catalog', 'information_schema') AND n.nspname NOT LIKE 'pg_toast%%'"
        params = None
        if oids is not None:
            where = 'i.indrelid = ANY(%s)'
            params = (list(oids),)
        return self._adv_all(
            "SELECT i.indexrelid AS oid, i.indrelid AS table_oid, n.nspname AS schema, ct.relname AS table, "
            "ci.relname AS name, am.amname AS method, i.indisunique AS unique, i.indisprimary AS primary, "
            "i.indisvalid AS valid, i.indnkeyatts AS nkeys, i.indkey::text AS indkey, i.indclass::text AS indclass, "
            "i.indcollation::text AS indcollation, i.indoption::text AS indoption, "
            "pg_get_expr(i.indexprs, i.indrelid) AS exprs, "
            "pg_get_expr(i.indpred, i.indrelid) AS predicate, pg_get_indexdef(i.indexrelid) AS definition, "
            "pg_relation_size(i.indexrelid) AS size_bytes, ci.relpages AS pages, ci.reltuples::float8 AS tuples, "
            "CASE WHEN ci.relkind = 'I' THEN (WITH RECURSIVE pt(relid) AS (SELECT i.indexrelid UNION ALL "
            " SELECT h.inhrelid FROM pg_inherits h JOIN pt ON h.inhparent = pt.relid) "
            " SELECT sum(ps.idx_scan) FROM pt JOIN pg_stat_all_indexes ps ON ps.indexrelid = pt.relid) "
            "ELSE s.idx_scan END AS idx_scan, "
            "ci.relkind = 'I' AS partitioned, "
            "EXISTS (SELECT 1 FROM pg_inherits h WHERE h.inhrelid = i.indexrelid) AS attached, "
            "EXISTS (SELECT 1 FROM pg_constraint k WHERE k.conindid = i.indexrelid) AS backs_constraint, "
            "(SELECT array_agg(a.attname ORDER BY k.ord) FROM unnest(i.indkey::int2[]) WITH ORDINALITY k(attnum, ord) "
            " LEFT JOIN pg_attribute a ON a.attrelid = i.indrelid AND a.attnum = k.attnum "
            " WHERE k.ord <= i.indnkeyatts) AS columns, "
            "(SELECT array_agg((k.coll IN (0, 100) OR k.coll = a.attcollation) AND coalesce(oc.opcdefault, false) "
            "  ORDER BY k.ord) FROM unnest(i.indkey::int2[], i.indcollation::oid[], i.indclass::oid[]) "
            "  WITH ORDINALITY k(attnum, coll, cls, ord) "
            " LEFT JOIN pg_attribute a ON a.attrelid = i.indrelid AND a.attnum = k.attnum "
            " LEFT JOIN pg_opclass oc ON oc.oid = k.cls WHERE k.ord <= i.indnkeyatts) AS plain_keys, "
            "(SELECT array_agg(pg_get_indexdef(i.indexrelid, k.ord, true) ORDER BY k.ord) "
            " FROM generate_series(1, i.indnkeyatts::int) k(ord)) AS key_defs, "
            "(SELECT bool_or(k.attnum = 0) FROM unnest(i.indkey::int2[]) AS k(attnum)) AS has_expressions, "
            "(SELECT coalesce(sum(st.avg_width), 0) FROM unnest(i.indkey::int2[]) AS k(attnum) "
            " JOIN pg_attribute a ON a.attrelid = i.indrelid AND a.attnum = k.attnum "
            " LEFT JOIN pg_stats st ON st.schemaname = n.nspname AND st.tablename = ct.relname "
            "  AND st.attname = a.attname) AS data_width "
            "FROM pg_index i JOIN pg_class ci ON ci.oid = i.indexrelid JOIN pg_class ct ON ct.oid = i.indrelid "
            "JOIN pg_namespace n ON n.oid = ct.relnamespace JOIN pg_am am ON am.oid = ci.relam "
            "LEFT JOIN pg_stat_all_indexes s ON s.indexrelid = i.indexrelid "
            "WHERE " + where + " ORDER BY n.nspname, ct.relname, ci.relname", params)

    def advisor_existing_indexes(self, oids):
        """Existing indexes: key columns (None for an expression) and each key's definition.

        Only the leading keys with the column's collation and the default operator class count: an
        index on (email COLLATE "C") or (email text_pattern_ops) cannot serve every comparison or
        order a plain index on email serves, so it does not make that candidate redundant.
        """
        out = []
        for idx in self.advisor_indexes(oids):
            columns, key_defs = list(idx['columns'] or []), list(idx['key_defs'] or [])
            plain = list(idx['plain_keys'] or [])
            usable = next((i for i, ok in enumerate(plain) if not ok), len(plain))
            out.append({'table_oid': idx['table_oid'], 'name': idx['name'], 'method': idx['method'],
                        'valid': idx['valid'], 'partial': idx['predicate'] is not None,
                        'columns': columns[:usable], 'key_defs': key_defs[:usable],
                        'unique': idx['unique']})
        return out

    def advisor_column_stats(self, oid, columns=()):  # pylint: disable=unused-argument
        """{'rows': estimated rows, 'distinct': {column: distinct values}} from pg_stats."""
        info = self._adv_one("SELECT c.reltuples::float8 AS rows, n.nspname, c.relname FROM pg_class c "
                             "JOIN pg_namespace n ON n.oid = c.relnamespace WHERE c.oid = %s", (oid,))
        if info is None:
            return {'rows': 0, 'distinct': {}}
        rows = max(float(info['rows'] or 0), 0.0)
        distinct = {}
        for st in self._adv_all("SELECT attname, n_distinct::float8 AS nd, null_frac::float8 AS nf "
                                "FROM pg_stats WHERE schemaname = %s AND tablename = %s",
                                (info['nspname'], info['relname'])):
            nd = st['nd'] or 0
            distinct[st['attname']] = (-nd * rows) if nd < 0 else nd
        return {'rows': rows, 'distinct': distinct}

    def advisor_relation_name_taken(self, schema, name):
        return self._adv_value('SELECT to_regclass(%s) IS NOT NULL',
                               (self.quote_qualified(schema, name),))

    # ---- hypothetical indexes -------------------------------------------------------------
    def _index_keys(self, columns):
        # expressions come from the parser, regenerated with every identifier quoted
        return ', '.join(c if c.startswith('(') else self.quote_ident(c) for c in columns)

    def advisor_hypo_create(self, schema, table, columns):
        """Create a hypothetical btree index; returns its oid (session-local, nothing written)."""
        stmt = 'CREATE INDEX ON %s (%s)' % (self.quote_qualified(schema, table), self._index_keys(columns))
        rows = self._adv_fetch('SELECT indexrelid FROM hypopg_create_index(%s)', (stmt,), keep=True)
        return rows[0]['indexrelid']

    def advisor_hypo_drop(self, oid):
        self._adv_fetch('SELECT hypopg_drop_index(%s)', (oid,), keep=True)

    def advisor_hypo_reset(self):
        self._adv_fetch('SELECT hypopg_reset()', keep=True)

    def advisor_hypo_size(self, oid):
        try:
            return self._adv_fetch('SELECT hypopg_relation_size(%s) AS size', (oid,))[0]['size']
        except DbError:
            return None

    def advisor_index_statement(self, schema, table, name, columns, relkind=None):
        # PostgreSQL cannot build the index of a partitioned table concurrently
        return 'CREATE INDEX %s%s ON %s (%s)' % (
            '' if relkind == 'p' else 'CONCURRENTLY ', self.quote_ident(name), self.quote_qualified(schema, table),
            self._index_keys(columns))

    # ---- workload --------------------------------------------------------------------------
    def advisor_workload(self, source, min_calls=1, min_time_ms=0.0, limit=50, log_text=None):
        """[{query, calls, mean_ms, total_ms}] from pg_stat_statements (or a log text)."""
        if source != 'pg_stat_statements':
            raise DbError('read the workload from', source,
                          'PostgreSQL reads pg_stat_statements, or a server log file given as slow_log_path')
        schema = self.fetch_value(
            "SELECT n.nspname FROM pg_extension e JOIN pg_namespace n ON n.oid = e.extnamespace "
            "WHERE e.extname = 'pg_stat_statements'")
        if schema is None:
            raise DbError('read the workload from', 'pg_stat_statements',
                          'the extension is not created in database %s (CREATE EXTENSION pg_stat_statements; '
                          'the library must be in shared_preload_libraries)' % self.database)
        mean, total = ('mean_exec_time', 'total_exec_time') if self.version_num >= 130000 else \
            ('mean_time', 'total_time')
        view = self.quote_qualified(schema, 'pg_stat_statements')
        return self.fetch_all(
            'SELECT query, calls, %s AS mean_ms, %s AS total_ms FROM %s '
            'WHERE dbid = (SELECT oid FROM pg_database WHERE datname = current_database()) '
            'AND calls >= %%s AND %s >= %%s ORDER BY %s DESC LIMIT %%s' % (mean, total, view, mean, total),
            (min_calls, min_time_ms, limit), operation='read pg_stat_statements')

    # ---- index hygiene ---------------------------------------------------------------------
    def advisor_index_hygiene(self, bloat_min_bytes=1048576, bloat_ratio=2.0):
        """Unused, duplicate, redundant-prefix, invalid and bloated indexes of the database."""
        indexes = self.advisor_indexes()
        stats_reset = self.fetch_value(
            'SELECT stats_reset::text FROM pg_stat_database WHERE datname = current_database()')
        has_pgstattuple = bool(self.fetch_value("SELECT 1 FROM pg_extension WHERE extname = 'pgstattuple'"))
        report = {'unused': [], 'duplicate': [], 'redundant_prefix': [], 'invalid': [], 'bloated': [],
                  'stats_reset': stats_reset,
                  'bloat_method': 'pgstattuple' if has_pgstattuple else 'size_estimate'}

        def protected(idx):
            # the index of one partition, attached to its parent's index, goes only with the parent's
            return bool(idx['unique'] or idx['primary'] or idx['backs_constraint'] or idx['attached'])

        def entry(idx, **extra):
            item = {'index': idx['name'], 'schema': idx['schema'], 'table': idx['table'],
                    'columns': list(idx['columns'] or []), 'definition': idx['definition'],
                    'size_bytes': idx['size_bytes'], 'unique': idx['unique'], 'primary': idx['primary'],
                    'removable': not protected(idx)}
            item.update(extra)
            return item

        def drop(idx):
            # the index of a partitioned table cannot be dropped concurrently
            return 'DROP INDEX %s%s' % ('' if idx['partitioned'] else 'CONCURRENTLY ',
                                        self.quote_qualified(idx['schema'], idx['name']))

        for idx in indexes:
            if not idx['valid']:
                report['invalid'].append(entry(idx, statement='REINDEX INDEX CONCURRENTLY %s' % self.quote_qualified(
                    idx['schema'], idx['name']) if self.version_num >= 120000 else drop(idx)))
            elif not protected(idx) and (idx['idx_scan'] or 0) == 0:
                report['unused'].append(entry(idx, idx_scan=idx['idx_scan'] or 0, statement=drop(idx)))

        groups = {}
        for idx in indexes:
            # key order: (a DESC) scans backwards as (a), but (a NULLS FIRST) or (a, b DESC) is another order
            key = (idx['table_oid'], idx['method'], idx['indkey'], idx['indclass'], idx['indcollation'],
                   _scan_order(idx['indoption'].split()), idx['exprs'], idx['predicate'])
            groups.setdefault(key, []).append(idx)
        for members in groups.values():
            if len(members) < 2:
                continue
            # keep the one a constraint or uniqueness needs, else the oldest
            members = sorted(members, key=lambda i: (not protected(i), not i['valid'], i['oid']))
            keep, rest = members[0], members[1:]
            report['duplicate'].append({
                'indexes': sorted(m['name'] for m in members), 'schema': keep['schema'], 'table': keep['table'],
                'columns': list(keep['columns'] or []), 'keep': keep['name'],
                'drop': [m['name'] for m in rest if not protected(m)],
                'statements': [drop(m) for m in rest if not protected(m)]})

        for short in indexes:
            if short['method'] != 'btree' or protected(short) or not short['valid'] or short['has_expressions'] \
                    or short['predicate'] is not None:
                continue
            n = short['nkeys']
            s_keys = short['indkey'].split()[:n]
            s_class = short['indclass'].split()[:n]
            # the collation and order of its keys, and its INCLUDE columns, are part of what it serves
            s_coll = short['indcollation'].split()[:n]
            s_order = _scan_order(short['indoption'].split()[:n])
            s_include = set(short['indkey'].split()[n:])
            for long_ in indexes:
                if long_ is short or long_['table_oid'] != short['table_oid'] or long_['method'] != 'btree' \
                        or not long_['valid'] or long_['predicate'] is not None:
                    continue
                l_keys = long_['indkey'].split()[:long_['nkeys']]
                l_class = long_['indclass'].split()[:long_['nkeys']]
                if len(l_keys) > len(s_keys) and l_keys[:len(s_keys)] == s_keys \
                        and l_class[:len(s_class)] == s_class \
                        and long_['indcollation'].split()[:n] == s_coll \
                        and _scan_order(long_['indoption'].split()[:n]) == s_order \
                        and s_include <= set(long_['indkey'].split()):
                    report['redundant_prefix'].append(entry(short, covered_by=long_['name'], statement=drop(short)))
                    break

        for idx in indexes:
            if idx['method'] != 'btree' or not idx['valid'] or (idx['size_bytes'] or 0) < bloat_min_bytes:
                continue
            if has_pgstattuple and idx['size_bytes'] <= PGSTATINDEX_MAX_BYTES:
                try:
                    st = self.fetch_one('SELECT avg_leaf_density::float8 AS density FROM pgstatindex(%s)',
                                        (idx['oid'],))
                except DbError:
                    continue
                density = st['density'] or 0
                if 0 < density < 90.0 / bloat_ratio:
                    report['bloated'].append(entry(idx, avg_leaf_density=density, method='pgstattuple',
                                                   statement='REINDEX INDEX CONCURRENTLY %s'
                                                   % self.quote_qualified(idx['schema'], idx['name'])))
                continue
            expected = _expected_btree_bytes(idx['tuples'], idx['data_width'])
            if expected and idx['size_bytes'] >= bloat_ratio * expected:
                report['bloated'].append(entry(
                    idx, estimated_bytes=int(expected), ratio=round(idx['size_bytes'] / expected, 1),
                    method='size_estimate',
                    statement='REINDEX INDEX CONCURRENTLY %s' % self.quote_qualified(idx['schema'], idx['name'])))
        return report


def _scan_order(options):
    """The key order of an index (indoption per key: 1 DESC, 2 NULLS FIRST) up to a backward scan."""
    flags = tuple(int(o) & 3 for o in options)
    flipped = tuple(f ^ 3 for f in flags)
    return min(flags, flipped)


def _expected_btree_bytes(tuples, data_width):
    """Size of a freshly built btree (fillfactor 90) for that many tuples of that key width."""
    if not tuples or tuples <= 0:
        return None
    width = 8 + int(math.ceil((data_width or 8) / 8.0)) * 8 + 4  # tuple header + aligned key + line pointer
    per_page = (8192 - 24 - 16) * 0.9
    leaf_pages = math.ceil(tuples * width / per_page)
    return (leaf_pages * 1.01 + 1) * 8192


def _plan_of(rows):
    if not rows:
        raise DbError('analyze', 'the query', 'EXPLAIN returned nothing')
    value = next(iter(rows[0].values()))
    if isinstance(value, str):
        value = json.loads(value)
    return value[0] if isinstance(value, list) else value


def _walk(node, depth=0):
    yield node, depth
    for child in node.get('Plans') or []:
        yield from _walk(child, depth + 1)


def _read_fractions(node, fraction=1.0, out=None):
    """{id(node): how many times its estimated work runs}: a Limit stops its input early, in the
    proportion of its cost to its input's (a Sort below it still reads everything); the inner
    side of a nested loop runs once per outer row."""
    out = {} if out is None else out
    out[id(node)] = fraction
    children = node.get('Plans') or []
    for position, child in enumerate(children):
        share = fraction
        if float(node.get('Startup Cost') or 0) >= 0.99 * float(child.get('Total Cost') or 0) > 0:
            share = 1.0   # a Sort, Hash or aggregate reads all of its input before its first row
        elif node.get('Node Type') == 'Limit' and len(children) == 1:
            span = float(child.get('Total Cost') or 0) - float(child.get('Startup Cost') or 0)
            used = float(node.get('Total Cost') or 0) - float(child.get('Startup Cost') or 0)
            if span > 0:
                share = fraction * min(max(used / span, 0.0), 1.0)
        if node.get('Node Type') == 'Nested Loop' and position == 1:
            share *= max(float(children[0].get('Plan Rows') or 1), 1.0)
        _read_fractions(child, share, out)
    return out


def summarize_plan(raw, analyze=False, table_rows=None):
    """The plan in the seed's words plus warnings: misestimates, big seq scans, spills."""
    table_rows = table_rows or {}
    top = raw['Plan']
    nodes = []
    warnings = []
    examined = 0.0
    fractions = _read_fractions(top)
    for node, depth in _walk(top):
        ntype = node.get('Node Type')
        item = {'node_type': ntype, 'depth': depth, 'relation': node.get('Relation Name'),
                'alias': node.get('Alias'), 'index': node.get('Index Name'),
                'startup_cost': node.get('Startup Cost'), 'total_cost': node.get('Total Cost'),
                'estimated_rows': node.get('Plan Rows')}
        for key, name in (('Filter', 'filter'), ('Index Cond', 'index_cond'), ('Join Type', 'join_type'),
                          ('Hash Cond', 'hash_cond'), ('Sort Key', 'sort_key'), ('Operation', 'operation')):
            if key in node:
                item[name] = node[key]
        loops = 1.0
        if analyze and 'Actual Rows' in node:
            loops = float(node.get('Actual Loops') or 0)
            item.update({'actual_rows': node.get('Actual Rows'), 'actual_loops': node.get('Actual Loops'),
                         'actual_startup_time_ms': node.get('Actual Startup Time'),
                         'actual_total_time_ms': node.get('Actual Total Time')})
            for key, name in (('Rows Removed by Filter', 'rows_removed_by_filter'),
                              ('Sort Method', 'sort_method'), ('Sort Space Used', 'sort_space_kb'),
                              ('Sort Space Type', 'sort_space_type'), ('Hash Batches', 'hash_batches')):
                if key in node:
                    item[name] = node[key]
        nodes.append(item)
        relation = node.get('Relation Name')
        if ntype in SCAN_NODES or ntype == 'Seq Scan':
            if analyze and 'Actual Rows' in node:
                read = (float(node.get('Actual Rows') or 0) + float(node.get('Rows Removed by Filter') or 0)
                        + float(node.get('Rows Removed by Index Recheck') or 0)) * loops
                if node.get('Parallel Aware'):
                    read *= 1  # Actual Rows of a parallel node is already per worker average times loops
            elif ntype == 'Seq Scan' and relation in table_rows:
                read = float(table_rows[relation]) * fractions[id(node)]
            else:
                read = float(node.get('Plan Rows') or 0) * fractions[id(node)]
            examined += read
            if ntype == 'Seq Scan' and table_rows.get(relation, 0) >= LARGE_TABLE_ROWS:
                warnings.append({'id': 'seq_scan_large_table', 'severity': 'warning', 'relation': relation,
                                 'message': 'sequential scan of %s (about %d rows)%s' % (
                                     relation, table_rows[relation],
                                     ' filtered by %s' % node['Filter'] if node.get('Filter') else '')})
        if analyze and 'Actual Rows' in node and loops > 0:
            est = float(node.get('Plan Rows') or 0)
            act = float(node.get('Actual Rows') or 0)
            factor = max(est, 1.0) / max(act, 1.0)
            if max(factor, 1.0 / factor) >= MISESTIMATE_FACTOR and max(est, act) >= 100:
                warnings.append({'id': 'row_misestimate', 'severity': 'warning', 'node': ntype,
                                 'relation': relation, 'estimated_rows': est, 'actual_rows': act,
                                 'factor': round(max(factor, 1.0 / factor), 1),
                                 'message': '%s%s: estimated %d rows, actually %d (x%.0f); statistics may be stale '
                                            'or columns correlated (ANALYZE, extended statistics)' % (
                                                ntype, ' on %s' % relation if relation else '', est, act,
                                                max(factor, 1.0 / factor))})
        if analyze and (node.get('Sort Space Type') == 'Disk' or 'external' in str(node.get('Sort Method', ''))):
            warnings.append({'id': 'sort_spill', 'severity': 'warning', 'node': ntype,
                             'message': 'sort spilled to disk (%s, %s kB): raise work_mem for this query or '
                                        'serve the order from an index'
                                        % (node.get('Sort Method'), node.get('Sort Space Used'))})
        if analyze and int(node.get('Hash Batches') or 1) > 1:
            warnings.append({'id': 'hash_spill', 'severity': 'warning', 'node': ntype,
                             'message': 'hash spilled to disk in %s batches: raise work_mem' % node['Hash Batches']})
    operation = top.get('Node Type')
    if operation == 'ModifyTable' and top.get('Operation'):
        operation = top['Operation']
    plan = {'operation': operation, 'rows_examined': int(round(examined)), 'total_cost': top.get('Total Cost'),
            'startup_cost': top.get('Startup Cost'), 'estimated_rows': top.get('Plan Rows'), 'nodes': nodes}
    if analyze:
        plan['actual_rows'] = top.get('Actual Rows')
        plan['execution_time_ms'] = raw.get('Execution Time')
        plan['planning_time_ms'] = raw.get('Planning Time')
        plan['actual_total_time_ms'] = top.get('Actual Total Time')
    return plan, warnings


def plan_indexes(raw):
    """Names of the indexes a plan uses."""
    return [n.get('Index Name') for n, _ in _walk(raw['Plan']) if n.get('Index Name')]
