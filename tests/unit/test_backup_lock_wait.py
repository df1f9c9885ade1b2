# -*- coding: utf-8 -*-
"""The bound of a backup's wait for its global lock (DBOPS_BACKUP_LOCK_WAIT_SECONDS) and the sessions a
timeout names: parsed strictly, statements cut and their passwords masked."""

from __future__ import annotations

import pytest

from ansible_collections.dbops.admin.plugins.module_utils import _backup_lock_wait as lw
from ansible_collections.dbops.admin.plugins.module_utils._errors import DbError


@pytest.mark.parametrize('value, expected', [(None, 120), ('', 120), ('  ', 120), ('5', 5), (' 300 ', 300),
                                             ('31536000', 31536000)])
def test_lock_wait_seconds(value, expected):
    env = {} if value is None else {lw.ENV: value}
    assert lw.lock_wait_seconds(env) == expected


@pytest.mark.parametrize('value', ['0', '-1', '1.5', 'abc', '5s', '31536001', '1e3'])
def test_a_bad_lock_wait_is_refused_saying_what_to_set(value):
    with pytest.raises(DbError) as err:
        lw.lock_wait_seconds({lw.ENV: value})
    assert lw.ENV in str(err.value) and 'whole number of seconds' in str(err.value)


class FakeEngine:
    def __init__(self, running, idle, fail=False):
        self.running, self.idle, self.fail, self.sql = running, idle, fail, []

    def fetch_all(self, sql):
        self.sql.append(sql)
        if self.fail:
            raise DbError('read the catalog', None, 'access denied')
        return self.running if "COMMAND NOT IN" in sql else self.idle


ROW = {'id': 42, 'user': 'app', 'host': '10.0.0.5:51234', 'command': 'Query', 'time': 340, 'state': 'Updating',
       'info': 'UPDATE t SET v = 1'}


def test_the_error_names_the_running_sessions_first():
    engine = FakeEngine([ROW], [dict(ROW, id=7, command='Sleep', info=None)])
    err = lw.lock_wait_error(engine, 'take the lock', None, 'Lock wait timeout exceeded', 30, own_sessions=[5, 6])
    text = str(err)
    assert 'session 42 (app@10.0.0.5, Query for 340 s, Updating): UPDATE t SET v = 1' in text
    assert 'session 7' not in text and 'waited 30 seconds (DBOPS_BACKUP_LOCK_WAIT_SECONDS)' in text
    assert 'ID NOT IN (5, 6)' in engine.sql[0] and '{own}' not in engine.sql[0]
    assert len(engine.sql) == 1


def test_without_running_statements_the_idle_sessions_are_named():
    engine = FakeEngine([], [dict(ROW, id=7, command='Sleep', state='', info=None)])
    text = str(lw.lock_wait_error(engine, 'take the lock', None, 'timeout', 30))
    assert 'session 7 (app@10.0.0.5, Sleep for 340 s)' in text and 'LOCK TABLES' in text
    assert 'ID NOT IN' not in engine.sql[1]


def test_a_process_list_that_cannot_be_read_is_said():
    text = str(lw.lock_wait_error(FakeEngine([], [], fail=True), 'take the lock', None, 'timeout', 30))
    assert 'could not be read (access denied)' in text and 'SHOW PROCESSLIST' in text


def test_long_statements_are_cut_and_passwords_masked():
    row = dict(ROW, info="ALTER USER 'x'@'%' IDENTIFIED BY 'S3cret!' " + 'x' * 500)
    text = lw.describe_session(row)
    assert 'S3cret' not in text and "IDENTIFIED BY '********'" in text
    assert text.endswith('...') and len(text) < 250
    for stmt in ("SET PASSWORD FOR 'a'@'%' = PASSWORD('pw1')", "SET PASSWORD = 'pw1'",
                 "CREATE USER a IDENTIFIED WITH mysql_native_password AS 'pw1'", "GRANT ALL ON *.* TO a IDENTIFIED BY \"pw1\""):
        assert 'pw1' not in lw.mask_statement(stmt), stmt
    assert lw.mask_statement(None) is None
