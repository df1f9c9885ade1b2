# -*- coding: utf-8 -*-
# Copyright: dbops.admin contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Private to dbops.admin: the bounded wait of a MariaDB/MySQL backup for its global lock, and the
sessions that kept it waiting.

A backup takes ``FLUSH TABLES WITH READ LOCK`` (logical backups) or has mariadb-backup take the
backup lock (physical backups). A long statement (an UPDATE, an ALTER TABLE) or a session in
``LOCK TABLES`` keeps it waiting. The wait is bounded by ``DBOPS_BACKUP_LOCK_WAIT_SECONDS``
(environment of the module, default 120 seconds); when it runs out, the error names the sessions
that hold it up, from the process list, so the DBA knows which one to end.
"""

from __future__ import annotations

import os
import re

from ansible_collections.dbops.admin.plugins.module_utils._errors import MASK, DbError

ENV = 'DBOPS_BACKUP_LOCK_WAIT_SECONDS'
DEFAULT = 120
MAXIMUM = 365 * 24 * 3600
# characters of a session's statement shown in the error
QUERY_CHARS = 120
# sessions named at most
MAX_SESSIONS = 5

# the sessions of others that run a statement, longest first; those waiting for a lock themselves are queued
# behind the holder (or behind the backup), not holding it up. {own}: the backup's other sessions
RUNNING_SQL = (
    "SELECT ID AS id, USER AS user, HOST AS host, COMMAND AS command, TIME AS time, STATE AS state, "
    "LEFT(INFO, %d) AS info FROM information_schema.PROCESSLIST WHERE ID <> CONNECTION_ID(){own} "
    "AND COMMAND NOT IN ('Sleep', 'Daemon', 'Binlog Dump', 'Binlog Dump GTID', 'Killed') "
    "AND USER NOT IN ('system user', 'event_scheduler') "
    "AND COALESCE(STATE, '') NOT LIKE 'Waiting for %%lock%%' AND COALESCE(STATE, '') <> 'Waiting for table flush' "
    "ORDER BY TIME DESC, ID LIMIT %d" % (QUERY_CHARS + 1, MAX_SESSIONS))
# idle sessions of others: one of them may hold tables in LOCK TABLES (the process list does not say which)
IDLE_SQL = (
    "SELECT ID AS id, USER AS user, HOST AS host, COMMAND AS command, TIME AS time, STATE AS state, "
    "LEFT(INFO, %d) AS info FROM information_schema.PROCESSLIST WHERE ID <> CONNECTION_ID(){own} "
    "AND COMMAND = 'Sleep' AND USER NOT IN ('system user', 'event_scheduler') ORDER BY TIME DESC, ID LIMIT %d"
    % (QUERY_CHARS + 1, MAX_SESSIONS))


def _own(ids):
    """The SQL condition leaving out the backup's own other sessions (connection ids)."""
    ids = sorted(set(int(i) for i in ids or () if i is not None))
    return ' AND ID NOT IN (%s)' % ', '.join(str(i) for i in ids) if ids else ''


_SECRET_RES = (
    re.compile(r"(IDENTIFIED\s+(?:WITH\s+\S+\s+)?(?:BY|AS)\s+)('(?:[^'\\]|\\.|'')*'?|\"(?:[^\"\\]|\\.|\"\")*\"?)", re.I),
    re.compile(r"(PASSWORD\s*\(\s*)('(?:[^'\\]|\\.|'')*'?|\"(?:[^\"\\]|\\.|\"\")*\"?)", re.I),
    re.compile(r"(PASSWORD\s*(?:=|FOR\s+\S+\s*=)\s*)('(?:[^'\\]|\\.|'')*'?|\"(?:[^\"\\]|\\.|\"\")*\"?)", re.I),
)


def lock_wait_seconds(environ=None):
    """The bound of the wait, from DBOPS_BACKUP_LOCK_WAIT_SECONDS (whole seconds, 1 to a year); default 120."""
    raw = (os.environ if environ is None else environ).get(ENV)
    if raw is None or not str(raw).strip():
        return DEFAULT
    text = str(raw).strip()
    if not re.match(r'^[0-9]+$', text) or not 1 <= int(text) <= MAXIMUM:
        raise DbError('use the environment setting', ENV, '%r is not a number of seconds from 1 to %d: set it to a '
                      'whole number of seconds (e.g. 300) or unset it for the default of %d' % (raw, MAXIMUM, DEFAULT))
    return int(text)


def mask_statement(text):
    """A statement with the passwords it spells out (IDENTIFIED BY, PASSWORD(...)) masked."""
    if text is None:
        return None
    text = str(text)
    for regex in _SECRET_RES:
        text = regex.sub(lambda m: m.group(1) + "'" + MASK + "'", text)
    return text


def describe_session(row):
    """``session 12 (app@10.0.0.5, Query for 340 s, Updating): UPDATE t SET ...`` with the statement cut."""
    info = mask_statement(row.get('info'))
    if info is not None:
        info = ' '.join(info.split())
        if len(info) > QUERY_CHARS:
            info = info[:QUERY_CHARS] + '...'
    host = str(row.get('host') or '').rsplit(':', 1)[0]
    who = '%s@%s' % (row.get('user'), host) if host else str(row.get('user'))
    what = '%s for %s s' % (row.get('command'), row.get('time'))
    if row.get('state'):
        what += ', ' + str(row['state'])
    return 'session %s (%s, %s)%s' % (row.get('id'), who, what, ': ' + info if info else '')


def holders_text(running, idle):
    """The sentence naming the sessions that held the lock up (running statements first, else the idle ones)."""
    if running:
        return ('sessions running statements that hold it up, longest first: %s. End the one to blame '
                '(KILL <id>) or wait for it, and run again' % '; '.join(describe_session(r) for r in running))
    if idle:
        return ('no other session runs a statement; an idle session holding tables in LOCK TABLES keeps it waiting. '
                'Idle sessions, longest first: %s. End the one that holds the tables (UNLOCK TABLES or KILL <id>) and '
                'run again' % '; '.join(describe_session(r) for r in idle))
    return 'no other session is connected any more: run again'


def lock_wait_error(engine, operation, target, detail, seconds, own_sessions=()):
    """The DbError of a backup that gave up waiting for its lock after ``seconds``, naming the holders
    (read on ``engine``'s session, leaving out the connection ids ``own_sessions`` of the backup; a
    failure to read them says so)."""
    own = _own(own_sessions)
    try:
        running = engine.fetch_all(RUNNING_SQL.replace('{own}', own))
        idle = [] if running else engine.fetch_all(IDLE_SQL.replace('{own}', own))
        holders = holders_text(running, idle)
    except DbError as exc:
        holders = 'the process list could not be read (%s): look with SHOW PROCESSLIST' % exc.detail
    return DbError(operation, target, '%s; the backup waited %d seconds (%s) for its global lock; %s; nothing was '
                   'published' % (detail, seconds, ENV, holders))
