# -*- coding: utf-8 -*-
# Copyright: dbops.admin contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Private to dbops.admin: MySQL/MariaDB engine, advisor area (mixed into the MysqlEngine class).

EXPLAIN FORMAT=JSON (MariaDB ANALYZE FORMAT=JSON / MySQL EXPLAIN ANALYZE for actual figures),
the catalog (information_schema), column statistics for statistics-based index suggestions,
index hygiene and workload reading (performance_schema digests, the slow log table).
There are no hypothetical indexes on this engine family: suggestions say so.
"""

from __future__ import annotations

import contextlib
import json

from ansible_collections.dbops.admin.plugins.module_utils._errors import DbError, driver_message

SYSTEM_SCHEMAS = ('mysql', 'information_schema', 'performance_schema', 'sys')
TRANSACTIONAL_ENGINES = ('innodb', 'rocksdb', 'tokudb', 'ndbcluster', 'ndb')
LARGE_TABLE_ROWS = 100000
SAMPLE_ROWS = 20000
ACCESS_NAMES = {
    'ALL': 'Full Table Scan', 'index': 'Full Index Scan', 'range': 'Index Range Scan',
    'ref': 'Index Lookup', 'eq_ref': 'Unique Index Lookup', 'const': 'Constant Lookup',
    'system': 'Constant Lookup', 'ref_or_null': 'Index Lookup', 'index_merge': 'Index Merge',
    'fulltext': 'Fulltext Search', 'unique_subquery': 'Unique Subquery', 'index_subquery': 'Index Subquery',
    'hash_ALL': 'Hash Join (full scan)', 'hash_range': 'Hash Join (range)',
}


def _leading_word(sql):
    """The first word of a statement after parentheses, spaces and comments (/* */, -- , #), upper case."""
    text = sql
    while True:
        text = text.lstrip('( \t\r\n')
        if text.startswith('/*') and not text.startswith('/*!'):
            end = text.find('*/', 2)
            if end < 0:
                return ''
            text = text[end + 2:]
        elif text.startswith('#') or text.startswith('--') and text[2:3] in ('', ' ', '\t', '\r', '\n'):
            end = text.find('\n')
            if end < 0:
                return ''
            text = text[end + 1:]
        else:
            break
    word = ''
    for ch in text:
        if not (ch.isalnum() or ch == '_'):
            break
        word += ch
    return word.upper()


class MysqlAdvisor:
    """advisor methods of the Mysql engine; self is the connected engine."""

    @contextlib.contextmanager
    def advisor_session(self, use_hypopg=True, timeout_seconds=None):
        state = {'hypopg': False, 'hypopg_created': False,
                 'hypopg_note': 'the MySQL family has no hypothetical indexes'}
        if timeout_seconds:
            var = 'max_statement_time' if self.is_mariadb else 'max_execution_time'
            value = int(timeout_seconds) if self.is_mariadb else int(timeout_seconds) * 1000
            try:
                self.fetch_all('SET SESSION %s = %d' % (var, value))
            except DbError:
                pass
        yield state

    def _adv_run(self, sql, rollback=False):
        cur = self.conn.cursor()
        try:
            if rollback:
                self.conn.begin()
            try:
                cur.execute(sql)
                rows = cur.fetchall() if cur.description is not None else []
                cols = [d[0] for d in cur.description] if cur.description is not None else []
            except self.driver_errors as exc:
                raise DbError('analyze', 'the query', self.mask(driver_message(exc))) from None
            finally:
                if rollback:
                    self.conn.rollback()
            return [dict(zip(cols, row)) for row in rows]
        finally:
            cur.close()

    def advisor_explain(self, sql, analyze=False, generic=False):
        """The JSON plan (actual figures when analyze; writes are rolled back)."""
        if generic:
            raise DbError('analyze', 'the query', 'the statement has ? placeholders; give a sample with values')
        if analyze:
            if self.is_mariadb:
                rows = self._adv_run('ANALYZE FORMAT=JSON ' + sql, rollback=True)
                return {'json': json.loads(next(iter(rows[0].values()))), 'analyze': True,
                        'last_query_cost': self._last_query_cost(sql)}
            rows = self._adv_run('EXPLAIN ANALYZE ' + sql, rollback=True)
            text = next(iter(rows[0].values())) if rows else ''
            plain = self._adv_run('EXPLAIN FORMAT=JSON ' + sql)
            return {'json': json.loads(next(iter(plain[0].values()))), 'analyze': True, 'text': text}
        rows = self._adv_run('EXPLAIN FORMAT=JSON ' + sql)
        cost = self._last_query_cost(sql, explained=True)
        return {'json': json.loads(next(iter(rows[0].values()))), 'analyze': False, 'last_query_cost': cost}

    def _last_query_cost(self, sql, explained=False):
        """The optimizer's cost of a SELECT (Last_query_cost after EXPLAIN); None for other statements."""
        if _leading_word(sql) not in ('SELECT', 'WITH'):
            return None
        if not explained:
            self._adv_run('EXPLAIN ' + sql)
        status = self._adv_run("SHOW SESSION STATUS LIKE 'Last_query_cost'")
        try:
            return float(status[0].get('Value')) if status else None
        except (TypeError, ValueError):
            return None

    def advisor_plan_summary(self, raw, analyze=False, table_rows=None):
        return summarize_plan(raw, table_rows=table_rows or {})

    # ---- catalog ---------------------------------------------------------------------------
    def advisor_resolve_tables(self, keys):
        out = {}
        current = self.fetch_value('SELECT DATABASE()')
        for key in keys:
            schema, name = key
            row = self.fetch_one(
                'SELECT TABLE_SCHEMA AS `schema`, TABLE_NAME AS name, TABLE_TYPE AS kind, ENGINE AS engine, '
                'COALESCE(TABLE_ROWS, 0) AS `rows` FROM information_schema.TABLES '
                'WHERE TABLE_SCHEMA = %s AND TABLE_NAME = %s', (schema or current, name))
            if row is None:
                out[key] = None
                continue
            row['oid'] = (row['schema'], row['name'])
            row['system'] = row['schema'].lower() in SYSTEM_SCHEMAS
            row['relkind'] = 'r' if row['kind'] == 'BASE TABLE' else 'v'
            row['rows'] = float(row['rows'] or 0)
            # a rollback undoes a write only in a transactional engine (not MyISAM, Aria, MEMORY ...);
            # what a view writes to is not known here
            row['transactional'] = row['relkind'] == 'r' and (row['engine'] or '').lower() in TRANSACTIONAL_ENGINES
            out[key] = row
        return out

    def advisor_columns(self, oids):
        out = {}
        for schema, name in oids:
            for row in self.fetch_all('SELECT COLUMN_NAME AS col, COLUMN_TYPE AS type FROM information_schema.COLUMNS '
                                      'WHERE TABLE_SCHEMA = %s AND TABLE_NAME = %s', (schema, name)):
                out.setdefault((schema, name), {})[row['col']] = row['type']
        return out

    def advisor_indexes(self, oids=None):
        """Indexes with their columns in order: [{table_oid, name, columns, unique, method, ...}]."""
        if oids is None:
            rows = self.fetch_all(
                'SELECT TABLE_SCHEMA AS s, TABLE_NAME AS t, INDEX_NAME AS i, NON_UNIQUE AS nu, SEQ_IN_INDEX AS seq, '
                'COLUMN_NAME AS c, SUB_PART AS sub, INDEX_TYPE AS method FROM information_schema.STATISTICS '
                'WHERE TABLE_SCHEMA NOT IN (%s, %s, %s, %s) ORDER BY s, t, i, seq', SYSTEM_SCHEMAS)
        else:
            rows = []
            for schema, name in oids:
                rows.extend(self.fetch_all(
                    'SELECT TABLE_SCHEMA AS s, TABLE_NAME AS t, INDEX_NAME AS i, NON_UNIQUE AS nu, '
                    'SEQ_IN_INDEX AS seq, COLUMN_NAME AS c, SUB_PART AS sub, INDEX_TYPE AS method '
                    'FROM information_schema.STATISTICS WHERE TABLE_SCHEMA = %s AND TABLE_NAME = %s '
                    'ORDER BY i, seq', (schema, name)))
        out = {}
        for row in rows:
            key = (row['s'], row['t'], row['i'])
            idx = out.setdefault(key, {'table_oid': (row['s'], row['t']), 'schema': row['s'], 'table': row['t'],
                                       'name': row['i'], 'unique': not int(row['nu']),
                                       'primary': row['i'] == 'PRIMARY', 'method': (row['method'] or '').lower(),
                                       'columns': [], 'parts': [], 'has_expressions': False})
            if row['c'] is None:
                idx['has_expressions'] = True
            idx['columns'].append(row['c'])
            idx['parts'].append((row['c'], row['sub']))
        return list(out.values())

    def advisor_existing_indexes(self, oids):
        return [{'table_oid': i['table_oid'], 'name': i['name'], 'method': i['method'] or 'btree',
                 'valid': True, 'partial': False, 'unique': i['unique'],
                 'columns': None if i['has_expressions'] else i['columns']} for i in self.advisor_indexes(oids)]

    def advisor_column_stats(self, oid, columns=()):
        """{'rows', 'distinct'}: index cardinalities, otherwise a bounded sample of the table."""
        schema, name = oid
        rows = float(self.fetch_value('SELECT COALESCE(TABLE_ROWS, 0) FROM information_schema.TABLES '
                                      'WHERE TABLE_SCHEMA = %s AND TABLE_NAME = %s', (schema, name)) or 0)
        distinct = {}
        for row in self.fetch_all('SELECT COLUMN_NAME AS c, MAX(CARDINALITY) AS card FROM information_schema.STATISTICS '
                                  'WHERE TABLE_SCHEMA = %s AND TABLE_NAME = %s AND SEQ_IN_INDEX = 1 GROUP BY c',
                                  (schema, name)):
            if row['card']:
                distinct[row['c']] = float(row['card'])
        wanted = [c for c in columns if c not in distinct]
        if wanted and rows:
            parts = ', '.join('COUNT(DISTINCT %s) AS %s' % (self.quote_ident(c), self.quote_ident('d_%d' % n))
                              for n, c in enumerate(wanted))
            sample = self.fetch_one('SELECT COUNT(*) AS n, %s FROM (SELECT %s FROM %s LIMIT %d) s' % (
                parts, ', '.join(self.quote_ident(c) for c in wanted), self.quote_qualified(schema, name),
                SAMPLE_ROWS))
            n = float(sample['n'] or 0)
            for i, col in enumerate(wanted):
                nd = float(sample['d_%d' % i] or 0)
                if n and nd / n > 0.5:
                    nd = nd / n * max(rows, n)
                distinct[col] = nd
        return {'rows': rows, 'distinct': distinct}

    def advisor_relation_name_taken(self, schema, name):
        return bool(self.fetch_value('SELECT 1 FROM information_schema.STATISTICS WHERE TABLE_SCHEMA = %s '
                                     'AND INDEX_NAME = %s LIMIT 1', (schema, name)))

    def advisor_index_statement(self, schema, table, name, columns, relkind=None):  # pylint: disable=unused-argument
        return 'ALTER TABLE %s ADD INDEX %s (%s), ALGORITHM=INPLACE, LOCK=NONE' % (
            self.quote_qualified(schema, table), self.quote_ident(name),
            ', '.join(self.quote_ident(c) for c in columns))

    # ---- workload --------------------------------------------------------------------------
    def advisor_workload(self, source, min_calls=1, min_time_ms=0.0, limit=50, log_text=None):
        if source == 'performance_schema':
            if not self.fetch_value('SELECT @@performance_schema'):
                raise DbError('read the workload from', 'performance_schema',
                              'performance_schema is OFF on this server (it needs performance_schema=ON at start)')
            has_sample = bool(self.fetch_value(
                "SELECT 1 FROM information_schema.COLUMNS WHERE TABLE_SCHEMA = 'performance_schema' "
                "AND TABLE_NAME = 'events_statements_summary_by_digest' AND COLUMN_NAME = 'QUERY_SAMPLE_TEXT'"))
            sample = 'd.QUERY_SAMPLE_TEXT' if has_sample else (
                '(SELECT h.SQL_TEXT FROM performance_schema.events_statements_history_long h '
                'WHERE h.DIGEST = d.DIGEST LIMIT 1)')
            rows = self.fetch_all(
                'SELECT %s AS query, d.DIGEST_TEXT AS digest_text, d.COUNT_STAR AS calls, '
                'd.AVG_TIMER_WAIT / 1000000000 AS mean_ms, d.SUM_TIMER_WAIT / 1000000000 AS total_ms '
                'FROM performance_schema.events_statements_summary_by_digest d '
                'WHERE d.SCHEMA_NAME = DATABASE() AND d.COUNT_STAR >= %%s AND d.AVG_TIMER_WAIT / 1000000000 >= %%s '
                'ORDER BY d.SUM_TIMER_WAIT DESC LIMIT %%s' % sample, (min_calls, min_time_ms, limit),
                operation='read performance_schema')
            for row in rows:
                if not row['query']:
                    row['query'] = row['digest_text']
                    row['no_sample'] = True
                row['mean_ms'] = float(row['mean_ms'] or 0)
                row['total_ms'] = float(row['total_ms'] or 0)
            return rows
        if source == 'slow_log':
            output = (self.fetch_value('SELECT @@log_output') or '').upper()
            if 'TABLE' not in output:
                raise DbError('read the workload from', 'the slow log',
                              'log_output is %s, not TABLE: give the log file as slow_log_path' % output)
            rows = self.fetch_all(
                'SELECT CONVERT(sql_text USING utf8mb4) AS query, '
                'TIME_TO_SEC(query_time) * 1000 + MICROSECOND(query_time) / 1000 AS ms '
                'FROM mysql.slow_log WHERE db = DATABASE() ORDER BY start_time DESC LIMIT 10000',
                operation='read mysql.slow_log')
            return [(r['query'], float(r['ms'] or 0)) for r in rows]
        raise DbError('read the workload from', source,
                      'the MySQL family reads performance_schema or slow_log')

    # ---- index hygiene ---------------------------------------------------------------------
    def advisor_index_hygiene(self, bloat_min_bytes=1048576, bloat_ratio=2.0):
        indexes = self.advisor_indexes()
        report = {'unused': [], 'duplicate': [], 'redundant_prefix': [], 'invalid': [], 'bloated': [],
                  'stats_reset': None, 'bloat_method': None,
                  'notes': ['bloat is not estimated on the MySQL family (OPTIMIZE TABLE rebuilds indexes)']}

        def entry(idx, **extra):
            item = {'index': idx['name'], 'schema': idx['schema'], 'table': idx['table'],
                    'columns': list(idx['columns']), 'unique': idx['unique'], 'primary': idx['primary'],
                    'removable': not idx['unique']}
            item.update(extra)
            return item

        def drop(idx):
            return 'ALTER TABLE %s DROP INDEX %s' % (self.quote_qualified(idx['schema'], idx['table']),
                                                     self.quote_ident(idx['name']))

        usage = None
        if self.fetch_value('SELECT @@performance_schema'):
            usage = {}
            for row in self.fetch_all(
                    'SELECT OBJECT_SCHEMA AS s, OBJECT_NAME AS t, INDEX_NAME AS i, COUNT_STAR AS n '
                    'FROM performance_schema.table_io_waits_summary_by_index_usage WHERE INDEX_NAME IS NOT NULL'):
                usage[(row['s'], row['t'], row['i'])] = int(row['n'] or 0)
        else:
            report['notes'].append('unused indexes need performance_schema=ON; not checked')
        for idx in indexes:
            if usage is not None and not idx['unique'] and usage.get((idx['schema'], idx['table'], idx['name']), 0) == 0:
                report['unused'].append(entry(idx, statement=drop(idx)))
        groups = {}
        for idx in indexes:
            groups.setdefault((idx['schema'], idx['table'], idx['method'], tuple(idx['parts'])), []).append(idx)
        for members in groups.values():
            if len(members) < 2:
                continue
            members = sorted(members, key=lambda i: (not i['primary'], not i['unique'], i['name']))
            keep, rest = members[0], members[1:]
            report['duplicate'].append({'indexes': sorted(m['name'] for m in members), 'schema': keep['schema'],
                                        'table': keep['table'], 'columns': list(keep['columns']),
                                        'keep': keep['name'], 'drop': [m['name'] for m in rest if not m['unique']],
                                        'statements': [drop(m) for m in rest if not m['unique']]})
        for short in indexes:
            if short['unique'] or short['method'] != 'btree' or short['has_expressions']:
                continue
            for long_ in indexes:
                if long_ is short or (long_['schema'], long_['table']) != (short['schema'], short['table']) \
                        or long_['method'] != 'btree':
                    continue
                if len(long_['parts']) > len(short['parts']) and long_['parts'][:len(short['parts'])] == short['parts']:
                    report['redundant_prefix'].append(entry(short, covered_by=long_['name'], statement=drop(short)))
                    break
        return report


def _tables_in(node, out, buffered=False):
    """Every 'table' object of a MySQL/MariaDB JSON plan in join order, with whether it is read
    through a join buffer (scanned once per buffer fill, not once per outer row)."""
    if isinstance(node, dict):
        for key, value in node.items():
            inner = buffered or key in ('block-nl-join', 'hash_join')
            if key == 'table' and isinstance(value, dict) and 'table_name' in value:
                out.append((value, inner or bool(value.get('using_join_buffer'))))
                _tables_in({k: v for k, v in value.items() if k != 'table_name'}, out, inner)
            else:
                _tables_in(value, out, inner)
    elif isinstance(node, list):
        for value in node:
            _tables_in(value, out, buffered)
    return out


def _has_key(node, wanted):
    if isinstance(node, dict):
        return any(k in wanted or _has_key(v, wanted) for k, v in node.items())
    if isinstance(node, list):
        return any(_has_key(v, wanted) for v in node)
    return False


def summarize_plan(raw, table_rows=None):
    """The plan in the seed's words plus warnings from a MySQL/MariaDB JSON plan."""
    table_rows = table_rows or {}
    doc = raw['json']
    analyze = raw.get('analyze')
    tables = _tables_in(doc.get('query_block', doc), [])
    nodes = []
    warnings = []
    examined = 0.0
    prefix = 1.0
    for tab, buffered in tables:
        access = tab.get('access_type')
        est = float(tab.get('rows') or tab.get('rows_examined_per_scan') or 0)
        item = {'node_type': ACCESS_NAMES.get(access, access), 'access_type': access,
                'relation': tab.get('table_name'), 'index': tab.get('key'),
                'possible_keys': tab.get('possible_keys'), 'estimated_rows': est,
                'filtered': tab.get('filtered'), 'filter': tab.get('attached_condition')}
        if analyze and 'r_rows' in tab:
            loops = float(tab.get('r_loops') or 0)
            item.update({'actual_rows': tab.get('r_rows'), 'actual_loops': tab.get('r_loops'),
                         'actual_total_time_ms': tab.get('r_total_time_ms') or tab.get('r_table_time_ms')})
            examined += float(tab.get('r_rows') or 0) * loops
            act = float(tab.get('r_rows') or 0)
            factor = max(est, 1.0) / max(act, 1.0)
            if max(factor, 1 / factor) >= 10 and max(est, act) >= 100:
                warnings.append({'id': 'row_misestimate', 'severity': 'warning', 'relation': tab.get('table_name'),
                                 'estimated_rows': est, 'actual_rows': act,
                                 'message': '%s: estimated %d rows, actually %d; run ANALYZE TABLE (histograms)'
                                            % (tab.get('table_name'), est, act)})
        else:
            examined += est if buffered else prefix * est
        prefix *= max(est * float(tab.get('filtered') or 100) / 100.0, 1.0)
        rows = table_rows.get(tab.get('table_name'), est)
        if access in ('ALL', 'hash_ALL') and rows >= LARGE_TABLE_ROWS:
            warnings.append({'id': 'seq_scan_large_table', 'severity': 'warning', 'relation': tab.get('table_name'),
                             'message': 'full scan of %s (about %d rows)' % (tab.get('table_name'), rows)})
        nodes.append(item)
    if _has_key(doc, ('filesort',)) and analyze and _has_key(doc, ('r_sort_passes',)):
        passes = _find_values(doc, 'r_sort_passes')
        if any(float(p or 0) > 0 for p in passes):
            warnings.append({'id': 'sort_spill', 'severity': 'warning',
                             'message': 'filesort needed merge passes on disk: raise sort_buffer_size or serve '
                                        'the order from an index'})
    first = nodes[0] if nodes else {}
    cost = raw.get('last_query_cost')
    cost_info = doc.get('query_block', {}).get('cost_info') or {}
    if cost_info.get('query_cost') is not None:
        cost = float(cost_info['query_cost'])
    if cost is not None and cost <= 0:
        cost = None
    plan = {'operation': first.get('node_type') or ('No Tables' if not nodes else None),
            'rows_examined': int(round(examined)), 'total_cost': cost, 'nodes': nodes}
    # MariaDB writes a "filesort" node; MySQL 8 marks ordering/grouping/windowing with "using_filesort": true
    if _has_key(doc, ('filesort',)) or any(v is True for v in _find_values(doc, 'using_filesort')):
        plan['filesort'] = True
    if analyze:
        qb = doc.get('query_block', {})
        plan['actual_total_time_ms'] = qb.get('r_total_time_ms')
        if raw.get('text'):
            plan['text'] = raw['text']
    return plan, warnings


def _find_values(node, key):
    out = []
    if isinstance(node, dict):
        for k, v in node.items():
            if k == key:
                out.append(v)
            else:
                out.extend(_find_values(v, key))
    elif isinstance(node, list):
        for v in node:
            out.extend(_find_values(v, key))
    return out
