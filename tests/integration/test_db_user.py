# -*- coding: utf-8 -*-
"""db_user against real PostgreSQL 15 and MariaDB servers: check -> real -> rerun -> bad input."""

from __future__ import annotations

import json
import os
import subprocess
import uuid

import pytest
from modrun import run_module
from servers import PostgresServer, mariadb_binary

PG_CATALOG = {
    'roles': "SELECT rolname, rolsuper, rolcreatedb, rolcreaterole, rolcanlogin, rolreplication, rolbypassrls, "
             "rolinherit, rolconnlimit, rolvaliduntil::text, rolpassword FROM pg_authid ORDER BY 1",
    'members': "SELECT roleid::regrole::text, member::regrole::text FROM pg_auth_members ORDER BY 1, 2",
    'databases': "SELECT datname, datacl::text FROM pg_database ORDER BY 1",
    'relations': "SELECT relname, relacl::text FROM pg_class WHERE relnamespace = 'public'::regnamespace ORDER BY 1",
    'defaults': "SELECT defaclrole, defaclnamespace, defaclobjtype, defaclacl::text FROM pg_default_acl ORDER BY 1, 2, 3",
    'schemas': "SELECT nspname, nspacl::text FROM pg_namespace ORDER BY 1",
}


def uid(prefix):
    return '%s_%s' % (prefix, uuid.uuid4().hex[:8])


def pg_rows(server, sql, params=None, database='postgres'):
    conn = server.connect(database)
    try:
        with conn.cursor() as cur:
            cur.execute(sql, params)
            return cur.fetchall() if cur.description else []
    finally:
        conn.close()


def my_rows(server, sql, params=None, database=None):
    conn = server.connect(database)
    try:
        with conn.cursor() as cur:
            cur.execute(sql, params)
            return cur.fetchall()
    finally:
        conn.close()


def snapshot(server, database=None):
    """Everything a DBA compares before and after: accounts, memberships, privileges."""
    if server.engine == 'postgresql':
        snap = dict((k, pg_rows(server, v)) for k, v in PG_CATALOG.items())
        if database:
            snap.update(dict(('%s.%s' % (database, k), pg_rows(server, v, database=database))
                             for k, v in PG_CATALOG.items() if k in ('relations', 'defaults', 'schemas')))
        return snap
    snap = {
        'accounts': my_rows(server, 'SELECT User, Host, Priv FROM mysql.global_priv ORDER BY 1, 2'),
        'roles': my_rows(server, 'SELECT * FROM mysql.roles_mapping ORDER BY 1, 2, 3'),
        'db': my_rows(server, 'SELECT * FROM mysql.db ORDER BY 1, 2, 3'),
        'tables': my_rows(server, 'SELECT Host, Db, User, Table_name, Table_priv FROM mysql.tables_priv ORDER BY 1, 2, 3, 4'),
    }
    return snap


def can_login(server, user, password, host_ok=True):
    if server.engine == 'postgresql':
        import psycopg2
        try:
            psycopg2.connect(host='127.0.0.1', port=server.port, user=user, password=password,
                             dbname='postgres', connect_timeout=5).close()
            return True
        except psycopg2.OperationalError:
            return False
    import pymysql
    try:
        pymysql.connect(host='127.0.0.1', port=server.port, user=user, password=password, connect_timeout=5).close()
        return True
    except pymysql.err.OperationalError:
        return False


@pytest.fixture(scope='module')
def appdb(pg_server, mariadb_server):
    """A database 'userapp' with tables t1, t2 (and a sequence and function on PostgreSQL) on both engines."""
    pg_rows(pg_server, 'CREATE DATABASE userapp')
    pg_rows(pg_server, 'CREATE TABLE t1 (a int); CREATE TABLE t2 (b int); CREATE SEQUENCE q1; '
                       "CREATE FUNCTION f(a integer) RETURNS integer LANGUAGE sql AS 'SELECT 1'; "
                       'CREATE TABLE t (x int)', database='userapp')
    my_rows(mariadb_server, 'CREATE DATABASE userapp')
    my_rows(mariadb_server, 'CREATE TABLE userapp.t1 (a int)')
    my_rows(mariadb_server, 'CREATE TABLE userapp.t2 (b int)')
    my_rows(mariadb_server, 'CREATE TABLE userapp.t (x int)')
    return 'userapp'


def privileges_for(server):
    if server.engine == 'postgresql':
        return [{'on': 'database', 'database': 'userapp', 'privs': ['CONNECT']},
                {'on': 'schema', 'database': 'userapp', 'schema': 'public', 'privs': ['USAGE']},
                {'on': 'table', 'database': 'userapp', 'objects': ['t1'], 'privs': ['SELECT', 'INSERT']}]
    return [{'on': 'database', 'database': 'userapp', 'privs': ['SELECT']},
            {'on': 'table', 'database': 'userapp', 'objects': ['t1'], 'privs': ['INSERT']}]


def held(server, name):
    """Privileges as the catalog shows them, per engine."""
    if server.engine == 'postgresql':
        return {
            'database': pg_rows(server, "SELECT has_database_privilege(%s, 'userapp', 'CONNECT')", (name,))[0][0],
            't1': sorted(r[0] for r in pg_rows(
                server, "SELECT privilege_type FROM information_schema.role_table_grants "
                        "WHERE grantee = %s AND table_name = 't1'", (name,), database='userapp')),
        }
    return {
        'database': sorted(r[0] for r in my_rows(server, "SELECT PRIVILEGE_TYPE FROM information_schema.SCHEMA_PRIVILEGES "
                                                 "WHERE GRANTEE = %s AND TABLE_SCHEMA = 'userapp'",
                                                 ("'%s'@'%%'" % name,))),
        't1': sorted(r[0] for r in my_rows(server, "SELECT PRIVILEGE_TYPE FROM information_schema.TABLE_PRIVILEGES "
                                           "WHERE GRANTEE = %s AND TABLE_NAME = 't1'", ("'%s'@'%%'" % name,))),
    }


def test_user_rhythm(server, appdb):
    name = uid('app')
    args = dict(server.conn, name=name, password='First-Pass-1', connection_limit=7,
                privileges=privileges_for(server))
    before = snapshot(server, appdb)
    check = run_module('db_user', args, check=True, diff=True)
    assert check['changed'] is True and not check['failed'], check.get('msg')
    assert snapshot(server, appdb) == before
    assert any('CREATE' in q for q in check['queries'])
    assert all('First-Pass-1' not in q for q in check['queries'])

    real = run_module('db_user', args, diff=True)
    assert real['changed'] is True and not real['failed'], real.get('msg')
    assert can_login(server, name, 'First-Pass-1')
    if server.engine == 'postgresql':
        assert pg_rows(server, 'SELECT rolconnlimit FROM pg_roles WHERE rolname = %s', (name,)) == [(7,)]
        assert held(server, name) == {'database': True, 't1': ['INSERT', 'SELECT']}
    else:
        assert my_rows(server, 'SELECT max_user_connections FROM mysql.user WHERE User = %s', (name,)) == ((7,),)
        assert held(server, name) == {'database': ['SELECT'], 't1': ['INSERT']}
    assert real['user']['connection_limit'] == 7
    assert 'First-Pass-1' not in str(real)

    after = snapshot(server, appdb)
    again = run_module('db_user', args, diff=True)
    assert again['changed'] is False, again['queries']
    assert again['queries'] == []
    assert snapshot(server, appdb) == after

    bad = run_module('db_user', dict(args, privileges=[{'on': 'table', 'database': 'userapp',
                                                        'objects': ['no_such_table'], 'privs': ['SELECT']}]))
    assert bad['failed'] and 'no_such_table' in bad['msg'] and 'does not exist' in bad['msg']
    assert snapshot(server, appdb) == after


def test_password_change_logs_in_and_is_idempotent(server):
    name = uid('pw')
    assert run_module('db_user', dict(server.conn, name=name, password='Old-Pass-1'))['changed']
    change = run_module('db_user', dict(server.conn, name=name, password='New-Pass-2'), diff=True)
    assert change['changed'] is True
    assert 'New-Pass-2' not in str(change)
    assert can_login(server, name, 'New-Pass-2')
    assert not can_login(server, name, 'Old-Pass-1')
    assert run_module('db_user', dict(server.conn, name=name, password='New-Pass-2'))['changed'] is False
    on_create = run_module('db_user', dict(server.conn, name=name, password='Other-3', update_password='on_create'))
    assert on_create['changed'] is False
    assert can_login(server, name, 'New-Pass-2')


def test_privileges_exclusive_revokes_drift(server, appdb):
    name = uid('drift')
    args = dict(server.conn, name=name, privileges=privileges_for(server), privileges_exclusive=True)
    assert run_module('db_user', args)['changed']
    # a DBA grants more by hand
    if server.engine == 'postgresql':
        pg_rows(server, 'GRANT DELETE, TRUNCATE ON t1 TO "%s"' % name, database='userapp')
        pg_rows(server, 'GRANT TEMPORARY ON DATABASE userapp TO "%s"' % name)
    else:
        my_rows(server, "GRANT DELETE ON userapp.t1 TO '%s'@'%%'" % name)
        my_rows(server, "GRANT UPDATE ON userapp.* TO '%s'@'%%'" % name)
    drift = held(server, name)
    assert drift != ({'database': True, 't1': ['INSERT', 'SELECT']} if server.engine == 'postgresql'
                     else {'database': ['SELECT'], 't1': ['INSERT']})
    fixed = run_module('db_user', args, diff=True)
    assert fixed['changed'] is True
    assert any(q.startswith('REVOKE') for q in fixed['queries'])
    before_privs = fixed['diff']['before']['privileges']
    after_privs = fixed['diff']['after']['privileges']
    assert before_privs != after_privs
    if server.engine == 'postgresql':
        assert held(server, name) == {'database': True, 't1': ['INSERT', 'SELECT']}
        assert not pg_rows(server, "SELECT has_database_privilege(%s, 'userapp', 'TEMPORARY') "
                                   "AND NOT has_database_privilege('public', 'userapp', 'TEMPORARY')", (name,))[0][0]
        assert 'DELETE' in before_privs['table userapp.public.t1']
    else:
        assert held(server, name) == {'database': ['SELECT'], 't1': ['INSERT']}
        assert 'UPDATE' in before_privs['database userapp']
    assert run_module('db_user', args)['changed'] is False


def test_member_of_exclusive(server):
    roles = [uid('role'), uid('role'), uid('role')]
    name = uid('member')
    for role in roles:
        assert run_module('db_user', dict(server.conn, name=role, login=False))['changed']
    args = dict(server.conn, name=name, member_of=roles[:2])
    assert run_module('db_user', args)['changed']
    assert run_module('db_user', args)['changed'] is False
    exclusive = dict(args, member_of=[roles[2]], member_of_exclusive=True)
    res = run_module('db_user', exclusive, diff=True)
    assert res['changed'] and res['user']['member_of'] == [roles[2]]
    if server.engine == 'postgresql':
        got = pg_rows(server, 'SELECT r.rolname FROM pg_auth_members m JOIN pg_roles r ON r.oid = m.roleid '
                              'JOIN pg_roles u ON u.oid = m.member WHERE u.rolname = %s', (name,))
    else:
        got = my_rows(server, 'SELECT Role FROM mysql.roles_mapping WHERE User = %s', (name,))
    assert [r[0] for r in got] == [roles[2]]
    assert run_module('db_user', exclusive)['changed'] is False
    missing = run_module('db_user', dict(args, member_of=['no_such_role_x']))
    assert missing['failed'] and 'no_such_role_x' in missing['msg']


def test_batch_of_100_changed_once(server, appdb):
    prefix = uid('b')
    role = prefix + '_grp'
    assert run_module('db_user', dict(server.conn, name=role, login=False))['changed']
    priv = privileges_for(server)[:1]
    users = [{'name': '%s_%03d' % (prefix, i), 'password': 'Pw-%d' % i} for i in range(100)]
    args = dict(server.conn, users=users, member_of=[role], privileges=priv)
    before = snapshot(server)
    assert run_module('db_user', args, check=True)['changed'] is True
    assert snapshot(server) == before
    first = run_module('db_user', args)
    assert first['changed'] is True and len(first['users']) == 100
    assert 'Pw-42' not in first['_stdout']  # batch passwords are masked like top-level ones
    assert all(u['changed'] for u in first['users'])
    if server.engine == 'postgresql':
        count = pg_rows(server, 'SELECT count(*) FROM pg_auth_members m JOIN pg_roles r ON r.oid = m.roleid '
                                'WHERE r.rolname = %s', (role,))[0][0]
    else:
        # (MariaDB also makes the creator of a role its admin: not counted)
        count = my_rows(server, "SELECT count(*) FROM mysql.roles_mapping WHERE Role = %s AND User <> 'root'",
                        (role,))[0][0]
    assert count == 100
    assert can_login(server, '%s_042' % prefix, 'Pw-42')
    second = run_module('db_user', args)
    assert second['changed'] is False and second['queries'] == []
    assert not any(u['changed'] for u in second['users'])
    users[5]['password'] = 'Pw-changed'
    third = run_module('db_user', dict(args, users=users))
    assert [u['name'] for u in third['users'] if u['changed']] == ['%s_005' % prefix]


HOSTILE = ['x"; DROP TABLE t; --', "o'brien", 'back\\slash`tick', 'ünïcødé_名前', 'pct%s_%d']


def test_hostile_names_created_literally(server, appdb):
    before_tables = held_tables(server)
    for raw in HOSTILE:
        name = raw + uid('')
        res = run_module('db_user', dict(server.conn, name=name, password='Hostile-Pw-1',
                                         privileges=privileges_for(server)[:1]))
        assert res['changed'] and not res['failed'], (raw, res.get('msg'))
        if server.engine == 'postgresql':
            assert pg_rows(server, 'SELECT count(*) FROM pg_roles WHERE rolname = %s', (name,))[0][0] == 1
        else:
            assert my_rows(server, 'SELECT count(*) FROM mysql.user WHERE User = %s', (name,))[0][0] == 1
        assert can_login(server, name, 'Hostile-Pw-1')
        assert run_module('db_user', dict(server.conn, name=name, password='Hostile-Pw-1',
                                          privileges=privileges_for(server)[:1]))['changed'] is False
        assert run_module('db_user', dict(server.conn, name=name, state='absent'))['changed'] is True
    assert held_tables(server) == before_tables
    # the longest name the engine takes works; one more fails before anything runs, saying the limit
    limit = 63 if server.engine == 'postgresql' else 128
    longest = uid('l') + 'é' * ((limit - 10) // (2 if server.engine == 'postgresql' else 1))
    longest += 'n' * (limit - (len(longest.encode()) if server.engine == 'postgresql' else len(longest)))
    args = dict(server.conn, name=longest, password='Long-Name-Pw-1')
    assert run_module('db_user', args)['changed'] is True
    assert can_login(server, longest, 'Long-Name-Pw-1')
    assert run_module('db_user', args)['changed'] is False
    assert run_module('db_user', dict(server.conn, name=longest, state='absent'))['changed'] is True
    before = snapshot(server)
    for extra in ({'name': longest + 'n'}, {'name': uid('u'), 'member_of': [longest + 'n']}):
        for check in (True, False):
            res = run_module('db_user', dict(server.conn, **extra), check=check)
            words = ('is 64 bytes; PostgreSQL allows at most 63' if server.engine == 'postgresql'
                     else 'is 129 characters; MariaDB allows at most 128')
            assert res['failed'] and words in res['msg'] and res['queries'] == [], res['msg']
    assert snapshot(server) == before


def held_tables(server):
    if server.engine == 'postgresql':
        return pg_rows(server, "SELECT relname FROM pg_class WHERE relname = 't'", database='userapp')
    return my_rows(server, "SELECT TABLE_NAME FROM information_schema.TABLES WHERE TABLE_SCHEMA = 'userapp'")


def test_unsupported_combinations_fail_clearly(server):
    before = snapshot(server)
    if server.engine == 'postgresql':
        cases = [({'name': uid('u'), 'privileges': [{'on': 'global', 'privs': ['SELECT']}]}, 'no global privileges'),
                 ({'name': uid('u'), 'host': 'localhost'}, 'host applies to MySQL'),
                 ({'name': uid('u'), 'privileges': [{'on': 'database', 'database': 'postgres', 'privs': ['SELECT']}]},
                  'does not apply')]
    else:
        cases = [({'name': uid('u'), 'privileges': [{'on': 'all_tables', 'database': 'userapp', 'privs': ['SELECT']}]},
                  'PostgreSQL-only'),
                 ({'name': uid('u'), 'superuser': True}, 'PostgreSQL role attributes'),
                 ({'name': uid('u'), 'login': False, 'password': 'x'}, 'has no password')]
    cases.append(({'name': uid('u'), 'password': 'Some-Long-Pw', 'password_hash': 'Some-Long-Hash'}, 'mutually exclusive'))
    for extra, words in cases:
        res = run_module('db_user', dict(server.conn, **extra))
        assert res['failed'] and words in res['msg'], res.get('msg')
    assert snapshot(server) == before


# ---- PostgreSQL only -------------------------------------------------------------------

def test_pg_attributes_and_default_privileges(pg_server, appdb):
    name = uid('attr')
    args = dict(pg_server.conn, name=name, createdb=True, createrole=True, replication=True, bypassrls=True,
                inherit=False, expires='2031-02-03 04:05:06+00', superuser=False,
                privileges=[{'on': 'all_tables', 'database': 'userapp', 'schema': 'public', 'privs': ['SELECT']},
                            {'on': 'sequence', 'database': 'userapp', 'objects': ['q1'], 'privs': ['USAGE']},
                            {'on': 'function', 'database': 'userapp', 'objects': ['f(integer)'], 'privs': ['EXECUTE'],
                             'grant_option': True}])
    assert run_module('db_user', args)['changed']
    row = pg_rows(pg_server, 'SELECT rolcreatedb, rolcreaterole, rolreplication, rolbypassrls, rolinherit, rolsuper, '
                             "rolvaliduntil = '2031-02-03 04:05:06+00' FROM pg_roles WHERE rolname = %s", (name,))
    assert row == [(True, True, True, True, False, False, True)]
    assert run_module('db_user', args)['changed'] is False
    # a table created later by the login user gets the default privilege
    pg_rows(pg_server, 'CREATE TABLE later_%s (a int)' % name, database='userapp')
    assert pg_rows(pg_server, "SELECT has_table_privilege(%s, %s, 'SELECT')", (name, 'later_' + name),
                   database='userapp') == [(True,)]
    assert pg_rows(pg_server, "SELECT has_function_privilege(%s, 'f(integer)', 'EXECUTE WITH GRANT OPTION')",
                   (name,), database='userapp') == [(True,)]
    assert pg_rows(pg_server, "SELECT has_sequence_privilege(%s, 'q1', 'USAGE')", (name,),
                   database='userapp') == [(True,)]
    # exclusive on the same scopes with fewer privileges revokes only the named types' extras
    narrowed = dict(args, privileges=[{'on': 'all_tables', 'database': 'userapp', 'schema': 'public',
                                       'privs': ['INSERT']}], privileges_exclusive=True)
    res = run_module('db_user', narrowed, diff=True)
    assert res['changed']
    assert any('ALTER DEFAULT PRIVILEGES IN SCHEMA "public" REVOKE SELECT ON TABLES' in q for q in res['queries'])
    assert pg_rows(pg_server, "SELECT has_table_privilege(%s, 't1', 'SELECT'), has_table_privilege(%s, 't1', 'INSERT'), "
                              "has_sequence_privilege(%s, 'q1', 'USAGE')", (name, name, name),
                   database='userapp') == [(False, True, True)]
    assert run_module('db_user', narrowed)['changed'] is False


def test_pg_revoke_from_public_is_idempotent(pg_server, appdb):
    args = dict(pg_server.conn, name='PUBLIC', privileges=[{'on': 'database', 'database': 'userapp', 'privs': []}],
                privileges_exclusive=True)
    first = run_module('db_user', args)
    assert first['changed'] is True
    assert first['queries'] == ['REVOKE CONNECT, TEMPORARY ON DATABASE "userapp" FROM PUBLIC']
    assert pg_rows(pg_server, "SELECT has_database_privilege('public', 'userapp', 'CONNECT')") == [(False,)]
    assert run_module('db_user', args)['changed'] is False
    pg_rows(pg_server, 'GRANT CONNECT, TEMPORARY ON DATABASE userapp TO PUBLIC')


def test_pg_unreadable_verifier_warns_and_stays_unchanged(pg_server):
    admin = uid('admin')
    target = uid('target')
    run_module('db_user', dict(pg_server.conn, name=admin, password='Admin-Pw-1', createrole=True))
    conn = dict(pg_server.conn, login_user=admin, login_password='Admin-Pw-1')
    assert run_module('db_user', dict(conn, name=target, password='T-1'))['changed'] is True
    res = run_module('db_user', dict(conn, name=target, password='T-2'))
    assert res['changed'] is False
    assert 'cannot be read' in str(res.get('warnings'))
    assert can_login(pg_server, target, 'T-1')


def test_pg_plaintext_never_in_server_log():
    server = PostgresServer(settings={'log_statement': "'all'", 'logging_collector': 'off'}).init().start()
    try:
        secret = 'Plain-Text-Never-Logged-77'
        res = run_module('db_user', dict(server.conn, users=[{'name': 'logged_a', 'password': secret},
                                                             {'name': 'logged_b', 'password': secret + 'b'}]))
        assert res['changed']
        res = run_module('db_user', dict(server.conn, name='logged_a', password=secret + 'new'))
        assert res['changed']
        assert can_login(server, 'logged_a', secret + 'new')
        with open(server.log, encoding='utf-8', errors='replace') as handle:
            log = handle.read()
        assert 'CREATE ROLE' in log and 'SCRAM-SHA-256$' in log  # the statements were logged...
        assert secret not in log                                  # ...with verifiers, never the password
    finally:
        server.destroy()


def test_pg_password_hash_and_server_made_verifier(pg_server):
    name = uid('hash')
    # a verifier made by the server itself (libpq) is recognised: same password -> no change
    conn = pg_server.connect()
    from psycopg2.extensions import encrypt_password
    verifier = encrypt_password('Srv-Pw-1', name, conn, 'scram-sha-256')
    conn.close()
    assert run_module('db_user', dict(pg_server.conn, name=name, password_hash=verifier))['changed']
    assert pg_rows(pg_server, 'SELECT rolpassword FROM pg_authid WHERE rolname = %s', (name,)) == [(verifier,)]
    assert run_module('db_user', dict(pg_server.conn, name=name, password='Srv-Pw-1'))['changed'] is False
    assert run_module('db_user', dict(pg_server.conn, name=name, password_hash=verifier))['changed'] is False
    bad = run_module('db_user', dict(pg_server.conn, name=name, password_hash='not-a-hash'))
    assert bad['failed'] and 'SCRAM-SHA-256' in bad['msg']


# ---- MariaDB only ----------------------------------------------------------------------

def test_mariadb_password_change_keeps_unix_socket(mariadb_server):
    name = uid('sock')
    my_rows(mariadb_server, "CREATE USER '%s'@'%%' IDENTIFIED VIA unix_socket OR mysql_native_password "
                            "USING PASSWORD('Old-Sock-1')" % name)
    res = run_module('db_user', dict(mariadb_server.conn, name=name, password='New-Sock-2'))
    assert res['changed'] and 'New-Sock-2' not in str(res)
    priv = my_rows(mariadb_server, 'SELECT Priv FROM mysql.global_priv WHERE User = %s', (name,))[0][0]
    assert 'unix_socket' in priv
    assert can_login(mariadb_server, name, 'New-Sock-2')
    assert run_module('db_user', dict(mariadb_server.conn, name=name, password='New-Sock-2'))['changed'] is False


def test_mariadb_role_and_global_privileges(mariadb_server):
    role = uid('mrole')
    args = dict(mariadb_server.conn, name=role, login=False,
                privileges=[{'on': 'global', 'privs': ['PROCESS', 'RELOAD']}])
    assert run_module('db_user', args)['changed']
    assert my_rows(mariadb_server, 'SELECT is_role FROM mysql.user WHERE User = %s', (role,)) == (('Y',),)
    assert run_module('db_user', args)['changed'] is False
    narrowed = dict(args, privileges=[{'on': 'global', 'privs': ['PROCESS']}], privileges_exclusive=True)
    res = run_module('db_user', narrowed)
    assert res['changed'] and res['queries'] == ['REVOKE RELOAD ON *.* FROM `%s`' % role]
    assert run_module('db_user', narrowed)['changed'] is False
    assert run_module('db_user', dict(mariadb_server.conn, name=role, state='absent'))['changed']
    assert my_rows(mariadb_server, 'SELECT count(*) FROM mysql.user WHERE User = %s', (role,)) == ((0,),)


def test_pg_password_hash_with_wrong_key_lengths_is_refused(pg_server):
    """PostgreSQL takes a 'verifier' whose keys are not 32 bytes as a plaintext password and hashes it."""
    name = uid('badhash')
    before = snapshot(pg_server)
    bad = run_module('db_user', dict(pg_server.conn, name=name, password_hash='SCRAM-SHA-256$4096:AAAA$BBBB:CCCC'))
    assert bad['failed'] and 'SCRAM-SHA-256' in bad['msg'], bad.get('msg')
    assert snapshot(pg_server) == before


def test_mariadb_account_with_the_name_of_a_role(mariadb_server):
    """A password (or connection limit) means an account: a role of the same name must not swallow it."""
    name = uid('same')
    assert run_module('db_user', dict(mariadb_server.conn, name=name, login=False))['changed']
    args = dict(mariadb_server.conn, name=name, password='Same-Name-1', connection_limit=3)
    check = run_module('db_user', args, check=True)
    assert check['changed'] is True and check['queries'][0].startswith('CREATE USER'), check
    res = run_module('db_user', args)
    assert res['changed'] is True and not res['failed'], res.get('msg')
    assert my_rows(mariadb_server, 'SELECT Host, is_role FROM mysql.user WHERE User = %s ORDER BY 1',
                   (name,)) == (('', 'Y'), ('%', 'N'))
    assert can_login(mariadb_server, name, 'Same-Name-1')
    assert run_module('db_user', args)['changed'] is False
    # without account options the entry still names the role
    assert run_module('db_user', dict(mariadb_server.conn, name=name, login=False))['changed'] is False


def test_batch_entries_are_converted_like_top_level_options(server, appdb):
    """Templated batch values arrive as strings: 'false' must not make a login role, 'no' no grant option."""
    role, user = uid('strrole'), uid('struser')
    priv = dict(privileges_for(server)[-1], grant_option='no')
    args = dict(server.conn, users=[{'name': role, 'login': 'false'},
                                    {'name': user, 'connection_limit': '5', 'privileges': [priv]}])
    first = run_module('db_user', args)
    assert first['changed'] and not first['failed'], first.get('msg')
    assert not any('GRANT OPTION' in q for q in first['queries']), first['queries']
    if server.engine == 'postgresql':
        assert pg_rows(server, 'SELECT rolname, rolcanlogin, rolconnlimit FROM pg_roles WHERE rolname IN (%s, %s) '
                               'ORDER BY 1', (role, user)) == sorted([(role, False, -1), (user, True, 5)])
    else:
        assert my_rows(server, "SELECT is_role FROM mysql.user WHERE User = %s", (role,)) == (('Y',),)
        assert my_rows(server, 'SELECT max_user_connections FROM mysql.user WHERE User = %s', (user,)) == ((5,),)
    again = run_module('db_user', args)
    assert again['changed'] is False and again['queries'] == [], again['queries']
    bad = run_module('db_user', dict(server.conn, users=[{'name': uid('x'), 'login': 'maybe'}]))
    assert bad['failed'] and 'login' in bad['msg']
    bad = run_module('db_user', dict(server.conn, users=[{'name': uid('x'), 'privileges': [dict(priv, bogus=1)]}]))
    assert bad['failed'] and 'bogus' in bad['msg']


def test_connection_limit_minus_one_is_no_limit_and_below_fails(server):
    """-1 is 'no limit' on both engines (MariaDB's own -1 refuses every connection); below -1 fails up front."""
    name = uid('limit')
    args = dict(server.conn, name=name, password='Limit-Pw-1', connection_limit=-1)
    first = run_module('db_user', args)
    assert first['changed'] and not first['failed'], first.get('msg')
    assert can_login(server, name, 'Limit-Pw-1')
    assert run_module('db_user', args)['changed'] is False
    before = snapshot(server)
    for check in (True, False):
        bad = run_module('db_user', dict(args, connection_limit=-2), check=check)
        assert bad['failed'] and 'connection_limit' in bad['msg'] and not bad.get('queries'), bad
    assert snapshot(server) == before


def test_pg_failing_batch_leaves_roles_to_drop_untouched(pg_server, appdb):
    """A batch entry failing when it runs (a membership cycle) must not have stripped a role to drop already."""
    victim, outer, inner = uid('victim'), uid('outer'), uid('inner')
    assert run_module('db_user', dict(pg_server.conn, name=victim, privileges=[
        {'on': 'table', 'database': 'userapp', 'objects': ['t2'], 'privs': ['SELECT']}]))['changed']
    assert run_module('db_user', dict(pg_server.conn, users=[{'name': outer, 'login': False},
                                                             {'name': inner, 'login': False, 'member_of': [outer]}]))['changed']
    before = snapshot(pg_server, appdb)
    res = run_module('db_user', dict(pg_server.conn, users=[{'name': victim, 'state': 'absent'},
                                                            {'name': outer, 'member_of': [inner]}]))
    assert res['failed'] and 'is a member of' in res['msg'], res.get('msg')
    assert snapshot(pg_server, appdb) == before
    assert pg_rows(pg_server, "SELECT has_table_privilege(%s, 't2', 'SELECT')", (victim,), database='userapp') == [(True,)]
    # the same drop alone goes through, revoking in userapp first
    gone = run_module('db_user', dict(pg_server.conn, name=victim, state='absent'))
    assert gone['changed'] and not gone['failed'], gone.get('msg')
    assert pg_rows(pg_server, 'SELECT count(*) FROM pg_roles WHERE rolname = %s', (victim,)) == [(0,)]


def test_pg_reserved_role_names_fail_in_check_mode_too(pg_server):
    before = snapshot(pg_server)
    for name in ('pg_' + uid('app'), 'none'):
        for check in (True, False):
            res = run_module('db_user', dict(pg_server.conn, users=[{'name': uid('ok')}, {'name': name}]), check=check)
            assert res['failed'] and 'reserved' in res['msg'] and not res.get('queries'), res
    assert snapshot(pg_server) == before


def test_mariadb_removing_the_password_keeps_unix_socket_and_settles(mariadb_server):
    """password '' drops the native method; on the next run there is nothing left to remove."""
    name = uid('nopw')
    my_rows(mariadb_server, "CREATE USER '%s'@'%%' IDENTIFIED VIA unix_socket OR mysql_native_password "
                            "USING PASSWORD('Old-Sock-1')" % name)
    args = dict(mariadb_server.conn, name=name, password='')
    first = run_module('db_user', args)
    assert first['changed'] and first['queries'] == ['ALTER USER `%s`@`%%` IDENTIFIED VIA unix_socket' % name]
    assert not can_login(mariadb_server, name, 'Old-Sock-1')
    after = snapshot(mariadb_server)
    again = run_module('db_user', args)
    assert again['changed'] is False and again['queries'] == [], again['queries']
    assert run_module('db_user', args, check=True)['changed'] is False
    assert snapshot(mariadb_server) == after


def test_mariadb_host_in_capitals_is_found_on_the_next_run(mariadb_server, appdb):
    """The server stores host names in lower case: a host written 'DB-Host.Example' or '2001:DB8::1' must match."""
    name = uid('hostcase')
    for host in ('DB-Host.Example', '2001:DB8::7'):
        args = dict(mariadb_server.conn, name=name, host=host, password='Host-Pw-1',
                    privileges=[{'on': 'database', 'database': 'userapp', 'privs': ['SELECT']}])
        first = run_module('db_user', args)
        assert first['changed'] and not first['failed'], first.get('msg')
        after = snapshot(mariadb_server)
        again = run_module('db_user', args)
        assert not again['failed'] and again['changed'] is False and again['queries'] == [], again.get('msg')
        assert snapshot(mariadb_server) == after
        assert run_module('db_user', dict(mariadb_server.conn, name=name, host=host, state='absent'))['changed']
    assert my_rows(mariadb_server, 'SELECT count(*) FROM mysql.user WHERE User = %s', (name,)) == ((0,),)


def test_mariadb_native_hash_in_lower_case(mariadb_server):
    """'*' and 40 lower-case hex digits is the same hash: accepted, stored as the server writes it, unchanged next."""
    import hashlib
    name = uid('lowhash')
    digest = '*' + hashlib.sha1(hashlib.sha1(b'Low-Hash-1').digest()).hexdigest()
    args = dict(mariadb_server.conn, name=name, password_hash=digest)
    res = run_module('db_user', args)
    assert res['changed'] and not res['failed'], res.get('msg')
    assert can_login(mariadb_server, name, 'Low-Hash-1')
    assert run_module('db_user', args)['changed'] is False
    assert run_module('db_user', dict(mariadb_server.conn, name=name, password='Low-Hash-1'))['changed'] is False


def test_pg_public_with_grant_option_fails_before_anything(pg_server, appdb):
    args = dict(pg_server.conn, name='PUBLIC', privileges=[{'on': 'database', 'database': 'userapp',
                                                            'privs': ['CONNECT'], 'grant_option': True}])
    before = snapshot(pg_server)
    for check in (True, False):
        res = run_module('db_user', args, check=check)
        assert res['failed'] and 'grant_option' in res['msg'] and not res.get('queries'), res
    assert snapshot(pg_server) == before


def test_pg_exclusive_revokes_what_another_grantor_passed_on(pg_server, appdb):
    """SELECT passed on by a role holding it WITH GRANT OPTION is revoked as that role, not reported forever."""
    grantor, name = uid('grantor'), uid('passed')
    pg_rows(pg_server, 'CREATE ROLE "%s"; CREATE ROLE "%s"' % (grantor, name))
    pg_rows(pg_server, 'GRANT SELECT ON t2 TO "%s" WITH GRANT OPTION; SET ROLE "%s"; GRANT SELECT ON t2 TO "%s"; '
                       'RESET ROLE; GRANT INSERT ON t2 TO "%s"' % (grantor, grantor, name, name), database='userapp')
    args = dict(pg_server.conn, name=name, privileges_exclusive=True,
                privileges=[{'on': 'table', 'database': 'userapp', 'objects': ['t2'], 'privs': []}])
    check = run_module('db_user', args, check=True)
    real = run_module('db_user', args)
    assert real['changed'] and not real['failed'], real.get('msg')
    assert real['queries'] == check['queries']
    assert pg_rows(pg_server, "SELECT has_table_privilege(%s, 't2', 'SELECT'), has_table_privilege(%s, 't2', 'INSERT')",
                   (name, name), database='userapp') == [(False, False)]
    assert pg_rows(pg_server, "SELECT has_table_privilege(%s, 't2', 'SELECT WITH GRANT OPTION')", (grantor,),
                   database='userapp') == [(True,)]
    again = run_module('db_user', args)
    assert again['changed'] is False and again['queries'] == [], again['queries']


def test_pg_execute_on_a_procedure(pg_server, appdb):
    """on: function names a procedure too: GRANT ... ON FUNCTION would fail with 'is not a function'."""
    name, proc = uid('proc'), uid('p')
    pg_rows(pg_server, 'CREATE PROCEDURE "%s"(a integer) LANGUAGE sql AS $$SELECT 1$$' % proc, database='userapp')
    args = dict(pg_server.conn, name=name, privileges=[{'on': 'function', 'database': 'userapp', 'objects': [proc],
                                                        'privs': ['EXECUTE'], 'grant_option': True}])
    check = run_module('db_user', args, check=True)
    real = run_module('db_user', args)
    assert real['changed'] and not real['failed'], real.get('msg')
    assert real['queries'] == check['queries']
    assert pg_rows(pg_server, "SELECT has_function_privilege(%s, %s, 'EXECUTE WITH GRANT OPTION')",
                   (name, '"%s"(integer)' % proc), database='userapp') == [(True,)]
    assert run_module('db_user', args)['changed'] is False


def test_password_change_shows_in_the_diff(server):
    """A password-only change shows in --diff as set -> changed (never the secret), in check mode too."""
    name = uid('pwdiff')
    assert run_module('db_user', dict(server.conn, name=name, password='Diff-Old-1'))['changed']
    args = dict(server.conn, name=name, password='Diff-New-2')
    check = run_module('db_user', args, check=True, diff=True)
    real = run_module('db_user', args, diff=True)
    for res in (check, real):
        assert res['changed'] is True
        assert res['diff']['before']['password'] == 'set' and res['diff']['after']['password'] == 'changed'
        assert res['diff']['before'] != res['diff']['after']
        assert 'Diff-New-2' not in str(res['diff'])
    again = run_module('db_user', args, diff=True)
    assert again['changed'] is False and again['diff']['before'] == again['diff']['after']
    assert 'password' not in again['diff']['after']


def test_check_mode_predicts_the_state_of_new_accounts(server, appdb):
    """The diff and per-user results of check mode are those of the real run, defaults of new accounts included."""
    prefix = uid('pred')
    users = [{'name': prefix + '_grp', 'login': False, 'privileges': privileges_for(server)[:1]},
             {'name': prefix + '_a', 'password': 'Pred-1', 'member_of': [prefix + '_grp'], 'connection_limit': 4},
             {'name': prefix + '_b', 'password': 'Pred-2', 'connection_limit': -1}]
    if server.engine == 'postgresql':
        users[1]['expires'] = '2031-01-01 00:00:00+00'
        users[2]['createdb'] = True
    args = dict(server.conn, users=users)
    check = run_module('db_user', args, check=True, diff=True)
    real = run_module('db_user', args, diff=True)
    assert real['changed'] and not real['failed'], real.get('msg')
    assert check['diff'] == real['diff']
    assert check['users'] == real['users']


def test_mariadb_wildcard_database_grants_exclusive(mariadb_server):
    """A db-level grant on a pattern is read back as mysql.db stores it, exactly, and converges."""
    name = uid('wild')
    prefix = uid('wdb')  # patterns of this test match its own databases only
    my_rows(mariadb_server, 'CREATE DATABASE `%s_one`' % prefix)
    my_rows(mariadb_server, "CREATE USER '%s'@'%%'" % name)
    escaped = prefix.replace('_', '\\_')
    # held before: the escaped pattern with an extra privilege, a bare pattern and the literal database
    my_rows(mariadb_server, "GRANT SELECT, INSERT ON `%s\\_%%`.* TO '%s'@'%%'" % (escaped, name))
    my_rows(mariadb_server, "GRANT SELECT ON `%s%%`.* TO '%s'@'%%'" % (prefix, name))
    my_rows(mariadb_server, "GRANT SELECT, DELETE ON `%s\\_one`.* TO '%s'@'%%'" % (escaped, name))
    args = dict(mariadb_server.conn, name=name, privileges_exclusive=True, privileges=[
        {'on': 'database', 'database': escaped + '\\_%', 'wildcard': True, 'privs': ['SELECT', 'UPDATE']},
        {'on': 'database', 'database': prefix.upper() + '%', 'wildcard': True, 'privs': ['SELECT']},
        {'on': 'database', 'database': prefix + '_one', 'privs': ['SELECT']}])

    def stored():
        return my_rows(mariadb_server, 'SELECT Db, Select_priv, Insert_priv, Update_priv, Delete_priv FROM mysql.db '
                                       'WHERE User = %s ORDER BY BINARY Db', (name,))

    before = stored()
    check = run_module('db_user', args, check=True, diff=True)
    assert not check['failed'], check.get('msg')
    assert check['changed'] and stored() == before
    real = run_module('db_user', args, diff=True)
    assert not real['failed'] and real['changed'], real.get('msg')
    assert real['queries'] == check['queries']
    assert real['user']['privileges'] == {
        'database %s_one' % prefix: ['SELECT'],
        'database pattern %s%%' % prefix.upper(): ['SELECT'],
        'database pattern %s\\_%%' % escaped: ['SELECT', 'UPDATE']}
    assert stored() == tuple(sorted((
        (prefix.upper() + '%', 'Y', 'N', 'N', 'N'),   # a new pattern: case matters in mysql.db
        (prefix + '%', 'Y', 'N', 'N', 'N'),           # not named: untouched
        (escaped + '\\_%', 'Y', 'N', 'Y', 'N'),       # INSERT revoked, UPDATE granted
        (escaped + '\\_one', 'Y', 'N', 'N', 'N'),     # the literal database: DELETE revoked
    ), key=lambda row: row[0].encode()))
    again = run_module('db_user', args)
    assert again['changed'] is False and again['queries'] == [], again['queries']

    after = stored()
    bad = [{'on': 'database', 'database': 'app\\', 'wildcard': True, 'privs': ['SELECT']},
           {'on': 'table', 'database': 'app%', 'objects': ['t'], 'wildcard': True, 'privs': ['SELECT']},
           {'on': 'database', 'database': 'a' * 65, 'wildcard': True, 'privs': ['SELECT']}]
    for entry, words in zip(bad, ('lone backslash', 'on: database', 'at most 64')):
        res = run_module('db_user', dict(mariadb_server.conn, name=name, privileges=[entry]))
        assert res['failed'] and words in res['msg'], res['msg']
    assert stored() == after
    my_rows(mariadb_server, "DROP USER '%s'@'%%'" % name)
    my_rows(mariadb_server, 'DROP DATABASE `%s_one`' % prefix)


def test_pg_relative_expires_is_refused_and_absolute_settles(pg_server):
    name = uid('exp')
    args = dict(pg_server.conn, name=name, expires='2031-02-03 04:05:06+00')
    assert run_module('db_user', args)['changed'] is True
    before = snapshot(pg_server)
    for relative in ('+30d', 'in 30 days', 'tomorrow', 'now', '1 month ago', '90 days'):
        for check in (True, False):
            res = run_module('db_user', dict(args, expires=relative), check=check)
            assert res['failed'] and 'relative time is not supported' in res['msg'], (relative, res.get('msg'))
            assert "'infinity' (never expires)" in res['msg'] and res['queries'] == []
    res = run_module('db_user', dict(args, expires='next week please'))
    assert res['failed'] and 'absolute timestamp' in res['msg'], res['msg']
    bad = run_module('db_user', dict(args, expires='garbage'))
    assert bad['failed'] and 'absolute timestamp' in bad['msg'] and 'garbage' in bad['msg'], bad['msg']
    assert snapshot(pg_server) == before
    for value in ('infinity', '2032-01-01T10:00:00+02:00'):
        assert run_module('db_user', dict(args, expires=value))['changed'] is True
        again = run_module('db_user', dict(args, expires=value))
        assert again['changed'] is False and again['queries'] == []
    assert pg_rows(pg_server, 'SELECT rolvaliduntil = %s::timestamptz FROM pg_roles WHERE rolname = %s',
                   ('2032-01-01 08:00:00+00', name)) == [(True,)]
    assert run_module('db_user', dict(pg_server.conn, name=name, state='absent'))['changed']


def test_mariadb_password_for_a_unix_socket_account_warns_and_changes_nothing(mariadb_server):
    name = uid('sockonly')
    my_rows(mariadb_server, "CREATE USER '%s'@'localhost' IDENTIFIED VIA unix_socket" % name)
    before = snapshot(mariadb_server)
    args = dict(mariadb_server.conn, name=name, host='localhost', password='Sock-Pw-1')
    for check in (True, False, False):
        res = run_module('db_user', args, check=check, diff=True)
        assert not res['failed'] and res['changed'] is False and res['queries'] == [], res.get('msg')
        assert 'authenticates with unix_socket, which uses no password: the password given is not used' \
            in str(res.get('warnings')), res.get('warnings')
        assert 'Sock-Pw-1' not in str(res)
    assert snapshot(mariadb_server) == before
    assert not can_login(mariadb_server, name, 'Sock-Pw-1')
    my_rows(mariadb_server, "DROP USER '%s'@'localhost'" % name)


def test_mariadb_password_hash_as_a_hex_literal(mariadb_server):
    """Hashes exported as 0x... (mysqldump --hex-blob, print_identified_with_as_hex) are stored as the hash."""
    name = uid('hex')
    native = my_rows(mariadb_server, "SELECT PASSWORD('Hex-Pw-1')")[0][0]
    args = dict(mariadb_server.conn, name=name, password_hash='0x' + native.lower().encode().hex())
    for check, changed in ((True, True), (False, True), (False, False)):
        res = run_module('db_user', args, check=check)
        assert not res['failed'] and res['changed'] is changed, res.get('msg')
    assert can_login(mariadb_server, name, 'Hex-Pw-1')
    assert run_module('db_user', dict(args, password_hash=native))['changed'] is False
    before = snapshot(mariadb_server)
    for bad, words in (('0xZZ', 'even number of hex digits'), ('0x2A4', 'even number of hex digits'),
                       ('0x' + b'*not a hash'.hex(), "a mysql_native_password hash ('*' and 40 hex digits) or an "
                                                     "ed25519 one")):
        res = run_module('db_user', dict(args, password_hash=bad))
        assert res['failed'] and words in res['msg'] and res['queries'] == [], res['msg']
    assert snapshot(mariadb_server) == before

    # ed25519: the hash another server made, given as 0x hex, replaces the native method
    loaded = my_rows(mariadb_server, "SELECT PLUGIN_STATUS FROM information_schema.PLUGINS WHERE PLUGIN_NAME = 'ed25519'")
    source = uid('edsrc')
    if not loaded:
        res = run_module('db_user', dict(args, password_hash='A' * 43), check=True)
        assert res['failed'] and "INSTALL SONAME 'auth_ed25519'" in res['msg'], res['msg']
        my_rows(mariadb_server, "INSTALL SONAME 'auth_ed25519'")
    my_rows(mariadb_server, "CREATE USER '%s'@'%%' IDENTIFIED VIA ed25519 USING PASSWORD('Ed-Pw-1')" % source)
    ed = json.loads(my_rows(mariadb_server, 'SELECT Priv FROM mysql.global_priv WHERE User = %s',
                            (source,))[0][0])['authentication_string']
    ed_args = dict(args, password_hash='0x' + ed.encode().hex())
    res = run_module('db_user', ed_args)
    assert res['changed'] and ed not in str(res) and res['queries'] == [
        "ALTER USER `%s`@`%%` IDENTIFIED VIA ed25519 USING '********'" % name], res.get('msg')
    assert run_module('db_user', ed_args)['changed'] is False
    assert run_module('db_user', dict(ed_args, password_hash=ed))['changed'] is False
    client = mariadb_binary('mariadb', 'mysql')
    login = subprocess.run([client, '--no-defaults', '-h', '127.0.0.1', '-P', str(mariadb_server.port), '-u', name,
                            '-pEd-Pw-1', '-N', '-e', 'SELECT CURRENT_USER()'], capture_output=True, text=True,
                           check=False)
    assert login.returncode == 0 and name in login.stdout, login.stderr
    my_rows(mariadb_server, "DROP USER '%s'@'%%'" % name)
    my_rows(mariadb_server, "DROP USER '%s'@'%%'" % source)


def test_mariadb_unescaped_grant_on_a_named_database_is_reported(mariadb_server):
    """GRANT ... ON app_one.* (unescaped: a pattern) is not the literal database entry: say so, never hide it."""
    name = uid('shadow')
    database = uid('sh_db')
    my_rows(mariadb_server, 'CREATE DATABASE `%s`' % database)
    my_rows(mariadb_server, "CREATE USER '%s'@'%%'" % name)
    my_rows(mariadb_server, "GRANT SELECT, INSERT ON `%s`.* TO '%s'@'%%'" % (database, name))
    args = dict(mariadb_server.conn, name=name, privileges_exclusive=True,
                privileges=[{'on': 'database', 'database': database, 'privs': ['SELECT']}])
    res = run_module('db_user', args)
    assert not res['failed'] and res['changed'], res.get('msg')
    words = ('also holds INSERT, SELECT on the pattern `%s`.* (granted without escaping _ or %%, so it matches '
             'database %s and others)' % (database, database))
    assert words in str(res.get('warnings')) and "wildcard: true}" in str(res.get('warnings'))
    again = run_module('db_user', args)
    assert again['changed'] is False and words in str(again.get('warnings'))
    # managed as the pattern it is: the warning goes, the exclusive list applies to it too
    both = dict(args, privileges=args['privileges'] + [{'on': 'database', 'database': database, 'wildcard': True,
                                                        'privs': ['SELECT']}])
    res = run_module('db_user', both)
    assert res['changed'] and res['queries'] == ['REVOKE INSERT ON `%s`.* FROM `%s`@`%%`' % (database, name)]
    assert 'also holds' not in str(res.get('warnings'))
    assert my_rows(mariadb_server, 'SELECT Db, Insert_priv FROM mysql.db WHERE User = %s ORDER BY BINARY Db',
                   (name,)) == ((database.replace('_', '\\_'), 'N'), (database, 'N'))
    assert run_module('db_user', both)['changed'] is False
    my_rows(mariadb_server, "DROP USER '%s'@'%%'" % name)
    my_rows(mariadb_server, 'DROP DATABASE `%s`' % database)


SYSLOG_CAPTURE = '''
import os
import syslog

def _capture(*args):
    with open(os.environ['DBOPS_TEST_SYSLOG'], 'a', encoding='utf-8') as handle:
        handle.write(str(args[-1]) + '\\n')

syslog.syslog = _capture
'''


def run_logged(args, tmp_path, check=False):
    """Run db_user with what AnsibleModule writes to syslog (its invocation log) captured in a file."""
    hook = tmp_path / 'hook'
    hook.mkdir(exist_ok=True)
    (hook / 'sitecustomize.py').write_text(SYSLOG_CAPTURE, encoding='utf-8')
    log = tmp_path / 'syslog.txt'
    if log.exists():
        log.unlink()
    from modrun import collections_root
    res = run_module('db_user', args, check=check, env={
        'PYTHONPATH': os.pathsep.join([str(hook), collections_root()]), 'DBOPS_TEST_SYSLOG': str(log)})
    res['_syslog'] = log.read_text(encoding='utf-8') if log.exists() else ''
    return res


def test_batch_passwords_masked_in_invocation_log_and_failures(server, tmp_path):
    """Batch passwords are no_log values before AnsibleModule logs the invocation or fails on an argument."""
    secret, secret_hash = 'Batch-Plain-Secret-91', '*' + 'AB12' * 10
    a, b = uid('inv_a'), uid('inv_b')
    users = [{'name': a, 'password': secret}, {'name': b, 'password': secret + 'b'}]
    if server.engine == 'mysql':
        users[1] = {'name': b, 'password_hash': secret_hash}
    args = dict(server.conn, users=users)
    outputs = []
    for check in (True, False):
        res = run_logged(args, tmp_path, check=check)
        assert res['changed'] and not res['failed'], res.get('msg')
        assert 'Invoked with' in res['_syslog'] and a in res['_syslog']  # the invocation was logged...
        outputs.append(res)
    # a bad argument fails in AnsibleModule itself: its invocation must not show the entries' passwords
    bad = run_logged(dict(args, state='bogus'), tmp_path)
    assert bad['failed'] and 'state' in bad['msg']
    outputs.append(bad)
    bad = run_logged(dict(args, users=users + [{'name': uid('inv_c'), 'password': secret + 'c',
                                                'connection_limit': 'many'}]), tmp_path)
    assert bad['failed'] and 'connection_limit' in bad['msg']
    outputs.append(bad)
    if server.engine == 'postgresql':
        # a statement failing when it runs (a membership cycle), after the passwords were hashed
        assert run_module('db_user', dict(server.conn, name=b, member_of=[a]))['changed']
        failing = run_logged(dict(server.conn, users=[{'name': a, 'password': secret + 'new', 'member_of': [b]}]),
                             tmp_path)
        assert failing['failed'] and 'is a member of' in failing['msg'], failing.get('msg')
        assert any('PASSWORD' in q for q in failing['queries'])
        outputs.append(failing)
    for res in outputs:
        for shown in (res['_stdout'], res['_stderr'], res['_syslog']):
            assert secret not in shown and secret_hash not in shown, shown


def test_connection_limit_above_the_server_maximum_fails_before_anything(server):
    """2147483648 is a syntax error for PostgreSQL and MariaDB: refused up front (check mode too), not after
    check mode promised it; the largest number the server takes works and settles."""
    name = uid('biglimit')
    before = snapshot(server)
    for check in (True, False):
        for args in (dict(server.conn, name=name, connection_limit=2147483648),
                     dict(server.conn, users=[{'name': name + '_ok'}, {'name': name, 'connection_limit': 2 ** 40}])):
            bad = run_module('db_user', args, check=check)
            assert bad['failed'] and 'connection_limit is at most 2147483647' in bad['msg'], bad
            assert not bad.get('queries'), bad
    assert snapshot(server) == before
    args = dict(server.conn, name=name, connection_limit=2147483647)
    first = run_module('db_user', args)
    assert first['changed'] and not first['failed'], first.get('msg')
    assert run_module('db_user', args)['changed'] is False


def test_pg_public_diff_is_present_on_both_sides(pg_server, appdb):
    """PUBLIC always exists: --diff shows only its privileges changing, never a state absent -> present,
    and a second run's before and after are the same."""
    args = dict(pg_server.conn, name='PUBLIC', privileges=[{'on': 'database', 'database': 'userapp',
                                                            'privs': ['CONNECT']}], privileges_exclusive=True)
    try:
        checked = run_module('db_user', args, check=True, diff=True)
        real = run_module('db_user', args, diff=True)
        assert real['changed'] and not real['failed'], real.get('msg')
        assert checked['diff'] == real['diff']
        assert real['diff']['before']['state'] == real['diff']['after']['state'] == 'present'
        assert real['diff']['before']['privileges'] == {'database userapp': ['CONNECT', 'TEMPORARY']}
        assert real['diff']['after']['privileges'] == {'database userapp': ['CONNECT']}
        assert real['user']['state'] == 'present'
        again = run_module('db_user', args, diff=True)
        assert again['changed'] is False and again['diff']['before'] == again['diff']['after']
    finally:
        pg_rows(pg_server, 'GRANT CONNECT, TEMPORARY ON DATABASE userapp TO PUBLIC')
