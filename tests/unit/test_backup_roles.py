# -*- coding: utf-8 -*-
"""The roles/accounts a logical restore needs (db_restore roles=require|create|skip), without a server:
the pg_dumpall script reader and the MariaDB/MySQL account helpers."""

from __future__ import annotations

import json
import textwrap

import pytest

from ansible_collections.dbops.admin.plugins.module_utils._engines import mysql_backup as mb
from ansible_collections.dbops.admin.plugins.module_utils._engines import postgresql_backup as pgb
from ansible_collections.dbops.admin.plugins.module_utils._engines.mysql import quote_ident
from ansible_collections.dbops.admin.plugins.module_utils._errors import DbError

GLOBALS = textwrap.dedent('''\
    --
    -- PostgreSQL database cluster dump
    --

    SET default_transaction_read_only = off;

    --
    -- Roles
    --

    CREATE ROLE "App Owner";
    ALTER ROLE "App Owner" WITH NOSUPERUSER INHERIT LOGIN PASSWORD 'SCRAM-SHA-256$4096:c2FsdA==$a;b:c';
    CREATE ROLE app_reader;
    ALTER ROLE app_reader WITH NOSUPERUSER INHERIT NOLOGIN;
    COMMENT ON ROLE app_reader IS 'reads; everything
    on two lines -- not a comment';
    CREATE ROLE app_readers;
    ALTER ROLE app_readers WITH NOLOGIN;
    CREATE ROLE "we""ird";
    ALTER ROLE "we""ird" WITH NOLOGIN;
    CREATE ROLE postgres;
    ALTER ROLE postgres WITH SUPERUSER INHERIT LOGIN;

    --
    -- User Configurations
    --

    ALTER ROLE "App Owner" SET work_mem TO '8MB';

    --
    -- Role memberships
    --

    GRANT app_reader TO "App Owner" GRANTED BY postgres;
    GRANT app_reader TO somebody_else GRANTED BY postgres;
    GRANT app_readers TO app_reader WITH ADMIN OPTION GRANTED BY postgres;
    GRANT app_reader TO "we""ird" GRANTED BY postgres;
''')


def test_sql_statements_keep_literals_whole_and_drop_comment_lines():
    stmts = pgb.sql_statements(GLOBALS)
    assert stmts[0] == 'SET default_transaction_read_only = off;'
    comment = [s for s in stmts if s.startswith('COMMENT ON ROLE')]
    assert comment == ["COMMENT ON ROLE app_reader IS 'reads; everything\non two lines -- not a comment';"]
    assert not any(s.startswith('--') for s in stmts)
    assert "PASSWORD 'SCRAM-SHA-256$4096:c2FsdA==$a;b:c';" in stmts[2]


def test_role_statements_pick_only_the_missing_roles_and_their_memberships():
    stmts, undefined = pgb.role_statements(GLOBALS, ['App Owner', 'app_reader'], ['postgres', 'app_readers'])
    assert undefined == []
    assert stmts == [
        'CREATE ROLE "App Owner";',
        "ALTER ROLE \"App Owner\" WITH NOSUPERUSER INHERIT LOGIN PASSWORD 'SCRAM-SHA-256$4096:c2FsdA==$a;b:c';",
        'CREATE ROLE app_reader;',
        'ALTER ROLE app_reader WITH NOSUPERUSER INHERIT NOLOGIN;',
        "COMMENT ON ROLE app_reader IS 'reads; everything\non two lines -- not a comment';",
        "ALTER ROLE \"App Owner\" SET work_mem TO '8MB';",
        # grantor dropped (it may not exist); somebody_else and "we""ird" do not exist: left out
        'GRANT app_reader TO "App Owner";',
        'GRANT app_readers TO app_reader WITH ADMIN OPTION;',
    ]


def test_role_statements_quoted_name_and_undefined_role():
    stmts, undefined = pgb.role_statements(GLOBALS, ['we"ird', 'ghost'], ['app_reader'])
    assert undefined == ['ghost']
    assert stmts == ['CREATE ROLE "we""ird";', 'ALTER ROLE "we""ird" WITH NOLOGIN;', 'GRANT app_reader TO "we""ird";']


def test_role_statements_never_touch_existing_roles():
    stmts, _undefined = pgb.role_statements(GLOBALS, ['app_reader'], ['App Owner', 'postgres', 'app_readers'])
    assert not [s for s in stmts if 'postgres WITH' in s or s.startswith('ALTER ROLE "App Owner"')]


def test_password_literals_are_found_for_masking():
    assert pgb.password_literals("ALTER ROLE x WITH LOGIN PASSWORD 'SCRAM-SHA-256$4096:abc$d:e';") == \
        ['SCRAM-SHA-256$4096:abc$d:e']
    assert pgb.password_literals('ALTER ROLE x WITH NOLOGIN;') == []


@pytest.mark.parametrize('definer, expected', [
    ('app@%', ('app', '%')), ('we@ird@localhost', ('we@ird', 'localhost')), ('role_only', ('role_only', '')),
    (b'app@10.0.0.%', ('app', '10.0.0.%')),
])
def test_split_definer(definer, expected):
    assert mb.split_definer(definer) == expected


def test_grant_database_pattern_escapes_wildcards():
    assert mb.grant_database_pattern('my_db%x') == 'my\\_db\\%x'
    assert mb.grant_database_pattern('plain') == 'plain'


def test_account_secrets_cover_mariadb_and_mysql_forms():
    assert mb.account_secrets("CREATE USER `a`@`%` IDENTIFIED BY PASSWORD '*2B60229'") == ['*2B60229']
    assert mb.account_secrets("CREATE USER `a`@`%` IDENTIFIED VIA mysql_native_password USING '*AB' OR unix_socket") \
        == ['*AB']
    assert mb.account_secrets("CREATE USER 'a'@'%' IDENTIFIED WITH 'caching_sha2_password' AS '$A$005$x\\'y'") == \
        ["$A$005$x\\'y"]
    assert mb.account_secrets('GRANT SELECT ON `db`.* TO `a`@`%`') == []
    # MySQL 8 with print_identified_with_as_hex: the binary hash as a hexadecimal literal
    assert mb.account_secrets("CREATE USER `a`@`%` IDENTIFIED WITH 'caching_sha2_password' AS 0x244124303035 "
                              "REQUIRE NONE") == ['0x244124303035']


class _FakeEngine(mb.MysqlBackup):
    """roles_to_create over a fixed set of existing accounts."""

    def __init__(self, existing):
        self.existing = existing

    def _existing_accounts(self, accounts):
        return None if self.existing is None else {a for a in accounts if a in self.existing}


def test_roles_to_create_modes():
    dumps = [{'database': 'app', 'accounts': [['app', '%'], ['ro', '']]}, {'database': 'other'}]
    engine = _FakeEngine({('app', '%')})
    with pytest.raises(DbError) as err:
        engine.roles_to_create(dumps)
    assert 'accounts that do not exist here: ro.' in str(err.value) and 'roles=create' in str(err.value)
    assert engine.roles_to_create(dumps, 'create') == ['ro']
    assert engine.roles_to_create(dumps, 'skip') == []
    assert _FakeEngine(None).roles_to_create(dumps, 'require') == []   # mysql.user unreadable: as before
    assert engine.roles_to_create([{'database': 'old-backup'}]) == []
    with pytest.raises(DbError, match='choose one of require, create, skip'):
        engine.roles_to_create(dumps, 'all')


class _FakeMysql8(mb.MysqlBackup):
    """SHOW CREATE USER / SHOW GRANTS of a MySQL 8 server."""

    flavor = 'mysql'

    def __init__(self):
        self.ran = []

    def execute(self, sql, params=None, operation=None, autocommit=False):
        self.ran.append(sql)

    def fetch_one(self, sql, params=None, operation=None):
        self.ran.append(sql % tuple("'%s'" % p for p in params))
        hexed = 'SET SESSION print_identified_with_as_hex = ON' in self.ran
        return {'CREATE USER for app@%': "CREATE USER `app`@`%%` IDENTIFIED WITH 'caching_sha2_password' AS %s" % (
            '0x2441' if hexed else "'$A\x01\x02'")}

    def fetch_all(self, sql, params=None, operation=None):
        return [{'Grants for app@%': 'GRANT SELECT ON `shop`.* TO `app`@`%`'}]


def test_mysql8_account_definition_prints_the_hash_as_hex():
    engine = _FakeMysql8()
    definition = engine._account_definition('app', '%')   # pylint: disable=protected-access
    assert engine.ran[0] == 'SET SESSION print_identified_with_as_hex = ON'
    assert definition['create'].endswith('AS 0x2441') and definition['role'] is False
    assert definition['grants'] == ['GRANT SELECT ON `shop`.* TO `app`@`%`']
    assert mb.grant_phase(definition['grants'][0], 'app', '%', set()) == 'now'


@pytest.mark.parametrize('statement, phase', [
    ("GRANT USAGE ON *.* TO `app`@`%` IDENTIFIED BY PASSWORD '*AB'", 'now'),
    ('GRANT ALL PRIVILEGES ON `acc`.* TO `app`@`%`', 'now'),
    ('GRANT SELECT (`id`, `v`) ON `acc`.`t` TO `app`@`%`', 'later'),
    ('GRANT EXECUTE ON PROCEDURE `acc`.`p` TO `app`@`%`', 'later'),
    ('GRANT SELECT ON `we``ird TO x`.`t ON y` TO `app`@`%`', 'later'),
    ('GRANT `known_r` TO `app`@`%`', 'now'),
    ('GRANT `other_r` TO `app`@`%`', 'skip'),
    ('GRANT USAGE ON *.* TO `other_r`', 'skip'),
    ('SET DEFAULT ROLE `known_r` FOR `app`@`%`', 'now'),
    ('SET DEFAULT ROLE `other_r` FOR `app`@`%`', 'skip'),
    ('GRANT SELECT ON `acc`.* TO `app`@`localhost`', 'skip'),
])
def test_grant_phase(statement, phase):
    assert mb.grant_phase(statement, 'app', '%', {'known_r'}) == phase


@pytest.mark.parametrize('statement, expected', [
    ('GRANT ALL PRIVILEGES ON `shop`.* TO `app`@`%`', 'GRANT ALL PRIVILEGES ON `shop\\_copy`.* TO `app`@`%`'),
    ('GRANT SELECT ON `shop`.`t` TO `app`@`%` WITH GRANT OPTION',
     'GRANT SELECT ON `shop_copy`.`t` TO `app`@`%` WITH GRANT OPTION'),
    ('GRANT SELECT (`id`, `v`) ON `shop`.`t` TO `app`@`%`', 'GRANT SELECT (`id`, `v`) ON `shop_copy`.`t` TO `app`@`%`'),
    ('GRANT EXECUTE ON PROCEDURE `shop`.`p` TO `app`@`%`', 'GRANT EXECUTE ON PROCEDURE `shop_copy`.`p` TO `app`@`%`'),
    # the database-level grant names the database as a pattern with _ escaped
    ('GRANT SELECT ON `my\\_db`.* TO `app`@`%`', 'GRANT SELECT ON `my\\_db2`.* TO `app`@`%`'),
    ('GRANT SELECT ON `my_db`.`t` TO `app`@`%`', 'GRANT SELECT ON `my_db2`.`t` TO `app`@`%`'),
    # other databases, global grants and role grants stay as they are
    ('GRANT SELECT ON `crm`.* TO `app`@`%`', 'GRANT SELECT ON `crm`.* TO `app`@`%`'),
    ('GRANT SELECT ON `shop%`.* TO `app`@`%`', 'GRANT SELECT ON `shop%`.* TO `app`@`%`'),
    ("GRANT USAGE ON *.* TO `app`@`%` IDENTIFIED BY PASSWORD '*AB'",
     "GRANT USAGE ON *.* TO `app`@`%` IDENTIFIED BY PASSWORD '*AB'"),
    ('GRANT `shop` TO `app`@`%`', 'GRANT `shop` TO `app`@`%`'),
    # a name with quotes and ` ON ` inside
    ('GRANT SELECT ON `we``ird ON x`.`t` TO `app`@`%`', 'GRANT SELECT ON `shop_copy`.`t` TO `app`@`%`'),
])
def test_grant_for_database_renames_the_restored_database(statement, expected):
    renames = {'shop': 'shop_copy', 'my_db': 'my_db2', 'we`ird ON x': 'shop_copy'}
    assert mb.grant_for_database(statement, renames, quote_ident) == expected
    assert mb.grant_for_database(statement, {}, quote_ident) == statement


@pytest.mark.parametrize('statement, mighty', [
    ("GRANT ALL PRIVILEGES ON *.* TO `root`@`127.0.0.1` IDENTIFIED BY PASSWORD '*AB' WITH GRANT OPTION", True),
    ('GRANT SELECT, RELOAD ON *.* TO `bk`@`%`', True),
    ("GRANT USAGE ON *.* TO `app`@`%` IDENTIFIED BY PASSWORD '*AB'", False),
    ('GRANT ALL PRIVILEGES ON `shop`.* TO `app`@`%`', False),
    ('GRANT SELECT ON `we ON *.*`.`t` TO `app`@`%`', False),
    ('GRANT `r1` TO `app`@`%`', False),
])
def test_global_admin_grant(statement, mighty):
    assert mb.global_admin_grant(statement) is mighty


@pytest.mark.parametrize('statement, privileges, kind, target, grantee, rest', [
    # quoted names holding ' ON ', ' TO ' and doubled backticks stay whole
    ('GRANT SELECT ON `we``ird TO x`.`t ON y` TO `app`@`%`', 'SELECT', '', '`we``ird TO x`.`t ON y`', ('app', '%'), ''),
    ('GRANT SELECT (`a ON b`, `c TO d`), INSERT ON `db`.`t` TO `app`@`%`',
     'SELECT (`a ON b`, `c TO d`), INSERT', '', '`db`.`t`', ('app', '%'), ''),
    ("GRANT USAGE ON *.* TO 'it''s TO me'@'h ON x' IDENTIFIED BY PASSWORD '* TO y'",
     'USAGE', '', '*.*', ("it's TO me", 'h ON x'), "IDENTIFIED BY PASSWORD '* TO y'"),
    ('GRANT USAGE ON *.* TO ``@`localhost`', 'USAGE', '', '*.*', ('', 'localhost'), ''),
    # the object kinds, as written; a quoted database named like a kind is no kind
    ('GRANT EXECUTE ON PROCEDURE `db`.`p TO q` TO `app`@`%`', 'EXECUTE', 'PROCEDURE', '`db`.`p TO q`', ('app', '%'), ''),
    ("GRANT EXECUTE ON function `db`.`f` TO 'app'@'localhost'", 'EXECUTE', 'function', '`db`.`f`', ('app', 'localhost'), ''),
    ('GRANT SELECT ON TABLE `db`.`t` TO `app`@`%`', 'SELECT', 'TABLE', '`db`.`t`', ('app', '%'), ''),
    ('GRANT EXECUTE ON PACKAGE BODY `db`.`pk` TO `app`@`%`', 'EXECUTE', 'PACKAGE BODY', '`db`.`pk`', ('app', '%'), ''),
    ('GRANT SELECT ON `TABLE`.`t` TO `app`@`%`', 'SELECT', '', '`TABLE`.`t`', ('app', '%'), ''),
    # a role as grantee, a role granted (no ON), WITH GRANT / ADMIN OPTION left in rest
    ('GRANT SELECT ON `db`.* TO `some_role`', 'SELECT', '', '`db`.*', ('some_role', ''), ''),
    ('GRANT SELECT ON `db`.* TO PUBLIC', 'SELECT', '', '`db`.*', ('PUBLIC', ''), ''),
    ('GRANT `r ON x` TO `app`@`%` WITH ADMIN OPTION', '`r ON x`', '', None, ('app', '%'), 'WITH ADMIN OPTION'),
    ("GRANT ALL PRIVILEGES ON *.* TO `root`@`localhost` IDENTIFIED BY PASSWORD '*AB' WITH GRANT OPTION",
     'ALL PRIVILEGES', '', '*.*', ('root', 'localhost'), "IDENTIFIED BY PASSWORD '*AB' WITH GRANT OPTION"),
    ("GRANT PROXY ON ''@'%' TO 'root'@'localhost' WITH GRANT OPTION",
     'PROXY', '', "''@'%'", ('root', 'localhost'), 'WITH GRANT OPTION'),
    # no TO: no grantee
    ('GRANT SELECT ON `db`.*', 'SELECT', '', '`db`.*', None, None),
])
def test_parse_grant_splits_at_on_and_to_outside_quotes(statement, privileges, kind, target, grantee, rest):
    grant = mb.parse_grant(statement)
    assert (grant.privileges, grant.kind, grant.target, grant.grantee, grant.rest) == (
        privileges, kind, target, grantee, rest)
    if target is None:
        assert grant.target_at == -1
    else:
        # where grant_for_database puts the renamed database
        assert statement[grant.target_at:].startswith(target) and statement[grant.target_at - 1] == ' '


@pytest.mark.parametrize('statement', ['SET DEFAULT ROLE `r` FOR `app`@`%`', 'REVOKE SELECT ON `db`.* FROM `app`@`%`',
                                       'GRANTSELECT ON `db`.* TO `app`@`%`', ''])
def test_parse_grant_reads_only_grants(statement):
    assert mb.parse_grant(statement) is None


# ---- MySQL 8: partial revokes, roles that are accounts, DEFAULT ROLE ------------------------------
@pytest.mark.parametrize('statement, phase', [
    # partial_revokes=ON: a privilege held on *.* taken back on one database
    ('REVOKE INSERT, UPDATE, DELETE ON `mysql`.* FROM `app`@`%`', 'now'),
    ('REVOKE INSERT ON `we ON x`.* FROM `app`@`%`', 'now'),
    ('REVOKE INSERT ON `mysql`.* FROM `other`@`%`', 'skip'),
    # a role is an account 'r'@'h': granted when that account exists (or is created by the restore)
    ('GRANT `app_rw`@`%` TO `app`@`%`', 'now'),
    ('GRANT `app_rw`@`%` TO `app`@`%` WITH ADMIN OPTION', 'now'),
    ('GRANT `app_rw`@`localhost` TO `app`@`%`', 'skip'),
    ('GRANT `gone`@`%` TO `app`@`%`', 'skip'),
    ('GRANT BACKUP_ADMIN,REPLICATION_SLAVE_ADMIN ON *.* TO `app`@`%`', 'now'),
])
def test_grant_phase_mysql8(statement, phase):
    assert mb.grant_phase(statement, 'app', '%', {('app_rw', '%'), ('app', '%')}) == phase


def test_partial_revoke_grantee_reads_only_database_level_revokes():
    assert mb.partial_revoke_grantee('REVOKE SELECT ON `mysql`.* FROM `u1`@`%`') == ('u1', '%')
    assert mb.partial_revoke_grantee('REVOKE SELECT ON `db`.`t` FROM `u1`@`%`') is None
    assert mb.partial_revoke_grantee('GRANT SELECT ON *.* TO `u1`@`%`') is None


@pytest.mark.parametrize('create, expected, roles', [
    ("CREATE USER `app`@`%` IDENTIFIED WITH 'caching_sha2_password' AS 0x2441 DEFAULT ROLE `app_rw`@`%`,"
     "`rep orts`@`10.0.0.%` REQUIRE NONE PASSWORD EXPIRE DEFAULT ACCOUNT UNLOCK",
     "CREATE USER `app`@`%` IDENTIFIED WITH 'caching_sha2_password' AS 0x2441 REQUIRE NONE PASSWORD EXPIRE DEFAULT "
     "ACCOUNT UNLOCK", [('app_rw', '%'), ('rep orts', '10.0.0.%')]),
    ('CREATE USER `app`@`%` REQUIRE NONE ACCOUNT UNLOCK', 'CREATE USER `app`@`%` REQUIRE NONE ACCOUNT UNLOCK', []),
    ("CREATE USER `app`@`%` IDENTIFIED WITH 'x' AS ' DEFAULT ROLE `r`@`%`' REQUIRE NONE",
     "CREATE USER `app`@`%` IDENTIFIED WITH 'x' AS ' DEFAULT ROLE `r`@`%`' REQUIRE NONE", []),
])
def test_split_default_roles(create, expected, roles):
    assert mb.split_default_roles(create) == (expected, roles)


class _FakeMysql8Restore(mb.MysqlBackup):
    """restore_accounts on a MySQL 8 server that holds the accounts ``existing``."""

    flavor = 'mysql'

    def __init__(self, existing=()):
        self.existing = set(existing)
        self.ran = []

    def _existing_accounts(self, accounts):
        return {a for a in accounts if a in self.existing}

    def fetch_all(self, sql, params=None, operation=None):
        assert sql == 'SELECT User AS u, Host AS h FROM mysql.user'
        return [{'u': u, 'h': h} for u, h in sorted(self.existing)]

    def execute(self, sql, params=None, operation=None, autocommit=False):
        self.ran.append(sql)

    def add_secret(self, secret):
        pass

    def quote_ident(self, name):
        return quote_ident(name)

    def quote_literal(self, value):
        return "'%s'" % value


def test_mysql8_restore_accounts_keeps_roles_default_roles_and_partial_revokes(tmp_path):
    accounts = [
        {'user': 'app', 'host': '%', 'role': False, 'members': [],
         'create': "CREATE USER `app`@`%` IDENTIFIED WITH 'caching_sha2_password' AS 0x2441 DEFAULT ROLE "
                   "`app_rw`@`%`,`audit`@`%` REQUIRE NONE PASSWORD EXPIRE DEFAULT ACCOUNT UNLOCK",
         'grants': ['GRANT USAGE ON *.* TO `app`@`%`', 'GRANT `app_rw`@`%`,`audit`@`%`,`gone`@`%` TO `app`@`%`']},
        {'user': 'app_rw', 'host': '%', 'role': False, 'members': [],
         'create': "CREATE USER `app_rw`@`%` IDENTIFIED WITH 'caching_sha2_password' REQUIRE NONE PASSWORD EXPIRE "
                   "ACCOUNT LOCK",
         'grants': ['GRANT SELECT, INSERT ON `shop`.* TO `app_rw`@`%`']},
        {'user': 'ops', 'host': '%', 'role': False, 'members': [],
         'create': "CREATE USER `ops`@`%` IDENTIFIED WITH 'caching_sha2_password' AS 0x2442 REQUIRE NONE",
         'grants': ['GRANT SELECT, INSERT ON *.* TO `ops`@`%`', 'REVOKE INSERT ON `mysql`.* FROM `ops`@`%`']},
    ]
    (tmp_path / mb.ACCOUNTS_FILE).write_text(json.dumps({'accounts': accounts}))
    engine = _FakeMysql8Restore(existing={('audit', '%')})
    dumps = [{'database': 'shop', 'accounts': [['app', '%'], ['app_rw', '%'], ['ops', '%']]}]
    state = engine.restore_accounts(dumps, {'roles': 'create'}, str(tmp_path), [])
    assert engine.ran == [
        "CREATE USER `app`@`%` IDENTIFIED WITH 'caching_sha2_password' AS 0x2441 REQUIRE NONE PASSWORD EXPIRE "
        "DEFAULT ACCOUNT UNLOCK",
        "CREATE USER `app_rw`@`%` IDENTIFIED WITH 'caching_sha2_password' REQUIRE NONE PASSWORD EXPIRE ACCOUNT LOCK",
        "CREATE USER `ops`@`%` IDENTIFIED WITH 'caching_sha2_password' AS 0x2442 REQUIRE NONE",
        'GRANT USAGE ON *.* TO `app`@`%`',
        'GRANT `app_rw`@`%` TO `app`@`%`',
        'GRANT `audit`@`%` TO `app`@`%`',
        'GRANT SELECT, INSERT ON `shop`.* TO `app_rw`@`%`',
        'GRANT SELECT, INSERT ON *.* TO `ops`@`%`',
        'REVOKE INSERT ON `mysql`.* FROM `ops`@`%`',
        "ALTER USER 'app'@'%' DEFAULT ROLE 'app_rw'@'%', 'audit'@'%'",
    ]
    assert [a['user'] for a in state['created']] == ['app', 'app_rw', 'ops']


@pytest.mark.parametrize('statement, expected', [
    ('GRANT `app_read`@`%`,`app_write`@`%` TO `rw_user1`@`localhost`',
     ['GRANT `app_read`@`%` TO `rw_user1`@`localhost`', 'GRANT `app_write`@`%` TO `rw_user1`@`localhost`']),
    ('GRANT `a, b`@`%`, `c`@`%` TO `u`@`%` WITH ADMIN OPTION',
     ['GRANT `a, b`@`%` TO `u`@`%` WITH ADMIN OPTION', 'GRANT `c`@`%` TO `u`@`%` WITH ADMIN OPTION']),
    ('GRANT `r1`@`%` TO `u`@`%`', ['GRANT `r1`@`%` TO `u`@`%`']),
    ('GRANT SELECT, INSERT ON *.* TO `u`@`%`', ['GRANT SELECT, INSERT ON *.* TO `u`@`%`']),
    ('REVOKE INSERT ON `mysql`.* FROM `u`@`%`', ['REVOKE INSERT ON `mysql`.* FROM `u`@`%`']),
])
def test_split_role_grant(statement, expected):
    assert mb.split_role_grant(statement) == expected
