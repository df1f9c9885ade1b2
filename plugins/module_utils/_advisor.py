# -*- coding: utf-8 -*-
# Copyright: dbops.admin contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Private to dbops.admin: engine-independent query advisor logic.

SQL is read with sqlglot (a real parser, both PostgreSQL and MySQL dialects): anti-pattern
findings with mechanical rewrites, fingerprints, the predicate shape of a query, index
candidates, and the greedy choice of an index set for a workload given a cost oracle.
Nothing here talks to a server.
"""

from __future__ import annotations

import datetime
import hashlib

try:
    import sqlglot
    from sqlglot import exp
    from sqlglot.errors import ParseError, TokenError
    HAS_SQLGLOT = True
    SQLGLOT_IMPORT_ERROR = None
except ImportError as _exc:  # pragma: no cover - depends on the host
    sqlglot = None
    exp = None
    ParseError = TokenError = Exception
    HAS_SQLGLOT = False
    SQLGLOT_IMPORT_ERROR = _exc

SQLGLOT_PACKAGE = 'sqlglot (pip install sqlglot)'

if HAS_SQLGLOT:
    import logging
    # sqlglot logs a warning when it falls back to an opaque command; the report says it better
    logging.getLogger('sqlglot').setLevel(logging.ERROR)

UTILITY_KEYWORDS = frozenset((
    'ALTER', 'ANALYZE', 'BEGIN', 'CALL', 'CHECKPOINT', 'CLUSTER', 'COMMENT', 'COMMIT', 'COPY', 'CREATE',
    'DEALLOCATE', 'DISCARD', 'DO', 'DROP', 'EXECUTE', 'EXPLAIN', 'FLUSH', 'GRANT', 'HANDLER', 'KILL', 'LISTEN',
    'LOAD', 'LOCK', 'NOTIFY', 'OPTIMIZE', 'PREPARE', 'REFRESH', 'REINDEX', 'RELEASE', 'RENAME', 'REPAIR',
    'RESET', 'REVOKE', 'ROLLBACK', 'SAVEPOINT', 'SET', 'SHOW', 'START', 'TRUNCATE', 'UNLOCK', 'USE', 'VACUUM'))

DEEP_OFFSET = 1000
SEVERITY_ORDER = {'info': 0, 'warning': 1, 'critical': 2}
STRING_TYPES = ('char', 'text', 'varchar', 'character', 'enum', 'set', 'uuid', 'citext', 'name',
                'tinytext', 'mediumtext', 'longtext', 'json')
NUMERIC_TYPES = ('int', 'integer', 'bigint', 'smallint', 'tinyint', 'mediumint', 'numeric', 'decimal',
                 'real', 'double', 'float', 'serial', 'bigserial', 'bit', 'year')
TEMPORAL_TYPES = ('date', 'time', 'timestamp', 'datetime', 'timestamptz', 'interval')


def dialect_for(engine_name):
    return 'postgres' if engine_name == 'postgresql' else 'mysql'


# ---------------------------------------------------------------------------------------------
# Parsing and fingerprints
# ---------------------------------------------------------------------------------------------
STATEMENT_TYPES = ()
if HAS_SQLGLOT:
    STATEMENT_TYPES = (exp.Select, exp.Union, exp.Intersect, exp.Except, exp.Insert, exp.Update,
                       exp.Delete, exp.Merge, exp.Values)


def _spaced_parameters(sql, dialect):
    """PostgreSQL text with a space after each $n parameter outside quotes and comments.

    pg_stat_statements keeps the spacing of the original statement, so IN (1,2) becomes
    IN ($1,$2), which the sqlglot tokenizer cannot read (it takes $1,$ for a dollar quote).
    A space after a parameter changes nothing for the server.
    """
    if dialect != 'postgres' or '$' not in sql:
        return sql
    out = []
    i, n = 0, len(sql)
    while i < n:
        ch = sql[i]
        nxt = sql[i + 1] if i + 1 < n else ''
        if ch in ("'", '"'):
            end = i + 1
            while end < n:
                if sql[end] == ch:
                    if end + 1 < n and sql[end + 1] == ch:
                        end += 2
                        continue
                    break
                if ch == "'" and sql[end] == '\\' and i > 0 and sql[i - 1] in 'eE':
                    end += 1
                end += 1
            out.append(sql[i:end + 1])
            i = end + 1
        elif ch == '-' and nxt == '-':
            end = sql.find('\n', i)
            end = n if end < 0 else end
            out.append(sql[i:end])
            i = end
        elif ch == '/' and nxt == '*':
            depth, end = 1, i + 2
            while end < n and depth:
                if sql.startswith('/*', end):
                    depth, end = depth + 1, end + 2
                elif sql.startswith('*/', end):
                    depth, end = depth - 1, end + 2
                else:
                    end += 1
            out.append(sql[i:end])
            i = end
        elif ch == '$' and nxt.isdigit() and not (out and (out[-1][-1:].isalnum() or out[-1][-1:] == '_')):
            end = i + 1
            while end < n and sql[end].isdigit():
                end += 1
            out.append(sql[i:end])
            if end < n and not sql[end].isspace():
                out.append(' ')
            i = end
        elif ch == '$' and not (out and (out[-1][-1:].isalnum() or out[-1][-1:] == '_')):
            tag_end = i + 1
            while tag_end < n and (sql[tag_end].isalnum() or sql[tag_end] == '_'):
                tag_end += 1
            if tag_end < n and sql[tag_end] == '$':     # a dollar quote $tag$ ... $tag$
                tag = sql[i:tag_end + 1]
                close = sql.find(tag, tag_end + 1)
                end = n if close < 0 else close + len(tag)
                out.append(sql[i:end])
                i = end
            else:
                out.append(ch)
                i += 1
        else:
            out.append(ch)
            i += 1
    return ''.join(out)


def parse(sql, dialect):
    """Parse one statement. Returns (tree, None) or (None, 'reason')."""
    try:
        trees = [t for t in sqlglot.parse(_spaced_parameters(sql, dialect), read=dialect) if t is not None]
    except (ParseError, TokenError) as exc:
        return None, 'the SQL parser could not read the statement: %s' % _first_line(exc)
    except Exception as exc:  # pylint: disable=broad-except
        return None, 'the SQL parser failed on the statement: %s' % _first_line(exc)
    if not trees:
        return None, 'no statement found'
    if len(trees) > 1:
        return None, 'one statement per query please (found %d)' % len(trees)
    tree = trees[0]
    if not isinstance(tree, STATEMENT_TYPES):
        return None, 'not a SELECT, INSERT, UPDATE, DELETE or MERGE statement'
    return tree, None


def _first_line(exc):
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__


def fold_identifiers(tree, dialect):
    """Unquoted identifiers as the server sees them: PostgreSQL folds them to lower case; MySQL
    column names are case-insensitive (table names depend on the server, left alone)."""
    if dialect == 'postgres':
        for ident in tree.find_all(exp.Identifier):
            if not ident.quoted:
                ident.set('this', ident.this.lower())
    else:
        for col in tree.find_all(exp.Column):
            if isinstance(col.this, exp.Identifier):
                col.this.set('this', col.this.this.lower())
    return tree


def is_write(tree):
    """True when the statement writes, also through a data-modifying CTE (WITH d AS (DELETE ...) SELECT ...)
    or as SELECT ... INTO a new table (PostgreSQL; MySQL's INTO @variable writes no table)."""
    kinds = (exp.Insert, exp.Update, exp.Delete, exp.Merge)
    if tree is None:
        return False
    if isinstance(tree, kinds) or tree.find(*kinds) is not None:
        return True
    return any(isinstance(into.this, exp.Table) and isinstance(into.this.this, exp.Identifier)
               for into in tree.find_all(exp.Into))


# functions whose effect a rollback does not undo: EXPLAIN ANALYZE would really do it (end sessions,
# advance sequences, take session locks, reset statistics, write files or other databases ...)
NON_TRANSACTIONAL_FUNCTIONS = frozenset((
    'nextval', 'setval', 'pg_terminate_backend', 'pg_cancel_backend', 'pg_reload_conf', 'pg_rotate_logfile',
    'pg_switch_wal', 'pg_create_restore_point', 'pg_promote', 'pg_wal_replay_pause', 'pg_wal_replay_resume',
    'pg_advisory_lock', 'pg_advisory_lock_shared', 'pg_try_advisory_lock', 'pg_try_advisory_lock_shared',
    'pg_advisory_unlock', 'pg_advisory_unlock_shared', 'pg_advisory_unlock_all', 'pg_stat_reset',
    'pg_stat_reset_shared', 'pg_stat_reset_single_table_counters', 'pg_stat_reset_single_function_counters',
    'pg_stat_reset_slru', 'pg_stat_reset_replication_slot', 'pg_stat_reset_subscription_stats',
    'pg_stat_statements_reset', 'pg_drop_replication_slot', 'pg_create_physical_replication_slot',
    'pg_create_logical_replication_slot', 'pg_replication_slot_advance', 'pg_logical_slot_get_changes',
    'pg_logical_slot_get_binary_changes', 'pg_log_backend_memory_contexts', 'pg_file_write', 'pg_file_unlink',
    'pg_file_rename', 'pg_file_sync', 'lo_export', 'dblink', 'dblink_exec', 'dblink_send_query',
    'get_lock', 'release_lock', 'release_all_locks', 'sys_exec', 'sys_eval'))


def non_transactional_calls(tree):
    """Names of the functions of the statement a rollback cannot undo (nextval, pg_terminate_backend ...)."""
    if tree is None:
        return []
    names = {node.name.lower() for node in tree.find_all(exp.Anonymous) if node.name}
    if getattr(exp, 'NextValueFor', None) is not None and tree.find(exp.NextValueFor) is not None:
        names.add('nextval')
    return sorted(names & NON_TRANSACTIONAL_FUNCTIONS)


def fingerprint(sql, dialect):
    """(hash, normalized text): literals become ?, IN lists collapse, case and spacing folded.

    Built on the sqlglot tokenizer, so it works for statements the parser refuses too.
    """
    try:
        tokens = sqlglot.tokenize(_spaced_parameters(sql, dialect), read=dialect)
    except Exception:  # pylint: disable=broad-except
        norm = ' '.join(sql.lower().split())
        return hashlib.sha256(norm.encode('utf-8')).hexdigest()[:16], norm
    out = []
    for tok in tokens:
        kind = tok.token_type.name
        if kind in ('NUMBER', 'STRING', 'NATIONAL_STRING', 'BIT_STRING', 'HEX_STRING', 'BYTE_STRING',
                    'PLACEHOLDER', 'TRUE', 'FALSE', 'NULL'):
            if out and out[-1] == '$':       # $1 parameters
                out.pop()
            out.append('?')
        elif kind == 'PARAMETER':
            out.append('$')
        elif kind in ('VAR', 'IDENTIFIER'):
            out.append(tok.text.lower() if kind == 'VAR' else tok.text)
        elif kind == 'SEMICOLON':
            continue
        else:
            out.append(tok.text.upper())
    # collapse "( ? , ? , ? )" into "( ?+ )"
    collapsed = []
    i = 0
    while i < len(out):
        if out[i] == '(' and i + 1 < len(out) and out[i + 1] == '?':
            j = i + 1
            while j + 2 < len(out) and out[j + 1] == ',' and out[j + 2] == '?':
                j += 2
            if j + 1 < len(out) and out[j + 1] == ')' and j > i + 1:
                collapsed.extend(['(', '?+', ')'])
                i = j + 2
                continue
        collapsed.append(out[i])
        i += 1
    norm = ' '.join(collapsed)
    return hashlib.sha256(norm.encode('utf-8')).hexdigest()[:16], norm


def statement_count(sql, dialect):
    """How many statements the text holds (by tokens, so quotes and comments are respected).

    Returns (count, None) or (None, reason) when the text cannot even be tokenized.
    """
    try:
        tokens = sqlglot.tokenize(_spaced_parameters(sql, dialect), read=dialect)
    except Exception as exc:  # pylint: disable=broad-except
        return None, 'the SQL tokenizer could not read the text: %s' % _first_line(exc)
    count = 0
    pending = False
    for tok in tokens:
        if tok.token_type.name == 'SEMICOLON':
            if pending:
                count += 1
            pending = False
        else:
            pending = True
    return count + (1 if pending else 0), None


def utility_keyword(sql, dialect):
    """The leading keyword when the text is a utility statement (COPY, VACUUM, SET ...), else None."""
    try:
        tokens = sqlglot.tokenize(_spaced_parameters(sql, dialect), read=dialect)
    except Exception:  # pylint: disable=broad-except
        return None
    if not tokens:
        return None
    word = tokens[0].text.upper()
    return word if word in UTILITY_KEYWORDS else None


def has_placeholders(sql, dialect):
    try:
        tokens = sqlglot.tokenize(_spaced_parameters(sql, dialect), read=dialect)
    except Exception:  # pylint: disable=broad-except
        return False
    # ? (or :name) placeholders, and PostgreSQL's $1; MySQL's @variable is a PARAMETER token too, but has a value
    return any(t.token_type.name == 'PLACEHOLDER'
               or (t.token_type.name == 'PARAMETER' and t.text == '$' and i + 1 < len(tokens)
                   and tokens[i + 1].token_type.name == 'NUMBER')
               for i, t in enumerate(tokens))


# ---------------------------------------------------------------------------------------------
# Scopes: which table a column belongs to
# ---------------------------------------------------------------------------------------------
def _from_of(select):
    return select.args.get('from_') or select.args.get('from')


def _scope_tables(node):
    """{alias_or_name: (db, name)} for the tables read directly by one SELECT/UPDATE/DELETE."""
    tables = {}
    sources = []
    if isinstance(node, exp.Select):
        frm = _from_of(node)
        if frm is not None:
            sources.append(frm.this)
            sources.extend(frm.expressions or [])
        for join in node.args.get('joins') or []:
            sources.append(join.this)
    elif isinstance(node, (exp.Update, exp.Delete)):
        sources.append(node.this)
        frm = _from_of(node)
        if frm is not None:
            sources.append(frm.this)
        for join in node.args.get('joins') or []:
            sources.append(join.this)
        using = node.args.get('using')
        if using is not None:
            sources.extend(using.expressions if hasattr(using, 'expressions') else [using])
    for src in sources:
        if isinstance(src, exp.Table) and isinstance(src.this, exp.Identifier):
            key = (src.alias_or_name or src.name)
            tables[key] = (src.db or None, src.name)
    return tables


class Scope:
    """The tables of one query block and a column resolver using the catalog when needed."""

    def __init__(self, node, catalog=None, ctes=()):
        self.node = node
        self.tables = {k: v for k, v in _scope_tables(node).items() if not (v[0] is None and v[1] in ctes)}
        self.catalog = catalog or {}

    def resolve(self, column):
        """(table key (db, name), column name) or None."""
        if not isinstance(column, exp.Column) or isinstance(column.this, exp.Star):
            return None
        name = column.name
        qual = column.table
        if qual:
            target = self.tables.get(qual)
            return (target, name) if target else None
        if len(self.tables) == 1:
            return (next(iter(self.tables.values())), name)
        owners = [t for t in self.tables.values() if name in self.catalog.get(t, {})]
        if len(set(owners)) == 1:
            return (owners[0], name)
        return None


def _query_blocks(tree):
    """Every SELECT/UPDATE/DELETE block of the statement (subqueries and CTEs included)."""
    for node in tree.walk():
        if isinstance(node, (exp.Select, exp.Update, exp.Delete)):
            yield node


def _cte_names(tree):
    return {cte.alias for cte in tree.find_all(exp.CTE)}


def _own(node, block):
    """True when node belongs to this block, not to a nested query block."""
    parent = node.parent
    while parent is not None and parent is not block:
        if isinstance(parent, (exp.Select, exp.Update, exp.Delete)):
            return False
        parent = parent.parent
    return parent is block


def aliases_of(tree, key):
    """Every name a table (db, name) goes by in the statement (its aliases and its name)."""
    out = set()
    for table in tree.find_all(exp.Table):
        if (table.db or None, table.name) == key:
            out.add(table.alias_or_name)
    return out


def referenced_tables(tree):
    """Every real table (db, name) the statement reads or writes (CTE names excluded)."""
    ctes = _cte_names(tree)
    out = []
    for table in tree.find_all(exp.Table):
        if not isinstance(table.this, exp.Identifier):
            continue
        key = (table.db or None, table.name)
        if key[0] is None and key[1] in ctes:
            continue
        if key not in out:
            out.append(key)
    return out


# ---------------------------------------------------------------------------------------------
# Shape of a query: predicates, joins, ORDER BY, per table
# ---------------------------------------------------------------------------------------------
def _conjuncts(cond):
    if cond is None:
        return []
    if isinstance(cond, exp.Where):
        cond = cond.this
    if isinstance(cond, exp.Paren):
        return _conjuncts(cond.this)
    if isinstance(cond, exp.And):
        return _conjuncts(cond.this) + _conjuncts(cond.expression)
    return [cond]


def _is_value(node):
    """A literal, bound parameter or constant expression (no column reference)."""
    if node is None:
        return False
    if isinstance(node, (exp.Literal, exp.Placeholder, exp.Parameter, exp.Null, exp.Boolean)):
        return True
    if isinstance(node, (exp.Select, exp.Subquery)):
        return False
    if isinstance(node, (exp.Cast, exp.Paren, exp.Neg, exp.Any, exp.Array, exp.Tuple, exp.Anonymous,
                         exp.Func, exp.Binary, exp.Interval, exp.CurrentDate, exp.CurrentTimestamp)):
        return node.find(exp.Column) is None and node.find(exp.Select) is None
    return False


class QueryShape:
    """Per table: equality, range and join columns, ORDER BY columns; plus the tables."""

    def __init__(self):
        self.tables = []               # [(db, name)]
        self.columns = {}              # table -> {col: {'eq','range','join','order','group','in','bool'}}
        self.order = {}                # table -> [(col, desc)] in ORDER BY order (single-table ORDER BY)
        self.limit = None

    def add(self, table, column, kind):
        cols = self.columns.setdefault(table, {})
        kinds = cols.setdefault(column, [])
        if kind not in kinds:
            kinds.append(kind)

    def of_kind(self, table, *kinds):
        return [c for c, ks in self.columns.get(table, {}).items() if any(k in ks for k in kinds)]

    def as_dict(self):
        return {'%s' % table_label(t): dict(cols) for t, cols in self.columns.items()}


def table_label(table):
    db, name = table
    return '%s.%s' % (db, name) if db else name


def query_shape(tree, catalog=None):
    """Predicates of each table of the statement, resolved through aliases and the catalog.

    ``catalog`` maps (db, name) -> {column: type} and lets unqualified columns of a join find
    their table.
    """
    shape = QueryShape()
    shape.tables = referenced_tables(tree)
    ctes = _cte_names(tree)
    for block in _query_blocks(tree):
        scope = Scope(block, catalog, ctes)
        if not scope.tables:
            continue
        conds = list(_conjuncts(block.args.get('where')))
        for join in block.args.get('joins') or []:
            conds.extend(_conjuncts(join.args.get('on')))
            for ident in join.args.get('using') or []:
                for key in scope.tables.values():
                    if ident.name in (scope.catalog.get(key) or {ident.name: None}):
                        shape.add(key, ident.name, 'join')
        for cond in conds:
            _classify(cond, scope, shape)
        if isinstance(block, exp.Select):
            order = block.args.get('order')
            if order is not None:
                resolved = []
                for ordered in order.expressions:
                    ref = scope.resolve(ordered.this)
                    if ref is None:
                        resolved = None
                        break
                    resolved.append((ref[0], ref[1], bool(ordered.args.get('desc'))))
                if resolved and len({r[0] for r in resolved}) == 1:
                    table = resolved[0][0]
                    shape.order.setdefault(table, [(c, d) for _, c, d in resolved])
                    for _, col, _ in resolved:
                        shape.add(table, col, 'order')
            group = block.args.get('group')
            if group is not None:
                for expr in group.expressions:
                    ref = scope.resolve(expr)
                    if ref:
                        shape.add(ref[0], ref[1], 'group')
            limit = block.args.get('limit')
            if limit is not None and block is tree:
                shape.limit = True
    return shape


def is_expression(column):
    """Index keys that are expressions are kept as '(expression)' strings."""
    return column.startswith('(')


def normalize_expression(text, dialect='postgres'):
    """One spelling of an index expression, to compare a candidate with an existing index."""
    try:
        node = sqlglot.parse_one(text, read=dialect)
    except Exception:  # pylint: disable=broad-except
        return '(' + ' '.join(text.split()) + ')'
    while isinstance(node, exp.Paren):
        node = node.this
    node = node.copy()
    for col in node.find_all(exp.Column):
        col.set('table', None)
    for cast in list(node.find_all(exp.Cast)):
        if isinstance(cast.this, exp.Literal):     # pg_get_indexdef spells 'k'::text
            cast.replace(cast.this.copy())
    return '(' + node.sql(dialect=dialect, identify=True) + ')'


def _expression_ref(node, scope):
    """(table, '(expression)') when node is an indexable expression of exactly one column of the
    scope (lower(email), data->>'k', a cast), but not a date function the rewrite rule fixes."""
    if node is None or isinstance(node, (exp.Column, exp.Paren)) or _is_value(node):
        return None
    if not isinstance(node, (exp.Func, exp.Cast, exp.JSONExtract, exp.JSONExtractScalar, exp.Dot,
                             exp.Binary)) or isinstance(node, (exp.Any, exp.All, exp.Subquery)):
        return None
    if node.find(exp.Select) is not None or node.find(exp.Placeholder, exp.Parameter) is not None:
        return None
    columns = list(node.find_all(exp.Column))
    if len(columns) != 1:
        return None
    column, unit = _wrapped_column(node)
    if unit:
        return None
    ref = scope.resolve(columns[0])
    if not ref:
        return None
    return ref[0], normalize_expression(node.sql(dialect='postgres'))


def _classify(cond, scope, shape):
    if isinstance(cond, exp.Paren):
        cond = cond.this
    if isinstance(cond, exp.Column):
        ref = scope.resolve(cond)
        if ref:
            shape.add(ref[0], ref[1], 'bool')
        return
    if isinstance(cond, exp.Not) and isinstance(cond.this, exp.Column):
        ref = scope.resolve(cond.this)
        if ref:
            shape.add(ref[0], ref[1], 'bool')
        return
    if isinstance(cond, exp.Or):
        # each branch could use its own index (bitmap OR / index merge)
        for branch in _disjuncts(cond):
            for sub in _conjuncts(branch):
                _classify(sub, scope, shape)
        return
    if isinstance(cond, exp.EQ) and isinstance(cond.this, exp.Tuple) and isinstance(cond.expression, exp.Tuple) \
            and len(cond.this.expressions) == len(cond.expression.expressions):
        # (a, b) = (1, 2): one equality per column
        for left, right in zip(cond.this.expressions, cond.expression.expressions):
            _classify(exp.EQ(this=left.copy(), expression=right.copy()), scope, shape)
        return
    if isinstance(cond, (exp.EQ, exp.GT, exp.GTE, exp.LT, exp.LTE)):
        for side, other in ((cond.this, cond.expression), (cond.expression, cond.this)):
            expr = _expression_ref(side, scope) if _is_value(other) else None
            if expr:
                shape.add(expr[0], expr[1], 'eq' if isinstance(cond, exp.EQ) else 'range')
                return
    if isinstance(cond, (exp.EQ, exp.NullSafeEQ)):
        left, right = cond.this, cond.expression
        lref = scope.resolve(left) if isinstance(left, exp.Column) else None
        rref = scope.resolve(right) if isinstance(right, exp.Column) else None
        if lref and rref:
            if lref[0] != rref[0]:
                shape.add(lref[0], lref[1], 'join')
                shape.add(rref[0], rref[1], 'join')
            return
        if lref and isinstance(right, exp.Column) or rref and isinstance(left, exp.Column):
            # a correlated subquery: the other column belongs to an outer query block
            ref = lref or rref
            shape.add(ref[0], ref[1], 'join')
            return
        if lref and _is_value(right):
            shape.add(lref[0], lref[1], 'eq')
        elif rref and _is_value(left):
            shape.add(rref[0], rref[1], 'eq')
        elif lref and isinstance(right, exp.Column) is False and right.find(exp.Column) is not None:
            # col = other_table.col + 1: a join column all the same
            shape.add(lref[0], lref[1], 'join')
        return
    if isinstance(cond, (exp.GT, exp.GTE, exp.LT, exp.LTE)):
        left, right = cond.this, cond.expression
        lref = scope.resolve(left) if isinstance(left, exp.Column) else None
        rref = scope.resolve(right) if isinstance(right, exp.Column) else None
        if lref and rref:
            if lref[0] != rref[0]:
                shape.add(lref[0], lref[1], 'join')
                shape.add(rref[0], rref[1], 'join')
        elif lref and _is_value(right):
            shape.add(lref[0], lref[1], 'range')
        elif rref and _is_value(left):
            shape.add(rref[0], rref[1], 'range')
        return
    if isinstance(cond, exp.Between):
        ref = scope.resolve(cond.this) if isinstance(cond.this, exp.Column) else None
        if ref:
            shape.add(ref[0], ref[1], 'range')
        return
    if isinstance(cond, exp.In):
        ref = scope.resolve(cond.this) if isinstance(cond.this, exp.Column) else None
        query = cond.args.get('query')
        if ref:
            shape.add(ref[0], ref[1], 'join' if query is not None else 'eq')
        inner = query.this if isinstance(query, exp.Subquery) else query
        if isinstance(inner, exp.Select) and len(inner.expressions) == 1:
            # x IN (SELECT y FROM u ...): a semi-join on u.y
            inner_ref = Scope(inner, scope.catalog).resolve(inner.expressions[0])
            if inner_ref:
                shape.add(inner_ref[0], inner_ref[1], 'join')
        return
    if isinstance(cond, exp.Is):
        ref = scope.resolve(cond.this) if isinstance(cond.this, exp.Column) else None
        if ref and isinstance(cond.expression, exp.Null):
            shape.add(ref[0], ref[1], 'eq')
        return
    if isinstance(cond, (exp.Like,)):
        ref = scope.resolve(cond.this) if isinstance(cond.this, exp.Column) else None
        pattern = cond.expression
        if ref and isinstance(pattern, exp.Literal) and pattern.is_string and pattern.this \
                and pattern.this[0] not in '%_':
            shape.add(ref[0], ref[1], 'range')
        return


def _disjuncts(cond):
    if isinstance(cond, exp.Paren):
        return _disjuncts(cond.this)
    if isinstance(cond, exp.Or):
        return _disjuncts(cond.this) + _disjuncts(cond.expression)
    return [cond]


# ---------------------------------------------------------------------------------------------
# Index candidates
# ---------------------------------------------------------------------------------------------
MAX_CANDIDATES_PER_TABLE = 24


def _adder(cands):
    def add(cols):
        cols = tuple(cols)
        if len(set(cols)) == len(cols) and cols not in cands:
            cands.append(cols)
    return add


def index_candidates(shape, max_width=3):
    """Single, two- and three-column btree candidates per table, most promising first.

    Singles: every equality, range, join, ORDER BY/GROUP BY and boolean column.
    Pairs: equality (or join) column first, then another equality, a range column, a join
    column or the ORDER BY column - the order a btree can use both. Triples: two equalities
    then a range or the ORDER BY column.
    """
    out = []
    for table in shape.columns:
        eq = shape.of_kind(table, 'eq', 'bool')
        join = shape.of_kind(table, 'join')
        rng = shape.of_kind(table, 'range')
        order = [c for c, _ in shape.order.get(table, [])]
        group = shape.of_kind(table, 'group')
        cands = []
        add = _adder(cands)

        for col in eq + rng + join + order[:1] + group[:1]:
            add((col,))
        if max_width >= 2:
            leads = eq + [c for c in join if c not in eq]
            for first in leads:
                for second in eq + rng + join + order[:1]:
                    if second != first:
                        add((first, second))
        if max_width >= 3:
            # two equalities, then the range or ORDER BY column
            for first in eq:
                for second in eq:
                    for third in rng[:2] + order[:1]:
                        if first != second and third not in (first, second):
                            add((first, second, third))
            if len(order) >= 2:
                add(tuple(order[:2]))
            for first in rng:
                for second in order[:1]:
                    add((first, second))
        for cols in cands[:MAX_CANDIDATES_PER_TABLE]:
            out.append((table, cols))
    return out


def is_leading_prefix(columns, index_columns):
    """True when columns are the leading columns of index_columns (or equal to them)."""
    columns = list(columns)
    index_columns = list(index_columns or [])
    return len(columns) <= len(index_columns) and index_columns[:len(columns)] == columns


def covered_by_existing(table, columns, existing):
    """The existing index this candidate would duplicate or be a leading prefix of, or None.

    ``existing`` is a list of dicts {table, name, columns (None for expressions), method,
    valid, partial}.
    """
    for idx in existing:
        if idx['table'] != table or not idx.get('valid', True) or idx.get('partial'):
            continue
        if (idx.get('method') or 'btree').lower() not in ('btree',):
            continue
        if idx.get('columns') and is_leading_prefix(columns, idx['columns']):
            return idx
    return None


def index_name(table_name, columns, taken=(), limit=63):
    """A readable index name <table>_<cols>_idx, shortened with a hash when too long."""
    parts = [table_name] + list(columns) + ['idx']
    words = []
    for part in parts:
        clean = ''.join(ch if ch.isalnum() or ch == '_' else ' ' for ch in part.lower())
        words.append('_'.join(clean.split()))
    base = '_'.join(w for w in words if w)
    if len(base.encode('utf-8')) > limit:
        digest = hashlib.sha256(base.encode('utf-8')).hexdigest()[:8]
        base = base.encode('utf-8')[:limit - 10].decode('utf-8', 'ignore') + '_' + digest + 'x'
    name = base
    n = 1
    while name in taken:
        n += 1
        suffix = str(n)
        name = base[:limit - len(suffix)] + suffix
    return name


# ---------------------------------------------------------------------------------------------
# Choosing an index set for a workload
# ---------------------------------------------------------------------------------------------
NARROWER_TOLERANCE = 0.97


def prefer_narrower(best, savings, tolerance=NARROWER_TOLERANCE):
    """The shortest leading prefix of best (same table) that saves nearly as much: a narrower
    index is cheaper to keep and serves more queries. Keys are (table, columns)."""
    table, cols = best
    top = savings[best]
    pick = best
    for key, saved in savings.items():
        if key[0] == table and len(key[1]) < len(pick[1]) and is_leading_prefix(key[1], cols) \
                and saved >= tolerance * top:
            pick = key
    return pick


def choose_index_set(base_costs, candidates, oracle, max_indexes, min_query_gain=0.1, min_relative_gain=0.5,
                     weights=None, bundles=()):
    """Greedy choice of indexes by total estimated cost saved across the workload.

    base_costs: {query_id: cost with the current (real) indexes}.
    candidates: {(table, columns): set(query_ids it can affect)}.
    oracle(chosen_keys, query_ids) -> {query_id: cost} with the hypothetical indexes in
    chosen_keys present. Each round re-evaluates, with the already chosen indexes present,
    only the candidates sharing a query with the last pick (the others cannot have changed).
    A pick must be worth an index for at least one query: save min_query_gain of its original
    cost, or min_relative_gain of what is left of it after the earlier picks (the second index
    of a query that the first one only half served). Among those, the largest total saving wins.
    weights ({query_id: executions}, default 1) rank by what the workload as run would save.
    bundles: groups of candidates that only pay together (both sides of an OR, a join); when no
    single candidate is worth it any more, the best bundle (by saving per index) is taken whole.
    Returns ([{key, before, after, saved, queries}] in the order chosen, {query_id: final cost}).
    """
    weights = weights or {}
    current = dict(base_costs)
    chosen = []
    remaining = dict(candidates)
    gains = {}
    stale = set(remaining)

    def worth(q, gain):
        base = base_costs[q]
        if base <= 0 or gain <= 0:
            return False
        return gain >= min_query_gain * base or (gain >= min_relative_gain * current[q] and gain >= 0.01 * base)

    while remaining and len(chosen) < max_indexes:
        for key in list(stale):
            qids = remaining[key]
            costs = oracle([c['key'] for c in chosen] + [key], sorted(qids))
            gains[key] = (sum(weights.get(q, 1) * (current[q] - costs[q]) for q in qids), costs)
        stale = set()
        eligible = {k: gains[k][0] for k in remaining
                    if gains[k][0] > 0 and any(worth(q, current[q] - gains[k][1][q]) for q in remaining[k])}
        if not eligible:
            bundle = _best_bundle(bundles, remaining, chosen, oracle, current, weights, worth,
                                  max_indexes - len(chosen))
            if bundle is None:
                break
            keys, costs, helped = bundle
            for key in keys:
                chosen.append({'key': key, 'before': sum(current[q] for q in helped),
                               'after': sum(costs[q] for q in helped),
                               'saved': sum(weights.get(q, 1) * (current[q] - costs[q]) for q in helped),
                               'queries': helped, 'together_with': [k for k in keys if k != key]})
            touched = set()
            for key in keys:
                touched |= remaining.pop(key)
                gains.pop(key, None)
            for q in touched:
                current[q] = min(current[q], costs.get(q, current[q]))
            stale = {k for k, qids in remaining.items() if qids & touched}
            continue
        best = max(eligible, key=lambda k: (eligible[k], -len(k[1])))
        best = prefer_narrower(best, eligible)
        saved, costs = gains[best]
        helped = sorted(q for q in remaining[best] if costs[q] < current[q] * 0.999)
        chosen.append({'key': best, 'before': sum(current[q] for q in helped),
                       'after': sum(costs[q] for q in helped), 'saved': saved, 'queries': helped})
        for q in remaining[best]:
            current[q] = min(current[q], costs[q])
        touched = remaining.pop(best)
        gains.pop(best, None)
        stale = {k for k, qids in remaining.items() if qids & touched}
    return chosen, current


def _best_bundle(bundles, remaining, chosen, oracle, current, weights, worth, budget):
    """(keys, costs, helped queries) of the bundle saving most per index added, or None."""
    have = [c['key'] for c in chosen]
    best, best_rate = None, 0.0
    for bundle in bundles:
        missing = [k for k in bundle if k not in have]
        if not missing or len(missing) > budget or any(k not in remaining for k in missing):
            continue
        qids = sorted(set().union(*(remaining[k] for k in missing)))
        costs = oracle(have + missing, qids)
        saved = sum(weights.get(q, 1) * (current[q] - costs[q]) for q in qids)
        if saved <= 0 or not any(worth(q, current[q] - costs[q]) for q in qids):
            continue
        if saved / len(missing) > best_rate:
            helped = [q for q in qids if costs[q] < current[q] * 0.999]
            best, best_rate = (missing, costs, helped), saved / len(missing)
    return best


# ---------------------------------------------------------------------------------------------
# Statistics-based suggestions (no hypothetical indexes: MariaDB/MySQL, PostgreSQL without HypoPG)
# ---------------------------------------------------------------------------------------------
FEW_ROWS = 20


def heuristic_index(table, shape, stats, min_rows=1000, max_fraction=0.1):
    """Columns of one index for this table from the predicates and column statistics.

    stats: {'rows': estimated rows, 'distinct': {col: distinct values}}. Equality columns
    most selective first (while the combination still narrows), then a range column or the
    ORDER BY column. Returns (columns, estimated fraction of rows read) or (None, reason).
    """
    rows = float(stats.get('rows') or 0)
    if rows < min_rows:
        return None, 'table too small for an index to matter (%d rows)' % rows
    distinct = stats.get('distinct') or {}

    def fraction(col):
        nd = distinct.get(col)
        if not nd or nd <= 0:
            return 0.1
        return 1.0 / nd

    eq = sorted((c for c in shape.of_kind(table, 'eq', 'bool') if not is_expression(c)), key=fraction)
    rng = [c for c in shape.of_kind(table, 'range') if not is_expression(c)]
    join = shape.of_kind(table, 'join')
    order = [c for c, _ in shape.order.get(table, [])]
    cols = []
    frac = 1.0
    for col in eq:
        if len(cols) >= 2:
            break
        # a further equality column only while it still narrows a result worth narrowing
        if cols and (rows * frac <= FEW_ROWS or fraction(col) > 0.5):
            continue
        cols.append(col)
        frac *= fraction(col)
    if cols and order and shape.limit and order[0] not in cols and rows * frac > FEW_ROWS:
        cols.append(order[0])           # equality + ORDER BY ... LIMIT: read the first rows in order
    elif rng and rng[0] not in cols and (not cols or rows * frac > FEW_ROWS):
        cols.append(rng[0])
        frac *= 0.1
    elif not cols and order and shape.limit:
        cols.append(order[0])
        frac = min(frac, 0.05)
    if not cols and join:
        cols.append(join[0])            # the inner side of a nested loop
        frac = fraction(join[0])
    if not cols:
        return None, 'no predicate an index could use'
    if frac > max_fraction:
        return None, 'predicates not selective enough (about %.0f%% of rows)' % (frac * 100)
    return cols, frac


# ---------------------------------------------------------------------------------------------
# Anti-pattern findings
# ---------------------------------------------------------------------------------------------
def _finding(rule, severity, message, rewrite=None, **extra):
    item = {'id': rule, 'rule': rule, 'severity': severity, 'message': message, 'rewrite': rewrite}
    item.update(extra)
    return item


def _parse_date(text):
    text = text.strip()
    for fmt in ('%Y-%m-%d %H:%M:%S', '%Y-%m-%d %H:%M', '%Y-%m-%dT%H:%M:%S', '%Y-%m-%d'):
        try:
            return datetime.datetime.strptime(text, fmt)
        except ValueError:
            continue
    return None


def _add_unit(moment, unit, n=1):
    unit = unit.lower()
    if unit == 'year':
        return moment.replace(year=moment.year + n)
    if unit == 'quarter':
        return _add_unit(moment, 'month', 3 * n)
    if unit == 'month':
        month = moment.month - 1 + n
        return moment.replace(year=moment.year + month // 12, month=month % 12 + 1)
    if unit == 'week':
        return moment + datetime.timedelta(days=7 * n)
    if unit == 'day':
        return moment + datetime.timedelta(days=n)
    if unit == 'hour':
        return moment + datetime.timedelta(hours=n)
    if unit == 'minute':
        return moment + datetime.timedelta(minutes=n)
    return None


def _truncate(moment, unit):
    """moment truncated to the start of its unit (weeks start on Monday, as date_trunc's do)."""
    if unit in ('year', 'quarter', 'month', 'week', 'day'):
        moment = moment.replace(hour=0, minute=0, second=0, microsecond=0)
    if unit == 'year':
        return moment.replace(month=1, day=1)
    if unit == 'quarter':
        return moment.replace(month=moment.month - (moment.month - 1) % 3, day=1)
    if unit == 'month':
        return moment.replace(day=1)
    if unit == 'week':
        return moment - datetime.timedelta(days=moment.weekday())
    if unit == 'hour':
        return moment.replace(minute=0, second=0, microsecond=0)
    if unit == 'minute':
        return moment.replace(second=0, microsecond=0)
    return moment


def _fmt(moment):
    if moment.hour == moment.minute == moment.second == 0:
        return moment.strftime('%Y-%m-%d')
    return moment.strftime('%Y-%m-%d %H:%M:%S')


def _unit_name(node):
    unit = node.args.get('unit')
    if unit is None:
        return None
    text = unit.name if hasattr(unit, 'name') and unit.name else str(unit.this if hasattr(unit, 'this') else unit)
    return str(text).strip("'").lower()


IMPLICIT_WRAPPERS = tuple(getattr(exp, name) for name in ('TsOrDsToDate', 'TsOrDsToTimestamp', 'TsOrDsToDatetime')
                          if HAS_SQLGLOT and hasattr(exp, name))


def _bare(node):
    """The column under the conversions sqlglot adds itself (MySQL YEAR(x) reads x as a date)."""
    while IMPLICIT_WRAPPERS and isinstance(node, IMPLICIT_WRAPPERS) and not node.args.get('format'):
        node = node.this
    return node


def _wrapped_column(func):
    """(column, unit) when func hides a plain column behind a date function; (column, None) for others."""
    if isinstance(func, exp.Func) and not isinstance(func, IMPLICIT_WRAPPERS) and 'this' in func.args:
        inner = _bare(func.this)
        if inner is not func.this and isinstance(inner, exp.Column):
            func = func.copy()
            func.set('this', inner.copy())
    if isinstance(func, exp.Year) and isinstance(func.this, exp.Column):
        return func.this, 'year'
    if isinstance(func, exp.Extract) and isinstance(func.expression, exp.Column):
        part = func.this.name.lower() if hasattr(func.this, 'name') else str(func.this).lower()
        return func.expression, ('year' if part == 'year' else None)
    if isinstance(func, exp.Date) and isinstance(func.this, exp.Column) and not func.expressions:
        return func.this, 'day'
    if hasattr(exp, 'TsOrDsToDate') and isinstance(func, exp.TsOrDsToDate) and isinstance(func.this, exp.Column) \
            and not func.args.get('format'):
        return func.this, 'day'  # MySQL DATE(col)
    if isinstance(func, (exp.Cast, exp.TryCast)) and isinstance(func.this, exp.Column):
        to = func.args.get('to')
        if to is not None and to.is_type(exp.DataType.Type.DATE):
            return func.this, 'day'
        return func.this, None
    trunc_types = tuple(t for t in (getattr(exp, 'TimestampTrunc', None), getattr(exp, 'DateTrunc', None),
                                    getattr(exp, 'DatetimeTrunc', None)) if t is not None)
    if trunc_types and isinstance(func, trunc_types) and isinstance(func.this, exp.Column):
        unit = _unit_name(func)
        return func.this, unit if unit in ('year', 'quarter', 'month', 'week', 'day', 'hour', 'minute') else None
    if isinstance(func, exp.Func) and not isinstance(func, (exp.Any, exp.All)):
        cols = [a for a in func.args.values() if isinstance(a, exp.Column)]
        if len(cols) == 1 and func.find(exp.Select) is None:
            return cols[0], None
    return None, None


def _sargable_range(op, unit, value):
    """(low, high) bounds [low, high) for func(col) op value, None for an unbounded side."""
    if unit == 'year':
        if not (isinstance(value, exp.Literal) and not value.is_string):
            return None
        try:
            start = datetime.datetime(int(value.this), 1, 1)
        except (ValueError, OverflowError):
            return None
    else:
        if not (isinstance(value, exp.Literal) and value.is_string):
            return None
        start = _parse_date(value.this)
        if start is None:
            return None
        if _truncate(start, unit) != start:
            # date_trunc('month', col) = '2024-05-15' matches nothing and >= '2024-05-15' starts in
            # June: only a value on the unit's boundary reads as the same range of the column
            return None
    try:
        nxt = _add_unit(start, unit)
    except (ValueError, OverflowError):   # past year 9999
        return None
    if nxt is None:
        return None
    if op is exp.EQ:
        return start, nxt
    if op is exp.GTE:
        return start, None
    if op is exp.GT:
        return nxt, None
    if op is exp.LT:
        return None, start
    if op is exp.LTE:
        return None, nxt
    return None


FLIP = {}
if HAS_SQLGLOT:
    FLIP = {exp.GT: exp.LT, exp.LT: exp.GT, exp.GTE: exp.LTE, exp.LTE: exp.GTE, exp.EQ: exp.EQ}


def _column_family(node, column, catalog, ctes):
    """'temporal', 'string', 'numeric' or None: the type family of column, from the catalog."""
    block = _enclosing_block(node)
    if block is None or not catalog:
        return None
    ref = Scope(block, catalog, ctes).resolve(column)
    return _type_family((catalog.get(ref[0]) or {}).get(ref[1])) if ref else None


def _rule_function_on_column(tree, dialect, findings, catalog=None):
    ctes = _cte_names(tree)
    targets = []
    for cmp_node in list(tree.find_all(exp.EQ, exp.GT, exp.GTE, exp.LT, exp.LTE, exp.NEQ, exp.In,
                                       exp.Between, exp.Like)):
        left = cmp_node.this
        right = cmp_node.expression if not isinstance(cmp_node, (exp.In, exp.Between)) else None
        op = type(cmp_node)
        if isinstance(left, exp.Column) or not isinstance(left, exp.Func):
            if right is not None and isinstance(right, exp.Func) and _is_value(left) and op in FLIP:
                left, right, op = right, left, FLIP[op]
            else:
                continue
        if isinstance(left, (exp.Any, exp.All)) or left.find(exp.Select) is not None:
            continue
        column, unit = _wrapped_column(left)
        if column is None:
            continue
        if right is not None and not _is_value(right):
            continue
        if unit and _column_family(cmp_node, column, catalog, ctes) not in (None, 'temporal'):
            # CAST(text_col AS date) = 'd': a range of strings is not the same rows
            unit = None
        targets.append((cmp_node, left, column, unit, op, right))
    for cmp_node, func, column, unit, op, value in targets:
        rewrite = None
        bounds = _sargable_range(op, unit, value) if unit and op in FLIP else None
        func_sql = func.sql(dialect=dialect)
        col_sql = column.sql(dialect=dialect)
        if bounds:
            low, high = bounds
            parts = []
            if low is not None:
                parts.append(exp.GTE(this=column.copy(), expression=exp.Literal.string(_fmt(low))))
            if high is not None:
                parts.append(exp.LT(this=column.copy(), expression=exp.Literal.string(_fmt(high))))
            repl = parts[0] if len(parts) == 1 else exp.And(this=parts[0], expression=parts[1])
            if len(parts) > 1 and not isinstance(cmp_node.parent, (exp.Where, exp.And)):
                repl = exp.Paren(this=repl)
            cmp_node.replace(repl)
            rewrite = tree.sql(dialect=dialect)
            message = ('%s hides column %s from its index; compare the column itself with a range: %s'
                       % (func_sql, col_sql, repl.sql(dialect=dialect)))
        else:
            message = ('%s wraps column %s, so a plain index on it cannot be used; compare the bare '
                       'column or index the expression (%s)' % (func_sql, col_sql, func_sql))
        findings.append(_finding('function_on_column', 'warning', message, rewrite,
                                 column=col_sql, expression=func_sql))


def _rule_leading_wildcard(tree, dialect, findings):
    ilike = getattr(exp, 'ILike', None)
    kinds = (exp.Like,) + ((ilike,) if ilike else ())
    for node in tree.find_all(*kinds):
        pattern = node.expression
        if isinstance(pattern, exp.Literal) and pattern.is_string and pattern.this[:1] in ('%', '_'):
            col = node.this.sql(dialect=dialect)
            if dialect == 'postgres':
                hint = ('a btree cannot serve it; a trigram index can: CREATE EXTENSION pg_trgm; '
                        'CREATE INDEX ... USING gin (%s gin_trgm_ops)' % col)
            else:
                hint = ('a btree cannot serve it; a FULLTEXT index with MATCH(%s) AGAINST(...) can '
                        'for word searches' % col)
            findings.append(_finding('leading_wildcard', 'warning',
                                     "LIKE '%s' on %s starts with a wildcard: %s" % (pattern.this, col, hint),
                                     None, column=col))


def _enclosing_block(node):
    block = node.parent
    while block is not None and not isinstance(block, (exp.Select, exp.Update, exp.Delete)):
        block = block.parent
    return block


def _outer_qualifier(node, column, catalog=None):
    """The alias (or name) of the outer table an unqualified column belongs to, or None when unsure."""
    block = _enclosing_block(node)
    if block is None:
        return None
    tables = _scope_tables(block)
    if len(tables) == 1:
        return next(iter(tables))
    ref = Scope(block, catalog).resolve(column) if catalog else None
    if ref is None:
        return None
    aliases = [alias for alias, key in tables.items() if key == ref[0]]
    return aliases[0] if len(aliases) == 1 else None


def _not_exists_rewrite(node, inner, select, catalog):
    """NOT EXISTS (SELECT 1 ... AND inner_col = outer_col) for "left NOT IN (select)", or None when the
    columns cannot be tied to their tables for sure (a wrong tie would change the rows returned)."""
    left = inner.this.copy()
    picked = select.expressions[0]
    picked = (picked.this if isinstance(picked, exp.Alias) else picked).copy()
    new_select = select.copy()
    new_select.set('expressions', [exp.Literal.number(1)])
    sub_tables = _scope_tables(new_select)
    # every column of the outer side, qualified with its outer table
    columns = [left] if isinstance(left, exp.Column) else list(left.find_all(exp.Column))
    quals = set()
    for col in columns:
        if not col.table:
            qual = _outer_qualifier(node, col, catalog)
            if qual is None:
                return None
            col.set('table', exp.to_identifier(qual))
        quals.add(col.table)
    clash = quals & set(sub_tables)
    if clash:
        # the same name inside and outside: the inner table gets an alias of its own
        frm = _from_of(new_select)
        if len(sub_tables) != 1 or frm is None or not isinstance(frm.this, exp.Table):
            return None
        old = next(iter(sub_tables))
        alias = 'sub'
        while alias in quals or alias in sub_tables:
            alias += '_'
        frm.this.set('alias', exp.TableAlias(this=exp.to_identifier(alias)))
        for col in [picked] + [c for c in new_select.find_all(exp.Column) if _own(c, new_select)]:
            if col.table == old:
                col.set('table', exp.to_identifier(alias))
        sub_tables = {alias: sub_tables[old]}
    if isinstance(picked, exp.Column) and not picked.table:
        if len(sub_tables) != 1:
            return None
        picked.set('table', exp.to_identifier(next(iter(sub_tables))))
    link = exp.EQ(this=picked, expression=left)
    where = new_select.args.get('where')
    new_select.set('where', exp.Where(this=exp.and_(where.this, link) if where is not None else link))
    return exp.Not(this=exp.Exists(this=new_select))


def _rule_not_in_subquery(tree, dialect, findings, catalog=None):
    for node in list(tree.find_all(exp.Not)):
        inner = node.this
        if isinstance(inner, exp.Paren):
            inner = inner.this
        if not isinstance(inner, exp.In) or inner.args.get('query') is None:
            continue
        sub = inner.args['query']
        select = sub.this if isinstance(sub, exp.Subquery) else sub
        rewrite = None
        if isinstance(select, exp.Select) and len(select.expressions) == 1 \
                and not select.args.get('group') and not select.args.get('limit'):
            replacement = _not_exists_rewrite(node, inner, select, catalog)
            if replacement is not None:
                node.replace(replacement)
                rewrite = tree.sql(dialect=dialect)
                node = replacement
        findings.append(_finding(
            'not_in_subquery', 'warning',
            'NOT IN (subquery) returns no row at all when the subquery yields a NULL and plans as a '
            'filter over the whole subquery; NOT EXISTS is NULL-safe and becomes an anti-join',
            rewrite))


def _rule_offset(tree, dialect, findings):
    for select in tree.find_all(exp.Select):
        offset = select.args.get('offset')
        if offset is None:
            continue
        value = offset.expression
        if isinstance(value, exp.Literal) and not value.is_string:
            try:
                n = int(value.this)
            except ValueError:
                continue
            if n >= DEEP_OFFSET:
                order = select.args.get('order')
                keys = ', '.join(o.this.sql(dialect=dialect) for o in order.expressions) if order else None
                hint = ('remember the last %s of the previous page and ask for WHERE (%s) > (<last>) '
                        'ORDER BY %s LIMIT n' % (keys, keys, keys)) if keys else \
                    'add a unique ORDER BY and page on it (keyset pagination)'
                findings.append(_finding('offset_pagination', 'warning',
                                         'OFFSET %d reads and throws away %d rows on every page; use keyset '
                                         'pagination: %s' % (n, n, hint), None, offset=n))


def _rule_or_columns(tree, dialect, scope_catalog, findings):
    for where in tree.find_all(exp.Where):
        for cond in _conjuncts(where):
            if not isinstance(cond, exp.Or):
                continue
            cols = set()
            for branch in _disjuncts(cond):
                for col in branch.find_all(exp.Column):
                    cols.add(col.sql(dialect=dialect))
            if len(cols) > 1:
                findings.append(_finding(
                    'or_different_columns', 'info',
                    'OR across different columns (%s) usually cannot use one index; give each column its '
                    'own index (bitmap OR / index merge) or split into a UNION of selective queries'
                    % ', '.join(sorted(cols)), None, columns=sorted(cols)))


def _type_family(type_name):
    t = (type_name or '').lower()
    if any(t.startswith(x) for x in TEMPORAL_TYPES):
        return 'temporal'
    if any(t.startswith(x) for x in NUMERIC_TYPES) or t in ('double precision',):
        return 'numeric'
    if any(t.startswith(x) for x in STRING_TYPES) or 'char' in t or 'text' in t:
        return 'string'
    return None


def _rule_implicit_cast(tree, dialect, catalog, findings):
    if not catalog:
        return
    ctes = _cte_names(tree)
    for block in _query_blocks(tree):
        scope = Scope(block, catalog, ctes)
        for cmp_node in block.find_all(exp.EQ, exp.NEQ, exp.GT, exp.GTE, exp.LT, exp.LTE, exp.In):
            if not _own(cmp_node, block):
                continue
            col = cmp_node.this
            values = cmp_node.expressions if isinstance(cmp_node, exp.In) else [cmp_node.expression]
            if not isinstance(col, exp.Column):
                if len(values) == 1 and isinstance(values[0], exp.Column):
                    col, values = values[0], [col]
                else:
                    continue
            ref = scope.resolve(col)
            if not ref:
                continue
            ctype = (catalog.get(ref[0]) or {}).get(ref[1])
            family = _type_family(ctype)
            for value in values:
                if not isinstance(value, exp.Literal):
                    continue
                if family == 'string' and not value.is_string:
                    findings.append(_finding(
                        'implicit_cast', 'warning',
                        '%s is %s but is compared with the number %s: the column is converted row by row '
                        'and its index cannot be used; quote the value'
                        % (col.sql(dialect=dialect), ctype, value.this),
                        None, column=col.sql(dialect=dialect), column_type=ctype))
                    break
                if family == 'numeric' and value.is_string:
                    try:
                        float(value.this)
                    except ValueError:
                        findings.append(_finding(
                            'implicit_cast', 'warning',
                            "%s is %s but is compared with the string '%s', which is converted (or fails)"
                            % (col.sql(dialect=dialect), ctype, value.this),
                            None, column=col.sql(dialect=dialect), column_type=ctype))
                        break


def _rule_order_random(tree, dialect, findings):
    for order in tree.find_all(exp.Order):
        for ordered in order.expressions:
            if isinstance(ordered.this, exp.Rand) or (
                    isinstance(ordered.this, exp.Anonymous) and ordered.this.name.lower() in ('random', 'rand')):
                findings.append(_finding(
                    'order_by_random', 'warning',
                    'ORDER BY %s sorts the whole result to pick a few rows; sample with TABLESAMPLE, a '
                    'random key range or an application-side pick' % ordered.this.sql(dialect=dialect)))


def _rule_write_without_where(tree, dialect, findings):
    if isinstance(tree, (exp.Update, exp.Delete)) and tree.args.get('where') is None:
        kind = 'UPDATE' if isinstance(tree, exp.Update) else 'DELETE'
        findings.append(_finding('update_delete_without_where', 'critical',
                                 '%s without WHERE touches every row of %s' % (kind, tree.this.sql(dialect=dialect))))


def _rule_select_star(tree, dialect, findings):
    for select in tree.find_all(exp.Select):
        if isinstance(select.parent, exp.Exists):
            continue
        if any(isinstance(e, exp.Star) or (isinstance(e, exp.Column) and isinstance(e.this, exp.Star))
               for e in select.expressions):
            findings.append(_finding('select_star', 'info',
                                     'SELECT * reads every column: it defeats index-only scans and breaks '
                                     'when columns change; name the columns you need'))
            return


def findings_for(tree, dialect, catalog=None):
    """Every anti-pattern of the statement; rewrites are full SQL statements."""
    if tree is None:
        return []
    findings = []
    _rule_function_on_column(tree.copy(), dialect, findings, catalog)
    _rule_leading_wildcard(tree, dialect, findings)
    _rule_not_in_subquery(tree.copy(), dialect, findings, catalog)
    _rule_offset(tree, dialect, findings)
    _rule_or_columns(tree, dialect, catalog, findings)
    _rule_implicit_cast(tree, dialect, catalog, findings)
    _rule_order_random(tree, dialect, findings)
    _rule_write_without_where(tree, dialect, findings)
    _rule_select_star(tree, dialect, findings)
    return findings


# ---------------------------------------------------------------------------------------------
# Slow logs (log lines, not SQL: a line format is read, the SQL itself goes to the parser)
# ---------------------------------------------------------------------------------------------
def read_mysql_slow_log(text):
    """[(sql, query_time_ms)] from a MySQL/MariaDB slow query log file."""
    out = []
    qtime = None
    buf = []
    for line in text.splitlines():
        if line.startswith('# Query_time:'):
            if buf and qtime is not None:
                out.append((' '.join(buf).strip(), qtime))
            buf = []
            try:
                qtime = float(line.split()[2]) * 1000.0
            except (IndexError, ValueError):
                qtime = None
            continue
        if line.startswith('#') or line.startswith('SET timestamp=') or line.lower().startswith('use '):
            continue
        if qtime is not None and line.strip():
            buf.append(line.strip())
    if buf and qtime is not None:
        out.append((' '.join(buf).strip(), qtime))
    return [(s.rstrip(';'), t) for s, t in out if s]


def read_postgres_log(text):
    """[(sql, duration_ms)] from 'duration: N ms  statement: ...' lines of a PostgreSQL log."""
    out = []
    current = None
    for line in text.splitlines():
        marker = line.find('duration: ')
        if marker >= 0 and (' statement: ' in line or ' execute ' in line):
            rest = line[marker + len('duration: '):]
            try:
                ms = float(rest.split()[0])
            except (IndexError, ValueError):
                current = None
                continue
            sep = ' statement: ' if ' statement: ' in rest else ': '
            sql = rest.split(sep, 1)[1] if sep in rest else ''
            current = [sql, ms]
            out.append(current)
        elif current is not None and (line.startswith('\t') or line.startswith('  ')):
            current[0] += ' ' + line.strip()
        else:
            current = None
    return [(s.strip().rstrip(';'), ms) for s, ms in out if s.strip()]


def group_log_entries(entries, dialect, min_calls=1, min_time_ms=0.0):
    """Group (sql, ms) by fingerprint: [{query (a sample), calls, mean_ms, total_ms}]."""
    groups = {}
    for sql, ms in entries:
        fp, _ = fingerprint(sql, dialect)
        g = groups.setdefault(fp, {'query': sql, 'calls': 0, 'total_ms': 0.0})
        g['calls'] += 1
        g['total_ms'] += ms
    out = []
    for g in groups.values():
        g['mean_ms'] = g['total_ms'] / g['calls']
        if g['calls'] >= min_calls and g['mean_ms'] >= min_time_ms:
            out.append(g)
    return sorted(out, key=lambda g: -g['total_ms'])
