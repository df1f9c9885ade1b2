# -*- coding: utf-8 -*-
"""MySQL 8 catalog reads, against a fake server that names result columns the way MySQL 8 does.

MySQL 8 implements most INFORMATION_SCHEMA tables as views over the data dictionary; a bare
column of one comes back under the view's own (upper-case) name, however the query spells it:
``SELECT table_name FROM information_schema.tables`` gives a column ``TABLE_NAME``. MariaDB (and
MySQL 5.7) give back the spelling of the query. Only an alias fixes the name on both.
"""

from __future__ import annotations

import datetime
import re

from ansible_collections.dbops.admin.plugins.module_utils._engines.mysql import MysqlEngine
from ansible_collections.dbops.admin.plugins.module_utils._engines.mysql_matview import build_comment, query_hash

_ALIAS = re.compile(r'\s+AS\s+`?([A-Za-z_][A-Za-z0-9_]*)`?$', re.IGNORECASE)
_BARE = re.compile(r'^[A-Za-z_][A-Za-z0-9_]*(\.[A-Za-z_][A-Za-z0-9_]*)?$')


def _select_items(sql):
    text = ' '.join(sql.split())
    match = re.match(r'^SELECT\s+(?:DISTINCT\s+)?(.*?)\s+FROM\s', text, re.IGNORECASE)
    assert match, 'not a SELECT the fake understands: %s' % sql
    items, depth, current = [], 0, ''
    for char in match.group(1):
        if char == '(':
            depth += 1
        elif char == ')':
            depth -= 1
        if char == ',' and depth == 0:
            items.append(current.strip())
            current = ''
        else:
            current += char
    items.append(current.strip())
    return items


def mysql8_labels(sql):
    """The result column names MySQL 8 gives a SELECT."""
    dictionary_view = 'information_schema.' in sql.lower()
    labels = []
    for item in _select_items(sql):
        alias = _ALIAS.search(item)
        if alias:
            labels.append(alias.group(1))
        elif _BARE.match(item):
            name = item.split('.')[-1]
            labels.append(name.upper() if dictionary_view else name)
        else:
            labels.append(item)
    return labels


class _Cursor:
    def __init__(self, server):
        self.server = server
        self.description = None
        self._rows = []

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        return False

    def execute(self, sql, params=None):
        self.server.read.append(sql)
        if not sql.lstrip().upper().startswith('SELECT'):
            self.description, self._rows = None, []  # SET ...: no result set
            return
        rows = next((answer for key, answer in self.server.answers if key in sql), [])
        labels = mysql8_labels(sql)
        self.description = [(label,) for label in labels]
        out = []
        for row in rows:
            if len(row) == 1 and len(labels) == 1:
                out.append(tuple(row.values()))
            else:
                out.append(tuple(row.get(label.lower()) for label in labels))
        self._rows = out

    def fetchall(self):
        return self._rows


class FakeMysql8Server:
    """Answers a query with the rows of the first ``(substring, rows)`` it contains; rows are keyed
    by the lower-case column name and come back under the name MySQL 8 gives the column."""

    def __init__(self, answers):
        self.answers = answers
        self.read = []

    def cursor(self):
        return _Cursor(self)


def mysql8(answers, version_num=80036, flavor='mysql'):
    engine = object.__new__(MysqlEngine)
    engine.conn = FakeMysql8Server(answers)
    engine.check_mode = False
    engine.queries = []
    engine._secrets = set()
    engine.flavor = flavor
    engine.version_num = version_num
    engine.statements_sent = 0
    engine.driver_errors = (RuntimeError,)
    return engine


def test_the_fake_names_columns_like_mysql_8():
    assert mysql8_labels('SELECT table_name, t.engine, TABLE_ROWS AS `rows`, COUNT(*) '
                         'FROM information_schema.tables t') == ['TABLE_NAME', 'ENGINE', 'rows', 'COUNT(*)']
    assert mysql8_labels('SELECT last_update FROM mysql.innodb_table_stats') == ['last_update']


# ---- db_index ----------------------------------------------------------------------------------
def test_mysql8_index_get_reads_statistics_under_its_own_names():
    engine = mysql8([
        ('information_schema.statistics', [
            {'tbl': 'orders', 'non_unique': 1, 'column_name': 'customer_id', 'sub_part': None,
             'collation': 'A', 'index_type': 'BTREE', 'expression': None, 'visible': 0},
            {'tbl': 'orders', 'non_unique': 1, 'column_name': None, 'sub_part': None,
             'collation': 'D', 'index_type': 'BTREE', 'expression': 'lower(`email`)', 'visible': 0}]),
        ('innodb_index_stats', [{'size': 3}]),
    ])
    current = engine.index_get('shop', 'ix_orders', table='orders')
    assert current['parts'] == [{'column': 'customer_id', 'length': None, 'order': 'ASC'},
                                {'expression': '(lower(`email`))', 'order': 'DESC'}]
    assert (current['unique'], current['type'], current['table']) == (False, 'BTREE', 'orders')
    assert current['visible'] is False  # INVISIBLE: IS_VISIBLE = 'NO'
    assert "is_visible = 'YES' AS visible" in engine.conn.read[0]
    assert current['definition'] == ('CREATE INDEX `ix_orders` ON `shop`.`orders` '
                                     '(`customer_id`, (lower(`email`)) DESC) USING BTREE')


def test_mysql8_index_prepare_reads_the_table_engine():
    engine = mysql8([
        ('information_schema.tables', [{'tbl': 'orders', 'engine': 'InnoDB'}]),
        ('information_schema.columns', [{'c': 'customer_id', 't': 'int', 'len': None}]),
    ])
    desired = engine.index_prepare({'name': 'ix_orders', 'schema': 'shop', 'table': 'orders',
                                    'columns': ['customer_id'], 'type': None, 'unique': False})
    assert desired['engine'] == 'INNODB'
    assert desired['parts'] == [{'column': 'customer_id', 'length': None, 'order': 'ASC', 'data_type': 'int'}]


# ---- db_maintenance ----------------------------------------------------------------------------
def test_mysql8_maintenance_reads_table_and_innodb_counters():
    created = datetime.datetime(2026, 1, 2, 3, 4, 5)
    engine = mysql8([
        ('information_schema.tables', [{'schema': 'shop', 'table': 'orders', 'engine': 'InnoDB', 'table_rows': 990,
                                        'update_time': None, 'create_time': created, 'size_bytes': 16384}]),
        ('information_schema.INNODB_TABLESTATS', [{'num_rows': 1000, 'modified_counter': 150}]),
        ('mysql.innodb_table_stats', [{'last_update': created}]),
        ('information_schema.column_statistics', [{'count': 2}]),
    ])
    row, = engine.maintenance_tables('shop', ['orders'])
    assert (row['rows'], row['modified_rows'], row['histogram_columns']) == (1000, 150, 2)
    assert engine.maintenance_view(row)['create_time'] == '2026-01-02T03:04:05'


# ---- db_matview --------------------------------------------------------------------------------
def test_mysql8_matview_get_reads_the_table_comment():
    query = 'SELECT id, total FROM orders'
    engine = mysql8([
        ('information_schema.tables', [{'table_type': 'BASE TABLE', 'table_comment': build_comment(query),
                                        'table_rows': 3, 'size_bytes': 16384}]),
        ('information_schema.statistics', [{'c': 'id'}]),
    ])
    current = engine.matview_get('shop', 'order_totals')
    assert (current['hash'], current['rows'], current['size_bytes']) == (query_hash(query), 3, 16384)
    assert current['unique_indexes'] == [{'name': 'dbops_unique', 'columns': ['id']}]


# ---- statistics as they are now ------------------------------------------------------------------
EXPIRY = 'SET SESSION information_schema_stats_expiry = 0'


def test_mysql8_reads_table_sizes_and_times_from_the_storage_engine_not_the_cache():
    engine = mysql8([
        ('information_schema.SCHEMATA', [{'name': 'shop', 'size_bytes': 32768}]),
        ('information_schema.tables', [{'schema': 'shop', 'table': 'orders', 'table_rows': 3, 'size_bytes': 16384,
                                        'table_type': 'BASE TABLE', 'table_comment': build_comment('SELECT 1')}]),
    ])
    assert engine.info_databases() == [{'name': 'shop', 'size_bytes': 32768}]
    assert engine.conn.read[0] == EXPIRY and 'information_schema.TABLES' in engine.conn.read[1]
    engine.maintenance_tables('shop', ['orders'])
    engine.matview_get('shop', 'order_totals')
    assert engine.conn.read.count(EXPIRY) == 1  # once per session


def test_mariadb_has_no_statistics_cache_to_skip():
    engine = mysql8([('information_schema.SCHEMATA', [{'name': 'shop', 'size_bytes': 32768}])], 101106, 'mariadb')
    engine.info_databases()
    assert EXPIRY not in engine.conn.read
