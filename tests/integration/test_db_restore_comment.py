# -*- coding: utf-8 -*-
"""A logical restore keeps the source database's comment and still records which backup the target holds.

The restore marker used to be written as the whole database comment, so the restored database lost the
comment its source had. Now: PostgreSQL keeps the marker in the database setting dbops.restored_from (a
login that is not superuser: a trailer of the comment), MariaDB in a trailer appended to the comment. A
database restored by an older release (the whole comment is the marker) is still recognised.
"""

from __future__ import annotations

import json
import os
import shutil

import pytest

from modrun import run_module
from servers import make_workdir

from ansible_collections.dbops.admin.plugins.module_utils import _restore_comment as rc


@pytest.fixture
def workdir(server):
    path = make_workdir('dbops-rcomment-', server.user if os.geteuid() == 0 else None)
    yield path
    shutil.rmtree(path, ignore_errors=True)


def _backup(server, repo, database):
    res = run_module('db_backup', dict(server.conn, repo=repo, databases=[database]))
    assert res['failed'] is False, res
    return res['backup']['id']


def _restore(server, repo, check=False, **kw):
    return run_module('db_restore', dict(server.conn, repo=repo, **kw), check=check)


# ---- PostgreSQL ------------------------------------------------------------------------------------
def _pg_comment(server, database):
    return server.psql("SELECT shobj_description(oid, 'pg_database') FROM pg_database WHERE datname = '%s'" % database)


def _pg_setting(server, database):
    return server.psql("SELECT coalesce(array_to_string(s.setconfig, E'\\n'), '') FROM pg_db_role_setting s "
                       "JOIN pg_database d ON d.oid = s.setdatabase WHERE s.setrole = 0 AND d.datname = '%s'" % database)


@pytest.mark.parametrize('server', ['postgresql'], indirect=True)
def test_postgresql_restore_keeps_the_comment_and_records_the_backup(server, workdir):
    repo = os.path.join(workdir, 'repo')
    server.psql('DROP DATABASE IF EXISTS rc_shop')
    server.psql('CREATE DATABASE rc_shop')
    server.psql("COMMENT ON DATABASE rc_shop IS 'orders of the shop; it''s kept'")
    server.psql('CREATE TABLE t (id int); INSERT INTO t VALUES (1), (2)', 'rc_shop')
    bid = _backup(server, repo, 'rc_shop')
    try:
        dry = _restore(server, repo, check=True, target_database='rc_copy')
        assert dry['failed'] is False and dry['changed'] is True, dry
        assert not server.psql("SELECT 1 FROM pg_database WHERE datname = 'rc_copy'")
        out = _restore(server, repo, target_database='rc_copy')
        assert out['failed'] is False and out['changed'] is True, out
        assert _pg_comment(server, 'rc_copy') == "orders of the shop; it's kept"
        setting = _pg_setting(server, 'rc_copy')
        assert setting.startswith(rc.SETTING + '='), setting
        assert rc.decode(setting.split('=', 1)[1])['backup_id'] == bid
        # the same restore again: unchanged, nothing touched
        again = _restore(server, repo, target_database='rc_copy')
        assert again['failed'] is False and again['changed'] is False, again

        # a database restored by an older release: the whole comment is the marker, no setting
        old = {'backup_id': bid, 'source_database': 'rc_shop', 'target_position': None, 'target_time': None}
        server.psql('ALTER DATABASE rc_copy RESET %s' % rc.SETTING)
        server.psql("COMMENT ON DATABASE rc_copy IS 'dbops.admin restore: %s'" % json.dumps(old, sort_keys=True))
        again = _restore(server, repo, target_database='rc_copy')
        assert again['failed'] is False and again['changed'] is False, again

        # a backup of the restored database (it carries the setting), restored by a login that is not superuser:
        # the setting is not copied (only a superuser may set it), the marker goes into a trailer of the comment
        server.psql("COMMENT ON DATABASE rc_copy IS 'the copy'")
        server.psql("ALTER DATABASE rc_copy SET %s TO '{\"backup_id\": \"earlier\"}'" % rc.SETTING)
        bid2 = _backup(server, repo, 'rc_copy')
        server.psql("DROP ROLE IF EXISTS rc_restorer; CREATE ROLE rc_restorer LOGIN CREATEDB PASSWORD 'Rc-pw-1'")
        login = dict(server.conn, login_user='rc_restorer', login_password='Rc-pw-1')
        kw = dict(backup_id=bid2, target_database='rc_by_user', roles='skip')
        out = run_module('db_restore', dict(login, repo=repo, **kw))
        assert out['failed'] is False and out['changed'] is True, out
        head, held = rc.split(_pg_comment(server, 'rc_by_user'))
        assert head == 'the copy' and held['backup_id'] == bid2 and held['source_database'] == 'rc_copy', held
        assert _pg_setting(server, 'rc_by_user') == ''
        again = run_module('db_restore', dict(login, repo=repo, **kw))
        assert again['failed'] is False and again['changed'] is False, again
        assert server.psql('SELECT count(*) FROM t', 'rc_by_user') == '2'
    finally:
        for name in ('rc_shop', 'rc_copy', 'rc_by_user'):
            server.psql('DROP DATABASE IF EXISTS %s WITH (FORCE)' % name)
        server.psql('DROP ROLE IF EXISTS rc_restorer')


# ---- MariaDB ---------------------------------------------------------------------------------------
def _my_comment(server, database):
    rows = server.sql("SELECT SCHEMA_COMMENT FROM information_schema.SCHEMATA WHERE SCHEMA_NAME = '%s'" % database)
    return rows[0][0] if rows else None


@pytest.mark.parametrize('server', ['mariadb'], indirect=True)
def test_mariadb_restore_keeps_the_comment_and_appends_the_marker(server, workdir):
    repo = os.path.join(workdir, 'repo')
    for name in ('rc_shop', 'rc_copy', 'rc_long', 'rc_long_copy', 'rc_full', 'rc_full_copy'):
        server.sql('DROP DATABASE IF EXISTS %s' % name)
    server.sql("CREATE DATABASE rc_shop COMMENT 'orders of the shop; it''s kept'")
    server.sql('CREATE TABLE rc_shop.t (id int PRIMARY KEY)')
    server.sql('INSERT INTO rc_shop.t VALUES (1), (2)')
    bid = _backup(server, repo, 'rc_shop')
    try:
        out = _restore(server, repo, databases=['rc_shop'], target_database='rc_copy')
        assert out['failed'] is False and out['changed'] is True, out
        head, held = rc.split(_my_comment(server, 'rc_copy'))
        assert head == "orders of the shop; it's kept"
        assert held['backup_id'] == bid and held['source_database'] == 'rc_shop', held
        again = _restore(server, repo, databases=['rc_shop'], target_database='rc_copy')
        assert again['failed'] is False and again['changed'] is False, again

        # restored over the existing source (force): its own comment stays, once, with the marker
        forced = _restore(server, repo, databases=['rc_shop'], force=True)
        assert forced['failed'] is False and forced['changed'] is True, forced
        assert rc.split(_my_comment(server, 'rc_shop'))[0] == "orders of the shop; it's kept"
        assert _my_comment(server, 'rc_shop').count(rc.PREFIX) == 1

        # a database restored by an older release: the whole comment is the marker
        old = {'backup_id': bid, 'source_database': 'rc_shop', 'target_position': None, 'target_time': None}
        server.sql("ALTER DATABASE rc_copy COMMENT 'dbops.admin restore: %s'"
                   % json.dumps(old, sort_keys=True, separators=(',', ':')))
        again = _restore(server, repo, databases=['rc_shop'], target_database='rc_copy')
        assert again['failed'] is False and again['changed'] is False, again

        # a comment too long for it and the full marker: kept whole, a short marker, still idempotent
        long_comment = 'L' * 900
        server.sql("CREATE DATABASE rc_long COMMENT '%s'" % long_comment)
        server.sql('CREATE TABLE rc_long.t (id int PRIMARY KEY)')
        bid_long = _backup(server, repo, 'rc_long')
        out = _restore(server, repo, backup_id=bid_long, target_database='rc_long_copy')
        assert out['failed'] is False and out['changed'] is True, out
        head, held = rc.split(_my_comment(server, 'rc_long_copy'))
        assert head == long_comment and set(held) == {'sha256'}, held
        again = _restore(server, repo, backup_id=bid_long, target_database='rc_long_copy')
        assert again['failed'] is False and again['changed'] is False, again

        # a comment that leaves no room for any marker: kept whole, and a warning says what to do
        server.sql("CREATE DATABASE rc_full COMMENT '%s'" % ('F' * 1024))
        server.sql('CREATE TABLE rc_full.t (id int PRIMARY KEY)')
        bid_full = _backup(server, repo, 'rc_full')
        out = _restore(server, repo, backup_id=bid_full, target_database='rc_full_copy')
        assert out['failed'] is False and out['changed'] is True, out
        assert _my_comment(server, 'rc_full_copy') == 'F' * 1024
        warnings = json.dumps(out.get('warnings') or [])   # ansible-core 2.19: structured warning events
        assert 'restoring rc_full_copy: its comment (1024 bytes in UTF-8) was kept' in warnings, warnings
        assert "Shorten the source database's comment to" in warnings, warnings
    finally:
        for name in ('rc_shop', 'rc_copy', 'rc_long', 'rc_long_copy', 'rc_full', 'rc_full_copy'):
            server.sql('DROP DATABASE IF EXISTS %s' % name)
