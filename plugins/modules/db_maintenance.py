#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: dbops.admin contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r'''
module: db_maintenance
short_description: Refresh statistics and do table upkeep (ANALYZE, VACUUM, REINDEX, OPTIMIZE, histograms)
description:
  - Runs one maintenance action on every table in scope, one statement per table, and returns each table
    processed with its statistics timestamps before and after.
  - The scope is the tables listed in O(tables), else every table of O(schema), else every table of the
    database (PostgreSQL - ordinary tables and materialized views of all user schemas; MySQL/MariaDB - base
    tables of the database).
  - With O(only_if_stale=true) only the tables whose modified rows since the last statistics update reach
    both O(stale_min_rows) and O(stale_ratio) times the table's rows are touched, so a scheduled run reports
    C(changed=false) when nothing is stale. A table without a single modified row is never stale, also with
    both thresholds at 0. Without it every table in scope is processed and the run is
    always a change.
  - PostgreSQL counts modified rows with C(pg_stat_user_tables.n_mod_since_analyze) for V(analyze) and
    V(reindex), dead rows (C(n_dead_tup)) for V(vacuum) and V(vacuum_full), the larger of the two for
    V(vacuum_analyze); the table's rows are C(reltuples) (or C(n_live_tup) when larger).
  - MySQL/MariaDB have no exact counter of rows modified since the last ANALYZE. The module uses InnoDB's
    C(MODIFIED_COUNTER) (C(information_schema.INNODB_SYS_TABLESTATS) on MariaDB, C(INNODB_TABLESTATS) on MySQL),
    which counts rows changed since InnoDB last recalculated the table's statistics. It is an approximation
    - it is kept in memory (zero after a restart or before the table was opened), InnoDB resets it when it
    recalculates statistics by itself (C(STATS_AUTO_RECALC), after about 10 % of the rows changed) and names
    with characters outside ASCII may not be matched. For V(histogram) a table that never had persistent
    (engine-independent) statistics or histograms counts as stale when it has at least O(stale_min_rows) rows.
  - Actions by engine - PostgreSQL V(analyze) (C(ANALYZE)), V(vacuum) (C(VACUUM)), V(vacuum_analyze)
    (C(VACUUM (ANALYZE\))), V(vacuum_full) (C(VACUUM (FULL\)), rewrites the table under an exclusive lock), V(reindex)
    (C(REINDEX TABLE CONCURRENTLY) on PostgreSQL 12 and later with O(concurrently)); MySQL/MariaDB V(analyze)
    (C(ANALYZE TABLE)), V(optimize) (C(OPTIMIZE TABLE), on InnoDB a rebuild plus analyze), V(reindex)
    (C(ALTER TABLE ... FORCE), an online rebuild of the table and its indexes), V(histogram) (MariaDB
    C(ANALYZE TABLE ... PERSISTENT FOR ALL) or C(PERSISTENT FOR COLUMNS (...\) INDEXES ALL), MySQL 8
    C(ANALYZE TABLE ... UPDATE HISTOGRAM ON ... WITH n BUCKETS)). Any other combination fails before anything runs.
version_added: 0.1.0
author: dbops.admin maintainers (@dbops-admin)
extends_documentation_fragment:
  - dbops.admin.connection
  - dbops.admin.attributes
options:
  action:
    description:
      - The maintenance to run; see the description for what each does on each engine.
    type: str
    required: true
    choices: [analyze, vacuum, vacuum_analyze, vacuum_full, reindex, optimize, histogram]
  database:
    description:
      - Database to work in (PostgreSQL - the database to connect to; MySQL/MariaDB - the database whose
        tables are in scope). Defaults to O(login_db).
    type: str
  schema:
    description:
      - Limit the scope to one schema (PostgreSQL) or database (MySQL/MariaDB, the same as O(database)).
      - Also the schema of the names in O(tables) that are not qualified.
    type: str
  tables:
    description:
      - The tables to process, as C(table) or C(schema.table). A missing table fails the run before
        anything is done.
      - On PostgreSQL a partitioned table may be named; the action recurses into its partitions (and
        C(analyze) also gathers the parent's own statistics, which autovacuum never does).
    type: list
    elements: str
  only_if_stale:
    description:
      - Touch only the tables whose statistics are stale (see O(stale_ratio) and O(stale_min_rows)).
    type: bool
    default: false
  stale_ratio:
    description:
      - Fraction of the table's rows that must have been modified since the last statistics update (0 or more).
    type: float
    default: 0.1
  stale_min_rows:
    description:
      - Minimum number of modified rows for a table to be stale, whatever its size (0 or more).
    type: int
    default: 50
  concurrently:
    description:
      - For V(reindex) on PostgreSQL 12 and later, rebuild the indexes without blocking writes.
    type: bool
    default: true
  columns:
    description:
      - For V(histogram), the columns to build histograms on. Default all columns (MariaDB), or on MySQL 8
        every column a histogram can be built on (not JSON or spatial, not alone in a unique index).
      - A column missing from one of the tables fails the run before anything is done.
      - Given with another O(action), the run fails before anything is done.
    type: list
    elements: str
  buckets:
    description:
      - For V(histogram) on MySQL 8, the number of buckets (1 to 1024). MariaDB sizes histograms with its
        C(histogram_size) setting.
    type: int
    default: 100
seealso:
  - module: dbops.admin.db_index
'''

EXAMPLES = r'''
- name: Nightly - refresh statistics only where they are stale
  dbops.admin.db_maintenance:
    engine: postgresql
    login_db: shop
    action: analyze
    only_if_stale: true

- name: Vacuum and analyze two tables
  dbops.admin.db_maintenance:
    engine: postgresql
    login_db: shop
    action: vacuum_analyze
    tables: [public.orders, public.order_lines]

- name: MariaDB persistent statistics with histograms for one database
  dbops.admin.db_maintenance:
    engine: mariadb
    database: shop
    action: histogram
    only_if_stale: true
'''

RETURN = r'''
tables:
  description: The tables processed (in check mode, that would be), in order.
  returned: always
  type: list
  elements: dict
  contains:
    schema:
      description: Schema (database on MySQL/MariaDB).
      type: str
    table:
      description: Table name.
      type: str
    action:
      description: The action run.
      type: str
    statement:
      description: The statement run.
      type: str
    modified_rows:
      description: Rows modified (or dead, for vacuum actions) counted for the staleness test.
      type: int
    rows:
      description: Rows of the table counted for the staleness test.
      type: int
    before:
      description: Statistics before - C(last_analyze), C(last_autoanalyze), C(last_vacuum),
        C(last_autovacuum), C(analyze_count), C(vacuum_count), C(n_mod_since_analyze), C(n_dead_tup),
        C(size_bytes) on PostgreSQL; C(last_analyze) (InnoDB persistent statistics), C(update_time),
        C(create_time), C(modified_rows), C(rows), C(size_bytes), C(histogram_columns) on MySQL/MariaDB.
      type: dict
    after:
      description: The same statistics after the action; empty in check mode.
      type: dict
    messages:
      description: Notes and warnings the server returned for this table (result rows on MySQL/MariaDB,
        notices on PostgreSQL, for example an invalid index REINDEX CONCURRENTLY skipped).
      type: list
      elements: str
actions:
  description: What was done (or would be), one line per table.
  returned: always
  type: list
  elements: str
skipped_tables:
  description:
    - Tables in scope left alone because their statistics are not stale (with O(only_if_stale)).
    - On PostgreSQL also the tables of a database or schema scope the login may not maintain (VACUUM and
      ANALYZE need the table's owner, the database owner or a superuser; REINDEX the table's owner), with a
      warning - the server itself would skip them with only a notice. Such a table named in O(tables) fails the
      run before anything is done.
  returned: always
  type: list
  elements: str
queries:
  description: Statements executed (or, in check mode, that would be), secrets masked.
  returned: always
  type: list
  elements: str
'''

from ansible.module_utils.basic import AnsibleModule  # noqa: E402
from ansible_collections.dbops.admin.plugins.module_utils._connection import connection_argument_spec, run_module  # noqa: E402
from ansible_collections.dbops.admin.plugins.module_utils._diff import DifferenceTracker  # noqa: E402
from ansible_collections.dbops.admin.plugins.module_utils._errors import DbError  # noqa: E402


def converge(module, engine):
    params = module.params
    action = params['action']
    engine.maintenance_check_action(action)
    schema = params['schema'] or (params['database'] if engine.name == 'mysql' else None)
    options = {'concurrently': params['concurrently'], 'columns': params['columns'], 'buckets': params['buckets']}
    tracker = DifferenceTracker()
    processed, skipped, planned, not_permitted = [], [], [], []
    for table in engine.maintenance_tables(schema, params['tables']):
        name = '%s.%s' % (table['schema'], table['table'])
        if not engine.maintenance_permitted(table, action):
            # PostgreSQL would skip it with nothing but a warning: never report that as done
            not_permitted.append(name)
            continue
        if params['only_if_stale'] and not engine.maintenance_is_stale(
                table, action, params['stale_ratio'], params['stale_min_rows']):
            skipped.append(name)
            continue
        modified, rows = engine.maintenance_modified(table, action)
        # every statement is built (and so checked) before the first one runs
        entry = {'schema': table['schema'], 'table': table['table'], 'action': action,
                 'statement': engine.render(engine.maintenance_statement(action, table, options)),
                 'modified_rows': modified, 'rows': rows, 'before': engine.maintenance_view(table)}
        planned.append((table, entry))
    if not_permitted:
        why = ('only the owner of a table%s may %s it' % (
            '' if action == 'reindex' else ', the database owner or a superuser', action.replace('_', ' ')))
        if params['tables']:
            raise DbError(action.replace('_', ' '), ', '.join(not_permitted), why)
        skipped.extend(not_permitted)
        module.warn('%s skipped %s: %s' % (action.replace('_', ' '), ', '.join(not_permitted), why))
    for table, entry in planned:
        name = '%s.%s' % (table['schema'], table['table'])
        entry['messages'] = engine.maintenance_run(action, table, options)
        entry['after'] = {} if engine.check_mode else engine.maintenance_table_stats(table)
        tracker.action('%s %s' % (action, name))
        processed.append(entry)
    result = {'changed': tracker.changed, 'tables': processed, 'skipped_tables': skipped, 'actions': tracker.actions}
    if module._diff:
        result['diff'] = {'before': {t['schema'] + '.' + t['table']: t['before'] for t in processed},
                          'after': {t['schema'] + '.' + t['table']: t['after'] for t in processed}}
    return result


def main():
    argument_spec = connection_argument_spec()
    argument_spec.update(
        action=dict(type='str', required=True,
                    choices=['analyze', 'vacuum', 'vacuum_analyze', 'vacuum_full', 'reindex', 'optimize', 'histogram']),
        database=dict(type='str'),
        schema=dict(type='str'),
        tables=dict(type='list', elements='str'),
        only_if_stale=dict(type='bool', default=False),
        stale_ratio=dict(type='float', default=0.1),
        stale_min_rows=dict(type='int', default=50),
        concurrently=dict(type='bool', default=True),
        columns=dict(type='list', elements='str'),
        buckets=dict(type='int', default=100),
    )
    module = AnsibleModule(argument_spec, supports_check_mode=True)
    params = module.params
    if not 0 <= params['stale_ratio'] < float('inf'):   # also refuses nan
        module.fail_json(msg='stale_ratio must be a fraction of the rows, 0 or more (0.1 is 10%%), not %s'
                         % params['stale_ratio'], queries=[])
    if params['stale_min_rows'] < 0:
        module.fail_json(msg='stale_min_rows must be 0 or more, not %d' % params['stale_min_rows'], queries=[])
    if params['columns'] is not None and params['action'] != 'histogram':
        # ignoring it would process every column while the play believes only these were
        module.fail_json(msg='columns applies to action histogram only (not %s): drop columns, or use action: histogram'
                         % params['action'], queries=[])
    if not 1 <= params['buckets'] <= 1024:
        module.fail_json(msg='buckets must be between 1 and 1024 (the range MySQL accepts), not %d'
                         % params['buckets'], queries=[])
    run_module(module, lambda engine: converge(module, engine), database=module.params['database'])


if __name__ == '__main__':
    main()
