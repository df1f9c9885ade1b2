# -*- coding: utf-8 -*-
"""db_backup / db_restore against real throw-away PostgreSQL servers.

Each test asserts what a DBA would check: table contents after a restore, marker rows after
point-in-time recovery, bytes in the repository, the manifest, the lock.
"""

from __future__ import annotations

import datetime
import json
import os
import pwd
import shlex
import shutil
import signal
import subprocess
import sys
import tempfile
import time

import pytest

from modrun import REPO, collections_root, run_module
from servers import PostgresServer, free_port

PG_USER = 'postgres'
ARCHIVE_SETTINGS = {'wal_level': 'replica', 'archive_mode': 'on', 'archive_timeout': '0'}


def _chown(path, user=PG_USER):
    pw = pwd.getpwnam(user)
    for root, dirs, files in os.walk(path):
        os.chown(root, pw.pw_uid, pw.pw_gid)
        for name in dirs + files:
            os.lchown(os.path.join(root, name), pw.pw_uid, pw.pw_gid)


@pytest.fixture
def workdir():
    base = os.environ.get('DBOPS_TEST_TMP') or tempfile.gettempdir()
    path = tempfile.mkdtemp(prefix='dbops-bk-', dir=base)
    os.chmod(path, 0o755)
    if os.geteuid() == 0:
        _chown(path)
    yield path
    shutil.rmtree(path, ignore_errors=True)


@pytest.fixture
def server():
    srv = PostgresServer(settings=ARCHIVE_SETTINGS).init().start()
    yield srv
    srv.destroy()


def seed(server, database='shop', rows=2000):
    server.psql('CREATE DATABASE %s' % database)
    server.psql("CREATE TABLE orders (id int PRIMARY KEY, customer text, amount numeric(10,2));"
                "INSERT INTO orders SELECT g, 'customer-' || g, g * 1.25 FROM generate_series(1, %d) g;"
                "CREATE TABLE notes (id serial PRIMARY KEY, body text);"
                "INSERT INTO notes (body) VALUES ('alpha'), ('beta'), ('gamma');"
                "CREATE INDEX ON orders (customer);" % rows, database)


def content(server, database):
    """Per-table row count and md5 of the ordered rows: equal means identical contents."""
    tables = server.psql("SELECT quote_ident(schemaname) || '.' || quote_ident(tablename) FROM pg_tables "
                         "WHERE schemaname NOT IN ('pg_catalog', 'information_schema') ORDER BY 1", database)
    out = {}
    for table in tables.splitlines():
        row = server.psql('SELECT count(*), md5(coalesce(string_agg(t::text, \'|\' ORDER BY t::text), \'\')) '
                          'FROM %s t' % table, database)
        out[table] = row
    return out


def backup(server, repo, check=False, **kwargs):
    args = dict(server.conn, repo=repo)
    args.update(kwargs)
    return run_module('db_backup', args, check=check)


def restore(repo, conn=None, check=False, **kwargs):
    args = dict(conn or {}, repo=repo)
    args.update(kwargs)
    return run_module('db_restore', args, check=check)


def repo_entries(repo):
    return sorted(os.listdir(repo)) if os.path.isdir(repo) else []


def manifest_of(repo, backup_id):
    with open(os.path.join(repo, backup_id, 'manifest.json')) as f:
        return json.load(f)


def stop_restored(data_dir):
    subprocess.run(['runuser', '-u', PG_USER, '--', '/usr/lib/postgresql/15/bin/pg_ctl', '-D', data_dir,
                    '-m', 'immediate', '-w', 'stop'], capture_output=True, check=False)


def restored_psql(data_dir, port, sql, database='postgres'):
    out = subprocess.run(['runuser', '-u', PG_USER, '--', '/usr/lib/postgresql/15/bin/psql', '-X', '-A', '-t',
                          '-h', data_dir, '-p', str(port), '-U', 'postgres', '-d', database, '-c', sql],
                         capture_output=True, text=True, check=True)
    return out.stdout.strip()


# ---- logical --------------------------------------------------------------------------------
def test_logical_backup_check_mode_then_restore_identical(server, workdir):
    repo = os.path.join(workdir, 'repo')
    seed(server)
    before = content(server, 'shop')

    dry = backup(server, repo, check=True, databases=['shop'], jobs=2, compression='zstd')
    assert dry['failed'] is False, dry
    assert dry['changed'] is True and 'would take' in dry['msg']
    assert not os.path.exists(repo), 'check mode must not create the repository'

    res = backup(server, repo, databases=['shop'], jobs=2, compression='zstd', label='nightly')
    assert res['failed'] is False, res
    assert res['changed'] is True
    bk = res['backup']
    assert bk['status'] == 'completed' and bk['verified'] is True and bk['method'] == 'logical'
    assert bk['size_bytes'] > 0 and os.path.isdir(bk['path'])
    manifest = manifest_of(repo, bk['id'])
    assert manifest['label'] == 'nightly' and manifest['files']
    assert any(f['path'].endswith('.dat.zst') for f in manifest['files']), manifest['files']
    assert all(len(f['sha256']) == 64 for f in manifest['files'])
    assert server.password not in json.dumps(manifest) and server.password not in json.dumps(res['commands'])

    # restore into a new database: identical contents
    out = restore(repo, server.conn, target_database='shop_copy')
    assert out['failed'] is False, out
    assert out['changed'] is True and out['backup_id'] == bk['id']
    assert content(server, 'shop_copy') == before
    assert out['rows_restored'] == sum(int(v.split('|')[0]) for v in before.values())
    # repeated identical restore is unchanged
    again = restore(repo, server.conn, target_database='shop_copy')
    assert again['failed'] is False and again['changed'] is False, again

    # restoring over the non-empty original without force fails and changes nothing
    server.psql("INSERT INTO notes (body) VALUES ('after-backup')", 'shop')
    changed_content = content(server, 'shop')
    refused = restore(repo, server.conn)
    assert refused['failed'] is True and 'force' in refused['msg'], refused
    assert content(server, 'shop') == changed_content
    # check mode tells the same
    preview = restore(repo, server.conn, check=True)
    assert preview['failed'] is True and 'force' in preview['msg'], preview
    forced = restore(repo, server.conn, force=True)
    assert forced['failed'] is False, forced
    assert content(server, 'shop') == before

    # the restore drill: scratch database restored, counted against the snapshot counts, removed
    drill = restore(repo, server.conn, state='verified')
    assert drill['failed'] is False, drill
    assert drill['result'] == 'passed' and drill['rto_seconds'] > 0
    assert {t['name'] for t in drill['tables']} == {'public.orders', 'public.notes'}
    assert all(t['rows'] == t['expected_rows'] for t in drill['tables'])
    assert 'dbops_drill' not in server.psql('SELECT string_agg(datname, \',\') FROM pg_database')


def _seed_chunky(server):
    seed(server, rows=20000)
    server.psql("CREATE TABLE \"Odd Name\" (id int, dropped text, total int GENERATED ALWAYS AS (id * 2) STORED, "
                "note text); INSERT INTO \"Odd Name\" (id, dropped, note) SELECT g, 'x', 'tab\tand\\back' "
                "FROM generate_series(1, 5000) g; ALTER TABLE \"Odd Name\" DROP COLUMN dropped", 'shop')
    # text in another script, NULLs, a newline inside a value: the chunk files carry them byte for byte
    server.psql("INSERT INTO \"Odd Name\" (id, note) VALUES (0, 'gr\u00fc\u00dfe \u65e5\u672c'), (-1, NULL), "
                "(-2, E'two\\nlines')", 'shop')


def _row_counts(server, database):
    out = {}
    for table in server.psql("SELECT quote_ident(schemaname) || '.' || quote_ident(tablename) FROM pg_tables "
                             "WHERE schemaname NOT IN ('pg_catalog', 'information_schema') ORDER BY 1",
                             database).splitlines():
        out[table] = int(server.psql('SELECT count(*) FROM %s' % table, database))
    return out


def chunked_backup(server, repo, database, conn=None, compression='zstd'):
    """db_backup logical, jobs 2, with a chunk threshold the test tables reach; returns (result, the dump's details)."""
    res = run_module('db_backup', dict(conn or server.conn, repo=repo, databases=[database], jobs=2,
                                       compression=compression),
                     env={'DBOPS_BACKUP_CHUNK_MIN_BYTES': '8192'})
    assert res['failed'] is False, res
    return res, manifest_of(repo, res['backup']['id'])['details']['dumps'][0]


def drill_passes(server, repo):
    drill = restore(repo, server.conn, state='verified')
    assert drill['failed'] is False and drill['result'] == 'passed', drill


def restores_identical(server, repo, target, before):
    """The latest backup restored (jobs 2) into target holds the contents ``before``; its drill passes."""
    out = restore(repo, server.conn, target_database=target, jobs=2)
    assert out['failed'] is False, out
    assert content(server, target) == before
    drill_passes(server, repo)


def test_logical_parallel_table_chunks_restore_identical(server, workdir):
    """Tables above the chunk threshold are copied in ctid ranges by parallel sessions of one snapshot.

    A superuser login on the same host: the server writes the chunks itself (COPY ... TO PROGRAM zstd)
    into a repository whose path needs quoting for the shell and for SQL.
    """
    repo = os.path.join(workdir, "re po's $(touch pwned)")
    _seed_chunky(server)
    before = content(server, 'shop')
    res, dump = chunked_backup(server, repo, 'shop')
    assert not os.path.exists(os.path.join('/', 'pwned')) and not os.path.exists(os.path.join(workdir, 'pwned'))
    chunked = {t['table'] for t in dump['chunked']}
    assert {'public.orders', 'public."Odd Name"'} <= chunked, chunked
    # two ranges per session (jobs 2): a session that finishes early takes the next one
    assert all(len(t['files']) == 4 for t in dump['chunked'] if t['table'] != 'public.notes'), dump['chunked']
    assert {t['exported_by'] for t in dump['chunked']} == {'server'}, dump['chunked']
    assert any('TO PROGRAM' in c and 'ctid' in c for c in res['commands'])
    # the row counts recorded for the drill are the rows each COPY exported: equal to the source's
    assert {t['name']: t['rows'] for t in dump['tables']} == _row_counts(server, 'shop')
    out = restore(repo, server.conn, target_database='shop_chunked', jobs=2)
    assert out['failed'] is False, out
    assert content(server, 'shop_chunked') == before
    assert server.psql("SELECT count(*) FROM pg_indexes WHERE tablename = 'orders'", 'shop_chunked') == '2'
    drill_passes(server, repo)


def test_logical_chunks_without_server_program_right_use_psql(server, workdir):
    """A login that may read everything but not run server programs: chunks go through psql, same result."""
    repo = os.path.join(workdir, 'repo')
    _seed_chunky(server)
    server.psql("CREATE ROLE dumper LOGIN PASSWORD 'dumper-Secret-7' IN ROLE pg_read_all_data")
    before = content(server, 'shop')
    conn = dict(server.conn, login_user='dumper', login_password='dumper-Secret-7')
    res, dump = chunked_backup(server, repo, 'shop', conn=conn, compression='lz4')
    assert dump['chunked'] and {t['exported_by'] for t in dump['chunked']} == {'psql'}, dump['chunked']
    assert all(len(t['files']) == 2 for t in dump['chunked'] if t['table'] != 'public.notes'), dump['chunked']
    assert not any('TO PROGRAM' in c for c in res['commands'])
    assert {t['name']: t['rows'] for t in dump['tables']} == _row_counts(server, 'shop')
    out = restore(repo, server.conn, target_database='shop_psql', jobs=2)
    assert out['failed'] is False, out
    assert content(server, 'shop_psql') == before


def test_logical_chunked_inheritance_parent_counts_its_children_like_the_drill(server, workdir):
    """A chunked inheritance parent: COPY exports ONLY its own rows, but the drill counts it with its children.

    The manifest's row count for the parent must be what the drill counts (parent and children), or the
    drill of a good backup fails.
    """
    repo = os.path.join(workdir, 'repo')
    server.psql('CREATE DATABASE inh')
    server.psql("CREATE TABLE parent (id int, v text); CREATE TABLE child (extra int) INHERITS (parent);"
                "INSERT INTO parent SELECT g, repeat('p', 50) FROM generate_series(1, 3000) g;"
                "INSERT INTO child SELECT g, 'c', g FROM generate_series(1, 500) g", 'inh')
    before = content(server, 'inh')
    res, dump = chunked_backup(server, repo, 'inh')
    assert 'public.parent' in {t['table'] for t in dump['chunked']}, dump['chunked']
    assert {t['exported_by'] for t in dump['chunked']} == {'server'}, dump['chunked']
    assert {t['name']: t['rows'] for t in dump['tables']} == {'public.child': 500, 'public.parent': 3500}
    restores_identical(server, repo, 'inh_copy', before)


def test_logical_chunks_leave_tables_without_copyable_columns_to_pg_dump(server, workdir):
    """A large table with no columns (or only generated ones) has nothing a column list can name: pg_dump copies it."""
    repo = os.path.join(workdir, 'repo')
    server.psql('CREATE DATABASE bare')
    server.psql("CREATE TABLE nocols (); INSERT INTO nocols SELECT FROM generate_series(1, 3000);"
                "CREATE TABLE onlygen (g int GENERATED ALWAYS AS (7) STORED);"
                "INSERT INTO onlygen SELECT FROM generate_series(1, 3000);"
                "CREATE TABLE plain (id int, v text); INSERT INTO plain SELECT g, repeat('v', 40) "
                "FROM generate_series(1, 3000) g", 'bare')
    before = content(server, 'bare')
    res, dump = chunked_backup(server, repo, 'bare')
    assert {t['table'] for t in dump['chunked']} == {'public.plain'}, dump['chunked']
    assert {t['name']: t['rows'] for t in dump['tables']} == {'public.nocols': 3000, 'public.onlygen': 3000,
                                                              'public.plain': 3000}
    restores_identical(server, repo, 'bare_copy', before)


def test_logical_backup_of_latin1_database_with_non_ascii_names(server, workdir):
    """pg_restore -l prints a LATIN1 dump's object names in LATIN1: checking the dump must not choke on them."""
    repo = os.path.join(workdir, 'repo')
    server.psql("CREATE DATABASE lat1 ENCODING LATIN1 LC_COLLATE 'C' LC_CTYPE 'C' TEMPLATE template0")
    conn = server.connect('lat1')
    conn.set_client_encoding('UTF8')
    with conn.cursor() as cur:
        cur.execute("CREATE TABLE \"t\u00e4b\" (id int, \"c\u00f6l\" text);"
                    "INSERT INTO \"t\u00e4b\" SELECT g, 'gr\u00fc\u00dfe ' || g FROM generate_series(1, 50) g")
    conn.close()
    res = backup(server, repo, databases=['lat1'], jobs=1, compression='zstd')
    assert res['failed'] is False, res
    out = restore(repo, server.conn, target_database='lat1_copy')
    assert out['failed'] is False, out

    def count(database):
        with server.connect(database) as c, c.cursor() as cur:
            c.set_client_encoding('UTF8')
            cur.execute('SELECT count(*), min("c\u00f6l") FROM "t\u00e4b"')
            return cur.fetchone()

    assert count('lat1_copy') == (50, 'gr\u00fc\u00dfe 1')
    # the new database has the backed-up one's encoding and locale, not the server's defaults
    props = "SELECT pg_encoding_to_char(encoding) || ' ' || datcollate || ' ' || datctype FROM pg_database WHERE datname = '%s'"
    assert server.psql(props % 'lat1_copy') == 'LATIN1 C C'
    # a locale this server does not have: same encoding, C locale, and a warning saying so
    path = os.path.join(repo, res['backup']['id'], 'manifest.json')
    with open(path) as f:
        manifest = json.load(f)
    manifest['details']['dumps'][0].update(collate='xx_XX.ISO-8859-1', ctype='xx_XX.ISO-8859-1')
    with open(path, 'w') as f:
        json.dump(manifest, f)
    out = restore(repo, server.conn, target_database='lat1_other')
    assert out['failed'] is False, out
    warned = json.dumps(out.get('warnings') or [])   # ansible-core 2.19 returns warnings as structured events
    assert 'xx_XX.ISO-8859-1' in warned and 'the C locale' in warned, warned
    assert server.psql(props % 'lat1_other') == 'LATIN1 C C'
    assert count('lat1_other') == (50, 'gr\u00fc\u00dfe 1')


@pytest.mark.parametrize('login', ['superuser', 'reader'])
def test_logical_chunks_of_latin1_database_with_non_ascii_names(server, workdir, login):
    """A LATIN1 database whose table and column names are not ASCII: the chunk COPY statements name them right.

    The data is in the database's encoding; the statement text (psql's command line) is UTF-8.
    """
    repo = os.path.join(workdir, 'repo')
    server.psql("CREATE DATABASE lat ENCODING LATIN1 LC_COLLATE 'C' LC_CTYPE 'C' TEMPLATE template0")
    conn = server.connect('lat')
    conn.set_client_encoding('UTF8')
    with conn.cursor() as cur:
        cur.execute("CREATE TABLE \"t\u00e4b\" (id int, \"c\u00f6l\" text);"
                    "INSERT INTO \"t\u00e4b\" SELECT g, 'gr\u00fc\u00dfe \u00ff ' || g FROM generate_series(1, 3000) g")
    conn.close()
    server.psql("CREATE ROLE reader LOGIN PASSWORD 'reader-Secret-7' IN ROLE pg_read_all_data")
    login_conn = server.conn if login == 'superuser' else dict(server.conn, login_user='reader',
                                                               login_password='reader-Secret-7')

    def rows(database):
        with server.connect(database) as c, c.cursor() as cur:
            c.set_client_encoding('UTF8')
            cur.execute("SELECT id, \"c\u00f6l\" FROM \"t\u00e4b\" ORDER BY id")
            return cur.fetchall()

    before = rows('lat')
    res, dump = chunked_backup(server, repo, 'lat', conn=login_conn)
    assert [t['table'] for t in dump['chunked']] == ['public."t\u00e4b"'], dump['chunked']
    assert {t['exported_by'] for t in dump['chunked']} == {'server' if login == 'superuser' else 'psql'}
    out = restore(repo, server.conn, target_database='lat_copy', jobs=2)
    assert out['failed'] is False, out
    assert rows('lat_copy') == before
    drill_passes(server, repo)


def test_max_age_rerun_unchanged_and_lock_refuses_concurrent_run(server, workdir):
    repo = os.path.join(workdir, 'repo')
    seed(server, rows=50)
    first = backup(server, repo, databases=['shop'], max_age='1h')
    assert first['failed'] is False and first['changed'] is True, first
    second = backup(server, repo, databases=['shop'], max_age='1h')
    assert second['failed'] is False, second
    assert second['changed'] is False and second['up_to_date'] is True
    assert second['backup']['id'] == first['backup']['id']
    assert len([e for e in repo_entries(repo) if not e.startswith('.') and e != 'logs']) == 1

    # hold the lock from another process, as a concurrent run would
    holder = subprocess.Popen([sys.executable, '-c', (
        'import fcntl, os, sys, time\n'
        'fd = os.open(sys.argv[1], os.O_RDWR)\n'
        'fcntl.flock(fd, fcntl.LOCK_EX)\n'
        'os.ftruncate(fd, 0); os.pwrite(fd, b"%d\\n" % os.getpid(), 0)\n'
        'print("locked", flush=True)\n'
        'time.sleep(60)\n'), os.path.join(repo, '.lock')], stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == 'locked'
        refused = backup(server, repo, databases=['shop'])
        assert refused['failed'] is True
        assert 'lock' in refused['msg'] and str(holder.pid) in refused['msg'], refused['msg']
    finally:
        holder.kill()
        holder.wait()
    assert len([e for e in repo_entries(repo) if not e.startswith('.') and e != 'logs']) == 1


def test_encrypted_backup_holds_no_plaintext_and_needs_the_key(server, workdir):
    repo = os.path.join(workdir, 'repo')
    marker = 'PLAINTEXT-MARKER-7c1f'
    server.psql('CREATE DATABASE vault')
    server.psql("CREATE TABLE secrets (id int, body text); INSERT INTO secrets SELECT g, '%s-' || g "
                "FROM generate_series(1, 500) g" % marker, 'vault')
    key = 'correct horse battery staple'
    res = backup(server, repo, databases=['vault'], compression='none', encryption_key=key)
    assert res['failed'] is False, res
    assert key not in json.dumps(res)
    found = subprocess.run(['grep', '-r', '-l', '-a', marker, repo], capture_output=True, text=True)
    assert found.stdout == '', 'plaintext marker found in %s' % found.stdout
    blob = subprocess.run(['grep', '-r', '-a', '-c', key, repo], capture_output=True, text=True)
    assert ':1' not in blob.stdout and key not in open(os.path.join(repo, res['backup']['id'], 'manifest.json')).read()

    wrong = restore(repo, server.conn, target_database='vault_copy', encryption_key='wrong key')
    assert wrong['failed'] is True and 'wrong encryption key' in wrong['msg'], wrong
    assert server.psql("SELECT count(*) FROM pg_database WHERE datname = 'vault_copy'") == '0'
    missing = restore(repo, server.conn, target_database='vault_copy')
    assert missing['failed'] is True and 'encrypted' in missing['msg']
    ok = restore(repo, server.conn, target_database='vault_copy', encryption_key=key)
    assert ok['failed'] is False, ok
    assert content(server, 'vault_copy') == content(server, 'vault')
    assert not [e for e in os.listdir(workdir) if e.startswith('.dbops-scratch')], 'scratch copy left behind'


def _login_count(server, user, password, database, table):
    """Log in as user with password over TCP and count the table's rows (None when refused)."""
    proc = subprocess.run(['/usr/lib/postgresql/15/bin/psql', '-X', '-A', '-t', '-h', '127.0.0.1', '-p', str(server.port),
                           '-U', user, '-d', database, '-c', 'SELECT count(*) FROM %s' % table],
                          capture_output=True, text=True, env=dict(os.environ, PGPASSWORD=password), check=False)
    return int(proc.stdout) if proc.returncode == 0 else None


def test_logical_restore_roles_require_skip_create(server, workdir):
    """The roles the objects belong or are granted to: missing ones fail the restore before any
    change (roles=require), are left out (skip), or come back as they were (create)."""
    repo = os.path.join(workdir, 'repo')
    server.psql("CREATE ROLE \"App Owner\" LOGIN CREATEROLE PASSWORD 'owner-pw-1'; CREATE ROLE app_reader; "
                "CREATE ROLE app_login LOGIN PASSWORD 'login-pw-2' IN ROLE app_reader; "
                "ALTER ROLE \"App Owner\" SET work_mem = '8MB'; COMMENT ON ROLE app_reader IS 'reads; everything'")
    server.psql('CREATE DATABASE app OWNER "App Owner"')
    server.psql('REVOKE ALL ON DATABASE app FROM PUBLIC; GRANT CONNECT ON DATABASE app TO app_reader; '
                "ALTER DATABASE app SET search_path = 'app_s', public; "
                "ALTER ROLE app_reader IN DATABASE app SET work_mem = '4MB'")
    server.psql("CREATE TABLE t (id int PRIMARY KEY, v text); INSERT INTO t SELECT g, 'v' || g FROM "
                "generate_series(1, 300) g; ALTER TABLE t OWNER TO \"App Owner\"; GRANT SELECT ON t TO app_reader", 'app')
    res = backup(server, repo, databases=['app'])
    assert res['failed'] is False, res
    assert manifest_of(repo, res['backup']['id'])['details']['dumps'][0]['roles'] == ['App Owner', 'app_reader']
    before = content(server, 'app')
    server.psql('DROP DATABASE app')
    server.psql('DROP ROLE app_login; DROP ROLE app_reader; DROP ROLE "App Owner"')
    roles = "SELECT string_agg(rolname, ',' ORDER BY rolname) FROM pg_roles WHERE rolname LIKE 'app%' OR rolname = 'App Owner'"
    # the settings restored from the source (not the restore marker, dbops.restored_from, the restore adds)
    db_settings = ("SELECT string_agg(coalesce(pg_get_userbyid(nullif(setrole, 0)), '-') || ':' || (SELECT array_agg(c) "
                   "FROM unnest(setconfig) c WHERE c NOT LIKE 'dbops.restored_from=%') ::text, ' ' "
                   "ORDER BY setrole) FROM pg_db_role_setting WHERE setdatabase = "
                   "(SELECT oid FROM pg_database WHERE datname = 'app2')")

    refused = restore(repo, server.conn, target_database='app2')
    assert refused['failed'] is True and 'App Owner, app_reader' in refused['msg'] and 'roles=create' in refused['msg']
    assert server.psql("SELECT count(*) FROM pg_database WHERE datname LIKE 'app2%'") == '0'

    skipped = restore(repo, server.conn, target_database='app2', roles='skip')
    assert skipped['failed'] is False and skipped['roles_created'] == [], skipped
    assert content(server, 'app2') == before
    assert server.psql("SELECT tableowner FROM pg_tables WHERE tablename = 't'", 'app2') == 'postgres'
    assert server.psql(roles) == ''
    assert server.psql("SELECT pg_get_userbyid(datdba) FROM pg_database WHERE datname = 'app2'") == 'postgres'
    assert server.psql(db_settings) == '-:{"search_path=app_s, public"}'   # settings naming no role stay
    again = restore(repo, server.conn, target_database='app2', roles='skip')
    assert again['failed'] is False and again['changed'] is False, again
    # restored without owners: asking for them is not "already held" (it was, and roles were never created)
    for check in (True, False):
        owners = restore(repo, server.conn, check=check, target_database='app2', roles='create')
        assert owners['failed'] is True and 'set force to replace it' in owners['msg'], owners
    preview = restore(repo, server.conn, check=True, target_database='app2', roles='create', force=True)
    assert preview['failed'] is False and preview['changed'] is True, preview
    assert preview['roles_created'] == ['App Owner', 'app_reader'] and server.psql(roles) == ''
    server.psql('DROP DATABASE app2')

    preview = restore(repo, server.conn, check=True, target_database='app2', roles='create')
    assert preview['failed'] is False and preview['changed'] is True
    assert preview['roles_created'] == ['App Owner', 'app_reader'] and server.psql(roles) == ''

    created = restore(repo, server.conn, target_database='app2', roles='create')
    assert created['failed'] is False, created
    assert created['roles_created'] == ['App Owner', 'app_reader']
    # a role created with power over the server is pointed out
    assert 'roles App Owner were created as recorded with SUPERUSER, CREATEROLE' in json.dumps(created['warnings'])
    assert server.psql(roles) == 'App Owner,app_reader'    # app_login was not needed: not created
    assert content(server, 'app2') == before
    assert server.psql("SELECT tableowner FROM pg_tables WHERE tablename = 't'", 'app2') == 'App Owner'
    assert server.psql("SELECT has_table_privilege('app_reader', 't', 'SELECT')", 'app2') == 't'
    # the database itself: owner, privileges (PUBLIC may not connect, app_reader may), settings
    assert server.psql("SELECT pg_get_userbyid(datdba) FROM pg_database WHERE datname = 'app2'") == 'App Owner'
    assert server.psql("SELECT has_database_privilege('app_reader', 'app2', 'CONNECT')") == 't'
    assert server.psql("SELECT count(*) FROM pg_database, aclexplode(datacl) a WHERE datname = 'app2' "
                       "AND a.grantee = 0") == '0'
    assert server.psql(db_settings) == '-:{"search_path=app_s, public"} app_reader:{work_mem=4MB}'
    assert server.psql("SELECT setconfig::text FROM pg_db_role_setting s JOIN pg_roles r ON r.oid = s.setrole "
                       "WHERE r.rolname = 'App Owner'") == '{work_mem=8MB}'
    assert server.psql("SELECT shobj_description(oid, 'pg_authid') FROM pg_roles WHERE rolname = 'app_reader'") == \
        'reads; everything'
    assert _login_count(server, 'App Owner', 'owner-pw-1', 'app2', 't') == 300   # the same password hash
    text = json.dumps(created)
    assert 'SCRAM-SHA-256$' not in text and 'owner-pw-1' not in text
    assert any(q.startswith('CREATE ROLE "App Owner"') for q in created['queries'])

    again = restore(repo, server.conn, target_database='app2', roles='create')
    assert again['failed'] is False and again['changed'] is False, again

    # a restore drill creates no roles
    drill = restore(repo, server.conn, state='verified', roles='create')
    assert drill['failed'] is True and 'roles=create' in drill['msg']


def test_logical_roles_created_from_a_backup_without_passwords_warn(server, workdir):
    """A backup taken by a login that cannot read pg_authid saves roles without passwords:
    roles=create says the created roles have none."""
    repo = os.path.join(workdir, 'repo')
    server.psql("CREATE ROLE bk LOGIN PASSWORD 'bk-Secret-3' IN ROLE pg_read_all_data; "
                "CREATE ROLE owner_np LOGIN PASSWORD 'np-Secret-4'")
    server.psql('CREATE DATABASE np')
    server.psql('CREATE TABLE t (id int); INSERT INTO t VALUES (1), (2); ALTER TABLE t OWNER TO owner_np', 'np')
    res = backup(server, repo, databases=['np'], login_user='bk', login_password='bk-Secret-3')
    assert res['failed'] is False, res
    server.psql('DROP DATABASE np')
    server.psql('DROP ROLE owner_np')
    out = restore(repo, server.conn, roles='create')
    assert out['failed'] is False, out['msg']
    assert out['roles_created'] == ['owner_np']
    assert any('without passwords' in str(w) for w in out.get('warnings') or []), out.get('warnings')
    assert server.psql("SELECT rolpassword IS NULL FROM pg_authid WHERE rolname = 'owner_np'") == 't'
    assert server.psql("SELECT tableowner FROM pg_tables WHERE tablename = 't'", 'np') == 'owner_np'


def test_logical_restore_names_the_bootstrap_superuser_a_target_lacks(server, workdir):
    """Objects owned by the source's bootstrap superuser need a role of that name: a server
    initialised with another superuser name (a managed service) is refused before any change."""
    repo = os.path.join(workdir, 'repo')
    seed(server, 'shop', rows=20)
    res = backup(server, repo, databases=['shop'])
    assert res['failed'] is False, res
    assert 'postgres' in manifest_of(repo, res['backup']['id'])['details']['dumps'][0]['roles']
    other = PostgresServer()
    other.superuser = 'admin'
    other.init().start()
    try:
        refused = restore(repo, other.conn)
        assert refused['failed'] is True and 'do not exist here: postgres.' in refused['msg'], refused['msg']
        assert other.psql("SELECT count(*) FROM pg_database WHERE datname LIKE 'shop%'") == '0'
        skipped = restore(repo, other.conn, roles='skip')
        assert skipped['failed'] is False, skipped['msg']
        assert content(other, 'shop') == content(server, 'shop')
        assert other.psql("SELECT tableowner FROM pg_tables WHERE tablename = 'orders'", 'shop') == 'admin'
    finally:
        other.destroy()


def test_logical_roles_created_for_a_failed_restore_are_dropped(server, workdir, monkeypatch):
    """roles=create, then pg_restore fails: no database and no role created for it stays."""
    sys.path.insert(0, collections_root())
    from ansible_collections.dbops.admin.plugins.module_utils._connection import connect_params
    from ansible_collections.dbops.admin.plugins.module_utils._engines import postgresql_backup as pgb
    from ansible_collections.dbops.admin.plugins.module_utils._errors import DbError

    repo = os.path.join(workdir, 'repo')
    server.psql("CREATE ROLE gone_owner LOGIN PASSWORD 'gone-pw-5'")
    server.psql('CREATE DATABASE gone OWNER gone_owner')
    server.psql('CREATE TABLE t (id int); ALTER TABLE t OWNER TO gone_owner', 'gone')
    res = backup(server, repo, databases=['gone'])
    assert res['failed'] is False, res
    manifest = manifest_of(repo, res['backup']['id'])
    server.psql('DROP DATABASE gone')
    server.psql('DROP ROLE gone_owner')
    real = pgb.run_tool

    def failing(argv, *args, **kwargs):
        if os.path.basename(argv[0]) == 'pg_restore':
            raise DbError('restore database', 'gone', 'pg_restore failed: out of disk')
        return real(argv, *args, **kwargs)

    monkeypatch.setattr(pgb, 'run_tool', failing)
    engine = connect_params(server.conn)
    try:
        with pytest.raises(DbError, match='out of disk'):
            engine.restore_logical({'manifest': manifest, 'path': os.path.join(repo, manifest['id'], 'data'),
                                    'roles': 'create', 'force': False, 'jobs': 1, 'connection': server.conn,
                                    'os_user': PG_USER, 'scratch_dir': workdir, 'marker': {'backup_id': 'x'}})
    finally:
        engine.close()
    assert server.psql("SELECT count(*) FROM pg_roles WHERE rolname = 'gone_owner'") == '0'
    assert server.psql("SELECT count(*) FROM pg_database WHERE datname LIKE 'gone%'") == '0'


# ---- physical -------------------------------------------------------------------------------
def test_physical_full_restored_into_new_data_dir_and_flipped_byte_detected(server, workdir):
    repo = os.path.join(workdir, 'repo')
    seed(server)
    before = content(server, 'shop')
    res = backup(server, repo, method='physical', type='full')
    assert res['failed'] is False, res
    bk = res['backup']
    assert bk['verified'] is True and bk['stop_position']['lsn']
    assert any('pg_basebackup' in c for c in res['commands']) and any('pg_verifybackup' in c for c in res['commands'])
    server.psql("INSERT INTO notes (body) VALUES ('after-backup')", 'shop')

    data_dir = os.path.join(workdir, 'restored')
    port = free_port()
    try:
        out = restore(repo, data_dir=data_dir, port=port)
        assert out['failed'] is False, out
        assert out['changed'] is True and out['port'] == port
        copy = PostgresServer(workdir=workdir, port=port)
        copy.data_dir, copy.socket_dir = data_dir, data_dir
        assert content(copy, 'shop') == before
        assert restored_psql(data_dir, port, 'SELECT pg_is_in_recovery()') == 'f'
        again = restore(repo, data_dir=data_dir, port=port)
        assert again['failed'] is False and again['changed'] is False, again
    finally:
        stop_restored(data_dir)

    # check mode: says what would happen, writes nothing
    dry_dir = os.path.join(workdir, 'dry')
    dry = restore(repo, check=True, data_dir=dry_dir, port=free_port())
    assert dry['failed'] is False and dry['changed'] is True and 'would restore' in dry['msg'], dry
    assert not os.path.exists(dry_dir)

    # the restore drill: scratch instance on a free port, counted, checked, removed
    drill = restore(repo, server.conn, state='verified', backup_id=bk['id'])
    assert drill['failed'] is False, drill
    assert drill['result'] == 'passed' and drill['rto_seconds'] > 0 and drill['problems'] == []
    orders = [t for t in drill['tables'] if t['database'] == 'shop' and t['name'] == 'public.orders']
    assert orders and orders[0]['rows'] == int(before['public.orders'].split('|')[0])
    notes = [t for t in drill['tables'] if t['database'] == 'shop' and t['name'] == 'public.notes'][0]
    assert notes['source_rows'] == notes['rows'] + 1  # the live source moved on by one row
    assert not [e for e in os.listdir(workdir) if e.startswith('.dbops-scratch')], 'drill left its scratch copy'
    assert not [line for line in subprocess.run(['ps', '-eo', 'args'], capture_output=True, text=True).stdout.splitlines()
                if '.dbops-scratch' in line and 'postgres' in line], 'drill left its instance running'

    # flip one byte of one file: verification names the file
    manifest = manifest_of(repo, bk['id'])
    victim = next(f['path'] for f in manifest['files'] if f['path'].startswith('base/base/') and f['size'] > 8192)
    path = os.path.join(repo, bk['id'], 'data', victim)
    with open(path, 'r+b') as f:
        f.seek(4096)
        byte = f.read(1)
        f.seek(4096)
        f.write(bytes([byte[0] ^ 0xFF]))
    bad = run_module('db_backup', {'repo': repo, 'state': 'verified', 'backup_id': bk['id']})
    assert bad['failed'] is True and victim in bad['msg'], bad['msg']
    refused = restore(repo, data_dir=os.path.join(workdir, 'restored2'), port=free_port())
    assert refused['failed'] is True and victim in refused['msg']
    assert not os.path.exists(os.path.join(workdir, 'restored2'))
    # check mode refuses alike (it said "would restore"), and so does a check-mode drill
    for kwargs in ({'data_dir': os.path.join(workdir, 'restored2'), 'port': free_port()},
                   dict(server.conn, state='verified')):
        preview = restore(repo, check=True, **kwargs)
        assert preview['failed'] is True and 'the repository copy is damaged' in preview['msg'], preview
        assert victim in preview['msg'], preview['msg']
    assert not os.path.exists(os.path.join(workdir, 'restored2'))


def test_point_in_time_recovery_marker_rows_and_missing_wal(server, workdir):
    repo = os.path.join(workdir, 'repo')
    seed(server, rows=100)
    # module turns archiving on (archive_mode already on: no restart needed)
    first_log = backup(server, repo, method='physical', type='log')
    assert first_log['failed'] is False, first_log
    assert first_log['restart_required'] is False
    assert server.psql('SHOW archive_command').startswith('test ! -f')
    full = backup(server, repo, method='physical', type='full')
    assert full['failed'] is False, full
    server.psql("CREATE TABLE marker (name text, at timestamptz DEFAULT clock_timestamp()); "
                "INSERT INTO marker (name) VALUES ('A')", 'shop')
    time.sleep(1.5)
    target = datetime.datetime.now(datetime.timezone.utc).isoformat()
    time.sleep(1.5)
    server.psql("INSERT INTO marker (name) VALUES ('B')", 'shop')
    log = backup(server, repo, method='physical', type='log')
    assert log['failed'] is False, log
    lm = manifest_of(repo, log['backup']['id'])
    assert lm['parent_id'] == full['backup']['id'] and lm['log_files']

    data_dir = os.path.join(workdir, 'pitr')
    port = free_port()
    try:
        out = restore(repo, data_dir=data_dir, port=port, target_time=target)
        assert out['failed'] is False, out
        assert out['backup_id'] == full['backup']['id']
        assert restored_psql(data_dir, port, 'SELECT string_agg(name, \',\' ORDER BY name) FROM marker', 'shop') == 'A'
        assert out['recovered_to'] and out['recovered_to'] <= target.replace('+00:00', 'Z')
    finally:
        stop_restored(data_dir)

    # remove one archived segment in the middle of the range: verification and restore fail naming it
    segments = sorted(f['path'] for f in lm['log_files'] if len(os.path.basename(f['path'])) == 24)
    victim = segments[len(segments) // 2]
    os.unlink(os.path.join(repo, victim))
    bad = run_module('db_backup', {'repo': repo, 'state': 'verified', 'backup_id': log['backup']['id']})
    assert bad['failed'] is True and os.path.basename(victim) in bad['msg'], bad['msg']
    refused = restore(repo, data_dir=os.path.join(workdir, 'pitr2'), port=free_port(), target_time=target)
    assert refused['failed'] is True and os.path.basename(victim) in refused['msg'], refused['msg']


def test_log_backup_restored_to_its_end_and_targets_read_as_utc(workdir):
    """Restoring (and drilling) a log backup without a target ends at that log backup; a target
    time without a zone is UTC even when the server's time zone is not; Z and +00:00 spell the same
    target (the second run is unchanged); impossible targets fail before anything is written."""
    server = PostgresServer(settings=dict(ARCHIVE_SETTINGS, timezone="'Asia/Kolkata'")).init().start()
    try:
        repo = os.path.join(workdir, 'repo')
        seed(server, rows=50)
        assert backup(server, repo, method='physical', type='log')['failed'] is False
        full = backup(server, repo, method='physical', type='full')
        assert full['failed'] is False, full
        server.psql("CREATE TABLE marker (name text); INSERT INTO marker VALUES ('A')", 'shop')
        time.sleep(1.2)
        moment = datetime.datetime.now(datetime.timezone.utc)
        time.sleep(1.2)
        server.psql("INSERT INTO marker VALUES ('B')", 'shop')
        log = backup(server, repo, method='physical', type='log')
        assert log['failed'] is False, log
        server.psql("INSERT INTO marker VALUES ('C')", 'shop')   # after the log backup
        markers = "SELECT string_agg(name, ',' ORDER BY name) FROM marker"

        # latest = the log backup, no target: everything up to its end, nothing after
        data_dir, port = os.path.join(workdir, 'end'), free_port()
        try:
            out = restore(repo, data_dir=data_dir, port=port)
            assert out['failed'] is False, out['msg']
            assert out['backup_id'] == log['backup']['id']
            assert restored_psql(data_dir, port, markers, 'shop') == 'A,B'
            assert not os.path.exists(os.path.join(data_dir, 'dbops_restore_wal'))
        finally:
            stop_restored(data_dir)
        drill = restore(repo, server.conn, state='verified')
        assert drill['failed'] is False and drill['result'] == 'passed', drill.get('msg')

        # zone-less target = UTC (the restored server runs in Asia/Kolkata)
        data_dir, port = os.path.join(workdir, 'pitr'), free_port()
        naive = moment.replace(tzinfo=None).isoformat(timespec='seconds')
        try:
            out = restore(repo, data_dir=data_dir, port=port, target_time=naive)
            assert out['failed'] is False, out['msg']
            assert restored_psql(data_dir, port, markers, 'shop') == 'A'
            same = restore(repo, data_dir=data_dir, port=port, target_time=naive + 'Z')
            assert same['failed'] is False and same['changed'] is False, same['msg']
            plus = restore(repo, data_dir=data_dir, port=port,
                           target_time=moment.replace(microsecond=0).astimezone(
                               datetime.timezone(datetime.timedelta(hours=2))).isoformat())
            assert plus['failed'] is False and plus['changed'] is False, plus['msg']
        finally:
            stop_restored(data_dir)

        # refused before anything is written
        for kwargs, words in (
                ({'target_time': '2001-01-01T00:00:00Z', 'backup_id': full['backup']['id']}, 'consistent only from'),
                ({'target_time': '2999-01-01T00:00:00Z', 'backup_id': full['backup']['id']}, 'in the future'),
                ({'target_position': {'lsn': "0/1'; x"}}, 'hexadecimal'),
                ({'target_position': {'LSN': '0/1'}}, 'LSN')):
            target_dir = os.path.join(workdir, 'refused')
            bad = restore(repo, data_dir=target_dir, port=free_port(), **kwargs)
            assert bad['failed'] is True and words in bad['msg'], (kwargs, bad['msg'])
            assert not os.path.exists(target_dir) or not os.listdir(target_dir)
            # check mode refuses it too (a target_time before the backup's end was "would restore")
            preview = restore(repo, check=True, data_dir=target_dir, port=free_port(), **kwargs)
            assert preview['failed'] is True and words in preview['msg'], (kwargs, preview['msg'])
        # a target after the end of the archive (C was never archived): a clear error, nothing left
        time.sleep(1.1)
        late_dir = os.path.join(workdir, 'late')
        late = restore(repo, data_dir=late_dir, port=free_port(),
                       target_time=datetime.datetime.now(datetime.timezone.utc).isoformat())
        assert late['failed'] is True and 'the WAL archive ends before the target' in late['msg'], late['msg']
        assert not os.path.exists(late_dir)   # created by the failed restore: removed again
        # check mode tells the same as the real run about a non-empty directory
        busy = os.path.join(workdir, 'busy')
        os.makedirs(busy)
        open(os.path.join(busy, 'keep.txt'), 'w').close()
        preview = restore(repo, check=True, data_dir=busy, port=free_port())
        assert preview['failed'] is True and 'force' in preview['msg']
        assert os.listdir(busy) == ['keep.txt']
    finally:
        server.destroy()


def test_log_backup_verify_and_restore_across_a_timeline_switch(server, workdir):
    """After a promote (timeline 2) the archive holds timeline 1's last segment as .partial, the
    history file and timeline 2's segments: log backups, their verification and the restore of the
    latest one go on without a new full; a segment really missing is still named."""
    repo = os.path.join(workdir, 'repo')
    seed(server, rows=20)
    assert backup(server, repo, method='physical', type='log')['failed'] is False
    full = backup(server, repo, method='physical', type='full')
    assert full['failed'] is False, full
    server.psql("CREATE TABLE marker (name text); INSERT INTO marker VALUES ('before')", 'shop')
    before = backup(server, repo, method='physical', type='log')
    assert before['failed'] is False, before

    # failover: the server comes back as a standby and is promoted
    server.stop()
    signal_file = os.path.join(server.data_dir, 'standby.signal')
    open(signal_file, 'w').close()
    _chown(signal_file)
    server.start()
    subprocess.run(['runuser', '-u', PG_USER, '--', server.bin('pg_ctl'), '-D', server.data_dir, '-w', 'promote'],
                   capture_output=True, check=True)
    server.psql("INSERT INTO marker VALUES ('after')", 'shop')

    log = backup(server, repo, method='physical', type='log')
    assert log['failed'] is False, log['msg']
    lm = manifest_of(repo, log['backup']['id'])
    assert lm['stop_position']['timeline'] == 2 and lm['stop_position']['wal_file'].startswith('00000002')
    archive = os.listdir(os.path.join(repo, 'logs'))
    assert '00000002.history' in archive and [n for n in archive if n.endswith('.partial')], archive
    assert 'logs/00000002.history' in [f['path'] for f in lm['log_files']]
    checked = run_module('db_backup', {'repo': repo, 'state': 'verified', 'backup_id': log['backup']['id']})
    assert checked['failed'] is False, checked['msg']

    data_dir, port = os.path.join(workdir, 'restored'), free_port()
    try:
        out = restore(repo, data_dir=data_dir, port=port)
        assert out['failed'] is False, out['msg']
        assert out['backup_id'] == log['backup']['id']
        assert restored_psql(data_dir, port, "SELECT string_agg(name, ',' ORDER BY name) FROM marker",
                             'shop') == 'after,before'
    finally:
        stop_restored(data_dir)

    # a segment of timeline 2 removed: verification names it
    victim = sorted(f['path'] for f in lm['log_files'] if os.path.basename(f['path']).startswith('00000002')
                    and len(os.path.basename(f['path'])) == 24)[0]
    os.unlink(os.path.join(repo, victim))
    bad = run_module('db_backup', {'repo': repo, 'state': 'verified', 'backup_id': log['backup']['id']})
    assert bad['failed'] is True and os.path.basename(victim) in bad['msg'], bad['msg']


def test_logical_restore_targets_are_respected(server, workdir):
    """What counts as 'not empty', the work database, odd target names, the source of a restore."""
    repo = os.path.join(workdir, 'repo')
    seed(server, 'shop', rows=30)
    seed(server, 'other', rows=7)
    res = backup(server, repo, databases=['shop', 'other'])
    assert res['failed'] is False, res
    # a database holding only a function is not empty: replacing it needs force
    server.psql('CREATE DATABASE fnonly')
    server.psql("CREATE FUNCTION keep_me() RETURNS int LANGUAGE sql AS 'SELECT 1'", 'fnonly')
    refused = restore(repo, server.conn, databases=['shop'], target_database='fnonly')
    assert refused['failed'] is True and 'force' in refused['msg']
    assert server.psql('SELECT keep_me()', 'fnonly') == '1'
    # a database named like a work database is never touched
    server.psql('CREATE DATABASE victim')
    server.psql('CREATE DATABASE victim_dbops_restore')
    server.psql('CREATE TABLE precious (id int); INSERT INTO precious VALUES (1)', 'victim_dbops_restore')
    half_deleted = os.path.join(repo, '.deleting-20260101T000000Z-full')   # a delete killed after its rename
    os.makedirs(os.path.join(half_deleted, 'data'))
    out = restore(repo, server.conn, databases=['shop'], target_database='victim', force=True)
    assert out['failed'] is False, out['msg']
    assert [(e['path'], e['status']) for e in out['leftovers']] == [(half_deleted, 'removed')]
    assert not os.path.exists(half_deleted) and any('killed runs' in str(w) for w in out.get('warnings') or [])
    assert server.psql('SELECT count(*) FROM precious', 'victim_dbops_restore') == '1'
    assert content(server, 'victim') == content(server, 'shop')
    # a name with '=' and quotes is a database name, not a connection string
    odd = "we=ird 'db"
    odd_conninfo = "dbname='we=ird \\'db'"   # how psql -d (the test's own) names it
    out = restore(repo, server.conn, databases=['shop'], target_database=odd)
    assert out['failed'] is False, out['msg']
    assert content(server, odd_conninfo) == content(server, 'shop')
    # another source database into the same target is a different restore
    other = restore(repo, server.conn, databases=['other'], target_database=odd, force=True)
    assert other['failed'] is False and other['changed'] is True, other['msg']
    assert content(server, odd_conninfo) == content(server, 'other')
    # a drill of a database the backup does not hold fails
    drill = restore(repo, server.conn, state='verified', databases=['nosuchdb'])
    assert drill['failed'] is True and 'nosuchdb' in drill['msg']
    zero = restore(repo, server.conn, databases=['shop'], target_database='shop_jobs', jobs=0)
    assert zero['failed'] is True and 'jobs' in zero['msg']
    assert server.psql("SELECT count(*) FROM pg_database WHERE datname = 'shop_jobs'") == '0'


def test_killed_backup_leaves_previous_latest_intact_and_restorable(server, workdir):
    repo = os.path.join(workdir, 'repo')
    seed(server, rows=300)
    before = content(server, 'shop')
    good = backup(server, repo, databases=['shop'])
    assert good['failed'] is False, good
    # a large table so that the second run is still dumping when killed
    server.psql("CREATE TABLE big AS SELECT g AS id, repeat(md5(g::text), 20) AS pad FROM generate_series(1, 400000) g",
                'shop')
    args = dict(server.conn, repo=repo, databases=['shop'], compression='none')
    with tempfile.NamedTemporaryFile('w', suffix='.json', delete=False) as f:
        json.dump({'ANSIBLE_MODULE_ARGS': args}, f)
        argsfile = f.name
    env = dict(os.environ, PYTHONPATH=collections_root())
    proc = subprocess.Popen([sys.executable, os.path.join(REPO, 'plugins', 'modules', 'db_backup.py'), argsfile],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env)
    try:
        deadline = time.time() + 60
        while time.time() < deadline:
            incoming = [e for e in repo_entries(repo) if e.startswith('.incoming-')]
            data = os.path.join(repo, incoming[0], 'data') if incoming else None
            # the run creates .incoming-<id> first and its data/ just after: wait for both
            if data and os.path.isdir(data) and any(os.scandir(data)):
                break
            time.sleep(0.05)
        assert incoming, 'the second run never started writing'
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait()
    finally:
        os.unlink(argsfile)
    time.sleep(1)  # the orphaned pg_dump notices its parent is gone
    listing = run_module('db_backup', {'repo': repo, 'state': 'verified'})
    assert listing['failed'] is False, listing
    assert listing['backup']['id'] == good['backup']['id']
    assert [r['status'] for r in listing['failed_runs']] == ['failed']
    out = restore(repo, server.conn, target_database='shop_back')
    assert out['failed'] is False and out['backup_id'] == good['backup']['id'], out
    assert content(server, 'shop_back') == before


def test_retention_keeps_what_it_must(server, workdir):
    repo = os.path.join(workdir, 'repo')
    seed(server, rows=20)
    ids = []
    for _ in range(3):
        res = backup(server, repo, databases=['shop'], compression='none')
        assert res['failed'] is False, res
        ids.append(res['backup']['id'])
    dry = run_module('db_backup', {'repo': repo, 'state': 'absent', 'retention': {'full': 1}}, check=True)
    assert dry['failed'] is False and dry['changed'] is True and dry['deleted'] == ids[:2]
    assert all(os.path.isdir(os.path.join(repo, i)) for i in ids), 'check mode deleted something'
    res = run_module('db_backup', {'repo': repo, 'state': 'absent', 'retention': {'full': 1}})
    assert res['failed'] is False and sorted(res['deleted']) == sorted(ids[:2]), res
    assert [i for i in ids if os.path.isdir(os.path.join(repo, i))] == [ids[2]]
    # full: 0 would delete everything: the only restorable backup stays
    res = run_module('db_backup', {'repo': repo, 'state': 'absent', 'retention': {'full': 0}})
    assert res['failed'] is False and res['deleted'] == [] and res['changed'] is False, res
    assert os.path.isdir(os.path.join(repo, ids[2]))
    out = restore(repo, server.conn, target_database='shop_kept')
    assert out['failed'] is False and out['backup_id'] == ids[2]


def test_retention_prunes_wal_archive_to_kept_fulls(server, workdir):
    """WAL older than the oldest kept physical full goes with the backups retention deletes; the rest stays."""
    repo = os.path.join(workdir, 'repo')
    seed(server, rows=20)
    first_full = backup(server, repo, method='physical', type='full')
    assert first_full['failed'] is False, first_full
    for n in range(3):
        server.psql('INSERT INTO orders VALUES (%d, \'wal-%d\', 1)' % (100000 + n, n), 'shop')
        log = backup(server, repo, method='physical', type='log')
        assert log['failed'] is False, log
    second_full = backup(server, repo, method='physical', type='full')
    assert second_full['failed'] is False, second_full
    last_log = backup(server, repo, method='physical', type='log')
    assert last_log['failed'] is False, last_log
    logs_dir = os.path.join(repo, 'logs')
    before = sorted(n for n in os.listdir(logs_dir) if not n.startswith('.'))
    cutoff = manifest_of(repo, second_full['backup']['id'])['start_position']['wal_file']
    older = [n for n in before if len(n) >= 24 and n[8:24] < cutoff[8:24] and not n.endswith('.history')]
    assert older, before

    dry = run_module('db_backup', {'repo': repo, 'state': 'absent', 'retention': {'full': 1}}, check=True)
    assert dry['failed'] is False and dry['changed'] is True, dry
    assert dry['deleted_logs'] == ['logs/' + n for n in older], dry
    assert sorted(n for n in os.listdir(logs_dir) if not n.startswith('.')) == before, 'check mode deleted archived WAL'

    res = run_module('db_backup', {'repo': repo, 'state': 'absent', 'retention': {'full': 1}})
    assert res['failed'] is False, res
    assert first_full['backup']['id'] in res['deleted'] and second_full['backup']['id'] not in res['deleted']
    assert res['deleted_logs'] == dry['deleted_logs']
    after = sorted(n for n in os.listdir(logs_dir) if not n.startswith('.'))
    assert after == [n for n in before if n not in older]
    assert cutoff in after and all(n[8:24] >= cutoff[8:24] for n in after if not n.endswith('.history'))
    # what is kept still verifies (the last log backup lists its segments) and a rerun prunes nothing more
    verified = run_module('db_backup', {'repo': repo, 'state': 'verified', 'backup_id': last_log['backup']['id']})
    assert verified['failed'] is False, verified
    again = run_module('db_backup', {'repo': repo, 'state': 'absent', 'retention': {'full': 1}})
    assert again['failed'] is False and again['changed'] is False and again['deleted_logs'] == [], again
    # the kept full still restores
    drill = restore(repo, server.conn, state='verified', backup_id=second_full['backup']['id'])
    assert drill['failed'] is False and drill['result'] == 'passed', drill


# ---- pgBackRest chains -------------------------------------------------------------------------
def markers_a_then_b_archived(server):
    """Marker A, a target time, marker B, then a WAL switch archived by pgBackRest: returns the target."""
    server.psql("CREATE TABLE marker (name text); INSERT INTO marker VALUES ('A')", 'shop')
    time.sleep(1.5)
    target = datetime.datetime.now(datetime.timezone.utc).isoformat()
    time.sleep(1.5)
    server.psql("INSERT INTO marker VALUES ('B')", 'shop')
    seg = server.psql('SELECT pg_walfile_name(pg_switch_wal())')
    deadline = time.time() + 60
    while server.psql('SELECT coalesce(last_archived_wal, \'\') FROM pg_stat_archiver') < seg:
        assert time.time() < deadline, 'pgBackRest archive-push did not archive %s' % seg
        time.sleep(0.3)
    return target


def test_pgbackrest_full_incremental_differential_chain(server, workdir):
    if not shutil.which('pgbackrest'):
        pytest.skip('pgbackrest not installed')
    repo = os.path.join(workdir, 'repo')
    seed(server, rows=100)
    states = {}
    ids = {}
    for step, btype in enumerate(['full', 'incremental', 'differential']):
        server.psql("INSERT INTO notes (body) SELECT 'step-%d-' || g FROM generate_series(1, %d) g"
                    % (step, 10 * (step + 1)), 'shop')
        res = backup(server, repo, method='pgbackrest', type=btype)
        assert res['failed'] is False, res
        bk = res['backup']
        assert bk['method'] == 'pgbackrest' and bk['type'] == btype and bk['verified'] is True
        ids[btype] = bk['id']
        states[btype] = content(server, 'shop')
        manifest = manifest_of(repo, bk['id'])
        assert manifest['details']['label'] and manifest['details']['pgbackrest_type'] == \
            {'full': 'full', 'incremental': 'incr', 'differential': 'diff'}[btype]
    assert manifest_of(repo, ids['incremental'])['parent_id'] == ids['full']
    assert manifest_of(repo, ids['differential'])['parent_id'] == ids['full']
    assert manifest_of(repo, ids['differential'])['details']['prior'] == manifest_of(repo, ids['full'])['details']['label']
    server.psql("INSERT INTO notes (body) VALUES ('after-all')", 'shop')

    for btype in ('incremental', 'differential'):
        data_dir = os.path.join(workdir, 'r-' + btype)
        port = free_port()
        try:
            out = restore(repo, backup_id=ids[btype], data_dir=data_dir, port=port)
            assert out['failed'] is False, out
            copy = PostgresServer(workdir=workdir, port=port)
            copy.data_dir, copy.socket_dir = data_dir, data_dir
            assert content(copy, 'shop') == states[btype], btype
        finally:
            stop_restored(data_dir)
    # point in time through pgBackRest's own archive: marker A kept, B not
    target = markers_a_then_b_archived(server)
    data_dir = os.path.join(workdir, 'r-pitr')
    port = free_port()
    try:
        out = restore(repo, data_dir=data_dir, port=port, target_time=target, method='pgbackrest')
        assert out['failed'] is False, out
        assert out['backup_id'] == ids['differential']
        assert restored_psql(data_dir, port, 'SELECT string_agg(name, \',\' ORDER BY name) FROM marker', 'shop') == 'A'
    finally:
        stop_restored(data_dir)
    # a target before the end of the chosen set: refused before anything is written, check mode alike (it said
    # "would restore"; the real run restored the set, then advised a log backup, which pgBackRest does not take)
    for kwargs in ({'target_time': '2001-01-01T00:00:00Z'}, {'target_position': {'lsn': '0/1'}}):
        for check in (True, False):
            early_dir = os.path.join(workdir, 'r-early')
            out = restore(repo, check=check, backup_id=ids['differential'], data_dir=early_dir, port=free_port(), **kwargs)
            assert out['failed'] is True and ids['differential'] in out['msg'], (kwargs, check, out['msg'])
            assert 'ends at' in out['msg'] or 'ended at' in out['msg'] or 'ends after' in out['msg'], out['msg']
            assert 'type=log' not in out['msg'] and not os.path.exists(early_dir), out['msg']

    # pgBackRest's own check of the whole repository
    checked = run_module('db_backup', {'repo': repo, 'state': 'verified', 'backup_id': ids['differential']})
    assert checked['failed'] is False, checked


def _pgbackrest_archive(repo):
    """{file name: path relative to repo} of pgBackRest's archived WAL (segments and .backup files)."""
    root = os.path.join(repo, 'pgbackrest', 'archive', 'dbops')
    return {name: os.path.relpath(os.path.join(d, name), repo) for d, _, names in os.walk(root)
            for name in names if len(name) >= 24 and name[:24].isalnum()}


def test_pgbackrest_retention_prunes_its_wal_archive_to_the_kept_sets(server, workdir):
    """retention full: 1 expires the older pgBackRest sets and the WAL only they could use - with pgBackRest's
    own archive retention, so no set goes with it - and the kept set still restores to a point after it."""
    if not shutil.which('pgbackrest'):
        pytest.skip('pgbackrest not installed')
    repo = os.path.join(workdir, 'repo')
    seed(server, rows=50)
    ids = []
    for n in range(3):
        for _ in range(2):
            server.psql("INSERT INTO notes (body) VALUES ('full-%d')" % n, 'shop')
            server.psql('SELECT pg_switch_wal()')
        res = backup(server, repo, method='pgbackrest', type='full')
        assert res['failed'] is False, res
        ids.append(res['backup']['id'])
    kept = manifest_of(repo, ids[2])
    cutoff = kept['start_position']['wal_file']
    before = _pgbackrest_archive(repo)
    older = sorted(rel for name, rel in before.items() if name[:24] < cutoff)
    assert len(older) >= 6, before

    args = {'repo': repo, 'state': 'absent', 'retention': {'full': 1}}
    dry = run_module('db_backup', args, check=True, diff=True)
    assert dry['failed'] is False and dry['changed'] is True, dry
    assert dry['deleted'] == ids[:2], dry
    assert dry['deleted_logs'] == older, dry['deleted_logs']
    assert dry['diff']['before']['archived_logs'] == older and dry['diff']['after']['archived_logs'] == []
    assert _pgbackrest_archive(repo) == before, 'check mode removed archived WAL'
    assert all(os.path.isdir(os.path.join(repo, i)) for i in ids), 'check mode deleted a backup'

    res = run_module('db_backup', args, diff=True)
    assert res['failed'] is False and res['changed'] is True, res
    assert res['deleted'] == ids[:2] and res['deleted_logs'] == older, res
    assert res['diff']['before']['archived_logs'] == older
    assert any('--repo1-retention-archive=1' in c and c.endswith(' expire') and '--dry-run' not in c
               for c in res['commands']), res['commands']
    after = _pgbackrest_archive(repo)
    assert sorted(after.values()) == sorted(rel for rel in before.values() if rel not in older)
    assert min(after)[:24] == cutoff and all(name[:24] >= cutoff for name in after), sorted(after)
    info = json.loads(subprocess.run(
        ['runuser', '-u', PG_USER, '--', 'pgbackrest', '--config=%s/pgbackrest/pgbackrest.conf' % repo,
         '--stanza=dbops', '--log-level-file=off', '--output=json', 'info'],
        capture_output=True, text=True, check=True).stdout)
    assert [b['label'] for b in info[0]['backup']] == [kept['details']['label']], 'the archive expiry removed a set'

    again = run_module('db_backup', args, diff=True)
    assert again['failed'] is False and again['changed'] is False, again
    assert again['deleted'] == [] and again['deleted_logs'] == [] and 'archived_logs' not in again['diff']['before']
    assert _pgbackrest_archive(repo) == after

    # the kept set restores to a point in time after it, through the pruned archive
    target = markers_a_then_b_archived(server)
    data_dir = os.path.join(workdir, 'r-pitr')
    port = free_port()
    try:
        out = restore(repo, backup_id=ids[2], data_dir=data_dir, port=port, target_time=target)
        assert out['failed'] is False, out
        assert restored_psql(data_dir, port, "SELECT string_agg(name, ',' ORDER BY name) FROM marker", 'shop') == 'A'
        assert restored_psql(data_dir, port, "SELECT count(*) FROM notes WHERE body LIKE 'full-%'", 'shop') == '6'
    finally:
        stop_restored(data_dir)

    # check mode of the next full with full: 1: the kept set goes once the new full is taken, and so does the WAL
    # before it - listed, nothing removed
    now = _pgbackrest_archive(repo)
    dry = backup(server, repo, check=True, method='pgbackrest', type='full', retention={'full': 1})
    assert dry['failed'] is False and dry['deleted'] == [ids[2]], dry
    assert dry['deleted_logs'] == sorted(now.values()), dry['deleted_logs']
    assert _pgbackrest_archive(repo) == now, 'check mode removed archived WAL'


def test_pgbackrest_flipped_byte_fails_verification_and_marks_the_backup_damaged(server, workdir):
    """pgBackRest 2.45 exits 0 from verify even with "status: error": the output must decide."""
    if not shutil.which('pgbackrest'):
        pytest.skip('pgbackrest not installed')
    repo = os.path.join(workdir, 'repo')
    seed(server, rows=50)
    res = backup(server, repo, method='pgbackrest', type='full')
    assert res['failed'] is False, res
    bk = res['backup']
    label = manifest_of(repo, bk['id'])['details']['label']
    assert any('verify' in c and '--set=%s' % label in c for c in res['commands']), res['commands']
    good = run_module('db_backup', {'repo': repo, 'state': 'verified', 'backup_id': bk['id']})
    assert good['failed'] is False, good

    set_dir = os.path.join(repo, 'pgbackrest', 'backup', 'dbops', label)
    victim = next(os.path.join(root, name) for root, _, names in os.walk(os.path.join(set_dir, 'pg_data', 'base'))
                  for name in sorted(names) if name.split('.')[0] == '1259')
    with open(victim, 'r+b') as f:
        f.seek(100)
        byte = f.read(1)
        f.seek(100)
        f.write(bytes([byte[0] ^ 0xFF]))
    named = os.path.relpath(victim, repo)   # pgbackrest/backup/dbops/<label>/pg_data/base/<db>/1259
    bad = run_module('db_backup', {'repo': repo, 'state': 'verified', 'backup_id': bk['id']})
    assert bad['failed'] is True, bad
    assert named in bad['msg'] and label in bad['msg'], bad['msg']
    manifest = manifest_of(repo, bk['id'])
    assert manifest['verified'] is False
    assert any(named in p for p in manifest['verify_problems']), manifest['verify_problems']
    # the restore drill verifies before it restores
    drill = restore(repo, server.conn, state='verified', backup_id=bk['id'])
    assert drill['failed'] is True and named in drill['msg'], drill


def test_pgbackrest_before_the_restart_check_mode_predicts_changed_and_shows_the_statements(workdir):
    """pgBackRest on a server with archive_mode off: check mode shows the ALTER SYSTEM the real run executes and,
    run again before the restart, predicts changed=false like the real run (it said "would configure", changed)."""
    srv = PostgresServer().init().start()  # archive_mode off
    repo = os.path.join(workdir, 'repo')
    try:
        dry = backup(srv, repo, check=True, method='pgbackrest', type='full')
        assert dry['failed'] is False and dry['changed'] is True and dry['restart_required'] is True, dry
        assert "ALTER SYSTEM SET archive_mode = 'on'" in dry['queries'], dry['queries']
        first = backup(srv, repo, method='pgbackrest', type='full')
        assert first['failed'] is False and first['changed'] is True and first['restart_required'] is True, first
        assert [q for q in first['queries'] if 'ALTER SYSTEM' in q or 'pg_reload_conf' in q] == dry['queries']
        for check in (True, False):
            again = backup(srv, repo, check=check, method='pgbackrest', type='full')
            assert again['failed'] is False and again['restart_required'] is True, again
            assert again['changed'] is False and again['queries'] == [], (check, again['msg'], again['queries'])
    finally:
        srv.destroy()


def test_log_backup_turns_archiving_on_and_reports_restart(workdir):
    srv = PostgresServer().init().start()  # archive_mode off
    repo = os.path.join(workdir, 'repo')
    try:
        dry = backup(srv, repo, check=True, method='physical', type='log')
        assert dry['failed'] is False and dry['restart_required'] is True, dry
        assert srv.psql('SHOW archive_command') in ('', '(disabled)') and not os.path.exists(repo)
        first = backup(srv, repo, method='physical', type='log')
        assert first['failed'] is False, first
        assert first['changed'] is True and first['restart_required'] is True and 'backup' not in first
        # check mode shows the statements the real run executed (it showed none)
        assert [q for q in first['queries'] if 'ALTER SYSTEM' in q or 'pg_reload_conf' in q] == dry['queries'], (
            dry['queries'], first['queries'])
        assert "ALTER SYSTEM SET archive_mode = 'on'" in dry['queries']
        assert srv.psql("SELECT count(*) FROM pg_file_settings WHERE name = 'archive_mode' AND setting = 'on'") == '1'
        assert not [e for e in repo_entries(repo) if e[0].isdigit()], 'nothing may be published before the restart'
        # again before the restart: nothing left to change (check mode says the same), still a restart to do
        for check in (True, False):
            again = backup(srv, repo, check=check, method='physical', type='log')
            assert again['failed'] is False and again['changed'] is False and again['restart_required'] is True, (
                check, again['msg'], srv.psql('SHOW archive_command'), again.get('queries'))
            assert again['queries'] == [] or not [q for q in again['queries'] if 'ALTER SYSTEM' in q], again
        srv.stop()
        srv.start()
        second = backup(srv, repo, method='physical', type='log')
        assert second['failed'] is False and second['restart_required'] is False, second
        archived = [f['path'] for f in manifest_of(repo, second['backup']['id'])['log_files']]
        assert archived and all(os.path.isfile(os.path.join(repo, p)) for p in archived)
        # nothing written since: no new log backup (check mode says the same), then a write makes one
        for check in (True, False):
            idle = backup(srv, repo, check=check, method='physical', type='log')
            assert idle['failed'] is False and idle['changed'] is False and idle['up_to_date'] is True, idle
            assert idle['backup']['id'] == second['backup']['id'] and 'nothing was written' in idle['msg']
        assert len([e for e in repo_entries(repo) if e[0].isdigit()]) == 1
        srv.psql('CREATE TABLE after_idle (v int); INSERT INTO after_idle VALUES (1)')
        third = backup(srv, repo, method='physical', type='log')
        assert third['failed'] is False and third['changed'] is True, third
        assert third['backup']['id'] != second['backup']['id']
        # a transaction, then someone else switched the WAL segment: the log backup's own switch does
        # nothing, and it must not wait for the new (empty, incomplete) segment
        srv.psql('SELECT txid_current()')
        srv.psql('SELECT pg_switch_wal()')
        started = time.time()
        fourth = backup(srv, repo, method='physical', type='log')
        assert fourth['failed'] is False and fourth['changed'] is True, fourth['msg']
        assert time.time() - started < 60
    finally:
        srv.destroy()


def test_target_position_picks_its_base_and_damaged_fulls_are_passed_over(server, workdir):
    """latest + target_position: the newest full ending before the LSN; an LSN before the chosen
    backup's end is refused before anything is written; a full found damaged is passed over by a
    point-in-time restore and by the next log backup."""
    repo = os.path.join(workdir, 'repo')
    seed(server, rows=100)
    assert backup(server, repo, method='physical', type='log')['failed'] is False
    full1 = backup(server, repo, method='physical', type='full')
    server.psql("CREATE TABLE marker (name text); INSERT INTO marker VALUES ('A')", 'shop')
    at_a = server.psql('SELECT pg_current_wal_insert_lsn()')
    server.psql("INSERT INTO marker VALUES ('B')", 'shop')
    full2 = backup(server, repo, method='physical', type='full')
    server.psql("INSERT INTO marker VALUES ('C')", 'shop')
    time.sleep(1.2)
    after_c = datetime.datetime.now(datetime.timezone.utc).isoformat()
    time.sleep(1.2)
    server.psql("INSERT INTO marker VALUES ('D')", 'shop')   # recovery stops at the first commit after the target
    assert backup(server, repo, method='physical', type='log')['failed'] is False
    data_dir = os.path.join(workdir, 'at-a')
    for check in (True, False):
        refused = restore(repo, check=check, backup_id=full2['backup']['id'], data_dir=data_dir, port=free_port(),
                          target_position={'lsn': at_a})
        assert refused['failed'] and 'older backup' in refused['msg'], refused['msg']
        assert not os.path.exists(data_dir)
    port = free_port()
    try:
        out = restore(repo, data_dir=data_dir, port=port, target_position={'lsn': at_a})
        assert out['failed'] is False, out['msg']
        assert out['backup_id'] == full1['backup']['id']
        assert restored_psql(data_dir, port, "SELECT string_agg(name, ',' ORDER BY name) FROM marker", 'shop') == 'A'
    finally:
        stop_restored(data_dir)

    # full2 found damaged: a restore to a time after it and the next log backup build on full1
    manifest = manifest_of(repo, full2['backup']['id'])
    victim = max(manifest['files'], key=lambda f: f['size'])
    with open(os.path.join(repo, full2['backup']['id'], 'data', victim['path']), 'r+b') as f:
        f.seek(victim['size'] // 2)
        byte = f.read(1)
        f.seek(-1, 1)
        f.write(bytes([byte[0] ^ 1]))
    assert run_module('db_backup', {'repo': repo, 'state': 'verified', 'backup_id': full2['backup']['id']})['failed']
    data_dir = os.path.join(workdir, 'after-c')
    port = free_port()
    try:
        out = restore(repo, data_dir=data_dir, port=port, target_time=after_c)
        assert out['failed'] is False, out['msg']
        assert out['backup_id'] == full1['backup']['id']
        assert restored_psql(data_dir, port, "SELECT string_agg(name, ',' ORDER BY name) FROM marker",
                             'shop') == 'A,B,C'
    finally:
        stop_restored(data_dir)
    log = backup(server, repo, method='physical', type='log')
    assert log['failed'] is False, log['msg']
    chain = [log['backup']['parent_id']]
    while manifest_of(repo, chain[-1])['type'] != 'full':
        chain.append(manifest_of(repo, chain[-1])['parent_id'])
    assert chain[-1] == full1['backup']['id'] and full2['backup']['id'] not in chain
    assert 'found damaged by verification' in json.dumps(log.get('warnings')), log.get('warnings')


def test_drill_and_restore_under_a_deep_path(server, workdir):
    """A repository and a data_dir so deep that a socket in the data directory would be longer than a
    Unix socket path may be: the instance's socket goes to a short directory of its own."""
    deep = os.path.join(workdir, 'backups-of-the-production-cluster', 'eu-west-1-primary-and-replicas', 'nightly')
    os.makedirs(deep)
    if os.geteuid() == 0:
        _chown(workdir)
    repo = os.path.join(deep, 'repo')
    seed(server, rows=50)
    assert backup(server, repo, method='physical', type='full')['failed'] is False
    drill = restore(repo, state='verified')
    assert drill['failed'] is False and drill['result'] == 'passed', drill['msg']
    data_dir = os.path.join(deep, 'restored-instance-data-directory')
    port = free_port()
    try:
        out = restore(repo, data_dir=data_dir, port=port)
        assert out['failed'] is False, out['msg']
        setting = subprocess.run(['grep', '-h', 'unix_socket_directories', os.path.join(data_dir, 'postgresql.auto.conf')],
                                 capture_output=True, text=True).stdout.strip().splitlines()[-1]
        short = setting.split("'")[1]
        assert short != data_dir and len(short) < 60
        assert restored_psql(short, port, "SELECT count(*) FROM orders", 'shop') == '50'
    finally:
        stop_restored(data_dir)


def test_archive_command_of_another_archive_is_refused_in_check_mode_too_and_the_old_one_upgraded(server, workdir):
    """An archive_command that sends the WAL elsewhere: the log and pgBackRest backups refuse it, in
    check mode as in the real run, and change nothing. The command an earlier version set for this
    repository is replaced by the current (durable) one without a restart."""
    repo = os.path.join(workdir, 'repo')
    seed(server, rows=10)
    server.psql("ALTER SYSTEM SET archive_command = 'cp %p /nowhere/%f'")
    server.psql('SELECT pg_reload_conf()')
    for method, btype in (('physical', 'log'), ('pgbackrest', 'full')):
        for check in (True, False):
            refused = backup(server, repo, check=check, method=method, type=btype)
            assert refused['failed'] and 'archiving goes elsewhere' in refused['msg'], refused['msg']
    assert server.psql('SHOW archive_command') == 'cp %p /nowhere/%f'
    logs = os.path.join(repo, 'logs')
    legacy = ("test ! -f {d}/%f && cp %p {d}/%f.part && mv {d}/%f.part {d}/%f || cmp -s %p {d}/%f"
              .format(d=logs))
    server.psql("ALTER SYSTEM SET archive_command = '%s'" % legacy.replace("'", "''"))
    server.psql('SELECT pg_reload_conf()')
    out = backup(server, repo, method='physical', type='log')
    assert out['failed'] is False and out['restart_required'] is False, out['msg']
    time.sleep(0.5)
    assert 'sync ' in server.psql('SHOW archive_command')


def published(repo):
    return [e for e in repo_entries(repo) if e[0].isdigit()]


def test_log_backup_whose_archiving_fails_says_why_without_waiting_it_out(server, workdir):
    """An archive directory the server's OS user may not write into: the log backup fails after the
    archiver's first failed attempts (not after the 120 s wait), naming the failing segment, the
    archive_command's own error from the server log, the directory's mode and the command;
    nothing is published. Once fixed, the next log backup archives the held-back segments."""
    repo = os.path.join(workdir, 'repo')
    seed(server, rows=20)
    first = backup(server, repo, method='physical', type='log')
    assert first['failed'] is False, first['msg']
    logs = os.path.join(repo, 'logs')
    os.chmod(logs, 0o555)
    try:
        server.psql("CREATE TABLE marker (name text); INSERT INTO marker VALUES ('held back')", 'shop')
        started = time.time()
        out = backup(server, repo, method='physical', type='log')
        took = time.time() - started
        assert out['failed'] is True, out
        failing = server.psql('SELECT last_failed_wal FROM pg_stat_archiver')
        assert len(failing) == 24 and not os.path.exists(os.path.join(logs, failing))
        assert took < 60, (took, out['msg'])
        msg = out['msg']
        assert failing in msg and 'Permission denied' in msg, msg
        assert 'mode 0555' in msg and 'archive_command is' in msg, msg
        assert published(repo) == [first['backup']['id']]
    finally:
        os.chmod(logs, 0o755)
    server.psql("INSERT INTO marker VALUES ('after the fix')", 'shop')
    fixed = backup(server, repo, method='physical', type='log')
    assert fixed['failed'] is False, fixed['msg']
    archived = [os.path.basename(f['path']) for f in manifest_of(repo, fixed['backup']['id'])['log_files']]
    assert failing in archived


def _without_pids(lines):
    """Statements and command lines with the run's pid (work database, scratch directory) left out."""
    import re
    return [re.sub(r'(_dbops_restore_|\.dbops-scratch-restore-)\d+', r'\1<pid>', line) for line in lines]


def test_logical_restore_check_mode_returns_the_statements_and_commands_of_the_real_run(server, workdir):
    """Check mode of a logical restore (over an existing database, with chunked tables, compressed)
    returns the statements and tool command lines the real run then runs, secrets masked, and
    changes nothing."""
    repo = os.path.join(workdir, 'repo')
    _seed_chunky(server)
    res, dump = chunked_backup(server, repo, 'shop')
    assert dump['chunked'], dump
    server.psql("INSERT INTO notes (body) VALUES ('after the backup')", 'shop')
    changed = content(server, 'shop')
    databases = server.psql("SELECT string_agg(datname, ',' ORDER BY datname) FROM pg_database")
    preview = restore(repo, server.conn, check=True, force=True, jobs=2)
    assert preview['failed'] is False and preview['changed'] is True, preview['msg']
    assert content(server, 'shop') == changed
    assert server.psql("SELECT string_agg(datname, ',' ORDER BY datname) FROM pg_database") == databases
    assert any(q.startswith('CREATE DATABASE') for q in preview['queries']), preview['queries']
    assert any('pg_restore' in c for c in preview['commands']), preview['commands']
    real = restore(repo, server.conn, force=True, jobs=2)
    assert real['failed'] is False, real['msg']
    assert _without_pids(preview['queries']) == _without_pids(real['queries']), (preview['queries'], real['queries'])
    assert _without_pids(preview['commands']) == _without_pids(real['commands']), (
        preview['commands'], real['commands'])
    assert server.password not in json.dumps(preview)


def test_target_position_as_an_lsn_string(server, workdir):
    """target_position '0/3000060' (the LSN alone) restores to the same point as {lsn: ...} (the same
    restore again with the dict is unchanged); a malformed string is refused naming the accepted
    forms, before anything is written (check mode too)."""
    repo = os.path.join(workdir, 'repo')
    seed(server, rows=20)
    assert backup(server, repo, method='physical', type='log')['failed'] is False
    assert backup(server, repo, method='physical', type='full')['failed'] is False
    server.psql("CREATE TABLE marker (name text); INSERT INTO marker VALUES ('A')", 'shop')
    at_a = server.psql('SELECT pg_current_wal_insert_lsn()')
    server.psql("INSERT INTO marker VALUES ('B')", 'shop')
    assert backup(server, repo, method='physical', type='log')['failed'] is False
    data_dir, port = os.path.join(workdir, 'at-a'), free_port()
    try:
        preview = restore(repo, check=True, data_dir=data_dir, port=port, target_position=at_a)
        assert preview['failed'] is False and preview['changed'] is True, preview['msg']
        out = restore(repo, data_dir=data_dir, port=port, target_position=at_a)
        assert out['failed'] is False, out['msg']
        assert restored_psql(data_dir, port, "SELECT string_agg(name, ',' ORDER BY name) FROM marker", 'shop') == 'A'
        again = restore(repo, data_dir=data_dir, port=port, target_position={'lsn': at_a})
        assert again['failed'] is False and again['changed'] is False, again['msg']
        # key=value, as the option read a string when it took only a dict
        again = restore(repo, data_dir=data_dir, port=port, target_position='lsn=%s' % at_a)
        assert again['failed'] is False and again['changed'] is False, again['msg']
    finally:
        stop_restored(data_dir)
    bad_dir = os.path.join(workdir, 'bad')
    for bad in ('0/', 'mysql-bin.000003:1234', '0-1-100', "0/1'; x"):
        for check in (True, False):
            refused = restore(repo, check=check, data_dir=bad_dir, port=free_port(), target_position=bad)
            assert refused['failed'] and "'X/Y'" in refused['msg'] and 'hexadecimal' in refused['msg'], (
                bad, refused['msg'])
            assert not os.path.exists(bad_dir)


def test_target_time_after_the_last_commit_within_a_log_backup_is_reached(server, workdir):
    """A target time after the last commit, but before the end of a log backup: nothing was committed
    between them, so the restore holds everything up to the target (PostgreSQL itself stops only at a
    commit after the target, and the archive holds none). A repeated run is unchanged; a drill to that
    time passes; a time after the end of every log backup still fails."""
    repo = os.path.join(workdir, 'repo')
    seed(server, rows=50)
    assert backup(server, repo, method='physical', type='log')['failed'] is False
    full = backup(server, repo, method='physical', type='full')
    assert full['failed'] is False, full
    server.psql("CREATE TABLE marker (name text); INSERT INTO marker VALUES ('A')", 'shop')
    time.sleep(1.2)
    target = datetime.datetime.now(datetime.timezone.utc).replace(microsecond=0)
    time.sleep(1.2)
    log = backup(server, repo, method='physical', type='log')
    assert log['failed'] is False, log
    markers = "SELECT string_agg(name, ',' ORDER BY name) FROM marker"
    data_dir, port = os.path.join(workdir, 'quiet'), free_port()
    spelled = target.astimezone(datetime.timezone(datetime.timedelta(hours=-5))).isoformat()
    try:
        out = restore(repo, data_dir=data_dir, port=port, target_time=spelled)
        assert out['failed'] is False, out['msg']
        assert out['backup_id'] == full['backup']['id']
        assert restored_psql(data_dir, port, markers, 'shop') == 'A'
        assert out['recovered_to'] <= target.isoformat().replace('+00:00', 'Z'), out['recovered_to']
        again = restore(repo, data_dir=data_dir, port=port, target_time=target.isoformat())
        assert again['failed'] is False and again['changed'] is False, again['msg']
    finally:
        stop_restored(data_dir)
    drill = restore(repo, server.conn, state='verified', backup_id=full['backup']['id'],
                    target_time=target.isoformat())
    assert drill['failed'] is False and drill['result'] == 'passed', drill.get('msg')
    # past the end of the last log backup: the archive does not say what happened then
    late = datetime.datetime.now(datetime.timezone.utc).isoformat()
    time.sleep(1.1)
    beyond = restore(repo, data_dir=os.path.join(workdir, 'late'), port=free_port(), target_time=late)
    assert beyond['failed'] is True and 'archive ends before' in beyond['msg'], beyond['msg']
    assert not os.path.exists(os.path.join(workdir, 'late'))   # created by the failed restore: removed again


@pytest.mark.parametrize('jobs', [1, 2])
def test_logical_backup_of_a_table_another_session_locks_fails_in_bounded_time(server, workdir, jobs):
    """A session holding ACCESS EXCLUSIVE on a table (an open transaction after ALTER TABLE, LOCK TABLE...) kept
    pg_dump and the module's own sessions waiting for ever: the run hung holding the repository lock, and its
    queries stayed queued in the server after it was killed. The backup now waits a bounded time (2 minutes),
    then fails saying why, leaving no session of its own, no failed run that shadows anything and the previous
    backup as latest."""
    repo = os.path.join(workdir, 'repo')
    seed(server, rows=100)
    good = backup(server, repo, databases=['shop'])
    assert good['failed'] is False, good
    conn = server.connect('shop', autocommit=False)
    try:
        with conn.cursor() as cur:
            cur.execute('LOCK TABLE orders IN ACCESS EXCLUSIVE MODE')
        started = time.time()
        out = run_module('db_backup', dict(server.conn, repo=repo, databases=['shop'], jobs=jobs), timeout=400)
        assert time.time() - started < 300
        assert out['failed'] is True, out
        assert 'another session holds a lock on one of its tables' in out['msg'], out['msg']
        waiting = server.psql("SELECT count(*) FROM pg_stat_activity WHERE datname = 'shop' AND pid <> %d"
                              % conn.get_backend_pid())
        assert waiting == '0', waiting
    finally:
        conn.rollback()
        conn.close()
    assert sorted(e for e in os.listdir(repo) if not e.startswith('.') and e != 'logs') == [good['backup']['id']]
    again = backup(server, repo, databases=['shop'], jobs=jobs)
    assert again['failed'] is False and again['changed'] is True, again.get('msg')


# ---- pgBackRest: refusals and repairs ---------------------------------------------------------
def _pgbackrest_or_skip():
    if not shutil.which('pgbackrest'):
        pytest.skip('pgbackrest not installed')


def test_pgbackrest_repository_moved_after_backups_is_used_where_it_is_now(server, workdir):
    """A repository renamed after pgBackRest backups were taken: its stanza configuration and the server's
    archive_command still name the old path. Restore, verification and the next backup use the new place (the
    configuration and archive_command are rewritten for it, with a warning); nothing is written at the old path."""
    _pgbackrest_or_skip()
    old = os.path.join(workdir, 'repo')
    seed(server, rows=50)
    full = backup(server, old, method='pgbackrest', type='full')
    assert full['failed'] is False, full['msg']
    before = content(server, 'shop')
    new = os.path.join(workdir, 'renamed repo')
    os.rename(old, new)

    data_dir = os.path.join(workdir, 'r-moved')
    port = free_port()
    try:
        out = restore(new, data_dir=data_dir, port=port)
        assert out['failed'] is False, out['msg']
        copy = PostgresServer(workdir=workdir, port=port)
        copy.data_dir, copy.socket_dir = data_dir, data_dir
        assert content(copy, 'shop') == before
    finally:
        stop_restored(data_dir)
    checked = run_module('db_backup', {'repo': new, 'state': 'verified', 'backup_id': full['backup']['id']})
    assert checked['failed'] is False, checked['msg']
    assert not os.path.exists(old), os.listdir(old)

    server.psql("INSERT INTO notes (body) VALUES ('after the move')", 'shop')
    incr = backup(server, new, method='pgbackrest', type='incremental')
    assert incr['failed'] is False, incr['msg']
    assert incr['backup']['parent_id'] == full['backup']['id']
    assert any('moved or renamed' in str(w) for w in incr.get('warnings') or []), incr.get('warnings')
    assert server.psql('SHOW archive_command') == 'pgbackrest --config=%s --stanza=dbops archive-push %%p' % (
        shlex.quote(os.path.join(new, 'pgbackrest', 'pgbackrest.conf')))
    with open(os.path.join(new, 'pgbackrest', 'pgbackrest.conf')) as f:
        assert 'repo1-path=%s\n' % os.path.join(new, 'pgbackrest') in f.read()
    assert not os.path.exists(old), os.listdir(old)
    # an archive_command of ours for a repository that still exists is another repository: refused
    other = os.path.join(workdir, 'other')
    command = server.psql('SHOW archive_command')
    for check in (True, False):
        refused = backup(server, other, check=check, method='pgbackrest', type='full')
        assert refused['failed'] and 'archiving goes elsewhere' in refused['msg'] and new in refused['msg'], refused
    assert server.psql('SHOW archive_command') == command


def _path_without(workdir, program):
    """A PATH with every program of /usr/bin and /usr/sbin but ``program`` (and the venv first)."""
    farm = os.path.join(workdir, 'bin-without-' + program)
    os.makedirs(farm, exist_ok=True)
    for directory in ('/usr/sbin', '/usr/bin'):
        for name in os.listdir(directory):
            if name != program and not os.path.lexists(os.path.join(farm, name)):
                os.symlink(os.path.join(directory, name), os.path.join(farm, name))
    return os.pathsep.join([os.path.dirname(sys.executable), farm])


def test_pgbackrest_missing_from_path_names_the_package_and_changes_nothing(server, workdir):
    _pgbackrest_or_skip()
    repo = os.path.join(workdir, 'repo')
    seed(server, rows=10)
    env = {'PATH': _path_without(workdir, 'pgbackrest')}
    command = server.psql('SHOW archive_command')
    for check in (True, False):
        args = dict(server.conn, repo=repo, method='pgbackrest', type='full')
        out = run_module('db_backup', args, check=check, env=env)
        assert out['failed'] and 'install the pgbackrest package' in out['msg'], out['msg']
        assert not os.path.exists(repo), os.listdir(repo)
        assert server.psql('SHOW archive_command') == command
    full = backup(server, repo, method='pgbackrest', type='full')
    assert full['failed'] is False, full['msg']
    entries = repo_entries(repo)
    data_dir = os.path.join(workdir, 'r-nobin')
    for check in (True, False):
        out = run_module('db_restore', {'repo': repo, 'data_dir': data_dir, 'port': free_port()}, check=check, env=env)
        assert out['failed'] and 'install the pgbackrest package' in out['msg'], out['msg']
        assert not os.path.exists(data_dir)
    assert repo_entries(repo) == entries


def test_pgbackrest_foreign_archive_command_or_closed_repository_refused_before_anything_changes(server, workdir):
    """A repository the server's OS user cannot enter, or an archive_command of another archive: refused in check
    mode and in the real run before anything is written - archive_command untouched (archiving stays where it
    was), no repository, no failed run, no pgBackRest configuration."""
    _pgbackrest_or_skip()
    seed(server, rows=10)
    closed = os.path.join(workdir, 'closed')
    os.mkdir(closed)
    os.chown(closed, 0, 0)
    os.chmod(closed, 0o700)
    for check in (True, False):
        refused = backup(server, closed, check=check, method='pgbackrest', type='full')
        assert refused['failed'] and 'permissions' in refused['msg'] and closed in refused['msg'], refused['msg']
        assert 'postgres' in refused['msg'], refused['msg']
        assert os.listdir(closed) == []
        assert server.psql('SHOW archive_command') == ''
    repo = os.path.join(workdir, 'repo')
    server.psql("ALTER SYSTEM SET archive_command = 'cp %p /nowhere/%f'")
    server.psql('SELECT pg_reload_conf()')
    for check in (True, False):
        refused = backup(server, repo, check=check, method='pgbackrest', type='full')
        assert refused['failed'] and 'archiving goes elsewhere' in refused['msg'], refused['msg']
        assert not os.path.exists(repo), sorted(os.listdir(repo))
    assert server.psql('SHOW archive_command') == 'cp %p /nowhere/%f'


def test_pgbackrest_restore_command_is_shell_quoted_for_a_repository_path_with_a_space_and_a_quote(server, workdir):
    """pgBackRest writes restore_command with the paths unquoted; a repository path with a space and a quote broke
    postgresql.auto.conf. The restore writes its own, every path shell-quoted, and the restored server replays the
    archived WAL through it."""
    _pgbackrest_or_skip()
    repo = os.path.join(workdir, "repo o'brien dir")
    seed(server, rows=30)
    assert backup(server, repo, method='pgbackrest', type='full')['failed'] is False
    server.psql("INSERT INTO notes (body) SELECT 'later-' || g FROM generate_series(1, 20) g", 'shop')
    incr = backup(server, repo, method='pgbackrest', type='incremental')
    assert incr['failed'] is False, incr['msg']
    before = content(server, 'shop')
    data_dir = os.path.join(workdir, 'r-quoted')
    port = free_port()
    try:
        out = restore(repo, data_dir=data_dir, port=port)
        assert out['failed'] is False, out['msg']
        copy = PostgresServer(workdir=workdir, port=port)
        copy.data_dir, copy.socket_dir = data_dir, data_dir
        assert content(copy, 'shop') == before
        command = restored_psql(data_dir, port, 'SHOW restore_command')
        assert shlex.split(command)[:2] == ['pgbackrest', '--config=%s' % os.path.join(repo, 'pgbackrest', 'pgbackrest.conf')]
        assert '--repo1-path=%s' % os.path.join(repo, 'pgbackrest') in shlex.split(command)
    finally:
        stop_restored(data_dir)


def _pgbackrest_processes(conf, command):
    """pids of the pgbackrest processes running ``command`` with the configuration file ``conf``."""
    pids = []
    for entry in os.listdir('/proc'):
        if not entry.isdigit():
            continue
        try:
            with open('/proc/%s/cmdline' % entry, 'rb') as f:
                argv = [a.decode(errors='replace') for a in f.read().split(b'\0') if a]
            with open('/proc/%s/stat' % entry) as f:
                state = f.read().rsplit(')', 1)[1].split()[0]
        except OSError:
            continue
        if state != 'Z' and argv and os.path.basename(argv[0]) == 'pgbackrest' and '--config=%s' % conf in argv \
                and argv[-1] == command:
            pids.append(int(entry))
    return pids


def test_pgbackrest_killed_run_leaves_no_backup_running_nor_holding_the_lock(server, workdir):
    """The module killed (SIGKILL) while pgbackrest backup runs: pgbackrest gets SIGTERM (parent-death signal,
    passed on by runuser) and stops, so no orphan keeps backing up and holding pgBackRest's lock."""
    _pgbackrest_or_skip()
    repo = os.path.join(workdir, 'repo')
    seed(server, rows=10)
    assert backup(server, repo, method='pgbackrest', type='full')['failed'] is False
    conf = os.path.join(repo, 'pgbackrest', 'pgbackrest.conf')
    # the next backup waits (archive-timeout, 60 s) for its WAL, which cannot be archived for now
    wal_dirs = [d for d, _, names in os.walk(os.path.join(repo, 'pgbackrest', 'archive', 'dbops'))
                if any(len(n) > 24 and n[:24].isalnum() for n in names)]
    assert wal_dirs
    for d in wal_dirs:
        os.chmod(d, 0o555)
    args = dict(server.conn, repo=repo, method='pgbackrest', type='incremental')
    with tempfile.NamedTemporaryFile('w', suffix='.json', delete=False) as f:
        json.dump({'ANSIBLE_MODULE_ARGS': args}, f)
        argsfile = f.name
    env = dict(os.environ, PYTHONPATH=collections_root())
    proc = subprocess.Popen([sys.executable, os.path.join(REPO, 'plugins', 'modules', 'db_backup.py'), argsfile],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env)
    try:
        deadline = time.time() + 60
        while time.time() < deadline and not _pgbackrest_processes(conf, 'backup'):
            assert proc.poll() is None, proc.communicate()
            time.sleep(0.1)
        assert _pgbackrest_processes(conf, 'backup'), 'pgbackrest backup never started'
        time.sleep(2)   # well into the backup (waiting for its WAL)
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait()
        deadline = time.time() + 15
        while time.time() < deadline and _pgbackrest_processes(conf, 'backup'):
            time.sleep(0.2)
        left = _pgbackrest_processes(conf, 'backup')
        assert not left, 'pgbackrest backup still running after the module was killed: %s' % left
    finally:
        os.unlink(argsfile)
        for d in wal_dirs:
            os.chmod(d, 0o750)
        for pid in _pgbackrest_processes(conf, 'backup'):
            os.kill(pid, signal.SIGKILL)
    again = backup(server, repo, method='pgbackrest', type='full')
    assert again['failed'] is False, again['msg']


def test_pgbackrest_stanza_of_another_cluster_is_refused_not_reused(server, workdir):
    """A repository whose pgBackRest stanza belongs to another cluster (another system identifier), or to another
    data directory that still holds a cluster (a restored copy shares the system identifier): refused before
    anything changes - the other server's archive_command is not switched to the stanza, the stanza configuration
    still names the first cluster, which goes on backing up."""
    _pgbackrest_or_skip()
    repo = os.path.join(workdir, 'repo')
    seed(server, rows=10)
    assert backup(server, repo, method='pgbackrest', type='full')['failed'] is False
    conf = os.path.join(repo, 'pgbackrest', 'pgbackrest.conf')
    with open(conf) as f:
        configured = f.read()
    entries = repo_entries(repo)
    other = PostgresServer(settings=ARCHIVE_SETTINGS).init().start()
    try:
        for check in (True, False):
            refused = backup(other, repo, check=check, method='pgbackrest', type='full')
            assert refused['failed'] and 'another cluster' in refused['msg'], refused['msg']
            assert other.psql('SHOW archive_command') == ''
    finally:
        other.destroy()
    # a copy of the cluster (restored from the repository): same system identifier, its own data directory
    data_dir = os.path.join(workdir, 'r-copy')
    port = free_port()
    try:
        assert restore(repo, data_dir=data_dir, port=port)['failed'] is False
        copy_conn = dict(server.conn, login_port=port, login_host=data_dir)
        with open(os.path.join(data_dir, 'postgresql.auto.conf')) as f:
            settings = f.read()
        for check in (True, False):
            refused = run_module('db_backup', dict(copy_conn, repo=repo, method='pgbackrest', type='full'), check=check)
            assert refused['failed'] and server.data_dir in refused['msg'], refused['msg']
        with open(os.path.join(data_dir, 'postgresql.auto.conf')) as f:
            assert f.read() == settings   # no ALTER SYSTEM (archive_command, archive_mode)
    finally:
        stop_restored(data_dir)
    with open(conf) as f:
        assert f.read() == configured
    assert repo_entries(repo) == entries
    again = backup(server, repo, method='pgbackrest', type='incremental')
    assert again['failed'] is False, again['msg']


def test_pgbackrest_repeated_identical_restore_returns_recovered_to(server, workdir):
    """A rerun of the same restore changes nothing and still says what the copy was recovered to (it said null),
    running or stopped (the rerun starts it)."""
    _pgbackrest_or_skip()
    repo = os.path.join(workdir, 'repo')
    seed(server, rows=10)
    assert backup(server, repo, method='pgbackrest', type='full')['failed'] is False
    data_dir = os.path.join(workdir, 'r-again')
    port = free_port()
    try:
        first = restore(repo, data_dir=data_dir, port=port)
        assert first['failed'] is False and first['changed'] is True, first['msg']
        assert first['recovered_to']
        for check in (True, False):
            again = restore(repo, check=check, data_dir=data_dir, port=port)
            assert again['failed'] is False and again['changed'] is False, again['msg']
            assert again['recovered_to'] == first['recovered_to'], (check, again['recovered_to'])
        stop_restored(data_dir)
        started = restore(repo, data_dir=data_dir, port=port)
        assert started['failed'] is False and started['changed'] is True, started['msg']
        assert started['recovered_to'] == first['recovered_to']
    finally:
        stop_restored(data_dir)


def _pgbackrest_labels(repo):
    out = subprocess.run(['runuser', '-u', PG_USER, '--', 'pgbackrest', '--config=%s/pgbackrest/pgbackrest.conf' % repo,
                          '--stanza=dbops', '--output=json', '--log-level-file=off', 'info'],
                         capture_output=True, text=True, check=True, cwd='/')
    return [s['label'] for s in json.loads(out.stdout)[0]['backup']]


def test_pgbackrest_incremental_on_a_set_the_catalog_does_not_list_is_refused(server, workdir):
    """A pgBackRest full set taken by hand after ours: pgBackRest would build the next incremental (and a
    differential) on it. Refused before anything is written, in check mode too - never recorded with our full as
    a wrong parent_id; a new full backup starts a clean chain."""
    _pgbackrest_or_skip()
    repo = os.path.join(workdir, 'repo')
    seed(server, rows=10)
    full = backup(server, repo, method='pgbackrest', type='full')
    assert full['failed'] is False, full['msg']
    subprocess.run(['runuser', '-u', PG_USER, '--', 'pgbackrest', '--config=%s/pgbackrest/pgbackrest.conf' % repo,
                    '--stanza=dbops', '--type=full', 'backup'], capture_output=True, check=True, cwd='/')
    by_hand = _pgbackrest_labels(repo)[-1]
    entries, labels = repo_entries(repo), _pgbackrest_labels(repo)
    for btype in ('incremental', 'differential'):
        for check in (True, False):
            refused = backup(server, repo, check=check, method='pgbackrest', type=btype)
            assert refused['failed'] and by_hand in refused['msg'] and 'does not list' in refused['msg'], refused['msg']
            assert repo_entries(repo) == entries and _pgbackrest_labels(repo) == labels
    second = backup(server, repo, method='pgbackrest', type='full')
    assert second['failed'] is False, second['msg']
    incr = backup(server, repo, method='pgbackrest', type='incremental')
    assert incr['failed'] is False, incr['msg']
    assert incr['backup']['parent_id'] == second['backup']['id']
    assert manifest_of(repo, incr['backup']['id'])['details']['prior'] == \
        manifest_of(repo, second['backup']['id'])['details']['label']


def test_pgbackrest_failed_restore_removes_the_directories_it_created_only(server, workdir):
    """A pgBackRest restore that fails (the archive ends before the target): the data directory it created - with
    the parents it created - is gone again; an empty directory that was there before stays."""
    _pgbackrest_or_skip()
    repo = os.path.join(workdir, 'repo')
    seed(server, rows=10)
    assert backup(server, repo, method='pgbackrest', type='full')['failed'] is False
    server.psql("INSERT INTO notes (body) VALUES ('not archived')", 'shop')
    time.sleep(1.5)
    target = datetime.datetime.now(datetime.timezone.utc).strftime('%Y-%m-%dT%H:%M:%SZ')
    time.sleep(1.5)
    fresh = os.path.join(workdir, 'new', 'parent', 'data')
    existing = os.path.join(workdir, 'existing')
    os.mkdir(existing, 0o700)
    _chown(existing)
    for data_dir in (fresh, existing):
        try:
            out = restore(repo, data_dir=data_dir, port=free_port(), target_time=target)
            assert out['failed'] and 'ends before the target' in out['msg'], out['msg']
        finally:
            stop_restored(data_dir)
    assert not os.path.exists(os.path.join(workdir, 'new'))
    assert os.path.isdir(existing) and os.listdir(existing) == []


def test_pgbackrest_unknown_os_user_is_refused_before_anything_changes(server, workdir):
    """os_user naming no user of this machine: a clear refusal (it was "unexpected error: getpwnam()" after a
    root-owned pgBackRest configuration was written, which broke every later run), nothing written."""
    _pgbackrest_or_skip()
    repo = os.path.join(workdir, 'repo')
    seed(server, rows=10)
    for check in (True, False):
        refused = backup(server, repo, check=check, method='pgbackrest', type='full', os_user='no_such_user_dbops')
        assert refused['failed'] and 'no such OS user' in refused['msg'] and 'no_such_user_dbops' in refused['msg'], \
            refused['msg']
        assert not os.path.exists(repo)
        assert server.psql('SHOW archive_command') == ''
    full = backup(server, repo, method='pgbackrest', type='full')
    assert full['failed'] is False, full['msg']
    data_dir = os.path.join(workdir, 'r-user')
    for check in (True, False):
        refused = restore(repo, check=check, data_dir=data_dir, port=free_port(), os_user='no_such_user_dbops')
        assert refused['failed'] and 'no such OS user' in refused['msg'], refused['msg']
        assert not os.path.exists(data_dir)


def test_pgbackrest_repository_path_with_a_percent_sign(server, workdir):
    """PostgreSQL replaces %p and %f in archive_command and restore_command: a repository path holding "%p" was
    mangled (archiving failed, the backup waited for its WAL, then failed). The % is written %%."""
    _pgbackrest_or_skip()
    repo = os.path.join(workdir, 'repo%p 100%')
    seed(server, rows=20)
    full = backup(server, repo, method='pgbackrest', type='full')
    assert full['failed'] is False, full['msg']
    server.psql("INSERT INTO notes (body) VALUES ('after the full')", 'shop')
    incr = backup(server, repo, method='pgbackrest', type='incremental')
    assert incr['failed'] is False, incr['msg']
    before = content(server, 'shop')
    data_dir = os.path.join(workdir, 'r-percent')
    port = free_port()
    try:
        out = restore(repo, data_dir=data_dir, port=port)
        assert out['failed'] is False, out['msg']
        copy = PostgresServer(workdir=workdir, port=port)
        copy.data_dir, copy.socket_dir = data_dir, data_dir
        assert content(copy, 'shop') == before
    finally:
        stop_restored(data_dir)


def test_pgbackrest_restore_of_a_set_expired_by_hand_is_refused_in_check_mode_too(server, workdir):
    """An entry whose pgBackRest set was expired by hand: the restore is refused before anything is written, and
    check mode says so (it said "would restore"); the entry can be deleted."""
    _pgbackrest_or_skip()
    repo = os.path.join(workdir, 'repo')
    seed(server, rows=10)
    first = backup(server, repo, method='pgbackrest', type='full')['backup']['id']
    assert backup(server, repo, method='pgbackrest', type='full')['failed'] is False
    label = manifest_of(repo, first)['details']['label']
    subprocess.run(['runuser', '-u', PG_USER, '--', 'pgbackrest', '--config=%s/pgbackrest/pgbackrest.conf' % repo,
                    '--stanza=dbops', '--set=%s' % label, 'expire'], capture_output=True, check=True, cwd='/')
    data_dir = os.path.join(workdir, 'r-expired')
    for check in (True, False):
        out = restore(repo, check=check, backup_id=first, data_dir=data_dir, port=free_port())
        assert out['failed'] and label in out['msg'] and 'no longer in the repository' in out['msg'], (check, out['msg'])
        assert not os.path.exists(data_dir)
    gone = run_module('db_backup', {'repo': repo, 'state': 'absent', 'backup_id': first})
    assert gone['failed'] is False and gone['deleted'] == [first], gone['msg']
