# -*- coding: utf-8 -*-
"""db_query_advisor against real servers.

PostgreSQL: every case of files/advisor/cases.yml (a verbatim copy of ../shared/advisor) is read at
test time and checked on the public workload (files/advisor/schema.sql); suggested indexes are
built for real and must then be used by the planner. MariaDB: EXPLAIN/statistics suggestions,
findings, errors, hygiene and the slow log.
"""

from __future__ import annotations

import os
import time

import pytest
import yaml
from modrun import run_module

FILES = os.path.join(os.path.dirname(os.path.abspath(__file__)), 'files', 'advisor')
SHARED = os.path.join(os.path.dirname(os.path.abspath(__file__)), '..', '..', '..', 'shared', 'advisor')


def load_cases():
    with open(os.path.join(FILES, 'cases.yml')) as handle:
        return yaml.safe_load(handle)


CASES = load_cases()


def load_schema(server, database):
    server.psql('DROP DATABASE IF EXISTS %s' % database)
    server.psql('CREATE DATABASE %s' % database)
    with open(os.path.join(FILES, 'schema.sql')) as handle:
        schema = handle.read()
    conn = server.connect(database)
    try:
        with conn.cursor() as cur:
            cur.execute(schema)
    finally:
        conn.close()


def pg_rows(server, database, sql, params=None):
    conn = server.connect(database)
    try:
        with conn.cursor() as cur:
            cur.execute(sql, params)
            return cur.fetchall() if cur.description else []
    finally:
        conn.close()


def advise(conn, queries, **kwargs):
    args = dict(conn, queries=queries)
    args.update(kwargs)
    return run_module('db_query_advisor', args)


@pytest.fixture(scope='module')
def cases_db(pg_server):
    load_schema(pg_server, 'advisor_cases')
    return dict(pg_server.conn, login_db='advisor_cases')


@pytest.fixture(scope='module')
def hygiene_db(pg_server):
    load_schema(pg_server, 'advisor_hygiene')
    conn = pg_server.connect('advisor_hygiene')
    try:
        with conn.cursor() as cur:
            cur.execute(CASES['hygiene_setup'])
    finally:
        conn.close()
    return dict(pg_server.conn, login_db='advisor_hygiene')


# ---- the public cases ---------------------------------------------------------------------------
def test_case_files_are_the_shared_ones():
    if not os.path.isdir(SHARED):
        pytest.skip('../shared/advisor is not beside this checkout')
    for name in ('cases.yml', 'schema.sql'):
        with open(os.path.join(FILES, name), 'rb') as mine, open(os.path.join(SHARED, name), 'rb') as theirs:
            assert mine.read() == theirs.read(), '%s differs from ../shared/advisor/%s' % (name, name)


def _acceptable(suggestion, expected):
    return any(suggestion['table'] == exp['table'] and suggestion['columns'] in exp['accept'] for exp in expected)


@pytest.mark.parametrize('case', CASES['cases'], ids=[c['name'] for c in CASES['cases']])
def test_public_case(pg_server, cases_db, case):
    result = advise(cases_db, [case['sql']], index_hygiene=False)
    assert not result['failed'], result.get('msg')
    assert result['changed'] is False
    assert len(result['reports']) == 1
    report = result['reports'][0]
    assert report['query'] == case['sql']
    suggestions = result['index_suggestions']

    if case.get('error'):
        assert report['error'], 'an error was expected for %r' % case['sql']
        assert report['plan'] is None
        assert suggestions == []
    else:
        assert report['error'] is None, report['error']
        assert isinstance(report['plan']['operation'], str) and report['plan']['operation']
        assert report['plan']['rows_examined'] >= 0
        assert report['plan']['total_cost'] > 0

    expect = case.get('expect')
    if expect == 'none':
        assert suggestions == [], suggestions
    elif expect:
        assert result['method'] == 'hypopg'
        for exp in expect:
            assert any(s['table'] == exp['table'] and s['columns'] in exp['accept'] for s in suggestions), \
                'no acceptable index on %s among %s' % (exp['table'], [(s['table'], s['columns']) for s in suggestions])
        for s in suggestions:
            assert _acceptable(s, expect), 'unexpected suggestion %s(%s)' % (s['table'], s['columns'])
            assert s['statement'].startswith('CREATE INDEX CONCURRENTLY ')
            assert s['estimated_cost_after'] < s['estimated_cost_before']
            assert s['queries_helped'] == [report['fingerprint']]

    finding = case.get('finding')
    if finding:
        matches = [f for f in report['findings'] if f['rule'] == finding['rule']]
        assert matches, 'finding %s missing: %s' % (finding['rule'], report['findings'])
        for needle in finding.get('rewrite_contains') or []:
            assert matches[0]['rewrite'] and needle in matches[0]['rewrite'], matches[0]
        if finding.get('rewrite_contains'):
            # the rewrite is real SQL the server accepts
            assert matches[0]['rewrite_verified'] is True, matches[0]
    # nothing is left behind: the hypopg extension was only created inside the rolled-back transaction
    assert pg_rows(pg_server, 'advisor_cases', "SELECT 1 FROM pg_extension WHERE extname = 'hypopg'") == []


def test_public_workload_in_one_run(pg_server, cases_db):
    """All cases together: one report each, in order; bad ones isolated; suggestions pay off for real."""
    sqls = [c['sql'] for c in CASES['cases']]
    result = advise(cases_db, sqls, index_hygiene=False, max_indexes=10)
    assert not result['failed'], result.get('msg')
    assert [r['query'] for r in result['reports']] == sqls
    for case, report in zip(CASES['cases'], result['reports']):
        assert bool(report['error']) == bool(case.get('error')), (case['name'], report['error'])
    assert result['method'] == 'hypopg'
    assert any('rolled back' in note for note in result['notes'])
    assert result['queries'] == []
    # no suggestion duplicates an existing index prefix
    existing = pg_rows(pg_server, 'advisor_cases',
                       "SELECT c.relname, array_agg(a.attname ORDER BY k.ord) FROM pg_index i "
                       "JOIN pg_class c ON c.oid = i.indrelid CROSS JOIN LATERAL unnest(i.indkey::int2[]) "
                       "WITH ORDINALITY k(attnum, ord) JOIN pg_attribute a ON a.attrelid = i.indrelid "
                       "AND a.attnum = k.attnum JOIN pg_namespace n ON n.oid = c.relnamespace "
                       "WHERE n.nspname = 'public' GROUP BY i.indexrelid, c.relname")
    for s in result['index_suggestions']:
        for table, cols in existing:
            assert not (table == s['table'] and list(cols)[:len(s['columns'])] == s['columns'])
    # every expected table of the cases gets an acceptable index in the workload run too
    for case in CASES['cases']:
        if isinstance(case.get('expect'), list):
            for exp in case['expect']:
                assert any(_acceptable(s, [exp]) for s in result['index_suggestions']), (case['name'], exp)


def test_suggestions_are_used_once_built(pg_server, cases_db):
    """Build what the advisor suggests; the planner then uses it and the cost drops as estimated."""
    case = next(c for c in CASES['cases'] if c['name'].startswith('equality plus ORDER BY'))
    result = advise(cases_db, [case['sql']], index_hygiene=False)
    suggestion = result['index_suggestions'][0]
    conn = pg_server.connect('advisor_cases')
    try:
        with conn.cursor() as cur:
            cur.execute(suggestion['statement'])
            cur.execute('EXPLAIN (FORMAT JSON) ' + case['sql'])
            plan = cur.fetchone()[0][0]['Plan']
            text = str(plan)
            assert suggestion['name'] in text
            assert plan['Total Cost'] <= suggestion['estimated_cost_before'] * 0.5
            cur.execute('DROP INDEX %s' % suggestion['name'])
    finally:
        conn.close()
    # with the index in place the same suggestion would never be made again: checked by
    # 'already served by the primary key'; here the index is gone again
    assert pg_rows(pg_server, 'advisor_cases', 'SELECT 1 FROM pg_class WHERE relname = %s',
                   (suggestion['name'],)) == []


# ---- hygiene --------------------------------------------------------------------------------------
def test_planted_index_hygiene(pg_server, hygiene_db):
    expect = CASES['hygiene_expect']
    # the indexes named by the expectations exist for real
    names = {r[0] for r in pg_rows(pg_server, 'advisor_hygiene', "SELECT relname FROM pg_class WHERE relkind = 'i'")}
    for name in expect['never_removable'] + [n for g in expect['duplicate'] for n in g] + expect['redundant_prefix']:
        assert name in names, name
    result = advise(hygiene_db, ['SELECT * FROM users WHERE id = 5'])
    assert not result['failed'], result.get('msg')
    hyg = result['index_hygiene']
    groups = [sorted(g['indexes']) for g in hyg['duplicate']]
    for group in expect['duplicate']:
        assert sorted(group) in groups, groups
    for group in hyg['duplicate']:
        assert group['keep'] in group['indexes'] and group['keep'] not in group['drop']
    prefixed = [e['index'] for e in hyg['redundant_prefix']]
    for name in expect['redundant_prefix']:
        assert name in prefixed, prefixed
    for name in expect['never_removable']:
        for kind in ('unused', 'redundant_prefix', 'invalid', 'bloated'):
            for item in hyg[kind]:
                if item['index'] == name:
                    assert item['removable'] is False, (kind, item)
                    assert not item['statement'].startswith('DROP'), item
        for group in hyg['duplicate']:
            assert name not in group['drop']
        assert name not in [e['index'] for e in hyg['unused']]


def test_hygiene_unused_invalid_and_bloated(pg_server, hygiene_db):
    conn = pg_server.connect('advisor_hygiene')
    try:
        with conn.cursor() as cur:
            # use one index so that it is not 'unused'
            cur.execute('SELECT country, created_at FROM users ORDER BY country, created_at LIMIT 5')
            # a failed CREATE INDEX CONCURRENTLY leaves an invalid index behind
            try:
                cur.execute('CREATE UNIQUE INDEX CONCURRENTLY hyg_invalid ON posts (blog_id)')
            except Exception:  # pylint: disable=broad-except
                pass
            # a sparse index: 90% of the rows deleted, the index keeps its pages
            cur.execute('CREATE TABLE hyg_bloat (id int NOT NULL, pad int NOT NULL)')
            cur.execute('INSERT INTO hyg_bloat SELECT n, n FROM generate_series(1, 300000) n')
            cur.execute('CREATE INDEX hyg_bloat_idx ON hyg_bloat (id)')
            cur.execute('DELETE FROM hyg_bloat WHERE id % 10 <> 0')
            cur.execute('VACUUM ANALYZE hyg_bloat')
    finally:
        conn.close()  # statistics are flushed when the session ends
    used = 0
    for _ in range(50):
        used = pg_rows(pg_server, 'advisor_hygiene', 'SELECT idx_scan FROM pg_stat_user_indexes '
                       'WHERE indexrelname = %s', ('hyg_prefix_long',))[0][0]
        if used:
            break
        time.sleep(0.1)
    assert used > 0
    result = advise(hygiene_db, ['SELECT 1'])
    hyg = result['index_hygiene']
    unused = [e['index'] for e in hyg['unused']]
    assert 'hyg_prefix_long' not in unused
    assert 'hyg_dup_a' in unused
    assert 'users_pkey' not in unused
    invalid = {e['index']: e for e in hyg['invalid']}
    assert 'hyg_invalid' in invalid
    assert invalid['hyg_invalid']['removable'] is False  # unique: rebuilt, never dropped
    assert invalid['hyg_invalid']['statement'].startswith('REINDEX INDEX CONCURRENTLY')
    bloated = {e['index']: e for e in hyg['bloated']}
    assert 'hyg_bloat_idx' in bloated, hyg['bloated']
    assert bloated['hyg_bloat_idx']['method'] == 'size_estimate'
    assert 'users_pkey' not in bloated and 'comments_pkey' not in bloated
    # with pgstattuple the measure is exact
    pg_rows(pg_server, 'advisor_hygiene', 'CREATE EXTENSION IF NOT EXISTS pgstattuple')
    result = advise(hygiene_db, ['SELECT 1'])
    bloated = {e['index']: e for e in result['index_hygiene']['bloated']}
    assert result['index_hygiene']['bloat_method'] == 'pgstattuple'
    assert bloated['hyg_bloat_idx']['avg_leaf_density'] < 45
    assert 'comments_pkey' not in bloated
    pg_rows(pg_server, 'advisor_hygiene', 'DROP EXTENSION pgstattuple')
    pg_rows(pg_server, 'advisor_hygiene', 'DROP INDEX hyg_invalid')


def test_hygiene_prefix_and_duplicates_respect_collation_order_and_include(pg_server):
    # an index is only redundant when the longer one serves the same comparisons in the same orders:
    # (v COLLATE "C") serves LIKE 'x%' where (v, w) cannot, (a NULLS FIRST) an order (a, b) has not,
    # (a) INCLUDE (c) index-only scans of c
    pg_server.psql('DROP DATABASE IF EXISTS advisor_hyg_order')
    pg_server.psql('CREATE DATABASE advisor_hyg_order')
    conn = pg_server.connect('advisor_hyg_order')
    try:
        with conn.cursor() as cur:
            cur.execute('CREATE TABLE t (a int, b int, c int, v text, w text)')
            for name, keys in (('t_v_c', 'v COLLATE "C"'), ('t_v_w', 'v, w'), ('t_a_nulls_first', 'a NULLS FIRST'),
                               ('t_a_desc', 'a DESC'), ('t_a_b', 'a, b'), ('t_b_incl_c', 'b) INCLUDE (c'),
                               ('t_b_a', 'b, a'), ('t_c', 'c'), ('t_c_desc', 'c DESC'), ('t_w_nf', 'w NULLS FIRST'),
                               ('t_w', 'w')):
                cur.execute('CREATE INDEX %s ON t (%s)' % (name, keys))
    finally:
        conn.close()
    result = advise(dict(pg_server.conn, login_db='advisor_hyg_order'), ['SELECT 1'])
    assert not result['failed'], result.get('msg')
    hyg = result['index_hygiene']
    redundant = {e['index']: e['covered_by'] for e in hyg['redundant_prefix']}
    assert redundant.get('t_a_desc') == 't_a_b'       # scanned backwards it is the same order
    for kept in ('t_v_c', 't_a_nulls_first', 't_b_incl_c'):
        assert kept not in redundant, (kept, redundant)
    duplicates = sorted(sorted(d['indexes']) for d in hyg['duplicate'])
    assert duplicates == [['t_c', 't_c_desc']], duplicates
    pg_server.psql('DROP DATABASE advisor_hyg_order')


def test_partitioned_table_statements_run_as_given(pg_server):
    # CREATE/DROP INDEX CONCURRENTLY is refused on a partitioned table; the index of one
    # partition belongs to its parent's and cannot be dropped alone; the parent's own counter
    # of scans stays 0, its partitions' count
    pg_server.psql('DROP DATABASE IF EXISTS advisor_parts')
    pg_server.psql('CREATE DATABASE advisor_parts')
    conn = pg_server.connect('advisor_parts')
    try:
        with conn.cursor() as cur:
            cur.execute("CREATE TABLE plog (id bigint NOT NULL, at date NOT NULL, lvl int NOT NULL, msg text NOT NULL) "
                        "PARTITION BY RANGE (at)")
            cur.execute("CREATE TABLE plog_a PARTITION OF plog FOR VALUES FROM ('2024-01-01') TO ('2025-01-01')")
            cur.execute("CREATE TABLE plog_b PARTITION OF plog FOR VALUES FROM ('2025-01-01') TO ('2026-01-01')")
            cur.execute("INSERT INTO plog SELECT n, date '2024-01-01' + n % 700, n % 7, 'm' || n "
                        "FROM generate_series(1, 200000) n")
            cur.execute('CREATE INDEX plog_msg_idx ON plog (msg)')
            cur.execute('CREATE INDEX plog_id_idx ON plog (id)')
            cur.execute('ANALYZE plog')
            cur.execute('SET enable_seqscan = off')
            cur.execute('SELECT msg FROM plog WHERE id = 42')
    finally:
        conn.close()
    for _ in range(50):
        if pg_rows(pg_server, 'advisor_parts', "SELECT sum(idx_scan) FROM pg_stat_user_indexes "
                   "WHERE indexrelname LIKE 'plog_%id_idx'")[0][0]:
            break
        time.sleep(0.1)
    db = dict(pg_server.conn, login_db='advisor_parts')
    result = advise(db, ["SELECT count(*) FROM plog WHERE lvl = 3 AND at BETWEEN '2024-05-01' AND '2024-05-03'"])
    assert not result['failed'], result.get('msg')
    [suggestion] = result['index_suggestions']
    assert suggestion['table'] == 'plog' and 'CONCURRENTLY' not in suggestion['statement']
    unused = {e['index']: e for e in result['index_hygiene']['unused']}
    assert sorted(unused) == ['plog_msg_idx'], sorted(unused)
    assert unused['plog_msg_idx']['statement'] == 'DROP INDEX "public"."plog_msg_idx"'
    for statement in (suggestion['statement'], unused['plog_msg_idx']['statement']):
        pg_rows(pg_server, 'advisor_parts', statement)
    pg_server.psql('DROP DATABASE advisor_parts')


# ---- analyze, warnings, sources, errors -----------------------------------------------------------
def test_analyze_reads_are_measured_and_writes_refused_or_rolled_back(pg_server, cases_db):
    before = pg_rows(pg_server, 'advisor_cases', 'SELECT score FROM posts WHERE id = 77')
    update = 'UPDATE posts SET score = score + 1 WHERE id = 77'
    misestimate = "SELECT * FROM comments WHERE id < 1000 AND created_at < '2021-01-01 16:40'"
    spill = 'SELECT * FROM comments ORDER BY body'
    result = advise(cases_db, [misestimate, spill, update], analyze=True, index_hygiene=False,
                    suggest_indexes=False)
    assert not result['failed'], result.get('msg')
    mis, sort, upd = result['reports']
    assert mis['plan']['execution_time_ms'] > 0
    assert mis['plan']['actual_rows'] == 999
    assert 'row_misestimate' in [w['id'] for w in mis['warnings']]
    assert 'sort_spill' in [w['id'] for w in sort['warnings']]
    assert sort['plan']['rows_examined'] == 300000  # actual rows read
    assert 'analyze_refused' in [w['id'] for w in upd['warnings']]
    assert 'actual_rows' not in upd['plan']
    # a write inside a CTE is a write too: nothing runs it (a sequence would tell, it is never rolled back)
    pg_rows(pg_server, 'advisor_cases', 'CREATE SEQUENCE IF NOT EXISTS adv_probe_seq')
    seq = pg_rows(pg_server, 'advisor_cases', 'SELECT last_value, is_called FROM adv_probe_seq')
    cte = ("WITH d AS (UPDATE posts SET score = score WHERE id = 77 RETURNING nextval('adv_probe_seq')) "
           "SELECT count(*) FROM d")
    into = 'SELECT id, score INTO adv_probe_copy FROM posts WHERE id < 100'   # creates a table
    result = advise(cases_db, [cte, into], analyze=True, index_hygiene=False, suggest_indexes=False)
    assert not result['failed'], result.get('msg')
    for report in result['reports']:
        assert 'analyze_refused' in [w['id'] for w in report['warnings']], report
        assert 'actual_rows' not in report['plan']
    assert pg_rows(pg_server, 'advisor_cases', "SELECT to_regclass('adv_probe_copy') IS NULL") == [(True,)]
    assert pg_rows(pg_server, 'advisor_cases', 'SELECT last_value, is_called FROM adv_probe_seq') == seq
    # a function whose effect no rollback undoes is never run, not even with analyze_writes: here it
    # would end another session and advance a sequence
    victim = pg_server.connect('advisor_cases')
    try:
        with victim.cursor() as cur:
            cur.execute("SELECT set_config('application_name', 'adv_probe_victim', false), pg_backend_pid()")
            victim_pid = cur.fetchone()[1]
        kill = 'SELECT pg_terminate_backend(%d)' % victim_pid
        bump = "SELECT nextval('adv_probe_seq') FROM posts WHERE id < 5"
        for writes in (False, True):
            result = advise(cases_db, [kill, bump], analyze=True, analyze_writes=writes, index_hygiene=False,
                            suggest_indexes=False)
            assert not result['failed'], result.get('msg')
            for report in result['reports']:
                refused = [w for w in report['warnings'] if w['id'] == 'analyze_refused']
                assert refused and 'rollback cannot undo' in refused[0]['message'], report
            with victim.cursor() as cur:
                cur.execute('SELECT 1')     # still connected
        assert pg_rows(pg_server, 'advisor_cases', 'SELECT last_value, is_called FROM adv_probe_seq') == seq
    finally:
        victim.close()
    result = advise(cases_db, [update], analyze=True, analyze_writes=True, index_hygiene=False)
    upd = result['reports'][0]
    assert upd['plan']['operation'] == 'Update'
    assert upd['plan']['execution_time_ms'] is not None
    assert pg_rows(pg_server, 'advisor_cases', 'SELECT score FROM posts WHERE id = 77') == before


def test_pg_stat_statements_source(pg_server, cases_db):
    pg_rows(pg_server, 'advisor_cases', 'CREATE EXTENSION IF NOT EXISTS pg_stat_statements')
    pg_rows(pg_server, 'advisor_cases', 'SELECT pg_stat_statements_reset()')
    conn = pg_server.connect('advisor_cases')
    try:
        with conn.cursor() as cur:
            for n in range(1, 6):
                cur.execute('SELECT title FROM posts WHERE blog_id = %s AND score > 990' % (n * 3))
            cur.execute('SELECT title FROM posts WHERE score = 1 AND blog_id > 5')
    finally:
        conn.close()
    result = run_module('db_query_advisor', dict(cases_db, source='pg_stat_statements', min_calls=5,
                                                 index_hygiene=False))
    assert not result['failed'], result.get('msg')
    texts = [r['query'] for r in result['reports']]
    mine = [r for r in result['reports'] if 'blog_id = $1' in r['query']]
    assert mine, texts
    assert not any('score = $1' in t for t in texts)  # ran once, below min_calls
    report = mine[0]
    assert report['calls'] == 5
    assert report['error'] is None and report['plan']['total_cost'] > 0  # generic plan
    assert any(s['table'] == 'posts' and s['columns'][0] == 'blog_id' for s in result['index_suggestions'])


def test_pg_stat_statements_parameters_written_without_spaces(pg_server, cases_db):
    # IN (1,2,3) as written comes back as IN ($1,$2,$3): it must be read, explained and advised on
    pg_rows(pg_server, 'advisor_cases', 'CREATE EXTENSION IF NOT EXISTS pg_stat_statements')
    pg_rows(pg_server, 'advisor_cases', 'SELECT pg_stat_statements_reset()')
    conn = pg_server.connect('advisor_cases')
    try:
        with conn.cursor() as cur:
            for n in range(1, 4):
                cur.execute('SELECT title FROM posts WHERE user_id IN (%d,%d,%d)' % (n, n + 7, n + 9))
                cur.execute("SELECT count(*) FROM posts WHERE created_at >= DATE '2021-02-0%d'" % n)
    finally:
        conn.close()
    result = run_module('db_query_advisor', dict(cases_db, source='pg_stat_statements', min_calls=3,
                                                 index_hygiene=False))
    assert not result['failed'], result.get('msg')
    mine = [r for r in result['reports'] if 'user_id IN ($1,$2,$3)' in r['query']]
    assert mine, [r['query'] for r in result['reports']]
    assert mine[0]['error'] is None and mine[0]['plan']['total_cost'] > 0
    assert any(s['table'] == 'posts' and s['columns'][0] == 'user_id' for s in result['index_suggestions'])
    # DATE $1 cannot be prepared: the error says why and what to give instead
    typed = [r for r in result['reports'] if 'DATE $1' in r['query']]
    assert typed and 'give this statement with its values in queries' in typed[0]['error']


def test_permission_errors_are_per_query_and_statistics_without_hypopg(pg_server, cases_db):
    pg_rows(pg_server, 'advisor_cases', 'DROP ROLE IF EXISTS adv_reader')
    pg_rows(pg_server, 'advisor_cases', "CREATE ROLE adv_reader LOGIN PASSWORD 'Reader-Pw-77'")
    pg_rows(pg_server, 'advisor_cases', 'GRANT SELECT ON users TO adv_reader')
    reader = dict(cases_db, login_user='adv_reader', login_password='Reader-Pw-77')
    queries = ['SELECT * FROM posts WHERE id = 1', "SELECT id FROM users WHERE email = 'user5@example.com'",
               'SELECT * FROM users WHERE id = 5']
    result = advise(reader, queries, index_hygiene=False)
    assert not result['failed'], result.get('msg')
    assert 'permission denied' in result['reports'][0]['error']
    assert result['reports'][1]['error'] is None and result['reports'][2]['error'] is None
    # hypopg cannot be created by this login: statistics-based suggestions, and said so
    assert result['method'] == 'statistics'
    assert any('hypopg' in n for n in result['notes'])
    assert [(s['table'], s['columns']) for s in result['index_suggestions']] == [('users', ['email'])]
    failed = advise(reader, queries, hypothetical='true', index_hygiene=False)
    assert failed['failed'] and 'hypothetical' in failed['msg']
    pg_rows(pg_server, 'advisor_cases', 'REVOKE ALL ON users FROM adv_reader')
    pg_rows(pg_server, 'advisor_cases', 'DROP ROLE adv_reader')


def test_hostile_and_bad_input(pg_server, cases_db):
    result = advise(cases_db, ['SELECT 1; DROP TABLE users', "SELECT 'unterminated", 'TRUNCATE users',
                               'SELECT count(*) FROM users'], index_hygiene=False, analyze=True)
    assert not result['failed']
    assert 'exactly one statement' in result['reports'][0]['error']
    assert result['reports'][1]['error']
    assert 'utility statement' in result['reports'][2]['error']
    assert result['reports'][3]['error'] is None and result['reports'][3]['plan']['actual_rows'] == 1
    assert pg_rows(pg_server, 'advisor_cases', 'SELECT count(*) FROM users') == [(100000,)]
    assert pg_rows(pg_server, 'advisor_cases', "SELECT to_regclass('users') IS NOT NULL") == [(True,)]
    both = run_module('db_query_advisor', dict(cases_db, queries=['SELECT 1'], source='pg_stat_statements'))
    assert both['failed'] and 'mutually exclusive' in both['msg']
    neither = run_module('db_query_advisor', dict(cases_db))
    assert neither['failed'] and 'one of' in neither['msg']
    bad = advise(cases_db, ['SELECT 1'], min_cost_savings=2)
    assert bad['failed'] and 'min_cost_savings' in bad['msg']


def test_parameterized_query_that_fails_to_prepare_spoils_no_other(pg_server, cases_db):
    # pg_stat_statements texts ($1) are PREPAREd; one of a dropped table must not abort the
    # advisor's transaction for the queries after it
    result = advise(cases_db, ['SELECT id FROM dropped_since WHERE id = $1',
                               'SELECT id FROM posts WHERE blog_id = $1 AND id = $2',
                               'SELECT count(*) FROM users WHERE country = $1'], index_hygiene=False)
    assert not result['failed'], result.get('msg')
    first, second, third = result['reports']
    assert 'dropped_since' in first['error']
    assert second['error'] is None and second['plan']['total_cost'] > 0
    assert third['error'] is None and third['plan']['operation']
    assert any(s['table'] == 'posts' for s in result['index_suggestions'])


def test_max_indexes_zero_is_a_budget_of_none(pg_server, cases_db):
    sql = 'SELECT * FROM posts WHERE id = 4242'
    for hypothetical in ('auto', 'false'):
        some = advise(cases_db, [sql], index_hygiene=False, hypothetical=hypothetical)
        assert some['index_suggestions'], (hypothetical, some)
        none = advise(cases_db, [sql], index_hygiene=False, hypothetical=hypothetical, max_indexes=0)
        assert not none['failed'], none.get('msg')
        assert none['index_suggestions'] == [], (hypothetical, none['index_suggestions'])


def test_index_with_another_collation_or_opclass_does_not_hide_the_plain_one(pg_server, cases_db):
    # (email COLLATE "C") and (email text_pattern_ops) cannot serve = or ORDER BY in the column's collation
    queries = ["SELECT id FROM users WHERE email = 'user77@example.com'", 'SELECT id FROM users ORDER BY email LIMIT 10']
    for keys in ('email COLLATE "C"', 'email text_pattern_ops'):
        pg_rows(pg_server, 'advisor_cases', 'CREATE INDEX adv_email_special ON users (%s)' % keys)
        try:
            result = advise(cases_db, queries, index_hygiene=False)
        finally:
            pg_rows(pg_server, 'advisor_cases', 'DROP INDEX adv_email_special')
        assert not result['failed'], result.get('msg')
        picks = [(s['table'], s['columns'], sorted(s['query_numbers'])) for s in result['index_suggestions']]
        assert picks == [('users', ['email'], [0, 1])], (keys, picks)
    # a plain index on the column does hide it
    pg_rows(pg_server, 'advisor_cases', 'CREATE INDEX adv_email_plain ON users (email)')
    try:
        result = advise(cases_db, queries, index_hygiene=False)
    finally:
        pg_rows(pg_server, 'advisor_cases', 'DROP INDEX adv_email_plain')
    assert result['index_suggestions'] == []


def test_check_mode_reports_the_same(pg_server, cases_db):
    sql = 'SELECT * FROM posts WHERE id = 4242'
    result = run_module('db_query_advisor', dict(cases_db, queries=[sql], index_hygiene=False), check=True)
    assert not result['failed'] and result['changed'] is False
    assert [(s['table'], s['columns']) for s in result['index_suggestions']] == [('posts', ['id'])]
    assert pg_rows(pg_server, 'advisor_cases', "SELECT count(*) FROM pg_indexes WHERE tablename = 'posts'") == [(0,)]


# ---- MariaDB --------------------------------------------------------------------------------------
MY_SCHEMA = [
    'DROP DATABASE IF EXISTS advisor_my',
    'CREATE DATABASE advisor_my',
    'USE advisor_my',
    'CREATE TABLE users (id int PRIMARY KEY, email varchar(100) NOT NULL, country char(2) NOT NULL, '
    'active bool NOT NULL, created_at datetime NOT NULL)',
    "INSERT INTO users SELECT seq, concat('user', seq, '@example.com'), elt(1 + seq % 8, 'us','de','fr','br',"
    "'in','jp','ng','gb'), seq % 2 = 0, '2020-01-01' + interval seq*7 minute FROM seq_1_to_50000",
    'CREATE TABLE posts (id int NOT NULL, user_id int NOT NULL, blog_id int NOT NULL, status varchar(20) NOT NULL, '
    'title varchar(100) NOT NULL, created_at datetime NOT NULL, score int NOT NULL)',
    "INSERT INTO posts SELECT seq, 1 + seq % 50000, seq % 1000, elt(1 + seq % 3, 'draft','published','archived'), "
    "concat('title ', seq), '2021-01-01' + interval seq*3 minute, (seq*7919) % 1000 FROM seq_1_to_100000",
    'CREATE TABLE comments (id int PRIMARY KEY, post_id int NOT NULL, user_id int NOT NULL, body varchar(100) NOT NULL, '
    'created_at datetime NOT NULL)',
    "INSERT INTO comments SELECT seq, 1 + (seq*31) % 100000, 1 + (seq*17) % 50000, concat('body ', seq), "
    "'2021-01-01' + interval seq minute FROM seq_1_to_150000",
    'ANALYZE TABLE users, posts, comments',
]


@pytest.fixture(scope='module')
def my_db(mariadb_server):
    conn = mariadb_server.connect()
    try:
        with conn.cursor() as cur:
            for stmt in MY_SCHEMA:
                cur.execute(stmt)
    finally:
        conn.close()
    return dict(mariadb_server.conn, login_db='advisor_my')


def my_rows(server, sql):
    conn = server.connect('advisor_my')
    try:
        with conn.cursor() as cur:
            cur.execute(sql)
            return cur.fetchall()
    finally:
        conn.close()


def test_mariadb_findings_plans_and_errors(mariadb_server, my_db):
    queries = ['SELECT * FROM comments WHERE YEAR(created_at) = 2021',
               "SELECT * FROM users WHERE email LIKE '%example%'",
               'SELECT * FROM users WHERE email = 42',
               'SELECT * FROM users WHERE id NOT IN (SELECT user_id FROM posts)',
               'SELECT * FROM no_such_table',
               'SELEC * FRM posts',
               'DELETE FROM posts']
    result = advise(my_db, queries, index_hygiene=False)
    assert not result['failed'], result.get('msg')
    reports = result['reports']
    rules = [[f['rule'] for f in r['findings']] for r in reports]
    year = next(f for f in reports[0]['findings'] if f['rule'] == 'function_on_column')
    assert "created_at >= '2021-01-01'" in year['rewrite'] and "created_at < '2022-01-01'" in year['rewrite']
    assert year['rewrite_verified'] is True
    assert 'leading_wildcard' in rules[1] and 'FULLTEXT' in reports[1]['findings'][0]['message']
    assert 'implicit_cast' in rules[2]
    assert 'not_in_subquery' in rules[3]
    assert 'NOT EXISTS' in next(f for f in reports[3]['findings'] if f['rule'] == 'not_in_subquery')['rewrite']
    assert "doesn't exist" in reports[4]['error']
    assert 'syntax' in reports[5]['error']
    assert 'update_delete_without_where' in rules[6]
    assert reports[0]['plan']['operation'] == 'Full Table Scan'
    assert reports[0]['plan']['rows_examined'] > 100000
    # DELETE was only explained, never run
    assert my_rows(mariadb_server, 'SELECT count(*) FROM posts') == ((100000,),)


def test_mariadb_cost_of_a_statement_with_leading_comments(mariadb_server, my_db):
    # ORMs and sqlcommenter put a comment first; the plan must still carry the optimizer's cost
    plain = 'SELECT count(*) FROM posts WHERE blog_id = 7'
    result = advise(my_db, [plain, '/* app=shop,route=/cart */ ' + plain, '-- report\n' + plain,
                            '# nightly\n(' + plain + ')'], index_hygiene=False, suggest_indexes=False)
    assert not result['failed'], result.get('msg')
    costs = [r['plan']['total_cost'] for r in result['reports']]
    assert costs[0] and costs[0] > 0
    assert costs == [costs[0]] * 4


def test_mariadb_user_variables_are_not_placeholders(mariadb_server, my_db):
    # @since has a value (NULL when unset): the statement is explained as it is; only ? is a placeholder
    result = advise(my_db, ['SELECT count(*) FROM posts WHERE created_at > @since AND blog_id = 7',
                            'SELECT count(*) INTO @n FROM posts WHERE blog_id = 8',
                            'SELECT count(*) FROM posts WHERE blog_id = ?'], index_hygiene=False)
    assert not result['failed'], result.get('msg')
    first, second, third = result['reports']
    assert first['error'] is None and first['plan']['total_cost'] > 0, first
    assert second['error'] is None and second['plan']['total_cost'] > 0, second
    assert 'placeholders' in third['error']


def test_mariadb_writes_to_tables_a_rollback_cannot_restore_are_not_analyzed(mariadb_server, my_db):
    # analyze_writes relies on a rollback: an Aria or MyISAM table keeps what ANALYZE DELETE did
    conn = mariadb_server.connect('advisor_my')
    try:
        with conn.cursor() as cur:
            cur.execute('DROP TABLE IF EXISTS adv_aria, adv_myisam')
            cur.execute('CREATE TABLE adv_aria (id int PRIMARY KEY, v int NOT NULL) ENGINE=Aria')
            cur.execute('CREATE TABLE adv_myisam (id int PRIMARY KEY, v int NOT NULL) ENGINE=MyISAM')
            cur.execute('INSERT INTO adv_aria SELECT seq, seq FROM seq_1_to_100')
            cur.execute('INSERT INTO adv_myisam SELECT seq, seq FROM seq_1_to_100')
        conn.commit()
    finally:
        conn.close()
    result = advise(my_db, ['DELETE FROM adv_aria WHERE id <= 50', 'UPDATE adv_myisam SET v = 0 WHERE id > 0',
                            'UPDATE posts SET score = score WHERE id = 5'],
                    analyze=True, analyze_writes=True, index_hygiene=False, suggest_indexes=False)
    assert not result['failed'], result.get('msg')
    aria, myisam, innodb = result['reports']
    for report, table in ((aria, 'adv_aria'), (myisam, 'adv_myisam')):
        refused = [w for w in report['warnings'] if w['id'] == 'analyze_refused']
        assert refused and table in refused[0]['message'], report
    assert not any(w['id'] == 'analyze_refused' for w in innodb['warnings'])
    assert my_rows(mariadb_server, 'SELECT count(*), sum(v) FROM adv_aria') == ((100, 5050),)
    assert my_rows(mariadb_server, 'SELECT count(*), sum(v) FROM adv_myisam') == ((100, 5050),)
    my_rows(mariadb_server, 'DROP TABLE adv_aria, adv_myisam')


def test_mariadb_statistics_suggestions_are_used_once_built(mariadb_server, my_db):
    queries = ['SELECT * FROM posts WHERE id = 4242',
               'SELECT * FROM posts WHERE user_id = 12 ORDER BY created_at DESC LIMIT 10',
               'SELECT * FROM users WHERE id = 5',
               'SELECT count(*) FROM users WHERE active',
               'SELECT * FROM users WHERE email = 42']
    result = advise(my_db, queries, index_hygiene=False)
    assert not result['failed'], result.get('msg')
    assert result['method'] == 'statistics'
    got = {(s['table'], tuple(s['columns'])) for s in result['index_suggestions']}
    assert ('posts', ('id',)) in got
    assert any(t == 'posts' and c[0] == 'user_id' for t, c in got)
    assert not any(t == 'users' for t, c in got), got  # PK, low selectivity, implicit cast
    conn = mariadb_server.connect('advisor_my')
    try:
        with conn.cursor() as cur:
            for s in result['index_suggestions']:
                cur.execute(s['statement'])
            for s in result['index_suggestions']:
                for number in s['query_numbers']:
                    cur.execute('EXPLAIN ' + queries[number])
                    keys = [row[5] for row in cur.fetchall()]
                    assert s['name'] in keys, (s['name'], queries[number], keys)
            again = advise(my_db, queries, index_hygiene=False)
            assert again['index_suggestions'] == []  # nothing duplicating what now exists
            for s in result['index_suggestions']:
                cur.execute('ALTER TABLE %s DROP INDEX %s' % (s['table'], s['name']))
    finally:
        conn.close()


def test_mariadb_hygiene(mariadb_server, my_db):
    conn = mariadb_server.connect('advisor_my')
    try:
        with conn.cursor() as cur:
            cur.execute('CREATE INDEX hyg_dup_a ON comments (user_id)')
            cur.execute('CREATE INDEX hyg_dup_b ON comments (user_id)')
            cur.execute('CREATE INDEX hyg_prefix_long ON users (country, created_at)')
            cur.execute('CREATE INDEX hyg_prefix_short ON users (country)')
            cur.execute('CREATE UNIQUE INDEX hyg_unique_email ON users (email)')
            cur.execute('CREATE UNIQUE INDEX hyg_unique_email2 ON users (email)')
        result = advise(my_db, ['SELECT 1'])
        hyg = result['index_hygiene']
        groups = {tuple(g['indexes']): g for g in hyg['duplicate']}
        assert ('hyg_dup_a', 'hyg_dup_b') in groups
        assert groups[('hyg_unique_email', 'hyg_unique_email2')]['drop'] == []  # unique: never removable
        assert [e['index'] for e in hyg['redundant_prefix']] == ['hyg_prefix_short']
        assert not any(e['index'] == 'PRIMARY' for kind in ('unused', 'redundant_prefix') for e in hyg[kind])
    finally:
        with conn.cursor() as cur:
            for table, name in (('comments', 'hyg_dup_a'), ('comments', 'hyg_dup_b'), ('users', 'hyg_prefix_long'),
                                ('users', 'hyg_prefix_short'), ('users', 'hyg_unique_email'),
                                ('users', 'hyg_unique_email2')):
                cur.execute('ALTER TABLE %s DROP INDEX IF EXISTS %s' % (table, name))
        conn.close()


def test_mariadb_slow_log_source(mariadb_server, my_db):
    conn = mariadb_server.connect('advisor_my')
    try:
        with conn.cursor() as cur:
            cur.execute('TRUNCATE mysql.slow_log')
            cur.execute("SET GLOBAL log_output = 'TABLE'")
            cur.execute('SET GLOBAL slow_query_log = 1')
            cur.execute('SET SESSION slow_query_log = 1')
            cur.execute('SET SESSION long_query_time = 0')
            for n in (3, 5, 7):
                cur.execute('SELECT title FROM posts WHERE blog_id = %d AND score > 900' % n)
            cur.execute('SELECT title FROM posts WHERE score = 1')
            cur.execute('SET GLOBAL slow_query_log = 0')
        result = run_module('db_query_advisor', dict(my_db, source='slow_log', min_calls=3, index_hygiene=False))
        assert not result['failed'], result.get('msg')
        texts = [r['query'] for r in result['reports']]
        assert any('blog_id = ' in t for t in texts), texts
        assert not any('score = 1' in t for t in texts)
        report = next(r for r in result['reports'] if 'blog_id = ' in r['query'])
        assert report['calls'] == 3 and report['plan'] is not None
        assert any(s['columns'][0] == 'blog_id' for s in result['index_suggestions'])
    finally:
        with conn.cursor() as cur:
            cur.execute('SET GLOBAL slow_query_log = 0')
            cur.execute("SET GLOBAL log_output = 'FILE'")
        conn.close()


def test_postgres_log_file_source(pg_server, cases_db, tmp_path):
    log = tmp_path / 'postgresql.log'
    lines = []
    for n in (11, 12, 13):
        lines.append('2026-01-01 10:00:0%d UTC [4242] LOG:  duration: 25.%d ms  statement: '
                     'SELECT title FROM posts WHERE user_id = %d' % (n - 10, n, n))
    lines.append('2026-01-01 10:00:05 UTC [4242] LOG:  duration: 900.0 ms  statement: SELECT count(*)')
    lines.append('\tFROM comments')
    lines.append('2026-01-01 10:00:06 UTC [4242] LOG:  checkpoint complete')
    log.write_text('\n'.join(lines) + '\n')
    result = run_module('db_query_advisor', dict(cases_db, source='slow_log', slow_log_path=str(log), min_calls=2,
                                                 index_hygiene=False))
    assert not result['failed'], result.get('msg')
    assert len(result['reports']) == 1
    report = result['reports'][0]
    assert report['calls'] == 3 and report['query'].startswith('SELECT title FROM posts WHERE user_id = ')
    assert [(s['table'], s['columns']) for s in result['index_suggestions']] == [('posts', ['user_id'])]
    missing = run_module('db_query_advisor', dict(cases_db, source='slow_log', slow_log_path=str(tmp_path / 'nope')))
    assert missing['failed'] and 'could not read slow log' in missing['msg']


def test_mariadb_performance_schema_source_and_unused_indexes():
    from servers import MariadbServer
    server = MariadbServer(settings={'performance_schema': 'ON',
                                     'performance-schema-consumer-events-statements-current': 'ON',
                                     'performance-schema-consumer-events-statements-history-long': 'ON'})
    try:
        server.init().start()
        conn = server.connect()
        with conn.cursor() as cur:
            cur.execute('CREATE DATABASE ps')
            cur.execute('USE ps')
            cur.execute('CREATE TABLE orders (id int PRIMARY KEY, customer_id int NOT NULL, note varchar(50), '
                        'KEY orders_note (note))')
            cur.execute("INSERT INTO orders SELECT seq, seq % 5000, concat('n', seq) FROM seq_1_to_50000")
            cur.execute('ANALYZE TABLE orders')
            for n in (1, 2, 3, 4):
                cur.execute('SELECT id FROM orders WHERE customer_id = %d' % n)
                cur.fetchall()
        conn.close()
        params = dict(server.conn, login_db='ps')
        result = run_module('db_query_advisor', dict(params, source='performance_schema', min_calls=4))
        assert not result['failed'], result.get('msg')
        mine = [r for r in result['reports'] if 'customer_id' in r['query']]
        assert mine and mine[0]['calls'] >= 4 and mine[0]['error'] is None
        assert [(s['table'], s['columns']) for s in result['index_suggestions']] == [('orders', ['customer_id'])]
        unused = [e['index'] for e in result['index_hygiene']['unused']]
        assert 'orders_note' in unused and 'PRIMARY' not in unused
    finally:
        server.destroy()


def test_missing_sqlglot_is_a_clear_failure(tmp_path):
    import modrun
    blocked = tmp_path / 'sqlglot'
    blocked.mkdir()
    (blocked / '__init__.py').write_text("raise ImportError('No module named sqlglot')\n")
    env = {'PYTHONPATH': os.pathsep.join([str(tmp_path), modrun.collections_root()])}
    result = run_module('db_query_advisor', {'engine': 'postgresql', 'queries': ['SELECT 1']}, env=env)
    assert result['failed']
    assert 'sqlglot' in result['msg'] and 'Traceback' not in result['msg']
