# -*- coding: utf-8 -*-
# Copyright: dbops.admin contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The one report writer of dbops.admin: health tables and findings as Markdown, JUnit XML and JSON.

Documentation of each filter lives beside this file in ``<filter name>.yml``.
"""

from __future__ import annotations

import json
import re
import xml.etree.ElementTree as ET

from ansible.errors import AnsibleFilterError
from ansible_collections.dbops.admin.plugins.module_utils import _alerts
from ansible_collections.dbops.admin.plugins.module_utils._units import human_bytes, human_seconds

SEVERITIES = ('info', 'warning', 'critical')
STATUSES = ('pass', 'fail', 'skip')
REQUIRED_KEYS = ('id', 'title', 'severity', 'status')
_SEVERITY_RANK = {'info': 0, 'warning': 1, 'critical': 2}


# ---- findings -------------------------------------------------------------------------
def _check_findings(findings, filter_name):
    if findings is None:
        return []
    if isinstance(findings, dict):
        findings = findings.get('findings', [])
    if not isinstance(findings, (list, tuple)):
        raise AnsibleFilterError('%s expects a list of findings, got %s' % (filter_name, type(findings).__name__))
    checked = []
    for index, finding in enumerate(findings):
        if not isinstance(finding, dict):
            raise AnsibleFilterError('%s: finding #%d is not a dictionary' % (filter_name, index))
        missing = [k for k in REQUIRED_KEYS if finding.get(k) in (None, '')]
        if missing:
            raise AnsibleFilterError('%s: finding #%d (%s) lacks %s' % (
                filter_name, index, finding.get('id'), ', '.join(missing)))
        if finding['severity'] not in SEVERITIES:
            raise AnsibleFilterError('%s: finding %s has severity %r (use %s)' % (
                filter_name, finding['id'], finding['severity'], ', '.join(SEVERITIES)))
        if finding['status'] not in STATUSES:
            raise AnsibleFilterError('%s: finding %s has status %r (use %s)' % (
                filter_name, finding['id'], finding['status'], ', '.join(STATUSES)))
        checked.append(finding)
    return checked


def findings_summary(findings):
    """Counts by status and, for failures, by severity; ``status`` is the worst failed severity or ok."""
    findings = _check_findings(findings, 'findings_summary')
    summary = {'total': len(findings), 'pass': 0, 'fail': 0, 'skip': 0, 'critical': 0, 'warning': 0, 'info': 0}
    for finding in findings:
        summary[finding['status']] += 1
        if finding['status'] == 'fail':
            summary[finding['severity']] += 1
    summary['status'] = 'critical' if summary['critical'] else ('warning' if summary['warning'] else 'ok')
    return summary


def _sorted(findings):
    order = {'fail': 0, 'skip': 1, 'pass': 2}
    return sorted(findings, key=lambda f: (order[f['status']], -_SEVERITY_RANK[f['severity']],
                                           str(f.get('host') or ''), str(f['id'])))


def _text(value):
    if value is None:
        return ''
    if isinstance(value, (dict, list)):
        return json.dumps(value, sort_keys=True, default=str)
    return str(value)


def _md_cell(value):
    return _text(value).replace('|', '\\|').replace('\n', ' ')


def findings_to_markdown(findings, title='dbops.admin report', preamble=None, code_block=None):
    """Findings as a Markdown document: summary, a table of every finding, then what to fix.

    ``preamble`` is Markdown placed under the title; ``code_block`` is preformatted text (a
    health table) placed after it in a fenced block.
    """
    findings = _check_findings(findings, 'findings_to_markdown')
    summary = findings_summary(findings)
    with_host = any(f.get('host') for f in findings)
    lines = ['# %s' % title, '']
    if preamble:
        lines += [str(preamble).rstrip(), '']
    if code_block:
        lines += ['```', str(code_block).rstrip('\n'), '```', '']
    lines.append('**Status: %s** - %d findings: %d failed (%d critical, %d warning), %d passed, %d skipped.' % (
        summary['status'].upper(), summary['total'], summary['fail'], summary['critical'], summary['warning'],
        summary['pass'], summary['skip']))
    lines.append('')
    if findings:
        header = (['Host'] if with_host else []) + ['Status', 'Severity', 'ID', 'Title', 'Evidence']
        lines.append('| ' + ' | '.join(header) + ' |')
        lines.append('|' + '---|' * len(header))
        for finding in _sorted(findings):
            row = ([_md_cell(finding.get('host'))] if with_host else []) + [
                finding['status'].upper(), finding['severity'], '`%s`' % _md_cell(finding['id']),
                _md_cell(finding['title']), _md_cell(finding.get('evidence'))]
            lines.append('| ' + ' | '.join(row) + ' |')
        lines.append('')
    failed = [f for f in _sorted(findings) if f['status'] == 'fail']
    if failed:
        lines += ['## Remediation', '']
        for finding in failed:
            where = ' on %s' % finding['host'] if finding.get('host') else ''
            lines.append('- **%s**%s (%s): %s' % (finding['id'], where, finding['severity'],
                                                  _text(finding.get('remediation')) or 'no remediation given'))
            frameworks = finding.get('frameworks') or []
            if frameworks:
                lines.append('  Frameworks: %s' % ', '.join(_text(f) for f in frameworks))
        lines.append('')
    return '\n'.join(lines)


# Characters XML 1.0 does not allow at all, not even as character references: C0 controls other than
# tab, newline and carriage return, lone surrogates, U+FFFE and U+FFFF.
_XML_INVALID = re.compile('[^\u0009\u000a\u000d\u0020-\ud7ff\ue000-\ufffd\U00010000-\U0010ffff]')


def _xml(value):
    """Text safe for an XML attribute or element: each invalid character is shown as its escape (\\x1b)."""
    text = _text(value)
    return _XML_INVALID.sub(lambda m: '\\x%02x' % ord(m.group()) if ord(m.group()) < 0x100
                            else '\\u%04x' % ord(m.group()), text)


def findings_to_junit(findings, suite='dbops.admin'):
    """Findings as JUnit XML: one testcase per finding, failed ones as failures, skipped as skipped."""
    findings = _check_findings(findings, 'findings_to_junit')
    summary = findings_summary(findings)
    # every text goes through _xml(): a control character (in query text, a server message, a host name)
    # written as is makes a file no JUnit reader can parse
    root = ET.Element('testsuites', name=_xml(suite), tests=str(summary['total']),
                      failures=str(summary['fail']), skipped=str(summary['skip']))
    hosts = []
    for finding in findings:
        host = finding.get('host') or ''
        if host not in hosts:
            hosts.append(host)
    for host in hosts:
        cases = [f for f in findings if (f.get('host') or '') == host]
        name = _xml('%s.%s' % (suite, host) if host else suite)
        element = ET.SubElement(root, 'testsuite', name=name, tests=str(len(cases)),
                                failures=str(sum(1 for f in cases if f['status'] == 'fail')),
                                skipped=str(sum(1 for f in cases if f['status'] == 'skip')), errors='0')
        for finding in cases:
            case = ET.SubElement(element, 'testcase', classname=name,
                                 name=_xml('%s: %s' % (_text(finding['id']), _text(finding['title']))))
            body = 'evidence: %s\nremediation: %s' % (_text(finding.get('evidence')), _text(finding.get('remediation')))
            if finding.get('frameworks'):
                body += '\nframeworks: %s' % ', '.join(_text(f) for f in finding['frameworks'])
            if finding['status'] == 'fail':
                failure = ET.SubElement(case, 'failure', type=finding['severity'],
                                        message=_xml('%s: %s' % (finding['severity'], _text(finding.get('evidence')))))
                failure.text = _xml(body)
            elif finding['status'] == 'skip':
                ET.SubElement(case, 'skipped', message=_xml(finding.get('evidence')))
            else:
                out = ET.SubElement(case, 'system-out')
                out.text = _xml(body)
    return '<?xml version="1.0" encoding="UTF-8"?>\n' + ET.tostring(root, encoding='unicode') + '\n'


def findings_to_json(findings, indent=2, extra=None):
    """Findings as a JSON document ``{summary, findings}`` (plus ``extra`` keys)."""
    findings = _check_findings(findings, 'findings_to_json')
    document = {'summary': findings_summary(findings), 'findings': _sorted(findings)}
    if extra:
        if not isinstance(extra, dict):
            raise AnsibleFilterError('findings_to_json: extra must be a dictionary')
        document.update(extra)
    return json.dumps(document, indent=indent, sort_keys=True, default=str) + '\n'


def health_findings(info, host=None):
    """Findings from one db_info result (or from a dict of name -> db_info result)."""
    if isinstance(info, dict) and info and not _looks_like_result(info):
        findings = []
        for name, result in info.items():
            findings.extend(_alerts.health_findings(result, host=name))
        return findings
    if not isinstance(info, dict):
        raise AnsibleFilterError('health_findings expects a db_info result, got %s' % type(info).__name__)
    return _alerts.health_findings(info, host=host)


# ---- health table -----------------------------------------------------------------------
def _looks_like_result(value):
    """One db_info result, as opposed to a dictionary of results keyed by host name.

    Decided by the types of the keys, not their presence: an inventory host may well be
    called ``server``, ``metrics`` or ``alerts``.
    """
    if not isinstance(value, dict):
        return False
    server, metrics = value.get('server'), value.get('metrics')
    if isinstance(server, dict) and not _has_result_keys(server):
        return True
    if isinstance(metrics, dict) and not _has_result_keys(metrics):
        return True
    return isinstance(value.get('failed'), bool) or isinstance(value.get('alerts'), list)


def _has_result_keys(value):
    return any(key in value for key in ('server', 'metrics', 'alerts', 'failed'))


def _named_results(data):
    if _looks_like_result(data):
        return [((data.get('server') or {}).get('name') or data.get('host') or 'server', data)]
    if isinstance(data, dict):
        return list(data.items())
    if isinstance(data, (list, tuple)):
        named = []
        for index, item in enumerate(data):
            if not isinstance(item, dict):
                raise AnsibleFilterError('health_table: item #%d is not a db_info result' % index)
            name = item.get('host') or item.get('inventory_hostname') or item.get('item') or 'server %d' % (index + 1)
            named.append((str(name), item.get('info', item)))
        return named
    raise AnsibleFilterError('health_table expects a db_info result, a dict of them or a list, got %s'
                             % type(data).__name__)


def _pct(ratio):
    return '-' if ratio is None else '%.1f%%' % (float(ratio) * 100)


def _num(value, suffix=''):
    if value is None:
        return '-'
    if isinstance(value, float):
        value = ('%.2f' % value).rstrip('0').rstrip('.')
    return '%s%s' % (value, suffix)


def _state(metric, alerts, value):
    alert = _alerts.worst_alerts(alerts).get(metric)  # the worst one, whatever the order of the list
    if alert is not None:
        return str(alert.get('level') or 'alert').upper()
    return 'n/a' if value is None else 'ok'


def _limits(thresholds, metric, unit):
    levels = thresholds.get(metric) or {}
    return tuple('-' if levels.get(level) is None else '%s%s' % (levels[level], unit) for level in _alerts.LEVELS)


def _server_table(name, info):
    if info.get('failed'):
        return ['%s: FAILED - %s' % (name, info.get('msg') or 'db_info failed'), '']
    server = info.get('server') or {}
    metrics = info.get('metrics') or {}
    alerts = info.get('alerts') or []
    thresholds = info.get('thresholds') or _alerts.DEFAULT_THRESHOLDS
    values = _alerts.metric_values(metrics)
    lines = ['%s: %s %s, up %s' % (name, server.get('flavor') or server.get('engine') or '?',
                                   server.get('version') or '?', human_seconds(server.get('uptime_seconds')))]
    rows = [('metric', 'value', 'warning', 'critical', 'state')]
    conn = metrics.get('connections')
    if conn is not None:
        rows.append(('connections', '%s/%s (%s), %s active, %s idle' % (
            conn.get('total'), conn.get('max'), _pct(conn.get('used_ratio')), conn.get('active'), conn.get('idle')))
            + _limits(thresholds, 'connections', '%') + (_state('connections', alerts, values['connections']),))
    if 'cache_hit_ratio' in metrics:
        rows.append(('cache hit ratio', _pct(metrics.get('cache_hit_ratio')), '-', '-', ''))
    if 'queries_per_second' in metrics:
        rows.append(('queries/s', _num(metrics.get('queries_per_second')), '-', '-', ''))
    if 'transactions_per_second' in metrics:
        rows.append(('transactions/s', _num(metrics.get('transactions_per_second')), '-', '-', ''))
    if 'locks' in metrics:
        rows.append(('locks waiting', _num((metrics.get('locks') or {}).get('waiting')), '-', '-', ''))
    if 'deadlocks' in metrics:
        rows.append(('deadlocks', _num(metrics.get('deadlocks')), '-', '-', ''))
    if 'longest_transaction_seconds' in metrics:
        rows.append(('longest transaction', _num(metrics.get('longest_transaction_seconds'), ' s'), '-', '-', ''))
    slow = metrics.get('slow_queries')
    if slow is not None:
        rate = '-' if slow.get('per_minute') is None else '%s/min' % _num(slow.get('per_minute'))
        text = '%s (%s, >= %s ms)' % (rate, slow.get('source'), _num(slow.get('threshold_ms')))
        rows.append(('slow queries', text) + _limits(thresholds, 'slow_queries', '/min')
                    + (_state('slow_queries', alerts, values['slow_queries']),))
    repl = metrics.get('replication')
    if repl is not None:
        text = '%s, lag %s, %d replica(s)' % (
            repl.get('role'), 'STOPPED' if _alerts.replication_stopped(metrics) else _num(repl.get('lag_seconds'), ' s'),
            len(repl.get('replicas') or []))
        rows.append(('replication', text) + _limits(thresholds, 'replication_lag', 's')
                    + (_state('replication_lag', alerts, values['replication_lag']),))
    disk = metrics.get('disk')
    if disk is not None:
        text = '%s of %s used (%s)' % (_pct(disk.get('used_ratio')), human_bytes(disk.get('total_bytes')),
                                       disk.get('path'))
        rows.append(('disk', text) + _limits(thresholds, 'disk', '%') + (_state('disk', alerts, values['disk']),))
    databases = info.get('databases')
    if databases is not None:
        total = sum(d.get('size_bytes') or 0 for d in databases)
        rows.append(('databases', '%d, %s' % (len(databases), human_bytes(total)), '-', '-', ''))
    if len(rows) == 1:
        rows = []
        lines.append('  no metrics gathered (add metrics and databases to gather_subset)')
    widths = [max(len(str(row[i])) for row in rows) for i in range(5)] if rows else []
    for row in rows:
        lines.append('  ' + '  '.join(str(cell).ljust(widths[i]) for i, cell in enumerate(row)).rstrip())
    if alerts:
        lines.append('  alerts:')
        for alert in sorted(alerts, key=lambda a: -_alerts.level_rank(a.get('level'))):
            if alert.get('value') is None:
                lines.append('    %s %s: %s' % (str(alert.get('level')).upper(), alert.get('metric'),
                                                alert.get('message') or 'not measurable'))
                continue
            lines.append('    %s %s = %s%s (threshold %s%s)' % (
                str(alert.get('level')).upper(), alert.get('metric'), alert.get('value'), alert.get('unit', ''),
                alert.get('threshold'), alert.get('unit', '')))
    else:
        lines.append('  alerts: none')
    lines.append('')
    return lines


def health_table(data, title=None):
    """db_info results as a readable text table of metrics and alerts, one block per server."""
    lines = []
    if title:
        lines += [str(title), '=' * len(str(title)), '']
    for name, info in _named_results(data):
        if not isinstance(info, dict):
            raise AnsibleFilterError('health_table: the result of %s is not a dictionary' % name)
        lines += _server_table(name, info)
    return '\n'.join(lines).rstrip('\n') + '\n'


class FilterModule:
    """dbops.admin report filters."""

    def filters(self):
        return {
            'health_table': health_table,
            'health_findings': health_findings,
            'findings_summary': findings_summary,
            'findings_to_markdown': findings_to_markdown,
            'findings_to_junit': findings_to_junit,
            'findings_to_json': findings_to_json,
        }
