# -*- coding: utf-8 -*-
# Copyright: dbops.admin contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Private to dbops.admin: what every engine object shares.

Every statement goes through ``execute()``: it is recorded (secrets masked) in
``queries`` and, unless the engine is in check mode, run.  Reads that change
nothing use ``fetch_all()`` / ``fetch_one()`` / ``fetch_value()`` and are not recorded.
"""

from __future__ import annotations

import contextlib

from ansible_collections.dbops.admin.plugins.module_utils._errors import (
    MASK,
    DbError,
    driver_message,
    mask_secrets,
)


class Secret(str):
    """A bound parameter value that must never be shown: ``Secret('pw')``."""

    __slots__ = ()


class BaseEngine:
    """Connection, quoting, recording and error translation for one server."""

    name = None          # 'postgresql' | 'mysql'
    flavor = None        # 'postgresql' | 'mariadb' | 'mysql'
    default_port = None
    driver_errors = (Exception,)

    def __init__(self, conn, host=None, port=None, check_mode=False, secrets=()):
        self.conn = conn
        self.host = host
        self.port = port
        self.check_mode = check_mode
        self.queries = []
        # statements this session has sent (reads included): db_info takes its own out of rates
        self.statements_sent = 0
        self._secrets = set(s for s in secrets if s)
        self.version = None       # '15.4', '10.11.6'
        self.version_num = None   # 150004, 101106
        self._in_transaction = False
        self._read_server_version()

    # ---- secrets -----------------------------------------------------------------
    def add_secret(self, value):
        if value:
            self._secrets.add(str(value))

    def mask(self, text):
        return mask_secrets(text, self._secrets)

    # ---- quoting (one function per engine, implemented in the subclass) ------------
    def quote_ident(self, name):
        raise NotImplementedError

    def quote_qualified(self, *parts):
        return '.'.join(self.quote_ident(p) for p in parts if p is not None)

    def quote_literal(self, value):
        """Render a value as an SQL literal, for the few statements that take no parameters."""
        raise NotImplementedError

    # ---- running -------------------------------------------------------------------
    def render(self, sql, params=None):
        """The statement as a DBA reads it, with every secret replaced by the mask."""
        if params is None:
            return self.mask(sql)
        if isinstance(params, dict):
            shown = {k: (MASK if isinstance(v, Secret) else v) for k, v in params.items()}
        else:
            shown = [MASK if isinstance(v, Secret) else v for v in params]
        for value in (params.values() if isinstance(params, dict) else params):
            if isinstance(value, Secret):
                self.add_secret(str(value))
        return self.mask(self._mogrify(sql, shown))

    def _mogrify(self, sql, params):
        raise NotImplementedError

    def _cursor(self):
        raise NotImplementedError

    def execute(self, sql, params=None, operation=None, autocommit=False):
        """Record the statement and run it unless in check mode. Returns rowcount or None."""
        shown = self.render(sql, params)
        self.queries.append(shown)
        if self.check_mode:
            return None
        return self._run(sql, params, shown, operation, autocommit=autocommit)

    def execute_all(self, statements, operation=None):
        """Run a list of ``(sql, params)`` pairs or plain SQL strings through ``execute``."""
        for stmt in statements:
            if isinstance(stmt, (tuple, list)):
                self.execute(stmt[0], stmt[1] if len(stmt) > 1 else None, operation=operation)
            else:
                self.execute(stmt, operation=operation)

    def _run(self, sql, params, shown, operation, autocommit=False):
        try:
            with self._cursor() as cur:
                self.statements_sent += 1
                cur.execute(sql, params)
                return cur.rowcount
        except self.driver_errors as exc:
            if operation:
                raise DbError(operation, None, self.mask(driver_message(exc))) from None
            raise DbError('run', shown, self.mask(driver_message(exc))) from None

    def fetch_all(self, sql, params=None, operation='read the catalog'):
        """Run a read-only query (not recorded) and return a list of dicts."""
        try:
            with self._cursor() as cur:
                self.statements_sent += 1
                cur.execute(sql, params)
                if cur.description is None:
                    return []
                cols = [d[0] for d in cur.description]
                return [dict(zip(cols, row)) for row in cur.fetchall()]
        except self.driver_errors as exc:
            raise DbError(operation, None, self.mask(driver_message(exc))) from None

    def fetch_one(self, sql, params=None, operation='read the catalog'):
        rows = self.fetch_all(sql, params, operation)
        return rows[0] if rows else None

    def fetch_value(self, sql, params=None, operation='read the catalog'):
        row = self.fetch_one(sql, params, operation)
        if row is None:
            return None
        return next(iter(row.values()))

    @contextlib.contextmanager
    def transaction(self):
        """Group the statements inside into one transaction (a no-op where unsupported)."""
        if self._in_transaction or self.check_mode:
            yield
            return
        self._begin()
        self._in_transaction = True
        try:
            yield
        except BaseException:
            self._rollback()
            raise
        else:
            self._commit()
        finally:
            self._in_transaction = False

    def _begin(self):
        raise NotImplementedError

    def _commit(self):
        self.conn.commit()

    def _rollback(self):
        try:
            self.conn.rollback()
        except Exception:  # pylint: disable=broad-except
            pass

    def close(self):
        try:
            self.conn.close()
        except Exception:  # pylint: disable=broad-except
            pass

    def _read_server_version(self):
        raise NotImplementedError

    def describe(self):
        return {'engine': self.name, 'flavor': self.flavor, 'version': self.version,
                'version_num': self.version_num}
