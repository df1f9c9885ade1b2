# -*- coding: utf-8 -*-
"""db_info's replica status on MySQL 8 (SHOW REPLICA STATUS column names), against a fake server."""

from __future__ import annotations

from ansible_collections.dbops.admin.plugins.module_utils import _alerts
from ansible_collections.dbops.admin.plugins.module_utils._engines.mysql_info import MysqlInfo

MYSQL8_BROKEN_IO = {
    'Channel_Name': '', 'Source_Host': 'db1', 'Replica_IO_Running': 'Connecting', 'Replica_SQL_Running': 'Yes',
    'Seconds_Behind_Source': None, 'Source_Log_File': 'binlog.000007', 'Relay_Source_Log_File': 'binlog.000007',
    'Read_Source_Log_Pos': 1200, 'Exec_Source_Log_Pos': 1200, 'Last_Errno': 0, 'Last_Error': '',
    'Last_IO_Errno': 2061, 'Last_IO_Error': "Error connecting to source 'repl@db1:3306'. Authentication plugin "
                                            "'caching_sha2_password' reported error: Authentication requires secure connection.",
    'Last_SQL_Errno': 0, 'Last_SQL_Error': '',
}


class FakeMysql8(MysqlInfo):
    is_mariadb = False
    version_num = 80036

    def __init__(self, rows):
        self.rows = rows
        self.statements = []

    def fetch_all(self, sql, params=None, operation=None):
        self.statements.append(sql)
        if sql == 'SHOW REPLICA STATUS':
            return [dict(r) for r in self.rows]
        assert 'PROCESSLIST' in sql, sql
        return []

    def mask(self, text):
        return text


def test_mysql8_broken_io_thread_reports_last_io_error_and_alerts():
    engine = FakeMysql8([MYSQL8_BROKEN_IO])
    replication = engine.info_replication()
    assert engine.statements[0] == 'SHOW REPLICA STATUS'
    channel = replication['channels'][0]
    assert replication['role'] == 'replica' and replication['running'] is False
    assert channel['io_running'] is False and channel['io_state'] == 'Connecting'
    assert channel['last_io_errno'] == 2061 and 'Authentication requires secure connection' in channel['last_io_error']
    assert channel['last_sql_error'] is None and channel['last_error'] is None
    alerts = _alerts.evaluate({'replication': replication}, _alerts.merge_thresholds())
    assert [a['level'] for a in alerts] == ['critical']
    assert 'last I/O error: Error connecting to source' in alerts[0]['message']


def test_mysql8_sql_thread_error_is_reported_as_the_sql_error():
    row = dict(MYSQL8_BROKEN_IO, Replica_IO_Running='Yes', Replica_SQL_Running='No', Last_IO_Errno=0, Last_IO_Error='',
               Last_Errno=1062, Last_Error="Could not execute Write_rows event: Duplicate entry '1'",
               Last_SQL_Errno=1062, Last_SQL_Error="Could not execute Write_rows event: Duplicate entry '1'")
    replication = FakeMysql8([row]).info_replication()
    channel = replication['channels'][0]
    assert channel['last_io_error'] is None and channel['last_sql_errno'] == 1062
    message = _alerts.evaluate({'replication': replication})[0]['message']
    assert 'SQL thread stopped' in message and "last SQL error: Could not execute Write_rows event" in message
    assert 'I/O error' not in message
