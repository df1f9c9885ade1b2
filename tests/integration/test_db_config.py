# -*- coding: utf-8 -*-
"""db_config against real servers: check mode, change, idempotence, units, bad input, restarts."""

from __future__ import annotations

import time

import pytest
from modrun import run_module
from servers import MariadbServer, PostgresServer

from ansible_collections.dbops.admin.plugins.module_utils._engines import mysql_settings

CASES = {
    'postgresql': {
        'settings': {'work_mem': '12MB', 'jit': 'off', 'log_min_duration_statement': '250ms'},
        'equivalent': {'work_mem': '12288kB', 'jit': False, 'log_min_duration_statement': 250},
        'expected': {'work_mem': '12MB', 'jit': 'off', 'log_min_duration_statement': '250ms'},
        'bad_value': {'work_mem': '12 parsecs'},
        'statement': 'ALTER SYSTEM SET "work_mem" = \'12MB\'',
    },
    'mysql': {
        'settings': {'max_allowed_packet': '32M', 'slow_query_log': 'on', 'concurrent_insert': 'always'},
        'equivalent': {'max_allowed_packet': 33554432, 'slow-query-log': 1, 'concurrent_insert': 'ALWAYS'},
        'expected': {'max_allowed_packet': '33554432', 'slow_query_log': 'ON', 'concurrent_insert': 'ALWAYS'},
        'bad_value': {'concurrent_insert': 'sometimes'},
        'statement': 'SET GLOBAL `max_allowed_packet` = 33554432',
    },
}


def server_values(server, names):
    """What a fresh session sees: the catalog, not the module's word."""
    names = [n.replace('-', '_') for n in names]
    if server.engine == 'postgresql':
        conn = server.connect()
        try:
            with conn.cursor() as cur:
                cur.execute('SELECT name, current_setting(name) FROM pg_settings WHERE name = ANY(%s)', (names,))
                return dict(cur.fetchall())
        finally:
            conn.close()
    marks = ', '.join(['%s'] * len(names))
    conn = server.connect()
    try:
        with conn.cursor() as cur:
            cur.execute('SELECT LOWER(VARIABLE_NAME), VARIABLE_VALUE FROM information_schema.GLOBAL_VARIABLES '
                        'WHERE LOWER(VARIABLE_NAME) IN (%s)' % marks, names)
            return dict(cur.fetchall())
    finally:
        conn.close()


def wait_for_values(server, expected, timeout=10):
    """A reload reaches new sessions within moments; poll instead of sleeping blindly."""
    deadline = time.time() + timeout
    while True:
        current = server_values(server, list(expected))
        if current == expected or time.time() > deadline:
            return current
        time.sleep(0.2)


@pytest.fixture
def restore_settings(server):
    names = set()
    for case in CASES.values():
        names.update(case['settings'])
    original = server_values(server, [n for n in names])
    yield
    if server.engine == 'postgresql':
        conn = server.connect()
        with conn.cursor() as cur:
            for name in CASES['postgresql']['settings']:
                cur.execute('ALTER SYSTEM RESET %s' % name)
            cur.execute('SELECT pg_reload_conf()')
        conn.close()
    else:
        conn = server.connect()
        with conn.cursor() as cur:
            for name in CASES['mysql']['settings']:
                value = original[name]
                cur.execute('SET GLOBAL %s = %%s' % name, (int(value) if value.isdigit() else value,))
        conn.close()


def test_rhythm_check_real_rerun_equivalent(server, restore_settings):
    case = CASES[server.engine]
    names = list(case['expected'])
    before = server_values(server, names)
    assert all(before[n] != case['expected'][n] for n in names), 'the test needs values that differ at first'

    # check mode: the statements are shown, nothing changes
    result = run_module('db_config', dict(server.conn, settings=case['settings']), check=True, diff=True)
    assert not result['failed'], result.get('msg')
    assert result['changed'] is True
    assert case['statement'] in result['queries']
    assert set(result['diff']['before']) == set(names)
    assert result['diff']['after'] != result['diff']['before']
    assert server_values(server, names) == before

    # real run: changed, and a new session sees the new values
    result = run_module('db_config', dict(server.conn, settings=case['settings']), diff=True)
    assert not result['failed'], result.get('msg')
    assert result['changed'] is True
    assert result['restart_required'] is False
    assert result['pending_restart'] == [] or not set(result['pending_restart']) & set(names)
    for name in names:
        assert result['settings'][name]['changed'] is True
        assert result['settings'][name]['pending_restart'] is False
    assert wait_for_values(server, case['expected']) == case['expected']

    # second run: unchanged, no statement
    result = run_module('db_config', dict(server.conn, settings=case['settings']))
    assert result['changed'] is False, result['settings']
    assert not [q for q in result['queries'] if 'SET' in q]

    # the same values in other units and spellings: unchanged
    result = run_module('db_config', dict(server.conn, settings=case['equivalent']))
    assert not result['failed'], result.get('msg')
    assert result['changed'] is False, result['settings']
    assert server_values(server, names) == case['expected']


def test_unknown_name_fails_and_changes_nothing(server, restore_settings):
    good = 'work_mem' if server.engine == 'postgresql' else 'max_allowed_packet'
    before = server_values(server, [good])
    settings = {good: '48MB' if server.engine == 'postgresql' else '48M', 'no_such_setting_x': 1}
    result = run_module('db_config', dict(server.conn, settings=settings))
    assert result['failed'] is True
    assert 'no_such_setting_x' in result['msg']
    assert 'unknown' in result['msg']
    assert result['queries'] == []
    assert server_values(server, [good]) == before


def test_invalid_value_fails_and_changes_nothing(server, restore_settings):
    case = CASES[server.engine]
    name = list(case['bad_value'])[0]
    other = [n for n in case['expected'] if n != name][0]
    before = server_values(server, [name, other])
    settings = dict(case['bad_value'])
    settings[other] = case['settings'][other]         # a valid one in the same call is not applied either
    result = run_module('db_config', dict(server.conn, settings=settings))
    assert result['failed'] is True
    assert 'invalid value' in result['msg'] and name in result['msg']
    assert result['queries'] == []
    assert server_values(server, [name, other]) == before


def test_out_of_range_value_fails_with_the_limit(server):
    name = 'work_mem' if server.engine == 'postgresql' else 'max_connections'
    value = '1kB' if server.engine == 'postgresql' else 1
    result = run_module('db_config', dict(server.conn, settings={name: value}))
    assert result['failed'] is True
    assert 'below the minimum' in result['msg']


def test_fixed_setting_is_refused_on_postgresql(pg_server):
    result = run_module('db_config', dict(pg_server.conn, settings={'block_size': 16384}))
    assert result['failed'] is True
    assert 'block_size' in result['msg'] and 'cannot be changed' in result['msg']


def test_empty_settings_is_refused(server):
    result = run_module('db_config', dict(server.conn, settings={}))
    assert result['failed'] is True
    assert 'settings is empty' in result['msg']


def test_postgresql_restart_only_setting_is_pending_until_restart():
    server = PostgresServer().init().start()
    try:
        before = server_values(server, ['shared_buffers'])['shared_buffers']
        assert before == '64MB'
        args = dict(server.conn, settings={'shared_buffers': '96MB'})

        result = run_module('db_config', args, check=True)
        assert result['changed'] is True and result['restart_required'] is True
        assert 'shared_buffers' in result['pending_restart']
        assert server.psql("SELECT count(*) FROM pg_file_settings WHERE setting = '96MB'") == '0'

        result = run_module('db_config', args)
        assert result['changed'] is True
        assert result['restart_required'] is True
        assert result['pending_restart'] == ['shared_buffers']
        assert result['settings']['shared_buffers']['context'] == 'postmaster'
        # the server itself flags it once the reload is processed, and still runs with the old value
        deadline = time.time() + 10
        while server.psql("SELECT pending_restart FROM pg_settings WHERE name = 'shared_buffers'") != 't':
            assert time.time() < deadline, 'pg_settings.pending_restart never set'
            time.sleep(0.2)
        assert server_values(server, ['shared_buffers'])['shared_buffers'] == before

        result = run_module('db_config', args)
        assert result['changed'] is False
        assert result['restart_required'] is True           # still true: the server has not restarted

        server.stop()
        server.start()
        assert server_values(server, ['shared_buffers'])['shared_buffers'] == '96MB'
        result = run_module('db_config', dict(server.conn, settings={'shared_buffers': '98304kB'}))
        assert result['changed'] is False
        assert result['restart_required'] is False
        assert result['pending_restart'] == []
    finally:
        server.destroy()


def test_mariadb_option_file_block_is_written_once_and_kept_apart(mariadb_server, tmp_path):
    cnf = tmp_path / 'dbops.cnf'
    cnf.write_text('[mariadbd]\n# the DBA wrote this\nmax_connections = 151\n')
    original = server_values(mariadb_server, ['wait_timeout'])['wait_timeout']
    args = dict(mariadb_server.conn, option_file=str(cnf), settings={'wait_timeout': 3600})
    try:
        result = run_module('db_config', args, check=True)
        assert result['changed'] is True and result['option_file']['changed'] is True
        assert mysql_settings.BLOCK_BEGIN not in cnf.read_text()

        result = run_module('db_config', args)
        assert result['changed'] is True
        text = cnf.read_text()
        assert text.startswith('[mariadbd]\n# the DBA wrote this\nmax_connections = 151\n')
        assert mysql_settings.read_managed_block(text) == {'wait_timeout': '3600'}
        assert '[mariadbd]' in text.split(mysql_settings.BLOCK_BEGIN, 1)[1]
        assert server_values(mariadb_server, ['wait_timeout'])['wait_timeout'] == '3600'

        result = run_module('db_config', args)
        assert result['changed'] is False
        assert cnf.read_text() == text

        # a second variable joins the same block; the first stays
        result = run_module('db_config', dict(args, settings={'wait_timeout': '3600', 'net_read_timeout': 60}))
        assert result['option_file']['changed'] is True
        assert mysql_settings.read_managed_block(cnf.read_text()) == {'wait_timeout': '3600', 'net_read_timeout': '60'}
        assert cnf.read_text().count(mysql_settings.BLOCK_BEGIN) == 1

        # already the running value but not yet in the file: a change to the file only, no SET GLOBAL
        running = server_values(mariadb_server, ['max_connections'])['max_connections']
        result = run_module('db_config', dict(args, settings={'max_connections': int(running)}))
        assert result['changed'] is True
        assert result['queries'] == []
        assert mysql_settings.read_managed_block(cnf.read_text())['max_connections'] == running
        assert run_module('db_config', dict(args, settings={'max_connections': int(running)}))['changed'] is False
    finally:
        mariadb_server.sql('SET GLOBAL wait_timeout = %d' % int(original))


def test_mariadb_unwritable_option_file_fails_before_set_global(mariadb_server, tmp_path):
    """The running value used to be changed by SET GLOBAL before the option file write failed."""
    original = server_values(mariadb_server, ['wait_timeout'])['wait_timeout']
    wanted = int(original) + 17
    for path, words in ((tmp_path / 'missing' / 'dbops.cnf', 'does not exist'), (tmp_path, 'is a directory')):
        result = run_module('db_config', dict(mariadb_server.conn, option_file=str(path),
                                              settings={'wait_timeout': wanted}))
        assert result['failed'] is True
        assert words in result['msg'] and 'option file' in result['msg']
        assert result['queries'] == []
        assert server_values(mariadb_server, ['wait_timeout'])['wait_timeout'] == original
    assert not (tmp_path / 'missing').exists()


def test_mariadb_restart_only_variable_needs_the_option_file_and_a_restart():
    server = MariadbServer().init().start()
    try:
        name = 'innodb_log_buffer_size'
        before = server_values(server, [name])[name]
        result = run_module('db_config', dict(server.conn, settings={name: '32M'}))
        assert result['failed'] is True
        assert 'not dynamic' in result['msg'] and 'option_file' in result['msg']

        args = dict(server.conn, option_file=server.cnf, settings={name: '32M'})
        result = run_module('db_config', args)
        assert not result['failed'], result.get('msg')
        assert result['changed'] is True
        assert result['restart_required'] is True
        assert result['pending_restart'] == [name]
        assert not [q for q in result['queries'] if name in q]      # no SET GLOBAL for a read-only variable
        assert server_values(server, [name])[name] == before

        result = run_module('db_config', args)
        assert result['changed'] is False and result['restart_required'] is True

        server.stop()
        server.start()
        assert server_values(server, [name])[name] == str(32 * 1024 * 1024)
        result = run_module('db_config', dict(args, settings={name: 33554432}))
        assert result['changed'] is False
        assert result['restart_required'] is False and result['pending_restart'] == []
    finally:
        server.destroy()


def test_managed_block_text_round_trip():
    text = '[client]\nport = 3306\n'
    first = mysql_settings.write_managed_block(text, {'max_connections': '300'}, 'mariadbd')
    assert first.startswith(text)
    second = mysql_settings.write_managed_block(first + '[mysqldump]\nquick\n', {'max_connections': '400'}, 'mariadbd')
    assert mysql_settings.read_managed_block(second) == {'max_connections': '400'}
    assert second.endswith('[mysqldump]\nquick\n')                 # lines after the block survive
    assert second.count(mysql_settings.BLOCK_BEGIN) == 1
    assert mysql_settings.option_text('a b', 'string') == '"a b"'
    assert mysql_settings.read_managed_block(
        mysql_settings.write_managed_block('', {'init_connect': '"SET NAMES utf8mb4"'}, 'mariadbd')
    ) == {'init_connect': 'SET NAMES utf8mb4'}


class FakeMysql8(mysql_settings.MysqlSettings):
    """A MySQL 8 engine without a server: the catalog is given, statements are recorded."""

    flavor = 'mysql'
    is_mariadb = False
    check_mode = True

    def __init__(self, catalog):
        self.catalog = catalog
        self.queries = []

    def fetch_all(self, sql, params=None, operation=None):
        assert 'performance_schema.global_variables' in sql
        return [dict(name=n, value=v[0], persisted=v[1]) for n, v in self.catalog.items() if n in params]

    def quote_ident(self, name):
        return '`%s`' % name

    def execute(self, sql, params=None, operation=None):
        self.queries.append(sql % tuple(params))


def test_mysql8_persists_with_set_persist_and_compares_persisted_values():
    engine = FakeMysql8({'max_connections': ('151', None), 'innodb_buffer_pool_size': ('134217728', '134217728')})
    plan = engine.plan_settings({'max_connections': 300, 'innodb_buffer_pool_size': '128M'})
    by_name = {e['name']: e for e in plan}
    assert by_name['max_connections']['change'] is True
    assert by_name['innodb_buffer_pool_size']['change'] is False      # already persisted with that value
    engine.apply_settings(plan)
    assert engine.queries == ['SET PERSIST `max_connections` = 300']
    # running value right but never persisted: persist it
    engine = FakeMysql8({'max_connections': ('300', None)})
    plan = engine.plan_settings({'max_connections': 300})
    assert plan[0]['change'] is True


def test_postgresql_list_setting_keeps_its_elements(pg_server):
    """search_path is a list of names: 'a, b' must not become the single name "a, b"."""
    value = '"$user", public, dbops_cfg_absent'
    try:
        result = run_module('db_config', dict(pg_server.conn, settings={'search_path': value}))
        assert not result['failed'], result.get('msg')
        assert result['changed'] is True
        assert "ALTER SYSTEM SET \"search_path\" = '$user', 'public', 'dbops_cfg_absent'" in result['queries']
        assert wait_for_values(pg_server, {'search_path': value}) == {'search_path': value}
        # the same list, spelled as a YAML list or without spaces: unchanged
        for same in (['$user', 'public', 'dbops_cfg_absent'], '"$user",public,dbops_cfg_absent'):
            result = run_module('db_config', dict(pg_server.conn, settings={'search_path': same}))
            assert result['changed'] is False, result['settings']
    finally:
        pg_server.psql('ALTER SYSTEM RESET search_path')
        pg_server.psql('SELECT pg_reload_conf()')


def test_postgresql_yaml_list_with_quoted_element_is_not_a_literal_name(pg_server):
    """search_path: ['"$user"', public] is how a DBA writes it: the quotes are quoting, not part of the name."""
    try:
        wanted = ['"$user"', 'public', '"Dbops Quoted"']
        result = run_module('db_config', dict(pg_server.conn, settings={'search_path': wanted}))
        assert not result['failed'], result.get('msg')
        assert "ALTER SYSTEM SET \"search_path\" = '$user', 'public', 'Dbops Quoted'" in result['queries']
        shown = '"$user", public, "Dbops Quoted"'
        assert wait_for_values(pg_server, {'search_path': shown}) == {'search_path': shown}
        result = run_module('db_config', dict(pg_server.conn, settings={'search_path': shown}))
        assert result['changed'] is False, result['settings']
    finally:
        pg_server.psql('ALTER SYSTEM RESET search_path')
        pg_server.psql('SELECT pg_reload_conf()')


def test_postgresql_mixed_case_setting_names(pg_server):
    """pg_settings spells TimeZone and DateStyle in mixed case; any spelling must be found."""
    try:
        for name in ('timezone', 'TimeZone'):
            result = run_module('db_config', dict(pg_server.conn, settings={name: 'Europe/Paris'}), check=True)
            assert not result['failed'], result.get('msg')
            assert result['changed'] is True
        result = run_module('db_config', dict(pg_server.conn, settings={'timezone': 'Europe/Paris',
                                                                        'datestyle': 'ISO, DMY'}))
        assert not result['failed'], result.get('msg')
        assert result['changed'] is True
        conn = pg_server.connect()
        try:
            with conn.cursor() as cur:
                cur.execute("SELECT current_setting('TimeZone'), current_setting('DateStyle')")
                assert cur.fetchone() == ('Europe/Paris', 'ISO, DMY')
        finally:
            conn.close()
        result = run_module('db_config', dict(pg_server.conn, settings={'TimeZone': 'Europe/Paris',
                                                                        'DateStyle': 'ISO, DMY'}))
        assert result['changed'] is False, result['settings']
    finally:
        pg_server.psql('ALTER SYSTEM RESET timezone')
        pg_server.psql('ALTER SYSTEM RESET datestyle')
        pg_server.psql('SELECT pg_reload_conf()')


def _auto_conf(server):
    with open('%s/postgresql.auto.conf' % server.data_dir) as handle:
        return handle.read()


def test_postgresql_value_the_server_refuses_writes_nothing_else(pg_server):
    """ALTER SYSTEM ran for work_mem, then failed on the time zone: work_mem stayed written, unreported."""
    before = _auto_conf(pg_server)
    for check in (True, False):
        result = run_module('db_config', dict(pg_server.conn, settings={'work_mem': '40MB',
                                                                        'timezone': 'Mars/Olympus'}), check=check)
        assert result['failed'] is True
        assert 'timezone' in result['msg'] and 'Mars/Olympus' in result['msg']
        assert result['queries'] == []
    assert _auto_conf(pg_server) == before


def test_postgresql_login_without_alter_system_privilege_is_refused_first(pg_server):
    user, password = 'dbcfg_plain', 'Cfg-Plain-Pw-5'
    pg_server.psql("CREATE ROLE %s LOGIN PASSWORD '%s'" % (user, password))
    before = _auto_conf(pg_server)
    try:
        result = run_module('db_config', dict(pg_server.conn, login_user=user, login_password=password,
                                              settings={'work_mem': '40MB', 'log_min_duration_statement': '5s'}))
        assert result['failed'] is True
        assert 'ALTER SYSTEM privilege' in result['msg'] and 'work_mem' in result['msg']
        assert password not in result['msg'] and result['queries'] == []
        assert _auto_conf(pg_server) == before
        # with the privilege (PostgreSQL 15), a superuser-context setting it may not SET in a session is fine
        pg_server.psql('GRANT ALTER SYSTEM ON PARAMETER log_min_duration_statement TO %s' % user)
        args = dict(pg_server.conn, login_user=user, login_password=password,
                    settings={'log_min_duration_statement': '5s'})
        # ... but not pg_reload_conf(): refused before ALTER SYSTEM, not after
        result = run_module('db_config', args)
        assert result['failed'] is True and 'pg_reload_conf' in result['msg'] and result['queries'] == []
        assert _auto_conf(pg_server) == before
        result = run_module('db_config', dict(args, reload=False))
        assert not result['failed'], result.get('msg')
        assert "log_min_duration_statement = '5s'" in _auto_conf(pg_server)
    finally:
        pg_server.psql('ALTER SYSTEM RESET log_min_duration_statement')
        pg_server.psql('SELECT pg_reload_conf()')
        pg_server.psql('REVOKE ALTER SYSTEM ON PARAMETER log_min_duration_statement FROM %s' % user)
        pg_server.psql('DROP ROLE %s' % user)


def test_postgresql_setting_removed_from_the_files_but_not_reloaded(pg_server):
    """ALTER SYSTEM RESET without a reload: the running 40MB is about to go, so asking for 40MB is a change."""
    try:
        pg_server.psql("ALTER SYSTEM SET work_mem = '40MB'")
        pg_server.psql('SELECT pg_reload_conf()')
        assert wait_for_values(pg_server, {'work_mem': '40MB'}) == {'work_mem': '40MB'}
        pg_server.psql('ALTER SYSTEM RESET work_mem')
        result = run_module('db_config', dict(pg_server.conn, settings={'work_mem': '40MB'}), diff=True)
        assert not result['failed'], result.get('msg')
        assert result['changed'] is True
        assert result['settings']['work_mem']['before'] == '4MB'
        assert "ALTER SYSTEM SET \"work_mem\" = '40MB'" in result['queries']
        assert "work_mem = '40MB'" in _auto_conf(pg_server)
        result = run_module('db_config', dict(pg_server.conn, settings={'work_mem': '40MB'}))
        assert result['changed'] is False, result['settings']
    finally:
        pg_server.psql('ALTER SYSTEM RESET work_mem')
        pg_server.psql('SELECT pg_reload_conf()')


def test_list_setting_parsing():
    from ansible_collections.dbops.admin.plugins.module_utils._engines import postgresql_settings as pgs
    assert pgs.split_list_setting('"$user", public') == ('$user', 'public')
    assert pgs.split_list_setting('"a,b", c') == ('a,b', 'c')
    assert pgs.split_list_setting('"say ""hi"""') == ('say "hi"',)
    assert pgs.split_list_setting('') == ()
    assert pgs.render_list_setting(('$user', 'public', 'Mixed')) == '"$user", public, "Mixed"'


def test_postgresql_role_default_is_not_the_server_value(pg_server):
    """ALTER ROLE ... SET gives the login's sessions their own value: db_config compares with the server's."""
    user, password = 'dbcfg_sess', 'Cfg-Sess-Pw-8'
    pg_server.psql("CREATE ROLE %s LOGIN SUPERUSER PASSWORD '%s'" % (user, password))
    pg_server.psql("ALTER ROLE %s SET statement_timeout = '90s'" % user)
    args = dict(pg_server.conn, login_user=user, login_password=password, settings={'statement_timeout': '90s'})
    try:
        result = run_module('db_config', args, check=True, diff=True)
        assert not result['failed'], result.get('msg')
        assert result['changed'] is True
        assert result['settings']['statement_timeout']['before'] == '0'
        assert result['queries'] == ["ALTER SYSTEM SET \"statement_timeout\" = '90s'", 'SELECT pg_reload_conf()']
        assert "statement_timeout" not in _auto_conf(pg_server)
        result = run_module('db_config', args)
        assert not result['failed'], result.get('msg')
        assert result['changed'] is True
        assert wait_for_values(pg_server, {'statement_timeout': '90s'}) == {'statement_timeout': '90s'}
        result = run_module('db_config', args)
        assert result['changed'] is False, result['settings']
    finally:
        pg_server.psql('ALTER SYSTEM RESET statement_timeout')
        pg_server.psql('SELECT pg_reload_conf()')
        pg_server.psql('DROP ROLE %s' % user)


def test_postgresql_written_but_not_reloaded_is_reloaded_by_the_next_run(pg_server):
    """reload: false wrote the value and left the server on the old one: the next run with reload: true
    (the default) makes it take effect, and says so; with reload: false it stays no change."""
    args = dict(pg_server.conn, settings={'work_mem': '21MB'})
    try:
        result = run_module('db_config', dict(args, reload=False))
        assert not result['failed'], result.get('msg')
        assert result['queries'] == ["ALTER SYSTEM SET \"work_mem\" = '21MB'"]
        running = server_values(pg_server, ['work_mem'])['work_mem']
        assert running != '21MB'
        result = run_module('db_config', dict(args, reload=False))
        assert result['changed'] is False and result['queries'] == []
        result = run_module('db_config', args, check=True, diff=True)
        assert not result['failed'], result.get('msg')
        assert result['changed'] is True
        assert result['queries'] == ['SELECT pg_reload_conf()']
        assert result['diff']['before']['work_mem'] == running
        assert result['diff']['after']['work_mem'] == '21MB'
        assert server_values(pg_server, ['work_mem'])['work_mem'] == running
        result = run_module('db_config', args)
        assert not result['failed'], result.get('msg')
        assert result['changed'] is True and result['queries'] == ['SELECT pg_reload_conf()']
        assert wait_for_values(pg_server, {'work_mem': '21MB'}) == {'work_mem': '21MB'}
        result = run_module('db_config', args)
        assert result['changed'] is False and result['queries'] == [], result['settings']
    finally:
        pg_server.psql('ALTER SYSTEM RESET work_mem')
        pg_server.psql('SELECT pg_reload_conf()')


def test_mariadb_flag_set_compares_the_flags_given(mariadb_server, tmp_path):
    """optimizer_switch takes some flags and keeps the others: 'mrr=on' was compared with the whole
    switch, so every run set it again ("changed") and warned that the server had adjusted it."""
    original = server_values(mariadb_server, ['optimizer_switch'])['optimizer_switch']
    flip = 'off' if 'mrr=on' in original.split(',') else 'on'
    option_file = str(tmp_path / 'flags.cnf')
    args = dict(mariadb_server.conn, settings={'optimizer_switch': 'MRR=%s, mrr_sort_keys=off' % flip},
                option_file=option_file)
    try:
        result = run_module('db_config', args, check=True, diff=True)
        assert not result['failed'], result.get('msg')
        assert result['changed'] is True
        assert result['queries'] == ["SET GLOBAL `optimizer_switch` = 'mrr=%s,mrr_sort_keys=off'" % flip]
        assert server_values(mariadb_server, ['optimizer_switch'])['optimizer_switch'] == original
        result = run_module('db_config', args)
        assert not result['failed'], result.get('msg')
        assert result['changed'] is True and not result.get('warnings'), result.get('warnings')
        now = server_values(mariadb_server, ['optimizer_switch'])['optimizer_switch'].split(',')
        assert 'mrr=%s' % flip in now and 'mrr_sort_keys=off' in now
        # the flags not given keep their values
        assert [f for f in now if not f.startswith('mrr=')] == [f for f in original.split(',') if not f.startswith('mrr=')]
        with open(option_file) as handle:
            assert 'optimizer_switch = mrr=%s,mrr_sort_keys=off\n' % flip in handle.read()
        result = run_module('db_config', args)
        assert result['changed'] is False and result['queries'] == [], result['settings']
        result = run_module('db_config', dict(args, settings={'optimizer_switch': 'no_such_flag=on'}))
        assert result['failed'] is True and 'no_such_flag' in result['msg'] and result['queries'] == []
    finally:
        mariadb_server.sql("SET GLOBAL optimizer_switch = '%s'" % original)


def test_mysql8_flag_set_compares_the_flags_given():
    full = 'index_merge=on,mrr=on,mrr_cost_based=on,use_index_extensions=on'
    engine = FakeMysql8({'optimizer_switch': (full, full)})
    plan = engine.plan_settings({'optimizer_switch': 'mrr=on'})
    assert plan[0]['change'] is False
    plan = engine.plan_settings({'optimizer_switch': 'mrr_cost_based=off'})
    assert plan[0]['change'] is True
    engine.apply_settings(plan)
    assert engine.queries == ["SET PERSIST `optimizer_switch` = mrr_cost_based=off"]


def test_mariadb_storage_engine_names_compare_without_case(mariadb_server, tmp_path):
    """The server shows 'InnoDB' whatever the spelling it was given: 'innodb' changed on every run."""
    running = server_values(mariadb_server, ['default_storage_engine'])['default_storage_engine']
    args = dict(mariadb_server.conn, settings={'default_storage_engine': running.lower()},
                option_file=str(tmp_path / 'engine.cnf'))
    result = run_module('db_config', args)
    assert not result['failed'], result.get('msg')
    assert result['queries'] == []      # the running value is already that engine
    assert result['changed'] is True    # written to the option file
    result = run_module('db_config', args)
    assert result['changed'] is False and result['queries'] == [], result['settings']
    result = run_module('db_config', dict(args, settings={'default_storage_engine': running.upper()}))
    assert result['changed'] is False and result['queries'] == [], result['settings']


def test_postgresql_refuses_the_mysql_option_file(pg_server, tmp_path):
    """option_file is MySQL/MariaDB's: on PostgreSQL it fails before anything, in check mode too, instead of
    being ignored (the play would believe the settings were kept in that file)."""
    before = _auto_conf(pg_server)
    running = server_values(pg_server, ['work_mem'])
    cnf = tmp_path / 'dbops.cnf'
    for check in (True, False):
        result = run_module('db_config', dict(pg_server.conn, settings={'work_mem': '44MB'}, option_file=str(cnf)),
                            check=check, diff=True)
        assert result['failed'] is True and result['queries'] == [], result
        assert 'option_file' in result['msg'] and 'MySQL/MariaDB' in result['msg'] and str(cnf) in result['msg']
    assert not cnf.exists()
    assert _auto_conf(pg_server) == before and server_values(pg_server, ['work_mem']) == running


SYSLOG_CAPTURE = '''
import os
import syslog

def _capture(*args):
    with open(os.environ['DBOPS_TEST_SYSLOG'], 'a', encoding='utf-8') as handle:
        handle.write(str(args[-1]) + '\\n')

syslog.syslog = _capture
'''


def test_postgresql_conninfo_password_is_masked_everywhere(pg_server, tmp_path):
    """The password inside primary_conninfo never shows: not in queries, diff, settings, the invocation (returned
    or logged to syslog when the module starts), nor an argument error's invocation."""
    import os
    from modrun import collections_root
    hook = tmp_path / 'hook'
    hook.mkdir()
    (hook / 'sitecustomize.py').write_text(SYSLOG_CAPTURE, encoding='utf-8')
    log = tmp_path / 'syslog.txt'
    env = {'PYTHONPATH': os.pathsep.join([str(hook), collections_root()]), 'DBOPS_TEST_SYSLOG': str(log)}
    secret = 'Conninfo-Secret-31'
    args = dict(pg_server.conn, settings={'primary_conninfo': "host=10.0.0.9 user=rep password='%s'" % secret})
    try:
        outputs = []
        checked = run_module('db_config', args, check=True, diff=True, env=env)
        real = run_module('db_config', args, diff=True, env=env)
        again = run_module('db_config', args, diff=True, env=env)
        bad = run_module('db_config', dict(args, reload='maybe'), env=env)
        uri = run_module('db_config', dict(args, settings={'primary_conninfo': 'postgresql://rep:%s@10.0.0.9/x' % secret}),
                         diff=True, env=env)
        outputs = [checked, real, again, bad, uri]
        assert real['changed'] and not real['failed'], real.get('msg')
        assert checked['diff'] == real['diff'] and checked['queries'] == real['queries']
        assert real['queries'][0] == 'ALTER SYSTEM SET "primary_conninfo" = \'host=10.0.0.9 user=rep password=\'\'********\'\'\''
        assert real['diff']['after']['primary_conninfo'] == "host=10.0.0.9 user=rep password='********'"
        assert again['changed'] is False and again['diff']['before'] == again['diff']['after']
        assert bad['failed'] and 'reload' in bad['msg']
        assert uri['changed'] and not uri['failed'], uri.get('msg')
        logged = log.read_text(encoding='utf-8')
        assert 'Invoked with' in logged and 'primary_conninfo' in logged
        for res in outputs:
            assert secret not in res['_stdout'] + res['_stderr'], res['_stdout']
        assert secret not in logged
        conn = pg_server.connect()
        with conn.cursor() as cur:
            cur.execute("SELECT setting FROM pg_settings WHERE name = 'primary_conninfo'")
            assert secret in cur.fetchone()[0]  # what the server was given is the real password
        conn.close()
    finally:
        conn = pg_server.connect()
        with conn.cursor() as cur:
            cur.execute('ALTER SYSTEM RESET primary_conninfo')
            cur.execute('SELECT pg_reload_conf()')
        conn.close()


def test_mariadb_wsrep_sst_auth_is_masked_and_settles(mariadb_server, tmp_path):
    """wsrep_sst_auth (user:password) is masked in every output; the server shows it only as ********, so a
    second run is unchanged (with a warning without option_file; compared with the file's block with one)."""
    if not mariadb_server.sql("SELECT COUNT(*) FROM information_schema.GLOBAL_VARIABLES "
                              "WHERE VARIABLE_NAME = 'WSREP_SST_AUTH'")[0][0]:
        pytest.skip('this server has no wsrep_sst_auth')

    def reset():
        conn = mariadb_server.connect()
        with conn.cursor() as cur:
            cur.execute("SET GLOBAL wsrep_sst_auth = ''")
        conn.close()
    reset()
    secrets = ['Sst-Secret-A1', 'Sst-Secret-B2']
    args = dict(mariadb_server.conn, settings={'wsrep_sst_auth': 'sst:%s' % secrets[0]})
    cnf = str(tmp_path / 'sst.cnf')
    try:
        checked = run_module('db_config', args, check=True, diff=True)
        real = run_module('db_config', args, diff=True)
        assert real['changed'] and not real['failed'], real.get('msg')
        assert checked['queries'] == real['queries'] == ["SET GLOBAL `wsrep_sst_auth` = 'sst:********'"]
        again = run_module('db_config', args, diff=True)
        assert again['changed'] is False and again['queries'] == []
        assert 'cannot be compared' in str(again.get('warnings'))
        with_file = dict(args, option_file=cnf)
        first = run_module('db_config', with_file, diff=True)
        assert first['changed'] and first['option_file']['changed'], first
        assert run_module('db_config', with_file)['changed'] is False
        other = dict(with_file, settings={'wsrep_sst_auth': 'sst:%s' % secrets[1]})
        changed = run_module('db_config', other, diff=True)
        assert changed['changed'] and changed['queries'] == ["SET GLOBAL `wsrep_sst_auth` = 'sst:********'"]
        assert run_module('db_config', other)['changed'] is False
        bad = run_module('db_config', dict(other, reload='maybe'))
        assert bad['failed']
        for res in (checked, real, again, first, changed, bad):
            for secret in secrets:
                assert secret not in res['_stdout'] + res['_stderr'], res['_stdout']
        with open(cnf) as handle:
            assert 'wsrep_sst_auth = sst:%s' % secrets[1] in handle.read()  # the file keeps the real one
    finally:
        reset()
