# -*- coding: utf-8 -*-
# Copyright: dbops.admin contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations


class ModuleDocFragment:
    """Connection options shared by every dbops.admin module."""

    DOCUMENTATION = r'''
options:
  engine:
    description:
      - The database engine to talk to.
      - V(mariadb) is an alias of V(mysql); the flavour (MariaDB or MySQL) is read from the server itself.
    type: str
    required: true
    choices: [postgresql, mysql, mariadb]
    aliases: [db_engine]
  login_host:
    description:
      - Host name or address of the server.
      - On PostgreSQL falls back to E(PGHOST), then to the local socket; on MySQL to V(localhost) or C(~/.my.cnf).
    type: str
    aliases: [host]
  login_port:
    description:
      - TCP port of the server. Defaults to V(5432) (or E(PGPORT)) for PostgreSQL and V(3306) for MySQL/MariaDB.
    type: int
    aliases: [port]
  login_user:
    description:
      - User to connect as. PostgreSQL falls back to E(PGUSER) then the OS user; MySQL to C(~/.my.cnf) then V(root).
    type: str
    aliases: [login]
  login_password:
    description:
      - Password of O(login_user). Never logged or returned.
      - PostgreSQL falls back to E(PGPASSWORD) and C(~/.pgpass); MySQL to C(~/.my.cnf).
    type: str
  login_db:
    description:
      - Database to connect to. Defaults to V(postgres) on PostgreSQL (or E(PGDATABASE)) and to none on MySQL.
    type: str
    aliases: [login_database]
  login_unix_socket:
    description:
      - Path of the server's Unix socket (MySQL) or of the directory holding it (PostgreSQL). Takes precedence over O(login_host).
      - The other form (a directory for MySQL, the socket file for PostgreSQL) fails before connecting, saying which to give.
    type: str
  connect_timeout:
    description:
      - Seconds to wait for the connection, the server's greeting and the login included (a port that accepts
        and never answers fails after this time). Statements themselves are not bounded by it. At least V(1).
    type: int
    default: 10
  ssl_mode:
    description:
      - TLS requirement, with PostgreSQL's names. On MySQL V(require) and stricter turn TLS on, V(verify-ca) checks
        the certificate (against O(ssl_ca), else the system's CAs) and V(verify-full) the host name too; V(disable)
        turns TLS off. Without O(ssl_mode), O(ssl_ca) alone means V(verify-ca) on MySQL.
    type: str
    choices: [disable, allow, prefer, require, verify-ca, verify-full]
  ssl_ca:
    description:
      - CA certificate file used to verify the server. A file that is missing or unreadable fails before connecting.
    type: path
  ssl_cert:
    description:
      - Client certificate file.
    type: path
  ssl_key:
    description:
      - Client private key file, used with O(ssl_cert) (given alone, it fails before connecting).
    type: path
requirements:
  - psycopg2 (C(psycopg2-binary)) for PostgreSQL
  - PyMySQL for MySQL and MariaDB
notes:
  - All modules of this collection are in the action group C(dbops.admin.db), so a play can set the connection once
    with C(module_defaults) for C(group/dbops.admin.db).
  - Returned C(queries) show every secret as C(********).
'''
