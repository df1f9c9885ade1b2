# -*- coding: utf-8 -*-
"""db_restore target_position as a MySQL 8 GTID set, through the module against a real MariaDB backup.

There is no MySQL 8 server here: the replay with --include-gtids is unit-tested (tests/unit/test_mysql_gtid.py).
What a MariaDB server shows: a MySQL GTID set is understood as one (not as a binlog file named like a uuid), is
refused for a MariaDB backup saying what to give instead, and a malformed set says what is wrong; in check mode
too, and before anything is written.
"""

from __future__ import annotations

import os
import shutil

import pytest

from modrun import run_module
from servers import free_port, make_workdir

U1 = '3e11fa47-71ca-11e1-9e33-c80aa9429562'


@pytest.fixture
def workdir(mariadb_server):
    path = make_workdir('dbops-gtidtarget-', mariadb_server.user if os.geteuid() == 0 else None)
    yield path
    shutil.rmtree(path, ignore_errors=True)


@pytest.mark.skipif(shutil.which('mariadb-backup') is None, reason='mariadb-backup not installed')
def test_a_mysql_gtid_set_target_is_checked_before_anything(mariadb_server, workdir):
    repo = os.path.join(workdir, 'repo')
    res = run_module('db_backup', dict(mariadb_server.conn, repo=repo, method='physical'))
    assert res['failed'] is False, res
    data_dir = os.path.join(workdir, 'restored', 'data')
    for target, words in (('%s:1-5' % U1.upper(), 'a MySQL GTID set, but the backup is of MariaDB'),
                          ({'gtid': '%s:1-5' % U1}, 'a MySQL GTID set, but the backup is of MariaDB'),
                          ('%s:5-3' % U1, 'N-M needs N <= M'),
                          ('%s:1-5,' % U1, 'empty part between commas')):
        for check in (True, False):
            out = run_module('db_restore', dict(repo=repo, data_dir=data_dir, login_port=free_port(),
                                                target_position=target), check=check)
            assert out['failed'] is True and words in out['msg'], (target, out.get('msg'))
            assert 'binlog_file' not in out['msg'].split(':', 1)[0]
            assert not os.path.exists(data_dir)
