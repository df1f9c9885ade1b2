# -*- coding: utf-8 -*-
"""db_matview against real servers: pg_matviews on PostgreSQL, the swapped table on MariaDB."""

from __future__ import annotations

import pytest
from modrun import run_module

DB = 'dbops_matview_test'


def sql(server, statement, params=None):
    conn = server.connect(DB)
    try:
        with conn.cursor() as cur:
            cur.execute(statement, params)
            return cur.fetchall() if cur.description else []
    finally:
        conn.close()


def conn_args(server, **kwargs):
    return dict(server.conn, login_db=DB, **kwargs)


def source_table(server, table, rows=100):
    sql(server, 'DROP TABLE IF EXISTS %s' % table)
    sql(server, 'CREATE TABLE %s (id int PRIMARY KEY, region int, amount int)' % table)
    if server.engine == 'postgresql':
        sql(server, 'INSERT INTO %s SELECT g, mod(g, 5), g FROM generate_series(1, %d) g' % (table, rows))
    else:
        sql(server, 'INSERT INTO %s SELECT seq, seq MOD 5, seq FROM seq_1_to_%d' % (table, rows))


# ---- PostgreSQL ------------------------------------------------------------------------------
def ensure_database(server):
    if server.engine == 'postgresql':
        conn = server.connect('postgres')
        with conn.cursor() as cur:
            cur.execute('SELECT 1 FROM pg_database WHERE datname = %s', (DB,))
            if cur.fetchone() is None:
                cur.execute('CREATE DATABASE %s' % DB)
        conn.close()
    else:
        server.sql('CREATE DATABASE IF NOT EXISTS %s' % DB)
    return server


@pytest.fixture
def pg(pg_server):
    return ensure_database(pg_server)


def pg_matview(pg, name):
    rows = sql(pg, 'SELECT definition, ispopulated FROM pg_matviews WHERE matviewname = %s', (name,))
    return {'definition': rows[0][0], 'populated': rows[0][1]} if rows else None


def pg_unique_index(pg, name):
    rows = sql(pg, """SELECT ic.relname FROM pg_index i JOIN pg_class ic ON ic.oid = i.indexrelid
                       JOIN pg_class c ON c.oid = i.indrelid WHERE c.relname = %s AND i.indisunique""", (name,))
    return [r[0] for r in rows]


def pg_comment(pg, name):
    return sql(pg, "SELECT obj_description(%s::regclass, 'pg_class')", ('public.%s' % name,))[0][0]


def test_pg_create_check_run_rerun(pg):
    source_table(pg, 'sales_a')
    query = 'SELECT region, sum(amount) AS total, count(*) AS n FROM sales_a GROUP BY region'
    args = conn_args(pg, name='region_totals', query=query, unique_columns=['region'])

    checked = run_module('db_matview', args, check=True, diff=True)
    assert checked['changed'] is True, checked
    assert checked['queries'][0].startswith('CREATE MATERIALIZED VIEW')
    assert pg_matview(pg, 'region_totals') is None

    created = run_module('db_matview', args, diff=True)
    assert created['changed'] is True, created
    view = pg_matview(pg, 'region_totals')
    assert view['populated'] is True and view['definition'] == created['matview']['definition']
    assert sql(pg, 'SELECT sum(n) FROM region_totals')[0][0] == 100
    assert pg_unique_index(pg, 'region_totals') == ['region_totals_unique']

    again = run_module('db_matview', args)
    assert again['changed'] is False and again['queries'] == []
    reformatted = run_module('db_matview', dict(args, query='select region,  sum(amount) as total,\n count(*) as n\n'
                                                '  from sales_a group by region;'))
    assert reformatted['changed'] is False, reformatted


def test_pg_refresh_changes_rows(pg):
    source_table(pg, 'sales_b')
    args = conn_args(pg, name='sales_b_summary', query='SELECT region, count(*) AS n FROM sales_b GROUP BY region',
                     unique_columns=['region'])
    run_module('db_matview', args)
    sql(pg, 'INSERT INTO sales_b SELECT g, 7, g FROM generate_series(101, 150) g')
    assert sql(pg, 'SELECT sum(n) FROM sales_b_summary')[0][0] == 100

    checked = run_module('db_matview', dict(args, state='refreshed'), check=True)
    assert checked['changed'] is True
    assert sql(pg, 'SELECT sum(n) FROM sales_b_summary')[0][0] == 100

    refreshed = run_module('db_matview', dict(args, state='refreshed'))
    assert refreshed['changed'] is True, refreshed
    assert refreshed['queries'] == ['REFRESH MATERIALIZED VIEW CONCURRENTLY "public"."sales_b_summary"']
    assert sql(pg, 'SELECT sum(n) FROM sales_b_summary')[0][0] == 150
    assert sql(pg, 'SELECT n FROM sales_b_summary WHERE region = 7')[0][0] == 50


def test_pg_query_change_recreates_and_diff_shows_both(pg):
    source_table(pg, 'sales_c')
    base = conn_args(pg, name='big_sales', unique_columns=['id'])
    run_module('db_matview', dict(base, query='SELECT id, amount FROM sales_c WHERE amount > 10'))
    changed = run_module('db_matview', dict(base, query='SELECT id, amount FROM sales_c WHERE amount > 90'), diff=True)
    assert changed['changed'] is True, changed
    assert 'amount > 10' in changed['diff']['before']['definition']
    assert 'amount > 90' in changed['diff']['after']['definition']
    assert 'amount > 90' in pg_matview(pg, 'big_sales')['definition']
    assert sql(pg, 'SELECT count(*) FROM big_sales')[0][0] == 10
    assert pg_unique_index(pg, 'big_sales') == ['big_sales_unique']
    assert sql(pg, "SELECT count(*) FROM pg_class WHERE relname LIKE %s", ('big_sales_dbops%',))[0][0] == 0
    assert pg_comment(pg, 'big_sales') is None  # the work copy's mark does not stay on the view
    assert run_module('db_matview', dict(base, query='SELECT id, amount FROM sales_c WHERE amount > 90'))['changed'] is False


def test_pg_with_data_and_absent(pg):
    source_table(pg, 'sales_d')
    args = conn_args(pg, name='lazy_view', query='SELECT id FROM sales_d', with_data=False)
    assert run_module('db_matview', args)['changed'] is True
    assert pg_matview(pg, 'lazy_view')['populated'] is False
    assert run_module('db_matview', args)['changed'] is False
    filled = run_module('db_matview', dict(args, with_data=True))
    assert filled['changed'] is True and pg_matview(pg, 'lazy_view')['populated'] is True

    absent = conn_args(pg, name='lazy_view', state='absent')
    assert run_module('db_matview', absent, check=True)['changed'] is True
    assert pg_matview(pg, 'lazy_view') is not None
    assert run_module('db_matview', absent)['changed'] is True
    assert pg_matview(pg, 'lazy_view') is None
    assert run_module('db_matview', absent)['changed'] is False


def test_pg_bad_input_fails_and_changes_nothing(pg):
    source_table(pg, 'sales_e')
    missing = run_module('db_matview', conn_args(pg, name='broken', query='SELECT * FROM no_such_table'))
    assert missing['failed'] and 'no_such_table' in missing['msg'] and missing['queries'] == []
    bad_unique = run_module('db_matview', conn_args(pg, name='broken', query='SELECT id FROM sales_e',
                                                    unique_columns=['nope']))
    assert bad_unique['failed'] and 'nope' in bad_unique['msg']
    injected = run_module('db_matview', conn_args(pg, name='broken', query='SELECT 1; DROP TABLE sales_e'))
    assert injected['failed'] and ';' in injected['msg']
    assert pg_matview(pg, 'broken') is None
    assert sql(pg, 'SELECT count(*) FROM sales_e')[0][0] == 100

    run_module('db_matview', conn_args(pg, name='no_key', query='SELECT id FROM sales_e'))
    refused = run_module('db_matview', conn_args(pg, name='no_key', state='refreshed', concurrently=True))
    assert refused['failed'] and 'unique' in refused['msg'] and refused['queries'] == []


def test_pg_name_taken_by_an_index_or_sequence_is_refused_in_check_mode(pg):
    # regression: an index or sequence of that name was taken for "no materialized view", so check
    # mode promised a CREATE that the real run could only fail with "already exists"
    source_table(pg, 'sales_f')
    sql(pg, 'CREATE INDEX IF NOT EXISTS sales_f_region ON sales_f (region)')
    sql(pg, 'CREATE SEQUENCE IF NOT EXISTS sales_f_seq')
    for name, kind in (('sales_f_region', 'an index'), ('sales_f_seq', 'a sequence')):
        args = conn_args(pg, name=name, query='SELECT id FROM sales_f')
        for check in (True, False):
            refused = run_module('db_matview', args, check=check)
            assert refused['failed'] and '%s of that name exists' % kind in refused['msg'], refused
            assert refused['queries'] == []
        assert pg_matview(pg, name) is None
    assert sql(pg, "SELECT count(*) FROM pg_class WHERE relname IN ('sales_f_region', 'sales_f_seq')")[0][0] == 2


def test_pg_query_change_of_a_view_others_depend_on_is_refused_before_anything(pg):
    # regression: check mode promised the swap, and the real run built the new view, then failed at
    # DROP MATERIALIZED VIEW because a view depends on the old one
    source_table(pg, 'sales_h')
    sql(pg, 'DROP VIEW IF EXISTS sales_h_report')
    sql(pg, 'DROP MATERIALIZED VIEW IF EXISTS sales_h_ids')
    args = conn_args(pg, name='sales_h_ids', query='SELECT id, amount FROM sales_h')
    assert run_module('db_matview', args)['changed'] is True
    sql(pg, 'CREATE VIEW sales_h_report AS SELECT count(*) AS n FROM sales_h_ids')
    before = pg_matview(pg, 'sales_h_ids')
    changed = dict(args, query='SELECT id, amount FROM sales_h WHERE amount > 10')
    for check in (True, False):
        refused = run_module('db_matview', changed, check=check)
        assert refused['failed'] and 'sales_h_report' in refused['msg'] and 'depend' in refused['msg'], refused
        assert refused['queries'] == []
    assert pg_matview(pg, 'sales_h_ids') == before
    assert sql(pg, "SELECT count(*) FROM pg_class WHERE relname LIKE 'sales_h_ids_dbops%'")[0][0] == 0
    assert sql(pg, 'SELECT n FROM sales_h_report')[0][0] == 100
    # a refresh needs no swap and still works
    assert run_module('db_matview', dict(args, state='refreshed'))['changed'] is True


def test_pg_query_change_never_drops_someone_elses_object_of_the_work_name(pg):
    # regression: a replace ran DROP MATERIALIZED VIEW IF EXISTS <name>_dbops_new first, dropping a
    # user's materialized view of that name
    source_table(pg, 'sales_j')
    sql(pg, 'DROP MATERIALIZED VIEW IF EXISTS sales_j_ids')
    args = conn_args(pg, name='sales_j_ids', query='SELECT id, amount FROM sales_j', unique_columns=['id'])
    assert run_module('db_matview', args)['changed'] is True
    before = pg_matview(pg, 'sales_j_ids')
    changed = dict(args, query='SELECT id, amount FROM sales_j WHERE amount > 90')
    user_view = 'CREATE MATERIALIZED VIEW sales_j_ids_dbops_new AS SELECT 1 AS x'
    cases = (
        (user_view, 'MATERIALIZED VIEW', 'sales_j_ids_dbops_new',
         'a materialized view named public.sales_j_ids_dbops_new exists'),
        # a work copy of another view (names cut to 63 bytes can meet) is not this view's either
        (user_view + "; COMMENT ON MATERIALIZED VIEW sales_j_ids_dbops_new IS 'dbops.admin work copy of public.other'",
         'MATERIALIZED VIEW', 'sales_j_ids_dbops_new', 'a materialized view named public.sales_j_ids_dbops_new exists'),
        ('CREATE TABLE sales_j_ids_dbops_new (x int)', 'TABLE', 'sales_j_ids_dbops_new',
         'a table named public.sales_j_ids_dbops_new exists'),
        ('CREATE UNIQUE INDEX sales_j_ids_dbops_new_unique ON sales_j (id)', 'INDEX', 'sales_j_ids_dbops_new_unique',
         'an index named public.sales_j_ids_dbops_new_unique exists'),
    )
    for create, kind, relname, words in cases:
        sql(pg, create)
        for check in (True, False):
            refused = run_module('db_matview', changed, check=check)
            assert refused['failed'] and words in refused['msg'], refused
            assert 'a dbops.admin work copy of this view' in refused['msg'], refused
            assert 'rename or drop it first' in refused['msg'], refused
            assert refused['queries'] == []
        assert sql(pg, 'SELECT count(*) FROM pg_class WHERE relname = %s', (relname,))[0][0] == 1
        if kind == 'MATERIALIZED VIEW':
            assert sql(pg, 'SELECT x FROM sales_j_ids_dbops_new')[0][0] == 1
        assert pg_matview(pg, 'sales_j_ids') == before
        sql(pg, 'DROP %s %s' % (kind, relname))
    replaced = run_module('db_matview', changed)
    assert replaced['changed'] is True, replaced
    assert 'amount > 90' in pg_matview(pg, 'sales_j_ids')['definition']


def test_pg_query_change_cleans_a_marked_leftover_work_copy(pg):
    # what an interrupted replace leaves: the work copy, marked as ours, with its unique index
    source_table(pg, 'sales_k')
    sql(pg, 'DROP MATERIALIZED VIEW IF EXISTS sales_k_ids')
    args = conn_args(pg, name='sales_k_ids', query='SELECT id, amount FROM sales_k WHERE amount > 10',
                     unique_columns=['id'])
    assert run_module('db_matview', args)['changed'] is True
    sql(pg, "COMMENT ON MATERIALIZED VIEW sales_k_ids IS 'kept by the DBA'")
    sql(pg, 'CREATE MATERIALIZED VIEW sales_k_ids_dbops_new AS SELECT id, amount FROM sales_k')
    sql(pg, "COMMENT ON MATERIALIZED VIEW sales_k_ids_dbops_new IS 'dbops.admin work copy of public.sales_k_ids'")
    sql(pg, 'CREATE UNIQUE INDEX sales_k_ids_dbops_new_unique ON sales_k_ids_dbops_new (id)')
    changed = dict(args, query='SELECT id, amount FROM sales_k WHERE amount > 90')

    checked = run_module('db_matview', changed, check=True)
    assert checked['changed'] is True, checked
    assert checked['queries'][0] == 'DROP MATERIALIZED VIEW IF EXISTS "public"."sales_k_ids_dbops_new"'
    assert sql(pg, 'SELECT count(*) FROM sales_k_ids_dbops_new')[0][0] == 100

    replaced = run_module('db_matview', changed)
    assert replaced['changed'] is True, replaced
    assert 'amount > 90' in pg_matview(pg, 'sales_k_ids')['definition']
    assert sql(pg, 'SELECT count(*) FROM sales_k_ids')[0][0] == 10
    assert pg_unique_index(pg, 'sales_k_ids') == ['sales_k_ids_unique']
    assert sql(pg, "SELECT count(*) FROM pg_class WHERE relname LIKE %s", ('sales_k_ids_dbops%',))[0][0] == 0
    assert pg_comment(pg, 'sales_k_ids') == 'kept by the DBA'
    assert run_module('db_matview', changed)['changed'] is False


# ---- MariaDB --------------------------------------------------------------------------------
@pytest.fixture
def my(mariadb_server):
    return ensure_database(mariadb_server)


def my_table(my, name):
    rows = sql(my, """SELECT table_comment, table_type FROM information_schema.tables
                       WHERE table_schema = %s AND table_name = %s""", (DB, name))
    return {'comment': rows[0][0], 'type': rows[0][1]} if rows else None


def my_table_id(my, name):
    return sql(my, 'SELECT table_id FROM information_schema.innodb_sys_tables WHERE name = %s', (DB + '/' + name,))[0][0]


def test_mariadb_create_check_run_rerun(my):
    source_table(my, 'sales_a')
    query = 'SELECT region, SUM(amount) AS total, COUNT(*) AS n FROM sales_a GROUP BY region'
    args = conn_args(my, name='region_totals', query=query, unique_columns=['region'])

    checked = run_module('db_matview', args, check=True, diff=True)
    assert checked['changed'] is True, checked
    assert my_table(my, 'region_totals') is None

    created = run_module('db_matview', args, diff=True)
    assert created['changed'] is True, created
    table = my_table(my, 'region_totals')
    assert table['type'] == 'BASE TABLE' and table['comment'].startswith('dbops.admin matview sha256=')
    assert sql(my, 'SELECT SUM(n) FROM region_totals')[0][0] == 100
    assert sql(my, """SELECT column_name FROM information_schema.statistics WHERE table_schema = %s
                       AND table_name = 'region_totals' AND non_unique = 0""", (DB,)) == (('region',),)
    assert created['matview']['emulated'] is True

    again = run_module('db_matview', dict(args, query='  ' + query.replace(' FROM', '\n   FROM') + ';'))
    assert again['changed'] is False and again['queries'] == [], again


def test_mariadb_refresh_swaps_and_changes_rows(my):
    source_table(my, 'sales_b')
    args = conn_args(my, name='sales_b_summary', query='SELECT region, COUNT(*) AS n FROM sales_b GROUP BY region')
    run_module('db_matview', args)
    sql(my, 'INSERT INTO sales_b SELECT seq, 7, seq FROM seq_101_to_150')
    table_id = my_table_id(my, 'sales_b_summary')

    checked = run_module('db_matview', dict(args, state='refreshed'), check=True)
    assert checked['changed'] is True and my_table_id(my, 'sales_b_summary') == table_id

    refreshed = run_module('db_matview', dict(args, state='refreshed'))
    assert refreshed['changed'] is True, refreshed
    assert any(stmt.startswith('RENAME TABLE') and '__old' in stmt for stmt in refreshed['queries'])
    assert my_table_id(my, 'sales_b_summary') != table_id
    assert sql(my, 'SELECT SUM(n) FROM sales_b_summary')[0][0] == 150
    assert my_table(my, 'sales_b_summary__old') is None and my_table(my, 'sales_b_summary__new') is None


def test_mariadb_query_change_rebuilds_and_diff_shows_both(my):
    source_table(my, 'sales_c')
    base = conn_args(my, name='big_sales')
    run_module('db_matview', dict(base, query='SELECT id, amount FROM sales_c WHERE amount > 10'))
    query = "SELECT id, amount FROM sales_c WHERE amount > 90 AND CONCAT(id, '') LIKE '%'"
    changed = run_module('db_matview', dict(base, query=query), diff=True)
    assert changed['changed'] is True, changed
    assert 'amount > 10' in changed['diff']['before']['definition']
    assert 'amount > 90' in changed['diff']['after']['definition']
    assert sql(my, 'SELECT COUNT(*) FROM big_sales')[0][0] == 10
    assert run_module('db_matview', dict(base, query=query))['changed'] is False
    assert 'amount > 90' in my_table(my, 'big_sales')['comment']


def test_mariadb_foreign_table_and_bad_query_are_refused(my):
    source_table(my, 'sales_d')
    sql(my, 'DROP TABLE IF EXISTS plain_table')
    sql(my, 'CREATE TABLE plain_table (x int)')
    sql(my, 'INSERT INTO plain_table VALUES (1), (2)')
    refused = run_module('db_matview', conn_args(my, name='plain_table', query='SELECT id FROM sales_d'))
    assert refused['failed'] and 'not created by dbops.admin' in refused['msg']
    assert sql(my, 'SELECT COUNT(*) FROM plain_table')[0][0] == 2
    gone = run_module('db_matview', conn_args(my, name='plain_table', state='absent'))
    assert gone['failed'] and my_table(my, 'plain_table') is not None

    bad = run_module('db_matview', conn_args(my, name='broken', query='SELECT nope FROM sales_d'))
    assert bad['failed'] and 'nope' in bad['msg'] and bad['queries'] == []
    assert my_table(my, 'broken') is None and my_table(my, 'broken__new') is None
    # regression: a column named twice in unique_columns passed check mode, then failed at the server
    twice = conn_args(my, name='broken', query='SELECT id FROM sales_d', unique_columns=['id', 'ID'])
    for check in (True, False):
        refused = run_module('db_matview', twice, check=check)
        assert refused['failed'] and 'twice' in refused['msg'] and refused['queries'] == [], refused
    assert my_table(my, 'broken') is None and my_table(my, 'broken__new') is None


def test_mariadb_with_data_false_then_true_fills_the_table(my):
    # regression: a table built empty (with_data false) counted as populated, so with_data true
    # never filled it, unlike PostgreSQL's WITH NO DATA view
    source_table(my, 'sales_g')
    args = conn_args(my, name='sales_g_ids', query='SELECT id, amount FROM sales_g WHERE amount > 50')
    empty = run_module('db_matview', dict(args, with_data=False))
    assert empty['changed'] is True and empty['matview']['populated'] is False, empty
    assert sql(my, 'SELECT COUNT(*) FROM sales_g_ids')[0][0] == 0
    assert run_module('db_matview', dict(args, with_data=False))['changed'] is False

    checked = run_module('db_matview', args, check=True)
    assert checked['changed'] is True and checked['matview']['populated'] is True, checked
    assert sql(my, 'SELECT COUNT(*) FROM sales_g_ids')[0][0] == 0
    filled = run_module('db_matview', args)
    assert filled['changed'] is True and any('refresh' in a for a in filled['actions']), filled
    assert sql(my, 'SELECT COUNT(*) FROM sales_g_ids')[0][0] == 50
    assert filled['matview']['populated'] is True
    again = run_module('db_matview', args)
    assert again['changed'] is False and again['queries'] == [], again


def test_mariadb_absent(my):
    source_table(my, 'sales_e')
    run_module('db_matview', conn_args(my, name='short_lived', query='SELECT id FROM sales_e'))
    absent = conn_args(my, name='short_lived', state='absent')
    assert run_module('db_matview', absent, check=True)['changed'] is True
    assert my_table(my, 'short_lived') is not None
    assert run_module('db_matview', absent)['changed'] is True
    assert my_table(my, 'short_lived') is None
    assert run_module('db_matview', absent)['changed'] is False


# ---- both engines -----------------------------------------------------------------------------
@pytest.fixture
def db(server):
    return ensure_database(server)


def test_hostile_names_are_quoted(db):
    name = 'mv"`; DROP TABLE victim; --'
    source_table(db, 'victim', rows=5)
    args = conn_args(db, name=name, query='SELECT id, amount FROM victim', unique_columns=['id'])
    created = run_module('db_matview', args)
    assert created['changed'] is True, created
    quoted = '"%s"' % name.replace('"', '""') if db.engine == 'postgresql' else '`%s`' % name.replace('`', '``')
    assert sql(db, 'SELECT COUNT(*) FROM %s' % quoted)[0][0] == 5
    assert run_module('db_matview', args)['changed'] is False
    assert run_module('db_matview', dict(args, state='refreshed'))['changed'] is True
    assert run_module('db_matview', conn_args(db, name=name, state='absent'))['changed'] is True
    assert sql(db, 'SELECT COUNT(*) FROM victim')[0][0] == 5


def test_missing_schema_is_refused_in_check_mode(db):
    # regression: check mode promised the CREATE, the real run failed at the server
    args = conn_args(db, name='orphan', schema='no_such_schema_x', query='SELECT 1 AS a')
    for check in (True, False):
        refused = run_module('db_matview', args, check=check)
        assert refused['failed'] and 'no_such_schema_x does not exist' in refused['msg'], refused
        assert refused['queries'] == []
    if db.engine == 'postgresql':
        assert sql(db, "SELECT count(*) FROM pg_namespace WHERE nspname = 'no_such_schema_x'")[0][0] == 0
    else:
        assert sql(db, "SELECT count(*) FROM information_schema.schemata WHERE schema_name = 'no_such_schema_x'")[0][0] == 0


def test_diff_shows_whether_the_view_is_populated(db):
    """--diff shows populated (WITH NO DATA on PostgreSQL, a table built empty on MariaDB) before and after,
    in check mode as in the real run; filling an empty view is a diff, not only an action."""
    source_table(db, 'sales_pop', rows=10)
    args = conn_args(db, name='pop_view', query='SELECT id, amount FROM sales_pop')
    run_module('db_matview', conn_args(db, name='pop_view', state='absent'))

    def step(extra, before, after):
        checked = run_module('db_matview', dict(args, **extra), check=True, diff=True)
        real = run_module('db_matview', dict(args, **extra), diff=True)
        assert not real['failed'], real.get('msg')
        assert checked['diff'] == real['diff'], (checked['diff'], real['diff'])
        assert real['diff']['before'].get('populated') == before and real['diff']['after'].get('populated') == after
        return real

    empty = step({'with_data': False}, None, False)
    assert empty['changed'] is True
    assert step({'with_data': False}, False, False)['changed'] is False
    filled = step({}, False, True)
    assert filled['changed'] is True and filled['matview']['populated'] is True
    assert sql(db, 'SELECT COUNT(*) FROM pop_view')[0][0] == 10
    again = step({}, True, True)
    assert again['changed'] is False and again['diff']['before'] == again['diff']['after']
    gone = run_module('db_matview', conn_args(db, name='pop_view', state='absent'), diff=True)
    assert gone['diff']['before']['populated'] is True and gone['diff']['after'] == {}


def test_mariadb_unqualified_table_without_login_db_says_what_to_do(my):
    """schema names where the table goes, not where the query's tables are: an unqualified one without login_db
    fails (check mode too) saying to qualify it or give login_db."""
    source_table(my, 'sales_q', rows=3)
    args = dict(my.conn, schema=DB, name='sales_q_ids', query='SELECT id FROM sales_q')
    for check in (True, False):
        refused = run_module('db_matview', args, check=check)
        assert refused['failed'] and 'login_db' in refused['msg'] and 'qualify' in refused['msg'], refused
        assert refused['queries'] == []
    assert my_table(my, 'sales_q_ids') is None
    fine = run_module('db_matview', dict(args, query='SELECT id FROM %s.sales_q' % DB))
    assert fine['changed'] and not fine['failed'], fine.get('msg')
    assert sql(my, 'SELECT COUNT(*) FROM sales_q_ids')[0][0] == 3


def test_unique_columns_change_replaces_the_index_in_the_diff(db):
    """Other unique_columns replace the index of our name: check mode and --diff show the new one only,
    as the catalog has it after the real run."""
    source_table(db, 'sales_u', rows=10)
    args = conn_args(db, name='sales_u_view', query='SELECT id, amount FROM sales_u', unique_columns=['id'])
    run_module('db_matview', conn_args(db, name='sales_u_view', state='absent'))
    assert run_module('db_matview', args)['changed']
    changed = dict(args, unique_columns=['id', 'amount'])
    checked = run_module('db_matview', changed, check=True, diff=True)
    real = run_module('db_matview', changed, diff=True)
    assert real['changed'] and not real['failed'], real.get('msg')
    assert checked['diff'] == real['diff'], (checked['diff'], real['diff'])
    assert real['diff']['before']['unique_indexes'] == [['id']]
    assert real['diff']['after']['unique_indexes'] == [['id', 'amount']]
    assert checked['matview']['unique_indexes'] == real['matview']['unique_indexes']
    again = run_module('db_matview', changed, diff=True)
    assert again['changed'] is False and again['diff']['before'] == again['diff']['after']
