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
