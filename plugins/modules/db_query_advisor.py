#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: dbops.admin contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r'''
module: db_query_advisor
short_description: Explain queries, find anti-patterns, suggest indexes and report index hygiene
description:
  - Reads a workload (a list of SQL texts, C(pg_stat_statements), the slow log or C(performance_schema)),
    explains every query and reports its plan in the seed's words (C(plan.operation),
    C(plan.rows_examined)), plan warnings, and anti-patterns found by parsing the SQL with sqlglot, with
    the mechanical rewrite where there is one.
  - Suggests indexes for the whole workload. On PostgreSQL with HypoPG the suggestions are cost-based with
    hypothetical indexes; without HypoPG, and on MariaDB/MySQL, they come from the plan, the predicates and
    column statistics, and say so in C(method).
  - Reports index hygiene (unused, duplicate, redundant leading prefix, invalid, bloated indexes); a primary
    key or unique index is never listed as removable.
  - Report only, C(changed) is always false. Everything the advisor runs on PostgreSQL happens inside one
    transaction that is rolled back, including C(EXPLAIN ANALYZE) of writes (when allowed) and, when the
    server has HypoPG but the database has not, a temporary C(CREATE EXTENSION hypopg).
  - One bad query (missing table, unparsable SQL, no permission) is reported in that query's C(error) and
    never fails the run.
version_added: 0.1.0
author: dbops.admin maintainers (@dbops-admin)
extends_documentation_fragment:
  - dbops.admin.connection
  - dbops.admin.attributes.INFO_MODULE
requirements:
  - sqlglot (Python, on the managed host)
options:
  queries:
    description:
      - The SQL statements to analyze, one statement per item.
      - Mutually exclusive with O(source).
    type: list
    elements: str
  source:
    description:
      - Read the workload from the server instead of O(queries).
      - V(pg_stat_statements) (PostgreSQL; the extension must exist in O(login_db)); queries with C($n)
        parameters are explained with their generic plan.
      - V(slow_log) reads C(mysql.slow_log) when C(log_output) includes C(TABLE), or the file O(slow_log_path)
        (a MySQL/MariaDB slow log, or a PostgreSQL log with C(log_min_duration_statement) lines).
      - V(performance_schema) reads statement digests (MySQL family, C(performance_schema=ON)).
    type: str
    choices: [pg_stat_statements, slow_log, performance_schema]
  slow_log_path:
    description: A slow log file on the managed host, read when O(source=slow_log).
    type: path
  min_calls:
    description: With O(source), only queries executed at least this many times.
    type: int
    default: 1
  min_time_ms:
    description: With O(source), only queries whose mean time is at least this many milliseconds.
    type: float
    default: 0
  max_queries:
    description: With O(source), the most expensive queries (by total time) to analyze.
    type: int
    default: 50
  analyze:
    description:
      - Run C(EXPLAIN ANALYZE) to report actual rows and times, inside a transaction that is rolled back.
      - Writes are only analyzed with O(analyze_writes=true); otherwise their estimated plan is shown.
    type: bool
    default: false
  analyze_writes:
    description: Allow C(EXPLAIN ANALYZE) of INSERT, UPDATE, DELETE and MERGE (the changes are rolled back). A write
      touching a table a rollback cannot restore (MySQL/MariaDB MyISAM, Aria, MEMORY ... or a view) is still refused,
      and so is a statement calling a function no rollback undoes (nextval, pg_terminate_backend, advisory locks ...).
    type: bool
    default: false
  statement_timeout:
    description: Seconds any one statement of the advisor may run (protects the server from a long C(ANALYZE)).
    type: int
    default: 60
  suggest_indexes:
    description: Compute O(min_cost_savings)-worthy index suggestions for the workload.
    type: bool
    default: true
  min_cost_savings:
    description:
      - An index is only considered when it (with at most two companions, for example the other side of a
        join) cuts the estimated cost of at least one query by this fraction; in the workload choice it must
        also save 10% of a query's cost, or this fraction of what the earlier picks left.
    type: float
    default: 0.5
  max_indexes:
    description: The most indexes suggested for the whole workload (chosen greedily by total cost saved).
    type: int
    default: 10
  hypothetical:
    description:
      - Use HypoPG hypothetical indexes for cost-based suggestions.
      - V(auto) uses them when the server has the extension; V(true) fails when it has not; V(false) never
        uses them.
    type: str
    choices: [auto, 'true', 'false']
    default: auto
  index_hygiene:
    description: Report unused, duplicate, redundant-prefix, invalid and bloated indexes of the database.
    type: bool
    default: true
notes:
  - HypoPG indexes are session-local and nothing is written to the catalog. When the server has the
    C(hypopg) extension package but the database has not created it, the advisor creates it inside its
    transaction and rolls it back; this needs the privilege to create the extension.
  - Findings come from a real SQL parser (sqlglot, the PostgreSQL or MySQL dialect).
seealso:
  - module: dbops.admin.db_index
'''

EXAMPLES = r'''
- name: Advise on a few queries
  dbops.admin.db_query_advisor:
    engine: postgresql
    login_host: db1.example.com
    login_db: shop
    queries:
      - SELECT * FROM orders WHERE customer_id = 42 ORDER BY created_at DESC LIMIT 10
      - SELECT * FROM orders WHERE EXTRACT(YEAR FROM created_at) = 2024
  register: advice

- name: Advise on the slowest statements of pg_stat_statements
  dbops.admin.db_query_advisor:
    engine: postgresql
    login_db: shop
    source: pg_stat_statements
    min_calls: 10
    min_time_ms: 5
    max_indexes: 5

- name: Actual figures, writes included (rolled back)
  dbops.admin.db_query_advisor:
    engine: mariadb
    login_db: shop
    queries:
      - UPDATE orders SET status = 'late' WHERE due < NOW() - INTERVAL 7 DAY
    analyze: true
    analyze_writes: true
'''

RETURN = r'''
reports:
  description: One report per query, in the order given.
  returned: always
  type: list
  elements: dict
  contains:
    query:
      description: The statement.
      type: str
    fingerprint:
      description: A hash of the statement with literals replaced, equal for queries that differ only in values.
      type: str
    normalized:
      description: The statement with literals replaced by C(?).
      type: str
    plan:
      description:
        - C(operation) (the top plan node), C(rows_examined) (estimated, or actual with O(analyze)),
          C(total_cost), C(nodes) (each node with relation, index, costs, estimated and actual rows), and with
          O(analyze) C(execution_time_ms) and actual rows.
        - null when the query could not be explained.
      type: dict
    warnings:
      description: Plan warnings (C(row_misestimate), C(seq_scan_large_table), C(sort_spill), C(hash_spill)) and notes.
      type: list
      elements: dict
    findings:
      description:
        - Anti-patterns, each with C(id) (also as C(rule)), C(severity), C(message) and C(rewrite) (the whole
          rewritten statement when the rewrite is mechanical, else null; verified by EXPLAIN).
        - Rules are function_on_column, leading_wildcard, not_in_subquery, offset_pagination,
          or_different_columns, implicit_cast, order_by_random, update_delete_without_where, select_star.
      type: list
      elements: dict
    error:
      description: Why this query could not be analyzed (missing table, syntax, permission), else null.
      type: str
index_suggestions:
  description:
    - Indexes for the whole workload, each with C(schema), C(table), C(columns), C(type), C(name),
      C(statement) (C(CREATE INDEX CONCURRENTLY) on PostgreSQL, an online C(ALTER TABLE) on MySQL),
      C(method), C(queries_helped) (fingerprints), C(query_numbers) (positions in the workload) and, when
      costed, C(estimated_cost_before), C(estimated_cost_after), C(estimated_saving) and
      C(estimated_size_bytes); C(together_with) names indexes that only pay together (both sides of an OR).
    - Without costs (V(statistics)), C(estimated_rows_fraction) and C(table_rows) instead.
    - Each report of a helped query lists them in C(suggested_indexes) with C(estimated_cost_with_suggestions).
  returned: always
  type: list
  elements: dict
method:
  description: How suggestions were made, V(hypopg) (cost-based) or V(statistics).
  returned: always
  type: str
index_hygiene:
  description:
    - C(unused), C(duplicate) (groups with C(indexes), C(keep), C(drop)), C(redundant_prefix) (with
      C(covered_by)), C(invalid) and C(bloated); entries say whether they are C(removable) (never a primary
      key, unique or constraint index) and the statement that would fix them.
  returned: when O(index_hygiene=true)
  type: dict
notes:
  description: What the advisor did that a DBA should know (extension created and rolled back, method).
  returned: always
  type: list
  elements: str
queries:
  description: Statements executed that change anything (always empty, the module is report only).
  returned: always
  type: list
  elements: str
'''

from ansible.module_utils.basic import AnsibleModule, missing_required_lib  # noqa: E402
from ansible_collections.dbops.admin.plugins.module_utils import _advisor  # noqa: E402
from ansible_collections.dbops.admin.plugins.module_utils._advisor_workflow import run  # noqa: E402
from ansible_collections.dbops.admin.plugins.module_utils._connection import (  # noqa: E402
    connection_argument_spec, run_module)


def advise(module, engine):
    log_text = None
    if module.params['source'] == 'slow_log' and module.params['slow_log_path']:
        try:
            with open(module.params['slow_log_path'], encoding='utf-8', errors='replace') as handle:
                log_text = handle.read()
        except OSError as exc:
            module.fail_json(msg='could not read slow log %s: %s' % (module.params['slow_log_path'], exc),
                             queries=[])
    result = run(engine, module.params, log_text=log_text)
    result['changed'] = False
    return result


def main():
    argument_spec = connection_argument_spec()
    argument_spec.update(
        queries=dict(type='list', elements='str'),
        source=dict(type='str', choices=['pg_stat_statements', 'slow_log', 'performance_schema']),
        slow_log_path=dict(type='path'),
        min_calls=dict(type='int', default=1),
        min_time_ms=dict(type='float', default=0),
        max_queries=dict(type='int', default=50),
        analyze=dict(type='bool', default=False),
        analyze_writes=dict(type='bool', default=False),
        statement_timeout=dict(type='int', default=60),
        suggest_indexes=dict(type='bool', default=True),
        min_cost_savings=dict(type='float', default=0.5),
        max_indexes=dict(type='int', default=10),
        hypothetical=dict(type='str', default='auto', choices=['auto', 'true', 'false']),
        index_hygiene=dict(type='bool', default=True),
    )
    module = AnsibleModule(argument_spec, supports_check_mode=True,
                           required_one_of=[('queries', 'source')],
                           mutually_exclusive=[('queries', 'source')],
                           required_by={'slow_log_path': 'source'})
    if not _advisor.HAS_SQLGLOT:
        module.fail_json(msg=missing_required_lib(_advisor.SQLGLOT_PACKAGE),
                         exception=str(_advisor.SQLGLOT_IMPORT_ERROR))
    for name in ('min_cost_savings',):
        if not 0 <= module.params[name] <= 1:
            module.fail_json(msg='%s must be a fraction between 0 and 1' % name, queries=[])
    if module.params['max_indexes'] < 0:
        module.fail_json(msg='max_indexes must not be negative', queries=[])
    run_module(module, lambda engine: advise(module, engine))


if __name__ == '__main__':
    main()
