# -*- coding: utf-8 -*-
"""playbooks/daily.yml through ansible-playbook against the session servers."""

from __future__ import annotations

import glob
import json
import os
import re
import subprocess
import sys
import time
import xml.etree.ElementTree as ET

import yaml
from modrun import REPO, collections_root

WRONG_PASSWORD = 'Daily-Wrong-Pass-5521'


def write_inventory(path, pg_server, mariadb_server, broken=False):
    common = {'ansible_connection': 'local', 'ansible_python_interpreter': sys.executable}
    hosts = {
        'pg-test': dict(common, dbops_engine='postgresql', dbops_login_host='127.0.0.1',
                        dbops_login_port=pg_server.port, dbops_login_user=pg_server.superuser,
                        dbops_login_password=pg_server.password),
        'mariadb-test': dict(common, dbops_engine='mariadb', dbops_login_host='127.0.0.1',
                             dbops_login_port=mariadb_server.port, dbops_login_user='root',
                             dbops_login_password=mariadb_server.password),
    }
    if broken:
        hosts['broken-test'] = dict(common, dbops_engine='postgresql', dbops_login_host='127.0.0.1',
                                    dbops_login_port=pg_server.port, dbops_login_user=pg_server.superuser,
                                    dbops_login_password=WRONG_PASSWORD)
    path.write_text(yaml.safe_dump({'all': {'hosts': hosts}}))
    return str(path)


def run_daily(inventory, report_dir, extra=None, options=()):
    env = dict(os.environ, ANSIBLE_COLLECTIONS_PATH=collections_root(), ANSIBLE_SHOW_CUSTOM_STATS='true',
               ANSIBLE_NOCOLOR='1', ANSIBLE_FORCE_COLOR='0')
    variables = {'runbook_daily_report_dir': str(report_dir)}
    variables.update(extra or {})
    playbook = os.path.join(os.path.dirname(sys.executable), 'ansible-playbook')
    return subprocess.run([playbook, '-i', inventory, os.path.join(REPO, 'playbooks', 'daily.yml'),
                           '-e', json.dumps(variables)] + list(options),
                          capture_output=True, text=True, env=env, cwd=REPO, timeout=300, check=False)


def reports(report_dir):
    found = {}
    for ext in ('json', 'md', 'xml'):
        files = glob.glob(os.path.join(str(report_dir), 'daily-*.%s' % ext))
        assert len(files) == 1, files
        with open(files[0]) as handle:
            found[ext] = handle.read()
    return found


def catalog_max_connections(server):
    conn = server.connect()
    try:
        with conn.cursor() as cur:
            cur.execute('SHOW max_connections' if server.engine == 'postgresql' else 'SELECT @@GLOBAL.max_connections')
            return int(cur.fetchone()[0])
    finally:
        conn.close()


def test_daily_report_of_both_servers_and_an_unreachable_one(pg_server, mariadb_server, tmp_path):
    inventory = write_inventory(tmp_path / 'inventory.yml', pg_server, mariadb_server, broken=True)
    proc = run_daily(inventory, tmp_path / 'reports')
    output = proc.stdout + proc.stderr
    assert proc.returncode == 0, output[-4000:]
    assert WRONG_PASSWORD not in output
    # the health table of each server is printed
    assert 'pg-test: postgresql' in output and 'mariadb-test: mariadb' in output
    assert 'broken-test: FAILED' in output
    assert 'dbops_daily' in output                           # set_stats published

    files = reports(tmp_path / 'reports')
    for text in files.values():
        assert WRONG_PASSWORD not in text
    document = json.loads(files['json'])
    servers = document['servers']
    assert set(servers) == {'pg-test', 'mariadb-test', 'broken-test'}
    assert servers['pg-test']['metrics']['connections']['max'] == catalog_max_connections(pg_server)
    assert servers['mariadb-test']['metrics']['connections']['max'] == catalog_max_connections(mariadb_server)
    assert servers['mariadb-test']['server']['flavor'] == 'mariadb'
    assert servers['broken-test']['failed'] is True
    assert 'authentication' in servers['broken-test']['msg']

    findings = document['findings']
    by_host = {}
    for finding in findings:
        by_host.setdefault(finding['host'], {})[finding['id']] = finding
    assert set(by_host['pg-test']) == {'health.connections', 'health.disk', 'health.slow_queries',
                                       'health.replication_lag'}
    assert by_host['broken-test']['health.reachable']['severity'] == 'critical'
    assert document['summary']['status'] == 'critical'
    assert document['summary']['total'] == len(findings) == 9

    assert '| pg-test |' in files['md'] and '| mariadb-test |' in files['md']
    assert 'health.reachable' in files['md'].split('## Remediation', 1)[1]
    root = ET.fromstring(files['xml'].split('\n', 1)[1])
    assert len(root.findall('.//testcase')) == 9
    assert root.get('failures') == str(document['summary']['fail'])


def test_lowered_thresholds_raise_alerts_and_fail_on_critical(pg_server, mariadb_server, tmp_path):
    inventory = write_inventory(tmp_path / 'inventory.yml', pg_server, mariadb_server)
    proc = run_daily(inventory, tmp_path / 'reports', {
        'runbook_daily_thresholds': {'connections': {'warning': 0.001, 'critical': 0.002}},
        'runbook_daily_fail_on': 'critical',
        'runbook_daily_report_formats': ['json'],
    })
    output = proc.stdout + proc.stderr
    assert proc.returncode != 0, output[-3000:]
    assert 'status critical' in output
    assert 'CRITICAL connections' in output
    files = glob.glob(os.path.join(str(tmp_path / 'reports'), 'daily-*'))
    assert len(files) == 1 and files[0].endswith('.json')
    with open(files[0]) as handle:
        document = json.load(handle)
    failed = [f for f in document['findings'] if f['status'] == 'fail']
    assert {f['host'] for f in failed} == {'pg-test', 'mariadb-test'}
    assert {f['id'] for f in failed} == {'health.connections'}
    for name in ('pg-test', 'mariadb-test'):
        alerts = document['servers'][name]['alerts']
        assert [a['level'] for a in alerts if a['metric'] == 'connections'] == ['critical']


def test_a_host_the_controller_cannot_reach_is_a_critical_finding_not_ok(pg_server, tmp_path):
    """A host whose connection (SSH) fails is unreachable, not failed: it still fails the gate."""
    common = {'ansible_connection': 'local', 'ansible_python_interpreter': sys.executable}
    hosts = {
        # first in the play, so the run_once report does not run on it
        'gone-test': {'ansible_connection': 'ssh', 'ansible_host': '127.0.0.1', 'ansible_port': 1,
                      'ansible_ssh_common_args': '-o ConnectTimeout=5 -o BatchMode=yes',
                      'dbops_engine': 'postgresql'},
        'pg-test': dict(common, dbops_engine='postgresql', dbops_login_host='127.0.0.1',
                        dbops_login_port=pg_server.port, dbops_login_user=pg_server.superuser,
                        dbops_login_password=pg_server.password),
    }
    inventory = tmp_path / 'inventory.yml'
    inventory.write_text(yaml.safe_dump({'all': {'hosts': hosts}}, sort_keys=False))
    proc = run_daily(str(inventory), tmp_path / 'reports',
                     {'runbook_daily_fail_on': 'critical', 'runbook_daily_report_formats': ['json']})
    output = proc.stdout + proc.stderr
    assert proc.returncode != 0, output[-3000:]
    assert 'status critical (fail_on critical)' in output, output[-3000:]
    files = glob.glob(os.path.join(str(tmp_path / 'reports'), 'daily-*.json'))
    assert len(files) == 1, output[-3000:]
    with open(files[0]) as handle:
        document = json.load(handle)
    assert document['summary']['status'] == 'critical'
    assert document['servers']['gone-test']['failed'] is True
    gone = [f for f in document['findings'] if f['host'] == 'gone-test']
    assert [(f['id'], f['status'], f['severity']) for f in gone] == [('health.reachable', 'fail', 'critical')]
    assert 'unreachable' in gone[0]['evidence']
    assert {f['id'] for f in document['findings'] if f['host'] == 'pg-test'} == {
        'health.connections', 'health.disk', 'health.slow_queries', 'health.replication_lag'}


def pg_only_inventory(path, pg_server):
    hosts = {'pg-test': {'ansible_connection': 'local', 'ansible_python_interpreter': sys.executable,
                         'dbops_engine': 'postgresql', 'dbops_login_host': '127.0.0.1',
                         'dbops_login_port': pg_server.port, 'dbops_login_user': pg_server.superuser,
                         'dbops_login_password': pg_server.password}}
    path.write_text(yaml.safe_dump({'all': {'hosts': hosts}}))
    return str(path)


def test_wrong_role_arguments_stop_the_run_instead_of_reporting_the_servers_down(pg_server, tmp_path):
    """A mistyped threshold is the runbook's configuration, not a server that cannot be reached."""
    inventory = pg_only_inventory(tmp_path / 'inventory.yml', pg_server)
    cases = [
        ({'runbook_daily_thresholds': {'conections': {'warning': 50}}}, 'conections'),
        ({'runbook_daily_thresholds': {'connections': {'warn': 50}}}, 'warn'),
        ({'runbook_daily_thresholds': {'disk': {'warning': 'high'}}}, 'warning'),
        ({'runbook_daily_thresholds': {'connections': {'warning': 95}}}, 'above critical'),
        ({'runbook_daily_thresholds': {'slow_queries': {'warning': 20, 'critical': 5}}}, 'above critical'),
        ({'runbook_daily_thresholds': {'replication_lag': {'critical': -1}}}, 'negative'),
        ({'runbook_daily_gather_subset': ['server', 'metric']}, 'metric'),
        ({'runbook_daily_sample_seconds': -5}, 'runbook_daily_sample_seconds'),
        ({'runbook_daily_slow_query_ms': -1}, 'runbook_daily_slow_query_ms'),
        ({'runbook_daily_sample_seconds': 'inf'}, 'runbook_daily_sample_seconds must be 0'),
        ({'runbook_daily_thresholds': {'replication_lag': {'warning': 'nan'}}}, 'replication_lag.warning must be a finite'),
        ({'runbook_daily_thresholds': {'connections': {'warning': 150, 'critical': 180}}}, 'is a percentage'),
        # as a JSON string (an AWX survey field, -e key=value): checked the same way
        ({'runbook_daily_thresholds': json.dumps({'disk': {'warning': 99}})}, 'above critical'),
    ]
    for number, (extra, named) in enumerate(cases):
        report_dir = tmp_path / ('reports-%d' % number)
        proc = run_daily(inventory, report_dir, extra)
        output = proc.stdout + proc.stderr
        assert proc.returncode != 0, (extra, output[-3000:])
        assert named in output, (extra, output[-3000:])
        assert 'health.reachable' not in output and 'FAILED - ' not in output, (extra, output[-3000:])
        assert not glob.glob(os.path.join(str(report_dir), 'daily-*')), extra
    # a level set to null is disabled, and what the role accepts the module accepts too
    proc = run_daily(inventory, tmp_path / 'reports-ok', {
        'runbook_daily_thresholds': {'connections': {'warning': None, 'critical': 95.5}, 'disk': {'critical': 99}},
        'runbook_daily_gather_subset': ['all', '!settings'], 'runbook_daily_report_formats': ['json']})
    output = proc.stdout + proc.stderr
    assert proc.returncode == 0, output[-3000:]
    with open(glob.glob(os.path.join(str(tmp_path / 'reports-ok'), 'daily-*.json'))[0]) as handle:
        thresholds = json.load(handle)['servers']['pg-test']['thresholds']
    assert thresholds['connections'] == {'warning': None, 'critical': 95.5}
    assert thresholds['disk'] == {'warning': 80, 'critical': 99}
    proc = run_daily(inventory, tmp_path / 'reports-string', {
        'runbook_daily_thresholds': json.dumps({'connections': {'warning': 50}}), 'runbook_daily_report_formats': ['json']})
    output = proc.stdout + proc.stderr
    assert proc.returncode == 0, output[-3000:]
    with open(glob.glob(os.path.join(str(tmp_path / 'reports-string'), 'daily-*.json'))[0]) as handle:
        assert json.load(handle)['servers']['pg-test']['thresholds']['connections'] == {'warning': 50, 'critical': 90}


def test_a_relative_report_dir_is_published_as_the_absolute_path_written(pg_server, tmp_path):
    """runbook_daily_report_dir: reports (relative) lands beside the playbook; the paths printed and published say so."""
    inventory = pg_only_inventory(tmp_path / 'inventory.yml', pg_server)
    target = tmp_path / 'relative-reports'
    relative = os.path.relpath(str(target), os.path.join(REPO, 'playbooks'))
    proc = run_daily(inventory, target, {'runbook_daily_report_dir': relative, 'runbook_daily_report_formats': ['json']})
    output = proc.stdout + proc.stderr
    assert proc.returncode == 0, output[-3000:]
    written = glob.glob(os.path.join(str(target), 'daily-*.json'))
    assert len(written) == 1, output[-3000:]
    stats = re.search(r'RUN: (\{.*\})\s*$', output, re.M)
    assert stats, output[-3000:]
    published = json.loads(stats.group(1))['dbops_daily']['reports']['json']
    assert os.path.isabs(published) and os.path.samefile(published, written[0]), published
    assert 'Report: %s' % published in output


def test_check_mode_writes_no_report_and_claims_none(pg_server, tmp_path):
    """--check writes nothing: the printed summary and the published stats must not name report files."""
    inventory = pg_only_inventory(tmp_path / 'inventory.yml', pg_server)
    report_dir = tmp_path / 'check-reports'
    proc = run_daily(inventory, report_dir, options=['--check'])
    output = proc.stdout + proc.stderr
    assert proc.returncode == 0, output[-3000:]
    assert not os.path.exists(str(report_dir)), os.listdir(str(report_dir))
    assert 'Report: ' not in output, output[-3000:]
    assert 'Report not written (check mode)' in output
    stats = re.search(r'RUN: (\{.*\})\s*$', output, re.M)
    assert stats, output[-3000:]
    published = json.loads(stats.group(1))['dbops_daily']
    assert published['reports'] == {} and published['report_written'] is False and published['check_mode'] is True
    assert published['servers'] == 1 and published['status'] in ('ok', 'warning', 'critical')
    # a real run writes them and says so
    proc = run_daily(inventory, report_dir, {'runbook_daily_report_formats': ['json']})
    output = proc.stdout + proc.stderr
    assert proc.returncode == 0, output[-3000:]
    written = glob.glob(os.path.join(str(report_dir), 'daily-*.json'))
    assert len(written) == 1
    published = json.loads(re.search(r'RUN: (\{.*\})\s*$', output, re.M).group(1))['dbops_daily']
    assert published['report_written'] is True and os.path.samefile(published['reports']['json'], written[0])
    assert 'Report: %s' % published['reports']['json'] in output
    # no format chosen: no file, and nothing claims one
    proc = run_daily(inventory, tmp_path / 'no-formats', {'runbook_daily_report_formats': []})
    output = proc.stdout + proc.stderr
    assert proc.returncode == 0, output[-3000:]
    assert not glob.glob(os.path.join(str(tmp_path / 'no-formats'), 'daily-*'))
    assert 'Report' not in output.split('Print the summary', 1)[1].split('\n\n')[0], output[-3000:]
    published = json.loads(re.search(r'RUN: (\{.*\})\s*$', output, re.M).group(1))['dbops_daily']
    assert published['reports'] == {} and published['report_written'] is False


def test_junit_report_parses_when_a_server_message_holds_control_characters(pg_server, tmp_path):
    """The server's error quotes the login name: control characters in it made the JUnit file unparsable."""
    inventory = pg_only_inventory(tmp_path / 'inventory.yml', pg_server)
    hosts = yaml.safe_load(open(inventory))
    hosts['all']['hosts']['ctl-test'] = dict(hosts['all']['hosts']['pg-test'], dbops_login_user='no\x1bbody\x01')
    (tmp_path / 'inventory.yml').write_text(yaml.safe_dump(hosts))
    report_dir = tmp_path / 'reports'
    proc = run_daily(inventory, report_dir, {'runbook_daily_report_formats': ['json', 'junit']})
    output = proc.stdout + proc.stderr
    assert proc.returncode == 0, output[-3000:]
    with open(glob.glob(os.path.join(str(report_dir), 'daily-*.json'))[0]) as handle:
        msg = json.load(handle)['servers']['ctl-test']['msg']
    assert '\x1b' in msg  # the server's message does carry the character: the case this test is about
    with open(glob.glob(os.path.join(str(report_dir), 'daily-*.xml'))[0]) as handle:
        root = ET.fromstring(handle.read().split('\n', 1)[1])
    suites = {s.get('name'): s for s in root.iter('testsuite')}
    failure = suites['dbops.daily.ctl-test'].find('.//failure')
    assert 'no\\x1bbody\\x01' in failure.get('message'), failure.get('message')
    assert suites['dbops.daily.pg-test'].get('failures') is not None


def test_a_stopped_channel_beside_a_lagging_one_is_critical_for_fail_on(mariadb_server, tmp_path):
    """Two replication_lag alerts on one replica (stopped channel: critical, lag: warning): the critical one decides."""
    from servers import MariadbServer, free_port
    source = MariadbServer(settings={'server-id': '2'}).init().start()
    try:
        source.sql("CREATE USER 'repl'@'127.0.0.1' IDENTIFIED BY 'Repl-Gate-Pw-3'")
        source.sql("GRANT REPLICATION SLAVE ON *.* TO 'repl'@'127.0.0.1'")
        binlog_file, binlog_pos = source.sql('SHOW MASTER STATUS')[0][:2]
        mariadb_server.sql("CHANGE MASTER 'up' TO MASTER_HOST='127.0.0.1', MASTER_PORT=%d, MASTER_USER='repl', "
                           "MASTER_PASSWORD='Repl-Gate-Pw-3', MASTER_LOG_FILE='%s', MASTER_LOG_POS=%d"
                           % (source.port, binlog_file, int(binlog_pos)))
        mariadb_server.sql("CHANGE MASTER 'down' TO MASTER_HOST='127.0.0.1', MASTER_PORT=%d, MASTER_USER='repl', "
                           "MASTER_PASSWORD='Repl-Gate-Pw-3'" % free_port())
        mariadb_server.sql("START SLAVE 'up'")
        deadline = time.time() + 30
        while True:
            conn = mariadb_server.connect()
            try:
                with conn.cursor() as cur:
                    cur.execute("SHOW SLAVE 'up' STATUS")
                    row = dict(zip([d[0] for d in cur.description], cur.fetchone()))
            finally:
                conn.close()
            if row['Slave_IO_Running'] == 'Yes' and row['Seconds_Behind_Master'] == 0:
                break
            assert time.time() < deadline, row
            time.sleep(0.3)
        hosts = {'mariadb-test': {'ansible_connection': 'local', 'ansible_python_interpreter': sys.executable,
                                  'dbops_engine': 'mariadb', 'dbops_login_host': '127.0.0.1',
                                  'dbops_login_port': mariadb_server.port, 'dbops_login_user': 'root',
                                  'dbops_login_password': mariadb_server.password}}
        (tmp_path / 'inventory.yml').write_text(yaml.safe_dump({'all': {'hosts': hosts}}))
        report_dir = tmp_path / 'reports'
        proc = run_daily(str(tmp_path / 'inventory.yml'), report_dir, {
            'runbook_daily_thresholds': {'replication_lag': {'warning': 0, 'critical': 300}},
            'runbook_daily_fail_on': 'critical', 'runbook_daily_report_formats': ['json']})
        output = proc.stdout + proc.stderr
        with open(glob.glob(os.path.join(str(report_dir), 'daily-*.json'))[0]) as handle:
            document = json.load(handle)
        levels = sorted(a['level'] for a in document['servers']['mariadb-test']['alerts']
                        if a['metric'] == 'replication_lag')
        assert levels == ['critical', 'warning'], output[-3000:]  # the two alerts this test is about
        finding = [f for f in document['findings'] if f['id'] == 'health.replication_lag'][0]
        assert finding['severity'] == 'critical' and "channel 'down'" in finding['evidence'], finding
        assert document['summary']['status'] == 'critical'
        assert proc.returncode != 0 and 'status critical (fail_on critical)' in output, output[-3000:]
        assert 'Repl-Gate-Pw-3' not in output
    finally:
        mariadb_server.sql('STOP ALL SLAVES')
        for name in ('up', 'down'):
            mariadb_server.sql("RESET SLAVE '%s' ALL" % name)
        source.destroy()
