# -*- coding: utf-8 -*-
"""The report filters: health table, findings as Markdown, JUnit XML and JSON (no server)."""

from __future__ import annotations

import json
import xml.etree.ElementTree as ET

import pytest
from ansible.errors import AnsibleFilterError

from ansible_collections.dbops.admin.plugins.filter import report
from ansible_collections.dbops.admin.plugins.module_utils import _alerts

FINDINGS = [
    {'id': 'health.connections', 'host': 'pg1', 'title': 'Connections below 70%', 'severity': 'critical',
     'status': 'fail', 'evidence': '95 of 100 | in use', 'remediation': 'Add a pooler', 'frameworks': ['dbops-daily']},
    {'id': 'health.disk', 'host': 'pg1', 'title': 'Disk below 80%', 'severity': 'info', 'status': 'pass',
     'evidence': '30% used', 'remediation': 'Free space', 'frameworks': []},
    {'id': 'health.slow_queries', 'host': 'my1', 'title': 'Slow queries', 'severity': 'info', 'status': 'skip',
     'evidence': 'no source', 'remediation': 'Enable pg_stat_statements', 'frameworks': []},
    {'id': 'health.replication_lag', 'host': 'my1', 'title': 'Lag <below> 30 s & more', 'severity': 'warning',
     'status': 'fail', 'evidence': 'lag 45 s', 'remediation': 'Check the replica', 'frameworks': ['dbops-daily']},
]


def db_info_result(used_ratio=0.05, alerts=None):
    thresholds = _alerts.merge_thresholds()
    metrics = {
        'connections': {'active': 2, 'idle': 3, 'total': int(used_ratio * 100), 'max': 100, 'used_ratio': used_ratio},
        'cache_hit_ratio': 0.9876,
        'locks': {'waiting': 1},
        'deadlocks': 0,
        'longest_transaction_seconds': 2.5,
        'slow_queries': {'count': 3, 'per_minute': 0.5, 'threshold_ms': 1000, 'source': 'pg_stat_statements', 'top': []},
        'replication': {'role': 'standalone', 'lag_seconds': None, 'replicas': []},
        'disk': {'path': '/data', 'used_ratio': 0.42, 'total_bytes': 10 * 1024 ** 3},
    }
    return {'changed': False,
            'server': {'engine': 'postgresql', 'flavor': 'postgresql', 'version': '15.4', 'uptime_seconds': 3700},
            'databases': [{'name': 'app', 'size_bytes': 1024 ** 2}],
            'metrics': metrics, 'thresholds': thresholds,
            'alerts': alerts if alerts is not None else _alerts.evaluate(metrics, thresholds)}


def test_filters_are_registered():
    names = report.FilterModule().filters()
    for name in ('health_table', 'health_findings', 'findings_to_markdown', 'findings_to_junit', 'findings_to_json',
                 'findings_summary'):
        assert callable(names[name])


def test_summary_counts():
    summary = report.findings_summary(FINDINGS)
    assert summary == {'total': 4, 'pass': 1, 'fail': 2, 'skip': 1, 'critical': 1, 'warning': 1, 'info': 0,
                       'status': 'critical'}
    assert report.findings_summary([])['status'] == 'ok'


def test_markdown_lists_every_finding_failures_first_with_remediation():
    text = report.findings_to_markdown(FINDINGS, 'Daily', code_block='table here\n')
    lines = text.splitlines()
    assert lines[0] == '# Daily'
    assert '```' in lines and 'table here' in lines
    rows = [line for line in lines if line.startswith('| ') and '`health.' in line]
    assert len(rows) == len(FINDINGS)
    assert 'FAIL' in rows[0] and 'critical' in rows[0]
    assert 'PASS' in rows[-1]
    assert '95 of 100 \\| in use' in text          # a pipe cannot break the table
    remediation = text.split('## Remediation', 1)[1]
    assert 'Add a pooler' in remediation and 'Check the replica' in remediation
    assert 'Free space' not in remediation          # only failed findings need fixing
    assert 'Status: CRITICAL' in text


def test_junit_has_one_testcase_per_finding():
    xml_text = report.findings_to_junit(FINDINGS, 'dbops.daily')
    root = ET.fromstring(xml_text.split('\n', 1)[1])
    assert root.tag == 'testsuites'
    assert root.get('tests') == '4' and root.get('failures') == '2' and root.get('skipped') == '1'
    cases = root.findall('.//testcase')
    assert len(cases) == len(FINDINGS)
    suites = {s.get('name'): s for s in root.findall('testsuite')}
    assert set(suites) == {'dbops.daily.pg1', 'dbops.daily.my1'}
    failures = root.findall('.//testcase/failure')
    assert sorted(f.get('type') for f in failures) == ['critical', 'warning']
    assert len(root.findall('.//testcase/skipped')) == 1
    # XML special characters survive escaping
    names = [c.get('name') for c in cases]
    assert 'health.replication_lag: Lag <below> 30 s & more' in names


def test_junit_with_characters_xml_does_not_allow_still_parses():
    findings = [dict(FINDINGS[0], host='pg\x0c1', title='Slow: SELECT \x00 FROM t\x1b[31m',
                     evidence='query SELECT 1 /* \x01\x02 */ and \ud800 and \ufffe, tab\tkept & <ok>'),
                dict(FINDINGS[2], evidence='\x07bell'), dict(FINDINGS[1], evidence='\x08', remediation='\x0b')]
    root = ET.fromstring(report.findings_to_junit(findings, 'dbops\x03daily').split('\n', 1)[1])
    text = ET.tostring(root, encoding='unicode')
    assert root.get('name') == 'dbops\\x03daily'
    failure = root.find('.//failure')
    assert '\\x01\\x02' in failure.get('message') and '\\ud800' in failure.get('message')
    assert '\\ufffe' in failure.text and 'tab\tkept & <ok>' in failure.text
    assert root.find('.//testcase').get('name') == 'health.connections: Slow: SELECT \\x00 FROM t\\x1b[31m'
    assert root.find('.//skipped').get('message') == '\\x07bell'
    assert '\x00' not in text and '\x1b' not in text
    # nothing else is touched
    plain = ET.fromstring(report.findings_to_junit(FINDINGS).split('\n', 1)[1])
    assert [c.get('name') for c in plain.iter('testcase')] == ['%s: %s' % (f['id'], f['title']) for f in FINDINGS]


def test_json_round_trips_with_summary_and_extra():
    text = report.findings_to_json(FINDINGS, extra={'runbook': 'daily'})
    document = json.loads(text)
    assert document['summary']['fail'] == 2
    assert document['runbook'] == 'daily'
    assert len(document['findings']) == 4
    assert document['findings'][0]['status'] == 'fail'
    assert {f['id'] for f in document['findings']} == {f['id'] for f in FINDINGS}


@pytest.mark.parametrize('bad, text', [
    ([{'id': 'x', 'title': 't', 'severity': 'fatal', 'status': 'fail'}], 'severity'),
    ([{'id': 'x', 'title': 't', 'severity': 'info', 'status': 'broken'}], 'status'),
    ([{'id': 'x', 'severity': 'info', 'status': 'pass'}], 'lacks title'),
    (['not a dict'], 'not a dictionary'),
    ('text', 'expects a list'),
])
def test_malformed_findings_are_refused(bad, text):
    for render in (report.findings_to_markdown, report.findings_to_junit, report.findings_to_json):
        with pytest.raises(AnsibleFilterError) as info:
            render(bad)
        assert text in str(info.value)


def test_health_table_shows_metrics_thresholds_and_state():
    text = report.health_table({'pg1': db_info_result(0.05)}, 'Health')
    assert text.startswith('Health\n======')
    assert 'pg1: postgresql 15.4, up 1h 1m' in text
    connections = [line for line in text.splitlines() if line.strip().startswith('connections')][0]
    assert '5/100 (5.0%)' in connections and '70%' in connections and '90%' in connections
    assert connections.rstrip().endswith('ok')
    assert '98.8%' in text                        # cache hit ratio
    assert '0.5/min (pg_stat_statements' in text
    assert '42.0% of 10.0 GiB' in text
    assert 'alerts: none' in text


def test_health_table_shows_alerts():
    text = report.health_table(db_info_result(0.93))
    connections = [line for line in text.splitlines() if line.strip().startswith('connections')][0]
    assert connections.rstrip().endswith('CRITICAL')
    assert 'CRITICAL connections = 93.0% (threshold 90%)' in text


def test_health_table_of_a_failed_server_and_of_a_list():
    text = report.health_table([dict(db_info_result(), host='a'), {'host': 'b', 'failed': True, 'msg': 'no route'}])
    assert 'a: postgresql 15.4' in text
    assert 'b: FAILED - no route' in text


def test_hosts_named_like_result_keys():
    # a host called "server" or "metrics" made the dictionary of results look like one result
    results = {'server': db_info_result(0.05), 'metrics': db_info_result(0.93),
               'alerts': {'failed': True, 'msg': 'down'}}
    text = report.health_table(results)
    assert 'server: postgresql 15.4' in text and 'metrics: postgresql 15.4' in text
    assert 'alerts: FAILED - down' in text
    findings = report.health_findings(results)
    assert sorted(set(f['host'] for f in findings)) == ['alerts', 'metrics', 'server']
    assert report.health_table({'failed': True, 'msg': 'no route'}).startswith('server: FAILED - no route')


def test_health_table_of_a_server_only_result_says_so():
    # gather_subset: [server] printed a lone header row
    result = {'changed': False, 'server': {'engine': 'mysql', 'flavor': 'mariadb', 'version': '10.11.6'},
              'alerts': [], 'thresholds': _alerts.merge_thresholds()}
    text = report.health_table({'my1': result})
    assert 'my1: mariadb 10.11.6' in text
    assert 'no metrics gathered' in text and 'metric  ' not in text


def test_health_table_of_a_stopped_replica():
    result = db_info_result()
    result['metrics']['replication'] = {'role': 'replica', 'lag_seconds': None, 'replicas': [], 'running': False,
                                        'channels': [{'name': '', 'io_running': False, 'sql_running': False}]}
    result['alerts'] = _alerts.evaluate(result['metrics'], result['thresholds'])
    text = report.health_table({'my2': result})
    replication = [line for line in text.splitlines() if line.strip().startswith('replication')][0]
    assert 'replica, lag STOPPED' in replication and replication.rstrip().endswith('CRITICAL')
    assert "CRITICAL replication_lag: Replication is stopped on this replica (channel '': I/O and SQL threads " \
        'stopped)' in text
    assert 'None' not in text


@pytest.mark.parametrize('reverse', [False, True])
def test_worst_alert_decides_state_and_summary_in_any_order(reverse):
    result = db_info_result()
    result['metrics']['replication'] = {
        'role': 'replica', 'lag_seconds': 45, 'replicas': [], 'running': False,
        'channels': [{'name': 'a', 'io_running': False, 'sql_running': True},
                     {'name': 'b', 'io_running': True, 'sql_running': True, 'lag_seconds': 45}]}
    alerts = _alerts.evaluate(result['metrics'], result['thresholds'])
    result['alerts'] = list(reversed(alerts)) if reverse else alerts
    text = report.health_table({'my3': result})
    replication = [line for line in text.splitlines() if line.strip().startswith('replication')][0]
    assert replication.rstrip().endswith('CRITICAL'), replication
    listed = [line.split()[0] for line in text.splitlines() if line.startswith('    ')]
    assert listed == ['CRITICAL', 'WARNING']
    summary = report.findings_summary(report.health_findings({'my3': result}))
    assert summary['status'] == 'critical' and summary['critical'] == 1


def test_health_table_refuses_garbage():
    with pytest.raises(AnsibleFilterError):
        report.health_table(42)


def test_health_findings_of_several_servers():
    findings = report.health_findings({'pg1': db_info_result(0.93), 'pg2': {'failed': True, 'msg': 'down'}})
    by_host = {}
    for finding in findings:
        by_host.setdefault(finding['host'], []).append(finding)
    assert len(by_host['pg1']) == 4
    assert [f['id'] for f in by_host['pg2']] == ['health.reachable']
    assert report.findings_summary(findings)['critical'] == 2
    single = {f['id']: f['status'] for f in report.health_findings(db_info_result(), 'pg1')}
    assert single.pop('health.replication_lag') == 'skip'      # standalone: nothing to measure
    assert set(single.values()) == {'pass'}
