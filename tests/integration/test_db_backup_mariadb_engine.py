# -*- coding: utf-8 -*-
"""The MariaDB backup engine driven directly (no catalog, no module) on throw-away servers.

Every restore goes into a new database or a new data directory and is compared with the
source (row counts and CHECKSUM TABLE per table).
"""

from __future__ import annotations

import contextlib
import datetime
import os
import shutil
import tempfile
import time

import pytest
from servers import MariadbServer, free_port, make_workdir

from ansible_collections.dbops.admin.plugins.module_utils._connection import connect_params
from ansible_collections.dbops.admin.plugins.module_utils._engines import mysql_backup as mb
from ansible_collections.dbops.admin.plugins.module_utils._errors import DbError

pytestmark = pytest.mark.skipif(shutil.which('mariadb-backup') is None, reason='mariadb-backup not installed')


@contextlib.contextmanager
def own_mariadb():
    """A throw-away MariaDB server for the backup tests' fixtures, destroyed afterwards."""
    server = MariadbServer().init().start()
    try:
        yield server
    finally:
        server.destroy()


@contextlib.contextmanager
def mariadb_workdir(prefix):
    """A work directory the mysql OS user owns; afterwards every instance a restore started in it
    (a directory holding mysqld.pid) is stopped and the directory removed."""
    path = make_workdir(prefix, 'mysql')
    try:
        yield path
    finally:
        for root, dirs, _files in os.walk(path):
            for name in dirs:
                if os.path.isfile(os.path.join(root, name, 'mysqld.pid')):
                    mb.stop_instance(os.path.join(root, name))
        shutil.rmtree(path, ignore_errors=True)


@pytest.fixture(scope='module')
def source():
    with own_mariadb() as server:
        yield server


@pytest.fixture()
def scratch():
    with mariadb_workdir('dbops-bk-') as path:
        yield path


def engine_of(server, path='tsv'):
    """The engine as root (table data through tab-separated files), or as a login without the FILE
    privilege (path 'sql': the server may not write files, so mariadb-dump carries the data)."""
    if path == 'tsv':
        return connect_params(server.conn)
    server.sql("CREATE USER IF NOT EXISTS 'nofile'@'127.0.0.1' IDENTIFIED BY 'nofile-pw'")
    server.sql("GRANT ALL PRIVILEGES ON *.* TO 'nofile'@'127.0.0.1'")
    server.sql("REVOKE FILE ON *.* FROM 'nofile'@'127.0.0.1'")
    return connect_params(dict(server.conn, login_user='nofile', login_password='nofile-pw'))


def tsv_files(db, tables, ext='.zst'):
    return ['%s.schema.sql%s' % (db, ext), '%s.triggers.sql%s' % (db, ext), '%s.objects.sql%s' % (db, ext)] + [
        '%s.%s.tsv%s' % (db, t, ext) for t in tables]


def request(dest, repo, **kw):
    req = {'method': 'logical', 'type': 'full', 'databases': None, 'compression': 'zstd',
           'compression_level': None, 'jobs': 2, 'dest': dest, 'base': None, 'repo': repo,
           'log_dir': os.path.join(repo, 'logs'), 'bin_dir': None, 'os_user': None}
    req.update(kw)
    os.makedirs(dest, exist_ok=True)
    return req


def manifest_of(result, btype='full', method='physical', backup_id=None):
    man = dict(result)
    man.update({'type': btype, 'method': method, 'engine': 'mysql', 'id': backup_id or btype})
    return man


def fill(server, db, rows, start=0):
    server.sql('CREATE DATABASE IF NOT EXISTS `%s`' % db)
    server.sql('CREATE TABLE IF NOT EXISTS t1 (id INT PRIMARY KEY, name VARCHAR(80), amount DECIMAL(12,2), '
               'note TEXT, blob_col BLOB, made TIMESTAMP(6) NULL) CHARSET utf8mb4', db)
    server.sql('CREATE TABLE IF NOT EXISTS t2 (id INT AUTO_INCREMENT PRIMARY KEY, t1_id INT, '
               'tag VARCHAR(20), KEY (t1_id)) CHARSET utf8mb4', db)
    values = ','.join(
        "(%d, 'n\u00e9me-%d \\'q\\'', %d.%02d, %s, UNHEX('%s'), '2024-01-%02d 12:00:00.%06d')"
        % (i, i, i * 3, i % 100, 'NULL' if i % 7 == 0 else "'line1\\nline2 %d'" % i,
           ('%04x' % (i % 65536)) * 3, i % 28 + 1, i)
        for i in range(start, start + rows))
    server.sql('INSERT INTO t1 VALUES ' + values, db)
    server.sql('INSERT INTO t2 (t1_id, tag) SELECT id, CONCAT("tag", MOD(id, 13)) FROM t1 WHERE id >= %d' % start, db)


def add_objects(server, db):
    server.sql('CREATE OR REPLACE VIEW v_big AS SELECT id, amount FROM t1 WHERE amount > 100', db)
    server.sql('CREATE TRIGGER trg_t2 BEFORE INSERT ON t2 FOR EACH ROW SET NEW.tag = UPPER(NEW.tag)', db)
    server.sql('CREATE PROCEDURE p_count(OUT n INT) SELECT COUNT(*) INTO n FROM t1', db)


def table_state(server, db):
    """{table: (rows, CHECKSUM TABLE)} of every base table."""
    tables = [r[0] for r in server.sql("SELECT TABLE_NAME FROM information_schema.TABLES WHERE TABLE_SCHEMA = "
                                       "'%s' AND TABLE_TYPE = 'BASE TABLE' ORDER BY 1" % db)]
    state = {}
    for table in tables:
        count = server.sql('SELECT COUNT(*) FROM `%s`.`%s`' % (db, table))[0][0]
        checksum = server.sql('CHECKSUM TABLE `%s`.`%s`' % (db, table))[0][1]
        state[table] = (count, checksum)
    return state


class Restored:
    """A restored instance (same users as the source) reachable like a MariadbServer."""

    def __init__(self, result, password):
        self.port = result['port']
        self.data_dir = result['data_dir']
        self.password = password

    def connect(self, database=None):
        import pymysql
        return pymysql.connect(host='127.0.0.1', port=self.port, user='root', password=self.password,
                               database=database, autocommit=True)

    def sql(self, sql, database=None):
        conn = self.connect(database)
        try:
            with conn.cursor() as cur:
                cur.execute(sql)
                return cur.fetchall()
        finally:
            conn.close()


def restore(chain, scratch, name, **kw):
    data_dir = os.path.join(scratch, name)
    req = {'chain': chain, 'data_dir': data_dir, 'port': free_port(), 'os_user': 'mysql', 'bin_dir': None,
           'target_time': None, 'target_position': None, 'log_dir': None, 'force': False}
    req.update(kw)
    return mb.restore_physical(req)


# ---- logical ---------------------------------------------------------------------------------
def test_logical_full_backup_restores_identical_tables_into_another_database(source, scratch):
    fill(source, 'shop', 3000)
    add_objects(source, 'shop')
    fill(source, 'crm', 500)
    engine = engine_of(source)
    try:
        dest = os.path.join(scratch, 'logical')
        result = engine.backup_create(request(dest, scratch, databases=None, jobs=2))
        assert sorted(result['databases']) == ['crm', 'shop']
        assert result['stop_position']['binlog_file'].startswith('mysql-bin.')
        assert all(source.password not in c for c in result['commands'])
        assert all('--password' not in c for c in result['commands'])
        files = sorted(os.listdir(dest))
        assert result['details']['table_data'] == 'tsv'
        # accounts.json: the definer of shop's objects (add_objects), recreated by roles=create
        assert files == sorted(tsv_files('crm', ['t1', 't2']) + tsv_files('shop', ['t1', 't2'])
                               + [mb.INDEX_FILE, mb.ACCOUNTS_FILE])
        assert {d['database']: d['accounts'] for d in result['details']['dumps']} == \
            {'crm': [], 'shop': [['root', '127.0.0.1']]}
        # the table files were hashed while written; every file is durable
        assert sorted(result['verified_checksums']) == ['crm.t1.tsv.zst', 'crm.t2.tsv.zst', 'shop.t1.tsv.zst',
                                                        'shop.t2.tsv.zst']
        assert result['verified_checksums']['shop.t1.tsv.zst'] == mb.sha256_file(os.path.join(dest, 'shop.t1.tsv.zst'))
        assert result['synced'] is True
        assert mb.verify_logical(manifest_of(result, method='logical'), dest) == []
        before = table_state(source, 'shop')
        # change the source after the backup: the restore must show the backup, not now
        source.sql('DELETE FROM t1 WHERE id < 10', 'shop')
        out = engine.restore_logical({'manifest': manifest_of(result, method='logical'), 'path': dest,
                                      'target_database': 'shop_copy', 'databases': ['shop'], 'force': False,
                                      'jobs': 2, 'marker': {'backup_id': 'b1'}})
        after = table_state(source, 'shop_copy')
        assert after == before
        assert out['rows_restored'] == sum(v[0] for v in before.values())
        assert {(t['database'], t['name']): t['rows'] for t in out['tables']} == {
            ('shop_copy', k): v[0] for k, v in before.items()}
        # the row counts recorded at the snapshot of the dumps
        dumps = {d['database']: {t['name']: t['rows'] for t in d['tables']} for d in result['details']['dumps']}
        assert dumps['shop'] == {k: v[0] for k, v in before.items()}
        assert engine.check_database({}, 'shop_copy') == []
        # views, triggers and routines came along
        assert source.sql("SELECT COUNT(*) FROM information_schema.VIEWS WHERE TABLE_SCHEMA='shop_copy'")[0][0] == 1
        assert source.sql("SELECT COUNT(*) FROM information_schema.TRIGGERS "
                          "WHERE TRIGGER_SCHEMA='shop_copy'")[0][0] == 1
        assert source.sql("SELECT COUNT(*) FROM information_schema.ROUTINES "
                          "WHERE ROUTINE_SCHEMA='shop_copy'")[0][0] == 1
        assert engine.restore_marker('shop_copy') == {'backup_id': 'b1', 'source_database': 'shop'}
        # the restore into a non-empty database without force changes nothing
        source.sql('INSERT INTO t2 (t1_id, tag) VALUES (-1, "keep")', 'shop_copy')
        kept = table_state(source, 'shop_copy')
        with pytest.raises(DbError, match='shop_copy.*force'):
            engine.restore_logical({'manifest': {}, 'path': dest, 'target_database': 'shop_copy',
                                    'databases': ['shop'], 'force': False, 'jobs': 1})
        assert table_state(source, 'shop_copy') == kept
        # with force it is replaced by the backup again
        engine.restore_logical({'manifest': {}, 'path': dest, 'target_database': 'shop_copy',
                                'databases': ['shop'], 'force': True, 'jobs': 1})
        assert table_state(source, 'shop_copy') == before
    finally:
        engine.close()


@pytest.mark.parametrize('path', ['tsv', 'sql'])
def test_logical_one_database_split_over_jobs_restores_identical(source, scratch, path):
    wide = 'wide_' + path
    fill(source, wide, 1500)
    add_objects(source, wide)
    for i in range(3):
        source.sql('CREATE TABLE extra%d (id INT PRIMARY KEY, v VARCHAR(10))' % i, wide)
        source.sql("INSERT INTO extra%d SELECT id, 'x' FROM t1 WHERE id < %d" % (i, 100 * (i + 1)), wide)
    source.sql("CREATE EVENT ev_noop ON SCHEDULE EVERY 1 DAY DISABLE DO SELECT 1", wide)
    engine = engine_of(source, path)
    copy = wide + '_copy'
    try:
        dest = os.path.join(scratch, 'split')
        result = engine.backup_create(request(dest, scratch, databases=[wide], jobs=3))
        assert result['details']['table_data'] == path
        assert result['details']['split_tables'] is True and result['details']['processes'] == 3
        dump = result['details']['dumps'][0]
        if path == 'sql':
            assert 'FILE privilege' in result['details']['tsv_unavailable']
            assert len(dump['files']) == 3 and dump['post'] == [wide + '.objects.sql.zst']
        else:
            # one file per table, loaded in parallel after the schema file, triggers and objects after them
            tables = ('extra0', 'extra1', 'extra2', 't1', 't2')
            assert sorted(dump['files']) == ['%s.%s.tsv.zst' % (wide, t) for t in tables]
            assert dump['pre'] == [wide + '.schema.sql.zst']
            assert dump['post'] == [wide + '.triggers.sql.zst', wide + '.objects.sql.zst']
        # accounts.json when the objects have a definer or accounts hold privileges on the database
        assert sorted(os.listdir(dest)) == sorted(dump.get('pre', []) + dump['files'] + dump['post'] + [mb.INDEX_FILE]
                                                  + ([mb.ACCOUNTS_FILE] if dump['accounts'] else []))
        assert mb.verify_logical({}, dest) == []
        expected = table_state(source, wide)
        assert {t['name']: t['rows'] for t in dump['tables']} == {k: v[0] for k, v in expected.items()}
        out = engine.restore_logical({'manifest': {}, 'path': dest, 'target_database': copy, 'force': False,
                                      'jobs': 3})
        assert table_state(source, copy) == expected
        assert out['rows_restored'] == sum(v[0] for v in expected.values())
        for kind, sql in (('view', "SELECT COUNT(*) FROM information_schema.VIEWS WHERE TABLE_SCHEMA='%s'"),
                          ('trigger', "SELECT COUNT(*) FROM information_schema.TRIGGERS WHERE TRIGGER_SCHEMA='%s'"),
                          ('routine', "SELECT COUNT(*) FROM information_schema.ROUTINES WHERE ROUTINE_SCHEMA='%s'"),
                          ('event', "SELECT COUNT(*) FROM information_schema.EVENTS WHERE EVENT_SCHEMA='%s'")):
            assert source.sql(sql % copy)[0][0] == 1, kind
        assert source.sql('SELECT COUNT(*) FROM v_big', copy) == source.sql('SELECT COUNT(*) FROM v_big', wide)
        # the trigger was created after the data: loading did not upper-case the tags
        assert source.sql('SELECT COUNT(*) FROM t2 WHERE BINARY tag <> BINARY LOWER(tag)', copy)[0][0] == 0
        # a truncated table file is caught by verification, naming it
        victim = os.path.join(dest, dump['files'][0])
        with open(victim, 'r+b') as f:
            f.truncate(os.path.getsize(victim) // 2)
        problems = mb.verify_logical({}, dest)
        assert problems and dump['files'][0] in problems[0]
    finally:
        engine.close()


def test_logical_restore_of_many_tables_loads_through_one_session_per_job(source, scratch):
    """Table files load through one kept session per job (not a client started and logged in per
    table); the data comes back exact, and a damaged table file fails the restore naming it."""
    db = 'many_tables'
    source.sql('CREATE DATABASE %s' % db)
    for i in range(30):
        source.sql('CREATE TABLE m%02d (id INT PRIMARY KEY, v VARCHAR(20), n TEXT NULL)' % i, db)
        source.sql("INSERT INTO m%02d VALUES (1, 'a\\tb', NULL), (2, 'x\\ny', 'ok'), (%d, 'z', '')" % (i, i + 3), db)
    engine = engine_of(source)
    try:
        dest = os.path.join(scratch, 'many')
        engine.backup_create(request(dest, scratch, databases=[db], jobs=2))
        expected = table_state(source, db)

        def connections():
            return int(source.sql("SHOW GLOBAL STATUS LIKE 'Connections'")[0][1])

        before = connections()
        out = engine.restore_logical({'manifest': {}, 'path': dest, 'target_database': db + '_copy', 'force': False,
                                      'jobs': 2})
        opened = connections() - before
        assert table_state(source, db + '_copy') == expected and out['rows_restored'] == 90
        # 2 load sessions + the schema, triggers and objects scripts (+ table_state's own connection)
        assert opened <= 2 + 3 + 2, opened
        # a table file cut short: the restore fails naming it, and leaves nothing behind
        victim = os.path.join(dest, '%s.m07.tsv.zst' % db)
        with open(victim, 'r+b') as f:
            f.truncate(os.path.getsize(victim) - 5)
        with pytest.raises(DbError, match='m07'):
            engine.restore_logical({'manifest': {}, 'path': dest, 'target_database': db + '_copy2', 'force': False,
                                    'jobs': 2})
        assert not source.sql("SHOW DATABASES LIKE '%s\\_copy2'" % db)
    finally:
        engine.close()
        source.sql('DROP DATABASE IF EXISTS %s' % db)
        source.sql('DROP DATABASE IF EXISTS %s_copy' % db)


def objects_of(server, db):
    """Views, triggers (with their table and body), routines and events of a database, with definers."""
    queries = {
        'views': "SELECT TABLE_NAME, DEFINER FROM information_schema.VIEWS WHERE TABLE_SCHEMA = '%s'",
        'triggers': "SELECT TRIGGER_NAME, EVENT_OBJECT_TABLE, ACTION_STATEMENT, DEFINER FROM information_schema.TRIGGERS "
                    "WHERE TRIGGER_SCHEMA = '%s'",
        'routines': "SELECT ROUTINE_NAME, ROUTINE_TYPE, DEFINER FROM information_schema.ROUTINES WHERE ROUTINE_SCHEMA = '%s'",
        'events': "SELECT EVENT_NAME, DEFINER, STATUS FROM information_schema.EVENTS WHERE EVENT_SCHEMA = '%s'",
    }
    return {kind: sorted(tuple(r) for r in server.sql(sql % db)) for kind, sql in queries.items()}


def work_databases(server):
    return [r[0] for r in server.sql("SHOW DATABASES LIKE 'dbops\\_restore\\_%'")]


@pytest.mark.parametrize('path, jobs', [('tsv', 2), ('sql', 3), ('sql', 1)])
def test_logical_restore_over_an_existing_database_replaces_it_only_after_a_full_load(source, scratch, path, jobs):
    """force: the backup loads into a work database first; a load that fails half-way (here: objects whose
    definer the login may not set) leaves the existing database exactly as it was and no work database;
    a good load replaces it with every table, trigger, view, routine and event. A failed restore into a
    database that did not exist leaves nothing behind. Layouts: tab-separated, mariadb-dump split over
    jobs (triggers inside the table files), mariadb-dump one file per database."""
    db = 'swap_%s_%d' % (path, jobs)
    target = db + '_target'
    fill(source, db, 400)
    add_objects(source, db)
    source.sql('CREATE TABLE child (id INT PRIMARY KEY, t1_id INT, FOREIGN KEY (t1_id) REFERENCES t1 (id))', db)
    source.sql('INSERT INTO child SELECT id, id FROM t1 WHERE id < 50', db)
    source.sql("CREATE EVENT ev_noop ON SCHEDULE EVERY 1 DAY DISABLE DO SELECT 1", db)
    engine = engine_of(source, path)
    try:
        dest = os.path.join(scratch, 'swap')
        result = engine.backup_create(request(dest, scratch, databases=[db], jobs=jobs))
    finally:
        engine.close()
    assert result['details']['table_data'] == path
    if path == 'sql':
        assert bool(result['details'].get('split_tables')) is (jobs > 1)
    expected, expected_objects = table_state(source, db), objects_of(source, db)
    # the existing database: its own table, trigger, view and routine
    source.sql('CREATE DATABASE %s' % target)
    source.sql('CREATE TABLE precious (id INT PRIMARY KEY, v VARCHAR(10))', target)
    source.sql("INSERT INTO precious VALUES (1, 'a'), (2, 'b'), (3, 'c')", target)
    source.sql('CREATE TABLE t1 (id INT PRIMARY KEY)', target)
    source.sql('INSERT INTO t1 VALUES (7)', target)
    source.sql("CREATE TRIGGER keep_trg BEFORE INSERT ON precious FOR EACH ROW SET NEW.v = 'k'", target)
    source.sql('CREATE VIEW keep_v AS SELECT id FROM precious', target)
    source.sql('CREATE PROCEDURE keep_p() SELECT 1', target)
    kept, kept_objects = table_state(source, target), objects_of(source, target)
    # a login with every right on the target and on work databases, but not SET USER: the objects of the
    # backup (definer root) fail after the tables loaded
    source.sql("CREATE USER IF NOT EXISTS 'swapper'@'127.0.0.1' IDENTIFIED BY 'swap-pw-1'")
    for name in (target, 'dbops\\_restore\\_%', db + '_new'):
        source.sql("GRANT ALL PRIVILEGES ON `%s`.* TO 'swapper'@'127.0.0.1'" % name)
    limited = connect_params(dict(source.conn, login_user='swapper', login_password='swap-pw-1'))
    req = {'manifest': {}, 'path': dest, 'databases': [db], 'jobs': jobs, 'marker': {'backup_id': 'swap'}}
    try:
        with pytest.raises(DbError, match='SUPER|SET USER'):
            limited.restore_logical(dict(req, target_database=target, force=True))
        assert table_state(source, target) == kept
        assert objects_of(source, target) == kept_objects
        assert work_databases(source) == []
        # into a database that did not exist: nothing left behind
        with pytest.raises(DbError, match='SUPER|SET USER'):
            limited.restore_logical(dict(req, target_database=db + '_new', force=False))
        assert not source.sql("SHOW DATABASES LIKE '%s\\_new'" % db)
    finally:
        limited.close()
        source.sql("DROP USER 'swapper'@'127.0.0.1'")
    # a login that may: the target is replaced by the backup, objects and all
    engine = engine_of(source, path)
    try:
        out = engine.restore_logical(dict(req, target_database=target, force=True))
        assert table_state(source, target) == expected
        assert objects_of(source, target) == expected_objects
        assert out['rows_restored'] == sum(v[0] for v in expected.values())
        assert {t['name']: t['rows'] for t in out['tables'] if t['database'] == target} == {
            k: v[0] for k, v in expected.items()}
        assert work_databases(source) == []
        assert engine.restore_marker(target) == {'backup_id': 'swap', 'source_database': db}
        assert any(c.startswith('RENAME TABLE') for c in out['commands'])
        # the restored objects work against the restored tables
        assert source.sql('SELECT COUNT(*) FROM v_big', target) == source.sql('SELECT COUNT(*) FROM v_big', db)
        source.sql("INSERT INTO t2 (t1_id, tag) VALUES (1, 'low')", target)
        assert source.sql("SELECT tag FROM t2 WHERE tag = 'LOW'", target) == (('LOW',),)
        source.sql('CALL p_count(@n)', target)
        # an empty existing database (no force needed) is filled the same way
        source.sql('DROP DATABASE %s' % target)
        source.sql('CREATE DATABASE %s' % target)
        engine.restore_logical(dict(req, target_database=target, force=False))
        assert table_state(source, target) == expected
        assert objects_of(source, target) == expected_objects
        assert work_databases(source) == []
    finally:
        engine.close()
        source.sql('DROP DATABASE IF EXISTS %s' % target)


def test_logical_gzip_lz4_none_and_bad_compression(source, scratch):
    fill(source, 'small', 200)
    engine = engine_of(source)
    try:
        expected = table_state(source, 'small')
        for comp, ext in (('gzip', '.gz'), ('lz4', '.lz4'), ('none', '')):
            dest = os.path.join(scratch, 'l-' + comp)
            engine.backup_create(request(dest, scratch, databases=['small'], compression=comp, jobs=1))
            assert sorted(os.listdir(dest)) == sorted(tsv_files('small', ['t1', 't2'], ext) + [mb.INDEX_FILE])
            assert mb.verify_logical({}, dest) == []
            engine.restore_logical({'manifest': {}, 'path': dest, 'target_database': 'small_' + comp,
                                    'force': False, 'jobs': 1})
            assert table_state(source, 'small_' + comp) == expected
        with pytest.raises(DbError, match='compression'):
            engine.backup_create(request(os.path.join(scratch, 'bad'), scratch, compression='xz'))
        with pytest.raises(DbError, match='no such database'):
            engine.backup_create(request(os.path.join(scratch, 'bad2'), scratch, databases=['nope']))
    finally:
        engine.close()


def test_logical_backup_with_flipped_byte_fails_verification(source, scratch):
    fill(source, 'flip', 2000)
    engine = engine_of(source)
    try:
        dest = os.path.join(scratch, 'lflip')
        engine.backup_create(request(dest, scratch, databases=['flip'], jobs=1))
    finally:
        engine.close()
    for name in ('flip.t1.tsv.zst', 'flip.schema.sql.zst'):
        victim = os.path.join(dest, name)
        with open(victim, 'r+b') as f:
            f.seek(os.path.getsize(victim) // 2)
            byte = f.read(1)
            f.seek(-1, 1)
            f.write(bytes([byte[0] ^ 0xFF]))
        problems = mb.verify_logical({}, dest)
        assert problems and name in problems[0]
        with open(victim, 'r+b') as f:
            f.seek(os.path.getsize(victim) // 2)
            f.write(byte)
        assert mb.verify_logical({}, dest) == []


def test_logical_tsv_round_trips_awkward_values_and_columns(source, scratch):
    """Tab-separated table data restores byte-identical: NULL against empty and the string 'N',
    tabs, newlines, backslashes, NUL and 0xFF bytes, other character sets, time zones, a 0 in an
    AUTO_INCREMENT column, generated and invisible columns, foreign keys."""
    db = 'odd'
    source.sql('CREATE DATABASE IF NOT EXISTS odd CHARACTER SET utf8mb4')
    source.sql("SET SESSION time_zone = '+05:00'")
    source.sql('CREATE TABLE parent (id INT AUTO_INCREMENT PRIMARY KEY, label VARCHAR(20) CHARACTER SET latin1) '
               'ENGINE=InnoDB', db)
    source.sql('CREATE TABLE child (id INT PRIMARY KEY, parent_id INT, s VARCHAR(100), b VARBINARY(64), '
               'bl LONGBLOB, t TEXT, d DECIMAL(30,10), f DOUBLE, fl FLOAT, j JSON, e ENUM("a","b c"), st SET("x","y"), '
               'ts TIMESTAMP(6) NULL, dt DATETIME(3), tm TIME(2), y YEAR, '
               'g INT AS (id * 2) VIRTUAL, gs VARCHAR(120) AS (CONCAT(s, "!")) STORED, hid INT INVISIBLE DEFAULT 7, '
               'FOREIGN KEY (parent_id) REFERENCES parent(id)) ENGINE=InnoDB', db)
    conn = source.connect(db)
    try:
        with conn.cursor() as cur:
            cur.execute("SET SESSION time_zone = '+05:00', sql_mode = 'NO_AUTO_VALUE_ON_ZERO'")
            cur.execute("INSERT INTO parent VALUES (0, 'z\xe9ro'), (1, 'one'), (2, NULL)")
            values = [
                (1, 0, '', b'', b'', None, '0.0000000001', 1e-300, 1.5, '{"a": [1, "t\\tb\\\\"]}', 'b c', 'x,y',
                 '2024-03-31 01:30:00.123456', '1000-01-01 00:00:00.001', '-838:59:59.99', 1901),
                (2, 1, 'N', b'\x00\xff\t\n\\N', bytes(range(256)) * 40, 'tab\there\nnew\\line \U0001f600',
                 '-12345678901234567890.0123456789', -0.0, 3.4e38, 'null', 'a', '', '1970-01-01 00:00:01',
                 '9999-12-31 23:59:59.999', '00:00:00', 2155),
                (3, 2, None, None, None, '\\N', None, None, None, None, None, None, None, None, None, None),
                (4, None, '\\', b'\\', b'\r\n', '', '1', 2.0 / 3, 0.1, '[]', 'a', 'y', '2038-01-19 03:14:07',
                 '2024-02-29 12:00:00', '12:34:56.78', 2000),
            ]
            cur.executemany('INSERT INTO child (id, parent_id, s, b, bl, t, d, f, fl, j, e, st, ts, dt, tm, y) '
                            'VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s)', values)
            cur.execute('UPDATE child SET hid = id + 100 WHERE id > 2')
    finally:
        conn.close()
    source.sql("SET SESSION time_zone = SYSTEM")
    expected = table_state(source, db)
    rows_before = source.sql('SELECT id, hid, g, gs FROM child ORDER BY id', db)
    engine = engine_of(source)
    try:
        dest = os.path.join(scratch, 'odd')
        result = engine.backup_create(request(dest, scratch, databases=[db], jobs=2))
        assert result['details']['table_data'] == 'tsv'
        data = result['details']['dumps'][0]
        assert sorted(data['files']) == ['odd.child.tsv.zst', 'odd.parent.tsv.zst']
        out = engine.restore_logical({'manifest': {}, 'path': dest, 'target_database': 'odd_copy', 'force': False,
                                      'jobs': 2})
        assert out['rows_restored'] == 7
        assert table_state(source, 'odd_copy') == expected
        assert source.sql('SELECT id, hid, g, gs FROM child ORDER BY id', 'odd_copy') == rows_before
        assert source.sql('SELECT id FROM parent WHERE id = 0', 'odd_copy') == ((0,),)
        # without local_infile the server loads the files itself (a copy in a directory it reads)
        source.sql('SET GLOBAL local_infile = OFF')
        try:
            out = engine.restore_logical({'manifest': {}, 'path': dest, 'target_database': 'odd_copy2',
                                          'force': False, 'jobs': 2})
            assert any('LOAD DATA INFILE' in c and 'LOCAL' not in c for c in out['commands'])
        finally:
            source.sql('SET GLOBAL local_infile = ON')
        assert table_state(source, 'odd_copy2') == expected
        # ... and a login that may neither read local files nor use FILE is refused before any change
        source.sql('SET GLOBAL local_infile = OFF')
        nofile = engine_of(source, 'sql')
        try:
            with pytest.raises(DbError, match='local_infile=ON'):
                nofile.restore_logical({'manifest': {}, 'path': dest, 'target_database': 'odd_copy3',
                                        'force': False, 'jobs': 2})
        finally:
            source.sql('SET GLOBAL local_infile = ON')
            nofile.close()
        assert not source.sql("SELECT 1 FROM information_schema.SCHEMATA WHERE SCHEMA_NAME = 'odd_copy3'")
    finally:
        engine.close()


def test_logical_tables_tsv_cannot_carry_go_through_mariadb_dump(source, scratch):
    """A BIT column (or a sequence, a system-versioned table) sends the backup through mariadb-dump."""
    source.sql('CREATE DATABASE IF NOT EXISTS bits')
    source.sql('CREATE TABLE flags (id INT PRIMARY KEY, f BIT(5), note VARCHAR(10))', 'bits')
    source.sql("INSERT INTO flags VALUES (1, b'10101', 'a'), (2, b'00000', NULL), (3, NULL, 'c')", 'bits')
    engine = engine_of(source)
    try:
        dest = os.path.join(scratch, 'bits')
        result = engine.backup_create(request(dest, scratch, databases=['bits'], jobs=2))
        assert result['details']['table_data'] == 'sql'
        assert 'bit column' in result['details']['tsv_unavailable']
        assert mb.verify_logical({}, dest) == []
        engine.restore_logical({'manifest': {}, 'path': dest, 'target_database': 'bits_copy', 'force': False,
                                'jobs': 2})
        assert table_state(source, 'bits_copy') == table_state(source, 'bits')
    finally:
        engine.close()


# ---- physical ---------------------------------------------------------------------------------
def test_physical_full_backup_restores_into_new_data_dir(source, scratch):
    fill(source, 'phys', 2000)
    add_objects(source, 'phys')
    engine = engine_of(source)
    try:
        dest = os.path.join(scratch, 'pfull')
        result = engine.backup_create(request(dest, scratch, method='physical', compression='zstd'))
        expected = table_state(source, 'phys')
    finally:
        engine.close()
    assert os.path.isfile(os.path.join(dest, 'backup.mbstream.zst'))
    assert result['stop_position']['lsn'] and result['stop_position']['binlog_file']
    assert all(source.password not in c for c in result['commands'])
    man = manifest_of(result)
    assert mb.verify_physical(man, dest, scratch) == []
    source.sql('DELETE FROM t1', 'phys')
    out = restore([{'manifest': man, 'path': dest}], scratch, 'restored-full', marker={'backup_id': 'full'})
    restored = Restored(out, source.password)
    assert table_state(restored, 'phys') == expected
    assert restored.sql('SELECT @@port')[0][0] == out['port']
    assert mb.read_restore_marker(out['data_dir']) == {'backup_id': 'full', 'recovered_to': out['recovered_to']}
    assert mb.instance_running(out['data_dir'])
    assert mb.instance_port(out['data_dir']) == out['port']
    # mariadb-backup --move-back leaves no empty "<data_dir>." beside the data directory
    assert not os.path.exists(out['data_dir'] + '.')
    # a live server whose pid file is kept outside its data directory (like /run/mysqld) is found:
    # force never empties a running server's data directory
    assert not os.path.exists(os.path.join(source.data_dir, 'mysqld.pid'))
    assert mb.instance_running(source.data_dir)
    with pytest.raises(DbError, match='running'):
        mb._check_target_dir(source.data_dir, True)
    # a second restore into the same (running, non-empty) directory is refused
    with pytest.raises(DbError, match='running|not empty'):
        restore([{'manifest': man, 'path': dest}], scratch, 'restored-full')
    assert mb.stop_instance(out['data_dir'])
    with pytest.raises(DbError, match='not empty'):
        restore([{'manifest': man, 'path': dest}], scratch, 'restored-full')
    assert os.path.exists(os.path.join(out['data_dir'], 'phys'))


def test_physical_incremental_and_differential_chains(source, scratch):
    fill(source, 'chain', 1000, start=0)
    engine = engine_of(source)
    try:
        full_dir = os.path.join(scratch, 'c-full')
        full = manifest_of(engine.backup_create(request(full_dir, scratch, method='physical',
                                                        compression='none')), 'full', backup_id='full')
        fill(source, 'chain', 500, start=10000)
        inc1_dir = os.path.join(scratch, 'c-inc1')
        inc1 = manifest_of(engine.backup_create(request(inc1_dir, scratch, method='physical', type='incremental',
                                                        compression='zstd',
                                                        base={'manifest': full, 'path': full_dir})),
                           'incremental', backup_id='inc1')
        source.sql('UPDATE t1 SET amount = amount + 1 WHERE id < 100', 'chain')
        fill(source, 'chain', 300, start=20000)
        inc2_dir = os.path.join(scratch, 'c-inc2')
        inc2 = manifest_of(engine.backup_create(request(inc2_dir, scratch, method='physical', type='incremental',
                                                        compression='none',
                                                        base={'manifest': inc1, 'path': inc1_dir})),
                           'incremental', backup_id='inc2')
        state_inc2 = table_state(source, 'chain')
        source.sql('DELETE FROM t2 WHERE id % 2 = 0', 'chain')
        fill(source, 'chain', 100, start=30000)
        diff_dir = os.path.join(scratch, 'c-diff')
        diff = manifest_of(engine.backup_create(request(diff_dir, scratch, method='physical', type='differential',
                                                        compression='lz4',
                                                        base={'manifest': full, 'path': full_dir})),
                           'differential', backup_id='diff')
        state_diff = table_state(source, 'chain')
    finally:
        engine.close()
    assert inc1['start_position']['lsn'] == full['stop_position']['lsn']
    assert inc2['start_position']['lsn'] == inc1['stop_position']['lsn']
    assert diff['start_position']['lsn'] == full['stop_position']['lsn']
    assert state_inc2 != state_diff
    out = restore([{'manifest': full, 'path': full_dir}, {'manifest': inc1, 'path': inc1_dir},
                   {'manifest': inc2, 'path': inc2_dir}], scratch, 'r-inc')
    assert table_state(Restored(out, source.password), 'chain') == state_inc2
    mb.stop_instance(out['data_dir'])
    out = restore([{'manifest': full, 'path': full_dir}, {'manifest': diff, 'path': diff_dir}], scratch, 'r-diff')
    assert table_state(Restored(out, source.password), 'chain') == state_diff
    mb.stop_instance(out['data_dir'])
    # a chain whose LSNs do not join is refused before anything is written
    broken = dict(inc2, start_position=dict(inc2['start_position'], lsn=str(int(inc2['stop_position']['lsn']) + 1)))
    with pytest.raises(DbError, match='LSN'):
        restore([{'manifest': full, 'path': full_dir}, {'manifest': broken, 'path': inc2_dir}], scratch, 'r-bad')
    assert not os.path.exists(os.path.join(scratch, 'r-bad'))


def test_point_in_time_recovery_with_archived_binlogs(source, scratch):
    source.sql('CREATE DATABASE IF NOT EXISTS pitr')
    source.sql('CREATE TABLE IF NOT EXISTS marks (tag VARCHAR(10) PRIMARY KEY, at DATETIME(6))', 'pitr')
    fill(source, 'pitr', 300)
    engine = engine_of(source)
    try:
        full_dir = os.path.join(scratch, 'pitr-full')
        full = manifest_of(engine.backup_create(request(full_dir, scratch, method='physical')), 'full')
        source.sql("INSERT INTO marks VALUES ('A', NOW(6))", 'pitr')
        source.sql('UPDATE t1 SET amount = 0 WHERE id < 50', 'pitr')
        time.sleep(1.3)
        target = datetime.datetime.now(datetime.timezone.utc)
        state_at_target = table_state(source, 'pitr')
        time.sleep(1.3)
        source.sql("INSERT INTO marks VALUES ('B', NOW(6))", 'pitr')
        source.sql('DELETE FROM t1 WHERE id >= 100', 'pitr')
        log_dest = os.path.join(scratch, 'pitr-log')
        log = engine.backup_create(request(log_dest, scratch, method='physical', type='log'))
    finally:
        engine.close()
    log_dir = os.path.join(scratch, 'logs')
    assert log['details']['files'], 'the log backup copied no binary log'
    assert full['stop_position']['binlog_file'] in os.listdir(log_dir)
    assert log['log_files'] == ['logs/' + f['name'] for f in log['details']['files']]
    assert mb.verify_physical(manifest_of(log, 'log'), log_dest, scratch, log_dir=log_dir) == []
    out = restore([{'manifest': full, 'path': full_dir}], scratch, 'r-pitr', target_time=target.isoformat(),
                  log_dir=log_dir)
    restored = Restored(out, source.password)
    assert [r[0] for r in restored.sql('SELECT tag FROM marks ORDER BY tag', 'pitr')] == ['A']
    assert table_state(restored, 'pitr') == state_at_target
    assert out['target_reached'] is True
    assert out['recovered_to'].startswith(target.strftime('%Y-%m-%dT%H:%M:%S'))
    mb.stop_instance(out['data_dir'])
    # without a target: the backup itself, neither marker
    out = restore([{'manifest': full, 'path': full_dir}], scratch, 'r-nopitr')
    assert Restored(out, source.password).sql('SELECT COUNT(*) FROM marks', 'pitr')[0][0] == 0
    mb.stop_instance(out['data_dir'])
    # a second log backup copies nothing twice; the archive keeps growing
    engine = engine_of(source)
    try:
        again = engine.backup_create(request(os.path.join(scratch, 'pitr-log2'), scratch, method='physical',
                                             type='log'))
    finally:
        engine.close()
    names = [f['name'] for f in again['details']['files']]
    assert names and not set(names) & {f['name'] for f in log['details']['files']}
    # a missing binlog in the needed range: verification names it, PITR refuses
    holed = os.path.join(scratch, 'holed-logs')
    shutil.copytree(log_dir, holed)
    gone = sorted(os.listdir(holed))[-2]
    os.unlink(os.path.join(holed, gone))
    problems = mb.verify_physical(full, full_dir, scratch, log_dir=holed)
    assert any(gone in p for p in problems), problems
    with pytest.raises(DbError, match=gone.replace('.', r'\.')):
        restore([{'manifest': full, 'path': full_dir}], scratch, 'r-hole', target_time=target.isoformat(),
                log_dir=holed)
    assert not os.path.exists(os.path.join(scratch, 'r-hole'))
    # the log backup record also notices a damaged archive file
    with open(os.path.join(log_dir, log['details']['files'][0]['name']), 'ab') as f:
        f.write(b'x')
    problems = mb.verify_physical(manifest_of(log, 'log'), log_dest, scratch, log_dir=log_dir)
    assert any(log['details']['files'][0]['name'] in p for p in problems)


def test_flipped_byte_in_physical_backup_is_reported_with_the_file(source, scratch):
    fill(source, 'bits', 3000)
    engine = engine_of(source)
    try:
        plain_dir = os.path.join(scratch, 'flip-plain')
        plain = manifest_of(engine.backup_create(request(plain_dir, scratch, method='physical', compression='none')))
        zst_dir = os.path.join(scratch, 'flip-zst')
        zst = manifest_of(engine.backup_create(request(zst_dir, scratch, method='physical', compression='zstd')))
    finally:
        engine.close()
    assert mb.verify_physical(plain, plain_dir, scratch) == []
    # t1.ibd, or t1.new when the table was created after the last checkpoint
    stored = [n for n in os.listdir(os.path.join(plain_dir, 'data', 'bits')) if n in ('t1.ibd', 't1.new')]
    assert len(stored) == 1
    victim = os.path.join(plain_dir, 'data', 'bits', stored[0])
    with open(victim, 'r+b') as f:
        f.seek(16384 * 4 + 2000)  # inside a data page of the clustered index
        byte = f.read(1)
        f.seek(-1, 1)
        f.write(bytes([byte[0] ^ 0x5A]))
    problems = mb.verify_physical(plain, plain_dir, scratch)
    assert problems and any(os.path.join('bits', stored[0]) in p for p in problems), problems
    victim = os.path.join(zst_dir, 'backup.mbstream.zst')
    with open(victim, 'r+b') as f:
        f.seek(os.path.getsize(victim) // 2)
        byte = f.read(1)
        f.seek(-1, 1)
        f.write(bytes([byte[0] ^ 0x5A]))
    problems = mb.verify_physical(zst, zst_dir, scratch)
    assert problems and any('backup.mbstream.zst' in p for p in problems), problems
    # with the catalog's file list, the checksum names the file before anything is unpacked
    listed = dict(zst, files=[{'path': 'backup.mbstream.zst', 'size': os.path.getsize(victim),
                               'sha256': '0' * 64}])
    assert any(p.startswith('backup.mbstream.zst: sha256') for p in mb.verify_physical(listed, zst_dir, scratch))


def test_credentials_never_reach_a_command_line(source, scratch, monkeypatch):
    seen = []
    real_popen = mb.subprocess.Popen

    def spy(argv, *args, **kwargs):
        seen.append(list(argv))
        return real_popen(argv, *args, **kwargs)

    monkeypatch.setattr(mb.subprocess, 'Popen', spy)
    fill(source, 'cred', 10)
    engine = engine_of(source)
    try:
        engine.backup_create(request(os.path.join(scratch, 'cred'), scratch, databases=['cred']))
        engine.backup_create(request(os.path.join(scratch, 'cred-p'), scratch, method='physical'))
    finally:
        engine.close()
    assert len(seen) >= 3
    for argv in seen:
        assert not any(source.password in str(a) for a in argv), argv
    # the private option files are gone
    assert not [n for n in os.listdir(tempfile.gettempdir()) if n.startswith('dbops-cnf-')]


@pytest.mark.skipif(shutil.which('sysbench') is None, reason='sysbench not installed')
def test_physical_backups_under_write_load_verify_clean_and_restore(source, scratch):
    """No false alarm from the checks while the server writes; the restore is a working server."""
    import subprocess
    source.sql('CREATE DATABASE IF NOT EXISTS sbload')
    base = ['--db-driver=mysql', '--mysql-host=127.0.0.1', '--mysql-port=%d' % source.port, '--mysql-user=root',
            '--mysql-password=' + source.password, '--mysql-db=sbload', '--tables=2', '--table-size=20000']
    subprocess.run(['sysbench', 'oltp_write_only'] + base + ['prepare'], check=True, stdout=subprocess.DEVNULL)
    load = subprocess.Popen(['sysbench', 'oltp_write_only'] + base + ['--threads=4', '--time=60', 'run'],
                            stdout=subprocess.DEVNULL)
    engine = engine_of(source)
    try:
        time.sleep(2)
        taken = []
        for comp in ('none', 'zstd'):
            dest = os.path.join(scratch, 'load-' + comp)
            result = engine.backup_create(request(dest, scratch, method='physical', compression=comp, verify=True))
            assert result['verified'] is True
            taken.append((manifest_of(result), dest))
    finally:
        load.kill()
        load.wait()
        engine.close()
    for man, dest in taken:
        assert mb.verify_physical(man, dest, scratch) == []
    out = restore([{'manifest': taken[-1][0], 'path': taken[-1][1]}], scratch, 'r-load')
    restored = Restored(out, source.password)
    for table in ('sbtest1', 'sbtest2'):
        check = restored.sql('CHECK TABLE sbload.%s' % table)
        assert check[-1][3] == 'OK', check
    mb.stop_instance(out['data_dir'])


@pytest.mark.parametrize('layout, path', [('databases', 'tsv'), ('tables', 'tsv'), ('databases', 'sql'),
                                          ('tables', 'sql')])
def test_parallel_dumps_share_one_instant_under_writes(source, scratch, layout, path):
    """A writer commits the same id into two places per transaction while the dumps run: the
    two places, dumped by different processes or export sessions, must hold the same ids after the
    restore."""
    import threading
    if layout == 'databases':
        places = [('cons_a_' + path, 'w'), ('cons_b_' + path, 'w')]
        databases, jobs = [places[0][0], places[1][0]], 2
    else:
        places = [('cons_t_' + path, 'w1'), ('cons_t_' + path, 'w2')]
        databases, jobs = [places[0][0]], 2
    for db, table in places:
        source.sql('CREATE DATABASE IF NOT EXISTS %s' % db)
        source.sql('CREATE TABLE %s (id INT PRIMARY KEY, pad VARCHAR(200))' % table, db)
        source.sql("INSERT INTO %s SELECT seq, REPEAT('p', 200) FROM seq_1000000_to_1040000" % table, db)
    stop = threading.Event()
    written = []

    def writer(number):
        conn = source.connect()
        try:
            with conn.cursor() as cur:
                i = 0
                while not stop.is_set():
                    i += 1
                    row = i * 8 + number
                    cur.execute('BEGIN')
                    for db, table in places:
                        cur.execute('INSERT INTO %s.%s VALUES (%d, NULL)' % (db, table, row))
                    cur.execute('COMMIT')
                    written.append(row)
        finally:
            conn.close()

    threads = [threading.Thread(target=writer, args=(n,)) for n in range(6)]
    for thread in threads:
        thread.start()
    engine = engine_of(source, path)
    try:
        time.sleep(0.5)
        dest = os.path.join(scratch, 'cons-' + layout)
        result = engine.backup_create(request(dest, scratch, databases=databases, jobs=jobs))
        time.sleep(0.3)
    finally:
        stop.set()
        for thread in threads:
            thread.join()
    try:
        assert result['details']['table_data'] == path
        assert result['details']['processes'] == 2
        assert result['details']['split_tables'] is (layout == 'tables')
        for db in databases:
            engine.restore_logical({'manifest': {}, 'path': dest, 'databases': [db], 'target_database': db + '_r',
                                    'force': False, 'jobs': 2})
    finally:
        engine.close()
    ids = [set(r[0] for r in source.sql('SELECT id FROM %s_r.%s WHERE id < 1000000' % (db, table)))
           for db, table in places]
    assert ids[0] == ids[1]
    # the backup caught the writer in the middle: some ids before it, more after it
    assert ids[0] and max(ids[0]) < max(written)
    # the row counts recorded for the restore drill are those of the backup's instant
    recorded = {(d['database'], t['name']): t['rows'] for d in result['details']['dumps'] for t in d['tables']}
    for db, table in places:
        assert recorded[(db, table)] == source.sql('SELECT COUNT(*) FROM %s_r.%s' % (db, table))[0][0]
    if path == 'tsv':
        # MariaDB with a binary log: every session's snapshot is at the backup's position
        assert result['details']['same_instant_check'] == 'binlog snapshot position of every session'


def test_logical_without_binary_log_counts_rows_in_the_snapshot(scratch):
    """Without a binary log the snapshots name no position: every InnoDB table's exported rows
    are compared with COUNT(*) in the engine's own snapshot, under writes too."""
    import threading
    server = MariadbServer(settings={'skip-log-bin': ''}).init().start()
    stop = threading.Event()
    thread = threading.Thread()
    try:
        assert server.sql('SELECT @@log_bin')[0][0] == 0
        fill(server, 'nolog', 3000)
        add_objects(server, 'nolog')

        def writer():
            conn = server.connect('nolog')
            try:
                with conn.cursor() as cur:
                    i = 100000
                    while not stop.is_set():
                        i += 1
                        cur.execute("INSERT INTO t2 (t1_id, tag) VALUES (%d, 'w')" % i)
            finally:
                conn.close()

        thread = threading.Thread(target=writer)
        thread.start()
        engine = engine_of(server)
        try:
            dest = os.path.join(scratch, 'nolog')
            result = engine.backup_create(request(dest, scratch, databases=['nolog'], jobs=2, verify=True))
            stop.set()
            thread.join()
            assert result['details']['table_data'] == 'tsv'
            assert result['details']['same_instant_check'] == 'exported rows = COUNT(*) in the backup snapshot'
            assert result['start_position'] == {}
            assert sorted(result['tested_files']) == ['nolog.t1.tsv.zst', 'nolog.t2.tsv.zst']
            assert mb.verify_logical(result, dest) == []
            engine.restore_logical({'manifest': {}, 'path': dest, 'target_database': 'nolog_r', 'force': False,
                                    'jobs': 2})
            recorded = {t['name']: t['rows'] for t in result['details']['dumps'][0]['tables']}
            assert recorded == {t: server.sql('SELECT COUNT(*) FROM nolog_r.%s' % t)[0][0] for t in ('t1', 't2')}
            assert recorded['t1'] == 3000
        finally:
            engine.close()
        # a log backup says why it cannot be taken here, before anything is written
        import modrun
        repo = os.path.join(scratch, 'nolog-repo')
        refused = modrun.run_module('db_backup', dict(server.conn, repo=repo, type='log', method='physical'))
        assert refused['failed'] and 'binary logging is off' in refused['msg'], refused.get('msg')
        assert not os.path.exists(repo)
    finally:
        stop.set()
        if thread.is_alive():
            thread.join()
        server.destroy()


@pytest.mark.parametrize('failing', ['export', 'compressor'])
def test_logical_tsv_failure_while_compressing_stops_cleanly(source, scratch, monkeypatch, failing):
    """An export that fails (its table file never appears) or a compressor that dies half-way
    through a file the server is still writing fails the backup with the table or file named,
    leaves no text file and no compressor behind."""
    db = 'brk_' + failing
    fill(source, db, 20000)
    engine = engine_of(source)
    bin_dir = None
    if failing == 'export':
        real = mb.export_sql

        def export_sql(quote, database, table, columns, path):
            return real(quote, database, table, columns + (['no_such_column'] if table == 't1' else []), path)

        monkeypatch.setattr(mb, 'export_sql', export_sql)
    else:
        bin_dir = os.path.join(scratch, 'bin')
        os.makedirs(bin_dir)
        with open(os.path.join(bin_dir, 'zstd'), 'w') as f:
            # compresses small streams (schema, triggers, objects) and tests files for real; gives up
            # on table data (more than 20000 bytes) half-way
            f.write('#!/bin/sh\ncase " $* " in *" -t "*|*" -d "*) exec %s "$@";; esac\n'
                    'buf=$(mktemp)\nhead -c 20001 > "$buf"\n'
                    'if [ "$(stat -c %%s "$buf")" -le 20000 ]; then %s "$@" < "$buf"; rc=$?; rm -f "$buf"; exit $rc; fi\n'
                    'rm -f "$buf"\necho "zstd: disk on fire" >&2\nexit 3\n' % (shutil.which('zstd'), shutil.which('zstd')))
        os.chmod(os.path.join(bin_dir, 'zstd'), 0o755)
    tmp = tempfile.gettempdir()
    before = set(n for n in os.listdir(tmp) if n.startswith('dbops-tsv-%d-' % os.getpid()))
    try:
        dest = os.path.join(scratch, 'brk-' + failing)
        with pytest.raises(DbError) as info:
            engine.backup_create(request(dest, scratch, databases=[db], jobs=2, verify=True, bin_dir=bin_dir))
    finally:
        engine.close()
    text = str(info.value)
    if failing == 'export':
        assert db + '.t1' in text and 'no_such_column' in text
    else:
        assert 'disk on fire' in text and '.tsv.zst' in text
    after = set(n for n in os.listdir(tmp) if n.startswith('dbops-tsv-%d-' % os.getpid()))
    assert after == before  # the private directory of the text files is gone
    assert not children_named('zstd')


def children_named(name):
    """Pids of this process's living children running the program name."""
    found = []
    for pid in filter(str.isdigit, os.listdir('/proc')):
        try:
            with open('/proc/%s/status' % pid) as f:
                status = dict(line.split(':\t', 1) for line in f.read().splitlines() if ':\t' in line)
        except OSError:
            continue
        if status.get('PPid', '').strip() == str(os.getpid()) and status.get('Name', '').strip() == name \
                and not status.get('State', '').startswith('Z'):
            found.append(int(pid))
    return found


def test_accounts_created_for_a_restore_that_fails_are_dropped(source, scratch, monkeypatch):
    """roles=create, then the load fails: neither the database nor the accounts created for it stay."""
    fill(source, 'acct_fail', 50)
    source.sql("CREATE USER 'acct_u'@'%' IDENTIFIED BY 'acct-pw-9'")
    source.sql("GRANT SELECT ON acct_fail.t1 TO 'acct_u'@'%'")
    engine = engine_of(source)
    try:
        dest = os.path.join(scratch, 'acct')
        result = engine.backup_create(request(dest, scratch, databases=['acct_fail'], jobs=1))
        assert result['details']['dumps'][0]['accounts'] == [['acct_u', '%']]
        source.sql('DROP DATABASE acct_fail')
        source.sql("DROP USER 'acct_u'@'%'")

        def broken_load(*_args, **_kwargs):
            raise DbError('load', 'acct_fail', 'the disk is full')

        monkeypatch.setattr(mb.MysqlBackup, '_load_files', broken_load)
        with pytest.raises(DbError, match='the disk is full'):
            engine.restore_logical({'manifest': manifest_of(result, method='logical'), 'path': dest, 'force': False,
                                    'jobs': 1, 'roles': 'create', 'marker': {'backup_id': 'b1'}})
        assert source.sql("SELECT COUNT(*) FROM mysql.user WHERE User = 'acct_u'")[0][0] == 0
        assert not source.sql("SELECT 1 FROM information_schema.SCHEMATA WHERE SCHEMA_NAME = 'acct_fail'")
        monkeypatch.undo()
        out = engine.restore_logical({'manifest': manifest_of(result, method='logical'), 'path': dest, 'force': False,
                                      'jobs': 1, 'roles': 'create', 'marker': {'backup_id': 'b1'}})
        assert out['roles_created'] == ['acct_u@%'] and out['warnings'] == []
        assert source.sql("SELECT Table_priv FROM mysql.tables_priv WHERE User = 'acct_u'") == (('Select',),)
    finally:
        engine.close()
        source.sql("DROP USER IF EXISTS 'acct_u'@'%'")
        source.sql('DROP DATABASE IF EXISTS acct_fail')


def test_physical_directory_backup_read_back_check_names_a_damaged_tablespace(source, scratch):
    """The read-back check of an uncompressed physical backup (innochecksum of every tablespace, several
    at a time) passes on the copy as written and names the tablespace whose page was damaged."""
    fill(source, 'pcheck', 3000)
    engine = engine_of(source)
    try:
        dest = os.path.join(scratch, 'pdir')
        engine.backup_create(request(dest, scratch, method='physical', compression='none', verify=True))
    finally:
        engine.close()
    assert mb._CopyFollower(dest, os.path.join(dest, 'data'), 'innochecksum', hashes=False).finish()[1] == []
    spaces = [os.path.join(root, n) for root, _d, names in os.walk(dest) for n in names
              if n.endswith(('.ibd', '.new')) and os.path.basename(root) == 'pcheck']   # .new: created lately
    assert spaces
    victim = max(spaces, key=os.path.getsize)
    with open(victim, 'r+b') as f:
        f.seek(16384 * 3 + 200)
        byte = f.read(1)
        f.seek(-1, 1)
        f.write(bytes([byte[0] ^ 0xFF]))
    problems = mb._CopyFollower(dest, os.path.join(dest, 'data'), 'innochecksum', hashes=False).finish()[1]
    assert len(problems) == 1 and 'pcheck/%s: page checksum mismatch' % os.path.basename(victim) in problems[0], problems
