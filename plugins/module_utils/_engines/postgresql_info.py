# -*- coding: utf-8 -*-
# Copyright: dbops.admin contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Private to dbops.admin: Postgres engine, info area (mixed into the PostgresEngine class).

Read-only.  Definitions follow postgres_exporter: cache hit ratio from pg_stat_database
(blks_hit / (blks_hit + blks_read)), transactions from xact_commit + xact_rollback, and a
standby whose received WAL is all replayed is not lagging, however old its last replayed
transaction is (an idle primary sends nothing).
"""

from __future__ import annotations

from ansible_collections.dbops.admin.plugins.module_utils import _units
from ansible_collections.dbops.admin.plugins.module_utils._errors import DbError
from ansible_collections.dbops.admin.plugins.module_utils._statement_text import mask_statement_secrets

TOP_STATEMENTS = 5
QUERY_TEXT_CHARS = 200


def _num(value, digits=None):
    if value is None:
        return None
    value = float(value)
    if digits is not None:
        return round(value, digits)
    return int(value) if value == int(value) else value


def _short(text):
    text = ' '.join((text or '').split())
    return text if len(text) <= QUERY_TEXT_CHARS else text[:QUERY_TEXT_CHARS - 3] + '...'


class PostgresInfo:
    """info methods of the Postgres engine; self is the connected engine."""

    # ---- server, settings, databases -------------------------------------------------
    def info_server(self):
        uptime = self.fetch_value('SELECT EXTRACT(EPOCH FROM now() - pg_postmaster_start_time())')
        server = self.describe()
        server['uptime_seconds'] = int(float(uptime)) if uptime is not None else None
        server['in_recovery'] = bool(self.fetch_value('SELECT pg_is_in_recovery()'))
        return server

    def info_settings(self):
        """Every setting as the server shows it ('64MB', 'on', 'replica')."""
        rows = self.fetch_all('SELECT name, setting, unit, vartype FROM pg_settings ORDER BY name')
        settings = {}
        for row in rows:
            value = row['setting']
            if row['vartype'] in ('integer', 'real') and row['unit'] and value is not None:
                try:
                    value = _units.format_quantity(_units.normalize(value, row['vartype'], row['unit']), row['unit'])
                except ValueError:
                    pass
            settings[row['name']] = value
        return settings

    def info_databases(self):
        rows = self.fetch_all(
            "SELECT datname AS name, CASE WHEN has_database_privilege(oid, 'CONNECT') "
            "THEN pg_database_size(oid) END AS size_bytes "
            "FROM pg_database WHERE NOT datistemplate AND datallowconn ORDER BY datname",
            operation='list databases')
        return [{'name': r['name'], 'size_bytes': _num(r['size_bytes'])} for r in rows]

    def info_data_directory(self):
        try:
            return self.fetch_value("SELECT current_setting('data_directory')")
        except DbError:
            return None  # needs superuser or pg_read_all_settings

    # ---- metrics ----------------------------------------------------------------------
    def info_connections(self):
        row = self.fetch_one(
            "SELECT count(*) FILTER (WHERE state = 'active') AS active, "
            "count(*) FILTER (WHERE state = 'idle') AS idle, "
            "count(*) FILTER (WHERE state LIKE 'idle in transaction%') AS idle_in_transaction, "
            "count(*) AS total, current_setting('max_connections')::int AS max, "
            "current_setting('superuser_reserved_connections')::int AS reserved "
            "FROM pg_stat_activity WHERE backend_type = 'client backend'", operation='count connections')
        total, maximum = int(row['total']), int(row['max'])
        return {'active': int(row['active']), 'idle': int(row['idle']),
                'idle_in_transaction': int(row['idle_in_transaction']), 'total': total, 'max': maximum,
                'superuser_reserved': int(row['reserved']),
                'used_ratio': float(total) / maximum if maximum else None}  # rounded after the alerts

    def info_cache_hit_ratio(self):
        row = self.fetch_one('SELECT sum(blks_hit) AS hit, sum(blks_read) AS read FROM pg_stat_database')
        hit, read = float(row['hit'] or 0), float(row['read'] or 0)
        return round(hit / (hit + read), 4) if hit + read > 0 else None

    def info_locks(self):
        row = self.fetch_one(
            "SELECT count(*) FILTER (WHERE NOT granted) AS waiting, count(*) FILTER (WHERE granted) AS granted, "
            "count(DISTINCT pid) FILTER (WHERE NOT granted) AS waiting_sessions FROM pg_locks")
        return {'waiting': int(row['waiting']), 'granted': int(row['granted']),
                'waiting_sessions': int(row['waiting_sessions'])}

    def info_deadlocks(self):
        return _num(self.fetch_value('SELECT COALESCE(sum(deadlocks), 0) FROM pg_stat_database')) or 0

    def info_longest_transaction_seconds(self):
        value = self.fetch_value(
            "SELECT COALESCE(EXTRACT(EPOCH FROM max(clock_timestamp() - xact_start)), 0) FROM pg_stat_activity "
            "WHERE xact_start IS NOT NULL AND pid <> pg_backend_pid() AND backend_type = 'client backend'")
        return round(float(value or 0), 3)

    def _statements_view(self):
        """Schema-qualified pg_stat_statements of the connected database, or None with the reason."""
        schema = self.fetch_value(
            "SELECT n.nspname FROM pg_extension e JOIN pg_namespace n ON n.oid = e.extnamespace "
            "WHERE e.extname = 'pg_stat_statements'")
        if schema is None:
            return None, 'the pg_stat_statements extension is not created in database %s' % self.database
        self._statements_schema = schema
        return self.quote_qualified(schema, 'pg_stat_statements'), None

    def _time_columns(self):
        if self.version_num >= 130000:
            return 'mean_exec_time', 'max_exec_time', 'total_exec_time'
        return 'mean_time', 'max_time', 'total_time'

    def info_counters(self, slow_query_ms):
        """Monotonic counters for rate sampling: queries, transactions, slow queries."""
        # own_*: the statements of this session so far (each one a transaction in autocommit)
        counters = {'transactions': _num(self.fetch_value(
            'SELECT COALESCE(sum(xact_commit + xact_rollback), 0) FROM pg_stat_database')),
            'own_transactions': self.statements_sent, 'queries': None, 'slow': None}
        view, _reason = self._statements_view()
        if view:
            mean, _max, _total = self._time_columns()
            try:
                row = self.fetch_one('SELECT COALESCE(sum(calls), 0) AS calls, '
                                     'COALESCE(sum(calls) FILTER (WHERE %s >= %%s), 0) AS slow FROM %s'
                                     % (mean, view), (slow_query_ms,))
                counters['queries'] = _num(row['calls'])
                counters['own_queries'] = self.statements_sent
                counters['slow'] = _num(row['slow'])
            except DbError:
                pass
        return counters

    def info_slow_queries(self, slow_query_ms):
        """Slow statements: from pg_stat_statements when it is created here, else 'unavailable'."""
        # client sessions only: a walsender is 'active' for as long as it streams (START_REPLICATION),
        # and background workers are not queries anyone waits for
        running = self.fetch_value(
            "SELECT count(*) FROM pg_stat_activity WHERE state = 'active' AND pid <> pg_backend_pid() "
            "AND backend_type = 'client backend' "
            "AND clock_timestamp() - query_start >= make_interval(secs => %s / 1000.0)", (slow_query_ms,))
        result = {'count': None, 'per_minute': None, 'threshold_ms': slow_query_ms, 'top': [],
                  'source': 'unavailable', 'running': int(running or 0)}
        view, reason = self._statements_view()
        if not view:
            result['reason'] = reason
            return result
        mean, maximum, total = self._time_columns()
        try:
            row = self.fetch_one(
                'SELECT COALESCE(sum(calls), 0) AS slow FROM %s WHERE %s >= %%s' % (view, mean), (slow_query_ms,))
            top = self.fetch_all(
                'SELECT query, calls, %s AS mean_ms, %s AS max_ms, %s AS total_ms FROM %s WHERE %s >= %%s '
                'ORDER BY %s DESC LIMIT %d' % (mean, maximum, total, view, mean, mean, TOP_STATEMENTS),
                (slow_query_ms,))
        except DbError as exc:
            result['reason'] = str(exc)  # e.g. library not in shared_preload_libraries
            return result
        since = None
        if self.version_num >= 140000:
            since = self.fetch_value('SELECT EXTRACT(EPOCH FROM now() - stats_reset) FROM %s'
                                     % self.quote_qualified(self._statements_schema, 'pg_stat_statements_info'))
        if since is None:
            since = self.fetch_value('SELECT EXTRACT(EPOCH FROM now() - pg_postmaster_start_time())')
        minutes = max(float(since or 0) / 60.0, 1.0)
        count = _num(row['slow']) or 0
        result.update({
            'source': 'pg_stat_statements',
            'count': count,
            'per_minute': count / minutes,  # rounded after the alerts
            'window_seconds': int(float(since or 0)),
            # utility statements are kept verbatim (CREATE ROLE ... PASSWORD '...'): mask their literals
            'top': [{'query': self.mask(_short(mask_statement_secrets(t['query']))), 'calls': _num(t['calls']),
                     'mean_ms': _num(t['mean_ms'], 3), 'max_ms': _num(t['max_ms'], 3),
                     'total_ms': _num(t['total_ms'], 3)} for t in top],
        })
        return result

    # ---- replication --------------------------------------------------------------------
    def info_replication(self):
        if self.fetch_value('SELECT pg_is_in_recovery()'):
            # After a restart the WAL receiver reports the start of the segment it streams from as
            # received, which is behind what was already replayed: nothing received is left to replay,
            # so that is no lag (0), not a negative byte count or the age of the last replayed
            # transaction. Without a receive LSN (nothing streamed yet, archive-only standby) the bytes
            # behind cannot be computed and are null.
            row = self.fetch_one(
                'SELECT r.receive_lsn, r.replay_lsn, '
                'CASE WHEN r.receive_lsn <= r.replay_lsn THEN 0 '
                'ELSE EXTRACT(EPOCH FROM now() - pg_last_xact_replay_timestamp()) END AS lag_seconds, '
                # not GREATEST(diff, 0): GREATEST ignores a null and would turn "unknown" into 0
                'CASE WHEN r.receive_lsn <= r.replay_lsn THEN 0 '
                'ELSE pg_wal_lsn_diff(r.receive_lsn, r.replay_lsn) END AS lag_bytes '
                'FROM (SELECT pg_last_wal_receive_lsn() AS receive_lsn, '
                'pg_last_wal_replay_lsn() AS replay_lsn) r')
            receiver = self.fetch_one('SELECT status, sender_host, sender_port FROM pg_stat_wal_receiver')
            lag = row['lag_seconds']
            result = {'role': 'replica',
                      'lag_seconds': max(float(lag), 0.0) if lag is not None else None,  # rounded after the alerts
                      'lag_bytes': _num(row['lag_bytes']),
                      'receive_lsn': row['receive_lsn'], 'replay_lsn': row['replay_lsn'],
                      'receiver': receiver, 'replicas': [], 'running': True}
            if receiver is None:
                # no WAL receiver: a standby fed from an archive only is fine, one meant to stream is not
                try:
                    conninfo = self.fetch_value("SELECT current_setting('primary_conninfo')")
                except DbError:
                    conninfo = None  # the setting is hidden from this login: cannot tell
                    result['running'] = None
                if conninfo:
                    # "received = replayed" means nothing arrives, not that nothing is behind
                    # and the LSN it reports as received is only where it would start: bytes behind unknown
                    result.update(running=False, lag_seconds=None, lag_bytes=None,
                                  stopped_reason='no WAL receiver streams from the primary set in primary_conninfo')
            return result
        rows = self.fetch_all(
            'SELECT application_name AS name, host(client_addr) AS client_addr, state, sync_state, '
            'pg_wal_lsn_diff(pg_current_wal_lsn(), replay_lsn) AS lag_bytes, '
            'CASE WHEN replay_lsn = sent_lsn AND sent_lsn = pg_current_wal_lsn() THEN 0 '
            'ELSE EXTRACT(EPOCH FROM replay_lag) END AS lag_seconds, '
            "state = 'backup' OR replay_lsn IS NULL AS wal_only "
            'FROM pg_stat_replication ORDER BY application_name')
        # A standby reports its replay position as soon as it streams. A walsender in state 'backup' (a base
        # backup) or one that never reports a replay position (the WAL stream of pg_basebackup, pg_receivewal,
        # Barman) replays nothing: it is no replica, and a server under backup is not a primary.
        replicas = [{'name': r['name'], 'client_addr': r['client_addr'], 'state': r['state'],
                     'sync_state': r['sync_state'], 'lag_bytes': _num(r['lag_bytes']),
                     'lag_seconds': _num(r['lag_seconds'])} for r in rows if not r['wal_only']]
        wal_clients = [{'name': r['name'], 'client_addr': r['client_addr'], 'state': r['state']}
                       for r in rows if r['wal_only']]
        slots = self.fetch_all(
            'SELECT slot_name AS name, slot_type AS type, active, '
            'pg_wal_lsn_diff(pg_current_wal_lsn(), restart_lsn) AS retained_bytes FROM pg_replication_slots '
            'ORDER BY slot_name')
        lags = [r['lag_seconds'] for r in replicas if r['lag_seconds'] is not None]
        lag_bytes = [r['lag_bytes'] for r in replicas if r['lag_bytes'] is not None]
        slots = [{'name': s['name'], 'type': s['type'], 'active': s['active'],
                  'retained_bytes': _num(s['retained_bytes'])} for s in slots]
        # A physical slot that holds WAL (restart_lsn set) with nothing connected is a standby that is gone:
        # without its walsender the primary looked standalone, while the slot keeps WAL until the disk fills.
        orphans = [s for s in slots if s['type'] == 'physical' and not s['active'] and s['retained_bytes'] is not None]
        # a replica that has not reported a replay position yet has no lag to compute: null, not 0
        result = {'role': 'primary' if replicas or orphans else 'standalone',
                  'lag_seconds': max(lags) if lags else None,
                  'lag_bytes': max(lag_bytes) if lag_bytes else None,
                  'replicas': replicas,
                  'wal_clients': wal_clients,
                  'slots': slots}
        if orphans:
            result.update(running=False, stopped_reason='; '.join(
                'physical replication slot %s has no standby connected and retains %s bytes of WAL'
                % (s['name'], s['retained_bytes']) for s in orphans))
        return result
