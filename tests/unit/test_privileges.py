# -*- coding: utf-8 -*-
"""Privilege lists: validation per engine, and the grant/revoke plan."""

from __future__ import annotations

import pytest

from ansible_collections.dbops.admin.plugins.module_utils._errors import DbError
from ansible_collections.dbops.admin.plugins.module_utils._privileges import (
    GRANT_OPTION, describe_target, held_as_dict, normalize_privileges, plan_privileges)

MY_ALL = {'global': ('SELECT', 'PROCESS'), 'database': ('SELECT', 'INSERT'), 'table': ('SELECT',)}


def test_pg_targets_and_aliases():
    desired = normalize_privileges([
        {'on': 'database', 'database': 'app', 'privs': ['connect', 'temp']},
        {'on': 'schema', 'database': 'app', 'schema': 's', 'privs': ['ALL']},
        {'on': 'table', 'database': 'app', 'objects': ['a', 'b'], 'privs': ['select'], 'grant_option': True},
        {'on': 'table', 'database': 'app', 'objects': ['a'], 'privs': ['insert']},
        {'on': 'all_tables', 'database': 'app', 'schema': 'public', 'privs': ['ALL PRIVILEGES']},
    ], 'postgresql')
    assert desired[('database', 'app', None, None)] == {'CONNECT': False, 'TEMPORARY': False}
    assert desired[('schema', 'app', 's', None)] == {'USAGE': False, 'CREATE': False}
    assert desired[('table', 'app', 'public', 'a')] == {'SELECT': True, 'INSERT': False}
    assert desired[('table', 'app', 'public', 'b')] == {'SELECT': True}
    assert set(desired[('all_tables', 'app', 'public', None)]) == {
        'SELECT', 'INSERT', 'UPDATE', 'DELETE', 'TRUNCATE', 'REFERENCES', 'TRIGGER'}


@pytest.mark.parametrize('entry,words', [
    ({'on': 'global', 'privs': ['SELECT']}, 'no global privileges'),
    ({'on': 'database', 'database': 'app', 'privs': ['SELECT']}, 'does not apply to a database'),
    ({'on': 'database', 'privs': ['CONNECT']}, 'database is required'),
    ({'on': 'table', 'database': 'app', 'privs': ['SELECT']}, 'objects'),
    ({'on': 'schema', 'database': 'app', 'privs': ['USAGE']}, 'schema is required'),
    ({'on': 'table', 'database': 'app', 'objects': ['t'], 'privs': ['SELECT; DROP TABLE x']}, 'not a privilege name'),
    ({'on': 'nowhere', 'privs': []}, 'on must be one of'),
])
def test_pg_refuses_unsupported(entry, words):
    with pytest.raises(DbError) as info:
        normalize_privileges([entry], 'postgresql')
    assert words in str(info.value)


def test_mysql_targets_grant_option_and_all():
    desired = normalize_privileges([
        {'on': 'global', 'privs': ['process', 'usage']},
        {'on': 'database', 'database': 'shop', 'privs': ['ALL'], 'grant_option': True},
        {'on': 'table', 'database': 'shop', 'objects': ['orders'], 'privs': ['select', 'create   view']},
    ], 'mysql', all_privileges=MY_ALL)
    assert desired[('global', None, None, None)] == {'PROCESS': False}
    assert desired[('database', 'shop', None, None)] == {'SELECT': False, 'INSERT': False, GRANT_OPTION: False}
    assert desired[('table', 'shop', None, 'orders')] == {'SELECT': False, 'CREATE VIEW': False}


@pytest.mark.parametrize('entry,words', [
    ({'on': 'all_tables', 'database': 'shop', 'privs': ['SELECT']}, 'PostgreSQL-only'),
    ({'on': 'schema', 'database': 'shop', 'schema': 'x', 'privs': ['SELECT']}, 'PostgreSQL-only'),
    ({'on': 'sequence', 'database': 'shop', 'objects': ['s'], 'privs': ['SELECT']}, 'PostgreSQL-only'),
    ({'on': 'function', 'database': 'shop', 'objects': ['f'], 'privs': ['EXECUTE']}, 'PostgreSQL-only'),
    ({'on': 'global', 'database': 'shop', 'privs': ['SELECT']}, 'do not apply to on: global'),
    ({'on': 'table', 'database': 'shop', 'schema': 'public', 'objects': ['t'], 'privs': ['SELECT']}, 'schema does not apply'),
    ({'on': 'database', 'database': 'shop', 'privs': ['GRANT OPTION']}, 'grant_option: true'),
    ({'on': 'database', 'database': 'shop', 'privs': ["SELECT'"]}, 'not a privilege name'),
])
def test_mysql_refuses_unsupported(entry, words):
    with pytest.raises(DbError) as info:
        normalize_privileges([entry], 'mysql', all_privileges=MY_ALL)
    assert words in str(info.value)


def test_plan_grants_missing_only_and_keeps_extras_without_exclusive():
    target = ('table', 'app', 'public', 't')
    desired = {target: {'SELECT': False, 'INSERT': True}}
    held = {target: {'SELECT': False, 'DELETE': False}}
    assert plan_privileges(desired, held, exclusive=False) == [('grant_with_option', target, ['INSERT'])]


def test_plan_exclusive_revokes_extras_and_grant_option():
    target = ('database', 'app', None, None)
    other = ('table', 'app', 'public', 'x')
    desired = {target: {'CONNECT': False}}
    held = {target: {'CONNECT': True, 'TEMPORARY': False, 'CREATE': False}, other: {'SELECT': False}}
    plan = plan_privileges(desired, held, exclusive=True)
    assert ('revoke_grant_option', target, ['CONNECT']) in plan
    assert ('revoke', target, ['CREATE', 'TEMPORARY']) in plan
    # a scope not named is never touched
    assert all(step[1] != other for step in plan)


def test_plan_is_empty_when_converged():
    target = ('global', None, None, None)
    assert plan_privileges({target: {'PROCESS': False}}, {target: {'PROCESS': False}}, exclusive=True) == []


def test_plan_empty_privs_with_exclusive_revokes_everything():
    target = ('database', 'app', None, None)
    plan = plan_privileges({target: {}}, {target: {'CONNECT': False, 'TEMPORARY': False}}, exclusive=True)
    assert plan == [('revoke', target, ['CONNECT', 'TEMPORARY'])]


def test_descriptions():
    assert describe_target(('table', 'app', 'public', 't')) == 'table app.public.t'
    assert describe_target(('global', None, None, None)) == 'global'
    assert held_as_dict({('default_tables', 'app', 's', None): {'SELECT': True, 'INSERT': False},
                         ('database', 'x', None, None): {}}) == {'default tables app.s': ['INSERT', 'SELECT+']}


def test_mysql_wildcard_database_patterns():
    desired = normalize_privileges([
        {'on': 'database', 'database': 'app\\_%', 'wildcard': True, 'privs': ['ALL']},
        {'on': 'database', 'database': 'app_%', 'privs': ['SELECT']},
    ], 'mysql', all_privileges=MY_ALL)
    assert desired[('database_pattern', 'app\\_%', None, None)] == {'SELECT': False, 'INSERT': False}
    assert desired[('database', 'app_%', None, None)] == {'SELECT': False}
    assert describe_target(('database_pattern', 'app\\_%', None, None)) == 'database pattern app\\_%'
    for entry, words in (
            ({'on': 'table', 'database': 'a%', 'objects': ['t'], 'wildcard': True}, 'on: database'),
            ({'on': 'database', 'database': 'a\\', 'wildcard': True}, 'lone backslash'),
            ({'on': 'database', 'database': 'a\\\\\\', 'wildcard': True}, 'lone backslash'),
            ({'on': 'database', 'database': 'a' * 65, 'wildcard': True}, 'at most 64')):
        with pytest.raises(DbError) as info:
            normalize_privileges([dict(entry, privs=['SELECT'])], 'mysql', all_privileges=MY_ALL)
        assert words in str(info.value)
    assert normalize_privileges([{'on': 'database', 'database': 'a\\\\', 'wildcard': True, 'privs': ['SELECT']}],
                                'mysql') == {('database_pattern', 'a\\\\', None, None): {'SELECT': False}}
    with pytest.raises(DbError) as info:
        normalize_privileges([{'on': 'database', 'database': 'app%', 'wildcard': True, 'privs': ['CONNECT']}],
                             'postgresql')
    assert 'PostgreSQL' in str(info.value)
