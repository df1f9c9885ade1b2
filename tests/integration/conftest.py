# -*- coding: utf-8 -*-
"""Session-wide throw-away servers. Tests needing their own instance build one from servers.py."""

from __future__ import annotations

import os
import sys

import pytest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from servers import MariadbServer, PostgresServer  # noqa: E402


@pytest.fixture(scope='session')
def pg_server():
    server = PostgresServer(settings={'shared_preload_libraries': "'pg_stat_statements'"}).init().start()
    yield server
    server.destroy()


@pytest.fixture(scope='session')
def mariadb_server():
    server = MariadbServer().init().start()
    yield server
    server.destroy()


@pytest.fixture(params=['postgresql', 'mariadb'])
def server(request):
    """The same test on both engines."""
    if request.param == 'postgresql':
        return request.getfixturevalue('pg_server')
    return request.getfixturevalue('mariadb_server')
