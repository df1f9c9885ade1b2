# -*- coding: utf-8 -*-
# Copyright: dbops.admin contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Private to dbops.admin: the common argument spec, the one connection path, engine detection.

Every module builds its spec from ``connection_argument_spec()``, connects with
``connect()`` and wraps its body in ``run_module()`` so that every failure becomes one
``fail_json(msg=...)`` in DBA words, with secrets masked.
"""

from __future__ import annotations

import configparser
import os
import stat
import traceback

from ansible.module_utils.basic import missing_required_lib
from ansible_collections.dbops.admin.plugins.module_utils._errors import DbError, driver_message, mask_secrets


def _pg():
    """The PostgreSQL engine module, imported when a PostgreSQL connection is made (each module run loads one engine)."""
    from ansible_collections.dbops.admin.plugins.module_utils._engines import postgresql
    return postgresql


def _mysql():
    """The MySQL/MariaDB engine module, imported when a MySQL connection is made."""
    from ansible_collections.dbops.admin.plugins.module_utils._engines import mysql
    return mysql


ENGINE_ALIASES = {
    'postgresql': 'postgresql',
    'postgres': 'postgresql',
    'mysql': 'mysql',
    'mariadb': 'mysql',
}
DEFAULT_PORTS = {'postgresql': 5432, 'mysql': 3306}
SSL_MODES = ['disable', 'allow', 'prefer', 'require', 'verify-ca', 'verify-full']


def connection_argument_spec(engine_required=True):
    """The connection options every module accepts (documented in the ``connection`` fragment)."""
    return dict(
        engine=dict(type='str', required=engine_required,
                    choices=['postgresql', 'mysql', 'mariadb'], aliases=['db_engine']),
        login_host=dict(type='str', aliases=['host']),
        login_port=dict(type='int', aliases=['port']),
        login_user=dict(type='str', aliases=['login']),
        login_password=dict(type='str', no_log=True),
        login_db=dict(type='str', aliases=['login_database']),
        login_unix_socket=dict(type='str'),
        connect_timeout=dict(type='int', default=10),
        ssl_mode=dict(type='str', choices=SSL_MODES),
        ssl_ca=dict(type='path'),
        ssl_cert=dict(type='path'),
        ssl_key=dict(type='path', no_log=False),
    )


def normalize_engine(name):
    if name is None:
        return None
    try:
        return ENGINE_ALIASES[name.lower()]
    except KeyError:
        raise DbError('use engine', repr(name), 'choose postgresql, mysql or mariadb') from None


def _my_cnf_client_options():
    """host, port and socket of the [client] group of ~/.my.cnf (what PyMySQL falls back to)."""
    path = os.path.expanduser('~/.my.cnf')
    if not os.path.isfile(path):
        return {}
    parser = configparser.RawConfigParser(allow_no_value=True, strict=False)
    try:
        parser.read(path)
    except (configparser.Error, OSError, UnicodeDecodeError):
        return {}
    if not parser.has_section('client'):
        return {}
    return {k: (parser.get('client', k) or '').strip().strip('"\'') for k in ('host', 'port', 'socket')
            if parser.has_option('client', k)}


def describe_endpoint(engine, params):
    """'postgresql at 127.0.0.1:5432', 'mariadb at socket /run/mysqld/mysqld.sock': where we connect."""
    label = 'mariadb' if engine == 'mysql' and str(params.get('engine') or '').lower() == 'mariadb' else engine
    if params.get('login_unix_socket'):
        socket_path = params['login_unix_socket']
        if engine == 'postgresql':
            # a directory for libpq: name the socket file of the port, which is what is missing when it fails
            port = params.get('login_port') or os.environ.get('PGPORT') or DEFAULT_PORTS[engine]
            socket_path = os.path.join(socket_path, '.s.PGSQL.%s' % port)
        return '%s at socket %s' % (label, socket_path)
    host = params.get('login_host')
    if engine == 'postgresql':
        host = host or os.environ.get('PGHOST') or 'local socket'
        port = params.get('login_port') or os.environ.get('PGPORT') or DEFAULT_PORTS[engine]
    else:
        cnf = _my_cnf_client_options()
        if not host and not params.get('login_port') and cnf.get('socket') and not cnf.get('host'):
            return '%s at socket %s' % (label, cnf['socket'])
        host = host or cnf.get('host') or 'localhost'
        port = params.get('login_port') or cnf.get('port') or DEFAULT_PORTS[engine]
    return '%s at %s:%s' % (label, host, port)


def _pg_connect_args(params, database):
    args = {'connect_timeout': params.get('connect_timeout') or 10,
            'application_name': 'dbops.admin'}
    host = params.get('login_unix_socket') or params.get('login_host')
    optional = {
        'host': host,
        'port': params.get('login_port'),
        'user': params.get('login_user'),
        'password': params.get('login_password'),
        'dbname': database or params.get('login_db'),
        'sslmode': params.get('ssl_mode'),
        'sslrootcert': params.get('ssl_ca'),
        'sslcert': params.get('ssl_cert'),
        'sslkey': params.get('ssl_key'),
    }
    if not optional['dbname'] and not os.environ.get('PGDATABASE'):
        optional['dbname'] = 'postgres'
    args.update({k: v for k, v in optional.items() if v not in (None, '')})
    return args


def _mysql_connect_args(params, database):
    timeout = params.get('connect_timeout') or 10
    # PyMySQL's connect_timeout bounds only the TCP connect: a peer that accepts and never answers
    # (a stopped server, a proxy without a backend) would hang the handshake forever. The read and
    # write timeouts bound the handshake too; connect_params lifts them once connected.
    args = {'connect_timeout': timeout, 'read_timeout': timeout, 'write_timeout': timeout,
            'autocommit': True, 'charset': 'utf8mb4'}
    cnf = os.path.expanduser('~/.my.cnf')
    if os.path.isfile(cnf):
        args['read_default_file'] = cnf
    if params.get('login_unix_socket'):
        args['unix_socket'] = params['login_unix_socket']
    elif params.get('login_host'):
        args['host'] = params['login_host']
    if params.get('login_port'):
        args['port'] = params['login_port']
    if params.get('login_user'):
        args['user'] = params['login_user']
    elif 'read_default_file' not in args:
        args['user'] = 'root'
    if params.get('login_password') is not None:
        # as UTF-8 bytes: PyMySQL encodes a str password as latin-1, which fails on any other character
        # ("'latin-1' codec can't encode") and differs from the UTF-8 the server and db_user hash
        password = params['login_password']
        args['password'] = password.encode('utf-8') if isinstance(password, str) else password
    db = database or params.get('login_db')
    if db:
        args['database'] = db
    mode = params.get('ssl_mode')
    if mode == 'disable':
        args['ssl_disabled'] = True
    elif mode and mode not in ('allow', 'prefer') or params.get('ssl_ca') or params.get('ssl_cert'):
        # PyMySQL's own ssl_* arguments: given ssl_verify_cert, it drops an ssl dict (CA and client
        # certificate included) for one built from them
        for option in ('ssl_ca', 'ssl_cert', 'ssl_key'):
            if params.get(option):
                args[option] = params[option]
        # a CA without a mode is there to verify the server (as mysql --ssl-ca does)
        args['ssl_verify_cert'] = mode in ('verify-ca', 'verify-full') or (not mode and bool(params.get('ssl_ca')))
        args['ssl_verify_identity'] = mode == 'verify-full'
        if not any(args.get(option) for option in ('ssl_ca', 'ssl_cert', 'ssl_key', 'ssl_verify_cert')):
            args['ssl'] = {'check_hostname': False}  # TLS required, nothing to verify it with (require)
    return args


def check_tls_files(params):
    """The TLS files given are readable files, and a client key comes with its certificate.

    Otherwise PyMySQL fails with a bare "No such file or directory" (an unexpected error naming no file),
    and a key alone, or a file libpq does not need (ssl_mode prefer, a server without TLS), is silently unused.
    """
    for option in ('ssl_ca', 'ssl_cert', 'ssl_key'):
        path = params.get(option)
        if not path:
            continue
        if not os.path.exists(path):
            raise DbError('use %s' % option, path, 'no such file')
        if not os.path.isfile(path):
            raise DbError('use %s' % option, path, 'not a file')
        if not os.access(path, os.R_OK):
            raise DbError('use %s' % option, path, 'not readable for this user')
    if params.get('ssl_key') and not params.get('ssl_cert'):
        raise DbError('use ssl_key', params['ssl_key'], 'a client key is used with its certificate: give ssl_cert too')


def check_socket_path(engine, path):
    """login_unix_socket is the socket's directory for libpq and the socket file itself for MySQL/MariaDB:
    the other one fails with a bare 'Connection refused' or a doubled socket name."""
    if not path:
        return
    if engine == 'mysql' and os.path.isdir(path):
        raise DbError('use login_unix_socket', path, 'it is a directory; on MySQL/MariaDB give the socket file '
                      'itself (for example /run/mysqld/mysqld.sock)')
    if engine == 'postgresql' and os.path.exists(path) and stat.S_ISSOCK(os.stat(path).st_mode):
        raise DbError('use login_unix_socket', path, 'it is a socket file; on PostgreSQL give the directory that '
                      'holds it (%s)' % (os.path.dirname(path) or '.'))


def connect_params(params, database=None, check_mode=False):
    """Connect with a plain dict of connection options; returns an engine object.

    Raises DbError with a message that names the server and the reason, never the password.
    """
    engine = normalize_engine(params.get('engine'))
    secrets = [params.get('login_password')]
    where = describe_endpoint(engine, params)
    if params.get('login_port') is not None and not 1 <= params['login_port'] <= 65535:
        # 0 must not mean the default port: that is another server than the one meant
        raise DbError('use login_port', str(params['login_port']), 'a TCP port is a number from 1 to 65535')
    if params.get('connect_timeout') is not None and params['connect_timeout'] < 1:
        raise DbError('connect to', where, 'connect_timeout must be at least 1 second (it is %s)'
                      % params['connect_timeout'])
    check_tls_files(params)
    check_socket_path(engine, params.get('login_unix_socket'))
    if engine == 'postgresql':
        if not _pg().HAS_DRIVER:
            raise DbError('connect to', where, 'the psycopg2 Python library is missing: install %s'
                          % _pg().DRIVER_PACKAGE)
        try:
            conn = _pg().psycopg2.connect(**_pg_connect_args(params, database))
            conn.autocommit = True
        except _pg().psycopg2.Error as exc:
            raise DbError('connect to', where, mask_secrets(driver_message(exc), secrets)) from None
        return _pg().PostgresEngine(conn, host=params.get('login_host'), port=params.get('login_port') or 5432,
                                    check_mode=check_mode, secrets=secrets)
    if not _mysql().HAS_DRIVER:
        raise DbError('connect to', where, 'the PyMySQL Python library is missing: install %s'
                      % _mysql().DRIVER_PACKAGE)
    args = _mysql_connect_args(params, database)
    try:
        conn = _mysql().pymysql.connect(**args)
        # statements may run as long as they need (PyMySQL applies these before its next read or write)
        conn._read_timeout = conn._write_timeout = None  # pylint: disable=protected-access
    except _mysql().pymysql.Error as exc:
        detail = driver_message(exc)
        if exc.args and exc.args[0] in (1045, 1698):  # ER_ACCESS_DENIED_ERROR, ER_ACCESS_DENIED_NO_PASSWORD_ERROR
            detail = 'authentication failed: ' + detail
        elif exc.args and exc.args[0] == 2013 and 'timed out' in str(exc):  # CR_SERVER_LOST during the handshake
            detail = 'timeout expired: no answer within connect_timeout (%s s)' % (params.get('connect_timeout') or 10)
        raise DbError('connect to', where, mask_secrets(detail, secrets)) from None
    except (configparser.Error, ValueError) as exc:
        # PyMySQL reads the option file strictly (no !include, no repeated option) and int()s its port
        if 'read_default_file' not in args or isinstance(exc, ValueError) and 'int()' not in str(exc):
            raise
        if isinstance(exc, configparser.MissingSectionHeaderError):
            # never the line itself: it may be the password (password=... before any [group])
            detail = 'File contains no section headers: line %d comes before the first [group]' % exc.lineno
        elif isinstance(exc, configparser.ParsingError):
            detail = 'cannot parse line %s' % ', '.join(str(lineno) for lineno, _line in exc.errors)
        else:
            detail = ' '.join(str(exc).split())
        if isinstance(exc, ValueError) and 'int()' in detail:
            detail = 'port %s is not a number' % detail.rsplit(':', 1)[-1].strip()
        raise DbError('connect to', where, mask_secrets(
            'cannot read the option file %s (%s); fix it, or give the login_* options and move it away'
            % (args['read_default_file'], detail), secrets)) from None
    return _mysql().MysqlEngine(conn, host=params.get('login_host'), port=params.get('login_port') or 3306,
                                check_mode=check_mode, secrets=secrets)


def connect(module, database=None):
    """Connect with the module's connection options; fails the module cleanly on error."""
    try:
        return connect_params(module.params, database=database, check_mode=module.check_mode)
    except DbError as exc:
        module.fail_json(msg=str(exc), queries=[])


def check_driver(module):
    """Fail early, naming the package, when the engine's driver is not importable."""
    engine = normalize_engine(module.params.get('engine'))
    if engine == 'postgresql' and not _pg().HAS_DRIVER:
        module.fail_json(msg=missing_required_lib('psycopg2 (%s)' % _pg().DRIVER_PACKAGE),
                         exception=str(_pg().DRIVER_IMPORT_ERROR))
    if engine == 'mysql' and not _mysql().HAS_DRIVER:
        module.fail_json(msg=missing_required_lib('PyMySQL (%s)' % _mysql().DRIVER_PACKAGE),
                         exception=str(_mysql().DRIVER_IMPORT_ERROR))


def run_module(module, body, database=None, connect_first=True):
    """Connect, run ``body(engine)`` and exit; every failure becomes one clean fail_json.

    ``body`` returns the dict of results (``changed`` included). ``queries`` is added from
    the engine, masked.
    """
    check_driver(module)
    engine = None
    secrets = [module.params.get('login_password')]
    try:
        engine = connect_params(module.params, database=database, check_mode=module.check_mode) \
            if connect_first else None
        result = body(engine)
        if engine is not None:
            result.setdefault('queries', engine.queries)
    except DbError as exc:
        queries = engine.queries if engine is not None else []
        msg = engine.mask(str(exc)) if engine is not None else mask_secrets(str(exc), secrets)
        if engine is not None:
            engine._rollback()  # pylint: disable=protected-access
        _close(engine)
        module.fail_json(msg=msg, queries=queries)
    except Exception as exc:  # pylint: disable=broad-except
        # A bug of ours: still never a bare traceback in the message, never a secret.
        queries = engine.queries if engine is not None else []
        msg = out_of_space(exc) or 'unexpected error: %s' % exc
        msg = engine.mask(msg) if engine is not None else mask_secrets(msg, secrets)
        # the traceback (shown with -vvv) too, with every secret the engine learnt (password hashes sent)
        trace = traceback.format_exc()
        trace = engine.mask(trace) if engine is not None else mask_secrets(trace, secrets)
        _close(engine)
        module.fail_json(msg=msg, queries=queries, exception=trace)
    _close(engine)
    module.exit_json(**result)


def out_of_space(exc):
    """A clear message for a full filesystem (ENOSPC / EDQUOT, also inside a shutil.Error of a
    copied tree), naming the file being written; None for any other error."""
    import errno
    import shutil
    if isinstance(exc, OSError) and exc.errno in (errno.ENOSPC, errno.EDQUOT):
        where = exc.filename2 or exc.filename
        return ('no space left on the device%s (%s): free space on that filesystem (or let retention prune old '
                'backups) and run again' % (' writing %s' % where if where else '', exc.strerror or exc))
    if isinstance(exc, shutil.Error) and exc.args and isinstance(exc.args[0], list):
        for item in exc.args[0]:
            if isinstance(item, tuple) and len(item) == 3 and 'No space left' in str(item[2]):
                return ('no space left on the device writing %s: free space on that filesystem (or let retention '
                        'prune old backups) and run again' % item[1])
    return None


def _close(engine):
    if engine is not None:
        engine.close()
