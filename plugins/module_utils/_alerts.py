# -*- coding: utf-8 -*-
# Copyright: dbops.admin contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Private to dbops.admin: alert thresholds, their evaluation, and health findings.

Engine-independent: it reads the ``metrics`` dictionary that db_info returns for either
engine.  The defaults are the seed's alert table (connections 70/90 %, disk 80/95 %,
slow queries 10/50 per minute, replication lag 30 s / 5 min).
"""

from __future__ import annotations

import copy
import math
import os

LEVELS = ('warning', 'critical')

DEFAULT_THRESHOLDS = {
    'connections': {'warning': 70, 'critical': 90},
    'disk': {'warning': 80, 'critical': 95},
    'slow_queries': {'warning': 10, 'critical': 50},
    'replication_lag': {'warning': 30, 'critical': 300},
}

# What each threshold measures, in which unit, and what a DBA does about it.
METRICS = {
    'connections': {
        'unit': '%',
        'title': 'Connections in use (% of max_connections)',
        'check': 'Connections in use below {limit}% of max_connections',
        'remediation': 'Find idle or leaked sessions and long-lived pools; put a connection pooler '
                       '(PgBouncer, ProxySQL) in front, or raise max_connections with db_config after '
                       'checking memory.',
    },
    'disk': {
        'unit': '%',
        'title': 'Disk usage of the data directory filesystem (%)',
        'check': 'Filesystem of the data directory below {limit}% used',
        'remediation': 'Free space (old WAL or binary logs, stale backups, bloated tables), or grow the '
                       'filesystem before it fills.',
    },
    'slow_queries': {
        'unit': '/min',
        'title': 'Slow queries per minute',
        'check': 'Fewer than {limit} slow queries per minute',
        'remediation': 'Review the slowest statements (slow_queries.top) with db_query_advisor; add or '
                       'repair indexes, refresh statistics with db_maintenance.',
    },
    'replication_lag': {
        'unit': 's',
        'title': 'Replication lag (seconds)',
        'check': 'Replication lag below {limit} s',
        'remediation': 'Check the replica for long transactions, I/O saturation or a stopped apply thread; '
                       'check the network between primary and replica.',
    },
}


def _level_value(metric, level, value):
    """One threshold level as a number; ValueError naming ``metric.level`` when it is not a usable one."""
    name = 'threshold %s.%s' % (metric, level)
    if isinstance(value, bool):
        # YAML yes/no/true/false: float(True) would silently be 1
        raise ValueError('%s must be a number, not the boolean %r (null disables a level)' % (name, value))
    try:
        number = float(value)
    except (TypeError, ValueError):
        raise ValueError('%s must be a number, not %r' % (name, value)) from None
    if not math.isfinite(number):
        raise ValueError('%s must be a finite number, not %r (null disables a level)' % (name, value))
    if number < 0:
        raise ValueError('%s cannot be negative (%r)' % (name, value))
    if METRICS[metric]['unit'] == '%' and number > 100:
        raise ValueError('%s is a percentage (0 to 100) of %s, not %r' % (
            name, 'max_connections' if metric == 'connections' else 'the filesystem', value))
    return int(number) if number == int(number) else number


def merge_thresholds(overrides=None):
    """Seed defaults updated by ``overrides`` ({metric: {warning, critical}}); ValueError when malformed.

    A level set to None (YAML null) is disabled.
    """
    merged = copy.deepcopy(DEFAULT_THRESHOLDS)
    for metric, levels in (overrides or {}).items():
        if metric not in DEFAULT_THRESHOLDS:
            raise ValueError('unknown threshold %r (known: %s)' % (metric, ', '.join(sorted(DEFAULT_THRESHOLDS))))
        if not isinstance(levels, dict):
            raise ValueError('threshold %s must be a dictionary with warning and/or critical' % metric)
        for level, value in levels.items():
            if level not in LEVELS:
                raise ValueError('threshold %s has an unknown level %r (use warning, critical)' % (metric, level))
            if value is not None:
                value = _level_value(metric, level, value)
            merged[metric][level] = value
        warning, critical = merged[metric]['warning'], merged[metric]['critical']
        if warning is not None and critical is not None and warning > critical:
            raise ValueError('threshold %s: warning (%s) is above critical (%s)' % (metric, warning, critical))
    return merged


def _round(value):
    return None if value is None else round(float(value), 2)


def exact_values(metrics):
    """The value each threshold is compared with, unrounded, or None when the metric was not measured."""
    metrics = metrics or {}
    connections = metrics.get('connections') or {}
    disk = metrics.get('disk') or {}
    slow = metrics.get('slow_queries') or {}
    replication = metrics.get('replication') or {}
    # db_info computes these unrounded and rounds them only after evaluating the alerts
    ratio = connections.get('used_ratio')
    disk_ratio = disk.get('used_ratio')
    lag = replication.get('lag_seconds')
    return {
        'connections': float(ratio) * 100 if ratio is not None else None,
        'disk': float(disk_ratio) * 100 if disk_ratio is not None else None,
        'slow_queries': float(slow['per_minute']) if slow.get('per_minute') is not None else None,
        'replication_lag': float(lag) if lag is not None else None,
    }


def metric_values(metrics):
    """The values of exact_values() rounded for display (2 decimals)."""
    return {metric: _round(value) for metric, value in exact_values(metrics).items()}


def round_for_display(metrics):
    """Round, in place, the metrics db_info computed exactly, once the alerts were evaluated on them."""
    metrics = metrics or {}
    for key, digits in (('connections', 4), ('disk', 4)):
        part = metrics.get(key)
        if isinstance(part, dict) and part.get('used_ratio') is not None:
            part['used_ratio'] = round(float(part['used_ratio']), digits)
    slow = metrics.get('slow_queries')
    if isinstance(slow, dict) and slow.get('per_minute') is not None:
        slow['per_minute'] = round(float(slow['per_minute']), 2)
    for key in ('queries_per_second', 'transactions_per_second'):
        if metrics.get(key) is not None:
            metrics[key] = round(float(metrics[key]), 3)
    replication = metrics.get('replication')
    if isinstance(replication, dict):
        for item in [replication] + list(replication.get('replicas') or []):
            if isinstance(item, dict) and isinstance(item.get('lag_seconds'), float):
                item['lag_seconds'] = round(item['lag_seconds'], 3)
    return metrics


def evaluate(metrics, thresholds=None):
    """Alerts ``[{metric, value, threshold, level, unit, message}]``, critical ones first."""
    thresholds = thresholds if thresholds is not None else DEFAULT_THRESHOLDS
    alerts = []
    # compared unrounded: 69.996 % is below a 70 % threshold even though it shows as 70.0
    for metric, exact in exact_values(metrics).items():
        if exact is None or metric not in thresholds:
            continue
        value = _round(exact)
        for level in reversed(LEVELS):
            limit = thresholds[metric].get(level)
            if limit is not None and exact >= limit:
                unit = METRICS[metric]['unit']
                alerts.append({
                    'metric': metric,
                    'value': value,
                    'threshold': limit,
                    'level': level,
                    'unit': unit,
                    'message': '%s is %s%s (%s at %s%s)' % (METRICS[metric]['title'], value, unit, level, limit, unit),
                })
                break
    stopped = replication_stopped(metrics)
    if stopped and 'replication_lag' in thresholds:
        # a replica that does not replicate has no lag to measure: that is the worst lag of all
        limits = thresholds['replication_lag']
        level = next((lvl for lvl in reversed(LEVELS) if limits.get(lvl) is not None), None)
        if level is not None:
            alerts.append({
                'metric': 'replication_lag',
                'value': None,
                'threshold': limits[level],
                'level': level,
                'unit': METRICS['replication_lag']['unit'],
                'message': 'Replication is stopped on this replica (%s)' % stopped,
            })
    alerts.sort(key=lambda a: (0 if a['level'] == 'critical' else 1, a['metric']))
    return alerts


def level_rank(level):
    """0 for an unknown level, then warning, then critical: the worst alert is the one with the highest rank."""
    return LEVELS.index(level) + 1 if level in LEVELS else 0


def worst_alerts(alerts):
    """{metric: its worst alert}, whatever the order of ``alerts``.

    One metric can have two alerts (a replica with one stopped channel and one lagging channel:
    a critical "stopped" alert and a warning lag alert); the critical one decides.
    """
    worst = {}
    for alert in alerts or []:
        if not isinstance(alert, dict) or 'metric' not in alert:
            continue
        current = worst.get(alert['metric'])
        if current is None or level_rank(alert.get('level')) > level_rank(current.get('level')):
            worst[alert['metric']] = alert
    return worst


def replication_stopped(metrics):
    """Why replication is broken ('channel "": I/O thread stopped'), or None when it is not.

    A replica that does not replicate, or a PostgreSQL primary with a physical slot whose standby is gone.
    """
    replication = (metrics or {}).get('replication') or {}
    if replication.get('role') not in ('replica', 'primary') or replication.get('running') is not False:
        return None
    if replication.get('stopped_reason'):
        return replication['stopped_reason']
    reasons = []
    for channel in replication.get('channels') or []:
        stopped = [name for name, key in (('I/O', 'io_running'), ('SQL', 'sql_running')) if not channel.get(key)]
        if stopped:
            plural = 's' if len(stopped) > 1 else ''
            text = 'channel %r: %s thread%s stopped' % (channel.get('name') or '', ' and '.join(stopped), plural)
            if not channel.get('io_running') and channel.get('io_state') not in (None, '', 'No'):
                text += ' (I/O thread %s)' % channel['io_state']  # Connecting: retries a broken link
            io_error = channel.get('last_io_error')
            sql_error = channel.get('last_sql_error') or channel.get('last_error')
            if io_error:
                text += ', last I/O error: %s' % io_error
            if sql_error:
                text += ', last SQL error: %s' % sql_error
            reasons.append(text)
    return '; '.join(reasons) or 'the replication threads are stopped'


def _evidence(metric, metrics, value):
    metrics = metrics or {}
    if metric == 'connections':
        conn = metrics.get('connections') or {}
        return '%s of %s connections in use (%s%%): %s active, %s idle' % (
            conn.get('total'), conn.get('max'), value, conn.get('active'), conn.get('idle'))
    if metric == 'disk':
        disk = metrics.get('disk') or {}
        return '%s%% used on the filesystem of %s' % (value, disk.get('path'))
    if metric == 'slow_queries':
        slow = metrics.get('slow_queries') or {}
        return '%s slow queries per minute over %s ms (source: %s)' % (
            value, slow.get('threshold_ms'), slow.get('source'))
    replication = metrics.get('replication') or {}
    return 'role %s, lag %s s' % (replication.get('role'), value)


def _skip_reason(metric, metrics):
    metrics = metrics or {}
    if metric == 'disk':
        return 'the data directory is not readable from where db_info ran'
    if metric == 'slow_queries':
        source = (metrics.get('slow_queries') or {}).get('source')
        return 'no slow-query source on this server (source: %s)' % source
    if metric == 'replication_lag':
        role = (metrics.get('replication') or {}).get('role')
        return 'no replication to measure (role: %s)' % role
    return 'not measured'


def _check_title(metric, limits):
    limit = limits.get('warning') if limits.get('warning') is not None else limits.get('critical')
    if limit is None:
        return '%s (no threshold set)' % METRICS[metric]['title']
    return METRICS[metric]['check'].format(limit=limit)


def health_findings(info, host=None, thresholds=None):
    """Findings (DESIGN.md "Findings and reports") from one db_info result.

    One finding per threshold: fail with the alert's level as severity, pass, or skip when
    the metric could not be measured.  A failed db_info result gives one critical finding.
    """
    info = info or {}
    prefix = 'health'
    if info.get('failed'):
        return [{
            'id': '%s.reachable' % prefix,
            'host': host,
            'title': 'Server answers and db_info can read its metrics',
            'severity': 'critical',
            'status': 'fail',
            'evidence': info.get('msg') or 'db_info failed',
            'remediation': 'Check that the server is running and that the login works (db_instance, credentials).',
            'frameworks': ['dbops-daily'],
        }]
    thresholds = thresholds or info.get('thresholds') or DEFAULT_THRESHOLDS
    metrics = info.get('metrics') or {}
    values = metric_values(metrics)
    given = info.get('alerts')
    alerts = worst_alerts(given if given is not None else evaluate(metrics, thresholds))
    findings = []
    for metric in sorted(DEFAULT_THRESHOLDS):
        limits = thresholds.get(metric) or {}
        unit = METRICS[metric]['unit']
        finding = {
            'id': '%s.%s' % (prefix, metric),
            'host': host,
            'title': _check_title(metric, limits),
            'severity': 'info',
            'status': 'pass',
            'evidence': None,
            'remediation': METRICS[metric]['remediation'],
            'frameworks': ['dbops-daily'],
        }
        value = values.get(metric)
        alert = alerts.get(metric)
        if value is None and alert is not None:
            finding['status'] = 'fail'
            finding['severity'] = alert['level']
            finding['evidence'] = alert.get('message') or '%s alert' % metric
        elif value is None:
            finding['status'] = 'skip'
            finding['evidence'] = _skip_reason(metric, metrics)
        else:
            finding['evidence'] = _evidence(metric, metrics, value)
            if alert and alert.get('value') is None:
                # not a threshold crossed by the value (a stopped replication channel): its message says why
                finding['status'] = 'fail'
                finding['severity'] = alert['level']
                finding['evidence'] = '%s; %s' % (alert.get('message') or '%s alert' % metric, finding['evidence'])
            elif alert:
                finding['status'] = 'fail'
                finding['severity'] = alert['level']
                finding['evidence'] += ' - %s threshold %s%s' % (alert['level'], alert['threshold'], unit)
        findings.append(finding)
    return findings


def rates(first, second, seconds):
    """Per-second rates between two counter samples (None where a counter is missing).

    A sample may carry ``own_<counter>``: how many statements db_info's own session had sent
    when it read that counter. The difference is db_info's own share of the delta and is
    taken out, so that an idle server does not show the monitoring queries as its load.
    """
    out = {}
    first, second = first or {}, second or {}
    for key in ('queries', 'transactions', 'slow'):
        a, b = first.get(key), second.get(key)
        if None in (a, b) or seconds <= 0:
            out[key] = None
            continue
        own_a, own_b = first.get('own_' + key), second.get('own_' + key)
        own = own_b - own_a if None not in (own_a, own_b) else 0
        out[key] = max(b - a - own, 0) / float(seconds)
    return out


def disk_metrics(path):
    """Usage of the filesystem holding ``path``, or None when it cannot be read from here."""
    if not path or not os.path.isdir(path):
        return None
    try:
        stat = os.statvfs(path)
    except OSError:
        return None
    total = stat.f_blocks * stat.f_frsize
    free = stat.f_bavail * stat.f_frsize
    used = total - stat.f_bfree * stat.f_frsize
    if total <= 0:
        return None
    # used / (used + available), as df computes Use%
    return {'path': path, 'total_bytes': total, 'used_bytes': used, 'free_bytes': free,
            'used_ratio': float(used) / (used + free) if used + free > 0 else None}
