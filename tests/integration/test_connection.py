# -*- coding: utf-8 -*-
"""The connection layer against real servers: flavour, version, errors without secrets."""

from __future__ import annotations

import pytest

from ansible_collections.dbops.admin.plugins.module_utils._connection import connect_params
from ansible_collections.dbops.admin.plugins.module_utils._engines._base import Secret
from ansible_collections.dbops.admin.plugins.module_utils._errors import DbError


def test_connect_reads_flavor_and_version(server):
    engine = connect_params(server.conn)
    try:
        expected = 'postgresql' if server.engine == 'postgresql' else 'mariadb'
        assert engine.flavor == expected
        assert engine.version_num > 100000
        assert engine.version.split('.')[0].isdigit()
    finally:
        engine.close()


def test_wrong_password_names_authentication_and_hides_password(server):
    params = dict(server.conn, login_password='Wrong-Pass-7781')
    with pytest.raises(DbError) as info:
        connect_params(params)
    text = str(info.value)
    assert 'Wrong-Pass-7781' not in text
    assert 'could not connect to' in text
    assert str(server.port) in text
    assert 'authentication failed' in text


def test_unreachable_port_is_a_clear_error(server):
    from servers import free_port
    params = dict(server.conn, login_port=free_port(), connect_timeout=2)
    with pytest.raises(DbError) as info:
        connect_params(params)
    assert 'could not connect to' in str(info.value)


def test_secret_parameters_are_masked_in_queries(server):
    engine = connect_params(server.conn)
    try:
        engine.execute('SELECT %s', (Secret('Very-Secret-99'),))
        assert engine.queries == ["SELECT '********'"]
    finally:
        engine.close()


def test_failed_statement_message_has_no_secret(server):
    engine = connect_params(server.conn)
    try:
        with pytest.raises(DbError) as info:
            engine.execute('SELECT no_such_column_x, %s', (Secret('Hidden-Value-55'),))
        assert 'Hidden-Value-55' not in str(info.value)
        assert 'no_such_column_x' in str(info.value)
    finally:
        engine.close()


def test_hostile_identifier_is_quoted_literally(server):
    engine = connect_params(server.conn)
    hostile = 'x"; DROP TABLE t; --`'
    try:
        quoted = engine.quote_ident(hostile)
        assert engine.fetch_value('SELECT 1 AS %s' % quoted) == 1
    finally:
        engine.close()


def test_connect_timeout_covers_a_listener_that_never_answers(server):
    """A port that accepts TCP but never speaks (a stopped server, a proxy without a backend):
    connect_timeout bounds the whole connect, handshake included, on both engines."""
    import socket
    import threading
    import time

    listener = socket.socket()
    listener.bind(('127.0.0.1', 0))
    listener.listen(5)
    accepted = []

    def accept_and_stay_silent():
        listener.settimeout(30)
        try:
            accepted.append(listener.accept()[0])
        except OSError:
            pass

    thread = threading.Thread(target=accept_and_stay_silent, daemon=True)
    thread.start()
    params = dict(server.conn, login_port=listener.getsockname()[1], connect_timeout=2)
    start = time.monotonic()
    # without a bound the client would wait forever: the silent peer gives up after 30 s at most
    timer = threading.Timer(30, lambda: [c.close() for c in accepted] + [listener.close()])
    timer.start()
    try:
        with pytest.raises(DbError) as info:
            connect_params(params)
        elapsed = time.monotonic() - start
    finally:
        timer.cancel()
        for conn in accepted:
            conn.close()
        listener.close()
    assert elapsed < 10, 'connect took %.1f s with connect_timeout=2' % elapsed
    text = str(info.value)
    assert 'could not connect to' in text
    assert 'timeout' in text or 'timed out' in text


def test_connect_timeout_does_not_bound_statements(server):
    engine = connect_params(dict(server.conn, connect_timeout=1))
    try:
        sleep = 'SELECT pg_sleep(2.5)' if server.engine == 'postgresql' else 'SELECT SLEEP(2.5)'
        engine.execute(sleep)
        assert engine.fetch_value('SELECT 1') == 1
    finally:
        engine.close()


def test_postgresql_socket_error_names_the_socket_file(pg_server):
    """The directory exists; the socket of the asked port does not: the message names that file."""
    from servers import free_port
    port = free_port()
    params = dict(pg_server.conn, login_host=None, login_unix_socket=pg_server.socket_dir, login_port=port)
    with pytest.raises(DbError) as info:
        connect_params(params)
    assert 'postgresql at socket %s/.s.PGSQL.%d:' % (pg_server.socket_dir, port) in str(info.value)
    # the right port through the same directory connects
    connect_params(dict(params, login_port=pg_server.port)).close()
