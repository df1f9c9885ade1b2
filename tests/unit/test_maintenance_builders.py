# -*- coding: utf-8 -*-
"""db_maintenance statements, staleness rule and MySQL 8 paths, without a server."""

from __future__ import annotations

import datetime

import pytest

from ansible_collections.dbops.admin.plugins.module_utils._engines import mysql
from ansible_collections.dbops.admin.plugins.module_utils._engines.mysql_maintenance import (
    MysqlMaintenance,
    admin_errors,
    admin_warnings,
    build_mysql_maintenance,
    innodb_internal_name,
)
from ansible_collections.dbops.admin.plugins.module_utils._engines.postgresql_maintenance import (
    PostgresMaintenance,
    build_pg_maintenance,
    is_stale,
    jsonable,
    split_table_name,
)
from ansible_collections.dbops.admin.plugins.module_utils._errors import DbError


@pytest.mark.parametrize('modified, rows, expected', [
    (0, 0, False),
    (49, 0, False),          # below the absolute minimum
    (50, 0, True),           # an empty-at-last-analyze table that got rows
    (50, 1000, False),       # 5 %
    (100, 1000, True),       # 10 %
    (99, 1000, False),
    (5000, 1_000_000, False),
    (100_000, 1_000_000, True),
    (None, None, False),
    (-3, 10, False),
])
def test_staleness_needs_both_thresholds(modified, rows, expected):
    assert is_stale(modified, rows, 0.1, 50) is expected


@pytest.mark.parametrize('modified, rows, ratio, min_rows, expected', [
    (0, 0, 0.1, 0, False),      # an empty, untouched table: never stale, whatever the thresholds
    (0, 1000, 0.0, 0, False),
    (1, 1000, 0.0, 0, True),    # thresholds of 0: any modified row
    (1, 0, 0.1, 0, True),
])
def test_staleness_needs_a_modified_row(modified, rows, ratio, min_rows, expected):
    assert is_stale(modified, rows, ratio, min_rows) is expected


@pytest.mark.parametrize('item, expected', [
    ('orders', ('public', 'orders')),
    ('sales.orders', ('sales', 'orders')),
    ('sales.my.table', ('sales', 'my.table')),
    ('.odd', ('public', '.odd')),
])
def test_split_table_name(item, expected):
    assert split_table_name(item, 'public') == expected


def test_jsonable_timestamps():
    stamp = datetime.datetime(2024, 5, 1, 12, 30, tzinfo=datetime.timezone.utc)
    assert jsonable(stamp) == '2024-05-01T12:30:00+00:00'
    assert jsonable(None) is None and jsonable(3) == 3


@pytest.mark.parametrize('action, version, concurrently, expected', [
    ('analyze', 150004, True, 'ANALYZE "s"."t"'),
    ('vacuum', 150004, True, 'VACUUM "s"."t"'),
    ('vacuum_analyze', 150004, True, 'VACUUM (ANALYZE) "s"."t"'),
    ('vacuum_full', 150004, True, 'VACUUM (FULL) "s"."t"'),
    ('reindex', 150004, True, 'REINDEX TABLE CONCURRENTLY "s"."t"'),
    ('reindex', 150004, False, 'REINDEX TABLE "s"."t"'),
    ('reindex', 110000, True, 'REINDEX TABLE "s"."t"'),
])
def test_pg_statements(action, version, concurrently, expected):
    assert build_pg_maintenance(action, '"s"."t"', concurrently, version) == expected


@pytest.mark.parametrize('action, hint', [('optimize', 'vacuum_full'), ('histogram', 'SET STATISTICS')])
def test_pg_refuses_mysql_actions_with_a_hint(action, hint):
    with pytest.raises(DbError) as info:
        PostgresMaintenance().maintenance_check_action(action)
    assert hint in str(info.value) and 'MySQL/MariaDB action' in str(info.value)


def test_pg_staleness_counts_dead_rows_for_vacuum():
    table = {'n_mod_since_analyze': 10, 'n_dead_tup': 400, 'reltuples': 1000, 'n_live_tup': 900}
    engine = PostgresMaintenance()
    assert engine.maintenance_is_stale(table, 'vacuum', 0.1, 50) is True
    assert engine.maintenance_is_stale(table, 'analyze', 0.1, 50) is False
    assert engine.maintenance_modified(table, 'vacuum_analyze') == (400, 1000)


QT = '`shop`.`orders`'


@pytest.mark.parametrize('action, flavor, columns, expected', [
    ('analyze', 'mariadb', None, 'ANALYZE TABLE `shop`.`orders`'),
    ('optimize', 'mysql', None, 'OPTIMIZE TABLE `shop`.`orders`'),
    ('reindex', 'mariadb', None, 'ALTER TABLE `shop`.`orders` FORCE'),
    ('histogram', 'mariadb', None, 'ANALYZE TABLE `shop`.`orders` PERSISTENT FOR ALL'),
    ('histogram', 'mariadb', ['a', 'b`c'], 'ANALYZE TABLE `shop`.`orders` PERSISTENT FOR COLUMNS (`a`, `b``c`) INDEXES ALL'),
    ('histogram', 'mysql', ['a', 'b'], 'ANALYZE TABLE `shop`.`orders` UPDATE HISTOGRAM ON `a`, `b` WITH 64 BUCKETS'),
])
def test_mysql_statements(action, flavor, columns, expected):
    assert build_mysql_maintenance(action, QT, flavor, mysql.quote_ident, columns, 64) == expected


def test_mysql8_histogram_needs_a_column():
    with pytest.raises(DbError):
        build_mysql_maintenance('histogram', QT, 'mysql', mysql.quote_ident, [], 100)


@pytest.mark.parametrize('action', ['vacuum', 'vacuum_analyze', 'vacuum_full'])
def test_mysql_refuses_postgres_actions(action):
    with pytest.raises(DbError) as info:
        MysqlMaintenance().maintenance_check_action(action)
    assert 'PostgreSQL action' in str(info.value) and 'optimize' in str(info.value)


@pytest.mark.parametrize('schema, table, expected', [
    ('shop', 'orders', 'shop/orders'),
    ('d1', 'a-b x', 'd1/a@002db@0020x'),   # as MariaDB 10.11 spells it in INNODB_SYS_TABLESTATS
    ('my-db', 'we`ird', 'my@002ddb/we@0060ird'),
])
def test_innodb_internal_name(schema, table, expected):
    assert innodb_internal_name(schema, table) == expected


def test_admin_result_rows():
    rows = [{'Table': 'd.t', 'Op': 'analyze', 'Msg_type': 'Error', 'Msg_text': "Table 'd.t' doesn't exist"},
            {'Table': 'd.t', 'Op': 'analyze', 'Msg_type': 'status', 'Msg_text': 'Operation failed'},
            {'Table': 'd.u', 'Op': 'optimize', 'Msg_type': 'note', 'Msg_text': 'doing recreate + analyze instead'}]
    assert admin_errors(rows) == ["Table 'd.t' doesn't exist"]
    assert admin_warnings(rows) == ['doing recreate + analyze instead']


class FakeMysql(MysqlMaintenance):
    def __init__(self, flavor='mysql', check_mode=False, answers=()):
        self.flavor = flavor
        self.check_mode = check_mode
        self.answers = list(answers)
        self.queries = []
        self.read = []

    def quote_ident(self, name):
        return mysql.quote_ident(name)

    def quote_qualified(self, *parts):
        return '.'.join(mysql.quote_ident(p) for p in parts)

    def render(self, sql, params=None):
        return sql

    def fetch_all(self, sql, params=None, operation=None):
        self.read.append(sql)
        for key, rows in self.answers:
            if key in sql:
                return rows
        return []

    def fetch_one(self, sql, params=None, operation=None):
        rows = self.fetch_all(sql, params)
        return rows[0] if rows else None

    def fetch_value(self, sql, params=None, operation=None):
        row = self.fetch_one(sql, params)
        return next(iter(row.values())) if row else None

    def execute(self, sql, params=None, operation=None):
        self.queries.append(sql)


def test_mysql8_reads_innodb_tablestats_and_column_statistics():
    engine = FakeMysql('mysql', answers=[
        ('INNODB_TABLESTATS', [{'num_rows': 1000, 'modified_counter': 150}]),
        ('column_statistics', [{'n': 2}]),
    ])
    row = engine._maintenance_enrich({'schema': 'shop', 'table': 'orders', 'table_rows': 990})
    assert any('information_schema.INNODB_TABLESTATS' in sql for sql in engine.read)
    assert not any('INNODB_SYS_TABLESTATS' in sql for sql in engine.read)
    assert (row['modified_rows'], row['rows'], row['histogram_columns']) == (150, 1000, 2)
    assert engine.maintenance_is_stale(row, 'analyze', 0.1, 50) is True


def test_mariadb_table_without_persistent_stats_is_stale_for_histogram():
    row = {'modified_rows': 0, 'rows': 500, 'persistent_stats': False}
    engine = FakeMysql('mariadb')
    assert engine.maintenance_is_stale(row, 'histogram', 0.1, 50) is True
    assert engine.maintenance_is_stale(row, 'analyze', 0.1, 50) is False
    assert engine.maintenance_is_stale(dict(row, persistent_stats=True), 'histogram', 0.1, 50) is False


def test_mysql8_default_histogram_columns_skip_json_spatial_and_single_unique():
    engine = FakeMysql('mysql', answers=[
        ('information_schema.columns', [{'c': 'id', 't': 'int'}, {'c': 'doc', 't': 'json'},
                                        {'c': 'geo', 't': 'point'}, {'c': 'price', 't': 'decimal'},
                                        {'c': 'sku', 't': 'varchar'}]),
        ('information_schema.statistics', [{'c': 'id'}, {'c': 'sku'}]),
    ])
    sql = engine.maintenance_statement('histogram', {'schema': 'shop', 'table': 'items'}, {'buckets': 32})
    assert sql == 'ANALYZE TABLE `shop`.`items` UPDATE HISTOGRAM ON `price` WITH 32 BUCKETS'


def test_mysql_check_mode_records_and_runs_nothing():
    engine = FakeMysql('mariadb', check_mode=True)
    assert engine.maintenance_run('analyze', {'schema': 'shop', 'table': 'orders'}, {}) == []
    assert engine.queries == ['ANALYZE TABLE `shop`.`orders`'] and engine.read == []


def test_mysql_error_rows_become_errors():
    engine = FakeMysql('mariadb', answers=[('ANALYZE TABLE', [
        {'Msg_type': 'Error', 'Msg_text': 'Table is marked as crashed'}])])
    with pytest.raises(DbError) as info:
        engine.maintenance_run('analyze', {'schema': 'shop', 'table': 'orders'}, {})
    assert 'crashed' in str(info.value) and 'analyze shop.orders' in str(info.value)
