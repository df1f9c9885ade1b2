# -*- coding: utf-8 -*-
"""db_maintenance against real servers: statistics timestamps read from the catalog, the
staleness test, check mode running nothing, unknown actions refused."""

from __future__ import annotations

import time

import pytest
from modrun import run_module

DB = 'dbops_maint_test'


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


# ---- PostgreSQL ------------------------------------------------------------------------------
@pytest.fixture
def pg(pg_server):
    conn = pg_server.connect('postgres')
    with conn.cursor() as cur:
        cur.execute('SELECT 1 FROM pg_database WHERE datname = %s', (DB,))
        if cur.fetchone() is None:
            cur.execute('CREATE DATABASE %s' % DB)
    conn.close()
    return pg_server


def pg_table(pg, schema, table, rows=1000, index=False):
    """A table autovacuum leaves alone, so only the module changes its statistics."""
    qt = '"%s"."%s"' % (schema, table.replace('"', '""'))
    sql(pg, 'CREATE SCHEMA IF NOT EXISTS "%s"' % schema)
    sql(pg, 'DROP TABLE IF EXISTS %s' % qt)
    sql(pg, 'CREATE TABLE %s (id int PRIMARY KEY, v text) WITH (autovacuum_enabled = false)' % qt)
    if index:
        sql(pg, 'CREATE INDEX ON %s (v)' % qt)
    pg_write(pg, "INSERT INTO %s SELECT g, 'v' || g FROM generate_series(1, %d) g" % (qt, rows))
    return qt


def pg_write(pg, statement):
    """Run a write and make sure the server's statistics have counted it before returning."""
    conn = pg.connect(DB)
    with conn.cursor() as cur:
        cur.execute(statement)
        cur.execute('SELECT pg_stat_force_next_flush()')
    conn.close()
    time.sleep(0.3)


def pg_stats(pg, schema, table):
    rows = sql(pg, """SELECT last_analyze, analyze_count, last_vacuum, vacuum_count, n_mod_since_analyze
                        FROM pg_stat_user_tables WHERE schemaname = %s AND relname = %s""", (schema, table))
    return dict(zip(('last_analyze', 'analyze_count', 'last_vacuum', 'vacuum_count', 'n_mod_since_analyze'), rows[0]))


def wait_modified(pg, schema, table, at_least):
    deadline = time.time() + 10
    while pg_stats(pg, schema, table)['n_mod_since_analyze'] < at_least and time.time() < deadline:
        time.sleep(0.2)


def test_pg_analyze_check_run_and_timestamps(pg):
    pg_table(pg, 'm_analyze', 'facts')
    args = conn_args(pg, action='analyze', tables=['m_analyze.facts'])

    checked = run_module('db_maintenance', args, check=True)
    assert checked['changed'] is True, checked
    assert checked['queries'] == ['ANALYZE "m_analyze"."facts"']
    assert [t['table'] for t in checked['tables']] == ['facts']
    assert pg_stats(pg, 'm_analyze', 'facts')['last_analyze'] is None

    done = run_module('db_maintenance', args)
    assert done['changed'] is True, done
    stats = pg_stats(pg, 'm_analyze', 'facts')
    assert stats['last_analyze'] is not None and stats['analyze_count'] == 1
    entry = done['tables'][0]
    assert entry['before']['last_analyze'] is None
    assert entry['after']['last_analyze'] == stats['last_analyze'].isoformat()
    assert entry['modified_rows'] == 1000


def test_pg_only_if_stale(pg):
    a = pg_table(pg, 'm_stale', 'busy')
    pg_table(pg, 'm_stale', 'quiet')
    first = run_module('db_maintenance', conn_args(pg, action='analyze', schema='m_stale'))
    assert sorted(t['table'] for t in first['tables']) == ['busy', 'quiet']
    args = conn_args(pg, action='analyze', schema='m_stale', only_if_stale=True)

    fresh = run_module('db_maintenance', args)
    assert fresh['changed'] is False, fresh
    assert fresh['queries'] == [] and sorted(fresh['skipped_tables']) == ['m_stale.busy', 'm_stale.quiet']

    pg_write(pg, "UPDATE m_stale.quiet SET v = v || 'x' WHERE id <= 20")  # below stale_min_rows
    pg_write(pg, "UPDATE %s SET v = v || 'x' WHERE id <= 300" % a)        # 30 % of the table
    wait_modified(pg, 'm_stale', 'busy', 300)
    quiet_before = pg_stats(pg, 'm_stale', 'quiet')['analyze_count']
    busy_before = pg_stats(pg, 'm_stale', 'busy')['analyze_count']

    checked = run_module('db_maintenance', args, check=True)
    assert checked['changed'] is True and [t['table'] for t in checked['tables']] == ['busy']
    assert pg_stats(pg, 'm_stale', 'busy')['analyze_count'] == busy_before

    stale = run_module('db_maintenance', args)
    assert stale['changed'] is True, stale
    assert [t['table'] for t in stale['tables']] == ['busy']
    assert stale['tables'][0]['modified_rows'] >= 300
    assert pg_stats(pg, 'm_stale', 'busy')['analyze_count'] == busy_before + 1
    assert pg_stats(pg, 'm_stale', 'quiet')['analyze_count'] == quiet_before

    again = run_module('db_maintenance', args)
    assert again['changed'] is False and again['queries'] == []


def test_pg_only_if_stale_with_zero_thresholds_leaves_untouched_tables(pg):
    # stale_min_rows 0 and stale_ratio 0 mean "any modified row": an empty or untouched table is
    # not stale, so the scheduled run is unchanged once the modified ones are done
    pg_table(pg, 'm_zero', 'empty', rows=0)
    busy = pg_table(pg, 'm_zero', 'busy')
    run_module('db_maintenance', conn_args(pg, action='vacuum_analyze', schema='m_zero'))
    args = conn_args(pg, action='analyze', schema='m_zero', only_if_stale=True, stale_min_rows=0, stale_ratio=0)
    pg_write(pg, "UPDATE %s SET v = v || 'x' WHERE id = 1" % busy)
    wait_modified(pg, 'm_zero', 'busy', 1)
    stale = run_module('db_maintenance', args)
    assert stale['changed'] is True and [t['table'] for t in stale['tables']] == ['busy'], stale
    for mode in ({'check': True}, {}):
        again = run_module('db_maintenance', args, **mode)
        assert again['changed'] is False and again['queries'] == [], again
        assert sorted(again['skipped_tables']) == ['m_zero.busy', 'm_zero.empty']


def test_pg_vacuum_vacuum_full_and_reindex(pg):
    qt = pg_table(pg, 'm_vacuum', 'churn', index=True)
    pg_write(pg, 'DELETE FROM %s WHERE id %% 2 = 0' % qt)

    def relfilenode(name):
        return sql(pg, "SELECT relfilenode FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace "
                       "WHERE n.nspname = 'm_vacuum' AND c.relname = %s", (name,))[0][0]

    vacuum = run_module('db_maintenance', conn_args(pg, action='vacuum', tables=['m_vacuum.churn']))
    assert vacuum['changed'] is True, vacuum
    assert pg_stats(pg, 'm_vacuum', 'churn')['last_vacuum'] is not None
    assert vacuum['tables'][0]['before']['last_vacuum'] is None
    assert vacuum['tables'][0]['after']['last_vacuum'] is not None

    table_file = relfilenode('churn')
    full = run_module('db_maintenance', conn_args(pg, action='vacuum_full', tables=['m_vacuum.churn']))
    assert full['changed'] is True and full['queries'] == ['VACUUM (FULL) "m_vacuum"."churn"']
    assert relfilenode('churn') != table_file

    index_file = relfilenode('churn_v_idx')
    reindex = run_module('db_maintenance', conn_args(pg, action='reindex', tables=['m_vacuum.churn']))
    assert reindex['changed'] is True and 'CONCURRENTLY' in reindex['queries'][0]
    assert relfilenode('churn_v_idx') != index_file


def test_pg_hostile_table_name_is_quoted(pg):
    pg_table(pg, 'm_hostile', 'victim', rows=10)
    hostile = 'we"ird; DROP TABLE m_hostile.victim; --'
    pg_table(pg, 'm_hostile', hostile, rows=10)
    done = run_module('db_maintenance', conn_args(pg, action='analyze', schema='m_hostile', tables=[hostile]))
    assert done['changed'] is True, done
    assert pg_stats(pg, 'm_hostile', hostile)['last_analyze'] is not None
    assert sql(pg, 'SELECT count(*) FROM m_hostile.victim')[0][0] == 10


def test_pg_bad_input_fails_and_runs_nothing(pg):
    pg_table(pg, 'm_bad', 'present', rows=10)
    for action in ('optimize', 'histogram'):
        refused = run_module('db_maintenance', conn_args(pg, action=action))
        assert refused['failed'] and 'MySQL/MariaDB action' in refused['msg'] and refused['queries'] == []
    missing = run_module('db_maintenance', conn_args(pg, action='analyze', tables=['m_bad.present', 'm_bad.absent']))
    assert missing['failed'] and 'm_bad.absent' in missing['msg'] and 'no such table' in missing['msg']
    assert missing['queries'] == []
    assert pg_stats(pg, 'm_bad', 'present')['last_analyze'] is None
    no_schema = run_module('db_maintenance', conn_args(pg, action='analyze', schema='no_such_schema'))
    assert no_schema['failed'] and 'no such schema' in no_schema['msg']
    for option, value in (('stale_ratio', -0.5), ('stale_ratio', 'nan'), ('stale_min_rows', -1), ('buckets', 0),
                          ('buckets', 5000)):
        bad = run_module('db_maintenance', conn_args(pg, action='analyze', schema='m_bad', only_if_stale=True,
                                                     **{option: value}))
        assert bad['failed'] and option in bad['msg'] and bad.get('queries') == [], (option, value, bad)
    assert pg_stats(pg, 'm_bad', 'present')['last_analyze'] is None


def test_pg_partitioned_table_named_in_tables(pg):
    # regression: a partitioned table was "no such table", yet its own statistics are only ever
    # gathered by a manual ANALYZE (autovacuum analyzes the partitions, never the parent)
    sql(pg, 'CREATE SCHEMA IF NOT EXISTS m_part')
    sql(pg, 'DROP TABLE IF EXISTS m_part.measures')
    sql(pg, 'CREATE TABLE m_part.measures (id int, v int) PARTITION BY RANGE (id)')
    sql(pg, 'CREATE TABLE m_part.measures_1 PARTITION OF m_part.measures FOR VALUES FROM (0) TO (1000) '
            'WITH (autovacuum_enabled = false)')
    sql(pg, 'CREATE INDEX ON m_part.measures (v)')
    pg_write(pg, 'INSERT INTO m_part.measures SELECT g, mod(g, 9) FROM generate_series(1, 900) g')
    assert pg_stats(pg, 'm_part', 'measures')['last_analyze'] is None
    args = conn_args(pg, action='analyze', tables=['m_part.measures'])
    checked = run_module('db_maintenance', args, check=True)
    assert checked['changed'] is True and checked['queries'] == ['ANALYZE "m_part"."measures"'], checked
    assert pg_stats(pg, 'm_part', 'measures')['last_analyze'] is None
    done = run_module('db_maintenance', args)
    assert done['changed'] is True, done
    assert pg_stats(pg, 'm_part', 'measures')['last_analyze'] is not None
    assert pg_stats(pg, 'm_part', 'measures_1')['last_analyze'] is not None  # ANALYZE recurses
    for action in ('vacuum', 'reindex'):
        assert run_module('db_maintenance', dict(args, action=action))['changed'] is True
    # a schema scope takes the partitions only, so no partition is processed twice
    scoped = run_module('db_maintenance', conn_args(pg, action='analyze', schema='m_part'), check=True)
    assert [t['table'] for t in scoped['tables']] == ['measures_1'], scoped


def test_pg_server_warnings_are_returned_in_messages(pg):
    # regression: REINDEX TABLE CONCURRENTLY skips an invalid index with only a server WARNING, and
    # the module returned no message at all
    qt = pg_table(pg, 'm_warn', 'with_invalid', rows=100)
    sql(pg, 'CREATE INDEX with_invalid_v ON %s (v)' % qt)
    sql(pg, "UPDATE pg_index SET indisvalid = false WHERE indexrelid = 'm_warn.with_invalid_v'::regclass")
    done = run_module('db_maintenance', conn_args(pg, action='reindex', tables=['m_warn.with_invalid']))
    assert done['changed'] is True, done
    messages = done['tables'][0]['messages']
    assert any('invalid index' in m and 'with_invalid_v' in m for m in messages), done
    assert sql(pg, "SELECT indisvalid FROM pg_index WHERE indexrelid = 'm_warn.with_invalid_v'::regclass")[0][0] is False
    quiet = run_module('db_maintenance', conn_args(pg, action='analyze', tables=['m_warn.with_invalid']))
    assert quiet['tables'][0]['messages'] == [], quiet


def test_pg_tables_the_login_may_not_maintain_are_never_reported_done(pg):
    # regression: VACUUM/ANALYZE of a table the login does not own only print a warning and skip it,
    # yet the module reported changed with the statistics untouched
    qt = pg_table(pg, 'm_owner', 'not_mine', rows=100)
    sql(pg, 'DROP TABLE IF EXISTS m_owner.mine')
    sql(pg, "DO $$BEGIN IF NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = 'm_peon') THEN "
            "CREATE ROLE m_peon LOGIN PASSWORD 'Peon-Secret-9'; END IF; END$$")
    sql(pg, 'GRANT USAGE, CREATE ON SCHEMA m_owner TO m_peon')
    sql(pg, 'GRANT SELECT ON %s TO m_peon' % qt)
    sql(pg, 'CREATE TABLE m_owner.mine (id int)')
    sql(pg, 'ALTER TABLE m_owner.mine OWNER TO m_peon')
    peon = dict(conn_args(pg), login_user='m_peon', login_password='Peon-Secret-9')
    for action in ('analyze', 'vacuum', 'reindex'):
        for check in (True, False):
            refused = run_module('db_maintenance', dict(peon, action=action, tables=['m_owner.not_mine']), check=check)
            assert refused['failed'] and 'only the owner' in refused['msg'] and 'm_owner.not_mine' in refused['msg']
            assert refused['queries'] == []
    assert pg_stats(pg, 'm_owner', 'not_mine')['last_analyze'] is None
    assert pg_stats(pg, 'm_owner', 'not_mine')['last_vacuum'] is None

    scoped = run_module('db_maintenance', dict(peon, action='analyze', schema='m_owner'))
    assert scoped['changed'] is True, scoped
    assert [t['table'] for t in scoped['tables']] == ['mine']
    assert scoped['skipped_tables'] == ['m_owner.not_mine']
    assert 'not_mine' in str(scoped.get('warnings')) and 'owner' in str(scoped.get('warnings')), scoped
    assert pg_stats(pg, 'm_owner', 'mine')['last_analyze'] is not None
    assert pg_stats(pg, 'm_owner', 'not_mine')['last_analyze'] is None
    # the superuser may
    assert run_module('db_maintenance', conn_args(pg, action='analyze', tables=['m_owner.not_mine']))['changed']
    assert pg_stats(pg, 'm_owner', 'not_mine')['last_analyze'] is not None


# ---- MariaDB --------------------------------------------------------------------------------
@pytest.fixture
def my(mariadb_server):
    mariadb_server.sql('CREATE DATABASE IF NOT EXISTS %s' % DB)
    return mariadb_server


def my_table(my, table, rows=300):
    qt = '`%s`' % table.replace('`', '``')
    sql(my, 'DROP TABLE IF EXISTS %s' % qt)
    sql(my, 'CREATE TABLE %s (id int PRIMARY KEY, v varchar(40), k int, KEY (k)) ENGINE=InnoDB STATS_AUTO_RECALC=0' % qt)
    sql(my, "INSERT INTO %s SELECT seq, concat('v', seq), seq MOD 13 FROM seq_1_to_%d" % (qt, rows))
    sql(my, 'ANALYZE TABLE %s' % qt)
    return qt


def my_last_analyze(my, table):
    rows = sql(my, 'SELECT last_update FROM mysql.innodb_table_stats WHERE database_name = %s AND table_name = %s',
               (DB, table))
    return rows[0][0] if rows else None


def my_table_id(my, table):
    return sql(my, 'SELECT table_id FROM information_schema.innodb_sys_tables WHERE name = %s',
               (DB + '/' + table,))[0][0]


def test_mariadb_analyze_check_run_and_timestamps(my):
    my_table(my, 'facts')
    before = my_last_analyze(my, 'facts')
    time.sleep(1.1)  # last_update has one-second resolution
    args = conn_args(my, action='analyze', tables=['facts'])

    checked = run_module('db_maintenance', args, check=True)
    assert checked['changed'] is True and checked['queries'] == ['ANALYZE TABLE `%s`.`facts`' % DB]
    assert my_last_analyze(my, 'facts') == before

    done = run_module('db_maintenance', args)
    assert done['changed'] is True, done
    after = my_last_analyze(my, 'facts')
    assert after > before
    assert done['tables'][0]['before']['last_analyze'] == before.isoformat()
    assert done['tables'][0]['after']['last_analyze'] == after.isoformat()


def test_mariadb_only_if_stale(my):
    my_table(my, 'busy')
    my_table(my, 'quiet')
    args = conn_args(my, action='analyze', tables=['busy', 'quiet'], only_if_stale=True)
    fresh = run_module('db_maintenance', args)
    assert fresh['changed'] is False and fresh['queries'] == [], fresh

    sql(my, "UPDATE busy SET v = concat(v, 'x') WHERE id <= 100")
    sql(my, "UPDATE quiet SET v = concat(v, 'x') WHERE id <= 10")
    checked = run_module('db_maintenance', args, check=True)
    assert [t['table'] for t in checked['tables']] == ['busy']
    stale = run_module('db_maintenance', args)
    assert stale['changed'] is True, stale
    assert [t['table'] for t in stale['tables']] == ['busy'] and stale['skipped_tables'] == ['%s.quiet' % DB]
    assert stale['tables'][0]['modified_rows'] >= 100
    assert stale['tables'][0]['after']['modified_rows'] == 0

    again = run_module('db_maintenance', args)
    assert again['changed'] is False and again['queries'] == []


def test_mariadb_histogram_and_optimize(my):
    my_table(my, 'measures')

    def histograms():
        return sql(my, """SELECT count(*) FROM mysql.column_stats
                           WHERE db_name = %s AND table_name = 'measures' AND histogram IS NOT NULL""", (DB,))[0][0]
    assert histograms() == 0
    args = conn_args(my, action='histogram', tables=['measures'], only_if_stale=True)
    built = run_module('db_maintenance', args)
    assert built['changed'] is True and 'PERSISTENT FOR ALL' in built['queries'][0], built
    assert histograms() > 0
    assert run_module('db_maintenance', args)['changed'] is False

    table_id = my_table_id(my, 'measures')
    optimized = run_module('db_maintenance', conn_args(my, action='optimize', tables=['measures']))
    assert optimized['changed'] is True, optimized
    assert my_table_id(my, 'measures') != table_id


def test_mariadb_hostile_table_name_is_quoted(my):
    my_table(my, 'victim', rows=10)
    hostile = 'we`ird"; DROP TABLE victim; --'
    my_table(my, hostile, rows=10)
    before = my_last_analyze(my, hostile)
    time.sleep(1.1)
    done = run_module('db_maintenance', conn_args(my, action='analyze', tables=[hostile]))
    assert done['changed'] is True, done
    assert my_last_analyze(my, hostile) > before
    assert sql(my, 'SELECT COUNT(*) FROM victim')[0][0] == 10


def test_mariadb_bad_input_fails_and_runs_nothing(my):
    my_table(my, 'kept', rows=10)
    refused = run_module('db_maintenance', conn_args(my, action='vacuum'))
    assert refused['failed'] and 'PostgreSQL action' in refused['msg'] and refused['queries'] == []
    before = my_last_analyze(my, 'kept')
    missing = run_module('db_maintenance', conn_args(my, action='analyze', tables=['kept', 'gone']))
    assert missing['failed'] and '%s.gone' % DB in missing['msg'] and missing['queries'] == []
    assert my_last_analyze(my, 'kept') == before


def test_mariadb_histogram_unknown_column_fails_before_anything_runs(my):
    # regression: the server answered an unknown column with a bare "Invalid argument", after the
    # tables before it had been processed, and check mode reported a change
    my_table(my, 'hist_a')
    sql(my, 'DROP TABLE IF EXISTS hist_b')
    sql(my, 'CREATE TABLE hist_b (id int PRIMARY KEY, other int) ENGINE=InnoDB')
    sql(my, 'INSERT INTO hist_b SELECT seq, seq FROM seq_1_to_100')

    def histograms(table):
        return sql(my, """SELECT column_name FROM mysql.column_stats
                           WHERE db_name = %s AND table_name = %s AND histogram IS NOT NULL""", (DB, table))
    assert histograms('hist_a') == ()
    args = conn_args(my, action='histogram', tables=['hist_a', 'hist_b'], columns=['k'])
    for check in (True, False):
        failed = run_module('db_maintenance', args, check=check)
        assert failed['failed'] and 'no such column: k' in failed['msg'] and 'hist_b' in failed['msg'], failed
        assert failed['queries'] == []
    assert histograms('hist_a') == ()

    built = run_module('db_maintenance', dict(args, tables=['hist_a'], columns=['K']))
    assert built['changed'] is True and '(`k`)' in built['queries'][0], built
    assert histograms('hist_a') == (('k',),)


def test_pg_columns_with_another_action_than_histogram_is_refused(pg):
    """columns is histogram's: with analyze it would analyze every column while the play believes only these."""
    pg_table(pg, 'm_cols', 'present', rows=10)
    for check in (True, False):
        bad = run_module('db_maintenance', conn_args(pg, action='analyze', tables=['m_cols.present'], columns=['v']),
                         check=check)
        assert bad['failed'] and 'columns' in bad['msg'] and 'histogram' in bad['msg'], bad
        assert bad['queries'] == []
    assert pg_stats(pg, 'm_cols', 'present')['last_analyze'] is None


def test_mariadb_columns_with_another_action_than_histogram_is_refused(my):
    my_table(my, 'cols_kept', rows=10)
    before = my_last_analyze(my, 'cols_kept')
    for action in ('analyze', 'optimize'):
        bad = run_module('db_maintenance', conn_args(my, action=action, tables=['cols_kept'], columns=['id']))
        assert bad['failed'] and 'columns' in bad['msg'] and 'histogram' in bad['msg'], bad
        assert bad['queries'] == []
    assert my_last_analyze(my, 'cols_kept') == before
