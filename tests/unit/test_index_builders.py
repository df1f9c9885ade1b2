# -*- coding: utf-8 -*-
"""db_index SQL builders and definition comparison, both engines (MySQL 8 paths included)."""

from __future__ import annotations

import pytest

from ansible_collections.dbops.admin.plugins.module_utils._engines import mysql, postgresql
from ansible_collections.dbops.admin.plugins.module_utils._engines.mysql_indexes import (
    MysqlIndexes,
    build_mysql_create_index,
    build_mysql_replace_index,
    comparable_parts,
    parse_mysql_index_part,
)
from ansible_collections.dbops.admin.plugins.module_utils._engines.postgresql_indexes import (
    PostgresIndexes,
    build_pg_create_index,
    check_sql_fragment,
    normalize_pg_indexdef,
    render_pg_index_column,
    temp_index_name,
)
from ansible_collections.dbops.admin.plugins.module_utils._errors import DbError

HOSTILE = 'x"`; DROP TABLE t; --'


# ---- SQL fragments -------------------------------------------------------------------------------
@pytest.mark.parametrize('text', ['lower(email)', "note = 'a;b'", '(a + b)', 'a > 1 AND "we;ird" IS NULL',
                                  "x = 'it''s -- fine'", "coalesce(a, '(')", 'a$b$ > 1', "x = 'a\\b'"])
def test_fragment_accepts_one_expression(text):
    assert check_sql_fragment(text, 'index expression') == text


@pytest.mark.parametrize('text, why', [
    ('a; DROP TABLE t', ';'),
    ('a) --', 'parentheses'),
    ('(a', 'parentheses'),
    ('a -- trailing', 'comments'),
    ('a /* x */', 'comments'),
    ("a = 'open", 'quote'),
    ('   ', 'non-empty'),
    ("x = E'\\''; DROP TABLE t; --'", 'doubling'),           # E-string: the server ends the string earlier
    ("x = 'a\\'; DROP TABLE t; --'", 'doubling'),            # standard SQL ends the string at the quote, MySQL does not
    ("$$'$$; DROP TABLE t; SELECT '", 'dollar-quoted'),        # a dollar-quoted string hiding a quote
    ("$tag$'$tag$; DROP TABLE t; SELECT '", 'dollar-quoted'),
])
def test_fragment_refuses_what_could_end_the_statement(text, why):
    with pytest.raises(DbError) as info:
        check_sql_fragment(text, 'index expression')
    assert why in str(info.value)


# ---- PostgreSQL --------------------------------------------------------------------------------
COLUMNS = {'id', 'email', 'created_at', HOSTILE}


@pytest.mark.parametrize('item, expected', [
    ('email', '"email"'),
    (HOSTILE, postgresql.quote_ident(HOSTILE)),
    ('created_at DESC NULLS LAST', '"created_at" DESC NULLS LAST'),
    ('email   text_pattern_ops', '"email" text_pattern_ops'),
    ('email COLLATE "C"', '"email" COLLATE "C"'),
    ('lower(email)', 'lower(email)'),
    ('(id + 1)', '(id + 1)'),
])
def test_pg_index_column_rendering(item, expected):
    assert render_pg_index_column(item, COLUMNS, postgresql.quote_ident) == expected


def test_pg_index_column_refuses_injection():
    with pytest.raises(DbError):
        render_pg_index_column('id); DROP TABLE t; --', COLUMNS, postgresql.quote_ident)


def desired_pg(**overrides):
    desired = {'schema': 'public', 'name': 'ix', 'table': 'orders', 'columns': ['"customer_id"', 'lower(email)'],
               'type': 'btree', 'unique': False, 'include': [], 'storage_params': {}, 'tablespace': None,
               'where': None}
    desired.update(overrides)
    return desired


def test_pg_create_index_plain():
    assert build_pg_create_index(desired_pg(), postgresql.quote_ident) == \
        'CREATE INDEX "ix" ON "public"."orders" USING btree ("customer_id", lower(email))'


def test_pg_create_index_every_option():
    sql = build_pg_create_index(
        desired_pg(unique=True, type='gist', include=['total', HOSTILE], storage_params={'fillfactor': 70, 'buffering': True},
                   tablespace='fast', where='deleted_at IS NULL'),
        postgresql.quote_ident, name='ix_dbops_new', concurrently=True)
    assert sql == ('CREATE UNIQUE INDEX CONCURRENTLY "ix_dbops_new" ON "public"."orders" USING gist '
                   '("customer_id", lower(email)) INCLUDE ("total", %s) '
                   "WITH (buffering = 'on', fillfactor = '70') TABLESPACE \"fast\" WHERE deleted_at IS NULL"
                   % postgresql.quote_ident(HOSTILE))


def test_pg_probe_text_has_no_tablespace():
    sql = build_pg_create_index(desired_pg(tablespace='fast'), postgresql.quote_ident,
                                qualified_table='pg_temp."orders"', with_tablespace=False)
    assert 'TABLESPACE' not in sql and 'ON pg_temp."orders"' in sql


@pytest.mark.parametrize('name', ['short', 'a' * 63, 'é' * 31])
def test_temp_index_name_fits_63_bytes(name):
    temp = temp_index_name(name)
    assert temp.endswith('_dbops_new') and len(temp.encode('utf-8')) <= 63


def test_normalize_pg_indexdef_drops_only():
    assert normalize_pg_indexdef('CREATE INDEX ix ON ONLY public.t USING btree (a)') == \
        'CREATE INDEX ix ON public.t USING btree (a)'
    assert normalize_pg_indexdef('CREATE INDEX ix ON public.t USING btree (a)') == \
        'CREATE INDEX ix ON public.t USING btree (a)'


class FakePostgres(PostgresIndexes):
    version_num = 150004
    check_mode = True

    def __init__(self):
        self.queries = []

    def quote_ident(self, name):
        return postgresql.quote_ident(name)

    def execute(self, sql, params=None, operation=None):
        self.queries.append(sql)


def test_pg_prepare_refuses_mysql_types_before_reading():
    with pytest.raises(DbError) as info:
        FakePostgres().index_prepare({'schema': 'public', 'name': 'ft', 'table': 't', 'columns': ['a'],
                                      'type': 'fulltext'})
    assert 'MySQL/MariaDB index type' in str(info.value) and 'gin' in str(info.value)


@pytest.mark.parametrize('version, concurrently, expected', [
    (150004, True, 'REINDEX INDEX CONCURRENTLY "s"."ix"'),
    (150004, False, 'REINDEX INDEX "s"."ix"'),
    (110012, True, 'REINDEX INDEX "s"."ix"'),
])
def test_pg_reindex_uses_concurrently_where_the_server_has_it(version, concurrently, expected):
    engine = FakePostgres()
    engine.version_num = version
    engine.index_reindex({'schema': 's', 'name': 'ix'}, concurrently)
    assert engine.queries == [expected]


def test_pg_constraint_index_is_never_dropped():
    with pytest.raises(DbError) as info:
        FakePostgres().index_drop({'schema': 's', 'name': 't_pkey', 'constraint': 't_pkey'}, True)
    assert 'constraint t_pkey' in str(info.value)


def test_pg_partitioned_table_is_not_built_concurrently():
    engine = FakePostgres()
    engine.index_create(desired_pg(partitioned=True), True)
    assert 'CONCURRENTLY' not in engine.queries[0]


# ---- MySQL / MariaDB -----------------------------------------------------------------------------
TABLE = {'id': 'id', 'title': 'Title', 'body': 'body', HOSTILE.lower(): HOSTILE}


@pytest.mark.parametrize('item, expected', [
    ('id', {'column': 'id', 'length': None, 'order': 'ASC'}),
    ('TITLE', {'column': 'Title', 'length': None, 'order': 'ASC'}),
    ('title(20) desc', {'column': 'Title', 'length': 20, 'order': 'DESC'}),
    ('body (10)', {'column': 'body', 'length': 10, 'order': 'ASC'}),
    (HOSTILE, {'column': HOSTILE, 'length': None, 'order': 'ASC'}),
    ('(lower(title)) DESC', {'expression': '(lower(title))', 'order': 'DESC'}),
])
def test_mysql_index_part_parsing(item, expected):
    assert parse_mysql_index_part(item, TABLE) == expected


@pytest.mark.parametrize('item', ['nosuch', 'lower(title)', '(a; DROP TABLE t)'])
def test_mysql_index_part_refusals(item):
    with pytest.raises(DbError):
        parse_mysql_index_part(item, TABLE)


def definition_mysql(**overrides):
    definition = {'schema': 'shop', 'name': 'ix', 'table': 'posts', 'unique': False, 'type': 'BTREE',
                  'parts': [{'column': 'Title', 'length': 20, 'order': 'DESC'},
                            {'column': 'id', 'length': None, 'order': 'ASC'}]}
    definition.update(overrides)
    return definition


def test_mysql_create_btree():
    assert build_mysql_create_index(definition_mysql(unique=True), mysql.quote_ident) == \
        'CREATE UNIQUE INDEX `ix` ON `shop`.`posts` (`Title`(20) DESC, `id`) USING BTREE'


def test_mysql_create_fulltext_has_no_order_or_using():
    sql = build_mysql_create_index(definition_mysql(type='FULLTEXT', parts=[
        {'column': 'Title', 'length': None, 'order': 'DESC'}]), mysql.quote_ident)
    assert sql == 'CREATE FULLTEXT INDEX `ix` ON `shop`.`posts` (`Title`)'


def test_mysql_replace_is_one_statement_and_quotes_hostile_names():
    sql = build_mysql_replace_index(definition_mysql(name=HOSTILE, table=HOSTILE), mysql.quote_ident)
    quoted = mysql.quote_ident(HOSTILE)
    assert sql == ('ALTER TABLE `shop`.%s DROP INDEX %s, ADD INDEX %s (`Title`(20) DESC, `id`) USING BTREE'
                   % (quoted, quoted, quoted))


def test_mysql_comparison_ignores_case_and_expression_spacing():
    a = [{'column': 'Title', 'length': 20, 'order': 'ASC'}, {'expression': '(lower(`body`))', 'order': 'ASC'}]
    b = [{'column': 'title', 'length': 20, 'order': 'ASC'}, {'expression': '( LOWER( body ) )', 'order': 'ASC'}]
    assert comparable_parts(a) == comparable_parts(b)
    c = [{'column': 'title', 'length': 10, 'order': 'ASC'}, b[1]]
    assert comparable_parts(a) != comparable_parts(c)


class FakeMysql(MysqlIndexes):
    check_mode = True

    def __init__(self, flavor, version_num, answers):
        self.flavor = flavor
        self.version_num = version_num
        self.answers = answers
        self.queries = []

    def quote_ident(self, name):
        return mysql.quote_ident(name)

    def fetch_all(self, sql, params=None, operation=None):
        for key, rows in self.answers:
            if key in sql:
                return rows
        return []

    def fetch_one(self, sql, params=None, operation=None):
        rows = self.fetch_all(sql, params)
        return rows[0] if rows else None

    def fetch_value(self, sql, params=None, operation=None):
        row = self.fetch_one(sql, params)
        return next(iter(row.values())) if row else None

    def execute(self, sql, params=None, operation=None):
        self.queries.append(sql)


ANSWERS = [('information_schema.tables', [{'tbl': 'posts', 'engine': 'InnoDB'}]),
           ('information_schema.columns', [{'c': 'id', 't': 'int', 'len': None},
                                           {'c': 'Title', 't': 'varchar', 'len': 200},
                                           {'c': 'body', 't': 'text', 'len': 65535}])]


def params(**overrides):
    base = {'schema': 'shop', 'name': 'ix', 'table': 'posts', 'columns': ['(lower(Title))'], 'type': None,
            'unique': False, 'where': None, 'include': None, 'storage_params': None, 'tablespace': None}
    base.update(overrides)
    return base


def test_mysql8_accepts_functional_key_parts():
    desired = FakeMysql('mysql', 80035, ANSWERS).index_prepare(params())
    assert desired['parts'] == [{'expression': '(lower(Title))', 'order': 'ASC'}]


def test_mariadb_refuses_functional_key_parts():
    with pytest.raises(DbError) as info:
        FakeMysql('mariadb', 101106, ANSWERS).index_prepare(params())
    assert 'generated column' in str(info.value)


@pytest.mark.parametrize('overrides, words', [
    ({'where': 'id > 1'}, 'PostgreSQL only'),
    ({'include': ['id']}, 'PostgreSQL only'),
    ({'type': 'gin', 'columns': ['id']}, 'not a MySQL/MariaDB index type'),
    ({'type': 'hash', 'columns': ['id']}, 'InnoDB has no HASH'),
    ({'type': 'fulltext', 'unique': True, 'columns': ['Title']}, 'cannot be unique'),
    ({'columns': ['nosuch']}, 'no such column'),
    ({'columns': ['Title(201)']}, 'longer than the column'),
    ({'columns': ['id(2)']}, 'string column'),
    ({'type': 'spatial', 'columns': ['Title']}, 'geometry column'),
    ({'type': 'fulltext', 'columns': ['Title DESC']}, 'has no order'),
])
def test_mysql_prepare_refusals(overrides, words):
    with pytest.raises(DbError) as info:
        FakeMysql('mysql', 80035, ANSWERS).index_prepare(params(**overrides))
    assert words in str(info.value)


def test_mysql_prefix_as_long_as_the_column_is_the_whole_column():
    desired = FakeMysql('mysql', 80035, ANSWERS).index_prepare(params(columns=['Title(200)', 'body(30)']))
    assert [(p['column'], p['length']) for p in desired['parts']] == [('Title', None), ('body', 30)]


def test_mysql_btree_on_text_needs_a_prefix():
    engine = FakeMysql('mysql', 80035, ANSWERS)
    with pytest.raises(DbError) as info:
        engine.index_finalize(engine.index_prepare(params(columns=['body'])), None)
    assert 'needs a prefix length' in str(info.value)


def test_mysql_default_type_of_a_new_index_is_the_servers():
    # regression: a new index on a MEMORY table was built USING BTREE, not the server's default HASH
    memory = [('information_schema.tables', [{'tbl': 'cache', 'engine': 'MEMORY'}])] + ANSWERS[1:]
    engine = FakeMysql('mariadb', 101106, memory)
    desired = engine.index_finalize(engine.index_prepare(params(table='cache', columns=['id'])), None)
    assert desired['type'] == 'HASH' and desired['definition'].endswith('USING HASH')
    engine = FakeMysql('mariadb', 101106, ANSWERS)
    assert engine.index_finalize(engine.index_prepare(params(columns=['id'])), None)['type'] == 'BTREE'


def test_mysql_default_type_follows_the_existing_index():
    engine = FakeMysql('mysql', 80035, ANSWERS)
    desired = engine.index_prepare(params(columns=['id']))
    current = dict(desired, type='BTREE', parts=[{'column': 'ID', 'length': None, 'order': 'ASC'}])
    assert engine.index_same_definition(engine.index_finalize(desired, current), current)
    assert not engine.index_same_definition(engine.index_finalize(desired, current), dict(current, unique=True))


def test_mysql_rebuild_is_alter_table_force_and_primary_is_refused():
    engine = FakeMysql('mysql', 80035, ANSWERS)
    engine.index_reindex({'schema': 'shop', 'table': 'posts'}, True)
    assert engine.queries == ['ALTER TABLE `shop`.`posts` FORCE']
    with pytest.raises(DbError):
        engine.index_drop({'schema': 'shop', 'table': 'posts', 'name': 'PRIMARY', 'primary': True}, True)


@pytest.mark.parametrize('flavor, version, hidden, shown', [('mysql', 80035, 'INVISIBLE', 'VISIBLE'),
                                                            ('mariadb', 101106, 'IGNORED', 'NOT IGNORED')])
def test_mysql_invisible_index_is_read_kept_on_rebuild_and_set_in_place(flavor, version, hidden, shown):
    stats = [{'tbl': 'posts', 'non_unique': 1, 'column_name': 'Title', 'sub_part': None, 'collation': 'A',
              'index_type': 'BTREE', 'expression': None, 'visible': 0}]
    engine = FakeMysql(flavor, version, [('information_schema.statistics', stats)] + ANSWERS)
    current = engine.index_get('shop', 'ix', 'posts')
    assert current['visible'] is False and engine.index_visible(current) is False
    assert engine.index_summary(current)['visible'] is False
    # another definition, visibility not asked: the rebuilt index stays invisible
    desired = engine.index_finalize(engine.index_prepare(params(columns=['Title', 'id'])), current)
    engine.index_replace(desired, current, True)
    assert engine.queries[-1] == ('ALTER TABLE `shop`.`posts` DROP INDEX `ix`, ADD INDEX `ix` (`Title`, `id`) '
                                  'USING BTREE ' + hidden)
    # asked visible: the rebuilt index is visible
    desired = engine.index_finalize(engine.index_prepare(params(columns=['Title', 'id'], visible=True)), current)
    engine.index_replace(desired, current, True)
    assert engine.queries[-1].endswith('USING BTREE')
    engine.index_set_visibility(current, True)
    assert engine.queries[-1] == 'ALTER TABLE `shop`.`posts` ALTER INDEX `ix` %s' % shown
    engine.index_set_visibility(current, False)
    assert engine.queries[-1] == 'ALTER TABLE `shop`.`posts` ALTER INDEX `ix` %s' % hidden
    # a new invisible index
    desired = engine.index_finalize(engine.index_prepare(params(name='iy', columns=['Title'], visible=False)), None)
    engine.index_create(desired, True)
    assert engine.queries[-1] == 'CREATE INDEX `iy` ON `shop`.`posts` (`Title`) USING BTREE ' + hidden
    with pytest.raises(DbError) as info:
        engine.index_check_visibility('PRIMARY', False, dict(current, primary=True))
    assert 'primary key' in str(info.value)


def test_visibility_needs_the_feature_and_is_mysql_only():
    old = FakeMysql('mariadb', 100511, ANSWERS)
    with pytest.raises(DbError) as info:
        old.index_check_visibility('ix', False, None)
    assert 'MariaDB 10.6' in str(info.value)
    old.index_check_visibility('ix', None, None)
    with pytest.raises(DbError) as info:
        FakePostgres.index_check_visibility(None, 'ix', False, None)
    assert 'MySQL/MariaDB only' in str(info.value)
