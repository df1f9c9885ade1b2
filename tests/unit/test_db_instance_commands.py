# -*- coding: utf-8 -*-
"""db_instance without a server: plans, command building (PostgreSQL, MariaDB, MySQL 8), checks."""

from __future__ import annotations

import os
import pwd
import signal

import pytest
from ansible_collections.dbops.admin.plugins.module_utils._engines import mysql_instance as my
from ansible_collections.dbops.admin.plugins.module_utils._engines import postgresql_instance as pg
from ansible_collections.dbops.admin.plugins.module_utils._errors import DbError
from ansible_collections.dbops.admin.plugins.module_utils._passwords import caching_sha2_matches, mysql_native_hash

ME = pwd.getpwuid(os.geteuid()).pw_name
PASSWORD = 'Unit-Secret-7'
MARIADB_VERSION = '/usr/sbin/mariadbd  Ver 10.11.6-MariaDB-0+deb12u1 for debian-linux-gnu on x86_64 (Debian 12)\n'
MYSQL8_VERSION = '/usr/sbin/mysqld  Ver 8.0.36 for Linux on x86_64 (MySQL Community Server - GPL)\n'
PG_VERSION = 'postgres (PostgreSQL) 15.5 (Debian 15.5-0+deb12u1)\n'


class FakeProcess:
    def __init__(self, rc=None):
        self.rc = rc

    def poll(self):
        return self.rc


class FakeRunner:
    """Answers like the real system would, records every call, starts nothing."""

    def __init__(self, version='', processes=None, open_ports=(), spawn_rc=None, dies_on_term=True, on_spawn=None):
        self.version = version
        self.processes = dict(processes or {})
        self.open_ports = set(open_ports)
        self.calls = []
        self.signals = []
        self.spawned = []
        self.spawn_rc = spawn_rc
        self.dies_on_term = dies_on_term
        self.on_spawn = on_spawn
        self.clock = 0.0

    def run(self, argv, timeout=None, env=None):
        self.calls.append(list(argv))
        if argv[-1] == '--version':
            return 0, self.version, ''
        return 0, '', ''

    def spawn(self, argv):
        self.spawned.append(list(argv))
        if self.on_spawn:
            self.on_spawn()
        return FakeProcess(self.spawn_rc)

    def process_command(self, pid):
        return self.processes.get(pid)

    def signal(self, pid, signum):
        self.signals.append((pid, signum))
        if signum == signal.SIGTERM and self.dies_on_term:
            self.processes.pop(pid, None)

    def tcp_port_open(self, host, port):
        return port in self.open_ports

    def unix_socket_open(self, path):
        return True

    def sleep(self, seconds):
        self.clock += seconds

    def now(self):
        return self.clock


def bin_dir(tmp_path, *names):
    path = tmp_path / 'bin'
    path.mkdir(exist_ok=True)
    for name in names:
        (path / name).write_text('#!/bin/sh\n')
    return str(path)


def params(tmp_path, **kw):
    base = {'data_dir': str(tmp_path / 'data'), 'port': 55432, 'bind_address': '127.0.0.1', 'os_user': ME,
            'bin_dir': None, 'settings': {}, 'superuser_password': None, 'timeout': 5}
    base.update(kw)
    return base


# ---- the plan --------------------------------------------------------------------------------------

@pytest.mark.parametrize('state, current, force, expected', [
    ('initialized', 'absent', False, ['initialize']),
    ('initialized', 'stopped', False, []),
    ('initialized', 'started', False, []),
    ('started', 'absent', False, ['initialize', 'start']),
    ('started', 'stopped', False, ['start']),
    ('started', 'started', False, []),
    ('stopped', 'absent', False, []),
    ('stopped', 'stopped', False, []),
    ('stopped', 'started', False, ['stop']),
    ('restarted', 'absent', False, ['initialize', 'start']),
    ('restarted', 'stopped', False, ['start']),
    ('restarted', 'started', False, ['restart']),
    ('reloaded', 'stopped', False, ['start']),
    ('reloaded', 'started', False, ['reload']),
    ('absent', 'started', False, ['stop']),
    ('absent', 'stopped', False, []),
    ('absent', 'started', True, ['stop', 'remove']),
    ('absent', 'stopped', True, ['remove']),
    ('absent', 'absent', True, []),
])
def test_plan(state, current, force, expected):
    assert pg.plan_actions(state, current, force) == expected


def test_predicted_state():
    assert pg.predicted_state('absent', ['initialize', 'start']) == 'started'
    assert pg.predicted_state('absent', ['initialize']) == 'stopped'
    assert pg.predicted_state('started', ['stop', 'remove']) == 'absent'
    assert pg.predicted_state('started', []) == 'started'


def test_unknown_state_refused():
    with pytest.raises(DbError, match='choose one of'):
        pg.plan_actions('running', 'absent')


# ---- directories --------------------------------------------------------------------------------------

def test_directory_states(tmp_path):
    runner = FakeRunner(PG_VERSION)
    inst = pg.PostgresInstance(params(tmp_path), runner)
    assert inst.directory_state() == 'missing'
    os.mkdir(inst.data_dir)
    assert inst.directory_state() == 'empty'
    (tmp_path / 'data' / 'notes.txt').write_text('mine')
    assert inst.directory_state() == 'foreign'
    (tmp_path / 'data' / 'PG_VERSION').write_text('15\n')
    assert inst.directory_state() == 'instance'
    mysql_side = my.MysqlInstance(params(tmp_path), FakeRunner(MARIADB_VERSION))
    assert mysql_side.directory_state() == 'other-engine'


def test_foreign_directory_refused_for_every_state(tmp_path):
    os.mkdir(tmp_path / 'data')
    (tmp_path / 'data' / 'payroll.csv').write_text('1,2\n')
    for state in ('started', 'absent', 'stopped'):
        inst = pg.PostgresInstance(params(tmp_path), FakeRunner(PG_VERSION))
        current = inst.status()
        with pytest.raises(DbError, match='not empty and holds no PostgreSQL instance'):
            inst.check(pg.plan_actions(state, current['state'], True), current)
    assert os.listdir(tmp_path / 'data') == ['payroll.csv']


@pytest.mark.parametrize('cls', [pg.PostgresInstance, my.MysqlInstance])
@pytest.mark.parametrize('port', [0, -5, 65536, 70000])
def test_port_out_of_range_is_refused(tmp_path, cls, port):
    """port: 0 initialized and started the instance on the default port (5432 / 3306)."""
    with pytest.raises(DbError, match='from 1 to 65535'):
        cls(params(tmp_path, port=port), FakeRunner())
    assert not (tmp_path / 'data').exists()


@pytest.mark.parametrize('cls, version', [(pg.PostgresInstance, PG_VERSION), (my.MysqlInstance, MARIADB_VERSION)])
def test_data_dir_that_is_a_file_is_refused_as_one(tmp_path, cls, version):
    """A file at data_dir was reported as "not empty and holds no ... instance", which it is not."""
    (tmp_path / 'data').write_text('1,2\n')
    inst = cls(params(tmp_path), FakeRunner(version))
    current = inst.status()
    with pytest.raises(DbError, match='exists and is not a directory') as info:
        inst.check(pg.plan_actions('started', current['state']), current)
    assert 'not empty' not in str(info.value)
    assert (tmp_path / 'data').read_text() == '1,2\n'


# ---- PostgreSQL ------------------------------------------------------------------------------------------

def test_postgres_commands_as_the_os_user(tmp_path, monkeypatch):
    monkeypatch.setattr(os, 'geteuid', lambda: 0)
    inst = pg.PostgresInstance(params(tmp_path, os_user='postgres',
                                      bin_dir=bin_dir(tmp_path, 'initdb', 'pg_ctl', 'postgres')),
                               FakeRunner(PG_VERSION))
    binary = str(tmp_path / 'bin')
    argv = inst.initdb_command('/tmp/x/superuser.pw')
    assert argv[:4] == ['runuser', '-u', 'postgres', '--']
    assert argv[4] == os.path.join(binary, 'initdb')
    assert ['-D', inst.data_dir] == argv[5:7]
    assert '--auth-host=scram-sha-256' in argv and argv[-2:] == ['--pwfile', '/tmp/x/superuser.pw']
    assert inst.start_command()[4:] == [os.path.join(binary, 'pg_ctl'), '-D', inst.data_dir, '-l',
                                        os.path.join(inst.data_dir, 'log', 'server.log'), '-w', '-t', '5', 'start']
    assert inst.stop_command()[-1] == 'stop' and '-m' in inst.stop_command()
    assert inst.reload_command()[-1] == 'reload'


def test_other_user_needs_root(tmp_path, monkeypatch):
    monkeypatch.setattr(os, 'geteuid', lambda: 4242)
    monkeypatch.setattr(pwd, 'getpwuid', lambda uid: pwd.struct_passwd(('alice', 'x', 4242, 4242, '', '/', '/bin/sh')))
    inst = pg.PostgresInstance(params(tmp_path, os_user='postgres'), FakeRunner(PG_VERSION))
    with pytest.raises(DbError, match='only root can run them as another user'):
        inst.as_user(['pg_ctl'])


def test_postgres_initialize_check_mode_writes_nothing(tmp_path):
    runner = FakeRunner(PG_VERSION)
    inst = pg.PostgresInstance(params(tmp_path, superuser_password=PASSWORD, settings={'work_mem': "4MB's"},
                                      bin_dir=bin_dir(tmp_path, 'initdb', 'pg_ctl', 'postgres')), runner)
    for action in pg.plan_actions('started', 'absent'):
        inst.perform(action, check_mode=True)
    assert not os.path.exists(inst.data_dir)
    assert [c for c in runner.calls if c[-1] != '--version'] == []
    text = '\n'.join(inst.commands)
    assert 'initdb' in text and 'pg_ctl' in text and PASSWORD not in text
    assert "port = '55432'" in text and "work_mem = '4MB''s'" in text


def test_postgres_settings_quoting_and_names(tmp_path):
    assert pg.postgres_literal(True) == "'on'"
    assert pg.postgres_literal("a'b") == "'a''b'"
    with pytest.raises(DbError, match='not a valid setting name'):
        pg.PostgresInstance(params(tmp_path, settings={'port = 1\nfsync': 'off'}), FakeRunner())
    with pytest.raises(DbError, match='cannot span lines'):
        pg.PostgresInstance(params(tmp_path, settings={'work_mem': '4MB\nfsync = off'}), FakeRunner())


def test_postgres_list_settings_written_as_one_value(tmp_path):
    # a YAML list was written as its Python repr ("['pg_stat_statements', ...]") and the server refused to start
    assert pg.postgres_literal(['pg_stat_statements', 'auto_explain']) == "'pg_stat_statements, auto_explain'"
    assert pg.postgres_literal(['"$user"', 'public', 'My Schema']) == '\'"$user", public, "My Schema"\''
    inst = pg.PostgresInstance(params(tmp_path, settings={'shared_preload_libraries': ['pg_stat_statements']}),
                               FakeRunner(PG_VERSION))
    inst.initialize(check_mode=True)
    text = '\n'.join(inst.commands)
    assert "shared_preload_libraries = 'pg_stat_statements'" in text and '[' not in text.split('append to', 1)[1]
    (tmp_path / 'auto.conf').write_text("search_path = %s\n" % pg.postgres_literal(['"$user"', 'public']))
    assert pg.read_postgres_config(str(tmp_path / 'auto.conf'))['search_path'] == '"$user", public'


def test_instance_setting_given_a_dictionary_refused(tmp_path):
    with pytest.raises(DbError, match='not a dictionary'):
        pg.PostgresInstance(params(tmp_path, settings={'work_mem': {'size': '4MB'}}), FakeRunner())
    with pytest.raises(DbError, match='not a dictionary'):
        my.MysqlInstance(params(tmp_path, settings={'sql_mode': {'a': 1}}), FakeRunner(MARIADB_VERSION))


def test_postgres_config_reading(tmp_path):
    (tmp_path / 'postgresql.conf').write_text("port = 5433   # comment\nlisten_addresses = 'localhost'\n")
    (tmp_path / 'postgresql.auto.conf').write_text("port = '55432'\nunix_socket_directories = '/x/it''s'\n")
    values = pg.read_postgres_config(str(tmp_path / 'postgresql.conf'), str(tmp_path / 'postgresql.auto.conf'))
    assert values['port'] == '55432'
    assert values['listen_addresses'] == 'localhost'
    assert values['unix_socket_directories'] == "/x/it's"


def make_pg_instance_dir(tmp_path, port=55432, running_pid=None):
    data = tmp_path / 'data'
    data.mkdir()
    (data / 'PG_VERSION').write_text('15\n')
    (data / 'postgresql.conf').write_text('max_connections = 100\n')
    (data / 'postgresql.auto.conf').write_text("port = '%d'\n" % port)
    if running_pid:
        (data / 'postmaster.pid').write_text('%d\n%s\n1700000000\n%d\n%s\n127.0.0.1\n' % (
            running_pid, data, port, data))
    return data


def test_postgres_status_running_and_stale_pid(tmp_path):
    make_pg_instance_dir(tmp_path, running_pid=4242)
    runner = FakeRunner(PG_VERSION, processes={4242: '/usr/lib/postgresql/15/bin/postgres -D x'})
    status = pg.PostgresInstance(params(tmp_path), runner).status()
    assert (status['state'], status['pid'], status['port']) == ('started', 4242, 55432)
    runner.processes = {4242: '/usr/bin/vim notes'}  # pid reused by something else
    status = pg.PostgresInstance(params(tmp_path), runner).status()
    assert (status['state'], status['pid']) == ('stopped', None)


def test_postgres_port_mismatch_and_port_in_use(tmp_path):
    make_pg_instance_dir(tmp_path, port=55432)
    tools = bin_dir(tmp_path, 'initdb', 'pg_ctl', 'postgres')
    inst = pg.PostgresInstance(params(tmp_path, port=6000, os_user='nobody', bin_dir=tools), FakeRunner(PG_VERSION))
    current = inst.status()
    with pytest.raises(DbError, match='configured for port 55432'):
        inst.check(['start'], current)
    inst = pg.PostgresInstance(params(tmp_path, os_user='nobody', bin_dir=tools), FakeRunner(PG_VERSION, open_ports=[55432]))
    with pytest.raises(DbError, match='already in use by another process'):
        inst.check(['start'], inst.status())


def test_running_instance_on_another_port_is_not_reported_as_the_one_asked_for(tmp_path):
    # state: started, port: 6000 on an instance running on 55432 used to answer ok, changed: false, port 55432
    make_pg_instance_dir(tmp_path, port=55432)
    tools = bin_dir(tmp_path, 'initdb', 'pg_ctl', 'postgres')
    for state in ('started', 'initialized', 'reloaded'):
        inst = pg.PostgresInstance(params(tmp_path, port=6000, os_user='nobody', bin_dir=tools, state=state),
                                   FakeRunner(PG_VERSION))
        with pytest.raises(DbError, match='configured for port 55432'):
            inst.check([], inst.status())
    for state in ('stopped', 'absent'):
        inst = pg.PostgresInstance(params(tmp_path, port=6000, os_user='nobody', bin_dir=tools, state=state),
                                   FakeRunner(PG_VERSION))
        inst.check([], inst.status())
        inst.check(['remove'], inst.status())


def test_postgres_refuses_root_and_major_mismatch(tmp_path):
    make_pg_instance_dir(tmp_path)
    tools = bin_dir(tmp_path, 'initdb', 'pg_ctl', 'postgres')
    inst = pg.PostgresInstance(params(tmp_path, os_user='root', bin_dir=tools), FakeRunner(PG_VERSION))
    with pytest.raises(DbError, match='refuses to run as root'):
        inst.check(['start'], inst.status())
    inst = pg.PostgresInstance(params(tmp_path, os_user='nobody', bin_dir=tools),
                               FakeRunner('postgres (PostgreSQL) 16.2\n'))
    with pytest.raises(DbError, match='data is PostgreSQL 15 but the programs'):
        inst.check(['start'], inst.status())


def test_postgres_long_socket_path_refused(tmp_path):
    deep = tmp_path / ('d' * 60) / ('e' * 60)
    inst = pg.PostgresInstance(params(tmp_path, data_dir=str(deep), os_user='nobody',
                                      bin_dir=bin_dir(tmp_path, 'initdb', 'pg_ctl', 'postgres')), FakeRunner(PG_VERSION))
    with pytest.raises(DbError, match='socket path'):
        inst.check(['initialize', 'start'], inst.status())


# ---- MariaDB ---------------------------------------------------------------------------------------------

def test_mariadb_init_command_and_password_sql(tmp_path):
    tools = bin_dir(tmp_path, 'mariadbd', 'mariadb-install-db')
    inst = my.MysqlInstance(params(tmp_path, port=53306, bin_dir=tools, superuser_password=PASSWORD),
                            FakeRunner(MARIADB_VERSION))
    assert inst.flavor == 'mariadb' and inst.version() == '10.11.6'
    argv = inst.init_command('/s/my.cnf', '/s/init.sql')
    assert argv[-5:] == [os.path.join(tools, 'mariadb-install-db'), '--defaults-file=/s/my.cnf', '--skip-test-db',
                         '--auth-root-authentication-method=normal', '--extra-file=/s/init.sql']
    statements = inst.password_statements()
    digest = mysql_native_hash(PASSWORD)
    assert statements[0] == 'FLUSH PRIVILEGES'
    assert "ALTER USER 'root'@'localhost' IDENTIFIED BY PASSWORD '%s'" % digest in statements
    assert any("'root'@'127.0.0.1'" in s and 'GRANT ALL' in s for s in statements)
    assert not any(PASSWORD in s for s in statements)
    assert digest not in inst.mask(' '.join(statements))


def test_mariadb_without_password_keeps_socket_auth(tmp_path):
    tools = bin_dir(tmp_path, 'mariadbd', 'mariadb-install-db')
    inst = my.MysqlInstance(params(tmp_path, bin_dir=tools), FakeRunner(MARIADB_VERSION))
    assert inst.password_statements() == []
    argv = inst.init_command('/s/my.cnf')
    assert '--auth-root-authentication-method=socket' in argv
    assert not any(a.startswith('--extra-file') for a in argv)


def test_mariadb_option_file(tmp_path):
    inst = my.MysqlInstance(params(tmp_path, bin_dir=bin_dir(tmp_path, 'mariadbd', 'mariadb-install-db'),
                                   settings={'innodb_buffer_pool_size': '64M', 'skip-name-resolve': None,
                                             'log_bin': True}),
                            FakeRunner(MARIADB_VERSION))
    text = inst.option_file_text(53306)
    path = tmp_path / 'my.cnf'
    path.write_text(text)
    values = my.read_option_file(str(path))
    assert values['port'] == '53306'
    assert values['socket'] == os.path.join(inst.data_dir, 'mysqld.sock')
    assert values['innodb_buffer_pool_size'] == '64M'
    assert 'skip_name_resolve' in values and values['log_bin'] == 'ON'
    assert 'mysqlx' not in values
    assert '\n[client]\n' in text


def test_mariadb_list_setting_written_comma_separated(tmp_path):
    # sql_mode: [A, B] was written as "['A', 'B']" and mariadb-install-db refused it
    inst = my.MysqlInstance(params(tmp_path, bin_dir=bin_dir(tmp_path, 'mariadbd', 'mariadb-install-db'),
                                   settings={'sql_mode': ['STRICT_TRANS_TABLES', 'NO_ENGINE_SUBSTITUTION']}),
                            FakeRunner(MARIADB_VERSION))
    path = tmp_path / 'my.cnf'
    path.write_text(inst.option_file_text(53306))
    assert my.read_option_file(str(path))['sql_mode'] == 'STRICT_TRANS_TABLES,NO_ENGINE_SUBSTITUTION'


def test_mariadb_option_value_with_a_comment_character_is_quoted():
    # init_connect = SET @app = 'x' # y  would have been cut at the '#'
    assert my.option_value("SET @tag = '#1'") == '"SET @tag = \'#1\'"'
    assert my.option_value('a;b') == '"a;b"'
    assert my.option_value('plain') == 'plain'


def test_mariadb_initialize_check_mode(tmp_path):
    runner = FakeRunner(MARIADB_VERSION)
    inst = my.MysqlInstance(params(tmp_path, superuser_password=PASSWORD,
                                   bin_dir=bin_dir(tmp_path, 'mariadbd', 'mariadb-install-db')), runner)
    for action in pg.plan_actions('started', 'absent'):
        inst.perform(action, check_mode=True)
    assert not os.path.exists(inst.data_dir)
    assert runner.spawned == [] and [c for c in runner.calls if c[-1] != '--version'] == []
    assert any('mariadb-install-db' in c for c in inst.commands)
    assert any('mariadbd' in c and '--defaults-file=%s' % inst.config_file in c for c in inst.commands)
    assert all(PASSWORD not in q and mysql_native_hash(PASSWORD) not in q for q in inst.queries + inst.commands)
    assert any('********' in q for q in inst.queries)


class FailingInstallRunner(FakeRunner):
    """mariadb-install-db that fails the way the real one does: advice on stdout, the reason in the error log."""

    def run(self, argv, timeout=None, env=None):
        if any('mariadb-install-db' in str(a) for a in argv):
            self.calls.append(list(argv))
            options = [a for a in argv if str(a).startswith('--defaults-file=')][0].split('=', 1)[1]
            log = my.read_option_file(options)['log_error']
            with open(log, 'w') as handle:
                handle.write("2026-11-27  8:06:33 0 [ERROR] /usr/sbin/mariadbd: unknown variable 'no_such_option=1'\n"
                             '2026-11-27  8:06:33 0 [ERROR] Aborting\n')
            return 1, ('The latest information about mysql_install_db is available at\n'
                       'https://mariadb.com/docs/server/clients-and-utilities/deployment-tools/mariadb-install-db\n'
                       'Please check all of the above before submitting a bug report\n'), ''
        return super().run(argv, timeout, env)


def test_mariadb_initialization_failure_names_the_server_error(tmp_path):
    inst = my.MysqlInstance(params(tmp_path, os_user=ME, settings={'no_such_option': 1},
                                   bin_dir=bin_dir(tmp_path, 'mariadbd', 'mariadb-install-db')),
                            FailingInstallRunner(MARIADB_VERSION))
    with pytest.raises(DbError) as info:
        inst.initialize(check_mode=False)
    text = str(info.value)
    assert "unknown variable 'no_such_option=1'" in text and 'Aborting' in text
    assert 'bug report' not in text and 'latest information' not in text
    assert not os.path.exists(inst.data_dir)


def make_mysql_instance_dir(tmp_path, inst, pid=None):
    data = tmp_path / 'data'
    (data / 'mysql').mkdir(parents=True)
    (data / 'my.cnf').write_text(inst.option_file_text(53306))
    if pid:
        (data / 'mysqld.pid').write_text('%d\n' % pid)


def test_mysql_stop_sends_sigterm_and_waits(tmp_path):
    runner = FakeRunner(MARIADB_VERSION, processes={777: '/usr/sbin/mariadbd --defaults-file=x'})
    inst = my.MysqlInstance(params(tmp_path, port=53306, bin_dir=bin_dir(tmp_path, 'mariadbd')), runner)
    make_mysql_instance_dir(tmp_path, inst, pid=777)
    assert inst.status()['state'] == 'started'
    inst.stop(check_mode=False)
    assert runner.signals == [(777, signal.SIGTERM)]
    assert inst.status()['state'] == 'stopped'
    assert inst.commands == ['kill -TERM 777']


def test_mysql_stop_that_never_ends_fails(tmp_path):
    runner = FakeRunner(MARIADB_VERSION, processes={777: '/usr/sbin/mariadbd'}, dies_on_term=False)
    inst = my.MysqlInstance(params(tmp_path, port=53306, bin_dir=bin_dir(tmp_path, 'mariadbd')), runner)
    make_mysql_instance_dir(tmp_path, inst, pid=777)
    with pytest.raises(DbError, match='still runs after 5 seconds'):
        inst.stop(check_mode=False)


def test_mysql_start_failure_shows_error_log(tmp_path):
    log = tmp_path / 'data' / 'error.log'

    def server_writes_its_error():
        with open(log, 'a') as handle:
            handle.write('2024 [ERROR] unknown variable innodb_bogus=1\n')

    runner = FakeRunner(MARIADB_VERSION, spawn_rc=1, on_spawn=server_writes_its_error)
    inst = my.MysqlInstance(params(tmp_path, port=53306, bin_dir=bin_dir(tmp_path, 'mariadbd')), runner)
    make_mysql_instance_dir(tmp_path, inst)
    log.write_text('2023 [ERROR] an old failure, already fixed\n')
    with pytest.raises(DbError, match='it exited; error log: .*unknown variable innodb_bogus') as info:
        inst.start(check_mode=False)
    assert 'old failure' not in str(info.value)
    assert runner.spawned and runner.spawned[0][-1] == '--defaults-file=%s' % inst.config_file


def test_mysql_instance_without_our_option_file_refused(tmp_path):
    # e.g. the system's /var/lib/mysql: its pid file is elsewhere, so it may run while looking stopped
    (tmp_path / 'data' / 'mysql').mkdir(parents=True)
    for state in ('started', 'stopped', 'restarted', 'absent'):
        inst = my.MysqlInstance(params(tmp_path, bin_dir=bin_dir(tmp_path, 'mariadbd')), FakeRunner(MARIADB_VERSION))
        current = inst.status()
        actions = pg.plan_actions(state, current['state'], force=True)
        if actions:
            with pytest.raises(DbError, match='no option file'):
                inst.check(actions, current)
    assert os.path.isdir(tmp_path / 'data' / 'mysql')


# ---- MySQL 8 -----------------------------------------------------------------------------------------------

def test_mysql8_initialize_insecure_with_init_file(tmp_path):
    tools = bin_dir(tmp_path, 'mysqld')
    inst = my.MysqlInstance(params(tmp_path, port=33306, bin_dir=tools, superuser_password=PASSWORD),
                            FakeRunner(MYSQL8_VERSION))
    assert inst.flavor == 'mysql' and inst.version() == '8.0.36'
    assert inst.init_program() == os.path.join(tools, 'mysqld')
    argv = inst.init_command('/s/my.cnf', '/s/init.sql')
    assert argv[-4:] == [os.path.join(tools, 'mysqld'), '--defaults-file=/s/my.cnf', '--initialize-insecure',
                         '--init-file=/s/init.sql']
    statements = inst.password_statements()
    assert statements[0].startswith("ALTER USER 'root'@'localhost' IDENTIFIED WITH caching_sha2_password AS 0x")
    assert "CREATE USER 'root'@'127.0.0.1'" in statements[1]
    assert 'FLUSH PRIVILEGES' not in statements
    masked = inst.mask(' '.join(statements))
    assert PASSWORD not in ' '.join(statements) and '0x' not in masked and '********' in masked
    digest = bytes.fromhex(statements[0].rsplit(' AS 0x', 1)[1])
    assert caching_sha2_matches(PASSWORD, digest) is True


@pytest.mark.parametrize('version, password', [
    ('8.0.36', "it's a \\secret"),   # hex literal: nothing to escape, nothing of the password in the SQL
    ('8.0.16', "it's a \\secret"),   # before hex literals: IDENTIFIED BY, masked as written (quotes doubled)
])
def test_mysql8_root_password_never_shows_in_the_recorded_statements(tmp_path, version, password):
    out = '/usr/sbin/mysqld  Ver %s for Linux on x86_64 (MySQL Community Server - GPL)\n' % version
    inst = my.MysqlInstance(params(tmp_path, port=33306, bin_dir=bin_dir(tmp_path, 'mysqld'), superuser_password=password),
                            FakeRunner(out))
    statements = inst.password_statements()
    masked = inst.mask(' '.join(statements))
    assert "it''s" not in masked and 'secret' not in masked and masked.count('********') == 2


def test_mysql8_option_file_turns_x_protocol_off(tmp_path):
    inst = my.MysqlInstance(params(tmp_path, port=33306, bin_dir=bin_dir(tmp_path, 'mysqld')),
                            FakeRunner(MYSQL8_VERSION))
    assert inst.server_options(33306)['mysqlx'] == 'OFF'
    staging = inst.option_file_text(33306, '/s/init.log')
    assert 'log-error = /s/init.log' in staging
    assert 'log-error = %s' % inst.log_file in inst.option_file_text(33306)


def test_mysql8_initialize_check_mode(tmp_path):
    runner = FakeRunner(MYSQL8_VERSION)
    inst = my.MysqlInstance(params(tmp_path, port=33306, superuser_password=PASSWORD,
                                   bin_dir=bin_dir(tmp_path, 'mysqld')), runner)
    inst.check(['initialize', 'start'], inst.status())
    for action in ('initialize', 'start'):
        inst.perform(action, check_mode=True)
    assert any('--initialize-insecure' in c and '--init-file=' in c for c in inst.commands)
    assert not os.path.exists(inst.data_dir)
    assert all(PASSWORD not in q for q in inst.queries + inst.commands)


def test_missing_server_program_names_the_package(tmp_path):
    inst = my.MysqlInstance(params(tmp_path, bin_dir=str(tmp_path)), FakeRunner(''))
    with pytest.raises(DbError, match='install the MariaDB or MySQL server package'):
        inst.server_program()


def test_os_user_defaults_to_the_owner_of_the_data_directory(tmp_path, monkeypatch):
    really_root = os.geteuid() == 0
    monkeypatch.setattr(os, 'geteuid', lambda: 0)
    data = tmp_path / 'data'
    data.mkdir()
    if really_root:
        os.chown(data, pwd.getpwnam('nobody').pw_uid, -1)
    owner = pwd.getpwuid(os.stat(data).st_uid).pw_name
    inst = pg.PostgresInstance(params(tmp_path, os_user=None), FakeRunner(PG_VERSION))
    assert inst.os_user == owner
    if really_root:
        os.chown(data, 0, -1)
        assert pg.PostgresInstance(params(tmp_path, os_user=None), FakeRunner(PG_VERSION)).os_user == 'postgres'
    inst = my.MysqlInstance(params(tmp_path, os_user=None, data_dir=str(tmp_path / 'missing')), FakeRunner(MARIADB_VERSION))
    assert inst.os_user == 'mysql'


def test_removing_a_stopped_instance_needs_no_programs(tmp_path):
    make_pg_instance_dir(tmp_path)
    inst = pg.PostgresInstance(params(tmp_path, os_user='nobody', bin_dir=str(tmp_path / 'nothing-here')),
                               FakeRunner(''))
    current = inst.status()
    assert current['state'] == 'stopped'
    inst.check(['remove'], current)
    with pytest.raises(DbError, match='find initdb'):
        inst.check(['start'], current)
    inst.perform('remove', check_mode=False)
    assert not os.path.exists(inst.data_dir)


@pytest.mark.parametrize('engine, name, option', [
    ('postgresql', 'port', 'port'),
    ('postgresql', 'Listen_Addresses', 'bind_address'),
    ('postgresql', 'unix_socket_directories', 'data_dir'),
    ('mysql', 'port', 'port'),
    ('mysql', 'bind-address', 'bind_address'),
    ('mysql', 'bind_address', 'bind_address'),
    ('mysql', 'socket', 'data_dir'),
    ('mysql', 'datadir', 'data_dir'),
    ('mysql', 'pid-file', 'data_dir'),
])
def test_settings_the_module_owns_are_refused(tmp_path, engine, name, option):
    """settings: {port: 5433} with port: 5432 started the instance on 5433 (after checking that 5432 was
    free), returned port 5433, and the next run failed: the option, not a setting, says where it listens."""
    cls = pg.PostgresInstance if engine == 'postgresql' else my.MysqlInstance
    with pytest.raises(DbError, match='set by the module') as info:
        cls(params(tmp_path, settings={name: '5433'}), FakeRunner())
    assert option in str(info.value)
    assert not (tmp_path / 'data').exists()
