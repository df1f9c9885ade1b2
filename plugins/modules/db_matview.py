#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: dbops.admin contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r'''
module: db_matview
short_description: Materialized views on PostgreSQL, emulated by an atomically swapped table on MySQL/MariaDB
description:
  - Creates, changes, refreshes or drops one materialized view.
  - B(PostgreSQL) - idempotence compares definitions in the server's own words - the requested query is created
    as a temporary view inside a transaction that is always rolled back, and its C(pg_get_viewdef) is compared
    with the materialized view's. A bad query therefore fails before anything changes, also in check mode.
    A changed query builds the new materialized view beside the old one (C(<name>_dbops_new)), then drops the
    old one and renames the new one in one short transaction. Privileges granted on the old view are not
    carried over, and a view that other objects depend on cannot be replaced (the run fails before anything
    runs, also in check mode, naming the dependent objects).
  - The PostgreSQL work copy C(<name>_dbops_new) is created and marked with the comment
    C(dbops.admin work copy of <schema>.<name>) in one transaction. A copy left behind by an interrupted run
    is dropped first only when it carries that mark; any other relation of that name (or of
    C(<name>_dbops_new_unique) when O(unique_columns) is given) is never touched - the run fails before
    anything changes, also in check mode, naming it and asking to rename or drop it. The swap gives the new
    view the old view's comment (or none).
  - B(MySQL/MariaDB) have no materialized views; this module emulates one with a table. The table is built from
    the query as C(<name>__new), then swapped in atomically with
    C(RENAME TABLE <name> TO <name>__old, <name>__new TO <name>) and the old table dropped, so readers always
    see either the old or the new rows. The table COMMENT records the SHA-256 of the query (whitespace
    normalised) and the query itself; idempotence compares that hash, so a query that differs only in
    whitespace is the same and any other textual difference rebuilds the table. A table of that name that
    was not created by this module is never touched. O(concurrently) is ignored - every refresh is a swap.
  - With O(unique_columns) a unique index on those columns is created (C(<name>_unique) on PostgreSQL,
    C(dbops_unique) on MySQL/MariaDB); PostgreSQL needs one for C(REFRESH MATERIALIZED VIEW CONCURRENTLY).
version_added: 0.1.0
author: dbops.admin maintainers (@dbops-admin)
extends_documentation_fragment:
  - dbops.admin.connection
  - dbops.admin.attributes
options:
  name:
    description:
      - Name of the materialized view (of the table, on MySQL/MariaDB).
    type: str
    required: true
  schema:
    description:
      - Schema on PostgreSQL (default the first schema of the search path, usually V(public)), database on
        MySQL/MariaDB (default the connection's database, O(login_db)).
    type: str
  query:
    description:
      - The C(SELECT) the view is made of, as one SQL statement (a trailing C(;) is allowed) without comments,
        dollar quoting or backslash-escaped quotes (double a quote inside a string instead).
      - Required with O(state=present). With O(state=refreshed) it is optional; when given, the view is also
        brought to this query.
    type: str
  state:
    description:
      - V(present) makes the view exist with this query. V(absent) drops it.
      - V(refreshed) makes it exist and then refreshes it (always a change; a view that had to be created or
        rebuilt is fresh already).
    type: str
    choices: [present, absent, refreshed]
    default: present
  concurrently:
    description:
      - PostgreSQL - refresh with C(REFRESH MATERIALIZED VIEW CONCURRENTLY), which does not block readers and
        needs a unique index (see O(unique_columns)). V(true) without such an index fails clearly.
      - When omitted, refreshes concurrently whenever the view is populated and has a unique index.
      - Ignored on MySQL/MariaDB.
    type: bool
  unique_columns:
    description:
      - Columns of the query that identify a row; a unique index on them is created (and kept).
    type: list
    elements: str
  with_data:
    description:
      - Fill the view when creating it. V(false) creates it empty (C(WITH NO DATA) on PostgreSQL, where it
        cannot be read until refreshed). A view that exists but was never populated is populated when V(true).
    type: bool
    default: true
seealso:
  - module: dbops.admin.db_index
'''

EXAMPLES = r'''
- name: Daily sales per product, refreshable without blocking readers
  dbops.admin.db_matview:
    engine: postgresql
    login_db: shop
    name: daily_sales
    query: >
      SELECT product_id, date_trunc('day', sold_at) AS day, sum(amount) AS total
        FROM sales GROUP BY 1, 2
    unique_columns: [product_id, day]

- name: Refresh it (for example from a scheduled job)
  dbops.admin.db_matview:
    engine: postgresql
    login_db: shop
    name: daily_sales
    state: refreshed

- name: The same report on MariaDB (a table swapped in with RENAME TABLE)
  dbops.admin.db_matview:
    engine: mariadb
    login_db: shop
    name: daily_sales
    query: SELECT product_id, DATE(sold_at) AS day, SUM(amount) AS total FROM sales GROUP BY 1, 2
    unique_columns: [product_id, day]
    state: refreshed
'''

RETURN = r'''
matview:
  description: The materialized view after the run (in check mode, as it would be). Empty when absent.
  returned: always
  type: dict
  contains:
    schema:
      description: Schema (database on MySQL/MariaDB).
      type: str
    name:
      description: Name.
      type: str
    definition:
      description: The query as the server reports it (C(pg_get_viewdef)) or, on MySQL/MariaDB, as recorded
        in the table comment (whitespace normalised; null when it was too long to keep).
      type: str
    populated:
      description: Whether the view holds data (PostgreSQL C(relispopulated); on MySQL/MariaDB false for a
        table built with O(with_data=false), as recorded in its comment).
      type: bool
    size_bytes:
      description: Size on disk, indexes included.
      type: int
    unique_indexes:
      description: The unique indexes on plain columns (name and columns).
      type: list
      elements: dict
    emulated:
      description: True on MySQL/MariaDB, where the view is a table.
      type: bool
actions:
  description: What was done (or would be), in words.
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


def _view(matview):
    if not matview:
        return None
    # populated: PostgreSQL WITH NO DATA (or a table built empty on MySQL/MariaDB) against filled
    return {'definition': matview.get('definition'), 'populated': bool(matview.get('populated', True)),
            'unique_indexes': [ix['columns'] for ix in matview.get('unique_indexes') or []]}


def converge(module, engine):
    params = module.params
    schema = params['schema'] or engine.matview_default_schema()
    name, state, with_data = params['name'], params['state'], params['with_data']
    tracker = DifferenceTracker()
    current = engine.matview_get(schema, name)
    desired = None
    if state != 'absent' and params['query'] is not None:
        desired = engine.matview_prepare(schema, name, params['query'], params['unique_columns'])
    predicted = None

    if state == 'absent':
        if current is not None:
            engine.matview_drop(current)
            tracker.action('drop materialized view %s.%s' % (schema, name))
    elif current is None:
        if desired is None:
            raise DbError('refresh materialized view', '%s.%s' % (schema, name), 'it does not exist; give query')
        engine.matview_create(desired, with_data)
        predicted = dict(desired, populated=with_data,
                         unique_indexes=[{'name': engine.matview_unique_index_name(name),
                                          'columns': desired['unique_columns']}] if desired['unique_columns'] else [])
        tracker.action('create materialized view %s.%s' % (schema, name))
    elif desired is not None and not engine.matview_same_definition(desired, current):
        engine.matview_replace(desired, current, with_data)
        predicted = dict(desired, populated=with_data,
                         unique_indexes=[{'name': engine.matview_unique_index_name(name),
                                          'columns': desired['unique_columns']}] if desired['unique_columns'] else [])
        tracker.action('replace materialized view %s.%s with the new query' % (schema, name))
    else:
        predicted = dict(current)
        if desired is not None and not engine.matview_has_unique(desired, current):
            engine.matview_add_unique(desired, current)
            tracker.action('create unique index on %s' % ', '.join(desired['unique_columns']))
            # the index of our name is replaced (dropped, then created on the new columns)
            ours = engine.matview_unique_index_name(name)
            predicted['unique_indexes'] = [ix for ix in current.get('unique_indexes') or [] if ix['name'] != ours] + [
                {'name': ours, 'columns': desired['unique_columns']}]
        if state == 'refreshed' or (with_data and not current.get('populated', True)):
            engine.matview_refresh(current, params['concurrently'], with_data, desired)
            tracker.action('refresh materialized view %s.%s' % (schema, name))
            predicted['populated'] = with_data

    if state == 'absent':
        matview = {}
    elif engine.check_mode:
        matview = engine.matview_summary(predicted)
    else:
        predicted = engine.matview_get(schema, name)  # what the server now has
        matview = engine.matview_summary(predicted)
    result = {'changed': tracker.changed, 'matview': matview, 'actions': tracker.actions}
    if module._diff:
        # the whole view before and after (the same when unchanged; a refresh changes rows, not these)
        tracker.set_state(_view(current), _view(predicted) if state != 'absent' else None)
        result['diff'] = tracker.diff()
    return result


def main():
    argument_spec = connection_argument_spec()
    argument_spec.update(
        name=dict(type='str', required=True),
        schema=dict(type='str'),
        query=dict(type='str'),
        state=dict(type='str', default='present', choices=['present', 'absent', 'refreshed']),
        concurrently=dict(type='bool'),
        unique_columns=dict(type='list', elements='str'),
        with_data=dict(type='bool', default=True),
    )
    module = AnsibleModule(argument_spec, supports_check_mode=True,
                           required_if=[('state', 'present', ('query',))])
    run_module(module, lambda engine: converge(module, engine))


if __name__ == '__main__':
    main()
