# -*- coding: utf-8 -*-
"""Alert thresholds, their evaluation and the health findings (no server)."""

from __future__ import annotations

import pytest

from ansible_collections.dbops.admin.plugins.module_utils import _alerts


def metrics(used_ratio=0.05, disk_ratio=0.30, per_minute=0.0, lag=None, role='standalone', source='pg_stat_statements'):
    return {
        'connections': {'active': 2, 'idle': 3, 'total': 5, 'max': 100, 'used_ratio': used_ratio},
        'disk': {'path': '/var/lib/postgresql/15/main', 'used_ratio': disk_ratio} if disk_ratio is not None else None,
        'slow_queries': {'count': 0, 'per_minute': per_minute, 'threshold_ms': 1000, 'source': source},
        'replication': {'role': role, 'lag_seconds': lag, 'replicas': []},
    }


def test_defaults_are_the_seed_alert_table():
    merged = _alerts.merge_thresholds()
    assert merged == {
        'connections': {'warning': 70, 'critical': 90},
        'disk': {'warning': 80, 'critical': 95},
        'slow_queries': {'warning': 10, 'critical': 50},
        'replication_lag': {'warning': 30, 'critical': 300},
    }


def test_overrides_merge_level_by_level():
    merged = _alerts.merge_thresholds({'connections': {'warning': 50}, 'replication_lag': {'critical': '120'}})
    assert merged['connections'] == {'warning': 50, 'critical': 90}
    assert merged['replication_lag'] == {'warning': 30, 'critical': 120}
    assert merged['disk'] == {'warning': 80, 'critical': 95}
    # the defaults themselves are not modified
    assert _alerts.DEFAULT_THRESHOLDS['connections']['warning'] == 70


@pytest.mark.parametrize('overrides, text', [
    ({'cpu': {'warning': 1}}, 'unknown threshold'),
    ({'disk': 90}, 'must be a dictionary'),
    ({'disk': {'high': 1}}, 'unknown level'),
    ({'disk': {'warning': 'lots'}}, 'must be a number'),
    ({'disk': {'warning': -1}}, 'cannot be negative'),
    ({'disk': {'warning': 99, 'critical': 90}}, 'warning (99) is above critical (90)'),
    ({'replication_lag': {'critical': 'inf'}}, 'threshold replication_lag.critical must be a finite number'),
    ({'slow_queries': {'warning': float('nan')}}, 'threshold slow_queries.warning must be a finite number'),
    ({'slow_queries': {'warning': 'NaN'}}, 'threshold slow_queries.warning must be a finite number'),
    ({'disk': {'warning': True}}, 'threshold disk.warning must be a number, not the boolean True'),
    ({'connections': {'warning': 150, 'critical': 180}}, 'threshold connections.warning is a percentage (0 to 100)'),
    ({'disk': {'critical': 100.5}}, 'threshold disk.critical is a percentage (0 to 100)'),
])
def test_malformed_thresholds_are_refused(overrides, text):
    with pytest.raises(ValueError) as info:
        _alerts.merge_thresholds(overrides)
    assert text in str(info.value)


def test_edge_levels_that_mean_something_are_accepted():
    merged = _alerts.merge_thresholds({'connections': {'warning': 0, 'critical': 100}, 'disk': {'critical': '99.5'},
                                       'replication_lag': {'warning': None, 'critical': 3600}})
    assert merged['connections'] == {'warning': 0, 'critical': 100}
    assert merged['disk'] == {'warning': 80, 'critical': 99.5}
    assert merged['replication_lag'] == {'warning': None, 'critical': 3600}


def test_healthy_metrics_raise_no_alert():
    assert _alerts.evaluate(metrics(), _alerts.merge_thresholds()) == []


@pytest.mark.parametrize('kwargs, metric, level, value, threshold', [
    ({'used_ratio': 0.70}, 'connections', 'warning', 70.0, 70),     # at the threshold: alert
    ({'used_ratio': 0.75}, 'connections', 'warning', 75.0, 70),
    ({'used_ratio': 0.93}, 'connections', 'critical', 93.0, 90),
    ({'disk_ratio': 0.81}, 'disk', 'warning', 81.0, 80),
    ({'disk_ratio': 0.97}, 'disk', 'critical', 97.0, 95),
    ({'per_minute': 12}, 'slow_queries', 'warning', 12.0, 10),
    ({'per_minute': 50}, 'slow_queries', 'critical', 50.0, 50),
    ({'lag': 31, 'role': 'replica'}, 'replication_lag', 'warning', 31.0, 30),
    ({'lag': 600, 'role': 'replica'}, 'replication_lag', 'critical', 600.0, 300),
])
def test_each_threshold_fires_at_its_level(kwargs, metric, level, value, threshold):
    alerts = _alerts.evaluate(metrics(**kwargs), _alerts.merge_thresholds())
    assert len(alerts) == 1
    alert = alerts[0]
    assert (alert['metric'], alert['level'], alert['value'], alert['threshold']) == (metric, level, value, threshold)
    assert level in alert['message']


def test_just_below_a_threshold_raises_nothing():
    assert _alerts.evaluate(metrics(used_ratio=0.6999, per_minute=9.99, lag=29.9), _alerts.merge_thresholds()) == []


@pytest.mark.parametrize('kwargs, thresholds, fires', [
    # shows as 70.0 % once rounded, but is below 70 %: no alert
    ({'used_ratio': 0.699996}, {'connections': {'warning': 70}}, False),
    # shows as 70.0 % once rounded, but is above 70.003 %: alert
    ({'used_ratio': 0.70004}, {'connections': {'warning': 70.003}}, True),
    ({'disk_ratio': 0.799999}, {'disk': {'warning': 80}}, False),
    ({'disk_ratio': 0.80004}, {'disk': {'warning': 80.001}}, True),
    ({'per_minute': 9.996}, {'slow_queries': {'warning': 10}}, False),
    ({'per_minute': 0.0033}, {'slow_queries': {'warning': 0.001}}, True),
    ({'lag': 29.9996, 'role': 'replica'}, {'replication_lag': {'warning': 30}}, False),
    ({'lag': 0.0004, 'role': 'replica'}, {'replication_lag': {'warning': 0.0001}}, True),
])
def test_alerts_compare_the_exact_value_not_the_rounded_one(kwargs, thresholds, fires):
    alerts = _alerts.evaluate(metrics(**kwargs), _alerts.merge_thresholds(thresholds))
    assert bool(alerts) is fires, alerts
    if fires:
        exact = _alerts.exact_values(metrics(**kwargs))[alerts[0]['metric']]
        assert alerts[0]['value'] == round(exact, 2)


def test_round_for_display_after_the_alerts():
    data = metrics(used_ratio=2 / 151.0, disk_ratio=0.123456, per_minute=1 / 3.0, lag=1 / 7.0, role='replica')
    data['replication']['replicas'] = [{'name': 'r1', 'lag_seconds': 2 / 3.0}]
    data['queries_per_second'] = 10 / 3.0
    _alerts.round_for_display(data)
    assert data['connections']['used_ratio'] == 0.0132 and data['disk']['used_ratio'] == 0.1235
    assert data['slow_queries']['per_minute'] == 0.33 and data['queries_per_second'] == 3.333
    assert data['replication']['lag_seconds'] == 0.143 and data['replication']['replicas'][0]['lag_seconds'] == 0.667


def test_unmeasured_metrics_raise_nothing():
    unmeasured = metrics(disk_ratio=None, per_minute=None, lag=None)
    unmeasured['connections']['used_ratio'] = None
    assert _alerts.evaluate(unmeasured, _alerts.merge_thresholds()) == []
    assert _alerts.evaluate({}, None) == []


def test_disabled_level_is_skipped():
    thresholds = _alerts.merge_thresholds({'connections': {'warning': None}})
    assert _alerts.evaluate(metrics(used_ratio=0.8), thresholds) == []
    assert _alerts.evaluate(metrics(used_ratio=0.95), thresholds)[0]['level'] == 'critical'


def test_critical_alerts_come_first():
    alerts = _alerts.evaluate(metrics(used_ratio=0.75, disk_ratio=0.99), _alerts.merge_thresholds())
    assert [a['level'] for a in alerts] == ['critical', 'warning']
    assert [a['metric'] for a in alerts] == ['disk', 'connections']


def test_findings_pass_fail_and_skip():
    info = {'metrics': metrics(used_ratio=0.95, disk_ratio=None, source='unavailable', per_minute=None),
            'thresholds': _alerts.merge_thresholds()}
    info['alerts'] = _alerts.evaluate(info['metrics'], info['thresholds'])
    findings = {f['id']: f for f in _alerts.health_findings(info, host='pg1')}
    assert set(findings) == {'health.connections', 'health.disk', 'health.slow_queries', 'health.replication_lag'}
    assert findings['health.connections']['status'] == 'fail'
    assert findings['health.connections']['severity'] == 'critical'
    assert '95.0%' in findings['health.connections']['evidence']
    assert findings['health.disk']['status'] == 'skip'
    assert findings['health.slow_queries']['status'] == 'skip'
    assert 'unavailable' in findings['health.slow_queries']['evidence']
    assert findings['health.replication_lag']['status'] == 'skip'
    for finding in findings.values():
        assert finding['host'] == 'pg1'
        assert finding['severity'] in ('info', 'warning', 'critical')
        assert finding['remediation']
        assert isinstance(finding['frameworks'], list)


def test_findings_of_a_healthy_server_pass():
    info = {'metrics': metrics(lag=0, role='replica'), 'thresholds': _alerts.merge_thresholds(), 'alerts': []}
    statuses = {f['id']: f['status'] for f in _alerts.health_findings(info)}
    assert set(statuses.values()) == {'pass'}


def test_findings_titles_follow_the_thresholds():
    info = {'metrics': metrics(), 'thresholds': _alerts.merge_thresholds({'connections': {'warning': 55}})}
    titles = {f['id']: f['title'] for f in _alerts.health_findings(info)}
    assert '55%' in titles['health.connections']


def test_failed_result_is_one_critical_finding():
    findings = _alerts.health_findings({'failed': True, 'msg': 'could not connect to postgresql at h:5432'}, 'pg1')
    assert len(findings) == 1
    assert findings[0]['id'] == 'health.reachable'
    assert findings[0]['status'] == 'fail' and findings[0]['severity'] == 'critical'
    assert 'could not connect' in findings[0]['evidence']


def test_rates_between_samples():
    rates = _alerts.rates({'queries': 100, 'transactions': 10, 'slow': None},
                          {'queries': 160, 'transactions': 16, 'slow': 3}, 2.0)
    assert rates == {'queries': 30.0, 'transactions': 3.0, 'slow': None}
    # a counter reset never gives a negative rate
    assert _alerts.rates({'queries': 100}, {'queries': 5}, 1.0)['queries'] == 0.0


def test_disk_metrics_of_a_real_directory(tmp_path):
    disk = _alerts.disk_metrics(str(tmp_path))
    assert disk['path'] == str(tmp_path)
    assert 0 <= disk['used_ratio'] <= 1
    assert disk['total_bytes'] >= disk['used_bytes'] > 0
    assert _alerts.disk_metrics(str(tmp_path / 'missing')) is None
    assert _alerts.disk_metrics(None) is None


def test_rates_leave_out_db_info_own_statements():
    # an idle server showed ~7 queries/s: the monitoring statements between the two samples
    first = {'queries': 100, 'own_queries': 4, 'transactions': 10, 'own_transactions': 3, 'slow': 0}
    second = {'queries': 107, 'own_queries': 11, 'transactions': 20, 'own_transactions': 5, 'slow': 0}
    assert _alerts.rates(first, second, 2.0) == {'queries': 0.0, 'transactions': 4.0, 'slow': 0.0}
    # without own counts (an older sample), nothing is taken out; never below zero
    assert _alerts.rates({'queries': 100}, {'queries': 107}, 1.0)['queries'] == 7.0
    assert _alerts.rates(dict(first, queries=105), second, 1.0)['queries'] == 0.0


def stopped_replica():
    data = metrics(role='replica')
    data['replication'].update(running=False, channels=[
        {'name': '', 'io_running': False, 'sql_running': True, 'lag_seconds': None,
         'last_error': "error connecting to master 'repl@db1:3306'"}])
    return data


def test_stopped_replica_is_a_critical_alert_not_a_skip():
    # Seconds_Behind_Master is NULL when the threads are stopped: the check used to be skipped
    data = stopped_replica()
    alerts = _alerts.evaluate(data, _alerts.merge_thresholds())
    assert [(a['metric'], a['level'], a['value']) for a in alerts] == [('replication_lag', 'critical', None)]
    assert "channel '': I/O thread stopped" in alerts[0]['message'] and 'db1:3306' in alerts[0]['message']
    info = {'metrics': data, 'thresholds': _alerts.merge_thresholds(), 'alerts': alerts}
    finding = {f['id']: f for f in _alerts.health_findings(info, 'my2')}['health.replication_lag']
    assert finding['status'] == 'fail' and finding['severity'] == 'critical'
    assert 'stopped' in finding['evidence']
    # disabled thresholds stay disabled; a running replica without lag is fine
    assert _alerts.evaluate(data, _alerts.merge_thresholds({'replication_lag': {'warning': None, 'critical': None}})) == []
    running = metrics(role='replica', lag=0)
    running['replication']['running'] = True
    assert _alerts.evaluate(running) == []


def test_broken_io_thread_reports_its_own_error():
    data = metrics(role='replica')
    data['replication'].update(running=False, channels=[
        {'name': 'east', 'io_running': False, 'io_state': 'Connecting', 'sql_running': True, 'lag_seconds': None,
         'last_error': None, 'last_io_error': "error connecting to master 'repl@db1:3306' - retry-time: 60",
         'last_sql_error': None}])
    alerts = _alerts.evaluate(data, _alerts.merge_thresholds())
    assert [(a['level'], a['value']) for a in alerts] == [('critical', None)]
    assert alerts[0]['message'] == (
        "Replication is stopped on this replica (channel 'east': I/O thread stopped (I/O thread Connecting), "
        "last I/O error: error connecting to master 'repl@db1:3306' - retry-time: 60)")
    # both errors when both threads broke
    data['replication']['channels'][0].update(sql_running=False, last_sql_error='Duplicate entry 1 for key PRIMARY')
    message = _alerts.evaluate(data)[0]['message']
    assert 'I/O and SQL threads stopped' in message
    assert 'last I/O error: error connecting' in message and 'last SQL error: Duplicate entry' in message


def one_channel_stopped_one_lagging():
    data = metrics(role='replica', lag=45)
    data['replication'].update(running=False, channels=[
        {'name': 'a', 'io_running': False, 'sql_running': True, 'lag_seconds': None},
        {'name': 'b', 'io_running': True, 'sql_running': True, 'lag_seconds': 45}])
    return data


@pytest.mark.parametrize('order', [list, lambda alerts: list(reversed(alerts))])
def test_the_worst_alert_of_a_metric_decides_its_finding_in_any_order(order):
    data = one_channel_stopped_one_lagging()
    alerts = _alerts.evaluate(data, _alerts.merge_thresholds())
    assert sorted(a['level'] for a in alerts) == ['critical', 'warning']  # both alerts are on replication_lag
    info = {'metrics': data, 'thresholds': _alerts.merge_thresholds(), 'alerts': order(alerts)}
    finding = {f['id']: f for f in _alerts.health_findings(info, 'my3')}['health.replication_lag']
    assert finding['status'] == 'fail' and finding['severity'] == 'critical', finding
    assert "channel 'a': I/O thread stopped" in finding['evidence'] and 'lag 45.0 s' in finding['evidence']
    assert _alerts.worst_alerts(order(alerts))['replication_lag']['level'] == 'critical'


def test_the_daily_runbook_checks_its_thresholds_against_the_same_defaults():
    """roles/runbook_daily/vars/main.yml repeats DEFAULT_THRESHOLDS for its argument check: they must agree."""
    import os

    import yaml
    repo = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    with open(os.path.join(repo, 'roles', 'runbook_daily', 'vars', 'main.yml')) as handle:
        role_vars = yaml.safe_load(handle)
    assert role_vars['__runbook_daily_default_thresholds'] == _alerts.DEFAULT_THRESHOLDS
