# -*- coding: utf-8 -*-
"""db_matview statements: PostgreSQL DDL and the MySQL/MariaDB table-swap emulation."""

from __future__ import annotations

import pytest

from ansible_collections.dbops.admin.plugins.module_utils._engines import mysql
from ansible_collections.dbops.admin.plugins.module_utils._engines.mysql_matview import (
    COMMENT_LIMIT,
    build_comment,
    build_mysql_rebuild,
    normalize_query,
    parse_comment,
    query_hash,
)
from ansible_collections.dbops.admin.plugins.module_utils._engines.postgresql_matview import (
    PostgresMatview,
    build_pg_create_matview,
    build_pg_refresh,
    clean_query,
    fit_name,
)
from ansible_collections.dbops.admin.plugins.module_utils._errors import DbError


@pytest.mark.parametrize('query, expected', [
    ('SELECT 1', 'SELECT 1'),
    ('  SELECT a FROM t;  ', 'SELECT a FROM t'),
    ('SELECT a FROM t;;', 'SELECT a FROM t'),
    ("SELECT ';' AS semi", "SELECT ';' AS semi"),
])
def test_clean_query(query, expected):
    assert clean_query(query) == expected


@pytest.mark.parametrize('query', ['SELECT 1; DROP TABLE t', 'SELECT 1 -- x', '', None])
def test_clean_query_refuses_more_than_one_statement(query):
    with pytest.raises(DbError):
        clean_query(query)


def test_fit_name():
    assert fit_name('sales', '_unique') == 'sales_unique'
    long = fit_name('s' * 63, '_dbops_new')
    assert len(long) == 63 and long.endswith('_dbops_new')


def test_pg_statements():
    assert build_pg_create_matview('"s"."v"', 'SELECT 1') == 'CREATE MATERIALIZED VIEW "s"."v" AS SELECT 1 WITH DATA'
    assert build_pg_create_matview('"s"."v"', 'SELECT 1', False).endswith('WITH NO DATA')
    assert build_pg_refresh('"s"."v"', True) == 'REFRESH MATERIALIZED VIEW CONCURRENTLY "s"."v"'
    assert build_pg_refresh('"s"."v"', False) == 'REFRESH MATERIALIZED VIEW "s"."v"'
    assert build_pg_refresh('"s"."v"', True, with_data=False) == 'REFRESH MATERIALIZED VIEW "s"."v" WITH NO DATA'


class FakePostgres(PostgresMatview):
    def __init__(self):
        self.queries = []

    def quote_ident(self, name):
        return '"%s"' % name.replace('"', '""')

    def quote_qualified(self, *parts):
        return '.'.join(self.quote_ident(p) for p in parts)

    def execute(self, sql, params=None, operation=None):
        self.queries.append(sql)


@pytest.mark.parametrize('current, concurrently, expected', [
    ({'unique_indexes': [{'name': 'u', 'columns': ['id']}], 'populated': True}, None,
     'REFRESH MATERIALIZED VIEW CONCURRENTLY "s"."v"'),
    ({'unique_indexes': [], 'populated': True}, None, 'REFRESH MATERIALIZED VIEW "s"."v"'),
    ({'unique_indexes': [{'name': 'u', 'columns': ['id']}], 'populated': False}, None,
     'REFRESH MATERIALIZED VIEW "s"."v"'),
    ({'unique_indexes': [{'name': 'u', 'columns': ['id']}], 'populated': True}, False,
     'REFRESH MATERIALIZED VIEW "s"."v"'),
])
def test_pg_refresh_chooses_concurrently(current, concurrently, expected):
    engine = FakePostgres()
    engine.matview_refresh(dict(current, schema='s', name='v'), concurrently)
    assert engine.queries == [expected]


def test_pg_refresh_concurrently_without_unique_index_fails_clearly():
    with pytest.raises(DbError) as info:
        FakePostgres().matview_refresh({'schema': 's', 'name': 'v', 'unique_indexes': []}, True)
    assert 'unique index' in str(info.value)


def test_mysql_query_normalisation_ignores_whitespace_and_semicolon():
    a = 'SELECT a,\n       b\n  FROM t\n WHERE x = 1;'
    b = 'SELECT a, b FROM t WHERE x = 1'
    assert normalize_query(a) == b
    assert query_hash(a) == query_hash(b)
    assert query_hash(b) != query_hash(b.replace('1', '2'))


def test_mysql_comment_round_trip():
    query = "SELECT id, 'it''s' AS s FROM t"
    assert parse_comment(build_comment(query)) == (query_hash(query), normalize_query(query), True)


def test_mysql_comment_records_a_table_built_without_data():
    query = 'SELECT id FROM t'
    comment = build_comment(query, with_data=False)
    assert parse_comment(comment) == (query_hash(query), normalize_query(query), False)
    assert parse_comment(build_comment(query, with_data=True))[2] is True


def test_mysql_comment_keeps_the_hash_of_a_long_query():
    query = 'SELECT ' + ', '.join('c%d' % i for i in range(800)) + ' FROM t'
    comment = build_comment(query)
    assert len(comment) == COMMENT_LIMIT
    assert parse_comment(comment) == (query_hash(query), None, True)


@pytest.mark.parametrize('comment', [None, '', 'sales report', 'dbops.admin matview sha256=zz; query=SELECT 1'])
def test_mysql_foreign_comments_are_not_ours(comment):
    assert parse_comment(comment) is None


def test_mysql_rebuild_swaps_atomically():
    statements = build_mysql_rebuild('shop', 'daily', 'SELECT id, n FROM t', ['id'], True,
                                     mysql.quote_ident, mysql.quote_literal)
    assert statements[0] == 'DROP TABLE IF EXISTS `shop`.`daily__new`'
    assert statements[1] == 'DROP TABLE IF EXISTS `shop`.`daily__old`'
    assert statements[2].startswith("CREATE TABLE `shop`.`daily__new` COMMENT = 'dbops.admin matview sha256=")
    assert statements[2].endswith("' AS SELECT id, n FROM t")
    assert statements[3] == 'ALTER TABLE `shop`.`daily__new` ADD UNIQUE KEY `dbops_unique` (`id`)'
    assert statements[4] == 'RENAME TABLE `shop`.`daily` TO `shop`.`daily__old`, `shop`.`daily__new` TO `shop`.`daily`'
    assert statements[5] == 'DROP TABLE `shop`.`daily__old`'


def test_mysql_first_build_renames_without_old_table():
    statements = build_mysql_rebuild('shop', 'daily', 'SELECT 1 AS one', [], False, mysql.quote_ident,
                                     mysql.quote_literal, with_data=False)
    assert 'LIMIT 0' in statements[2]
    assert statements[-1] == 'RENAME TABLE `shop`.`daily__new` TO `shop`.`daily`'
    assert not any('UNIQUE' in s for s in statements)


def test_mysql_rebuild_quotes_hostile_names_and_comment():
    hostile = "x`; DROP TABLE t; --"
    statements = build_mysql_rebuild('shop', hostile, "SELECT 'a\\b' AS v", [hostile], True,
                                     mysql.quote_ident, mysql.quote_literal)
    assert '`x``; DROP TABLE t; --__new`' in statements[2]
    assert "'a\\\\b'" in statements[2]  # the comment literal escapes the backslash
    assert statements[3].endswith('(`x``; DROP TABLE t; --`)')
