# -*- coding: utf-8 -*-
"""db_database against real PostgreSQL 15 and MariaDB servers: check -> real -> rerun -> bad input."""

from __future__ import annotations

import uuid

import pytest
from modrun import run_module


def uid(prefix):
    return '%s_%s' % (prefix, uuid.uuid4().hex[:8])


def rows(server, sql, params=None, database=None):
    conn = server.connect(database or ('postgres' if server.engine == 'postgresql' else None))
    try:
        with conn.cursor() as cur:
            cur.execute(sql, params)
            return [tuple(r) for r in cur.fetchall()] if cur.description else []
    finally:
        conn.close()


def databases(server):
    if server.engine == 'postgresql':
        return rows(server, 'SELECT datname, pg_get_userbyid(datdba), pg_encoding_to_char(encoding), datcollate, '
                            'datconnlimit, datacl::text FROM pg_database ORDER BY 1')
    return rows(server, 'SELECT SCHEMA_NAME, DEFAULT_CHARACTER_SET_NAME, DEFAULT_COLLATION_NAME '
                        'FROM information_schema.SCHEMATA ORDER BY 1')


def test_database_rhythm(server):
    name = uid('db')
    if server.engine == 'postgresql':
        owner = uid('owner')
        rows(server, 'CREATE ROLE "%s"' % owner)
        args = dict(server.conn, name=name, owner=owner, encoding='utf8', lc_collate='C', lc_ctype='C',
                    template='template0', conn_limit=9, extensions=['pg_trgm'])
    else:
        args = dict(server.conn, name=name, charset='utf8mb4', collation='utf8mb4_unicode_ci')
    before = databases(server)
    check = run_module('db_database', args, check=True, diff=True)
    assert check['changed'] is True and not check['failed'], check.get('msg')
    assert check['queries'][0].startswith('CREATE DATABASE')
    assert databases(server) == before

    real = run_module('db_database', args, diff=True)
    assert real['changed'] is True and not real['failed'], real.get('msg')
    if server.engine == 'postgresql':
        assert rows(server, 'SELECT pg_get_userbyid(datdba), pg_encoding_to_char(encoding), datcollate, datctype, '
                            'datconnlimit FROM pg_database WHERE datname = %s', (name,)) == [(owner, 'UTF8', 'C', 'C', 9)]
        assert ('pg_trgm',) in rows(server, 'SELECT extname FROM pg_extension', database=name)
        assert real['database']['owner'] == owner
    else:
        assert rows(server, 'SELECT DEFAULT_CHARACTER_SET_NAME, DEFAULT_COLLATION_NAME FROM information_schema.SCHEMATA '
                            'WHERE SCHEMA_NAME = %s', (name,)) == [('utf8mb4', 'utf8mb4_unicode_ci')]
    after = databases(server)

    again = run_module('db_database', args, diff=True)
    assert again['changed'] is False and again['queries'] == []
    assert databases(server) == after

    if server.engine == 'postgresql':
        bad = run_module('db_database', dict(args, encoding='LATIN1'))
        assert bad['failed'] and 'encoding UTF8 to LATIN1' in bad['msg']
        bad = run_module('db_database', dict(args, owner='no_such_owner'))
        assert bad['failed'] and 'no_such_owner' in bad['msg']
        bad = run_module('db_database', dict(args, extensions=['no_such_extension']))
        assert bad['failed'] and 'no_such_extension' in bad['msg']
    else:
        bad = run_module('db_database', dict(args, owner='someone'))
        assert bad['failed'] and 'PostgreSQL only' in bad['msg']
        bad = run_module('db_database', dict(args, charset='bad;charset'))
        assert bad['failed'] and 'not a character set' in bad['msg']
    assert databases(server) == after

    # a changed owner / connection limit / charset is applied in place
    if server.engine == 'postgresql':
        other = uid('owner')
        rows(server, 'CREATE ROLE "%s"' % other)
        changed = run_module('db_database', dict(args, owner=other, conn_limit=3), diff=True)
        assert changed['changed'] and changed['diff']['before']['owner'] == owner
        assert rows(server, 'SELECT pg_get_userbyid(datdba), datconnlimit FROM pg_database WHERE datname = %s',
                    (name,)) == [(other, 3)]
    else:
        changed = run_module('db_database', dict(args, charset='latin1', collation='latin1_swedish_ci'))
        assert changed['changed']
        assert rows(server, 'SELECT DEFAULT_CHARACTER_SET_NAME FROM information_schema.SCHEMATA WHERE SCHEMA_NAME = %s',
                    (name,)) == [('latin1',)]

    gone = run_module('db_database', dict(server.conn, name=name, state='absent'), check=True)
    assert gone['changed'] and name in [r[0] for r in databases(server)]
    gone = run_module('db_database', dict(server.conn, name=name, state='absent'))
    assert gone['changed'] and name not in [r[0] for r in databases(server)]
    assert run_module('db_database', dict(server.conn, name=name, state='absent'))['changed'] is False


def test_init_sql_applied_once(server, tmp_path):
    name = uid('init')
    script = tmp_path / 'init.sql'
    script.write_text("CREATE TABLE seed (id int, note varchar(40));\n"
                      "-- a comment; with a semicolon\n"
                      "INSERT INTO seed VALUES (1, 'one; still one');\n"
                      "INSERT INTO seed VALUES (2, 'it''s two');\n")
    args = dict(server.conn, name=name, init_sql_file=str(script))
    check = run_module('db_database', args, check=True)
    assert check['changed'] and check['init_sql_applied'] is True
    assert name not in [r[0] for r in databases(server)]
    first = run_module('db_database', args)
    assert first['changed'] and first['init_sql_applied'] is True
    # check mode lists the statements the real run sends (MySQL/MariaDB: one by one; PostgreSQL: the script)
    assert check['queries'] == first['queries'], (check['queries'], first['queries'])
    table = 'seed' if server.engine == 'postgresql' else '`%s`.seed' % name
    assert rows(server, 'SELECT id, note FROM %s ORDER BY id' % table, database=name) == \
        [(1, 'one; still one'), (2, "it's two")]
    second = run_module('db_database', args)
    assert second['changed'] is False and second['init_sql_applied'] is False
    assert rows(server, 'SELECT count(*) FROM %s' % table, database=name) == [(2,)]
    run_module('db_database', dict(server.conn, name=name, state='absent'))


def test_failing_init_sql_leaves_no_database(server):
    name = uid('badinit')
    before = databases(server)
    res = run_module('db_database', dict(server.conn, name=name, init_sql='CREATE TABLE ok (a int); SELEKT oops;'))
    assert res['failed'] and 'init_sql' in res['msg']
    assert databases(server) == before


def test_absent_with_force_terminates_sessions(server):
    name = uid('busy')
    assert run_module('db_database', dict(server.conn, name=name))['changed']
    holder = server.connect(name)
    if server.engine == 'postgresql':
        # PostgreSQL refuses to drop a database in use: said before anything runs, in check mode too
        for check in (True, False):
            refused = run_module('db_database', dict(server.conn, name=name, state='absent'), check=check)
            assert refused['failed'] and 'other sessions are connected to it (1)' in refused['msg'], refused
            assert 'force: true' in refused['msg'] and refused['queries'] == []
        assert name in [r[0] for r in databases(server)]
    forced = run_module('db_database', dict(server.conn, name=name, state='absent', force=True))
    assert forced['changed'] and not forced['failed'], forced.get('msg')
    assert name not in [r[0] for r in databases(server)]
    try:
        holder.close()
    except Exception:  # pylint: disable=broad-except
        pass


def test_hostile_database_names(server):
    before_count = len(databases(server))
    for raw in ['x"; DROP TABLE t; --', "o'db`tick", 'back\\slash', 'ünï_名前', 'pct%s_%%']:
        name = raw + uid('')
        res = run_module('db_database', dict(server.conn, name=name))
        assert res['changed'] and not res['failed'], (raw, res.get('msg'))
        assert name in [r[0] for r in databases(server)]
        assert run_module('db_database', dict(server.conn, name=name))['changed'] is False
        assert run_module('db_database', dict(server.conn, name=name, state='absent'))['changed']
    assert len(databases(server)) == before_count
    res = run_module('db_database', dict(server.conn, name='d' * 65))
    assert res['failed'] and 'limited to' in res['msg']
    assert len(databases(server)) == before_count


def test_check_mode_on_existing_database_only_reports_extensions(pg_server):
    name = uid('ext')
    assert run_module('db_database', dict(pg_server.conn, name=name))['changed']
    res = run_module('db_database', dict(pg_server.conn, name=name, extensions=['pg_trgm']), check=True, diff=True)
    assert res['changed'] is True
    assert res['queries'] == ['CREATE EXTENSION IF NOT EXISTS "pg_trgm"']
    assert res['diff']['after']['extensions'] == ['pg_trgm', 'plpgsql']
    assert ('pg_trgm',) not in rows(pg_server, 'SELECT extname FROM pg_extension', database=name)
    run_module('db_database', dict(pg_server.conn, name=name, state='absent'))


def test_init_sql_can_use_the_extensions(pg_server):
    """extensions are installed before init_sql runs: a script using an extension's type works."""
    name = uid('extinit')
    args = dict(pg_server.conn, name=name, extensions=['citext'],
                init_sql='CREATE TABLE accounts (email citext PRIMARY KEY);')
    check = run_module('db_database', args, check=True)
    assert check['changed'] and check['queries'].index('CREATE EXTENSION IF NOT EXISTS "citext"') < \
        check['queries'].index(args['init_sql'])
    res = run_module('db_database', args)
    assert res['changed'] and not res['failed'] and res['init_sql_applied'], res.get('msg')
    assert res['queries'] == check['queries']
    assert rows(pg_server, "SELECT format_type(atttypid, atttypmod) FROM pg_attribute "
                           "WHERE attrelid = 'accounts'::regclass AND attname = 'email'", database=name) == [('citext',)]
    assert run_module('db_database', args)['changed'] is False
    run_module('db_database', dict(pg_server.conn, name=name, state='absent'))


def test_failing_extension_of_a_new_database_leaves_no_database(pg_server):
    """earthdistance needs cube (no CASCADE): the database created in this run is dropped again."""
    name = uid('extfail')
    before = databases(pg_server)
    res = run_module('db_database', dict(pg_server.conn, name=name, extensions=['earthdistance'],
                                         init_sql='CREATE TABLE t (a int);'))
    assert res['failed'] and 'cube' in res['msg'], res.get('msg')
    assert databases(pg_server) == before


def test_mariadb_charset_aliases_are_idempotent(mariadb_server):
    """MariaDB 10.6+ stores utf8 as utf8mb3: the names are compared as the server has them."""
    name = uid('alias')
    for args in (dict(mariadb_server.conn, name=name, charset='utf8'),
                 dict(mariadb_server.conn, name=name, charset='utf8', collation='utf8_unicode_ci'),
                 dict(mariadb_server.conn, name=name, collation='UTF8_UNICODE_CI')):
        check = run_module('db_database', args, check=True)
        first = run_module('db_database', args)
        assert not first['failed'] and first['changed'] == check['changed'], first.get('msg')
        assert first['queries'] == check['queries']
        again = run_module('db_database', args)
        assert again['changed'] is False and again['queries'] == [], again['queries']
    assert rows(mariadb_server, 'SELECT DEFAULT_CHARACTER_SET_NAME, DEFAULT_COLLATION_NAME FROM information_schema.SCHEMATA '
                                'WHERE SCHEMA_NAME = %s', (name,)) == [('utf8mb3', 'utf8mb3_unicode_ci')]
    # a collation of another character set fails before anything runs, in check mode too
    before = databases(mariadb_server)
    for check in (True, False):
        bad = run_module('db_database', dict(mariadb_server.conn, name=uid('mix'), charset='latin1',
                                             collation='utf8mb4_general_ci'), check=check)
        assert bad['failed'] and 'not valid for CHARACTER SET' in bad['msg'] and not bad.get('queries'), bad
    assert databases(mariadb_server) == before
    run_module('db_database', dict(mariadb_server.conn, name=name, state='absent'))


def test_pg_conn_limit_below_minus_one_fails_before_anything(pg_server):
    name = uid('limit')
    before = databases(pg_server)
    for check in (True, False):
        bad = run_module('db_database', dict(pg_server.conn, name=name, conn_limit=-2), check=check)
        assert bad['failed'] and 'conn_limit' in bad['msg'] and not bad.get('queries'), bad
    assert databases(pg_server) == before


def test_pg_locale_spellings_of_the_same_locale_are_unchanged(pg_server):
    """C.UTF-8 (as initdb stores it) and C.utf8 (as locale -a prints it) are one locale: no failure."""
    name = uid('loc')
    assert run_module('db_database', dict(pg_server.conn, name=name))['changed']
    stored = rows(pg_server, 'SELECT datcollate FROM pg_database WHERE datname = %s', (name,))[0][0]
    assert stored == 'C.UTF-8'
    before = databases(pg_server)
    res = run_module('db_database', dict(pg_server.conn, name=name, lc_collate='C.utf8', lc_ctype='C.UTF8'))
    assert not res['failed'] and res['changed'] is False, res.get('msg')
    assert databases(pg_server) == before
    bad = run_module('db_database', dict(pg_server.conn, name=name, lc_collate='C'))
    assert bad['failed'] and 'lc_collate C.UTF-8 to C ' in bad['msg']
    run_module('db_database', dict(pg_server.conn, name=name, state='absent'))


def test_pg_missing_template_fails_in_check_mode_too(pg_server):
    name = uid('tmpl')
    before = databases(pg_server)
    for check in (True, False):
        bad = run_module('db_database', dict(pg_server.conn, name=name, template='no_such_template'), check=check)
        assert bad['failed'] and 'no_such_template' in bad['msg'] and not bad.get('queries'), bad
    assert databases(pg_server) == before


def test_check_mode_predicts_the_state_of_a_new_database(server):
    """Check mode's diff and database result are the real run's: template and server defaults included."""
    if server.engine == 'postgresql':
        cases = [{}, {'template': 'template0', 'encoding': 'latin1', 'lc_collate': 'C', 'lc_ctype': 'C', 'conn_limit': 3}]
    else:
        cases = [{}, {'charset': 'utf8'}, {'collation': 'latin1_bin'}]
    for extra in cases:
        args = dict(server.conn, name=uid('pred'), **extra)
        check = run_module('db_database', args, check=True, diff=True)
        real = run_module('db_database', args, diff=True)
        assert real['changed'] and not real['failed'], real.get('msg')
        assert check['diff'] == real['diff'] and check['database'] == real['database'], (check['diff'], real['diff'])
        run_module('db_database', dict(server.conn, name=args['name'], state='absent'))


def test_mariadb_collation_of_no_one_character_set(mariadb_server):
    """MariaDB 10.10+ collation names without a character set (uca1400_ai_ci) go with the server's
    character set, as CREATE DATABASE ... COLLATE takes them: accepted, stored under their full name,
    unchanged on the next run."""
    if not rows(mariadb_server, "SELECT 1 FROM information_schema.COLLATIONS WHERE COLLATION_NAME = 'uca1400_ai_ci'"):
        pytest.skip('this server has no uca1400_ai_ci collation')
    name = uid('uca')
    default = rows(mariadb_server, 'SELECT @@GLOBAL.character_set_server')[0][0]
    rows(mariadb_server, "SET GLOBAL character_set_server = 'utf8mb4'")
    try:
        args = dict(mariadb_server.conn, name=name, collation='uca1400_ai_ci')
        check = run_module('db_database', args, check=True)
        assert not check['failed'] and check['changed'], check.get('msg')
        first = run_module('db_database', args)
        assert not first['failed'] and first['changed'], first.get('msg')
        assert first['queries'] == check['queries']
        assert rows(mariadb_server, 'SELECT DEFAULT_CHARACTER_SET_NAME, DEFAULT_COLLATION_NAME FROM '
                                    'information_schema.SCHEMATA WHERE SCHEMA_NAME = %s', (name,)) == [
            ('utf8mb4', 'utf8mb4_uca1400_ai_ci')]
        again = run_module('db_database', args)
        assert again['changed'] is False and again['queries'] == [], again['queries']
    finally:
        rows(mariadb_server, "SET GLOBAL character_set_server = '%s'" % default)
        run_module('db_database', dict(mariadb_server.conn, name=name, state='absent'))


def check_then_real(args, server, catalog):
    """Check mode changes nothing and predicts the real run (changed, queries, diff); the rerun is unchanged."""
    before = catalog()
    check = run_module('db_database', args, check=True, diff=True)
    assert not check['failed'], check.get('msg')
    assert catalog() == before
    real = run_module('db_database', args, diff=True)
    assert real['changed'] and not real['failed'], real.get('msg')
    assert (check['changed'], check['queries'], check['diff']) == (real['changed'], real['queries'], real['diff'])
    again = run_module('db_database', args, diff=True)
    assert again['changed'] is False and again['queries'] == [], again['queries']
    assert again['diff']['before'] == real['diff']['after']
    return real


def test_mariadb_check_mode_predicts_charset_and_collation_changes(mariadb_server):
    """A character set alone brings its default collation, a collation alone its character set: check mode
    and --diff show both, as the real run ends."""
    name = uid('chg')
    assert run_module('db_database', dict(mariadb_server.conn, name=name, charset='latin1'))['changed']

    def catalog():
        return databases(mariadb_server)
    real = check_then_real(dict(mariadb_server.conn, name=name, collation='utf8mb4_bin'), mariadb_server, catalog)
    assert real['diff']['after']['charset'] == 'utf8mb4'
    real = check_then_real(dict(mariadb_server.conn, name=name, charset='latin1'), mariadb_server, catalog)
    assert real['diff']['after']['collation'] == 'latin1_swedish_ci'
    assert rows(mariadb_server, 'SELECT DEFAULT_CHARACTER_SET_NAME, DEFAULT_COLLATION_NAME FROM information_schema.SCHEMATA '
                                'WHERE SCHEMA_NAME = %s', (name,)) == [('latin1', 'latin1_swedish_ci')]
    run_module('db_database', dict(mariadb_server.conn, name=name, state='absent'))


def test_pg_check_mode_predicts_the_extensions_of_a_new_database(pg_server):
    """A new database starts with its template's extensions (plpgsql): check mode reads them from the template."""
    rows(pg_server, 'CREATE EXTENSION IF NOT EXISTS citext', database='template1')
    try:
        for extra in ({}, {'template': 'template0'}):
            name = uid('newext')
            real = check_then_real(dict(pg_server.conn, name=name, extensions=['pg_trgm', 'plpgsql'], **extra),
                                   pg_server, lambda: databases(pg_server))
            installed = sorted(r[0] for r in rows(pg_server, 'SELECT extname FROM pg_extension', database=name))
            assert real['diff']['before']['extensions'] == []
            assert real['diff']['after']['extensions'] == installed
            assert ('citext' in installed) == (not extra)
            assert real['queries'] == ['CREATE DATABASE "%s"%s' % (name, ' TEMPLATE "template0"' if extra else ''),
                                       'CREATE EXTENSION IF NOT EXISTS "pg_trgm"']
            run_module('db_database', dict(pg_server.conn, name=name, state='absent'))
    finally:
        rows(pg_server, 'DROP EXTENSION citext', database='template1')


def test_pg_encoding_and_locale_create_database_refuses_fail_in_check_mode_too(pg_server):
    """What CREATE DATABASE refuses (another encoding or locale than template1's, an encoding the locale does not
    take) fails before anything runs, in check mode too; the same locale spelled otherwise is the template's."""
    before = databases(pg_server)
    for extra, words in (({'encoding': 'LATIN1'}, 'encoding of the template database template1 (UTF8)'),
                         ({'lc_collate': 'C'}, 'lc_collate of the template database template1 (C.UTF-8)'),
                         ({'template': 'template0', 'encoding': 'LATIN1'}, 'does not match locale C.UTF-8')):
        for check in (True, False):
            bad = run_module('db_database', dict(pg_server.conn, name=uid('refused'), **extra), check=check, diff=True)
            assert bad['failed'] and words in bad['msg'] and not bad.get('queries'), bad
    assert databases(pg_server) == before
    name = uid('spelled')
    real = check_then_real(dict(pg_server.conn, name=name, lc_collate='C.utf8', lc_ctype='C.utf8'),
                           pg_server, lambda: databases(pg_server))
    assert real['queries'] == ['CREATE DATABASE "%s"' % name]
    assert rows(pg_server, 'SELECT datcollate, datctype FROM pg_database WHERE datname = %s', (name,)) == [
        ('C.UTF-8', 'C.UTF-8')]
    run_module('db_database', dict(pg_server.conn, name=name, state='absent'))


def test_pg_conn_limit_above_the_maximum_fails_before_anything(pg_server):
    """CONNECTION LIMIT takes an int4: a larger number is refused up front, in check mode too."""
    name = uid('biglimit')
    before = databases(pg_server)
    for check in (True, False):
        bad = run_module('db_database', dict(pg_server.conn, name=name, conn_limit=2147483648), check=check)
        assert bad['failed'] and 'conn_limit is at most 2147483647' in bad['msg'] and not bad.get('queries'), bad
    assert databases(pg_server) == before
    args = dict(pg_server.conn, name=name, conn_limit=2147483647)
    assert run_module('db_database', args)['changed'] is True
    assert run_module('db_database', args)['changed'] is False
    run_module('db_database', dict(pg_server.conn, name=name, state='absent'))


def test_pg_extension_needing_another_fails_before_anything(pg_server):
    """earthdistance needs cube (CREATE EXTENSION runs without CASCADE): refused up front, in check mode too,
    for a new and an existing database (whose conn_limit change must not have run); in order, both install."""
    name = uid('extreq')
    before = databases(pg_server)
    for check in (True, False):
        bad = run_module('db_database', dict(pg_server.conn, name=name, extensions=['earthdistance']), check=check)
        assert bad['failed'] and 'requires cube' in bad['msg'] and bad['queries'] == [], bad
    assert databases(pg_server) == before
    assert run_module('db_database', dict(pg_server.conn, name=name))['changed']
    before = databases(pg_server)
    for check in (True, False):
        bad = run_module('db_database', dict(pg_server.conn, name=name, conn_limit=4,
                                             extensions=['earthdistance', 'cube']), check=check)
        assert bad['failed'] and 'list cube before earthdistance' in bad['msg'] and bad['queries'] == [], bad
    assert databases(pg_server) == before
    real = check_then_real(dict(pg_server.conn, name=name, extensions=['cube', 'earthdistance']), pg_server,
                           lambda: databases(pg_server))
    assert real['diff']['after']['extensions'] == ['cube', 'earthdistance', 'plpgsql']
    run_module('db_database', dict(pg_server.conn, name=name, state='absent'))


def test_pg_owner_the_login_may_not_give_fails_before_anything(pg_server):
    """A login that is not a superuser may make a database owned only by a role it is a member of: refused up
    front, in check mode too (check mode promised the CREATE and the real run failed at the server)."""
    login, owner, name = uid('dblogin'), uid('dbowner'), uid('owned')
    rows(pg_server, "CREATE ROLE %s LOGIN CREATEDB PASSWORD 'Db-Login-1'" % login)
    rows(pg_server, 'CREATE ROLE %s' % owner)
    as_login = dict(pg_server.conn, login_user=login, login_password='Db-Login-1')
    try:
        before = databases(pg_server)
        for check in (True, False):
            bad = run_module('db_database', dict(as_login, name=name, owner=owner), check=check)
            assert bad['failed'] and 'member of role %s' % owner in bad['msg'] and bad['queries'] == [], bad
        assert databases(pg_server) == before
        assert run_module('db_database', dict(as_login, name=name))['changed']
        # an existing database: the owner change is refused alike, nothing changed
        for check in (True, False):
            bad = run_module('db_database', dict(as_login, name=name, owner=owner, conn_limit=3), check=check)
            assert bad['failed'] and 'member of role %s' % owner in bad['msg'] and bad['queries'] == [], bad
        assert rows(
            pg_server, 'SELECT pg_get_userbyid(datdba), datconnlimit FROM pg_database WHERE datname = %s',
            (name,)) == [(login, -1)]
        rows(pg_server, 'GRANT %s TO %s' % (owner, login))
        real = check_then_real(dict(as_login, name=name, owner=owner), pg_server, lambda: databases(pg_server))
        assert real['queries'] == ['ALTER DATABASE "%s" OWNER TO "%s"' % (name, owner)]
    finally:
        run_module('db_database', dict(pg_server.conn, name=name, state='absent'))
        rows(pg_server, 'DROP ROLE IF EXISTS %s' % login)
        rows(pg_server, 'DROP ROLE IF EXISTS %s' % owner)
