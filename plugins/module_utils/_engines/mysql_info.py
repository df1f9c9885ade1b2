# -*- coding: utf-8 -*-
# Copyright: dbops.admin contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Private to dbops.admin: Mysql engine, info area (mixed into the MysqlEngine class).

Read-only.  Definitions follow mysqld_exporter: cache hit ratio is
1 - Innodb_buffer_pool_reads / Innodb_buffer_pool_read_requests, queries are Questions,
transactions are Com_commit + Com_rollback.  Slow queries come from the best source the
server offers: performance_schema digests, the slow log table, or the Slow_queries counter
(which counts statements slower than the server's own long_query_time).
"""

from __future__ import annotations

from ansible_collections.dbops.admin.plugins.module_utils._errors import DbError
from ansible_collections.dbops.admin.plugins.module_utils._statement_text import mask_statement_secrets

TOP_STATEMENTS = 5
QUERY_TEXT_CHARS = 200
SLOW_LOG_WINDOW_MINUTES = 60
# Threads that are not client connections.
_SYSTEM_USERS = ('system user', 'event_scheduler')


def _int(value):
    try:
        return int(float(value))
    except (TypeError, ValueError):
        return None


def _short(text):
    if isinstance(text, bytes):
        text = text.decode('utf-8', 'replace')
    text = ' '.join((text or '').split())
    return text if len(text) <= QUERY_TEXT_CHARS else text[:QUERY_TEXT_CHARS - 3] + '...'


class MysqlInfo:
    """info methods of the Mysql engine; self is the connected engine."""

    def _global_status(self):
        rows = self.fetch_all('SHOW GLOBAL STATUS', operation='read the global status')
        return {r['Variable_name'].lower(): r['Value'] for r in rows}

    def _global_variables(self):
        rows = self.fetch_all('SHOW GLOBAL VARIABLES', operation='read the global variables')
        return {r['Variable_name'].lower(): r['Value'] for r in rows}

    # ---- server, settings, databases -------------------------------------------------
    def info_server(self):
        server = self.describe()
        server['uptime_seconds'] = _int(self._global_status().get('uptime'))
        server['version_string'] = getattr(self, 'version_string', None)
        return server

    def info_settings(self):
        return dict(sorted(self._global_variables().items()))

    def info_databases(self):
        self.fresh_table_statistics()
        rows = self.fetch_all(
            'SELECT s.SCHEMA_NAME AS name, SUM(t.DATA_LENGTH + t.INDEX_LENGTH) AS size_bytes '
            'FROM information_schema.SCHEMATA s LEFT JOIN information_schema.TABLES t '
            'ON t.TABLE_SCHEMA = s.SCHEMA_NAME '
            "WHERE s.SCHEMA_NAME NOT IN ('information_schema', 'performance_schema') "
            'GROUP BY s.SCHEMA_NAME ORDER BY s.SCHEMA_NAME', operation='list databases')
        return [{'name': r['name'], 'size_bytes': _int(r['size_bytes']) or 0} for r in rows]

    def info_data_directory(self):
        path = self.fetch_value('SELECT @@GLOBAL.datadir')
        # the server reports it with a trailing slash ('/var/lib/mysql/'); show it as a DBA writes it
        return path.rstrip('/') or '/' if path else path

    # ---- metrics ----------------------------------------------------------------------
    def info_connections(self):
        status = self._global_status()
        rows = self.fetch_all('SELECT USER, COMMAND, STATE FROM information_schema.PROCESSLIST',
                              operation='read the process list')
        clients = [r for r in rows if (r['USER'] or '') not in _SYSTEM_USERS and r['COMMAND'] != 'Daemon']
        idle = sum(1 for r in clients if r['COMMAND'] == 'Sleep')
        total = _int(status.get('threads_connected')) or len(clients)
        maximum = _int(self.fetch_value('SELECT @@GLOBAL.max_connections'))
        return {'active': max(total - idle, 0), 'idle': idle, 'total': total, 'max': maximum,
                'max_used': _int(status.get('max_used_connections')),
                'used_ratio': float(total) / maximum if maximum else None}  # rounded after the alerts

    def info_cache_hit_ratio(self):
        status = self._global_status()
        requests = _int(status.get('innodb_buffer_pool_read_requests')) or 0
        reads = _int(status.get('innodb_buffer_pool_reads')) or 0
        return round(1.0 - float(reads) / requests, 4) if requests > 0 else None

    def info_locks(self):
        status = self._global_status()
        waits = self.fetch_value(
            "SELECT COUNT(*) FROM information_schema.PROCESSLIST WHERE STATE LIKE 'Waiting for%lock%'")
        row_waits = _int(status.get('innodb_row_lock_current_waits')) or 0
        metadata_waits = _int(waits) or 0
        return {'waiting': row_waits + metadata_waits, 'row_lock_current_waits': row_waits,
                'metadata_lock_waits': metadata_waits,
                'row_lock_waits_total': _int(status.get('innodb_row_lock_waits')),
                'table_locks_waited': _int(status.get('table_locks_waited'))}

    def info_deadlocks(self):
        status = self._global_status()
        if 'innodb_deadlocks' in status:
            return _int(status['innodb_deadlocks'])
        try:
            return _int(self.fetch_value(
                "SELECT COUNT FROM information_schema.INNODB_METRICS WHERE NAME = 'lock_deadlocks'")) or 0
        except DbError:
            return None

    def info_longest_transaction_seconds(self):
        try:
            value = self.fetch_value(
                'SELECT COALESCE(MAX(TIMESTAMPDIFF(MICROSECOND, trx_started, NOW(6))), 0) / 1000000 '
                'FROM information_schema.INNODB_TRX WHERE trx_mysql_thread_id <> CONNECTION_ID()')
        except DbError:
            return None  # needs the PROCESS privilege
        return round(float(value or 0), 3)

    def _slow_query_source(self):
        variables = self._global_variables()
        if variables.get('performance_schema', 'OFF').upper() == 'ON':
            return 'performance_schema', variables
        outputs = variables.get('log_output', '').upper().split(',')
        if variables.get('slow_query_log', 'OFF').upper() == 'ON' and 'TABLE' in outputs:
            return 'slow_log', variables
        return 'status:Slow_queries', variables

    def info_counters(self, slow_query_ms):
        status = self._global_status()
        # own_queries: Questions counts this session's statements too (Com_commit does not)
        counters = {'queries': _int(status.get('questions')), 'own_queries': self.statements_sent,
                    'transactions': (_int(status.get('com_commit')) or 0) + (_int(status.get('com_rollback')) or 0),
                    'slow': None}
        source, _variables = self._slow_query_source()
        try:
            if source == 'performance_schema':
                counters['slow'] = _int(self.fetch_value(
                    'SELECT COALESCE(SUM(COUNT_STAR), 0) FROM performance_schema.events_statements_summary_by_digest '
                    'WHERE AVG_TIMER_WAIT >= %s', (int(slow_query_ms) * 1000000000,)))
            elif source == 'slow_log':
                counters['slow'] = _int(self.fetch_value(
                    'SELECT COUNT(*) FROM mysql.slow_log WHERE query_time >= SEC_TO_TIME(%s)',
                    (slow_query_ms / 1000.0,)))
            else:
                counters['slow'] = _int(status.get('slow_queries'))
        except DbError:
            pass
        return counters

    def info_slow_queries(self, slow_query_ms):
        source, variables = self._slow_query_source()
        status = self._global_status()
        uptime = _int(status.get('uptime')) or 0
        result = {'count': None, 'per_minute': None, 'threshold_ms': slow_query_ms, 'top': [], 'source': source}
        try:
            if source == 'performance_schema':
                picoseconds = int(slow_query_ms) * 1000000000
                count = _int(self.fetch_value(
                    'SELECT COALESCE(SUM(COUNT_STAR), 0) FROM performance_schema.events_statements_summary_by_digest '
                    'WHERE AVG_TIMER_WAIT >= %s', (picoseconds,))) or 0
                top = self.fetch_all(
                    'SELECT DIGEST_TEXT AS query, COUNT_STAR AS calls, AVG_TIMER_WAIT / 1e9 AS mean_ms, '
                    'MAX_TIMER_WAIT / 1e9 AS max_ms, SUM_TIMER_WAIT / 1e9 AS total_ms '
                    'FROM performance_schema.events_statements_summary_by_digest WHERE AVG_TIMER_WAIT >= %s '
                    'ORDER BY AVG_TIMER_WAIT DESC LIMIT %s', (picoseconds, TOP_STATEMENTS))
                window = uptime
            elif source == 'slow_log':
                seconds = slow_query_ms / 1000.0
                count = _int(self.fetch_value(
                    'SELECT COUNT(*) FROM mysql.slow_log WHERE query_time >= SEC_TO_TIME(%s) '
                    'AND start_time >= NOW() - INTERVAL %s MINUTE', (seconds, SLOW_LOG_WINDOW_MINUTES))) or 0
                top = self.fetch_all(
                    'SELECT sql_text AS query, COUNT(*) AS calls, AVG(TIME_TO_SEC(query_time)) * 1000 AS mean_ms, '
                    'MAX(TIME_TO_SEC(query_time)) * 1000 AS max_ms, SUM(TIME_TO_SEC(query_time)) * 1000 AS total_ms '
                    'FROM mysql.slow_log WHERE query_time >= SEC_TO_TIME(%s) '
                    'AND start_time >= NOW() - INTERVAL %s MINUTE GROUP BY sql_text '
                    'ORDER BY mean_ms DESC LIMIT %s', (seconds, SLOW_LOG_WINDOW_MINUTES, TOP_STATEMENTS))
                window = min(uptime, SLOW_LOG_WINDOW_MINUTES * 60)
                result['long_query_time_ms'] = round(float(variables.get('long_query_time', 0)) * 1000, 3)
            else:
                # The counter uses the server's long_query_time, not slow_query_ms: say so.
                count = _int(status.get('slow_queries')) or 0
                top = []
                window = uptime
                result['threshold_ms'] = round(float(variables.get('long_query_time', 10)) * 1000, 3)
                result['requested_threshold_ms'] = slow_query_ms
        except DbError as exc:
            result['reason'] = str(exc)
            result['source'] = 'unavailable'
            return result
        minutes = max(window / 60.0, 1.0)
        result.update({
            'count': count,
            'per_minute': count / minutes,  # rounded after the alerts
            'window_seconds': window,
            # the slow log keeps the text as sent (IDENTIFIED BY '...'): mask the literals of such statements
            'top': [{'query': self.mask(_short(mask_statement_secrets(t['query'], 'mysql'))), 'calls': _int(t['calls']),
                     'mean_ms': round(float(t['mean_ms'] or 0), 3), 'max_ms': round(float(t['max_ms'] or 0), 3),
                     'total_ms': round(float(t['total_ms'] or 0), 3)} for t in top],
        })
        return result

    # ---- replication --------------------------------------------------------------------
    def _replica_channels(self):
        if self.is_mariadb:
            statement = 'SHOW ALL SLAVES STATUS'
        elif self.version_num >= 80022:
            statement = 'SHOW REPLICA STATUS'
        else:
            statement = 'SHOW SLAVE STATUS'
        return self.fetch_all(statement, operation='read the replica status')

    def info_replication(self):
        try:
            rows = self._replica_channels()
        except DbError as exc:
            # SHOW ALL SLAVES STATUS needs SUPER / REPLICA MONITOR: say so, do not fail the whole report
            return {'role': 'unknown', 'lag_seconds': None, 'lag_bytes': None, 'replicas': [],
                    'reason': self.mask(str(exc))}
        channels = []
        for row in rows:
            def col(*names, _row=row):
                return next((_row[n] for n in names if n in _row), None)
            read_file = col('Master_Log_File', 'Source_Log_File')
            exec_file = col('Relay_Master_Log_File', 'Relay_Source_Log_File')
            read_pos = _int(col('Read_Master_Log_Pos', 'Read_Source_Log_Pos'))
            exec_pos = _int(col('Exec_Master_Log_Pos', 'Exec_Source_Log_Pos'))
            io_running = col('Slave_IO_Running', 'Replica_IO_Running')
            sql_running = col('Slave_SQL_Running', 'Replica_SQL_Running')
            channels.append({
                'name': col('Connection_name', 'Channel_Name') or '',
                'source_host': col('Master_Host', 'Source_Host'),
                'io_running': io_running == 'Yes',
                'io_state': io_running,  # Yes, No or Connecting (a broken link to the source)
                'sql_running': sql_running == 'Yes',
                'lag_seconds': _int(col('Seconds_Behind_Master', 'Seconds_Behind_Source')),
                'lag_bytes': (read_pos - exec_pos) if read_file == exec_file and None not in (read_pos, exec_pos)
                else None,
                # Last_Error is the SQL thread's; the I/O thread's (cannot connect, authentication,
                # binary log gone on the source) is only in Last_IO_Error
                'last_error': self.mask(col('Last_Error')) or None,
                'last_io_error': self.mask(col('Last_IO_Error')) or None,
                'last_io_errno': _int(col('Last_IO_Errno')) or None,
                'last_sql_error': self.mask(col('Last_SQL_Error', 'Last_Error')) or None,
                'last_sql_errno': _int(col('Last_SQL_Errno', 'Last_Errno')) or None,
            })
        dumps = self.fetch_all(
            "SELECT HOST AS host, USER AS user, STATE AS state FROM information_schema.PROCESSLIST "
            "WHERE COMMAND LIKE 'Binlog Dump%'")
        replicas = [{'host': d['host'], 'user': d['user'], 'state': d['state']} for d in dumps]
        if channels:
            lags = [c['lag_seconds'] for c in channels if c['lag_seconds'] is not None]
            lag_bytes = [c['lag_bytes'] for c in channels if c['lag_bytes'] is not None]
            return {'role': 'replica', 'lag_seconds': max(lags) if lags else None,
                    'lag_bytes': max(lag_bytes) if lag_bytes else None,
                    'running': all(c['io_running'] and c['sql_running'] for c in channels),
                    'channels': channels, 'replicas': replicas}
        return {'role': 'primary' if replicas else 'standalone', 'lag_seconds': None, 'lag_bytes': None,
                'replicas': replicas}
