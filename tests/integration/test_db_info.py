# -*- coding: utf-8 -*-
"""db_info against real servers: true values, moving counters, alerts, slow-query sources, failures."""

from __future__ import annotations

import os
import threading
import time

import pytest
from modrun import run_module

FRESH_MAX_CONNECTIONS = {'postgresql': 100, 'mysql': 151}


def catalog_value(server, sql, database=None):
    conn = server.connect(database) if database else server.connect()
    try:
        with conn.cursor() as cur:
            cur.execute(sql)
            return cur.fetchone()[0]
    finally:
        conn.close()


def info(server, check=False, **options):
    result = run_module('db_info', dict(server.conn, **options), check=check)
    assert not result['failed'], result.get('msg')
    assert result['changed'] is False
    return result


def test_true_max_connections_and_server_identity(server):
    result = info(server)
    expected = FRESH_MAX_CONNECTIONS[server.engine]
    in_catalog = int(catalog_value(server, 'SHOW max_connections' if server.engine == 'postgresql'
                                   else 'SELECT @@GLOBAL.max_connections'))
    assert in_catalog == expected
    assert result['metrics']['connections']['max'] == expected
    assert str(result['settings']['max_connections']) == str(expected)
    srv = result['server']
    assert srv['flavor'] == ('postgresql' if server.engine == 'postgresql' else 'mariadb')
    assert srv['engine'] == server.engine
    assert srv['version_num'] > 100000 and srv['version'].split('.')[0].isdigit()
    assert srv['uptime_seconds'] >= 0
    assert result['queries'] == []


def test_connection_counts_move_with_extra_sessions(server):
    baseline = info(server, gather_subset=['metrics'])['metrics']['connections']
    extra = [server.connect() for _ in range(4)]
    try:
        now = info(server, gather_subset=['metrics'])['metrics']['connections']
    finally:
        for conn in extra:
            conn.close()
    assert now['total'] >= baseline['total'] + 4
    assert now['idle'] >= baseline['idle'] + 4
    assert now['active'] >= 1                     # db_info's own session is running its query
    assert now['used_ratio'] == pytest.approx(now['total'] / float(now['max']), abs=1e-4)


def test_alerts_appear_when_thresholds_are_lowered(server):
    quiet = info(server, gather_subset=['metrics'])
    assert not [a for a in quiet['alerts'] if a['metric'] == 'connections']
    assert quiet['thresholds']['connections'] == {'warning': 70, 'critical': 90}

    loud = info(server, gather_subset=['metrics'],
                thresholds={'connections': {'warning': 0.01, 'critical': 0.02}, 'disk': {'warning': 0.01}})
    alerts = {a['metric']: a for a in loud['alerts']}
    used = loud['metrics']['connections']['used_ratio'] * 100
    assert alerts['connections']['level'] == 'critical'
    assert alerts['connections']['threshold'] == 0.02
    assert alerts['connections']['value'] == pytest.approx(used, abs=0.01)
    assert loud['thresholds']['disk'] == {'warning': 0.01, 'critical': 95}
    if 'disk' in loud['metrics']:
        assert alerts['disk']['level'] == 'warning'


def test_connection_alert_compares_the_exact_share_not_the_rounded_one(mariadb_server):
    """With max_connections 151 the share in use never has two decimals: the alert must use the exact one."""
    for _attempt in range(5):
        first = info(mariadb_server, gather_subset=['metrics'])['metrics']['connections']
        exact = 100.0 * first['total'] / first['max']
        shown = round(first['used_ratio'] * 100, 2)  # what a threshold was compared with before
        assert shown != exact  # x/151 has no two-decimal form: the case this test is about
        # a threshold between the shown and the exact value: only one of them reaches it
        threshold = round((exact + shown) / 2, 6)
        result = info(mariadb_server, gather_subset=['metrics'],
                      thresholds={'connections': {'warning': threshold, 'critical': None}})
        if result['metrics']['connections']['total'] != first['total']:
            continue  # a session came or went between the two runs
        alerts = [a for a in result['alerts'] if a['metric'] == 'connections']
        assert bool(alerts) is (exact >= threshold), (exact, shown, threshold, alerts)
        # and the other side of the exact value
        other = round(exact + (exact - threshold), 6)
        result = info(mariadb_server, gather_subset=['metrics'],
                      thresholds={'connections': {'warning': other, 'critical': None}})
        if result['metrics']['connections']['total'] != first['total']:
            continue
        alerts = [a for a in result['alerts'] if a['metric'] == 'connections']
        assert bool(alerts) is (exact >= other), (exact, shown, other, alerts)
        return
    pytest.fail('the number of connections never held still')


def test_cache_hit_ratio_is_a_ratio_from_the_counters(server):
    if server.engine == 'postgresql':
        # touch some pages so that there is something to count
        catalog_value(server, 'SELECT count(*) FROM pg_class')
    else:
        catalog_value(server, 'SELECT COUNT(*) FROM mysql.user')
    ratio = info(server, gather_subset=['metrics'])['metrics']['cache_hit_ratio']
    assert ratio is not None and 0.0 <= ratio <= 1.0
    if server.engine == 'postgresql':
        expected = float(catalog_value(server, 'SELECT sum(blks_hit)::float / (sum(blks_hit) + sum(blks_read)) '
                                               'FROM pg_stat_database'))
    else:
        conn = server.connect()
        with conn.cursor() as cur:
            cur.execute("SHOW GLOBAL STATUS LIKE 'Innodb_buffer_pool_read%'")
            status = dict(cur.fetchall())
        conn.close()
        expected = 1 - float(status['Innodb_buffer_pool_reads']) / float(status['Innodb_buffer_pool_read_requests'])
    assert ratio == pytest.approx(expected, abs=0.02)


def test_wrong_password_names_authentication_without_the_password(server):
    result = run_module('db_info', dict(server.conn, login_password='Not-The-Password-913'))
    assert result['failed'] is True
    assert 'Not-The-Password-913' not in result['msg']
    assert 'Not-The-Password-913' not in result['_stdout']
    lowered = result['msg'].lower()
    assert 'authentication' in lowered or 'access denied' in lowered
    assert 'could not connect' in lowered


def test_subsets_limit_what_is_gathered(server):
    only_server = info(server, gather_subset=['server'])
    assert 'server' in only_server
    assert 'metrics' not in only_server and 'databases' not in only_server and 'settings' not in only_server
    no_settings = info(server, gather_subset=['!settings'])
    assert 'settings' not in no_settings
    assert {'connections', 'replication', 'slow_queries'} <= set(no_settings['metrics'])
    replication_only = info(server, gather_subset=['replication'])
    assert set(replication_only['metrics']) == {'replication'}
    assert replication_only['metrics']['replication']['role'] == 'standalone'
    assert replication_only['metrics']['replication']['lag_seconds'] is None


def test_databases_and_their_sizes(server):
    name = 'dbinfo_sizes'
    if server.engine == 'postgresql':
        if not int(server.psql("SELECT count(*) FROM pg_database WHERE datname = '%s'" % name)):
            server.psql('CREATE DATABASE %s' % name)
        expected = int(catalog_value(server, "SELECT pg_database_size('%s')" % name))
    else:
        server.sql('CREATE DATABASE IF NOT EXISTS %s' % name)
        server.sql('CREATE TABLE IF NOT EXISTS %s.t (id INT PRIMARY KEY, pad CHAR(200)) ENGINE=InnoDB' % name)
        server.sql('INSERT IGNORE INTO %s.t VALUES (1, "x"), (2, "y")' % name)
        server.sql('ANALYZE TABLE %s.t' % name)
        expected = int(catalog_value(server, "SELECT SUM(DATA_LENGTH + INDEX_LENGTH) FROM information_schema.TABLES "
                                             "WHERE TABLE_SCHEMA = '%s'" % name))
    databases = {d['name']: d['size_bytes'] for d in info(server, gather_subset=['databases'])['databases']}
    assert databases[name] == pytest.approx(expected, rel=0.05)
    assert databases[name] > 0


def test_longest_transaction_and_lock_waits(server):
    other = server.connect()
    holder = server.connect()
    if server.engine == 'postgresql':
        holder.autocommit = False
    blocked_done = threading.Event()
    try:
        with other.cursor() as cur:
            if server.engine == 'postgresql':
                table = 'dbinfo_lock'
                cur.execute('CREATE TABLE IF NOT EXISTS dbinfo_lock (id INT PRIMARY KEY, v INT)')
            else:
                table = 'dbinfo_locks.t'
                cur.execute('CREATE DATABASE IF NOT EXISTS dbinfo_locks')
                cur.execute('CREATE TABLE IF NOT EXISTS dbinfo_locks.t (id INT PRIMARY KEY, v INT) ENGINE=InnoDB')
        with other.cursor() as cur:
            cur.execute('DELETE FROM %s' % table)
            cur.execute('INSERT INTO %s VALUES (1, 0)' % table)
        with holder.cursor() as cur:
            if server.engine != 'postgresql':
                cur.execute('START TRANSACTION')
            cur.execute('UPDATE %s SET v = v + 1 WHERE id = 1' % table)

        def blocked_update():
            conn = server.connect()
            try:
                with conn.cursor() as cur:
                    cur.execute('UPDATE %s SET v = v + 10 WHERE id = 1' % table)
            finally:
                conn.close()
                blocked_done.set()

        thread = threading.Thread(target=blocked_update, daemon=True)
        thread.start()
        time.sleep(1.5)
        assert not blocked_done.is_set(), 'the second update should wait for the row lock'
        metrics = info(server, gather_subset=['metrics'])['metrics']
        assert metrics['locks']['waiting'] >= 1
        assert metrics['longest_transaction_seconds'] >= 1.0
    finally:
        holder.rollback()
        holder.close()
        other.close()
    blocked_done.wait(15)
    assert blocked_done.is_set()
    after = info(server, gather_subset=['metrics'])['metrics']
    assert after['locks']['waiting'] == 0


def test_disk_of_the_data_directory(server):
    disk = info(server, gather_subset=['metrics'])['metrics']['disk']
    assert os.path.realpath(disk['path']) == os.path.realpath(server.data_dir)
    statvfs = os.statvfs(server.data_dir)
    assert disk['total_bytes'] == statvfs.f_blocks * statvfs.f_frsize
    assert 0 < disk['used_ratio'] < 1


def test_postgresql_slow_queries_from_pg_stat_statements(pg_server):
    with_ext, without_ext = 'dbinfo_pss', 'dbinfo_nopss'
    for name in (with_ext, without_ext):
        if not int(pg_server.psql("SELECT count(*) FROM pg_database WHERE datname = '%s'" % name)):
            pg_server.psql('CREATE DATABASE %s' % name)
    pg_server.psql('CREATE EXTENSION IF NOT EXISTS pg_stat_statements', database=with_ext)
    # the session server is shared: slower statements of other tests must not push ours out of the top list
    pg_server.psql('SELECT pg_stat_statements_reset()', database=with_ext)
    pg_server.psql('SELECT pg_sleep(0.35)', database=with_ext)

    result = info(pg_server, login_db=with_ext, gather_subset=['metrics'], slow_query_ms=300)
    slow = result['metrics']['slow_queries']
    assert slow['source'] == 'pg_stat_statements'
    assert slow['threshold_ms'] == 300
    assert slow['count'] >= 1
    assert slow['per_minute'] > 0
    assert any('pg_sleep' in t['query'] and t['mean_ms'] >= 300 for t in slow['top'])
    stricter = info(pg_server, login_db=with_ext, gather_subset=['metrics'], slow_query_ms=60000)
    assert stricter['metrics']['slow_queries']['count'] == 0

    missing = info(pg_server, login_db=without_ext, gather_subset=['metrics'])['metrics']['slow_queries']
    assert missing['source'] == 'unavailable'
    assert missing['count'] is None and missing['per_minute'] is None
    assert 'pg_stat_statements' in missing['reason']
    # db_info reports; it does not create the extension
    assert pg_server.psql("SELECT count(*) FROM pg_extension WHERE extname = 'pg_stat_statements'",
                          database=without_ext) == '0'


def test_mariadb_slow_queries_from_the_status_counter(mariadb_server):
    before = info(mariadb_server, gather_subset=['metrics'])['metrics']['slow_queries']
    assert before['source'] == 'status:Slow_queries'
    conn = mariadb_server.connect()
    try:
        with conn.cursor() as cur:
            cur.execute('SET SESSION long_query_time = 0.1')
            cur.execute('SELECT SLEEP(0.3)')
    finally:
        conn.close()
    after = info(mariadb_server, gather_subset=['metrics'])['metrics']['slow_queries']
    assert after['count'] == before['count'] + 1
    assert int(catalog_value(mariadb_server, "SELECT VARIABLE_VALUE FROM information_schema.GLOBAL_STATUS "
                                             "WHERE VARIABLE_NAME = 'SLOW_QUERIES'")) == after['count']


def test_sampling_gives_rates_under_load(server):
    database = None
    if server.engine == 'postgresql':
        database = 'dbinfo_pss'
        if not int(server.psql("SELECT count(*) FROM pg_database WHERE datname = '%s'" % database)):
            server.psql('CREATE DATABASE %s' % database)
        server.psql('CREATE EXTENSION IF NOT EXISTS pg_stat_statements', database=database)
    stop = threading.Event()

    def load():
        conn = server.connect(database) if database else server.connect()
        try:
            with conn.cursor() as cur:
                while not stop.is_set():
                    cur.execute('SELECT 1')
                    cur.fetchall()
                    time.sleep(0.01)
        finally:
            conn.close()

    thread = threading.Thread(target=load, daemon=True)
    thread.start()
    try:
        options = {'gather_subset': ['metrics'], 'sample_seconds': 1.5}
        if database:
            options['login_db'] = database
        metrics = info(server, **options)['metrics']
    finally:
        stop.set()
        thread.join(10)
    assert metrics['sample_seconds'] == 1.5
    assert metrics['queries_per_second'] > 10
    assert metrics['transactions_per_second'] is not None and metrics['transactions_per_second'] >= 0
    unsampled = info(server, gather_subset=['metrics'])['metrics']
    assert 'queries_per_second' not in unsampled and 'transactions_per_second' not in unsampled


def test_idle_server_does_not_count_db_info_own_queries(server):
    """The statements db_info sends between its two samples are not the server's load."""
    options = {'gather_subset': ['metrics'], 'sample_seconds': 1.0}
    if server.engine == 'postgresql':
        options['login_db'] = 'dbinfo_pss'
        if not int(server.psql("SELECT count(*) FROM pg_database WHERE datname = 'dbinfo_pss'")):
            server.psql('CREATE DATABASE dbinfo_pss')
        server.psql('CREATE EXTENSION IF NOT EXISTS pg_stat_statements', database='dbinfo_pss')
    metrics = info(server, **options)['metrics']
    assert metrics['queries_per_second'] is not None
    assert metrics['queries_per_second'] < 1.0, metrics['queries_per_second']


def test_check_mode_and_bad_thresholds(server):
    assert info(server, check=True, gather_subset=['server'])['server']['engine'] == server.engine
    result = run_module('db_info', dict(server.conn, thresholds={'connections': {'warning': 95, 'critical': 90}}))
    assert result['failed'] is True
    assert 'invalid thresholds' in result['msg'] and 'above critical' in result['msg']


@pytest.mark.parametrize('options, named', [
    ({'sample_seconds': -1}, 'sample_seconds must be 0 (no sample) or more seconds, not -1'),
    ({'sample_seconds': 'inf'}, 'sample_seconds must be a finite number'),
    ({'sample_seconds': 'nan'}, 'sample_seconds must be a finite number'),
    ({'sample_seconds': 'soon'}, "argument 'sample_seconds'"),
    ({'slow_query_ms': -5}, 'slow_query_ms must be 0 or more milliseconds, not -5'),
    ({'thresholds': {'replication_lag': {'warning': 'inf'}}}, 'threshold replication_lag.warning must be a finite'),
    ({'thresholds': {'connections': {'warning': 'nan'}}}, 'threshold connections.warning must be a finite'),
    ({'thresholds': {'disk': {'warning': True}}}, 'threshold disk.warning must be a number, not the boolean'),
    ({'thresholds': {'connections': {'warning': 150, 'critical': 180}}}, 'threshold connections.warning is a percentage'),
    ({'thresholds': {'slow_queries': {'warning': 'ten'}}}, "threshold slow_queries.warning must be a number, not 'ten'"),
])
def test_bad_sampling_and_threshold_options_are_refused_by_name(pg_server, options, named):
    result = run_module('db_info', dict(pg_server.conn, gather_subset=['metrics'], **options))
    assert result['failed'] is True, options
    assert named in result['msg'], result['msg']
    assert 'Traceback' not in result['_stdout'] + result['_stderr']


def test_mariadb_slow_queries_from_the_slow_log_table(mariadb_server):
    original = dict(mariadb_server.sql("SHOW GLOBAL VARIABLES WHERE Variable_name IN ('log_output', 'slow_query_log')"))
    mariadb_server.sql("SET GLOBAL log_output = 'TABLE'")
    mariadb_server.sql('SET GLOBAL slow_query_log = ON')
    try:
        conn = mariadb_server.connect()
        try:
            with conn.cursor() as cur:
                cur.execute('SET SESSION long_query_time = 0.1')
                cur.execute('SELECT SLEEP(0.4) AS dbops_slow_log_probe')
        finally:
            conn.close()
        slow = info(mariadb_server, gather_subset=['metrics'], slow_query_ms=300)['metrics']['slow_queries']
        assert slow['source'] == 'slow_log'
        in_log = int(catalog_value(mariadb_server, "SELECT COUNT(*) FROM mysql.slow_log WHERE query_time >= "
                                                   "SEC_TO_TIME(0.3) AND start_time >= NOW() - INTERVAL 60 MINUTE"))
        assert slow['count'] == in_log >= 1
        assert any('dbops_slow_log_probe' in t['query'] for t in slow['top'])
    finally:
        mariadb_server.sql("SET GLOBAL slow_query_log = %s" % original['slow_query_log'])
        mariadb_server.sql("SET GLOBAL log_output = '%s'" % original['log_output'])


def test_slow_statements_never_return_a_password_they_carry(server):
    """pg_stat_statements keeps CREATE ROLE ... PASSWORD verbatim, the slow log keeps IDENTIFIED BY: mask them."""
    secret = 'Leak-Me-Not-8841'
    options = {'gather_subset': ['metrics'], 'slow_query_ms': 0}
    if server.engine == 'postgresql':
        options['login_db'] = 'dbinfo_secret'
        if not int(server.psql("SELECT count(*) FROM pg_database WHERE datname = 'dbinfo_secret'")):
            server.psql('CREATE DATABASE dbinfo_secret')
        server.psql('CREATE EXTENSION IF NOT EXISTS pg_stat_statements', database='dbinfo_secret')
        server.psql('SELECT pg_stat_statements_reset()', database='dbinfo_secret')
        server.psql("CREATE ROLE dbinfo_leaky LOGIN PASSWORD '%s'" % secret, database='dbinfo_secret')
        cleanup = 'DROP ROLE dbinfo_leaky'
        kept = server.psql("SELECT count(*) FROM pg_stat_statements WHERE query LIKE '%%%s%%'" % secret,
                           database='dbinfo_secret')
    else:
        original = dict(server.sql("SHOW GLOBAL VARIABLES WHERE Variable_name IN ('log_output', 'slow_query_log')"))
        server.sql("SET GLOBAL log_output = 'TABLE'")
        server.sql('SET GLOBAL slow_query_log = ON')
        conn = server.connect()
        try:
            with conn.cursor() as cur:
                cur.execute('SET SESSION long_query_time = 0')
                cur.execute("CREATE USER dbinfo_leaky@'127.0.0.1' IDENTIFIED BY '%s'" % secret)
        finally:
            conn.close()
        cleanup = "DROP USER 'dbinfo_leaky'@'127.0.0.1'"
        kept = catalog_value(server, "SELECT COUNT(*) FROM mysql.slow_log WHERE sql_text LIKE '%%%s%%'" % secret)
    try:
        assert int(kept) >= 1  # the server does keep the statement with its password: the case this test is about
        result = info(server, **options)
        top = result['metrics']['slow_queries']['top']
        leaky = [t['query'] for t in top if 'dbinfo_leaky' in t['query']]
        assert leaky, top  # the statement is among the slowest returned
        assert "'********'" in leaky[0]
        assert secret not in str(result)
    finally:
        if server.engine == 'postgresql':
            server.psql(cleanup)
        else:
            server.sql(cleanup)
            server.sql("SET GLOBAL slow_query_log = %s" % original['slow_query_log'])
            server.sql("SET GLOBAL log_output = '%s'" % original['log_output'])


def test_mariadb_slow_queries_from_performance_schema():
    from servers import MariadbServer
    server = MariadbServer(settings={'performance_schema': 'ON'}).init().start()
    try:
        conn = server.connect()
        try:
            with conn.cursor() as cur:
                cur.execute('SELECT SLEEP(0.35)')
        finally:
            conn.close()
        slow = info(server, gather_subset=['metrics'], slow_query_ms=300)['metrics']['slow_queries']
        assert slow['source'] == 'performance_schema'
        assert slow['count'] >= 1
        assert any('SLEEP' in t['query'].upper() and t['mean_ms'] >= 300 for t in slow['top'])
        assert info(server, gather_subset=['metrics'], slow_query_ms=60000)['metrics']['slow_queries']['count'] == 0
    finally:
        server.destroy()


def test_postgresql_streaming_standby_and_its_primary(pg_server):
    """A caught-up standby of an idle primary has no lag; the primary lists its replica."""
    import servers
    standby = servers.PostgresServer()
    try:
        servers._as_user(standby.user, [standby.bin('pg_basebackup'), '-h', '127.0.0.1', '-p', str(pg_server.port),
                                        '-U', pg_server.superuser, '-D', standby.data_dir, '-R', '-X', 'stream',
                                        '-c', 'fast'],
                         env=dict(os.environ, PGPASSWORD=pg_server.password))
        with open(os.path.join(standby.data_dir, 'postgresql.auto.conf'), 'a') as handle:
            handle.write("port = %d\nunix_socket_directories = '%s'\n" % (standby.port, standby.socket_dir))
        standby.start()

        deadline = time.time() + 20
        while True:
            replication = info(standby, gather_subset=['replication'])['metrics']['replication']
            if replication['lag_bytes'] == 0 or time.time() > deadline:
                break
            time.sleep(0.5)
        assert replication['role'] == 'replica'
        assert replication['lag_bytes'] == 0
        assert replication['lag_seconds'] == 0          # idle primary: all received WAL is replayed
        assert replication['receive_lsn'] == replication['replay_lsn']
        assert replication['receiver']['status'] == 'streaming'
        assert standby.psql('SELECT pg_is_in_recovery()') == 't'

        primary = info(pg_server, gather_subset=['replication'])['metrics']['replication']
        assert primary['role'] == 'primary'
        assert len(primary['replicas']) == 1
        assert primary['replicas'][0]['state'] == 'streaming'
        assert primary['replicas'][0]['client_addr'] == '127.0.0.1'
        assert primary['lag_seconds'] is not None and primary['lag_seconds'] < 30
        # the walsender is 'active' (START_REPLICATION) as long as it streams: not a long-running query
        walsenders = pg_server.psql("SELECT count(*) FROM pg_stat_activity WHERE backend_type = 'walsender' "
                                    "AND state = 'active' AND query_start < now() - interval '200 milliseconds'")
        assert walsenders == '1'
        slow = info(pg_server, gather_subset=['metrics'], slow_query_ms=100)['metrics']['slow_queries']
        assert slow['running'] == 0, slow
        # while a client query that does run long is counted
        sleeper = threading.Thread(target=pg_server.psql, args=('SELECT pg_sleep(1.5)',), daemon=True)
        sleeper.start()
        time.sleep(0.6)
        slow = info(pg_server, gather_subset=['metrics'], slow_query_ms=100)['metrics']['slow_queries']
        sleeper.join()
        assert slow['running'] == 1, slow
        # thresholds apply to the lag: a zero threshold raises an alert, the default does not
        loud = info(standby, gather_subset=['replication'], thresholds={'replication_lag': {'warning': 0}})
        assert [a['level'] for a in loud['alerts'] if a['metric'] == 'replication_lag'] == ['warning']
        assert not info(standby, gather_subset=['replication'])['alerts']
    finally:
        standby.destroy()


def test_least_privileged_login_still_gets_a_report(server):
    """A login without monitoring privileges gets what it may read; the rest is null with a reason, no failure."""
    user, password = 'dbinfo_plain', 'Plain-Info-Pw-31'
    conn = server.connect()
    try:
        with conn.cursor() as cur:
            if server.engine == 'postgresql':
                cur.execute("CREATE ROLE %s LOGIN PASSWORD '%s'" % (user, password))
            else:
                cur.execute("CREATE USER '%s'@'127.0.0.1' IDENTIFIED BY '%s'" % (user, password))
        options = dict(server.conn, login_user=user, login_password=password)
        result = run_module('db_info', options)
        assert not result['failed'], result.get('msg')
        assert password not in str(result)
        metrics = result['metrics']
        assert metrics['connections']['max'] == FRESH_MAX_CONNECTIONS[server.engine]
        assert metrics['connections']['total'] >= 1
        replication = metrics['replication']
        if server.engine == 'mysql':
            # SHOW ALL SLAVES STATUS is refused: the role is not known, and the reason says why
            assert replication['role'] == 'unknown'
            assert 'privilege' in replication['reason']
        else:
            assert replication['role'] == 'standalone'
        assert not [a for a in result['alerts'] if a['metric'] == 'replication_lag']
    finally:
        with conn.cursor() as cur:
            if server.engine == 'postgresql':
                cur.execute('DROP ROLE IF EXISTS %s' % user)
            else:
                cur.execute("DROP USER IF EXISTS '%s'@'127.0.0.1'" % user)
        conn.close()


def test_mariadb_data_directory_without_trailing_slash(mariadb_server):
    disk = info(mariadb_server, gather_subset=['metrics'])['metrics']['disk']
    assert disk['path'] == os.path.abspath(mariadb_server.data_dir)
    assert not disk['path'].endswith('/')


def test_mariadb_replica_with_stopped_threads_is_critical(mariadb_server):
    """A replica that does not replicate reports no Seconds_Behind_Master: that must alert, not pass."""
    from servers import free_port
    mariadb_server.sql("CHANGE MASTER TO MASTER_HOST='127.0.0.1', MASTER_PORT=%d, MASTER_USER='repl', "
                       "MASTER_PASSWORD='Repl-Secret-Pw-9'" % free_port())
    try:
        result = info(mariadb_server, gather_subset=['replication'])
        replication = result['metrics']['replication']
        assert replication['role'] == 'replica' and replication['running'] is False
        assert replication['lag_seconds'] is None
        alerts = [a for a in result['alerts'] if a['metric'] == 'replication_lag']
        assert [a['level'] for a in alerts] == ['critical']
        assert 'stopped' in alerts[0]['message']
        assert 'Repl-Secret-Pw-9' not in str(result)
    finally:
        mariadb_server.sql('RESET SLAVE ALL')
    assert info(mariadb_server, gather_subset=['replication'])['metrics']['replication']['role'] == 'standalone'


def test_mariadb_replica_whose_io_thread_cannot_connect_reports_last_io_error(mariadb_server):
    """A broken I/O thread leaves Last_Error empty: its error is only in Last_IO_Error, and must be reported."""
    from servers import free_port
    port = free_port()
    mariadb_server.sql("CHANGE MASTER TO MASTER_HOST='127.0.0.1', MASTER_PORT=%d, MASTER_USER='repl', "
                       "MASTER_PASSWORD='Repl-Io-Secret-7', MASTER_CONNECT_RETRY=1" % port)
    try:
        mariadb_server.sql('START SLAVE')
        deadline = time.time() + 20
        while not catalog_value(mariadb_server, "SELECT COUNT(*) FROM information_schema.PROCESSLIST "
                                                "WHERE STATE LIKE 'Connecting to master%'") \
                or not _last_io_error(mariadb_server):
            assert time.time() < deadline, 'the I/O thread never failed to connect'
            time.sleep(0.3)
        expected = _last_io_error(mariadb_server)
        result = info(mariadb_server, gather_subset=['replication'])
        channel = result['metrics']['replication']['channels'][0]
        assert channel['io_running'] is False and channel['io_state'] == 'Connecting'
        assert channel['sql_running'] is True and channel['last_sql_error'] is None
        assert channel['last_io_error'] == expected and '127.0.0.1:%d' % port in channel['last_io_error']
        alerts = [a for a in result['alerts'] if a['metric'] == 'replication_lag']
        assert [a['level'] for a in alerts] == ['critical']
        assert 'last I/O error: %s' % expected in alerts[0]['message'] and 'Connecting' in alerts[0]['message']
        assert 'Repl-Io-Secret-7' not in str(result)
    finally:
        mariadb_server.sql('STOP SLAVE')
        mariadb_server.sql('RESET SLAVE ALL')
    assert info(mariadb_server, gather_subset=['replication'])['metrics']['replication']['role'] == 'standalone'


def _last_io_error(server):
    conn = server.connect()
    try:
        with conn.cursor() as cur:
            cur.execute('SHOW ALL SLAVES STATUS')
            names = [d[0] for d in cur.description]
            row = cur.fetchone()
            return dict(zip(names, row))['Last_IO_Error'] if row else None
    finally:
        conn.close()


def test_postgresql_standby_that_cannot_reach_its_primary_is_critical(pg_server):
    """received = replayed said "lag 0" for a standby whose WAL receiver never connects."""
    import servers
    standby = servers.PostgresServer()
    try:
        servers._as_user(standby.user, [standby.bin('pg_basebackup'), '-h', '127.0.0.1', '-p', str(pg_server.port),
                                        '-U', pg_server.superuser, '-D', standby.data_dir, '-R', '-X', 'stream',
                                        '-c', 'fast'],
                         env=dict(os.environ, PGPASSWORD=pg_server.password))
        with open(os.path.join(standby.data_dir, 'postgresql.auto.conf'), 'a') as handle:
            handle.write("port = %d\nunix_socket_directories = '%s'\n" % (standby.port, standby.socket_dir))
            handle.write("primary_conninfo = 'host=127.0.0.1 port=%d user=postgres connect_timeout=2'\n"
                         % servers.free_port())
        standby.start()
        deadline = time.time() + 15
        while True:  # the WAL receiver is restarted every few seconds; catch it between two attempts
            result = info(standby, gather_subset=['replication'])
            replication = result['metrics']['replication']
            if replication['running'] is False or time.time() > deadline:
                break
            time.sleep(0.5)
        assert replication['role'] == 'replica'
        assert replication['running'] is False and replication['lag_seconds'] is None
        assert replication['lag_bytes'] is None  # nothing streams: the bytes behind are unknown, not 0 or negative
        assert [a['level'] for a in result['alerts'] if a['metric'] == 'replication_lag'] == ['critical']
        assert 'WAL receiver' in result['alerts'][0]['message']
    finally:
        standby.destroy()


def test_postgresql_restarted_standby_of_an_idle_primary_has_no_lag(pg_server):
    """After a restart the receiver reports the segment start as received, behind what was replayed.

    That gave a negative lag_bytes and, as lag_seconds, the growing age of the last replayed transaction.
    """
    import servers
    standby = servers.PostgresServer()
    try:
        servers._as_user(standby.user, [standby.bin('pg_basebackup'), '-h', '127.0.0.1', '-p', str(pg_server.port),
                                        '-U', pg_server.superuser, '-D', standby.data_dir, '-R', '-X', 'stream',
                                        '-c', 'fast'],
                         env=dict(os.environ, PGPASSWORD=pg_server.password))
        with open(os.path.join(standby.data_dir, 'postgresql.auto.conf'), 'a') as handle:
            handle.write("port = %d\nunix_socket_directories = '%s'\n" % (standby.port, standby.socket_dir))
        standby.start()
        pg_server.psql('CREATE TABLE IF NOT EXISTS dbinfo_restart_probe (a int); '
                       'INSERT INTO dbinfo_restart_probe VALUES (1)')
        lsn = pg_server.psql('SELECT pg_current_wal_lsn()')
        deadline = time.time() + 20
        while standby.psql("SELECT pg_last_wal_replay_lsn() >= '%s'" % lsn) != 't' and time.time() < deadline:
            time.sleep(0.3)
        standby.stop()
        time.sleep(2)  # the last replayed transaction is now seconds old, and the primary writes nothing more
        standby.start()
        deadline = time.time() + 20
        while standby.psql("SELECT count(*) FROM pg_stat_wal_receiver WHERE status = 'streaming'") != '1':
            assert time.time() < deadline, 'the standby did not stream again'
            time.sleep(0.3)
        replication = info(standby, gather_subset=['replication'])['metrics']['replication']
        received, replayed = standby.psql(
            'SELECT pg_last_wal_receive_lsn() <= pg_last_wal_replay_lsn(), '
            'pg_last_xact_replay_timestamp() < now() - interval \'1 second\'').split('|')
        assert (received, replayed) == ('t', 't')  # the situation this test is about
        assert replication['role'] == 'replica' and replication['running'] is True
        assert replication['lag_seconds'] == 0, replication
        assert replication['lag_bytes'] == 0, replication
        result = info(standby, gather_subset=['replication'], thresholds={'replication_lag': {'warning': 1}})
        assert not result['alerts']
    finally:
        standby.destroy()


def test_postgresql_primary_whose_standby_is_gone_but_its_slot_holds_wal_is_critical(pg_server):
    """No walsender made the primary look standalone and healthy while the standby's slot kept WAL."""
    assert info(pg_server, gather_subset=['replication'])['metrics']['replication']['role'] == 'standalone'
    pg_server.psql("SELECT pg_create_physical_replication_slot('dbinfo_unused')")            # reserves nothing
    try:
        result = info(pg_server, gather_subset=['replication'])
        assert result['metrics']['replication']['role'] == 'standalone' and not result['alerts']
        pg_server.psql("SELECT pg_create_physical_replication_slot('dbinfo_gone', true)")    # holds WAL
        retained = int(pg_server.psql("SELECT pg_wal_lsn_diff(pg_current_wal_lsn(), restart_lsn) "
                                      "FROM pg_replication_slots WHERE slot_name = 'dbinfo_gone'"))
        result = info(pg_server, gather_subset=['replication'])
        replication = result['metrics']['replication']
        assert replication['role'] == 'primary' and replication['running'] is False, replication
        assert replication['replicas'] == []
        slot = [s for s in replication['slots'] if s['name'] == 'dbinfo_gone'][0]
        assert slot['active'] is False and slot['retained_bytes'] >= retained
        alerts = [a for a in result['alerts'] if a['metric'] == 'replication_lag']
        assert [a['level'] for a in alerts] == ['critical'] and alerts[0]['value'] is None
        assert 'slot dbinfo_gone has no standby connected' in alerts[0]['message']
        assert 'dbinfo_unused' not in alerts[0]['message']
    finally:
        pg_server.psql("SELECT pg_drop_replication_slot(slot_name) FROM pg_replication_slots "
                       "WHERE slot_name IN ('dbinfo_unused', 'dbinfo_gone')")
    assert info(pg_server, gather_subset=['replication'])['metrics']['replication']['role'] == 'standalone'


def test_postgresql_base_backup_in_progress_is_not_a_replica(pg_server):
    """pg_basebackup's two walsenders (state backup, and its WAL stream) replay nothing: no replica, no primary."""
    import subprocess

    import servers
    dest = os.path.join(servers.make_workdir('dbops-bb-', pg_server.user), 'copy')
    argv = [pg_server.bin('pg_basebackup'), '-h', '127.0.0.1', '-p', str(pg_server.port), '-U', pg_server.superuser,
            '-D', dest, '-X', 'stream', '--max-rate=32k']
    if os.geteuid() == 0:
        argv = ['runuser', '-u', pg_server.user, '--'] + argv
    proc = subprocess.Popen(argv, env=dict(os.environ, PGPASSWORD=pg_server.password), start_new_session=True,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.time() + 20
        while pg_server.psql("SELECT count(*) FROM pg_stat_replication WHERE state = 'backup'") != '1' \
                or pg_server.psql("SELECT count(*) FROM pg_stat_replication WHERE state = 'streaming'") != '1':
            assert proc.poll() is None and time.time() < deadline, 'the base backup did not start streaming'
            time.sleep(0.2)
        result = info(pg_server, gather_subset=['replication'])
        assert proc.poll() is None  # still running while db_info looked
        replication = result['metrics']['replication']
        assert replication['role'] == 'standalone', replication
        assert replication['replicas'] == [] and replication['lag_seconds'] is None
        assert sorted(c['state'] for c in replication['wal_clients']) == ['backup', 'streaming']
        assert not result['alerts']
    finally:
        os.killpg(proc.pid, 9)
        proc.wait()
        # an idle WAL stream would notice its client is gone only after wal_sender_timeout
        pg_server.psql("SELECT pg_terminate_backend(pid) FROM pg_stat_replication WHERE application_name = 'pg_basebackup'")
        import shutil
        shutil.rmtree(os.path.dirname(dest), ignore_errors=True)
