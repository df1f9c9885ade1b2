# -*- coding: utf-8 -*-
"""db_index against real servers: check -> catalog unchanged; run -> changed and in the catalog;
rerun -> unchanged; bad input -> clear failure, nothing changed."""

from __future__ import annotations

import psycopg2
import pytest
from modrun import run_module

DB = 'dbops_index_test'


# ---- catalog helpers ---------------------------------------------------------------------------
def sql(server, statement, params=None):
    """Run one statement in the test database; returns the rows (tuples)."""
    conn = server.connect(DB)
    try:
        with conn.cursor() as cur:
            cur.execute(statement, params)
            return cur.fetchall() if cur.description else []
    finally:
        conn.close()


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


def conn_args(server, **kwargs):
    return dict(server.conn, login_db=DB, **kwargs)


def q(server, name):
    if server.engine == 'postgresql':
        return '"%s"' % name.replace('"', '""')
    return '`%s`' % name.replace('`', '``')


def make_table(server, table, rows=200):
    qt = q(server, table)
    sql(server, 'DROP TABLE IF EXISTS %s' % qt)
    if server.engine == 'postgresql':
        sql(server, 'CREATE TABLE %s (id int PRIMARY KEY, customer int, email text, note text)' % qt)
        sql(server, "INSERT INTO %s SELECT g, mod(g, 17), 'user' || g || '@example.org', 'n' || g "
                    'FROM generate_series(1, %d) g' % (qt, rows))
    else:
        sql(server, 'CREATE TABLE %s (id int PRIMARY KEY, customer int, email varchar(80), note text) '
                    'ENGINE=InnoDB' % qt)
        sql(server, "INSERT INTO %s SELECT seq, seq MOD 17, concat('user', seq, '@example.org'), concat('n', seq) "
                    'FROM seq_1_to_%d' % (qt, rows))


def index_columns(server, table, name):
    """The key columns of an index as the catalog lists them, or None when it does not exist."""
    if server.engine == 'postgresql':
        rows = sql(server, """
            SELECT a.attname FROM pg_index i
              JOIN pg_class ic ON ic.oid = i.indexrelid
              JOIN unnest(i.indkey) WITH ORDINALITY AS k(attnum, ord) ON true
              JOIN pg_attribute a ON a.attrelid = i.indrelid AND a.attnum = k.attnum
             WHERE ic.relname = %s AND i.indrelid = %s::regclass ORDER BY k.ord""",
                   (name, q(server, table)))
        exists = sql(server, 'SELECT 1 FROM pg_class WHERE relname = %s AND relkind = %s', (name, 'i'))
        return [r[0] for r in rows] if exists else None
    rows = sql(server, """SELECT column_name FROM information_schema.statistics
                           WHERE table_schema = %s AND table_name = %s AND index_name = %s
                           ORDER BY seq_in_index""", (DB, table, name))
    return [r[0] for r in rows] or None


def pg_indexdef(server, name):
    rows = sql(server, 'SELECT indexdef FROM pg_indexes WHERE indexname = %s', (name,))
    return rows[0][0] if rows else None


@pytest.fixture
def db(server):
    ensure_database(server)
    return server


# ---- both engines -----------------------------------------------------------------------------
def test_create_check_run_rerun(db):
    make_table(db, 'orders')
    args = conn_args(db, name='orders_customer_idx', table='orders', columns=['customer', 'email'])

    checked = run_module('db_index', args, check=True, diff=True)
    assert checked['changed'] is True, checked
    assert checked['queries'] and 'orders_customer_idx' in checked['queries'][0]
    assert index_columns(db, 'orders', 'orders_customer_idx') is None

    created = run_module('db_index', args, diff=True)
    assert created['changed'] is True, created
    assert index_columns(db, 'orders', 'orders_customer_idx') == ['customer', 'email']
    assert created['index']['valid'] is True
    assert created['index']['size_bytes'] and created['index']['size_bytes'] > 0
    assert created['diff']['before'] == {}
    assert 'customer' in created['diff']['after']['definition']
    if db.engine == 'postgresql':
        assert created['index']['definition'] == pg_indexdef(db, 'orders_customer_idx')
        assert any('CONCURRENTLY' in stmt for stmt in created['queries'])

    again = run_module('db_index', args)
    assert again['changed'] is False, again
    assert again['queries'] == []


def test_definition_change_is_rebuilt_and_diff_shows_both(db):
    make_table(db, 'invoices')
    base = conn_args(db, name='invoices_idx', table='invoices')
    assert run_module('db_index', dict(base, columns=['customer']))['changed'] is True

    changed = run_module('db_index', dict(base, columns=['customer', 'id']), diff=True)
    assert changed['changed'] is True, changed
    assert index_columns(db, 'invoices', 'invoices_idx') == ['customer', 'id']
    before, after = changed['diff']['before']['definition'], changed['diff']['after']['definition']
    assert before != after
    assert 'id' not in before.split('(', 1)[1] and 'id' in after.split('(', 1)[1]
    if db.engine == 'postgresql':
        assert after == pg_indexdef(db, 'invoices_idx')
        assert sql(db, "SELECT count(*) FROM pg_class WHERE relname LIKE %s", ('invoices_idx_dbops%',))[0][0] == 0
    assert run_module('db_index', dict(base, columns=['customer', 'id']))['changed'] is False

    unique = run_module('db_index', dict(base, columns=['customer', 'id'], unique=True))
    assert unique['changed'] is True and unique['index']['unique'] is True
    assert run_module('db_index', dict(base, columns=['customer', 'id'], unique=True))['changed'] is False


def test_bad_input_fails_clearly_and_changes_nothing(db):
    make_table(db, 'payments')
    base = conn_args(db, name='payments_idx')

    missing = run_module('db_index', dict(base, table='no_such_table', columns=['id']))
    assert missing['failed'] and 'no_such_table' in missing['msg'] and 'does not exist' in missing['msg']

    bad_column = run_module('db_index', dict(base, table='payments', columns=['no_such_column']))
    assert bad_column['failed'] and 'no_such_column' in bad_column['msg'], bad_column

    wrong_type = 'fulltext' if db.engine == 'postgresql' else 'gin'
    unsupported = run_module('db_index', dict(base, table='payments', columns=['note'], type=wrong_type))
    assert unsupported['failed'] and wrong_type in unsupported['msg'], unsupported

    injected = run_module('db_index', dict(base, table='payments', columns=['(id); DROP TABLE payments']))
    assert injected['failed'] and ';' in injected['msg']

    assert index_columns(db, 'payments', 'payments_idx') is None
    assert sql(db, 'SELECT count(*) FROM payments')[0][0] == 200
    if db.engine == 'postgresql':
        assert sql(db, "SELECT count(*) FROM pg_class WHERE relname LIKE %s", ('payments_idx%',))[0][0] == 0


def test_hostile_names_are_quoted(db):
    table = 'tab"`; DROP TABLE victim; --'
    name = 'ix"`; DROP TABLE victim; --'
    make_table(db, 'victim', rows=5)
    make_table(db, table, rows=20)
    args = conn_args(db, name=name, table=table, columns=['customer'])
    created = run_module('db_index', args)
    assert created['changed'] is True, created
    assert index_columns(db, table, name) == ['customer']
    assert sql(db, 'SELECT count(*) FROM victim')[0][0] == 5
    assert run_module('db_index', args)['changed'] is False
    dropped = run_module('db_index', conn_args(db, name=name, table=table, state='absent'))
    assert dropped['changed'] is True
    assert index_columns(db, table, name) is None
    assert sql(db, 'SELECT count(*) FROM victim')[0][0] == 5


def test_absent_check_run_rerun(db):
    make_table(db, 'refunds')
    sql(db, 'CREATE INDEX refunds_idx ON refunds (customer)')
    args = conn_args(db, name='refunds_idx', table='refunds', state='absent')

    checked = run_module('db_index', args, check=True, diff=True)
    assert checked['changed'] is True and checked['diff']['after'] == {}
    assert index_columns(db, 'refunds', 'refunds_idx') == ['customer']

    assert run_module('db_index', args)['changed'] is True
    assert index_columns(db, 'refunds', 'refunds_idx') is None
    again = run_module('db_index', args)
    assert again['changed'] is False and again['queries'] == []


def test_rebuilt_rebuilds_in_place(db):
    make_table(db, 'shipments')
    sql(db, 'CREATE INDEX shipments_idx ON shipments (customer)')
    if db.engine == 'postgresql':
        def storage():
            return sql(db, "SELECT relfilenode FROM pg_class WHERE relname = 'shipments_idx'")[0][0]
    else:
        def storage():
            return sql(db, "SELECT table_id FROM information_schema.innodb_sys_tables WHERE name = %s",
                       (DB + '/shipments',))[0][0]
    before = storage()
    args = conn_args(db, name='shipments_idx', state='rebuilt')
    checked = run_module('db_index', args, check=True)
    assert checked['changed'] is True and storage() == before
    rebuilt = run_module('db_index', args)
    assert rebuilt['changed'] is True, rebuilt
    assert storage() != before
    assert index_columns(db, 'shipments', 'shipments_idx') == ['customer']
    expected = 'REINDEX INDEX CONCURRENTLY' if db.engine == 'postgresql' else 'FORCE'
    assert expected in rebuilt['queries'][0]


# ---- PostgreSQL ------------------------------------------------------------------------------
@pytest.fixture
def pg(pg_server):
    ensure_database(pg_server)
    return pg_server


def test_pg_invalid_index_is_repaired(pg):
    make_table(pg, 'accounts')
    sql(pg, 'UPDATE accounts SET customer = 1 WHERE id IN (1, 2)')  # duplicates for a unique index
    with pytest.raises(psycopg2.Error):
        sql(pg, 'CREATE UNIQUE INDEX CONCURRENTLY accounts_customer_key ON accounts (customer)')

    def valid():
        rows = sql(pg, """SELECT i.indisvalid FROM pg_index i JOIN pg_class c ON c.oid = i.indexrelid
                           WHERE c.relname = 'accounts_customer_key'""")
        return rows[0][0] if rows else None
    assert valid() is False
    args = conn_args(pg, name='accounts_customer_key', table='accounts', columns=['customer'], unique=True)

    checked = run_module('db_index', args, check=True, diff=True)
    assert checked['changed'] is True and checked['diff']['before']['valid'] is False
    assert valid() is False

    still_duplicate = run_module('db_index', args)
    assert still_duplicate['failed'] and 'could not create' in still_duplicate['msg']
    assert 'duplicate' in still_duplicate['msg'].lower() or 'unique' in still_duplicate['msg'].lower()
    assert valid() is None  # no invalid index left behind

    with pytest.raises(psycopg2.Error):
        sql(pg, 'CREATE UNIQUE INDEX CONCURRENTLY accounts_customer_key ON accounts (customer)')
    assert valid() is False
    sql(pg, 'UPDATE accounts SET customer = id + 1000')
    repaired = run_module('db_index', args, diff=True)
    assert repaired['changed'] is True, repaired
    assert any('repair' in a for a in repaired['actions'])
    assert valid() is True and repaired['index']['valid'] is True
    assert run_module('db_index', args)['changed'] is False


def test_pg_partial_expression_include_is_idempotent(pg):
    make_table(pg, 'users')
    args = conn_args(pg, name='users_email_idx', table='users', columns=['lower(email)', 'customer DESC'],
                     include=['note'], where="customer > 3 AND email LIKE '%@example.org'", unique=True,
                     storage_params={'fillfactor': 80})
    created = run_module('db_index', args)
    assert created['changed'] is True, created
    definition = pg_indexdef(pg, 'users_email_idx')
    assert 'lower(email)' in definition and 'INCLUDE (note)' in definition
    assert "fillfactor='80'" in definition and 'WHERE' in definition
    assert run_module('db_index', args)['changed'] is False

    narrower = run_module('db_index', dict(args, where="customer > 5 AND email LIKE '%@example.org'"), diff=True)
    assert narrower['changed'] is True
    assert 'customer > 5' in pg_indexdef(pg, 'users_email_idx')
    assert 'customer > 3' in narrower['diff']['before']['definition']

    gin = run_module('db_index', conn_args(pg, name='users_gin_idx', table='users', columns=['id'], type='gin'))
    assert gin['failed'] and 'operator class' in gin['msg'], gin
    assert pg_indexdef(pg, 'users_gin_idx') is None


def test_pg_constraint_index_is_not_dropped(pg):
    make_table(pg, 'ledger')
    refused = run_module('db_index', conn_args(pg, name='ledger_pkey', state='absent'))
    assert refused['failed'] and 'constraint' in refused['msg']
    assert index_columns(pg, 'ledger', 'ledger_pkey') == ['id']


def test_pg_index_of_partitioned_table_is_dropped_with_default_concurrently(pg):
    # regression: DROP INDEX CONCURRENTLY is refused for a partitioned index, so state=absent with the
    # default concurrently=true failed (and check mode promised a statement that cannot run)
    sql(pg, 'DROP TABLE IF EXISTS events')
    sql(pg, 'CREATE TABLE events (id int, kind int) PARTITION BY RANGE (id)')
    sql(pg, 'CREATE TABLE events_1 PARTITION OF events FOR VALUES FROM (0) TO (1000)')
    sql(pg, 'INSERT INTO events SELECT g, mod(g, 7) FROM generate_series(1, 500) g')
    args = conn_args(pg, name='events_kind_idx', table='events', columns=['kind'])
    assert run_module('db_index', args)['changed'] is True
    assert '(kind)' in pg_indexdef(pg, 'events_kind_idx')

    absent = conn_args(pg, name='events_kind_idx', state='absent')
    checked = run_module('db_index', absent, check=True)
    assert checked['changed'] is True and not any('CONCURRENTLY' in stmt for stmt in checked['queries']), checked
    assert '(kind)' in pg_indexdef(pg, 'events_kind_idx')
    dropped = run_module('db_index', absent)
    assert dropped['changed'] is True, dropped
    assert pg_indexdef(pg, 'events_kind_idx') is None
    # the partition's own index went with it
    assert sql(pg, "SELECT count(*) FROM pg_indexes WHERE tablename = 'events_1'")[0][0] == 0
    assert run_module('db_index', absent)['changed'] is False


def test_pg_index_name_taken_by_a_table_is_refused_in_check_mode(pg):
    # regression: a table, view or sequence of the name counted as "no index", so check mode promised a
    # CREATE INDEX and the real run failed with "already exists" (then tried DROP INDEX on that name)
    make_table(pg, 'carts')
    make_table(pg, 'carts_archive', rows=3)
    sql(pg, 'CREATE SEQUENCE IF NOT EXISTS carts_seq')
    for name, words in (('carts_archive', 'a table of that name'), ('carts_seq', 'a sequence of that name')):
        args = conn_args(pg, name=name, table='carts', columns=['email'])
        for check in (True, False):
            refused = run_module('db_index', args, check=check)
            assert refused['failed'] and words in refused['msg'], refused
            assert refused['queries'] == []
    assert sql(pg, 'SELECT count(*) FROM carts_archive')[0][0] == 3
    assert sql(pg, "SELECT count(*) FROM pg_indexes WHERE tablename = 'carts'")[0][0] == 1  # the primary key


def test_pg_rebuild_never_drops_someone_elses_object_of_the_temporary_name(pg):
    # regression: a concurrent rebuild dropped any index named <name>_dbops_new in the schema as a
    # "leftover of an interrupted run", even a user's own index on another table
    make_table(pg, 'parcels')
    make_table(pg, 'parcels_other', rows=10)
    sql(pg, 'CREATE INDEX parcels_idx ON parcels (customer)')
    args = conn_args(pg, name='parcels_idx', table='parcels', columns=['customer', 'id'])
    cases = (
        ('CREATE INDEX parcels_idx_dbops_new ON parcels_other (customer)', 'DROP INDEX parcels_idx_dbops_new',
         'index public.parcels_idx_dbops_new exists on table public.parcels_other'),
        ('CREATE INDEX parcels_idx_dbops_new ON parcels (note)', 'DROP INDEX parcels_idx_dbops_new',
         'index public.parcels_idx_dbops_new exists on public.parcels and is valid'),
        ('CREATE TABLE parcels_idx_dbops_new (x int)', 'DROP TABLE parcels_idx_dbops_new',
         'a table named public.parcels_idx_dbops_new exists'),
    )
    for create, drop, words in cases:
        sql(pg, create)
        for check in (True, False):
            refused = run_module('db_index', args, check=check)
            assert refused['failed'] and words in refused['msg'], refused
            assert 'rename or drop public.parcels_idx_dbops_new first' in refused['msg'], refused
            assert refused['queries'] == []
        assert sql(pg, "SELECT count(*) FROM pg_class WHERE relname = 'parcels_idx_dbops_new'")[0][0] == 1
        assert index_columns(pg, 'parcels', 'parcels_idx') == ['customer']
        sql(pg, drop)
    assert index_columns(pg, 'parcels_other', 'parcels_idx_dbops_new') is None
    rebuilt = run_module('db_index', args)
    assert rebuilt['changed'] is True, rebuilt
    assert index_columns(pg, 'parcels', 'parcels_idx') == ['customer', 'id']


def test_pg_rebuild_drops_an_invalid_leftover_of_the_temporary_name(pg):
    # what an interrupted concurrent rebuild leaves: an invalid <name>_dbops_new on the same table
    make_table(pg, 'crates')
    sql(pg, 'CREATE INDEX crates_idx ON crates (customer)')
    sql(pg, 'UPDATE crates SET customer = 1 WHERE id IN (1, 2)')
    with pytest.raises(psycopg2.Error):
        sql(pg, 'CREATE UNIQUE INDEX CONCURRENTLY crates_idx_dbops_new ON crates (customer)')

    def leftover():
        rows = sql(pg, """SELECT i.indisvalid FROM pg_index i JOIN pg_class c ON c.oid = i.indexrelid
                           WHERE c.relname = 'crates_idx_dbops_new'""")
        return rows[0][0] if rows else None
    assert leftover() is False
    args = conn_args(pg, name='crates_idx', table='crates', columns=['customer', 'id'])

    checked = run_module('db_index', args, check=True)
    assert checked['changed'] is True, checked
    assert checked['queries'][0] == 'DROP INDEX CONCURRENTLY IF EXISTS "public"."crates_idx_dbops_new"'
    assert leftover() is False

    rebuilt = run_module('db_index', args)
    assert rebuilt['changed'] is True, rebuilt
    assert leftover() is None
    assert index_columns(pg, 'crates', 'crates_idx') == ['customer', 'id']
    assert sql(pg, "SELECT count(*) FROM pg_class WHERE relname LIKE %s", ('crates_idx_dbops%',))[0][0] == 0
    assert run_module('db_index', args)['changed'] is False


# ---- MariaDB --------------------------------------------------------------------------------
@pytest.fixture
def my(mariadb_server):
    ensure_database(mariadb_server)
    return mariadb_server


def test_mariadb_prefix_order_and_fulltext(my):
    make_table(my, 'articles')
    prefix = conn_args(my, name='articles_prefix_idx', table='articles', columns=['email(10) DESC', 'customer'])
    assert run_module('db_index', prefix)['changed'] is True
    rows = sql(my, """SELECT column_name, sub_part, collation FROM information_schema.statistics
                       WHERE table_schema = %s AND table_name = 'articles' AND index_name = 'articles_prefix_idx'
                       ORDER BY seq_in_index""", (DB,))
    assert [tuple(r) for r in rows] == [('email', 10, 'D'), ('customer', None, 'A')]
    assert run_module('db_index', prefix)['changed'] is False

    fulltext = conn_args(my, name='articles_ft', table='articles', columns=['note'], type='fulltext')
    assert run_module('db_index', fulltext)['changed'] is True
    assert sql(my, """SELECT index_type FROM information_schema.statistics
                       WHERE table_schema = %s AND index_name = 'articles_ft'""", (DB,))[0][0] == 'FULLTEXT'
    assert run_module('db_index', fulltext)['changed'] is False

    hashed = run_module('db_index', conn_args(my, name='articles_hash', table='articles', columns=['id'], type='hash'))
    assert hashed['failed'] and 'InnoDB' in hashed['msg']
    assert index_columns(my, 'articles', 'articles_hash') is None


def my_parts(my, table, name):
    return [tuple(r) for r in sql(my, """SELECT column_name, sub_part, index_type FROM information_schema.statistics
                                          WHERE table_schema = %s AND table_name = %s AND index_name = %s
                                          ORDER BY seq_in_index""", (DB, table, name))]


def test_mariadb_spatial_and_whole_column_prefix_are_idempotent(my):
    # regression: MariaDB lists a SPATIAL key part with sub_part 32 and drops a prefix as long as the
    # column, so both were rebuilt on every run
    sql(my, 'DROP TABLE IF EXISTS places')
    sql(my, 'CREATE TABLE places (id int PRIMARY KEY, code char(8), geo point NOT NULL) ENGINE=InnoDB')
    sql(my, "INSERT INTO places SELECT seq, concat('c', seq), point(seq, seq) FROM seq_1_to_50")
    spatial = conn_args(my, name='places_geo', table='places', columns=['geo'], type='spatial')
    assert run_module('db_index', spatial)['changed'] is True
    assert my_parts(my, 'places', 'places_geo')[0][2] == 'SPATIAL'
    table_id = sql(my, 'SELECT table_id FROM information_schema.innodb_sys_tables WHERE name = %s',
                   (DB + '/places',))[0][0]
    again = run_module('db_index', spatial)
    assert again['changed'] is False and again['queries'] == [], again

    whole = conn_args(my, name='places_code', table='places', columns=['code(8)'])
    assert run_module('db_index', whole)['changed'] is True
    assert my_parts(my, 'places', 'places_code') == [('code', None, 'BTREE')]
    again = run_module('db_index', whole)
    assert again['changed'] is False and again['queries'] == [], again
    assert run_module('db_index', dict(whole, columns=['code']))['changed'] is False
    assert sql(my, 'SELECT table_id FROM information_schema.innodb_sys_tables WHERE name = %s',
               (DB + '/places',))[0][0] == table_id  # never rebuilt


def test_mariadb_key_parts_the_server_would_change_or_refuse_fail_in_check_mode(my):
    # regression: these passed check mode and then failed at the server, or were silently given a
    # prefix by the server (TEXT without a length became (3072)) and rebuilt on every run
    make_table(my, 'notes')
    cases = [
        (['email(500)'], None, 'longer than the column'),
        (['email(0)'], None, 'at least 1'),
        (['customer(4)'], None, 'string column'),
        (['note'], None, 'prefix length'),
        (['customer'], 'spatial', 'geometry column'),
        (['customer'], 'fulltext', 'text column'),
        (['email(10)'], 'fulltext', 'no prefix length'),
        (['email DESC'], 'fulltext', 'has no order'),  # was accepted, then rebuilt on every run
    ]
    for columns, index_type, words in cases:
        args = conn_args(my, name='notes_bad', table='notes', columns=columns)
        if index_type:
            args['type'] = index_type
        for check in (True, False):
            result = run_module('db_index', args, check=check)
            assert result.get('failed') and words in result['msg'], (columns, index_type, result)
            assert result['queries'] == [] and 'Traceback' not in result['msg']
        assert index_columns(my, 'notes', 'notes_bad') is None
    prefixed = conn_args(my, name='notes_note', table='notes', columns=['note(20)'])
    assert run_module('db_index', prefixed)['changed'] is True
    assert my_parts(my, 'notes', 'notes_note') == [('note', 20, 'BTREE')]
    assert run_module('db_index', prefixed)['changed'] is False


def test_mariadb_new_index_on_a_memory_table_gets_the_servers_default_type(my):
    # regression: without type, a MEMORY table's new index was built USING BTREE, not the server's HASH
    sql(my, 'DROP TABLE IF EXISTS sessions')
    sql(my, 'CREATE TABLE sessions (id int, token varchar(40)) ENGINE=MEMORY')
    args = conn_args(my, name='sessions_token', table='sessions', columns=['token'])
    created = run_module('db_index', args)
    assert created['changed'] is True and created['index']['type'] == 'hash', created
    assert my_parts(my, 'sessions', 'sessions_token') == [('token', None, 'HASH')]
    assert run_module('db_index', args)['changed'] is False
    assert run_module('db_index', dict(args, type='btree'))['changed'] is True
    assert my_parts(my, 'sessions', 'sessions_token') == [('token', None, 'BTREE')]
    assert run_module('db_index', dict(args, type='btree'))['changed'] is False
    assert run_module('db_index', args)['changed'] is False  # no type: whatever the index has


def my_ignored(my, table, name):
    return [r[0] for r in sql(my, """SELECT ignored FROM information_schema.statistics
                                      WHERE table_schema = %s AND table_name = %s AND index_name = %s
                                      ORDER BY seq_in_index""", (DB, table, name))]


def test_mariadb_ignored_index_is_reported_kept_and_set(my):
    make_table(my, 'hidden')
    sql(my, 'CREATE INDEX hidden_customer ON hidden (customer)')
    sql(my, 'ALTER TABLE hidden ALTER INDEX hidden_customer IGNORED')
    args = conn_args(my, name='hidden_customer', table='hidden', columns=['customer'])
    same = run_module('db_index', args)
    assert same['changed'] is False and same['index']['visible'] is False, same.get('msg')

    # rebuilt to another definition, or in place: still ignored
    wider = dict(args, columns=['customer', 'id'])
    check = run_module('db_index', wider, check=True, diff=True)
    assert check['changed'] and check['index']['visible'] is False and my_ignored(my, 'hidden', 'hidden_customer') \
        == ['YES']
    assert check['diff']['after']['visible'] is False
    res = run_module('db_index', wider)
    assert res['changed'] and res['index']['visible'] is False, res.get('msg')
    assert my_ignored(my, 'hidden', 'hidden_customer') == ['YES', 'YES']
    assert run_module('db_index', wider)['changed'] is False
    res = run_module('db_index', conn_args(my, name='hidden_customer', state='rebuilt'))
    assert res['changed'] and res['index']['visible'] is False
    assert my_ignored(my, 'hidden', 'hidden_customer') == ['YES', 'YES']

    # visible: true/false, changed in place, check mode first, then idempotent
    for visible, stored in ((True, 'NO'), (False, 'YES')):
        before = my_ignored(my, 'hidden', 'hidden_customer')
        check = run_module('db_index', dict(wider, visible=visible), check=True, diff=True)
        assert check['changed'] and check['diff']['after']['visible'] is visible
        assert my_ignored(my, 'hidden', 'hidden_customer') == before
        res = run_module('db_index', dict(wider, visible=visible))
        assert res['changed'] and res['index']['visible'] is visible
        assert res['queries'] == ['ALTER TABLE `%s`.`hidden` ALTER INDEX `hidden_customer` %s'
                                  % (DB, 'NOT IGNORED' if visible else 'IGNORED')]
        assert my_ignored(my, 'hidden', 'hidden_customer') == [stored, stored]
        again = run_module('db_index', dict(wider, visible=visible))
        assert again['changed'] is False and again['queries'] == []

    created = run_module('db_index', conn_args(my, name='hidden_email', table='hidden', columns=['email'],
                                               visible=False))
    assert created['changed'] and created['index']['visible'] is False
    assert my_ignored(my, 'hidden', 'hidden_email') == ['YES']
    bad = run_module('db_index', conn_args(my, name='PRIMARY', table='hidden', columns=['id'], visible=False))
    assert bad['failed'] and 'primary key cannot be ignored' in bad['msg'] and bad['queries'] == []
    assert my_ignored(my, 'hidden', 'PRIMARY') == ['NO']


def test_pg_visible_is_refused(pg):
    make_table(pg, 'pg_hidden')
    res = run_module('db_index', conn_args(pg, name='pg_hidden_customer', table='pg_hidden', columns=['customer'],
                                           visible=False), check=True)
    assert res['failed'] and 'MySQL/MariaDB only' in res['msg'], res.get('msg')
    assert index_columns(pg, 'pg_hidden', 'pg_hidden_customer') is None


def test_diff_is_the_whole_index_for_a_rebuild_and_no_change(db):
    """--diff is the whole index before and after, also when it is rebuilt in place (the same definition)
    and when nothing changes, in check mode as in the real run."""
    make_table(db, 'parcels')
    args = conn_args(db, name='parcels_idx', table='parcels', columns=['customer'])
    assert run_module('db_index', args)['changed']
    for extra in ({}, {'state': 'rebuilt'}):
        checked = run_module('db_index', dict(args, **extra), check=True, diff=True)
        real = run_module('db_index', dict(args, **extra), diff=True)
        assert not real['failed'], real.get('msg')
        assert checked['diff'] == real['diff']
        assert real['changed'] is bool(extra)
        assert real['diff']['before'] == real['diff']['after']
        assert 'customer' in real['diff']['after']['definition'] and real['diff']['after']['valid'] is True


def test_pg_tablespace_move_diff_shows_the_whole_index(pg, tmp_path):
    """Moving an index to another tablespace shows the whole index with its tablespace before and after."""
    import os
    import shutil
    location = os.path.join(pg.workdir, 'ts_parcels')
    os.mkdir(location)
    shutil.chown(location, pg.user, pg.user)
    conn = pg.connect('postgres')
    try:
        with conn.cursor() as cur:
            cur.execute("CREATE TABLESPACE ts_parcels LOCATION '%s'" % location)
    finally:
        conn.close()
    try:
        make_table(pg, 'crates')
        args = conn_args(pg, name='crates_idx', table='crates', columns=['customer'])
        assert run_module('db_index', args)['changed']
        moved = dict(args, tablespace='ts_parcels')
        checked = run_module('db_index', moved, check=True, diff=True)
        real = run_module('db_index', moved, diff=True)
        assert real['changed'] and not real['failed'], real.get('msg')
        assert checked['diff'] == real['diff']
        assert real['diff']['before']['tablespace'] == '' and real['diff']['after']['tablespace'] == 'ts_parcels'
        assert real['diff']['before']['definition'] == real['diff']['after']['definition'] == pg_indexdef(pg, 'crates_idx')
        assert run_module('db_index', moved)['changed'] is False
    finally:
        sql(pg, 'DROP TABLE IF EXISTS crates')
        conn = pg.connect('postgres')
        try:
            with conn.cursor() as cur:
                cur.execute('DROP TABLESPACE IF EXISTS ts_parcels')
        finally:
            conn.close()
