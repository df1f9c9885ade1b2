#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: dbops.admin contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r'''
module: db_index
short_description: Create, change, repair, rebuild or drop one index on PostgreSQL or MySQL/MariaDB
description:
  - Makes one index match the requested definition. Idempotence compares the whole definition, not only the
    name; an index with the same name and another definition is rebuilt to the requested one.
  - On PostgreSQL the requested index is first built on an empty temporary copy of the table inside a
    transaction that is always rolled back, and the server's own C(pg_get_indexdef) of that candidate is
    compared with the existing index. Bad columns, expressions, predicates and operator classes are
    therefore refused by the server before anything changes, also in check mode.
  - On PostgreSQL a rebuild with O(concurrently=true) builds the new index under a temporary name
    (C(<name>_dbops_new)) with C(CREATE INDEX CONCURRENTLY), then drops the old index and renames the new one
    in one short transaction. Without O(concurrently) both happen in one transaction that blocks writes.
  - An index already named C(<name>_dbops_new) is dropped before such a rebuild only when it is what an
    interrupted rebuild leaves - an invalid index on the same table. Anything else of that name (a valid
    index, an index on another table, a table, view or sequence) is never touched - the rebuild fails before
    anything changes, also in check mode, naming it and asking to rename or drop it.
  - An invalid PostgreSQL index (C(indisvalid = false), left by a failed C(CREATE INDEX CONCURRENTLY)) is never
    reported as present; it is dropped and built again. If the build fails again (for example duplicate keys
    for a unique index) the module fails and no invalid index is left behind.
  - On MySQL/MariaDB the definition read from C(information_schema.statistics) (columns, prefix lengths,
    order, uniqueness, index type) is compared; a different definition is replaced by one
    C(ALTER TABLE ... DROP INDEX, ADD INDEX) statement, so the table is never without the index.
  - O(state=rebuilt) rebuilds the index with C(REINDEX INDEX CONCURRENTLY) (PostgreSQL 12 and later,
    C(REINDEX INDEX) otherwise or with O(concurrently=false)). InnoDB rebuilds indexes only together with
    their table, so on MySQL/MariaDB it runs C(ALTER TABLE ... FORCE), an online rebuild of the table and all of
    its indexes.
version_added: 0.1.0
author: dbops.admin maintainers (@dbops-admin)
extends_documentation_fragment:
  - dbops.admin.connection
  - dbops.admin.attributes
options:
  name:
    description:
      - Name of the index.
    type: str
    required: true
  table:
    description:
      - Table (or materialized view on PostgreSQL) the index is on.
      - Required with O(state=present). On MySQL/MariaDB also needed to drop or rebuild an index whose name
        exists on several tables.
    type: str
  schema:
    description:
      - Schema of the table and the index on PostgreSQL, database on MySQL/MariaDB.
      - Defaults to the first schema of the search path (usually V(public)) on PostgreSQL and to the
        connection's database (O(login_db)) on MySQL/MariaDB.
    type: str
  columns:
    description:
      - The key columns, in order. A name equal to a column of the table is quoted as an identifier, so any
        column name is safe.
      - A column name may be followed by PostgreSQL's collation, operator class and ordering words
        (V(name text_pattern_ops), V(created_at DESC NULLS LAST)) or, on MySQL/MariaDB, a prefix length and
        order (V(title(20\) DESC)).
      - Anything else is an expression, used as written - a function call (V(lower(email\))) or an expression
        in parentheses (V((a + b\))) on PostgreSQL, an expression in parentheses on MySQL 8.0.13 and later.
        An expression must be one SQL fragment (no C(;), no comments).
      - Required with O(state=present).
    type: list
    elements: str
  type:
    description:
      - The index method. V(btree), V(hash), V(gin), V(gist), V(brin) and V(spgist) on PostgreSQL (default
        V(btree)); V(btree), V(hash), V(fulltext) and V(spatial) on MySQL/MariaDB (default the server's,
        BTREE for InnoDB). InnoDB has no hash indexes, so V(hash) on an InnoDB table is refused.
    type: str
    choices: [btree, hash, gin, gist, brin, spgist, fulltext, spatial]
  unique:
    description:
      - Whether the index enforces uniqueness.
    type: bool
    default: false
  where:
    description:
      - Predicate of a partial index (PostgreSQL), as SQL without the C(WHERE) keyword. Like an expression it
        must be one SQL fragment - no C(;), comments, dollar quoting or backslash-escaped quotes.
    type: str
  include:
    description:
      - Non-key columns stored in the index (C(INCLUDE), PostgreSQL 11 and later).
    type: list
    elements: str
  storage_params:
    description:
      - 'Storage parameters of the index (PostgreSQL C(WITH (...\))), for example C({fillfactor: 70}).'
    type: dict
  tablespace:
    description:
      - Tablespace of the index (PostgreSQL). When only the tablespace differs the index is moved with
        C(ALTER INDEX ... SET TABLESPACE). Not compared when omitted.
    type: str
  concurrently:
    description:
      - On PostgreSQL build, rebuild and drop without blocking writes (C(CONCURRENTLY)). Ignored for indexes on
        partitioned tables, which PostgreSQL cannot build concurrently.
      - Ignored on MySQL/MariaDB, where InnoDB builds secondary indexes online by itself.
    type: bool
    default: true
  visible:
    description:
      - Whether the optimizer uses the index (MySQL/MariaDB). V(false) makes it a MariaDB 10.6+ C(IGNORED) /
        MySQL 8 C(INVISIBLE) index, still maintained on writes, so it can be tried out of the plans before
        it is dropped; V(true) makes it used again. Changed in place with C(ALTER TABLE ... ALTER INDEX), without a
        rebuild.
      - Not given, an existing index keeps its visibility, also when it is rebuilt to another definition or
        with O(state=rebuilt); a new index is visible.
      - Fails on PostgreSQL, where the planner uses every valid index, and on servers without the feature.
    type: bool
  state:
    description:
      - V(present) makes the index exist with this definition (creating, rebuilding or repairing it).
      - V(absent) drops it. An index backing a primary key, unique or exclusion constraint is refused.
      - V(rebuilt) rebuilds it in place (always a change); with O(columns) it is first brought to that
        definition, which counts as the rebuild.
    type: str
    choices: [present, absent, rebuilt]
    default: present
notes:
  - The index name of a rebuilt index stays the same; statistics of index usage start again from zero.
seealso:
  - module: dbops.admin.db_maintenance
'''

EXAMPLES = r'''
- name: Index orders by customer, newest first, without blocking writes
  dbops.admin.db_index:
    engine: postgresql
    login_db: shop
    name: orders_customer_created_idx
    table: orders
    columns: [customer_id, created_at DESC]
    include: [total]

- name: Partial expression index
  dbops.admin.db_index:
    engine: postgresql
    login_db: shop
    name: users_active_email_idx
    table: users
    columns: ['lower(email)']
    unique: true
    where: deleted_at IS NULL

- name: Rebuild a bloated index
  dbops.admin.db_index:
    engine: postgresql
    login_db: shop
    name: orders_customer_created_idx
    state: rebuilt

- name: Full-text index on MariaDB
  dbops.admin.db_index:
    engine: mariadb
    login_db: shop
    name: ft_products_title
    table: products
    columns: [title, description]
    type: fulltext
'''

RETURN = r'''
index:
  description: The index after the run (in check mode, as it would be). Empty when absent.
  returned: always
  type: dict
  contains:
    schema:
      description: Schema (database on MySQL/MariaDB).
      type: str
    name:
      description: Index name.
      type: str
    table:
      description: Table name.
      type: str
    definition:
      description: The definition as the server reports it (C(pg_get_indexdef) on PostgreSQL, rendered from
        C(information_schema.statistics) on MySQL/MariaDB).
      type: str
      sample: CREATE INDEX orders_customer_idx ON public.orders USING btree (customer_id)
    valid:
      description: False for an invalid PostgreSQL index (never after a successful run).
      type: bool
    size_bytes:
      description: Size on disk (PostgreSQL C(pg_relation_size); InnoDB persistent statistics).
      type: int
    type:
      description: Index method.
      type: str
    unique:
      description: Whether the index is unique.
      type: bool
    tablespace:
      description: Tablespace (PostgreSQL; empty for the default).
      type: str
    visible:
      description: Whether the optimizer uses the index (false for a MariaDB IGNORED or MySQL 8 INVISIBLE index).
        MySQL/MariaDB with the feature only.
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


def _view(index, engine=None):
    if not index:
        return None
    view = {'definition': index.get('definition'), 'valid': index.get('valid', True),
            'tablespace': index.get('tablespace') or ''}
    if engine is not None and engine.index_visible(index) is not None:
        view['visible'] = engine.index_visible(index)
    return view


def converge(module, engine):
    params = dict(module.params)
    params['schema'] = params['schema'] or engine.index_default_schema()
    name, state, concurrently = params['name'], params['state'], params['concurrently']
    tracker = DifferenceTracker()
    current = engine.index_get(params['schema'], name, params['table'])
    engine.index_check_visibility(name, params['visible'], current)
    desired = None
    if state != 'absent' and params['columns']:
        desired = engine.index_finalize(engine.index_prepare(params), current)
    target = current

    if state == 'absent':
        if current is not None:
            engine.index_drop(current, concurrently)
            tracker.action('drop index %s' % name)
        target = None
    elif current is None:
        if desired is None:
            raise DbError('rebuild index', '%s.%s' % (params['schema'], name),
                          'it does not exist; give table and columns to create it')
        engine.index_create(desired, concurrently)
        tracker.action('create index %s' % name)
        target = desired
    elif not current.get('valid', True):
        if desired is not None:
            engine.index_repair(desired, current, concurrently)
        else:
            engine.index_reindex(current, concurrently)
        tracker.action('repair invalid index %s' % name)
        target = desired or dict(current, valid=True)
    elif desired is not None and not engine.index_same_definition(desired, current):
        engine.index_replace(desired, current, concurrently)
        tracker.action('rebuild index %s to the requested definition' % name)
        target = desired
    else:
        if desired is not None and not engine.index_same_tablespace(desired, current):
            engine.index_set_tablespace(desired)
            tracker.action('move index %s to tablespace %s' % (name, desired['tablespace']))
        want_visible = params['visible']
        have_visible = engine.index_visible(current)
        if want_visible is not None and have_visible is not None and want_visible != have_visible:
            engine.index_set_visibility(current, want_visible)
            tracker.action('make index %s %s' % (name, 'visible' if want_visible else 'invisible (ignored)'))
        if state == 'rebuilt':
            engine.index_reindex(current, concurrently)
            tracker.action('rebuild index %s with %s' % (name, engine.index_rebuild_method(concurrently)))
        target = current
        if desired is not None:
            target = dict(current, tablespace=desired.get('tablespace') or current.get('tablespace'))
        if want_visible is not None and have_visible is not None:
            target = dict(target, visible=want_visible)

    if engine.check_mode or target is None:
        index = engine.index_summary(target)
        if index:
            index['valid'] = True
            index.setdefault('size_bytes', None)
            if current is not None and index.get('size_bytes') is None:
                index['size_bytes'] = current.get('size_bytes')
    else:
        index = engine.index_summary(engine.index_get(params['schema'], name, target.get('table')))
    result = {'changed': tracker.changed, 'index': index, 'actions': tracker.actions}
    if module._diff:
        # the whole index before and after: also when only its tablespace moves, when it is rebuilt (the same
        # definition) or when nothing changes
        tracker.set_state(_view(current, engine), _view(target, engine))
        result['diff'] = tracker.diff()
    return result


def main():
    argument_spec = connection_argument_spec()
    argument_spec.update(
        name=dict(type='str', required=True),
        table=dict(type='str'),
        schema=dict(type='str'),
        columns=dict(type='list', elements='str'),
        type=dict(type='str', choices=['btree', 'hash', 'gin', 'gist', 'brin', 'spgist', 'fulltext', 'spatial']),
        unique=dict(type='bool', default=False),
        where=dict(type='str'),
        include=dict(type='list', elements='str'),
        storage_params=dict(type='dict'),
        tablespace=dict(type='str'),
        concurrently=dict(type='bool', default=True),
        state=dict(type='str', default='present', choices=['present', 'absent', 'rebuilt']),
        visible=dict(type='bool'),
    )
    module = AnsibleModule(argument_spec, supports_check_mode=True,
                           required_if=[('state', 'present', ('table', 'columns'))],
                           required_by={'columns': 'table'})
    run_module(module, lambda engine: converge(module, engine))


if __name__ == '__main__':
    main()
