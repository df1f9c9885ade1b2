# -*- coding: utf-8 -*-
"""Statements db_user and db_database build, without a server: quoting, hashes, MySQL 8 paths."""

from __future__ import annotations

import pytest

from ansible_collections.dbops.admin.plugins.module_utils import _passwords as pw
from ansible_collections.dbops.admin.plugins.module_utils._engines._base import Secret
from ansible_collections.dbops.admin.plugins.module_utils._engines.mysql import MysqlEngine
from ansible_collections.dbops.admin.plugins.module_utils._engines.mysql_databases import split_sql
from ansible_collections.dbops.admin.plugins.module_utils._engines.mysql_users import (
    escape_database_pattern, mariadb_auth_methods, unescape_database_pattern)
from ansible_collections.dbops.admin.plugins.module_utils._engines.postgresql import PostgresEngine
from ansible_collections.dbops.admin.plugins.module_utils._errors import DbError

HOSTILE = 'x"; DROP TABLE t; --'


def offline(cls, flavor, version_num):
    """An engine object that never talks to a server (only SQL building is exercised)."""
    engine = object.__new__(cls)
    engine.check_mode = True
    engine.queries = []
    engine._secrets = set()
    engine.flavor = flavor
    engine.version_num = version_num
    engine.database = 'postgres'
    engine._authid_readable = True
    return engine


@pytest.fixture
def pg():
    return offline(PostgresEngine, 'postgresql', 150004)


@pytest.fixture
def mariadb():
    return offline(MysqlEngine, 'mariadb', 101106)


@pytest.fixture
def mysql8():
    return offline(MysqlEngine, 'mysql', 80036)


def spec(**kwargs):
    base = {'state': 'present', 'update_password': 'always'}
    base.update(kwargs)
    return base


# ---- PostgreSQL roles -------------------------------------------------------------------

def test_pg_create_role_sends_a_verifier_and_quotes_the_name(pg):
    changes, statements = pg.plan_role(spec(name=HOSTILE + '%s', password='S3cret', createdb=True), None, [])
    (sql, params), = statements
    assert sql == 'CREATE ROLE "x""; DROP TABLE t; --%%s" WITH PASSWORD %s LOGIN CREATEDB'
    assert isinstance(params[0], Secret) and params[0].startswith('SCRAM-SHA-256$4096:')
    assert pw.postgres_password_matches('S3cret', params[0], HOSTILE)
    assert 'S3cret' not in sql
    assert ('createdb', None, True) in changes and ('state', 'absent', 'present') in changes


def test_pg_unchanged_when_stored_verifier_matches(pg):
    current = {'login': True, 'superuser': False, 'connection_limit': -1, 'expires': None, 'member_of': [],
               '_password': pw.scram_sha256_verifier('S3cret', iterations=4096)}
    assert pg.plan_role(spec(name='app', password='S3cret', login=True), current, []) == ([], [])
    changes, statements = pg.plan_role(spec(name='app', password='Other'), current, [])
    assert statements[0][0] == 'ALTER ROLE "app" WITH PASSWORD %s'
    assert pw.postgres_password_matches('Other', statements[0][1][0], 'app')
    assert pg.plan_role(spec(name='app', password='Other', update_password='on_create'), current, []) == ([], [])


def test_pg_md5_stored_password_is_checked(pg):
    current = {'login': True, 'connection_limit': -1, 'member_of': [], '_password': pw.postgres_md5_hash('pw', 'old')}
    assert pg.plan_role(spec(name='old', password='pw'), current, []) == ([], [])


def test_pg_unreadable_verifier_warns_instead_of_changing(pg):
    pg._authid_readable = False
    warnings = []
    current = {'login': True, 'connection_limit': -1, 'member_of': [], '_password': None}
    assert pg.plan_role(spec(name='app', password='x'), current, warnings) == ([], [])
    assert 'cannot be read' in warnings[0] and 'only when the role is created' in warnings[0]


def test_pg_attributes_and_drop(pg):
    current = {'login': True, 'superuser': True, 'createdb': False, 'connection_limit': -1, 'member_of': [],
               '_password': None}
    _changes, statements = pg.plan_role(spec(name='r', superuser=False, createdb=True, connection_limit=4,
                                             login=False), current, [])
    assert statements == [('ALTER ROLE "r" WITH NOLOGIN NOSUPERUSER CREATEDB CONNECTION LIMIT 4', None)]
    assert pg.plan_role(spec(name=HOSTILE, state='absent'), current, [])[1] == \
        [('DROP ROLE "x""; DROP TABLE t; --"', None)]


def test_pg_refuses_long_names_and_bad_hashes(pg):
    with pytest.raises(DbError) as info:
        pg.plan_role(spec(name='n' * 64), None, [])
    assert 'limited to 63 bytes' in str(info.value)
    with pytest.raises(DbError):
        pg.plan_role(spec(name='a', password_hash='plaintext'), None, [])


def test_pg_memberships(pg):
    current = {'member_of': ['old', 'keep']}
    changes, statements = pg.plan_memberships(spec(name='u"x', member_of=['keep', 'new"r'], member_of_exclusive=True),
                                              current, {'new"r'})
    assert statements == [('GRANT "new""r" TO "u""x"', None), ('REVOKE "old" FROM "u""x"', None)]
    assert changes == [('member_of', ['keep', 'old'], ['keep', 'new"r'])]
    with pytest.raises(DbError) as info:
        pg.plan_memberships(spec(name='u', member_of=['ghost']), current, set())
    assert 'ghost' in str(info.value) and 'does not exist' in str(info.value)


def test_pg_public_rejects_role_options(pg):
    pg.check_user_options(spec(name='PUBLIC', privileges=[]))
    with pytest.raises(DbError):
        pg.check_user_options(spec(name='PUBLIC', password='x'))
    with pytest.raises(DbError):
        pg.check_user_options(spec(name='app', host='localhost'))


@pytest.mark.parametrize('target,action,expected', [
    (('database', 'd"b', None, None), 'grant', 'GRANT CONNECT ON DATABASE "d""b" TO "r""x"'),
    (('schema', 'db', 's"c', None), 'grant_with_option', 'GRANT CONNECT ON SCHEMA "s""c" TO "r""x" WITH GRANT OPTION'),
    (('table', 'db', 's', 't"; --'), 'revoke', 'REVOKE CONNECT ON TABLE "s"."t""; --" FROM "r""x"'),
    (('sequence', 'db', 's', 'q'), 'revoke_grant_option', 'REVOKE GRANT OPTION FOR CONNECT ON SEQUENCE "s"."q" FROM "r""x"'),
    (('default_tables', 'db', 's"', None), 'grant',
     'ALTER DEFAULT PRIVILEGES IN SCHEMA "s""" GRANT CONNECT ON TABLES TO "r""x"'),
])
def test_pg_privilege_statements_quote_every_identifier(pg, target, action, expected):
    assert pg.privilege_statement(action, target, ['CONNECT'], 'r"x') == expected


def test_pg_privilege_statement_public_and_function(pg):
    sigs = {('s', 'f(int)'): '"s"."f"(a integer)'}
    assert pg.privilege_statement('revoke', ('function', 'db', 's', 'f(int)'), ['EXECUTE'], 'PUBLIC', sigs) == \
        'REVOKE EXECUTE ON FUNCTION "s"."f"(a integer) FROM PUBLIC'


def test_pg_database_statements(pg):
    pg.normalize_encoding = lambda value: value.upper()
    # catalog reads of a new database's checks: the template's values, the encodings a locale takes
    pg.get_database = lambda name: {'encoding': 'SQL_ASCII', 'lc_collate': 'C', 'lc_ctype': 'C'}
    pg._locale_encodings = lambda locale: set()
    params = {'name': HOSTILE, 'state': 'present', 'owner': 'o"w', 'template': 'template0', 'encoding': 'utf8',
              'lc_collate': "C'x", 'lc_ctype': 'C', 'conn_limit': 3}
    _changes, statements = pg.database_statements(params, None)
    assert statements == ['CREATE DATABASE "x""; DROP TABLE t; --" OWNER "o""w" TEMPLATE "template0" '
                          "ENCODING 'UTF8' LC_COLLATE 'C''x' LC_CTYPE 'C' CONNECTION LIMIT 3"]
    current = {'name': HOSTILE, 'owner': 'a', 'encoding': 'UTF8', 'lc_collate': "C'x", 'lc_ctype': 'C', 'conn_limit': 3}
    changes, statements = pg.database_statements(dict(params, owner='b'), current)
    assert statements == ['ALTER DATABASE "x""; DROP TABLE t; --" OWNER TO "b"']
    with pytest.raises(DbError) as info:
        pg.database_statements(dict(params, encoding='latin1'), current)
    assert 'encoding UTF8 to LATIN1' in str(info.value)
    _changes, statements = pg.database_statements(dict(params, state='absent', force=True), current)
    assert statements == ['DROP DATABASE "x""; DROP TABLE t; --" WITH (FORCE)']
    pg.version_num = 120000
    _changes, statements = pg.database_statements(dict(params, state='absent', force=True), current)
    assert 'pg_terminate_backend' in statements[0] and "datname = 'x\"; DROP TABLE t; --'" in statements[0]
    assert pg.extension_statements(['pg_trgm', 'x"y'], ['pg_trgm']) == ['CREATE EXTENSION IF NOT EXISTS "x""y"']


# ---- MariaDB -----------------------------------------------------------------------------

def test_mariadb_auth_methods_parse():
    doc = ('{"access":0,"plugin":"mysql_native_password","authentication_string":"*AB",'
           '"auth_or":[{"plugin":"unix_socket"},{}]}')
    assert mariadb_auth_methods(doc) == [('unix_socket', ''), ('mysql_native_password', '*AB')]
    assert mariadb_auth_methods('{"plugin":"ed25519","authentication_string":"zz"}') == [('ed25519', 'zz')]


def test_mariadb_create_user_sends_native_hash(mariadb):
    _changes, statements = mariadb.plan_role(spec(name="o'b`x", host='10.0.%', password='pw', connection_limit=2), None, [])
    (sql, params), = statements
    assert sql == 'CREATE USER `o\'b``x`@`10.0.%%` IDENTIFIED VIA mysql_native_password USING %s WITH MAX_USER_CONNECTIONS 2'
    assert params == [pw.mysql_native_hash('pw')] and isinstance(params[0], Secret)


def test_mariadb_password_change_keeps_other_methods(mariadb):
    current = {'login': True, 'connection_limit': 0, 'member_of': [],
               '_auth': [('unix_socket', ''), ('mysql_native_password', pw.mysql_native_hash('old'))]}
    assert mariadb.plan_role(spec(name='u', password='old'), current, []) == ([], [])
    _changes, statements = mariadb.plan_role(spec(name='u', password='new'), current, [])
    assert statements == [('ALTER USER `u`@`%%` IDENTIFIED VIA unix_socket OR mysql_native_password USING %s',
                           [pw.mysql_native_hash('new')])]


@pytest.mark.parametrize('flavor, plugin', [('mariadb', 'unix_socket'), ('mariadb', 'gssapi'), ('mysql8', 'auth_socket')])
def test_password_for_a_socket_account_warns_and_changes_nothing(flavor, plugin, request):
    engine = request.getfixturevalue(flavor)
    socket_only = {'login': True, 'connection_limit': 0, 'member_of': [], '_auth': [(plugin, '')]}
    for given in (dict(password='new'), dict(password_hash=pw.mysql_native_hash('new'))):
        warnings = []
        assert engine.plan_role(spec(name='u', host='localhost', **given), socket_only, warnings) == ([], [])
        assert len(warnings) == 1
        assert 'u@localhost authenticates with %s, which uses no password: the password given is not used' % plugin \
            in warnings[0]
    warnings = []
    assert engine.plan_role(spec(name='u', password=''), socket_only, warnings) == ([], []) and warnings == []
    # a new account gets its password as usual
    assert engine.plan_role(spec(name='u', password='new'), None, [])[1][0][0].startswith('CREATE USER')


def test_mariadb_unverifiable_plugin_warns(mariadb):
    warnings = []
    current = {'login': True, 'connection_limit': 0, 'member_of': [], '_auth': [('ed25519', 'abc')]}
    assert mariadb.plan_role(spec(name='u', password='x'), current, warnings) == ([], [])
    assert 'ed25519' in warnings[0]


def test_mariadb_roles_and_memberships(mariadb):
    role = spec(name='r`x', login=False)
    assert mariadb.user_key(role) == ('r`x', '')
    assert mariadb.plan_role(role, None, [])[1] == [('CREATE ROLE `r``x`', None)]
    assert mariadb.plan_role(dict(role, state='absent'), {'login': False}, [])[1] == [('DROP ROLE `r``x`', None)]
    _c, statements = mariadb.plan_memberships(spec(name='u', member_of=['r`x']), None, {'r`x'})
    assert statements == [('GRANT `r``x` TO `u`@`%`', None)]


def test_mysql_privilege_statements_escape_database_wildcards(mariadb):
    key = ('u', '%')
    assert mariadb.privilege_statement('grant', ('database', 'my_db%', None, None), ['SELECT', 'GRANT OPTION'], key) == \
        'GRANT SELECT ON `my\\_db\\%`.* TO `u`@`%` WITH GRANT OPTION'
    assert mariadb.privilege_statement('revoke', ('table', 'd`b', None, 't`1'), ['INSERT', 'GRANT OPTION'], key) == \
        'REVOKE INSERT, GRANT OPTION ON `d``b`.`t``1` FROM `u`@`%`'
    assert mariadb.privilege_statement('grant', ('global', None, None, None), ['PROCESS'], key) == \
        'GRANT PROCESS ON *.* TO `u`@`%`'
    assert unescape_database_pattern(escape_database_pattern('a_b%c\\d')) == 'a_b%c\\d'


def test_mysql_privilege_statements_on_a_database_pattern(mariadb):
    key = ('u', '%')
    assert mariadb.privilege_statement('grant', ('database_pattern', 'app\\_%', None, None), ['SELECT'], key) == \
        'GRANT SELECT ON `app\\_%`.* TO `u`@`%`'
    assert mariadb.privilege_statement('revoke', ('database_pattern', 'app%', None, None), ['INSERT'], key) == \
        'REVOKE INSERT ON `app%`.* FROM `u`@`%`'
    # a literal name whose escaped form is over 64 characters cannot be a db-level grant
    with pytest.raises(DbError) as info:
        mariadb.privilege_statement('grant', ('database', 'a_' * 32, None, None), ['SELECT'], key)
    assert '96 characters' in str(info.value) and 'at most 64' in str(info.value)


def test_mysql_options_refused(mariadb):
    with pytest.raises(DbError) as info:
        mariadb.check_user_options(spec(name='u', superuser=True, createdb=False))
    assert 'superuser, createdb: PostgreSQL role attributes' in str(info.value)
    for given in ('2030-01-01', 'infinity', '+30d'):
        with pytest.raises(DbError) as info:
            mariadb.check_user_options(spec(name='u', superuser=True, expires=given))
        assert 'superuser: PostgreSQL role attributes' in str(info.value)
        assert 'expires: PostgreSQL VALID UNTIL; a MySQL/MariaDB account has no expiry date' in str(info.value)
    with pytest.raises(DbError):
        mariadb.check_user_options(spec(name='PUBLIC'))
    with pytest.raises(DbError) as info:
        mariadb.check_user_options(spec(name='u', host='h' * 256))
    assert 'host is 256 characters; MariaDB allows at most 255' in str(info.value)


@pytest.mark.parametrize('flavor, user_limit', [('mariadb', 128), ('mysql8', 32)])
def test_mysql_name_length_limits(flavor, user_limit, request):
    engine = request.getfixturevalue(flavor)
    server = 'MariaDB' if flavor == 'mariadb' else 'MySQL 8'
    # the longest names the server takes are accepted and quoted whole
    engine.check_user_options(spec(name='u' * user_limit, host='h' * 255, member_of=['r' * user_limit],
                                   privileges=[{'on': 'table', 'database': 'd' * 64, 'objects': ['t' * 64]}]))
    assert engine.plan_role(spec(name='u' * user_limit, host='h' * 255), None, [])[1] == [
        ('CREATE USER `%s`@`%s`' % ('u' * user_limit, 'h' * 255), None)]
    for bad, words in (
            (spec(name='u' * (user_limit + 1)), 'user name is %d characters; %s allows at most %d'
             % (user_limit + 1, server, user_limit)),
            (spec(name='r' * (user_limit + 1), login=False), 'role name is %d characters' % (user_limit + 1)),
            (spec(name='u', member_of=['r' * (user_limit + 1)]), 'role name is %d characters' % (user_limit + 1)),
            (spec(name='u', privileges=[{'on': 'database', 'database': 'd' * 65}]),
             'database name %r is 65 characters; %s allows at most 64' % ('d' * 65, server)),
            (spec(name='u', privileges=[{'on': 'table', 'database': 'd', 'objects': ['t' * 65]}]),
             'table name %r is 65 characters' % ('t' * 65))):
        with pytest.raises(DbError) as info:
            engine.check_user_options(bad)
        assert words in str(info.value)


def test_pg_name_length_limits(pg):
    pg.check_user_options(spec(name='é' * 31 + 'a', member_of=['r' * 63],
                               privileges=[{'on': 'table', 'database': 'd' * 63, 'schema': 's' * 63,
                                            'objects': ['t' * 63]}]))
    for bad, words in (
            (spec(name='é' * 32), "role name %r is 64 bytes; PostgreSQL allows at most 63" % ('é' * 32)),
            (spec(name='u', member_of=['r' * 64]), 'role name %r is 64 bytes' % ('r' * 64)),
            (spec(name='u', privileges=[{'on': 'database', 'database': 'd' * 64}]), 'database name'),
            (spec(name='u', privileges=[{'on': 'schema', 'database': 'd', 'schema': 's' * 64}]), 'schema name'),
            (spec(name='u', privileges=[{'on': 'sequence', 'database': 'd', 'objects': ['q' * 64]}]),
             'sequence name')):
        with pytest.raises(DbError) as info:
            pg.check_user_options(bad)
        assert words in str(info.value) and 'at most 63' in str(info.value)


def test_mysql_database_statements(mariadb):
    mariadb.normalize_charset = lambda charset, collation: (charset, collation)
    # what ALTER DATABASE makes of the words given: a character set alone brings its default collation
    mariadb._charset_and_collation = lambda charset, collation: {
        'charset': charset or collation.split('_')[0], 'collation': collation or charset + '_swedish_ci'}
    params = {'name': 'sh`op', 'state': 'present', 'charset': 'utf8mb4', 'collation': 'utf8mb4_bin'}
    assert mariadb.database_statements(params, None)[1] == \
        ['CREATE DATABASE `sh``op` CHARACTER SET utf8mb4 COLLATE utf8mb4_bin']
    current = {'name': 'sh`op', 'charset': 'utf8mb4', 'collation': 'utf8mb4_bin'}
    assert mariadb.database_statements(params, current) == ([], [])
    assert mariadb.database_statements(dict(params, charset='latin1', collation=None), current) == (
        [('charset', 'utf8mb4', 'latin1'), ('collation', 'utf8mb4_bin', 'latin1_swedish_ci')],
        ['ALTER DATABASE `sh``op` CHARACTER SET latin1'])
    with pytest.raises(DbError):
        mariadb.check_database_options(dict(params, charset='utf8; DROP'))
    with pytest.raises(DbError):
        mariadb.check_database_options(dict(params, extensions=['x']))


def test_split_sql_respects_quotes_and_comments():
    script = ("CREATE TABLE a (x varchar(9)); -- note; here\nINSERT INTO a VALUES ('1;2'), (\"3;\\\"4\");\n"
              "/* block; */ INSERT INTO `we;ird` VALUES ('it''s');# tail;\n")
    assert split_sql(script) == ['CREATE TABLE a (x varchar(9))',
                                 'INSERT INTO a VALUES (\'1;2\'), ("3;\\"4")',
                                 "INSERT INTO `we;ird` VALUES ('it''s')"]


# ---- MySQL 8 -----------------------------------------------------------------------------

def test_mysql8_create_user_sends_caching_sha2(mysql8):
    _changes, statements = mysql8.plan_role(spec(name='app', password='Pw-8'), None, [])
    (sql, params), = statements
    assert sql == 'CREATE USER `app`@`%%` IDENTIFIED WITH caching_sha2_password AS %s'
    assert params[0].startswith('$A$005$') and pw.caching_sha2_matches('Pw-8', params[0])


def test_mysql8_rerun_with_stored_salt_is_unchanged(mysql8):
    stored = pw.caching_sha2_hash('Pw-8').decode('latin-1')
    current = {'login': True, 'connection_limit': 0, 'member_of': [], '_auth': [('caching_sha2_password', stored)]}
    assert mysql8.plan_role(spec(name='app', password='Pw-8'), current, []) == ([], [])
    changes, statements = mysql8.plan_role(spec(name='app', password='Pw-9'), current, [])
    assert statements[0][0] == 'ALTER USER `app`@`%%` IDENTIFIED WITH caching_sha2_password AS %s'
    assert pw.caching_sha2_matches('Pw-9', statements[0][1][0])
    assert ('password', 'set', 'changed') in changes


def test_mysql8_native_account_and_hashes(mysql8):
    current = {'login': True, 'connection_limit': 0, 'member_of': [],
               '_auth': [('mysql_native_password', pw.mysql_native_hash('a'))]}
    assert mysql8.plan_role(spec(name='u', password='a'), current, []) == ([], [])
    assert mysql8.plan_role(spec(name='u', password='b'), current, [])[1] == \
        [('ALTER USER `u`@`%%` IDENTIFIED WITH mysql_native_password AS %s', [pw.mysql_native_hash('b')])]
    given = pw.mysql_native_hash('c')
    assert mysql8.plan_role(spec(name='u', password_hash=given), None, [])[1] == \
        [('CREATE USER `u`@`%%` IDENTIFIED WITH mysql_native_password AS %s', [given])]


@pytest.mark.parametrize('status', [None, 'DISABLED'])
def test_mysql84_native_account_moves_to_caching_sha2_when_the_plugin_is_not_loaded(status):
    # upgraded from 8.0: the account kept mysql_native_password, which 8.4 does not load by default (9.0: removed)
    engine = offline(MysqlEngine, 'mysql', 80400)
    engine.fetch_value = lambda sql, params=None, operation=None: status
    current = {'login': True, 'connection_limit': 0, 'member_of': [],
               '_auth': [('mysql_native_password', pw.mysql_native_hash('a'))]}
    warnings = []
    changes, statements = engine.plan_role(spec(name='u', password='a'), current, warnings)
    (sql, params), = statements
    assert sql == 'ALTER USER `u`@`%%` IDENTIFIED WITH caching_sha2_password AS %s'
    assert pw.caching_sha2_matches('a', params[0]) is True
    assert ('password', 'set', 'changed') in changes and 'mysql_native_password' in warnings[0]
    with pytest.raises(DbError, match='does not load mysql_native_password'):
        engine.plan_role(spec(name='v', password_hash=pw.mysql_native_hash('c')), None, [])


def test_mysql84_native_account_stays_when_the_plugin_is_loaded():
    engine = offline(MysqlEngine, 'mysql', 80400)
    engine.fetch_value = lambda sql, params=None, operation=None: 'ACTIVE'
    current = {'login': True, 'connection_limit': 0, 'member_of': [],
               '_auth': [('mysql_native_password', pw.mysql_native_hash('a'))]}
    assert engine.plan_role(spec(name='u', password='a'), current, []) == ([], [])


def test_mysql8_unreadable_or_foreign_plugin_warns(mysql8):
    warnings = []
    current = {'login': True, 'connection_limit': 0, 'member_of': [], '_auth': [('caching_sha2_password', 'garbage')]}
    assert mysql8.plan_role(spec(name='u', password='x'), current, warnings) == ([], [])
    current = dict(current, _auth=[('sha256_password', 'zzz')])
    assert mysql8.plan_role(spec(name='u', password='x'), current, warnings) == ([], [])
    assert len(warnings) == 2 and 'sha256_password' in warnings[1]


def test_mysql8_roles_have_a_host(mysql8):
    role = spec(name='reader', login=False)
    assert mysql8.user_key(role) == ('reader', '%')
    assert mysql8.plan_role(role, None, [])[1] == [('CREATE ROLE `reader`@`%`', None)]
    _c, statements = mysql8.plan_memberships(spec(name='u', host='h', member_of=['reader']), None, {'reader'})
    assert statements == [('GRANT `reader`@`%` TO `u`@`h`', None)]


def test_pg_new_user_state_is_the_create_role_defaults_and_none_for_public(pg):
    state = pg.new_user_state({'name': 'app'}, ('app', None))
    assert state['login'] is False and state['inherit'] is True and state['connection_limit'] == -1
    assert state['member_of'] == []
    for name in ('PUBLIC', 'public'):
        assert pg.new_user_state({'name': name}, (name, None)) == {}


@pytest.mark.parametrize('collation, listed, expected', [
    ('latin1_bin', [{'charset': 'latin1'}], '`latin1`'),
    ('uca1400_ai_ci', [{'charset': None}], '`utf8mb4`'),     # MariaDB 10.10+: a collation of no one set
    ('utf8_unicode_ci', [], '`utf8`'),                       # an alias the server lists under utf8mb3
])
def test_mysql_collation_alone_is_checked_with_its_character_set(mariadb, collation, listed, expected):
    """A collation given without charset is checked with the character set CREATE DATABASE gives it:
    CONVERT('' USING uca1400) failed although CREATE DATABASE ... COLLATE uca1400_ai_ci works."""
    seen = []

    def fetch_all(sql, params=None, operation=None):
        seen.append(sql)
        if 'information_schema.COLLATIONS' in sql:
            return listed
        if '@@character_set_server' in sql:
            return [{'v': 'utf8mb4'}]
        return [{'charset': 'x', 'collation': 'y'}]
    mariadb.fetch_all = fetch_all
    mariadb.normalize_charset(None, collation)
    assert "CONVERT('' USING %s) COLLATE `%s`" % (expected, collation) in seen[-1], seen


def test_pg_relative_expires_refused_before_the_server_is_asked(pg):
    asked = []
    pg.fetch_value = lambda sql, params=None, operation=None: asked.append(params[0]) or '2030-12-31 00:00:00+00'
    for relative in ('+30d', '30d', 'in 30 days', 'now', 'Today', 'tomorrow', 'yesterday', '-2 weeks', '1 month ago',
                     "now() + interval '1 day'", '12h'):
        with pytest.raises(DbError) as info:
            pg.normalize_expires(relative)
        assert 'relative time is not supported' in str(info.value) and "'infinity'" in str(info.value)
    assert asked == []
    for absolute in ('2030-12-31', 'infinity', '-infinity', '2030-12-31 23:59:59+02', 'Dec 31 2030', 'epoch'):
        pg.normalize_expires(absolute)
    assert len(asked) == 6


def test_mysql8_password_hash_as_a_hex_literal(mysql8):
    stored = pw.caching_sha2_hash('Pw-8').decode('latin-1')
    as_hex = '0x' + stored.encode('latin-1').hex().upper()  # as SHOW CREATE USER prints it
    current = {'login': True, 'connection_limit': 0, 'member_of': [], '_auth': [('caching_sha2_password', stored)]}
    assert mysql8.plan_role(spec(name='app', password_hash=as_hex), current, []) == ([], [])
    assert mysql8.plan_role(spec(name='app', password_hash=as_hex.lower().replace('0x', '0X')), current, []) == ([], [])
    other = pw.caching_sha2_hash('Pw-9').decode('latin-1')
    _changes, statements = mysql8.plan_role(spec(name='app', password_hash='0x' + other.encode('latin-1').hex()),
                                            current, [])
    assert statements == [('ALTER USER `app`@`%%` IDENTIFIED WITH caching_sha2_password AS %s', [other])]
    assert pw.caching_sha2_matches('Pw-9', statements[0][1][0])
    native = pw.mysql_native_hash('Pw-8')
    _changes, statements = mysql8.plan_role(spec(name='app', password_hash='0x' + native.encode().hex()), None, [])
    assert statements == [('CREATE USER `app`@`%%` IDENTIFIED WITH mysql_native_password AS %s', [native])]
    for bad, words in (('0x', 'even number of hex digits (0 characters'),
                       ('0x' + stored.encode('latin-1').hex()[:-1], 'even number of hex digits'),
                       ('0xZZ', 'even number of hex digits'),
                       ('0x' + b'$A$005$short'.hex(), 'caching_sha2_password string ($A$005$... of 70 bytes)')):
        with pytest.raises(DbError) as info:
            mysql8.plan_role(spec(name='app', password_hash=bad), current, [])
        assert words in str(info.value)
        assert len(bad) < 6 or bad[2:] not in str(info.value)  # the hash itself is never in the message


def test_mariadb_password_hash_as_a_hex_literal_and_ed25519(mariadb):
    mariadb.fetch_value = lambda sql, params=None, operation=None: 'ACTIVE'
    native = pw.mysql_native_hash('Pw-1')
    current = {'login': True, 'connection_limit': 0, 'member_of': [], '_auth': [('mysql_native_password', native)]}
    assert mariadb.plan_role(spec(name='u', password_hash='0x' + native.lower().encode().hex()), current, []) == ([], [])
    ed = 'P4kK4XZKZyG2yes3+AddUfN8ibFlxHeGJZ0fTCqb9J4'
    _changes, statements = mariadb.plan_role(spec(name='u', password_hash='0x' + ed.encode().hex()),
                                             dict(current, _auth=[('unix_socket', ''), ('mysql_native_password', native)]),
                                             [])
    # the password method is replaced, unix_socket kept
    assert statements == [('ALTER USER `u`@`%%` IDENTIFIED VIA unix_socket OR ed25519 USING %s', [ed])]
    on_ed = dict(current, _auth=[('ed25519', ed)])
    warnings = []
    assert mariadb.plan_role(spec(name='u', password_hash=ed), on_ed, warnings) == ([], []) and warnings == []
    _changes, statements = mariadb.plan_role(spec(name='u', password_hash=native), on_ed, [])
    assert statements == [('ALTER USER `u`@`%%` IDENTIFIED VIA mysql_native_password USING %s', [native])]
    mariadb.fetch_value = lambda sql, params=None, operation=None: None
    with pytest.raises(DbError) as info:
        mariadb.plan_role(spec(name='u', password_hash=ed), None, [])
    assert "the ed25519 plugin is not loaded on this server: INSTALL SONAME 'auth_ed25519'" in str(info.value)
    with pytest.raises(DbError) as info:
        mariadb.plan_role(spec(name='u', password_hash='0x' + pw.caching_sha2_hash('x').hex()), None, [])
    assert 'MariaDB has no caching_sha2_password' in str(info.value)
