# -*- coding: utf-8 -*-
# Copyright: dbops.admin contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Private to dbops.admin: local PostgreSQL instances through initdb and pg_ctl, no connection.

This file also holds what every local instance shares (``LocalInstance``: the OS user, the
one command runner, directory and port checks, the plan of actions); ``mysql_instance.py``
builds on it.  The instance keeps everything inside its data directory: the socket, the
server log (``log/server.log``) and the settings written at initialization
(``postgresql.auto.conf``).
"""

from __future__ import annotations

import glob
import os
import pwd
import re
import shlex
import shutil
import socket
import subprocess
import tempfile
import time

from ansible_collections.dbops.admin.plugins.module_utils._engines.postgresql_settings import (
    render_list_setting,
    split_list_setting,
)
from ansible_collections.dbops.admin.plugins.module_utils._errors import DbError, mask_secrets

STATES = ('initialized', 'started', 'stopped', 'restarted', 'reloaded', 'absent')
# The longest path a Unix socket may have (sun_path is 108 bytes with its NUL).
MAX_SOCKET_PATH = 107
SETTING_NAME_RE = re.compile(r'^[A-Za-z_][A-Za-z0-9_.-]*$')


def plan_actions(state, current, force=False):
    """The actions that take an instance from ``current`` (absent|stopped|started) to ``state``.

    Actions: initialize, start, stop, restart, reload, remove.
    """
    if state not in STATES:
        raise DbError('reach state', repr(state), 'choose one of %s' % ', '.join(STATES))
    if state == 'absent':
        if current == 'absent':
            return []
        actions = ['stop'] if current == 'started' else []
        return actions + ['remove'] if force else actions
    if state == 'stopped':
        return ['stop'] if current == 'started' else []
    if current == 'absent':
        return ['initialize'] if state == 'initialized' else ['initialize', 'start']
    if state == 'initialized':
        return []
    if current == 'stopped':
        return ['start']
    return {'started': [], 'restarted': ['restart'], 'reloaded': ['reload']}[state]


def predicted_state(current, actions):
    """The state an instance is in after ``actions`` (what check mode reports)."""
    state = current
    for action in actions:
        state = {'initialize': 'stopped', 'start': 'started', 'restart': 'started', 'reload': 'started',
                 'stop': 'stopped', 'remove': 'absent'}[action]
    return state


class CommandRunner:
    """The one place that starts processes or probes the system; unit tests substitute a fake."""

    def run(self, argv, timeout=None, env=None):
        """Run argv to completion; returns (rc, stdout, stderr), never raises for a failing program."""
        try:
            proc = subprocess.run(argv, capture_output=True, text=True, timeout=timeout, env=env,
                                  cwd='/', check=False, stdin=subprocess.DEVNULL)
        except OSError as exc:
            return 127, '', str(exc)
        except subprocess.TimeoutExpired:
            return 124, '', 'no answer after %s seconds' % timeout
        return proc.returncode, proc.stdout, proc.stderr

    def spawn(self, argv):
        """Start argv detached from us (own session, no inherited pipes); returns the Popen."""
        return subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                                stderr=subprocess.DEVNULL, cwd='/', close_fds=True, start_new_session=True)

    def process_command(self, pid):
        """The command line of a live process, or None when there is no such process."""
        try:
            with open('/proc/%d/cmdline' % pid, 'rb') as handle:
                return handle.read().replace(b'\0', b' ').decode('utf-8', 'replace').strip() or None
        except (OSError, ValueError):
            return None

    def signal(self, pid, signum):
        os.kill(pid, signum)

    def tcp_port_open(self, host, port):
        try:
            with socket.create_connection((host, port), timeout=1):
                return True
        except OSError:
            return False

    def unix_socket_open(self, path):
        if not os.path.exists(path):
            return False
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        sock.settimeout(1)
        try:
            sock.connect(path)
            return True
        except OSError:
            return False
        finally:
            sock.close()

    def sleep(self, seconds):
        time.sleep(seconds)

    def now(self):
        return time.monotonic()


def _tail(text, lines=8):
    return ' | '.join(line.strip() for line in (text or '').strip().splitlines()[-lines:] if line.strip())


def read_pid_file(path):
    try:
        with open(path) as handle:
            lines = handle.read().splitlines()
        return int(lines[0].strip()), lines
    except (OSError, ValueError, IndexError):
        return None, []


class LocalInstance:
    """What every local instance shares: OS user, commands (recorded, secrets masked), checks."""

    engine = None
    flavor = None
    default_port = None
    default_os_user = None
    process_names = ()
    # settings the module writes from its own options (name with '-' as '_', lower case -> the option)
    owned_settings = {}

    def __init__(self, params, runner=None):
        self.runner = runner or CommandRunner()
        self.data_dir = os.path.abspath(os.path.expanduser(params['data_dir']))
        self.requested_port = params.get('port')
        self.state = params.get('state')
        self.bind_address = params.get('bind_address') or '127.0.0.1'
        self.settings = params.get('settings') or {}
        self.password = params.get('superuser_password')
        self.timeout = params.get('timeout') or 120
        self.bin_dir = params.get('bin_dir')
        self.os_user = params.get('os_user') or self._default_os_user()
        self.commands = []
        self.queries = []
        self.warnings = []
        self._secrets = [self.password]
        self._version = None
        if self.requested_port is not None and not 1 <= self.requested_port <= 65535:
            # 0 must not fall back to the default port (the machine's own instance's)
            raise DbError('use port %s for the instance' % self.requested_port, None,
                          'a TCP port is a number from 1 to 65535')
        self.check_settings()

    # ---- identity -------------------------------------------------------------------
    def _default_os_user(self):
        """The owner of an existing data directory, else postgres / mysql for root, else ourselves."""
        if os.geteuid() != 0:
            return pwd.getpwuid(os.geteuid()).pw_name
        try:
            owner = pwd.getpwuid(os.stat(self.data_dir).st_uid).pw_name
        except (OSError, KeyError):
            owner = None
        return owner if owner and owner != 'root' else self.default_os_user

    def os_user_entry(self):
        try:
            return pwd.getpwnam(self.os_user)
        except KeyError:
            raise DbError('run the %s instance as OS user' % self.engine, self.os_user, 'no such user') from None

    def as_user(self, argv):
        """argv run as the instance's OS user (through runuser when we are root)."""
        if os.geteuid() == 0:
            if self.os_user == 'root':
                return list(argv)
            return ['runuser', '-u', self.os_user, '--'] + list(argv)
        if pwd.getpwuid(os.geteuid()).pw_name != self.os_user:
            raise DbError('run commands as OS user', self.os_user,
                          'only root can run them as another user; become root or set os_user to yourself')
        return list(argv)

    # ---- recording and running ----------------------------------------------------------
    def add_secret(self, value):
        if value:
            self._secrets.append(str(value))

    def mask(self, text):
        return mask_secrets(text, self._secrets)

    def record(self, argv_or_text):
        text = argv_or_text if isinstance(argv_or_text, str) else ' '.join(shlex.quote(str(a)) for a in argv_or_text)
        self.commands.append(self.mask(text))

    def run(self, argv, operation, check_mode=False, log_file=None):
        """Record argv and run it unless in check mode; a failure raises DbError with its output."""
        self.record(argv)
        if check_mode:
            return ''
        rc, out, err = self.runner.run(argv, timeout=self.timeout + 30)
        if rc != 0:
            log = self.read_tail(log_file) if log_file else ''
            errors = [line.strip() for line in log.splitlines() if '[ERROR]' in line]
            if errors:
                # mariadb-install-db prints advice on where to report bugs; the server's [ERROR] lines say why
                detail = 'server log: %s' % ' | '.join(errors[-5:])
            else:
                detail = _tail(err) or _tail(out) or 'exit code %d' % rc
                if log_file:
                    detail += '; server log: %s' % (_tail(log) or '(empty)')
            raise DbError(operation, 'in %s' % self.data_dir, self.mask(detail))
        return out

    def probe(self, argv):
        """Run a read-only command (not recorded); returns stdout or None."""
        rc, out, _err = self.runner.run(argv, timeout=30)
        return out if rc == 0 else None

    @staticmethod
    def read_tail(path, size=2000):
        try:
            with open(path, 'rb') as handle:
                handle.seek(0, os.SEEK_END)
                handle.seek(max(0, handle.tell() - size))
                return handle.read().decode('utf-8', 'replace')
        except OSError:
            return ''

    # ---- files and directories -------------------------------------------------------------
    def marker_entries(self):
        """Names inside a data directory that prove it holds an instance of this engine."""
        raise NotImplementedError

    def foreign_marker_entries(self):
        """Names that prove it holds an instance of the other engine."""
        raise NotImplementedError

    def directory_state(self):
        """missing | empty | instance | other-engine | foreign (a non-empty, non-instance path)."""
        if not os.path.lexists(self.data_dir):
            return 'missing'
        if not os.path.isdir(self.data_dir):
            return 'foreign'
        entries = set(os.listdir(self.data_dir))
        if not entries:
            return 'empty'
        if entries & set(self.marker_entries()):
            return 'instance'
        if entries & set(self.foreign_marker_entries()):
            return 'other-engine'
        return 'foreign'

    def make_owned_dir(self, path, mode):
        """Create path (and missing parents, root-owned and traversable) owned by the OS user."""
        entry = self.os_user_entry()
        parent = os.path.dirname(path)
        if not os.path.isdir(parent):
            os.makedirs(parent, 0o755)
        if not os.path.isdir(path):
            os.mkdir(path, mode)
        os.chmod(path, mode)
        if os.geteuid() == 0:
            os.chown(path, entry.pw_uid, entry.pw_gid)

    def write_owned_file(self, path, text, mode=0o600, append=False):
        entry = self.os_user_entry()
        with open(path, 'a' if append else 'w', encoding='utf-8') as handle:
            handle.write(text)
        os.chmod(path, mode)
        if os.geteuid() == 0:
            os.chown(path, entry.pw_uid, entry.pw_gid)

    def staging_dir(self):
        """A private temporary directory the OS user owns (password files, first option file)."""
        path = tempfile.mkdtemp(prefix='dbops-instance-')
        entry = self.os_user_entry()
        if os.geteuid() == 0:
            os.chown(path, entry.pw_uid, entry.pw_gid)
        return path

    def remove(self, check_mode):
        self.record(['rm', '-rf', '--', self.data_dir])
        if not check_mode:
            try:
                shutil.rmtree(self.data_dir)
            except OSError as exc:
                raise DbError('remove the data directory', self.data_dir, str(exc)) from None

    def undo_initialize(self, existed):
        """After a failed initialization, leave the directory as we found it (missing or empty)."""
        if not os.path.isdir(self.data_dir):
            return
        if existed:
            for name in os.listdir(self.data_dir):
                path = os.path.join(self.data_dir, name)
                if os.path.isdir(path) and not os.path.islink(path):
                    shutil.rmtree(path, ignore_errors=True)
                else:
                    os.unlink(path)
        else:
            shutil.rmtree(self.data_dir, ignore_errors=True)

    # ---- settings ----------------------------------------------------------------------------
    def check_settings(self):
        for name, value in self.settings.items():
            if not SETTING_NAME_RE.match(str(name)):
                raise DbError('write setting', repr(name), 'not a valid setting name')
            option = self.owned_settings.get(str(name).lower().replace('-', '_'))
            if option:
                raise DbError('write setting', name, 'it is set by the module from the option %s; use that option, '
                              'not settings' % option)
            if isinstance(value, dict):
                raise DbError('write setting', name, 'a value is a string, a number, a boolean or a list, '
                              'not a dictionary')
            if value is not None and ('\n' in str(value) or '\r' in str(value)):
                raise DbError('write setting', name, 'a value cannot span lines')

    # ---- processes -----------------------------------------------------------------------------
    def pid_is_ours(self, pid):
        """True when pid is alive and is a server program of this engine."""
        if not pid or pid <= 0:
            return False
        command = self.runner.process_command(pid)
        if not command:
            return False
        program = os.path.basename(command.split()[0])
        return any(name in program for name in self.process_names)

    def port_in_use(self, port):
        host = self.bind_address
        if host in ('', '*', '0.0.0.0', '::'):
            host = '127.0.0.1'
        return self.runner.tcp_port_open(host.split(',')[0].strip(), port)

    def check_common(self, actions, current):
        """Checks every engine makes before acting; nothing is changed when one fails."""
        state = current['dir_state']
        if state == 'foreign' and not os.path.isdir(self.data_dir):
            raise DbError('use data directory', self.data_dir,
                          'it exists and is not a directory; refusing to touch it (choose another data_dir)')
        if state == 'foreign':
            raise DbError('use data directory', self.data_dir,
                          'it is not empty and holds no %s instance; refusing to touch it' % self.label())
        if state == 'other-engine':
            raise DbError('use data directory', self.data_dir,
                          'it holds an instance of another engine, not %s' % self.label())
        # an instance that is (or is to be) up on another port than asked is an error even when
        # nothing is to be done: "started on 5433" must not quietly report the one on 5432
        wants_up = self.state in (None, 'initialized', 'started', 'restarted', 'reloaded')
        if (actions or wants_up) and self.requested_port and current.get('configured_port') \
                and self.requested_port != current['configured_port'] and 'remove' not in actions \
                and actions != ['stop']:
            raise DbError('use port %d for the instance' % self.requested_port, 'in %s' % self.data_dir,
                          'it is configured for port %d; ask for that port, or change it with db_config and restart'
                          % current['configured_port'])
        if not actions:
            return
        self.os_user_entry()
        port = current['port']
        if 'start' in actions and self.port_in_use(port):
            raise DbError('start the %s instance' % self.label(), 'in %s' % self.data_dir,
                          'port %d on %s is already in use by another process' % (port, self.bind_address))

    def label(self):
        return {'postgresql': 'PostgreSQL', 'mariadb': 'MariaDB', 'mysql': 'MySQL'}.get(self.flavor, self.flavor)

    def wait_until(self, condition):
        deadline = self.runner.now() + self.timeout
        while self.runner.now() < deadline:
            if condition():
                return True
            self.runner.sleep(0.25)
        return condition()

    def perform(self, action, check_mode):
        getattr(self, action)(check_mode)


def _config_value(raw):
    raw = raw.split('#', 1)[0].strip() if not raw.strip().startswith("'") else raw.strip()
    if raw.startswith("'"):
        end = raw.find("'", 1)
        while end != -1 and raw[end + 1:end + 2] == "'":
            end = raw.find("'", end + 2)
        return raw[1:end].replace("''", "'") if end != -1 else raw[1:]
    return raw.strip()


def read_postgres_config(*paths):
    """name -> value from postgresql.conf-style files; later files win (as the server reads them)."""
    values = {}
    for path in paths:
        try:
            with open(path, encoding='utf-8') as handle:
                lines = handle.readlines()
        except OSError:
            continue
        for line in lines:
            stripped = line.strip()
            if not stripped or stripped.startswith('#'):
                continue
            match = re.match(r'^([A-Za-z_][A-Za-z0-9_.]*)\s*=?\s*(.*)$', stripped)
            if match:
                values[match.group(1).lower()] = _config_value(match.group(2))
    return values


def postgres_literal(value):
    """A value as postgresql.conf reads it: always single-quoted.

    A list (``shared_preload_libraries: [pg_stat_statements, auto_explain]``) becomes one
    comma-separated value, its elements double-quoted where PostgreSQL needs it (``"$user"``).
    """
    if isinstance(value, bool):
        value = 'on' if value else 'off'
    elif isinstance(value, (list, tuple)):
        value = render_list_setting(split_list_setting(value))
    return "'%s'" % str(value).replace("'", "''")


class PostgresInstance(LocalInstance):
    """A PostgreSQL instance: initdb, pg_ctl start/stop/restart/reload, all as the OS user."""

    engine = 'postgresql'
    flavor = 'postgresql'
    default_port = 5432
    default_os_user = 'postgres'
    superuser = 'postgres'
    process_names = ('postgres', 'postmaster')
    owned_settings = {'port': 'port', 'listen_addresses': 'bind_address',
                      'unix_socket_directories': 'data_dir (the socket is kept in the data directory)'}

    def __init__(self, params, runner=None):
        super().__init__(params, runner)
        self.log_file = os.path.join(self.data_dir, 'log', 'server.log')
        self.config_file = os.path.join(self.data_dir, 'postgresql.auto.conf')
        self.socket_dir = self.data_dir
        self._bin_dir = None

    def marker_entries(self):
        return ('PG_VERSION',)

    def foreign_marker_entries(self):
        return ('mysql', 'mysql.ibd', 'ibdata1', 'aria_log_control')

    # ---- programs ----------------------------------------------------------------------------
    def data_major(self):
        try:
            with open(os.path.join(self.data_dir, 'PG_VERSION')) as handle:
                return handle.read().strip()
        except OSError:
            return None

    def find_bin_dir(self):
        """bin_dir, else the programs of the data directory's major version, else the newest found."""
        if self._bin_dir:
            return self._bin_dir
        if self.bin_dir:
            if not os.path.exists(os.path.join(self.bin_dir, 'initdb')):
                raise DbError('find initdb', 'in bin_dir %s' % self.bin_dir, 'no such program')
            self._bin_dir = self.bin_dir
            return self._bin_dir
        candidates = []
        major = self.data_major()
        if major:
            candidates += ['/usr/lib/postgresql/%s/bin' % major, '/usr/pgsql-%s/bin' % major]
        out = self.probe(['pg_config', '--bindir']) if shutil.which('pg_config') else None
        if out and out.strip():
            candidates.append(out.strip())
        found = glob.glob('/usr/lib/postgresql/*/bin') + glob.glob('/usr/pgsql-*/bin')
        candidates += sorted(found, key=_version_key, reverse=True)
        on_path = shutil.which('initdb')
        if on_path:
            candidates.append(os.path.dirname(on_path))
        for path in candidates:
            if os.path.exists(os.path.join(path, 'initdb')) and os.path.exists(os.path.join(path, 'pg_ctl')):
                self._bin_dir = path
                return path
        raise DbError('find the PostgreSQL server programs', '(initdb, pg_ctl)',
                      'install the PostgreSQL server package or set bin_dir')

    def program(self, name):
        return os.path.join(self.find_bin_dir(), name)

    def version(self):
        if self._version is None:
            out = self.probe([self.program('postgres'), '--version']) or ''
            match = re.search(r'\(PostgreSQL\)\s+(\d+(?:\.\d+)*)', out) or re.search(r'(\d+(?:\.\d+)+)', out)
            self._version = match.group(1) if match else None
        return self._version

    # ---- state ---------------------------------------------------------------------------------
    def status(self):
        dir_state = self.directory_state()
        info = {'dir_state': dir_state, 'state': 'absent', 'data_dir': self.data_dir, 'pid': None,
                'port': self.requested_port or self.default_port, 'configured_port': None,
                'socket': self.socket_dir, 'bind_address': self.bind_address,
                'log_file': self.log_file, 'config_file': self.config_file, 'flavor': self.flavor}
        if dir_state != 'instance':
            return info
        config = read_postgres_config(os.path.join(self.data_dir, 'postgresql.conf'), self.config_file)
        try:
            info['configured_port'] = int(config.get('port', self.default_port))
        except ValueError:
            info['configured_port'] = self.default_port
        info['port'] = info['configured_port']
        info['bind_address'] = config.get('listen_addresses', 'localhost')
        info['socket'] = (config.get('unix_socket_directories') or '/var/run/postgresql').split(',')[0].strip()
        pid, lines = read_pid_file(os.path.join(self.data_dir, 'postmaster.pid'))
        if self.pid_is_ours(pid):
            info['state'] = 'started'
            info['pid'] = pid
            if len(lines) > 3 and lines[3].strip().isdigit():
                info['port'] = int(lines[3].strip())
            if len(lines) > 4 and lines[4].strip():
                info['socket'] = lines[4].strip()
        else:
            info['state'] = 'stopped'
        return info

    def check(self, actions, current):
        self.check_common(actions, current)
        if not actions:
            return
        if current['dir_state'] == 'instance' and not os.path.exists(os.path.join(self.data_dir, 'postgresql.conf')):
            raise DbError('manage the instance', 'in %s' % self.data_dir,
                          'there is no postgresql.conf in the data directory (a cluster managed by '
                          'pg_ctlcluster?); refusing to touch it')
        if actions == ['remove']:
            return  # deleting a stopped instance needs no server program
        if self.os_user == 'root':
            raise DbError('run PostgreSQL as OS user', 'root', 'PostgreSQL refuses to run as root; choose another os_user')
        self.find_bin_dir()
        if current['dir_state'] == 'instance':
            major, version = self.data_major(), self.version()
            if version and major and version.split('.')[0] != major.split('.')[0]:
                raise DbError('start the instance', 'in %s' % self.data_dir,
                              'its data is PostgreSQL %s but the programs in %s are %s; set bin_dir'
                              % (major, self.find_bin_dir(), version))
        if 'initialize' in actions:
            path = os.path.join(self.socket_dir, '.s.PGSQL.%d' % current['port'])
            if len(path.encode('utf-8')) > MAX_SOCKET_PATH:
                raise DbError('initialize an instance', 'in %s' % self.data_dir,
                              'the socket path %s would be longer than %d bytes; choose a shorter data_dir'
                              % (path, MAX_SOCKET_PATH))

    # ---- actions ---------------------------------------------------------------------------------
    def initdb_command(self, pwfile=None):
        argv = [self.program('initdb'), '-D', self.data_dir, '-U', self.superuser, '--encoding=UTF8',
                '--locale=C.UTF-8', '--data-checksums', '--auth-local=trust', '--auth-host=scram-sha-256']
        if pwfile:
            argv += ['--pwfile', pwfile]
        return self.as_user(argv)

    def initial_settings(self, port):
        """What initialization writes to postgresql.auto.conf, in order."""
        values = {'listen_addresses': self.bind_address, 'port': port,
                  'unix_socket_directories': self.socket_dir}
        values.update(self.settings)
        return values

    def initialize(self, check_mode):
        existed = os.path.isdir(self.data_dir)
        port = self.requested_port or self.default_port
        staging = None if check_mode or not self.password else self.staging_dir()
        pwfile = os.path.join(staging or '<tmp>', 'superuser.pw') if self.password else None
        try:
            if not check_mode:
                self.make_owned_dir(self.data_dir, 0o700)
                if staging:
                    self.write_owned_file(pwfile, self.password + '\n')
            self.run(self.initdb_command(pwfile), 'initialize a PostgreSQL instance', check_mode)
            lines = ['# written by dbops.admin db_instance at initialization\n']
            lines += ['%s = %s\n' % (k, postgres_literal(v)) for k, v in self.initial_settings(port).items()
                      if v is not None]
            self.record('append to %s: %s' % (self.config_file, ', '.join(
                line.strip() for line in lines[1:])))
            if not check_mode:
                self.write_owned_file(self.config_file, ''.join(lines), mode=0o600, append=True)
                self.make_owned_dir(os.path.dirname(self.log_file), 0o700)
        except Exception:
            if not check_mode:
                self.undo_initialize(existed)
            raise
        finally:
            if staging:
                shutil.rmtree(staging, ignore_errors=True)

    def start_command(self):
        return self.as_user([self.program('pg_ctl'), '-D', self.data_dir, '-l', self.log_file, '-w',
                             '-t', str(self.timeout), 'start'])

    def stop_command(self):
        return self.as_user([self.program('pg_ctl'), '-D', self.data_dir, '-m', 'fast', '-w',
                             '-t', str(self.timeout), 'stop'])

    def reload_command(self):
        return self.as_user([self.program('pg_ctl'), '-D', self.data_dir, 'reload'])

    def start(self, check_mode):
        if not check_mode:
            self.make_owned_dir(os.path.dirname(self.log_file), 0o700)
        self.run(self.start_command(), 'start the PostgreSQL instance', check_mode, log_file=self.log_file)

    def stop(self, check_mode):
        self.run(self.stop_command(), 'stop the PostgreSQL instance', check_mode, log_file=self.log_file)

    def restart(self, check_mode):
        self.stop(check_mode)
        self.start(check_mode)

    def reload(self, check_mode):
        self.run(self.reload_command(), 'reload the PostgreSQL instance', check_mode)


def _version_key(path):
    numbers = re.findall(r'\d+', path)
    return [int(n) for n in numbers]
