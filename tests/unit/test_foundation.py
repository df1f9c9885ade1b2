# -*- coding: utf-8 -*-
"""Quoting, masking, error wording, the difference tracker and connection arguments."""

from __future__ import annotations

import pytest

from ansible_collections.dbops.admin.plugins.module_utils import _connection
from ansible_collections.dbops.admin.plugins.module_utils._diff import DifferenceTracker
from ansible_collections.dbops.admin.plugins.module_utils._engines import mysql, postgresql
from ansible_collections.dbops.admin.plugins.module_utils._errors import DbError, driver_message, mask_secrets

HOSTILE = 'x"; DROP TABLE t; --'


@pytest.mark.parametrize('name, expected', [
    ('plain', '"plain"'),
    ('MixedCase', '"MixedCase"'),
    (HOSTILE, '"x""; DROP TABLE t; --"'),
    ('a\\b', '"a\\b"'),
    ('émoji ✓', '"émoji ✓"'),
])
def test_postgres_quote_ident_doubles_quotes(name, expected):
    assert postgresql.quote_ident(name) == expected


@pytest.mark.parametrize('name', ['', 'a' * 64, 'é' * 32, 'nul\x00byte', None, 12])
def test_postgres_quote_ident_refuses_what_postgres_would_mangle(name):
    with pytest.raises(DbError) as info:
        postgresql.quote_ident(name)
    assert 'identifier' in str(info.value)


def test_postgres_quote_ident_accepts_63_bytes():
    assert postgresql.quote_ident('a' * 63) == '"' + 'a' * 63 + '"'


@pytest.mark.parametrize('name, expected', [
    ('plain', '`plain`'),
    ('back`tick', '`back``tick`'),
    (HOSTILE, '`x"; DROP TABLE t; --`'),
])
def test_mysql_quote_ident_doubles_backticks(name, expected):
    assert mysql.quote_ident(name) == expected


@pytest.mark.parametrize('name', ['', 'a' * 65, 'trailing ', 'nul\x00'])
def test_mysql_quote_ident_refuses_invalid(name):
    with pytest.raises(DbError):
        mysql.quote_ident(name)


def test_quote_literal_escapes_both_engines():
    assert postgresql.quote_literal("it's") == "'it''s'"
    assert postgresql.quote_literal('a\\b') == "E'a\\\\b'"
    assert postgresql.quote_literal(None) == 'NULL'
    assert postgresql.quote_literal(True) == 'true'
    assert mysql.quote_literal("it's\\") == "'it''s\\\\'"
    assert mysql.quote_literal(False) == '0'


def test_mask_secrets_replaces_longest_first():
    text = mask_secrets('user=bob pass=abc123 again abc123', ['abc', 'abc123', None, ''])
    assert 'abc' not in text
    assert text.count('********') == 2


def test_dberror_wording():
    assert str(DbError('create user', 'alice', 'permission denied')) == \
        'could not create user alice: permission denied'
    assert str(DbError('connect to', None, None)) == 'could not connect to'


def test_driver_message_strips_libpq_noise():
    exc = Exception('connection to server at "127.0.0.1", port 5432 failed: FATAL:  password '
                    'authentication failed for user "bob"\n')
    assert driver_message(exc) == 'password authentication failed for user "bob"'


def test_driver_message_keeps_the_libpq_hint_a_sentence():
    # "Connection refused Is the server running ..." read as one garbled sentence
    exc = Exception('connection to server at "127.0.0.1", port 1 failed: Connection refused\n'
                    '\tIs the server running on that host and accepting TCP/IP connections?\n')
    assert driver_message(exc) == ('Connection refused. Is the server running on that host and accepting '
                                   'TCP/IP connections?')
    assert driver_message(Exception('one   line\n')) == 'one line'


def test_driver_message_reads_pymysql_tuple():
    exc = Exception(1045, "Access denied for user 'x'@'localhost'")
    assert driver_message(exc) == "Access denied for user 'x'@'localhost' (errno 1045)"


def test_difference_tracker_drives_changed_and_diff():
    tracker = DifferenceTracker()
    assert tracker.add('owner', 'a', 'a') is False
    assert tracker.changed is False
    assert tracker.add('conn_limit', -1, 10, action='set connection limit') is True
    assert tracker.changed is True
    assert tracker.actions == ['set connection limit']
    assert tracker.diff() == {'before': {'owner': 'a', 'conn_limit': -1},
                              'after': {'owner': 'a', 'conn_limit': 10}}
    assert [d['name'] for d in tracker.differences] == ['conn_limit']


def test_difference_tracker_copies_values():
    tracker = DifferenceTracker()
    before = ['a']
    tracker.add('members', before, ['a', 'b'])
    before.append('z')
    assert tracker.diff()['before']['members'] == ['a']


@pytest.mark.parametrize('alias, engine', [('postgresql', 'postgresql'), ('postgres', 'postgresql'),
                                           ('MariaDB', 'mysql'), ('mysql', 'mysql')])
def test_engine_aliases(alias, engine):
    assert _connection.normalize_engine(alias) == engine


def test_unknown_engine_is_refused():
    with pytest.raises(DbError) as info:
        _connection.normalize_engine('oracle')
    assert 'postgresql, mysql or mariadb' in str(info.value)


def test_pg_connect_args_leave_fallbacks_to_libpq(monkeypatch):
    monkeypatch.delenv('PGDATABASE', raising=False)
    args = _connection._pg_connect_args({'login_host': None, 'login_port': None, 'login_user': None,
                                         'login_password': None, 'login_db': None, 'connect_timeout': 5}, None)
    # unset options are not passed, so PGHOST/PGPORT/PGUSER/~/.pgpass apply
    assert 'host' not in args and 'port' not in args and 'user' not in args and 'password' not in args
    assert args['dbname'] == 'postgres'
    assert args['connect_timeout'] == 5


def test_pg_connect_args_socket_wins_over_host():
    args = _connection._pg_connect_args({'login_host': 'db1', 'login_unix_socket': '/run/pg', 'login_port': 5433,
                                         'ssl_mode': 'verify-full', 'ssl_ca': '/ca.pem'}, 'app')
    assert args['host'] == '/run/pg'
    assert args['dbname'] == 'app'
    assert args['sslmode'] == 'verify-full' and args['sslrootcert'] == '/ca.pem'


def test_mysql_connect_args_tls(monkeypatch, tmp_path):
    monkeypatch.setenv('HOME', str(tmp_path))
    args = _connection._mysql_connect_args({'login_host': 'db', 'login_port': 3307, 'login_user': 'u',
                                            'login_password': 'p', 'ssl_mode': 'verify-full',
                                            'ssl_ca': '/ca.pem'}, None)
    assert args['host'] == 'db' and args['port'] == 3307 and args['password'] == b'p'
    # PyMySQL's ssl_* arguments, not an ssl dict it would drop for them
    assert args['ssl_ca'] == '/ca.pem' and 'ssl' not in args
    assert args['ssl_verify_cert'] is True and args['ssl_verify_identity'] is True
    assert 'read_default_file' not in args
    assert _connection._mysql_connect_args({'ssl_mode': 'disable', 'ssl_ca': '/ca.pem'}, None)['ssl_disabled'] is True
    args = _connection._mysql_connect_args({'ssl_mode': 'require'}, None)
    assert args['ssl'] == {'check_hostname': False} and not args['ssl_verify_cert']


def test_mysql_connect_args_send_the_password_as_utf8(monkeypatch, tmp_path):
    # PyMySQL encodes a str password as latin-1: '\u20ac' failed with "'latin-1' codec can't encode", and
    # '\u00fc' was sent as one byte where the server (and db_user) hash its UTF-8 bytes
    monkeypatch.setenv('HOME', str(tmp_path))
    args = _connection._mysql_connect_args({'login_host': 'db', 'login_password': 'p\u00fc\u20ac\U0001F511'}, None)
    assert args['password'] == 'p\u00fc\u20ac\U0001F511'.encode('utf-8')


def test_mysql_connect_args_read_my_cnf(monkeypatch, tmp_path):
    (tmp_path / '.my.cnf').write_text('[client]\nuser=fromcnf\n')
    monkeypatch.setenv('HOME', str(tmp_path))
    args = _connection._mysql_connect_args({'login_host': None}, None)
    assert args['read_default_file'].endswith('.my.cnf')
    assert 'user' not in args  # the option file decides


def test_endpoint_names_mariadb_and_the_my_cnf_server(monkeypatch, tmp_path):
    # a failure used to say "mysql at localhost:3306" while PyMySQL had connected where ~/.my.cnf said
    monkeypatch.setenv('HOME', str(tmp_path))
    params = {'engine': 'mariadb', 'login_host': None, 'login_port': None}
    assert _connection.describe_endpoint('mysql', params) == 'mariadb at localhost:3306'
    (tmp_path / '.my.cnf').write_text('[client]\nuser=root\npassword="Cnf-Secret-1"\nhost=127.0.0.1\nport=53306\n')
    assert _connection.describe_endpoint('mysql', params) == 'mariadb at 127.0.0.1:53306'
    assert _connection.describe_endpoint('mysql', dict(params, engine='mysql', login_port=3307)) == \
        'mysql at 127.0.0.1:3307'
    assert _connection.describe_endpoint('mysql', dict(params, login_host='db1')) == 'mariadb at db1:53306'
    (tmp_path / '.my.cnf').write_text('[client]\nsocket=/run/mysqld/mysqld.sock\nskip-ssl\n')
    assert _connection.describe_endpoint('mysql', params) == 'mariadb at socket /run/mysqld/mysqld.sock'
    (tmp_path / '.my.cnf').write_text('not an option file\n')
    assert _connection.describe_endpoint('mysql', params) == 'mariadb at localhost:3306'


def test_out_of_space_messages_name_the_file():
    import errno
    import shutil

    from ansible_collections.dbops.admin.plugins.module_utils._connection import out_of_space
    msg = out_of_space(OSError(errno.ENOSPC, 'No space left on device', '/repo/x/data/ibdata1'))
    assert msg.startswith('no space left on the device writing /repo/x/data/ibdata1') and 'free space' in msg
    copied = shutil.Error([('/a/ibdata1', '/repo/.dbops-scratch-restore-1/copy/ibdata1',
                            "[Errno 28] No space left on device: '/repo/.dbops-scratch-restore-1/copy/ibdata1'")])
    assert '/repo/.dbops-scratch-restore-1/copy/ibdata1' in out_of_space(copied)
    assert out_of_space(OSError(errno.EACCES, 'Permission denied', '/x')) is None
    assert out_of_space(ValueError('x')) is None


@pytest.mark.parametrize('text, words', [
    ('!includedir /etc/mysql/conf.d/\n[client]\nuser=root\n', 'no section headers'),
    ('[client]\nport=3306\nport=3307\n', "option 'port' in section 'client' already exists"),
    ('[client]\nport=notaport\n', "port 'notaport' is not a number"),
])
def test_unreadable_my_cnf_is_a_clear_error(monkeypatch, tmp_path, text, words):
    """PyMySQL reads ~/.my.cnf strictly: its parse errors were reported as "unexpected error"."""
    (tmp_path / '.my.cnf').write_text(text)
    monkeypatch.setenv('HOME', str(tmp_path))
    with pytest.raises(DbError) as info:
        _connection.connect_params({'engine': 'mariadb', 'login_password': 'Cnf-Pw-1', 'connect_timeout': 1})
    text = str(info.value)
    assert text.startswith('could not connect to mariadb') and str(tmp_path / '.my.cnf') in text
    assert words in text and 'Cnf-Pw-1' not in text


def test_unreadable_my_cnf_error_does_not_quote_its_lines(monkeypatch, tmp_path):
    """configparser quotes the offending line, which may be the file's own password."""
    (tmp_path / '.my.cnf').write_text('password=File-Pw-7\n[client]\nuser=root\n')
    monkeypatch.setenv('HOME', str(tmp_path))
    with pytest.raises(DbError) as info:
        _connection.connect_params({'engine': 'mariadb', 'connect_timeout': 1})
    text = str(info.value)
    assert 'no section headers' in text and 'line 1' in text
    assert 'File-Pw-7' not in text


@pytest.mark.parametrize('engine', ['postgresql', 'mariadb'])
def test_connect_timeout_below_one_second_is_refused(engine):
    """-1 was an "unexpected error" from PyMySQL and no timeout at all for libpq; 0 silently became 10."""
    for value in (-1, 0):
        with pytest.raises(DbError) as info:
            _connection.connect_params({'engine': engine, 'login_host': '127.0.0.1', 'login_port': 9,
                                        'connect_timeout': value})
        assert 'connect_timeout must be at least 1 second' in str(info.value)


@pytest.mark.parametrize('engine', ['postgresql', 'mariadb'])
@pytest.mark.parametrize('port', [0, -1, 65536])
def test_login_port_out_of_range_is_refused(engine, port):
    """login_port: 0 connected to the default port (5432 / 3306), another server than the one meant."""
    with pytest.raises(DbError) as info:
        _connection.connect_params({'engine': engine, 'login_host': '127.0.0.1', 'login_port': port,
                                    'connect_timeout': 1})
    assert str(info.value) == 'could not use login_port %d: a TCP port is a number from 1 to 65535' % port


def test_unexpected_error_traceback_is_masked_with_the_engines_secrets(monkeypatch):
    """A bug of ours after a password hash was sent: msg and the -vvv traceback never show the hash."""
    from ansible_collections.dbops.admin.plugins.module_utils._engines._base import BaseEngine

    class FakeEngine(BaseEngine):
        def _read_server_version(self):
            pass

    engine = FakeEngine(conn=None, secrets=['Login-Pw-1'])
    monkeypatch.setattr(_connection, 'connect_params', lambda *args, **kwargs: engine)
    monkeypatch.setattr(_connection, 'check_driver', lambda module: None)

    class Module:
        params = {'engine': 'postgresql', 'login_password': 'Login-Pw-1'}
        check_mode = False

        def fail_json(self, **kwargs):
            raise SystemExit(kwargs)

    def body(eng):
        eng.add_secret('SCRAM-SHA-256$4096:c2FsdA==$Stored:Server')
        raise ValueError('bad value SCRAM-SHA-256$4096:c2FsdA==$Stored:Server near Login-Pw-1')

    with pytest.raises(SystemExit) as info:
        _connection.run_module(Module(), body)
    failed = info.value.args[0]
    assert 'unexpected error' in failed['msg'] and 'ValueError' in failed['exception']
    for text in (failed['msg'], failed['exception']):
        assert 'Stored:Server' not in text and 'Login-Pw-1' not in text and '********' in text


@pytest.mark.parametrize('engine', ['postgresql', 'mariadb'])
def test_tls_files_are_checked_before_connecting(engine, tmp_path):
    """A missing CA file was a bare 'unexpected error: [Errno 2] No such file or directory' on MySQL; a key without
    its certificate was silently unused."""
    base = {'engine': engine, 'login_host': '127.0.0.1', 'login_port': 9, 'connect_timeout': 1}
    missing = str(tmp_path / 'nope.pem')
    for option in ('ssl_ca', 'ssl_cert'):
        with pytest.raises(DbError) as info:
            _connection.connect_params(dict(base, ssl_mode='verify-full', **{option: missing}))
        assert str(info.value) == 'could not use %s %s: no such file' % (option, missing)
    with pytest.raises(DbError) as info:
        _connection.connect_params(dict(base, ssl_ca=str(tmp_path)))
    assert str(info.value) == 'could not use ssl_ca %s: not a file' % tmp_path
    key = tmp_path / 'client.key'
    key.write_text('key')
    with pytest.raises(DbError) as info:
        _connection.connect_params(dict(base, ssl_key=str(key)))
    assert 'give ssl_cert too' in str(info.value)
    # readable files pass the check and the connection itself is tried (nothing listens on port 9)
    cert = tmp_path / 'client.crt'
    cert.write_text('cert')
    with pytest.raises(DbError) as info:
        _connection.connect_params(dict(base, ssl_mode='disable', ssl_key=str(key), ssl_cert=str(cert)))
    assert str(info.value).startswith('could not connect to')


def test_socket_path_of_the_other_engine_is_a_clear_error(tmp_path):
    """MySQL takes the socket file, libpq the directory: the other one was 'Connection refused' or a doubled name."""
    import socket
    with pytest.raises(DbError) as info:
        _connection.connect_params({'engine': 'mariadb', 'login_unix_socket': str(tmp_path), 'connect_timeout': 1})
    assert 'it is a directory' in str(info.value) and 'socket file' in str(info.value)
    path = str(tmp_path / '.s.PGSQL.5432')
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        sock.bind(path)
        with pytest.raises(DbError) as info:
            _connection.connect_params({'engine': 'postgresql', 'login_unix_socket': path, 'connect_timeout': 1})
        assert str(info.value) == ('could not use login_unix_socket %s: it is a socket file; on PostgreSQL give the '
                                   'directory that holds it (%s)' % (path, tmp_path))
        # the directory itself is what libpq takes: the connection is tried (nothing listens)
        with pytest.raises(DbError) as info:
            _connection.connect_params({'engine': 'postgresql', 'login_unix_socket': str(tmp_path), 'login_port': 5432,
                                        'connect_timeout': 1})
        assert str(info.value).startswith('could not connect to postgresql at socket %s' % path)
    finally:
        sock.close()
