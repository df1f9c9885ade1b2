# -*- coding: utf-8 -*-
"""Throw-away PostgreSQL and MariaDB servers for the integration tests.

Each server lives in its own temporary directory, listens on a free loopback port and
is stopped by ``stop()``. Nothing here touches the machine's default instances.
"""

from __future__ import annotations

import glob
import os
import pwd
import shutil
import socket
import subprocess
import tempfile
import time

PG_SUPERUSER_PASSWORD = 'pg-Test-Secret-41'
MARIADB_ROOT_PASSWORD = 'my-Test-Secret-42'


def free_port():
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(('127.0.0.1', 0))
        return sock.getsockname()[1]


def pg_bindir():
    try:
        out = subprocess.run(['pg_config', '--bindir'], capture_output=True, text=True, check=True)
        path = out.stdout.strip()
        if os.path.exists(os.path.join(path, 'initdb')):
            return path
    except (OSError, subprocess.CalledProcessError):
        pass
    found = sorted(glob.glob('/usr/lib/postgresql/*/bin/initdb'))
    if not found:
        raise RuntimeError('PostgreSQL server binaries not found (install postgresql-15)')
    return os.path.dirname(found[-1])


def _chown_tree(path, user):
    pw = pwd.getpwnam(user)
    for root, dirs, files in os.walk(path):
        os.chown(root, pw.pw_uid, pw.pw_gid)
        for name in dirs + files:
            os.lchown(os.path.join(root, name), pw.pw_uid, pw.pw_gid)


def _as_user(user, argv, **kwargs):
    if os.geteuid() == 0:
        argv = ['runuser', '-u', user, '--'] + argv
    return subprocess.run(argv, check=True, capture_output=True, text=True, **kwargs)


def make_workdir(prefix, user):
    """A temporary directory the server's OS user owns (sockets, logs, pid files go there)."""
    base = os.environ.get('DBOPS_TEST_TMP') or tempfile.gettempdir()
    path = tempfile.mkdtemp(prefix=prefix, dir=base)
    os.chmod(path, 0o755)
    if os.geteuid() == 0:
        _chown_tree(path, user)
    return path


class PostgresServer:
    """initdb + pg_ctl as the postgres OS user, on 127.0.0.1:<free port>."""

    engine = 'postgresql'

    def __init__(self, settings=None, workdir=None, port=None):
        self.user = 'postgres' if os.geteuid() == 0 else pwd.getpwuid(os.getuid()).pw_name
        self.bindir = pg_bindir()
        self.workdir = workdir or make_workdir('dbops-pg-', self.user)
        self.data_dir = os.path.join(self.workdir, 'data')
        self.socket_dir = self.workdir
        self.log = os.path.join(self.workdir, 'server.log')
        self.port = port or free_port()
        self.settings = settings or {}
        self.password = PG_SUPERUSER_PASSWORD
        self.superuser = 'postgres'

    def bin(self, name):
        return os.path.join(self.bindir, name)

    def init(self):
        pwfile = os.path.join(self.workdir, '.pw')
        with open(pwfile, 'w') as f:
            f.write(self.password + '\n')
        if os.geteuid() == 0:
            _chown_tree(self.workdir, self.user)
        _as_user(self.user, [self.bin('initdb'), '-D', self.data_dir, '-U', self.superuser,
                             '--pwfile', pwfile, '--auth-local=trust', '--auth-host=scram-sha-256',
                             '-E', 'UTF8', '--locale=C.UTF-8', '--data-checksums'])
        os.unlink(pwfile)
        conf = {
            'listen_addresses': "'127.0.0.1'",
            'port': str(self.port),
            'unix_socket_directories': "'%s'" % self.socket_dir,
            'fsync': 'off',
            'shared_buffers': "'64MB'",
            'max_connections': '100',
            'logging_collector': 'off',
        }
        conf.update({k: str(v) for k, v in self.settings.items()})
        with open(os.path.join(self.data_dir, 'postgresql.auto.conf'), 'a') as f:
            for key, value in conf.items():
                f.write('%s = %s\n' % (key, value))
        with open(os.path.join(self.data_dir, 'pg_hba.conf'), 'a') as f:
            f.write('host replication all 127.0.0.1/32 scram-sha-256\n')
        return self

    def start(self):
        _as_user(self.user, [self.bin('pg_ctl'), '-D', self.data_dir, '-l', self.log, '-w', '-t', '60',
                             'start'])
        return self

    def stop(self, mode='fast'):
        if os.path.exists(os.path.join(self.data_dir, 'postmaster.pid')):
            subprocess.run((['runuser', '-u', self.user, '--'] if os.geteuid() == 0 else [])
                           + [self.bin('pg_ctl'), '-D', self.data_dir, '-m', mode, '-w', 'stop'],
                           capture_output=True, check=False)

    def destroy(self):
        self.stop('immediate')
        shutil.rmtree(self.workdir, ignore_errors=True)

    def psql(self, sql, database='postgres'):
        """Run SQL through psql over the socket as the superuser; returns stdout (tuples only)."""
        out = _as_user(self.user, [self.bin('psql'), '-X', '-q', '-A', '-t', '-v', 'ON_ERROR_STOP=1',
                                   '-h', self.socket_dir, '-p', str(self.port), '-U', self.superuser,
                                   '-d', database, '-c', sql])
        return out.stdout.strip()

    @property
    def conn(self):
        """Connection options for a module."""
        return {'engine': 'postgresql', 'login_host': '127.0.0.1', 'login_port': self.port,
                'login_user': self.superuser, 'login_password': self.password}

    def connect(self, database='postgres', autocommit=True):
        import psycopg2
        conn = psycopg2.connect(host='127.0.0.1', port=self.port, user=self.superuser,
                                password=self.password, dbname=database)
        conn.autocommit = autocommit
        return conn


def mariadb_binary(*names):
    for name in names:
        path = shutil.which(name) or (os.path.exists('/usr/sbin/' + name) and '/usr/sbin/' + name)
        if path:
            return path
    raise RuntimeError('none of %s found (install mariadb-server)' % ', '.join(names))


class MariadbServer:
    """mariadb-install-db + mariadbd as the mysql OS user, on 127.0.0.1:<free port>."""

    engine = 'mysql'

    def __init__(self, settings=None, workdir=None, port=None):
        self.user = 'mysql' if os.geteuid() == 0 else pwd.getpwuid(os.getuid()).pw_name
        self.workdir = workdir or make_workdir('dbops-my-', self.user)
        self.data_dir = os.path.join(self.workdir, 'data')
        self.socket = os.path.join(self.workdir, 'mysqld.sock')
        self.pid_file = os.path.join(self.workdir, 'mysqld.pid')
        self.log = os.path.join(self.workdir, 'error.log')
        self.cnf = os.path.join(self.workdir, 'my.cnf')
        self.port = port or free_port()
        self.settings = settings or {}
        self.password = MARIADB_ROOT_PASSWORD
        self.superuser = 'root'
        self.proc = None

    def init(self):
        options = {
            'datadir': self.data_dir,
            'socket': self.socket,
            'pid-file': self.pid_file,
            'port': str(self.port),
            'bind-address': '127.0.0.1',
            'log-error': self.log,
            'skip-name-resolve': '1',
            'innodb_buffer_pool_size': '64M',
            'innodb_log_file_size': '48M',
            'innodb_flush_log_at_trx_commit': '2',
            'max_connections': '151',
            'log-bin': os.path.join(self.workdir, 'binlog', 'mysql-bin'),
            'server-id': '1',
            'binlog_format': 'ROW',
            # internal temporary tables in a directory of this server's own, not in the /tmp every
            # other test server and run shares
            'tmpdir': os.path.join(self.workdir, 'tmp'),
        }
        options.update({k: str(v) for k, v in self.settings.items()})
        os.makedirs(os.path.join(self.workdir, 'binlog'), exist_ok=True)
        os.makedirs(os.path.join(self.workdir, 'tmp'), exist_ok=True)
        with open(self.cnf, 'w') as f:
            f.write('[mariadbd]\n')
            for key, value in options.items():
                f.write('%s = %s\n' % (key, value) if value != '' else '%s\n' % key)
        if os.geteuid() == 0:
            _chown_tree(self.workdir, self.user)
        install = mariadb_binary('mariadb-install-db', 'mysql_install_db')
        _as_user(self.user, [install, '--defaults-file=' + self.cnf, '--auth-root-authentication-method=normal',
                             '--skip-test-db'])
        return self

    def start(self):
        server = mariadb_binary('mariadbd', 'mysqld')
        argv = [server, '--defaults-file=' + self.cnf]
        if os.geteuid() == 0:
            # mariadbd drops to the OS user itself, so self.proc is the server, not a wrapper
            argv.append('--user=' + self.user)
        self.proc = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                                     start_new_session=True)
        deadline = time.time() + 60
        while time.time() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError('mariadbd exited: %s' % self._log_tail())
            if os.path.exists(self.socket):
                if self._socket_answers():
                    break
            time.sleep(0.2)
        else:
            raise RuntimeError('mariadbd did not start: %s' % self._log_tail())
        self._ensure_root_password()
        return self

    def _log_tail(self):
        try:
            with open(self.log) as f:
                return f.read()[-2000:]
        except OSError:
            return '(no log)'

    def _socket_answers(self):
        import pymysql
        for password in (self.password, None):
            try:
                self._client_root(password).close()
                return True
            except pymysql.err.OperationalError as exc:
                if exc.args and exc.args[0] == 1045:  # up, but another password
                    continue
                return False
        return True

    def _client_root(self, password):
        import pymysql
        return pymysql.connect(unix_socket=self.socket, user='root', password=password or '',
                               connect_timeout=2, autocommit=True)

    def _ensure_root_password(self):
        import pymysql
        try:
            conn = self._client_root(self.password)
            conn.close()
            return
        except pymysql.Error:
            pass
        conn = self._client_root(None)
        with conn.cursor() as cur:
            cur.execute("ALTER USER 'root'@'localhost' IDENTIFIED BY %s", (self.password,))
            cur.execute("CREATE USER IF NOT EXISTS 'root'@'127.0.0.1'")
            cur.execute("ALTER USER 'root'@'127.0.0.1' IDENTIFIED BY %s", (self.password,))
            cur.execute("GRANT ALL PRIVILEGES ON *.* TO 'root'@'127.0.0.1' WITH GRANT OPTION")
        conn.close()

    def stop(self):
        if self.proc is not None and self.proc.poll() is None:
            try:
                conn = self.connect()
                with conn.cursor() as cur:
                    cur.execute('SHUTDOWN')
                conn.close()
            except Exception:  # pylint: disable=broad-except
                self.proc.terminate()
            try:
                self.proc.wait(60)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.proc = None

    def destroy(self):
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()
        self.proc = None
        self._kill_from_pid_file()
        shutil.rmtree(self.workdir, ignore_errors=True)

    def _kill_from_pid_file(self):
        # a server started by someone else on this directory (e.g. a restore) must not outlive it
        try:
            with open(self.pid_file) as f:
                pid = int(f.read().strip())
            os.kill(pid, 9)
        except (OSError, ValueError):
            pass

    def sql(self, sql, database=None):
        """Run one statement as root; returns the rows as tuples."""
        conn = self.connect(database)
        try:
            with conn.cursor() as cur:
                cur.execute(sql)
                return cur.fetchall()
        finally:
            conn.close()

    @property
    def conn(self):
        return {'engine': 'mariadb', 'login_host': '127.0.0.1', 'login_port': self.port,
                'login_user': 'root', 'login_password': self.password}

    def connect(self, database=None):
        import pymysql
        return pymysql.connect(host='127.0.0.1', port=self.port, user='root', password=self.password,
                               database=database, autocommit=True)
