# -*- coding: utf-8 -*-
"""db_user batch handling: defaults from the top level, validation, predicted privileges."""

from __future__ import annotations

import pytest

from ansible_collections.dbops.admin.plugins.module_utils._errors import DbError
from ansible_collections.dbops.admin.plugins.modules import db_user


def params(**kwargs):
    base = dict((k, None) for k in db_user.USER_OPTIONS)
    base.update(state='present', update_password='always', member_of_exclusive=False, privileges_exclusive=False)
    base.update(kwargs)
    return base


def test_single_account_spec():
    specs, batch = db_user.user_specs(params(name='alice', password='x'))
    assert batch is False and specs[0]['name'] == 'alice' and specs[0]['password'] == 'x'


def test_batch_entries_take_top_level_values():
    specs, batch = db_user.user_specs(params(users=[{'name': 'a'}, {'name': 'b', 'member_of': []}],
                                             member_of=['grp'], host='10.%'))
    assert batch is True
    assert specs[0]['member_of'] == ['grp'] and specs[0]['host'] == '10.%'
    assert specs[1]['member_of'] == []


@pytest.mark.parametrize('entry,words', [
    ({'password': 'x'}, 'needs a name'),
    ({'name': 'a', 'pasword': 'x'}, 'unknown keys: pasword'),
    ({'name': 'a', 'state': 'gone'}, 'present or absent'),
    ({'name': 'a', 'password': 'x', 'password_hash': 'y'}, 'exclusive'),
    ({'name': 'a', 'privileges': [{'privs': ['SELECT']}]}, 'needs on'),
])
def test_batch_entry_errors(entry, words):
    with pytest.raises(DbError) as info:
        db_user.user_specs(params(users=[entry]))
    assert words in str(info.value)


def test_apply_plan_predicts_the_after_state():
    target = ('table', 'app', 'public', 't')
    held = {target: {'SELECT': True, 'DELETE': False}}
    plan = [('grant', target, ['INSERT']), ('revoke', target, ['DELETE']), ('revoke_grant_option', target, ['SELECT'])]
    assert db_user._apply_plan(held, plan) == {target: {'SELECT': False, 'INSERT': False}}
    assert held == {target: {'SELECT': True, 'DELETE': False}}
