# -*- coding: utf-8 -*-
# Copyright: dbops.admin contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Private to dbops.admin: local MariaDB / MySQL 8 instances, no connection.

MariaDB through mariadb-install-db and mariadbd, MySQL 8 through ``mysqld --initialize-insecure``
and mysqld.  Everything lives in the data directory: the instance's own option file
(``my.cnf``, read with ``--defaults-file`` so no other option file interferes), the socket,
the pid file and the error log.  The server runs detached as the OS user and stops on SIGTERM.
"""

from __future__ import annotations

import os
import re
import shutil
import signal
import socket

from ansible_collections.dbops.admin.plugins.module_utils._engines.postgresql_instance import (
    MAX_SOCKET_PATH,
    LocalInstance,
)
from ansible_collections.dbops.admin.plugins.module_utils._errors import DbError
from ansible_collections.dbops.admin.plugins.module_utils._passwords import caching_sha2_hash, mysql_native_hash

SEARCH_DIRS = ('/usr/sbin', '/usr/bin', '/usr/local/bin', '/usr/local/sbin', '/usr/libexec',
               '/usr/local/mysql/bin')


def mysql_string(value):
    """A string literal for the SQL files run at initialization (they take no parameters)."""
    return "'%s'" % str(value).replace('\\', '\\\\').replace("'", "''")


def read_option_file(path, groups=('mysqld', 'mariadbd', 'server', 'mariadb')):
    """name -> value of the server groups of an option file (dashes and underscores equal)."""
    values = {}
    group = None
    try:
        with open(path, encoding='utf-8') as handle:
            lines = handle.readlines()
    except OSError:
        return None
    for line in lines:
        stripped = line.strip()
        if not stripped or stripped[0] in '#;':
            continue
        if stripped.startswith('[') and stripped.endswith(']'):
            group = stripped[1:-1].strip().lower()
            continue
        if group not in groups:
            continue
        name, _sep, value = stripped.partition('=')
        values[name.strip().replace('-', '_').lower()] = value.strip().strip('"\'')
    return values


def option_value(value):
    """A value as an option file reads it; a list (``sql_mode: [A, B]``) is written comma-separated."""
    if isinstance(value, bool):
        return 'ON' if value else 'OFF'
    if isinstance(value, (list, tuple)):
        return ','.join(str(item).strip() for item in value)
    text = str(value)
    if '#' in text or ';' in text or text != text.strip():
        # '#' starts a comment anywhere in an option file line, unless the value is quoted
        return '"%s"' % text.replace('\\', '\\\\').replace('"', '\\"')
    return text


class MysqlInstance(LocalInstance):
    """A MariaDB or MySQL 8 instance with its own option file, socket, pid file and error log."""

    engine = 'mysql'
    default_port = 3306
    default_os_user = 'mysql'
    process_names = ('mariadbd', 'mysqld')
    owned_settings = {'port': 'port', 'bind_address': 'bind_address', 'datadir': 'data_dir',
                      'socket': 'data_dir (the socket is kept in the data directory)',
                      'pid_file': 'data_dir (the pid file is kept in the data directory)',
                      'log_error': 'data_dir (the error log is kept in the data directory)'}

    def __init__(self, params, runner=None):
        super().__init__(params, runner)
        self.config_file = os.path.join(self.data_dir, 'my.cnf')
        self.socket_path = os.path.join(self.data_dir, 'mysqld.sock')
        self.pid_file = os.path.join(self.data_dir, 'mysqld.pid')
        self.log_file = os.path.join(self.data_dir, 'error.log')
        self._server = None
        self._flavor_from_version = None

    def marker_entries(self):
        return ('mysql', 'mysql.ibd')

    def foreign_marker_entries(self):
        return ('PG_VERSION',)

    # ---- programs ----------------------------------------------------------------------------
    def find_program(self, *names):
        dirs = [self.bin_dir] if self.bin_dir else []
        for name in names:
            for directory in dirs:
                if os.path.exists(os.path.join(directory, name)):
                    return os.path.join(directory, name)
            if not self.bin_dir:
                found = shutil.which(name)
                if found:
                    return found
                for directory in SEARCH_DIRS:
                    if os.path.exists(os.path.join(directory, name)):
                        return os.path.join(directory, name)
        raise DbError('find the server program', '(%s)' % ' or '.join(names),
                      'install the MariaDB or MySQL server package%s'
                      % (' or fix bin_dir %s' % self.bin_dir if self.bin_dir else ' or set bin_dir'))

    def server_program(self):
        if self._server is None:
            self._server = self.find_program('mariadbd', 'mysqld')
        return self._server

    def version(self):
        if self._version is None:
            out = self.probe([self.server_program(), '--version']) or ''
            match = re.search(r'Ver\s+(\d+(?:\.\d+)+)', out) or re.search(r'(\d+\.\d+\.\d+)', out)
            self._version = match.group(1) if match else None
            self._flavor_from_version = 'mariadb' if 'mariadb' in out.lower() else 'mysql'
        return self._version

    @property
    def flavor(self):
        if self._flavor_from_version is None:
            try:
                self.version()
            except DbError:
                return 'mariadb'
        return self._flavor_from_version

    # ---- the option file -------------------------------------------------------------------------
    def server_options(self, port, log_file=None):
        """The [mysqld] group written at initialization, in order (our paths, then settings)."""
        options = {
            'datadir': self.data_dir,
            'port': port,
            'bind-address': self.bind_address,
            'socket': self.socket_path,
            'pid-file': self.pid_file,
            'log-error': log_file or self.log_file,
        }
        if self.flavor == 'mysql':
            # X Protocol would otherwise listen on 33060 and collide with a second instance
            options['mysqlx'] = 'OFF'
        options.update(self.settings)
        return options

    def option_file_text(self, port, log_file=None):
        lines = ['# written by dbops.admin db_instance at initialization; the server reads only this file',
                 '[mysqld]']
        for name, value in self.server_options(port, log_file).items():
            lines.append(name if value is None or value == '' else '%s = %s' % (name, option_value(value)))
        lines += ['', '[client]', 'socket = %s' % self.socket_path, 'port = %s' % port, '']
        return '\n'.join(lines)

    def options(self):
        return read_option_file(self.config_file) or {}

    # ---- state ---------------------------------------------------------------------------------
    def status(self):
        dir_state = self.directory_state()
        info = {'dir_state': dir_state, 'state': 'absent', 'data_dir': self.data_dir, 'pid': None,
                'port': self.requested_port or self.default_port, 'configured_port': None,
                'socket': self.socket_path, 'bind_address': self.bind_address,
                'log_file': self.log_file, 'config_file': self.config_file, 'flavor': self.flavor}
        if dir_state != 'instance':
            return info
        options = self.options()
        if options:
            try:
                info['configured_port'] = int(options.get('port', self.default_port))
            except ValueError:
                info['configured_port'] = self.default_port
            info['port'] = info['configured_port']
            info['bind_address'] = options.get('bind_address', info['bind_address'])
            info['socket'] = options.get('socket', self.socket_path)
            self.pid_file = options.get('pid_file', self.pid_file)
        pid, _lines = self._read_pid()
        info['state'] = 'started' if self.pid_is_ours(pid) else 'stopped'
        info['pid'] = pid if info['state'] == 'started' else None
        return info

    def _read_pid(self):
        try:
            with open(self.pid_file) as handle:
                return int(handle.read().split()[0]), None
        except (OSError, ValueError, IndexError):
            return None, None

    def check(self, actions, current):
        self.check_common(actions, current)
        if not actions:
            return
        # without our option file we cannot even tell whether it runs: never stop or delete it
        if current['dir_state'] == 'instance' and not os.path.exists(self.config_file):
            raise DbError('manage the instance', 'in %s' % self.data_dir,
                          'it has no option file %s written by db_instance (an instance managed by the '
                          'system service?); refusing to touch it' % self.config_file)
        if actions == ['remove']:
            return  # deleting a stopped instance needs no server program
        self.server_program()
        if 'initialize' in actions:
            self.init_program()
            if len(self.socket_path.encode('utf-8')) > MAX_SOCKET_PATH:
                raise DbError('initialize an instance', 'in %s' % self.data_dir,
                              'the socket path %s would be longer than %d bytes; choose a shorter data_dir'
                              % (self.socket_path, MAX_SOCKET_PATH))

    # ---- initialization --------------------------------------------------------------------------
    def init_program(self):
        if self.flavor == 'mariadb':
            return self.find_program('mariadb-install-db', 'mysql_install_db')
        return self.server_program()

    def password_statements(self):
        """SQL run at initialization to give root its password, on localhost and 127.0.0.1."""
        if not self.password:
            return []
        if self.flavor == 'mariadb':
            digest = mysql_native_hash(self.password)
            self.add_secret(digest)
            auth = 'IDENTIFIED BY PASSWORD %s' % mysql_string(digest)
            # mariadb-install-db bootstraps with the grant tables off; FLUSH PRIVILEGES loads them
            statements = ['FLUSH PRIVILEGES']
            statements += ["ALTER USER 'root'@'localhost' %s" % auth]
            statements += ["CREATE USER IF NOT EXISTS 'root'@'127.0.0.1' %s" % auth,
                           "ALTER USER 'root'@'127.0.0.1' %s" % auth,
                           "GRANT ALL PRIVILEGES ON *.* TO 'root'@'127.0.0.1' WITH GRANT OPTION"]
            # the other root accounts mariadb-install-db creates would keep an empty password
            for host in sorted({'::1', socket.gethostname()} - {'localhost', '127.0.0.1', ''}):
                statements.append('DROP USER IF EXISTS %s@%s' % (mysql_string('root'), mysql_string(host)))
            return statements
        version = tuple(int(part) for part in re.findall(r'\d+', self.version() or '')[:3])
        if version >= (8, 0, 17):
            # the caching_sha2_password string made here, as a hex literal (CREATE/ALTER USER take one since
            # 8.0.17): the plain password is written nowhere, not even to the init file
            digest = '0x' + caching_sha2_hash(self.password).hex().upper()
            self.add_secret(digest)
            auth = 'IDENTIFIED WITH caching_sha2_password AS %s' % digest
        else:
            literal = mysql_string(self.password)
            self.add_secret(literal[1:-1])  # as written in the statement: quotes doubled, backslashes escaped
            auth = 'IDENTIFIED BY %s' % literal
        return ["ALTER USER 'root'@'localhost' %s" % auth,
                "CREATE USER 'root'@'127.0.0.1' %s" % auth,
                "GRANT ALL PRIVILEGES ON *.* TO 'root'@'127.0.0.1' WITH GRANT OPTION"]

    def init_command(self, option_file, sql_file=None):
        if self.flavor == 'mariadb':
            argv = [self.init_program(), '--defaults-file=%s' % option_file, '--skip-test-db',
                    '--auth-root-authentication-method=%s' % ('normal' if self.password else 'socket')]
            if sql_file:
                argv.append('--extra-file=%s' % sql_file)
        else:
            argv = [self.server_program(), '--defaults-file=%s' % option_file, '--initialize-insecure']
            if sql_file:
                argv.append('--init-file=%s' % sql_file)
        return self.as_user(argv)

    def initialize(self, check_mode):
        existed = os.path.isdir(self.data_dir)
        port = self.requested_port or self.default_port
        # mysqld --initialize wants an empty data directory: the option file goes in afterwards
        staging = None if check_mode else self.staging_dir()
        where = staging or '<tmp>'
        first_options = os.path.join(where, 'my.cnf')
        statements = self.password_statements()
        sql_file = os.path.join(where, 'init.sql') if statements else None
        self.queries.extend(self.mask(s) for s in statements)
        try:
            if not check_mode:
                self.make_owned_dir(self.data_dir, 0o750)
                # the first start writes the error log; during initialization it stays outside
                self.write_owned_file(first_options, self.option_file_text(port, os.path.join(where, 'init.log')),
                                      mode=0o600)
                if sql_file:
                    self.write_owned_file(sql_file, ''.join(s + ';\n' for s in statements), mode=0o600)
            self.run(self.init_command(first_options, sql_file), 'initialize a %s instance' % self.label(),
                     check_mode, log_file=os.path.join(where, 'init.log'))
            self.record('write %s' % self.config_file)
            if not check_mode:
                self.write_owned_file(self.config_file, self.option_file_text(port), mode=0o640)
        except Exception:
            if not check_mode:
                self.undo_initialize(existed)
            raise
        finally:
            if staging:
                shutil.rmtree(staging, ignore_errors=True)

    # ---- processes -------------------------------------------------------------------------------
    def start_command(self):
        return self.as_user([self.server_program(), '--defaults-file=%s' % self.config_file])

    def start(self, check_mode):
        argv = self.start_command()
        self.record(argv)
        if check_mode:
            return
        log_size = os.path.getsize(self.log_file) if os.path.exists(self.log_file) else 0
        try:
            process = self.runner.spawn(argv)
        except OSError as exc:
            raise DbError('start the %s instance' % self.label(), 'in %s' % self.data_dir, str(exc)) from None
        socket_path = self.options().get('socket', self.socket_path)

        def ready():
            if process.poll() is not None:
                return True
            pid, _lines = self._read_pid()
            return self.pid_is_ours(pid) and self.runner.unix_socket_open(socket_path)

        self.wait_until(ready)
        pid, _lines = self._read_pid()
        if process.poll() is not None or not (self.pid_is_ours(pid) and self.runner.unix_socket_open(socket_path)):
            detail = 'it exited' if process.poll() is not None else 'no answer after %d seconds' % self.timeout
            raise DbError('start the %s instance' % self.label(), 'in %s' % self.data_dir,
                          '%s; error log: %s' % (detail, self._log_since(log_size)))

    def _log_since(self, offset):
        text = self.read_tail(self.log_file, 4000)
        try:
            size = os.path.getsize(self.log_file)
            if size - offset < 4000:
                text = text[-(size - offset):] if size > offset else ''
        except OSError:
            pass
        lines = [line.strip() for line in text.splitlines() if '[ERROR]' in line or 'ERROR' in line]
        return ' | '.join((lines or [line.strip() for line in text.splitlines() if line.strip()])[-5:]) or '(empty)'

    def stop(self, check_mode):
        pid, _lines = self._read_pid()
        self.record(['kill', '-TERM', str(pid or '<pid>')])
        if check_mode or not self.pid_is_ours(pid):
            return
        try:
            self.runner.signal(pid, signal.SIGTERM)
        except OSError as exc:
            raise DbError('stop the %s instance' % self.label(), 'in %s' % self.data_dir, str(exc)) from None
        if not self.wait_until(lambda: not self.pid_is_ours(pid)):
            raise DbError('stop the %s instance' % self.label(), 'in %s' % self.data_dir,
                          'process %d still runs after %d seconds' % (pid, self.timeout))

    def restart(self, check_mode):
        self.stop(check_mode)
        self.start(check_mode)

    def reload(self, check_mode):
        # SIGHUP: the server flushes privileges, logs and caches (like mariadb-admin reload/refresh)
        pid, _lines = self._read_pid()
        self.record(['kill', '-HUP', str(pid or '<pid>')])
        if not check_mode and self.pid_is_ours(pid):
            try:
                self.runner.signal(pid, signal.SIGHUP)
            except OSError as exc:
                raise DbError('reload the %s instance' % self.label(), 'in %s' % self.data_dir, str(exc)) from None
