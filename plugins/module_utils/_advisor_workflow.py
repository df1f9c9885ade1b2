# -*- coding: utf-8 -*-
# Copyright: dbops.admin contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Private to dbops.admin: the query advisor's run, engine-independent.

Reads the workload, explains and checks every query (one bad query never stops the run),
then chooses index suggestions: cost-based with hypothetical indexes where the engine has
them (HypoPG), otherwise from the plan, the predicates and column statistics. The engine
object supplies every piece of SQL (``engine.advisor_*``).
"""

from __future__ import annotations

import time

from ansible_collections.dbops.admin.plugins.module_utils import _advisor as adv
from ansible_collections.dbops.admin.plugins.module_utils._errors import DbError

PER_QUERY_CONFIG_SIZE = 3       # indexes tried together for one query (joins need one per table)
CONFIG_STEP_GAIN = 0.05         # a further index for one query must save 5% of its cost
WORKLOAD_QUERY_GAIN = 0.10      # a pick must save 10% of at least one query's cost


def run(engine, params, log_text=None):
    """The whole advisor run; returns the module result (without ``queries``)."""
    dialect = adv.dialect_for(engine.name)
    notes = []
    workload = load_workload(engine, params, dialect, log_text, notes)
    mode = params.get('hypothetical') or 'auto'
    entries = []
    with engine.advisor_session(use_hypopg=mode != 'false',
                                timeout_seconds=params.get('statement_timeout')) as state:
        if mode == 'true' and not state['hypopg']:
            raise DbError('use hypothetical indexes', None, state['hypopg_note'] or 'HypoPG is not available')
        if state.get('hypopg_created'):
            notes.append('the hypopg extension was created inside the advisor transaction and rolled back')
        for item in workload:
            entries.append(analyze_query(engine, item, params, dialect))
        if params.get('suggest_indexes', True):
            if state['hypopg']:
                method = 'hypopg'
                suggestions = suggest_with_hypothetical(engine, entries, params, notes)
            else:
                method = 'statistics'
                notes.append('index suggestions from EXPLAIN, predicates and column statistics, not costed: %s'
                             % (state.get('hypopg_note') or 'hypothetical indexes not requested'))
                suggestions = suggest_from_statistics(engine, entries, params)
        else:
            method, suggestions = None, []
    hygiene = engine.advisor_index_hygiene() if params.get('index_hygiene', True) else None
    return {'changed': False, 'reports': [e['report'] for e in entries], 'index_suggestions': suggestions,
            'index_hygiene': hygiene, 'method': method, 'notes': notes,
            'engine': engine.describe()}


# ---------------------------------------------------------------------------------------------
def max_indexes(params):
    """The index budget: 0 is a budget of none (not the default)."""
    value = params.get('max_indexes')
    return 10 if value is None else int(value)


def load_workload(engine, params, dialect, log_text, notes):
    if params.get('queries'):
        return [{'query': q} for q in params['queries']]
    source = params.get('source')
    min_calls = params.get('min_calls') or 1
    min_time = params.get('min_time_ms') or 0.0
    limit = params.get('max_queries') or 50
    if log_text is not None:
        entries = adv.read_postgres_log(log_text) if engine.name == 'postgresql' else adv.read_mysql_slow_log(log_text)
        groups = adv.group_log_entries(entries, dialect, min_calls, min_time)[:limit]
        notes.append('%d statements read from the log, %d distinct queries kept' % (len(entries), len(groups)))
        return groups
    rows = engine.advisor_workload(source, min_calls, min_time, limit)
    if source == 'slow_log':
        groups = adv.group_log_entries(rows, dialect, min_calls, min_time)[:limit]
        notes.append('%d slow log entries read, %d distinct queries kept' % (len(rows), len(groups)))
        return groups
    kept = []
    for row in rows:
        tree, _ = adv.parse(row['query'], dialect)
        head = row['query'].split(None, 1)[0].upper() if row['query'].strip() else ''
        if tree is None and head not in ('SELECT', 'WITH', 'UPDATE', 'DELETE', 'INSERT'):
            continue  # utility statements (SET, BEGIN, EXPLAIN ...) are not advised on
        kept.append({'query': row['query'], 'calls': int(row['calls'] or 0),
                     'mean_ms': round(float(row['mean_ms'] or 0), 3),
                     'total_ms': round(float(row['total_ms'] or 0), 3)})
    notes.append('%d statements read from %s' % (len(kept), source))
    if any(row.get('no_sample') for row in rows):
        notes.append('some digests have no sample statement with values, so they cannot be explained: enable the '
                     'events_statements_current and events_statements_history_long consumers')
    return kept


def analyze_query(engine, item, params, dialect):
    sql = item['query'].strip()
    while sql.endswith(';'):
        sql = sql[:-1].rstrip()
    fp, norm = adv.fingerprint(sql, dialect)
    report = {'query': sql, 'fingerprint': fp, 'normalized': norm, 'plan': None, 'warnings': [],
              'findings': [], 'error': None}
    for key in ('calls', 'mean_ms', 'total_ms'):
        if key in item:
            report[key] = item[key]
    entry = {'report': report, 'sql': sql, 'tree': None, 'resolved': {}, 'catalog': {}, 'generic': False,
             'eligible': False, 'raw': None}
    count, terr = adv.statement_count(sql, dialect)
    if terr:
        report['error'] = terr
        return entry
    if count != 1:
        report['error'] = 'give exactly one statement per query (found %d)' % count
        return entry
    utility = adv.utility_keyword(sql, dialect)
    if utility:
        report['error'] = ('%s is a utility statement: only SELECT, INSERT, UPDATE, DELETE, MERGE and VALUES '
                           'can be explained' % utility)
        return entry
    tree, perr = adv.parse(sql, dialect)
    if tree is not None:
        tree = adv.fold_identifiers(tree, dialect)
    entry['tree'] = tree
    generic = adv.has_placeholders(sql, dialect)
    entry['generic'] = generic
    try:
        tables = adv.referenced_tables(tree) if tree is not None else []
        resolved = engine.advisor_resolve_tables(tables) if tables else {}
        oids = [r['oid'] for r in resolved.values() if r]
        columns = engine.advisor_columns(oids) if oids else {}
    except DbError as exc:
        report['error'] = exc.detail or str(exc)
        return entry
    entry['resolved'] = resolved
    entry['catalog'] = {key: columns.get(r['oid'], {}) for key, r in resolved.items() if r}
    if dialect == 'mysql':  # column names are case-insensitive there, and folded to lower case
        entry['catalog'] = {key: {c.lower(): t for c, t in cols.items()} for key, cols in entry['catalog'].items()}

    analyze = bool(params.get('analyze'))
    if analyze and tree is None:
        analyze = False
        report['warnings'].append({'id': 'analyze_skipped', 'severity': 'info',
                                   'message': 'not analyzed: the statement could not be parsed, so it is not '
                                              'known to be read-only'})
    elif analyze and adv.non_transactional_calls(tree):
        analyze = False
        report['warnings'].append({'id': 'analyze_refused', 'severity': 'warning',
                                   'message': 'EXPLAIN ANALYZE refused: %s would really run and a rollback cannot '
                                              'undo it (also with analyze_writes); estimates shown'
                                              % ', '.join(adv.non_transactional_calls(tree))})
    elif analyze and adv.is_write(tree) and not params.get('analyze_writes'):
        analyze = False
        report['warnings'].append({'id': 'analyze_refused', 'severity': 'info',
                                   'message': 'EXPLAIN ANALYZE refused for a write (set analyze_writes: true; it '
                                              'runs inside a transaction that is rolled back); estimates shown'})
    elif analyze and adv.is_write(tree) and _not_transactional(resolved):
        analyze = False
        report['warnings'].append({'id': 'analyze_refused', 'severity': 'warning',
                                   'message': 'EXPLAIN ANALYZE refused for a write touching %s: a rollback cannot undo '
                                              'its changes there (not a transactional table); estimates shown'
                                              % ', '.join(_not_transactional(resolved))})
    elif analyze and generic:
        analyze = False
        report['warnings'].append({'id': 'analyze_skipped', 'severity': 'info',
                                   'message': 'not analyzed: the statement has parameters without values; '
                                              'the generic plan is shown'})
    table_rows = {r['name']: r['rows'] for r in resolved.values() if r}
    try:
        raw = engine.advisor_explain(sql, analyze=analyze, generic=generic)
        entry['raw'] = raw
        plan, warnings = engine.advisor_plan_summary(raw, analyze=analyze, table_rows=table_rows)
        report['plan'] = plan
        report['warnings'].extend(warnings)
    except DbError as exc:
        report['error'] = exc.detail or str(exc)
    if tree is None:
        if report['error'] is None:
            report['warnings'].append({'id': 'not_parsed', 'severity': 'info',
                                       'message': 'findings skipped: %s' % perr})
    else:
        try:
            report['findings'] = adv.findings_for(tree, dialect, entry['catalog'])
        except Exception as exc:  # pylint: disable=broad-except
            report['warnings'].append({'id': 'findings_failed', 'severity': 'info',
                                       'message': 'anti-pattern checks failed on this statement: %s' % exc})
        if report['error'] is None:
            _verify_rewrites(engine, report, generic)
    entry['eligible'] = bool(
        report['error'] is None and tree is not None and resolved
        and all(r is not None and not r['system'] for r in resolved.values())
        and any(r['relkind'] in ('r', 'p', 'm') for r in resolved.values()))
    return entry


def _not_transactional(resolved):
    """Tables of the statement a rollback cannot restore (MyISAM, Aria, MEMORY, views ...)."""
    return sorted(adv.table_label((r['schema'], r['name'])) for r in resolved.values()
                  if r is not None and r.get('transactional') is False)


def _verify_rewrites(engine, report, generic):
    """EXPLAIN each mechanical rewrite: it must be valid SQL; report its estimated cost."""
    for finding in report['findings']:
        if not finding.get('rewrite'):
            continue
        try:
            raw = engine.advisor_explain(finding['rewrite'], analyze=False, generic=generic)
            plan, _ = engine.advisor_plan_summary(raw, analyze=False)
            finding['rewrite_verified'] = True
            finding['rewrite_total_cost'] = plan.get('total_cost')
        except DbError as exc:
            finding['rewrite_verified'] = False
            finding['rewrite_error'] = exc.detail or str(exc)


# ---------------------------------------------------------------------------------------------
def _shape_or_none(entry):
    """The query's predicate shape; a statement the shape reader cannot follow gets a warning."""
    try:
        return adv.query_shape(entry['tree'], entry['catalog'])
    except Exception as exc:  # pylint: disable=broad-except
        entry['report']['warnings'].append({'id': 'no_index_analysis', 'severity': 'info',
                                            'message': 'index candidates could not be read from this '
                                                       'statement: %s' % exc})
        return None


def _query_candidates(engine, entries, existing):
    """{qi: [(oid, cols)]} candidates per eligible query, existing prefixes filtered out."""
    out = {}
    infos = {}
    for qi, entry in enumerate(entries):
        if not entry['eligible']:
            continue
        shape = _shape_or_none(entry)
        if shape is None:
            continue
        entry['shape'] = shape
        entry['columns_by_oid'] = {}
        for key, cols in shape.columns.items():
            if entry['resolved'].get(key):
                entry['columns_by_oid'].setdefault(entry['resolved'][key]['oid'], set()).update(cols)
        cands = []
        for key, cols in adv.index_candidates(shape):
            info = entry['resolved'].get(key)
            if info is None or info['system'] or info['relkind'] not in ('r', 'p', 'm'):
                continue
            if any(not adv.is_expression(c) and c not in entry['catalog'].get(key, {}) for c in cols):
                continue
            if adv.covered_by_existing(info['oid'], cols, existing):
                continue
            cands.append((info['oid'], tuple(cols)))
            infos[info['oid']] = info
        out[qi] = cands
    return out, infos


def _existing(engine, entries):
    """Existing indexes of the workload's tables; expression keys spelled as candidates spell them."""
    oids = sorted({r['oid'] for e in entries if e['eligible'] for r in e['resolved'].values() if r},
                  key=str)
    out = []
    for idx in engine.advisor_existing_indexes(oids) if oids else []:
        columns = idx.get('columns')
        if columns and None in columns:
            defs = idx.get('key_defs') or []
            columns = [c if c is not None else (adv.normalize_expression(defs[i]) if i < len(defs) else None)
                       for i, c in enumerate(columns)]
            if None in columns:
                columns = None
        out.append(dict(idx, table=idx['table_oid'], columns=columns))
    return out


class HypotheticalCosts:
    """Workload costs with a set of hypothetical indexes present (HypoPG), memoized."""

    def __init__(self, engine, entries, table_of_query):
        self.engine = engine
        self.entries = entries
        self.table_of_query = table_of_query     # qi -> set(oid)
        self.infos = {}
        self.live = {}                           # (oid, cols) -> hypothetical index oid
        self.memo = {}
        self.explains = 0

    def _reconcile(self, keys):
        want = set(keys)
        for key in [k for k in self.live if k not in want]:
            self.engine.advisor_hypo_drop(self.live.pop(key))
        for key in keys:
            if key not in self.live:
                info = self.infos[key[0]]
                self.live[key] = self.engine.advisor_hypo_create(info['schema'], info['name'], list(key[1]))

    def cost(self, qi):
        entry = self.entries[qi]
        relevant = frozenset(k for k in self.live if k[0] in self.table_of_query[qi])
        memo_key = (qi, relevant)
        if memo_key not in self.memo:
            self.explains += 1
            try:
                raw = self.engine.advisor_explain(entry['sql'], analyze=False, generic=entry['generic'])
                self.memo[memo_key] = float(raw['Plan']['Total Cost'])
            except DbError:
                self.memo[memo_key] = None
        return self.memo[memo_key]

    def __call__(self, keys, qids):
        """{qi: cost} with exactly the hypothetical indexes in keys present."""
        out = {}
        for q in qids:
            relevant = frozenset(k for k in keys if k[0] in self.table_of_query[q])
            if (q, relevant) not in self.memo:
                self._reconcile(list(keys))
                self.cost(q)
            out[q] = self.memo[(q, relevant)]
        return out


PAIR_SINGLES = 8
MAX_QUERY_CANDIDATES = 40       # tried alone for one query
LATER_ROUND_CANDIDATES = 12     # tried with the first pick in place
SEARCH_SECONDS = 45             # the per-query search stops here; the workload choice still runs


def _best_pair(oracle, qi, singles):
    best, best_cost = None, None
    for i, first in enumerate(singles):
        for second in singles[i + 1:]:
            cost = oracle([first, second], [qi])[qi]
            if cost is not None and (best_cost is None or cost < best_cost):
                best, best_cost = [first, second], cost
    return best, best_cost


def suggest_with_hypothetical(engine, entries, params, notes=None):
    notes = [] if notes is None else notes
    existing = _existing(engine, entries)
    cands, infos = _query_candidates(engine, entries, existing)
    if not cands:
        return []
    table_of_query = {qi: {r['oid'] for r in entries[qi]['resolved'].values() if r} for qi in cands}
    oracle = HypotheticalCosts(engine, entries, table_of_query)
    oracle.infos = infos
    # each candidate must be creatable (immutable expressions, a table HypoPG supports): try it once
    refused = set()
    for key in {k for qc in cands.values() for k in qc}:
        try:
            engine.advisor_hypo_drop(engine.advisor_hypo_create(infos[key[0]]['schema'], infos[key[0]]['name'],
                                                                list(key[1])))
        except DbError:
            refused.add(key)
    cands = {qi: [k for k in qc if k not in refused] for qi, qc in cands.items()}
    min_savings = params.get('min_cost_savings')
    min_savings = 0.5 if min_savings is None else float(min_savings)
    base = {}
    for qi in cands:
        oracle._reconcile([])  # pylint: disable=protected-access
        cost = oracle.cost(qi)
        if cost is not None and cost > 0:
            base[qi] = cost
    kept = {}
    # per query: the best small configuration (greedy); keep its indexes when it pays enough
    bundles = []
    deadline = time.time() + SEARCH_SECONDS
    skipped = 0
    for qi, qcands in cands.items():
        if qi not in base or not qcands:
            continue
        if time.time() > deadline:
            skipped += 1
            continue
        # all single columns first (every table of a join gets its chance), then pairs, then triples
        ranked = sorted(qcands, key=lambda c: len(c[1]))[:MAX_QUERY_CANDIDATES]
        config, current, singles = [], base[qi], []
        for round_ in range(PER_QUERY_CONFIG_SIZE):
            costs = {}
            for cand in ranked:
                if cand not in config:
                    cost = oracle(config + [cand], [qi])[qi]
                    if cost is not None:
                        costs[cand] = cost
            if not costs:
                break
            if round_ == 0:
                # later rounds only try the candidates that did best alone
                ranked = sorted(costs, key=lambda c: (costs[c], len(c[1])))
                singles = [c for c in ranked if len(c[1]) == 1][:PAIR_SINGLES]
                ranked = ranked[:LATER_ROUND_CANDIDATES]
            best = min(costs, key=lambda c: (costs[c], len(c[1])))
            best = adv.prefer_narrower(best, {c: current - cost for c, cost in costs.items()})
            if current - costs[best] >= CONFIG_STEP_GAIN * base[qi]:
                config.append(best)
                current = costs[best]
                continue
            if config:
                break
            # nothing helps alone: OR across columns (bitmap OR) or a join needs two at once
            pair, pair_cost = _best_pair(oracle, qi, singles)
            if pair is None or current - pair_cost < CONFIG_STEP_GAIN * base[qi]:
                break
            config.extend(pair)
            current = pair_cost
        if config and (base[qi] - current) >= min_savings * base[qi]:
            for cand in config:
                kept.setdefault(cand, set()).add(qi)
            if len(config) > 1:
                bundles.append(tuple(config))
    if skipped:
        notes.append('index search stopped after %d s: %d queries were not searched for indexes'
                     % (SEARCH_SECONDS, skipped))
    if not kept:
        oracle._reconcile([])  # pylint: disable=protected-access
        return []
    # whole workload: a query can use an index only through its leading column
    affects = {cand: {q for q in base if cand[1][0] in entries[q].get('columns_by_oid', {}).get(cand[0], ())} | qids
               for cand, qids in kept.items()}

    def workload_oracle(keys, qids):
        costs = oracle(keys, qids)
        return {q: (base[q] if c is None else c) for q, c in costs.items()}

    chosen, final = adv.choose_index_set(base, affects, workload_oracle, max_indexes(params),
                                         bundles=bundles,
                                         min_query_gain=WORKLOAD_QUERY_GAIN, min_relative_gain=min_savings,
                                         weights={q: entries[q]['report'].get('calls') or 1 for q in base})
    chosen = _drop_prefix_picks(chosen)
    sizes = {}
    oracle._reconcile([c['key'] for c in chosen])  # pylint: disable=protected-access
    for pick in chosen:
        sizes[pick['key']] = engine.advisor_hypo_size(oracle.live[pick['key']])
    oracle._reconcile([])  # pylint: disable=protected-access
    out = _render(engine, entries, chosen, infos, existing, 'hypopg', sizes)
    for qi, cost in final.items():
        report = entries[qi]['report']
        report['estimated_cost_with_suggestions'] = round(cost, 2)
    return out


def _drop_prefix_picks(chosen):
    """A pick that is a leading prefix of another pick on the same table is folded into it."""
    out = []
    for pick in chosen:
        oid, cols = pick['key']
        longer = [p for p in chosen if p is not pick and p['key'][0] == oid
                  and adv.is_leading_prefix(cols, p['key'][1]) and len(p['key'][1]) > len(cols)]
        if longer:
            target = longer[0]
            target['queries'] = sorted(set(target['queries']) | set(pick['queries']))
            continue
        out.append(pick)
    return out


def _render(engine, entries, chosen, infos, existing, method, sizes=None):
    taken = {i['name'] for i in existing}
    out = []
    for pick in chosen:
        oid, cols = pick['key']
        info = infos[oid]
        name = adv.index_name(info['name'], cols, taken)
        while engine.advisor_relation_name_taken(info['schema'], name):
            taken.add(name)
            name = adv.index_name(info['name'], cols, taken)
        taken.add(name)
        helped = pick['queries']
        statement = engine.advisor_index_statement(info['schema'], info['name'], name, cols, relkind=info.get('relkind'))
        item = {'schema': info['schema'], 'table': info['name'], 'columns': list(cols), 'type': 'btree',
                'name': name, 'statement': statement,
                'method': method,
                'queries_helped': [entries[q]['report']['fingerprint'] for q in helped],
                'query_numbers': list(helped)}
        if pick.get('before') is not None:
            item['estimated_cost_before'] = round(pick['before'], 2)
            item['estimated_cost_after'] = round(pick['after'], 2)
            item['estimated_saving'] = round(1 - pick['after'] / pick['before'], 3) if pick['before'] else None
        if pick.get('fraction') is not None:
            item['estimated_rows_fraction'] = pick['fraction']
            item['table_rows'] = int(info['rows'])
        if sizes and sizes.get(pick['key']):
            item['estimated_size_bytes'] = int(sizes[pick['key']])
        out.append(item)
        for q in helped:
            entries[q]['report'].setdefault('suggested_indexes', []).append(name)
    names = {pick['key']: item['name'] for pick, item in zip(chosen, out)}
    for pick, item in zip(chosen, out):
        if pick.get('together_with'):
            item['together_with'] = [names[k] for k in pick['together_with'] if k in names]
    return out


# ---------------------------------------------------------------------------------------------
FULL_SCAN_NODES = ('Seq Scan', 'Full Table Scan', 'Full Index Scan', 'Hash Join (full scan)')


def suggest_from_statistics(engine, entries, params):
    """Without hypothetical indexes: tables scanned in full with selective predicates."""
    existing = _existing(engine, entries)
    picks = {}
    infos = {}
    stats_cache = {}
    for qi, entry in enumerate(entries):
        if not entry['eligible']:
            continue
        shape = _shape_or_none(entry)
        if shape is None:
            continue
        plan = entry['report']['plan'] or {}
        scanned = {n.get('relation') for n in plan.get('nodes', []) if n.get('node_type') in FULL_SCAN_NODES}
        filesort = plan.get('filesort') or any(n.get('node_type') == 'Sort' for n in plan.get('nodes', []))
        # a column compared through an implicit cast cannot use a plain index
        hidden = {f.get('column') for f in entry['report']['findings'] if f['id'] == 'implicit_cast'}
        for key in shape.columns:
            info = entry['resolved'].get(key)
            if info is None or info['system'] or info['relkind'] not in ('r', 'p', 'm'):
                continue
            aliases = adv.aliases_of(entry['tree'], key) | {info['name']}
            if not (scanned & aliases) and not (filesort and shape.order.get(key)):
                continue
            stats = stats_cache.setdefault(info['oid'], {'rows': info['rows'], 'distinct': {}})
            wanted = [c for c in shape.columns[key] if c not in stats['distinct']]
            if wanted:
                try:
                    fresh = engine.advisor_column_stats(info['oid'], wanted)
                    stats['rows'] = fresh['rows'] or stats['rows']
                    stats['distinct'].update(fresh['distinct'])
                except DbError:
                    pass
            cols, frac = adv.heuristic_index(key, shape, stats)
            if not cols or any(c not in entry['catalog'].get(key, {}) or c in hidden for c in cols):
                continue
            if adv.covered_by_existing(info['oid'], cols, existing):
                continue
            cand = (info['oid'], tuple(cols))
            infos[info['oid']] = info
            pick = picks.setdefault(cand, {'key': cand, 'queries': [], 'score': 0.0, 'fraction': round(frac, 6),
                                           'before': None})
            pick['queries'].append(qi)
            pick['score'] += info['rows'] * (1 - frac)
    chosen = sorted(picks.values(), key=lambda p: -p['score'])
    chosen = _drop_prefix_picks(chosen)[:max_indexes(params)]
    return _render(engine, entries, chosen, infos, existing, 'statistics')
