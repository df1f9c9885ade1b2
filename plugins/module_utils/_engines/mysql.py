# -*- coding: utf-8 -*-
# Copyright: dbops.admin contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Private to dbops.admin: the MySQL-family engine (PyMySQL).

MariaDB and MySQL 8 are one class; ``self.flavor`` ('mariadb' | 'mysql') is read from
the server at connect, and every flavour difference is decided here or in the area
mixins (``mysql_<area>.py``), never in a module.
"""

from __future__ import annotations

import re

from ansible_collections.dbops.admin.plugins.module_utils._engines._base import BaseEngine
from ansible_collections.dbops.admin.plugins.module_utils._engines.mysql_advisor import MysqlAdvisor
from ansible_collections.dbops.admin.plugins.module_utils._engines.mysql_backup import MysqlBackup
from ansible_collections.dbops.admin.plugins.module_utils._engines.mysql_databases import MysqlDatabases
from ansible_collections.dbops.admin.plugins.module_utils._engines.mysql_indexes import MysqlIndexes
from ansible_collections.dbops.admin.plugins.module_utils._engines.mysql_info import MysqlInfo
from ansible_collections.dbops.admin.plugins.module_utils._engines.mysql_maintenance import MysqlMaintenance
from ansible_collections.dbops.admin.plugins.module_utils._engines.mysql_matview import MysqlMatview
from ansible_collections.dbops.admin.plugins.module_utils._engines.mysql_settings import MysqlSettings
from ansible_collections.dbops.admin.plugins.module_utils._engines.mysql_users import MysqlUsers
from ansible_collections.dbops.admin.plugins.module_utils._errors import DbError

try:
    import pymysql
    HAS_DRIVER = True
    DRIVER_IMPORT_ERROR = None
except ImportError as _exc:  # pragma: no cover - depends on the host
    pymysql = None
    HAS_DRIVER = False
    DRIVER_IMPORT_ERROR = _exc

DRIVER_PACKAGE = 'PyMySQL (pip) or python3-pymysql (apt/dnf)'
MAX_IDENTIFIER_CHARS = 64


def quote_ident(name):
    """Quote one MySQL/MariaDB identifier with backticks."""
    if not isinstance(name, str) or name == '':
        raise DbError('use identifier', repr(name), 'an identifier must be a non-empty string')
    if '\x00' in name:
        raise DbError('use identifier', repr(name), 'an identifier cannot contain a NUL character')
    if len(name) > MAX_IDENTIFIER_CHARS:
        raise DbError('use identifier', repr(name),
                      'MySQL/MariaDB identifiers are limited to %d characters' % MAX_IDENTIFIER_CHARS)
    if name.endswith(' '):
        raise DbError('use identifier', repr(name), 'MySQL/MariaDB identifiers cannot end with a space')
    return '`' + name.replace('`', '``') + '`'


def quote_literal(value):
    """Render a Python value as a MySQL literal (NO_BACKSLASH_ESCAPES not assumed)."""
    if value is None:
        return 'NULL'
    if isinstance(value, bool):
        return '1' if value else '0'
    if isinstance(value, (int, float)):
        return repr(value)
    text = str(value)
    return "'" + text.replace('\\', '\\\\').replace("'", "''").replace('\x00', '\\0') + "'"


class MysqlEngine(MysqlSettings, MysqlInfo, MysqlUsers, MysqlDatabases, MysqlIndexes,
                  MysqlMaintenance, MysqlMatview, MysqlAdvisor, MysqlBackup, BaseEngine):
    """A connected MySQL or MariaDB server."""

    name = 'mysql'
    default_port = 3306

    def __init__(self, conn, **kwargs):
        self.driver_errors = (pymysql.Error,)
        super().__init__(conn, **kwargs)

    @property
    def is_mariadb(self):
        return self.flavor == 'mariadb'

    def max_connection_limit(self):
        """The largest MAX_USER_CONNECTIONS the server's grammar takes (MariaDB: a signed 32-bit number;
        MySQL 8: an unsigned one)."""
        return 2147483647 if self.is_mariadb else 4294967295

    def quote_ident(self, name):
        return quote_ident(name)

    def quote_literal(self, value):
        return quote_literal(value)

    def _cursor(self):
        return self.conn.cursor()

    def _mogrify(self, sql, params):
        with self.conn.cursor() as cur:
            return cur.mogrify(sql, params)

    def _begin(self):
        self.conn.begin()

    def fresh_table_statistics(self):
        """MySQL 8 answers the size and row columns of INFORMATION_SCHEMA.TABLES from a cache that is
        refreshed after information_schema_stats_expiry (24 hours by default); this session reads them
        from the storage engine instead, as MariaDB does. Once per session; a server without the
        variable (MariaDB, MySQL before 8.0.3) is left alone."""
        if self.flavor != 'mysql' or getattr(self, '_fresh_table_statistics', False):
            return
        self._fresh_table_statistics = True
        try:
            self.fetch_all('SET SESSION information_schema_stats_expiry = 0')
        except DbError:
            pass

    def _read_server_version(self):
        raw = self.fetch_value('SELECT VERSION()') or ''
        self.flavor = 'mariadb' if 'mariadb' in raw.lower() else 'mysql'
        match = re.match(r'(\d+)\.(\d+)\.(\d+)', raw)
        if match:
            major, minor, patch = (int(x) for x in match.groups())
            self.version = '%d.%d.%d' % (major, minor, patch)
            self.version_num = major * 10000 + minor * 100 + patch
        else:
            self.version = raw
            self.version_num = 0
        self.version_string = raw
