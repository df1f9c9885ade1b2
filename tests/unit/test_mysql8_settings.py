# -*- coding: utf-8 -*-
"""db_config on MySQL 8 (SET PERSIST), without a server: the variable types inferred from the values."""

from __future__ import annotations

import pytest

from ansible_collections.dbops.admin.plugins.module_utils._engines.mysql import MysqlEngine
from ansible_collections.dbops.admin.plugins.module_utils._engines.mysql_settings import inferred_variable_spec


def mysql8(catalog):
    engine = object.__new__(MysqlEngine)
    engine.flavor = 'mysql'
    engine.version_num = 80036
    engine.check_mode = True
    engine.queries = []
    engine._secrets = set()
    engine.settings_catalog = lambda names: {n: dict(catalog[n], name=n) for n in names if n in catalog}
    return engine


@pytest.mark.parametrize('name, running, wanted, target', [
    # the online way to GTIDs: enforce_gtid_consistency WARN then ON; gtid_mode OFF_PERMISSIVE, ON_PERMISSIVE, ON
    ('enforce_gtid_consistency', 'OFF', 'WARN', 'warn'),
    ('gtid_mode', 'OFF', 'OFF_PERMISSIVE', 'off_permissive'),
    ('gtid_mode', 'OFF_PERMISSIVE', 'ON_PERMISSIVE', 'on_permissive'),
    ('gtid_mode', 'ON_PERMISSIVE', 'ON', 'on'),
    ('ssl_fips_mode', 'OFF', 'STRICT', 'strict'),
])
def test_mysql8_on_off_enums_take_their_other_values(name, running, wanted, target):
    engine = mysql8({name: {'value': running, 'persisted': None}})
    entry, = engine.plan_settings({name: wanted})
    assert (entry['vartype'], entry['target'], entry['set_global']) == ('enum', target, True)
    assert engine.setting_statement(entry) == ('SET PERSIST `%s` = %%s' % name, (target,))


def test_mysql8_on_off_enum_is_unchanged_when_it_holds_the_value():
    engine = mysql8({'gtid_mode': {'value': 'OFF_PERMISSIVE', 'persisted': 'OFF_PERMISSIVE'}})
    entry, = engine.plan_settings({'gtid_mode': 'off_permissive'})
    assert entry['change'] is False


@pytest.mark.parametrize('running, wanted, target', [('OFF', 'on', True), ('ON', False, False), ('OFF', 1, True)])
def test_mysql8_booleans_stay_booleans(running, wanted, target):
    engine = mysql8({'require_secure_transport': {'value': running, 'persisted': None}})
    entry, = engine.plan_settings({'require_secure_transport': wanted})
    assert (entry['vartype'], entry['target']) == ('bool', target)
    assert engine.setting_statement(entry)[1] == ('ON' if target else 'OFF',)


def test_inferred_spec_without_a_wanted_value():
    assert inferred_variable_spec('ON') == {'vartype': 'bool'}
    assert inferred_variable_spec('OFF', 'WARN') == {'vartype': 'enum'}


def test_mysql8_read_only_variable_persisted_only_waits_for_the_restart_without_a_change():
    # SET PERSIST_ONLY innodb_buffer_pool_instances = 4 was run; the server still runs with its compiled 8
    engine = mysql8({'innodb_buffer_pool_instances': {'value': '8', 'persisted': '4', 'source': 'COMPILED'}})
    entry, = engine.plan_settings({'innodb_buffer_pool_instances': 4})
    assert (entry['change'], entry['set_global'], entry['restart'], entry['context']) == (False, False, True, 'restart')
    assert engine.apply_settings([entry])['pending_restart'] == ['innodb_buffer_pool_instances']
    assert engine.queries == []


def test_mysql8_dynamic_variable_changed_at_runtime_is_set_again():
    # persisted 64M, then someone ran SET GLOBAL sort_buffer_size = 1M
    engine = mysql8({'sort_buffer_size': {'value': '1048576', 'persisted': '67108864', 'source': 'DYNAMIC'}})
    entry, = engine.plan_settings({'sort_buffer_size': '64M'})
    assert (entry['change'], entry['set_global'], entry['restart']) == (True, True, False)
    assert engine.setting_statement(entry) == ('SET PERSIST `sort_buffer_size` = %s', (67108864,))


def test_mysql8_refuses_an_option_file_it_would_not_use(tmp_path):
    """MySQL 8 persists with SET PERSIST: option_file was checked, then silently left alone."""
    from ansible_collections.dbops.admin.plugins.module_utils._errors import DbError
    engine = mysql8({'max_connections': {'value': '151', 'persisted': None}})
    path = str(tmp_path / 'dbops.cnf')
    with pytest.raises(DbError) as info:
        engine.plan_settings({'max_connections': 300}, option_file=path)
    assert 'SET PERSIST' in str(info.value) and 'drop option_file' in str(info.value) and path in str(info.value)
    assert engine.queries == []
    entry, = engine.plan_settings({'max_connections': 300})
    assert entry['set_global'] is True
