# -*- coding: utf-8 -*-
# Copyright: dbops.admin contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Private to dbops.admin: the PostgreSQL engine (psycopg2).

The class is assembled from one mixin per area (``postgresql_<area>.py``) so that
all PostgreSQL SQL lives under ``_engines/`` and modules never build SQL.
"""

from __future__ import annotations

import re

from ansible_collections.dbops.admin.plugins.module_utils._engines._base import BaseEngine
from ansible_collections.dbops.admin.plugins.module_utils._engines.postgresql_advisor import PostgresAdvisor
from ansible_collections.dbops.admin.plugins.module_utils._engines.postgresql_backup import PostgresBackup
from ansible_collections.dbops.admin.plugins.module_utils._engines.postgresql_databases import PostgresDatabases
from ansible_collections.dbops.admin.plugins.module_utils._engines.postgresql_indexes import PostgresIndexes
from ansible_collections.dbops.admin.plugins.module_utils._engines.postgresql_info import PostgresInfo
from ansible_collections.dbops.admin.plugins.module_utils._engines.postgresql_maintenance import PostgresMaintenance
from ansible_collections.dbops.admin.plugins.module_utils._engines.postgresql_matview import PostgresMatview
from ansible_collections.dbops.admin.plugins.module_utils._engines.postgresql_settings import PostgresSettings
from ansible_collections.dbops.admin.plugins.module_utils._engines.postgresql_users import PostgresUsers
from ansible_collections.dbops.admin.plugins.module_utils._errors import DbError

try:
    import psycopg2
    import psycopg2.extensions
    HAS_DRIVER = True
    DRIVER_IMPORT_ERROR = None
except ImportError as _exc:  # pragma: no cover - depends on the host
    psycopg2 = None
    HAS_DRIVER = False
    DRIVER_IMPORT_ERROR = _exc

DRIVER_PACKAGE = 'psycopg2-binary (pip) or python3-psycopg2 (apt/dnf)'
MAX_IDENTIFIER_BYTES = 63


def quote_ident(name):
    """Quote one PostgreSQL identifier; refuses what PostgreSQL would silently mangle."""
    if not isinstance(name, str) or name == '':
        raise DbError('use identifier', repr(name), 'an identifier must be a non-empty string')
    if '\x00' in name:
        raise DbError('use identifier', repr(name), 'an identifier cannot contain a NUL character')
    if len(name.encode('utf-8')) > MAX_IDENTIFIER_BYTES:
        raise DbError('use identifier', repr(name),
                      'PostgreSQL identifiers are limited to %d bytes and would be truncated'
                      % MAX_IDENTIFIER_BYTES)
    return '"' + name.replace('"', '""') + '"'


def quote_literal(value):
    """Render a Python value as a PostgreSQL literal (standard_conforming_strings on)."""
    if value is None:
        return 'NULL'
    if isinstance(value, bool):
        return 'true' if value else 'false'
    if isinstance(value, (int, float)):
        return repr(value)
    text = str(value)
    if '\x00' in text:
        raise DbError('use value', None, 'a value cannot contain a NUL character')
    if '\\' in text:
        return "E'" + text.replace('\\', '\\\\').replace("'", "''") + "'"
    return "'" + text.replace("'", "''") + "'"


class PostgresEngine(PostgresSettings, PostgresInfo, PostgresUsers, PostgresDatabases,
                     PostgresIndexes, PostgresMaintenance, PostgresMatview, PostgresAdvisor,
                     PostgresBackup, BaseEngine):
    """A connected PostgreSQL server."""

    name = 'postgresql'
    flavor = 'postgresql'
    default_port = 5432

    def __init__(self, conn, **kwargs):
        self.driver_errors = (psycopg2.Error,)
        self.database = conn.info.dbname if hasattr(conn, 'info') else None
        super().__init__(conn, **kwargs)

    def max_connection_limit(self):
        """The largest CONNECTION LIMIT of a role or database (an int4; a larger number is a syntax error)."""
        return 2147483647

    def quote_ident(self, name):
        return quote_ident(name)

    def quote_literal(self, value):
        return quote_literal(value)

    def _cursor(self):
        return self.conn.cursor()

    def _mogrify(self, sql, params):
        with self.conn.cursor() as cur:
            out = cur.mogrify(sql, params)
        return out.decode('utf-8', 'replace') if isinstance(out, bytes) else out

    def _begin(self):
        self.conn.autocommit = False

    def _commit(self):
        try:
            self.conn.commit()
        finally:
            self.conn.autocommit = True

    def _rollback(self):
        try:
            self.conn.rollback()
        except Exception:  # pylint: disable=broad-except
            pass
        finally:
            try:
                self.conn.autocommit = True
            except Exception:  # pylint: disable=broad-except
                pass

    def _read_server_version(self):
        self.version_num = int(self.conn.server_version)
        raw = self.fetch_value('SHOW server_version') or ''
        match = re.match(r'(\d+(?:\.\d+)*)', raw)
        self.version = match.group(1) if match else raw
        self.is_superuser = self.fetch_value("SELECT rolsuper FROM pg_roles WHERE rolname = current_user")
