# -*- coding: utf-8 -*-
# Copyright: dbops.admin contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Private to dbops.admin: Postgres engine, indexes area (mixed into the PostgresEngine class).

Idempotence compares definitions, not names: the requested index is created on an empty
temporary copy of the table inside a transaction that is always rolled back, and the
server's own ``pg_get_indexdef()`` of that candidate is compared with the existing one.
"""

from __future__ import annotations

import re

from ansible_collections.dbops.admin.plugins.module_utils._errors import DbError, driver_message

PG_INDEX_TYPES = ('btree', 'hash', 'gin', 'gist', 'brin', 'spgist')
MYSQL_ONLY_INDEX_TYPES = ('fulltext', 'spatial')
# storage parameter names are identifiers; values are rendered as literals
_PARAM_NAME = re.compile(r'^[A-Za-z_][A-Za-z0-9_.]*$')
# what may follow a plain column name: collation, operator class, ASC/DESC, NULLS FIRST/LAST
_COLUMN_SUFFIX = re.compile(r'^(\s+(COLLATE\s+"[^"]+"|[A-Za-z_][A-Za-z0-9_.]*))+$', re.IGNORECASE)
TEMP_SUFFIX = '_dbops_new'
_DOLLAR_QUOTE = re.compile(r'\$[A-Za-z_]*\$')
# pg_class.relkind in words, for messages about a name another relation holds (indexes and
# materialized views share one namespace with tables, views, sequences and types)
RELKIND_WORDS = {'r': 'a table', 'p': 'a partitioned table', 'v': 'a view', 'm': 'a materialized view',
                 'f': 'a foreign table', 'S': 'a sequence', 'c': 'a composite type', 't': 'a TOAST table',
                 'i': 'an index', 'I': 'a partitioned index'}


def check_sql_fragment(text, what):
    """Refuse an SQL fragment (expression, WHERE clause, query) that could end the statement.

    Fragments are SQL by nature (expressions, predicates), so they cannot be quoted; this makes
    sure they stay one fragment: no ``;`` and no comment outside quotes, balanced parentheses,
    and nothing whose end of string the server could read differently (backslash-escaped
    quotes, dollar quoting).
    """
    if not isinstance(text, str) or not text.strip():
        raise DbError('use %s' % what, repr(text), 'it must be a non-empty SQL text')
    depth = 0
    quote = None
    i = 0
    while i < len(text):
        ch = text[i]
        if quote:
            if ch == quote:
                if i + 1 < len(text) and text[i + 1] == quote:
                    i += 2
                    continue
                quote = None
            elif ch == '\\' and quote != '`' and i + 1 < len(text) and text[i + 1] == quote:
                # E'..' strings and MySQL would read \' as an escaped quote, standard SQL as the end:
                # refuse the ambiguity rather than guess where the string ends
                raise DbError('use %s' % what, repr(text), 'write a quote inside a string by doubling it, not with \\')
        elif ch in ("'", '"', '`'):
            quote = ch
        elif ch == '$' and (i == 0 or not (text[i - 1].isalnum() or text[i - 1] in '_$')) \
                and _DOLLAR_QUOTE.match(text, i):
            raise DbError('use %s' % what, repr(text), 'dollar-quoted strings are not allowed; use standard quotes')
        elif ch == ';':
            raise DbError('use %s' % what, repr(text), 'it must be one SQL fragment without ";"')
        elif text.startswith('--', i) or text.startswith('/*', i):
            raise DbError('use %s' % what, repr(text), 'comments are not allowed in it')
        elif ch == '(':
            depth += 1
        elif ch == ')':
            depth -= 1
            if depth < 0:
                raise DbError('use %s' % what, repr(text), 'its parentheses are not balanced')
        i += 1
    if quote:
        raise DbError('use %s' % what, repr(text), 'it has an unterminated quote')
    if depth:
        raise DbError('use %s' % what, repr(text), 'its parentheses are not balanced')
    return text.strip()


def render_pg_index_column(item, table_columns, quote_ident):
    """One element of the index column list.

    An existing column name is quoted (``"B x"``); a column name followed by an operator
    class, collation or ordering keywords (``name text_pattern_ops DESC``) keeps its suffix;
    anything else is an expression used as written (a function call or a parenthesised
    expression, as CREATE INDEX requires).
    """
    if item in table_columns:
        return quote_ident(item)
    match = re.match(r'^(\S+)(\s.*)$', item, re.DOTALL)
    if match and match.group(1) in table_columns and _COLUMN_SUFFIX.match(match.group(2).rstrip()):
        return quote_ident(match.group(1)) + ' ' + ' '.join(match.group(2).split())
    return check_sql_fragment(item, 'index expression')


def temp_index_name(name, limit=63):
    """The name a replacement index is built under before the swap (fits PostgreSQL's 63 bytes)."""
    base = name
    while len((base + TEMP_SUFFIX).encode('utf-8')) > limit:
        base = base[:-1]
    return base + TEMP_SUFFIX


def build_pg_create_index(desired, quote_ident, name=None, qualified_table=None, concurrently=False,
                          with_tablespace=True):
    """CREATE INDEX text for a prepared ``desired`` dict (columns already rendered)."""
    parts = ['CREATE']
    if desired.get('unique'):
        parts.append('UNIQUE')
    parts.append('INDEX')
    if concurrently:
        parts.append('CONCURRENTLY')
    parts.append(quote_ident(name or desired['name']))
    parts.append('ON')
    parts.append(qualified_table or '%s.%s' % (quote_ident(desired['schema']), quote_ident(desired['table'])))
    parts.append('USING %s' % (desired.get('type') or 'btree'))
    parts.append('(%s)' % ', '.join(desired['columns']))
    if desired.get('include'):
        parts.append('INCLUDE (%s)' % ', '.join(quote_ident(c) for c in desired['include']))
    params = desired.get('storage_params') or {}
    if params:
        parts.append('WITH (%s)' % ', '.join('%s = %s' % (k, _param_literal(v)) for k, v in sorted(params.items())))
    if with_tablespace and desired.get('tablespace'):
        parts.append('TABLESPACE %s' % quote_ident(desired['tablespace']))
    if desired.get('where'):
        parts.append('WHERE %s' % desired['where'])
    return ' '.join(parts)


def _param_literal(value):
    if isinstance(value, bool):
        return "'on'" if value else "'off'"
    text = str(value)
    return "'" + text.replace("'", "''") + "'"


class PostgresIndexes:
    """indexes methods of the Postgres engine; self is the connected engine."""

    _INDEX_QUERY = """
        SELECT n.nspname AS schema, ic.relname AS name, tn.nspname AS table_schema, tc.relname AS "table",
               pg_get_indexdef(i.indexrelid) AS definition, i.indisvalid AS valid, i.indisready AS ready,
               i.indisunique AS "unique", i.indisprimary AS "primary", am.amname AS type,
               COALESCE(ts.spcname, '') AS tablespace, pg_relation_size(i.indexrelid) AS size_bytes,
               tc.relkind = 'p' AS partitioned,
               (SELECT con.conname FROM pg_constraint con WHERE con.conindid = i.indexrelid
                  AND con.contype IN ('p', 'u', 'x') LIMIT 1) AS "constraint"
          FROM pg_index i
          JOIN pg_class ic ON ic.oid = i.indexrelid
          JOIN pg_namespace n ON n.oid = ic.relnamespace
          JOIN pg_class tc ON tc.oid = i.indrelid
          JOIN pg_namespace tn ON tn.oid = tc.relnamespace
          JOIN pg_am am ON am.oid = ic.relam
          LEFT JOIN pg_tablespace ts ON ts.oid = ic.reltablespace
         WHERE n.nspname = %s AND ic.relname = %s"""

    def index_default_schema(self):
        return self.fetch_value('SELECT current_schema()') or 'public'

    def index_get(self, schema, name, table=None):
        """The existing index (dict) or None; ``table`` is not needed on PostgreSQL."""
        row = self.fetch_one(self._INDEX_QUERY, (schema, name))
        if row is None:
            return None
        row['size_bytes'] = int(row['size_bytes'] or 0)
        return row

    def index_check_visibility(self, name, visible, current):
        if visible is not None:
            raise DbError('create index', name, 'visible is MySQL/MariaDB only (INVISIBLE/IGNORED indexes); a '
                          'PostgreSQL index is always usable by the planner: leave visible out')

    def index_visible(self, index):
        return None

    def index_prepare(self, params):
        """Validate the requested index against the catalog; returns the desired dict.

        Raises DbError for a missing table, a MySQL-only type, a bad column or expression
        (the candidate is built on an empty copy of the table, so the server judges it).
        """
        schema = params['schema']
        index_type = params.get('type')
        if index_type in MYSQL_ONLY_INDEX_TYPES:
            raise DbError('create index', params['name'],
                          'type %s is a MySQL/MariaDB index type; PostgreSQL supports %s (full text search uses gin)'
                          % (index_type, ', '.join(PG_INDEX_TYPES)))
        table = self.fetch_one(
            """SELECT c.oid, c.relkind FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
                WHERE n.nspname = %s AND c.relname = %s AND c.relkind IN ('r', 'm', 'p')""",
            (schema, params['table']))
        if table is None:
            raise DbError('create index', params['name'],
                          'table %s.%s does not exist' % (schema, params['table']))
        columns = set(r['attname'] for r in self.fetch_all(
            'SELECT attname FROM pg_attribute WHERE attrelid = %s AND attnum > 0 AND NOT attisdropped',
            (table['oid'],)))
        for col in params.get('include') or []:
            if col not in columns:
                raise DbError('create index', params['name'],
                              'INCLUDE column %s does not exist in table %s.%s' % (col, schema, params['table']))
        storage = {}
        for key, value in (params.get('storage_params') or {}).items():
            if not _PARAM_NAME.match(str(key)):
                raise DbError('create index', params['name'], 'invalid storage parameter name %r' % key)
            storage[str(key)] = value
        desired = {
            'schema': schema,
            'name': params['name'],
            'table': params['table'],
            'columns': [render_pg_index_column(c, columns, self.quote_ident) for c in params['columns']],
            'type': index_type or 'btree',
            'unique': bool(params.get('unique')),
            'include': list(params.get('include') or []),
            'storage_params': storage,
            'tablespace': params.get('tablespace'),
            'where': check_sql_fragment(params['where'], 'index predicate') if params.get('where') else None,
            'partitioned': table['relkind'] == 'p',
        }
        if desired['tablespace'] and self.fetch_value(
                'SELECT 1 FROM pg_tablespace WHERE spcname = %s', (desired['tablespace'],)) is None:
            raise DbError('create index', params['name'], 'tablespace %s does not exist' % desired['tablespace'])
        taken = self.fetch_value(
            """SELECT c.relkind::text FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
                WHERE n.nspname = %s AND c.relname = %s AND c.relkind NOT IN ('i', 'I')""", (schema, params['name']))
        if taken is not None:
            # indexes share one namespace with tables, views, sequences and types
            raise DbError('create index', '%s.%s' % (schema, params['name']),
                          '%s of that name exists in schema %s; choose another index name'
                          % (RELKIND_WORDS.get(taken, 'a relation'), schema))
        desired['definition'] = self._index_canonical_definition(desired)
        return desired

    def _index_canonical_definition(self, desired):
        """pg_get_indexdef() of the candidate, built on an empty temporary copy and rolled back."""
        qi = self.quote_ident
        create = build_pg_create_index(desired, qi, qualified_table='pg_temp.%s' % qi(desired['table']),
                                       with_tablespace=False)
        self._begin()
        try:
            with self._cursor() as cur:
                cur.execute('CREATE TEMPORARY TABLE %s (LIKE %s.%s)'
                            % (qi(desired['table']), qi(desired['schema']), qi(desired['table'])))
                cur.execute(create)
                cur.execute("""SELECT pg_get_indexdef(c.oid), quote_ident(n.nspname), quote_ident(%s), quote_ident(%s),
                                      quote_ident(%s)
                                 FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
                                WHERE c.relnamespace = pg_my_temp_schema() AND c.relname = %s""",
                            (desired['schema'], desired['table'], desired['name'], desired['name']))
                definition, q_temp, q_schema, q_table, q_name = cur.fetchone()
        except self.driver_errors as exc:
            raise DbError('create index', desired['name'], self.mask(driver_message(exc))) from None
        finally:
            self._rollback()
        prefix = 'CREATE %sINDEX %s ON ' % ('UNIQUE ' if desired['unique'] else '', q_name)
        rest = definition[len(prefix):] if definition.startswith(prefix) else None
        if rest is not None and rest.startswith('ONLY '):
            rest = rest[len('ONLY '):]
        # the temporary schema is shown as pg_temp (or pg_temp_N on some versions)
        for temp_table in ('pg_temp.%s ' % q_table, '%s.%s ' % (q_temp, q_table)):
            if rest is not None and rest.startswith(temp_table):
                return normalize_pg_indexdef('%s%s.%s %s' % (prefix, q_schema, q_table, rest[len(temp_table):]))
        return definition  # unexpected shape: compare as is (at worst one needless rebuild)

    def index_finalize(self, desired, current):
        return desired

    def index_same_definition(self, desired, current):
        return normalize_pg_indexdef(current['definition']) == desired['definition']

    def index_same_tablespace(self, desired, current):
        if not desired.get('tablespace'):
            return True
        wanted = '' if desired['tablespace'] == 'pg_default' else desired['tablespace']
        return (current.get('tablespace') or '') == wanted

    # ---- writes (recorded by execute(), skipped in check mode) -------------------------
    def _index_qualified(self, schema, name):
        return '%s.%s' % (self.quote_ident(schema), self.quote_ident(name))

    def _index_refuse_constraint(self, current, what):
        if current and current.get('constraint'):
            raise DbError(what, '%s.%s' % (current['schema'], current['name']),
                          'it backs constraint %s; change the constraint with ALTER TABLE instead'
                          % current['constraint'])

    def index_create(self, desired, concurrently):
        concurrently = self._index_can_concurrently(desired, concurrently)
        operation = 'create index %s.%s' % (desired['schema'], desired['name'])
        try:
            self.execute(build_pg_create_index(desired, self.quote_ident, concurrently=concurrently),
                         operation=operation)
        except DbError:
            if concurrently:
                # a failed CREATE INDEX CONCURRENTLY leaves an invalid index behind: remove it
                self._index_drop_quietly(desired['schema'], desired['name'])
            raise

    def _index_can_concurrently(self, desired, concurrently):
        # PostgreSQL 15 cannot build an index on a partitioned table concurrently
        return bool(concurrently) and not desired.get('partitioned')

    def _index_drop_quietly(self, schema, name):
        try:
            self.execute('DROP INDEX CONCURRENTLY IF EXISTS %s' % self._index_qualified(schema, name))
        except DbError:
            pass

    def index_drop(self, current, concurrently):
        self._index_refuse_constraint(current, 'drop index')
        # an index of a partitioned table cannot be dropped concurrently
        concurrently = self._index_can_concurrently(current, concurrently)
        self.execute('DROP INDEX %sIF EXISTS %s' % ('CONCURRENTLY ' if concurrently else '',
                                                    self._index_qualified(current['schema'], current['name'])),
                     operation='drop index %s.%s' % (current['schema'], current['name']))

    def index_replace(self, desired, current, concurrently):
        """Rebuild ``current`` to ``desired``: concurrently, build under a temporary name, then
        drop the old and rename the new in one transaction; otherwise both in one transaction."""
        self._index_refuse_constraint(current, 'rebuild index')
        qualified = self._index_qualified(current['schema'], current['name'])
        concurrently = self._index_can_concurrently(desired, concurrently)
        operation = 'rebuild index %s.%s' % (desired['schema'], desired['name'])
        if not concurrently:
            with self.transaction():
                self.execute('DROP INDEX %s' % qualified, operation=operation)
                self.execute(build_pg_create_index(desired, self.quote_ident), operation=operation)
            return
        temp = temp_index_name(desired['name'])
        if self._index_leftover_temp(desired, temp):
            self.execute('DROP INDEX CONCURRENTLY IF EXISTS %s' % self._index_qualified(desired['schema'], temp),
                         operation=operation)
        try:
            self.execute(build_pg_create_index(desired, self.quote_ident, name=temp, concurrently=True),
                         operation=operation)
        except DbError:
            self._index_drop_quietly(desired['schema'], temp)
            raise
        with self.transaction():
            self.execute('DROP INDEX %s' % qualified, operation=operation)
            self.execute('ALTER INDEX %s RENAME TO %s' % (self._index_qualified(desired['schema'], temp),
                                                          self.quote_ident(desired['name'])),
                         operation=operation)

    def _index_leftover_temp(self, desired, temp):
        """Whether ``temp`` (the temporary name of a rebuild) is taken by a leftover of an interrupted rebuild.

        Only an invalid index (what a failed or interrupted CREATE INDEX CONCURRENTLY leaves) on the
        table being indexed counts as ours and may be dropped; any other relation of that name is
        someone else's, and the rebuild is refused before anything changes (also in check mode).
        """
        row = self.fetch_one(
            """SELECT c.relkind::text AS kind, i.indisvalid AS valid, tn.nspname AS table_schema,
                      tc.relname AS "table"
                 FROM pg_class c
                 JOIN pg_namespace n ON n.oid = c.relnamespace
                 LEFT JOIN pg_index i ON i.indexrelid = c.oid
                 LEFT JOIN pg_class tc ON tc.oid = i.indrelid
                 LEFT JOIN pg_namespace tn ON tn.oid = tc.relnamespace
                WHERE n.nspname = %s AND c.relname = %s""", (desired['schema'], temp))
        if row is None:
            return False
        target = '%s.%s' % (desired['schema'], desired['name'])
        qualified_temp = '%s.%s' % (desired['schema'], temp)
        table = '%s.%s' % (desired['schema'], desired['table'])
        if row['kind'] != 'i':
            found = '%s named %s exists' % (RELKIND_WORDS.get(row['kind'], 'a relation'), qualified_temp)
        elif (row['table_schema'], row['table']) != (desired['schema'], desired['table']):
            found = 'index %s exists on table %s.%s' % (qualified_temp, row['table_schema'], row['table'])
        elif row['valid']:
            found = 'index %s exists on %s and is valid' % (qualified_temp, table)
        else:
            return True
        raise DbError('rebuild index', target,
                      '%s, so it is not a leftover of an interrupted dbops.admin rebuild (an invalid index on %s) '
                      'and the rebuild needs its name; rename or drop %s first' % (found, table, qualified_temp))

    def index_repair(self, desired, current, concurrently):
        """An invalid index (failed concurrent build) is dropped and built again."""
        self._index_refuse_constraint(current, 'repair index')
        concurrently = self._index_can_concurrently(desired, concurrently)
        self.execute('DROP INDEX %sIF EXISTS %s' % ('CONCURRENTLY ' if concurrently else '',
                                                    self._index_qualified(current['schema'], current['name'])),
                     operation='drop invalid index %s.%s' % (current['schema'], current['name']))
        self.index_create(desired, concurrently)

    def index_set_tablespace(self, desired):
        self.execute('ALTER INDEX %s SET TABLESPACE %s' % (
            self._index_qualified(desired['schema'], desired['name']), self.quote_ident(desired['tablespace'])),
            operation='move index %s.%s' % (desired['schema'], desired['name']))

    def index_reindex(self, current, concurrently):
        """REINDEX INDEX, CONCURRENTLY where the server has it (PostgreSQL 12 and later)."""
        concurrently = bool(concurrently) and self.version_num >= 120000
        self.execute('REINDEX INDEX %s%s' % ('CONCURRENTLY ' if concurrently else '',
                                             self._index_qualified(current['schema'], current['name'])),
                     operation='reindex %s.%s' % (current['schema'], current['name']))

    def index_rebuild_method(self, concurrently):
        if self.version_num >= 120000 and concurrently:
            return 'REINDEX INDEX CONCURRENTLY'
        return 'REINDEX INDEX'

    def index_summary(self, index):
        """The return value for one index."""
        if index is None:
            return {}
        return {key: index.get(key) for key in
                ('schema', 'name', 'table', 'definition', 'valid', 'size_bytes', 'type', 'unique', 'tablespace')}


def normalize_pg_indexdef(definition):
    """pg_get_indexdef() text without the ONLY of a partitioned parent (a plain copy has none)."""
    match = re.match(r'^(CREATE (?:UNIQUE )?INDEX .*? ON )ONLY ', definition)
    if match:
        return match.group(1) + definition[match.end():]
    return definition
