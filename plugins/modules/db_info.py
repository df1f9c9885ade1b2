#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: dbops.admin contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r'''
module: db_info
short_description: Gather facts, health metrics and alerts from PostgreSQL, MySQL and MariaDB
description:
  - Reads the server's identity, settings, databases, health metrics and replication state, and evaluates alert
    thresholds on them. It never changes anything.
  - Metrics use the definitions of the common exporters. The PostgreSQL cache hit ratio is
    C(sum(blks_hit) / (sum(blks_hit) + sum(blks_read))) over C(pg_stat_database); the InnoDB one is
    C(1 - Innodb_buffer_pool_reads / Innodb_buffer_pool_read_requests).
  - A PostgreSQL standby whose received WAL is all replayed has a lag of 0, even when its last replayed transaction
    is old (an idle primary sends nothing, and that is not lag).
  - Slow queries come from C(pg_stat_statements) when that extension is created in the connected database (this
    module does not create it), otherwise the source is V(unavailable). On MySQL and MariaDB they come from
    C(performance_schema) statement digests when it is on, else from the C(mysql.slow_log) table when the slow log
    writes to a table, else from the C(Slow_queries) status counter (which uses the server's C(long_query_time)).
    The C(source) key of RV(metrics.slow_queries) says which.
version_added: 0.1.0
author: dbops.admin maintainers (@dbops-admin)
extends_documentation_fragment:
  - dbops.admin.connection
  - dbops.admin.attributes.INFO_MODULE
options:
  gather_subset:
    description:
      - What to gather. V(all) is everything; V(server) is always gathered.
      - V(metrics) gives connections, cache hit ratio, locks, deadlocks, the longest transaction, slow queries,
        disk usage and, with O(sample_seconds), throughput; V(replication) adds RV(metrics.replication).
      - A name prefixed with C(!) removes it from V(all), for example V(!settings).
    type: list
    elements: str
    default: [all]
    choices: [all, server, settings, databases, metrics, replication, '!settings', '!databases', '!metrics',
              '!replication']
  thresholds:
    description:
      - Alert thresholds, merged over the defaults. Each metric takes C(warning) and C(critical); a level set to
        null is disabled.
      - C(connections) is the percentage of C(max_connections) in use (default 70 / 90).
      - C(disk) is the percentage used of the filesystem holding the data directory (default 80 / 95).
      - C(slow_queries) is slow queries per minute (default 10 / 50).
      - C(replication_lag) is in seconds (default 30 / 300).
      - A level must be a finite number, 0 or more (at most 100 for the percentages C(connections) and C(disk)),
        and C(warning) may not be above C(critical) once merged; anything else fails naming the threshold.
    type: dict
    default: {}
  slow_query_ms:
    description:
      - A statement whose mean execution time is at least this many milliseconds counts as slow (0 or more).
    type: int
    default: 1000
  sample_seconds:
    description:
      - Take two samples this many seconds apart to compute RV(metrics.queries_per_second),
        RV(metrics.transactions_per_second) and the slow-query rate. V(0) takes no sample.
      - Must be a finite number, 0 or more.
    type: float
    default: 0
notes:
  - Disk usage is reported only when the module runs on the database host (the login host is local or a socket)
    and can read the data directory.
  - Some metrics need privileges (C(pg_monitor) or superuser on PostgreSQL; C(PROCESS) and C(REPLICATION CLIENT) or
    C(REPLICA MONITOR) on MySQL/MariaDB); a metric that cannot be read is returned as null.
seealso:
  - module: dbops.admin.db_config
'''

EXAMPLES = r'''
- name: Health of a PostgreSQL server
  dbops.admin.db_info:
    engine: postgresql
    login_host: 127.0.0.1
    login_user: postgres
    login_password: "{{ vault_pg_password }}"
    gather_subset: [server, metrics, replication]
  register: health

- name: Fail when any critical alert fired
  ansible.builtin.assert:
    that: health.alerts | selectattr('level', 'equalto', 'critical') | list | length == 0
    fail_msg: "{{ health.alerts | map(attribute='message') | list }}"

- name: Stricter thresholds and throughput sampled over five seconds
  dbops.admin.db_info:
    engine: mariadb
    login_user: root
    login_password: "{{ vault_mariadb_password }}"
    thresholds:
      connections: {warning: 50, critical: 80}
      replication_lag: {warning: 10}
    slow_query_ms: 500
    sample_seconds: 5

- name: Print it as a table
  ansible.builtin.debug:
    msg: "{{ (health | dbops.admin.health_table).splitlines() }}"
'''

RETURN = r'''
server:
  description: Identity of the server.
  returned: always
  type: dict
  sample: {engine: postgresql, flavor: postgresql, version: '15.4', version_num: 150004, uptime_seconds: 86400}
settings:
  description: Every server setting by name, as the server shows it.
  returned: when settings is gathered
  type: dict
databases:
  description: Databases (schemas on MySQL) and their size.
  returned: when databases is gathered
  type: list
  elements: dict
  sample: [{name: postgres, size_bytes: 7631663}]
metrics:
  description: Health metrics.
  returned: when metrics or replication is gathered
  type: dict
  contains:
    connections:
      description: Client connections; C(used_ratio) is C(total / max).
      type: dict
      sample: {active: 1, idle: 3, total: 4, max: 100, used_ratio: 0.04}
    cache_hit_ratio:
      description: Buffer cache hit ratio between 0 and 1 (null before any read).
      type: float
    queries_per_second:
      description:
        - Statements per second over O(sample_seconds) (PostgreSQL needs pg_stat_statements for this), without the
          statements of db_info itself.
      type: float
      returned: when O(sample_seconds) > 0
    transactions_per_second:
      description: Commits and rollbacks per second over O(sample_seconds).
      type: float
      returned: when O(sample_seconds) > 0
    locks:
      description: Lock waits; C(waiting) is the number of lock requests waiting now.
      type: dict
    deadlocks:
      description: Deadlocks since the statistics were reset or the server started.
      type: int
    longest_transaction_seconds:
      description: Age of the oldest open transaction of another session (0 when none).
      type: float
    slow_queries:
      description:
        - C(count) slow executions in the source's window, C(per_minute), C(threshold_ms), C(top) slowest
          statements, and C(source) (V(pg_stat_statements), V(performance_schema), V(slow_log),
          V(status:Slow_queries) or V(unavailable)).
      type: dict
    replication:
      description:
        - C(role) (V(primary), V(replica) or V(standalone)), C(lag_seconds), C(lag_bytes) and C(replicas).
        - A replica also has C(running), false when it does not replicate (a stopped replication thread on
          MySQL and MariaDB, whose C(channels) say which; no WAL receiver while C(primary_conninfo) is set on
          PostgreSQL); that raises a C(replication_lag) alert with a null value.
        - On MySQL and MariaDB each of C(channels) has C(io_running), C(io_state) (V(Yes), V(No) or V(Connecting)),
          C(sql_running), C(last_io_error) (why the I/O thread cannot fetch from the source), C(last_sql_error) and
          their error numbers; the alert of a stopped replica quotes both errors.
        - C(role) is V(unknown), with a C(reason), when a MySQL or MariaDB login may not read the replica status.
        - On PostgreSQL, walsenders that replay nothing (a base backup in progress, the WAL stream of
          pg_basebackup, pg_receivewal or Barman) are listed in C(wal_clients), not in C(replicas); they make no
          server a primary and have no lag.
        - A PostgreSQL primary also lists its replication C(slots). A physical slot that holds WAL while no standby
          is connected to it makes the role V(primary) with C(running) false (its standby is gone, and the slot
          keeps WAL until the disk fills), which raises the same null-valued C(replication_lag) alert.
      type: dict
      returned: when replication is gathered
    disk:
      description: Filesystem of the data directory (C(path), C(total_bytes), C(used_bytes), C(free_bytes), C(used_ratio)).
      type: dict
      returned: when the data directory is readable from where the module runs
alerts:
  description:
    - Thresholds crossed, critical first, each with a C(message).
    - A replica whose replication is stopped gives a C(replication_lag) alert whose C(value) is null.
  returned: always
  type: list
  elements: dict
  sample: [{metric: connections, value: 93.0, threshold: 90, level: critical, unit: '%'}]
thresholds:
  description: The thresholds in effect (defaults merged with O(thresholds)).
  returned: always
  type: dict
queries:
  description: Always empty; this module runs no statement that changes anything.
  returned: always
  type: list
  elements: str
'''

import math  # noqa: E402
import os  # noqa: E402
import socket  # noqa: E402
import time  # noqa: E402

from ansible.module_utils.basic import AnsibleModule  # noqa: E402
from ansible_collections.dbops.admin.plugins.module_utils import _alerts  # noqa: E402
from ansible_collections.dbops.admin.plugins.module_utils._connection import (  # noqa: E402
    connection_argument_spec, normalize_engine, run_module)

SUBSETS = ('server', 'settings', 'databases', 'metrics', 'replication')
_LOCAL_HOSTS = ('localhost', '127.0.0.1', '::1', 'localhost.localdomain')


def wanted_subsets(requested):
    wanted = set()
    for item in requested:
        if item == 'all':
            wanted.update(SUBSETS)
        elif not item.startswith('!'):
            wanted.add(item)
    if all(item.startswith('!') for item in requested):
        wanted.update(SUBSETS)
    for item in requested:
        if item.startswith('!'):
            wanted.discard(item[1:])
    wanted.add('server')
    return wanted


def runs_on_database_host(params):
    """Whether a path the server reports is a path on this machine."""
    if params.get('login_unix_socket'):
        return True
    host = params.get('login_host')
    if not host and normalize_engine(params.get('engine')) == 'postgresql':
        host = os.environ.get('PGHOST')
    if not host or host.startswith('/'):
        return True
    return host in _LOCAL_HOSTS or host in (socket.gethostname(), socket.getfqdn())


def gather_metrics(module, engine, wanted):
    slow_ms = module.params['slow_query_ms']
    metrics = {}
    sample = module.params['sample_seconds']
    if 'metrics' in wanted:
        first = second = None
        if sample > 0:
            # the two samples bracket the pause only, not the reads of the other metrics
            first = engine.info_counters(slow_ms)
            started = time.monotonic()
            time.sleep(sample)
            second = engine.info_counters(slow_ms)
            elapsed = time.monotonic() - started
        metrics['connections'] = engine.info_connections()
        metrics['cache_hit_ratio'] = engine.info_cache_hit_ratio()
        metrics['locks'] = engine.info_locks()
        metrics['deadlocks'] = engine.info_deadlocks()
        metrics['longest_transaction_seconds'] = engine.info_longest_transaction_seconds()
        metrics['slow_queries'] = engine.info_slow_queries(slow_ms)
        if sample > 0:
            rates = _alerts.rates(first, second, elapsed)
            metrics['queries_per_second'] = rates['queries']
            metrics['transactions_per_second'] = rates['transactions']
            metrics['sample_seconds'] = sample
            if rates['slow'] is not None:
                metrics['slow_queries']['per_minute'] = rates['slow'] * 60
                metrics['slow_queries']['window_seconds'] = sample
        if runs_on_database_host(module.params):
            disk = _alerts.disk_metrics(engine.info_data_directory())
            if disk is not None:
                metrics['disk'] = disk
    if 'replication' in wanted:
        metrics['replication'] = engine.info_replication()
    return metrics


def gather(module, engine, thresholds):
    wanted = wanted_subsets(module.params['gather_subset'])
    result = {'changed': False, 'server': engine.info_server()}
    if 'settings' in wanted:
        result['settings'] = engine.info_settings()
    if 'databases' in wanted:
        result['databases'] = engine.info_databases()
    if wanted & {'metrics', 'replication'}:
        result['metrics'] = gather_metrics(module, engine, wanted)
    # alerts on the exact values, then rounded for display
    result['alerts'] = _alerts.evaluate(result.get('metrics'), thresholds)
    _alerts.round_for_display(result.get('metrics'))
    result['thresholds'] = thresholds
    return result


def option_problem(params):
    """What is wrong with slow_query_ms or sample_seconds, naming the option, or None."""
    if params['slow_query_ms'] < 0:
        return 'slow_query_ms must be 0 or more milliseconds, not %s' % params['slow_query_ms']
    sample = params['sample_seconds']
    if not math.isfinite(sample):
        return 'sample_seconds must be a finite number of seconds (0 takes no sample), not %s' % sample
    if sample < 0:
        return 'sample_seconds must be 0 (no sample) or more seconds, not %s' % sample
    return None


def main():
    argument_spec = connection_argument_spec()
    argument_spec.update(
        gather_subset=dict(type='list', elements='str', default=['all'],
                           choices=['all'] + list(SUBSETS) + ['!' + s for s in SUBSETS if s != 'server']),
        thresholds=dict(type='dict', default={}),
        slow_query_ms=dict(type='int', default=1000),
        sample_seconds=dict(type='float', default=0),
    )
    module = AnsibleModule(argument_spec, supports_check_mode=True)
    try:
        thresholds = _alerts.merge_thresholds(module.params['thresholds'])
    except ValueError as exc:
        module.fail_json(msg='invalid thresholds: %s' % exc, queries=[])
    problem = option_problem(module.params)
    if problem:
        module.fail_json(msg=problem, queries=[])
    run_module(module, lambda engine: gather(module, engine, thresholds))


if __name__ == '__main__':
    main()
